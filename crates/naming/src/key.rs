//! What a tensor name means, independent of any scheme.

use effnet_ir::{BlockKind, Role};

/// Where a layer sits: the stem, a block, the head or the classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The stem (paper stage 1).
    Stem,
    /// A block (MBConv or Fused-MBConv).
    Block(BlockRef),
    /// The head conv and its BatchNorm.
    Head,
    /// The classifier (in the head stage).
    Classifier,
}

/// A block as a scheme names it: by paper stage and index within it, or (EfficientNet-PyTorch)
/// by a global index whose stage is inferred later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    /// Paper stage (from 2), when the name carries it.
    pub stage: Option<u8>,
    /// Index within the stage, or over all blocks when `stage` is `None`.
    pub index: usize,
}

/// A layer with parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// Stem convolution.
    StemConv,
    /// Stem BatchNorm.
    StemBn,
    /// Expansion conv (1×1 in an MBConv, k×k in a Fused-MBConv).
    ExpandConv,
    /// Expansion BatchNorm.
    ExpandBn,
    /// Depthwise conv.
    DwConv,
    /// Depthwise BatchNorm.
    DwBn,
    /// SE reduce conv.
    SeReduce,
    /// SE expand conv.
    SeExpand,
    /// Projection conv (1×1; k×k in a Fused-MBConv without expansion).
    ProjectConv,
    /// Projection BatchNorm.
    ProjectBn,
    /// Head 1×1 conv.
    HeadConv,
    /// Head BatchNorm.
    HeadBn,
    /// Classifier.
    Classifier,
    /// Keras' input `Normalization` (mean, variance, count).
    Normalization,
}

impl Layer {
    /// The IR role of the node this layer's parameters belong to.
    pub const fn role(self) -> Role {
        match self {
            Layer::StemConv => Role::StemConv,
            Layer::StemBn => Role::StemBn,
            Layer::ExpandConv => Role::ExpandConv,
            Layer::ExpandBn => Role::ExpandBn,
            Layer::DwConv => Role::DepthwiseConv,
            Layer::DwBn => Role::DepthwiseBn,
            Layer::SeReduce => Role::SeReduce,
            Layer::SeExpand => Role::SeExpand,
            Layer::ProjectConv => Role::ProjectConv,
            Layer::ProjectBn => Role::ProjectBn,
            Layer::HeadConv => Role::HeadConv,
            Layer::HeadBn => Role::HeadBn,
            Layer::Classifier => Role::Classifier,
            Layer::Normalization => Role::Preprocess,
        }
    }

    /// The layer whose parameters a node of `role` holds (`None` for roles without
    /// parameters; Keras' `Normalization` is not a PyTorch layer and is not listed).
    pub const fn from_role(role: Role) -> Option<Layer> {
        Some(match role {
            Role::StemConv => Layer::StemConv,
            Role::StemBn => Layer::StemBn,
            Role::ExpandConv => Layer::ExpandConv,
            Role::ExpandBn => Layer::ExpandBn,
            Role::DepthwiseConv => Layer::DwConv,
            Role::DepthwiseBn => Layer::DwBn,
            Role::SeReduce => Layer::SeReduce,
            Role::SeExpand => Layer::SeExpand,
            Role::ProjectConv => Layer::ProjectConv,
            Role::ProjectBn => Layer::ProjectBn,
            Role::HeadConv => Layer::HeadConv,
            Role::HeadBn => Layer::HeadBn,
            Role::Classifier => Layer::Classifier,
            _ => return None,
        })
    }

    /// Whether this is a BatchNorm.
    pub const fn is_bn(self) -> bool {
        matches!(
            self,
            Layer::StemBn | Layer::ExpandBn | Layer::DwBn | Layer::ProjectBn | Layer::HeadBn
        )
    }
}

/// A parameter of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Param {
    /// Conv or dense weight.
    Weight,
    /// Conv or dense bias.
    Bias,
    /// BatchNorm scale.
    Gamma,
    /// BatchNorm shift.
    Beta,
    /// BatchNorm running mean.
    RunningMean,
    /// BatchNorm running variance.
    RunningVar,
    /// PyTorch's BatchNorm step counter (bookkeeping, not a parameter of the computation).
    NumBatchesTracked,
    /// Normalization mean.
    Mean,
    /// Normalization variance.
    Variance,
    /// Normalization sample count.
    Count,
}

impl Param {
    /// The IR's name for the parameter (`weight`, `gamma`, `running_var`, …).
    pub const fn ir_name(self) -> &'static str {
        match self {
            Param::Weight => "weight",
            Param::Bias => "bias",
            Param::Gamma => "gamma",
            Param::Beta => "beta",
            Param::RunningMean => "running_mean",
            Param::RunningVar => "running_var",
            Param::NumBatchesTracked => "num_batches_tracked",
            Param::Mean => "mean",
            Param::Variance => "variance",
            Param::Count => "count",
        }
    }

    /// The parameter a Keras variable name denotes on `layer`.
    pub fn from_keras(layer: Layer, name: &str) -> Option<Param> {
        Some(match (layer, name) {
            (Layer::Normalization, "mean") => Param::Mean,
            (Layer::Normalization, "variance") => Param::Variance,
            (Layer::Normalization, "count") => Param::Count,
            (_, "gamma") => Param::Gamma,
            (_, "beta") => Param::Beta,
            (_, "moving_mean") => Param::RunningMean,
            (_, "moving_variance") => Param::RunningVar,
            (_, "kernel" | "depthwise_kernel") => Param::Weight,
            (_, "bias") => Param::Bias,
            _ => return None,
        })
    }

    /// PyTorch's attribute name for this parameter of `layer`.
    pub const fn torch_name(self) -> &'static str {
        match self {
            Param::Weight | Param::Gamma => "weight",
            Param::Bias | Param::Beta => "bias",
            Param::RunningMean => "running_mean",
            Param::RunningVar => "running_var",
            Param::NumBatchesTracked => "num_batches_tracked",
            Param::Mean => "mean",
            Param::Variance => "variance",
            Param::Count => "count",
        }
    }

    /// The parameter a PyTorch attribute name denotes on `layer`.
    pub fn from_torch(layer: Layer, name: &str) -> Option<Param> {
        Some(match (layer.is_bn(), name) {
            (true, "weight") => Param::Gamma,
            (true, "bias") => Param::Beta,
            (true, "running_mean") => Param::RunningMean,
            (true, "running_var") => Param::RunningVar,
            (true, "num_batches_tracked") => Param::NumBatchesTracked,
            (false, "weight") => Param::Weight,
            (false, "bias") => Param::Bias,
            _ => return None,
        })
    }
}

/// A tensor name understood: which layer, which parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParsedKey {
    /// Stem, block, head or classifier.
    pub scope: Scope,
    /// The layer.
    pub layer: Layer,
    /// The parameter.
    pub param: Param,
}

/// The facts about a block that decide how a scheme names its layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockLayout {
    /// MBConv or Fused-MBConv.
    pub kind: BlockKind,
    /// Whether the block has an expansion conv.
    pub has_expand: bool,
    /// Whether the block has squeeze-and-excitation.
    pub has_se: bool,
}
