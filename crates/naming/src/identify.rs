//! Which EfficientNet an inferred architecture is: a named variant, or the compound-scaling
//! coefficients that explain its widths and repeats.

use effnet_spec::{Architecture, ModelSpec, Variant, fit_coefficients};

/// What an architecture was identified as.
#[derive(Clone, Debug, PartialEq)]
pub enum Identity {
    /// Exactly a named variant's network.
    Variant(Variant),
    /// EfficientNet's structure scaled by these coefficients (the simplest that explain it).
    Custom {
        /// Width coefficient.
        width: f64,
        /// Depth coefficient.
        depth: f64,
    },
    /// Not explained by compound scaling of B0.
    Unknown,
}

impl Identity {
    /// `b0`, `custom w=0.1 d=0.5`, or `unknown`.
    pub fn label(&self) -> String {
        match self {
            Identity::Variant(v) => v.name().to_owned(),
            Identity::Custom { width, depth } => format!("custom w={width} d={depth}"),
            Identity::Unknown => "unknown".to_owned(),
        }
    }

    /// The coefficients, when known.
    pub fn coefficients(&self) -> Option<(f64, f64)> {
        match self {
            Identity::Variant(v) => Some((v.coefficients().width, v.coefficients().depth)),
            Identity::Custom { width, depth } => Some((*width, *depth)),
            Identity::Unknown => None,
        }
    }
}

/// Compares the network (not the classifier, not the resolution) with B0–L2, then searches
/// width/depth coefficients that reproduce it.
pub fn identify(arch: &Architecture) -> Identity {
    let shape = |a: &Architecture| {
        (
            a.stem_channels,
            a.stem_kernel,
            a.head_channels,
            a.blocks
                .iter()
                .map(|b| {
                    (
                        b.stage,
                        b.in_channels,
                        b.expanded_channels,
                        b.out_channels,
                        b.kernel,
                        b.se_channels,
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    let ours = shape(arch);
    if let Some(v) = Variant::ALL
        .into_iter()
        .find(|v| shape(&ModelSpec::variant(*v).architecture()) == ours)
    {
        return Identity::Variant(v);
    }
    let fit = fit_coefficients(arch);
    if !fit.is_exact() {
        return Identity::Unknown;
    }
    let (width, depth) = (fit.width, fit.depth);
    let candidate = ModelSpec::custom(width, depth, 224).map(|s| shape(&s.architecture()));
    if candidate.ok().as_ref() == Some(&ours) {
        Identity::Custom { width, depth }
    } else {
        Identity::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_recognised() {
        for v in Variant::ALL {
            assert_eq!(
                identify(&ModelSpec::variant(v).architecture()),
                Identity::Variant(v)
            );
        }
    }

    #[test]
    fn custom_coefficients_are_found() {
        let arch = ModelSpec::custom(0.1, 0.5, 64).unwrap().architecture();
        assert_eq!(
            identify(&arch),
            Identity::Custom {
                width: 0.1,
                depth: 0.5
            }
        );
        let arch = ModelSpec::custom(1.3, 1.6, 224).unwrap().architecture();
        assert_eq!(identify(&arch).label(), "custom w=1.3 d=1.6");
    }
}
