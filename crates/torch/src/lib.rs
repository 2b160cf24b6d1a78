//! PyTorch checkpoint containers, read without running any pickle code.
//!
//! # On disk
//!
//! - **Zip** (`torch.save`, PyTorch ≥ 1.6): a stored (uncompressed) zip archive whose single
//!   root folder (any name) holds `data.pkl`, the pickled object whose tensors refer to storages
//!   by persistent id, and `data/<key>`, one raw little-endian storage per key; plus
//!   `version`, `byteorder`, `.format_version`, `.storage_alignment`.
//! - **TorchScript** (`torch.jit.save`): the same zip layout plus `code/` and
//!   `constants.pkl`; `data.pkl` names `__torch__.*` module classes.
//! - **Legacy stream** (PyTorch 0.4–1.5, `_use_new_zipfile_serialization=False`): five pickles
//!   back to back (magic number `0x1950a86a20f9469cfc6c`, protocol 1001, sys_info, the object,
//!   the list of storage keys), then each storage as an element count and its bytes.
//!
//! Before anything is read for real, [`pickle_scan`] walks every pickle opcode by opcode and
//! refuses any global outside an allow-list (rebuilding tensors and parameters, storage types,
//! `OrderedDict`, the module classes of torch, torchvision, timm and EfficientNet-PyTorch). The
//! pickle is then evaluated by the restricted machine of [`vm`], which calls nothing: it yields
//! tensor references (storage key, offset, shape, strides) found through dictionaries, full
//! `nn.Module` pickles (`_parameters`, persistent `_buffers`, `_modules`) and TorchScript module
//! attributes. Tensors are views into a memory map of the file; strided views and compressed
//! entries are copied. Zip entries with `..` or absolute paths, compressed entries
//! that inflate more than [`MAX_INFLATE_RATIO`] times, pickles over [`MAX_PICKLE_BYTES`] and
//! tensors larger than the file are refused.

pub mod pickle_scan;
pub mod vm;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use effnet_ir::{Bytes, Checkpoint, DType, Tensor};
use memmap2::Mmap;

use crate::pickle_scan::ScanError;

/// The largest pickle (`data.pkl`, or the pickles of a legacy stream) read.
pub const MAX_PICKLE_BYTES: u64 = 100 * 1024 * 1024;
/// The largest ratio of inflated to compressed size accepted for a zip entry.
pub const MAX_INFLATE_RATIO: u64 = 200;
/// The most tensors one file may hold.
pub const MAX_TENSORS: usize = 100_000;

/// The first bytes of a legacy stream: PROTO 2, then LONG1 of the magic number.
const LEGACY_MAGIC: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];

/// Which PyTorch container a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Container {
    /// `torch.save` zip archive.
    Zip,
    /// `torch.jit.save` archive.
    TorchScript,
    /// The legacy pickle stream of PyTorch ≤ 1.5.
    Legacy,
}

impl Container {
    /// Lower-case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Container::Zip => "torch-zip",
            Container::TorchScript => "torchscript",
            Container::Legacy => "torch-legacy",
        }
    }
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A PyTorch file's tensors, flattened to dotted names (`model.features.0.0.weight`).
#[derive(Debug)]
pub struct TorchFile {
    /// The container.
    pub container: Container,
    /// Tensors by name, sorted by name.
    pub checkpoint: Checkpoint,
    /// The globals the pickle names (module classes of a full-model file among them).
    pub globals: Vec<String>,
    /// Tensors left out, with the reason (dtypes effnet does not model).
    pub skipped: Vec<(String, String)>,
}

/// Why a PyTorch file could not be read. Every message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TorchError {
    /// The file could not be opened or read.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
    /// The pickle names something outside the allow-list, or cannot be scanned.
    #[error("{}: refused: {reason}", path.display())]
    Pickle {
        /// The file.
        path: PathBuf,
        /// What the scan found.
        reason: ScanError,
    },
    /// The zip archive is malformed or hostile.
    #[error("{}: {message}", path.display())]
    Archive {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tensors could not be read (truncated storage, lying shape, …).
    #[error("{}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file holds no tensors.
    #[error("{}: the file holds no tensors (is it a PyTorch checkpoint?)", path.display())]
    NoTensors {
        /// The file.
        path: PathBuf,
    },
    /// Not a PyTorch container effnet reads.
    #[error("{}: {message}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        message: String,
    },
}

