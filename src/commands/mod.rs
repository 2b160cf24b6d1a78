//! One module per subcommand.

pub mod audit;
pub mod convert;
pub mod cost;
pub mod inspect;
pub mod spec;

use anyhow::Context;
use effnet_ir::Graph;
use effnet_spec::{ModelSpec, Scheme, Semantics, Variant, build_graph};

use crate::cli::ScalingArgs;

/// Opens a model file as the user asked.
pub fn open_model(
    path: &std::path::Path,
    naming: Option<Scheme>,
    read: &crate::cli::ReadArgs,
) -> anyhow::Result<effnet_import::Model> {
    let options = effnet_import::ImportOptions {
        key: read.key.clone(),
        naming,
    };
    Ok(effnet_import::open(path, &options)?)
}

/// Prints the warnings of an import to stderr (for commands whose stdout is a report).
pub fn warn(model: &effnet_import::Model) {
    for warning in &model.warnings {
        eprintln!("warning: {warning}");
    }
}

/// A model built from the spec: `variant` with the overrides of `scaling`.
pub struct SpecModel {
    pub spec: ModelSpec,
    pub semantics: Semantics,
    pub graph: Graph,
}

impl SpecModel {
    pub fn build(variant: Variant, scaling: &ScalingArgs) -> anyhow::Result<Self> {
        let spec = ModelSpec::variant(variant)
            .with_overrides(scaling.width, scaling.depth, scaling.resolution)
            .context("invalid model coefficients")?;
        let semantics = scaling
            .naming
            .unwrap_or(Scheme::TfOfficial)
            .semantics(spec.variant);
        let graph = build_graph(&spec.architecture(), &semantics)
            .with_context(|| format!("cannot build EfficientNet {}", spec.label()))?;
        Ok(SpecModel {
            spec,
            semantics,
            graph,
        })
    }
}
