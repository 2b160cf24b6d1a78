//! The SavedModel's object graph walked: each variable's key in the checkpoint bundle, and the
//! objects the serving signatures capture.

use std::collections::{HashMap, HashSet, VecDeque};

use super::SavedObjectGraph;
use crate::proto::TrackableObjectGraph;

/// The bundle key of every variable node of `saved`: both graphs walked from their roots
/// together, following children with the same local name.
pub(super) fn variable_keys(
    saved: &SavedObjectGraph,
    checkpoint: &TrackableObjectGraph,
) -> HashMap<usize, String> {
    let mut keys = HashMap::new();
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([(0usize, 0usize)]);
    while let Some((s, c)) = queue.pop_front() {
        if !seen.insert(s) {
            continue;
        }
        let (Some(snode), Some(cnode)) = (saved.nodes.get(s), checkpoint.nodes.get(c)) else {
            continue;
        };
        if snode.variable.is_some() {
            if let Some(a) = cnode.attributes.iter().find(|a| a.name == "VARIABLE_VALUE") {
                keys.insert(s, a.checkpoint_key.clone());
            }
        }
        let children: HashMap<&str, i32> = cnode
            .children
            .iter()
            .map(|r| (r.local_name.as_str(), r.node_id))
            .collect();
        for child in &snode.children {
            if let (Some(&cid), Ok(sid)) = (
                children.get(child.local_name.as_str()),
                usize::try_from(child.node_id),
            ) {
                if let Ok(cid) = usize::try_from(cid) {
                    queue.push_back((sid, cid));
                }
            }
        }
    }
    keys
}

/// The node ids the serving signatures (the root's `signatures` child) capture.
pub(super) fn signature_captures(saved: &SavedObjectGraph) -> HashSet<usize> {
    let node = |id: i32| usize::try_from(id).ok().and_then(|i| saved.nodes.get(i));
    let mut out = HashSet::new();
    let Some(root) = saved.nodes.first() else {
        return out;
    };
    let Some(signatures) = root
        .children
        .iter()
        .find(|c| c.local_name == "signatures")
        .and_then(|c| node(c.node_id))
    else {
        return out;
    };
    for signature in signatures.children.iter().filter_map(|c| node(c.node_id)) {
        let mut names: Vec<&str> = Vec::new();
        if let Some(f) = &signature.bare_concrete_function {
            names.push(&f.concrete_function_name);
        }
        if let Some(f) = &signature.function {
            names.extend(f.concrete_functions.iter().map(String::as_str));
        }
        for name in names {
            if let Some(f) = saved.concrete_functions.get(name) {
                out.extend(
                    f.bound_inputs
                        .iter()
                        .filter_map(|&i| usize::try_from(i).ok()),
                );
            }
        }
    }
    out
}
