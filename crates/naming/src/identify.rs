//! Which EfficientNet an inferred architecture is: a named variant, or the compound-scaling
//! coefficients that explain its widths and repeats.

use effnet_spec::{Architecture, BASE_STAGES, ModelSpec, Variant, round_filters, round_repeats};

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
    let (Some(width), Some(depth)) = (find_width(arch), find_depth(arch)) else {
        return Identity::Unknown;
    };
    let candidate = ModelSpec::custom(width, depth, 224).map(|s| shape(&s.architecture()));
    if candidate.ok().as_ref() == Some(&ours) {
        Identity::Custom { width, depth }
    } else {
        Identity::Unknown
    }
}

/// Candidate coefficients from coarse to fine, so the simplest explanation wins.
fn candidates(max: f64) -> impl Iterator<Item = f64> {
    [10.0, 20.0, 100.0].into_iter().flat_map(move |steps| {
        (1..=(max * steps) as usize).map(move |i| (i as f64 / steps * 100.0).round() / 100.0)
    })
}

fn find_width(arch: &Architecture) -> Option<f64> {
    let mut outs: Vec<(u8, usize)> = arch
        .blocks
        .iter()
        .map(|b| (b.stage, b.out_channels))
        .collect();
    outs.dedup();
    if outs.len() != BASE_STAGES.len() {
        return None;
    }
    candidates(8.0).find(|&w| {
        round_filters(32, w, 8) == arch.stem_channels
            && round_filters(1280, w, 8) == arch.head_channels
            && outs
                .iter()
                .zip(BASE_STAGES.iter())
                .all(|(&(_, out), base)| round_filters(base.out_channels, w, 8) == out)
    })
}

fn find_depth(arch: &Architecture) -> Option<f64> {
    let repeats: Vec<usize> = (2..=8u8)
        .map(|s| arch.blocks.iter().filter(|b| b.stage == s).count())
        .collect();
    // Repeats round up, so the values explaining them form an interval (a, b]; its upper end
    // is the round number a user would have chosen.
    let fits = |d: f64| {
        repeats
            .iter()
            .zip(BASE_STAGES.iter())
            .all(|(&r, base)| round_repeats(base.repeats, d) == r)
    };
    [10.0, 20.0, 100.0].into_iter().find_map(|steps| {
        (1..=(10.0 * steps) as usize)
            .rev()
            .map(|i| (i as f64 / steps * 100.0).round() / 100.0)
            .find(|&d| fits(d))
    })
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
