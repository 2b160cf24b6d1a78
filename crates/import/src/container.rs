//! Detecting a file's container from its bytes (never its name): the magic numbers at the
//! start of a regular file, or the forms a TensorFlow checkpoint path takes.

use std::io::Read;
use std::path::Path;

/// The container a file's first bytes identify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Container {
    /// HDF5: a Keras `.h5` or `.weights.h5`.
    Hdf5,
    /// A zip archive: a Keras 3 `.keras`, or a `torch.save` / `torch.jit.save` archive.
    Zip,
    /// PyTorch's legacy pickle stream.
    TorchLegacy,
    /// safetensors.
    Safetensors,
    /// An ONNX `ModelProto`.
    Onnx,
}

impl Container {
    /// The container `head` (a file's first bytes) starts, the magic numbers checked before
    /// the weaker sniffs of safetensors and ONNX.
    pub(crate) fn sniff(head: &[u8]) -> Option<Container> {
        if head.starts_with(effnet_keras::HDF5_MAGIC) {
            Some(Container::Hdf5)
        } else if head.starts_with(b"PK\x03\x04") {
            Some(Container::Zip)
        } else if effnet_torch::is_legacy(head) {
            Some(Container::TorchLegacy)
        } else if effnet_safetensors::sniff(head) {
            Some(Container::Safetensors)
        } else if effnet_onnx::read::sniff(head) {
            Some(Container::Onnx)
        } else {
            None
        }
    }
}

/// The first 16 bytes of the regular file `path`, checked on the descriptor: a FIFO never
/// blocks, a device is never read.
pub(crate) fn head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(16);
    effnet_io::open_regular(path)?
        .take(16)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// Whether `path` is a regular file whose first bytes are an ONNX `ModelProto`'s (after the
/// containers whose magic numbers are checked first).
pub(crate) fn is_onnx(path: &Path) -> bool {
    head(path).is_ok_and(|head| Container::sniff(&head) == Some(Container::Onnx))
}

/// Whether `path` denotes a tensor-bundle checkpoint: a folder (not a SavedModel), an
/// `.index` or `.data-*` file, a prefix with an `.index` beside it, or a file ending in the
/// table magic.
pub(crate) fn looks_like_tf_checkpoint(path: &Path) -> bool {
    if path.is_dir() {
        return true;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(".index") || name.contains(".data-") {
        return true;
    }
    if !path.exists() {
        let mut index = path.as_os_str().to_owned();
        index.push(".index");
        return Path::new(&index).is_file();
    }
    let tail = (|| {
        use std::io::{Seek, SeekFrom};
        let mut file = effnet_io::open_regular(path).ok()?;
        let len = file.metadata().ok()?.len();
        if len < 48 {
            return None;
        }
        file.seek(SeekFrom::End(-8)).ok()?;
        let mut tail = [0u8; 8];
        file.read_exact(&mut tail).ok()?;
        Some(tail)
    })();
    tail.is_some_and(|t| effnet_tf::is_index(&t))
}
