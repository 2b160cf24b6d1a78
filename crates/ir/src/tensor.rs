use std::fmt;
use std::sync::{Arc, OnceLock};

use half::{bf16, f16};

use crate::{DType, IrError};

/// Memory tensor bytes live in: a `Vec<u8>` or a read-only memory map of a file.
pub trait Storage: AsRef<[u8]> + Send + Sync {
    /// A hint that `start..start + len` will not be read again soon. A memory map drops those
    /// pages from the process (the file still holds them); owned memory ignores it.
    fn release(&self, _start: usize, _len: usize) {}

    /// A hint that `start..start + len` is about to be read (a memory map starts reading
    /// those pages in).
    fn prefetch(&self, _start: usize, _len: usize) {}

    /// The number of bytes, known without producing them (a lazily computed storage knows its
    /// size before its bytes exist).
    fn byte_len(&self) -> usize {
        self.as_ref().len()
    }

    /// Calls `f` with `start..start + len`. A lazily computed storage that has not kept its
    /// bytes computes them for the call only, so a reader going through every tensor once
    /// (a conversion) never holds them all.
    fn read_with(&self, start: usize, len: usize, f: &mut dyn FnMut(&[u8])) {
        f(&self.as_ref()[start..start + len]);
    }

    /// `start..start + len` as an owned vector (a lazily computed storage hands over what it
    /// computes instead of copying it).
    fn to_vec(&self, start: usize, len: usize) -> Vec<u8> {
        self.as_ref()[start..start + len].to_vec()
    }

    /// A lazily permuted view of other bytes: its source and `(length, source stride)` per
    /// result axis (axes of length 1 left out).
    fn as_permuted(&self) -> Option<(&Bytes, &[(usize, usize)])> {
        None
    }
}

impl Storage for Vec<u8> {}

impl Storage for memmap2::Mmap {
    fn prefetch(&self, start: usize, len: usize) {
        const PAGE: usize = 4096;
        let begin = start / PAGE * PAGE;
        let end = start.saturating_add(len).min(self.len());
        if end > begin {
            let _ = self.advise_range(memmap2::Advice::WillNeed, begin, end - begin);
        }
    }

    fn release(&self, start: usize, len: usize) {
        const PAGE: usize = 4096;
        let begin = start / PAGE * PAGE;
        let end = start.saturating_add(len).min(self.len());
        if end <= begin {
            return;
        }
        #[allow(unsafe_code)]
        // SAFETY: the map is read-only and file-backed, so dropped pages are read back from
        // the file on the next access: no data is lost, whoever else reads them.
        let _ = unsafe {
            self.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, begin, end - begin)
        };
    }
}

/// A read-only byte range over shared storage: a `Vec<u8>`, a memory map, anything that derefs
/// to bytes. Cloning shares the storage; nothing is copied.
#[derive(Clone)]
pub struct Bytes {
    storage: Arc<dyn Storage>,
    start: usize,
    len: usize,
}

impl Bytes {
    /// A range of `storage`. Fails when the range does not lie inside it.
    pub fn new(storage: Arc<dyn Storage>, start: usize, len: usize) -> Result<Self, IrError> {
        let total = storage.byte_len();
        let end = start.checked_add(len).ok_or(IrError::ByteRange {
            start,
            end: usize::MAX,
            len: total,
        })?;
        if end > total {
            return Err(IrError::ByteRange {
                start,
                end,
                len: total,
            });
        }
        Ok(Bytes {
            storage,
            start,
            len,
        })
    }

    /// Hints that these bytes are about to be read (see [`Storage::prefetch`]).
    pub fn prefetch(&self) {
        self.storage.prefetch(self.start, self.len);
    }

    /// Hints that these bytes will not be read again soon (see [`Storage::release`]).
    pub fn release(&self) {
        self.storage.release(self.start, self.len);
    }

