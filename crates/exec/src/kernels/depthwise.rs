//! Depthwise convolution, one channel plane at a time.
//!
//! The plane is copied once into a zero-padded scratch buffer; with a stride `s > 1` its
//! columns are also split into `s` phases (column `j·s + p` goes to phase `p`, position `j`).
//! Every tap `(ky, kx)` then reads a contiguous run of one padded row, so the inner loop —
//! `out[x] += w · row[x + offset]` over an output row kept in L1 — is a plain slice loop the
//! compiler vectorizes. Bias and activation are applied to the finished plane.

use rayon::prelude::*;

use super::act::scale_shift_act;
use super::conv::Filter;
use super::simd::dispatch;

/// A depthwise convolution's geometry for one input size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DwGeometry {
    pub in_hw: [usize; 2],
    pub out_hw: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

impl DwGeometry {
    fn padded(&self) -> [usize; 2] {
        [
            self.in_hw[0] + self.pads[0] + self.pads[2],
            self.in_hw[1] + self.pads[1] + self.pads[3],
        ]
    }

    /// Scratch floats one plane needs.
    pub fn scratch_len(&self) -> usize {
        let [ph, pw] = self.padded();
        let sw = self.stride[1];
        ph * pw.div_ceil(sw) * sw
    }
}

/// Copies `x` (h × w) into `scratch` padded, split into column phases of the stride.
fn pad_plane(x: &[f32], g: &DwGeometry, scratch: &mut [f32]) -> usize {
    let [h, w] = g.in_hw;
    let [ph, pw] = g.padded();
    let s = g.stride[1];
    let phase_w = pw.div_ceil(s);
    let row_len = phase_w * s;
    if s == 1 {
        // Rows of padding whole, and the pad columns of each image row.
        scratch[..g.pads[0] * row_len].fill(0.0);
        scratch[(g.pads[0] + h) * row_len..ph * row_len].fill(0.0);
        for y in 0..h {
            let row = &mut scratch[(y + g.pads[0]) * row_len..(y + g.pads[0] + 1) * row_len];
            row[..g.pads[1]].fill(0.0);
            row[g.pads[1] + w..].fill(0.0);
        }
    } else {
        scratch[..ph * row_len].fill(0.0);
    }
    for y in 0..h {
        let dst = &mut scratch[(y + g.pads[0]) * row_len..(y + g.pads[0] + 1) * row_len];
        let src = &x[y * w..(y + 1) * w];
        if s == 1 {
            dst[g.pads[1]..g.pads[1] + w].copy_from_slice(src);
        } else if s == 2 {
            split_phases(src, g.pads[1], phase_w, dst);
        } else {
            for (i, &v) in src.iter().enumerate() {
                let col = i + g.pads[1];
                dst[(col % s) * phase_w + col / s] = v;
            }
        }
    }
    phase_w
}

/// Column `pad + i` of a padded row goes to phase `(pad + i) % 2` at `(pad + i) / 2`: pairs of
/// `src` split into the two phases with contiguous writes (the compiler vectorizes this
/// deinterleave; one element at a time it was the slowest part of a stride-2 plane).
fn split_phases(src: &[f32], pad: usize, phase_w: usize, dst: &mut [f32]) {
    let (even, odd) = dst.split_at_mut(phase_w);
    // The first element lands on an odd column when `pad` is odd: place it alone, then pairs
    // start on an even column.
    let (first, rest) = if pad % 2 == 1 && !src.is_empty() {
        odd[pad / 2] = src[0];
        (pad + 1, &src[1..])
    } else {
        (pad, src)
    };
    let base = first / 2;
    let pairs = rest.chunks_exact(2);
    let tail = pairs.remainder();
    let n = rest.len() / 2;
    for ((e, o), pair) in even[base..base + n]
        .iter_mut()
        .zip(&mut odd[base..base + n])
        .zip(pairs)
    {
        *e = pair[0];
        *o = pair[1];
    }
    if let [last] = tail {
        even[base + n] = *last;
    }
}

