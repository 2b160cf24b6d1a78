use std::fmt;
use std::str::FromStr;

use effnet_ir::Activation;

use crate::SpecError;
use crate::model::{Base, EFFICIENTNET, LITE, V2_BASE, V2_L, V2_M, V2_S, V2_XL};

/// A family of EfficientNets: one base network and its scaling rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// EfficientNet B0–B7 (and B8, L2): MBConv blocks with squeeze-excitation, swish.
    EfficientNet,
    /// EfficientNet-Lite0–4: B0's blocks without squeeze-excitation, ReLU6, stem and head and
    /// the first and last stages' repeats not scaled.
    Lite,
    /// EfficientNetV2 (B0–B3, S, M, L, XL): Fused-MBConv early stages, MBConv with
    /// squeeze-excitation later, swish.
    V2,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 3] = [Family::EfficientNet, Family::Lite, Family::V2];

    /// `efficientnet`, `efficientnet-lite`, `efficientnet-v2`: the name JSON reports carry.
    pub const fn name(self) -> &'static str {
        match self {
            Family::EfficientNet => "efficientnet",
            Family::Lite => "efficientnet-lite",
            Family::V2 => "efficientnet-v2",
        }
    }

    /// The name the papers use: `EfficientNet`, `EfficientNet-Lite`, `EfficientNetV2`.
    pub const fn title(self) -> &'static str {
        match self {
            Family::EfficientNet => "EfficientNet",
            Family::Lite => "EfficientNet-Lite",
            Family::V2 => "EfficientNetV2",
        }
    }

    /// The variant whose conventions (epsilon, preprocessing) a custom model of the family
    /// shares; `None` for EfficientNet, whose B0 conventions are the default.
    pub const fn representative(self) -> Option<Variant> {
        match self {
            Family::EfficientNet => None,
            Family::Lite => Some(Variant::Lite0),
            Family::V2 => Some(Variant::V2B0),
        }
    }

    /// The activation of the stem, the blocks and the head.
    pub const fn activation(self) -> Activation {
        match self {
            Family::Lite => Activation::Relu6,
            Family::EfficientNet | Family::V2 => Activation::Swish,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A named EfficientNet variant of any family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// EfficientNet-B0, the baseline found by the architecture search.
    B0,
    /// EfficientNet-B1.
    B1,
    /// EfficientNet-B2.
    B2,
    /// EfficientNet-B3.
    B3,
    /// EfficientNet-B4.
    B4,
    /// EfficientNet-B5.
    B5,
    /// EfficientNet-B6.
    B6,
    /// EfficientNet-B7.
    B7,
    /// EfficientNet-B8 (AdvProp).
    B8,
    /// EfficientNet-L2 (Noisy Student).
    L2,
    /// EfficientNet-Lite0.
    Lite0,
    /// EfficientNet-Lite1.
    Lite1,
    /// EfficientNet-Lite2.
    Lite2,
    /// EfficientNet-Lite3.
    Lite3,
    /// EfficientNet-Lite4.
    Lite4,
    /// EfficientNetV2-B0.
    V2B0,
    /// EfficientNetV2-B1.
    V2B1,
    /// EfficientNetV2-B2.
    V2B2,
    /// EfficientNetV2-B3.
    V2B3,
    /// EfficientNetV2-S.
    V2S,
    /// EfficientNetV2-M.
    V2M,
    /// EfficientNetV2-L.
    V2L,
    /// EfficientNetV2-XL.
    V2XL,
}

/// Compound-scaling coefficients of a variant (the papers' tables and the reference releases).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coefficients {
    /// Width multiplier.
    pub width: f64,
    /// Depth multiplier.
    pub depth: f64,
    /// Native (evaluation) input resolution.
    pub resolution: usize,
    /// Dropout before the classifier.
    pub dropout: f64,
}

impl Variant {
    /// Every variant: B0–B7 first (in that order), then B8, L2, Lite0–4, V2.
    pub const ALL: [Variant; 23] = [
        Variant::B0,
        Variant::B1,
        Variant::B2,
        Variant::B3,
        Variant::B4,
        Variant::B5,
        Variant::B6,
        Variant::B7,
        Variant::B8,
        Variant::L2,
        Variant::Lite0,
        Variant::Lite1,
        Variant::Lite2,
        Variant::Lite3,
        Variant::Lite4,
        Variant::V2B0,
        Variant::V2B1,
        Variant::V2B2,
        Variant::V2B3,
        Variant::V2S,
        Variant::V2M,
        Variant::V2L,
        Variant::V2XL,
    ];