/// Whether the first bytes of a file are a legacy PyTorch stream.
pub fn is_legacy(head: &[u8]) -> bool {
    head.starts_with(&LEGACY_MAGIC)
}

/// Whether a zip archive's entry names are those of a PyTorch archive (`<root>/data.pkl`).
pub fn is_torch_zip(entry_names: &[String]) -> bool {
    entry_names.iter().any(|n| {
        let parts: Vec<&str> = n.split('/').collect();
        parts.len() == 2 && parts[1] == "data.pkl"
    })
}

/// Reads a PyTorch file: checks its pickles against the allow-list, evaluates them with the
/// restricted machine of [`vm`], and returns every tensor as a view into a memory map of the
/// file (gathered into a copy only when strided or compressed).
pub fn read(path: &Path) -> Result<TorchFile, TorchError> {
    let io = |reason| TorchError::Io {
        path: path.to_owned(),
        reason,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only and effnet never writes its input; a concurrent writer could
    // change bytes under it, which a read-only tool accepts (as torch.load(mmap=True) does).
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
    let map: Arc<Mmap> = Arc::new(map);
    let head = &map[..map.len().min(16)];
    let (container, globals, named, storages) = if head.starts_with(b"PK\x03\x04") {
        read_zip(path, &map)?
    } else if is_legacy(head) {
        read_legacy(path, &map)?
    } else {
        return Err(TorchError::Unsupported {
            path: path.to_owned(),
            message:
                "not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy stream)"
                    .into(),
        });
    };
    if named.len() > MAX_TENSORS {
        return Err(TorchError::Read {
            path: path.to_owned(),
            message: format!(
                "{} tensors, more than the {MAX_TENSORS} accepted",
                named.len()
            ),
        });
    }
    let mut checkpoint = Checkpoint::default();
    let mut skipped = Vec::new();
    for (name, tensor) in named {
        let Some(dtype) = tensor.storage.dtype else {
            skipped.push((
                name,
                format!("{} is not a parameter type", tensor.storage.class),
            ));
            continue;
        };
        let storage = storages
            .get(&tensor.storage.key)
            .ok_or_else(|| TorchError::Read {
                path: path.to_owned(),
                message: format!(
                    "tensor `{name}` refers to storage `{}`, which the file does not hold",
                    tensor.storage.key
                ),
            })?;
        let t = view(storage, &tensor, dtype).map_err(|message| TorchError::Read {
            path: path.to_owned(),
            message: format!("tensor `{name}`: {message}"),
        })?;
        checkpoint.tensors.push((name, t));
    }
    if checkpoint.is_empty() {
        return Err(TorchError::NoTensors {
            path: path.to_owned(),
        });
    }
    Ok(TorchFile {
        container,
        checkpoint,
        globals,
        skipped,
    })
}

/// A storage's bytes: a range of the map, or a copy when the entry was compressed.
type StorageBytes = HashMap<String, Bytes>;

/// What a container yields: its kind, the globals its pickle names, the tensors by name and
/// the storages they view.
type Parsed = (
    Container,
    Vec<String>,
    Vec<(String, vm::TensorRef)>,
    StorageBytes,
);

/// The tensor `t` as a view of `storage` (zero-copy when contiguous).
fn view(storage: &Bytes, t: &vm::TensorRef, dtype: DType) -> Result<Tensor, String> {
    let size = dtype.size();
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("its shape overflows")?;
    let declared = usize::try_from(t.storage.numel).map_err(|_| "storage too large")?;
    if storage.len() < declared.saturating_mul(size) {
        return Err(format!(
            "storage `{}` holds {} bytes, its pickle declares {} elements of {size}",
            t.storage.key,
            storage.len(),
            declared
        ));
    }
    let offset = usize::try_from(t.offset).map_err(|_| "offset too large")?;
    if numel == 0 {
        return Tensor::with_data(dtype, t.shape.clone(), Bytes::from_vec(Vec::new()))
            .map_err(|e| e.to_string());
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
            t.shape, t.stride, t.storage.key
        ));
    }
    let mut expected = 1usize;
    let mut contiguous = true;
    for (&d, &s) in t.shape.iter().zip(&t.stride).rev() {
        if d != 1 && s != expected {
            contiguous = false;
        }
        expected *= d;
    }
    let bytes = if contiguous {
        storage
            .slice(offset * size, numel * size)
            .map_err(|e| e.to_string())?
    } else {
        let src = storage.as_slice();
        let mut out = Vec::with_capacity(numel * size);
        let mut index = vec![0usize; t.shape.len()];
        for _ in 0..numel {
            let at = offset
                + index
                    .iter()
                    .zip(&t.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            out.extend_from_slice(&src[at * size..(at + 1) * size]);
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < t.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Bytes::from_vec(out)
    };
    Tensor::with_data(dtype, t.shape.clone(), bytes).map_err(|e| e.to_string())
}

/// A zip archive (`torch.save` or `torch.jit.save`).
fn read_zip(path: &Path, map: &Arc<Mmap>) -> Result<Parsed, TorchError> {
    let archive_err = |message: String| TorchError::Archive {
        path: path.to_owned(),
        message,
    };
    // torch writes archives from offset 0; a known offset spares the zip crate a scan of the
    // whole file for a prepended-data offset.
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut archive = zip::ZipArchive::with_config(config, Cursor::new(&map[..]))
        .map_err(|e| archive_err(format!("not a readable zip archive: {e}")))?;
    let mut pickle_entry: Option<(usize, String)> = None;
    let mut torchscript = false;
    let mut entries: HashMap<String, usize> = HashMap::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| archive_err(format!("zip entry #{i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| archive_err(format!("zip entry #{i} has an unreadable name: {e}")))?
            .into_owned();
        if name.starts_with('/') || name.contains('\\') || name.split('/').any(|c| c == "..") {
            return Err(archive_err(format!(
                "zip entry `{name}` points outside the archive"
            )));
        }
        let (size, compressed) = (entry.size(), entry.compressed_size());
        if size > 1 << 20 && size / compressed.max(1) > MAX_INFLATE_RATIO {
            return Err(archive_err(format!(
                "zip entry `{name}` inflates {compressed} bytes to {size} (a decompression bomb?)"
            )));
        }
        let parts: Vec<&str> = name.split('/').collect();
        if parts.len() == 2 && parts[1] == "data.pkl" {
            if pickle_entry.is_some() {
                return Err(archive_err(
                    "the archive holds more than one data.pkl".into(),
                ));
            }
            pickle_entry = Some((i, parts[0].to_owned()));
        }
        if parts.len() >= 2 && (parts[1] == "constants.pkl" || parts[1] == "code") {
            torchscript = true;
        }
        entries.insert(name, i);
    }
    let (index, root) = pickle_entry.ok_or_else(|| TorchError::Unsupported {
        path: path.to_owned(),
        message: "a zip archive without <root>/data.pkl: not a PyTorch checkpoint".into(),
    })?;
    let pickle = read_entry(&mut archive, index, MAX_PICKLE_BYTES)
        .map_err(|e| archive_err(format!("data.pkl: {e}")))?;
    let (globals, _) = pickle_scan::scan(&pickle, 0).map_err(|reason| TorchError::Pickle {
        path: path.to_owned(),
        reason,
    })?;
    let (root_value, _) = vm::evaluate(&pickle, 0).map_err(|e| vm_error(path, e))?;
    let named = vm::tensors(&root_value).map_err(|e| vm_error(path, e))?;

    let mut storages = StorageBytes::new();
    for (_, t) in &named {
        if storages.contains_key(&t.storage.key) {
            continue;
        }
        let entry_name = format!("{root}/data/{}", t.storage.key);
        let &i = entries
            .get(&entry_name)
            .ok_or_else(|| archive_err(format!("storage `{entry_name}` is missing")))?;
        let (stored, start, size) = {
            let entry = archive
                .by_index_raw(i)
                .map_err(|e| archive_err(format!("{entry_name}: {e}")))?;
            (
                entry.compression() == zip::CompressionMethod::Stored,
                entry.data_start().unwrap_or(0),
                entry.size(),
            )
        };
        let bytes = if stored {
            let storage: Arc<dyn effnet_ir::Storage> = map.clone();
            Bytes::new(
                storage,
                usize::try_from(start).unwrap_or(usize::MAX),
                usize::try_from(size).unwrap_or(usize::MAX),
            )
            .map_err(|e| archive_err(format!("{entry_name}: {e}")))?
        } else {
            let limit = (map.len() as u64).saturating_mul(MAX_INFLATE_RATIO);
            Bytes::from_vec(
                read_entry(&mut archive, i, limit)
                    .map_err(|e| archive_err(format!("{entry_name}: {e}")))?,
            )
        };
        storages.insert(t.storage.key.clone(), bytes);
    }
    let container = if torchscript {
        Container::TorchScript
    } else {
        Container::Zip
    };
    Ok((container, globals, named, storages))
}

/// Reads a whole zip entry, refusing more than `limit` bytes.
fn read_entry<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    index: usize,
    limit: u64,
) -> Result<Vec<u8>, String> {
    let entry = archive.by_index(index).map_err(|e| e.to_string())?;
    if entry.size() > limit {
        return Err(format!(
            "declares {} bytes, more than the {limit} accepted",
            entry.size()
        ));
    }
    let mut out = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    entry
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > limit {
        return Err(format!("inflates beyond {limit} bytes"));
    }
    Ok(out)
}

fn vm_error(path: &Path, e: vm::VmError) -> TorchError {
    match e {
        vm::VmError::Scan(reason) => TorchError::Pickle {
            path: path.to_owned(),
            reason,
        },
        other => TorchError::Read {
            path: path.to_owned(),
            message: other.to_string(),
        },
    }
}

/// The legacy stream: five pickles, then each storage as an i64 element count and its bytes,
/// in the order of the key list.
fn read_legacy(path: &Path, map: &Arc<Mmap>) -> Result<Parsed, TorchError> {
    let data: &[u8] = &map[..];
    let read_err = |message: String| TorchError::Read {
        path: path.to_owned(),
        message,
    };
    let mut globals = Vec::new();
    let mut pos = 0;
    let mut values = Vec::new();
    for _ in 0..5 {
        let (found, _) = pickle_scan::scan(data, pos).map_err(|reason| TorchError::Pickle {
            path: path.to_owned(),
            reason,
        })?;
        for g in found {
            if !globals.contains(&g) {
                globals.push(g);
            }
        }
        let (value, end) = vm::evaluate(data, pos).map_err(|e| vm_error(path, e))?;
        values.push(value);
        pos = end;
    }
    let named = vm::tensors(&values[3]).map_err(|e| vm_error(path, e))?;
    let keys: Vec<String> = match &values[4] {
        vm::Value::List(l) => l
            .borrow()
            .iter()
            .filter_map(|v| match v {
                vm::Value::Str(s) => Some(s.to_string()),
                _ => None,
            })
            .collect(),
        _ => return Err(read_err("the storage key list is missing".into())),
    };
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for (_, t) in &named {
        sizes.insert(&t.storage.key, t.storage.dtype.map_or(1, DType::size));
    }
    let mut storages = StorageBytes::new();
    for key in keys {
        let elem = *sizes
            .get(key.as_str())
            .ok_or_else(|| read_err(format!("storage `{key}` is listed but no tensor uses it")))?;
        let count = data
            .get(pos..pos + 8)
            .ok_or_else(|| read_err(format!("storage `{key}` is cut off")))?;
        let numel = u64::from_le_bytes(count.try_into().expect("8 bytes"));
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elem))
            .filter(|&l| pos + 8 + l <= data.len())
            .ok_or_else(|| {
                read_err(format!(
                    "storage `{key}` ({numel} elements) extends beyond the end of the file"
                ))
            })?;
        let storage: Arc<dyn effnet_ir::Storage> = map.clone();
        let bytes = Bytes::new(storage, pos + 8, len).map_err(|e| read_err(e.to_string()))?;
        storages.insert(key, bytes);
        pos += 8 + len;
    }
    Ok((Container::Legacy, globals, named, storages))
}
