use serde::Serialize;

/// Where the model came from, as the `model` object of `effnet.cost/1`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelInfo {
    /// The name titles show: `EfficientNet-B0`, `EfficientNetV2-S`, `EfficientNet-Lite
    /// w=0.5 d=0.5`.
    pub title: String,
    /// `b0` … `l2`, `lite0` …, `v2-s` … when the model is a standard variant.
    pub variant: Option<String>,
    /// `efficientnet`, `efficientnet-lite` or `efficientnet-v2`, when known.
    pub family: Option<String>,
    /// Width coefficient, when known.
    pub width: Option<f64>,
    /// Depth coefficient, when known.
    pub depth: Option<f64>,
    /// The input height and width the costs are computed at.
    pub resolution: [usize; 2],
    /// The naming scheme (and so the conventions) of the model.
    pub naming: Option<String>,
    /// A file path, or `spec` for a model built from the spec.
    pub source: String,
}

impl Serialize for ModelInfo {
    /// `resolution` is a number for a square input and `[h, w]` otherwise; `input_size` is
    /// always `[h, w]`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Model<'a> {
            variant: &'a Option<String>,
            family: &'a Option<String>,
            width: Option<f64>,
            depth: Option<f64>,
            resolution: serde_json::Value,
            input_size: [usize; 2],
            naming: &'a Option<String>,
            source: &'a str,
        }
        Model {
            variant: &self.variant,
            family: &self.family,
            width: self.width,
            depth: self.depth,
            resolution: resolution_value(self.resolution),
            input_size: self.resolution,
            naming: &self.naming,
            source: &self.source,
        }
        .serialize(serializer)
    }
}

/// `224` for a square input, `[224, 320]` otherwise: the `resolution` of JSON documents.
pub fn resolution_value([h, w]: [usize; 2]) -> serde_json::Value {
    if h == w {
        serde_json::json!(h)
    } else {
        serde_json::json!([h, w])
    }
}

/// The cost of one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerCost {
    /// Source name of the node.
    pub name: String,
    /// Op kind (`Conv2d`, `DepthwiseConv2d`, `BatchNorm`, …).
    pub op: &'static str,
    /// The operator class the op is totalled under (`--by operator`).
    pub operator: OperatorClass,
    /// Role within the structure (`expand_conv`, `se_reduce`, …).
    pub role: &'static str,
    /// Paper stage number (1 the stem, then the block stages, then the head).
    pub stage: u8,
    /// Block within the stage, from 1; `None` outside MBConv blocks.
    pub block: Option<u16>,
    /// Shape of the (first) input, NCHW (or N×F); empty for the graph input.
    pub input_shape: Vec<usize>,
    /// Output shape, NCHW (or N×F).
    pub output_shape: Vec<usize>,
    /// Convolution kernel `[h, w]`; `None` for other ops.
    pub kernel: Option<[usize; 2]>,
    /// Convolution stride `[h, w]`; `None` for other ops.
    pub stride: Option<[usize; 2]>,
    /// Convolution groups (1 dense, the channels for depthwise); `None` for other ops.
    pub groups: Option<usize>,
    /// Elements of the output tensor.
    pub output_elems: u64,
    /// Params, MACs, FLOPs; `activation_bytes` is the output tensor at the report's dtype, 0
    /// for ops that compute no new tensor at inference (dropout, flatten) and for the input.
    #[serde(flatten)]
    pub costs: Costs,
}

/// The figures every row of a report carries, summed over what the row covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Costs {
    /// Trainable parameters.
    pub params: u64,
    /// Non-trainable parameters (BatchNorm statistics, normalization constants).
    pub non_trainable_params: u64,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Arithmetic operations.
    pub flops: u64,
    /// Activation bytes.
    pub activation_bytes: u64,
}

impl std::ops::AddAssign for Costs {
    fn add_assign(&mut self, other: Costs) {
        self.params += other.params;
        self.non_trainable_params += other.non_trainable_params;
        self.macs += other.macs;
        self.flops += other.flops;
        self.activation_bytes += other.activation_bytes;
    }
}

