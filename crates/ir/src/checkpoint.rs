use std::collections::BTreeMap;

use crate::Tensor;

/// Named tensors as a container holds them, before any naming scheme is applied, with the
/// container's free-form metadata (safetensors `__metadata__`, …).
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    /// `(name, tensor)` in the container's order.
    pub tensors: Vec<(String, Tensor)>,
    /// String metadata the container carries.
    pub metadata: BTreeMap<String, String>,
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