    /// Whether reading these bytes gathers them from elsewhere (a lazily permuted view), as
    /// opposed to reading memory or a map in place.
    pub fn is_gathered(&self) -> bool {
        self.storage.as_permuted().is_some()
    }

    /// Owns `bytes` outright.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        Bytes {
            storage: Arc::new(bytes),
            start: 0,
            len,
        }
    }

    /// A sub-range, sharing the storage. Fails when it does not lie inside this range.
    pub fn slice(&self, start: usize, len: usize) -> Result<Bytes, IrError> {
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.len)
            .ok_or(IrError::ByteRange {
                start,
                end: start.saturating_add(len),
                len: self.len,
            })?;
        Ok(Bytes {
            storage: self.storage.clone(),
            start: self.start + start,
            len: end - start,
        })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &(*self.storage).as_ref()[self.start..self.start + self.len]
    }

    /// Calls `f` with the bytes; a lazily computed storage computes them for this call only
    /// (see [`Storage::read_with`]).
    pub fn read_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut f = Some(f);
        let mut result = None;
        self.storage.read_with(self.start, self.len, &mut |bytes| {
            if let Some(f) = f.take() {
                result = Some(f(bytes));
            }
        });
        result.expect("read_with calls back once")
    }

    /// The bytes as an owned vector (see [`Storage::to_vec`]).
    pub fn to_vec(&self) -> Vec<u8> {
        self.storage.to_vec(self.start, self.len)
    }

    /// Where these bytes start in their storage (for a memory map, the offset in the file).
    pub fn offset(&self) -> usize {
        self.start
    }

    /// Whether these bytes and `other` share a byte of the same storage.
    pub fn overlaps(&self, other: &Bytes) -> bool {
        let same = std::ptr::addr_eq(Arc::as_ptr(&self.storage), Arc::as_ptr(&other.storage));
        same && self.start < other.start + other.len && other.start < self.start + self.len
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len)
    }
}

/// A parameter or constant: dtype, shape and, when a file supplied them, its little-endian bytes
/// in the canonical layout. Graphs built from a spec hold shapes only.
#[derive(Clone, Debug)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    numel: usize,
    data: Option<Bytes>,
}

impl Tensor {
    /// A tensor with a shape and no data.
    pub fn shape_only(dtype: DType, shape: Vec<usize>) -> Result<Self, IrError> {
        let numel = checked_numel(&shape)?;
        numel
            .checked_mul(dtype.size())
            .ok_or_else(|| IrError::ShapeOverflow(shape.clone()))?;
        Ok(Tensor {
            dtype,
            shape,
            numel,
            data: None,
        })
    }

    /// A tensor with data; `data` must hold exactly `numel × dtype size` bytes.
    pub fn with_data(dtype: DType, shape: Vec<usize>, data: Bytes) -> Result<Self, IrError> {
        let mut tensor = Tensor::shape_only(dtype, shape)?;
        let expected = tensor.nbytes();
        if data.len() != expected {
            return Err(IrError::DataSize {
                dtype,
                shape: tensor.shape,
                expected,
                found: data.len(),
            });
        }
        tensor.data = Some(data);
        Ok(tensor)
    }

    /// A f32 tensor holding `values`.
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Result<Self, IrError> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::with_data(DType::F32, shape, Bytes::from_vec(bytes))
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// Size of the data in bytes (whether or not the data is present).
    pub fn nbytes(&self) -> usize {
        self.numel * self.dtype.size()
    }

    /// The raw little-endian bytes, if present.
    pub fn data(&self) -> Option<&Bytes> {
        self.data.as_ref()
    }

    /// The bytes a tensor reads as stored: its data, or the source of a lazily permuted view
    /// (read without gathering it).
    pub fn stored_bytes(&self) -> Option<&Bytes> {
        let data = self.data.as_ref()?;
        Some(match data.storage.as_permuted() {
            Some((source, _)) => source,
            None => data,
        })
    }

