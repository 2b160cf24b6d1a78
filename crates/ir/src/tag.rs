use std::fmt;

/// Where a node sits in the network: the stem, a stage of blocks, or the head.
///
/// Block stages carry the paper's stage number (Table 1 of EfficientNet: stage 1 is the stem,
/// the block stages count from 2); the head is the stage after the last block stage, so its
/// number depends on the family (9 in B0–B7, 8 in EfficientNetV2-S).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// The input, its preprocessing and the stem convolution (paper stage 1).
    Stem,
    /// A stage of blocks, by paper stage number (from 2).
    Blocks(u8),
    /// The head convolution, pooling and classifier.
    Head,
}

impl Stage {
    /// The paper stage number of the stem.
    pub const STEM_NUMBER: u8 = 1;

    /// The paper stage number: 1 for the stem, the block stage's own, and one past
    /// `last_block_stage` for the head.
    pub const fn number(self, last_block_stage: u8) -> u8 {
        match self {
            Stage::Stem => Self::STEM_NUMBER,
            Stage::Blocks(n) => n,
            Stage::Head => last_block_stage.saturating_add(1),
        }
    }

    /// The block stage number, for a stage of blocks.
    pub const fn blocks(self) -> Option<u8> {
        match self {
            Stage::Blocks(n) => Some(n),
            _ => None,
        }
    }

    /// The stage a paper stage number names, given the last block stage of the model.
    pub const fn from_number(number: u8, last_block_stage: u8) -> Option<Stage> {
        if number == Self::STEM_NUMBER {
            Some(Stage::Stem)
        } else if number > Self::STEM_NUMBER && number <= last_block_stage {
            Some(Stage::Blocks(number))
        } else if number == last_block_stage.saturating_add(1) {
            Some(Stage::Head)
        } else {
            None
        }
    }
}

/// The kind of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockKind {
    /// Inverted residual: optional 1×1 expansion, depthwise k×k, optional squeeze-and-excitation,
    /// 1×1 projection (EfficientNet, Lite, the later stages of V2).
    MBConv,
    /// Fused inverted residual (EfficientNetV2): a k×k convolution expands (or, without
    /// expansion, maps straight to the output), then a 1×1 projection when it expanded.
    FusedMBConv,
}

impl BlockKind {
    /// The name reports use: `MBConv`, `Fused-MBConv`.
    pub const fn name(self) -> &'static str {
        match self {
            BlockKind::MBConv => "MBConv",
            BlockKind::FusedMBConv => "Fused-MBConv",
        }
    }
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a node sits in the EfficientNet structure: its stage, its block within a stage of
/// blocks, and its role. The input and its preprocessing belong to the stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    /// The stage.
    pub stage: Stage,
    /// Block index within the stage, from 0; `None` outside blocks.
    pub block: Option<u16>,
    /// What the node does there.
    pub role: Role,
}

impl Tag {
    /// A tag outside any block.
    pub const fn new(stage: Stage, role: Role) -> Self {
        Tag {
            stage,
            block: None,
            role,
        }
    }

    /// A tag in the stem.
    pub const fn stem(role: Role) -> Self {
        Tag::new(Stage::Stem, role)
    }

    /// A tag in the head.
    pub const fn head(role: Role) -> Self {
        Tag::new(Stage::Head, role)
    }

    /// A tag inside block `block` (from 0) of block stage `stage`.
    pub const fn in_block(stage: u8, block: u16, role: Role) -> Self {
        Tag {
            stage: Stage::Blocks(stage),
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
    /// Expansion convolution: 1×1 in an MBConv block, k×k (with the block's stride) in a
    /// Fused-MBConv block.
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
    /// Activation after the projection (a Fused-MBConv without expansion, whose only
    /// convolution is its projection).
    ProjectAct,
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
            Role::ProjectAct => "project_act",
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
