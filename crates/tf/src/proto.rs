//! The TensorFlow protobuf messages a tensor bundle uses, declared by hand with their public
//! field numbers (`tensorflow/core/protobuf/tensor_bundle.proto`,
//! `tensor_shape.proto`, `trackable_object_graph.proto`). Fields effnet does not read are left
//! out; prost skips them.

/// The entry under the empty key: how the bundle is laid out.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleHeaderProto {
    /// How many data shards there are.
    #[prost(int32, tag = "1")]
    pub num_shards: i32,
    /// 0 little-endian, 1 big-endian.
    #[prost(int32, tag = "2")]
    pub endianness: i32,
}

/// Where one tensor is and what it is.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleEntryProto {
    /// A `tensorflow.DataType` value.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// The shape.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
    /// The data shard holding the bytes.
    #[prost(int32, tag = "3")]
    pub shard_id: i32,
    /// Byte offset in the shard.
    #[prost(int64, tag = "4")]
    pub offset: i64,
    /// Byte length.
    #[prost(int64, tag = "5")]
    pub size: i64,
    /// Masked crc32c of the bytes.
    #[prost(fixed32, tag = "6")]
    pub crc32c: u32,
    /// Set for tensors stored in slices, each under its own key; the bytes of
    /// [`TensorSliceProto`]s.
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub slices: Vec<Vec<u8>>,
}

/// Where a slice lies in its tensor.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorSliceProto {
    /// One extent per dimension.
    #[prost(message, repeated, tag = "1")]
    pub extent: Vec<Extent>,
}

/// A slice's start and length in one dimension (no length: the whole dimension).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Extent {
    /// First index.
    #[prost(int64, tag = "1")]
    pub start: i64,
    /// How many.
    #[prost(int64, optional, tag = "2")]
    pub length: Option<i64>,
}

/// A tensor's shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// The dimensions, outermost first.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
    /// The rank is not known.
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

/// One dimension.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    /// Its size (−1 for unknown).
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// The object graph of a TF2 object-based checkpoint (`_CHECKPOINTABLE_OBJECT_GRAPH`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackableObjectGraph {
    /// Node 0 is the root object.
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<TrackableObject>,
}

/// One object: its children by local name and the tensors it saved.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackableObject {
    /// The objects it tracks.
    #[prost(message, repeated, tag = "1")]
    pub children: Vec<ObjectReference>,
    /// Its saved tensors.
    #[prost(message, repeated, tag = "2")]
    pub attributes: Vec<SerializedTensor>,
    /// Optimizer slots of its variables.
    #[prost(message, repeated, tag = "3")]
    pub slot_variables: Vec<SlotVariableReference>,
}

/// A child object.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectReference {
    /// The child's node index.
    #[prost(int32, tag = "1")]
    pub node_id: i32,
    /// The attribute name the parent tracks it under (`layer_with_weights-3`, `kernel`).
    #[prost(string, tag = "2")]
    pub local_name: String,
}

/// A tensor an object saved.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SerializedTensor {
    /// `VARIABLE_VALUE` for a variable's value.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The variable's TF name when it was saved (`block2a_dwconv/depthwise_kernel:0`), often
    /// empty.
    #[prost(string, tag = "2")]
    pub full_name: String,
    /// The bundle key holding the tensor.
    #[prost(string, tag = "3")]
    pub checkpoint_key: String,
}

/// An optimizer slot (Adam's `m`, `v`) of a variable.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SlotVariableReference {
    /// The variable the slot belongs to.
    #[prost(int32, tag = "1")]
    pub original_variable_node_id: i32,
    /// `m`, `v`, `momentum`, `rms`.
    #[prost(string, tag = "2")]
    pub slot_name: String,
    /// The slot's own node.
    #[prost(int32, tag = "3")]
    pub slot_variable_node_id: i32,
}
