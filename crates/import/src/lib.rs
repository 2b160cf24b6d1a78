//! Opening a model file: the container is detected from the bytes (never the file name), the
//! checkpoint dictionary people wrap weights in is unwrapped (`state_dict`, `model`,
//! `model_ema`, `module.` prefixes), the naming scheme is chosen (the user's, the file's own
//! metadata, or detection), and the graph is built and bound by [`effnet_naming`].

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use effnet_ir::{Checkpoint, DType};
use effnet_naming::{Imported, NamingError, detect, import_with};
use effnet_spec::{Evidence, Scheme};

mod keras_config;
pub mod onnx;
mod trust;
pub use trust::{CHANGES_KEY, Change, ambiguity_warning, decode_changes, encode_changes};

/// What the user asked for.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Take the weights under this top-level key (`model_ema`, `state_dict_ema`, …).
    pub key: Option<String>,
    /// Read the names with this scheme instead of detecting it.
    pub naming: Option<Scheme>,
}

/// Keys people nest weights under, in the order they are preferred when several are present.
const PREFERRED_KEYS: [&str; 9] = [
    "state_dict",
    "model",
    "model_state_dict",
    "module",
    "net",
    "network",
    "state_dict_ema",
    "model_ema",
    "ema",
];

/// How the naming scheme was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamingSource {
    /// `--naming`.
    Option,
    /// The file's metadata (`effnet.naming` in safetensors).
    Metadata,
    /// The module classes a full-model pickle names.
    ModuleClasses,
    /// The tensor names.
    Detected,
    /// The conventions an ONNX graph computes (padding, preprocessing).
    Graph,
}

impl NamingSource {
    /// Lower-case description.
    pub const fn name(self) -> &'static str {
        match self {
            NamingSource::Option => "given",
            NamingSource::Metadata => "file metadata",
            NamingSource::ModuleClasses => "module classes",
            NamingSource::Detected => "tensor names",
            NamingSource::Graph => "the graph's conventions",
        }
    }
}

/// A model file read into the graph IR.
#[derive(Debug)]
pub struct Model {
    /// The file.
    pub path: PathBuf,
    /// The container (`torch-zip`, `torch-legacy`, `torchscript`, `safetensors`).
    pub container: &'static str,
    /// The naming scheme the tensors were read with.
    pub naming: Scheme,
    /// How it was chosen.
    pub naming_source: NamingSource,
    /// The top-level key the weights were taken from, if they were nested.
    pub key: Option<String>,
    /// Other top-level keys that hold tensors (another `--key` could take them).
    pub other_keys: Vec<String>,
    /// A wrapper prefix removed from every name (`module.`).
    pub stripped_prefix: Option<String>,
    /// The container's metadata.
    pub metadata: BTreeMap<String, String>,
    /// Tensors in the file (all keys).
    pub tensors: usize,
    /// Tensors per dtype among those read.
    pub dtypes: BTreeMap<DType, usize>,
    /// The graph and what the import did.
    pub imported: Imported,
    /// What the file records beyond tensor shapes (what an audit can verify).
    pub evidence: Evidence,
    /// Whether the file carries its architecture (a Keras config).
    pub has_architecture: bool,
    /// What a user should know.
    pub warnings: Vec<String>,
    /// The schemes the file could be in when its names cannot tell them apart (timm and
    /// timm-tf) and nothing else in the file says which: the output of a conversion may
    /// depend on the answer. Empty when the scheme is known.
    pub naming_candidates: Vec<Scheme>,
    /// Entries of the file left out while reading, with the reason.
    pub skipped: Vec<(String, String)>,
    /// What the file records that the graph cannot carry (a Keras activation effnet does not
    /// model): deviations an audit reports and a conversion refuses.
    pub deviations: Vec<effnet_spec::Finding>,
    /// The semantic changes effnet made when it wrote this file (its `effnet.changes`).
    pub changes: Vec<Change>,
}

