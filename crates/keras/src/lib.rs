//! Keras HDF5 files (`model.save("x.h5")`, `model.save_weights("x.h5")`) as named tensors.
//!
//! # On disk
//!
//! An HDF5 file. A full-model file keeps the architecture as a JSON string attribute
//! `model_config` at the root (with `keras_version` and `backend`) and the weights under the
//! group `model_weights`; a weights-only file keeps them at the root. Either way the weights
//! group has an attribute `layer_names` (layer order) and one group per layer whose attribute
//! `weight_names` lists its variables (`block2a_dwconv/depthwise_kernel:0`), stored as datasets
//! under that path inside the layer group.
//!
//! Tensors come out in TensorFlow's layout (conv `[kh, kw, in, out]`, depthwise
//! `[kh, kw, C, 1]`, dense `[in, out]`) named `layer/variable` (`stem_conv/kernel`); the `keras`
//! naming scheme moves them to the IR's layout.

use std::path::{Path, PathBuf};

use effnet_ir::{Bytes, Checkpoint, DType, Tensor};
use hdf5_reader::{Hdf5File, group::Group};

/// The HDF5 signature.
pub const HDF5_MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// A Keras HDF5 file read.
#[derive(Debug)]
pub struct KerasFile {
    /// Tensors named `layer/variable`, in layer order.
    pub checkpoint: Checkpoint,
    /// The `model_config` of a full-model file.
    pub config: Option<serde_json::Value>,
    /// `keras_version`, when recorded.
    pub keras_version: Option<String>,
    /// Datasets left out, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Why a Keras file could not be read. Messages name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KerasError {
    /// The HDF5 structure could not be read.
    #[error("{}: not a readable HDF5 file: {message}", path.display())]
    Hdf5 {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// The file is HDF5 but not a Keras weights file.
    #[error("{}: {message}", path.display())]
    NotKeras {
        /// The file.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
}

fn string_attr(group: &Group, name: &str) -> Option<String> {
    group
        .attribute(name)
        .ok()
        .and_then(|a| a.read_string().ok())
}

fn strings_attr(group: &Group, name: &str) -> Option<Vec<String>> {
    group
        .attribute(name)
        .ok()
        .and_then(|a| a.read_strings().ok())
}

/// Reads a Keras `.h5` file.
pub fn read(path: &Path) -> Result<KerasFile, KerasError> {
    let h5 = |e: hdf5_reader::error::Error| KerasError::Hdf5 {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let file = Hdf5File::open(path).map_err(h5)?;
    let root = file.root_group().map_err(h5)?;
    let config = string_attr(&root, "model_config").and_then(|s| serde_json::from_str(&s).ok());
    let keras_version = string_attr(&root, "keras_version");
    let weights = if config.is_some() {
        root.group("model_weights").map_err(h5)?
    } else {
        root.clone()
    };
    let layer_names =
        strings_attr(&weights, "layer_names").ok_or_else(|| KerasError::NotKeras {
            path: path.to_owned(),
            message: "an HDF5 file without Keras `layer_names`: not a Keras weights file".into(),
        })?;
    let mut checkpoint = Checkpoint::default();
    let mut skipped = Vec::new();
    for layer in &layer_names {
        let group = weights.group(layer).map_err(h5)?;
        let weight_names = strings_attr(&group, "weight_names").unwrap_or_default();
        for weight in weight_names {
            // `block2a_dwconv/depthwise_kernel:0` is a path inside the layer group.
            let mut node = group.clone();
            let parts: Vec<&str> = weight.split('/').collect();
            for part in &parts[..parts.len() - 1] {
                node = node.group(part).map_err(h5)?;
            }
            let leaf = parts[parts.len() - 1];
            let dataset = node.dataset(leaf).map_err(h5)?;
            let variable = leaf.split(':').next().unwrap_or(leaf);
            let name = format!("{layer}/{variable}");
            let dtype = match dataset.dtype() {
                hdf5_reader::Datatype::FloatingPoint { size: 4, .. } => DType::F32,
                hdf5_reader::Datatype::FloatingPoint { size: 2, .. } => DType::F16,
                hdf5_reader::Datatype::FloatingPoint { size: 8, .. } => DType::F64,
                hdf5_reader::Datatype::FixedPoint {
                    size: 8,
                    signed: true,
                    ..
                } => DType::I64,
                other => {
                    skipped.push((name, format!("HDF5 type {other:?} is not a parameter type")));
                    continue;
                }
            };
            let shape: Vec<usize> = dataset.shape().iter().map(|&d| d as usize).collect();
            let bytes = dataset.read_native_bytes().map_err(h5)?;
            let tensor = Tensor::with_data(dtype, shape, Bytes::from_vec(bytes)).map_err(|e| {
                KerasError::NotKeras {
                    path: path.to_owned(),
                    message: format!("dataset `{name}`: {e}"),
                }
            })?;
            checkpoint.tensors.push((name, tensor));
        }
    }
    if let Some(v) = &keras_version {
        checkpoint
            .metadata
            .insert("keras_version".into(), v.clone());
    }
    Ok(KerasFile {
        checkpoint,
        config,
        keras_version,
        skipped,
    })
}
