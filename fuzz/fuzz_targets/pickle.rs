//! The pickle scanner and the restricted pickle machine on arbitrary bytes, under the budget
//! the input's size allows.
#![no_main]

use effnet_io::Budget;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let budget = Budget::for_input(data.len() as u64);
    let _ = effnet_torch::pickle_scan::scan(data, 0, &budget);
    if let Ok((pickle, _)) = effnet_torch::vm::evaluate(data, 0, &budget) {
        let _ = pickle.tensors(&budget);
    }
});
