//! The three Keras files, written front to back: a Keras 3 `.keras` archive
//! (`metadata.json`, `config.json`, `model.weights.h5`), a Keras 3 `.weights.h5`
//! (`layers/<class>[_N]/vars/<i>`, counted per snake-cased class in layer order) and a
//! tf-keras full-model `.h5` (root attribute `model_config`; under `model_weights` the
//! attribute `layer_names` and one group per layer with its `weight_names`, datasets at
//! `<layer>/<layer>/<weight>`).
//!
//! Tensor data is not held here: a callback writes each variable, by its index in layer order,
//! in the dtype the caller chose.

use std::io::{self, Seek, Write};
use std::path::Path;

use effnet_hdf5::{AttrValue, Dataset, Dtype, Group, Hdf5Error};
use effnet_ir::DType;

use super::build::{KerasModel, Layer, LayerKind, Variable};
use super::config::{keras3_config, tf_keras_config};

/// The tf-keras limit on an attribute's data: larger ones are split into `name0`, `name1`, ….
const HDF5_OBJECT_HEADER_LIMIT: usize = 64512;

/// The Keras 3 release whose layout the `.keras` and `.weights.h5` files follow.
pub const KERAS3_LAYOUT_VERSION: &str = "3.15.1";
/// The tf-keras release whose layout the `.h5` files follow.
pub const TF_KERAS_LAYOUT_VERSION: &str = "2.21.0";

/// Which Keras file to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KerasTarget {
    /// A Keras 3 `.keras` archive: config, metadata and weights.
    Keras,
    /// A Keras 3 `.weights.h5`.
    WeightsH5,
    /// A tf-keras (Keras 2) `.h5` weights file.
    LegacyH5,
}

impl KerasTarget {
    /// The target a path's suffix names: `.keras`, `.weights.h5`, or `.h5`/`.hdf5`.
    pub fn from_path(path: &Path) -> Option<KerasTarget> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".keras") {
            Some(KerasTarget::Keras)
        } else if name.ends_with(".weights.h5") {
            Some(KerasTarget::WeightsH5)
        } else if name.ends_with(".h5") || name.ends_with(".hdf5") {
            Some(KerasTarget::LegacyH5)
        } else {
            None
        }
    }

    /// How the target is named in messages.
    pub fn label(self) -> &'static str {
        match self {
            KerasTarget::Keras => "Keras 3 .keras",
            KerasTarget::WeightsH5 => "Keras 3 .weights.h5",
            KerasTarget::LegacyH5 => "tf-keras .h5",
        }
    }
}

