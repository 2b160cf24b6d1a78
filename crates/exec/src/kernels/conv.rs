//! Dense and grouped convolutions as GEMM: a 1×1 convolution with stride 1 and no padding is
//! one product `W (out × in) · X (in × h·w)` per image, read in place; anything else (the
//! stem, strided or padded 1×1, grouped k×k) goes through im2col first.

use rayon::prelude::*;

use super::act::{Act, scale_shift_act};
use super::gemm::{MatRef, matmul};

/// A convolution's geometry for one input size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeometry {
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub in_hw: [usize; 2],
    pub out_hw: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

impl ConvGeometry {
    /// Whether the input can be the GEMM's right operand as it is.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pads == [0; 4] && self.groups == 1
    }

    /// Floats of the im2col buffer (one group of one image), 0 for a pointwise conv.
    pub fn scratch_len(&self) -> usize {
        if self.is_pointwise() {
            0
        } else {
            self.in_channels / self.groups
                * self.kernel[0]
                * self.kernel[1]
                * self.out_hw[0]
                * self.out_hw[1]
        }
    }
}

/// im2col of the channels from `c0` on (as many as `cols` has rows for) of one image `x` (`c × h × w`) into `cols`
/// (`cg·kh·kw × oh·ow`), zeros where the window reads padding.
fn im2col(x: &[f32], g: &ConvGeometry, c0: usize, cols: &mut [f32]) {
    let [h, w] = g.in_hw;
    let [oh, ow] = g.out_hw;
    let [kh, kw] = g.kernel;
    let plane = oh * ow;
    cols.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(row, dst)| {
            let c = c0 + row / (kh * kw);
            let ky = row / kw % kh;
            let kx = row % kw;
            let src = &x[c * h * w..(c + 1) * h * w];
            for oy in 0..oh {
                let out_row = &mut dst[oy * ow..(oy + 1) * ow];
                let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.pads[0] as isize;
                if iy < 0 || iy as usize >= h {
                    out_row.fill(0.0);
                    continue;
                }
                let in_row = &src[iy as usize * w..(iy as usize + 1) * w];
                let x0 = (kx * g.dilation[1]) as isize - g.pads[1] as isize;
                if g.stride[1] == 1 && x0 >= 0 && x0 as usize + ow <= w {
                    out_row.copy_from_slice(&in_row[x0 as usize..x0 as usize + ow]);
                    continue;
                }
                for (ox, v) in out_row.iter_mut().enumerate() {
                    let ix = x0 + (ox * g.stride[1]) as isize;
                    *v = if ix >= 0 && (ix as usize) < w {
                        in_row[ix as usize]
                    } else {
                        0.0
                    };
                }
            }
        });
}

/// A convolution's parameters: weights `[out, in/groups, kh, kw]`, and the epilogue
/// `act(acc · scale[o] + shift[o])` (a folded BatchNorm, or scale 1 and the bias).
#[derive(Clone, Copy)]
pub(crate) struct Filter<'a> {
    pub weights: &'a [f32],
    pub scale: &'a [f32],
    pub shift: &'a [f32],
    pub act: Act,
}

/// Convolution of `x` (`n × in × h × w`) with `weights` (`out × in/groups × kh × kw`) into
/// `out` (`n × out × oh × ow`), then `act(· × scale[o] + shift[o])` fused into the GEMM's
/// epilogue.
/// `scratch` holds the im2col buffer (resized as needed).
pub(crate) fn conv(
    x: &[f32],
    filter: Filter<'_>,
    batch: usize,
    g: &ConvGeometry,
    scratch: &mut Vec<f32>,
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
    let cg_in = g.in_channels / g.groups;
    let cg_out = g.out_channels / g.groups;
    let k = cg_in * g.kernel[0] * g.kernel[1];
    if !g.is_pointwise() {
        scratch.resize(g.scratch_len(), 0.0);
    }
    for n in 0..batch {
        let image = &x[n * g.in_channels * in_plane..(n + 1) * g.in_channels * in_plane];
        let dst = &mut out[n * g.out_channels * out_plane..(n + 1) * g.out_channels * out_plane];
        for group in 0..g.groups {
            let b = if g.is_pointwise() {
                MatRef::new(image, k, out_plane)
            } else {
                im2col(image, g, group * cg_in, &mut scratch[..k * out_plane]);
                MatRef::new(&scratch[..k * out_plane], k, out_plane)
            };
            let w = &weights[group * cg_out * k..(group + 1) * cg_out * k];
            let o0 = group * cg_out;
            let epilogue = |row: usize, data: &mut [f32]| {
                scale_shift_act(data, scale[o0 + row], shift[o0 + row], act)
            };
            matmul(
                MatRef::new(w, cg_out, k),
                b,
                &mut dst[o0 * out_plane..(o0 + cg_out) * out_plane],
                out_plane,
                &epilogue,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_strided_padded_conv_matches_the_definition() {
        let g = ConvGeometry {
            in_channels: 4,
            out_channels: 6,
            groups: 2,
            in_hw: [7, 6],
            out_hw: [4, 3],
            kernel: [3, 3],
            stride: [2, 2],
            dilation: [1, 1],
            pads: [1, 0, 1, 1],
        };
        let x: Vec<f32> = (0..2 * 4 * 42)
            .map(|i| ((i * 31) % 19) as f32 - 9.0)
            .collect();
        let w: Vec<f32> = (0..6 * 2 * 9).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
        let bias: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let mut out = vec![0.0; 2 * 6 * 12];
        let filter = Filter {
            weights: &w,
            scale: &[1.0; 6],
            shift: &bias,
            act: Act::Relu,
        };
        conv(&x, filter, 2, &g, &mut Vec::new(), &mut out);
        for n in 0..2 {
            for o in 0..6 {
                let grp = o / 3;
                for oy in 0..4 {
                    for ox in 0..3 {
                        let mut acc = bias[o];
                        for ci in 0..2 {
                            let c = grp * 2 + ci;
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let iy = (oy * 2 + ky) as isize - 1;
                                    let ix = (ox * 2 + kx) as isize;
                                    if (0..7).contains(&iy) && (0..6).contains(&ix) {
                                        acc += w[((o * 2 + ci) * 3 + ky) * 3 + kx]
                                            * x[((n * 4 + c) * 7 + iy as usize) * 6 + ix as usize];
                                    }
                                }
                            }
                        }
                        assert_eq!(out[((n * 6 + o) * 4 + oy) * 3 + ox], acc.max(0.0));
                    }
                }
            }
        }
    }
}
