use std::path::PathBuf;

/// Why a graph cannot run, or an input cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The graph is malformed (shape inference or padding resolution failed).
    #[error(transparent)]
    Ir(effnet_ir::IrError),
    /// The graph has no single output.
    #[error("the graph has {0} outputs; the executor runs graphs with exactly one")]
    Outputs(usize),
    /// A parameter has no data (a graph built from the spec without weights).
    #[error("node `{node}` has no weights (a shape-only graph cannot run)")]
    NoWeights {
        /// The node.
        node: String,
    },
    /// A node the executor cannot run.
    #[error("node `{node}`: {message}")]
    Unsupported {
        /// The node.
        node: String,
        /// Why.
        message: String,
    },
    /// Shapes that do not fit at run time.
    #[error("node `{node}`: {message}")]
    Shape {
        /// The node.
        node: String,
        /// What does not fit.
        message: String,
    },
    /// The input does not fit the model.
    #[error("input: {0}")]
    Input(String),
    /// A node whose value was fused away was asked for.
    #[error("node #{0} has no observable value (it was fused into the next kernel)")]
    NotObservable(usize),
    /// A `.npy` file that is not a float array effnet reads.
    #[error("{}: {message}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An image that cannot be decoded.
    #[error("{}: {message}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The preprocessing a model needs cannot be determined.
    #[error("{0}")]
    Preprocessing(String),
    /// Two graphs that cannot be compared.
    #[error("not comparable: {0}")]
    Incomparable(String),
    /// A buffer the input's size calls for cannot be allocated.
    #[error(
        "{what}: a buffer of {bytes} bytes does not fit in memory; run at a smaller input size"
    )]
    Memory {
        /// Bytes asked for.
        bytes: u64,
        /// What the buffer holds.
        what: &'static str,
    },
    /// A file could not be read or written.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
}