/// Why a file could not be opened. Messages name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
    /// A PyTorch container error.
    #[error(transparent)]
    Torch(#[from] effnet_torch::TorchError),
    /// A safetensors error.
    #[error(transparent)]
    Safetensors(#[from] effnet_safetensors::SafetensorsError),
    /// A Keras HDF5 error.
    #[error(transparent)]
    Keras(#[from] effnet_keras::KerasError),
    /// A TensorFlow checkpoint error.
    #[error(transparent)]
    Tf(#[from] effnet_tf::TfError),
    /// The tensors do not form an EfficientNet effnet understands.
    #[error("{}: {reason}", path.display())]
    Naming {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: NamingError,
    },
    /// The naming scheme asked for does not read the file's tensor names.
    #[error(
        "{}: the tensor names are not {given} names (e.g. `{example}`){}",
        path.display(),
        looks_like.map_or(String::new(), |s| format!("; they look like {s} names"))
    )]
    WrongNaming {
        /// The file.
        path: PathBuf,
        /// The scheme asked for.
        given: Scheme,
        /// The scheme that reads most of the names, if any does.
        looks_like: Option<Scheme>,
        /// A name the given scheme does not read.
        example: String,
    },
    /// A format effnet does not read (yet), or not a model file.
    #[error("{}: {message}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What it is.
        message: String,
    },
    /// `--key` names nothing in the file.
    #[error("{}: no tensors under key `{key}`; {available}", path.display())]
    NoSuchKey {
        /// The file.
        path: PathBuf,
        /// The key asked for.
        key: String,
        /// The keys there are.
        available: String,
    },
}

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
    } = read_tensors(path)?;
    let mut warnings = Vec::new();
    warnings.extend(skipped_summary(&skipped));
    let mut naming_candidates = Vec::new();
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
    let names: Vec<&str> = unwrapped
        .checkpoint
        .tensors
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();

    let (naming, naming_source) = if let Some(scheme) = options.naming {
        let parsed = effnet_naming::parse_all(scheme, &names);
        if !names.is_empty() && parsed.iter().all(Option::is_none) {
            let (best, count) = detect(&names)[0];
            return Err(ImportError::WrongNaming {
                path: path.to_owned(),
                given: scheme,
                looks_like: (count > 0 && best != scheme).then_some(best),
                example: effnet_io::escape(names[0]).into_owned(),
            });
        }
        (scheme, NamingSource::Option)
    } else if let Some(scheme) = metadata
        .get("effnet.naming")
        .and_then(|n| n.parse::<Scheme>().ok())
    {
        (scheme, NamingSource::Metadata)
    } else {
        let (best, count) = detect(&names)[0];
        if count == 0 {
            return Err(ImportError::Naming {
                path: path.to_owned(),
                reason: NamingError::Unrecognized(
                    names.first().copied().unwrap_or_default().into(),
                ),
            });
        }
        if best == Scheme::Timm {
            if globals
                .iter()
                .any(|g| g.ends_with(".Conv2dSame") || g.contains("timm.layers.padding"))
            {
                (Scheme::TimmTf, NamingSource::ModuleClasses)
            } else {
                naming_candidates = vec![Scheme::Timm, Scheme::TimmTf];
                warnings.push(ambiguity_warning(
                    &naming_candidates,
                    Scheme::Timm,
                    "--naming",
                ));
                (Scheme::Timm, NamingSource::Detected)
            }
        } else {
            (best, NamingSource::Detected)
        }
    };

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
        // What the config records layer by layer: kept in the graph (so the audit checks it
        // and an export keeps it), or a deviation where the graph cannot carry it.
        let ids: Vec<effnet_ir::NodeId> = imported.graph.nodes().map(|(id, _)| id).collect();
        for id in ids {
            let node = imported.graph.node_mut(id);
            if let Some((_, a)) = keras
                .layer_activations
                .iter()
                .find(|(n, _)| *n == node.name)
            {
                if let effnet_ir::Op::Activation(slot) = &mut node.op {
                    *slot = *a;
                }
            }
            if let Some((_, p)) = keras.layer_padding.iter().find(|(n, _)| *n == node.name) {
                if let effnet_ir::Op::Conv2d(c) = &mut node.op {
                    c.padding = *p;
                }
            }
        }
        for d in &keras.deviations {
            warnings.push(format!(
                "{}: inspect and cost count it as {}; audit reports it, convert refuses it",
                d.message,
                imported
                    .graph
                    .nodes()
                    .find_map(|(_, n)| match (&n.op, n.tag.role) {
                        (effnet_ir::Op::Activation(a), effnet_ir::Role::StemAct) => Some(a.name()),
                        _ => None,
                    })
                    .unwrap_or("swish")
            ));
        }
        deviations.extend(keras.deviations.iter().cloned());
    }
    if positional {
        imported.assumptions.push(
            "layer names reconstructed from the order and shapes of the weights (the file records none); stages from where channels, kernel or expansion change".into(),
        );
    }
    // A Keras config records strides, shortcuts and epsilon: the audit can check them.
    let evidence = match &keras {
        Some(KerasSemantics {
            blocks: Some(blocks),
            bn_eps,
            activation,
            dropout,
            ..
        }) => {
            imported
                .assumptions
                .retain(|a| !a.starts_with("strides") && !a.starts_with("stages inferred"));
            Evidence {
                strides: true,
                residuals: blocks.values().all(|(_, r)| r.is_some()),
                bn_eps: bn_eps.is_some(),
                activations: activation.is_some(),
                // Checked layer by layer against TF "same" (a config, not a function graph).
                padding: keras_config.is_some(),
                dropout: dropout.is_some(),
                batchnorm: true,
            }
        }
        _ => Evidence::WEIGHTS_ONLY,
    };
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
}

/// Reads the tensors of the file, checkpoint or folder `path` denotes.
pub fn read_tensors(path: &Path) -> Result<Tensors, ImportError> {
    let io = |reason| ImportError::Io {
        path: path.to_owned(),
        reason,
    };
    if path.is_dir() && effnet_tf::saved_model::is_saved_model(path) {
        return read_saved_model(path);
    }
    let mut keras_config: Option<serde_json::Value> = None;
    let mut positional = false;
    if looks_like_tf_checkpoint(path) {
        return read_tf(path);
    }
    let (container, checkpoint, globals, skipped) = {
        let mut head = Vec::with_capacity(16);
        // Regular files only, checked on the descriptor: a FIFO never blocks, a device is
        // never read.
        effnet_io::open_regular(path)
            .map_err(io)?
            .take(16)
            .read_to_end(&mut head)
            .map_err(io)?;
        if head.starts_with(effnet_keras::HDF5_MAGIC) {
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
        } else if head.starts_with(b"PK\x03\x04") && effnet_keras::is_keras_zip(path) {
            let file = effnet_keras::read_keras3(path)?;
            keras_config = file.config;
            ("keras-v3", file.checkpoint, Vec::new(), file.skipped)
        } else if head.starts_with(b"PK\x03\x04") || effnet_torch::is_legacy(&head) {
            let file = effnet_torch::read(path)?;
            (
                file.container.name(),
                file.checkpoint,
                file.globals,
                file.skipped,
            )
        } else if effnet_safetensors::sniff(&head) {
            let file = effnet_safetensors::read(path)?;
            ("safetensors", file.checkpoint, Vec::new(), file.skipped)
        } else if effnet_onnx::read::sniff(&head) {
            return onnx::tensors(path);
        } else {
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
    })
}

/// A SavedModel's variables (named by the object graph) and, from tf-keras, its Keras config.
fn read_saved_model(path: &Path) -> Result<Tensors, ImportError> {
    let saved = effnet_tf::saved_model::read_saved_model(path)?;
    let keras_config = match &saved.keras_metadata {
        Some(json) => Some(untuple(
            effnet_keras::parse_json(
                json.as_bytes(),
                &effnet_io::Budget::for_input(json.len() as u64),
                "the root's Keras metadata",
            )
            .map_err(|e| {
                unsupported(
                    &path.join("keras_metadata.pb"),
                    &format!("the root's metadata is not JSON: {e}"),
                )
            })?,
        )),
        None => None,
    };
    let mut metadata = BTreeMap::new();
    if saved.signature_variables > 0 {
        metadata.insert(
            "tf.signature_variables".into(),
            saved.signature_variables.to_string(),
        );
    }
    Ok(Tensors {
        container: "saved-model",
        checkpoint: Checkpoint {
            tensors: saved.tensors,
            metadata,
        },
        globals: Vec::new(),
        skipped: saved.skipped,
        keras_config: keras_config.filter(|c| c.pointer("/config/layers").is_some()),
        positional: false,
        function_facts: saved.facts,
    })
}

