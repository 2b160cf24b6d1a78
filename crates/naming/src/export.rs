//! Writing a graph's tensors under a scheme's names, with the scheme's conventions: BatchNorm
//! epsilon moved exactly (`running_var' = running_var + eps_source − eps_target`), PyTorch's
//! step counters added. What the target would compute differently (padding, shortcuts,
//! activation) is listed by [`differences`]; refusing or allowing it is the caller's rule
//! (effnet-convert's `rules`).

use std::collections::HashMap;

use effnet_ir::{BlockKind, Bytes, DType, Graph, Op, Padding, Role, Tensor};
use effnet_spec::{Architecture, Family, PaddingStyle, Scheme, Variant};

use crate::key::Param;
use crate::layout::{TensorSlot, graph_names};

/// Why a graph cannot be written in a scheme.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The scheme cannot be written (Keras, TF names).
    #[error("writing `{0}` names is not supported yet")]
    Unsupported(&'static str),
    /// A parameter of the graph has no data (a shape-only graph).
    #[error("`{0}` has no data to write")]
    NoData(String),
    /// Moving epsilon would make a variance negative.
    #[error(
        "moving BatchNorm eps from {from:e} to {to:e} makes `{tensor}` negative ({min}); keep the source scheme"
    )]
    NegativeVariance {
        /// The tensor.
        tensor: String,
        /// Source epsilon.
        from: f64,
        /// Target epsilon.
        to: f64,
        /// The most negative value.
        min: f32,
    },
    /// A layer of the graph the scheme has no name for.
    #[error("{0}")]
    Graph(String),
}

/// Tensors ready to write, and what changed on the way.
#[derive(Clone, Debug)]
pub struct Exported {
    /// `(name, tensor)` in state_dict order.
    pub tensors: Vec<(String, Tensor)>,
    /// BatchNorm layers whose epsilon was moved, as `(from, to, layers)`.
    pub eps_moved: Vec<(f64, f64, usize)>,
    /// The target's padding.
    pub padding: PaddingStyle,
    /// The target's BatchNorm epsilon.
    pub bn_eps: f64,
    /// What the target format leaves out (Keras preprocessing, …).
    pub notes: Vec<String>,
}

fn padding_name(style: PaddingStyle) -> &'static str {
    match style {
        PaddingStyle::TfSame => "TF \"same\" (extra pixel at the end)",
        PaddingStyle::Symmetric => "symmetrically",
    }
}

/// How `graph` pads where it matters: its stride-2 convolutions.
pub fn source_padding(graph: &Graph) -> Option<PaddingStyle> {
    graph.nodes().find_map(|(_, n)| match &n.op {
        Op::Conv2d(c) if c.stride != [1, 1] && c.kernel != [1, 1] => Some(match c.padding {
            Padding::SameUpper => PaddingStyle::TfSame,
            _ => PaddingStyle::Symmetric,
        }),
        _ => None,
    })
}

/// Whether a convolution's padding computes what `style` computes at every input size.
fn pads_like(c: &effnet_ir::Conv2d, style: PaddingStyle) -> bool {
    let symmetric = Padding::symmetric(c.kernel, c.dilation);
    let odd = c.kernel.iter().all(|k| k % 2 == 1);
    let pointwise = c.kernel == [1, 1];
    let zero = Padding::Explicit {
        top: 0,
        left: 0,
        bottom: 0,
        right: 0,
    };
    if pointwise && (c.padding == Padding::Valid || c.padding == zero) {
        // TF "same" pads nothing around a 1×1 kernel either.
        return true;
    }
    match style {
        PaddingStyle::TfSame => {
            c.padding == Padding::SameUpper || (c.stride == [1, 1] && odd && c.padding == symmetric)
        }
        PaddingStyle::Symmetric => {
            c.padding == symmetric
                || (c.stride == [1, 1] && odd && c.padding == Padding::SameUpper)
                || (pointwise && c.padding == Padding::SameUpper)
        }
    }
}

