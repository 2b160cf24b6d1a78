//! The Keras layers of a TF2 object-based checkpoint, found through its object graph.

use crate::proto::{self, TrackableObjectGraph};

/// One Keras layer of an object-based checkpoint: its variables in the order it tracks them.
#[derive(Clone, Debug)]
pub struct ObjectLayer {
    /// Its path in the object graph (`layer_with_weights-3`, `model/layer_with_weights-3`).
    pub path: String,
    /// `(variable name, bundle key)`: `kernel`, `gamma`, `moving_mean`, …
    pub variables: Vec<(String, String)>,
}

/// The weighted layers of the Keras model in an object graph, in `model.layers` order (the
/// `layer_with_weights-N` children of the object that has the most of them), and the bundle
/// keys that belong to other objects (optimizer, step counters).
pub fn object_layers(graph: &TrackableObjectGraph) -> Option<(Vec<ObjectLayer>, Vec<String>)> {
    let nodes = &graph.nodes;
    let node = |id: i32| usize::try_from(id).ok().and_then(|i| nodes.get(i));
    let weighted = |n: &proto::TrackableObject| {
        n.children
            .iter()
            .filter_map(|c| {
                let k: usize = c
                    .local_name
                    .strip_prefix("layer_with_weights-")?
                    .parse()
                    .ok()?;
                Some((k, c.node_id))
            })
            .collect::<Vec<_>>()
    };
    let (model_id, _) = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (i, weighted(n).len()))
        .filter(|&(_, n)| n > 0)
        .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))?;
    let model_path = path_to(graph, model_id);
    let mut layers = weighted(&nodes[model_id]);
    layers.sort_unstable();
    let mut used = std::collections::HashSet::new();
    let out: Vec<ObjectLayer> = layers
        .into_iter()
        .filter_map(|(k, id)| {
            let layer = node(id)?;
            let variables = layer
                .children
                .iter()
                .filter_map(|c| {
                    let var = node(c.node_id)?;
                    let key = var
                        .attributes
                        .iter()
                        .find(|a| a.name == "VARIABLE_VALUE")?
                        .checkpoint_key
                        .clone();
                    used.insert(key.clone());
                    Some((c.local_name.clone(), key))
                })
                .collect();
            let local = format!("layer_with_weights-{k}");
            Some(ObjectLayer {
                path: if model_path.is_empty() {
                    local
                } else {
                    format!("{model_path}/{local}")
                },
                variables,
            })
        })
        .collect();
    let others = nodes
        .iter()
        .flat_map(|n| n.attributes.iter().map(|a| a.checkpoint_key.clone()))
        .filter(|k| !used.contains(k))
        .collect();
    Some((out, others))
}

/// The path of node `target` from the root (`model/layer_with_weights-3`), by breadth-first
/// search: each node records the edge it was reached by (a parent link, not a path), and only
/// the target's path is built, by following the links back. Linear in nodes and edges, with
/// memory for one link per node; a node the root does not reach has the empty path.
fn path_to(graph: &TrackableObjectGraph, target: usize) -> String {
    let nodes = &graph.nodes;
    // (parent node, child index in the parent) of each node reached.
    let mut parent: Vec<Option<(usize, usize)>> = vec![None; nodes.len()];
    let mut seen = vec![false; nodes.len()];
    if nodes.is_empty() {
        return String::new();
    }
    seen[0] = true;
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        if i == target {
            break;
        }
        for (k, c) in nodes[i].children.iter().enumerate() {
            if let Some(j) = usize::try_from(c.node_id).ok().filter(|&j| j < nodes.len()) {
                if !seen[j] {
                    seen[j] = true;
                    parent[j] = Some((i, k));
                    queue.push_back(j);
                }
            }
        }
    }
    let mut names: Vec<&str> = Vec::new();
    let mut at = target;
    while let Some((p, k)) = parent.get(at).copied().flatten() {
        names.push(&nodes[p].children[k].local_name);
        at = p;
    }
    names.reverse();
    names.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_follow_parent_links() {
        let reference = |id: i32, name: &str| proto::ObjectReference {
            node_id: id,
            local_name: name.into(),
        };
        // A 60,000-node chain: one path is built, not one per node.
        let n = 60_000;
        let nodes = (0..n)
            .map(|i| proto::TrackableObject {
                children: if i + 1 < n {
                    vec![reference(i + 1, "child"), reference(0, "back")]
                } else {
                    Vec::new()
                },
                ..proto::TrackableObject::default()
            })
            .collect();
        let graph = TrackableObjectGraph { nodes };
        assert_eq!(path_to(&graph, 3), "child/child/child");
        assert_eq!(path_to(&graph, 0), "");
        assert_eq!(
            path_to(&graph, n as usize - 1).len(),
            6 * (n as usize - 1) - 1
        );
    }
}
