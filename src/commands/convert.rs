//! `effnet convert`: write a model in another naming scheme and dtype.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;

use anyhow::bail;
use effnet_convert::{OnnxConvertOptions, SafetensorsOptions, to_onnx, to_safetensors};
use effnet_cost::render::{human_bytes, thousands};
use effnet_ir::DType;

use effnet_keras::write::KerasTarget;

use crate::cli::{ActivationDtype, ConvertArgs, InputLayout, OutputFormat};
use crate::output;

/// The line saying what `--check` found.
fn checked_line(c: &effnet_exec::Comparison, args: &ConvertArgs) -> String {
    format!(
        "checked: source and output run on seeded input (seed {}): outputs agree to {} (≤ {:e}), {} stages compared\n",
        args.seed,
        c.output
            .diff
            .map_or("—".to_owned(), |d| format!("{:.2e} relative", d.relative)),
        c.tolerance,
        c.stages.len()
    )
}

/// What `--check` asks for.
fn check_options(args: &ConvertArgs) -> Option<effnet_convert::CheckOptions> {
    let tolerance = args.tolerance.unwrap_or(match args.dtype {
        ActivationDtype::F32 => effnet_exec::DEFAULT_TOLERANCE,
        ActivationDtype::F16 => 5e-3,
        ActivationDtype::Bf16 => 1e-1,
    });
    args.check.then_some(effnet_convert::CheckOptions {
        seed: args.seed,
        tolerance,
        resolution: args.resolution.map(|r| r.hw()),
    })
}

/// The dtype `--dtype` asks the weights in.
fn weights_dtype(args: &ConvertArgs) -> DType {
    match args.dtype {
        ActivationDtype::F32 => DType::F32,
        ActivationDtype::F16 => DType::F16,
        ActivationDtype::Bf16 => DType::BF16,
    }
}

/// Runs `convert` with a progress bar over the input's size (on a terminal only).
fn with_progress<T>(
    args: &ConvertArgs,
    convert: impl FnOnce(effnet_convert::Progress<'_>) -> T,
) -> T {
    let input_bytes = std::fs::metadata(&args.input).map(|m| m.len()).unwrap_or(0);
    let bar = output::progress("converting", input_bytes);
    let mut tick = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let result = convert(&mut tick);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    result
}

/// The line saying what storing the weights in `dtype` lost.
fn losses_line(dtype: DType, s: &effnet_ir::ConversionStats, clamp: bool) -> String {
    format!(
        "{dtype}: {} overflow{}, {} flushed to zero, {} subnormal, {} NaN/Inf; largest |value| {:.4}\n",
        s.overflow,
        if clamp && s.overflow > 0 {
            " (clamped)"
        } else {
            ""
        },
        s.flushed_to_zero,
        s.subnormal,
        s.non_finite,
        s.max_abs
    )
}

/// The opset written when `--opset` is not given.
const DEFAULT_OPSET: i64 = 17;

/// The format `--to` names, or the output's suffix says; a suffix that contradicts `--to` is
/// refused.
fn output_format(args: &ConvertArgs) -> anyhow::Result<OutputFormat> {
    let by_suffix = match args.output.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Some(OutputFormat::Safetensors),
        Some("onnx") => Some(OutputFormat::Onnx),
        _ => match KerasTarget::from_path(&args.output) {
            Some(KerasTarget::Keras) => Some(OutputFormat::Keras),
            Some(KerasTarget::WeightsH5) => Some(OutputFormat::WeightsH5),
            Some(KerasTarget::LegacyH5) => Some(OutputFormat::H5),
            None => None,
        },
    };
    match (args.to, by_suffix) {
        (Some(to), Some(suffix)) if to != suffix => bail!(
            "{}: the suffix says {} but --to says {}; make them agree",
            args.output.display(),
            format_name(suffix),
            format_name(to)
        ),
        (Some(to), _) => Ok(to),
        (None, Some(suffix)) => Ok(suffix),
        (None, None) if args.output.as_os_str() == "-" => {
            bail!("-o - (standard output) needs --to safetensors|onnx|keras|weights-h5|h5")
        }
        (None, None) => bail!(
            "{}: cannot tell the output format from the extension; pass --to safetensors|onnx|keras|weights-h5|h5",
            args.output.display()
        ),
    }
}

