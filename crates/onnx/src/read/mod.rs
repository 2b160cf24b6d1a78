//! Reading an ONNX model into the graph IR.
//!
//! The file is mapped and its `ModelProto` parsed by [`wire`] (budgeted, bounded nesting);
//! its structure is checked (IR version, one default-domain opset 13–21, a graph with one
//! image input and one output, no model functions or training information); initializers are
//! views into the map (`raw_data`) or into external data files confined to the model's folder;
//! then [`translate`] turns the nodes into the IR's typed ops, refusing any op or pattern an
//! EfficientNet does not use with its op type, node name and position, and [`tag`] places
//! every node by stage, block and role.

mod tag;
mod translate;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use effnet_io::{Budget, BudgetError, escape};
use effnet_ir::{Bytes, DType, Graph, Storage, Tensor};

/// An ONNX model read into the IR.
#[derive(Debug)]
pub struct OnnxModel {
    /// The graph, every node tagged by stage, block and role.
    pub graph: Graph,
    /// `ir_version`.
    pub ir_version: i64,
    /// The default domain's opset.
    pub opset: i64,
    /// `producer_name producer_version`.
    pub producer: String,
    /// `metadata_props`.
    pub metadata: BTreeMap<String, String>,
    /// Initializers (and `Constant` tensors) as the file names them.
    pub tensors: Vec<(String, Tensor)>,
    /// Initializers the graph's parameters were taken from.
    pub used: Vec<String>,
    /// Initializers no node reads.
    pub unused: Vec<String>,
    /// Whether the convolutions carry their BatchNorms folded in (no BatchNormalization
    /// node where an EfficientNet has one).
    pub bn_folded: bool,
    /// Whether the input is NHWC (a Transpose to NCHW follows it).
    pub nhwc: bool,
    /// External data files read, besides the model.
    pub external_files: Vec<PathBuf>,
}

/// Why an ONNX file could not be read. Every message names the file; text from the file is
/// escaped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file (or an external data file) could not be opened or mapped.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
    /// Not a valid ONNX model, or one effnet does not read.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading would take more memory or work than the file's size allows.
    #[error("{}: {source}", path.display())]
    Budget {
        /// The file.
        path: PathBuf,
        /// The budget exceeded.
        source: BudgetError,
    },
    /// A node effnet does not read as part of an EfficientNet.
    #[error("{}: node #{position} `{node}` ({op}): {message}", path.display())]
    Node {
        /// The file.
        path: PathBuf,
        /// The node's position in the graph, from 0.
        position: usize,
        /// Its name (escaped).
        node: String,
        /// Its op type (escaped).
        op: String,
        /// What is wrong.
        message: String,
    },
}

/// The most external data files one model may name.
pub const MAX_EXTERNAL_FILES: usize = 10_000;
/// The most nodes a graph may have (B7 exported by torch.onnx has ~1,300).
pub const MAX_NODES: usize = 1_000_000;
/// Tensor rank limit.
pub const MAX_RANK: usize = 8;

/// Whether the first bytes of a file look like an ONNX `ModelProto`: `ir_version` (field 1,
/// a varint of 1–12) first, as every ONNX writer puts it, followed by another model field.
pub fn sniff(head: &[u8]) -> bool {
    match head {
        [0x08, v, key, ..] if (1..=12).contains(v) => {
            // producer_name, producer_version, domain, doc_string, graph, opset_import,
            // metadata_props (length-delimited) or model_version (varint).
            matches!(key, 0x12 | 0x1a | 0x22 | 0x32 | 0x3a | 0x42 | 0x72 | 0x28)
        }
        _ => false,
    }
}

/// Reads the ONNX model at `path` (external data files beside it).
pub fn read(path: &Path) -> Result<OnnxModel, ReadError> {
    let io = |reason| ReadError::Io {
        path: path.to_owned(),
        reason,
    };
    let (_file, map) = effnet_io::input::map_regular(path).map_err(io)?;
    read_storage(Arc::new(map), path, Some(model_folder(path)))
}

/// An ONNX file's initializers and header, its graph not read (a file that is not an
/// EfficientNet still has them: `inspect`).
#[derive(Debug)]
pub struct OnnxTensors {
    /// `ir_version`.
    pub ir_version: i64,
    /// The default domain's opset.
    pub opset: i64,
    /// `producer_name producer_version`.
    pub producer: String,
    /// `metadata_props`.
    pub metadata: BTreeMap<String, String>,
    /// Initializers as the file names them.
    pub tensors: Vec<(String, Tensor)>,
}

