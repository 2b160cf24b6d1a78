use crate::DType;

/// What can be wrong with a graph or a tensor. Every variant names the node or tensor at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IrError {
    /// A node was given the wrong number of inputs for its op.
    #[error("node `{node}`: {op} takes {expected} input(s), got {found}")]
    Arity {
        /// The node's source name.
        node: String,
        /// The op's kind.
        op: &'static str,
        /// How many inputs the op takes.
        expected: usize,
        /// How many it was given.
        found: usize,
    },
    /// A node names an input that is not in the graph.
    #[error("node `{node}`: its input #{slot} is not a node of this graph")]
    DanglingInput {
        /// The node's source name.
        node: String,
        /// The input slot.
        slot: usize,
    },
    /// A node's input has another channel count than the node expects.
    #[error("node `{node}`: expects {expected} channels, its input `{input}` has {found}")]
    ChannelMismatch {
        /// The node's source name.
        node: String,
        /// The input node's source name.
        input: String,
        /// Channels the node expects.
        expected: usize,
        /// Channels the input has.
        found: usize,
    },
    /// Two inputs of an element-wise op have shapes that do not combine.
    #[error("node `{node}`: input shapes {left} and {right} do not combine")]
    ShapeMismatch {
        /// The node's source name.
        node: String,
        /// The first input's shape.
        left: String,
        /// The second input's shape.
        right: String,
    },
    /// A convolution's groups do not divide its channels.
    #[error(
        "node `{node}`: groups {groups} do not divide in_channels {in_channels} and out_channels {out_channels}"
    )]
    BadGroups {
        /// The node's source name.
        node: String,
        /// The groups attribute.
        groups: usize,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
    },
    /// A parameter's shape disagrees with its op's attributes.
    #[error("node `{node}`: parameter `{param}` has shape {found:?}, expected {expected:?}")]
    ParamShape {
        /// The node's source name.
        node: String,
        /// The parameter's role (`weight`, `running_var`, …).
        param: &'static str,
        /// The shape the op's attributes imply.
        expected: Vec<usize>,
        /// The shape it has.
        found: Vec<usize>,
    },
    /// An attribute is out of range (zero kernel, zero stride, negative epsilon, …).
    #[error("node `{node}`: {message}")]
    BadAttribute {
        /// The node's source name.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// A node got an input of the wrong rank (a feature map where a vector belongs, or back).
    #[error("node `{node}`: expects {expected}, its input `{input}` is {found}")]
    Rank {
        /// The node's source name.
        node: String,
        /// The input node's source name.
        input: String,
        /// What the node expects.
        expected: &'static str,
        /// The input's shape.
        found: String,
    },
    /// The kernel does not fit into the padded input.
    #[error("node `{node}`: kernel {kernel:?} (dilated) does not fit the padded input {input:?}")]
    KernelTooLarge {
        /// The node's source name.
        node: String,
        /// Kernel height and width.
        kernel: [usize; 2],
        /// Input height and width.
        input: [usize; 2],
    },
    /// The graph has no output.
    #[error("the graph has no output")]
    NoOutput,
    /// The graph has more than one input node, or none.
    #[error("the graph has {0} input nodes; effnet expects exactly one")]
    InputCount(usize),
    /// A shape whose element count or byte size does not fit in memory arithmetic.
    #[error("tensor shape {0:?} is too large")]
    ShapeOverflow(Vec<usize>),
    /// A tensor's bytes do not match its dtype and shape.
    #[error("a {dtype} tensor of shape {shape:?} needs {expected} bytes, got {found}")]
    DataSize {
        /// The tensor's dtype.
        dtype: DType,
        /// The tensor's shape.
        shape: Vec<usize>,
        /// Bytes the dtype and shape imply.
        expected: usize,
        /// Bytes supplied.
        found: usize,
    },
    /// A byte range outside its storage.
    #[error("byte range {start}..{end} lies outside a storage of {len} bytes")]
    ByteRange {
        /// Start of the range.
        start: usize,
        /// End of the range.
        end: usize,
        /// Length of the storage.
        len: usize,
    },
    /// A conversion asked of a tensor that has only a shape.
    #[error("the tensor of shape {0:?} has no data")]
    NoData(Vec<usize>),
}
