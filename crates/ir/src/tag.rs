use std::fmt;

/// Where a node sits in the EfficientNet structure.
///
/// Stages follow the paper's Table 1: 1 is the stem, 2–8 the MBConv stages, 9 the head
/// (conv, pooling, classifier). The input and its preprocessing belong to stage 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    /// Paper stage, 1–9.
    pub stage: u8,
    /// Block index within the stage, from 0; `None` outside MBConv blocks.
    pub block: Option<u16>,
    /// What the node does there.
    pub role: Role,
}

impl Tag {
    /// A tag outside any block.
    pub const fn new(stage: u8, role: Role) -> Self {
        Tag {
            stage,
            block: None,
            role,
        }
    }

    /// A tag inside block `block` (from 0) of `stage`.
    pub const fn in_block(stage: u8, block: u16, role: Role) -> Self {
        Tag {
            stage,
            block: Some(block),
            role,
        }
    }
}

/// The role a node plays in an EfficientNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The graph input.
    Input,
    /// Input preprocessing folded into the model (Keras `Rescaling`, `Normalization`).
    Preprocess,
    /// Stem convolution.
    StemConv,
    /// Stem BatchNorm.
    StemBn,
    /// Stem activation.
    StemAct,
    /// 1×1 expansion convolution.
    ExpandConv,
    /// BatchNorm after the expansion.
    ExpandBn,
    /// Activation after the expansion.
    ExpandAct,
    /// Depthwise convolution.
    DepthwiseConv,
    /// BatchNorm after the depthwise convolution.
    DepthwiseBn,
    /// Activation after the depthwise convolution.
    DepthwiseAct,
    /// Squeeze-and-excitation: global pooling.
    SeSqueeze,
    /// Squeeze-and-excitation: reducing 1×1 convolution.
    SeReduce,
    /// Squeeze-and-excitation: activation after the reduction.
    SeReduceAct,
    /// Squeeze-and-excitation: expanding 1×1 convolution.
    SeExpand,
    /// Squeeze-and-excitation: the sigmoid gate.
    SeGate,
    /// Squeeze-and-excitation: the multiplication by the gate.
    SeScale,
    /// 1×1 projection convolution.
    ProjectConv,
    /// BatchNorm after the projection.
    ProjectBn,
    /// Drop-connect (stochastic depth) on the residual branch.
    DropConnect,
    /// The residual addition.
    Residual,
    /// Head 1×1 convolution.
    HeadConv,
    /// Head BatchNorm.
    HeadBn,
    /// Head activation.
    HeadAct,
    /// Global average pooling before the classifier.
    HeadPool,
    /// Dropout before the classifier.
    HeadDropout,
    /// A reshape or flatten that moves no data.
    Reshape,
    /// The classifier (fully connected layer).
    Classifier,
    /// The classifier's activation (Keras applications end in softmax).
    ClassifierAct,
}

impl Role {
    /// The role's snake_case name, as reports print it.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Preprocess => "preprocess",
            Role::StemConv => "stem_conv",
            Role::StemBn => "stem_bn",
            Role::StemAct => "stem_act",
            Role::ExpandConv => "expand_conv",
            Role::ExpandBn => "expand_bn",
            Role::ExpandAct => "expand_act",
            Role::DepthwiseConv => "dw_conv",
            Role::DepthwiseBn => "dw_bn",
            Role::DepthwiseAct => "dw_act",
            Role::SeSqueeze => "se_squeeze",
            Role::SeReduce => "se_reduce",
            Role::SeReduceAct => "se_reduce_act",
            Role::SeExpand => "se_expand",
            Role::SeGate => "se_gate",
            Role::SeScale => "se_scale",
            Role::ProjectConv => "project_conv",
            Role::ProjectBn => "project_bn",
            Role::DropConnect => "drop_connect",
            Role::Residual => "residual_add",
            Role::HeadConv => "head_conv",
            Role::HeadBn => "head_bn",
            Role::HeadAct => "head_act",
            Role::HeadPool => "head_pool",
            Role::HeadDropout => "head_dropout",
            Role::Reshape => "reshape",
            Role::Classifier => "classifier",
            Role::ClassifierAct => "classifier_act",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