/// A difference between what a graph computes and what the same tensors compute in a target
/// scheme's model: the conversion changes the outputs. (BatchNorm epsilon is not one: it
/// moves exactly.)
#[derive(Debug, Clone, PartialEq)]
pub enum Difference {
    /// The model's activations are not the target's.
    Activation {
        /// What the model computes.
        found: &'static str,
        /// What the target computes.
        target: &'static str,
    },
    /// Convolutions that pad otherwise than the target.
    Padding {
        /// How the source pads (`TF "same"`, `symmetrically`, `explicitly in `stem_conv``).
        source: String,
        /// How the target pads.
        target: &'static str,
        /// PyTorch schemes that keep the numbers, if any.
        keeps: Option<&'static str>,
        /// Convolutions affected.
        convs: usize,
    },
    /// A block the target gives a residual shortcut the source does not have, or the reverse.
    Shortcut {
        /// The paper stage.
        stage: u8,
        /// The block within the stage, from 1.
        block: u16,
        /// Whether the source has the shortcut.
        source_has: bool,
    },
}

/// What writing `graph` (of architecture `arch`) in `scheme` would change.
pub fn differences(
    graph: &Graph,
    arch: &Architecture,
    variant: Option<Variant>,
    scheme: Scheme,
) -> Vec<Difference> {
    let target = scheme.semantics(variant);
    // A PyTorch model class computes its family's activation.
    let target_activation = arch.family.unwrap_or(Family::EfficientNet).activation();
    let mut out = Vec::new();
    let activation = graph.nodes().find_map(|(_, n)| match (&n.op, n.tag.role) {
        (Op::Activation(a), role) if body_activation(role) && *a != target_activation => Some(*a),
        _ => None,
    });
    if let Some(a) = activation {
        out.push(Difference::Activation {
            found: a.name(),
            target: target_activation.name(),
        });
    }
    let convs: Vec<(&str, &effnet_ir::Conv2d)> = graph
        .nodes()
        .filter_map(|(_, n)| match &n.op {
            Op::Conv2d(c) => Some((n.name.as_str(), c)),
            _ => None,
        })
        .collect();
    let odd: Vec<&(&str, &effnet_ir::Conv2d)> = convs
        .iter()
        .filter(|(_, c)| !pads_like(c, target.padding))
        .collect();
    if !odd.is_empty() {
        let uniform = [PaddingStyle::TfSame, PaddingStyle::Symmetric]
            .into_iter()
            .find(|&style| convs.iter().all(|(_, c)| pads_like(c, style)));
        let source = match uniform {
            Some(style) => padding_name(style).to_owned(),
            None => {
                let (name, c) = odd
                    .iter()
                    .find(|(_, c)| {
                        !pads_like(c, PaddingStyle::TfSame)
                            && !pads_like(c, PaddingStyle::Symmetric)
                    })
                    .or(odd.first())
                    .expect("non-empty");
                format!(
                    "with mixed conventions ({} in `{name}`)",
                    c.padding.describe()
                )
            }
        };
        out.push(Difference::Padding {
            source,
            target: padding_name(target.padding),
            keeps: uniform.map(|style| match style {
                PaddingStyle::TfSame => "timm-tf or lukemelas",
                PaddingStyle::Symmetric => "torchvision or timm",
            }),
            convs: odd.len(),
        });
    }
    for b in &arch.blocks {
        let target_residual = b.stride == 1
            && b.in_channels == b.out_channels
            && (b.index > 0 || target.stage_first_residual);
        if target_residual != b.residual {
            out.push(Difference::Shortcut {
                stage: b.stage,
                block: b.index + 1,
                source_has: b.residual,
            });
        }
    }
    out
}

