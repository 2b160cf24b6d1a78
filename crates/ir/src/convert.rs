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
        let values = self.to_f32_vec()?;
        let (bytes, stats) = encode_f32(&values, dtype, clamp);
        let tensor = Tensor::with_data(dtype, self.shape().to_vec(), Bytes::from_vec(bytes))?;
        Ok((tensor, stats))
    }
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
    fn integers_and_same_dtype_are_kept() {
        let t = Tensor::from_f32(vec![1], &[2.5]).unwrap();
        let (same, stats) = t.to_dtype(DType::F32, false).unwrap();
        assert_eq!(same.to_f32_vec().unwrap(), vec![2.5]);
        assert_eq!(stats, ConversionStats::default());
    }
}
