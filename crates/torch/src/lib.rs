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
//!
//! Robustness (docs/security.md): only regular files are read; every zip entry lies inside the
//! file without overlapping the next, and every entry read passes its CRC-32; the pickle's
//! values live in an arena (no recursion on anything the file controls); every allocation for
//! metadata (values, names, the zip directory, strided copies) is charged to an
//! [`effnet_io::Budget`] derived from the file's size before it is made, and every opcode and
//! walk step as work; text from the file is escaped in messages.

mod allow_list;
mod memo;
mod op_reader;
pub mod pickle_scan;
pub mod vm;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use effnet_io::{Budget, BudgetError, escape};
use effnet_ir::{Bytes, Checkpoint, DType, Tensor};
use memmap2::Mmap;

use crate::pickle_scan::ScanError;

/// The largest pickle (`data.pkl`, or the pickles of a legacy stream together) read.
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

/// Why a PyTorch file could not be read. Every message names the file; text taken from the
/// file (tensor names, storage keys, pickle operands) is escaped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TorchError {
    /// The file could not be opened or read (or is not a regular file).
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
    /// Reading the file would take more memory or work than its size allows.
    #[error("{}: refused: {reason}", path.display())]
    Budget {
        /// The file.
        path: PathBuf,
        /// The budget exceeded.
        reason: BudgetError,
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
///
/// Only a regular file is read (checked on the open descriptor). Metadata — the pickle, its
/// values, names, the zip directory, strided copies — is charged to a [`Budget`] derived from
/// the file's size before it is allocated.
pub fn read(path: &Path) -> Result<TorchFile, TorchError> {
    let io = |reason| TorchError::Io {
        path: path.to_owned(),
        reason,
    };
    let (_file, map) = effnet_io::input::map_regular(path).map_err(io)?;
    let map: Arc<Mmap> = Arc::new(map);
    let budget = Budget::for_input(map.len() as u64);
    let budget_err = |reason| TorchError::Budget {
        path: path.to_owned(),
        reason,
    };
    let head = &map[..map.len().min(16)];
    let (container, globals, named, storages) = if head.starts_with(b"PK\x03\x04") {
        read_zip(path, &map, &budget)?
    } else if is_legacy(head) {
        read_legacy(path, &map, &budget)?
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
    budget
        .memory_for(
            named.len() as u64,
            std::mem::size_of::<(String, Tensor)>() as u64,
            || "the list of tensors".into(),
        )
        .map_err(budget_err)?;
    let mut checkpoint = Checkpoint::default();
    checkpoint.tensors.reserve(named.len());
    let mut skipped = Vec::new();
    for (name, tensor) in named {
        let Some(dtype) = tensor.storage.dtype else {
            skipped.push((
                name,
                format!("{} is not a parameter type", escape(&tensor.storage.class)),
            ));
            continue;
        };
        let storage = storages
            .get(&tensor.storage.key)
            .ok_or_else(|| TorchError::Read {
                path: path.to_owned(),
                message: format!(
                    "tensor `{}` refers to storage `{}`, which the file does not hold",
                    escape(&name),
                    escape(&tensor.storage.key)
                ),
            })?;
        let t = view(storage, &tensor, dtype, &budget).map_err(|e| match e {
            ViewError::Budget(reason) => budget_err(reason),
            ViewError::Invalid(message) => TorchError::Read {
                path: path.to_owned(),
                message: format!("tensor `{}`: {message}", escape(&name)),
            },
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

/// Why a tensor view could not be made.
enum ViewError {
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
fn view(
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

/// Where a zip entry lies in the file.
struct EntryPlace {
    name: String,
    header_start: u64,
    data_start: u64,
    compressed: u64,
    size: u64,
    stored: bool,
    crc: u32,
}

/// A zip archive (`torch.save` or `torch.jit.save`).
fn read_zip(path: &Path, map: &Arc<Mmap>, budget: &Budget) -> Result<Parsed, TorchError> {
    let archive_err = |message: String| TorchError::Archive {
        path: path.to_owned(),
        message,
    };
    let budget_err = |reason| TorchError::Budget {
        path: path.to_owned(),
        reason,
    };
    // torch writes archives from offset 0; a known offset spares the zip crate a scan of the
    // whole file for a prepended-data offset.
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut archive = zip::ZipArchive::with_config(config, Cursor::new(&map[..])).map_err(|e| {
        archive_err(format!(
            "not a readable zip archive: {}",
            escape(&e.to_string())
        ))
    })?;
    // The zip crate's directory: at most one entry per 46 bytes of central directory.
    budget
        .memory_for(archive.len() as u64, 512, || {
            format!("the zip directory ({} entries)", archive.len())
        })
        .map_err(budget_err)?;
    let mut pickle_entry: Option<(usize, String)> = None;
    let mut torchscript = false;
    let mut entries: HashMap<String, usize> = HashMap::with_capacity(archive.len());
    let mut places: Vec<EntryPlace> = Vec::with_capacity(archive.len());
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
                "zip entry `{}` points outside the archive",
                escape(&name)
            )));
        }
        let (size, compressed) = (entry.size(), entry.compressed_size());
        if size > 1 << 20 && size / compressed.max(1) > MAX_INFLATE_RATIO {
            return Err(archive_err(format!(
                "zip entry `{}` inflates {compressed} bytes to {size} (a decompression bomb?)",
                escape(&name)
            )));
        }
        let stored = entry.compression() == zip::CompressionMethod::Stored;
        if stored && size != compressed {
            return Err(archive_err(format!(
                "zip entry `{}` is stored, but its sizes differ ({compressed} stored, {size} declared)",
                escape(&name)
            )));
        }
        let data_start = entry.data_start().ok_or_else(|| {
            archive_err(format!("zip entry `{}` has no data offset", escape(&name)))
        })?;
        places.push(EntryPlace {
            name: name.clone(),
            header_start: entry.header_start(),
            data_start,
            compressed,
            size,
            stored,
            crc: entry.crc32(),
        });
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
        budget
            .memory(2 * name.len() as u64 + 64, || "the zip entry names".into())
            .map_err(budget_err)?;
        entries.insert(name, i);
    }
    check_entry_bounds(&places, archive.central_directory_start(), map.len() as u64)
        .map_err(archive_err)?;
    let (index, root) = pickle_entry.ok_or_else(|| TorchError::Unsupported {
        path: path.to_owned(),
        message: "a zip archive without <root>/data.pkl: not a PyTorch checkpoint".into(),
    })?;
    let place = &places[index];
    if place.size > MAX_PICKLE_BYTES {
        return Err(archive_err(format!(
            "data.pkl declares {} bytes, more than the {MAX_PICKLE_BYTES} accepted",
            place.size
        )));
    }
    let pickle: std::borrow::Cow<'_, [u8]> = if place.stored {
        let bytes = stored_bytes(map, place);
        verify_crcs(&[(place, bytes)], &|_| {}).map_err(archive_err)?;
        std::borrow::Cow::Borrowed(bytes)
    } else {
        budget
            .memory(place.size, || "data.pkl, inflated".into())
            .map_err(budget_err)?;
        std::borrow::Cow::Owned(
            read_entry(&mut archive, place).map_err(|e| archive_err(format!("data.pkl: {e}")))?,
        )
    };
    let (globals, _) =
        pickle_scan::scan(&pickle, 0, budget).map_err(|reason| scan_error(path, reason))?;
    let (root_value, _) = vm::evaluate(&pickle, 0, budget).map_err(|e| vm_error(path, e))?;
    let named = root_value.tensors(budget).map_err(|e| vm_error(path, e))?;
    drop(root_value);

    let mut storages = StorageBytes::new();
    let mut to_verify: Vec<(&EntryPlace, &[u8])> = Vec::new();
    let mut wanted: HashSet<&str> = HashSet::new();
    for (_, t) in &named {
        if !wanted.insert(&t.storage.key) {
            continue;
        }
        let entry_name = format!("{root}/data/{}", t.storage.key);
        let &i = entries
            .get(&entry_name)
            .ok_or_else(|| archive_err(format!("storage `{}` is missing", escape(&entry_name))))?;
        let place = &places[i];
        let bytes = if place.stored {
            to_verify.push((place, stored_bytes(map, place)));
            let storage: Arc<dyn effnet_ir::Storage> = map.clone();
            Bytes::new(
                storage,
                usize::try_from(place.data_start).unwrap_or(usize::MAX),
                usize::try_from(place.size).unwrap_or(usize::MAX),
            )
            .map_err(|e| archive_err(format!("{}: {e}", escape(&entry_name))))?
        } else {
            budget
                .memory(place.size, || {
                    format!("the inflated storage `{}`", escape(&entry_name))
                })
                .map_err(budget_err)?;
            Bytes::from_vec(
                read_entry(&mut archive, place)
                    .map_err(|e| archive_err(format!("{}: {e}", escape(&entry_name))))?,
            )
        };
        storages.insert(t.storage.key.clone(), bytes);
    }
    // Each piece's pages leave the process once hashed (the file keeps them): checking a
    // 267 MB archive does not make it resident; a conversion reads each tensor again as it
    // goes (from the page cache) and releases it in turn.
    let base = map.as_ptr() as usize;
    let release = |piece: &[u8]| {
        effnet_ir::Storage::release(&**map, piece.as_ptr() as usize - base, piece.len());
    };
    verify_crcs(&to_verify, &release).map_err(archive_err)?;
    let container = if torchscript {
        Container::TorchScript
    } else {
        Container::Zip
    };
    Ok((container, globals, named, storages))
}

/// The bytes of a stored entry (inside the file: checked by [`check_entry_bounds`]).
fn stored_bytes<'m>(map: &'m Mmap, place: &EntryPlace) -> &'m [u8] {
    let start = usize::try_from(place.data_start).unwrap_or(usize::MAX);
    let len = usize::try_from(place.compressed).unwrap_or(usize::MAX);
    start
        .checked_add(len)
        .and_then(|end| map.get(start..end))
        .unwrap_or_default()
}

