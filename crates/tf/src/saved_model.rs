//! TensorFlow SavedModel directories: `saved_model.pb` (a `SavedModel` whose `MetaGraphDef`
//! holds the `SavedObjectGraph`), `variables/variables.{index,data-*}` (an object-based tensor
//! bundle) and, from tf-keras `model.save(dir)`, `keras_metadata.pb` (each layer's Keras
//! metadata, the root's holding the model config).
//!
//! Variables are bound through the object graphs, never by order: the `SavedObjectGraph` names
//! each variable (`SavedVariable.name`, `stem_conv/kernel`), and walking it side by side with
//! the checkpoint's `TrackableObjectGraph` (children with the same local name) finds the bundle
//! key holding its value. When several variables share a name (Keras 3 `model.export` tracks
//! the weights twice), the one the serving signature captures (`bound_inputs` of its concrete
//! function) is taken.

mod keras_metadata;
mod object_graph;
mod proto;
mod serving_function;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use effnet_ir::{ChecksumPolicy, PendingChecksums, Tensor};
use prost::Message;

use self::object_graph::{signature_captures, variable_keys};
pub use self::proto::{
    ArgDef, AttrList, AttrValue, FunctionDef, FunctionDefLibrary, GraphDef, KerasObject,
    MetaGraphDef, MetaGraphObjects, NameAttrList, NodeDef, OpDef, SavedBareConcreteFunction,
    SavedConcreteFunction, SavedFunction, SavedMetadata, SavedModelObjects, SavedModelProto,
    SavedObject, SavedObjectGraph, SavedVariable, SignatureDef, TensorInfo, TensorProto,
};
use self::serving_function::function_facts;
pub use self::serving_function::{FunctionFacts, MAX_STRIDE, serving_facts};
use crate::bundle::charge_proto;
use crate::{TfError, read_with_budget};

/// The largest `saved_model.pb` or `keras_metadata.pb` effnet reads.
pub const MAX_PROTO_BYTES: u64 = 2 << 30;

/// A SavedModel read: the variables its model uses, named.
#[derive(Debug)]
pub struct SavedModel {
    /// The directory.
    pub dir: PathBuf,
    /// The root's Keras metadata (JSON with `class_name` and `config`), from `keras_metadata.pb`.
    pub keras_metadata: Option<String>,
    /// The variables by name.
    pub tensors: Vec<(String, Tensor)>,
    /// What was left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// How many variables the serving signature captures.
    pub signature_variables: usize,
    /// What the serving function computes (SavedModels without Keras metadata).
    pub facts: Option<FunctionFacts>,
    /// The variables' crc32c, when their comparison was deferred.
    pub checksums: Option<Arc<dyn PendingChecksums>>,
}

/// Whether `dir` is a SavedModel directory.
pub fn is_saved_model(dir: &Path) -> bool {
    // Any file of that name, so that one that is not a regular file is refused, not skipped.
    dir.join("saved_model.pb").exists()
}

/// A protobuf file of the SavedModel, mapped (regular files only, checked on the descriptor)
/// and at most [`MAX_PROTO_BYTES`].
fn read_capped(path: &Path) -> Result<memmap2::Mmap, TfError> {
    let io = |reason| TfError::Io {
        path: path.to_owned(),
        reason,
    };
    let (_, map) = effnet_io::input::map_regular(path).map_err(io)?;
    let len = map.len() as u64;
    if len > MAX_PROTO_BYTES {
        return Err(TfError::Format {
            path: path.to_owned(),
            message: format!("{len} bytes, beyond the {MAX_PROTO_BYTES}-byte limit"),
        });
    }
    Ok(map)
}

/// Reads the SavedModel in `dir`, every variable's crc32c compared.
pub fn read_saved_model(dir: &Path) -> Result<SavedModel, TfError> {
    read_saved_model_with(dir, ChecksumPolicy::AtOpen)
}