/// A Keras config with every nested model (`Functional`, `Sequential`, `Model`: an
/// EfficientNet inside a transfer-learning model) replaced by its own layers, in order.
fn flatten_keras_config(mut config: serde_json::Value) -> serde_json::Value {
    fn flatten(layers: &[serde_json::Value], out: &mut Vec<serde_json::Value>, depth: usize) {
        for l in layers {
            let class = l.get("class_name").and_then(|c| c.as_str()).unwrap_or("");
            let inner = l.pointer("/config/layers").and_then(|v| v.as_array());
            match (class, inner) {
                ("Functional" | "Sequential" | "Model", Some(inner)) if depth < 8 => {
                    flatten(inner, out, depth + 1);
                }
                _ => out.push(l.clone()),
            }
        }
    }
    if let Some(layers) = config.pointer("/config/layers").and_then(|v| v.as_array()) {
        let mut flat = Vec::with_capacity(layers.len());
        flatten(layers, &mut flat, 0);
        if let Some(slot) = config.pointer_mut("/config/layers") {
            *slot = serde_json::Value::Array(flat);
        }
    }
    config
}

/// The classifier of a transfer-learning model is the user's own `Dense` (`dense_3`), not
/// keras.applications' `predictions`: the last `Dense` of the config (or, without one, the only
/// 2-d kernel) is read as the classifier.
fn alias_keras_classifier(checkpoint: &mut Checkpoint, config: Option<&serde_json::Value>) {
    if checkpoint.get("predictions/kernel").is_some() {
        return;
    }
    let from_config = config
        .and_then(|c| c.pointer("/config/layers"))
        .and_then(|l| l.as_array())
        .and_then(|layers| {
            layers
                .iter()
                .rev()
                .find(|l| l.get("class_name").and_then(|c| c.as_str()) == Some("Dense"))
        })
        .and_then(|l| l.pointer("/config/name"))
        .and_then(|n| n.as_str())
        .map(str::to_owned);
    let dense = from_config.or_else(|| {
        let mut kernels = checkpoint
            .tensors
            .iter()
            .filter(|(n, t)| n.ends_with("/kernel") && t.shape().len() == 2)
            .map(|(n, _)| n.trim_end_matches("/kernel").to_owned());
        let first = kernels.next()?;
        kernels.next().is_none().then_some(first)
    });
    let Some(dense) = dense else {
        return;
    };
    for (name, _) in &mut checkpoint.tensors {
        if let Some(variable) = name.strip_prefix(&format!("{dense}/")) {
            *name = format!("predictions/{variable}");
        }
    }
}