    /// The values converted to f32 (integers and f64 rounded to nearest).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, IrError> {
        let data = self
            .data
            .as_ref()
            .ok_or_else(|| IrError::NoData(self.shape.clone()))?;
        Ok(data.read_with(|bytes| decode_f32(self.dtype, bytes)))
    }
}

/// Little-endian values of `dtype` as f32 (integers and f64 rounded to nearest).
fn decode_f32(dtype: DType, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        // Little-endian f32 on a little-endian machine: one copy.
        DType::F32 if cfg!(target_endian = "little") => {
            let n = bytes.len() / 4;
            let mut values = vec![0f32; n];
            bytemuck::cast_slice_mut::<f32, u8>(&mut values).copy_from_slice(&bytes[..n * 4]);
            values
        }
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")) as f32)
            .collect(),
        DType::I64 => bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("chunk of 8")) as f32)
            .collect(),
    }
}

/// The bytes of a tensor with its axes reordered, gathered on first read: importing a
/// TensorFlow-layout file costs nothing until the weights are used (`inspect` never reads them).
struct Permuted {
    src: Bytes,
    /// `(length, source stride)` per result axis, axes of length 1 left out.
    axes: Vec<(usize, usize)>,
    size: usize,
    out: OnceLock<Vec<u8>>,
}

impl Permuted {
    fn gather(&self) -> Vec<u8> {
        let src = self.src.as_slice();
        let mut out = vec![0u8; src.len()];
        if !src.is_empty() {
            permute_into(&mut out, src, &self.axes, self.size);
        }
        out
    }
}

impl AsRef<[u8]> for Permuted {
    fn as_ref(&self) -> &[u8] {
        self.out.get_or_init(|| self.gather())
    }
}

impl Storage for Permuted {
    fn byte_len(&self) -> usize {
        self.src.len()
    }

    fn read_with(&self, start: usize, len: usize, f: &mut dyn FnMut(&[u8])) {
        match self.out.get() {
            Some(out) => f(&out[start..start + len]),
            None => f(&self.gather()[start..start + len]),
        }
    }

    fn to_vec(&self, start: usize, len: usize) -> Vec<u8> {
        match self.out.get() {
            Some(out) => out[start..start + len].to_vec(),
            None if start == 0 && len == self.src.len() => self.gather(),
            None => self.gather()[start..start + len].to_vec(),
        }
    }

    fn prefetch(&self, _start: usize, _len: usize) {
        self.src.prefetch();
    }

    fn release(&self, _start: usize, _len: usize) {
        self.src.release();
    }

    fn as_permuted(&self) -> Option<(&Bytes, &[(usize, usize)])> {
        Some((&self.src, &self.axes))
    }
}

impl Tensor {
    /// The tensor with its axes reordered: axis `i` of the result is axis `perm[i]` of this one
    /// (NumPy's `transpose(perm)`), gathered into a contiguous buffer when its data is first
    /// read.
    pub fn permuted(&self, perm: &[usize]) -> Result<Tensor, IrError> {
        let rank = self.shape.len();
        let mut seen = vec![false; rank];
        if perm.len() != rank
            || perm
                .iter()
                .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
        {
            return Err(IrError::ShapeOverflow(self.shape.clone()));
        }
        let src = self
            .data
            .as_ref()
            .ok_or_else(|| IrError::NoData(self.shape.clone()))?;
        let size = self.dtype.size();
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        // Strides of this tensor's axes, in elements of the bytes read: row-major for plain
        // bytes; a permuted view's own, so that permuting it again reads its source once.
        let mut base = src.clone();
        let mut strides = vec![1usize; rank];
        for axis in (0..rank.saturating_sub(1)).rev() {
            strides[axis] = strides[axis + 1] * self.shape[axis + 1];
        }
        let whole = src.start == 0 && src.len == src.storage.byte_len();
        // Only when the view's axes are this tensor's (the same lengths, axes of length 1
        // left out on both sides): a view reshaped since has strides of another shape.
        if let Some((inner, inner_axes)) = src.storage.as_permuted().filter(|(_, axes)| {
            whole
                && axes.iter().map(|&(len, _)| len).eq(self
                    .shape
                    .iter()
                    .copied()
                    .filter(|&d| d != 1))
        }) {
            let mut own = inner_axes.iter();
            for (stride, &len) in strides.iter_mut().zip(&self.shape) {
                if len != 1 {
                    *stride = own.next().map_or(0, |&(_, s)| s);
                }
            }
            base = inner.clone();
        }
        let axes: Vec<(usize, usize)> = perm
            .iter()
            .map(|&p| (self.shape[p], strides[p]))
            .filter(|&(len, _)| len != 1)
            .collect();
        // Axes back in the order of the bytes: a view of them, nothing to gather.
        let mut expected = 1;
        let in_order = axes.iter().rev().all(|&(len, stride)| {
            let ok = stride == expected;
            expected *= len;
            ok
        });
        if in_order {
            return Tensor::with_data(self.dtype, shape, base);
        }
        let len = base.len();
        let lazy = Permuted {
            src: base,
            axes,
            size,
            out: OnceLock::new(),
        };
        Tensor::with_data(self.dtype, shape, Bytes::new(Arc::new(lazy), 0, len)?)
    }
}

