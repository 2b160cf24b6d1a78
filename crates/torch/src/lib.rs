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
mod legacy;
mod memo;
mod op_reader;
pub mod pickle_scan;
mod view;
pub mod vm;
mod zip_archive;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use effnet_io::{Budget, BudgetError, escape};
use effnet_ir::{Bytes, Checkpoint, ChecksumPolicy, PendingChecksums, Tensor};
use memmap2::Mmap;

use crate::legacy::read_legacy;
use crate::pickle_scan::ScanError;
use crate::view::{ViewError, view};
use crate::zip_archive::read_zip;

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
    /// The storages' CRC-32s, when their comparison was deferred.
    pub checksums: Option<Arc<dyn PendingChecksums>>,
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
    read_with(path, ChecksumPolicy::AtOpen)
}

/// [`read`], comparing the CRC-32s of the archive's storages as `policy` says (a legacy file
/// records none); deferred ones are returned in [`TorchFile::checksums`].
pub fn read_with(path: &Path, policy: ChecksumPolicy) -> Result<TorchFile, TorchError> {
    let io = |reason| TorchError::Io {
        path: path.to_owned(),
        reason,
    };
    let (file, map) = effnet_io::input::map_regular(path).map_err(io)?;
    let map: Arc<Mmap> = Arc::new(map);
    let budget = Budget::for_input(map.len() as u64);
    let budget_err = |reason| TorchError::Budget {
        path: path.to_owned(),
        reason,
    };
    let head = &map[..map.len().min(16)];
    let mut pending = None;
    let (container, globals, named, storages) = if head.starts_with(b"PK\x03\x04") {
        let (parsed, checksums) = read_zip(path, &file, &map, &budget)?;
        match policy {
            ChecksumPolicy::AtOpen => checksums.check(None)?,
            ChecksumPolicy::Deferred => pending = Some(Arc::new(checksums) as _),
        }
        parsed
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
        checksums: pending,
    })
}

/// A storage's bytes: a range of the map, or a copy when the entry was compressed.
pub(crate) type StorageBytes = HashMap<String, Bytes>;

/// What a container yields: its kind, the globals its pickle names, the tensors by name and
/// the storages they view.
pub(crate) type Parsed = (
    Container,
    Vec<String>,
    Vec<(String, vm::TensorRef)>,
    StorageBytes,
);

pub(crate) fn scan_error(path: &Path, reason: ScanError) -> TorchError {
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

pub(crate) fn vm_error(path: &Path, e: vm::VmError) -> TorchError {
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
