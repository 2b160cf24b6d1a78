//! Single-precision matrix products through `matrixmultiply` (packed AVX2/FMA micro-kernels
//! chosen at run time), tiled over the cores by this module, with an epilogue run on each tile
//! while it is still in cache.
//!
//! `matrixmultiply` is called single-threaded on each tile: measured on the project machine
//! its own threading and `gemm`'s rayon mode both lost to one thread on the small matrices of
//! EfficientNet's late stages, while tiling the columns (the spatial axis) over rayon keeps
//! both cores busy and packs the weights, the smaller operand, once per tile.

use rayon::prelude::*;

use super::simd::dispatch;

/// A row-major matrix view: `rows × cols` with `stride` elements between rows.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A contiguous row-major `rows × cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The same matrix read transposed (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(last < self.data.len(), "matrix view out of bounds");
        }
    }
}

/// Raw output pointer shared by the tiles, each of which writes a disjoint block.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
#[allow(unsafe_code)]
// SAFETY: tiles write disjoint blocks of the output (see `matmul`); the pointer outlives them.
unsafe impl Send for OutPtr {}
#[allow(unsafe_code)]
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the `Send` wrapper, not the raw field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Outputs per tile at most (512 KiB of f32), so that a tile is still in L2 when its
/// epilogue runs.
const TILE_FLOATS: usize = 1 << 17;

/// Work below this many multiply-accumulates runs on the calling thread.
const SERIAL_MACS: usize = 1 << 16;

/// `c = a · b`, `c` row-major `a.rows × b.cols` with row stride `ldc`; then
/// `epilogue(row, &mut c[row][col0..col1])` on every row of every tile, from the thread that
/// computed the tile.
pub(crate) fn matmul<E>(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], ldc: usize, epilogue: &E)
where
    E: Fn(usize, &mut [f32]) + Sync,
{
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "inner dimensions differ");
    a.check();
    b.check();
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        ldc >= n && (m - 1) * ldc + n <= c.len(),
        "output out of bounds"
    );
    if n <= 4 && ldc == n && a.col_stride == 1 {
        // A matrix-vector product (a classifier, squeeze-excitation on a 1×1 map): packing
        // the whole weight matrix for one column would cost more than the product.
        return matvec(a, b, c, epilogue);
    }
    let macs = m * n * k.max(1);
    let threads = rayon::current_num_threads().max(1);
    // Each tile packs its rows of `a` and its columns of `b`: split the larger operand, so
    // the smaller one is what gets packed again per tile. At least two tiles per thread
    // balance the load; tiles of at most TILE_FLOATS outputs keep the epilogue in cache.
    let tiles = threads * 2;
    let (row_tile, col_tile) = if macs < SERIAL_MACS || threads == 1 {
        (m, n)
    } else if m >= n {
        let rows = m.div_ceil(tiles).min((TILE_FLOATS / n).max(8));
        (rows.next_multiple_of(8).min(m), n)
    } else {
        let cols = n.div_ceil(tiles).min((TILE_FLOATS / m).max(64));
        (m, cols.next_multiple_of(16).min(n))
    };
    let row_tiles = m.div_ceil(row_tile);
    let col_tiles = n.div_ceil(col_tile);
    let out = OutPtr(c.as_mut_ptr());
    let tile = |t: usize| {
        let (rt, ct) = (t / col_tiles, t % col_tiles);
        let (r0, c0) = (rt * row_tile, ct * col_tile);
        let (r1, c1) = ((r0 + row_tile).min(m), (c0 + col_tile).min(n));
        #[allow(unsafe_code)]
        // SAFETY: `check` and the assert above keep every index of the views in bounds; the
        // tile writes rows r0..r1, columns c0..c1 of `c` only, and tiles do not overlap.
        unsafe {
            let a_ptr = a.data.as_ptr().add(r0 * a.row_stride);
            let b_ptr = b.data.as_ptr().add(c0 * b.col_stride);
            let c_ptr = out.get().add(r0 * ldc + c0);
            matrixmultiply::sgemm(
                r1 - r0,
                k,
                c1 - c0,
                1.0,
                a_ptr,
                a.row_stride as isize,
                a.col_stride as isize,
                b_ptr,
                b.row_stride as isize,
                b.col_stride as isize,
                0.0,
                c_ptr,
                ldc as isize,
                1,
            );
            for r in r0..r1 {
                let row = std::slice::from_raw_parts_mut(out.get().add(r * ldc + c0), c1 - c0);
                epilogue(r, row);
            }
        }
    };
    let tiles = row_tiles * col_tiles;
    if tiles == 1 {
        tile(0);
    } else {
        (0..tiles).into_par_iter().for_each(tile);
    }
}

#[inline(always)]
fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums in f64: these products are few (a classifier, an SE gate), so they
    // are summed well below f32's rounding at no measurable cost.
    let mut lanes = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += f64::from(x[i]) * f64::from(y[i]);
        }
    }
    let tail: f64 = ra
        .iter()
        .zip(rb)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    (lanes.iter().sum::<f64>() + tail) as f32
}

dispatch! {
    /// `Σ a[i] · b[i]`.
    fn dot(a: &[f32], b: &[f32]) -> f32 => dot_impl
}

/// `c = a · b` for a `b` of at most a few columns (`ldc == b.cols`), rows in parallel.
fn matvec<E>(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], epilogue: &E)
where
    E: Fn(usize, &mut [f32]) + Sync,
{
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let columns: Vec<Vec<f32>> = (0..n)
        .map(|j| {
            (0..k)
                .map(|p| b.data[p * b.row_stride + j * b.col_stride])
                .collect()
        })
        .collect();
    let row = |(i, out): (usize, &mut [f32])| {
        let a_row = &a.data[i * a.row_stride..i * a.row_stride + k];
        for (j, v) in out.iter_mut().enumerate() {
            *v = dot(a_row, &columns[j]);
        }
        epilogue(i, out);
    };
    let c = &mut c[..m * n];
    if m * k < SERIAL_MACS {
        c.chunks_mut(n).enumerate().for_each(row);
    } else {
        c.par_chunks_mut(n)
            .enumerate()
            .with_min_len(16)
            .for_each(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn tiles_cover_the_output_once() {
        for &(m, k, n) in &[
            (3, 5, 7),
            (500, 200, 3),
            (40, 24, 3000),
            (1152, 48, 49),
            (16, 96, 12544),
            (1, 7, 1),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
            let mut c = vec![f32::NAN; m * n];
            let bias = |r: usize, row: &mut [f32]| row.iter_mut().for_each(|v| *v += r as f32);
            matmul(
                MatRef::new(&a, m, k),
                MatRef::new(&b, k, n),
                &mut c,
                n,
                &bias,
            );
            let want = naive(&a, &b, m, k, n);
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(
                        c[i * n + j],
                        want[i * n + j] + i as f32,
                        "{m}x{k}x{n} at {i},{j}"
                    );
                }
            }
        }
    }
}
