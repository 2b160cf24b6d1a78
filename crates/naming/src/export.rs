//! Writing a graph's tensors under a scheme's names, with the scheme's conventions: BatchNorm
//! epsilon moved exactly (`running_var' = running_var + eps_source − eps_target`), padding
//! changes refused unless allowed (they change the outputs), PyTorch's step counters added.

use std::collections::HashMap;

use effnet_ir::{Bytes, DType, Graph, NodeId, Op, Padding, Role, Tensor};
use effnet_spec::{Architecture, PaddingStyle, Scheme, Variant};

use crate::key::Param;
use crate::layout::names_for;

/// Why a graph cannot be written in a scheme.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The target pads differently from the source, which changes the outputs.
    #[error(
        "the model pads {source_padding}; {target} pads {target_padding}, which changes its outputs (reference G1). Use --naming {keeps} to keep its numbers, or pass --allow-padding-change"
    )]
    PaddingChange {
        /// How the source pads.
        source_padding: &'static str,
        /// The target scheme.
        target: Scheme,
        /// How the target pads.
        target_padding: &'static str,
        /// Schemes that keep the numbers.
        keeps: &'static str,
    },
    /// The target builds a residual shortcut where the source has none, or the reverse.
    #[error(
        "stage {stage} block 1 {source_has} residual shortcut; {target} {target_has}, which changes the outputs. Keep the source scheme, or pass --allow-padding-change"
    )]
    ResidualChange {
        /// The stage of the block.
        stage: u8,
        /// `has` or `has no`.
        source_has: &'static str,
        /// The target scheme.
        target: Scheme,
        /// What the target builds.
        target_has: &'static str,
    },
    /// The model's activation is not the swish every PyTorch scheme computes.
    #[error(
        "the model uses {activation} activations; {target} computes swish, so its weights would give other numbers (ONNX export keeps the activation)"
    )]
    ActivationChange {
        /// The model's activation.
        activation: &'static str,
        /// The target scheme.
        target: Scheme,
    },
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

/// The tensors of `graph` (of architecture `arch`) named by `scheme`.
pub fn export(
    graph: &Graph,
    arch: &Architecture,
    variant: Option<Variant>,
    scheme: Scheme,
    allow_padding_change: bool,
) -> Result<Exported, ExportError> {
    if matches!(scheme, Scheme::Keras | Scheme::TfOfficial) {
        return Err(ExportError::Unsupported(scheme.name()));
    }
    let target = scheme.semantics(variant);
    let activation = graph.nodes().find_map(|(_, n)| match (&n.op, n.tag.role) {
        (Op::Activation(a), effnet_ir::Role::StemAct) => Some(*a),
        _ => None,
    });
    if let Some(a) = activation.filter(|&a| a != target.activation) {
        return Err(ExportError::ActivationChange {
            activation: a.name(),
            target: scheme,
        });
    }
    if let Some(source) = source_padding(graph) {
        if source != target.padding && !allow_padding_change {
            return Err(ExportError::PaddingChange {
                source_padding: padding_name(source),
                target: scheme,
                target_padding: padding_name(target.padding),
                keeps: match source {
                    PaddingStyle::TfSame => "timm-tf or lukemelas",
                    PaddingStyle::Symmetric => "torchvision or timm",
                },
            });
        }
    }
    if !allow_padding_change {
        for b in &arch.blocks {
            let target_residual = b.stride == 1
                && b.in_channels == b.out_channels
                && (b.index > 0 || target.stage_first_residual);
            if target_residual != b.residual {
                let has = |r: bool| if r { "has a" } else { "has no" };
                return Err(ExportError::ResidualChange {
                    stage: b.stage,
                    source_has: has(b.residual),
                    target: scheme,
                    target_has: if target_residual {
                        "would add one"
                    } else {
                        "drops it (EfficientNet-PyTorch stores a stage's first stride as a list)"
                    },
                });
            }
        }
    }
    let index: HashMap<(u8, Option<u16>, Role), NodeId> = graph
        .nodes()
        .map(|(id, n)| ((n.tag.stage, n.tag.block, n.tag.role), id))
        .collect();
    let mut tensors = Vec::new();
    let mut moved: HashMap<(u64, u64), usize> = HashMap::new();
    for (name, slot) in names_for(scheme, arch) {
        let name =
            name.ok_or_else(|| ExportError::Graph(format!("{scheme} cannot name {:?}", slot.key)))?;
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
        let (stage, block) = match slot.key.scope {
            crate::Scope::Stem => (1, None),
            crate::Scope::Head | crate::Scope::Classifier => (9, None),
            crate::Scope::Block(b) => (b.stage.unwrap_or(0), Some(b.index as u16)),
        };
        let id = *index
            .get(&(stage, block, slot.key.layer.role()))
            .ok_or_else(|| ExportError::Graph(format!("the graph has no node for `{name}`")))?;
        let node = graph.node(id);
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

/// `running_var + eps_from − eps_to`, in f64, written back in the tensor's dtype.
fn move_eps(name: &str, var: &Tensor, from: f64, to: f64) -> Result<Tensor, ExportError> {
    let values = var
        .to_f32_vec()
        .map_err(|e| ExportError::Graph(e.to_string()))?;
    let moved: Vec<f32> = values
        .iter()
        .map(|&v| (f64::from(v) + from - to) as f32)
        .collect();
    let min = moved.iter().copied().fold(f32::INFINITY, f32::min);
    if min < 0.0 {
        return Err(ExportError::NegativeVariance {
            tensor: name.to_owned(),
            from,
            to,
            min,
        });
    }
    let (bytes, _) = effnet_ir::encode_f32(&moved, var.dtype(), false);
    Tensor::with_data(var.dtype(), var.shape().to_vec(), Bytes::from_vec(bytes))
        .map_err(|e| ExportError::Graph(e.to_string()))
}
