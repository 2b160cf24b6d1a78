//! Writing a model as a Keras file: the layers `keras.applications` builds, TF "same"
//! padding, BatchNorm epsilon moved exactly to Keras' 1e-3, and the input preprocessing inside
//! the model (`Rescaling(1/255)` and a `Normalization` holding the mean and variance that
//! compute what the source expects).

use std::io::Write;
use std::path::{Path, PathBuf};

use effnet_exec::{Feed, FeedOrigin, PreStep};
use effnet_import::{Change, Model};
use effnet_ir::{Bytes, ConversionStats, DType, Op, Tensor};
use effnet_keras::write::{BuildOptions, InputPreprocessing, KerasTarget, build};
use effnet_spec::{Family, IMAGENET_MEAN, IMAGENET_STD, Preprocessing, Scheme};
use rayon::prelude::*;

use crate::rules::{self, Allowances, Target};
use crate::{CheckOptions, ConvertError, Progress, clamp_change, inputs_of, run_check};

/// Keras' BatchNorm epsilon.
pub const KERAS_BN_EPS: f64 = 1e-3;

/// The smallest divisor Keras' `Normalization` uses (`backend.epsilon()`).
const KERAS_STD_FLOOR: f64 = 1e-7;

/// How to write a Keras file.
#[derive(Clone, Debug)]
pub struct KerasOptions {
    /// Which file.
    pub target: KerasTarget,
    /// f32 or f16 weights.
    pub dtype: DType,
    /// Clamp values beyond the f16 range instead of refusing.
    pub clamp: bool,
    /// The per-channel mean (0–1 pixel scale) the source expects its input normalized with,
    /// when its file does not say (`--input-mean`).
    pub input_mean: Option<Vec<f64>>,
    /// The per-channel standard deviation to go with it (`--input-std`).
    pub input_std: Option<Vec<f64>>,
    /// Input height and width; `None` takes the model's.
    pub resolution: Option<[usize; 2]>,
    /// What the user allowed or stated; see [`rules`].
    pub allow: Allowances,
    /// Overwrite an existing output.
    pub force: bool,
    /// Run the source and the written output before the rename (`--check`).
    pub check: Option<CheckOptions>,
}

/// Where the written `Normalization` values come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreprocessingFrom {
    /// The source model's own preprocessing layers.
    Model,
    /// `--input-mean` / `--input-std`.
    Stated,
    /// The source file's record of it (`effnet.preprocessing`).
    Recorded,
    /// The source naming scheme's convention (ImageNet mean/std for PyTorch models).
    Convention,
}

impl PreprocessingFrom {
    /// The name recorded in the output.
    pub fn name(self) -> &'static str {
        match self {
            PreprocessingFrom::Model => "model",
            PreprocessingFrom::Stated => "stated",
            PreprocessingFrom::Recorded => "recorded",
            PreprocessingFrom::Convention => "convention",
        }
    }
}

/// What a Keras export did.
#[derive(Clone, Debug)]
pub struct KerasReport {
    /// The file written.
    pub output: PathBuf,
    /// Which file.
    pub target: KerasTarget,
    /// Layers of the model.
    pub layers: usize,
    /// Variables written.
    pub variables: usize,
    /// Bytes of variable data.
    pub bytes: u64,
    /// The input height and width the padding was written for.
    pub resolution: [usize; 2],
    /// The `Normalization` layer's mean and variance.
    pub normalization: (Vec<f64>, Vec<f64>),
    /// Where they come from.
    pub preprocessing_from: PreprocessingFrom,
    /// The classifier's activation (`softmax` or `linear`; `none (features)` without one).
    pub classifier_activation: String,
    /// BatchNorm epsilons moved, as `(from, to, layers)`.
    pub eps_moved: Vec<(f64, f64, usize)>,
    /// Losses of the dtype conversion.
    pub stats: ConversionStats,
    /// Changes allowed by a flag: one warning each, recorded in the output.
    pub changes: Vec<Change>,
    /// Things the user should know.
    pub notes: Vec<String>,
    /// With `check`: the source and the output side by side.
    pub checked: Option<effnet_exec::Comparison>,
}