/// Reads the initializers of the ONNX model at `path` (external data files beside it), with
/// every check [`read`] makes except those of the graph's nodes.
pub fn read_tensors(path: &Path) -> Result<OnnxTensors, ReadError> {
    let (_file, map) = effnet_io::input::map_regular(path).map_err(|reason| ReadError::Io {
        path: path.to_owned(),
        reason,
    })?;
    let storage: Arc<dyn Storage> = Arc::new(map);
    let folder = model_folder(path);
    let buf: &[u8] = (*storage).as_ref();
    let budget = Budget::for_input(buf.len() as u64);
    let (model, ir_version, opset) = parse_model(buf, &budget, path)?;
    let graph = model.graph.as_ref().expect("checked by parse_model");
    let mut external = External {
        folder: Some(folder.to_owned()),
        maps: HashMap::new(),
        files: Vec::new(),
    };
    let tensors = initializers(graph, &storage, &budget, &mut external, path)?;
    Ok(OnnxTensors {
        ir_version,
        opset,
        producer: format!("{} {}", model.producer_name, model.producer_version)
            .trim()
            .to_owned(),
        metadata: model.metadata.iter().cloned().collect(),
        tensors,
    })
}

/// The folder external data files are read from.
fn model_folder(path: &Path) -> &Path {
    path.parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
}

/// The parsed `ModelProto` with its checked `ir_version` and opset; it has a graph.
fn parse_model(
    buf: &[u8],
    budget: &Budget,
    path: &Path,
) -> Result<(wire::Model, i64, i64), ReadError> {
    let invalid = |message: String| ReadError::Invalid {
        path: path.to_owned(),
        message,
    };
    if !sniff(buf) {
        return Err(invalid(
            "not an ONNX model (a ModelProto starts with its ir_version)".into(),
        ));
    }
    let model =
        wire::model(buf, budget).map_err(|m| invalid(format!("not a valid ONNX model: {m}")))?;
    let ir_version = model
        .ir_version
        .ok_or_else(|| invalid("the model has no ir_version".into()))?;
    if !(3..=12).contains(&ir_version) {
        return Err(invalid(format!(
            "ir_version {ir_version} (effnet reads ONNX IR versions 3 to 12)"
        )));
    }
    let opset = model
        .opsets
        .iter()
        .find(|(d, _)| d.is_empty() || d == "ai.onnx")
        .map(|(_, v)| *v)
        .ok_or_else(|| invalid("the model imports no opset of the default ONNX domain".into()))?;
    if !(13..=21).contains(&opset) {
        return Err(invalid(format!(
            "opset {opset} (effnet reads opsets 13 to 21)"
        )));
    }
    if model.functions {
        return Err(invalid(
            "the model defines its own functions, which effnet does not read".into(),
        ));
    }
    if model.training_info {
        return Err(invalid(
            "the model carries training information, which effnet does not read".into(),
        ));
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| invalid("the model has no graph".into()))?;
    if graph.sparse_initializers > 0 {
        return Err(invalid(
            "the graph has sparse initializers, which effnet does not read".into(),
        ));
    }
    if graph.nodes.len() > MAX_NODES {
        return Err(invalid(format!(
            "{} nodes, more than the {MAX_NODES} effnet reads",
            graph.nodes.len()
        )));
    }
    Ok((model, ir_version, opset))
}

/// The graph's initializers, named uniquely.
fn initializers(
    graph: &wire::Graph,
    storage: &Arc<dyn Storage>,
    budget: &Budget,
    external: &mut External,
    path: &Path,
) -> Result<Vec<(String, Tensor)>, ReadError> {
    let invalid = |message: String| ReadError::Invalid {
        path: path.to_owned(),
        message,
    };
    let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(graph.initializers.len());
    let mut seen = std::collections::HashSet::new();
    for t in &graph.initializers {
        let tensor = materialize(t, storage, budget, external)
            .map_err(|m| invalid(format!("initializer `{}`: {m}", escape(&t.name))))?;
        if !seen.insert(t.name.as_str()) {
            return Err(invalid(format!(
                "two initializers named `{}`",
                escape(&t.name)
            )));
        }
        tensors.push((t.name.clone(), tensor));
    }
    Ok(tensors)
}

