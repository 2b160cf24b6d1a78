//! A graph as the Keras functional model `keras.applications` builds, layer by layer: the same
//! layer names, classes and order, so a `.weights.h5` loads into
//! `keras.applications.EfficientNetBx(weights=None)` and a `.keras` config reads as Keras
//! writes it. Weights move to TensorFlow's layout (conv `[kh, kw, in, out]`, depthwise
//! `[kh, kw, C, 1]`, dense `[in, out]`).

use effnet_ir::structure::{self, BlockInfo};
use effnet_ir::{Activation, BatchNorm, BlockKind, Conv2d, Graph, NodeId, Op, Role, Stage, Tensor};

/// The largest input side a Keras model is written for (as `--resolution` accepts).
const MAX_SIDE: usize = 65536;

/// Why a graph has no Keras form.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The graph has a layer `keras.applications`' EfficientNet does not.
    #[error("{0}")]
    Unsupported(String),
    /// Moving a BatchNorm to Keras' epsilon would make a variance negative.
    #[error(
        "moving BatchNorm `{name}` from eps {from:e} to {to:e} makes a variance negative ({min})"
    )]
    NegativeVariance {
        /// The BatchNorm.
        name: String,
        /// Source epsilon.
        from: f64,
        /// Target epsilon.
        to: f64,
        /// The most negative value.
        min: f32,
    },
    /// A tensor could not be moved to TensorFlow's layout.
    #[error("`{name}`: {reason}")]
    Tensor {
        /// The node.
        name: String,
        /// Why.
        reason: effnet_ir::IrError,
    },
}

/// What the graph does not say and the Keras model needs.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The model's name (`efficientnetb0`).
    pub name: String,
    /// The input's height and width: Keras pads stride-2 convolutions for a fixed size.
    pub resolution: [usize; 2],
    /// The preprocessing layers at the input.
    pub preprocessing: InputPreprocessing,
    /// Build EfficientNetV2's layers (`keras.applications.efficientnet_v2`): "same" padding
    /// everywhere, `dwconv2`, Fused-MBConv blocks, BatchNorm momentum 0.9.
    pub v2: bool,
    /// The BatchNorm epsilon of the written layers; variances are moved to it exactly.
    pub bn_eps: f64,
    /// The classifier's dropout rate when the graph has none.
    pub head_dropout: f64,
}

/// The preprocessing layers a Keras EfficientNet starts with.
#[derive(Clone, Debug)]
pub enum InputPreprocessing {
    /// `Rescaling(1/255)` then a `Normalization` holding these variables (mean, variance,
    /// count), as EfficientNet B0–B7 has them.
    Adapted([Tensor; 3]),
    /// `Rescaling(1/255)` then `Normalization(mean, variance)` with the values in the config,
    /// as EfficientNetV2-B0–B3 has it.
    Constant {
        /// Per-channel mean.
        mean: Vec<f64>,
        /// Per-channel variance.
        variance: Vec<f64>,
    },
    /// `Rescaling(1/128, offset −1)`, as EfficientNetV2-S/M/L has it.
    Signed,
}

/// A Keras layer class with the attributes effnet writes.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum LayerKind {
    Input,
    Rescaling {
        scale: f64,
        offset: f64,
    },
    Normalization {
        /// `(mean, variance)` in the config (no variables); `None`: adapted variables.
        constants: Option<(Vec<f64>, Vec<f64>)>,
    },
    ZeroPadding2D {
        /// `[[top, bottom], [left, right]]`.
        padding: [[usize; 2]; 2],
    },
    Conv2D {
        filters: usize,
        kernel: [usize; 2],
        strides: [usize; 2],
        /// `same` (else `valid`).
        same: bool,
        use_bias: bool,
        activation: &'static str,
    },
    DepthwiseConv2D {
        kernel: [usize; 2],
        strides: [usize; 2],
        same: bool,
    },
    BatchNormalization {
        epsilon: f64,
        momentum: f64,
    },
    Activation(&'static str),
    GlobalAveragePooling2D,
    Reshape {
        target: [usize; 3],
    },
    Multiply,
    Add,
    Dropout {
        rate: f64,
        /// Drop whole samples (`noise_shape=(None, 1, 1, 1)`): drop-connect.
        per_sample: bool,
    },
    Dense {
        units: usize,
        activation: &'static str,
    },
}

