//! Converting an imported model: checked against the rules of [`rules`] (what is refused, what
//! a flag allows and records), the tensors named by a target scheme (epsilon moved), cast to a
//! target dtype with every loss counted, written atomically, and optionally re-read and
//! checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use effnet_import::{Change, Model};
use effnet_ir::{ConversionStats, DType, Tensor};
use effnet_naming::ParsedKey;
use effnet_naming::export::{ExportError, export};
use effnet_spec::{PaddingStyle, Scheme};
use rayon::prelude::*;

pub mod check;
pub mod keras;
pub mod rules;
pub use check::CheckOptions;
pub use keras::{KerasOptions, KerasReport, to_keras};
pub use rules::{Allowances, Plan, Target};

/// How to write a safetensors file.
#[derive(Clone, Debug)]
pub struct SafetensorsOptions {
    /// Target naming scheme; `None` keeps the source's (timm-tf for TF/Keras sources).
    pub naming: Option<Scheme>,
    /// Target dtype of the floating-point tensors.
    pub dtype: DType,
    /// Keep BatchNorm running statistics in f32 when `dtype` is narrower.
    pub keep_bn_f32: bool,
    /// Clamp values beyond the f16 range instead of refusing.
    pub clamp: bool,
    /// What the user allowed or stated (`--allow-padding-change`, `--allow-shortcut-change`,
    /// `--activation`, `--assume-architecture`); see [`rules`].
    pub allow: Allowances,
    /// Overwrite an existing output.
    pub force: bool,
    /// Re-read the output and check every tensor.
    pub verify: bool,
    /// Run the source and the written output on a seeded input before the output replaces
    /// anything (`--check`).
    pub check: Option<CheckOptions>,
}

/// What a conversion did.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    /// The semantic changes allowed by a flag, recorded in the output's `effnet.changes`:
    /// print one warning each.
    pub changes: Vec<Change>,
    /// The file written.
    pub output: PathBuf,
    /// Its naming scheme.
    pub naming: Scheme,
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of tensor data written.
    pub bytes: usize,
    /// Losses of the dtype conversion, over all tensors.
    pub stats: ConversionStats,
    /// Tensors with values that flushed to zero, with the count.
    pub flushed: Vec<(String, usize)>,
    /// BatchNorm epsilons moved, as `(from, to, layers)`.
    pub eps_moved: Vec<(f64, f64, usize)>,
    /// Things the user should know.
    pub notes: Vec<String>,
    /// With `verify`: the largest relative error of any tensor against the source (0 for an
    /// exact copy), and its name.
    pub verified: Option<(f64, String)>,
    /// With `check`: the source and the output run side by side.
    pub checked: Option<effnet_exec::Comparison>,
}

/// Why a conversion failed. Messages name the file or tensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// A rule of [`rules`] refuses the conversion: the output would not compute what the
    /// source computes, or would rest on something the file does not say.
    #[error("{}: {message}", path.display())]
    Refused {
        /// The input.
        path: PathBuf,
        /// Why, and the flag that states or allows what is missing.
        message: String,
    },
    /// The model cannot be expressed in the target scheme.
    #[error("{}: {reason}", path.display())]
    Export {
        /// The input.
        path: PathBuf,
        /// Why.
        reason: ExportError,
    },
    /// Values beyond the target dtype's range.
    #[error(
        "{}: {count} value(s) in {} tensor(s) exceed the f16 range (±65504), e.g. in `{first}`: pass --clamp to clamp them, or keep f32",
        path.display(),
        tensors.len()
    )]
    Overflow {
        /// The input holding the values.
        path: PathBuf,
        /// Tensors with overflowing values.
        tensors: Vec<String>,
        /// The first of them.
        first: String,
        /// Values overflowing.
        count: usize,
    },
    /// A checksum over the source's weights fails.
    #[error(transparent)]
    Source(Box<effnet_import::ImportError>),
    /// Serializing failed.
    #[error(transparent)]
    Write(#[from] effnet_safetensors::WriteError),
    /// Writing a Keras file failed.
    #[error("{}: {reason}", path.display())]
    Keras {
        /// The output.
        path: PathBuf,
        /// Why.
        reason: effnet_keras::write::WriteError,
    },
    /// The output path breaks a rule of [`effnet_io::output`] (exists, is the input, …).
    #[error(transparent)]
    Output(#[from] effnet_io::OutputError),
    /// Writing or renaming the output failed.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The output.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
    /// The graph could not be exported to ONNX.
    #[error("{}: {reason}", path.display())]
    Onnx {
        /// The input.
        path: PathBuf,
        /// Why.
        reason: effnet_onnx::OnnxError,
    },
    /// `--check` could not run the two models.
    #[error("{}: --check failed: {message}", path.display())]
    Check {
        /// The output.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `--check` ran both models and their outputs differ beyond the tolerance; nothing was
    /// written.
    #[error(
        "{}: --check: the output computes something else than the source (relative difference {} > {:e}{}); nothing was written",
        path.display(),
        comparison.output.diff.map_or("of shapes".to_owned(), |d| format!("{:.3e}", d.relative)),
        comparison.tolerance,
        comparison.first_differing_stage.map_or(String::new(), |s| format!(", first differing at stage {s}"))
    )]
    CheckFailed {
        /// The output.
        path: PathBuf,
        /// The comparison, stage by stage.
        comparison: Box<effnet_exec::Comparison>,
    },
    /// Re-reading what was written failed or disagreed.
    #[error("{}: verification failed: {message}", path.display())]
    Verify {
        /// The output.
        path: PathBuf,
        /// What disagreed.
        message: String,
    },
    /// The target dtype is not a float type.
    #[error("--dtype must be f32, f16 or bf16")]
    Dtype,
}

