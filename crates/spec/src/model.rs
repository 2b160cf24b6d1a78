use effnet_ir::{Activation, BlockKind};

use crate::{Family, SpecError, Variant};

/// Largest width or depth coefficient accepted (L2 uses 4.3 / 5.3).
pub const MAX_COEFFICIENT: f64 = 100.0;
/// Largest input resolution accepted.
pub const MAX_RESOLUTION: usize = 1 << 16;

/// One row of a base network's block table (the TF block strings
/// `r1_k3_s11_e1_i32_o16_se0.25`, V2's `conv_type`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BaseStage {
    /// MBConv or Fused-MBConv.
    pub kind: BlockKind,
    /// Spatial kernel size (the depthwise conv's, or a Fused-MBConv's first conv's).
    pub kernel: usize,
    /// Stride of the stage's first block.
    pub stride: usize,
    /// Expansion ratio.
    pub expand: usize,
    /// Input channels before width scaling.
    pub in_channels: usize,
    /// Output channels before width scaling.
    pub out_channels: usize,
    /// Repeats before depth scaling.
    pub repeats: usize,
    /// Squeeze-and-excitation ratio, relative to the block input channels (0: none).
    pub se_ratio: f64,
}

const fn row(
    kind: BlockKind,
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    (in_channels, out_channels): (usize, usize),
    se_ratio: f64,
) -> BaseStage {
    BaseStage {
        kind,
        kernel,
        stride,
        expand,
        in_channels,
        out_channels,
        repeats,
        se_ratio,
    }
}

const M: BlockKind = BlockKind::MBConv;
const F: BlockKind = BlockKind::FusedMBConv;

/// The seven MBConv stages of B0 (paper stages 2–8).
pub const BASE_STAGES: [BaseStage; 7] = [
    row(M, 1, 3, 1, 1, (32, 16), 0.25),
    row(M, 2, 3, 2, 6, (16, 24), 0.25),
    row(M, 2, 5, 2, 6, (24, 40), 0.25),
    row(M, 3, 3, 2, 6, (40, 80), 0.25),
    row(M, 3, 5, 1, 6, (80, 112), 0.25),
    row(M, 4, 5, 2, 6, (112, 192), 0.25),
    row(M, 1, 3, 1, 6, (192, 320), 0.25),
];

/// B0's stages without squeeze-excitation: EfficientNet-Lite.
const LITE_STAGES: [BaseStage; 7] = {
    let mut stages = BASE_STAGES;
    let mut i = 0;
    while i < stages.len() {
        stages[i].se_ratio = 0.0;
        i += 1;
    }
    stages
};

/// EfficientNetV2's base network, which B0–B3 scale.
const V2_BASE_STAGES: [BaseStage; 6] = [
    row(F, 1, 3, 1, 1, (32, 16), 0.0),
    row(F, 2, 3, 2, 4, (16, 32), 0.0),
    row(F, 2, 3, 2, 4, (32, 48), 0.0),
    row(M, 3, 3, 2, 4, (48, 96), 0.25),
    row(M, 5, 3, 1, 6, (96, 112), 0.25),
    row(M, 8, 3, 2, 6, (112, 192), 0.25),
];

const V2_S_STAGES: [BaseStage; 6] = [
    row(F, 2, 3, 1, 1, (24, 24), 0.0),
    row(F, 4, 3, 2, 4, (24, 48), 0.0),
    row(F, 4, 3, 2, 4, (48, 64), 0.0),
    row(M, 6, 3, 2, 4, (64, 128), 0.25),
    row(M, 9, 3, 1, 6, (128, 160), 0.25),
    row(M, 15, 3, 2, 6, (160, 256), 0.25),
];

const V2_M_STAGES: [BaseStage; 7] = [
    row(F, 3, 3, 1, 1, (24, 24), 0.0),
    row(F, 5, 3, 2, 4, (24, 48), 0.0),
    row(F, 5, 3, 2, 4, (48, 80), 0.0),
    row(M, 7, 3, 2, 4, (80, 160), 0.25),
    row(M, 14, 3, 1, 6, (160, 176), 0.25),
    row(M, 18, 3, 2, 6, (176, 304), 0.25),
    row(M, 5, 3, 1, 6, (304, 512), 0.25),
];

