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

use effnet_io::{Budget, escape};
use effnet_ir::{Bytes, Checkpoint, DType, Tensor};
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

/// A safetensors file written tensor by tensor: the header first (every name, dtype and shape
/// is known before any data), then each tensor's bytes in that order as they are produced, so
/// a conversion never holds more than the tensors it is working on.
pub struct StreamWriter {
    path: PathBuf,
    file: std::io::BufWriter<File>,
    /// `(name, bytes)` of the tensors still to come, in order.
    expected: std::collections::VecDeque<(String, usize)>,
}

/// The safetensors name of a dtype.
fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "F32",
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        DType::F64 => "F64",
        DType::I64 => "I64",
    }
}

impl StreamWriter {
    /// Writes the header for `layout` (`name, dtype, shape`, in the order the tensors will be
    /// written) to `file`, an empty file opened for writing; messages name `path`, the output
    /// the file will become.
    pub fn create(
        file: File,
        path: &Path,
        layout: &[(String, DType, Vec<usize>)],
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, WriteError> {
        use std::io::Write;
        let fail = |message: String| WriteError::Serialize {
            path: path.to_owned(),
            message,
        };
        let mut header = serde_json::Map::new();
        if !metadata.is_empty() {
            header.insert(
                "__metadata__".into(),
                serde_json::Value::Object(
                    metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect(),
                ),
            );
        }
        let mut offset = 0usize;
        let mut expected = std::collections::VecDeque::with_capacity(layout.len());
        for (name, dtype, shape) in layout {
            let bytes = shape
                .iter()
                .try_fold(dtype.size(), |a, &d| a.checked_mul(d))
                .ok_or_else(|| fail(format!("tensor `{name}` is too large")))?;
            let end = offset + bytes;
            if header
                .insert(
                    name.clone(),
                    serde_json::json!({
                        "dtype": dtype_name(*dtype),
                        "shape": shape,
                        "data_offsets": [offset, end],
                    }),
                )
                .is_some()
            {
                return Err(fail(format!("tensor `{name}` appears twice")));
            }
            expected.push_back((name.clone(), bytes));
            offset = end;
        }
        let mut json = serde_json::to_vec(&header).map_err(|e| fail(e.to_string()))?;
        json.resize(json.len().next_multiple_of(8), b' ');
        let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
        file.write_all(&(json.len() as u64).to_le_bytes())
            .and_then(|()| file.write_all(&json))
            .map_err(|e| fail(e.to_string()))?;
        Ok(StreamWriter {
            path: path.to_owned(),
            file,
            expected,
        })
    }

    /// Writes the next tensor's bytes (little-endian); `name` and length must be the next of
    /// the layout.
    pub fn write_tensor(&mut self, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
        use std::io::Write;
        let fail = |message: String| WriteError::Serialize {
            path: self.path.clone(),
            message,
        };
        match self.expected.pop_front() {
            Some((next, len)) if next == name && len == bytes.len() => {}
            Some((next, len)) => {
                return Err(fail(format!(
                    "`{name}` ({} bytes) written where `{next}` ({len} bytes) was due",
                    bytes.len()
                )));
            }
            None => return Err(fail(format!("`{name}` written after the last tensor"))),
        }
        self.file.write_all(bytes).map_err(|e| fail(e.to_string()))
    }

    /// Flushes the file; every tensor of the layout must have been written. (No fsync, as
    /// `cp`, `torch.save` and `safetensors` do not: callers rename a complete file into
    /// place, which a killed process cannot leave half-done.)
    pub fn finish(self) -> Result<(), WriteError> {
        let path = self.path.clone();
        let fail = |message: String| WriteError::Serialize {
            path: path.clone(),
            message,
        };
        if let Some((next, _)) = self.expected.front() {
            return Err(fail(format!(
                "`{next}` and later tensors were never written"
            )));
        }
        self.file.into_inner().map_err(|e| fail(e.to_string()))?;
        Ok(())
    }
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
///
/// Only a regular file is read (checked on the open descriptor: a FIFO or a device is
/// refused, never read). The header is parsed once, its memory charged to a [`Budget`]
/// derived from the file's size before it is parsed; names taken from the file are escaped in
/// messages.
pub fn read(path: &Path) -> Result<SafetensorsFile, SafetensorsError> {
    let io = |reason| SafetensorsError::Io {
        path: path.to_owned(),
        reason,
    };
    let (_file, map) = effnet_io::input::map_regular(path).map_err(io)?;
    let map = Arc::new(map);
    let format = |message: String| SafetensorsError::Format {
        path: path.to_owned(),
        message,
    };
    let budget = Budget::for_input(map.len() as u64);
    // The header's declared length, bounded by the file (the crate checks it again).
    let header_len = map
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| format("shorter than its 8-byte header length".into()))?;
    if header_len > map.len() as u64 - 8 {
        return Err(format(format!(
            "the header claims {header_len} bytes, more than the file holds"
        )));
    }
    // Parsing: the JSON values, then the name → info map and the list sorted here.
    budget
        .memory_for(header_len, HEADER_MEMORY_PER_BYTE, || {
            format!("parsing the {header_len}-byte header")
        })
        .map_err(|e| format(e.to_string()))?;
    let (header_len, metadata) = SafeTensors::read_metadata(&map[..])
        .map_err(|e| format(escape(&e.to_string()).into_owned()))?;
    let data_start = 8 + header_len;
    let mut checkpoint = Checkpoint::default();
    if let Some(meta) = metadata.metadata() {
        checkpoint.metadata = meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    }
    let mut skipped = Vec::new();
    // File order: by data offset.
    let mut entries: Vec<(String, &safetensors::tensor::TensorInfo)> =
        metadata.tensors().into_iter().collect();
    entries.sort_unstable_by_key(|(_, info)| info.data_offsets.0);
    checkpoint.tensors.reserve(entries.len());
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
        let tensor_err = |e: &dyn std::fmt::Display| format!("tensor `{}`: {e}", escape(&name));
        let len = end
            .checked_sub(begin)
            .ok_or_else(|| format(tensor_err(&"its data ends before it begins")))?;
        let start = data_start
            .checked_add(begin)
            .ok_or_else(|| format(tensor_err(&"its offset overflows")))?;
        let storage: Arc<dyn effnet_ir::Storage> = map.clone();
        let bytes = Bytes::new(storage, start, len).map_err(|e| format(tensor_err(&e)))?;
        let tensor = Tensor::with_data(dtype, info.shape.clone(), bytes)
            .map_err(|e| format(tensor_err(&e)))?;
        checkpoint.tensors.push((name, tensor));
    }
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

/// Memory charged per header byte for parsing it: the JSON values, the crate's name → info
/// map, and the list of tensors built here (names are copied twice).
const HEADER_MEMORY_PER_BYTE: u64 = 6;

#[cfg(test)]
mod read_tests {
    use super::*;

