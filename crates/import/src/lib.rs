//! Opening a model file: the container is detected from the bytes (never the file name), the
//! checkpoint dictionary people wrap weights in is unwrapped (`state_dict`, `model`,
//! `model_ema`, `module.` prefixes), the naming scheme is chosen (the user's, the file's own
//! metadata, or detection), and the graph is built and bound by [`effnet_naming`].

use std::collections::BTreeMap;
use std::path::Path;

use std::sync::Arc;

use effnet_ir::{Checkpoint, ChecksumPolicy, PendingChecksums};
use effnet_naming::import_with;
use effnet_spec::Scheme;

mod container;
mod error;
mod keras_config;
mod keras_padding;
mod keras_semantics;
mod model;
pub mod onnx;
mod other;
mod scheme;
mod tf;
mod trust;
mod unwrap;

pub use error::ImportError;
pub use model::Model;
pub use other::{Opened, OtherFile, open_any};
pub use scheme::NamingSource;
pub use trust::{CHANGES_KEY, Change, ambiguity_warning, decode_changes, encode_changes};

use container::{Container, is_onnx, looks_like_tf_checkpoint};
use error::unsupported;
use keras_semantics::{
    KerasSemantics, alias_keras_classifier, flatten_keras_config, function_semantics,
    keras_block_name, keras_semantics,
};
use scheme::{SchemeChoice, choose_scheme};
use unwrap::unwrap;

/// What the user asked for.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Take the weights under this top-level key (`model_ema`, `state_dict_ema`, …).
    pub key: Option<String>,
    /// Read the names with this scheme instead of detecting it.
    pub naming: Option<Scheme>,
    /// When the checksums a container records over tensor bytes are compared: at open, or by
    /// the caller through [`Model::verify_checksums`] before it reads any weight (a report
    /// that reads none spares reading the whole file). The few values import itself reads are
    /// compared before they are read, either way.
    pub checksums: ChecksumPolicy,
}

/// What became of the checksums a file records over its weights.
pub fn checksum_state(container: &str, pending: bool) -> &'static str {
    match container {
        _ if pending => "deferred",
        // Zip storages' CRC-32s, tensor bundles' crc32c, the `.keras` weights member's CRC-32.
        "torch-zip" | "torchscript" | "tf-bundle" | "saved-model" | "keras-v3" => "compared",
        _ => "none",
    }
}

/// The tensors whose values import reads (the Keras Normalization variance that tells the
/// variance fix apart), compared before they are read when checksums are deferred.
const VALUES_READ_AT_OPEN: &[&str] = &["normalization/variance"];

