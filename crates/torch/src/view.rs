//! Tensor views into a storage's bytes: zero-copy when contiguous, gathered into a copy
//! charged to the budget when strided or broadcast.

use effnet_io::{Budget, BudgetError, escape};
use effnet_ir::{Bytes, DType, Tensor};

use crate::vm;

/// Why a tensor view could not be made.
pub(crate) enum ViewError {
    /// The view does not fit its storage, or its sizes overflow.
    Invalid(String),
    /// Copying a strided view would exceed the budget.
    Budget(BudgetError),
}

impl From<&str> for ViewError {
    fn from(message: &str) -> Self {
        ViewError::Invalid(message.to_owned())
    }
}

impl From<String> for ViewError {
    fn from(message: String) -> Self {
        ViewError::Invalid(message)
    }
}

/// The tensor `t` as a view of `storage`: zero-copy when contiguous; a strided or broadcast
/// view is gathered into a copy charged to `budget` before it is allocated. Every size is
/// checked arithmetic, and the view must lie inside the storage the pickle declares, which
/// must lie inside the bytes the file holds for it.
pub(crate) fn view(
    storage: &Bytes,
    t: &vm::TensorRef,
    dtype: DType,
    budget: &Budget,
) -> Result<Tensor, ViewError> {
    let size = dtype.size();
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("its shape overflows")?;
    let nbytes = numel.checked_mul(size).ok_or("its shape overflows")?;
    let declared = usize::try_from(t.storage.numel).map_err(|_| "storage too large")?;
    let declared_bytes = declared
        .checked_mul(size)
        .ok_or("its storage's size overflows")?;
    if storage.len() < declared_bytes {
        return Err(format!(
            "storage `{}` holds {} bytes, its pickle declares {} elements of {size}",
            escape(&t.storage.key),
            storage.len(),
            declared
        )
        .into());
    }
    let offset = usize::try_from(t.offset).map_err(|_| "offset too large")?;
    if numel == 0 {
        return Tensor::with_data(dtype, t.shape.clone(), Bytes::from_vec(Vec::new()))
            .map_err(|e| e.to_string().into());
    }
    // The furthest element the view reaches must lie inside the storage.
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(offset, |acc, (&d, &s)| {
            acc.checked_add((d - 1).checked_mul(s)?)
        })
        .ok_or("its strides overflow")?;
    if last >= declared {
        return Err(format!(
            "shape {:?} with strides {:?} at offset {offset} reaches element {last}, but storage `{}` has {declared}",
            t.shape,
            t.stride,
            escape(&t.storage.key)
        )
        .into());
    }
    let mut expected = 1usize;
    let mut contiguous = true;
    for (&d, &s) in t.shape.iter().zip(&t.stride).rev() {
        if d != 1 && s != expected {
            contiguous = false;
        }
        expected = expected.saturating_mul(d);
    }
    let bytes = if contiguous {
        // `offset + numel - 1 == last < declared`: inside the storage.
        storage
            .slice(offset * size, nbytes)
            .map_err(|e| e.to_string())?
    } else {
        // A strided, overlapping or broadcast (stride 0) view: its copy may be far larger
        // than the storage, so it is charged before it is made.
        budget
            .memory(nbytes as u64, || {
                format!(
                    "a copy of a strided tensor view of shape {:?} ({nbytes} bytes)",
                    t.shape
                )
            })
            .map_err(ViewError::Budget)?;
        budget
            .work(numel as u64, || "copying a strided tensor view".into())
            .map_err(ViewError::Budget)?;
        Bytes::from_vec(gather(storage.as_slice(), t, offset, size, numel, nbytes))
    };
    Tensor::with_data(dtype, t.shape.clone(), bytes).map_err(|e| e.to_string().into())
}

/// The elements of a strided view, in order. Every index is at most `last`, checked inside
/// the storage by the caller.
fn gather(
    src: &[u8],
    t: &vm::TensorRef,
    offset: usize,
    size: usize,
    numel: usize,
    nbytes: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(nbytes);
    let rank = t.shape.len();
    let mut index = vec![0usize; rank];
    let mut at = offset;
    for _ in 0..numel {
        out.extend_from_slice(&src[at * size..(at + 1) * size]);
        for axis in (0..rank).rev() {
            // Wrapping: past the last element `at` is never used (a size-1 axis may have any
            // stride); before it, it stays within `last`.
            index[axis] += 1;
            at = at.wrapping_add(t.stride[axis]);
            if index[axis] < t.shape[axis] {
                break;
            }
            at = at.wrapping_sub(t.stride[axis].wrapping_mul(t.shape[axis]));
            index[axis] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: &[usize], stride: &[usize], numel: u64) -> vm::TensorRef {
        vm::TensorRef {
            storage: vm::StorageRef {
                key: "0".into(),
                dtype: Some(DType::F32),
                class: "FloatStorage".into(),
                numel,
            },
            offset: 0,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }

    fn floats(values: &[f32]) -> Bytes {
        Bytes::from_vec(values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    #[test]
    fn a_broadcast_view_is_copied_only_within_the_budget() {
        let storage = floats(&[1.0]);
        let budget = Budget::for_input(370);
        let t = tensor(&[1 << 20, 1 << 20], &[0, 0], 1);
        assert!(matches!(
            view(&storage, &t, DType::F32, &budget),
            Err(ViewError::Budget(_))
        ));
        // A small broadcast is copied.
        let t = tensor(&[2, 3], &[0, 0], 1);
        let v = view(&storage, &t, DType::F32, &budget).ok().unwrap();
        assert_eq!(v.to_f32_vec().unwrap(), vec![1.0; 6]);
    }

    #[test]
    fn sizes_that_wrap_are_refused() {
        let storage = floats(&[1.0]);
        let budget = Budget::for_input(370);
        for (shape, stride) in [
            (vec![1usize << 62], vec![1usize]),
            (vec![1 << 40, 1 << 40], vec![1, 1]),
            (vec![3, 3], vec![1 << 62, 1 << 62]),
        ] {
            let t = tensor(&shape, &stride, 1);
            assert!(matches!(
                view(&storage, &t, DType::F32, &budget),
                Err(ViewError::Invalid(_))
            ));
        }
        let t = tensor(&[1], &[1], u64::MAX / 2);
        assert!(matches!(
            view(&storage, &t, DType::F32, &budget),
            Err(ViewError::Invalid(_))
        ));
    }

    #[test]
    fn strided_views_gather_in_order_and_size_one_axes_take_any_stride() {
        let storage = floats(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let budget = Budget::for_input(1000);
        // The transpose of a 2 × 3 matrix.
        let t = tensor(&[3, 2], &[1, 3], 6);
        let v = view(&storage, &t, DType::F32, &budget).ok().unwrap();
        assert_eq!(v.to_f32_vec().unwrap(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let t = tensor(&[2, 1], &[2, usize::MAX], 6);
        let v = view(&storage, &t, DType::F32, &budget).ok().unwrap();
        assert_eq!(v.to_f32_vec().unwrap(), vec![0.0, 2.0]);
    }
}