const V2_L_STAGES: [BaseStage; 7] = [
    row(F, 4, 3, 1, 1, (32, 32), 0.0),
    row(F, 7, 3, 2, 4, (32, 64), 0.0),
    row(F, 7, 3, 2, 4, (64, 96), 0.0),
    row(M, 10, 3, 2, 4, (96, 192), 0.25),
    row(M, 19, 3, 1, 6, (192, 224), 0.25),
    row(M, 25, 3, 2, 6, (224, 384), 0.25),
    row(M, 7, 3, 1, 6, (384, 640), 0.25),
];

const V2_XL_STAGES: [BaseStage; 7] = [
    row(F, 4, 3, 1, 1, (32, 32), 0.0),
    row(F, 8, 3, 2, 4, (32, 64), 0.0),
    row(F, 8, 3, 2, 4, (64, 96), 0.0),
    row(M, 16, 3, 2, 4, (96, 192), 0.25),
    row(M, 24, 3, 1, 6, (192, 256), 0.25),
    row(M, 32, 3, 2, 6, (256, 512), 0.25),
    row(M, 8, 3, 1, 6, (512, 640), 0.25),
];

/// A base network and the rules that scale it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Base {
    /// Short name: `b0`, `lite`, `v2-base`, `v2-s`, …
    pub name: &'static str,
    /// The family.
    pub family: Family,
    /// The block stages before scaling.
    pub stages: &'static [BaseStage],
    /// Stem width before scaling.
    pub stem_channels: usize,
    /// Head width before scaling.
    pub head_channels: usize,
    /// Stem and head widths are not scaled (Lite).
    pub fixed_stem_head: bool,
    /// The first and the last stage keep their repeats (Lite's `fix_head_stem`).
    pub fixed_first_last_repeats: bool,
    /// Channel rounding adds a divisor when it falls more than 10 % below the scaled width
    /// (V1 and Lite; EfficientNetV2's `round_filters` does not).
    pub ten_percent_rule: bool,
}

impl Base {
    /// Channels of `filters` scaled by `width` under this base's rounding.
    pub fn round(&self, filters: usize, width: f64, divisor: usize) -> usize {
        if self.ten_percent_rule {
            round_filters(filters, width, divisor)
        } else {
            round_filters_nearest(filters, width, divisor)
        }
    }

    /// Every base network effnet knows.
    pub const ALL: [Base; 7] = [EFFICIENTNET, LITE, V2_BASE, V2_S, V2_M, V2_L, V2_XL];
}

const fn base(name: &'static str, family: Family, stages: &'static [BaseStage]) -> Base {
    Base {
        name,
        family,
        stages,
        stem_channels: stages[0].in_channels,
        head_channels: 1280,
        fixed_stem_head: false,
        fixed_first_last_repeats: false,
        ten_percent_rule: !matches!(family, Family::V2),
    }
}

/// EfficientNet B0, which B1–B7, B8 and L2 scale.
pub const EFFICIENTNET: Base = base("b0", Family::EfficientNet, &BASE_STAGES);
/// EfficientNet-Lite's base (Lite0).
pub const LITE: Base = Base {
    fixed_stem_head: true,
    fixed_first_last_repeats: true,
    ..base("lite", Family::Lite, &LITE_STAGES)
};
/// EfficientNetV2's base network (B0–B3).
pub const V2_BASE: Base = base("v2-base", Family::V2, &V2_BASE_STAGES);
/// EfficientNetV2-S.
pub const V2_S: Base = base("v2-s", Family::V2, &V2_S_STAGES);
/// EfficientNetV2-M.
pub const V2_M: Base = base("v2-m", Family::V2, &V2_M_STAGES);
/// EfficientNetV2-L.
pub const V2_L: Base = base("v2-l", Family::V2, &V2_L_STAGES);
/// EfficientNetV2-XL.
pub const V2_XL: Base = base("v2-xl", Family::V2, &V2_XL_STAGES);

/// Channels after width scaling without the 10 % rule: `max(divisor, int(f·w + divisor/2)
/// // divisor · divisor)` (EfficientNetV2's `round_filters`).
pub fn round_filters_nearest(filters: usize, width: f64, divisor: usize) -> usize {
    let scaled = filters as f64 * width;
    (((scaled + divisor as f64 / 2.0) as usize) / divisor * divisor).max(divisor)
}