/// The classes `--by operator` totals ops under, as fvcore and onnx-tool group them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorClass {
    /// Convolutions with one group (the stem, expansion, projection, SE and head 1×1 convs).
    Convolution,
    /// Depthwise convolutions (groups = channels).
    DepthwiseConvolution,
    /// Fully connected layers.
    Dense,
    /// Batch normalization.
    #[serde(rename = "batchnorm")]
    BatchNorm,
    /// Swish, sigmoid, ReLU, ReLU6, softmax.
    Activation,
    /// Global average pooling.
    Pooling,
    /// Element-wise products (SE scaling) and sums (residuals).
    Elementwise,
    /// The input, preprocessing (rescale, normalization), dropout, drop-connect, flatten.
    Other,
}

impl OperatorClass {
    /// Every class, in report order.
    pub const ALL: [OperatorClass; 8] = [
        OperatorClass::Convolution,
        OperatorClass::DepthwiseConvolution,
        OperatorClass::Dense,
        OperatorClass::BatchNorm,
        OperatorClass::Activation,
        OperatorClass::Pooling,
        OperatorClass::Elementwise,
        OperatorClass::Other,
    ];

    /// The class of an op.
    pub fn of(op: &effnet_ir::Op) -> Self {
        use effnet_ir::Op;
        match op {
            Op::Conv2d(c) if c.is_depthwise() => OperatorClass::DepthwiseConvolution,
            Op::Conv2d(_) => OperatorClass::Convolution,
            Op::Dense(_) => OperatorClass::Dense,
            Op::BatchNorm(_) => OperatorClass::BatchNorm,
            Op::Activation(_) => OperatorClass::Activation,
            Op::GlobalAvgPool { .. } => OperatorClass::Pooling,
            Op::Mul | Op::Add => OperatorClass::Elementwise,
            Op::Input(_)
            | Op::Rescale(_)
            | Op::Normalize(_)
            | Op::Dropout { .. }
            | Op::StochasticDepth { .. }
            | Op::Flatten => OperatorClass::Other,
        }
    }

    /// The JSON and CSV name: `convolution`, `depthwise_convolution`, `batchnorm`, ….
    pub fn name(self) -> &'static str {
        match self {
            OperatorClass::Convolution => "convolution",
            OperatorClass::DepthwiseConvolution => "depthwise_convolution",
            OperatorClass::Dense => "dense",
            OperatorClass::BatchNorm => "batchnorm",
            OperatorClass::Activation => "activation",
            OperatorClass::Pooling => "pooling",
            OperatorClass::Elementwise => "elementwise",
            OperatorClass::Other => "other",
        }
    }

    /// The label tables print.
    pub fn label(self) -> &'static str {
        match self {
            OperatorClass::Convolution => "Convolution",
            OperatorClass::DepthwiseConvolution => "Depthwise convolution",
            OperatorClass::Dense => "Dense",
            OperatorClass::BatchNorm => "BatchNorm",
            OperatorClass::Activation => "Activation",
            OperatorClass::Pooling => "Pooling",
            OperatorClass::Elementwise => "Elementwise (Add/Mul)",
            OperatorClass::Other => "Other",
        }
    }

    /// The op kinds the class covers, as reports print them.
    pub fn covers(self) -> &'static str {
        match self {
            OperatorClass::Convolution => "Conv2d",
            OperatorClass::DepthwiseConvolution => "DepthwiseConv2d",
            OperatorClass::Dense => "Dense",
            OperatorClass::BatchNorm => "BatchNorm",
            OperatorClass::Activation => "Swish, Sigmoid, Relu, Relu6, Softmax",
            OperatorClass::Pooling => "GlobalAvgPool",
            OperatorClass::Elementwise => "Add, Mul",
            OperatorClass::Other => "Input, Rescale, Normalize, Dropout, StochasticDepth, Flatten",
        }
    }
}

/// The total of one operator class (`--by operator`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OperatorCost {
    /// The class.
    pub operator: OperatorClass,
    /// The op kinds of the graph in the class, in first-seen order (`Swish, Sigmoid`).
    pub ops: Vec<&'static str>,
    /// Graph nodes in the class.
    pub nodes: usize,
    /// The class's figures.
    #[serde(flatten)]
    pub costs: Costs,
}