    fn header_file(dir: &Path, name: &str, header: &str, data: usize) -> PathBuf {
        let mut json = header.as_bytes().to_vec();
        json.resize(json.len().next_multiple_of(8), b' ');
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend(json);
        bytes.extend(std::iter::repeat_n(0u8, data));
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero.safetensors");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = read(&link).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
    }

    #[test]
    fn names_from_the_file_are_escaped() {
        let dir = tempfile::tempdir().unwrap();
        // A tensor whose data runs past the end, named to forge a line.
        let path = header_file(
            dir.path(),
            "forged.safetensors",
            r#"{"w\nerror: fine\u001b[0m":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            8,
        );
        let err = read(&path).unwrap_err().to_string();
        assert!(!err.contains('\n') && !err.contains('\u{1b}'), "{err}");
        assert!(err.contains("w\\nerror: fine\\u{1b}[0m"), "{err}");
    }

    #[test]
    fn a_header_longer_than_the_file_is_refused_before_it_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.safetensors");
        let mut bytes = (90u64 << 20).to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        std::fs::write(&path, bytes).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("more than the file holds"), "{err}");
    }

    #[test]
    fn a_hundred_thousand_tensors_read_in_linear_time() {
        let dir = tempfile::tempdir().unwrap();
        let n = 100_000;
        let mut header = String::from("{");
        for i in 0..n {
            if i > 0 {
                header.push(',');
            }
            header.push_str(&format!(
                r#""k{i}.weight":{{"dtype":"F32","shape":[1],"data_offsets":[{},{}]}}"#,
                4 * i,
                4 * i + 4
            ));
        }
        header.push('}');
        let path = header_file(dir.path(), "many.safetensors", &header, 4 * n);
        let start = std::time::Instant::now();
        let file = read(&path).unwrap();
        assert_eq!(file.checkpoint.len(), n);
        assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    }
}
