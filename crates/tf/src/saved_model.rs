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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use effnet_io::Budget;
use effnet_ir::Tensor;
use prost::Message;

use crate::proto::{ObjectReference, TrackableObjectGraph};
use crate::{TfError, read_with_budget};

/// The largest `saved_model.pb` or `keras_metadata.pb` effnet reads.
pub const MAX_PROTO_BYTES: u64 = 2 << 30;

/// `SavedModel` (`tensorflow/core/protobuf/saved_model.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedModelProto {
    /// The meta graphs, one per tag set.
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphDef>,
}

/// `MetaGraphDef`: the graph's function library, the signatures and the object graph.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaGraphDef {
    /// The graph (its function library holds the model's functions).
    #[prost(message, optional, tag = "2")]
    pub graph_def: Option<GraphDef>,
    /// Signatures by key (`serving_default`).
    #[prost(map = "string, message", tag = "5")]
    pub signature_def: HashMap<String, SignatureDef>,
    /// The object graph of a TF2 SavedModel.
    #[prost(message, optional, tag = "7")]
    pub object_graph_def: Option<SavedObjectGraph>,
}

/// `GraphDef`: only the function library is read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphDef {
    /// The functions.
    #[prost(message, optional, tag = "2")]
    pub library: Option<FunctionDefLibrary>,
}

/// `FunctionDefLibrary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionDefLibrary {
    /// The functions.
    #[prost(message, repeated, tag = "1")]
    pub function: Vec<FunctionDef>,
}

/// `FunctionDef`: a signature and its nodes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionDef {
    /// Name and arguments.
    #[prost(message, optional, tag = "1")]
    pub signature: Option<OpDef>,
    /// The nodes, in the order they were traced.
    #[prost(message, repeated, tag = "3")]
    pub node_def: Vec<NodeDef>,
}

/// `OpDef`: a function's name and arguments.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OpDef {
    /// The function name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its inputs.
    #[prost(message, repeated, tag = "2")]
    pub input_arg: Vec<ArgDef>,
}

/// An argument.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArgDef {
    /// Its name inside the function.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `NodeDef`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeDef {
    /// Its name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The op type.
    #[prost(string, tag = "2")]
    pub op: String,
    /// Inputs: `node:output:index`, an argument name, or `^control`.
    #[prost(string, repeated, tag = "3")]
    pub input: Vec<String>,
    /// Attributes.
    #[prost(map = "string, message", tag = "5")]
    pub attr: HashMap<String, AttrValue>,
}

/// `AttrValue` (its oneof read as optional fields).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttrValue {
    /// A list.
    #[prost(message, optional, tag = "1")]
    pub list: Option<AttrList>,
    /// Bytes (`padding`: `SAME`).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub s: Option<Vec<u8>>,
    /// A tensor (of a `Const`).
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
    /// A function (`f` of a call).
    #[prost(message, optional, tag = "10")]
    pub func: Option<NameAttrList>,
}

/// `AttrValue.ListValue`: the integers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttrList {
    /// Integers (`strides`).
    #[prost(int64, repeated, tag = "3")]
    pub i: Vec<i64>,
}

/// `NameAttrList`: a function reference.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NameAttrList {
    /// The function name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `TensorProto`: the integer forms `Pad` amounts take.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// A `tensorflow.DataType`.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// Packed little-endian values.
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    /// int32 values.
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
    /// int64 values.
    #[prost(int64, repeated, tag = "10")]
    pub int64_val: Vec<i64>,
}

/// `SignatureDef`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignatureDef {
    /// Inputs by key.
    #[prost(map = "string, message", tag = "1")]
    pub inputs: HashMap<String, TensorInfo>,
}

/// `TensorInfo`: an input's shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorInfo {
    /// Its shape (−1 for unknown dimensions).
    #[prost(message, optional, tag = "3")]
    pub tensor_shape: Option<crate::proto::TensorShapeProto>,
}

/// `SavedObjectGraph` (`saved_object_graph.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedObjectGraph {
    /// Node 0 is the root.
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<SavedObject>,
    /// Concrete functions by name.
    #[prost(map = "string, message", tag = "2")]
    pub concrete_functions: HashMap<String, SavedConcreteFunction>,
}

