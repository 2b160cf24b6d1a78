//! Naming schemes: the names a framework gives EfficientNet tensors, read into the graph IR.
//!
//! A scheme is independent of the container: torchvision names can sit in a `.pth` or a
//! `.safetensors`. Reading goes name → [`ParsedKey`] (stem/block/head, layer, parameter),
//! then shapes → [`effnet_spec::Architecture`] ([`infer`]), then the graph of that
//! architecture with every tensor bound to its node ([`import`]). Writing goes the other way
//! through [`format_key`]. Both directions live in [`schemes`] side by side.

mod assumption;
mod bind;
pub mod export;
mod identify;
mod infer;
pub mod key;
mod layout;
pub mod positional;
pub mod schemes;

use effnet_ir::{Checkpoint, Graph, TensorLayout};
use effnet_spec::{Architecture, Scheme, build_graph};

pub use assumption::Assumption;
pub use bind::ImportReport;
pub use identify::{Identity, identify};
pub use infer::{Inferred, infer};
pub use key::{BlockLayout, BlockRef, Layer, Param, ParsedKey, Scope};
pub use layout::{TensorSlot, graph_names, graph_slots, names_for};
pub use schemes::{format_key, parse_all};

/// Why tensors could not be read into a graph. Messages name the tensor or layer at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NamingError {
    /// No scheme understands the names.
    #[error("no naming scheme effnet knows matches these tensor names (e.g. `{0}`)")]
    Unrecognized(String),
    /// A layer every EfficientNet has is not in the file.
    #[error("not an EfficientNet: no {0}")]
    Missing(String),
    /// A tensor disagrees with the rest of the model.
    #[error("tensor `{tensor}`: {message}")]
    Inconsistent {
        /// The tensor or layer.
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// The scheme's names cannot be read yet.
    #[error("reading `{0}` names is not supported yet")]
    Unsupported(&'static str),
    /// The graph could not be built.
    #[error(transparent)]
    Spec(#[from] effnet_spec::SpecError),
}

/// How well each scheme explains a set of names: `(scheme, names parsed)`, best first.
/// timm and timm-tf share their names, so only `timm` is listed; see [`import`].
pub fn detect(names: &[&str]) -> Vec<(Scheme, usize)> {
    let mut scores: Vec<(Scheme, usize)> = [
        Scheme::Torchvision,
        Scheme::Timm,
        Scheme::Lukemelas,
        Scheme::Keras,
        Scheme::TfOfficial,
    ]
    .into_iter()
    .map(|s| (s, parse_all(s, names).iter().flatten().count()))
    .collect();
    scores.sort_by_key(|s| std::cmp::Reverse(s.1));
    scores
}

/// A graph read from named tensors.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The graph, every parameter bound.
    pub graph: Graph,
    /// The architecture inferred from the tensors.
    pub architecture: Architecture,
    /// What the architecture is.
    pub identity: Identity,
    /// What happened to every tensor.
    pub report: ImportReport,
    /// What had to be assumed (strides, stages).
    pub assumptions: Vec<Assumption>,
}

/// Reads `checkpoint` (names already stripped of wrappers) as `scheme`.
pub fn import(checkpoint: &Checkpoint, scheme: Scheme) -> Result<Imported, NamingError> {
    import_with(checkpoint, scheme, &|_, _| {})
}

/// The canonical (PyTorch/ONNX) layout of a tensor a TensorFlow container stores in its own:
/// conv `[kh, kw, in, out]` → `[out, in, kh, kw]`, depthwise `[kh, kw, C, 1]` → `[C, 1, kh, kw]`,
/// dense `[in, out]` → `[out, in]`.
fn canonical(
    layout: TensorLayout,
    key: &ParsedKey,
    tensor: &effnet_ir::Tensor,
) -> Result<effnet_ir::Tensor, NamingError> {
    if layout != TensorLayout::Tf || key.param != Param::Weight {
        return Ok(tensor.clone());
    }
    let perm: &[usize] = match (key.layer, tensor.shape().len()) {
        (Layer::DwConv, 4) => &[2, 3, 0, 1],
        (Layer::Classifier, 2) => &[1, 0],
        (_, 4) => &[3, 2, 0, 1],
        _ => return Ok(tensor.clone()),
    };
    tensor
        .permuted(perm)
        .map_err(|e| NamingError::Inconsistent {
            tensor: format!("{key:?}"),
            message: e.to_string(),
        })
}

/// Like [`import`], letting `adjust` correct the scheme's semantics and the inferred
/// architecture with what the file records beyond its tensors (a Keras config's
/// preprocessing, classifier activation, strides, shortcuts, BatchNorm epsilon).
pub fn import_with(
    checkpoint: &Checkpoint,
    scheme: Scheme,
    adjust: &dyn Fn(&mut effnet_spec::Semantics, &mut Architecture),
) -> Result<Imported, NamingError> {
    let names: Vec<&str> = checkpoint.tensors.iter().map(|(n, _)| n.as_str()).collect();
    let parsed = parse_all(scheme, &names);
    let mut report = ImportReport::default();
    let mut owned = Vec::new();
    // TF layouts are permuted on every core.
    use rayon::prelude::*;
    let moved: Vec<Option<Result<effnet_ir::Tensor, NamingError>>> = checkpoint
        .tensors
        .par_iter()
        .zip(&parsed)
        .map(|((_, tensor), key)| {
            key.as_ref()
                .map(|k| canonical(checkpoint.layout, k, tensor))
        })
        .collect();
    for (((name, _), key), tensor) in checkpoint.tensors.iter().zip(&parsed).zip(moved) {
        match (key, tensor) {
            (Some(k), Some(t)) => owned.push((*k, name.as_str(), t?)),
            _ => report.unused.push(name.clone()),
        }
    }
    let keys: Vec<(ParsedKey, &str, &effnet_ir::Tensor)> =
        owned.iter().map(|(k, n, t)| (*k, *n, t)).collect();
    if keys.is_empty() {
        return Err(NamingError::Unrecognized(
            names.first().copied().unwrap_or_default().to_owned(),
        ));
    }
    let inferred = infer(&keys)?;
    let identity = identify(&inferred.architecture);
    let mut architecture = inferred.architecture.clone();
    if let Identity::Variant(v) = identity {
        architecture.resolution = Some(v.coefficients().resolution);
        architecture.dropout = v.coefficients().dropout;
    }
    // Fused-MBConv blocks exist in EfficientNetV2 only: its conventions apply even to a
    // network no compound scaling explains (torchvision's V2 keeps a 1280 head at any width).
    let family = identity.family().or_else(|| {
        architecture
            .blocks
            .iter()
            .any(|b| b.kind == effnet_ir::BlockKind::FusedMBConv)
            .then_some(effnet_spec::Family::V2)
    });
    if let Some(family) = family {
        architecture.family = Some(family);
        architecture.activation = family.activation();
    }
    let mut semantics = scheme.semantics(
        identity
            .semantics_variant()
            .or(family.and_then(effnet_spec::Family::representative)),
    );
    adjust(&mut semantics, &mut architecture);
    if !semantics.stage_first_residual {
        for block in architecture.blocks.iter_mut().filter(|b| b.index == 0) {
            block.residual = false;
        }
    }
    let mut graph = build_graph(&architecture, &semantics)?;
    let index = bind::node_index(&graph);
    for (key, name, tensor) in &keys {
        if key.param == Param::NumBatchesTracked {
            report.skipped.push((
                (*name).to_owned(),
                "BatchNorm step counter (bookkeeping)".into(),
            ));
            continue;
        }
        let Some(id) = bind::target(key, &inferred.positions).and_then(|t| index.get(&t).copied())
        else {
            report.unused.push((*name).to_owned());
            continue;
        };
        bind::bind(&mut graph, id, name, key.param, tensor)?;
        report.applied.push((*name).to_owned());
    }
    report.missing = bind::missing_params(&graph);
    graph.validate().map_err(effnet_spec::SpecError::from)?;
    Ok(Imported {
        graph,
        architecture,
        identity,
        report,
        assumptions: inferred.assumptions,
    })
}
