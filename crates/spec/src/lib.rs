#![doc = include_str!("../README.md")]

mod build;
mod error;
mod model;
mod scheme;
mod variant;

pub use build::build_graph;
pub use error::SpecError;
pub use model::{
    Architecture, BASE_STAGES, BaseStage, BlockSpec, ModelSpec, StageSpec, round_filters,
    round_repeats,
};
pub use scheme::{PaddingStyle, Preprocessing, Scheme, Semantics};
pub use variant::{Coefficients, Variant};
