use std::collections::BTreeMap;
use std::fmt;

use crate::Tensor;

/// The error of a failed checksum: the reader's own, naming the file and what fails.
pub type ChecksumError = Box<dyn std::error::Error + Send + Sync>;

/// Checksums a container records over tensor bytes (zip members' CRC-32, tensor bundles'
/// crc32c) that a reader has not compared yet. Reading every byte of a large file takes longer
/// than anything else a report does, so readers can leave these to be compared before the
/// bytes they cover are used; a caller that reads tensor values compares them first.
pub trait PendingChecksums: Send + Sync + fmt::Debug {
    /// Compares the checksums covering `tensor`'s stored bytes ([`Tensor::stored_bytes`]), or
    /// every one given `None`.
    fn verify(&self, tensor: Option<&Tensor>) -> Result<(), ChecksumError>;
}

/// When a reader compares the checksums a container records over tensor bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChecksumPolicy {
    /// Before the file's tensors are returned.
    #[default]
    AtOpen,
    /// Left to the caller, which compares them before it reads any tensor's bytes.
    Deferred,
}

/// How a container lays out weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TensorLayout {
    /// PyTorch's (and ONNX's): conv `[out, in, kh, kw]`, depthwise `[C, 1, kh, kw]`, dense
    /// `[out, in]`: the IR's own.
    #[default]
    Torch,
    /// TensorFlow's (Keras HDF5, tensor bundles, SavedModels): conv `[kh, kw, in, out]`,
    /// depthwise `[kh, kw, C, 1]`, dense `[in, out]`.
    Tf,
}

/// Named tensors as a container holds them, before any naming scheme is applied, with the
/// container's free-form metadata (safetensors `__metadata__`, …).
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    /// `(name, tensor)` in the container's order.
    pub tensors: Vec<(String, Tensor)>,
    /// String metadata the container carries.
    pub metadata: BTreeMap<String, String>,
    /// The layout the container stores weights in.
    pub layout: TensorLayout,
}

impl Checkpoint {
    /// An empty checkpoint of a container that stores weights in `layout`.
    pub fn with_layout(layout: TensorLayout) -> Self {
        Checkpoint {
            layout,
            ..Checkpoint::default()
        }
    }
}

impl Checkpoint {
    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}
