//! safetensors files for effnet.
//!
//! # On disk
//!
//! An 8-byte little-endian header length `n`, `n` bytes of JSON (`{"name": {"dtype", "shape",
//! "data_offsets": [begin, end]}, …, "__metadata__": {string: string}}`), then the tensor bytes,
//! little-endian and contiguous, offsets relative to the end of the header. The `safetensors`
//! crate validates the header (size cap, offsets in bounds, no overlaps, no gaps); tensors are
//! then views into a memory map of the file, never copied.
//!
//! [`write`] goes the other way.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use effnet_ir::{Bytes, Checkpoint, DType, Tensor};
use memmap2::Mmap;
use safetensors::SafeTensors;

/// Why a safetensors file could not be read. Every message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SafetensorsError {
    /// The file could not be opened or mapped.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
    /// The header or the offsets are invalid.
    #[error("{}: not a valid safetensors file: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What the validation found.
        message: String,
    },
    /// The file holds no tensors.
    #[error("{}: the file holds no tensors", path.display())]
    NoTensors {
        /// The file.
        path: PathBuf,
    },
}

/// Why a safetensors file could not be written. Every message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The tensors could not be serialized.
    #[error("{}: {message}", path.display())]
    Serialize {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

struct View<'a>(&'a Tensor, safetensors::Dtype);

impl safetensors::View for View<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.1
    }

    fn shape(&self) -> &[usize] {
        self.0.shape()
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(self.0.data().map_or(&[][..], |b| b.as_slice()))
    }

    fn data_len(&self) -> usize {
        self.0.nbytes()
    }
}

/// Writes `tensors` with `metadata` to `path` (created or truncated). Callers that must not
/// leave a partial file write to a temporary path and rename it (effnet-convert does).
pub fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<(), WriteError> {
    if let Some((name, _)) = tensors.iter().find(|(_, t)| t.data().is_none()) {
        return Err(WriteError::Serialize {
            path: path.to_owned(),
            message: format!("tensor `{name}` has no data"),
        });
    }
    let views: Vec<(&str, View)> = tensors
        .iter()
        .map(|(n, t)| {
            let dtype = match t.dtype() {
                DType::F32 => safetensors::Dtype::F32,
                DType::F16 => safetensors::Dtype::F16,
                DType::BF16 => safetensors::Dtype::BF16,
                DType::F64 => safetensors::Dtype::F64,
                DType::I64 => safetensors::Dtype::I64,
            };
            (n.as_str(), View(t, dtype))
        })
        .collect();
    let info: std::collections::HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    safetensors::serialize_to_file(views, Some(info), path).map_err(|e| WriteError::Serialize {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Whether the first bytes look like a safetensors header: a plausible length followed by `{`.
pub fn sniff(head: &[u8]) -> bool {
    head.len() >= 9
        && head[8] == b'{'
        && u64::from_le_bytes(head[..8].try_into().expect("8 bytes")) < 100 * 1024 * 1024
}

/// What a safetensors file holds, with the dtypes effnet models; others are listed as skipped.
#[derive(Debug)]
pub struct SafetensorsFile {
    /// Tensors in file order, and the `__metadata__`.
    pub checkpoint: Checkpoint,
    /// Tensors left out, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Maps `path` and returns its tensors as views into the map.
pub fn read(path: &Path) -> Result<SafetensorsFile, SafetensorsError> {
    let io = |reason| SafetensorsError::Io {
        path: path.to_owned(),
        reason,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only. effnet never writes the input file; a concurrent writer
    // could change the bytes under it, which read-only tools accept (as the safetensors
    // Python library does when it maps files).
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
    let map = Arc::new(map);
    let format = |message: String| SafetensorsError::Format {
        path: path.to_owned(),
        message,
    };
    let (header_len, metadata) =
        SafeTensors::read_metadata(&map[..]).map_err(|e| format(e.to_string()))?;
    let parsed = SafeTensors::deserialize(&map[..]).map_err(|e| format(e.to_string()))?;
    let data_start = 8 + header_len;
    let mut checkpoint = Checkpoint::default();
    if let Some(meta) = metadata.metadata() {
        checkpoint.metadata = meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    }
    let mut skipped = Vec::new();
    // File order: by data offset.
    let mut entries: Vec<(String, safetensors::tensor::TensorInfo)> = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| (name, info.clone()))
        .collect();
    entries.sort_by_key(|(_, info)| info.data_offsets.0);
    for (name, info) in entries {
        let dtype = match info.dtype {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            safetensors::Dtype::F64 => DType::F64,
            safetensors::Dtype::I64 => DType::I64,
            other => {
                skipped.push((name, format!("dtype {other:?} is not a parameter type")));
                continue;
            }
        };
        let (begin, end) = info.data_offsets;
        let storage: Arc<dyn AsRef<[u8]> + Send + Sync> = map.clone();
        let bytes = Bytes::new(storage, data_start + begin, end - begin)
            .map_err(|e| format(format!("tensor `{name}`: {e}")))?;
        let tensor = Tensor::with_data(dtype, info.shape.clone(), bytes)
            .map_err(|e| format(format!("tensor `{name}`: {e}")))?;
        checkpoint.tensors.push((name, tensor));
    }
    drop(parsed);
    if checkpoint.is_empty() {
        return Err(SafetensorsError::NoTensors {
            path: path.to_owned(),
        });
    }
    Ok(SafetensorsFile {
        checkpoint,
        skipped,
    })
}
