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
//! A Keras 3 `.keras` file is a zip archive of `config.json` (the architecture), `metadata.json`
//! and `model.weights.h5`, whose groups are named after layer *classes*, not layer names:
//! `layers/conv2d/vars/0`, `layers/batch_normalization_12/vars/0..3`, one group per layer in
//! the order of `config.json`, counted per snake-cased class. Variables are positional
//! (BatchNormalization: gamma, beta, moving_mean, moving_variance). [`read_keras3`] walks the
//! config to give each its `layer/variable` name.
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
    /// Layers of a Keras 3 `.weights.h5` that does not record layer names, in order within
    /// each class; the `keras` naming scheme's positional reader names them.
    pub unnamed: Vec<UnnamedLayer>,
    /// Whether the file has the Keras 3 layout (`layers/<class>/vars/N`).
    pub keras3: bool,
}

/// A layer of a Keras 3 weights file known only by its class and its place among that class.
#[derive(Clone, Debug)]
pub struct UnnamedLayer {
    /// The group (`layers/batch_normalization_12`).
    pub group: String,
    /// The snake-cased class (`batch_normalization`).
    pub class: String,
    /// Its variables by their Keras names.
    pub variables: Vec<(String, Tensor)>,
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
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut budget = file_len.saturating_mul(MAX_EXPANSION);
    let file = Hdf5File::open(path).map_err(h5)?;
    let root = file.root_group().map_err(h5)?;
    let config = string_attr(&root, "model_config").and_then(|s| serde_json::from_str(&s).ok());
    let keras_version = string_attr(&root, "keras_version");
    let weights = if config.is_some() {
        root.group("model_weights").map_err(h5)?
    } else {
        root.clone()
    };
    if config.is_none() && strings_attr(&weights, "layer_names").is_none() {
        if let Ok(layers) = root.group("layers") {
            return read_keras3_weights(&layers, &mut budget).map_err(h5);
        }
    }
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
            // `stem_conv/kernel:0` names its own layer; a model nested in another (transfer
            // learning) keeps its layers' names under the outer layer (`efficientnetb0`).
            let name = match parts.len() {
                1 => format!("{layer}/{variable}"),
                n => format!("{}/{variable}", parts[n - 2]),
            };
            match dataset_tensor(&dataset, &mut budget).map_err(h5)? {
                Some(tensor) => checkpoint.tensors.push((name, tensor)),
                None => skipped.push((name, "not a parameter type".into())),
            }
        }
    }
    record_version(&mut checkpoint, keras_version.as_deref());
    Ok(KerasFile {
        checkpoint,
        config,
        keras_version,
        skipped,
        unnamed: Vec::new(),
        keras3: false,
    })
}

/// The variable names of a snake-cased class in a file without a config, by count.
fn variables_by_count(class: &str, count: usize) -> Option<&'static [&'static str]> {
    Some(match (class, count) {
        ("conv2d" | "dense", 1) => &["kernel"],
        ("conv2d" | "dense", 2) => &["kernel", "bias"],
        ("depthwise_conv2d", 1) => &["depthwise_kernel"],
        ("depthwise_conv2d", 2) => &["depthwise_kernel", "bias"],
        ("batch_normalization", 4) => &["gamma", "beta", "moving_mean", "moving_variance"],
        ("batch_normalization", 2) => &["moving_mean", "moving_variance"],
        ("normalization", 3) => &["mean", "variance", "count"],
        _ => return None,
    })
}