/// One object of the SavedModel.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedObject {
    /// Tracked children.
    #[prost(message, repeated, tag = "1")]
    pub children: Vec<ObjectReference>,
    /// Set when the object is a variable.
    #[prost(message, optional, tag = "7")]
    pub variable: Option<SavedVariable>,
    /// Set when the object is a concrete function bound to captures (signatures are).
    #[prost(message, optional, tag = "8")]
    pub bare_concrete_function: Option<SavedBareConcreteFunction>,
    /// Set when the object is a `tf.function`.
    #[prost(message, optional, tag = "6")]
    pub function: Option<SavedFunction>,
}

/// A variable's saved facts.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedVariable {
    /// Its name when saved (`block2a_dwconv/depthwise_kernel`).
    #[prost(string, tag = "6")]
    pub name: String,
}

/// A concrete function's captures.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedConcreteFunction {
    /// Node ids of the objects it captures (variables, captured tensors).
    #[prost(int32, repeated, tag = "2")]
    pub bound_inputs: Vec<i32>,
}

/// A signature's function.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedBareConcreteFunction {
    /// The concrete function's name.
    #[prost(string, tag = "1")]
    pub concrete_function_name: String,
}

/// A `tf.function` with its concrete functions.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedFunction {
    /// Their names.
    #[prost(string, repeated, tag = "1")]
    pub concrete_functions: Vec<String>,
}

/// `keras_metadata.pb` (tf-keras `protobuf/saved_metadata.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedMetadata {
    /// One per Keras object.
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<KerasObject>,
}

/// A Keras object's metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KerasObject {
    /// Its node in the object graph.
    #[prost(int32, tag = "2")]
    pub node_id: i32,
    /// `root`, `root.layer_with_weights-3`.
    #[prost(string, tag = "3")]
    pub node_path: String,
    /// `_tf_keras_network`, `_tf_keras_layer`, …
    #[prost(string, tag = "4")]
    pub identifier: String,
    /// JSON: the layer's name, class and config.
    #[prost(string, tag = "5")]
    pub metadata: String,
}

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
}

/// What a serving function computes, read from its function graph with every op bound to the
/// variable it reads.
#[derive(Clone, Debug, Default)]
pub struct FunctionFacts {
    /// The signature's concrete function.
    pub function: String,
    /// The stride of each convolution, by the name of the kernel variable it reads.
    pub conv_strides: BTreeMap<String, usize>,
    /// How often each op type occurs in the functions the signature runs (each function
    /// counted once per distinct binding of variables to its arguments).
    pub ops: BTreeMap<String, usize>,
    /// The input height, when the signature fixes it (NHWC).
    pub resolution: Option<usize>,
}

/// The ops an EfficientNet's serving function is made of (Keras 3 and tf-keras traces,
/// decomposed or fused BatchNorm, the preprocessing arithmetic).
const KNOWN_OPS: [&str; 36] = [
    "Add",
    "AddV2",
    "BiasAdd",
    "Cast",
    "Const",
    "Conv2D",
    "DepthwiseConv2dNative",
    "ExpandDims",
    "FusedBatchNormV3",
    "Identity",
    "IdentityN",
    "MatMul",
    "Max",
    "Maximum",
    "Mean",
    "Mul",
    "NoOp",
    "Pack",
    "Pad",
    "PartitionedCall",
    "Placeholder",
    "ReadVariableOp",
    "RealDiv",
    "Relu",
    "Relu6",
    "Reshape",
    "Rsqrt",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "StatefulPartitionedCall",
    "StridedSlice",
    "Sub",
    "Transpose",
];

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