impl From<effnet_import::ImportError> for ConvertError {
    fn from(e: effnet_import::ImportError) -> Self {
        ConvertError::Source(Box::new(e))
    }
}

/// Reports progress: bytes of tensor data processed so far, out of a total.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Writes `model` as a safetensors file at `out`.
pub fn to_safetensors(
    model: &Model,
    out: &Path,
    options: &SafetensorsOptions,
    progress: Progress<'_>,
) -> Result<ConvertReport, ConvertError> {
    if !matches!(options.dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(ConvertError::Dtype);
    }
    effnet_io::check_output(out, &inputs_of(model), options.force)?;
    model.verify_checksums()?;
    let naming = options.naming.unwrap_or(match model.naming {
        Scheme::Keras | Scheme::TfOfficial => Scheme::TimmTf,
        other => other,
    });
    let plan = rules::check(
        model,
        Target::Safetensors {
            scheme: naming,
            explicit: options.naming.is_some(),
        },
        &options.allow,
    )?;
    let mut changes = plan.changes.clone();
    let imported = &model.imported;
    let variant = imported.identity.semantics_variant();
    // A graph whose BatchNorms were folded (ONNX) gets exact identity BatchNorms for a scheme
    // that stores them.
    let unfolded =
        effnet_import::onnx::with_batchnorms(plan.graph(model), naming.semantics(variant).bn_eps)
            .map_err(|e| ConvertError::Refused {
            path: model.path.clone(),
            message: e.to_string(),
        })?;
    let mut exported = export(
        unfolded.as_ref().unwrap_or(plan.graph(model)),
        variant,
        naming,
    )
    .map_err(|reason| ConvertError::Export {
        path: model.path.clone(),
        reason,
    })?;
    if unfolded.is_some() && !model.evidence.batchnorm {
        exported.notes.push(
            "the source's BatchNorms were folded into its convolutions: written as exact identity BatchNorms (γ = 1, β = the bias, mean = 0, var = 1 − eps)".into(),
        );
    }

    // Which names are BatchNorm statistics (kept in f32 with --keep-bn-f32).
    let names: Vec<&str> = exported.tensors.iter().map(|(n, _)| n.as_str()).collect();
    let keys: Vec<Option<ParsedKey>> = effnet_naming::parse_all(naming, &names);
    let target_of = |key: &Option<ParsedKey>| {
        let bn_stat = key.is_some_and(|k| {
            k.layer.is_bn()
                && matches!(
                    k.param,
                    effnet_naming::Param::RunningMean | effnet_naming::Param::RunningVar
                )
        });
        if options.keep_bn_f32 && bn_stat && options.dtype != DType::F32 {
            DType::F32
        } else {
            options.dtype
        }
    };
    let jobs: Vec<(&String, &Tensor, DType)> = exported
        .tensors
        .iter()
        .zip(&keys)
        .map(|((name, tensor), key)| {
            let target = if tensor.dtype().is_float() {
                target_of(key)
            } else {
                tensor.dtype()
            };
            (name, tensor, target)
        })
        .collect();
    let layout: Vec<(String, DType, Vec<usize>)> = jobs
        .iter()
        .map(|(name, tensor, target)| ((*name).clone(), *target, tensor.shape().to_vec()))
        .collect();
    let total: u64 = exported
        .tensors
        .iter()
        .map(|(_, t)| t.nbytes() as u64)
        .sum();
    // Clamping is a change the header records, so with --clamp the values beyond the f16
    // range are counted before anything is written.
    if options.clamp && options.dtype == DType::F16 {
        let over: Vec<(String, usize)> = jobs
            .par_iter()
            .filter(|(_, tensor, target)| *target == DType::F16 && tensor.dtype().is_float())
            .filter_map(|(name, tensor, _)| {
                let values = tensor.to_f32_vec().ok()?;
                let n = values
                    .iter()
                    .filter(|v| v.is_finite() && v.abs() > effnet_ir::F16_MAX)
                    .count();
                (n > 0).then(|| ((*name).clone(), n))
            })
            .collect();
        if let Some(change) = clamp_change(&over) {
            changes.push(change);
        }
    }

    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_owned(), "pt".to_owned());
    metadata.insert(
        "effnet.version".to_owned(),
        env!("CARGO_PKG_VERSION").to_owned(),
    );
    metadata.insert("effnet.source".to_owned(), model.path.display().to_string());
    metadata.insert(
        "effnet.source_container".to_owned(),
        model.container.to_owned(),
    );
    if plan.naming_candidates.is_empty() {
        metadata.insert(
            "effnet.source_naming".to_owned(),
            model.naming.name().to_owned(),
        );
        metadata.insert("effnet.naming".to_owned(), naming.name().to_owned());
        metadata.insert(
            "effnet.padding".to_owned(),
            match exported.padding {
                PaddingStyle::TfSame => "same_upper",
                PaddingStyle::Symmetric => "symmetric",
            }
            .to_owned(),
        );
        metadata.insert("effnet.bn_eps".to_owned(), format!("{:e}", exported.bn_eps));
    } else {
        // Names and values written unchanged: the output claims no more than the input did.
        let candidates: Vec<&str> = plan.naming_candidates.iter().map(|s| s.name()).collect();
        metadata.insert("effnet.naming_candidates".to_owned(), candidates.join(","));
    }
    metadata.insert("effnet.variant".to_owned(), imported.identity.label());
    metadata.insert("effnet.dtype".to_owned(), options.dtype.name().to_owned());
    metadata.extend(recorded(model, &changes, &plan));
    // A source that preprocesses inside itself (Keras): the output, whose schemes have no such
    // nodes, records what its input must go through to compute the same.
    let steps = effnet_exec::in_graph_steps(&imported.graph);
    if !steps.is_empty() {
        metadata.insert(
            effnet_exec::PREPROCESSING_KEY.to_owned(),
            effnet_exec::encode_steps(&steps),
        );
    } else if let Some(recorded) = model.metadata.get(effnet_exec::PREPROCESSING_KEY) {
        metadata.insert(effnet_exec::PREPROCESSING_KEY.to_owned(), recorded.clone());
    }
    let mut checked = None;
    let mut stats = ConversionStats::default();
    let mut flushed = Vec::new();
    let mut overflowing: Vec<(String, usize)> = Vec::new();
    // Converted on every core a batch at a time and written as they come: the output is never
    // held whole.
    effnet_io::write_atomic_checked(
        out,
        &inputs_of(model),
        options.force,
        |file| {
            let file = file.try_clone().map_err(|reason| ConvertError::Io {
                path: out.to_owned(),
                reason,
            })?;
            let mut writer =
                effnet_safetensors::StreamWriter::create(file, out, &layout, &metadata)?;
            let mut done = 0u64;
            let batches: Vec<&[(&String, &Tensor, DType)]> = jobs.chunks(32).collect();
            let prefetch = |batch: Option<&&[(&String, &Tensor, DType)]>| {
                for (_, tensor, _) in batch.into_iter().flat_map(|b| b.iter()) {
                    if let Some(b) = tensor.data() {
                        b.prefetch();
                    }
                }
            };
            prefetch(batches.first());
            for (i, batch) in batches.iter().enumerate() {
                // The next batch's pages are read in while this one converts.
                prefetch(batches.get(i + 1));
                done += batch.iter().map(|(_, t, _)| t.nbytes() as u64).sum::<u64>();
                let converted: Vec<_> = batch
                    .par_iter()
                    .map(|(name, tensor, target)| (*name, tensor.to_dtype(*target, options.clamp)))
                    .collect();
                for (name, result) in converted {
                    let (converted, s) = result.map_err(|e| ConvertError::Verify {
                        path: model.path.clone(),
                        message: format!("`{name}`: {e}"),
                    })?;
                    if s.overflow > 0 {
                        overflowing.push((name.clone(), s.overflow));
                    }
                    if s.flushed_to_zero > 0 {
                        flushed.push((name.clone(), s.flushed_to_zero));
                    }
                    stats.merge(&s);
                    // After an overflow nothing more is written; the rest is still converted to
                    // report every tensor that overflows.
                    if overflowing.is_empty() || options.clamp {
                        match converted.data() {
                            Some(b) => b.read_with(|bytes| writer.write_tensor(name, bytes))?,
                            None => writer.write_tensor(name, &[])?,
                        }
                    }
                }
                // The source bytes are done with: a mapped input gives its pages back.
                for (_, tensor, _) in batch.iter() {
                    if let Some(b) = tensor.data() {
                        b.release();
                    }
                }
                progress(done.min(total), total);
            }
            if !overflowing.is_empty() && !options.clamp {
                return Err(ConvertError::Overflow {
                    path: model.path.clone(),
                    first: overflowing[0].0.clone(),
                    count: overflowing.iter().map(|(_, n)| n).sum(),
                    tensors: overflowing.iter().map(|(n, _)| n.clone()).collect(),
                });
            }
            writer.finish().map_err(ConvertError::from)
        },
        |written| {
            checked = run_check(model, written, out, options.check.as_ref(), None)?;
            Ok(())
        },
    )?;

    let verified = if options.verify {
        Some(verify(out, &jobs, options.clamp)?)
    } else {
        None
    };
    Ok(ConvertReport {
        output: out.to_owned(),
        naming,
        tensors: layout.len(),
        bytes: layout
            .iter()
            .map(|(_, d, shape)| shape.iter().product::<usize>() * d.size())
            .sum(),
        stats,
        flushed,
        eps_moved: exported.eps_moved,
        notes: exported.notes,
        verified,
        changes,
        checked,
    })
}