/// [`read_saved_model`], comparing the variables' crc32c as `policy` says; deferred ones are
/// returned in [`SavedModel::checksums`].
pub fn read_saved_model_with(dir: &Path, policy: ChecksumPolicy) -> Result<SavedModel, TfError> {
    let pb = dir.join("saved_model.pb");
    let format = |path: &Path, message: String| TfError::Format {
        path: path.to_owned(),
        message,
    };
    let pb_bytes = read_capped(&pb)?;
    let metadata_path = dir.join("keras_metadata.pb");
    let metadata_bytes = if metadata_path.exists() {
        Some(read_capped(&metadata_path)?)
    } else {
        None
    };
    let variables_prefix = dir.join("variables").join("variables");
    let mut index = variables_prefix.as_os_str().to_owned();
    index.push(".index");
    if !Path::new(&index).exists() {
        return Err(TfError::NotFound {
            path: dir.to_owned(),
            message: "a SavedModel without `variables/variables.index` (no weights)".into(),
        });
    }
    let protos_len = (pb_bytes.len() as u64)
        .saturating_add(metadata_bytes.as_ref().map_or(0, |m| m.len() as u64));
    let (bundle, budget) = read_with_budget(&variables_prefix, protos_len, policy)?;
    charge_proto(
        &budget,
        &pb,
        &pb_bytes,
        &crate::wire::SAVED_MODEL_OBJECTS,
        || "decoding saved_model.pb".into(),
    )?;
    let objects = SavedModelObjects::decode(&pb_bytes[..])
        .map_err(|e| format(&pb, format!("not a SavedModel protobuf: {e}")))?;
    let keras_metadata = match metadata_bytes {
        Some(bytes) => keras_metadata::root_metadata(&budget, &metadata_path, &bytes)?,
        None => None,
    };
    let object_graph = objects
        .meta_graphs
        .into_iter()
        .find_map(|m| m.object_graph_def);
    let (Some(saved), Some(checkpoint)) = (object_graph, bundle.object_graph.as_ref()) else {
        // A TF1 SavedModel: the variables carry their own names.
        return Ok(SavedModel {
            dir: dir.to_owned(),
            keras_metadata,
            tensors: bundle.tensors,
            skipped: bundle.skipped,
            signature_variables: 0,
            facts: None,
            checksums: bundle.checksums,
        });
    };

    // The function library is decoded only when no Keras metadata describes the model.
    let facts = if keras_metadata.is_none() {
        // The objects decoded above are still held.
        charge_proto(&budget, &pb, &pb_bytes, &crate::wire::SAVED_MODEL, || {
            "decoding saved_model.pb's functions".into()
        })?;
        let proto = SavedModelProto::decode(&pb_bytes[..])
            .map_err(|e| format(&pb, format!("not a SavedModel protobuf: {e}")))?;
        let meta = proto
            .meta_graphs
            .iter()
            .find(|m| m.object_graph_def.is_some())
            .expect("found above");
        Some(function_facts(meta, &saved, &budget).map_err(|m| format(&pb, m))?)
    } else {
        None
    };
    drop(pb_bytes);
    let keys = variable_keys(&saved, checkpoint);
    let by_key: HashMap<&str, &Tensor> = bundle
        .tensors
        .iter()
        .map(|(k, t)| (k.as_str(), t))
        .collect();
    let captured = signature_captures(&saved);
    // Variables by name, in node order.
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (id, node) in saved.nodes.iter().enumerate() {
        if let Some(v) = &node.variable {
            let entry = by_name.entry(v.name.as_str()).or_default();
            if entry.is_empty() {
                order.push(v.name.as_str());
            }
            entry.push(id);
        }
    }
    let mut tensors = Vec::with_capacity(order.len());
    let mut skipped = Vec::new();
    for name in order {
        let ids = &by_name[name];
        let chosen = match ids.as_slice() {
            [one] => *one,
            many => {
                let bound: Vec<usize> = many
                    .iter()
                    .copied()
                    .filter(|id| captured.contains(id))
                    .collect();
                match bound.as_slice() {
                    [one] => *one,
                    _ => {
                        // Unbound (or bound twice): the copies must agree.
                        let values: Vec<&Tensor> = many
                            .iter()
                            .filter_map(|id| keys.get(id).and_then(|k| by_key.get(k.as_str())))
                            .copied()
                            .collect();
                        if let Some(sums) = &bundle.checksums {
                            for t in &values {
                                sums.verify(Some(t)).map_err(|e| match e.downcast() {
                                    Ok(e) => *e,
                                    Err(e) => format(&pb, e.to_string()),
                                })?;
                            }
                        }
                        let same = values.windows(2).all(|w| {
                            w[0].shape() == w[1].shape()
                                && w[0].data().map(|b| b.as_slice())
                                    == w[1].data().map(|b| b.as_slice())
                        });
                        if !same {
                            return Err(format(
                                &pb,
                                format!(
                                    "{} variables are named `{name}` with different values, and the serving signature does not tell which one the model reads",
                                    many.len()
                                ),
                            ));
                        }
                        many[0]
                    }
                }
            }
        };
        for id in ids.iter().filter(|&&id| id != chosen) {
            if let Some(k) = keys.get(id) {
                skipped.push((
                    k.clone(),
                    "a second copy of a variable, not the one the serving signature reads".into(),
                ));
            }
        }
        if name.ends_with("seed_generator_state") {
            if let Some(k) = keys.get(&chosen) {
                skipped.push((k.clone(), "a random-number generator's state".into()));
            }
            continue;
        }
        let Some(key) = keys.get(&chosen) else {
            return Err(format(
                &pb,
                format!(
                    "variable `{name}` has no value in `variables/` (the object graphs disagree)"
                ),
            ));
        };
        let Some(tensor) = by_key.get(key.as_str()) else {
            // Not a numeric tensor (skipped by the bundle reader).
            continue;
        };
        tensors.push((name.to_owned(), (*tensor).clone()));
    }
    let named: HashSet<&String> = keys.values().collect();
    for (key, _) in &bundle.tensors {
        if !named.contains(key) {
            skipped.push((key.clone(), "not a variable of the saved objects".into()));
        }
    }
    skipped.extend(bundle.skipped);
    Ok(SavedModel {
        dir: dir.to_owned(),
        keras_metadata,
        tensors,
        skipped,
        signature_variables: captured
            .iter()
            .filter(|&&id| saved.nodes.get(id).is_some_and(|n| n.variable.is_some()))
            .count(),
        facts,
        checksums: bundle.checksums.clone(),
    })
}