/// Reads the SavedModel in `dir`.
pub fn read_saved_model(dir: &Path) -> Result<SavedModel, TfError> {
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
    let (bundle, budget) = read_with_budget(&variables_prefix, protos_len)?;
    crate::bundle::charge_proto(&budget, &pb, &pb_bytes, &crate::wire::SAVED_MODEL, || {
        "decoding saved_model.pb".into()
    })?;
    let proto = SavedModelProto::decode(&pb_bytes[..])
        .map_err(|e| format(&pb, format!("not a SavedModel protobuf: {e}")))?;
    drop(pb_bytes);
    let keras_metadata = match metadata_bytes {
        Some(bytes) => {
            let path = metadata_path;
            crate::bundle::charge_proto(
                &budget,
                &path,
                &bytes,
                &crate::wire::SAVED_METADATA,
                || "decoding keras_metadata.pb".into(),
            )?;
            let metadata = SavedMetadata::decode(&bytes[..])
                .map_err(|e| format(&path, format!("not Keras metadata: {e}")))?;
            metadata
                .nodes
                .into_iter()
                .find(|n| n.node_path == "root")
                .map(|n| n.metadata)
        }
        None => None,
    };
    let object_graph = proto
        .meta_graphs
        .iter()
        .find_map(|m| m.object_graph_def.clone());
    let (Some(saved), Some(checkpoint)) = (object_graph, bundle.object_graph.as_ref()) else {
        // A TF1 SavedModel: the variables carry their own names.
        return Ok(SavedModel {
            dir: dir.to_owned(),
            keras_metadata,
            tensors: bundle.tensors,
            skipped: bundle.skipped,
            signature_variables: 0,
            facts: None,
        });
    };

    let facts = if keras_metadata.is_none() {
        let meta = proto
            .meta_graphs
            .iter()
            .find(|m| m.object_graph_def.is_some())
            .expect("found above");
        Some(function_facts(meta, &saved, &budget).map_err(|m| format(&pb, m))?)
    } else {
        None
    };
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
    })
}

/// The serving signature's concrete function and the node ids it captures, in argument order.
fn serving_function(saved: &SavedObjectGraph) -> Option<(String, Vec<i32>)> {
    let node = |id: i32| usize::try_from(id).ok().and_then(|i| saved.nodes.get(i));
    let signatures = saved
        .nodes
        .first()?
        .children
        .iter()
        .find(|c| c.local_name == "signatures")
        .and_then(|c| node(c.node_id))?;
    let chosen = signatures
        .children
        .iter()
        .find(|c| c.local_name == "serving_default")
        .or_else(|| signatures.children.first())?;
    let name = node(chosen.node_id)?
        .bare_concrete_function
        .as_ref()?
        .concrete_function_name
        .clone();
    let bound = saved.concrete_functions.get(&name)?.bound_inputs.clone();
    Some((name, bound))
}

/// Reads the serving function: every op must be one an EfficientNet is made of; convolution
/// strides are bound to the kernel variables they read, through `ReadVariableOp`s, calls and
/// the signature's captures.
fn function_facts(
    meta: &MetaGraphDef,
    saved: &SavedObjectGraph,
    budget: &Budget,
) -> Result<FunctionFacts, String> {
    let Some((name, bound)) = serving_function(saved) else {
        return Err("no serving signature to read the model from".into());
    };
    let functions: &[FunctionDef] = meta
        .graph_def
        .as_ref()
        .and_then(|g| g.library.as_ref())
        .map(|l| l.function.as_slice())
        .unwrap_or_default();
    budget
        .work(functions.len() as u64, || {
            "indexing the function library".into()
        })
        .map_err(|e| e.to_string())?;
    let library: HashMap<&str, usize> = functions
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((f.signature.as_ref()?.name.as_str(), i)))
        .collect();
    let &serving = library
        .get(name.as_str())
        .ok_or_else(|| format!("the serving function `{name}` is not in the function library"))?;
    let args = functions[serving]
        .signature
        .as_ref()
        .map(|s| s.input_arg.as_slice())
        .unwrap_or_default();
    let first_capture = args.len().checked_sub(bound.len()).ok_or_else(|| {
        format!("the serving function `{name}` has fewer arguments than captures")
    })?;
    // Variables by id: the serving function's captured arguments are bound to them.
    let mut variables: Vec<&str> = Vec::new();
    let mut binding = vec![UNBOUND; args.len()];
    for (k, &id) in bound.iter().enumerate() {
        let var = usize::try_from(id)
            .ok()
            .and_then(|i| saved.nodes.get(i))
            .and_then(|n| n.variable.as_ref());
        if let Some(var) = var {
            binding[first_capture + k] = variables.len() as u32;
            variables.push(var.name.as_str());
        }
    }
    let mut facts = FunctionFacts {
        function: name.clone(),
        ..FunctionFacts::default()
    };
    let mut walker = Walker {
        functions,
        library: &library,
        prepared: Vec::new(),
        variables: &variables,
        facts: &mut facts,
        nodes: MAX_WALKED_NODES,
        budget,
        walked: HashSet::new(),
    };
    walker.prepared.resize_with(functions.len(), || None);
    walker.walk(serving, &binding, 0)?;
    facts.resolution = meta
        .signature_def
        .get("serving_default")
        .or_else(|| meta.signature_def.values().next())
        .and_then(|s| s.inputs.values().next())
        .and_then(|i| i.tensor_shape.as_ref())
        .and_then(|s| match s.dim.as_slice() {
            [_, h, w, c] if h.size > 0 && h.size == w.size && c.size == 3 => {
                usize::try_from(h.size).ok()
            }
            _ => None,
        });
    Ok(facts)
}

