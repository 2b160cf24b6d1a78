//! Element-wise activations and the per-channel epilogue (bias, activation) fused into the
//! convolutions, written as plain loops the compiler vectorizes (AVX2 when the CPU has it,
//! chosen at run time; SSE2 otherwise).

use super::simd::dispatch;

/// An activation the kernels apply in their epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Identity.
    None,
    /// `x · sigmoid(x)`.
    Swish,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

/// `e^x` in f32, Cephes' `expf`: range reduction by ln 2 in two parts and a degree-6
/// polynomial; within 2 ulp of the true value over the whole range, branch-free so that it
/// vectorizes (the standard library's `exp` is a scalar call).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.336_55, 88.376_26);
    let fx = (x * LOG2E + 0.5).floor();
    let r = x - fx * C1 - fx * C2;
    let z = r * r;
    let mut y = 1.987_569_1e-4_f32;
    y = y * r + 1.398_199_9e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 1.666_666_5e-1;
    y = y * r + 0.5;
    y = y * z + r + 1.0;
    // 2^fx through the exponent bits, in two factors so that fx = 128 (reached only with
    // y < 1, the clamp's upper end being below 128 · ln 2) needs no branch. The integer is
    // read from the mantissa of `f + 2^23` rather than by a float-to-int cast, whose
    // saturating semantics would keep the loop from vectorizing.
    let h1 = (fx * 0.5).floor();
    let h2 = fx - h1;
    y * pow2(h1) * pow2(h2)
}

/// `2^n` for an integral `n` in −126..=127.
#[inline(always)]
fn pow2(n: f32) -> f32 {
    const SHIFTER: f32 = 8_388_608.0; // 2^23
    let biased = (n + (127.0 + SHIFTER)).to_bits() - SHIFTER.to_bits();
    f32::from_bits(biased << 23)
}

#[inline(always)]
fn apply(act: Act, v: f32) -> f32 {
    match act {
        Act::None => v,
        Act::Swish => v / (1.0 + exp(-v)),
        Act::Sigmoid => 1.0 / (1.0 + exp(-v)),
        Act::Relu => v.max(0.0),
        Act::Relu6 => v.clamp(0.0, 6.0),
    }
}

#[inline(always)]
fn bias_act_impl(data: &mut [f32], bias: f32, act: Act) {
    match act {
        Act::None => data.iter_mut().for_each(|v| *v += bias),
        Act::Swish => data
            .iter_mut()
            .for_each(|v| *v = apply(Act::Swish, *v + bias)),
        Act::Sigmoid => data
            .iter_mut()
            .for_each(|v| *v = apply(Act::Sigmoid, *v + bias)),
        Act::Relu => data.iter_mut().for_each(|v| *v = (*v + bias).max(0.0)),
        Act::Relu6 => data
            .iter_mut()
            .for_each(|v| *v = (*v + bias).clamp(0.0, 6.0)),
    }
}

dispatch! {
    /// `data[i] = act(data[i] + bias)`.
    pub(crate) fn bias_act(data: &mut [f32], bias: f32, act: Act) => bias_act_impl
}

#[inline(always)]
fn scale_shift_act_impl(data: &mut [f32], scale: f32, shift: f32, act: Act) {
    match act {
        Act::None => data.iter_mut().for_each(|v| *v = *v * scale + shift),
        Act::Swish => data
            .iter_mut()
            .for_each(|v| *v = apply(Act::Swish, *v * scale + shift)),
        Act::Sigmoid => data
            .iter_mut()
            .for_each(|v| *v = apply(Act::Sigmoid, *v * scale + shift)),
        Act::Relu => data
            .iter_mut()
            .for_each(|v| *v = (*v * scale + shift).max(0.0)),
        Act::Relu6 => data
            .iter_mut()
            .for_each(|v| *v = (*v * scale + shift).clamp(0.0, 6.0)),
    }
}