/// Opens `path` and reads it into the graph IR.
pub fn open(path: &Path, options: &ImportOptions) -> Result<Model, ImportError> {
    if is_onnx(path) {
        return onnx::open(path, options);
    }
    let Tensors {
        container,
        checkpoint,
        globals,
        skipped,
        keras_config,
        positional,
        function_facts,
        checksums,
    } = read_tensors_with(path, options.checksums)?;
    let mut warnings = Vec::new();
    warnings.extend(skipped_summary(&skipped));
    let tensors = checkpoint.len();
    let metadata = checkpoint.metadata.clone();

    // Every layer of a config accounted for, wired and in range, or the file is refused.
    if let Some(config) = &keras_config {
        keras_config::check(config).map_err(|message| unsupported(path, &message))?;
    }
    let keras_config = keras_config.map(flatten_keras_config);
    let mut unwrapped = unwrap(path, checkpoint, options.key.as_deref())?;
    if unwrapped.checkpoint.get("stem_conv/kernel").is_some() {
        alias_keras_classifier(&mut unwrapped.checkpoint, keras_config.as_ref());
    }
    if let Some(sums) = &checksums {
        for name in VALUES_READ_AT_OPEN {
            if let Some(tensor) = unwrapped.checkpoint.get(name) {
                sums.verify(Some(tensor)).map_err(ImportError::Checksum)?;
            }
        }
    }
    let names: Vec<&str> = unwrapped
        .checkpoint
        .tensors
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();

    let SchemeChoice {
        scheme: naming,
        source: naming_source,
        candidates: naming_candidates,
    } = choose_scheme(
        path,
        options.naming,
        &metadata,
        &names,
        &globals,
        &mut warnings,
    )?;

    let mut dtypes = BTreeMap::new();
    for (_, t) in &unwrapped.checkpoint.tensors {
        *dtypes.entry(t.dtype()).or_insert(0) += 1;
    }
    let keras = match (&function_facts, &keras_config) {
        (Some(facts), None) if naming == Scheme::Keras => Some(function_semantics(
            facts,
            &unwrapped.checkpoint,
            &mut warnings,
        )),
        _ => (naming == Scheme::Keras)
            .then(|| keras_semantics(keras_config.as_ref(), &unwrapped.checkpoint, &mut warnings))
            .transpose()
            .map_err(|message| unsupported(path, &message))?,
    };
    let mut imported = import_with(&unwrapped.checkpoint, naming, &|s, arch| {
        if let Some(keras) = &keras {
            if let Some(preprocessing) = keras.preprocessing {
                s.preprocessing = preprocessing;
            }
            s.classifier_activation = keras.classifier_activation;
            s.input_normalization = None;
            if let Some(eps) = keras.bn_eps {
                s.bn_eps = eps;
            }
            if keras.resolution.is_some() {
                arch.resolution = keras.resolution;
            }
            if let Some(a) = keras.activation {
                arch.activation = a;
            }
            if let Some(rate) = keras.dropout {
                arch.dropout = rate;
            }
            if let Some(blocks) = &keras.blocks {
                for b in &mut arch.blocks {
                    if let Some(&(stride, residual)) =
                        blocks.get(&keras_block_name(b.stage, b.index))
                    {
                        b.stride = stride;
                        b.residual =
                            residual.unwrap_or(stride == 1 && b.in_channels == b.out_channels);
                    }
                }
            }
        }
    })
    .map_err(|reason| ImportError::Naming {
        path: path.to_owned(),
        reason,
    })?;
    imported.graph.meta.source = Some(path.display().to_string());
    let mut deviations = Vec::new();
    if let Some(keras) = &keras {
        keras.record_layers(&mut imported.graph);
        warnings.extend(keras.deviation_warnings(&imported.graph));
        deviations.extend(keras.deviations.iter().cloned());
    }
    if positional {
        imported
            .assumptions
            .push(effnet_naming::Assumption::LayerNamesByPosition);
    }
    let evidence = KerasSemantics::evidence(
        keras.as_ref(),
        keras_config.is_some(),
        &mut imported.assumptions,
    );
    if !imported.report.unused.is_empty() {
        warnings.push(format!(
            "{} tensor(s) not understood by the {} scheme, e.g. `{}`",
            imported.report.unused.len(),
            naming,
            imported.report.unused[0]
        ));
    }
    if !imported.report.missing.is_empty() {
        warnings.push(format!(
            "{} parameter(s) missing from the file, e.g. `{}`",
            imported.report.missing.len(),
            imported.report.missing[0]
        ));
    }
    let changes = metadata
        .get(CHANGES_KEY)
        .map(|c| decode_changes(c))
        .unwrap_or_default();
    for c in &changes {
        warnings.push(format!("written with a semantic change: {}", c.line()));
    }
    Ok(Model {
        naming_candidates,
        skipped,
        deviations,
        changes,
        path: path.to_owned(),
        container,
        naming,
        naming_source,
        key: unwrapped.key,
        other_keys: unwrapped.other_keys,
        stripped_prefix: unwrapped.prefix,
        metadata,
        tensors,
        dtypes,
        imported,
        has_architecture: keras_config.is_some(),
        evidence,
        warnings,
        checksums,
    })
}

/// A file's tensors under the names its framework gave them (Keras layer names reconstructed
/// where the file records none), before any naming scheme reads them.
#[derive(Debug)]
pub struct Tensors {
    /// The container (`torch-zip`, `keras-h5`, `tf-bundle`, …).
    pub container: &'static str,
    /// The named tensors, in the file's layout, with the container's metadata.
    pub checkpoint: Checkpoint,
    /// Module classes a full-model pickle names.
    pub globals: Vec<String>,
    /// Entries left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// A Keras model config, when the file has one.
    pub keras_config: Option<serde_json::Value>,
    /// Whether the names were reconstructed from the order and shapes of the weights.
    pub positional: bool,
    /// What a SavedModel's serving function computes (without Keras metadata).
    pub function_facts: Option<effnet_tf::saved_model::FunctionFacts>,
    /// Checksums over tensor bytes not compared yet ([`ChecksumPolicy::Deferred`]).
    pub checksums: Option<Arc<dyn PendingChecksums>>,
}