impl LayerKind {
    /// The Keras class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            LayerKind::Input => "InputLayer",
            LayerKind::Rescaling { .. } => "Rescaling",
            LayerKind::Normalization { .. } => "Normalization",
            LayerKind::ZeroPadding2D { .. } => "ZeroPadding2D",
            LayerKind::Conv2D { .. } => "Conv2D",
            LayerKind::DepthwiseConv2D { .. } => "DepthwiseConv2D",
            LayerKind::BatchNormalization { .. } => "BatchNormalization",
            LayerKind::Activation(_) => "Activation",
            LayerKind::GlobalAveragePooling2D => "GlobalAveragePooling2D",
            LayerKind::Reshape { .. } => "Reshape",
            LayerKind::Multiply => "Multiply",
            LayerKind::Add => "Add",
            LayerKind::Dropout { .. } => "Dropout",
            LayerKind::Dense { .. } => "Dense",
        }
    }

    /// The snake-cased class Keras 3 names weight groups after (`layers/conv2d_3`).
    pub fn snake_name(&self) -> &'static str {
        match self {
            LayerKind::Input => "input_layer",
            LayerKind::Rescaling { .. } => "rescaling",
            LayerKind::Normalization { .. } => "normalization",
            LayerKind::ZeroPadding2D { .. } => "zero_padding2d",
            LayerKind::Conv2D { .. } => "conv2d",
            LayerKind::DepthwiseConv2D { .. } => "depthwise_conv2d",
            LayerKind::BatchNormalization { .. } => "batch_normalization",
            LayerKind::Activation(_) => "activation",
            LayerKind::GlobalAveragePooling2D => "global_average_pooling2d",
            LayerKind::Reshape { .. } => "reshape",
            LayerKind::Multiply => "multiply",
            LayerKind::Add => "add",
            LayerKind::Dropout { .. } => "dropout",
            LayerKind::Dense { .. } => "dense",
        }
    }
}

/// A layer variable, in the layer's order.
#[derive(Clone, Debug)]
pub struct Variable {
    /// The tf-keras weight name without the layer (`kernel:0`, `depthwise_kernel:0`).
    pub legacy_name: &'static str,
    /// The values, in TensorFlow's layout.
    pub tensor: Tensor,
}

/// One layer of the functional model.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The layer's name (`block2a_dwconv`).
    pub name: String,
    /// Class and attributes.
    pub kind: LayerKind,
    /// The layers whose outputs it takes, by index.
    pub inputs: Vec<usize>,
    /// Its output shape without the batch axis: `[h, w, c]` or `[c]`.
    pub output: Vec<usize>,
    /// Its variables.
    pub variables: Vec<Variable>,
}

/// A functional model: layers in creation order (inputs before the layers using them).
#[derive(Clone, Debug)]
pub struct KerasModel {
    /// The model's name.
    pub name: String,
    /// The layers.
    pub layers: Vec<Layer>,
    /// BatchNorm layers whose epsilon was moved, as `(from, to, layers)`.
    pub eps_moved: Vec<(f64, f64, usize)>,
}

/// Keras' name for an activation.
fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Swish => "silu",
        Activation::Sigmoid => "sigmoid",
        Activation::Relu => "relu",
        Activation::Relu6 => "relu6",
        Activation::Softmax => "softmax",
    }
}

/// `keras.applications`' `correct_pad`: TF "same" padding of a stride-2 `kernel` at `size`.
fn correct_pad(size: [usize; 2], kernel: [usize; 2]) -> [[usize; 2]; 2] {
    let pad = |s: usize, k: usize| {
        let adjust = 1 - s % 2;
        [(k / 2).saturating_sub(adjust), k / 2]
    };
    [pad(size[0], kernel[0]), pad(size[1], kernel[1])]
}

