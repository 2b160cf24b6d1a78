//! The compound-scaling coefficients that best explain an architecture's widths and repeats.

use crate::{Architecture, Base, round_repeats};

/// Coefficients fitted to an architecture, with how many of its widths and repeats they
/// reproduce.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    /// Width coefficient.
    pub width: f64,
    /// Widths reproduced (stem, every stage, head; those the base scales).
    pub width_matches: usize,
    /// Widths compared.
    pub width_total: usize,
    /// Depth coefficient.
    pub depth: f64,
    /// Stage repeats reproduced.
    pub depth_matches: usize,
    /// Stages compared.
    pub depth_total: usize,
}

impl Fit {
    /// Whether the coefficients reproduce every width and every repeat count.
    pub fn is_exact(&self) -> bool {
        self.width_matches == self.width_total && self.depth_matches == self.depth_total
    }
}

/// Grid values from coarse (tenths) to fine (hundredths), each grid in `order`, so the
/// simplest explanation is met first.
fn grid(max: f64, descending: bool) -> Vec<f64> {
    let mut out = Vec::new();
    for steps in [10.0, 20.0, 100.0] {
        let mut values: Vec<f64> = (1..=(max * steps) as usize)
            .map(|i| (i as f64 / steps * 100.0).round() / 100.0)
            .collect();
        if descending {
            values.reverse();
        }
        out.extend(values);
    }
    out
}

/// Fits the width (the smallest that explains most widths: channel rounding makes an interval)
/// and depth (the roundest upper end of the interval `ceil` leaves) that scale `base` into
/// `arch`. Widths and repeats the base does not scale (Lite's stem, head, first and last
/// stage) are left out.
pub fn fit_coefficients(arch: &Architecture, base: &Base) -> Fit {
    let stage_out = |s: u8| {
        arch.blocks
            .iter()
            .rev()
            .find(|b| b.stage == s)
            .map(|b| b.out_channels)
    };
    let mut widths: Vec<(usize, Option<usize>)> = Vec::new();
    if !base.fixed_stem_head {
        widths.push((base.stem_channels, Some(arch.stem_channels)));
    }
    for (i, row) in base.stages.iter().enumerate() {
        widths.push((row.out_channels, stage_out(i as u8 + 2)));
    }
    if !base.fixed_stem_head {
        widths.push((base.head_channels, Some(arch.head_channels)));
    }
    let width_score = |w: f64| {
        widths
            .iter()
            .filter(|(filters, found)| Some(base.round(*filters, w, 8)) == *found)
            .count()
    };
    let last = base.stages.len().saturating_sub(1);
    let scaled_rows: Vec<(usize, usize)> = base
        .stages
        .iter()
        .enumerate()
        .filter(|(i, _)| !(base.fixed_first_last_repeats && (*i == 0 || *i == last)))
        .map(|(i, row)| {
            let found = arch
                .blocks
                .iter()
                .filter(|b| usize::from(b.stage) == i + 2)
                .count();
            (row.repeats, found)
        })
        .collect();
    let depth_score = |d: f64| {
        scaled_rows
            .iter()
            .filter(|&&(base_repeats, found)| round_repeats(base_repeats, d) == found)
            .count()
    };
    let best = |values: Vec<f64>, score: &dyn Fn(f64) -> usize| {
        let mut top = (values[0], score(values[0]));
        for v in values {
            let s = score(v);
            if s > top.1 {
                top = (v, s);
            }
        }
        top
    };
    let (width, width_matches) = best(grid(8.0, false), &width_score);
    let (depth, depth_matches) = best(grid(10.0, true), &depth_score);
    Fit {
        width,
        width_matches,
        width_total: widths.len(),
        depth,
        depth_matches,
        depth_total: scaled_rows.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EFFICIENTNET, ModelSpec, Variant};

    #[test]
    fn fits_reproduce_the_coefficients_that_made_them() {
        for (w, d) in [(0.1, 0.5), (1.3, 1.6), (0.5, 0.5), (2.0, 3.1)] {
            let fit = fit_coefficients(
                &ModelSpec::custom(w, d, 224).unwrap().architecture(),
                &EFFICIENTNET,
            );
            assert!(fit.is_exact(), "{w} {d}: {fit:?}");
            let again = ModelSpec::custom(fit.width, fit.depth, 224)
                .unwrap()
                .architecture();
            assert_eq!(again, ModelSpec::custom(w, d, 224).unwrap().architecture());
        }
        // B3's repeats are explained by any depth in (1.34, 1.5]: the fit is exact, if not 1.4.
        let b3 = fit_coefficients(
            &ModelSpec::variant(Variant::B3).architecture(),
            &EFFICIENTNET,
        );
        assert!(b3.is_exact());
        assert_eq!(b3.width, 1.2);
    }

    #[test]
    fn one_deviating_stage_still_fits_the_rest() {
        let mut arch = ModelSpec::custom(0.1, 0.5, 224).unwrap().architecture();
        arch.head_channels = 1024;
        let fit = fit_coefficients(&arch, &EFFICIENTNET);
        assert_eq!((fit.width, fit.depth), (0.1, 0.5));
        assert_eq!(fit.width_matches, fit.width_total - 1);
    }
}
