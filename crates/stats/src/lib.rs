//! Statistics of tensor values: min, max, mean, standard deviation, NaN and ±Inf counts,
//! computed over the tensor's bytes where they lie (a memory map is read in place) on every
//! core.
//!
//! # How
//!
//! The values are read in chunks of [`CHUNK`] elements, each decoded to `f64` (f16, bf16 and
//! f32 exactly; i64 exactly up to 2⁵³). NaN and ±Inf are counted and left out of everything
//! else. Within a chunk the mean and the sum of squared deviations are computed in two passes
//! over the decoded values (still in cache), each in 8 lanes summed at the end; the chunks, computed in parallel with rayon, are
//! then merged pairwise in a fixed tree (Chan, Golub & LeVeque's update of count, mean and
//! squared deviations, the parallel form of Welford's algorithm). The order of the merges does
//! not depend on the thread schedule, so the results are the same on every run.
//!
//! `std` is the population standard deviation (NumPy's `std()`, `ddof=0`): the square root of
//! the mean squared deviation from the mean.

use effnet_ir::{DType, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

/// Elements per chunk: the decoded chunk (32 KiB of `f64`) stays in a core's cache between
/// the two passes.
pub const CHUNK: usize = 4096;

/// The statistics of a tensor's values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Finite values (those the statistics below are computed over).
    pub finite: u64,
    /// NaN values.
    pub nan: u64,
    /// +Inf and −Inf values.
    pub inf: u64,
    /// The smallest finite value (None when there is none).
    pub min: Option<f64>,
    /// The largest finite value.
    pub max: Option<f64>,
    /// The mean of the finite values.
    pub mean: Option<f64>,
    /// The population standard deviation of the finite values.
    pub std: Option<f64>,
}

/// The statistics of `tensor`'s values, or None when the tensor holds a shape only.
pub fn tensor_stats(tensor: &Tensor) -> Option<Stats> {
    let bytes = tensor.data()?;
    bytes.prefetch();
    Some(stats(tensor.dtype(), bytes.as_slice()))
}

/// The statistics of every tensor (None for a shape-only one), the tensors taken in parallel
/// as well as the chunks within each.
pub fn tensors_stats<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> Vec<Option<Stats>> {
    let tensors: Vec<&Tensor> = tensors.into_iter().collect();
    tensors.par_iter().map(|t| tensor_stats(t)).collect()
}

/// The statistics of the little-endian values of type `dtype` in `bytes` (a trailing partial
/// element is ignored).
pub fn stats(dtype: DType, bytes: &[u8]) -> Stats {
    let size = dtype.size();
    let chunks: Vec<Acc> = bytes
        .par_chunks(CHUNK * size)
        .with_min_len(4)
        .map(|chunk| chunk_acc(dtype, chunk))
        .collect();
    merge_all(&chunks).finish()
}

/// The running statistics of a part of the values.
#[derive(Clone, Copy, Debug)]
struct Acc {
    n: u64,
    mean: f64,
    /// Sum of squared deviations from `mean`.
    m2: f64,
    min: f64,
    max: f64,
    nan: u64,
    inf: u64,
}

impl Acc {
    const EMPTY: Acc = Acc {
        n: 0,
        mean: 0.0,
        m2: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        nan: 0,
        inf: 0,
    };

    /// Chan et al.'s combination of two disjoint parts.
    fn merge(a: Acc, b: Acc) -> Acc {
        let (nan, inf) = (a.nan + b.nan, a.inf + b.inf);
        if a.n == 0 {
            return Acc { nan, inf, ..b };
        }
        if b.n == 0 {
            return Acc { nan, inf, ..a };
        }
        let n = a.n + b.n;
        let (na, nb, nf) = (a.n as f64, b.n as f64, n as f64);
        let delta = b.mean - a.mean;
        Acc {
            n,
            mean: a.mean + delta * (nb / nf),
            m2: a.m2 + b.m2 + delta * delta * (na * nb / nf),
            min: a.min.min(b.min),
            max: a.max.max(b.max),
            nan,
            inf,
        }
    }

    fn finish(self) -> Stats {
        let some = |v: f64| (self.n > 0).then_some(v);
        Stats {
            finite: self.n,
            nan: self.nan,
            inf: self.inf,
            min: some(self.min),
            max: some(self.max),
            mean: some(self.mean),
            std: some((self.m2 / self.n.max(1) as f64).max(0.0).sqrt()),
        }
    }
}

/// Merges `parts` pairwise, halves first: a fixed tree, so a fixed result.
fn merge_all(parts: &[Acc]) -> Acc {
    match parts {
        [] => Acc::EMPTY,
        [one] => *one,
        _ => {
            let (a, b) = parts.split_at(parts.len() / 2);
            Acc::merge(merge_all(a), merge_all(b))
        }
    }
}