/// Why a Keras file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The HDF5 layer refused or failed.
    #[error(transparent)]
    Hdf5(#[from] Hdf5Error),
    /// The zip archive could not be written.
    #[error("writing the .keras archive: {0}")]
    Zip(String),
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes variable `index` (in layer order) to the writer.
pub type WriteData<'a> = &'a mut dyn FnMut(usize, &mut dyn Write) -> io::Result<()>;

/// The dtype a variable is written in: `float` for the weights, f32 for a `Normalization`'s
/// statistics (Keras holds them in f32 whatever the model's dtype), integers as they are.
pub fn variable_dtype(layer: &Layer, variable: &Variable, float: Dtype) -> Dtype {
    match variable.tensor.dtype() {
        DType::I64 => Dtype::I64,
        DType::F16 | DType::F32 | DType::F64 | DType::BF16 => match layer.kind {
            LayerKind::Normalization { .. } => Dtype::F32,
            _ => float,
        },
    }
}

/// The Keras 3 weights tree: `layers/<class>[_N]/vars/<i>`, and the model's own empty `vars`.
fn keras3_tree(model: &KerasModel, float: Dtype) -> Result<Group, WriteError> {
    let mut root = Group::new();
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut key = 0;
    let layers = root.group("layers")?;
    for layer in &model.layers {
        let class = layer.kind.snake_name();
        let n = counts.entry(class).or_insert(0);
        let group_name = if *n == 0 {
            class.to_owned()
        } else {
            format!("{class}_{n}")
        };
        *n += 1;
        let vars = layers.group(&group_name)?.group("vars")?;
        vars.set_attr("name", AttrValue::String(layer.name.clone()));
        for (i, v) in layer.variables.iter().enumerate() {
            let dtype = variable_dtype(layer, v, float);
            let shape = v.tensor.shape().iter().map(|&d| d as u64).collect();
            vars.add_dataset(&i.to_string(), Dataset::new(dtype, shape, key))?;
            key += 1;
        }
    }
    root.group("vars")?;
    Ok(root)
}

/// A string-array attribute split as tf-keras splits one beyond the header limit.
fn set_chunked(group: &mut Group, name: &str, items: &[String]) {
    let width = items.iter().map(String::len).max().unwrap_or(0).max(1);
    if items.len() * width <= HDF5_OBJECT_HEADER_LIMIT {
        group.set_attr(name, AttrValue::Strings(items.to_vec()));
        return;
    }
    let mut chunks = 2;
    while items.len().div_ceil(chunks) * width > HDF5_OBJECT_HEADER_LIMIT {
        chunks += 1;
    }
    let per = items.len().div_ceil(chunks);
    for (i, part) in items.chunks(per).enumerate() {
        group.set_attr(&format!("{name}{i}"), AttrValue::Strings(part.to_vec()));
    }
}

/// The tf-keras full-model tree: `model_config` (a variable-length string, as tf-keras writes
/// it) beside the weights under `model_weights`.
fn legacy_tree(model: &KerasModel, float: Dtype) -> Result<Group, WriteError> {
    let mut root = Group::new();
    let version = || AttrValue::String(TF_KERAS_LAYOUT_VERSION.into());
    root.set_attr("backend", AttrValue::String("tensorflow".into()));
    root.set_attr("keras_version", version());
    root.set_attr(
        "model_config",
        AttrValue::VarString(tf_keras_config(model, TF_KERAS_LAYOUT_VERSION).to_string()),
    );
    let weights = root.group("model_weights")?;
    weights.set_attr("backend", AttrValue::String("tensorflow".into()));
    weights.set_attr("keras_version", version());
    let names: Vec<String> = model.layers.iter().map(|l| l.name.clone()).collect();
    set_chunked(weights, "layer_names", &names);
    let mut key = 0;
    for layer in &model.layers {
        let group = weights.group(&layer.name)?;
        let weight_names: Vec<String> = layer
            .variables
            .iter()
            .map(|v| format!("{}/{}", layer.name, v.legacy_name))
            .collect();
        set_chunked(group, "weight_names", &weight_names);
        if layer.variables.is_empty() {
            continue;
        }
        let inner = group.group(&layer.name)?;
        for v in &layer.variables {
            let dtype = variable_dtype(layer, v, float);
            let shape = v.tensor.shape().iter().map(|&d| d as u64).collect();
            inner.add_dataset(v.legacy_name, Dataset::new(dtype, shape, key))?;
            key += 1;
        }
    }
    Ok(root)
}

/// Writes a Keras 3 `.weights.h5` or a tf-keras full-model `.h5` (what `model.save("x.h5")`
/// writes, without an optimizer, which `load_model` and `load_weights` both read); `float` is
/// the dtype of the float variables, `attributes` go on the root group (Keras reads none
/// there). Returns the bytes written. A `.keras` archive is [`write_keras`]'s.
pub fn write_h5(
    model: &KerasModel,
    target: KerasTarget,
    float: Dtype,
    attributes: &[(String, String)],
    out: &mut dyn Write,
    data: WriteData<'_>,
) -> Result<u64, WriteError> {
    let mut root = match target {
        KerasTarget::LegacyH5 => legacy_tree(model, float)?,
        KerasTarget::WeightsH5 | KerasTarget::Keras => keras3_tree(model, float)?,
    };
    for (name, value) in attributes {
        root.set_attr(name, AttrValue::String(value.clone()));
    }
    Ok(effnet_hdf5::write(&root, out, data)?)
}

/// Writes a Keras 3 `.keras` archive (members stored, as Keras writes them); `metadata` is
/// added to `metadata.json`.
pub fn write_keras<W: Write + Seek>(
    model: &KerasModel,
    float: Dtype,
    metadata: serde_json::Map<String, serde_json::Value>,
    out: W,
    data: WriteData<'_>,
) -> Result<W, WriteError> {
    use zip::write::SimpleFileOptions;
    let zip_error = |e: zip::result::ZipError| WriteError::Zip(e.to_string());
    let root = keras3_tree(model, float)?;
    let total: u64 = model
        .layers
        .iter()
        .flat_map(|l| l.variables.iter().map(move |v| (l, v)))
        .map(|(l, v)| (v.tensor.numel() * variable_dtype(l, v, float).size()) as u64)
        .sum();
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(total > u64::from(u32::MAX) / 2);
    let mut zip = zip::ZipWriter::new(out);
    let mut meta = serde_json::Map::new();
    meta.insert("keras_version".into(), KERAS3_LAYOUT_VERSION.into());
    meta.extend(metadata);
    zip.start_file("metadata.json", options)
        .map_err(zip_error)?;
    zip.write_all(serde_json::Value::Object(meta).to_string().as_bytes())?;
    zip.start_file("config.json", options).map_err(zip_error)?;
    zip.write_all(keras3_config(model).to_string().as_bytes())?;
    zip.start_file("model.weights.h5", options)
        .map_err(zip_error)?;
    effnet_hdf5::write(&root, &mut zip, data)?;
    zip.finish().map_err(zip_error)
}