/// Why `scheme` has no name for `slot`: the block the scheme's models do not have.
fn cannot_name(scheme: Scheme, graph: &Graph, slot: &TensorSlot) -> String {
    let node = &graph.node(slot.node).name;
    let layout = slot.layout;
    let block = match (layout.kind, layout.has_expand, layout.has_se) {
        (BlockKind::FusedMBConv, _, _) if scheme == Scheme::Lukemelas => {
            "Fused-MBConv blocks (EfficientNet-PyTorch builds EfficientNet B0–B8 only)"
        }
        (BlockKind::FusedMBConv, _, true) => "Fused-MBConv blocks with squeeze-excitation",
        (BlockKind::MBConv, false, false) if scheme == Scheme::Torchvision => {
            "MBConv blocks without expansion and squeeze-excitation (EfficientNet-Lite's; torchvision has no Lite)"
        }
        _ => "this layer",
    };
    format!("{scheme} has no name for `{node}`: its models have no {block}")
}

/// The roles whose activation is the model's (not the SE gate, not the classifier's).
fn body_activation(role: Role) -> bool {
    matches!(
        role,
        Role::StemAct
            | Role::ExpandAct
            | Role::DepthwiseAct
            | Role::ProjectAct
            | Role::SeReduceAct
            | Role::HeadAct
    )
}

/// The tensors of `graph` named by `scheme`, walking its tagged nodes. Nothing is refused
/// here: what the target would compute differently is [`differences`], for the caller to
/// refuse or allow.
pub fn export(
    graph: &Graph,
    variant: Option<Variant>,
    scheme: Scheme,
) -> Result<Exported, ExportError> {
    if matches!(scheme, Scheme::Keras | Scheme::TfOfficial) {
        return Err(ExportError::Unsupported(scheme.name()));
    }
    let target = scheme.semantics(variant);
    let mut tensors = Vec::new();
    let mut moved: HashMap<(u64, u64), usize> = HashMap::new();
    for (name, slot) in graph_names(scheme, graph) {
        let name = name.ok_or_else(|| ExportError::Graph(cannot_name(scheme, graph, &slot)))?;
        if slot.key.param == Param::NumBatchesTracked {
            let zero = Tensor::with_data(
                DType::I64,
                vec![],
                Bytes::from_vec(0i64.to_le_bytes().to_vec()),
            )
            .expect("a scalar");
            tensors.push((name, zero));
            continue;
        }
        let node = graph.node(slot.node);
        let param = slot.key.param.ir_name();
        let tensor = node
            .op
            .params()
            .into_iter()
            .find(|p| p.name == param)
            .map(|p| p.tensor.clone())
            .ok_or_else(|| ExportError::Graph(format!("node `{}` has no {param}", node.name)))?;
        if tensor.data().is_none() {
            return Err(ExportError::NoData(name));
        }
        let tensor = match (&node.op, slot.key.param) {
            (Op::BatchNorm(bn), Param::RunningVar) if bn.eps != target.bn_eps => {
                *moved
                    .entry((bn.eps.to_bits(), target.bn_eps.to_bits()))
                    .or_insert(0) += 1;
                move_eps(&name, &tensor, bn.eps, target.bn_eps)?
            }
            _ => tensor,
        };
        tensors.push((name, tensor));
    }
    let mut notes = Vec::new();
    let steps = preprocessing_steps(graph);
    if !steps.is_empty() {
        notes.push(format!(
            "the model's input preprocessing is not part of a PyTorch state_dict; apply it before the model: {}",
            steps.join(", then ")
        ));
    }
    if graph
        .nodes()
        .any(|(_, n)| n.tag.role == Role::ClassifierAct)
    {
        notes.push("the model ends in softmax; PyTorch models output logits".into());
    }
    Ok(Exported {
        tensors,
        eps_moved: moved
            .into_iter()
            .map(|((from, to), n)| (f64::from_bits(from), f64::from_bits(to), n))
            .collect(),
        padding: target.padding,
        bn_eps: target.bn_eps,
        notes,
    })
}

