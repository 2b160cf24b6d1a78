//! The legacy stream (PyTorch 0.4–1.5): five pickles back to back, then each storage as an
//! element count and its bytes.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use effnet_io::{Budget, escape};
use effnet_ir::{Bytes, DType};
use memmap2::Mmap;

use crate::pickle_scan::ScanError;
use crate::{
    Container, MAX_PICKLE_BYTES, Parsed, StorageBytes, TorchError, pickle_scan, vm, vm_error,
};

/// The legacy stream: five pickles, then each storage as an i64 element count and its bytes,
/// in the order of the key list. The five pickles together may span at most
/// [`MAX_PICKLE_BYTES`].
pub(crate) fn read_legacy(
    path: &Path,
    map: &Arc<Mmap>,
    budget: &Budget,
) -> Result<Parsed, TorchError> {
    let data: &[u8] = &map[..];
    let read_err = |message: String| TorchError::Read {
        path: path.to_owned(),
        message,
    };
    let cap = data
        .len()
        .min(usize::try_from(MAX_PICKLE_BYTES).unwrap_or(usize::MAX));
    let pickles = &data[..cap];
    let capped = |e: vm::VmError| match e {
        vm::VmError::Scan(ScanError::Truncated(_)) if cap < data.len() => read_err(format!(
            "its pickles run past {MAX_PICKLE_BYTES} bytes, more than accepted"
        )),
        e => vm_error(path, e),
    };
    let mut globals = Vec::new();
    let mut seen = HashSet::new();
    let mut pos = 0;
    let mut values = Vec::new();
    for _ in 0..5 {
        let (found, _) = pickle_scan::scan(pickles, pos, budget)
            .map_err(|reason| capped(vm::VmError::Scan(reason)))?;
        for g in found {
            if seen.insert(g.clone()) {
                globals.push(g);
            }
        }
        let (value, end) = vm::evaluate(pickles, pos, budget).map_err(capped)?;
        values.push(value);
        pos = end;
    }
    let named = values[3].tensors(budget).map_err(|e| vm_error(path, e))?;
    let Some(items) = values[4].items(values[4].root()) else {
        return Err(read_err("the storage key list is missing".into()));
    };
    // The list may name one long string many times: its copies are charged first.
    let text: u64 = items
        .iter()
        .map(|v| match v {
            vm::Value::Str(s) => s.len() as u64 + 24,
            _ => 0,
        })
        .sum();
    budget
        .memory(text, || "the storage key list".into())
        .map_err(|reason| TorchError::Budget {
            path: path.to_owned(),
            reason,
        })?;
    let keys: Vec<String> = items
        .iter()
        .filter_map(|v| match v {
            vm::Value::Str(s) => Some(s.to_string()),
            _ => None,
        })
        .collect();
    drop(values);
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for (_, t) in &named {
        sizes.insert(&t.storage.key, t.storage.dtype.map_or(1, DType::size));
    }
    let mut storages = StorageBytes::new();
    for key in keys {
        let elem = *sizes.get(key.as_str()).ok_or_else(|| {
            read_err(format!(
                "storage `{}` is listed but no tensor uses it",
                escape(&key)
            ))
        })?;
        let count = pos
            .checked_add(8)
            .and_then(|end| data.get(pos..end))
            .ok_or_else(|| read_err(format!("storage `{}` is cut off", escape(&key))))?;
        let numel = u64::from_le_bytes(count.try_into().expect("8 bytes"));
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elem))
            .filter(|&l| {
                (pos + 8)
                    .checked_add(l)
                    .is_some_and(|end| end <= data.len())
            })
            .ok_or_else(|| {
                read_err(format!(
                    "storage `{}` ({numel} elements) extends beyond the end of the file",
                    escape(&key)
                ))
            })?;
        let storage: Arc<dyn effnet_ir::Storage> = map.clone();
        let bytes = Bytes::new(storage, pos + 8, len).map_err(|e| read_err(e.to_string()))?;
        storages.insert(key, bytes);
        pos += 8 + len;
    }
    Ok((Container::Legacy, globals, named, storages))
}