fn refused(model: &Model, message: String) -> ConvertError {
    ConvertError::Refused {
        path: model.path.clone(),
        message,
    }
}

/// Values as a short list: nine decimals at most, without the f64 noise of the arithmetic.
fn list(values: &[f64]) -> String {
    let short = |v: f64| {
        let text = format!("{v:.9}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        if text.is_empty() || text == "-" {
            "0".to_owned()
        } else {
            text.to_owned()
        }
    };
    let items: Vec<String> = values.iter().map(|&v| short(v)).collect();
    format!("[{}]", items.join(", "))
}

/// The preprocessing steps the Keras model must compute, and where they come from.
fn source_steps(
    model: &Model,
    options: &KerasOptions,
) -> Result<(Vec<PreStep>, PreprocessingFrom), ConvertError> {
    let graph = &model.imported.graph;
    let own = effnet_exec::in_graph_steps(graph);
    match (&options.input_mean, &options.input_std) {
        (Some(_), None) | (None, Some(_)) => {
            return Err(refused(
                model,
                "--input-mean and --input-std go together".into(),
            ));
        }
        (Some(mean), Some(std)) => {
            if !own.is_empty() {
                return Err(refused(
                    model,
                    "the model carries its own preprocessing layers; --input-mean/--input-std do not apply".into(),
                ));
            }
            if std.iter().any(|&s| s.is_nan() || s <= 0.0) {
                return Err(refused(model, "--input-std must be positive".into()));
            }
            return Ok((
                vec![PreStep::Standardize {
                    pixel_scale: 1.0 / 255.0,
                    mean: mean.clone(),
                    std: std.clone(),
                }],
                PreprocessingFrom::Stated,
            ));
        }
        (None, None) => {}
    }
    if !own.is_empty() {
        return Ok((own, PreprocessingFrom::Model));
    }
    let feed =
        Feed::for_model(graph, &model.metadata).map_err(|e| refused(model, e.to_string()))?;
    match feed.origin {
        FeedOrigin::Metadata => Ok((feed.steps, PreprocessingFrom::Recorded)),
        FeedOrigin::Scheme => Ok((feed.steps, PreprocessingFrom::Convention)),
        FeedOrigin::InGraph | FeedOrigin::None => Err(refused(
            model,
            "the file does not say how its input is preprocessed: state it with --input-mean R,G,B --input-std R,G,B (0–1 pixel scale)".into(),
        )),
    }
}

/// The `Normalization` mean and variance that, after `Rescaling(1/255)`, compute `steps` on
/// raw 0–255 pixels: each step is per channel `a·x + b`, composed, then
/// `mean = −b / (255·a)`, `variance = 1 / (255·a)²`.
fn normalization_of(steps: &[PreStep], channels: usize) -> Result<(Vec<f64>, Vec<f64>), String> {
    let at = |v: &[f64], c: usize| if v.len() == 1 { v[0] } else { v[c] };
    let mut mean = Vec::with_capacity(channels);
    let mut variance = Vec::with_capacity(channels);
    for step in steps {
        let lens: Vec<usize> = match step {
            PreStep::Rescale { scale, offset } => vec![scale.len(), offset.len()],
            PreStep::Normalize { mean, variance, .. } => vec![mean.len(), variance.len()],
            PreStep::Standardize { mean, std, .. } => vec![mean.len(), std.len()],
        };
        if lens.iter().any(|&n| n != 1 && n != channels) {
            return Err(format!(
                "a preprocessing step has {lens:?} values for {channels} channels"
            ));
        }
    }
    for c in 0..channels {
        let (mut a, mut b) = (1.0f64, 0.0f64);
        for step in steps {
            match step {
                PreStep::Rescale { scale, offset } => {
                    let (s, o) = (at(scale, c), at(offset, c));
                    a *= s;
                    b = b * s + o;
                }
                PreStep::Normalize {
                    mean,
                    variance,
                    std_floor,
                } => {
                    let v = at(variance, c);
                    if v.is_nan() || v < 0.0 {
                        return Err(format!(
                            "the preprocessing's variance of channel {c} is {v}"
                        ));
                    }
                    let d = v.sqrt().max(*std_floor);
                    a /= d;
                    b = (b - at(mean, c)) / d;
                }
                PreStep::Standardize {
                    pixel_scale,
                    mean,
                    std,
                } => {
                    a *= pixel_scale / at(std, c);
                    b = (b * pixel_scale - at(mean, c)) / at(std, c);
                }
            }
        }
        if !(a.is_finite() && b.is_finite() && a > 0.0) {
            return Err(format!(
                "the preprocessing scales channel {c} by {a}, which a Keras Normalization cannot hold"
            ));
        }
        let std = 1.0 / (255.0 * a);
        // Keras divides by max(sqrt(variance), 1e-7), and the variance is stored in f32.
        if !(KERAS_STD_FLOOR..=1e18).contains(&std) {
            return Err(format!(
                "the preprocessing divides channel {c} by {std:e}, outside what a Keras Normalization (f32, std ≥ 1e-7) computes"
            ));
        }
        mean.push(-b * std);
        variance.push(std * std);
    }
    Ok((mean, variance))
}