/// Every entry's local header and data lie inside the file, before the central directory,
/// and no two overlap (as Python's zipfile requires): an entry whose size runs into the next
/// entry is refused instead of read.
fn check_entry_bounds(places: &[EntryPlace], directory: u64, file_len: u64) -> Result<(), String> {
    let mut order: Vec<&EntryPlace> = places.iter().collect();
    order.sort_unstable_by_key(|p| p.header_start);
    let end_of = |p: &EntryPlace| p.data_start.checked_add(p.compressed);
    for (k, p) in order.iter().enumerate() {
        let end = end_of(p)
            .filter(|&e| e <= file_len && e <= directory && p.data_start >= p.header_start)
            .ok_or_else(|| {
                format!(
                    "zip entry `{}` ({} bytes at offset {}) runs past the entries' area of the archive",
                    escape(&p.name),
                    p.compressed,
                    p.data_start
                )
            })?;
        if let Some(next) = order.get(k + 1) {
            if end > next.header_start {
                return Err(format!(
                    "zip entry `{}` ({} bytes at offset {}) runs into the next entry `{}` at offset {}",
                    escape(&p.name),
                    p.compressed,
                    p.data_start,
                    escape(&next.name),
                    next.header_start
                ));
            }
        }
    }
    Ok(())
}

