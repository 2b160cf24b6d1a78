use std::collections::BTreeMap;

use crate::Tensor;

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