#[inline(always)]
fn first_tap_impl(out: &mut [f32], src: &[f32], w: f32) {
    out.iter_mut().zip(src).for_each(|(o, &i)| *o = w * i);
}

dispatch! {
    /// `out[x] = w · src[x]`.
    fn first_tap(out: &mut [f32], src: &[f32], w: f32) => first_tap_impl
}

#[inline(always)]
fn taps_impl(out: &mut [f32], src: &[f32], w: f32) {
    out.iter_mut().zip(src).for_each(|(o, &i)| *o += w * i);
}

dispatch! {
    /// `out[x] += w · src[x]`.
    fn taps(out: &mut [f32], src: &[f32], w: f32) => taps_impl
}

/// One kernel row of `K` taps on one output row: `out[x] (+)= Σ_t w[t] · row[starts[t] + x]`,
/// the taps summed in order onto the output (the same order as one pass per tap), one load and
/// store of the output per kernel row instead of one per tap.
#[inline(always)]
fn row_taps_impl<const K: usize>(
    out: &mut [f32],
    row: &[f32],
    starts: [usize; K],
    w: [f32; K],
    first: bool,
) {
    let ow = out.len();
    let srcs: [&[f32]; K] = std::array::from_fn(|t| &row[starts[t]..starts[t] + ow]);
    for (x, o) in out.iter_mut().enumerate() {
        let mut acc = if first {
            w[0] * srcs[0][x]
        } else {
            *o + w[0] * srcs[0][x]
        };
        for t in 1..K {
            acc += w[t] * srcs[t][x];
        }
        *o = acc;
    }
}

#[inline(always)]
fn row_taps3_impl(out: &mut [f32], row: &[f32], starts: [usize; 3], w: [f32; 3], first: bool) {
    row_taps_impl::<3>(out, row, starts, w, first)
}

#[inline(always)]
fn row_taps5_impl(out: &mut [f32], row: &[f32], starts: [usize; 5], w: [f32; 5], first: bool) {
    row_taps_impl::<5>(out, row, starts, w, first)
}

dispatch! {
    /// Three taps of one kernel row.
    fn row_taps3(out: &mut [f32], row: &[f32], starts: [usize; 3], w: [f32; 3], first: bool) => row_taps3_impl
}

dispatch! {
    /// Five taps of one kernel row.
    fn row_taps5(out: &mut [f32], row: &[f32], starts: [usize; 5], w: [f32; 5], first: bool) => row_taps5_impl
}

/// One output plane of a depthwise convolution.
fn plane(x: &[f32], weights: &[f32], g: &DwGeometry, scratch: &mut [f32], out: &mut [f32]) {
    let phase_w = pad_plane(x, g, scratch);
    let s = g.stride;
    let row_len = phase_w * s[1];
    let [oh, ow] = g.out_hw;
    let [kh, kw] = g.kernel;
    let start = |kx: usize| {
        let col = kx * g.dilation[1];
        (col % s[1]) * phase_w + col / s[1]
    };
    for oy in 0..oh {
        let out_row = &mut out[oy * ow..(oy + 1) * ow];
        for ky in 0..kh {
            let iy = oy * s[0] + ky * g.dilation[0];
            let row = &scratch[iy * row_len..(iy + 1) * row_len];
            let w = &weights[ky * kw..(ky + 1) * kw];
            let first = ky == 0;
            match kw {
                3 => row_taps3(
                    out_row,
                    row,
                    std::array::from_fn(start),
                    std::array::from_fn(|t| w[t]),
                    first,
                ),
                5 => row_taps5(
                    out_row,
                    row,
                    std::array::from_fn(start),
                    std::array::from_fn(|t| w[t]),
                    first,
                ),
                _ => {
                    for (kx, &wt) in w.iter().enumerate() {
                        let src = &row[start(kx)..start(kx) + ow];
                        if first && kx == 0 {
                            first_tap(out_row, src, wt);
                        } else {
                            taps(out_row, src, wt);
                        }
                    }
                }
            }
        }
    }
}