    /// Lower-case name: `b0` … `b8`, `l2`, `lite0` … `lite4`, `v2-b0` … `v2-b3`, `v2-s`,
    /// `v2-m`, `v2-l`, `v2-xl`.
    pub const fn name(self) -> &'static str {
        match self {
            Variant::B0 => "b0",
            Variant::B1 => "b1",
            Variant::B2 => "b2",
            Variant::B3 => "b3",
            Variant::B4 => "b4",
            Variant::B5 => "b5",
            Variant::B6 => "b6",
            Variant::B7 => "b7",
            Variant::B8 => "b8",
            Variant::L2 => "l2",
            Variant::Lite0 => "lite0",
            Variant::Lite1 => "lite1",
            Variant::Lite2 => "lite2",
            Variant::Lite3 => "lite3",
            Variant::Lite4 => "lite4",
            Variant::V2B0 => "v2-b0",
            Variant::V2B1 => "v2-b1",
            Variant::V2B2 => "v2-b2",
            Variant::V2B3 => "v2-b3",
            Variant::V2S => "v2-s",
            Variant::V2M => "v2-m",
            Variant::V2L => "v2-l",
            Variant::V2XL => "v2-xl",
        }
    }

    /// The name the papers use: `EfficientNet-B0`, `EfficientNet-Lite0`, `EfficientNetV2-S`.
    pub fn display_name(self) -> String {
        let name = self.name();
        match self.family() {
            Family::EfficientNet => format!("EfficientNet-{}", name.to_uppercase()),
            Family::Lite => format!("EfficientNet-Lite{}", &name[4..]),
            Family::V2 => format!("EfficientNetV2-{}", name[3..].to_uppercase()),
        }
    }

    /// The family.
    pub const fn family(self) -> Family {
        self.base().family
    }

    /// The base network the variant scales.
    pub const fn base(self) -> Base {
        match self {
            Variant::B0
            | Variant::B1
            | Variant::B2
            | Variant::B3
            | Variant::B4
            | Variant::B5
            | Variant::B6
            | Variant::B7
            | Variant::B8
            | Variant::L2 => EFFICIENTNET,
            Variant::Lite0 | Variant::Lite1 | Variant::Lite2 | Variant::Lite3 | Variant::Lite4 => {
                LITE
            }
            Variant::V2B0 | Variant::V2B1 | Variant::V2B2 | Variant::V2B3 => V2_BASE,
            Variant::V2S => V2_S,
            Variant::V2M => V2_M,
            Variant::V2L => V2_L,
            Variant::V2XL => V2_XL,
        }
    }

    /// The coefficients: `efficientnet_params` of tensorflow/tpu for B0–L2 (identical in Keras,
    /// torchvision, timm and EfficientNet-PyTorch), `efficientnet_lite_params` for Lite, the
    /// EfficientNetV2 configs (google/automl) for V2, whose S/M/L/XL have tables of their own.
    pub const fn coefficients(self) -> Coefficients {
        let (width, depth, resolution, dropout) = match self {
            Variant::B0 => (1.0, 1.0, 224, 0.2),
            Variant::B1 => (1.0, 1.1, 240, 0.2),
            Variant::B2 => (1.1, 1.2, 260, 0.3),
            Variant::B3 => (1.2, 1.4, 300, 0.3),
            Variant::B4 => (1.4, 1.8, 380, 0.4),
            Variant::B5 => (1.6, 2.2, 456, 0.4),
            Variant::B6 => (1.8, 2.6, 528, 0.5),
            Variant::B7 => (2.0, 3.1, 600, 0.5),
            Variant::B8 => (2.2, 3.6, 672, 0.5),
            Variant::L2 => (4.3, 5.3, 800, 0.5),
            Variant::Lite0 => (1.0, 1.0, 224, 0.2),
            Variant::Lite1 => (1.0, 1.1, 240, 0.2),
            Variant::Lite2 => (1.1, 1.2, 260, 0.3),
            Variant::Lite3 => (1.2, 1.4, 280, 0.3),
            Variant::Lite4 => (1.4, 1.8, 300, 0.3),
            Variant::V2B0 => (1.0, 1.0, 224, 0.2),
            Variant::V2B1 => (1.0, 1.1, 240, 0.2),
            Variant::V2B2 => (1.1, 1.2, 260, 0.3),
            Variant::V2B3 => (1.2, 1.4, 300, 0.3),
            Variant::V2S => (1.0, 1.0, 384, 0.2),
            Variant::V2M => (1.0, 1.0, 480, 0.3),
            Variant::V2L => (1.0, 1.0, 480, 0.4),
            Variant::V2XL => (1.0, 1.0, 512, 0.4),
        };
        Coefficients {
            width,
            depth,
            resolution,
            dropout,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = SpecError;

    /// Accepts the names and the frameworks' spellings: `b0`, `B0`, `efficientnet-b0`,
    /// `efficientnet_lite0`, `efficientnetv2-s`, `efficientnet_v2_s`, `v2_b0`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase().replace('_', "-");
        // timm's TF ports: `tf_efficientnetv2_s`, `tf_efficientnet_lite0`.
        let lower = lower.strip_prefix("tf-").unwrap_or(&lower);
        let short = lower
            .strip_prefix("efficientnet")
            .map(|rest| rest.trim_start_matches('-'))
            .unwrap_or(lower);
        let short = match short.strip_prefix("v2") {
            Some(rest) if !rest.is_empty() && !rest.starts_with('-') => format!("v2-{rest}"),
            _ => short.to_owned(),
        };
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == short)
            .ok_or_else(|| SpecError::UnknownVariant(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_the_frameworks_spellings() {
        for (text, variant) in [
            ("b0", Variant::B0),
            ("efficientnet_b3", Variant::B3),
            ("efficientnet-lite0", Variant::Lite0),
            ("LITE4", Variant::Lite4),
            ("v2-s", Variant::V2S),
            ("efficientnet_v2_s", Variant::V2S),
            ("efficientnetv2-b2", Variant::V2B2),
            ("efficientnetv2_xl", Variant::V2XL),
            ("v2_m", Variant::V2M),
            ("tf_efficientnetv2_b3", Variant::V2B3),
            ("tf_efficientnet_lite4", Variant::Lite4),
            ("EfficientNetV2S", Variant::V2S),
        ] {
            assert_eq!(text.parse::<Variant>().unwrap(), variant, "{text}");
        }
        for v in Variant::ALL {
            assert_eq!(v.name().parse::<Variant>().unwrap(), v);
        }
        assert!("v2-b9".parse::<Variant>().is_err());
        assert_eq!(Variant::V2S.display_name(), "EfficientNetV2-S");
        assert_eq!(Variant::Lite3.display_name(), "EfficientNet-Lite3");
        assert_eq!(Variant::B7.display_name(), "EfficientNet-B7");
    }
}
