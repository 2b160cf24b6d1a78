//! `effnet convert`: write a model in another naming scheme and dtype.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::bail;
use effnet_convert::{OnnxConvertOptions, SafetensorsOptions, to_onnx, to_safetensors};
use effnet_cost::render::{human_bytes, thousands};
use effnet_ir::DType;

use crate::cli::{ActivationDtype, ConvertArgs, InputLayout, OutputFormat};
use crate::output;

pub fn run(args: &ConvertArgs) -> anyhow::Result<ExitCode> {
    let format = match args.to {
        Some(f) => f,
        None => match args.output.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => OutputFormat::Safetensors,
            Some("onnx") => OutputFormat::Onnx,
            _ => bail!(
                "{}: cannot tell the output format from the extension; pass --to safetensors|onnx",
                args.output.display()
            ),
        },
    };
    // Checked before reading the input (again before the rename, with the input's own files).
    effnet_io::check_output(&args.output, std::slice::from_ref(&args.input), args.force)?;
    let model = super::open_model(&args.input, args.source_naming, &args.read)?;
    super::warn(&model);
    if format == OutputFormat::Onnx {
        if args.dtype == ActivationDtype::Bf16 {
            bail!("ONNX export writes f32 or f16; bf16 is not supported");
        }
        let report = to_onnx(
            &model,
            &args.output,
            &OnnxConvertOptions {
                opset: args.opset,
                resolution: args.resolution,
                dynamic_size: args.dynamic_size,
                logits: args.logits,
                no_preprocessing: args.no_preprocessing,
                fold_bn: args.fold_bn,
                nhwc: args.input_layout == InputLayout::Nhwc,
                half: args.dtype == ActivationDtype::F16,
                force: args.force,
                verify: args.verify,
            },
        )?;
        let size = match report.resolution {
            Some(r) => format!("{r}×{r} input"),
            None => "dynamic input size".to_owned(),
        };
        output::print(&format!(
            "wrote {}: ONNX opset {}, {}, {} nodes, {} initializers, {}, {size}, output `{}`\n",
            report.output.display(),
            args.opset,
            if args.dtype == ActivationDtype::F16 {
                "f16 weights and compute, f32 interface"
            } else {
                "f32"
            },
            report.nodes,
            report.initializers,
            human_bytes(report.bytes as u64),
            report.output_name
        ))?;
        if report.verified {
            output::print(
                "verified: the file re-reads as the model that was built (its outputs are checked in onnxruntime by CI)\n",
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = SafetensorsOptions {
        naming: args.naming,
        dtype: match args.dtype {
            ActivationDtype::F32 => DType::F32,
            ActivationDtype::F16 => DType::F16,
            ActivationDtype::Bf16 => DType::BF16,
        },
        keep_bn_f32: args.keep_bn_f32,
        clamp: args.clamp,
        allow_padding_change: args.allow_padding_change,
        force: args.force,
        verify: args.verify,
    };
    let input_bytes = std::fs::metadata(&args.input).map(|m| m.len()).unwrap_or(0);
    let bar = output::progress("converting", input_bytes);
    let mut tick = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let report = to_safetensors(&model, &args.output, &options, &mut tick);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wrote {}: {} tensors, {} names, {}, {}",
        report.output.display(),
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
    let s = &report.stats;
    if options.dtype != DType::F32 {
        let _ = writeln!(
            out,
            "{}: {} overflow{}, {} flushed to zero, {} subnormal, {} NaN/Inf; largest |value| {:.4}",
            options.dtype,
            s.overflow,
            if options.clamp && s.overflow > 0 {
                " (clamped)"
            } else {
                ""
            },
            s.flushed_to_zero,
            s.subnormal,
            s.non_finite,
            s.max_abs
        );
        for (name, n) in report.flushed.iter().take(5) {
            let _ = writeln!(out, "  {n} value(s) flushed to zero in `{name}`");
        }
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
    output::print(&out)?;
    Ok(ExitCode::SUCCESS)
}