/// The output's record of the changes (the source's own, which the output computes too, and
/// this conversion's) and of what the user stated: `effnet.changes`, `effnet.stated`.
fn recorded(model: &Model, changes: &[Change], plan: &Plan) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let all: Vec<Change> = model.changes.iter().chain(changes).cloned().collect();
    if !all.is_empty() {
        out.push((
            effnet_import::CHANGES_KEY.to_owned(),
            effnet_import::encode_changes(&all),
        ));
    }
    if !plan.stated.is_empty() {
        out.push((
            "effnet.stated".to_owned(),
            serde_json::Value::from(plan.stated.clone()).to_string(),
        ));
    }
    out
}

/// With `check`: the comparison of the source (fed `source_feed` when stated) with the file at
/// `written`, an error when they differ.
fn run_check(
    model: &Model,
    written: &Path,
    out: &Path,
    check: Option<&CheckOptions>,
    source_feed: Option<effnet_exec::Feed>,
) -> Result<Option<effnet_exec::Comparison>, ConvertError> {
    let Some(options) = check else {
        return Ok(None);
    };
    let comparison = check::check_written(model, written, out, options, source_feed)?;
    if !comparison.equal {
        return Err(ConvertError::CheckFailed {
            path: out.to_owned(),
            comparison: Box::new(comparison),
        });
    }
    Ok(Some(comparison))
}

