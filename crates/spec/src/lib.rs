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
pub use effnet_ir::BlockKind;
pub use error::SpecError;
pub use fit::{Fit, fit_coefficients};
pub use model::{
    Architecture, BASE_STAGES, Base, BaseStage, BlockSpec, EFFICIENTNET, LITE, ModelSpec,
    StageSpec, V2_BASE, V2_L, V2_M, V2_S, V2_XL, round_filters, round_filters_nearest,
    round_repeats,
};
pub use scheme::{IMAGENET_MEAN, IMAGENET_STD, PaddingStyle, Preprocessing, Scheme, Semantics};
pub use variant::{Coefficients, Family, Variant};
