//! ONNX models: the graph [`effnet_onnx::read`] matched into the IR, its architecture read
//! back from the tagged nodes, identified, and described as a [`Model`] like any other file.
//!
//! An ONNX file has no tensor names a naming scheme reads; its conventions are in the graph
//! (pads, epsilon, preprocessing). The model's scheme — what `convert` writes by default and
//! what the audit names the conventions after — is the one effnet recorded when it wrote the
//! file (`effnet.source_naming`), `--naming`, or the graph's: Keras with the preprocessing
//! inside, timm-tf for TF "same" padding, torchvision for symmetric padding.

use std::collections::BTreeMap;
use std::path::Path;

use effnet_ir::{BatchNorm, Graph, IrError, Node, NodeId, Op, Role, Tag, Tensor, structure};
use effnet_naming::{Assumption, ImportReport, Imported, identify};
use effnet_spec::{Architecture, BlockSpec, Evidence, PaddingStyle, Scheme};

use crate::{ImportError, ImportOptions, Model, NamingSource, Tensors, unsupported};

/// The metadata key (`onnx.batchnorm`) `inspect` shows for a graph whose BatchNorms were
/// folded into the convolutions.
pub const BN_FOLDED_KEY: &str = "onnx.batchnorm";

fn read(path: &Path) -> Result<effnet_onnx::read::OnnxModel, ImportError> {
    effnet_onnx::read::read(path).map_err(|e| ImportError::Unsupported {
        path: path.to_owned(),
        message: strip_path(&e.to_string(), path),
    })
}

/// The error's message without the leading `path: ` (the import error adds it).
fn strip_path(message: &str, path: &Path) -> String {
    let prefix = format!("{}: ", path.display());
    message.strip_prefix(&prefix).unwrap_or(message).to_owned()
}

/// The initializers of an ONNX file, as the file names them (`inspect --tensors`), its graph
/// not read: a file that is not an EfficientNet has them too.
pub(crate) fn tensors(path: &Path) -> Result<Tensors, ImportError> {
    let file = effnet_onnx::read::read_tensors(path).map_err(|e| ImportError::Unsupported {
        path: path.to_owned(),
        message: strip_path(&e.to_string(), path),
    })?;
    let mut metadata = file.metadata;
    metadata.insert("onnx.producer".into(), file.producer);
    metadata.insert("onnx.opset".into(), file.opset.to_string());
    Ok(Tensors {
        container: "onnx",
        checkpoint: effnet_ir::Checkpoint {
            tensors: file.tensors,
            metadata,
            layout: effnet_ir::TensorLayout::Torch,
        },
        globals: Vec::new(),
        skipped: Vec::new(),
        keras_config: None,
        positional: false,
        function_facts: None,
        checksums: None,
    })
}

