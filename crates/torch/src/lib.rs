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
//! tensors are then read by `pytorch-reader`, which runs no pickle code either; strided and
//! offset views come back contiguous. Zip entries with `..` or absolute paths, compressed entries
//! that inflate more than [`MAX_INFLATE_RATIO`] times, pickles over [`MAX_PICKLE_BYTES`] and
//! tensors larger than the file are refused.

pub mod pickle_scan;

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use effnet_ir::{Bytes, Checkpoint, DType, Tensor};

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

/// Reads a PyTorch file: checks its pickles against the allow-list, then reads every tensor.
pub fn read(path: &Path) -> Result<TorchFile, TorchError> {
    let io = |reason| TorchError::Io {
        path: path.to_owned(),
        reason,
    };
    let mut file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut head = [0u8; 16];
    let n = read_up_to(&mut file, &mut head).map_err(io)?;
    let head = &head[..n];
    file.seek(SeekFrom::Start(0)).map_err(io)?;

    let (container, globals) = if head.starts_with(b"PK\x03\x04") {
        scan_zip(path, file)?
    } else if is_legacy(head) {
        (Container::Legacy, scan_legacy(path, file, file_len)?)
    } else {
        return Err(TorchError::Unsupported {
            path: path.to_owned(),
            message:
                "not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy stream)"
                    .into(),
        });
    };

    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| match container {
        Container::TorchScript => TorchError::Unsupported {
            path: path.to_owned(),
            message: format!(
                "a TorchScript archive (torch.jit.save): its weights cannot be read yet ({e}); save them with torch.save(model.state_dict(), …)"
            ),
        },
        _ => TorchError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        },
    })?;
    let mut names: Vec<String> = reader.keys();
    if names.len() > MAX_TENSORS {
        return Err(TorchError::Read {
            path: path.to_owned(),
            message: format!(
                "{} tensors, more than the {MAX_TENSORS} accepted",
                names.len()
            ),
        });
    }
    names.sort();
    let mut checkpoint = Checkpoint::default();
    let mut skipped = Vec::new();
    for name in names {
        let Some(tensor) = reader.get(&name) else {
            continue;
        };
        let Some(dtype) = ir_dtype(tensor.dtype()) else {
            skipped.push((
                name,
                format!("dtype {:?} is not a parameter type", tensor.dtype()),
            ));
            continue;
        };
        if tensor.byte_len() as u64 > file_len {
            return Err(TorchError::Read {
                path: path.to_owned(),
                message: format!(
                    "tensor `{name}` claims {} bytes, more than the whole file",
                    tensor.byte_len()
                ),
            });
        }
        let bytes = tensor.read().map_err(|e| TorchError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let t = Tensor::with_data(dtype, tensor.shape().to_vec(), Bytes::from_vec(bytes)).map_err(
            |e| TorchError::Read {
                path: path.to_owned(),
                message: format!("tensor `{name}`: {e}"),
            },
        )?;
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

fn ir_dtype(dtype: pytorch_reader::DType) -> Option<DType> {
    use pytorch_reader::DType as P;
    match dtype {
        P::F32 => Some(DType::F32),
        P::F16 => Some(DType::F16),
        P::BF16 => Some(DType::BF16),
        P::F64 => Some(DType::F64),
        P::I64 => Some(DType::I64),
        _ => None,
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Checks a zip archive's entries and scans its `data.pkl`.
fn scan_zip(path: &Path, file: File) -> Result<(Container, Vec<String>), TorchError> {
    let archive_err = |message: String| TorchError::Archive {
        path: path.to_owned(),
        message,
    };
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| archive_err(format!("not a readable zip archive: {e}")))?;
    let mut pickle_entry: Option<usize> = None;
    let mut torchscript = false;
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
            pickle_entry = Some(i);
        }
        if parts.len() >= 2 && (parts[1] == "constants.pkl" || parts[1] == "code") {
            torchscript = true;
        }
    }
    let index = pickle_entry.ok_or_else(|| TorchError::Unsupported {
        path: path.to_owned(),
        message: "a zip archive without <root>/data.pkl: not a PyTorch checkpoint".into(),
    })?;
    let entry = archive
        .by_index(index)
        .map_err(|e| archive_err(format!("data.pkl: {e}")))?;
    if entry.size() > MAX_PICKLE_BYTES {
        return Err(archive_err(format!(
            "data.pkl declares {} bytes, more than the {MAX_PICKLE_BYTES} accepted",
            entry.size()
        )));
    }
    let mut pickle = Vec::with_capacity(entry.size() as usize);
    entry
        .take(MAX_PICKLE_BYTES + 1)
        .read_to_end(&mut pickle)
        .map_err(|e| archive_err(format!("data.pkl: {e}")))?;
    if pickle.len() as u64 > MAX_PICKLE_BYTES {
        return Err(archive_err("data.pkl inflates beyond the limit".into()));
    }
    let (globals, _) = pickle_scan::scan(&pickle, 0).map_err(|reason| TorchError::Pickle {
        path: path.to_owned(),
        reason,
    })?;
    let container = if torchscript {
        Container::TorchScript
    } else {
        Container::Zip
    };
    Ok((container, globals))
}

/// Scans the five pickles at the start of a legacy stream.
fn scan_legacy(path: &Path, file: File, file_len: u64) -> Result<Vec<String>, TorchError> {
    let mut data = Vec::new();
    file.take(MAX_PICKLE_BYTES.min(file_len))
        .read_to_end(&mut data)
        .map_err(|reason| TorchError::Io {
            path: path.to_owned(),
            reason,
        })?;
    let mut globals = Vec::new();
    let mut pos = 0;
    for _ in 0..5 {
        let (found, end) = pickle_scan::scan(&data, pos).map_err(|reason| TorchError::Pickle {
            path: path.to_owned(),
            reason,
        })?;
        for g in found {
            if !globals.contains(&g) {
                globals.push(g);
            }
        }
        pos = end;
    }
    Ok(globals)
}
