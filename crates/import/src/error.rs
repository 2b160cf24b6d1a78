//! Why a file could not be opened.

use std::path::{Path, PathBuf};

use effnet_naming::NamingError;
use effnet_spec::Scheme;

/// Why a file could not be opened. Messages name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
    /// A PyTorch container error.
    #[error(transparent)]
    Torch(#[from] effnet_torch::TorchError),
    /// A safetensors error.
    #[error(transparent)]
    Safetensors(#[from] effnet_safetensors::SafetensorsError),
    /// A Keras HDF5 error.
    #[error(transparent)]
    Keras(#[from] effnet_keras::KerasError),
    /// A TensorFlow checkpoint error.
    #[error(transparent)]
    Tf(#[from] effnet_tf::TfError),
    /// A checksum the file records fails (compared after open, [`crate::ChecksumPolicy`]).
    #[error(transparent)]
    Checksum(effnet_ir::ChecksumError),
    /// The tensors do not form an EfficientNet effnet understands.
    #[error("{}: {reason}", path.display())]
    Naming {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: NamingError,
    },
    /// The naming scheme asked for does not read the file's tensor names.
    #[error(
        "{}: the tensor names are not {given} names (e.g. `{example}`){}",
        path.display(),
        looks_like.map_or(String::new(), |s| format!("; they look like {s} names"))
    )]
    WrongNaming {
        /// The file.
        path: PathBuf,
        /// The scheme asked for.
        given: Scheme,
        /// The scheme that reads most of the names, if any does.
        looks_like: Option<Scheme>,
        /// A name the given scheme does not read.
        example: String,
    },
    /// A format effnet does not read (yet), or not a model file.
    #[error("{}: {message}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What it is.
        message: String,
    },
    /// `--key` names nothing in the file.
    #[error("{}: no tensors under key `{key}`; {available}", path.display())]
    NoSuchKey {
        /// The file.
        path: PathBuf,
        /// The key asked for.
        key: String,
        /// The keys there are.
        available: String,
    },
}

pub(crate) fn unsupported(path: &Path, message: &str) -> ImportError {
    ImportError::Unsupported {
        path: path.to_owned(),
        message: message.to_owned(),
    }
}
