//! safetensors headers and offsets through effnet's reader (the bytes go to a file first: the
//! reader maps files).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("effnet-fuzz-st-{}", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = effnet_safetensors::read(&path);
    }
});
