//! Which EfficientNet an inferred architecture is: a named variant of any family, or the
//! compound-scaling coefficients of a family's base that explain its widths and repeats.

use effnet_spec::{Architecture, Base, Family, ModelSpec, Variant, fit_coefficients};

/// What an architecture was identified as.
#[derive(Clone, Debug, PartialEq)]
pub enum Identity {
    /// Exactly a named variant's network.
    Variant(Variant),
    /// A base network scaled by these coefficients (the simplest that explain it).
    Custom {
        /// The base network (B0's, Lite's, one of V2's).
        base: Base,
        /// Width coefficient.
        width: f64,
        /// Depth coefficient.
        depth: f64,
    },
    /// Not explained by compound scaling of any base.
    Unknown,
}

impl Identity {
    /// `b0`, `v2-s`, `custom w=0.1 d=0.5`, `custom lite w=0.5 d=0.5`, or `unknown`.
    pub fn label(&self) -> String {
        match self {
            Identity::Variant(v) => v.name().to_owned(),
            Identity::Custom { base, width, depth } if base.family == Family::EfficientNet => {
                format!("custom w={width} d={depth}")
            }
            Identity::Custom { base, width, depth } => {
                format!("custom {} w={width} d={depth}", base.name)
            }
            Identity::Unknown => "unknown".to_owned(),
        }
    }

    /// The coefficients, when known.
    pub fn coefficients(&self) -> Option<(f64, f64)> {
        match self {
            Identity::Variant(v) => Some((v.coefficients().width, v.coefficients().depth)),
            Identity::Custom { width, depth, .. } => Some((*width, *depth)),
            Identity::Unknown => None,
        }
    }

    /// The family, when known.
    pub fn family(&self) -> Option<Family> {
        match self {
            Identity::Variant(v) => Some(v.family()),
            Identity::Custom { base, .. } => Some(base.family),
            Identity::Unknown => None,
        }
    }

    /// The variant whose scheme conventions (epsilon, Keras preprocessing) apply: the
    /// variant, or the first variant of a custom model's base (V2-S's for a scaled V2-S).
    pub fn semantics_variant(&self) -> Option<Variant> {
        match self {
            Identity::Variant(v) => Some(*v),
            Identity::Custom { base, .. } => Variant::ALL.into_iter().find(|v| v.base() == *base),
            Identity::Unknown => None,
        }
    }

    /// The base network, when known.
    pub fn base(&self) -> Option<Base> {
        match self {
            Identity::Variant(v) => Some(v.base()),
            Identity::Custom { base, .. } => Some(*base),
            Identity::Unknown => None,
        }
    }
}

/// The structure two architectures must share to be the same network (not the classifier,
/// not the resolution).
#[allow(clippy::type_complexity)]
fn shape(
    a: &Architecture,
) -> (
    usize,
    usize,
    usize,
    Vec<(
        effnet_ir::BlockKind,
        u8,
        usize,
        usize,
        usize,
        usize,
        Option<usize>,
    )>,
) {
    (
        a.stem_channels,
        a.stem_kernel,
        a.head_channels,
        a.blocks
            .iter()
            .map(|b| {
                (
                    b.kind,
                    b.stage,
                    b.in_channels,
                    b.expanded_channels,
                    b.out_channels,
                    b.kernel,
                    b.se_channels,
                )
            })
            .collect(),
    )
}

/// Compares the network with every named variant of every family, then searches the width and
/// depth coefficients of each base that reproduce it.
pub fn identify(arch: &Architecture) -> Identity {
    let ours = shape(arch);
    if let Some(v) = Variant::ALL
        .into_iter()
        .find(|v| shape(&ModelSpec::variant(*v).architecture()) == ours)
    {
        return Identity::Variant(v);
    }
    for base in Base::ALL {
        let fit = fit_coefficients(arch, &base);
        if !fit.is_exact() {
            continue;
        }
        let (width, depth) = (fit.width, fit.depth);
        let candidate =
            ModelSpec::scaled(base, width, depth, 224).map(|s| shape(&s.architecture()));
        if candidate.ok().as_ref() == Some(&ours) {
            return Identity::Custom { base, width, depth };
        }
    }
    Identity::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use effnet_spec::{EFFICIENTNET, LITE, V2_S};

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
        for (base, w, d, label) in [
            (EFFICIENTNET, 0.1, 0.5, "custom w=0.1 d=0.5"),
            (EFFICIENTNET, 1.3, 1.6, "custom w=1.3 d=1.6"),
            (LITE, 0.5, 0.5, "custom lite w=0.5 d=0.5"),
            (V2_S, 0.25, 0.2, "custom v2-s w=0.25 d=0.2"),
        ] {
            let arch = ModelSpec::scaled(base, w, d, 64).unwrap().architecture();
            let identity = identify(&arch);
            assert_eq!(identity.label(), label);
            assert_eq!(identity.family(), Some(base.family));
        }
    }
}