/// tf-keras metadata writes tuples as `{"class_name": "__tuple__", "items": [...]}`; the
/// model config elsewhere has plain arrays.
fn untuple(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(mut map) => {
            if map.get("class_name").and_then(Value::as_str) == Some("__tuple__") {
                if let Some(Value::Array(items)) = map.remove("items") {
                    return Value::Array(items.into_iter().map(untuple).collect());
                }
            }
            Value::Object(map.into_iter().map(|(k, v)| (k, untuple(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(untuple).collect()),
        other => other,
    }
}

/// Whether `path` is a regular file whose first bytes are an ONNX `ModelProto`'s (after the
/// containers whose magic numbers are checked first).
fn is_onnx(path: &Path) -> bool {
    let mut head = Vec::with_capacity(16);
    let read = effnet_io::open_regular(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .is_ok();
    read && !head.starts_with(effnet_keras::HDF5_MAGIC)
        && !head.starts_with(b"PK\x03\x04")
        && !effnet_torch::is_legacy(&head)
        && !effnet_safetensors::sniff(&head)
        && effnet_onnx::read::sniff(&head)
}

/// Whether `path` denotes a tensor-bundle checkpoint: a folder (not a SavedModel), an
/// `.index` or `.data-*` file, a prefix with an `.index` beside it, or a file ending in the
/// table magic.
fn looks_like_tf_checkpoint(path: &Path) -> bool {
    if path.is_dir() {
        return true;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(".index") || name.contains(".data-") {
        return true;
    }
    if !path.exists() {
        let mut index = path.as_os_str().to_owned();
        index.push(".index");
        return Path::new(&index).is_file();
    }
    let tail = (|| {
        use std::io::{Seek, SeekFrom};
        let mut file = effnet_io::open_regular(path).ok()?;
        let len = file.metadata().ok()?.len();
        if len < 48 {
            return None;
        }
        file.seek(SeekFrom::End(-8)).ok()?;
        let mut tail = [0u8; 8];
        file.read_exact(&mut tail).ok()?;
        Some(tail)
    })();
    tail.is_some_and(|t| effnet_tf::is_index(&t))
}

/// What a TF checkpoint holds: the model's tensors (Keras names reconstructed for object-based
/// checkpoints, variable names for name-based ones; facts about the bundle in the metadata).
fn read_tf(path: &Path) -> Result<Tensors, ImportError> {
    let bundle = effnet_tf::read(path)?;
    let mut notes = BTreeMap::new();
    notes.insert("tf.prefix".into(), bundle.prefix.display().to_string());
    let mut skipped = bundle.skipped;
    let Some(graph) = &bundle.object_graph else {
        notes.insert("tf.checkpoint".into(), "name-based".into());
        let kept = effnet_tf::name_based(bundle.tensors);
        if kept.moving_averages {
            notes.insert("tf.moving_averages".into(), "true".into());
        }
        skipped.extend(kept.dropped);
        let checkpoint = Checkpoint {
            tensors: kept.tensors,
            metadata: notes.clone(),
        };
        return Ok(Tensors {
            container: "tf-bundle",
            checkpoint,
            globals: Vec::new(),
            skipped,
            keras_config: None,
            positional: false,
            function_facts: None,
        });
    };
    notes.insert("tf.checkpoint".into(), "object-based".into());
    let Some((layers, others)) = effnet_tf::object_layers(graph) else {
        return Err(unsupported(
            path,
            "an object-based checkpoint whose object graph holds no Keras model (no `layer_with_weights-N` children)",
        ));
    };
    let by_key: std::collections::HashMap<&str, &effnet_ir::Tensor> = bundle
        .tensors
        .iter()
        .map(|(k, t)| (k.as_str(), t))
        .collect();
    let mut unnamed = Vec::with_capacity(layers.len());
    for layer in layers {
        let mut seen = std::collections::HashSet::new();
        let variables: Vec<(String, effnet_ir::Tensor)> = layer
            .variables
            .iter()
            .filter(|(_, key)| seen.insert(key.clone()))
            .filter_map(|(name, key)| Some((name.clone(), (*by_key.get(key.as_str())?).clone())))
            .collect();
        let Some(kind) = effnet_naming::positional::LayerKind::from_variables(&variables) else {
            return Err(unsupported(
                path,
                &format!(
                    "`{}` is not a layer of a keras.applications EfficientNet (variables {})",
                    keras_config::elide(&layer.path),
                    keras_config::elide(
                        &layer
                            .variables
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                ),
            ));
        };
        unnamed.push(effnet_naming::positional::UnnamedLayer {
            kind,
            origin: layer.path,
            variables,
        });
    }
    for key in others {
        if by_key.contains_key(key.as_str()) || key.ends_with("VARIABLE_VALUE") {
            let reason = if key.contains(".OPTIMIZER_SLOT") || key.starts_with("optimizer/") {
                "optimizer state"
            } else {
                "not part of the model"
            };
            skipped.push((key, reason.into()));
        }
    }
    let mut checkpoint = name_by_position(path, unnamed)?;
    checkpoint.metadata = notes;
    Ok(Tensors {
        container: "tf-bundle",
        checkpoint,
        globals: Vec::new(),
        skipped,
        keras_config: None,
        positional: true,
        function_facts: None,
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
    let mut checkpoint = Checkpoint::default();
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

/// What a Keras file says about the semantics its weights do not carry.
struct KerasSemantics {
    /// The input preprocessing inside the model; `None` where the file does not say (the
    /// family's, then).
    preprocessing: Option<effnet_spec::Preprocessing>,
    classifier_activation: Option<effnet_ir::Activation>,
    /// From a config: BatchNorm epsilon (the first layer's).
    bn_eps: Option<f64>,
    /// From a config or a function graph: each block's (depthwise stride, has a residual add
    /// when recorded), by Keras block name.
    blocks: Option<std::collections::HashMap<String, (usize, Option<bool>)>>,
    /// From a config: the input height (square inputs).
    resolution: Option<usize>,
    /// From a config: the activation of the stem, blocks and head.
    activation: Option<effnet_ir::Activation>,
    /// From a config: the rate of `top_dropout`.
    dropout: Option<f64>,
    /// From a config: layers whose activation differs from the model's (`activation`), by
    /// Keras layer name (the graph's node name).
    layer_activations: Vec<(String, effnet_ir::Activation)>,
    /// From a config: convolutions that do not pad TF "same", with what they pad.
    layer_padding: Vec<(String, effnet_ir::Padding)>,
    /// From a config: what it records that the graph cannot carry.
    deviations: Vec<effnet_spec::Finding>,
}

/// A Keras activation setting (`"swish"`, or Keras 3's `{"class_name": "function",
/// "config": "swish"}`) as the IR's; `Ok(None)` for `linear`.
fn keras_activation(value: &serde_json::Value) -> Result<Option<effnet_ir::Activation>, String> {
    use effnet_ir::Activation;
    let name = value
        .as_str()
        .or_else(|| value.get("config").and_then(serde_json::Value::as_str))
        .unwrap_or("");
    Ok(Some(match name {
        "swish" | "silu" => Activation::Swish,
        "relu" => Activation::Relu,
        "relu6" => Activation::Relu6,
        "sigmoid" => Activation::Sigmoid,
        "softmax" => Activation::Softmax,
        "linear" | "" => return Ok(None),
        other => return Err(format!("activation `{other}`, which effnet does not model")),
    }))
}

/// Keras' name of a block: `block{stage − 1}{letter}` (`block2a` is paper stage 3, block 0).
fn keras_block_name(stage: u8, index: u16) -> String {
    let letter = char::from_u32(u32::from('a') + u32::from(index)).unwrap_or('?');
    format!("block{}{letter}", stage.saturating_sub(1))
}

/// The paper stage and block (from 1) of a Keras layer name: `stem_*` is stage 1, `top_*`
/// stage 9, `block2b_*` stage 3 block 2.
fn keras_layer_place(layer: &str) -> (Option<u8>, Option<u16>) {
    if layer.starts_with("stem_") {
        return (Some(1), None);
    }
    if layer.starts_with("top_") {
        return (Some(9), None);
    }
    let Some(rest) = layer.strip_prefix("block") else {
        return (None, None);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let letter = rest[digits.len()..].chars().next();
    match (digits.parse::<u8>(), letter) {
        (Ok(n), Some(c)) if c.is_ascii_lowercase() => {
            (n.checked_add(1), Some(u16::from(c as u8 - b'a') + 1))
        }
        _ => (None, None),
    }
}

/// From a full model's config: a second `Rescaling` after `Normalization` (the Keras ≥ 2.9
/// variance fix) and the classifier's activation. Without a config: the fix is taken to be
/// there when the stored "variance" is the ImageNet standard deviation (the values the
/// keras-applications files ship, which the fix exists for), and the head is softmax.
fn keras_semantics(
    config: Option<&serde_json::Value>,
    checkpoint: &Checkpoint,
    warnings: &mut Vec<String>,
) -> Result<KerasSemantics, String> {
    let layers = config
        .and_then(|c| c.pointer("/config/layers"))
        .and_then(|l| l.as_array());
    if let Some(layers) = layers {
        fn class(l: &serde_json::Value) -> &str {
            l.get("class_name").and_then(|c| c.as_str()).unwrap_or("")
        }
        // The classes keras.applications builds an EfficientNet from (tf-keras and Keras 3).
        const KNOWN: [&str; 14] = [
            "InputLayer",
            "Rescaling",
            "Normalization",
            "ZeroPadding2D",
            "Conv2D",
            "DepthwiseConv2D",
            "BatchNormalization",
            "Activation",
            "GlobalAveragePooling2D",
            "Reshape",
            "Multiply",
            "Add",
            "Dropout",
            "Dense",
        ];
        if let Some(l) = layers.iter().find(|l| !KNOWN.contains(&class(l))) {
            return Err(format!(
                "the config's layer `{}` is a `{}`, not a layer of a keras.applications EfficientNet",
                l.pointer("/config/name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("?"),
                class(l)
            ));
        }
        // One classifier: a hidden Dense (a deeper head) is not part of the graph effnet builds.
        let denses: Vec<&serde_json::Value> =
            layers.iter().filter(|l| class(l) == "Dense").collect();
        if denses.len() > 1 {
            return Err(format!(
                "the config has {} Dense layers (`{}` …); effnet models one classifier after the pooling",
                denses.len(),
                denses[0]
                    .pointer("/config/name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("?")
            ));
        }
        let norm = layers.iter().position(|l| class(l) == "Normalization");
        let variance_fix =
            norm.is_some_and(|i| layers.get(i + 1).is_some_and(|l| class(l) == "Rescaling"));
        // keras.applications' EfficientNetV2 normalizes with constants in the config (the
        // checks in keras_config made sure they are ImageNet's mean and std²); S/M/L rescale to
        // [−1, 1] with one Rescaling.
        let constant_norm = norm.is_some_and(|i| {
            layers[i]
                .pointer("/config/mean")
                .is_some_and(|m| !m.is_null())
        });
        let preprocessing = match (norm, variance_fix, constant_norm) {
            (Some(_), _, true) => effnet_spec::Preprocessing::KerasNormalization,
            (Some(_), fix, false) => effnet_spec::Preprocessing::Keras { variance_fix: fix },
            (None, _, _) if layers.iter().any(|l| class(l) == "Rescaling") => {
                effnet_spec::Preprocessing::KerasSigned
            }
            (None, _, _) => effnet_spec::Preprocessing::External,
        };
        let head_activation = match layers
            .iter()
            .rev()
            .find(|l| class(l) == "Dense")
            .and_then(|l| l.pointer("/config/activation"))
        {
            Some(a) => keras_activation(a).map_err(|e| format!("the classifier uses {e}"))?,
            None => None,
        };
        let name = |l: &serde_json::Value| {
            l.pointer("/config/name")
                .and_then(|n| n.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let bn_eps = layers
            .iter()
            .find(|l| class(l) == "BatchNormalization")
            .and_then(|l| l.pointer("/config/epsilon"))
            .and_then(serde_json::Value::as_f64);
        let adds: std::collections::HashSet<String> = layers
            .iter()
            .filter(|l| class(l) == "Add")
            .filter_map(|l| name(l).strip_suffix("_add").map(str::to_owned))
            .collect();
        // The conv that carries a block's stride: the depthwise one (`_dwconv`, V2's
        // `_dwconv2`), or a Fused-MBConv's k×k expansion or (without expansion) projection.
        let blocks = layers
            .iter()
            .filter(|l| match class(l) {
                "DepthwiseConv2D" => true,
                "Conv2D" => l
                    .pointer("/config/kernel_size/0")
                    .and_then(serde_json::Value::as_u64)
                    .is_some_and(|k| k > 1),
                _ => false,
            })
            .filter_map(|l| {
                let layer = name(l);
                let block = ["_dwconv", "_dwconv2", "_expand_conv", "_project_conv"]
                    .iter()
                    .find_map(|suffix| layer.strip_suffix(suffix))?
                    .to_owned();
                let stride = l
                    .pointer("/config/strides/0")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(1) as usize;
                let residual = adds.contains(&block);
                Some((block, (stride, Some(residual))))
            })
            .collect();
        // tf-keras writes `batch_input_shape`, Keras 3 `batch_shape`: [null, h, w, 3].
        let resolution = layers
            .iter()
            .find(|l| class(l) == "InputLayer")
            .and_then(|l| {
                l.pointer("/config/batch_shape/1")
                    .or_else(|| l.pointer("/config/batch_input_shape/1"))
            })
            .and_then(serde_json::Value::as_u64)
            .and_then(|r| usize::try_from(r).ok())
            .filter(|&r| (1..=65_536).contains(&r));
        // Every Activation layer but the SE gate uses the model's `activation` argument. A
        // layer with another one is kept in the graph where effnet models it, and is a
        // deviation the audit reports where it does not.
        let mut found_activations: Vec<(String, effnet_ir::Activation)> = Vec::new();
        let mut deviations = Vec::new();
        for l in layers.iter().filter(|l| class(l) == "Activation") {
            let layer = name(l);
            if layer.ends_with("_se_expand") {
                continue;
            }
            match keras_activation(l.pointer("/config/activation").unwrap_or_default()) {
                Ok(Some(a)) => found_activations.push((layer, a)),
                Ok(None) => {}
                Err(_) => {
                    let (stage, block) = keras_layer_place(&layer);
                    let found = l
                        .pointer("/config/activation")
                        .map(|v| {
                            v.as_str()
                                .or_else(|| v.get("config").and_then(|c| c.as_str()))
                                .unwrap_or("?")
                        })
                        .map(keras_config::elide)
                        .unwrap_or_default();
                    let layer = keras_config::elide(&layer);
                    deviations.push(effnet_spec::Finding {
                        severity: effnet_spec::Severity::Error,
                        stage,
                        block,
                        field: "activation",
                        expected: "swish".into(),
                        found: found.clone(),
                        message: format!(
                            "{}activation `{found}` in `{layer}`, spec says swish (an activation effnet does not model)",
                            match (stage, block) {
                                (Some(s), Some(b)) => format!("stage {s} block {b}: "),
                                (Some(s), None) => format!("stage {s}: "),
                                _ => String::new(),
                            }
                        ),
                    });
                }
            }
        }
        // The model's activation is the one most layers use; the others are per layer.
        let activation = {
            let mut counts: Vec<(effnet_ir::Activation, usize)> = Vec::new();
            for (_, a) in &found_activations {
                match counts.iter_mut().find(|(b, _)| b == a) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((*a, 1)),
                }
            }
            counts.iter().max_by_key(|(_, n)| *n).map(|(a, _)| *a)
        };
        let layer_activations: Vec<(String, effnet_ir::Activation)> = found_activations
            .into_iter()
            .filter(|(_, a)| Some(*a) != activation)
            .collect();
        let dropout = layers
            .iter()
            .find(|l| name(l) == "top_dropout")
            .and_then(|l| l.pointer("/config/rate"))
            .and_then(serde_json::Value::as_f64);
        // keras.applications pads stride-2 convs with ZeroPadding2D(correct_pad(...)), computed
        // from the input size the model was built with; without one it pads (k/2 − 1, k/2).
        let asymmetric = layers
            .iter()
            .filter(|l| class(l) == "ZeroPadding2D")
            .filter_map(|l| l.pointer("/config/padding/0"))
            .any(|p| p.get(0) != p.get(1));
        let layer_padding = check_keras_padding(layers, resolution)?;
        if resolution.is_none() && asymmetric {
            warnings.push(
                "the Keras model was built without a fixed input size, so it pads stride-2 convolutions by (k/2 − 1, k/2) at any size; effnet's TF \"same\" padding equals that at even input sizes only".into(),
            );
        }
        return Ok(KerasSemantics {
            resolution,
            preprocessing: Some(preprocessing),
            classifier_activation: head_activation,
            bn_eps,
            blocks: Some(blocks),
            activation,
            dropout,
            layer_activations,
            layer_padding,
            deviations,
        });
    }
    let shipped_std = holds_imagenet_std(checkpoint);
    // EfficientNet's Normalization learns its statistics (weights); EfficientNetV2's holds
    // constants (none): its preprocessing is the family's.
    let has_normalization = checkpoint
        .tensors
        .iter()
        .any(|(n, _)| n.starts_with("normalization"));
    warnings.push(format!(
        "a weights-only Keras file does not record its preprocessing: assumed {} and a softmax head",
        match (has_normalization, shipped_std) {
            (false, _) => "the family's (EfficientNetV2: Rescaling + Normalization with ImageNet's mean and variance as constants)",
            (true, true) => "the Keras ≥ 2.9 variance fix (its stored \"variance\" is ImageNet's std)",
            (true, false) => "no variance fix",
        }
    ));
    Ok(KerasSemantics {
        preprocessing: has_normalization.then_some(effnet_spec::Preprocessing::Keras {
            variance_fix: shipped_std,
        }),
        classifier_activation: Some(effnet_ir::Activation::Softmax),
        bn_eps: None,
        blocks: None,
        resolution: None,
        activation: None,
        dropout: None,
        layer_activations: Vec::new(),
        layer_padding: Vec::new(),
        deviations: Vec::new(),
    })
}

/// Walks a Keras config's convolutions in order, tracking the spatial size from `resolution`:
/// a `ZeroPadding2D` must be followed by a "valid" convolution. Returns the convolutions that
/// do not pad what TF "same" pads at that size (a `ZeroPadding2D` with other amounts, a "valid"
/// convolution larger than 1×1 without one), with the fixed pads they have: the graph keeps
/// them, the audit reports them. What cannot be read is an error.
fn check_keras_padding(
    layers: &[serde_json::Value],
    resolution: Option<usize>,
) -> Result<Vec<(String, effnet_ir::Padding)>, String> {
    let mut odd = Vec::new();
    let number = |l: &serde_json::Value, key: &str| {
        l.pointer(&format!("/config/{key}/0"))
            .and_then(serde_json::Value::as_u64)
            .map(|v| v as usize)
    };
    let name = |l: &serde_json::Value| {
        l.pointer("/config/name")
            .and_then(|n| n.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let mut size = resolution;
    let mut pending: Option<(String, [usize; 4])> = None;
    for l in layers {
        match l.get("class_name").and_then(|c| c.as_str()).unwrap_or("") {
            "ZeroPadding2D" => {
                let pad = |i: &str| {
                    l.pointer(&format!("/config/padding/0/{i}"))
                        .and_then(serde_json::Value::as_u64)
                        .map(|v| v as usize)
                };
                let (Some(top), Some(bottom)) = (pad("0"), pad("1")) else {
                    return Err(format!(
                        "layer `{}` has a padding effnet cannot read",
                        name(l)
                    ));
                };
                let side = |i: &str| {
                    l.pointer(&format!("/config/padding/1/{i}"))
                        .and_then(serde_json::Value::as_u64)
                        .map(|v| v as usize)
                };
                let (left, right) = (side("0").unwrap_or(top), side("1").unwrap_or(bottom));
                pending = Some((name(l), [top, left, bottom, right]));
            }
            "Conv2D" | "DepthwiseConv2D" => {
                let (Some(k), Some(stride)) = (number(l, "kernel_size"), number(l, "strides"))
                else {
                    return Err(format!("layer `{}` has no kernel size or strides", name(l)));
                };
                let stride = stride.max(1);
                let mode = l
                    .pointer("/config/padding")
                    .and_then(|p| p.as_str())
                    .unwrap_or("");
                // Sizes come from the file: checked, and an empty feature map is an error.
                let vanished = || {
                    format!(
                        "layer `{}` leaves no pixels at the input size the config records",
                        name(l)
                    )
                };
                let valid = |n: usize| {
                    n.checked_sub(k)
                        .map(|d| d / stride + 1)
                        .ok_or_else(vanished)
                };
                match (pending.take(), mode) {
                    (Some((_, [top, left, bottom, right])), "valid") => {
                        if let Some(n) = size {
                            let out = n.div_ceil(stride);
                            let total = out
                                .checked_sub(1)
                                .and_then(|o| o.checked_mul(stride))
                                .and_then(|o| o.checked_add(k))
                                .ok_or_else(vanished)?
                                .saturating_sub(n);
                            let want = (total / 2, total - total / 2);
                            if (top, bottom) != want || (left, right) != want {
                                odd.push((
                                    name(l),
                                    effnet_ir::Padding::Explicit {
                                        top,
                                        left,
                                        bottom,
                                        right,
                                    },
                                ));
                            }
                            size = Some(valid(n + top + bottom)?);
                        }
                    }
                    (None, "same") => size = size.map(|n| n.div_ceil(stride)),
                    (None, "valid") if k == 1 => size = size.map(valid).transpose()?,
                    (None, "valid") => {
                        odd.push((name(l), effnet_ir::Padding::Valid));
                        size = size.map(valid).transpose()?;
                    }
                    (_, other) => {
                        return Err(format!(
                            "layer `{}` is a {k}×{k} convolution with padding \"{other}\" where keras.applications uses TF \"same\"",
                            name(l)
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(odd)
}

/// Whether the Normalization "variance" is ImageNet's standard deviation (the values the
/// keras-applications weights ship, which the Keras ≥ 2.9 variance fix exists for).
fn holds_imagenet_std(checkpoint: &Checkpoint) -> bool {
    let variance = checkpoint
        .get("normalization/variance")
        .and_then(|t| t.to_f32_vec().ok());
    variance.as_ref().is_some_and(|v| {
        v.len() == 3
            && v.iter()
                .zip([0.229f32, 0.224, 0.225])
                .all(|(a, b)| (a - b).abs() < 1e-3)
    })
}

/// What a SavedModel's serving function says: strides of the depthwise convolutions (bound to
/// their kernels), the activation, a softmax head, the input size. The variance fix is
/// inferred from the stored variance, as for weights-only files.
fn function_semantics(
    facts: &effnet_tf::saved_model::FunctionFacts,
    checkpoint: &Checkpoint,
    warnings: &mut Vec<String>,
) -> KerasSemantics {
    use effnet_ir::Activation;
    let has = |op: &str| facts.ops.contains_key(op);
    let activation = if has("Relu6") {
        Activation::Relu6
    } else if has("Relu") {
        Activation::Relu
    } else {
        Activation::Swish
    };
    let blocks = facts
        .conv_strides
        .iter()
        .filter_map(|(kernel, &stride)| {
            let layer = kernel.split('/').next()?;
            Some((layer.strip_suffix("_dwconv")?.to_owned(), (stride, None)))
        })
        .collect();
    let variance_fix = holds_imagenet_std(checkpoint);
    warnings.push(format!(
        "the SavedModel's serving function `{}` gives strides, activation and head; the preprocessing is assumed {}",
        facts.function,
        if variance_fix {
            "to include the Keras ≥ 2.9 variance fix (its stored \"variance\" is ImageNet's std)"
        } else {
            "to be Rescaling + Normalization without the variance fix"
        }
    ));
    KerasSemantics {
        preprocessing: Some(effnet_spec::Preprocessing::Keras { variance_fix }),
        classifier_activation: has("Softmax").then_some(Activation::Softmax),
        bn_eps: None,
        blocks: Some(blocks),
        resolution: facts.resolution,
        activation: Some(activation),
        dropout: None,
        layer_activations: Vec::new(),
        layer_padding: Vec::new(),
        deviations: Vec::new(),
    }
}

fn unsupported(path: &Path, message: &str) -> ImportError {
    ImportError::Unsupported {
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

struct Unwrapped {
    checkpoint: Checkpoint,
    key: Option<String>,
    other_keys: Vec<String>,
    prefix: Option<String>,
}

/// How many names the best scheme understands, once wrapper prefixes are stripped (linear in
/// the number of names: no checkpoint is copied).
fn score(mut names: Vec<&str>) -> usize {
    for wrapper in ["module.", "model.", "module."] {
        if !names.is_empty() && names.iter().all(|n| n.starts_with(wrapper)) {
            for n in &mut names {
                *n = &n[wrapper.len()..];
            }
        }
    }
    detect(&names).first().map_or(0, |(_, n)| *n)
}

/// Removes DataParallel's `module.` and Lightning's `model.` while every name has one.
fn strip_wrappers(mut checkpoint: Checkpoint) -> (Checkpoint, Option<String>) {
    let mut prefix = String::new();
    for wrapper in ["module", "model", "module"] {
        let dotted = format!("{wrapper}.");
        if !checkpoint.is_empty()
            && checkpoint
                .tensors
                .iter()
                .all(|(n, _)| n.starts_with(&dotted))
        {
            checkpoint = under(&checkpoint, wrapper);
            prefix.push_str(&dotted);
        }
    }
    (checkpoint, (!prefix.is_empty()).then_some(prefix))
}

/// The tensors under `prefix.`, with the prefix removed.
fn under(checkpoint: &Checkpoint, prefix: &str) -> Checkpoint {
    let dotted = format!("{prefix}.");
    Checkpoint {
        tensors: checkpoint
            .tensors
            .iter()
            .filter_map(|(n, t)| n.strip_prefix(&dotted).map(|s| (s.to_owned(), t.clone())))
            .collect(),
        metadata: checkpoint.metadata.clone(),
    }
}

/// Picks the nested dictionary holding the model and strips wrapper prefixes. Every pass is
/// linear in the number of tensors: names are grouped by their first component once, and
/// each group is scored once.
fn unwrap(
    path: &Path,
    checkpoint: Checkpoint,
    key: Option<&str>,
) -> Result<Unwrapped, ImportError> {
    let mut top: Vec<String> = Vec::new();
    let mut groups: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    for (n, _) in &checkpoint.tensors {
        if let Some((first, rest)) = n.split_once('.') {
            match groups.entry(first) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    top.push(first.to_owned());
                    e.insert(vec![rest]);
                }
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().push(rest),
            }
        }
    }
    let best = match key {
        Some(_) => None,
        None => {
            let whole = score(checkpoint.tensors.iter().map(|(n, _)| n.as_str()).collect());
            // A group scores at most its size: groups are scored largest first, and those
            // that cannot beat the whole file or the best so far are skipped; groups with the
            // same names are scored once.
            // Ties go to the later key, as `max_by_key` over `top` would.
            let mut order: Vec<(usize, &String, Vec<&str>)> = top
                .iter()
                .enumerate()
                .map(|(i, t)| (i, t, groups.remove(t.as_str()).unwrap_or_default()))
                .collect();
            order.sort_by_key(|(_, _, names)| std::cmp::Reverse(names.len()));
            let mut known: std::collections::HashMap<Vec<&str>, usize> =
                std::collections::HashMap::new();
            let mut best: Option<(usize, &String, usize)> = None;
            let rank = |t: &str| {
                PREFERRED_KEYS
                    .iter()
                    .position(|p| *p == t)
                    .unwrap_or(PREFERRED_KEYS.len())
            };
            for (i, t, names) in order {
                let bound = names.len();
                if bound <= whole || best.is_some_and(|(_, _, s)| bound < s) {
                    continue;
                }
                let s = match known.get(&names) {
                    Some(&s) => s,
                    None => {
                        let s = score(names.clone());
                        known.insert(names, s);
                        s
                    }
                };
                let key = (s, std::cmp::Reverse(rank(t)), i);
                let better = match best {
                    None => s > whole,
                    Some((bi, b, bs)) => key > (bs, std::cmp::Reverse(rank(b)), bi),
                };
                if better {
                    best = Some((i, t, s));
                }
            }
            best.map(|(_, t, _)| t.clone())
        }
    };
    drop(groups);
    let (chosen, taken) = match key {
        Some(k) => {
            let sub = under(&checkpoint, k);
            if sub.is_empty() {
                const SHOWN: usize = 20;
                // Keys are the top-level names under which a model's weights sit, not the
                // first component of every tensor name (`features` of a plain state dict).
                let mut by_key: std::collections::HashMap<&str, Vec<&str>> =
                    std::collections::HashMap::new();
                for (n, _) in &checkpoint.tensors {
                    if let Some((first, rest)) = n.split_once('.') {
                        by_key.entry(first).or_default().push(rest);
                    }
                }
                let keys: Vec<&String> = top
                    .iter()
                    .filter(|t| {
                        by_key
                            .remove(t.as_str())
                            .is_some_and(|names| score(names) > 0)
                    })
                    .collect();
                if keys.is_empty() {
                    return Err(ImportError::NoSuchKey {
                        path: path.to_owned(),
                        key: k.to_owned(),
                        available: "the file holds one model's weights, not a dictionary of them: leave out --key".into(),
                    });
                }
                let mut available = "keys holding a model: ".to_owned();
                available += &keys
                    .iter()
                    .take(SHOWN)
                    .map(|k| effnet_io::escape(k).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ");
                if keys.len() > SHOWN {
                    available.push_str(&format!(" and {} more", keys.len() - SHOWN));
                }
                return Err(ImportError::NoSuchKey {
                    path: path.to_owned(),
                    key: k.to_owned(),
                    available,
                });
            }
            (sub, Some(k.to_owned()))
        }
        None => match best {
            Some(t) => (under(&checkpoint, &t), Some(t)),
            None => (checkpoint, None),
        },
    };
    let other_keys = match &taken {
        Some(t) => top.iter().filter(|k| *k != t).cloned().collect(),
        None => Vec::new(),
    };
    let (checkpoint, prefix) = strip_wrappers(chosen);
    Ok(Unwrapped {
        checkpoint,
        key: taken,
        other_keys,
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(name: &str, k: u64, stride: u64, padding: &str) -> serde_json::Value {
        json!({"class_name": "Conv2D", "config": {"name": name, "kernel_size": [k, k],
            "strides": [stride, stride], "padding": padding}})
    }

    fn pad(name: &str, top: u64, bottom: u64) -> serde_json::Value {
        json!({"class_name": "ZeroPadding2D", "config": {"name": name,
            "padding": [[top, bottom], [top, bottom]]}})
    }

    #[test]
    fn padding_walk_checks_tf_same_and_never_underflows() {
        let stem = [pad("stem_conv_pad", 0, 1), conv("stem_conv", 3, 2, "valid")];
        assert_eq!(check_keras_padding(&stem, Some(64)), Ok(vec![]));
        // Odd sizes pad symmetrically under TF "same": (0, 1) there is kept as what it is.
        let odd = effnet_ir::Padding::Explicit {
            top: 0,
            left: 0,
            bottom: 1,
            right: 1,
        };
        assert_eq!(
            check_keras_padding(&stem, Some(65)),
            Ok(vec![("stem_conv".to_owned(), odd)])
        );
        assert_eq!(
            check_keras_padding(&[pad("p", 1, 1), conv("c", 3, 2, "valid")], Some(65)),
            Ok(vec![])
        );
        // Sizes a hostile config can give: nothing left, or a kernel wider than the map.
        for n in [1, 2] {
            let tiny = [conv("c", 7, 1, "valid")];
            assert!(check_keras_padding(&tiny, Some(n)).is_err());
        }
        let huge = [
            pad("p", 0, 1),
            conv("c", u64::MAX / 2, u64::MAX / 2, "valid"),
        ];
        assert!(check_keras_padding(&huge, Some(3)).is_err());
        // A 3×3 "valid" convolution is not TF "same": kept as "valid".
        assert_eq!(
            check_keras_padding(&[conv("c", 3, 1, "valid")], None),
            Ok(vec![("c".to_owned(), effnet_ir::Padding::Valid)])
        );
        // A padding followed by a "same" convolution is not a layout effnet reads.
        assert!(check_keras_padding(&[pad("p", 1, 1), conv("c", 3, 1, "same")], None).is_err());
    }

    #[test]
    fn a_config_with_a_deeper_head_is_refused() {
        let config = json!({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [null, 64, 64, 3]}},
            {"class_name": "Dense", "config": {"name": "hidden", "activation": "relu"}},
            {"class_name": "Dense", "config": {"name": "out", "activation": "softmax"}},
        ]}});
        let error = keras_semantics(Some(&config), &Checkpoint::default(), &mut Vec::new())
            .err()
            .unwrap();
        assert!(error.contains("2 Dense layers"), "{error}");
    }

    #[test]
    fn a_zero_input_size_is_not_a_resolution() {
        let config = json!({"class_name": "Functional", "config": {"layers": [
            {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [null, 0, 0, 3]}},
        ]}});
        let semantics =
            keras_semantics(Some(&config), &Checkpoint::default(), &mut Vec::new()).unwrap();
        assert_eq!(semantics.resolution, None);
    }
}

#[cfg(test)]
mod unwrap_tests {
    use super::*;
    use effnet_ir::Tensor;

    fn checkpoint(names: impl IntoIterator<Item = String>) -> Checkpoint {
        let t = Tensor::shape_only(DType::F32, vec![1]).unwrap();
        Checkpoint {
            tensors: names.into_iter().map(|n| (n, t.clone())).collect(),
            metadata: BTreeMap::new(),
        }
    }

    const TORCHVISION: [&str; 4] = [
        "features.0.0.weight",
        "features.0.1.weight",
        "features.1.0.block.0.0.weight",
        "classifier.1.weight",
    ];

    #[test]
    fn the_preferred_key_wins_a_tie_and_wrappers_are_stripped() {
        let names = ["model_ema", "state_dict", "other"]
            .iter()
            .flat_map(|k| TORCHVISION.iter().map(move |n| format!("{k}.module.{n}")))
            .chain(["epoch".to_owned()]);
        let u = unwrap(Path::new("x.pth"), checkpoint(names), None).unwrap();
        assert_eq!(u.key.as_deref(), Some("state_dict"));
        assert_eq!(u.prefix.as_deref(), Some("module."));
        assert_eq!(u.other_keys, ["model_ema", "other"]);
        assert_eq!(u.checkpoint.tensors[0].0, "features.0.0.weight");
        // A larger group beats the preferred key.
        let names = TORCHVISION
            .iter()
            .map(|n| format!("ema.{n}"))
            .chain(TORCHVISION[..2].iter().map(|n| format!("model.{n}")));
        let u = unwrap(Path::new("x.pth"), checkpoint(names), None).unwrap();
        assert_eq!(u.key.as_deref(), Some("ema"));
    }

    #[test]
    fn a_hundred_thousand_top_level_keys_unwrap_in_linear_time() {
        let n = 100_000;
        let names = (0..n).map(|i| format!("k{i}.w{i}"));
        let start = std::time::Instant::now();
        let u = unwrap(Path::new("x.pth"), checkpoint(names), None).unwrap();
        assert_eq!(u.checkpoint.len(), n);
        assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
        // None of these prefixes holds a model: the error says so, in linear time too.
        let names = (0..n).map(|i| format!("k{i}.w{i}"));
        let start = std::time::Instant::now();
        let err = unwrap(Path::new("x.pth"), checkpoint(names), Some("nope"))
            .err()
            .unwrap()
            .to_string();
        assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
        assert!(err.contains("leave out --key"), "{err}");
        // 100,000 keys that each hold a model are listed 20 at a time.
        let names = (0..n).flat_map(|i| TORCHVISION.iter().map(move |t| format!("k{i}.{t}")));
        let err = unwrap(
            Path::new("x.pth"),
            checkpoint(names.take(20_000 * TORCHVISION.len())),
            Some("nope"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("and 19980 more"), "{err}");
    }
}