/// Channels after width scaling: `max(divisor, int(f·w + divisor/2) // divisor · divisor)`,
/// plus one divisor when that falls more than 10% below `f·w` (TF official, Keras, torchvision,
/// timm, EfficientNet-PyTorch all agree).
pub fn round_filters(filters: usize, width: f64, divisor: usize) -> usize {
    let scaled = filters as f64 * width;
    let rounded = round_filters_nearest(filters, width, divisor);
    if (rounded as f64) < 0.9 * scaled {
        rounded + divisor
    } else {
        rounded
    }
}

/// Repeats after depth scaling: `ceil(depth · repeats)`.
pub fn round_repeats(repeats: usize, depth: f64) -> usize {
    (depth * repeats as f64).ceil() as usize
}

/// A fully specified EfficientNet: a base network and its scaling coefficients.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// The named variant, when the base and coefficients are exactly one.
    pub variant: Option<Variant>,
    /// The base network and its scaling rules.
    pub base: Base,
    /// Width multiplier.
    pub width: f64,
    /// Depth multiplier.
    pub depth: f64,
    /// Input resolution (square).
    pub resolution: usize,
    /// Dropout before the classifier.
    pub dropout: f64,
    /// Drop-connect rate of the last block (scaled linearly from 0 over the blocks).
    pub drop_connect_rate: f64,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Channel rounding divisor.
    pub depth_divisor: usize,
}

/// One scaled stage of blocks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageSpec {
    /// Paper stage number (from 2).
    pub stage: u8,
    /// MBConv or Fused-MBConv.
    pub kind: BlockKind,
    /// Spatial kernel size.
    pub kernel: usize,
    /// Stride of the first block.
    pub stride: usize,
    /// Expansion ratio.
    pub expand: usize,
    /// Channels entering the stage.
    pub in_channels: usize,
    /// Channels leaving it.
    pub out_channels: usize,
    /// Number of blocks.
    pub repeats: usize,
    /// SE ratio relative to block input channels (0: none).
    pub se_ratio: f64,
}

/// One scaled block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockSpec {
    /// MBConv or Fused-MBConv.
    pub kind: BlockKind,
    /// Paper stage number (from 2).
    pub stage: u8,
    /// Index within the stage, from 0.
    pub index: u16,
    /// Index over all blocks, from 0.
    pub global_index: usize,
    /// Channels entering the block.
    pub in_channels: usize,
    /// Channels after expansion.
    pub expanded_channels: usize,
    /// Channels leaving the block.
    pub out_channels: usize,
    /// Whether the block has an expansion conv (expansion ratio ≠ 1): 1×1 in an MBConv, the
    /// k×k conv of a Fused-MBConv.
    pub has_expand: bool,
    /// Spatial kernel size (depthwise conv, or a Fused-MBConv's first conv).
    pub kernel: usize,
    /// The block's stride, on the same conv.
    pub stride: usize,
    /// SE width (`max(1, int(in_channels · se_ratio))` in the spec); `None` without SE.
    pub se_channels: Option<usize>,
    /// Whether the block has an identity shortcut (stride 1 and in = out).
    pub residual: bool,
    /// Drop-connect rate `rate · global_index / blocks` (applied on residual blocks only).
    pub drop_connect_rate: f64,
}

/// A concrete network: the stem, every block and the head. The spec produces one
/// ([`ModelSpec::architecture`]); importers infer one from a file's tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// Stem output channels.
    pub stem_channels: usize,
    /// Stem kernel size (3 in every EfficientNet; stride 2).
    pub stem_kernel: usize,
    /// The blocks, in order.
    pub blocks: Vec<BlockSpec>,
    /// Head 1×1 conv output channels.
    pub head_channels: usize,
    /// Classifier outputs; `None` for a model without a classifier.
    pub num_classes: Option<usize>,
    /// The input resolution the model is meant for, when known.
    pub resolution: Option<usize>,
    /// Dropout before the classifier.
    pub dropout: f64,
    /// The activation of the stem, the blocks, the SE reduction and the head.
    pub activation: Activation,
    /// The family, once known (a spec's; an import's after identification).
    pub family: Option<Family>,
}