/// Depthwise convolution of `x` (`n × c × h × w`, one filter per channel) into `out`
/// (`n × c × oh × ow`), then `act(· × scale[c] + shift[c])`. Planes run in parallel.
pub(crate) fn depthwise(
    x: &[f32],
    filter: Filter<'_>,
    channels: usize,
    g: &DwGeometry,
    out: &mut [f32],
) {
    let Filter {
        weights,
        scale,
        shift,
        act,
    } = filter;
    let in_plane = g.in_hw[0] * g.in_hw[1];
    let out_plane = g.out_hw[0] * g.out_hw[1];
    let taps = g.kernel[0] * g.kernel[1];
    let scratch_len = g.scratch_len();
    let work = |(i, out): (usize, &mut [f32]), scratch: &mut Vec<f32>| {
        let c = i % channels;
        scratch.resize(scratch_len, 0.0);
        plane(
            &x[i * in_plane..(i + 1) * in_plane],
            &weights[c * taps..(c + 1) * taps],
            g,
            scratch,
            out,
        );
        scale_shift_act(out, scale[c], shift[c], act);
    };
    if out.len() * taps < 1 << 15 {
        let mut scratch = Vec::new();
        out.chunks_mut(out_plane)
            .enumerate()
            .for_each(|p| work(p, &mut scratch));
    } else {
        out.par_chunks_mut(out_plane)
            .enumerate()
            .for_each_init(Vec::new, |scratch, p| work(p, scratch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one output at a time, with explicit bounds checks.
    fn naive(x: &[f32], w: &[f32], g: &DwGeometry) -> Vec<f32> {
        let [h, wd] = g.in_hw;
        let [oh, ow] = g.out_hw;
        let mut out = vec![0.0; oh * ow];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0.0;
                for ky in 0..g.kernel[0] {
                    for kx in 0..g.kernel[1] {
                        let iy =
                            (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.pads[0] as isize;
                        let ix =
                            (ox * g.stride[1] + kx * g.dilation[1]) as isize - g.pads[1] as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                            acc += w[ky * g.kernel[1] + kx] * x[iy as usize * wd + ix as usize];
                        }
                    }
                }
                out[oy * ow + ox] = acc;
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_for_every_padding_and_stride() {
        for &(h, k, s, pads, d) in &[
            (9usize, 3usize, 1usize, [1usize, 1, 1, 1], 1usize),
            (8, 3, 2, [0, 0, 1, 1], 1),
            (8, 5, 2, [1, 1, 2, 2], 1),
            (7, 5, 2, [2, 2, 2, 2], 1),
            (6, 3, 1, [2, 2, 2, 2], 2),
            (10, 3, 3, [1, 0, 1, 2], 1),
        ] {
            let [pt, pl, pb, pr] = pads;
            let oh = (h + pt + pb - d * (k - 1) - 1) / s + 1;
            let ow = (h + pl + pr - d * (k - 1) - 1) / s + 1;
            let g = DwGeometry {
                in_hw: [h, h],
                out_hw: [oh, ow],
                kernel: [k, k],
                stride: [s, s],
                dilation: [d, d],
                pads,
            };
            let x: Vec<f32> = (0..2 * h * h)
                .map(|i| ((i * 37) % 17) as f32 - 8.0)
                .collect();
            let w: Vec<f32> = (0..2 * k * k).map(|i| ((i * 3) % 7) as f32 - 3.0).collect();
            let mut out = vec![0.0; 2 * oh * ow];
            let filter = Filter {
                weights: &w,
                scale: &[1.0, 1.0],
                shift: &[0.5, -1.0],
                act: crate::kernels::act::Act::None,
            };
            depthwise(&x, filter, 2, &g, &mut out);
            for c in 0..2 {
                let want = naive(
                    &x[c * h * h..(c + 1) * h * h],
                    &w[c * k * k..(c + 1) * k * k],
                    &g,
                );
                let bias = [0.5, -1.0][c];
                for (i, v) in want.iter().enumerate() {
                    assert_eq!(out[c * oh * ow + i], v + bias, "h={h} k={k} s={s} {pads:?}");
                }
            }
        }
    }
}