/// Writes `src` gathered along `axes` (`(length, source stride)` in the result's order) into
/// `out`, a row of the last axis at a time; large tensors are cut into runs of rows gathered on
/// every core.
fn permute_into(out: &mut [u8], src: &[u8], axes: &[(usize, usize)], size: usize) {
    let Some((&(inner, inner_stride), _)) = axes.split_last() else {
        out.copy_from_slice(src);
        return;
    };
    if inner_stride != 1 && permute_tiled(out, src, axes, size) {
        return;
    }
    let row = inner * size;
    let rows = out.len() / row.max(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if out.len() < (4 << 20) || threads == 1 || rows < threads {
        permute_rows(out, src, axes, size, 0);
        return;
    }
    let per = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        for (i, chunk) in out.chunks_mut(per * row).enumerate() {
            scope.spawn(move || permute_rows(chunk, src, axes, size, i * per));
        }
    });
}

/// Elements per side of a tile of [`permute_tiled`].
const TILE: usize = 16;

/// [`permute_into`] when the result's last axis is strided in the source: a transpose between
/// that axis and the one the source holds contiguous, in tiles of [`TILE`]² elements, so that
/// reads and writes both stay within a few cache lines (OIHW ↔ HWIO, `[out, in]` ↔
/// `[in, out]`). Returns false, doing nothing, when no axis is contiguous in the source.
fn permute_tiled(out: &mut [u8], src: &[u8], axes: &[(usize, usize)], size: usize) -> bool {
    /// The slices as elements of `T` when their length and alignment allow.
    fn cast<'a, T: bytemuck::Pod>(
        out: &'a mut [u8],
        src: &'a [u8],
    ) -> Option<(&'a mut [T], &'a [T])> {
        Some((
            bytemuck::try_cast_slice_mut(out).ok()?,
            bytemuck::try_cast_slice(src).ok()?,
        ))
    }
    if out.len() != src.len() {
        return false;
    }
    match size {
        2 => cast::<u16>(out, src).is_some_and(|(o, s)| transpose_tiles(o, s, axes)),
        4 => cast::<u32>(out, src).is_some_and(|(o, s)| transpose_tiles(o, s, axes)),
        8 => cast::<u64>(out, src).is_some_and(|(o, s)| transpose_tiles(o, s, axes)),
        _ => false,
    }
}