/// A Keras 3 `.weights.h5` (`layers/<class>[_N]/vars/0..n`, no config). Keras ≥ 3.10-ish
/// writes each layer's name as the `name` attribute of its `vars` group; older files have
/// only the class and the per-class counter.
fn read_keras3_weights(
    layers: &Group,
    budget: &mut u64,
) -> Result<KerasFile, hdf5_reader::error::Error> {
    let mut read = Vec::new();
    let mut skipped = Vec::new();
    collect_keras3_layers(layers, "layers", budget, &mut read, &mut skipped, 0)?;
    // Names when every layer records one; otherwise positions for all.
    let mut named = Checkpoint::default();
    let mut unnamed = Vec::new();
    if read.iter().all(|(name, _)| name.is_some()) {
        for (name, layer) in read {
            let name = name.unwrap_or_default();
            for (v, t) in layer.variables {
                named.tensors.push((format!("{name}/{v}"), t));
            }
        }
    } else {
        unnamed.extend(read.into_iter().map(|(_, l)| l));
    }
    Ok(KerasFile {
        checkpoint: named,
        config: None,
        keras_version: None,
        skipped,
        unnamed,
        keras3: true,
    })
}

/// A layer read from a Keras 3 weights file: its recorded name, if any, and its variables.
type Keras3Layer = (Option<String>, UnnamedLayer);

/// The weighted layers under a `layers` group, in order within each class; a nested model's
/// group (`functional`, `sequential`) holds a `layers` group of its own, read in its place.
fn collect_keras3_layers(
    layers: &Group,
    path: &str,
    budget: &mut u64,
    read: &mut Vec<Keras3Layer>,
    skipped: &mut Vec<(String, String)>,
    depth: usize,
) -> Result<(), hdf5_reader::error::Error> {
    let (groups, _) = layers.member_names()?;
    let mut entries: Vec<(String, usize, String)> = groups
        .into_iter()
        .map(|g| {
            let (class, n) = match g.rsplit_once('_') {
                Some((c, n)) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
                    (c.to_owned(), n.parse().unwrap_or(usize::MAX))
                }
                _ => (g.clone(), 0),
            };
            (class, n, g)
        })
        .collect();
    entries.sort();
    for (class, _, group_name) in entries {
        let group = layers.group(&group_name)?;
        let origin = format!("{path}/{group_name}");
        if depth < 8 {
            if let Ok(inner) = group.group("layers") {
                collect_keras3_layers(
                    &inner,
                    &format!("{origin}/layers"),
                    budget,
                    read,
                    skipped,
                    depth + 1,
                )?;
                continue;
            }
        }
        let Ok(vars) = group.group("vars") else {
            continue;
        };
        let (_, datasets) = vars.member_names()?;
        if datasets.is_empty() {
            continue;
        }
        let mut tensors = Vec::with_capacity(datasets.len());
        for i in 0..datasets.len() {
            let Ok(dataset) = vars.dataset(&i.to_string()) else {
                break;
            };
            tensors.push(dataset_tensor(&dataset, budget)?);
        }
        let Some(names) = variables_by_count(&class, tensors.len()) else {
            skipped.push((
                origin,
                format!("a `{class}` layer with {} variables", tensors.len()),
            ));
            continue;
        };
        let variables: Vec<(String, Tensor)> = names
            .iter()
            .zip(tensors)
            .filter_map(|(n, t)| Some(((*n).to_owned(), t?)))
            .collect();
        read.push((
            string_attr(&vars, "name"),
            UnnamedLayer {
                group: origin,
                class,
                variables,
            },
        ));
    }
    Ok(())
}

/// Records the Keras version in the checkpoint's metadata, when known.
fn record_version(checkpoint: &mut Checkpoint, version: Option<&str>) {
    if let Some(v) = version {
        checkpoint
            .metadata
            .insert("keras_version".into(), v.to_owned());
    }
}

/// The most bytes read from a `.keras` archive member.
const MAX_MEMBER_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// Archives start at byte 0: without saying so, the `zip` crate scans the whole file for
/// prepended data (0.2 s for a 266 MB PyTorch archive).
fn zip_config() -> zip::read::Config {
    zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    }
}

