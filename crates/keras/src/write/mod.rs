//! Writing Keras files: a graph becomes the functional model `keras.applications` builds
//! ([`build`]), written as a Keras 3 `.keras` archive, a Keras 3 `.weights.h5` or a tf-keras
//! `.h5` ([`files`]).

pub mod build;
pub mod config;
pub mod files;

pub use build::{
    BuildError, BuildOptions, InputPreprocessing, KerasModel, Layer, LayerKind, Variable, build,
    check_blocks,
};
pub use files::{KerasTarget, WriteError, variable_dtype, write_h5, write_keras};
