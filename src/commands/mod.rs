//! One module per subcommand.

pub mod audit;
pub mod compare;
pub mod convert;
pub mod cost;
pub mod inspect;
pub mod man;
pub mod many;
pub mod report;
pub mod run;
pub mod spec;

use anyhow::Context;
use effnet_ir::{ChecksumPolicy, Graph};
use effnet_spec::{ModelSpec, Scheme, Semantics, Variant, build_graph};

use crate::cli::ScalingArgs;

/// Opens a model file as the user asked, every checksum it records compared.
pub fn open_model(
    path: &std::path::Path,
    naming: Option<Scheme>,
    read: &crate::cli::ReadArgs,
) -> anyhow::Result<effnet_import::Model> {
    open_model_as(path, naming, "--naming", read)
}

/// Opens a model file, `naming_flag` being the flag the user gave the scheme with, every
/// checksum it records compared.
pub fn open_model_as(
    path: &std::path::Path,
    naming: Option<Scheme>,
    naming_flag: &str,
    read: &crate::cli::ReadArgs,
) -> anyhow::Result<effnet_import::Model> {
    open_with(path, naming, naming_flag, read, ChecksumPolicy::AtOpen)
}

fn open_with(
    path: &std::path::Path,
    naming: Option<Scheme>,
    naming_flag: &str,
    read: &crate::cli::ReadArgs,
    checksums: ChecksumPolicy,
) -> anyhow::Result<effnet_import::Model> {
    let options = effnet_import::ImportOptions {
        key: read.key.clone(),
        naming,
        checksums,
    };
    effnet_import::open(path, &options).map_err(|err| open_error(path, err, naming_flag))
}

/// Opens a model file for a report that reads no weight (`cost`, `audit`): the checksums over
/// tensor bytes are compared only with `--verify-checksums`, since comparing them means
/// reading the whole file.
pub fn open_model_for_report(
    path: &std::path::Path,
    naming: Option<Scheme>,
    read: &crate::cli::ReadArgs,
    checks: &crate::cli::ChecksumArgs,
) -> anyhow::Result<effnet_import::Model> {
    open_with(path, naming, "--naming", read, checks.policy())
}

/// Opens a file for a description: an EfficientNet, or the tensors of a file that is not one
/// (with the reason), as `inspect` shows any file. Checksums as for [`open_model_for_report`].
pub fn open_any(
    path: &std::path::Path,
    naming: Option<Scheme>,
    read: &crate::cli::ReadArgs,
    checks: &crate::cli::ChecksumArgs,
) -> anyhow::Result<effnet_import::Opened> {
    let options = effnet_import::ImportOptions {
        key: read.key.clone(),
        naming,
        checksums: checks.policy(),
    };
    effnet_import::open_any(path, &options).map_err(|err| open_error(path, err, "--naming"))
}

/// The error of an import, with the flag to pass or the folder to name.
fn open_error(
    path: &std::path::Path,
    err: effnet_import::ImportError,
    naming_flag: &str,
) -> anyhow::Error {
    if let effnet_import::ImportError::WrongNaming { looks_like, .. } = &err {
        let flag = naming_flag;
        let how = match looks_like {
            Some(s) => format!("pass {flag} {s}, or leave {flag} out to detect the scheme"),
            None => format!("leave {flag} out to detect the scheme"),
        };
        return anyhow::anyhow!("{err}: {how}");
    }
    let err = anyhow::Error::from(err);
    match folder_hint(path) {
        Some(hint) => err.context(hint),
        None => err,
    }
}

/// A pointer to the folder when `path` names a file that is read as part of one.
fn folder_hint(path: &std::path::Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.display().to_string(),
        _ => ".".to_owned(),
    };
    match name {
        "saved_model.pb" | "saved_model.pbtxt" | "keras_metadata.pb" | "fingerprint.pb" => Some(
            format!("{name} is part of a SavedModel: pass its folder ({folder})"),
        ),
        "checkpoint" => Some(format!(
            "{name} is a checkpoint's state file: pass the checkpoint folder ({folder}) or its prefix"
        )),
        _ => None,
    }
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
    if model.checksums_pending() {
        crate::output::detail(
            "the checksums over the weights were not compared (no weight is read); --verify-checksums compares them",
        );
    }
}

/// A model built from the spec: `variant` with the overrides of `scaling`.
pub struct SpecModel {
    pub spec: ModelSpec,
    pub semantics: Semantics,
    pub graph: Graph,
    /// The input height and width asked for: `--resolution` (which may be non-square), else
    /// the spec's square resolution.
    pub input_size: [usize; 2],
}

impl SpecModel {
    pub fn build(variant: Variant, scaling: &ScalingArgs) -> anyhow::Result<Self> {
        let spec = ModelSpec::variant(variant)
            .with_overrides(
                scaling.width,
                scaling.depth,
                scaling.resolution.and_then(|r| r.square()),
            )
            .context("invalid model coefficients")?;
        let semantics = scaling
            .naming
            .unwrap_or(Scheme::TfOfficial)
            .semantics(spec.variant);
        let graph = build_graph(&spec.architecture(), &semantics)
            .with_context(|| format!("cannot build EfficientNet {}", spec.label()))?;
        let input_size = scaling
            .resolution
            .map_or([spec.resolution, spec.resolution], |r| r.hw());
        Ok(SpecModel {
            spec,
            semantics,
            graph,
            input_size,
        })
    }
}
