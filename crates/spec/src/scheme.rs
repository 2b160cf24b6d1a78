use std::fmt;
use std::str::FromStr;

use effnet_ir::{Activation, InputNormalization};

use crate::{Family, SpecError, Variant};

/// ImageNet mean of 0–1 RGB pixels.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation of 0–1 RGB pixels.
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// An implementation whose conventions a graph follows. The naming schemes of the importers
/// and exporters carry these semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// The tensorflow/tpu release: TF "same" padding, eps 1e-3, preprocessing outside.
    TfOfficial,
    /// `keras.applications`: TF "same" padding, eps 1e-3, Rescaling + Normalization (+ the
    /// Keras ≥ 2.9 variance fix) inside the model, softmax head.
    Keras,
    /// torchvision: symmetric padding; eps 1e-5 for B0–B4, 1e-3 for B5–B7 and V2.
    Torchvision,
    /// timm `efficientnet_bX`: symmetric padding, eps 1e-5.
    Timm,
    /// timm `tf_efficientnet_bX`: TF "same" padding, eps 1e-3.
    TimmTf,
    /// EfficientNet-PyTorch (lukemelas): static TF "same" padding, eps 1e-3.
    Lukemelas,
}

/// How convolutions pad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaddingStyle {
    /// TensorFlow "same" (extra pixel at the end).
    TfSame,
    /// `(k − 1) / 2` on every side.
    Symmetric,
}

/// Preprocessing a scheme keeps inside the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preprocessing {
    /// None: the caller normalizes (see [`Semantics::input_normalization`]).
    External,
    /// keras.applications EfficientNet: `Rescaling(1/255)` → `Normalization(mean, "variance" =
    /// std)`, and when `variance_fix` (Keras ≥ 2.9 with `weights="imagenet"`) a second
    /// `Rescaling(1/sqrt(std))` that turns the result into `(x − mean) / std`.
    Keras {
        /// Whether the second `Rescaling` is present.
        variance_fix: bool,
    },
    /// keras.applications EfficientNetV2-B0–B3: `Rescaling(1/255)` → `Normalization(mean,
    /// variance = std²)`, which computes `(x − mean) / std`.
    KerasNormalization,
    /// keras.applications EfficientNetV2-S/M/L: `Rescaling(1/128, offset −1)`, pixels to
    /// [−1, 1].
    KerasSigned,
}

/// The conventions that change a model's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Semantics {
    /// The scheme these come from.
    pub scheme: Scheme,
    /// Convolution padding.
    pub padding: PaddingStyle,
    /// BatchNorm epsilon.
    pub bn_eps: f64,
    /// BatchNorm momentum in PyTorch's convention (weight of the batch statistics).
    pub bn_momentum: f64,
    /// Preprocessing inside the model.
    pub preprocessing: Preprocessing,
    /// Activation after the classifier (`None`: logits).
    pub classifier_activation: Option<Activation>,
    /// What the caller must do to 0–255 pixels, when the model does not do it.
    pub input_normalization: Option<InputNormalization>,
    /// Whether the first block of a stage keeps its shortcut when it has stride 1 and
    /// in = out. EfficientNet-PyTorch stores that block's stride as a list (`[1]`), so its
    /// `stride == 1` test fails and the shortcut is dropped; this only shows in custom widths
    /// where a stage's first block keeps its channels (never in B0–B7).
    pub stage_first_residual: bool,
}

impl Scheme {
    /// Every scheme.
    pub const ALL: [Scheme; 6] = [
        Scheme::TfOfficial,
        Scheme::Keras,
        Scheme::Torchvision,
        Scheme::Timm,
        Scheme::TimmTf,
        Scheme::Lukemelas,
    ];

    /// The scheme's name on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::TfOfficial => "tf-official",
            Scheme::Keras => "keras",
            Scheme::Torchvision => "torchvision",
            Scheme::Timm => "timm",
            Scheme::TimmTf => "timm-tf",
            Scheme::Lukemelas => "lukemelas",
        }
    }

    /// The scheme's semantics for a model of `variant` (torchvision's epsilon depends on it;
    /// `None` for custom coefficients of B0).
    pub fn semantics(self, variant: Option<Variant>) -> Semantics {
        let imagenet = Some(InputNormalization {
            pixel_scale: 1.0 / 255.0,
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
        });
        let (padding, bn_eps, bn_momentum) = match self {
            Scheme::TfOfficial | Scheme::Keras | Scheme::Lukemelas => {
                (PaddingStyle::TfSame, 1e-3, 0.01)
            }
            Scheme::TimmTf => (PaddingStyle::TfSame, 1e-3, 0.1),
            Scheme::Timm => (PaddingStyle::Symmetric, 1e-5, 0.1),
            Scheme::Torchvision => match variant {
                Some(Variant::B5 | Variant::B6 | Variant::B7) => {
                    (PaddingStyle::Symmetric, 1e-3, 0.01)
                }
                Some(v) if v.family() == Family::V2 => (PaddingStyle::Symmetric, 1e-3, 0.1),
                _ => (PaddingStyle::Symmetric, 1e-5, 0.1),
            },
        };
        let keras = self == Scheme::Keras;
        let keras_preprocessing = match variant {
            Some(Variant::V2S | Variant::V2M | Variant::V2L | Variant::V2XL) => {
                Preprocessing::KerasSigned
            }
            Some(v) if v.family() == Family::V2 => Preprocessing::KerasNormalization,
            _ => Preprocessing::Keras { variance_fix: true },
        };
        Semantics {
            scheme: self,
            padding,
            bn_eps,
            bn_momentum,
            preprocessing: if keras {
                keras_preprocessing
            } else {
                Preprocessing::External
            },
            classifier_activation: keras.then_some(Activation::Softmax),
            input_normalization: if keras { None } else { imagenet },
            stage_first_residual: self != Scheme::Lukemelas,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase().replace('_', "-");
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.name() == lower)
            .ok_or_else(|| SpecError::UnknownScheme(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_per_scheme_matches_reference_g2() {
        let b0 = Some(Variant::B0);
        let b5 = Some(Variant::B5);
        assert_eq!(Scheme::Torchvision.semantics(b0).bn_eps, 1e-5);
        assert_eq!(Scheme::Torchvision.semantics(b5).bn_eps, 1e-3);
        assert_eq!(Scheme::Timm.semantics(b5).bn_eps, 1e-5);
        assert_eq!(Scheme::TimmTf.semantics(b0).bn_eps, 1e-3);
        assert_eq!(Scheme::Keras.semantics(b0).bn_eps, 1e-3);
        assert_eq!(
            Scheme::Lukemelas.semantics(b0).padding,
            PaddingStyle::TfSame
        );
        assert_eq!(Scheme::Timm.semantics(b0).padding, PaddingStyle::Symmetric);
    }

    #[test]
    fn names_round_trip() {
        for scheme in Scheme::ALL {
            assert_eq!(scheme.name().parse::<Scheme>().unwrap(), scheme);
        }
        assert_eq!("timm_tf".parse::<Scheme>().unwrap(), Scheme::TimmTf);
        assert!("caffe".parse::<Scheme>().is_err());
    }
}