/// The node an input names (`conv/ReadVariableOp:value:0` → `conv/ReadVariableOp`).
fn input_node(input: &str) -> &str {
    input.split(':').next().unwrap_or(input)
}

/// The most nodes a serving function's calls may make effnet visit (a B7 has a few thousand;
/// functions that call themselves several times would otherwise take exponential time).
const MAX_WALKED_NODES: usize = 500_000;

/// The largest convolution stride a serving function may state (EfficientNets use 1 and 2).
pub const MAX_STRIDE: i64 = 16;

/// A variable id for an argument or node output that is no variable.
const UNBOUND: u32 = u32::MAX;

/// Where a node input comes from, resolved once per function.
#[derive(Clone, Copy)]
enum Source {
    /// The function's argument at this position.
    Param(usize),
    /// The output of the node at this position.
    Node(usize),
    /// Anything else (a constant, a node of another name).
    Other,
}

/// A function's nodes with their data inputs resolved to positions, and its callees.
struct Prepared {
    /// Per node: its data inputs (control inputs `^x` left out).
    inputs: Vec<Vec<Source>>,
    /// Per node: the function it calls, by position in the library.
    callee: Vec<Option<usize>>,
}

/// Walks a serving function and the functions it calls. Calls nest at most 32 deep (the
/// recursion is bounded by that, not by the input). Each function's inputs are resolved to
/// positions once (charged as work: the bytes of every input name); a call binds its callee's
/// arguments by position to variable ids, and a function is walked once per distinct binding
/// (strides and the op types present are the same again), so a call graph that fans out costs
/// its distinct calls, not its paths. Every node visited, argument bound and distinct call
/// kept is charged to the input's budget.
struct Walker<'a, 'f> {
    functions: &'f [FunctionDef],
    library: &'a HashMap<&'f str, usize>,
    prepared: Vec<Option<std::rc::Rc<Prepared>>>,
    variables: &'a [&'f str],
    facts: &'a mut FunctionFacts,
    nodes: usize,
    budget: &'a Budget,
    /// The calls already walked: (function, variable id bound to each argument).
    walked: HashSet<(usize, Vec<u32>)>,
}

impl Walker<'_, '_> {
    fn name(&self, function: usize) -> &str {
        self.functions[function]
            .signature
            .as_ref()
            .map(|s| s.name.as_str())
            .unwrap_or("?")
    }

