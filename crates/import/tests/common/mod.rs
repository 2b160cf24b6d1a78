//! Helpers the fixture tests share.

use effnet_ir::Checkpoint;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Every tensor `want` lists (`name → {shape, sha256}`, as a fixture's JSON has them) is in
/// `checkpoint` with that shape and those bytes, and there are no others.
pub fn assert_tensors_match(
    checkpoint: &Checkpoint,
    want: &serde_json::Map<String, Value>,
    case: &str,
) {
    assert_eq!(checkpoint.len(), want.len(), "{case}");
    for (name, expected) in want {
        let t = checkpoint
            .get(name)
            .unwrap_or_else(|| panic!("{case}: no `{name}`"));
        let shape: Vec<usize> = expected["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape(), shape.as_slice(), "{case}: {name}");
        let sha: String = Sha256::digest(t.data().unwrap().as_slice())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha, expected["sha256"].as_str().unwrap(), "{case}: {name}");
    }
}
