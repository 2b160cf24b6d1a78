use crate::{Padding, Tensor};

/// The graph input: an image batch, NCHW in the IR whatever layout the source used.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// Image channels (3 for every EfficientNet).
    pub channels: usize,
    /// The resolution the source was built or trained for, when it records one.
    pub resolution: Option<[usize; 2]>,
}

/// `y = x · scale + offset` per channel, or for all channels when a vector holds one value
/// (Keras `Rescaling`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rescale {
    /// One value, or one per channel.
    pub scale: Vec<f64>,
    /// One value, or one per channel.
    pub offset: Vec<f64>,
}

/// `y = (x − mean) / max(sqrt(variance), std_floor)` per channel (Keras `Normalization`).
///
/// `variance` is what the source stored. The Keras EfficientNet weights stored the ImageNet
/// *standard deviation* there (the Keras applications weights); that quirk stays visible in the values rather than
/// being fixed up here.
#[derive(Clone, Debug)]
pub struct Normalize {
    /// Channels normalized.
    pub channels: usize,
    /// Per-channel mean, shape `[channels]`.
    pub mean: Tensor,
    /// Per-channel variance, shape `[channels]`.
    pub variance: Tensor,
    /// Keras' sample count (a scalar), when the source has one.
    pub count: Option<Tensor>,
    /// Lower bound applied to `sqrt(variance)` (Keras: `backend.epsilon()`, 1e-7).
    pub std_floor: f64,
}

/// A 2-D convolution. Weight layout `[out, in / groups, kH, kW]`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
    /// Groups: 1 for a dense conv, `in_channels` for a depthwise one.
    pub groups: usize,
    /// How the input is padded.
    pub padding: Padding,
    /// Weight, `[out, in / groups, kH, kW]`.
    pub weight: Tensor,
    /// Bias, `[out]`.
    pub bias: Option<Tensor>,
}

impl Conv2d {
    /// Whether every input channel has its own filter (groups = in = out).
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_channels && self.groups == self.out_channels
    }

    /// The weight shape the attributes imply.
    pub fn expected_weight_shape(&self) -> Vec<usize> {
        vec![
            self.out_channels,
            self.in_channels / self.groups.max(1),
            self.kernel[0],
            self.kernel[1],
        ]
    }
}

/// Inference-mode batch normalization:
/// `y = (x − mean) / sqrt(var + eps) · gamma + beta`.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// Channels normalized.
    pub channels: usize,
    /// Epsilon exactly as the source had it (Keras/TF 1e-3, PyTorch default 1e-5).
    pub eps: f64,
    /// Momentum in the source's convention, when known (training only).
    pub momentum: Option<f64>,
    /// Scale γ, `[channels]`; `None` when the source has `scale=False`.
    pub gamma: Option<Tensor>,
    /// Shift β, `[channels]`; `None` when the source has `center=False`.
    pub beta: Option<Tensor>,
    /// Running mean, `[channels]`.
    pub mean: Tensor,
    /// Running variance, `[channels]`.
    pub var: Tensor,
}

/// A fully connected layer. Weight layout `[out, in]`.
#[derive(Clone, Debug)]
pub struct Dense {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Weight, `[out, in]`.
    pub weight: Tensor,
    /// Bias, `[out]`.
    pub bias: Option<Tensor>,
}

/// Element-wise activations (softmax: over the channel axis).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `x · sigmoid(x)` (SiLU).
    Swish,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// Softmax over channels.
    Softmax,
}

impl Activation {
    /// Lower-case name (`swish`, `sigmoid`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Activation::Swish => "swish",
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::Softmax => "softmax",
        }
    }
}

