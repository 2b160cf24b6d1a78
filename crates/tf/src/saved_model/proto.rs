//! The messages of `saved_model.pb` and `keras_metadata.pb` effnet reads, declared by hand for
//! prost (only the fields read; tags as in TensorFlow's and tf-keras' `.proto` files).

use std::collections::HashMap;

use crate::proto::ObjectReference;

/// `SavedModel` (`tensorflow/core/protobuf/saved_model.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedModelProto {
    /// The meta graphs, one per tag set.
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphDef>,
}

/// `SavedModel` with its meta graphs' `graph_def` left out: decoding skips the function
/// library (most of the file, and most of the decoding time) when only the objects are read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedModelObjects {
    /// The meta graphs, one per tag set, without their graphs.
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphObjects>,
}

/// `MetaGraphDef` without its `graph_def`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaGraphObjects {
    /// The object graph of a TF2 SavedModel.
    #[prost(message, optional, tag = "7")]
    pub object_graph_def: Option<SavedObjectGraph>,
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