/// Whether a zip archive's entry names are those of a Keras 3 `.keras` file.
pub fn is_keras_zip(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(archive) = zip::ZipArchive::with_config(zip_config(), std::io::BufReader::new(file))
    else {
        return false;
    };
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    // `metadata.json` beside `config.json` marks a `.keras` file even when its weights are
    // missing (which `read_keras3` then reports).
    names.iter().any(|n| n == "config.json")
        && names
            .iter()
            .any(|n| n == "model.weights.h5" || n == "metadata.json")
}

/// Keras' `to_snake_case` of a class name (`DepthwiseConv2D` → `depthwise_conv2d`).
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev.is_ascii_lowercase() || (next_lower && prev != '_') {
                out.push('_');
            }
        }
        out.push(c);
    }
    out.to_lowercase()
}

/// The variable names of a layer class, by position.
fn variables(class: &str, config: &serde_json::Value) -> Vec<&'static str> {
    let flag = |key: &str| {
        config
            .get(key)
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true)
    };
    match class {
        "Conv2D" | "Dense" => vec!["kernel", "bias"],
        "DepthwiseConv2D" => vec!["depthwise_kernel", "bias"],
        "BatchNormalization" => {
            let mut v = Vec::new();
            if flag("scale") {
                v.push("gamma");
            }
            if flag("center") {
                v.push("beta");
            }
            v.extend(["moving_mean", "moving_variance"]);
            v
        }
        "Normalization" => vec!["mean", "variance", "count"],
        _ => Vec::new(),
    }
}

/// Reads a Keras 3 `.keras` archive.
pub fn read_keras3(path: &Path) -> Result<KerasFile, KerasError> {
    let err = |message: String| KerasError::NotKeras {
        path: path.to_owned(),
        message,
    };
    let h5 = |e: hdf5_reader::error::Error| KerasError::Hdf5 {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut archive = zip::ZipArchive::with_config(zip_config(), std::io::BufReader::new(file))
        .map_err(|e| err(format!("not a readable zip archive: {e}")))?;
    let mut member = |name: &str, limit: u64| -> Result<Vec<u8>, KerasError> {
        use std::io::Read;
        let entry = archive
            .by_name(name)
            .map_err(|e| err(format!("`{name}`: {e}")))?;
        if entry.size() > limit {
            return Err(err(format!(
                "`{name}` declares {} bytes, beyond the limit",
                entry.size()
            )));
        }
        let mut out = Vec::new();
        entry
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| err(format!("`{name}`: {e}")))?;
        if out.len() as u64 > limit {
            return Err(err(format!("`{name}` inflates beyond the limit")));
        }
        Ok(out)
    };
    let config_bytes = member("config.json", 256 * 1024 * 1024)?;
    let config: serde_json::Value =
        serde_json::from_slice(&config_bytes).map_err(|e| err(format!("config.json: {e}")))?;
    let weights = member(
        "model.weights.h5",
        MAX_MEMBER_BYTES.min(file_len.saturating_mul(200)),
    )?;
    let mut budget = (weights.len() as u64).saturating_mul(MAX_EXPANSION);
    let h5file = Hdf5File::from_vec(weights).map_err(h5)?;
    let root = h5file.root_group().map_err(h5)?;
    let layers_group = root.group("layers").map_err(h5)?;
    let layers = config
        .pointer("/config/layers")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| err("config.json lists no layers".into()))?;
    let mut checkpoint = Checkpoint::default();
    let mut skipped = Vec::new();
    read_config_layers(
        &layers_group,
        layers,
        &mut budget,
        &mut checkpoint,
        &mut skipped,
        0,
    )
    .map_err(h5)?;
    let keras_version = member("metadata.json", 1024 * 1024)
        .ok()
        .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok())
        .and_then(|m| {
            m.get("keras_version")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        });
    record_version(&mut checkpoint, keras_version.as_deref());
    Ok(KerasFile {
        checkpoint,
        config: Some(config),
        keras_version,
        skipped,
        unnamed: Vec::new(),
        keras3: true,
    })
}

/// How many times its file size a file's datasets may claim together (HDF5 can compress;
/// Keras does not).
const MAX_EXPANSION: u64 = 200;