/// The statistics of one chunk (at most [`CHUNK`] elements): decoded, then two passes.
fn chunk_acc(dtype: DType, bytes: &[u8]) -> Acc {
    let mut buf = [0f64; CHUNK];
    let n = decode(dtype, bytes, &mut buf);
    let values = &mut buf[..n];
    // Almost always every value is finite: then the passes run in lanes, without branches.
    let finite = values.iter().filter(|v| v.is_finite()).count();
    if finite == n {
        return finite_acc(values, 0, 0);
    }
    let nan = values.iter().filter(|v| v.is_nan()).count() as u64;
    let inf = (n - finite) as u64 - nan;
    let mut kept = 0;
    for i in 0..n {
        let v = values[i];
        if v.is_finite() {
            values[kept] = v;
            kept += 1;
        }
    }
    finite_acc(&values[..kept], nan, inf)
}

/// Decodes the little-endian values in `bytes` into `out`; returns how many.
fn decode(dtype: DType, bytes: &[u8], out: &mut [f64; CHUNK]) -> usize {
    fn fill<const N: usize>(bytes: &[u8], out: &mut [f64], f: impl Fn([u8; N]) -> f64) -> usize {
        let mut n = 0;
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(N)) {
            *o = f(c.try_into().expect("chunk of N"));
            n += 1;
        }
        n
    }
    match dtype {
        DType::F32 => fill::<4>(bytes, out, |b| f64::from(f32::from_le_bytes(b))),
        DType::F16 => fill::<2>(bytes, out, |b| f64::from(f16::from_le_bytes(b).to_f32())),
        DType::BF16 => fill::<2>(bytes, out, |b| f64::from(bf16::from_le_bytes(b).to_f32())),
        DType::F64 => fill::<8>(bytes, out, f64::from_le_bytes),
        DType::I64 => fill::<8>(bytes, out, |b| i64::from_le_bytes(b) as f64),
    }
}

/// Lanes the passes over a chunk run in (independent sums the compiler can vectorize).
const LANES: usize = 8;

