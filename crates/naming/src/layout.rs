//! Every parameter tensor of a graph, with its key and canonical shape, read from the graph's
//! tagged nodes: what a scheme must name to write the model, and what tests use to check both
//! directions.

use std::collections::HashMap;

use effnet_ir::{BlockKind, Graph, NodeId, Op, Stage, structure};
use effnet_spec::{Architecture, Scheme, Semantics, build_graph};

use crate::key::{BlockLayout, BlockRef, Layer, Param, ParsedKey, Scope};
use crate::schemes::format_key;

/// One parameter tensor of a graph.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSlot {
    /// What it is.
    pub key: ParsedKey,
    /// Its block's index over all blocks (0 outside blocks).
    pub global_index: usize,
    /// Its block's layout (an MBConv without expansion or SE outside blocks).
    pub layout: BlockLayout,
    /// Its shape in the canonical (PyTorch) layout.
    pub shape: Vec<usize>,
    /// The graph node that holds it.
    pub node: NodeId,
}

const OUTSIDE: BlockLayout = BlockLayout {
    kind: BlockKind::MBConv,
    has_expand: false,
    has_se: false,
};

/// Every parameter tensor of `graph` as PyTorch's state_dict holds it (BatchNorm step counters
/// included), in the graph's order. Nodes without a PyTorch layer (Keras' `Normalization`) are
/// left out.
pub fn graph_slots(graph: &Graph) -> Vec<TensorSlot> {
    let layouts: HashMap<(u8, u16), (usize, BlockLayout)> = structure::blocks(graph, None)
        .into_iter()
        .map(|b| {
            let layout = BlockLayout {
                kind: b.kind,
                has_expand: b.has_expand,
                has_se: b.se_channels.is_some(),
            };
            ((b.stage, b.index), (b.global_index, layout))
        })
        .collect();
    let mut slots = Vec::new();
    for (id, node) in graph.nodes() {
        let Some(layer) = Layer::from_role(node.tag.role) else {
            continue;
        };
        let (scope, (global_index, layout)) = match (node.tag.stage, node.tag.block) {
            (Stage::Stem, _) => (Scope::Stem, (0, OUTSIDE)),
            (Stage::Head, _) if layer == Layer::Classifier => (Scope::Classifier, (0, OUTSIDE)),
            (Stage::Head, _) => (Scope::Head, (0, OUTSIDE)),
            (Stage::Blocks(stage), Some(index)) => (
                Scope::Block(BlockRef {
                    stage: Some(stage),
                    index: usize::from(index),
                }),
                layouts
                    .get(&(stage, index))
                    .copied()
                    .unwrap_or((0, OUTSIDE)),
            ),
            (Stage::Blocks(_), None) => continue,
        };
        for p in node.op.params() {
            let param = match (&node.op, p.name) {
                (Op::BatchNorm(_), "gamma") => Param::Gamma,
                (Op::BatchNorm(_), "beta") => Param::Beta,
                (Op::BatchNorm(_), "running_mean") => Param::RunningMean,
                (Op::BatchNorm(_), "running_var") => Param::RunningVar,
                (_, "weight") => Param::Weight,
                (_, "bias") => Param::Bias,
                _ => continue,
            };
            let key = ParsedKey {
                scope,
                layer,
                param,
            };
            slots.push(TensorSlot {
                key,
                global_index,
                layout,
                shape: p.tensor.shape().to_vec(),
                node: id,
            });
            if param == Param::RunningVar {
                slots.push(TensorSlot {
                    key: ParsedKey {
                        param: Param::NumBatchesTracked,
                        ..key
                    },
                    global_index,
                    layout,
                    shape: vec![],
                    node: id,
                });
            }
        }
    }
    slots
}

/// The names `scheme` gives every tensor of `graph`, with their slots; `None` where the scheme
/// cannot name a slot.
pub fn graph_names(scheme: Scheme, graph: &Graph) -> Vec<(Option<String>, TensorSlot)> {
    let head_stage = graph.last_block_stage();
    graph_slots(graph)
        .into_iter()
        .map(|slot| {
            let name = format_key(
                scheme,
                &slot.key,
                slot.global_index,
                slot.layout,
                head_stage,
            );
            (name, slot)
        })
        .collect()
}

/// The names `scheme` gives every tensor of `arch`, with their slots.
pub fn names_for(scheme: Scheme, arch: &Architecture) -> Vec<(Option<String>, TensorSlot)> {
    let semantics: Semantics = scheme.semantics(None);
    build_graph(arch, &semantics)
        .map(|g| graph_names(scheme, &g))
        .unwrap_or_default()
}