/// [`permute_tiled`] over elements.
fn transpose_tiles<T: Copy>(out: &mut [T], src: &[T], axes: &[(usize, usize)]) -> bool {
    let n = axes.len();
    let Some(p) = axes[..n - 1].iter().position(|&(_, stride)| stride == 1) else {
        return false;
    };
    let (n_last, s_last) = axes[n - 1];
    let n_p = axes[p].0;
    // Row-major strides of the result, in elements.
    let mut result = vec![1usize; n];
    for a in (0..n - 1).rev() {
        result[a] = result[a + 1] * axes[a + 1].0;
    }
    let outer: Vec<usize> = (0..n - 1).filter(|&a| a != p).collect();
    let mut index = vec![0usize; outer.len()];
    loop {
        let (mut base_out, mut base_src) = (0usize, 0usize);
        for (&a, &i) in outer.iter().zip(&index) {
            base_out += i * result[a];
            base_src += i * axes[a].1;
        }
        for p0 in (0..n_p).step_by(TILE) {
            for l0 in (0..n_last).step_by(TILE) {
                let l1 = (l0 + TILE).min(n_last);
                for ip in p0..(p0 + TILE).min(n_p) {
                    let o = base_out + ip * result[p];
                    let s = base_src + ip;
                    for (il, dst) in (l0..l1).zip(&mut out[o + l0..o + l1]) {
                        *dst = src[s + il * s_last];
                    }
                }
            }
        }
        if !next_index(&mut index, |axis| axes[outer[axis]].0) {
            return true;
        }
    }
}

/// [`permute_into`] for the rows of `out`, the first being row `first` of the result.
fn permute_rows(out: &mut [u8], src: &[u8], axes: &[(usize, usize)], size: usize, first: usize) {
    let Some((&(inner, inner_stride), outer_axes)) = axes.split_last() else {
        return;
    };
    let row = inner * size;
    // The multi-index of row `first` over the outer axes (the last varies fastest).
    let mut index = vec![0usize; outer_axes.len()];
    let mut rest = first;
    for (slot, (len, _)) in index.iter_mut().zip(outer_axes).rev() {
        *slot = rest % len;
        rest /= len;
    }
    for dst in out.chunks_exact_mut(row) {
        let base: usize = index
            .iter()
            .zip(outer_axes)
            .map(|(i, (_, stride))| i * stride)
            .sum();
        if inner_stride == 1 {
            dst.copy_from_slice(&src[base * size..base * size + row]);
        } else if size == 4 {
            for (k, d) in dst.chunks_exact_mut(4).enumerate() {
                let at = (base + k * inner_stride) * 4;
                d.copy_from_slice(&src[at..at + 4]);
            }
        } else {
            for (k, d) in dst.chunks_exact_mut(size).enumerate() {
                let at = (base + k * inner_stride) * size;
                d.copy_from_slice(&src[at..at + size]);
            }
        }
        next_index(&mut index, |axis| outer_axes[axis].0);
    }
}

/// Steps the multi-index `index` (the last axis fastest) over axes of lengths `len(axis)`;
/// false once it has wrapped around to all zeros.
fn next_index(index: &mut [usize], len: impl Fn(usize) -> usize) -> bool {
    for axis in (0..index.len()).rev() {
        index[axis] += 1;
        if index[axis] < len(axis) {
            return true;
        }
        index[axis] = 0;
    }
    false
}