/// The model's own preprocessing, with the values it holds (`x · 0.00392156862745098`,
/// `(x − [0.485, …]) / sqrt([0.229, …])`), in order.
fn preprocessing_steps(graph: &Graph) -> Vec<String> {
    let list = |v: &[f64]| {
        let items: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
        if items.len() == 1 {
            items[0].clone()
        } else {
            format!("[{}]", items.join(", "))
        }
    };
    graph
        .nodes()
        .filter_map(|(_, n)| match &n.op {
            Op::Rescale(r) => {
                let offset = if r.offset.iter().any(|&o| o != 0.0) {
                    format!(" + {}", list(&r.offset))
                } else {
                    String::new()
                };
                Some(format!("x · {}{offset}", list(&r.scale)))
            }
            Op::Normalize(norm) => {
                let values = |t: &Tensor| {
                    t.to_f32_vec()
                        .map(|v| v.into_iter().map(f64::from).collect::<Vec<_>>())
                        .unwrap_or_default()
                };
                Some(format!(
                    "(x − {}) / sqrt({})",
                    list(&values(&norm.mean)),
                    list(&values(&norm.variance))
                ))
            }
            _ => None,
        })
        .collect()
}

/// `running_var + eps_from − eps_to`, refused when a variance would become negative.
fn move_eps(name: &str, var: &Tensor, from: f64, to: f64) -> Result<Tensor, ExportError> {
    let (moved, min) =
        effnet_ir::moved_variance(var, from, to).map_err(|e| ExportError::Graph(e.to_string()))?;
    if min < 0.0 {
        return Err(ExportError::NegativeVariance {
            tensor: name.to_owned(),
            from,
            to,
            min,
        });
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use effnet_spec::{ModelSpec, build_graph};

    #[test]
    fn differences_name_padding_shortcuts_and_activation() {
        let spec = ModelSpec::custom(0.1, 0.5, 64).unwrap();
        let arch = spec.architecture();
        let graph = build_graph(&arch, &Scheme::TimmTf.semantics(None)).unwrap();
        assert!(differences(&graph, &arch, None, Scheme::TimmTf).is_empty());
        // Into a symmetric scheme: a padding change that timm-tf or lukemelas would keep.
        let diffs = differences(&graph, &arch, None, Scheme::Torchvision);
        assert!(
            matches!(
                diffs.as_slice(),
                [Difference::Padding {
                    keeps: Some("timm-tf or lukemelas"),
                    ..
                }]
            ),
            "{diffs:?}"
        );
        // EfficientNet-PyTorch drops stage 2's first shortcut at w=0.1: only that.
        let diffs = differences(&graph, &arch, None, Scheme::Lukemelas);
        assert_eq!(
            diffs,
            [Difference::Shortcut {
                stage: 2,
                block: 1,
                source_has: true
            }]
        );
        // One convolution padded otherwise: mixed, no PyTorch scheme keeps it.
        let mut mixed = graph.clone();
        let stem = mixed
            .nodes()
            .find(|(_, n)| n.tag.role == Role::StemConv)
            .map(|(id, _)| id)
            .unwrap();
        if let Op::Conv2d(c) = &mut mixed.node_mut(stem).op {
            c.padding = Padding::symmetric(c.kernel, c.dilation);
        }
        for scheme in [Scheme::TimmTf, Scheme::Torchvision] {
            let diffs = differences(&mixed, &arch, None, scheme);
            assert!(
                diffs
                    .iter()
                    .any(|d| matches!(d, Difference::Padding { keeps: None, .. })),
                "{scheme}: {diffs:?}"
            );
        }
        // Another activation.
        let mut relu = graph.clone();
        let ids: Vec<_> = relu.nodes().map(|(id, _)| id).collect();
        for id in ids {
            let node = relu.node_mut(id);
            if node.tag.role == Role::DepthwiseAct {
                node.op = Op::Activation(effnet_ir::Activation::Relu6);
            }
        }
        assert!(
            differences(&relu, &arch, None, Scheme::TimmTf)
                .iter()
                .any(|d| matches!(d, Difference::Activation { found: "relu6", .. }))
        );
    }
}