struct Builder<'g> {
    graph: &'g Graph,
    layers: Vec<Layer>,
    eps_moved: Vec<(f64, f64, usize)>,
    bn_eps: f64,
    bn_momentum: f64,
    /// Stride-2 convolutions through a `ZeroPadding2D` (EfficientNet) or "same" (V2).
    zero_pad: bool,
}

fn unsupported(message: String) -> BuildError {
    BuildError::Unsupported(message)
}

impl<'g> Builder<'g> {
    fn push(
        &mut self,
        name: String,
        kind: LayerKind,
        inputs: Vec<usize>,
        output: Vec<usize>,
    ) -> usize {
        self.layers.push(Layer {
            name,
            kind,
            inputs,
            output,
            variables: Vec::new(),
        });
        self.layers.len() - 1
    }

    fn hwc(&self, layer: usize) -> [usize; 3] {
        match self.layers[layer].output.as_slice() {
            &[h, w, c] => [h, w, c],
            _ => [1, 1, 0],
        }
    }

    fn variable(&mut self, layer: usize, legacy_name: &'static str, tensor: Tensor) {
        self.layers[layer].variables.push(Variable {
            legacy_name,
            tensor,
        });
    }

    fn permuted(
        &self,
        node: NodeId,
        tensor: &Tensor,
        perm: &[usize],
    ) -> Result<Tensor, BuildError> {
        tensor.permuted(perm).map_err(|reason| BuildError::Tensor {
            name: self.graph.node(node).name.clone(),
            reason,
        })
    }

    /// A convolution (through a `ZeroPadding2D` when it has stride 2) after `input`.
    fn conv(
        &mut self,
        name: &str,
        node: NodeId,
        input: usize,
        activation: &'static str,
    ) -> Result<usize, BuildError> {
        let Op::Conv2d(c) = &self.graph.node(node).op else {
            return Err(unsupported(format!(
                "`{}` is not a convolution",
                self.graph.node(node).name
            )));
        };
        let c: &Conv2d = c;
        if c.dilation != [1, 1] {
            return Err(unsupported(format!(
                "`{}` is dilated; keras.applications' EfficientNet has no dilated convolution",
                self.graph.node(node).name
            )));
        }
        if c.kernel.iter().any(|k| k % 2 == 0) {
            return Err(unsupported(format!(
                "`{}` has an even kernel; Keras' \"same\" padding would not match it",
                self.graph.node(node).name
            )));
        }
        if c.stride != [1, 1] && c.stride != [2, 2] {
            return Err(unsupported(format!(
                "`{}` has stride {}×{}; keras.applications' EfficientNets have strides 1 and 2",
                self.graph.node(node).name,
                c.stride[0],
                c.stride[1]
            )));
        }
        let [h, w, _] = self.hwc(input);
        let strided = c.stride != [1, 1] && self.zero_pad;
        let mut from = input;
        let (h, w) = if strided {
            let padding = correct_pad([h, w], c.kernel);
            let (ph, pw) = (
                h + padding[0][0] + padding[0][1],
                w + padding[1][0] + padding[1][1],
            );
            let channels = self.hwc(input)[2];
            from = self.push(
                format!("{name}_pad"),
                LayerKind::ZeroPadding2D { padding },
                vec![input],
                vec![ph, pw, channels],
            );
            (
                (ph - c.kernel[0]) / c.stride[0] + 1,
                (pw - c.kernel[1]) / c.stride[1] + 1,
            )
        } else {
            (h.div_ceil(c.stride[0]), w.div_ceil(c.stride[1]))
        };
        let depthwise = c.is_depthwise();
        let kind = if depthwise {
            if c.bias.is_some() {
                return Err(unsupported(format!(
                    "`{}` has a bias; keras.applications' depthwise convolutions have none",
                    self.graph.node(node).name
                )));
            }
            LayerKind::DepthwiseConv2D {
                kernel: c.kernel,
                strides: c.stride,
                same: !strided,
            }
        } else if c.groups == 1 {
            LayerKind::Conv2D {
                filters: c.out_channels,
                kernel: c.kernel,
                strides: c.stride,
                same: !strided,
                use_bias: c.bias.is_some(),
                activation,
            }
        } else {
            return Err(unsupported(format!(
                "`{}` is a grouped convolution; Keras' EfficientNet has none",
                self.graph.node(node).name
            )));
        };
        let layer = self.push(
            name.to_owned(),
            kind,
            vec![from],
            vec![h, w, c.out_channels],
        );
        let (perm, legacy): (&[usize], _) = if depthwise {
            (&[2, 3, 0, 1], "depthwise_kernel:0")
        } else {
            (&[2, 3, 1, 0], "kernel:0")
        };
        let kernel = self.permuted(node, &c.weight, perm)?;
        self.variable(layer, legacy, kernel);
        if let Some(bias) = &c.bias {
            self.variable(layer, "bias:0", bias.clone());
        }
        Ok(layer)
    }

