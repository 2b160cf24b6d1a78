//! Tensors stored in slices (TF1 partitioned variables, TF ≥ 2.16 sharding policies): the
//! slice keys, and the slices checked and assembled into one tensor.

use std::path::Path;
use std::sync::Arc;

use effnet_io::Budget;
use effnet_ir::{Bytes, DType, Tensor};
use memmap2::Mmap;
use prost::Message;

use crate::bundle::check_size;
use crate::proto::{self, BundleEntryProto};
use crate::shards::Shards;
use crate::{TfError, masked_crc32c};

/// The tensor name in a slice key: after the leading `WriteNumIncreasing(0)` (one zero byte),
/// an OrderedCode string (`\x00` escaped as `\x00\xff`, `\xff` as `\xff\x00`, ended by
/// `\x00\x01`).
pub(crate) fn slice_key_name(key: &[u8]) -> Option<String> {
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match (*key.get(i)?, key.get(i + 1).copied()) {
            (0x00, Some(0x01)) => break,
            (0x00, Some(0xff)) => {
                out.push(0x00);
                i += 2;
            }
            (0xff, Some(0x00)) => {
                out.push(0xff);
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// One extent of a slice: `(start, length)`, length `None` for the whole dimension.
type Extent = (i64, Option<i64>);

/// A tensor stored as slices (`TensorSliceProto`s on its entry, each slice's bytes under its
/// own key), copied into one buffer. Slice keys encode their extents order-preservingly, so
/// the slice entries (in key order) pair with the extents sorted the same way; every slice's
/// shape is checked against its extent and its bytes against its crc32c.
///
/// Every slice is validated first (extents, shapes, bytes inside their shard, checksums, no
/// overlap, exact coverage); only then is the tensor allocated, so its size is at most the
/// bytes its slices occupy in the shards. The pairwise overlap check is charged as work.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    shards: &mut Shards,
    index_path: &Path,
    key: &str,
    entry: &BundleEntryProto,
    dt: DType,
    shape: Vec<usize>,
    pieces: Vec<BundleEntryProto>,
    budget: &Budget,
) -> Result<Tensor, TfError> {
    let format = |message: String| TfError::Format {
        path: index_path.to_owned(),
        message: format!("`{key}`: {message}"),
    };
    let mut extents: Vec<Vec<Extent>> = Vec::new();
    for raw in &entry.slices {
        budget
            .memory_for(raw.len() as u64 + 1, 48, || {
                format!("the slices of `{key}`")
            })
            .map_err(TfError::budget(index_path))?;
        let slice = proto::TensorSliceProto::decode(raw.as_slice())
            .map_err(|e| format(format!("a slice: {e}")))?;
        extents.push(slice.extent.iter().map(|e| (e.start, e.length)).collect());
    }
    if extents.len() != pieces.len() {
        return Err(format(format!(
            "{} slices declared, {} stored",
            extents.len(),
            pieces.len()
        )));
    }
    // OrderedCode orders the dimension count first, then each start and length (−1 = whole).
    extents.sort_by_cached_key(|e| {
        let mut k = vec![e.len() as i64];
        for (start, length) in e {
            k.extend([*start, length.unwrap_or(-1)]);
        }
        k
    });
    let total = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(dt.size()))
        .ok_or_else(|| format("too large".into()))?;
    // Pass 1: every slice checked, nothing allocated for the tensor.
    struct Placed {
        boxed: Vec<(usize, usize)>,
        starts: Vec<usize>,
        lengths: Vec<usize>,
        map: Arc<Mmap>,
        range: (usize, usize),
    }
    let mut placed: Vec<Placed> = Vec::with_capacity(pieces.len());
    let mut covered = 0usize;
    for (extent, piece) in extents.iter().zip(&pieces) {
        if extent.len() != shape.len() {
            return Err(format("a slice of another rank".into()));
        }
        let mut starts = Vec::with_capacity(shape.len());
        let mut lengths = Vec::with_capacity(shape.len());
        for (&(start, length), &dim) in extent.iter().zip(&shape) {
            let start = usize::try_from(start).map_err(|_| format("a negative slice".into()))?;
            let length = match length {
                None => dim.checked_sub(start),
                Some(l) => usize::try_from(l).ok(),
            }
            .filter(|&l| start.checked_add(l).is_some_and(|e| e <= dim))
            .ok_or_else(|| format("a slice outside the tensor".into()))?;
            starts.push(start);
            lengths.push(length);
        }
        let piece_shape = crate::bundle::shape(piece).map_err(format)?;
        if piece_shape != lengths {
            return Err(format(format!(
                "a slice of shape {piece_shape:?} where its extent says {lengths:?}"
            )));
        }
        let (shard_path, map, start, end) = shards.locate(index_path, key, piece)?;
        let bytes = &map[start..end];
        check_size(index_path, key, &lengths, dt, bytes.len())?;
        budget
            .work(placed.len() as u64 + 1, || {
                format!("checking the slices of `{key}` for overlaps")
            })
            .map_err(TfError::budget(index_path))?;
        let this: Vec<(usize, usize)> = starts
            .iter()
            .copied()
            .zip(lengths.iter().copied())
            .collect();
        if placed
            .iter()
            .any(|other| boxes_overlap(&other.boxed, &this))
        {
            return Err(format("two of its slices overlap".into()));
        }
        if masked_crc32c(bytes) != piece.crc32c {
            return Err(TfError::Checksum {
                path: shard_path,
                key: key.to_owned(),
            });
        }
        covered = covered
            .checked_add(bytes.len())
            .ok_or_else(|| format("too large".into()))?;
        placed.push(Placed {
            boxed: this,
            starts,
            lengths,
            map,
            range: (start, end),
        });
    }
    if covered != total {
        return Err(format("its slices do not cover it exactly once".into()));
    }
    // Pass 2: the tensor is as large as the slices' bytes in the shards, no larger.
    let mut out = vec![0u8; total];
    for p in &placed {
        let bytes = &p.map[p.range.0..p.range.1];
        copy_slice(&mut out, &shape, &p.starts, &p.lengths, bytes, dt.size());
    }
    Tensor::with_data(dt, shape, Bytes::from_vec(out)).map_err(|e| format(e.to_string()))
}

/// Whether two boxes (`(start, length)` per dimension) share an element.
fn boxes_overlap(a: &[(usize, usize)], b: &[(usize, usize)]) -> bool {
    a.iter()
        .zip(b)
        .all(|(&(a0, al), &(b0, bl))| al > 0 && bl > 0 && a0 < b0 + bl && b0 < a0 + al)
}

/// Copies a row-major block of `lengths` into `out` (row-major `shape`) at `starts`.
fn copy_slice(
    out: &mut [u8],
    shape: &[usize],
    starts: &[usize],
    lengths: &[usize],
    bytes: &[u8],
    item: usize,
) {
    let rank = shape.len();
    if rank == 0 {
        out.copy_from_slice(bytes);
        return;
    }
    let run = lengths[rank - 1] * item;
    let rows: usize = lengths[..rank - 1].iter().product();
    let mut index = vec![0usize; rank - 1];
    for row in 0..rows {
        let mut offset = 0usize;
        for d in 0..rank - 1 {
            offset = offset * shape[d] + starts[d] + index[d];
        }
        let at = (offset * shape[rank - 1] + starts[rank - 1]) * item;
        out[at..at + run].copy_from_slice(&bytes[row * run..(row + 1) * run]);
        for d in (0..rank - 1).rev() {
            index[d] += 1;
            if index[d] < lengths[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_keys_give_their_tensor_name() {
        let key = b"\x00model/a\x00\xffb/kernel\x00\x01\x01\x04\x80\x85";
        assert_eq!(slice_key_name(key).as_deref(), Some("model/a\0b/kernel"));
        assert_eq!(slice_key_name(b"\x00unterminated"), None);
    }

    #[test]
    fn slices_land_where_their_extents_say() {
        // A 2×3 tensor of u8 from a left 2×1 and a right 2×2 block.
        let mut out = [0u8; 6];
        copy_slice(&mut out, &[2, 3], &[0, 0], &[2, 1], &[1, 4], 1);
        copy_slice(&mut out, &[2, 3], &[0, 1], &[2, 2], &[2, 3, 5, 6], 1);
        assert_eq!(out, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn slices_that_share_an_element_overlap() {
        assert!(boxes_overlap(&[(0, 2), (0, 3)], &[(1, 1), (2, 1)]));
        assert!(!boxes_overlap(&[(0, 2), (0, 1)], &[(0, 2), (1, 2)]));
        assert!(!boxes_overlap(&[(0, 0)], &[(0, 4)]));
    }
}
