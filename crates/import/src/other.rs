//! Files effnet reads that are not an EfficientNet: a ResNet state dict, any safetensors,
//! Keras, TensorFlow or ONNX file whose names no scheme reads or whose structure is not an
//! EfficientNet. `inspect` still describes them (container, tensors, metadata); every command
//! that needs the graph refuses them with the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use effnet_ir::{DType, Tensor};
use effnet_naming::NamingError;

use crate::{ImportError, ImportOptions, Model, is_onnx, open, read_tensors_with, skipped_summary};

/// A file effnet reads that is not an EfficientNet.
#[derive(Debug)]
pub struct OtherFile {
    /// The file.
    pub path: PathBuf,
    /// The container (`safetensors`, `torch-zip`, `keras-h5`, `onnx`, …).
    pub container: &'static str,
    /// Every tensor, as the file names it, in the file's layout.
    pub tensors: Vec<(String, Tensor)>,
    /// Tensors per dtype.
    pub dtypes: BTreeMap<DType, usize>,
    /// The container's metadata.
    pub metadata: BTreeMap<String, String>,
    /// Why it is not an EfficientNet (one line, without the file's name).
    pub reason: String,
    /// What a user should know (entries skipped while reading).
    pub warnings: Vec<String>,
    /// Checksums over tensor bytes not compared ([`ImportOptions::checksums`]).
    pub checksums: Option<std::sync::Arc<dyn effnet_ir::PendingChecksums>>,
}

impl OtherFile {
    /// Elements of every tensor (a file without a graph has no trainable/non-trainable split).
    pub fn elements(&self) -> u64 {
        self.tensors.iter().map(|(_, t)| t.numel() as u64).sum()
    }
}

/// A file opened for a description: an EfficientNet, or another file's tensors.
#[derive(Debug)]
pub enum Opened {
    /// An EfficientNet, read into the graph.
    EfficientNet(Box<Model>),
    /// A file whose tensors effnet reads, and why it is not an EfficientNet.
    Other(OtherFile),
}

impl ImportError {
    /// Why the file is not an EfficientNet, when that is what the error says (no scheme reads
    /// its names, a layer every EfficientNet has is missing, the shapes do not form one).
    pub fn not_efficientnet(&self) -> Option<String> {
        match self {
            ImportError::Naming { reason, .. } => Some(match reason {
                NamingError::Missing(what) => format!("no {what}"),
                other => other.to_string(),
            }),
            _ => None,
        }
    }
}

/// Opens `path` as [`open`] does; a file whose tensors are read but that is not an
/// EfficientNet is returned as [`Opened::Other`] with the reason instead of an error. A
/// scheme the user gave that does not read the names stays an error (`WrongNaming`).
pub fn open_any(path: &Path, options: &ImportOptions) -> Result<Opened, ImportError> {
    let err = match open(path, options) {
        Ok(model) => return Ok(Opened::EfficientNet(Box::new(model))),
        Err(err) => err,
    };
    let reason = if is_onnx(path) {
        // Header and initializers read, the graph not matched: not an EfficientNet (the
        // message says which node).
        let prefix = format!("{}: ", path.display());
        let message = err.to_string();
        message.strip_prefix(&prefix).unwrap_or(&message).to_owned()
    } else {
        match err.not_efficientnet() {
            Some(reason) => reason,
            None => return Err(err),
        }
    };
    let Ok(file) = read_tensors_with(path, options.checksums) else {
        return Err(err);
    };
    let mut checkpoint = file.checkpoint;
    let mut dtypes = BTreeMap::new();
    for (_, t) in &checkpoint.tensors {
        *dtypes.entry(t.dtype()).or_insert(0) += 1;
    }
    Ok(Opened::Other(OtherFile {
        path: path.to_owned(),
        container: file.container,
        tensors: std::mem::take(&mut checkpoint.tensors),
        dtypes,
        metadata: checkpoint.metadata,
        reason,
        warnings: skipped_summary(&file.skipped),
        checksums: file.checksums,
    }))
}