dispatch! {
    /// `data[i] = act(data[i] · scale + shift)`: a convolution's epilogue with its BatchNorm
    /// (`scale` 1 and `shift` the bias without one: `x · 1` is exact).
    pub(crate) fn scale_shift_act(data: &mut [f32], scale: f32, shift: f32, act: Act) => scale_shift_act_impl
}

#[inline(always)]
fn affine_impl(data: &mut [f32], scale: f32, offset: f32) {
    data.iter_mut().for_each(|v| *v = *v * scale + offset);
}

dispatch! {
    /// `data[i] = data[i] · scale + offset`.
    pub(crate) fn affine(data: &mut [f32], scale: f32, offset: f32) => affine_impl
}

#[inline(always)]
fn normalize_impl(data: &mut [f32], mean: f32, divisor: f32) {
    data.iter_mut().for_each(|v| *v = (*v - mean) / divisor);
}

dispatch! {
    /// `data[i] = (data[i] − mean) / divisor`, as Keras' `Normalization` computes it.
    pub(crate) fn normalize(data: &mut [f32], mean: f32, divisor: f32) => normalize_impl
}

#[inline(always)]
fn scale_impl(data: &mut [f32], gate: f32) {
    data.iter_mut().for_each(|v| *v *= gate);
}

dispatch! {
    /// `data[i] *= gate` (squeeze-excitation scaling of one channel).
    pub(crate) fn scale(data: &mut [f32], gate: f32) => scale_impl
}

#[inline(always)]
fn add_impl(data: &mut [f32], other: &[f32]) {
    data.iter_mut().zip(other).for_each(|(a, b)| *a += *b);
}

dispatch! {
    /// `data[i] += other[i]`.
    pub(crate) fn add(data: &mut [f32], other: &[f32]) => add_impl
}

#[inline(always)]
fn mul_impl(data: &mut [f32], other: &[f32]) {
    data.iter_mut().zip(other).for_each(|(a, b)| *a *= *b);
}

dispatch! {
    /// `data[i] *= other[i]`.
    pub(crate) fn mul(data: &mut [f32], other: &[f32]) => mul_impl
}

#[inline(always)]
fn sum_f64_impl(data: &[f32]) -> f64 {
    // Eight independent f64 accumulators: the adds pipeline and vectorize instead of waiting
    // on one another; f64 keeps the sum exact to well below f32's precision.
    let mut lanes = [0.0f64; 8];
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f64::from(v);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f64::from(v)).sum();
    lanes.iter().sum::<f64>() + tail
}

dispatch! {
    /// The sum of `data`, accumulated in f64.
    pub(crate) fn sum_f64(data: &[f32]) -> f64 => sum_f64_impl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = f64::from(exp(x));
            let want = f64::from(x).exp();
            worst = worst.max((got - want).abs() / want);
            x += 0.001_37;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert!(exp(-200.0) >= 0.0 && exp(-200.0) < 1e-37);
        assert!(exp(200.0).is_finite());
    }

    #[test]
    fn activations_match_their_definitions() {
        for &x in &[-30.0f32, -5.0, -0.5, 0.0, 0.25, 3.0, 7.0, 40.0] {
            let s = 1.0 / (1.0 + (-f64::from(x)).exp());
            let mut v = [x];
            bias_act(&mut v, 0.0, Act::Swish);
            assert!(
                (f64::from(v[0]) - f64::from(x) * s).abs()
                    <= 2e-7 * (f64::from(x) * s).abs().max(1e-30)
            );
            let mut v = [x];
            bias_act(&mut v, 0.0, Act::Sigmoid);
            assert!((f64::from(v[0]) - s).abs() <= 2e-7 * s.max(1e-30));
            let mut v = [x];
            bias_act(&mut v, 1.0, Act::Relu6);
            assert_eq!(v[0], (x + 1.0).clamp(0.0, 6.0));
        }
    }
}