/// Reads the tensors of the file, checkpoint or folder `path` denotes, every checksum
/// compared.
pub fn read_tensors(path: &Path) -> Result<Tensors, ImportError> {
    read_tensors_with(path, ChecksumPolicy::AtOpen)
}

/// [`read_tensors`], comparing the checksums over tensor bytes as `policy` says.
pub fn read_tensors_with(path: &Path, policy: ChecksumPolicy) -> Result<Tensors, ImportError> {
    let io = |reason| ImportError::Io {
        path: path.to_owned(),
        reason,
    };
    if path.is_dir() && effnet_tf::saved_model::is_saved_model(path) {
        return tf::read_saved_model(path, policy);
    }
    let mut keras_config: Option<serde_json::Value> = None;
    let mut positional = false;
    if looks_like_tf_checkpoint(path) {
        return tf::read_tf(path, policy);
    }
    let head = container::head(path).map_err(io)?;
    let mut checksums = None;
    let (container, checkpoint, globals, skipped) = match Container::sniff(&head) {
        Some(Container::Hdf5) => {
            let file = effnet_keras::read(path)?;
            keras_config = file.config;
            let (container, checkpoint) = if !file.unnamed.is_empty() {
                positional = true;
                let layers = file
                    .unnamed
                    .into_iter()
                    .filter_map(|l| {
                        Some(effnet_naming::positional::UnnamedLayer {
                            kind: effnet_naming::positional::LayerKind::from_class(&l.class)?,
                            origin: l.group,
                            variables: l.variables,
                        })
                    })
                    .collect();
                ("keras-v3-weights", name_by_position(path, layers)?)
            } else if file.keras3 {
                ("keras-v3-weights", file.checkpoint)
            } else {
                ("keras-h5", file.checkpoint)
            };
            (container, checkpoint, Vec::new(), file.skipped)
        }
        Some(Container::Zip) if effnet_keras::is_keras_zip(path) => {
            let file = effnet_keras::read_keras3(path)?;
            keras_config = file.config;
            ("keras-v3", file.checkpoint, Vec::new(), file.skipped)
        }
        Some(Container::Zip | Container::TorchLegacy) => {
            let file = effnet_torch::read_with(path, policy)?;
            checksums = file.checksums;
            (
                file.container.name(),
                file.checkpoint,
                file.globals,
                file.skipped,
            )
        }
        Some(Container::Safetensors) => {
            let file = effnet_safetensors::read(path)?;
            ("safetensors", file.checkpoint, Vec::new(), file.skipped)
        }
        Some(Container::Onnx) => return onnx::tensors(path),
        None => {
            return Err(unsupported(
                path,
                "not a model file effnet reads (expected a PyTorch checkpoint, a safetensors file, a Keras .h5/.keras, a TensorFlow checkpoint or an ONNX model)",
            ));
        }
    };
    Ok(Tensors {
        container,
        checkpoint,
        globals,
        skipped,
        keras_config,
        positional,
        function_facts: None,
        checksums,
    })
}

/// Keras names for layers known by position (see [`effnet_naming::positional`]).
fn name_by_position(
    path: &Path,
    layers: Vec<effnet_naming::positional::UnnamedLayer>,
) -> Result<Checkpoint, ImportError> {
    let named = effnet_naming::positional::keras_layer_names(layers).map_err(|reason| {
        ImportError::Naming {
            path: path.to_owned(),
            reason,
        }
    })?;
    // Keras layers, in TensorFlow's layout.
    let mut checkpoint = Checkpoint::with_layout(effnet_ir::TensorLayout::Tf);
    for (layer, unnamed) in named {
        for (variable, tensor) in unnamed.variables {
            checkpoint
                .tensors
                .push((format!("{layer}/{variable}"), tensor));
        }
    }
    Ok(checkpoint)
}

/// One warning per reason: `skipped 3 entries (optimizer slot), e.g. `x``.
fn skipped_summary(skipped: &[(String, String)]) -> Vec<String> {
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, reason) in skipped {
        by_reason.entry(reason).or_default().push(name);
    }
    by_reason
        .into_iter()
        .map(|(reason, names)| match names.as_slice() {
            [one] => format!("skipped `{one}`: {reason}"),
            many => format!(
                "skipped {} entries ({reason}), e.g. `{}`",
                many.len(),
                many[0]
            ),
        })
        .collect()
}