/// Opens an ONNX file as a [`Model`].
pub(crate) fn open(path: &Path, options: &ImportOptions) -> Result<Model, ImportError> {
    let onnx = read(path)?;
    let mut graph = onnx.graph;
    let mut assumptions = vec![Assumption::OnnxStages];
    let zero = zero_biases(&mut graph).map_err(|e| unsupported(path, &e.to_string()))?;
    if zero > 0 {
        assumptions.push(Assumption::ZeroBiases(zero));
    }
    let same = tf_same_at_fixed_size(&mut graph);
    if same > 0 {
        assumptions.push(Assumption::PadsReadAsSame(same));
    }
    let mut architecture = architecture(&graph).map_err(|m| unsupported(path, &m))?;
    let identity = identify(&architecture);
    architecture.family = identity.family();
    let preprocessing = graph
        .nodes()
        .any(|(_, n)| matches!(n.op, Op::Rescale(_) | Op::Normalize(_)));
    let recorded = onnx
        .metadata
        .get("effnet.source_naming")
        .and_then(|n| n.parse::<Scheme>().ok());
    let (naming, naming_source) = match (options.naming, recorded) {
        (Some(s), _) => (s, NamingSource::Option),
        (None, Some(s)) => (s, NamingSource::Metadata),
        (None, None) => {
            let scheme = if preprocessing {
                Scheme::Keras
            } else if effnet_naming::export::source_padding(&graph) == Some(PaddingStyle::TfSame) {
                Scheme::TimmTf
            } else {
                Scheme::Torchvision
            };
            (scheme, NamingSource::Graph)
        }
    };
    let variant = match identity {
        effnet_naming::Identity::Variant(v) => Some(v),
        _ => None,
    };
    graph.meta.naming = Some(naming.name().to_owned());
    graph.meta.source = Some(path.display().to_string());
    graph.meta.input_normalization = if preprocessing {
        None
    } else {
        naming.semantics(variant).input_normalization
    };
    let mut metadata = onnx.metadata.clone();
    metadata.insert("onnx.producer".into(), onnx.producer.clone());
    metadata.insert("onnx.opset".into(), onnx.opset.to_string());
    if onnx.nhwc {
        metadata.insert(
            "onnx.input_layout".into(),
            "NHWC (a Transpose to NCHW follows the input)".into(),
        );
    }
    if onnx.bn_folded {
        metadata.insert(
            BN_FOLDED_KEY.into(),
            "BatchNorm folded into the convolutions' bias".into(),
        );
    }
    let mut dtypes = BTreeMap::new();
    let used: std::collections::HashSet<&str> = onnx.used.iter().map(String::as_str).collect();
    for (name, t) in &onnx.tensors {
        if used.contains(name.as_str()) {
            *dtypes.entry(t.dtype()).or_insert(0) += 1;
        }
    }
    let mut applied: Vec<String> = onnx.used.clone();
    applied.sort();
    applied.dedup();
    let report = ImportReport {
        applied,
        skipped: Vec::new(),
        missing: Vec::new(),
        unused: onnx.unused.clone(),
    };
    let mut warnings = Vec::new();
    if !report.unused.is_empty() {
        warnings.push(format!(
            "{} initializer(s) no node reads, e.g. `{}`",
            report.unused.len(),
            effnet_io::escape(&report.unused[0])
        ));
    }
    let changes = metadata
        .get(crate::CHANGES_KEY)
        .map(|c| crate::decode_changes(c))
        .unwrap_or_default();
    for c in &changes {
        warnings.push(format!("written with a semantic change: {}", c.line()));
    }
    let evidence = Evidence {
        strides: true,
        residuals: true,
        activations: true,
        padding: true,
        bn_eps: !onnx.bn_folded,
        dropout: false,
        batchnorm: !onnx.bn_folded,
    };
    let tensors = onnx.tensors.len();
    Ok(Model {
        path: path.to_owned(),
        container: "onnx",
        naming,
        naming_source,
        key: None,
        other_keys: Vec::new(),
        stripped_prefix: None,
        metadata,
        tensors,
        dtypes,
        imported: Imported {
            graph,
            architecture,
            identity,
            report,
            assumptions,
        },
        evidence,
        has_architecture: true,
        warnings,
        naming_candidates: Vec::new(),
        skipped: Vec::new(),
        deviations: Vec::new(),
        changes,
        checksums: None,
    })
}

/// The architecture of a tagged graph: stem, blocks and head as the nodes have them.
pub fn architecture(graph: &Graph) -> Result<Architecture, String> {
    let conv = |role: Role| {
        graph.nodes().find_map(|(_, n)| match (&n.op, n.tag.role) {
            (Op::Conv2d(c), r) if r == role => Some(c),
            _ => None,
        })
    };
    let square = |v: [usize; 2], what: &str| {
        if v[0] == v[1] {
            Ok(v[0])
        } else {
            Err(format!("a {what} of {}×{}, not square", v[0], v[1]))
        }
    };
    let stem = conv(Role::StemConv).ok_or("no stem convolution")?;
    let head = conv(Role::HeadConv).ok_or("no head convolution")?;
    let mut blocks = Vec::new();
    for b in structure::blocks(graph, None) {
        blocks.push(BlockSpec {
            kind: b.kind,
            stage: b.stage,
            index: b.index,
            global_index: b.global_index,
            in_channels: b.input_channels,
            expanded_channels: b.expanded_channels,
            out_channels: b.output_channels,
            has_expand: b.has_expand,
            kernel: square(b.kernel, "block kernel")?,
            stride: square(b.stride, "block stride")?,
            se_channels: b.se_channels,
            residual: b.residual,
            drop_connect_rate: 0.0,
        });
    }
    let num_classes = graph.nodes().find_map(|(_, n)| match &n.op {
        Op::Dense(d) => Some(d.out_features),
        _ => None,
    });
    let resolution = graph.nodes().find_map(|(_, n)| match &n.op {
        Op::Input(i) => i.resolution.filter(|r| r[0] == r[1]).map(|r| r[0]),
        _ => None,
    });
    Ok(Architecture {
        stem_channels: stem.out_channels,
        stem_kernel: square(stem.kernel, "stem kernel")?,
        blocks,
        head_channels: head.out_channels,
        num_classes,
        resolution,
        dropout: 0.0,
        activation: body_activation(graph),
        family: None,
    })
}