/// Per-channel mean and variance.
type MeanVariance = (Vec<f64>, Vec<f64>);

/// The `[mean, variance, count]` tensors of the written `Normalization`: a source whose own
/// preprocessing is already `Rescaling(1/255)` then `Normalization` keeps its values
/// exactly.
fn normalization_tensors(
    model: &Model,
    steps: &[PreStep],
    channels: usize,
) -> Result<([Tensor; 3], MeanVariance), ConvertError> {
    let graph = &model.imported.graph;
    let count = |n: i64| {
        Tensor::with_data(
            DType::I64,
            vec![],
            Bytes::from_vec(n.to_le_bytes().to_vec()),
        )
        .expect("a scalar")
    };
    // A source whose preprocessing is already `Rescaling(1/255)` then `Normalization`.
    let kept = match steps {
        [
            PreStep::Rescale { scale, offset },
            PreStep::Normalize { mean, variance, .. },
        ] if scale.as_slice() == [1.0 / 255.0] && offset.iter().all(|&o| o == 0.0) => graph
            .nodes()
            .find_map(|(_, n)| match &n.op {
                Op::Normalize(norm) => Some(norm),
                _ => None,
            })
            .filter(|norm| norm.mean.numel() == channels && norm.variance.numel() == channels)
            .map(|norm| (norm, mean, variance)),
        _ => None,
    };
    if let Some((norm, mean, variance)) = kept {
        let n = norm
            .count
            .as_ref()
            .and_then(|c| c.to_f32_vec().ok())
            .and_then(|v| v.first().copied())
            .unwrap_or(0.0) as i64;
        return Ok((
            [norm.mean.clone(), norm.variance.clone(), count(n)],
            (mean.clone(), variance.clone()),
        ));
    }
    let (mean, variance) = normalization_of(steps, channels).map_err(|m| refused(model, m))?;
    let f32s = |v: &[f64]| {
        let values: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        Tensor::from_f32(vec![values.len()], &values).expect("a vector")
    };
    Ok(([f32s(&mean), f32s(&variance), count(0)], (mean, variance)))
}

/// The model's name as `keras.applications` gives it (`efficientnetb0`).
fn model_name(model: &Model) -> String {
    match model.imported.identity {
        effnet_naming::Identity::Variant(v) if v.family() == Family::V2 => {
            format!("efficientnetv2-{}", v.name().trim_start_matches("v2-"))
        }
        effnet_naming::Identity::Variant(v) => {
            format!("efficientnet{}", v.name().replace(['-', '_'], ""))
        }
        _ if model.imported.identity.family() == Some(Family::V2) => "efficientnetv2".to_owned(),
        _ => "efficientnet".to_owned(),
    }
}

