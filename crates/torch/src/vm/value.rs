//! The values the machine builds, and the containers of a pickle's arena.

use std::rc::Rc;

use effnet_ir::DType;

/// A storage as a tensor refers to it.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    /// The key (`data/<key>` in a zip archive).
    pub key: String,
    /// Element type, from the storage class.
    pub dtype: Option<DType>,
    /// The storage class (`FloatStorage`, …).
    pub class: String,
    /// Elements the pickle declares.
    pub numel: u64,
}

/// A tensor: a view into a storage.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// The storage.
    pub storage: StorageRef,
    /// Offset into the storage, in elements.
    pub offset: u64,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides, in elements.
    pub stride: Vec<usize>,
}

/// The index of a container in its [`Pickle`](super::Pickle)'s arena.
pub type NodeId = usize;

/// A value the machine builds. Containers are indices into the arena of their
/// [`Pickle`](super::Pickle); cloning a value never copies a container.
#[derive(Clone, Debug)]
pub enum Value {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(Rc<str>),
    /// Bytes.
    Bytes(Rc<[u8]>),
    /// A tuple.
    Tuple(NodeId),
    /// A list (or set).
    List(NodeId),
    /// A dict in insertion order.
    Dict(NodeId),
    /// A global named by the pickle (`module.name`).
    Global(Rc<str>),
    /// A storage reference (persistent id).
    Storage(Rc<StorageRef>),
    /// A tensor.
    Tensor(Rc<TensorRef>),
    /// An instance of a named class: its constructor arguments and `__setstate__` state.
    Object(NodeId),
}

/// A container in the arena.
#[derive(Debug)]
pub enum Node {
    /// A tuple's or list's items.
    Seq(Vec<Value>),
    /// A dict's items in insertion order.
    Dict(Vec<(Value, Value)>),
    /// An object (boxed: most nodes are sequences).
    Object(Box<Object>),
}

/// An inert record of a class instance.
#[derive(Clone, Debug)]
pub struct Object {
    /// `module.Class`.
    pub class: Rc<str>,
    /// Arguments it was "constructed" with.
    pub args: Vec<Value>,
    /// The state BUILD gave it.
    pub state: Option<Value>,
}
