//! ONNX models through effnet's reader: the budgeted wire parser (nesting, groups, lengths),
//! tensor sizes against their data, external data locations (a folder holding one 64-byte
//! `w.bin`, and a `../outside.bin` beside it that must never be read), the EfficientNet pattern
//! matching and tagging.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let root = std::env::temp_dir().join(format!("effnet-fuzz-onnx-{}", std::process::id()));
    let dir = root.join("model");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let _ = std::fs::write(dir.join("w.bin"), [0u8; 64]);
    let _ = std::fs::write(root.join("outside.bin"), [1u8; 64]);
    let path = dir.join("model.onnx");
    // In memory, with the folder for external data.
    let storage: Arc<dyn effnet_ir::Storage> = Arc::new(data.to_vec());
    let _ = effnet_onnx::read::read_storage(storage, &path, Some(&dir));
    // As a file, through the import (detection, the model's architecture and identity).
    if std::fs::write(&path, data).is_ok() {
        let _ = effnet_import::open(&path, &effnet_import::ImportOptions::default());
    }
});