    fn batchnorm(&mut self, name: &str, node: NodeId, input: usize) -> Result<usize, BuildError> {
        let n = self.graph.node(node);
        let Op::BatchNorm(bn) = &n.op else {
            return Err(unsupported(format!("`{}` is not a BatchNorm", n.name)));
        };
        let bn: &BatchNorm = bn;
        let (Some(gamma), Some(beta)) = (&bn.gamma, &bn.beta) else {
            return Err(unsupported(format!(
                "`{}` has no scale or shift; keras.applications' BatchNorms have both",
                n.name
            )));
        };
        let output = self.layers[input].output.clone();
        let layer = self.push(
            name.to_owned(),
            LayerKind::BatchNormalization {
                epsilon: self.bn_eps,
                momentum: self.bn_momentum,
            },
            vec![input],
            output,
        );
        let var =
            if bn.eps == self.bn_eps {
                bn.var.clone()
            } else {
                match self
                    .eps_moved
                    .iter_mut()
                    .find(|(f, t, _)| *f == bn.eps && *t == self.bn_eps)
                {
                    Some((_, _, count)) => *count += 1,
                    None => self.eps_moved.push((bn.eps, self.bn_eps, 1)),
                }
                let (moved, min) = effnet_ir::moved_variance(&bn.var, bn.eps, self.bn_eps)
                    .map_err(|reason| BuildError::Tensor {
                        name: n.name.clone(),
                        reason,
                    })?;
                if min < 0.0 {
                    return Err(BuildError::NegativeVariance {
                        name: n.name.clone(),
                        from: bn.eps,
                        to: self.bn_eps,
                        min,
                    });
                }
                moved
            };
        self.variable(layer, "gamma:0", gamma.clone());
        self.variable(layer, "beta:0", beta.clone());
        self.variable(layer, "moving_mean:0", bn.mean.clone());
        self.variable(layer, "moving_variance:0", var);
        Ok(layer)
    }

    fn activation(&mut self, name: &str, node: NodeId, input: usize) -> Result<usize, BuildError> {
        let n = self.graph.node(node);
        let Op::Activation(a) = n.op else {
            return Err(unsupported(format!("`{}` is not an activation", n.name)));
        };
        let output = self.layers[input].output.clone();
        Ok(self.push(
            name.to_owned(),
            LayerKind::Activation(activation_name(a)),
            vec![input],
            output,
        ))
    }
}

/// The node of `role` in `nodes`.
fn find(graph: &Graph, nodes: &[NodeId], role: Role) -> Option<NodeId> {
    nodes
        .iter()
        .copied()
        .find(|&n| graph.node(n).tag.role == role)
}

/// The activation applied by the node of `role`, as Keras names it.
fn activation_of(graph: &Graph, nodes: &[NodeId], role: Role) -> Option<Activation> {
    find(graph, nodes, role).and_then(|n| match graph.node(n).op {
        Op::Activation(a) => Some(a),
        _ => None,
    })
}

fn required(graph: &Graph, nodes: &[NodeId], role: Role, what: &str) -> Result<NodeId, BuildError> {
    find(graph, nodes, role).ok_or_else(|| unsupported(format!("the model has no {what}")))
}

