use std::fmt;
use std::str::FromStr;

use crate::SpecError;

/// A named EfficientNet variant.
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
}

/// Compound-scaling coefficients of a variant (the paper's Table 1 and the TF release).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coefficients {
    /// Width multiplier.
    pub width: f64,
    /// Depth multiplier.
    pub depth: f64,
    /// Native input resolution.
    pub resolution: usize,
    /// Dropout before the classifier.
    pub dropout: f64,
}

impl Variant {
    /// Every variant, smallest first.
    pub const ALL: [Variant; 10] = [
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
    ];

    /// Lower-case name: `b0` … `b8`, `l2`.
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
        }
    }

    /// The coefficients of `efficientnet_params` in tensorflow/tpu (identical in Keras,
    /// torchvision, timm and EfficientNet-PyTorch).
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

    /// Accepts `b0`, `B0`, `efficientnet-b0`, `efficientnet_b0`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let short = lower
            .strip_prefix("efficientnet-")
            .or_else(|| lower.strip_prefix("efficientnet_"))
            .unwrap_or(&lower);
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == short)
            .ok_or_else(|| SpecError::UnknownVariant(s.to_owned()))
    }
}