/// Reads an ONNX model held in `storage`; `path` names it in messages; external data is read
/// from `folder` (refused without one).
pub fn read_storage(
    storage: Arc<dyn Storage>,
    path: &Path,
    folder: Option<&Path>,
) -> Result<OnnxModel, ReadError> {
    let invalid = |message: String| ReadError::Invalid {
        path: path.to_owned(),
        message,
    };
    let buf: &[u8] = (*storage).as_ref();
    let budget = Budget::for_input(buf.len() as u64);
    let (model, ir_version, opset) = parse_model(buf, &budget, path)?;
    let graph = model.graph.as_ref().expect("checked by parse_model");
    let mut external = External {
        folder: folder.map(Path::to_owned),
        maps: HashMap::new(),
        files: Vec::new(),
    };
    let tensors = initializers(graph, &storage, &budget, &mut external, path)?;
    let metadata: BTreeMap<String, String> = model.metadata.iter().cloned().collect();
    let translated = translate::translate(graph, &tensors, &storage, &budget, &mut external)
        .map_err(|e| e.into_error(path))?;
    let mut out_graph = translated.graph;
    let bn_folded =
        tag::tag(&mut out_graph, &translated.origins).map_err(|e| e.into_error(path))?;
    out_graph
        .validate()
        .map_err(|e| invalid(format!("the graph is not consistent: {e}")))?;
    let mut tensors = tensors;
    tensors.extend(translated.constants);
    let used_set: std::collections::HashSet<&str> =
        translated.used.iter().map(String::as_str).collect();
    let unused = graph
        .initializers
        .iter()
        .filter(|t| !used_set.contains(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    Ok(OnnxModel {
        graph: out_graph,
        ir_version,
        opset,
        producer: format!("{} {}", model.producer_name, model.producer_version)
            .trim()
            .to_owned(),
        metadata,
        tensors,
        used: translated.used,
        unused,
        bn_folded,
        nhwc: translated.nhwc,
        external_files: external.files,
    })
}

/// External data files, mapped once each.
pub(crate) struct External {
    folder: Option<PathBuf>,
    maps: HashMap<String, Arc<dyn Storage>>,
    files: Vec<PathBuf>,
}

impl External {
    /// The mapped file `location` names, confined to the model's folder.
    fn file(&mut self, location: &str) -> Result<Arc<dyn Storage>, String> {
        if let Some(map) = self.maps.get(location) {
            return Ok(map.clone());
        }
        let Some(folder) = &self.folder else {
            return Err("external data, and no folder to read it from".into());
        };
        let rel = Path::new(location);
        if location.is_empty()
            || location.contains('\0')
            || location.contains('\\')
            || !rel
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(format!(
                "external data location `{}` leads out of the model's folder (only a relative path without `..` is read)",
                escape(location)
            ));
        }
        if self.maps.len() >= MAX_EXTERNAL_FILES {
            return Err(format!(
                "more than {MAX_EXTERNAL_FILES} external data files"
            ));
        }
        let full = folder.join(rel);
        // A symlink inside the folder may not lead out of it either.
        let (Ok(real), Ok(base)) = (full.canonicalize(), folder.canonicalize()) else {
            return Err(format!(
                "external data file `{}` cannot be opened",
                escape(location)
            ));
        };
        if !real.starts_with(&base) {
            return Err(format!(
                "external data location `{}` leads out of the model's folder",
                escape(location)
            ));
        }
        let (_file, map) = effnet_io::input::map_regular(&full)
            .map_err(|e| format!("external data file `{}`: {e}", escape(location)))?;
        let map: Arc<dyn Storage> = Arc::new(map);
        self.maps.insert(location.to_owned(), map.clone());
        self.files.push(full);
        Ok(map)
    }
}

/// The IR dtype of an ONNX `TensorProto.DataType` effnet reads.
fn dtype(data_type: i32) -> Result<DType, String> {
    Ok(match data_type {
        1 => DType::F32,
        10 => DType::F16,
        16 => DType::BF16,
        11 => DType::F64,
        7 => DType::I64,
        other => {
            return Err(format!(
                "data type {other} (effnet reads float, float16, bfloat16, double and int64 tensors)"
            ));
        }
    })
}

/// A tensor message as an IR tensor: a view of `raw_data` or of an external file, or the
/// typed fields copied (charged).
pub(crate) fn materialize(
    t: &wire::TensorMsg,
    storage: &Arc<dyn Storage>,
    budget: &Budget,
    external: &mut External,
) -> Result<Tensor, String> {
    if t.segment {
        return Err("a segmented tensor".into());
    }
    if t.string_data {
        return Err("a string tensor".into());
    }
    let dtype = dtype(t.data_type)?;
    if t.dims.len() > MAX_RANK {
        return Err(format!("rank {} (at most {MAX_RANK})", t.dims.len()));
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("a dimension of {d}")))
        .collect::<Result<_, _>>()?;
    let meta = Tensor::shape_only(dtype, shape.clone()).map_err(|e| e.to_string())?;
    let nbytes = meta.nbytes();
    let data = if t.data_location == 1 {
        let get = |key: &str| {
            t.external
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let location = get("location").ok_or("external data without a location")?;
        let number = |key: &str| -> Result<Option<usize>, String> {
            get(key)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("external data {key} `{}`", escape(v)))
                })
                .transpose()
        };
        let offset = number("offset")?.unwrap_or(0);
        let file = external.file(location)?;
        let file_len = (*file).as_ref().len();
        let length = match number("length")? {
            Some(l) => l,
            None => file_len.checked_sub(offset).ok_or_else(|| {
                format!(
                    "external data offset {offset} lies past the end of `{}` ({file_len} bytes)",
                    escape(location)
                )
            })?,
        };
        if length != nbytes {
            return Err(format!(
                "external data of {length} bytes for a {dtype} tensor of shape {shape:?} ({nbytes} bytes)"
            ));
        }
        if offset.checked_add(length).is_none_or(|end| end > file_len) {
            return Err(format!(
                "external data {offset}..{} lies outside `{}` ({file_len} bytes)",
                offset.saturating_add(length),
                escape(location)
            ));
        }
        Bytes::new(file, offset, length).map_err(|e| e.to_string())?
    } else if t.data_location != 0 {
        return Err(format!("data_location {}", t.data_location));
    } else if let Some((start, len)) = t.raw {
        if len != nbytes {
            return Err(format!(
                "raw_data of {len} bytes for a {dtype} tensor of shape {shape:?} ({nbytes} bytes)"
            ));
        }
        Bytes::new(storage.clone(), start, len).map_err(|e| e.to_string())?
    } else {
        budget
            .memory(nbytes as u64, || "a tensor's typed data".into())
            .map_err(|e| e.to_string())?;
        let numel = meta.numel();
        let count = |n: usize, field: &str| {
            if n == numel {
                Ok(())
            } else {
                Err(format!(
                    "{field} holds {n} values for a tensor of shape {shape:?} ({numel} values)"
                ))
            }
        };
        let bytes: Vec<u8> = match dtype {
            DType::F32 => {
                count(t.float_data.len(), "float_data")?;
                t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            DType::F16 | DType::BF16 => {
                count(t.int32_data.len(), "int32_data")?;
                // Each value holds the 16 bits of one half float: anything wider is not one.
                let halves: Vec<u16> = t
                    .int32_data
                    .iter()
                    .map(|&v| u16::try_from(v))
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        "int32_data holds a value that is not a 16-bit float's bits".to_owned()
                    })?;
                halves.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            DType::F64 => {
                count(t.double_data.len(), "double_data")?;
                t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            DType::I64 => {
                count(t.int64_data.len(), "int64_data")?;
                t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
        };
        Bytes::from_vec(bytes)
    };
    Tensor::with_data(dtype, shape, data).map_err(|e| e.to_string())
}

/// A reader error that a caller turns into a [`ReadError`] once it knows the path.
#[derive(Debug)]
pub(crate) enum Failure {
    Invalid(String),
    Node {
        position: usize,
        node: String,
        op: String,
        message: String,
    },
}

impl Failure {
    fn into_error(self, path: &Path) -> ReadError {
        match self {
            Failure::Invalid(message) => ReadError::Invalid {
                path: path.to_owned(),
                message,
            },
            Failure::Node {
                position,
                node,
                op,
                message,
            } => ReadError::Node {
                path: path.to_owned(),
                position,
                node: escape(&node).into_owned(),
                op: escape(&op).into_owned(),
                message,
            },
        }
    }
}

impl From<BudgetError> for Failure {
    fn from(e: BudgetError) -> Self {
        Failure::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_in_int32_data_must_be_16_bits() {
        let storage: Arc<dyn Storage> = Arc::new(Vec::<u8>::new());
        let budget = Budget::for_input(0);
        let mut external = External {
            folder: None,
            maps: HashMap::new(),
            files: Vec::new(),
        };
        let mut t = wire::TensorMsg {
            dims: vec![2],
            data_type: 10,
            int32_data: vec![0x3c00, 0xbc00],
            ..Default::default()
        };
        let ok = materialize(&t, &storage, &budget, &mut external).unwrap();
        assert_eq!(ok.to_f32_vec().unwrap(), [1.0, -1.0]);
        t.int32_data[1] = 0x1_3c00;
        let err = materialize(&t, &storage, &budget, &mut external).unwrap_err();
        assert!(err.contains("not a 16-bit float"), "{err}");
    }
}