/// The product of `shape`, or an error when it overflows.
pub(crate) fn checked_numel(shape: &[usize]) -> Result<usize, IrError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| IrError::ShapeOverflow(shape.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_reject_ranges_outside_storage() {
        let storage: Arc<dyn Storage> = Arc::new(vec![0u8; 8]);
        assert!(Bytes::new(storage.clone(), 4, 4).is_ok());
        assert!(matches!(
            Bytes::new(storage.clone(), 5, 4),
            Err(IrError::ByteRange { .. })
        ));
        assert!(matches!(
            Bytes::new(storage, usize::MAX, 2),
            Err(IrError::ByteRange { .. })
        ));
    }

    #[test]
    fn tensor_checks_data_size_and_overflow() {
        let err = Tensor::with_data(DType::F32, vec![2, 3], Bytes::from_vec(vec![0; 23]));
        assert!(matches!(err, Err(IrError::DataSize { expected: 24, .. })));
        let huge = Tensor::shape_only(DType::F32, vec![usize::MAX / 2, 3]);
        assert!(matches!(huge, Err(IrError::ShapeOverflow(_))));
    }

    #[test]
    fn permuted_moves_axes_like_numpy_transpose() {
        // [2, 3] → [3, 2]
        let t = Tensor::from_f32(vec![2, 3], &[0., 1., 2., 3., 4., 5.]).unwrap();
        let p = t.permuted(&[1, 0]).unwrap();
        assert_eq!(p.shape(), &[3, 2]);
        assert_eq!(p.to_f32_vec().unwrap(), vec![0., 3., 1., 4., 2., 5.]);
        // HWIO [1, 2, 1, 3] → OIHW [3, 1, 1, 2]
        let hwio = Tensor::from_f32(vec![1, 2, 1, 3], &[0., 1., 2., 3., 4., 5.]).unwrap();
        let oihw = hwio.permuted(&[3, 2, 0, 1]).unwrap();
        assert_eq!(oihw.shape(), &[3, 1, 1, 2]);
        assert_eq!(oihw.to_f32_vec().unwrap(), vec![0., 3., 1., 4., 2., 5.]);
        assert!(t.permuted(&[0, 0]).is_err());
    }

    #[test]
    fn permuting_a_permuted_view_reads_its_source_once() {
        // HWIO [2, 3, 4, 5] → OIHW → HWIO again: the original bytes, not a copy.
        let values: Vec<f32> = (0..120).map(|v| v as f32).collect();
        let hwio = Tensor::from_f32(vec![2, 3, 4, 5], &values).unwrap();
        let oihw = hwio.permuted(&[3, 2, 0, 1]).unwrap();
        let back = oihw.permuted(&[2, 3, 1, 0]).unwrap();
        assert_eq!(back.shape(), &[2, 3, 4, 5]);
        assert_eq!(back.to_f32_vec().unwrap(), values);
        assert!(back.data().unwrap().storage.as_permuted().is_none());
        // OIHW → [I, O, H, W]: one gather from the HWIO bytes, equal to two.
        let io = oihw.permuted(&[1, 0, 2, 3]).unwrap();
        let twice = Tensor::from_f32(vec![5, 4, 2, 3], &oihw.to_f32_vec().unwrap())
            .unwrap()
            .permuted(&[1, 0, 2, 3])
            .unwrap();
        assert_eq!(io.to_f32_vec().unwrap(), twice.to_f32_vec().unwrap());
        let (source, _) = io.data().unwrap().storage.as_permuted().unwrap();
        assert_eq!(source.len(), 480);
        // Depthwise [3, 3, 8, 1] → [8, 1, 3, 3] → back, with an axis of length 1.
        // A view given another shape since: its strides are not that shape's, so it is
        // gathered first, not composed.
        // ([5, 4, 2, 3] read as [3, 2, 4, 5]: as many axes, other lengths.)
        let reshaped =
            Tensor::with_data(DType::F32, vec![3, 2, 4, 5], oihw.data().unwrap().clone()).unwrap();
        let flat = oihw.to_f32_vec().unwrap();
        let t = reshaped
            .permuted(&[3, 2, 1, 0])
            .unwrap()
            .to_f32_vec()
            .unwrap();
        for (n, &got) in t.iter().enumerate() {
            let (d, rest) = (n / 24, n % 24);
            let (c, rest) = (rest / 6, rest % 6);
            let (b, a) = (rest / 3, rest % 3);
            assert_eq!(got, flat[((a * 2 + b) * 4 + c) * 5 + d], "element {n}");
        }
        let dw = Tensor::from_f32(vec![3, 3, 8, 1], &values[..72]).unwrap();
        let back = dw
            .permuted(&[2, 3, 0, 1])
            .unwrap()
            .permuted(&[2, 3, 0, 1])
            .unwrap();
        assert_eq!(back.to_f32_vec().unwrap(), &values[..72]);
    }

    #[test]
    fn tiled_transposes_of_odd_sizes_equal_the_definition() {
        // OIHW [37, 21, 3, 3] → HWIO: tiles cut at the edges of every axis.
        let (o, i, h, w) = (37, 21, 3, 3);
        let values: Vec<f32> = (0..o * i * h * w).map(|v| v as f32).collect();
        let oihw = Tensor::from_f32(vec![o, i, h, w], &values).unwrap();
        let hwio = oihw.permuted(&[2, 3, 1, 0]).unwrap().to_f32_vec().unwrap();
        for (n, &got) in hwio.iter().enumerate() {
            let (hh, rest) = (n / (w * i * o), n % (w * i * o));
            let (ww, rest) = (rest / (i * o), rest % (i * o));
            let (ii, oo) = (rest / o, rest % o);
            assert_eq!(
                got,
                values[((oo * i + ii) * h + hh) * w + ww],
                "element {n}"
            );
        }
        // Dense [out, in] → [in, out].
        let dense = Tensor::from_f32(vec![o, i], &values[..o * i]).unwrap();
        let t = dense.permuted(&[1, 0]).unwrap().to_f32_vec().unwrap();
        for (n, &got) in t.iter().enumerate() {
            assert_eq!(got, values[(n % o) * i + n / o], "element {n}");
        }
    }

    #[test]
    fn large_permutations_gathered_on_every_core_equal_the_definition() {
        // HWIO [3, 3, 160, 960] (5.5 MB, past the threaded size) → OIHW, against the indices.
        let (h, w, i, o) = (3, 3, 160, 960);
        let values: Vec<f32> = (0..h * w * i * o).map(|v| v as f32).collect();
        let hwio = Tensor::from_f32(vec![h, w, i, o], &values).unwrap();
        let oihw = hwio.permuted(&[3, 2, 0, 1]).unwrap().to_f32_vec().unwrap();
        for (n, &got) in oihw.iter().enumerate() {
            let (oo, rest) = (n / (i * h * w), n % (i * h * w));
            let (ii, rest) = (rest / (h * w), rest % (h * w));
            let (hh, ww) = (rest / w, rest % w);
            assert_eq!(
                got,
                values[((hh * w + ww) * i + ii) * o + oo],
                "element {n}"
            );
        }
        // Read for a call only, and kept once read whole: the same values.
        let lazy = hwio.permuted(&[3, 2, 0, 1]).unwrap();
        let once = lazy.data().unwrap().to_vec();
        assert_eq!(once, lazy.data().unwrap().as_slice());
    }

    #[test]
    fn tensor_decodes_every_float_dtype() {
        let t = Tensor::from_f32(vec![2], &[1.5, -2.0]).unwrap();
        assert_eq!(t.to_f32_vec().unwrap(), vec![1.5, -2.0]);
        let h: Vec<u8> = [f16::from_f32(0.25), f16::from_f32(-4.0)]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = Tensor::with_data(DType::F16, vec![2], Bytes::from_vec(h)).unwrap();
        assert_eq!(t.to_f32_vec().unwrap(), vec![0.25, -4.0]);
        let b: Vec<u8> = bf16::from_f32(3.0).to_le_bytes().to_vec();
        let t = Tensor::with_data(DType::BF16, vec![1], Bytes::from_vec(b)).unwrap();
        assert_eq!(t.to_f32_vec().unwrap(), vec![3.0]);
        let i: Vec<u8> = 7i64.to_le_bytes().to_vec();
        let t = Tensor::with_data(DType::I64, vec![], Bytes::from_vec(i)).unwrap();
        assert_eq!(t.to_f32_vec().unwrap(), vec![7.0]);
        let shape_only = Tensor::shape_only(DType::F32, vec![4]).unwrap();
        assert!(matches!(shape_only.to_f32_vec(), Err(IrError::NoData(_))));
    }
}
