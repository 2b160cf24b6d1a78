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

/// Prints the warnings of an import to stderr (for commands whose stdout is a report), and
/// with `-v` what was read and assumed.
pub fn warn(model: &effnet_import::Model) {
    for warning in &model.warnings {
        crate::output::warn(warning);
    }
    let report = &model.imported.report;
    crate::output::detail(&format!(
        "{}: {} container, {} names ({}), {}; {} tensors bound, {} skipped, {} missing, {} unused",
        model.path.display(),
        model.container,
        model.naming,
        model.naming_source.name(),
        model.imported.identity.label(),
        report.applied.len(),
        report.skipped.len(),
        report.missing.len(),
        report.unused.len()
    ));
    for assumption in &model.imported.assumptions {
        crate::output::detail(&format!("assumed: {assumption}"));
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