/// Writes `model` as the Keras file `options.target` at `out`.
pub fn to_keras(
    model: &Model,
    out: &Path,
    options: &KerasOptions,
    progress: Progress<'_>,
) -> Result<KerasReport, ConvertError> {
    if !matches!(options.dtype, DType::F32 | DType::F16) {
        return Err(refused(
            model,
            format!(
                "Keras files are written in f32 or f16; {} is not (Keras stores bf16 only with its own dtype attribute)",
                options.dtype
            ),
        ));
    }
    effnet_io::check_output(out, &inputs_of(model), options.force)?;
    model.verify_checksums()?;
    // EfficientNetV2's layers for a V2 model (or any with Fused-MBConv blocks).
    let v2 = model.imported.identity.family() == Some(Family::V2)
        || effnet_ir::structure::blocks(&model.imported.graph, None)
            .iter()
            .any(|b| b.kind == effnet_ir::BlockKind::FusedMBConv);
    // What Keras' EfficientNet cannot express at all goes first: no flag would help.
    effnet_keras::write::check_blocks(&model.imported.graph, v2).map_err(|e| {
        refused(
            model,
            format!("cannot be written as {}: {e}", options.target.label()),
        )
    })?;
    let plan = rules::check(model, Target::Keras, &options.allow)?;
    let mut changes = plan.changes.clone();
    let imported = &model.imported;
    let resolution = options
        .resolution
        .or(imported.architecture.resolution.map(|r| [r, r]))
        .ok_or_else(|| {
            refused(
                model,
                "the model does not record its input resolution, which Keras' stride-2 padding is written for: pass --resolution".into(),
            )
        })?;
    let unfolded = effnet_import::onnx::with_batchnorms(plan.graph(model), KERAS_BN_EPS)
        .map_err(|e| refused(model, e.to_string()))?;
    let graph = unfolded.as_ref().unwrap_or(plan.graph(model));
    let channels = effnet_exec::input_channels(graph).unwrap_or(3);
    let (steps, from) = source_steps(model, options)?;
    let (normalization, values) = normalization_tensors(model, &steps, channels)?;
    // EfficientNetV2 keeps its preprocessing in the config: x/128 − 1, or constant
    // mean/variance.
    let signed = values.0.iter().chain(&values.1).count() > 0
        && values.0.iter().all(|m| (m - 128.0 / 255.0).abs() < 1e-9)
        && values
            .1
            .iter()
            .all(|v| (v - (128.0f64 / 255.0).powi(2)).abs() < 1e-9);
    let preprocessing = match (v2, signed) {
        (false, _) => InputPreprocessing::Adapted(normalization),
        (true, true) => InputPreprocessing::Signed,
        (true, false) => InputPreprocessing::Constant {
            mean: values.0.clone(),
            variance: values.1.clone(),
        },
    };
    let keras = build(
        graph,
        &BuildOptions {
            name: model_name(model),
            resolution,
            preprocessing,
            v2,
            bn_eps: KERAS_BN_EPS,
            head_dropout: imported.architecture.dropout,
        },
    )
    .map_err(|e| {
        refused(
            model,
            format!("cannot be written as {}: {e}", options.target.label()),
        )
    })?;
    // `None`: a model without a classifier (it ends at its pooling).
    let classifier = keras.layers.iter().find_map(|l| match &l.kind {
        effnet_keras::write::LayerKind::Dense { activation, .. } => Some(*activation),
        _ => None,
    });

    let mut notes = Vec::new();
    let described = if v2 && signed {
        "Rescaling(1/128, offset −1)".to_owned()
    } else {
        format!(
            "Rescaling(1/255) then Normalization(mean {}, variance {})",
            list(&values.0),
            list(&values.1)
        )
    };
    match from {
        PreprocessingFrom::Model => {}
        PreprocessingFrom::Stated => notes.push(format!(
            "input preprocessing as stated (--input-mean/--input-std): {described}"
        )),
        PreprocessingFrom::Recorded => notes.push(format!(
            "input preprocessing as the source file records it: {described}"
        )),
        PreprocessingFrom::Convention => notes.push(format!(
            "input preprocessing: the {} convention (the file does not record it): {described}; state another with --input-mean/--input-std",
            model.naming
        )),
    }
    // A V2 weights file holds no preprocessing, and a tf-keras `.h5` loaded with
    // `load_weights` takes the model's: the model it loads into brings its own.
    if v2 && options.target != KerasTarget::Keras {
        let variant = imported.identity.semantics_variant();
        let builtin = Scheme::Keras.semantics(variant).preprocessing;
        let matches = match builtin {
            Preprocessing::KerasSigned => signed,
            _ => {
                values
                    .0
                    .iter()
                    .zip(IMAGENET_MEAN)
                    .all(|(m, i)| (m - i).abs() < 1e-6)
                    && values
                        .1
                        .iter()
                        .zip(IMAGENET_STD)
                        .all(|(v, s)| (v - s * s).abs() < 1e-6)
            }
        };
        if !matches {
            notes.push(format!(
                "keras.applications' EfficientNetV2 preprocesses inside ({}); this model expects {described}: build it with include_preprocessing=False and preprocess the input so, or write a .keras, which carries its own",
                if builtin == Preprocessing::KerasSigned {
                    "x/128 − 1"
                } else {
                    "ImageNet's mean and std"
                }
            ));
        }
    }
    if options.target == KerasTarget::WeightsH5 {
        notes.push(match classifier {
            None => "the model has no classifier: load it into keras.applications with include_top=False, pooling=\"avg\"".into(),
            Some(activation) => format!(
                "a weights file carries no classifier activation: this model's is {activation}; pass classifier_activation={} to keras.applications when loading",
                if activation == "linear" { "None" } else { "\"softmax\"" }
            ),
        });
    }

    // Every variable in layer order: the data callback is called with these indices.
    let float = if options.dtype == DType::F16 {
        effnet_hdf5::Dtype::F16
    } else {
        effnet_hdf5::Dtype::F32
    };
    // Every variable in layer order (the data callback is called with these indices): its
    // name for messages, its values, the dtype it is written in.
    let variables: Vec<(String, &Tensor, DType)> = keras
        .layers
        .iter()
        .flat_map(|l| {
            l.variables.iter().map(move |v| {
                let dtype = match effnet_keras::write::variable_dtype(l, v, float) {
                    effnet_hdf5::Dtype::F16 => DType::F16,
                    effnet_hdf5::Dtype::I64 | effnet_hdf5::Dtype::I32 => DType::I64,
                    _ => DType::F32,
                };
                (format!("{}/{}", l.name, v.legacy_name), &v.tensor, dtype)
            })
        })
        .collect();
    if options.clamp && options.dtype == DType::F16 {
        let over: Vec<(String, usize)> = keras
            .layers
            .par_iter()
            .flat_map_iter(|l| l.variables.iter().map(move |v| (l, v)))
            .filter(|(_, v)| v.tensor.dtype().is_float())
            .filter_map(|(l, v)| {
                let values = v.tensor.to_f32_vec().ok()?;
                let n = values
                    .iter()
                    .filter(|x| x.is_finite() && x.abs() > effnet_ir::F16_MAX)
                    .count();
                (n > 0).then(|| (format!("{}/{}", l.name, v.legacy_name), n))
            })
            .collect();
        changes.extend(clamp_change(&over));
    }
    let mut attributes: Vec<(String, String)> = vec![
        ("effnet.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("effnet.source".into(), model.path.display().to_string()),
        ("effnet.source_container".into(), model.container.into()),
        ("effnet.source_naming".into(), model.naming.name().into()),
        ("effnet.variant".into(), imported.identity.label()),
        ("effnet.dtype".into(), options.dtype.name().into()),
        ("effnet.input_preprocessing".into(), described.clone()),
        ("effnet.input_preprocessing_from".into(), from.name().into()),
    ];
    attributes.extend(crate::recorded(model, &changes, &plan));

    let total: u64 = variables
        .iter()
        .map(|(_, t, dtype)| (t.numel() * dtype.size()) as u64)
        .sum();
    let mut stats = ConversionStats::default();
    let mut overflowing: Vec<(String, usize)> = Vec::new();
    let mut checked = None;
    let check = options.check.map(|mut c| {
        c.resolution = Some(resolution);
        c
    });
    let written_bytes = effnet_io::write_atomic_checked(
        out,
        &inputs_of(model),
        options.force,
        |file| {
            // Small enough that tensors bypass it: only headers and small vectors are copied.
            let mut writer = std::io::BufWriter::with_capacity(64 << 10, &mut *file);
            let mut done = 0u64;
            // Converted on every core a batch at a time, written as the writer asks.
            let mut batch: Vec<Option<Tensor>> = Vec::new();
            let mut batch_start = 0usize;
            let mut failure: Option<ConvertError> = None;
            let mut data = |index: usize, w: &mut dyn Write| -> std::io::Result<()> {
                if index < batch_start || index >= batch_start + batch.len() {
                    batch_start = index;
                    let end = (index + 32).min(variables.len());
                    // The next batch's pages are read in while this one converts.
                    for (_, t, _) in &variables[end..(end + 32).min(variables.len())] {
                        if let Some(b) = t.data() {
                            b.prefetch();
                        }
                    }
                    let converted: Vec<_> = variables[index..end]
                        .par_iter()
                        .map(|(_, t, dtype)| convert(t, *dtype, options.clamp))
                        .collect();
                    batch.clear();
                    for (i, result) in converted.into_iter().enumerate() {
                        match result {
                            Ok((t, s)) => {
                                if s.overflow > 0 {
                                    overflowing.push((variables[index + i].0.clone(), s.overflow));
                                }
                                stats.merge(&s);
                                batch.push(Some(t));
                            }
                            Err(e) => {
                                failure.get_or_insert(refused(model, e.to_string()));
                                return Err(std::io::Error::other("conversion failed"));
                            }
                        }
                    }
                }
                let tensor = batch[index - batch_start].take().expect("written once");
                done += tensor.nbytes() as u64;
                progress(done.min(total), total);
                let written = match tensor.data() {
                    Some(b) => b.read_with(|bytes| w.write_all(bytes)),
                    None => Ok(()),
                };
                // The source bytes are done with: a mapped input gives its pages back.
                if let Some(b) = variables[index].1.data() {
                    b.release();
                }
                written
            };
            let io = |reason: std::io::Error| ConvertError::Io {
                path: out.to_owned(),
                reason,
            };
            let result = match options.target {
                KerasTarget::Keras => {
                    let mut metadata = serde_json::Map::new();
                    metadata.insert(
                        "effnet".into(),
                        attributes
                            .iter()
                            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                            .collect::<serde_json::Map<_, _>>()
                            .into(),
                    );
                    effnet_keras::write::write_keras(
                        &keras,
                        float,
                        metadata,
                        &mut writer,
                        &mut data,
                    )
                    .map(|_| ())
                }
                target => effnet_keras::write::write_h5(
                    &keras,
                    target,
                    float,
                    &attributes,
                    &mut writer,
                    &mut data,
                )
                .map(|_| ()),
            };
            if let Some(e) = failure {
                return Err(e);
            }
            result.map_err(|e| ConvertError::Keras {
                path: out.to_owned(),
                reason: e,
            })?;
            writer.flush().map_err(io)?;
            if !overflowing.is_empty() && !options.clamp {
                return Err(ConvertError::Overflow {
                    path: model.path.clone(),
                    first: overflowing[0].0.clone(),
                    count: overflowing.iter().map(|(_, n)| n).sum(),
                    tensors: overflowing.iter().map(|(n, _)| n.clone()).collect(),
                });
            }
            Ok(())
        },
        |written| {
            // Stated preprocessing is how the source is fed, too.
            let fed = (from == PreprocessingFrom::Stated).then(|| Feed::from_steps(steps.clone()));
            checked = run_check(model, written, out, check.as_ref(), fed)?;
            Ok(())
        },
    );
    written_bytes?;
    Ok(KerasReport {
        output: out.to_owned(),
        target: options.target,
        layers: keras.layers.len(),
        variables: variables.len(),
        bytes: total,
        resolution,
        normalization: values,
        preprocessing_from: from,
        classifier_activation: classifier.unwrap_or("none (features)").to_owned(),
        eps_moved: keras.eps_moved.clone(),
        stats,
        changes,
        notes,
        checked,
    })
}

/// A variable in the written dtype, its bytes gathered (TF layout) and owned.
fn convert(
    tensor: &Tensor,
    dtype: DType,
    clamp: bool,
) -> Result<(Tensor, ConversionStats), effnet_ir::IrError> {
    let target = if tensor.dtype().is_float() {
        dtype
    } else {
        tensor.dtype()
    };
    let (converted, stats) = tensor.to_dtype(target, clamp)?;
    if converted.dtype() == tensor.dtype() && converted.data().is_some_and(Bytes::is_gathered) {
        // Same dtype, a lazily permuted view: gathered here, on this core.
        let bytes = converted.data().map(Bytes::to_vec).unwrap_or_default();
        let owned = Tensor::with_data(target, converted.shape().to_vec(), Bytes::from_vec(bytes))?;
        return Ok((owned, stats));
    }
    Ok((converted, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_standardization_is_its_mean_and_squared_std() {
        let steps = [PreStep::Standardize {
            pixel_scale: 1.0 / 255.0,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }];
        let (mean, var) = normalization_of(&steps, 3).unwrap();
        for (got, want) in mean.iter().zip([0.485, 0.456, 0.406]) {
            assert!((got - want).abs() < 1e-12, "{got} {want}");
        }
        for (got, want) in var.iter().zip([0.229f64, 0.224, 0.225]) {
            assert!((got - want * want).abs() < 1e-12, "{got} {want}");
        }
    }

    #[test]
    fn what_a_keras_normalization_cannot_hold_is_refused() {
        let stated = |std: f64| {
            [PreStep::Standardize {
                pixel_scale: 1.0 / 255.0,
                mean: vec![0.5],
                std: vec![std],
            }]
        };
        assert!(normalization_of(&stated(1e-9), 3).is_err());
        assert!(normalization_of(&stated(-0.5), 3).is_err());
        let negative = [PreStep::Normalize {
            mean: vec![0.0],
            variance: vec![-1.0],
            std_floor: 1e-7,
        }];
        assert!(normalization_of(&negative, 3).is_err());
    }

    #[test]
    fn keras_imagenet_quirk_folds_into_the_variance() {
        // keras.applications with weights="imagenet": variance holds the std, then a third
        // Rescaling by 1/sqrt(std).
        let std = [0.229f64, 0.224, 0.225];
        let steps = [
            PreStep::Rescale {
                scale: vec![1.0 / 255.0],
                offset: vec![0.0],
            },
            PreStep::Normalize {
                mean: vec![0.485, 0.456, 0.406],
                variance: std.to_vec(),
                std_floor: 1e-7,
            },
            PreStep::Rescale {
                scale: std.iter().map(|s| 1.0 / s.sqrt()).collect(),
                offset: vec![0.0],
            },
        ];
        let (_, var) = normalization_of(&steps, 3).unwrap();
        for (got, s) in var.iter().zip(std) {
            assert!((got - s * s).abs() < 1e-12, "{got} {s}");
        }
        // x/128 − 1 (V2-S): mean 128/255, std 128/255.
        let signed = [PreStep::Rescale {
            scale: vec![1.0 / 128.0],
            offset: vec![-1.0],
        }];
        let (mean, var) = normalization_of(&signed, 3).unwrap();
        assert!((mean[0] - 128.0 / 255.0).abs() < 1e-12);
        assert!((var[0] - (128.0f64 / 255.0).powi(2)).abs() < 1e-12);
    }
}