/// Memory a batch needs, torchinfo-style: weights, input, activations, and estimated totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Bytes of one weight or activation element (the report's dtype).
    pub element_bytes: u64,
    /// Every parameter (trainable and not) at the report's dtype.
    pub weights_bytes: u64,
    /// The input batch, `N × C × H × W` at the report's dtype.
    pub input_bytes: u64,
    /// The output of every node that computes one (`total.activation_bytes`).
    pub forward_activation_bytes: u64,
    /// The largest total of live tensors of a plain inference run, input included.
    pub peak_activation_bytes: u64,
    /// The activations a training step keeps for backward.
    pub saved_for_backward_bytes: u64,
    /// Inference estimate: weights + peak activations (input included).
    pub inference_total_bytes: u64,
    /// Training estimate: weights + their gradients + input + saved for backward; optimizer
    /// state (Adam: 2 × weights) and framework workspace not included.
    pub training_total_bytes: u64,
}

/// The cost of one MBConv block, or of the stem/head outside blocks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockCost {
    /// Paper stage number (1 the stem, then the block stages, then the head).
    pub stage: u8,
    /// Block within the stage, from 1; `None` for the stem and head.
    pub block: Option<u16>,
    /// `stem`, `head`, or `stage 3 block 2`-style label.
    pub name: String,
    /// Graph nodes in the group.
    pub nodes: usize,
    /// The group's figures.
    #[serde(flatten)]
    pub costs: Costs,
}

/// The cost of one paper stage (a Table 1 row).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageCost {
    /// Paper stage number (1 the stem, then the block stages, then the head).
    pub stage: u8,
    /// The paper's operator label (`MBConv6, k3x3`).
    pub operator: String,
    /// Spatial size entering the stage, `[h, w]`.
    pub input_resolution: [usize; 2],
    /// Channels of the stage's last convolution.
    pub output_channels: usize,
    /// Blocks in an MBConv stage; 1 for stem and head.
    pub layers: usize,
    /// The stage's figures.
    #[serde(flatten)]
    pub costs: Costs,
}

/// Totals over the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Totals {
    /// Trainable parameters (`sum(p.numel() for p in model.parameters())`).
    pub params: u64,
    /// The same as `params`, named for symmetry with `non_trainable_params`.
    pub trainable_params: u64,
    /// Non-trainable parameters (Keras' non-trainable count).
    pub non_trainable_params: u64,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Arithmetic operations.
    pub flops: u64,
    /// Sum of every node's activation bytes.
    pub activation_bytes: u64,
    /// Largest total of live tensors during a plain inference run (input included).
    pub peak_activation_bytes: u64,
    /// Activation bytes a training step keeps for backward (docs/cost.md).
    pub training_activation_bytes: u64,
}

/// A model's cost at one resolution, batch and dtype.
#[derive(Clone, Debug, PartialEq)]
pub struct CostReport {
    /// Where the model came from.
    pub model: ModelInfo,
    /// Batch size.
    pub batch: usize,
    /// Activation dtype.
    pub dtype: effnet_ir::DType,
    /// Input height and width.
    pub resolution: [usize; 2],
    /// Every node, in topological order.
    pub layers: Vec<LayerCost>,
    /// Blocks, stem and head, in order.
    pub blocks: Vec<BlockCost>,
    /// Paper stages, in order.
    pub stages: Vec<StageCost>,
    /// Operator classes with at least one node, in [`OperatorClass::ALL`] order.
    pub operators: Vec<OperatorCost>,
    /// Totals.
    pub total: Totals,
    /// Memory a batch needs.
    pub memory: Memory,
}

impl CostReport {
    /// `part` as a percentage of the total MACs (0 when the model has none).
    pub fn macs_pct(&self, part: u64) -> f64 {
        if self.total.macs == 0 {
            0.0
        } else {
            part as f64 * 100.0 / self.total.macs as f64
        }
    }
}
