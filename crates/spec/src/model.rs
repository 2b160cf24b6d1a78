use crate::{SpecError, Variant};

/// Largest width or depth coefficient accepted (L2 uses 4.3 / 5.3).
pub const MAX_COEFFICIENT: f64 = 100.0;
/// Largest input resolution accepted.
pub const MAX_RESOLUTION: usize = 1 << 16;

/// One row of the B0 block table (the TF block strings
/// `r1_k3_s11_e1_i32_o16_se0.25` …).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BaseStage {
    /// Depthwise kernel size.
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
    /// Squeeze-and-excitation ratio, relative to the block input channels.
    pub se_ratio: f64,
}

const fn base(
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    in_channels: usize,
    out_channels: usize,
) -> BaseStage {
    BaseStage {
        kernel,
        stride,
        expand,
        in_channels,
        out_channels,
        repeats,
        se_ratio: 0.25,
    }
}

/// The seven MBConv stages of B0 (paper stages 2–8).
pub const BASE_STAGES: [BaseStage; 7] = [
    base(1, 3, 1, 1, 32, 16),
    base(2, 3, 2, 6, 16, 24),
    base(2, 5, 2, 6, 24, 40),
    base(3, 3, 2, 6, 40, 80),
    base(3, 5, 1, 6, 80, 112),
    base(4, 5, 2, 6, 112, 192),
    base(1, 3, 1, 6, 192, 320),
];

/// Channels after width scaling: `max(divisor, int(f·w + divisor/2) // divisor · divisor)`,
/// plus one divisor when that falls more than 10% below `f·w` (TF official, Keras, torchvision,
/// timm, EfficientNet-PyTorch all agree).
pub fn round_filters(filters: usize, width: f64, divisor: usize) -> usize {
    let scaled = filters as f64 * width;
    let divisor_f = divisor as f64;
    let rounded = (((scaled + divisor_f / 2.0) as usize) / divisor * divisor).max(divisor);
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

/// A fully specified EfficientNet: compound coefficients plus the base architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// The named variant, when the coefficients are exactly one.
    pub variant: Option<Variant>,
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
    /// Stem width before scaling.
    pub stem_channels: usize,
    /// Head width before scaling.
    pub head_channels: usize,
    /// The MBConv stages before scaling.
    pub base_stages: Vec<BaseStage>,
}

/// One scaled MBConv stage (paper stages 2–8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageSpec {
    /// Paper stage, 2–8.
    pub stage: u8,
    /// Depthwise kernel size.
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
    /// SE ratio relative to block input channels.
    pub se_ratio: f64,
}

/// One scaled MBConv block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockSpec {
    /// Paper stage, 2–8.
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
    /// Whether the block has a 1×1 expansion conv (expansion ratio ≠ 1).
    pub has_expand: bool,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Depthwise stride.
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
    /// The MBConv blocks, in order.
    pub blocks: Vec<BlockSpec>,
    /// Head 1×1 conv output channels.
    pub head_channels: usize,
    /// Classifier outputs; `None` for a model without a classifier.
    pub num_classes: Option<usize>,
    /// The input resolution the model is meant for, when known.
    pub resolution: Option<usize>,
    /// Dropout before the classifier.
    pub dropout: f64,
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
        }
    }

    /// The spec of a named variant at its native resolution.
    pub fn variant(variant: Variant) -> Self {
        let c = variant.coefficients();
        ModelSpec {
            variant: Some(variant),
            width: c.width,
            depth: c.depth,
            resolution: c.resolution,
            dropout: c.dropout,
            drop_connect_rate: 0.2,
            num_classes: 1000,
            depth_divisor: 8,
            stem_channels: 32,
            head_channels: 1280,
            base_stages: BASE_STAGES.to_vec(),
        }
    }

    /// A spec with arbitrary coefficients (B0's dropout); checked like
    /// [`ModelSpec::with_overrides`].
    pub fn custom(width: f64, depth: f64, resolution: usize) -> Result<Self, SpecError> {
        let spec = ModelSpec {
            variant: None,
            width,
            depth,
            resolution,
            ..ModelSpec::variant(Variant::B0)
        };
        spec.check()?;
        Ok(spec.named_if_standard())
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

    /// Names the spec after the variant whose width and depth it has, if any.
    fn named_if_standard(mut self) -> Self {
        if self.variant.is_none() {
            self.variant = Variant::ALL.into_iter().find(|v| {
                let c = v.coefficients();
                c.width == self.width && c.depth == self.depth
            });
        }
        self
    }

    /// A short label: `b0`, or `w=1.3 d=1.6` for custom coefficients.
    pub fn label(&self) -> String {
        match self.variant {
            Some(v) => v.name().to_owned(),
            None => format!("w={} d={}", self.width, self.depth),
        }
    }

    /// Scaled stem width.
    pub fn stem_out(&self) -> usize {
        round_filters(self.stem_channels, self.width, self.depth_divisor)
    }

    /// Scaled head width.
    pub fn head_out(&self) -> usize {
        round_filters(self.head_channels, self.width, self.depth_divisor)
    }

    /// The seven MBConv stages after scaling.
    pub fn stages(&self) -> Vec<StageSpec> {
        self.base_stages
            .iter()
            .enumerate()
            .map(|(i, b)| StageSpec {
                stage: i as u8 + 2,
                kernel: b.kernel,
                stride: b.stride,
                expand: b.expand,
                in_channels: round_filters(b.in_channels, self.width, self.depth_divisor),
                out_channels: round_filters(b.out_channels, self.width, self.depth_divisor),
                repeats: round_repeats(b.repeats, self.depth),
                se_ratio: b.se_ratio,
            })
            .collect()
    }

    /// Every MBConv block after scaling, in order.
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