fn format_name(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Safetensors => "safetensors",
        OutputFormat::Onnx => "onnx",
        OutputFormat::Keras => "keras",
        OutputFormat::WeightsH5 => "weights-h5",
        OutputFormat::H5 => "h5",
    }
}

/// The Keras file a format names.
fn keras_target(format: OutputFormat) -> Option<KerasTarget> {
    match format {
        OutputFormat::Keras => Some(KerasTarget::Keras),
        OutputFormat::WeightsH5 => Some(KerasTarget::WeightsH5),
        OutputFormat::H5 => Some(KerasTarget::LegacyH5),
        OutputFormat::Safetensors | OutputFormat::Onnx => None,
    }
}

/// The suffix of a temporary file holding the output (`-o -`).
fn suffix(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Safetensors => "safetensors",
        OutputFormat::Onnx => "onnx",
        OutputFormat::Keras => "keras",
        OutputFormat::WeightsH5 => "weights.h5",
        OutputFormat::H5 => "h5",
    }
}

/// Flags of one output format given for another are refused, not ignored.
fn refuse_inapplicable(args: &ConvertArgs, format: OutputFormat) -> anyhow::Result<()> {
    use OutputFormat::{H5, Keras, Onnx, Safetensors, WeightsH5};
    const KERAS: &[OutputFormat] = &[Keras, WeightsH5, H5];
    let flags: [(&str, bool, &[OutputFormat], &str); 14] = [
        ("--opset", args.opset.is_some(), &[Onnx], "onnx"),
        (
            "--resolution",
            args.resolution.is_some(),
            &[Onnx, Keras, WeightsH5, H5],
            "onnx and Keras",
        ),
        ("--dynamic-size", args.dynamic_size, &[Onnx], "onnx"),
        ("--logits", args.logits, &[Onnx], "onnx"),
        ("--no-preprocessing", args.no_preprocessing, &[Onnx], "onnx"),
        ("--fold-bn", args.fold_bn, &[Onnx], "onnx"),
        (
            "--input-layout",
            args.input_layout.is_some(),
            &[Onnx],
            "onnx",
        ),
        (
            "--naming",
            args.naming.is_some(),
            &[Safetensors],
            "safetensors",
        ),
        (
            "--keep-bn-f32",
            args.keep_bn_f32,
            &[Safetensors],
            "safetensors",
        ),
        (
            "--allow-padding-change",
            args.allow_padding_change,
            &[Safetensors, Keras, WeightsH5, H5],
            "safetensors and Keras",
        ),
        (
            "--allow-shortcut-change",
            args.allow_shortcut_change,
            &[Safetensors, Keras, WeightsH5, H5],
            "safetensors and Keras",
        ),
        ("--input-mean", args.input_mean.is_some(), KERAS, "Keras"),
        ("--input-std", args.input_std.is_some(), KERAS, "Keras"),
        (
            "--verify",
            args.verify,
            &[Safetensors, Onnx],
            "safetensors and onnx (Keras: use --check)",
        ),
    ];
    if let Some((flag, _, _, applies)) = flags
        .iter()
        .find(|(_, set, formats, _)| *set && !formats.contains(&format))
    {
        bail!(
            "{flag} applies to {applies} output, and {} is written as {}",
            args.output.display(),
            format_name(format)
        );
    }
    Ok(())
}

pub fn run(args: &ConvertArgs) -> anyhow::Result<ExitCode> {
    match convert(args) {
        Err(err) => match err.downcast_ref::<effnet_convert::ConvertError>() {
            // The check ran and the numbers differ: the per-stage table, exit 1.
            Some(effnet_convert::ConvertError::CheckFailed { comparison, .. }) => {
                output::print(&super::compare::stage_table(comparison))?;
                output::error(&err);
                Ok(ExitCode::from(1))
            }
            _ => Err(err),
        },
        ok => ok,
    }
}

