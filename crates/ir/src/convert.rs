//! Converting tensor values between dtypes, counting what the narrower type loses.

use half::{bf16, f16};

use crate::{Bytes, DType, IrError, Tensor};

/// What a conversion to a narrower float type did to the values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConversionStats {
    /// Finite values beyond the target's range (±65504 for f16).
    pub overflow: usize,
    /// NaN or infinite values in the source.
    pub non_finite: usize,
    /// Non-zero values that became zero.
    pub flushed_to_zero: usize,
    /// Values that became subnormal (lost precision).
    pub subnormal: usize,
    /// Largest magnitude among the finite source values.
    pub max_abs: f32,
}

impl ConversionStats {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &ConversionStats) {
        self.overflow += other.overflow;
        self.non_finite += other.non_finite;
        self.flushed_to_zero += other.flushed_to_zero;
        self.subnormal += other.subnormal;
        self.max_abs = self.max_abs.max(other.max_abs);
    }
}

/// Largest finite f16.
pub const F16_MAX: f32 = 65504.0;

/// Encodes `values` as little-endian `dtype` (a float type), counting overflow, flushes and
/// subnormals. With `clamp`, finite values beyond the range are clamped to it instead of
/// becoming infinite.
pub fn encode_f32(values: &[f32], dtype: DType, clamp: bool) -> (Vec<u8>, ConversionStats) {
    let mut stats = ConversionStats::default();
    let mut out = Vec::with_capacity(values.len() * dtype.size());
    for &v in values {
        if !v.is_finite() {
            stats.non_finite += 1;
        } else {
            stats.max_abs = stats.max_abs.max(v.abs());
        }
        match dtype {
            DType::F16 => {
                let mut x = v;
                if v.is_finite() && v.abs() > F16_MAX {
                    stats.overflow += 1;
                    if clamp {
                        x = F16_MAX.copysign(v);
                    }
                }
                let h = f16::from_f32(x);
                if v != 0.0 && h.to_f32() == 0.0 {
                    stats.flushed_to_zero += 1;
                } else if h.is_finite() && !h.is_normal() && h.to_f32() != 0.0 {
                    stats.subnormal += 1;
                }
                out.extend_from_slice(&h.to_le_bytes());
            }
            DType::BF16 => {
                let b = bf16::from_f32(v);
                if v.is_finite() && !b.to_f32().is_finite() {
                    stats.overflow += 1;
                }
                if v != 0.0 && b.to_f32() == 0.0 {
                    stats.flushed_to_zero += 1;
                } else if b.is_finite() && !b.is_normal() && b.to_f32() != 0.0 {
                    stats.subnormal += 1;
                }
                out.extend_from_slice(&b.to_le_bytes());
            }
            DType::F64 => out.extend_from_slice(&f64::from(v).to_le_bytes()),
            DType::F32 | DType::I64 => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    (out, stats)
}

impl Tensor {
    /// This tensor's values in another float dtype (integers are kept as they are). f32 → f32
    /// shares the bytes.
    pub fn to_dtype(
        &self,
        dtype: DType,
        clamp: bool,
    ) -> Result<(Tensor, ConversionStats), IrError> {
        if self.dtype() == dtype || !self.dtype().is_float() || !dtype.is_float() {
            return Ok((self.clone(), ConversionStats::default()));
        }
        let data = self
            .data()
            .ok_or_else(|| IrError::NoData(self.shape().to_vec()))?;
        let (bytes, stats) = if self.dtype() == DType::F32 && dtype == DType::F16 {
            data.read_with(|src| f32_bytes_to_f16(src, clamp))
        } else {
            encode_f32(&self.to_f32_vec()?, dtype, clamp)
        };
        let tensor = Tensor::with_data(dtype, self.shape().to_vec(), Bytes::from_vec(bytes))?;
        Ok((tensor, stats))
    }
}

/// Elements converted per step of [`f32_bytes_to_f16`].
const CHUNK: usize = 4096;

/// f32 little-endian bytes to f16 bytes in chunks (SIMD through `half`'s slice conversion where
/// the CPU has it), with the same counts as [`encode_f32`] and no full-size f32 copy.
fn f32_bytes_to_f16(src: &[u8], clamp: bool) -> (Vec<u8>, ConversionStats) {
    use half::slice::HalfFloatSliceExt;
    let n = src.len() / 4;
    let mut out = vec![0u8; n * 2];
    let mut stats = ConversionStats::default();
    let mut copied = [0f32; CHUNK];
    let mut halves = [f16::ZERO; CHUNK];
    for (chunk, dst) in src.chunks(4 * CHUNK).zip(out.chunks_mut(2 * CHUNK)) {
        let m = chunk.len() / 4;
        // Little-endian and aligned (torch and safetensors align tensor data): read in place.
        let direct = cfg!(target_endian = "little")
            .then(|| bytemuck::try_cast_slice::<u8, f32>(&chunk[..4 * m]).ok())
            .flatten();
        let values: &[f32] = match direct {
            Some(v) => v,
            None => {
                for (v, b) in copied[..m].iter_mut().zip(chunk.chunks_exact(4)) {
                    *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
                &copied[..m]
            }
        };
        // One branch-free pass over the bits (it vectorizes): for finite floats the order of
        // |x| is the order of its bits without the sign; NaN and ±∞ have all exponent bits set.
        const EXPONENT: u32 = 0x7f80_0000;
        let f16_max = F16_MAX.to_bits();
        let (mut max_bits, mut beyond, mut non_finite) = (0u32, 0u32, 0u32);
        for bits in bytemuck::cast_slice::<f32, u32>(values) {
            let a = bits & 0x7fff_ffff;
            let finite = a < EXPONENT;
            max_bits = max_bits.max(if finite { a } else { 0 });
            beyond += u32::from(finite & (a > f16_max));
            non_finite += u32::from(!finite);
        }
        let (beyond, non_finite) = (beyond as usize, non_finite as usize);
        stats.max_abs = stats.max_abs.max(f32::from_bits(max_bits));
        stats.overflow += beyond;
        stats.non_finite += non_finite;
        if clamp && beyond > 0 {
            let clamped: Vec<f32> = values
                .iter()
                .map(|&v| {
                    if v.is_finite() && v.abs() > F16_MAX {
                        F16_MAX.copysign(v)
                    } else {
                        v
                    }
                })
                .collect();
            halves[..m].convert_from_f32_slice(&clamped);
        } else {
            halves[..m].convert_from_f32_slice(values);
        }
        let (mut flushed, mut subnormal) = (0u32, 0u32);
        for (v, h) in bytemuck::cast_slice::<f32, u32>(values)
            .iter()
            .zip(&halves[..m])
        {
            let magnitude = h.to_bits() & 0x7fff;
            flushed += u32::from((magnitude == 0) & (v & 0x7fff_ffff != 0));
            subnormal += u32::from((magnitude != 0) & (magnitude < 0x0400));
        }
        stats.flushed_to_zero += flushed as usize;
        stats.subnormal += subnormal as usize;
        let bytes: &[u8] = bytemuck::cast_slice(&halves[..m]);
        if cfg!(target_endian = "little") {
            dst.copy_from_slice(bytes);
        } else {
            for (d, h) in dst.chunks_exact_mut(2).zip(&halves[..m]) {
                d.copy_from_slice(&h.to_bits().to_le_bytes());
            }
        }
    }
    (out, stats)
}

/// A BatchNorm variance moved to another epsilon exactly: `running_var + eps_from − eps_to`,
/// computed in f64 and written back in the tensor's dtype, with its smallest value (a negative
/// one means the move is impossible).
pub fn moved_variance(var: &Tensor, from: f64, to: f64) -> Result<(Tensor, f32), IrError> {
    let moved: Vec<f32> = var
        .to_f32_vec()?
        .iter()
        .map(|&v| (f64::from(v) + from - to) as f32)
        .collect();
    let min = moved.iter().copied().fold(f32::INFINITY, f32::min);
    let (bytes, _) = encode_f32(&moved, var.dtype(), false);
    let tensor = Tensor::with_data(var.dtype(), var.shape().to_vec(), Bytes::from_vec(bytes))?;
    Ok((tensor, min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_counts_what_it_loses() {
        let t = Tensor::from_f32(vec![6], &[1.0, 1e6, -1e6, 1e-9, 3e-6, f32::NAN]).unwrap();
        let (h, stats) = t.to_dtype(DType::F16, false).unwrap();
        assert_eq!(h.dtype(), DType::F16);
        assert_eq!(stats.overflow, 2);
        assert_eq!(stats.flushed_to_zero, 1);
        assert_eq!(stats.subnormal, 1);
        assert_eq!(stats.non_finite, 1);
        assert_eq!(stats.max_abs, 1e6);
        let v = h.to_f32_vec().unwrap();
        assert!(v[1].is_infinite());
        let (clamped, _) = t.to_dtype(DType::F16, true).unwrap();
        assert_eq!(clamped.to_f32_vec().unwrap()[1..3], [65504.0, -65504.0]);
    }

    #[test]
    fn the_chunked_path_agrees_with_the_element_path() {
        let values: Vec<f32> = (0..10_000)
            .map(|i| ((i as f32) * 0.37).sin() * 10f32.powi(i % 13 - 8))
            .chain([1e6, -7e4, 0.0, -0.0, f32::NAN, 3e-9])
            .collect();
        let t = Tensor::from_f32(vec![values.len()], &values).unwrap();
        for clamp in [false, true] {
            let (fast, fast_stats) = t.to_dtype(DType::F16, clamp).unwrap();
            let (slow_bytes, slow_stats) = encode_f32(&values, DType::F16, clamp);
            assert_eq!(fast.data().unwrap().as_slice(), slow_bytes.as_slice());
            assert_eq!(fast_stats, slow_stats);
        }
    }

    #[test]
    fn integers_and_same_dtype_are_kept() {
        let t = Tensor::from_f32(vec![1], &[2.5]).unwrap();
        let (same, stats) = t.to_dtype(DType::F32, false).unwrap();
        assert_eq!(same.to_f32_vec().unwrap(), vec![2.5]);
        assert_eq!(stats, ConversionStats::default());
    }
}