/// The Keras functional model of `graph`, as `keras.applications` builds EfficientNet B0–B7
/// (MBConv blocks with squeeze-excitation). Other block kinds are refused with the reason.
pub fn build(graph: &Graph, options: &BuildOptions) -> Result<KerasModel, BuildError> {
    let all: Vec<NodeId> = graph.nodes().map(|(id, _)| id).collect();
    let in_stage = |stage: Stage| -> Vec<NodeId> {
        all.iter()
            .copied()
            .filter(|&n| graph.node(n).tag.stage == stage && graph.node(n).tag.block.is_none())
            .collect()
    };
    let stem = in_stage(Stage::Stem);
    let head = in_stage(Stage::Head);
    let blocks = structure::blocks(graph, None);
    for b in &blocks {
        check_block(graph, b, options.v2)?;
    }
    let stem_conv = required(graph, &stem, Role::StemConv, "stem convolution")?;
    let channels = match &graph.node(stem_conv).op {
        Op::Conv2d(c) => c.in_channels,
        _ => 3,
    };
    let mut builder = Builder {
        graph,
        layers: Vec::new(),
        eps_moved: Vec::new(),
        bn_eps: options.bn_eps,
        bn_momentum: if options.v2 { 0.9 } else { 0.99 },
        zero_pad: !options.v2,
    };
    let [h, w] = options.resolution;
    // (A size read from a file: bounded as `--resolution` is, so that the padding arithmetic
    // cannot overflow.)
    if !(1..=MAX_SIDE).contains(&h) || !(1..=MAX_SIDE).contains(&w) {
        return Err(unsupported(format!(
            "an input of {h}×{w}: Keras files are written for sides of 1 to {MAX_SIDE}"
        )));
    }
    let shape = vec![h, w, channels];
    let input = builder.push(
        "input_layer".into(),
        LayerKind::Input,
        vec![],
        shape.clone(),
    );
    let (scale, offset) = match options.preprocessing {
        InputPreprocessing::Signed => (1.0 / 128.0, -1.0),
        _ => (1.0 / 255.0, 0.0),
    };
    let rescaling = builder.push(
        "rescaling".into(),
        LayerKind::Rescaling { scale, offset },
        vec![input],
        shape.clone(),
    );
    let preprocessed = match &options.preprocessing {
        InputPreprocessing::Signed => rescaling,
        InputPreprocessing::Constant { mean, variance } => builder.push(
            "normalization".into(),
            LayerKind::Normalization {
                constants: Some((mean.clone(), variance.clone())),
            },
            vec![rescaling],
            shape,
        ),
        InputPreprocessing::Adapted([mean, variance, count]) => {
            let normalization = builder.push(
                "normalization".into(),
                LayerKind::Normalization { constants: None },
                vec![rescaling],
                shape,
            );
            builder.variable(normalization, "mean:0", mean.clone());
            builder.variable(normalization, "variance:0", variance.clone());
            builder.variable(normalization, "count:0", count.clone());
            normalization
        }
    };

    let mut x = builder.conv("stem_conv", stem_conv, preprocessed, "linear")?;
    x = builder.batchnorm(
        "stem_bn",
        required(graph, &stem, Role::StemBn, "stem BatchNorm")?,
        x,
    )?;
    x = builder.activation(
        "stem_activation",
        required(graph, &stem, Role::StemAct, "stem activation")?,
        x,
    )?;
    let first_stage = blocks.first().map_or(2, |b| b.stage);
    for b in &blocks {
        x = block(&mut builder, b, x, first_stage, blocks.len(), options.v2)?;
    }
    x = builder.conv(
        "top_conv",
        required(graph, &head, Role::HeadConv, "head convolution")?,
        x,
        "linear",
    )?;
    x = builder.batchnorm(
        "top_bn",
        required(graph, &head, Role::HeadBn, "head BatchNorm")?,
        x,
    )?;
    x = builder.activation(
        "top_activation",
        required(graph, &head, Role::HeadAct, "head activation")?,
        x,
    )?;
    let c = builder.hwc(x)[2];
    x = builder.push(
        "avg_pool".into(),
        LayerKind::GlobalAveragePooling2D,
        vec![x],
        vec![c],
    );
    // A model without a classifier (`include_top=False, pooling="avg"`) ends at the pooling.
    let Some(classifier) = find(graph, &head, Role::Classifier) else {
        return Ok(KerasModel {
            name: options.name.clone(),
            layers: builder.layers,
            eps_moved: builder.eps_moved,
        });
    };
    let dropout = find(graph, &head, Role::HeadDropout)
        .and_then(|n| match graph.node(n).op {
            Op::Dropout { rate } => Some(rate),
            _ => None,
        })
        .unwrap_or(options.head_dropout);
    if dropout > 0.0 {
        x = builder.push(
            "top_dropout".into(),
            LayerKind::Dropout {
                rate: dropout,
                per_sample: false,
            },
            vec![x],
            vec![c],
        );
    }
    let Op::Dense(dense) = &graph.node(classifier).op else {
        return Err(unsupported("the classifier is not a dense layer".into()));
    };
    let activation =
        activation_of(graph, &head, Role::ClassifierAct).map_or("linear", activation_name);
    let predictions = builder.push(
        "predictions".into(),
        LayerKind::Dense {
            units: dense.out_features,
            activation,
        },
        vec![x],
        vec![dense.out_features],
    );
    let kernel = builder.permuted(classifier, &dense.weight, &[1, 0])?;
    builder.variable(predictions, "kernel:0", kernel);
    let bias = match &dense.bias {
        Some(b) => b.clone(),
        None => {
            return Err(unsupported(
                "the classifier has no bias; keras.applications' has one".into(),
            ));
        }
    };
    builder.variable(predictions, "bias:0", bias);
    Ok(KerasModel {
        name: options.name.clone(),
        layers: builder.layers,
        eps_moved: builder.eps_moved,
    })
}