fn convert(args: &ConvertArgs) -> anyhow::Result<ExitCode> {
    let format = output_format(args)?;
    refuse_inapplicable(args, format)?;
    if args.dtype == ActivationDtype::Bf16 && format == OutputFormat::Onnx {
        bail!(
            "{}: ONNX export writes f32 or f16; bf16 is not supported (write bf16 as safetensors)",
            args.output.display()
        );
    }
    let destination = Destination::new(args, format)?;
    let target = destination.path();
    let mut model = super::open_model_as(
        &args.input,
        args.source_naming,
        "--source-naming",
        &args.read,
    )?;
    // On convert the source scheme is stated with --source-naming (--naming is the output's).
    model.restate_naming_flag("--source-naming");
    super::warn(&model);
    let allow = effnet_convert::Allowances {
        padding_change: args.allow_padding_change,
        shortcut_change: args.allow_shortcut_change,
        activation: args.activation.map(|a| a.ir()),
        assume_architecture: args.assume_architecture,
    };
    if let Some(target) = keras_target(format) {
        return to_keras_file(args, &model, &destination, target, allow);
    }
    if format == OutputFormat::Onnx {
        let report = to_onnx(
            &model,
            target,
            &OnnxConvertOptions {
                opset: args.opset.unwrap_or(DEFAULT_OPSET),
                resolution: args.resolution.map(|r| r.hw()),
                dynamic_size: args.dynamic_size,
                logits: args.logits,
                no_preprocessing: args.no_preprocessing,
                fold_bn: args.fold_bn,
                nhwc: args.input_layout == Some(InputLayout::Nhwc),
                half: args.dtype == ActivationDtype::F16,
                clamp: args.clamp,
                allow: allow.clone(),
                force: args.force,
                verify: args.verify,
                check: check_options(args),
            },
        )?;
        for change in &report.changes {
            output::warn(&change.line());
        }
        let size = match report.resolution {
            Some([h, w]) => format!("{h}×{w} input"),
            None => "dynamic input size".to_owned(),
        };
        let mut out = format!(
            "wrote {}: ONNX opset {}, {}, {} nodes, {} initializers, {}, {size}, output `{}`\n",
            destination.name(),
            args.opset.unwrap_or(DEFAULT_OPSET),
            if args.dtype == ActivationDtype::F16 {
                "f16 weights and compute, f32 interface"
            } else {
                "f32"
            },
            report.nodes,
            report.initializers,
            human_bytes(report.bytes as u64),
            report.output_name
        );
        if args.dtype == ActivationDtype::F16 {
            // (With overflow and no --clamp the export is refused before this.)
            out.push_str(&losses_line(DType::F16, &report.losses.stats, true));
        }
        if let Some(c) = &report.checked {
            out.push_str(&checked_line(c, args));
        }
        if report.verified {
            out.push_str(
                "verified: the file re-read and decoded equals the model that was built, byte for byte (a check of the file, not of its numbers)\n",
            );
        }
        destination.finish(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let options = SafetensorsOptions {
        naming: args.naming,
        dtype: weights_dtype(args),
        keep_bn_f32: args.keep_bn_f32,
        clamp: args.clamp,
        allow,
        force: args.force,
        verify: args.verify,
        check: check_options(args),
    };
    let report = with_progress(args, |tick| to_safetensors(&model, target, &options, tick))?;
    for change in &report.changes {
        output::warn(&change.line());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wrote {}: {} tensors, {} names, {}, {}",
        destination.name(),
        thousands(report.tensors as u64),
        report.naming,
        options.dtype,
        human_bytes(report.bytes as u64)
    );
    for (from, to, layers) in &report.eps_moved {
        let _ = writeln!(
            out,
            "BatchNorm eps moved {from:e} → {to:e} in {layers} layers (running_var + {:e}): outputs unchanged",
            from - to
        );
    }
    if options.dtype != DType::F32 {
        out.push_str(&losses_line(options.dtype, &report.stats, options.clamp));
        for (name, n) in report.flushed.iter().take(5) {
            let _ = writeln!(out, "  {n} value(s) flushed to zero in `{name}`");
        }
    }
    if let Some(c) = &report.checked {
        out.push_str(&checked_line(c, args));
    }
    if let Some((err, name)) = &report.verified {
        if *err == 0.0 {
            let _ = writeln!(
                out,
                "verified: every tensor re-read as written, equal to the source"
            );
        } else {
            let _ = writeln!(
                out,
                "verified: every tensor re-read as written; largest error against the source {err:.2e} of the tensor's range (`{name}`)"
            );
        }
    }
    for note in &report.notes {
        if !output::ui().quiet {
            let _ = writeln!(out, "note: {note}");
        }
    }
    destination.finish(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `convert` into a Keras file.
fn to_keras_file(
    args: &ConvertArgs,
    model: &effnet_import::Model,
    destination: &Destination,
    target: KerasTarget,
    allow: effnet_convert::Allowances,
) -> anyhow::Result<ExitCode> {
    let dtype = weights_dtype(args);
    let options = effnet_convert::KerasOptions {
        target,
        dtype,
        clamp: args.clamp,
        input_mean: args.input_mean.as_ref().map(|c| c.0.clone()),
        input_std: args.input_std.as_ref().map(|c| c.0.clone()),
        resolution: args.resolution.map(|r| r.hw()),
        allow,
        force: args.force,
        check: check_options(args),
    };
    let report = with_progress(args, |tick| {
        effnet_convert::to_keras(model, destination.path(), &options, tick)
    })?;
    for change in &report.changes {
        output::warn(&change.line());
    }
    let mut out = String::new();
    let [h, w] = report.resolution;
    let _ = writeln!(
        out,
        "wrote {}: {}, {} layers, {} variables, {dtype}, {}, {h}×{w} input, classifier {}",
        destination.name(),
        target.label(),
        report.layers,
        thousands(report.variables as u64),
        human_bytes(report.bytes),
        report.classifier_activation
    );
    for (from, to, layers) in &report.eps_moved {
        let _ = writeln!(
            out,
            "BatchNorm eps moved {from:e} → {to:e} in {layers} layers (running_var + {:e}): outputs unchanged",
            from - to
        );
    }
    if dtype != DType::F32 {
        out.push_str(&losses_line(dtype, &report.stats, args.clamp));
    }
    if let Some(c) = &report.checked {
        out.push_str(&checked_line(c, args));
    }
    for note in &report.notes {
        if !output::ui().quiet {
            let _ = writeln!(out, "note: {note}");
        }
    }
    destination.finish(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Where a conversion goes: the output file, or (for `-o -`) a private temporary file that is
/// copied to standard output once complete, the report then going to stderr.
enum Destination {
    File(std::path::PathBuf),
    Stdout {
        _folder: tempfile::TempDir,
        file: std::path::PathBuf,
    },
}

impl Destination {
    fn new(args: &ConvertArgs, format: OutputFormat) -> anyhow::Result<Self> {
        if args.output.as_os_str() != "-" {
            // Checked before reading the input (again before the rename, with the input's own
            // files).
            effnet_io::check_output(&args.output, std::slice::from_ref(&args.input), args.force)?;
            return Ok(Destination::File(args.output.clone()));
        }
        if std::io::stdout().is_terminal() {
            bail!(
                "-o -: refusing to write {} to a terminal; redirect standard output or name a file",
                format_name(format)
            );
        }
        let folder = tempfile::tempdir()?;
        let file = folder.path().join(format!("model.{}", suffix(format)));
        Ok(Destination::Stdout {
            _folder: folder,
            file,
        })
    }

    /// The path the converter writes.
    fn path(&self) -> &std::path::Path {
        match self {
            Destination::File(path) | Destination::Stdout { file: path, .. } => path,
        }
    }

    /// The output's name for messages.
    fn name(&self) -> String {
        match self {
            Destination::File(path) => path.display().to_string(),
            Destination::Stdout { .. } => "standard output".to_owned(),
        }
    }

    /// Sends the written bytes to stdout (for `-`) and prints the report.
    fn finish(&self, report: &str) -> anyhow::Result<()> {
        match self {
            Destination::File(_) => output::print(report),
            Destination::Stdout { file, .. } => {
                let mut input = std::fs::File::open(file)?;
                let mut stdout = std::io::stdout().lock();
                std::io::copy(&mut input, &mut stdout)?;
                stdout.flush()?;
                for line in report.lines() {
                    output::note(line);
                }
                Ok(())
            }
        }
    }
}
