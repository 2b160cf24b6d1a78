//! The pickle scanner and the restricted pickle machine on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = effnet_torch::pickle_scan::scan(data, 0);
    if let Ok((value, _)) = effnet_torch::vm::evaluate(data, 0) {
        let _ = effnet_torch::vm::tensors(&value);
    }
});