/// Whether every block of `graph` is one `keras.applications`' EfficientNet (MBConv with
/// squeeze-excitation) or, with `v2`, EfficientNetV2 (also Fused-MBConv) builds; the reason
/// when not.
pub fn check_blocks(graph: &Graph, v2: bool) -> Result<(), BuildError> {
    structure::blocks(graph, None)
        .iter()
        .try_for_each(|b| check_block(graph, b, v2))
}

/// Refuses a block `keras.applications`' EfficientNet (or, with `v2`, EfficientNetV2) cannot
/// express.
fn check_block(graph: &Graph, b: &BlockInfo, v2: bool) -> Result<(), BuildError> {
    let label = format!("stage {} block {}", b.stage, b.index + 1);
    let fused = b.kind == BlockKind::FusedMBConv;
    if fused && !v2 {
        return Err(unsupported(format!(
            "{label} is a Fused-MBConv block, which keras.applications' EfficientNet B0–B7 does not have"
        )));
    }
    if !fused && b.se_channels.is_none() && !v2 {
        return Err(unsupported(format!(
            "{label} has no squeeze-excitation: keras.applications' EfficientNet has it in every block (EfficientNet-Lite is not in Keras)"
        )));
    }
    let project_act = find(graph, &b.nodes, Role::ProjectAct).is_some();
    if project_act != (fused && !b.has_expand) {
        return Err(unsupported(format!(
            "{label} {} an activation after its projection; keras.applications' {} block {}",
            if project_act { "has" } else { "has no" },
            if fused { "Fused-MBConv" } else { "MBConv" },
            if project_act { "has none" } else { "has one" },
        )));
    }
    Ok(())
}

