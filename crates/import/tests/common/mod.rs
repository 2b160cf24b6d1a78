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

/// The import is the tiny fixture model (`custom w=0.1 d=0.5`) with `params` trainable
/// parameters.
pub fn assert_tiny(imported: &effnet_naming::Imported, params: u64, case: &str) {
    assert_eq!(
        imported.identity,
        effnet_naming::Identity::Custom {
            base: effnet_spec::EFFICIENTNET,
            width: 0.1,
            depth: 0.5
        },
        "{case}"
    );
    assert_eq!(imported.graph.param_counts().0, params, "{case}");
}

/// BatchNorm channels over the graph (each has a running mean and variance).
pub fn bn_channels(graph: &effnet_ir::Graph) -> u64 {
    graph
        .nodes()
        .filter_map(|(_, n)| match &n.op {
            effnet_ir::Op::BatchNorm(b) => Some(b.channels as u64),
            _ => None,
        })
        .sum()
}