/// The change `--clamp` makes, from the tensors with values beyond the f16 range.
fn clamp_change(over: &[(String, usize)]) -> Option<Change> {
    let (first, _) = over.first()?;
    let count: usize = over.iter().map(|(_, n)| n).sum();
    Some(Change::new(
        "clamp",
        "--clamp",
        format!(
            "{count} value(s) in {} tensor(s) beyond the f16 range clamped to ±65504, e.g. in `{first}`",
            over.len()
        ),
    ))
}

/// The files, folders or checkpoint prefixes `model` was read from: an output may be none of
/// them and lie inside none of them.
pub fn inputs_of(model: &Model) -> Vec<PathBuf> {
    let mut inputs = vec![model.path.clone()];
    if let Some(prefix) = model.metadata.get("tf.prefix") {
        inputs.push(PathBuf::from(prefix));
    }
    inputs
}

/// How to write an ONNX model.
#[derive(Clone, Debug)]
pub struct OnnxConvertOptions {
    /// Opset (13–21).
    pub opset: i64,
    /// Input height and width for explicit pads; `None` takes the model's, if it records one.
    pub resolution: Option<[usize; 2]>,
    /// Keep the spatial size dynamic (TF "same" convs as `auto_pad = SAME_UPPER`).
    pub dynamic_size: bool,
    /// Output logits even when the model ends in softmax.
    pub logits: bool,
    /// Leave out Keras preprocessing nodes.
    pub no_preprocessing: bool,
    /// Fold BatchNorm into the convolutions.
    pub fold_bn: bool,
    /// NHWC input.
    pub nhwc: bool,
    /// f16 weights and compute (f32 interface).
    pub half: bool,
    /// With `half`: clamp values beyond the f16 range instead of refusing.
    pub clamp: bool,
    /// What the user allowed or stated (`--activation`, `--assume-architecture`); see
    /// [`rules`].
    pub allow: Allowances,
    /// Overwrite an existing output.
    pub force: bool,
    /// Re-read the file and check it decodes to the model that was built.
    pub verify: bool,
    /// Run the source and the written output on a seeded input before the output replaces
    /// anything (`--check`).
    pub check: Option<CheckOptions>,
}

