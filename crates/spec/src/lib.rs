#![doc = include_str!("../README.md")]

pub mod audit;
mod build;
mod error;
mod fit;
mod model;
mod scheme;
mod variant;

pub use audit::{AuditReport, Evidence, Finding, Severity, audit, audit_semantics, closest_spec};
pub use build::build_graph;
pub use error::SpecError;
pub use fit::{Fit, fit_coefficients};
pub use model::{
    Architecture, BASE_STAGES, BaseStage, BlockSpec, ModelSpec, StageSpec, round_filters,
    round_repeats,
};
pub use scheme::{PaddingStyle, Preprocessing, Scheme, Semantics};
pub use variant::{Coefficients, Variant};