/// Checks the CRC-32 of stored entries against their mapped bytes, in parallel: every entry
/// is cut into 8 MiB pieces hashed by as many threads as there are cores, the pieces' CRCs
/// then combined in order.
/// `release` is called on each piece once it is hashed.
fn verify_crcs(
    entries: &[(&EntryPlace, &[u8])],
    release: &(dyn Fn(&[u8]) + Sync),
) -> Result<(), String> {
    verify_crcs_in_pieces(entries, 8 << 20, release)
}

fn verify_crcs_in_pieces(
    entries: &[(&EntryPlace, &[u8])],
    piece: usize,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Result<(), String> {
    let pieces: Vec<(usize, &[u8])> = entries
        .iter()
        .enumerate()
        .flat_map(|(i, (_, bytes))| bytes.chunks(piece).map(move |c| (i, c)))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pieces.len().div_ceil(4))
        .max(1);
    let hashed: Vec<crc32fast::Hasher> = if threads == 1 {
        pieces
            .iter()
            .map(|(_, c)| {
                let mut h = crc32fast::Hasher::new();
                h.update(c);
                release(c);
                h
            })
            .collect()
    } else {
        let mut out: Vec<Option<crc32fast::Hasher>> = vec![None; pieces.len()];
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let pieces = &pieces;
                    scope.spawn(move || {
                        pieces
                            .iter()
                            .enumerate()
                            .skip(t)
                            .step_by(threads)
                            .map(|(k, (_, c))| {
                                let mut h = crc32fast::Hasher::new();
                                h.update(c);
                                release(c);
                                (k, h)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for worker in workers {
                for (k, h) in worker.join().expect("a CRC worker does not panic") {
                    out[k] = Some(h);
                }
            }
        });
        out.into_iter()
            .map(|h| h.expect("every piece hashed"))
            .collect()
    };
    let mut combined: Vec<crc32fast::Hasher> = vec![crc32fast::Hasher::new(); entries.len()];
    for ((i, _), h) in pieces.iter().zip(&hashed) {
        combined[*i].combine(h);
    }
    for ((place, _), h) in entries.iter().zip(combined) {
        let crc = h.finalize();
        if crc != place.crc {
            return Err(format!(
                "zip entry `{}` fails its CRC-32 check (computed {crc:08x}, recorded {:08x}): the file is corrupt",
                escape(&place.name),
                place.crc
            ));
        }
    }
    Ok(())
}

/// Reads a whole compressed zip entry: at most its declared size (charged by the caller),
/// and its CRC-32 checked.
fn read_entry<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    place: &EntryPlace,
) -> Result<Vec<u8>, String> {
    let index = archive
        .index_for_name(&place.name)
        .ok_or("the entry vanished")?;
    let entry = archive.by_index(index).map_err(|e| e.to_string())?;
    let limit = place.size;
    let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
    entry
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 != limit {
        return Err(format!(
            "inflates to {} bytes, not the {limit} its directory declares",
            out.len()
        ));
    }
    let crc = crc32fast::hash(&out);
    if crc != place.crc {
        return Err(format!(
            "fails its CRC-32 check (computed {crc:08x}, recorded {:08x}): the file is corrupt",
            place.crc
        ));
    }
    Ok(out)
}

fn scan_error(path: &Path, reason: ScanError) -> TorchError {
    match reason {
        ScanError::Budget(reason) => TorchError::Budget {
            path: path.to_owned(),
            reason,
        },
        reason => TorchError::Pickle {
            path: path.to_owned(),
            reason,
        },
    }
}

fn vm_error(path: &Path, e: vm::VmError) -> TorchError {
    match e {
        vm::VmError::Scan(reason) => scan_error(path, reason),
        vm::VmError::Budget(reason) => TorchError::Budget {
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
/// in the order of the key list. The five pickles together may span at most
/// [`MAX_PICKLE_BYTES`].
fn read_legacy(path: &Path, map: &Arc<Mmap>, budget: &Budget) -> Result<Parsed, TorchError> {
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

    fn place(name: &str, header_start: u64, data_start: u64, compressed: u64) -> EntryPlace {
        EntryPlace {
            name: name.into(),
            header_start,
            data_start,
            compressed,
            size: compressed,
            stored: true,
            crc: 0,
        }
    }

    #[test]
    fn entries_may_not_overlap_or_run_past_the_directory() {
        let a = place("a", 0, 31, 10);
        let b = place("b", 41, 72, 10);
        assert!(check_entry_bounds(&[a, b], 82, 200).is_ok());
        let a = place("a", 0, 31, 11);
        let b = place("b", 41, 72, 10);
        let err = check_entry_bounds(&[b, a], 82, 200).unwrap_err();
        assert!(err.contains("runs into the next entry `b`"), "{err}");
        let a = place("a", 0, 31, 100);
        assert!(check_entry_bounds(&[a], 82, 200).is_err());
        let a = place("a\n", 0, 31, u64::MAX);
        let err = check_entry_bounds(&[a], 82, 200).unwrap_err();
        assert!(!err.contains('\n'), "{err}");
    }

    /// An archive with a deflated data.pkl `{'w': tensor}` and a stored 4-byte storage.
    fn deflated_archive() -> Vec<u8> {
        use std::io::Write;
        let mut pickle = vec![0x80, 2, b'}', b'X', 1, 0, 0, 0, b'w'];
        pickle.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((X\x07\0\0\0storage");
        pickle.extend_from_slice(b"ctorch\nFloatStorage\nX\x01\0\0\0\x30X\x03\0\0\0cpuK\x01tQ");
        pickle.extend_from_slice(b"K\0K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRs.");
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", deflated).unwrap();
        zip.write_all(&pickle).unwrap();
        zip.start_file("archive/data/0", stored).unwrap();
        zip.write_all(&1f32.to_le_bytes()).unwrap();
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn a_deflated_pickle_is_read_and_its_crc_checked() {
        let dir = std::env::temp_dir().join(format!("effnet-torch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = deflated_archive();
        let path = dir.join("deflated.pth");
        std::fs::write(&path, &good).unwrap();
        let file = read(&path).unwrap();
        assert_eq!(file.checkpoint.tensors[0].0, "w");
        // The recorded CRC-32 of data.pkl changed in both headers.
        let crc = crc32fast::hash(&{
            let mut a = zip::ZipArchive::new(Cursor::new(&good)).unwrap();
            let mut out = Vec::new();
            a.by_name("archive/data.pkl")
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            out
        })
        .to_le_bytes();
        let mut bad = good.clone();
        let mut at = 0;
        while let Some(i) = bad[at..].windows(4).position(|w| w == crc) {
            bad[at + i] ^= 0xff;
            at += i + 4;
        }
        assert!(at > 0);
        std::fs::write(&path, &bad).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("CRC") || err.contains("checksum"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn crcs_are_combined_across_pieces_and_threads() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut a = place("a", 0, 0, data.len() as u64);
        a.crc = crc32fast::hash(&data);
        let mut b = place("b", 0, 0, 3);
        b.crc = crc32fast::hash(b"xyz");
        let empty = place("c", 0, 0, 0);
        for piece in [1000, 4096, 1 << 20] {
            verify_crcs_in_pieces(&[(&a, &data), (&b, b"xyz"), (&empty, b"")], piece, &|_| {})
                .unwrap();
        }
        let mut flipped = data.clone();
        flipped[99_999] ^= 1;
        let err =
            verify_crcs_in_pieces(&[(&b, b"xyz"), (&a, &flipped)], 1000, &|_| {}).unwrap_err();
        assert!(err.contains("`a` fails its CRC-32"), "{err}");
    }
}