/// What an ONNX export did.
#[derive(Clone, Debug)]
pub struct OnnxReport {
    /// The semantic changes allowed by a flag (`--clamp`), recorded in the output's
    /// `metadata_props` under `effnet.changes`: print one warning each.
    pub changes: Vec<Change>,
    /// With `half`: what storing the weights in f16 lost.
    pub losses: effnet_onnx::Losses,
    /// The file written.
    pub output: PathBuf,
    /// Nodes in the ONNX graph.
    pub nodes: usize,
    /// Initializers (weights).
    pub initializers: usize,
    /// Bytes written.
    pub bytes: usize,
    /// The input height and width the pads were resolved for (`None`: dynamic).
    pub resolution: Option<[usize; 2]>,
    /// The output's name (`logits` or `probabilities`).
    pub output_name: String,
    /// With `verify`: the file re-read and decoded equal to the model built.
    pub verified: bool,
    /// With `check`: the source and the output run side by side.
    pub checked: Option<effnet_exec::Comparison>,
}

/// Writes `model` as an ONNX file at `out`.
pub fn to_onnx(
    model: &Model,
    out: &Path,
    options: &OnnxConvertOptions,
) -> Result<OnnxReport, ConvertError> {
    effnet_io::check_output(out, &inputs_of(model), options.force)?;
    model.verify_checksums()?;
    let plan = rules::check(model, Target::Onnx, &options.allow)?;
    let changes = plan.changes.clone();
    let imported = &model.imported;
    let resolution = if options.dynamic_size {
        None
    } else {
        options
            .resolution
            .or(imported.architecture.resolution.map(|r| [r, r]))
    };
    let onnx_options = effnet_onnx::OnnxOptions {
        opset: options.opset,
        resolution,
        logits: options.logits,
        no_preprocessing: options.no_preprocessing,
        doc: format!(
            "{} ({}, {} names), written by effnet",
            model.path.display(),
            model.container,
            model.naming
        ),
        metadata: vec![
            ("effnet.source".into(), model.path.display().to_string()),
            ("effnet.source_naming".into(), model.naming.name().into()),
            ("effnet.variant".into(), imported.identity.label()),
        ],
        fold_bn: options.fold_bn,
        nhwc: options.nhwc,
        half: options.half,
    };
    let streamed =
        effnet_onnx::build_streamed(plan.graph(model), &onnx_options).map_err(|reason| {
            ConvertError::Onnx {
                path: model.path.clone(),
                reason,
            }
        })?;
    // Preprocessing left out of the graph (`--no-preprocessing`) is recorded, so what feeds the
    // file knows what its input must go through.
    let steps = effnet_exec::in_graph_steps(&imported.graph);
    // What is recorded depends on what f16 lost (a clamp is a change): written after the
    // weights, once that is known.
    let changes_with = |losses: &effnet_onnx::Losses| {
        let mut all = changes.clone();
        if options.clamp && !losses.overflowing.is_empty() {
            all.extend(clamp_change(&losses.overflowing));
        }
        all
    };
    let extra = |losses: &effnet_onnx::Losses| {
        let mut extra = recorded(model, &changes_with(losses), &plan);
        if options.no_preprocessing && !steps.is_empty() {
            extra.push((
                effnet_exec::PREPROCESSING_KEY.to_owned(),
                effnet_exec::encode_steps(&steps),
            ));
        }
        extra
    };
    let graph = streamed.proto.graph.as_ref().expect("built with a graph");
    let (nodes, initializers) = (graph.node.len(), graph.initializer.len());
    let output_name = graph.output[0].name.clone().unwrap_or_default();
    let mut bytes = 0u64;
    // Set by the writer, read by the check before the file replaces anything.
    let losses = std::cell::RefCell::new(effnet_onnx::Losses::default());
    let mut checked = None;
    effnet_io::write_atomic_checked(
        out,
        &inputs_of(model),
        options.force,
        |file| {
            let io = |reason| ConvertError::Io {
                path: out.to_owned(),
                reason,
            };
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
            let (n, lost) = streamed.write(&mut writer, &extra).map_err(io)?;
            (bytes, *losses.borrow_mut()) = (n, lost);
            writer.into_inner().map_err(|e| io(e.into_error()))?;
            Ok::<(), ConvertError>(())
        },
        |written| {
            // Values beyond the f16 range: refused as for safetensors (nothing replaces the
            // target), or clamped and recorded.
            let losses = losses.borrow();
            if !losses.overflowing.is_empty() && !options.clamp {
                return Err(ConvertError::Overflow {
                    path: model.path.clone(),
                    first: losses.overflowing[0].0.clone(),
                    count: losses.overflowing.iter().map(|(_, n)| n).sum(),
                    tensors: losses.overflowing.iter().map(|(n, _)| n.clone()).collect(),
                });
            }
            checked = run_check(model, written, out, options.check.as_ref(), None)?;
            Ok(())
        },
    )?;
    let losses = losses.into_inner();
    let changes = changes_with(&losses);
    if options.verify {
        let fail = |message: String| ConvertError::Verify {
            path: out.to_owned(),
            message,
        };
        let written = std::fs::read(out).map_err(|e| fail(e.to_string()))?;
        let decoded = effnet_onnx::decode(&written).map_err(|e| fail(e.to_string()))?;
        let (mut proto, _) = streamed.into_proto().map_err(|e| fail(e.to_string()))?;
        proto
            .metadata_props
            .extend(extra(&losses).into_iter().map(|(k, v)| {
                effnet_onnx::proto::StringStringEntryProto {
                    key: Some(k),
                    value: Some(v),
                }
            }));
        if decoded != proto {
            return Err(fail(
                "the file does not decode to the model that was built".into(),
            ));
        }
    }
    Ok(OnnxReport {
        output: out.to_owned(),
        nodes,
        initializers,
        bytes: bytes as usize,
        resolution,
        output_name,
        verified: options.verify,
        changes,
        losses,
        checked,
    })
}