/// The activation of the stem (swish when the graph has none tagged).
fn body_activation(graph: &Graph) -> effnet_ir::Activation {
    graph
        .nodes()
        .find_map(|(_, n)| match (&n.op, n.tag.role) {
            (Op::Activation(a), Role::StemAct) => Some(*a),
            _ => None,
        })
        .unwrap_or(effnet_ir::Activation::Swish)
}

/// Gives a zero bias to the SE convolutions and the classifier that have none (tf2onnx drops
/// an all-zero bias): every EfficientNet has one there, and a zero bias computes the same.
fn zero_biases(graph: &mut Graph) -> Result<usize, IrError> {
    let ids: Vec<NodeId> = graph.nodes().map(|(id, _)| id).collect();
    let mut n = 0;
    for id in ids {
        let node = graph.node_mut(id);
        match (&mut node.op, node.tag.role) {
            (Op::Conv2d(c), Role::SeReduce | Role::SeExpand) if c.bias.is_none() => {
                c.bias = Some(Tensor::from_f32(
                    vec![c.out_channels],
                    &vec![0.0; c.out_channels],
                )?);
                n += 1;
            }
            (Op::Dense(d), _) if d.bias.is_none() => {
                d.bias = Some(Tensor::from_f32(
                    vec![d.out_features],
                    &vec![0.0; d.out_features],
                )?);
                n += 1;
            }
            _ => {}
        }
    }
    Ok(n)
}

/// In a graph whose input size is fixed, the convolutions whose explicit pads are TF
/// "same"'s at that size (and not symmetric) are given `Padding::SameUpper`: at the only size
/// the graph takes they compute the same, and the model's convention is then visible (an
/// export to timm-tf or lukemelas keeps its numbers). Once one is, the strided convolutions
/// whose symmetric pads are also TF "same"'s at that size (an odd input: timm-tf's B7 at 600
/// pads its 75-pixel stride-2 convolution (1, 1)) are too: they are the same convention.
/// Returns how many.
fn tf_same_at_fixed_size(graph: &mut Graph) -> usize {
    let Ok(input) = graph.input() else { return 0 };
    let Op::Input(i) = &graph.node(input).op else {
        return 0;
    };
    if i.resolution.is_none() {
        return 0;
    }
    let Ok(shapes) = graph.infer_shapes(1, None) else {
        return 0;
    };
    let mut changed = Vec::new();
    let mut coinciding = Vec::new();
    for (id, node) in graph.nodes() {
        let Op::Conv2d(c) = &node.op else { continue };
        if !matches!(c.padding, effnet_ir::Padding::Explicit { .. }) {
            continue;
        }
        let Some(hw) = graph.inputs(id).first().and_then(|&x| shapes[x].spatial()) else {
            continue;
        };
        let pads = |p: effnet_ir::Padding| {
            p.resolve(&node.name, hw, c.kernel, c.stride, c.dilation)
                .ok()
                .map(|r| r.pads)
        };
        let own = pads(c.padding);
        if own.is_none() || own != pads(effnet_ir::Padding::SameUpper) {
            continue;
        }
        if own != pads(effnet_ir::Padding::symmetric(c.kernel, c.dilation)) {
            changed.push(id);
        } else if c.stride.iter().any(|&s| s > 1) {
            coinciding.push(id);
        }
    }
    if !changed.is_empty() {
        changed.extend(coinciding);
    }
    for &id in &changed {
        if let Op::Conv2d(c) = &mut graph.node_mut(id).op {
            c.padding = effnet_ir::Padding::SameUpper;
        }
    }
    changed.len()
}