/// The variables of `layers` (a config's layer list) from the `layers` group of a Keras 3
/// weights file: groups are the snake-cased class plus a per-class counter in config order; a
/// nested model's group holds its own `layers` group, read with its own config.
fn read_config_layers(
    group: &Group,
    layers: &[serde_json::Value],
    budget: &mut u64,
    checkpoint: &mut Checkpoint,
    skipped: &mut Vec<(String, String)>,
    depth: usize,
) -> Result<(), hdf5_reader::error::Error> {
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for layer in layers {
        let class = layer
            .get("class_name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        let layer_config = layer.get("config").cloned().unwrap_or_default();
        let name = layer_config
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned();
        let snake = snake_case(class);
        let n = counts.entry(snake.clone()).or_insert(0);
        let group_name = if *n == 0 {
            snake.clone()
        } else {
            format!("{snake}_{n}")
        };
        *n += 1;
        let Ok(layer_group) = group.group(&group_name) else {
            continue;
        };
        let inner = layer_config
            .get("layers")
            .and_then(serde_json::Value::as_array);
        if let (Some(inner), Ok(inner_group), true) =
            (inner, layer_group.group("layers"), depth < 8)
        {
            read_config_layers(&inner_group, inner, budget, checkpoint, skipped, depth + 1)?;
            continue;
        }
        let Ok(vars) = layer_group.group("vars") else {
            continue;
        };
        for (i, variable) in variables(class, &layer_config).into_iter().enumerate() {
            let Ok(dataset) = vars.dataset(&i.to_string()) else {
                continue;
            };
            let full = format!("{name}/{variable}");
            match dataset_tensor(&dataset, budget)? {
                Some(t) => checkpoint.tensors.push((full, t)),
                None => skipped.push((full, "not a parameter type".into())),
            }
        }
    }
    Ok(())
}

/// A dataset as a tensor (`None` for types that are not parameters). `budget` is what the
/// datasets still to be read may claim; a dataset claiming more is refused before anything is
/// allocated.
fn dataset_tensor(
    dataset: &hdf5_reader::dataset::Dataset,
    budget: &mut u64,
) -> Result<Option<Tensor>, hdf5_reader::error::Error> {
    let dtype = match dataset.dtype() {
        hdf5_reader::Datatype::FloatingPoint { size: 4, .. } => DType::F32,
        hdf5_reader::Datatype::FloatingPoint { size: 2, .. } => DType::F16,
        hdf5_reader::Datatype::FloatingPoint { size: 8, .. } => DType::F64,
        hdf5_reader::Datatype::FixedPoint {
            size: 8,
            signed: true,
            ..
        } => DType::I64,
        _ => return Ok(None),
    };
    let claimed = dataset
        .shape()
        .iter()
        .try_fold(dtype.size() as u64, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= *budget)
        .ok_or_else(|| {
            hdf5_reader::error::Error::Other(format!(
                "dataset `{}` claims more bytes ({:?} × {}) than the file can hold",
                dataset.name(),
                dataset.shape(),
                dtype.size()
            ))
        })?;
    *budget -= claimed;
    let shape: Vec<usize> = dataset
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    let bytes = dataset.read_native_bytes()?;
    Ok(Tensor::with_data(dtype, shape, Bytes::from_vec(bytes)).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_matches_keras() {
        assert_eq!(snake_case("Conv2D"), "conv2d");
        assert_eq!(snake_case("DepthwiseConv2D"), "depthwise_conv2d");
        assert_eq!(snake_case("BatchNormalization"), "batch_normalization");
        assert_eq!(
            snake_case("GlobalAveragePooling2D"),
            "global_average_pooling2d"
        );
        assert_eq!(snake_case("InputLayer"), "input_layer");
        assert_eq!(snake_case("ZeroPadding2D"), "zero_padding2d");
        assert_eq!(snake_case("Dense"), "dense");
    }
}