/// The statistics of finite `values`: the sum, min and max, then the squared deviations from
/// the mean, each in [`LANES`] lanes added up at the end.
fn finite_acc(values: &[f64], nan: u64, inf: u64) -> Acc {
    if values.is_empty() {
        return Acc {
            nan,
            inf,
            ..Acc::EMPTY
        };
    }
    let mut sum = [0f64; LANES];
    let mut min = [f64::INFINITY; LANES];
    let mut max = [f64::NEG_INFINITY; LANES];
    let mut lanes = values.chunks_exact(LANES);
    for c in &mut lanes {
        for k in 0..LANES {
            sum[k] += c[k];
            min[k] = if c[k] < min[k] { c[k] } else { min[k] };
            max[k] = if c[k] > max[k] { c[k] } else { max[k] };
        }
    }
    for (k, &v) in lanes.remainder().iter().enumerate() {
        sum[k] += v;
        min[k] = min[k].min(v);
        max[k] = max[k].max(v);
    }
    let n = values.len();
    let mean = sum.iter().sum::<f64>() / n as f64;
    let mut m2 = [0f64; LANES];
    let mut lanes = values.chunks_exact(LANES);
    for c in &mut lanes {
        for k in 0..LANES {
            let d = c[k] - mean;
            m2[k] += d * d;
        }
    }
    for (k, &v) in lanes.remainder().iter().enumerate() {
        m2[k] += (v - mean) * (v - mean);
    }
    Acc {
        n: n as u64,
        mean,
        m2: m2.iter().sum(),
        min: min.iter().copied().fold(f64::INFINITY, f64::min),
        max: max.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        nan,
        inf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use effnet_ir::Bytes;

    fn f32_stats(values: &[f32]) -> Stats {
        tensor_stats(&Tensor::from_f32(vec![values.len()], values).unwrap()).unwrap()
    }

    fn tensor(dtype: DType, bytes: Vec<u8>) -> Tensor {
        let n = bytes.len() / dtype.size();
        Tensor::with_data(dtype, vec![n], Bytes::from_vec(bytes)).unwrap()
    }

    #[test]
    fn exact_on_a_small_tensor() {
        let s = f32_stats(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.finite, 4);
        assert_eq!((s.nan, s.inf), (0, 0));
        assert_eq!(s.min, Some(1.0));
        assert_eq!(s.max, Some(4.0));
        assert_eq!(s.mean, Some(2.5));
        assert_eq!(s.std, Some(1.25f64.sqrt()));
    }

    #[test]
    fn nan_and_inf_are_counted_and_left_out() {
        let s = f32_stats(&[1.0, f32::NAN, f32::INFINITY, 3.0, f32::NEG_INFINITY]);
        assert_eq!((s.finite, s.nan, s.inf), (2, 1, 2));
        assert_eq!((s.min, s.max), (Some(1.0), Some(3.0)));
        assert_eq!(s.mean, Some(2.0));
        assert_eq!(s.std, Some(1.0));
    }

    #[test]
    fn no_finite_value_has_no_statistics() {
        let s = f32_stats(&[f32::NAN, f32::NAN]);
        assert_eq!((s.finite, s.nan, s.inf), (0, 2, 0));
        assert_eq!((s.min, s.max, s.mean, s.std), (None, None, None, None));
        let empty = f32_stats(&[]);
        assert_eq!(empty.finite, 0);
        assert_eq!(empty.mean, None);
    }

    #[test]
    fn a_shape_only_tensor_has_none() {
        let t = Tensor::shape_only(DType::F32, vec![3, 3]).unwrap();
        assert_eq!(tensor_stats(&t), None);
    }

    #[test]
    fn f16_and_bf16_are_decoded() {
        let halves = [0.5f32, -2.0, 65504.0, f32::INFINITY, f32::NAN];
        let f16_bytes = halves
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
        let s = tensor_stats(&tensor(DType::F16, f16_bytes)).unwrap();
        assert_eq!((s.finite, s.nan, s.inf), (3, 1, 1));
        assert_eq!((s.min, s.max), (Some(-2.0), Some(65504.0)));
        assert_eq!(s.mean, Some((0.5 - 2.0 + 65504.0) / 3.0));

        let bf16_bytes = [1.0f32, 3.0, f32::NEG_INFINITY]
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect();
        let s = tensor_stats(&tensor(DType::BF16, bf16_bytes)).unwrap();
        assert_eq!((s.finite, s.nan, s.inf), (2, 0, 1));
        assert_eq!((s.mean, s.std), (Some(2.0), Some(1.0)));
        // bf16 keeps f32's range: 1e30 is finite.
        let big = bf16::from_f32(1e30).to_le_bytes().to_vec();
        let s = tensor_stats(&tensor(DType::BF16, big)).unwrap();
        assert_eq!(s.inf, 0);
        assert_eq!(s.max, Some(f64::from(bf16::from_f32(1e30).to_f32())));
    }

    #[test]
    fn f64_and_i64_are_read() {
        let f64_bytes = [0.1f64, 0.2, f64::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let s = tensor_stats(&tensor(DType::F64, f64_bytes)).unwrap();
        assert_eq!((s.finite, s.nan), (2, 1));
        assert_eq!((s.min, s.max), (Some(0.1), Some(0.2)));
        let i64_bytes = [-3i64, 7, 1_000_000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let s = tensor_stats(&tensor(DType::I64, i64_bytes)).unwrap();
        assert_eq!((s.min, s.max), (Some(-3.0), Some(1_000_000.0)));
        assert_eq!(s.mean, Some((1_000_004.0f64) / 3.0));
    }

    #[test]
    fn chunks_merge_to_the_two_pass_result() {
        // Many chunks, a large offset (where a one-pass sum of squares loses every digit),
        // NaNs scattered over chunk boundaries.
        let n = CHUNK * 37 + 123;
        let values: Vec<f32> = (0..n)
            .map(|i| {
                if i % 5000 == 17 {
                    f32::NAN
                } else {
                    1000.0 + ((i * 7919) % 1013) as f32 / 1013.0
                }
            })
            .collect();
        let s = f32_stats(&values);
        let finite: Vec<f64> = values
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| f64::from(v))
            .collect();
        let mean = finite.iter().sum::<f64>() / finite.len() as f64;
        let var = finite.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / finite.len() as f64;
        assert_eq!(s.finite as usize, finite.len());
        assert_eq!(s.nan as usize, n - finite.len());
        assert!((s.mean.unwrap() - mean).abs() <= 1e-12 * mean);
        assert!((s.std.unwrap() - var.sqrt()).abs() <= 1e-9 * var.sqrt());
        assert_eq!(s.min, finite.iter().copied().reduce(f64::min));
        assert_eq!(s.max, finite.iter().copied().reduce(f64::max));
        // The same numbers on every run, whatever the thread schedule.
        for _ in 0..5 {
            assert_eq!(f32_stats(&values), s);
        }
    }

    #[test]
    fn a_chunk_of_only_nan_merges() {
        let mut values = vec![f32::NAN; CHUNK];
        values.extend([2.0, 4.0]);
        let s = f32_stats(&values);
        assert_eq!((s.finite, s.nan), (2, CHUNK as u64));
        assert_eq!((s.mean, s.std), (Some(3.0), Some(1.0)));
    }
}