    /// Resolves `function`'s inputs once.
    fn prepare(&mut self, function: usize) -> Result<std::rc::Rc<Prepared>, String> {
        if let Some(p) = &self.prepared[function] {
            return Ok(p.clone());
        }
        let def = &self.functions[function];
        let fname = self.name(function).to_owned();
        let params: HashMap<&str, usize> = def
            .signature
            .as_ref()
            .map(|s| {
                s.input_arg
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (a.name.as_str(), i))
                    .collect()
            })
            .unwrap_or_default();
        let mut node_at: HashMap<&str, usize> = HashMap::new();
        for (i, n) in def.node_def.iter().enumerate() {
            node_at.entry(n.name.as_str()).or_insert(i);
        }
        let mut inputs = Vec::with_capacity(def.node_def.len());
        let mut callee = Vec::with_capacity(def.node_def.len());
        for node in &def.node_def {
            let bytes: u64 = node.input.iter().map(|i| i.len() as u64 + 1).sum();
            self.budget
                .work(bytes + 1, || format!("resolving the inputs of `{fname}`"))
                .map_err(|e| e.to_string())?;
            self.budget
                .memory(16 * node.input.len() as u64 + 64, || {
                    format!("resolving the inputs of `{fname}`")
                })
                .map_err(|e| e.to_string())?;
            inputs.push(
                node.input
                    .iter()
                    .filter(|i| !i.starts_with('^'))
                    .map(|i| {
                        let n = input_node(i);
                        match (node_at.get(n), params.get(n)) {
                            (Some(&k), _) => Source::Node(k),
                            (None, Some(&p)) => Source::Param(p),
                            (None, None) => Source::Other,
                        }
                    })
                    .collect(),
            );
            let called = match node.op.as_str() {
                "StatefulPartitionedCall" | "PartitionedCall" => {
                    match node.attr.get("f").and_then(|a| a.func.as_ref()) {
                        Some(f) => Some(*self.library.get(f.name.as_str()).ok_or_else(|| {
                            format!(
                                "function `{fname}` calls `{}`, which is not in the library",
                                f.name
                            )
                        })?),
                        None => None,
                    }
                }
                _ => None,
            };
            callee.push(called);
        }
        let prepared = std::rc::Rc::new(Prepared { inputs, callee });
        self.prepared[function] = Some(prepared.clone());
        Ok(prepared)
    }

    fn walk(&mut self, function: usize, binding: &[u32], depth: usize) -> Result<(), String> {
        let fname = self.name(function).to_owned();
        if depth > 32 {
            return Err(format!("calls nested deeper than 32 levels at `{fname}`"));
        }
        let prepared = self.prepare(function)?;
        let def = &self.functions[function];
        // The variable each node's output reads, by node position.
        let mut reads = vec![UNBOUND; def.node_def.len()];
        let resolve = |reads: &[u32], source: Source| match source {
            Source::Param(p) => binding.get(p).copied().unwrap_or(UNBOUND),
            Source::Node(n) => reads[n],
            Source::Other => UNBOUND,
        };
        for (i, node) in def.node_def.iter().enumerate() {
            self.nodes = self.nodes.checked_sub(1).ok_or_else(|| {
                format!(
                    "the serving function calls more than {MAX_WALKED_NODES} nodes (at `{fname}`)"
                )
            })?;
            self.budget
                .work(1 + node.input.len() as u64, || {
                    format!("walking the serving function's calls (at `{fname}`)")
                })
                .map_err(|e| e.to_string())?;
            if !KNOWN_OPS.contains(&node.op.as_str()) {
                return Err(format!(
                    "op `{}` (node `{}`) in function `{fname}` is not part of an EfficientNet effnet understands",
                    node.op, node.name
                ));
            }
            *self.facts.ops.entry(node.op.clone()).or_insert(0) += 1;
            let inputs = &prepared.inputs[i];
            match node.op.as_str() {
                "ReadVariableOp" | "Identity" => {
                    if let Some(&source) = inputs.first() {
                        reads[i] = resolve(&reads, source);
                    }
                }
                "StatefulPartitionedCall" | "PartitionedCall" => {
                    let Some(callee) = prepared.callee[i] else {
                        continue;
                    };
                    let params = self.functions[callee]
                        .signature
                        .as_ref()
                        .map_or(0, |s| s.input_arg.len());
                    // Binding the arguments is work too: a call with 1,000 captured
                    // arguments costs 1,000 steps, however often it is made.
                    self.budget
                        .work(params as u64, || {
                            format!("binding the arguments of `{}`", self.name(callee))
                        })
                        .map_err(|e| e.to_string())?;
                    let mut bound = vec![UNBOUND; params];
                    for (slot, &source) in bound.iter_mut().zip(inputs) {
                        *slot = resolve(&reads, source);
                    }
                    let key_bytes = 4 * params as u64 + 64;
                    self.budget
                        .memory(key_bytes, || "the calls of the serving function".into())
                        .map_err(|e| e.to_string())?;
                    if !self.walked.insert((callee, bound.clone())) {
                        self.budget.release(key_bytes);
                        continue;
                    }
                    self.walk(callee, &bound, depth + 1)?;
                }
                "Conv2D" | "DepthwiseConv2dNative" => {
                    let stride = match node
                        .attr
                        .get("strides")
                        .and_then(|a| a.list.as_ref())
                        .map(|l| l.i.as_slice())
                    {
                        None => 1,
                        Some([_, h, w, _]) if h == w && (1..=MAX_STRIDE).contains(h) => *h as usize,
                        Some(other) => {
                            return Err(format!(
                                "node `{}` in function `{fname}` has strides {other:?}; effnet reads square strides of 1 to {MAX_STRIDE}",
                                node.name
                            ));
                        }
                    };
                    let kernel = inputs
                        .get(1)
                        .map_or(UNBOUND, |&source| resolve(&reads, source));
                    if let Some(var) = self.variables.get(kernel as usize) {
                        self.facts.conv_strides.insert((*var).to_owned(), stride);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What the serving function of a `saved_model.pb` (its bytes) computes; `Ok(None)` for a
/// SavedModel without an object graph (TF1). Errors are messages about the protobuf.
pub fn serving_facts(saved_model_pb: &[u8]) -> Result<Option<FunctionFacts>, String> {
    let proto = SavedModelProto::decode(saved_model_pb)
        .map_err(|e| format!("not a SavedModel protobuf: {e}"))?;
    let Some(meta) = proto
        .meta_graphs
        .iter()
        .find(|m| m.object_graph_def.is_some())
    else {
        return Ok(None);
    };
    let saved = meta.object_graph_def.as_ref().expect("found with one");
    let budget = Budget::for_input(saved_model_pb.len() as u64);
    function_facts(meta, saved, &budget).map(Some)
}

/// The bundle key of every variable node of `saved`: both graphs walked from their roots
/// together, following children with the same local name.
fn variable_keys(
    saved: &SavedObjectGraph,
    checkpoint: &TrackableObjectGraph,
) -> HashMap<usize, String> {
    let mut keys = HashMap::new();
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([(0usize, 0usize)]);
    while let Some((s, c)) = queue.pop_front() {
        if !seen.insert(s) {
            continue;
        }
        let (Some(snode), Some(cnode)) = (saved.nodes.get(s), checkpoint.nodes.get(c)) else {
            continue;
        };
        if snode.variable.is_some() {
            if let Some(a) = cnode.attributes.iter().find(|a| a.name == "VARIABLE_VALUE") {
                keys.insert(s, a.checkpoint_key.clone());
            }
        }
        let children: HashMap<&str, i32> = cnode
            .children
            .iter()
            .map(|r| (r.local_name.as_str(), r.node_id))
            .collect();
        for child in &snode.children {
            if let (Some(&cid), Ok(sid)) = (
                children.get(child.local_name.as_str()),
                usize::try_from(child.node_id),
            ) {
                if let Ok(cid) = usize::try_from(cid) {
                    queue.push_back((sid, cid));
                }
            }
        }
    }
    keys
}

/// The node ids the serving signatures (the root's `signatures` child) capture.
fn signature_captures(saved: &SavedObjectGraph) -> HashSet<usize> {
    let node = |id: i32| usize::try_from(id).ok().and_then(|i| saved.nodes.get(i));
    let mut out = HashSet::new();
    let Some(root) = saved.nodes.first() else {
        return out;
    };
    let Some(signatures) = root
        .children
        .iter()
        .find(|c| c.local_name == "signatures")
        .and_then(|c| node(c.node_id))
    else {
        return out;
    };
    for signature in signatures.children.iter().filter_map(|c| node(c.node_id)) {
        let mut names: Vec<&str> = Vec::new();
        if let Some(f) = &signature.bare_concrete_function {
            names.push(&f.concrete_function_name);
        }
        if let Some(f) = &signature.function {
            names.extend(f.concrete_functions.iter().map(String::as_str));
        }
        for name in names {
            if let Some(f) = saved.concrete_functions.get(name) {
                out.extend(
                    f.bound_inputs
                        .iter()
                        .filter_map(|&i| usize::try_from(i).ok()),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SavedModel whose serving function `f0` captures `args` variables and calls `f1`
    /// twice, which calls `f2` twice, … down to `f30` (2^30 paths through 31 functions, each
    /// level within the depth limit), every call passing all its arguments on; `permute`
    /// reorders them so that every path binds them differently.
    fn fan_out(args: usize, permute: bool) -> Vec<u8> {
        let names: Vec<String> = (0..args).map(|a| format!("a{a}")).collect();
        // Permuted by a swap in one call and a rotation in the other, the bindings along the
        // paths are all different (the two generate every permutation).
        let call = |name: &str, callee: String, how: u8| NodeDef {
            name: name.into(),
            op: "StatefulPartitionedCall".into(),
            input: (0..args)
                .map(|a| match how {
                    1 => names[a ^ usize::from(a < 2)].clone(),
                    2 => names[(a + 1) % args].clone(),
                    _ => names[a].clone(),
                })
                .collect(),
            attr: HashMap::from([(
                "f".to_owned(),
                AttrValue {
                    func: Some(NameAttrList { name: callee }),
                    ..AttrValue::default()
                },
            )]),
        };
        let functions: Vec<FunctionDef> = (0..31)
            .map(|i| FunctionDef {
                signature: Some(OpDef {
                    name: format!("f{i}"),
                    input_arg: names.iter().map(|n| ArgDef { name: n.clone() }).collect(),
                }),
                node_def: if i < 30 {
                    vec![
                        call("a", format!("f{}", i + 1), u8::from(permute)),
                        call("b", format!("f{}", i + 1), 2 * u8::from(permute)),
                    ]
                } else {
                    Vec::new()
                },
            })
            .collect();
        let reference = |id: i32, name: &str| ObjectReference {
            node_id: id,
            local_name: name.into(),
        };
        let mut nodes = vec![
            SavedObject {
                children: vec![reference(1, "signatures")],
                ..SavedObject::default()
            },
            SavedObject {
                children: vec![reference(2, "serving_default")],
                ..SavedObject::default()
            },
            SavedObject {
                bare_concrete_function: Some(SavedBareConcreteFunction {
                    concrete_function_name: "f0".into(),
                }),
                ..SavedObject::default()
            },
        ];
        nodes.extend((0..args).map(|a| SavedObject {
            variable: Some(SavedVariable {
                name: format!("v{a}"),
            }),
            ..SavedObject::default()
        }));
        let saved = SavedObjectGraph {
            nodes,
            concrete_functions: HashMap::from([(
                "f0".to_owned(),
                SavedConcreteFunction {
                    bound_inputs: (3..3 + args as i32).collect(),
                },
            )]),
        };
        let meta = MetaGraphDef {
            graph_def: Some(GraphDef {
                library: Some(FunctionDefLibrary {
                    function: functions,
                }),
            }),
            signature_def: HashMap::new(),
            object_graph_def: Some(saved),
        };
        SavedModelProto {
            meta_graphs: vec![meta],
        }
        .encode_to_vec()
    }

    #[test]
    fn call_fan_out_costs_its_distinct_calls() {
        // 2^30 paths, 1,000 captured arguments per call: over 60 s before; each function is
        // now walked once per distinct binding.
        let start = std::time::Instant::now();
        let facts = serving_facts(&fan_out(1000, false)).unwrap().unwrap();
        assert_eq!(facts.ops["StatefulPartitionedCall"], 60);
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }

    #[test]
    fn call_fan_out_with_distinct_bindings_ends_within_the_budget() {
        // Every path binds the arguments differently: the budget (work for every argument
        // bound, memory for every distinct call) ends it.
        let start = std::time::Instant::now();
        let error = serving_facts(&fan_out(1000, true)).unwrap_err();
        assert!(
            error.contains("memory") || error.contains("work") || error.contains("more than"),
            "{error}"
        );
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }
}
