//! Building the graph of an inferred architecture and binding every tensor to its node.

use std::collections::HashMap;

use effnet_ir::{Graph, NodeId, Op, Role, Stage, Tensor};

use crate::NamingError;
use crate::key::{Param, ParsedKey, Scope};

/// What happened to each tensor of a file, and which parameters of the graph stayed empty
/// (after burn-store's `ApplyResult` and Keras' `check_match`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportReport {
    /// Tensors bound to a graph parameter.
    pub applied: Vec<String>,
    /// Tensors understood but deliberately not bound, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Graph parameters no tensor supplied (`node.param`).
    pub missing: Vec<String>,
    /// Tensors no naming rule understood.
    pub unused: Vec<String>,
}

/// The graph node and its tag, by (stage, block, role).
pub(crate) fn node_index(graph: &Graph) -> HashMap<(Stage, Option<u16>, Role), NodeId> {
    graph
        .nodes()
        .map(|(id, n)| ((n.tag.stage, n.tag.block, n.tag.role), id))
        .collect()
}

/// Puts `tensor` into the parameter `param` of node `id` after checking its shape; renames the
/// node to the tensor's source prefix.
pub(crate) fn bind(
    graph: &mut Graph,
    id: NodeId,
    name: &str,
    param: Param,
    tensor: &Tensor,
) -> Result<(), NamingError> {
    let node = graph.node_mut(id);
    let slot: Option<&mut Tensor> = match (&mut node.op, param) {
        (Op::Conv2d(c), Param::Weight) => Some(&mut c.weight),
        (Op::Conv2d(c), Param::Bias) => c.bias.as_mut(),
        (Op::Dense(d), Param::Weight) => Some(&mut d.weight),
        (Op::Dense(d), Param::Bias) => d.bias.as_mut(),
        (Op::BatchNorm(b), Param::Gamma) => b.gamma.as_mut(),
        (Op::BatchNorm(b), Param::Beta) => b.beta.as_mut(),
        (Op::BatchNorm(b), Param::RunningMean) => Some(&mut b.mean),
        (Op::BatchNorm(b), Param::RunningVar) => Some(&mut b.var),
        (Op::Normalize(n), Param::Mean) => Some(&mut n.mean),
        (Op::Normalize(n), Param::Variance) => Some(&mut n.variance),
        (Op::Normalize(n), Param::Count) => n.count.as_mut(),
        _ => None,
    };
    let slot = slot.ok_or_else(|| NamingError::Inconsistent {
        tensor: name.to_owned(),
        message: format!(
            "node `{}` has no parameter `{}`",
            node.name,
            param.ir_name()
        ),
    })?;
    if slot.shape() != tensor.shape() {
        return Err(NamingError::Inconsistent {
            tensor: name.to_owned(),
            message: format!(
                "shape {:?}, but the inferred architecture needs {:?}",
                tensor.shape(),
                slot.shape()
            ),
        });
    }
    *slot = tensor.clone();
    if let Some((prefix, _)) = name.rsplit_once('.') {
        node.name = prefix.to_owned();
    }
    Ok(())
}

/// The (stage, block, role) a key binds to, given where its block landed.
pub(crate) fn target(
    key: &ParsedKey,
    positions: &std::collections::BTreeMap<crate::key::BlockRef, (u8, u16)>,
) -> Option<(Stage, Option<u16>, Role)> {
    let role = key.layer.role();
    match key.scope {
        Scope::Stem => Some((Stage::Stem, None, role)),
        Scope::Head | Scope::Classifier => Some((Stage::Head, None, role)),
        Scope::Block(b) => positions
            .get(&b)
            .map(|&(s, i)| (Stage::Blocks(s), Some(i), role)),
    }
}

/// Every parameter of the graph still without data, as `node.param`.
pub(crate) fn missing_params(graph: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (_, node) in graph.nodes() {
        for p in node.op.params() {
            if p.tensor.data().is_none() && !matches!(node.op, Op::Normalize(_)) {
                out.push(format!("{}.{}", node.name, p.name));
            }
        }
    }
    out
}