/// The BatchNorm role that follows a convolution of `role`, if its layers have one.
fn bn_role(role: Role) -> Option<Role> {
    Some(match role {
        Role::StemConv => Role::StemBn,
        Role::ExpandConv => Role::ExpandBn,
        Role::DepthwiseConv => Role::DepthwiseBn,
        Role::ProjectConv => Role::ProjectBn,
        Role::HeadConv => Role::HeadBn,
        _ => return None,
    })
}

/// `graph` with a BatchNorm after every convolution whose layer has one in an EfficientNet,
/// for a naming scheme that stores BatchNorms: a convolution whose BatchNorm was folded in
/// (a bias, no BatchNorm) gets an exact identity BatchNorm (γ = 1, β = the bias, mean = 0,
/// var = 1 − `eps`, epsilon `eps`) and loses its bias; a convolution with both a bias and a
/// BatchNorm has its bias moved into the BatchNorm's mean (mean − bias). `None` when the graph
/// needs neither.
pub fn with_batchnorms(graph: &Graph, eps: f64) -> Result<Option<Graph>, IrError> {
    let needs = graph
        .nodes()
        .any(|(id, n)| match (&n.op, bn_role(n.tag.role)) {
            (Op::Conv2d(c), Some(_)) => {
                c.bias.is_some()
                    || !graph
                        .consumers(id)
                        .iter()
                        .any(|&c| matches!(graph.node(c).op, Op::BatchNorm(_)))
            }
            _ => false,
        });
    if !needs {
        return Ok(None);
    }
    let mut out = Graph::new();
    out.meta = graph.meta.clone();
    // Where each node's output is in the new graph.
    let mut map: Vec<NodeId> = Vec::with_capacity(graph.len());
    let mut pending_bias: std::collections::HashMap<NodeId, Tensor> = Default::default();
    for (id, node) in graph.nodes() {
        let inputs: Vec<NodeId> = graph.inputs(id).iter().map(|i| map[i.index()]).collect();
        let mut node = node.clone();
        match (&mut node.op, bn_role(node.tag.role)) {
            (Op::Conv2d(c), Some(bn)) => {
                let has_bn = graph
                    .consumers(id)
                    .iter()
                    .any(|&k| matches!(graph.node(k).op, Op::BatchNorm(_)));
                let bias = c.bias.take();
                let channels = c.out_channels;
                let conv = out.add(node.clone(), &inputs)?;
                if has_bn {
                    if let Some(b) = bias {
                        pending_bias.insert(id, b);
                    }
                    map.push(conv);
                } else {
                    let beta = match bias {
                        Some(b) => Tensor::from_f32(vec![channels], &b.to_f32_vec()?)?,
                        None => Tensor::from_f32(vec![channels], &vec![0.0; channels])?,
                    };
                    let bn_node = Node {
                        name: format!("{}.bn", node.name),
                        tag: Tag {
                            role: bn,
                            ..node.tag
                        },
                        op: Op::BatchNorm(BatchNorm {
                            channels,
                            eps,
                            momentum: None,
                            gamma: Some(Tensor::from_f32(vec![channels], &vec![1.0; channels])?),
                            beta: Some(beta),
                            mean: Tensor::from_f32(vec![channels], &vec![0.0; channels])?,
                            var: Tensor::from_f32(
                                vec![channels],
                                &vec![(1.0 - eps) as f32; channels],
                            )?,
                        }),
                    };
                    map.push(out.add(bn_node, &[conv])?);
                }
            }
            (Op::BatchNorm(bn), _) => {
                let source = graph.inputs(id)[0];
                if let Some(bias) = pending_bias.remove(&source) {
                    let bias = bias.to_f32_vec()?;
                    let mean: Vec<f32> = bn
                        .mean
                        .to_f32_vec()?
                        .iter()
                        .zip(&bias)
                        .map(|(m, b)| (f64::from(*m) - f64::from(*b)) as f32)
                        .collect();
                    bn.mean = Tensor::from_f32(vec![bn.channels], &mean)?;
                }
                map.push(out.add(node, &inputs)?);
            }
            _ => map.push(out.add(node, &inputs)?),
        }
    }
    out.set_outputs(graph.outputs().iter().map(|o| map[o.index()]).collect());
    Ok(Some(out))
}