fn block(
    builder: &mut Builder<'_>,
    b: &BlockInfo,
    input: usize,
    first_stage: u8,
    total: usize,
    v2: bool,
) -> Result<usize, BuildError> {
    let graph = builder.graph;
    let nodes = &b.nodes;
    // `chr(j + 97)` as keras.applications names them, past `z` too (`{`, `|`, … in V2-L/XL).
    let letter = char::from_u32(u32::from('a') + u32::from(b.index)).unwrap_or('?');
    let prefix = format!("block{}{letter}_", b.stage - first_stage + 1);
    let named = |what: &str| format!("{prefix}{what}");
    let mut x = input;
    if b.has_expand {
        x = builder.conv(
            &named("expand_conv"),
            required(graph, nodes, Role::ExpandConv, "expansion")?,
            x,
            "linear",
        )?;
        x = builder.batchnorm(
            &named("expand_bn"),
            required(graph, nodes, Role::ExpandBn, "expansion BatchNorm")?,
            x,
        )?;
        x = builder.activation(
            &named("expand_activation"),
            required(graph, nodes, Role::ExpandAct, "expansion activation")?,
            x,
        )?;
    }
    if b.kind == BlockKind::MBConv {
        x = builder.conv(
            &named(if v2 { "dwconv2" } else { "dwconv" }),
            required(graph, nodes, Role::DepthwiseConv, "depthwise convolution")?,
            x,
            "linear",
        )?;
        x = builder.batchnorm(
            &named("bn"),
            required(graph, nodes, Role::DepthwiseBn, "depthwise BatchNorm")?,
            x,
        )?;
        x = builder.activation(
            &named("activation"),
            required(graph, nodes, Role::DepthwiseAct, "depthwise activation")?,
            x,
        )?;
    }
    if b.se_channels.is_some() {
        x = squeeze_excitation(builder, b, x, &named)?;
    }
    x = builder.conv(
        &named("project_conv"),
        required(graph, nodes, Role::ProjectConv, "projection")?,
        x,
        "linear",
    )?;
    x = builder.batchnorm(
        &named("project_bn"),
        required(graph, nodes, Role::ProjectBn, "projection BatchNorm")?,
        x,
    )?;
    if let Some(act) = find(graph, nodes, Role::ProjectAct) {
        x = builder.activation(&named("project_activation"), act, x)?;
    }
    if b.residual {
        let rate = b
            .drop_connect_rate
            .unwrap_or(0.2 * b.global_index as f64 / total.max(1) as f64);
        let output = builder.layers[x].output.clone();
        if rate > 0.0 {
            x = builder.push(
                named("drop"),
                LayerKind::Dropout {
                    rate,
                    per_sample: true,
                },
                vec![x],
                output.clone(),
            );
        }
        x = builder.push(named("add"), LayerKind::Add, vec![x, input], output);
    }
    Ok(x)
}

/// A block's squeeze-excitation layers after `x`; returns the `se_excite` product.
fn squeeze_excitation(
    builder: &mut Builder<'_>,
    b: &BlockInfo,
    x: usize,
    named: &dyn Fn(&str) -> String,
) -> Result<usize, BuildError> {
    let graph = builder.graph;
    let nodes = &b.nodes;
    let label = || format!("stage {} block {}", b.stage, b.index + 1);
    let c = builder.hwc(x)[2];
    let squeeze = builder.push(
        named("se_squeeze"),
        LayerKind::GlobalAveragePooling2D,
        vec![x],
        vec![c],
    );
    let reshape = builder.push(
        named("se_reshape"),
        LayerKind::Reshape { target: [1, 1, c] },
        vec![squeeze],
        vec![1, 1, c],
    );
    let reduce_act = activation_of(graph, nodes, Role::SeReduceAct)
        .ok_or_else(|| unsupported(format!("{}: no SE activation", label())))?;
    if activation_of(graph, nodes, Role::SeGate) != Some(Activation::Sigmoid) {
        return Err(unsupported(format!(
            "{}: the SE gate is not a sigmoid",
            label()
        )));
    }
    let reduce = builder.conv(
        &named("se_reduce"),
        required(graph, nodes, Role::SeReduce, "SE reduction")?,
        reshape,
        activation_name(reduce_act),
    )?;
    let expand = builder.conv(
        &named("se_expand"),
        required(graph, nodes, Role::SeExpand, "SE expansion")?,
        reduce,
        "sigmoid",
    )?;
    let output = builder.layers[x].output.clone();
    Ok(builder.push(
        named("se_excite"),
        LayerKind::Multiply,
        vec![x, expand],
        output,
    ))
}

#[cfg(test)]
mod tests {
    use super::correct_pad;

    #[test]
    fn correct_pad_is_tf_same() {
        assert_eq!(correct_pad([224, 224], [3, 3]), [[0, 1], [0, 1]]);
        assert_eq!(correct_pad([225, 224], [5, 5]), [[2, 2], [1, 2]]);
    }
}
