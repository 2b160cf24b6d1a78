//! Every container through `effnet_import::open` (PyTorch zip/legacy/TorchScript,
//! safetensors, Keras .h5/.keras): the bytes go to a file in /dev/shm first, since the readers
//! map files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("effnet-fuzz-{}", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = effnet_import::open(&path, &effnet_import::ImportOptions::default());
    }
});