impl ModelSpec {
    /// The concrete network of this spec.
    pub fn architecture(&self) -> Architecture {
        Architecture {
            stem_channels: self.stem_out(),
            stem_kernel: 3,
            blocks: self.blocks(),
            head_channels: self.head_out(),
            num_classes: Some(self.num_classes),
            resolution: Some(self.resolution),
            dropout: self.dropout,
            activation: self.base.family.activation(),
            family: Some(self.base.family),
        }
    }

    /// The spec of a named variant at its native resolution.
    pub fn variant(variant: Variant) -> Self {
        let c = variant.coefficients();
        ModelSpec {
            variant: Some(variant),
            base: variant.base(),
            width: c.width,
            depth: c.depth,
            resolution: c.resolution,
            dropout: c.dropout,
            drop_connect_rate: 0.2,
            num_classes: 1000,
            depth_divisor: 8,
        }
    }

    /// An EfficientNet (B0's base) with arbitrary coefficients (B0's dropout); checked like
    /// [`ModelSpec::with_overrides`].
    pub fn custom(width: f64, depth: f64, resolution: usize) -> Result<Self, SpecError> {
        Self::scaled(crate::model::EFFICIENTNET, width, depth, resolution)
    }

    /// `base` scaled by arbitrary coefficients (the dropout of the family's smallest variant).
    pub fn scaled(
        base: Base,
        width: f64,
        depth: f64,
        resolution: usize,
    ) -> Result<Self, SpecError> {
        let smallest = Variant::ALL
            .into_iter()
            .find(|v| v.base() == base)
            .unwrap_or(Variant::B0);
        let spec = ModelSpec {
            variant: None,
            width,
            depth,
            resolution,
            ..ModelSpec::variant(smallest)
        };
        spec.check()?;
        Ok(spec.named_if_standard())
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.base.family
    }

    /// This spec with some coefficients replaced. The variant name is kept only when width and
    /// depth still match it (a resolution change keeps the architecture).
    pub fn with_overrides(
        mut self,
        width: Option<f64>,
        depth: Option<f64>,
        resolution: Option<usize>,
    ) -> Result<Self, SpecError> {
        if let Some(w) = width {
            self.width = w;
        }
        if let Some(d) = depth {
            self.depth = d;
        }
        if let Some(r) = resolution {
            self.resolution = r;
        }
        self.check()?;
        if let Some(v) = self.variant {
            let c = v.coefficients();
            if c.width != self.width || c.depth != self.depth {
                self.variant = None;
            }
        }
        Ok(self.named_if_standard())
    }

    /// Sets the number of classifier outputs.
    pub fn with_classes(mut self, num_classes: usize) -> Result<Self, SpecError> {
        if num_classes == 0 {
            return Err(SpecError::Classes);
        }
        self.num_classes = num_classes;
        Ok(self)
    }

    fn check(&self) -> Result<(), SpecError> {
        for (name, value) in [("width", self.width), ("depth", self.depth)] {
            if !(value.is_finite() && value > 0.0 && value <= MAX_COEFFICIENT) {
                return Err(SpecError::Coefficient {
                    name,
                    value,
                    max: MAX_COEFFICIENT,
                });
            }
        }
        if self.resolution == 0 || self.resolution > MAX_RESOLUTION {
            return Err(SpecError::Resolution(self.resolution));
        }
        Ok(())
    }

    /// Names the spec after the variant of its base whose width and depth it has, if any.
    fn named_if_standard(mut self) -> Self {
        if self.variant.is_none() {
            self.variant = Variant::ALL.into_iter().find(|v| {
                let c = v.coefficients();
                v.base() == self.base && c.width == self.width && c.depth == self.depth
            });
        }
        self
    }

    /// A short label: `b0`, `v2-s`, or `w=1.3 d=1.6` for custom coefficients (prefixed by the
    /// base outside B0's: `lite w=0.5 d=0.5`).
    pub fn label(&self) -> String {
        match self.variant {
            Some(v) => v.name().to_owned(),
            None if self.base == crate::model::EFFICIENTNET => {
                format!("w={} d={}", self.width, self.depth)
            }
            None => format!("{} w={} d={}", self.base.name, self.width, self.depth),
        }
    }

    /// Scaled stem width.
    pub fn stem_out(&self) -> usize {
        if self.base.fixed_stem_head {
            self.base.stem_channels
        } else {
            self.round(self.base.stem_channels)
        }
    }

    /// Scaled head width.
    pub fn head_out(&self) -> usize {
        if self.base.fixed_stem_head {
            self.base.head_channels
        } else {
            self.round(self.base.head_channels)
        }
    }

