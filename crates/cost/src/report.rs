use serde::Serialize;

/// Where the model came from, as the `model` object of `effnet.cost/1`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The name titles show: `EfficientNet-B0`, `EfficientNetV2-S`, `EfficientNet-Lite
    /// w=0.5 d=0.5`.
    #[serde(skip)]
    pub title: String,
    /// `b0` … `l2`, `lite0` …, `v2-s` … when the model is a standard variant.
    pub variant: Option<String>,
    /// `efficientnet`, `efficientnet-lite` or `efficientnet-v2`, when known.
    pub family: Option<String>,
    /// Width coefficient, when known.
    pub width: Option<f64>,
    /// Depth coefficient, when known.
    pub depth: Option<f64>,
    /// The resolution the costs are computed at.
    pub resolution: usize,
    /// The naming scheme (and so the conventions) of the model.
    pub naming: Option<String>,
    /// A file path, or `spec` for a model built from the spec.
    pub source: String,
}

/// The cost of one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerCost {
    /// Source name of the node.
    pub name: String,
    /// Op kind (`Conv2d`, `DepthwiseConv2d`, `BatchNorm`, …).
    pub op: &'static str,
    /// Role within the structure (`expand_conv`, `se_reduce`, …).
    pub role: &'static str,
    /// Paper stage number (1 the stem, then the block stages, then the head).
    pub stage: u8,
    /// Block within the stage, from 1; `None` outside MBConv blocks.
    pub block: Option<u16>,
    /// Output shape, NCHW (or N×F).
    pub output_shape: Vec<usize>,
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
    /// Totals.
    pub total: Totals,
}
