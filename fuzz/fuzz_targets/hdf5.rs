//! Keras HDF5 files as effnet reads them (`layer_names`, `weight_names`, Keras 3 `layers/…/vars`
//! groups, datasets), through a file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("effnet-fuzz-h5-{}", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = effnet_keras::read(&path);
    }
});