    fn round(&self, filters: usize) -> usize {
        self.base.round(filters, self.width, self.depth_divisor)
    }

    /// The block stages after scaling. A stage takes the channels the one before gives (the
    /// stem's, for the first).
    pub fn stages(&self) -> Vec<StageSpec> {
        let last = self.base.stages.len().saturating_sub(1);
        let mut in_channels = self.stem_out();
        self.base
            .stages
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let fixed = self.base.fixed_first_last_repeats && (i == 0 || i == last);
                let out_channels = self.round(b.out_channels);
                let stage = StageSpec {
                    stage: i as u8 + 2,
                    kind: b.kind,
                    kernel: b.kernel,
                    stride: b.stride,
                    expand: b.expand,
                    in_channels,
                    out_channels,
                    repeats: if fixed {
                        b.repeats
                    } else {
                        round_repeats(b.repeats, self.depth)
                    },
                    se_ratio: b.se_ratio,
                };
                in_channels = out_channels;
                stage
            })
            .collect()
    }

    /// Every block after scaling, in order.
    pub fn blocks(&self) -> Vec<BlockSpec> {
        let stages = self.stages();
        let total: usize = stages.iter().map(|s| s.repeats).sum();
        let mut out = Vec::with_capacity(total);
        for stage in &stages {
            for j in 0..stage.repeats {
                let in_channels = if j == 0 {
                    stage.in_channels
                } else {
                    stage.out_channels
                };
                let stride = if j == 0 { stage.stride } else { 1 };
                let global_index = out.len();
                out.push(BlockSpec {
                    kind: stage.kind,
                    stage: stage.stage,
                    index: j as u16,
                    global_index,
                    in_channels,
                    expanded_channels: in_channels * stage.expand,
                    out_channels: stage.out_channels,
                    has_expand: stage.expand != 1,
                    kernel: stage.kernel,
                    stride,
                    se_channels: (stage.se_ratio > 0.0)
                        .then(|| ((in_channels as f64 * stage.se_ratio) as usize).max(1)),
                    residual: stride == 1 && in_channels == stage.out_channels,
                    drop_connect_rate: self.drop_connect_rate * global_index as f64 / total as f64,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_filters_follows_the_ten_percent_rule() {
        assert_eq!(round_filters(32, 1.0, 8), 32);
        assert_eq!(round_filters(40, 1.1, 8), 48); // 44 → int(48)//8*8 = 48
        assert_eq!(round_filters(1280, 1.1, 8), 1408);
        assert_eq!(round_filters(16, 1.2, 8), 24); // 19.2 → 16 < 0.9·19.2 → 24
        assert_eq!(round_filters(32, 0.1, 8), 8); // never below the divisor
        assert_eq!(round_filters(320, 4.3, 8), 1376);
    }

    #[test]
    fn round_repeats_takes_the_ceiling() {
        assert_eq!(round_repeats(1, 1.1), 2);
        assert_eq!(round_repeats(4, 3.1), 13);
        assert_eq!(round_repeats(3, 1.2), 4);
        assert_eq!(round_repeats(1, 1.0), 1);
    }

    #[test]
    fn overrides_drop_the_variant_name_only_when_the_architecture_changes() {
        let b0 = ModelSpec::variant(Variant::B0);
        let at_256 = b0.clone().with_overrides(None, None, Some(256)).unwrap();
        assert_eq!(at_256.variant, Some(Variant::B0));
        let custom = b0.with_overrides(Some(1.3), Some(1.6), None).unwrap();
        assert_eq!(custom.variant, None);
        assert_eq!(custom.label(), "w=1.3 d=1.6");
        let named = ModelSpec::custom(2.0, 3.1, 600).unwrap();
        assert_eq!(named.variant, Some(Variant::B7));
    }

    #[test]
    fn bad_coefficients_are_refused() {
        for w in [0.0, -1.0, f64::NAN, f64::INFINITY, 101.0] {
            assert!(matches!(
                ModelSpec::custom(w, 1.0, 224),
                Err(SpecError::Coefficient { name: "width", .. })
            ));
        }
        assert!(matches!(
            ModelSpec::custom(1.0, 1.0, 0),
            Err(SpecError::Resolution(0))
        ));
    }
}