/// Re-reads `out`: every tensor must be byte-identical to its source converted again; returns
/// the largest relative error against the source values (before the dtype conversion).
fn verify(
    out: &Path,
    jobs: &[(&String, &Tensor, DType)],
    clamp: bool,
) -> Result<(f64, String), ConvertError> {
    let fail = |message: String| ConvertError::Verify {
        path: out.to_owned(),
        message,
    };
    let file = effnet_safetensors::read(out).map_err(|e| fail(e.to_string()))?;
    if file.checkpoint.len() != jobs.len() {
        return Err(fail(format!(
            "{} tensors read back, {} written",
            file.checkpoint.len(),
            jobs.len()
        )));
    }
    let mut worst = (0.0f64, String::new());
    for (name, src, target) in jobs {
        let got = file
            .checkpoint
            .get(name)
            .ok_or_else(|| fail(format!("`{name}` is missing")))?;
        let (want, _) = src
            .to_dtype(*target, clamp)
            .map_err(|e| fail(format!("`{name}`: {e}")))?;
        let same = got.dtype() == want.dtype()
            && got.shape() == want.shape()
            && got.data().map(|b| b.as_slice()) == want.data().map(|b| b.as_slice());
        if !same {
            return Err(fail(format!("`{name}` differs from what was written")));
        }
        if !src.dtype().is_float() {
            continue;
        }
        let (a, b) = (
            src.to_f32_vec().map_err(|e| fail(e.to_string()))?,
            got.to_f32_vec().map_err(|e| fail(e.to_string()))?,
        );
        let scale = a.iter().fold(0f64, |m, &x| m.max(f64::from(x).abs()));
        let err = a.iter().zip(&b).fold(0f64, |m, (&x, &y)| {
            m.max((f64::from(x) - f64::from(y)).abs())
        });
        let rel = if scale > 0.0 { err / scale } else { err };
        if rel > worst.0 {
            worst = (rel, (*name).clone());
        }
    }
    Ok(worst)
}