/// One operation of the graph.
#[derive(Clone, Debug)]
pub enum Op {
    /// The image input.
    Input(Input),
    /// Scale and shift.
    Rescale(Rescale),
    /// Mean/variance normalization.
    Normalize(Normalize),
    /// Convolution.
    Conv2d(Conv2d),
    /// Batch normalization.
    BatchNorm(BatchNorm),
    /// Element-wise activation.
    Activation(Activation),
    /// Mean over height and width; `keep_dims` keeps a `C×1×1` map, otherwise a vector.
    GlobalAvgPool {
        /// Whether the output stays a `C×1×1` map.
        keep_dims: bool,
    },
    /// Element-wise product; a `C×1×1` operand broadcasts over a `C×H×W` one.
    Mul,
    /// Element-wise sum of two equal shapes.
    Add,
    /// Fully connected layer.
    Dense(Dense),
    /// Dropout (identity at inference).
    Dropout {
        /// Drop probability during training.
        rate: f64,
    },
    /// Stochastic depth / drop-connect on a residual branch (identity at inference).
    StochasticDepth {
        /// Drop probability during training.
        rate: f64,
    },
    /// Flatten a map to a vector (`C×H×W` → `C·H·W`).
    Flatten,
}

/// A parameter of an op, with the name its role has across frameworks.
#[derive(Clone, Copy, Debug)]
pub struct ParamRef<'a> {
    /// `weight`, `bias`, `gamma`, `beta`, `running_mean`, `running_var`, `mean`, `variance`
    /// or `count`.
    pub name: &'static str,
    /// The tensor.
    pub tensor: &'a Tensor,
    /// Whether training updates it by gradient (BatchNorm statistics and normalization
    /// constants are not trainable).
    pub trainable: bool,
}

impl Op {
    /// The op's kind, as reports print it.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input(_) => "Input",
            Op::Rescale(_) => "Rescale",
            Op::Normalize(_) => "Normalize",
            Op::Conv2d(c) if c.is_depthwise() => "DepthwiseConv2d",
            Op::Conv2d(_) => "Conv2d",
            Op::BatchNorm(_) => "BatchNorm",
            Op::Activation(Activation::Swish) => "Swish",
            Op::Activation(Activation::Sigmoid) => "Sigmoid",
            Op::Activation(Activation::Relu) => "Relu",
            Op::Activation(Activation::Relu6) => "Relu6",
            Op::Activation(Activation::Softmax) => "Softmax",
            Op::GlobalAvgPool { .. } => "GlobalAvgPool",
            Op::Mul => "Mul",
            Op::Add => "Add",
            Op::Dense(_) => "Dense",
            Op::Dropout { .. } => "Dropout",
            Op::StochasticDepth { .. } => "StochasticDepth",
            Op::Flatten => "Flatten",
        }
    }

    /// How many inputs the op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Input(_) => 0,
            Op::Mul | Op::Add => 2,
            _ => 1,
        }
    }

    /// Whether the op is the identity at inference time or only reinterprets its input
    /// (no new tensor is computed).
    pub fn is_inference_alias(&self) -> bool {
        matches!(
            self,
            Op::Dropout { .. } | Op::StochasticDepth { .. } | Op::Flatten
        )
    }

    /// The op's parameters, in the order PyTorch lists them.
    pub fn params(&self) -> Vec<ParamRef<'_>> {
        let p = |name, tensor, trainable| ParamRef {
            name,
            tensor,
            trainable,
        };
        let mut out = Vec::new();
        match self {
            Op::Conv2d(c) => {
                out.push(p("weight", &c.weight, true));
                if let Some(b) = &c.bias {
                    out.push(p("bias", b, true));
                }
            }
            Op::Dense(d) => {
                out.push(p("weight", &d.weight, true));
                if let Some(b) = &d.bias {
                    out.push(p("bias", b, true));
                }
            }
            Op::BatchNorm(bn) => {
                if let Some(g) = &bn.gamma {
                    out.push(p("gamma", g, true));
                }
                if let Some(b) = &bn.beta {
                    out.push(p("beta", b, true));
                }
                out.push(p("running_mean", &bn.mean, false));
                out.push(p("running_var", &bn.var, false));
            }
            Op::Normalize(n) => {
                out.push(p("mean", &n.mean, false));
                out.push(p("variance", &n.variance, false));
                if let Some(c) = &n.count {
                    out.push(p("count", c, false));
                }
            }
            _ => {}
        }
        out
    }
}
