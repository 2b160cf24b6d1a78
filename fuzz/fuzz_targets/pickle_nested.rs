//! Structure-aware pickles: every input byte pair is an instruction of a small nesting
//! language (containers, marks, memo, tensors, module records, "repeat the next instruction
//! up to 256,000 times"), so a few bytes build 150,000 nested tuples, lists containing
//! themselves or 100,000 small dict entries. The pickle goes through the scan, the machine and
//! the tensor walk in memory; when the first byte is odd it is also wrapped in a `torch.save`
//! zip archive with four small storages and read as a file (views, CRCs, drop of the arena).
#![no_main]

#[path = "../common/mod.rs"]
mod common;

use effnet_io::Budget;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, program)) = data.split_first() else {
        return;
    };
    let pickle = common::nested_pickle(program);
    let budget = Budget::for_input(pickle.len() as u64);
    let _ = effnet_torch::pickle_scan::scan(&pickle, 0, &budget);
    let budget = Budget::for_input(pickle.len() as u64);
    if let Ok((value, _)) = effnet_torch::vm::evaluate(&pickle, 0, &budget) {
        let _ = value.tensors(&budget);
    }
    if flags & 1 == 1 {
        let mut entries = vec![("archive/data.pkl".to_owned(), pickle, flags & 2 == 2)];
        for key in 0..4u8 {
            let len = usize::from((flags >> 2) & 7) * 16 + usize::from(key) * 4;
            entries.push((format!("archive/data/{key}"), vec![key; len], false));
        }
        entries.push(("archive/version".to_owned(), b"3\n".to_vec(), false));
        let Some(zip) = common::write_zip(&entries) else {
            return;
        };
        let path = common::temp_path("nested.pth");
        if std::fs::write(&path, zip).is_ok() {
            let _ = effnet_torch::read(&path);
        }
    }
});
