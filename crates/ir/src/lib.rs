#![doc = include_str!("../README.md")]

mod checkpoint;
mod convert;
mod dot;
mod dtype;
mod error;
mod graph;
mod op;
mod padding;
mod shape;
pub mod structure;
mod tag;
mod tensor;

pub use checkpoint::{Checkpoint, ChecksumError, ChecksumPolicy, PendingChecksums, TensorLayout};
pub use convert::{ConversionStats, F16_MAX, encode_f32, moved_variance};
pub use dtype::DType;
pub use error::IrError;
pub use graph::{Graph, GraphMeta, InputNormalization, Node, NodeId};
pub use op::{Activation, BatchNorm, Conv2d, Dense, Input, Normalize, Op, ParamRef, Rescale};
pub use padding::{Padding, ResolvedPadding};
pub use shape::{Shapes, TensorShape};
pub use tag::{BlockKind, Role, Stage, Tag};
pub use tensor::{Bytes, Storage, Tensor};
