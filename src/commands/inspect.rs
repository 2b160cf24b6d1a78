//! `effnet inspect`: what a model file is.

use std::fmt::Write as _;
use std::process::ExitCode;

use comfy_table::{Table, presets};
use effnet_cost::render::thousands;
use effnet_import::Model;
use serde_json::json;

use crate::cli::{InspectArgs, InspectFormat};
use crate::output;

pub fn run(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let model = super::open_model(&args.path, args.naming, &args.read)?;
    if let Some(dot) = &args.dot {
        let text = model.imported.graph.to_dot();
        let inputs = effnet_convert::inputs_of(&model);
        if !output::write_text(dot, &inputs, args.force, &text)? {
            return Ok(ExitCode::SUCCESS);
        }
        output::note(&format!(
            "wrote {} (render with: dot -Tsvg {} -o graph.svg)",
            dot.display(),
            dot.display()
        ));
    }
    let text = match args.format {
        InspectFormat::Json => {
            let mut doc = serde_json::to_string_pretty(&document(&model))?;
            doc.push('\n');
            doc
        }
        InspectFormat::Table => table(&model),
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Tensors of the model read (under the chosen key), as the dtype counts and params are.
fn read_tensors(model: &Model) -> usize {
    model.dtypes.values().sum()
}

/// The dtype most tensors have, or `mixed` when floating-point dtypes differ.
fn dominant_dtype(model: &Model) -> String {
    let floats: Vec<_> = model.dtypes.keys().filter(|d| d.is_float()).collect();
    match floats.as_slice() {
        [one] => one.name().to_owned(),
        [] => "none".to_owned(),
        _ => "mixed".to_owned(),
    }
}

fn document(model: &Model) -> serde_json::Value {
    let imported = &model.imported;
    let (trainable, non_trainable) = imported.graph.param_counts();
    let (width, depth) = imported.identity.coefficients().unzip();
    let report = &imported.report;
    json!({
        "schema": "effnet.inspect/1",
        "path": model.path.display().to_string(),
        "container": model.container,
        "naming": model.naming.name(),
        "naming_source": model.naming_source.name(),
        "variant": imported.identity.label(),
        "family": imported.identity.family().map(|f| f.name()),
        "width": width,
        "depth": depth,
        "resolution": imported.architecture.resolution,
        "num_classes": imported.architecture.num_classes,
        "key": model.key,
        "other_keys": model.other_keys,
        "stripped_prefix": model.stripped_prefix,
        "tensors": read_tensors(model),
        "tensors_in_file": model.tensors,
        "dtype": dominant_dtype(model),
        "dtypes": model.dtypes.iter().map(|(d, n)| (d.name().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "params": trainable,
        "trainable_params": trainable,
        "non_trainable_params": non_trainable,
        "has_architecture": model.has_architecture,
        "metadata": model.metadata,
        "import": {
            "applied": report.applied.len(),
            "skipped": report.skipped.len(),
            "missing": report.missing,
            "unused": report.unused,
        },
        "assumptions": imported.assumptions.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "warnings": model.warnings,
    })
}

/// What `inspect` shows of a model: the rows of its table (label, value; text from the file
/// escaped for a terminal) and the notes below it (`assumed: …`, `warning: …`).
pub struct Facts {
    /// Label and value of each row.
    pub rows: Vec<(&'static str, String)>,
    /// The assumptions and warnings of the import, one line each.
    pub notes: Vec<String>,
}

fn table(model: &Model) -> String {
    let facts = facts(model);
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    for (k, v) in facts.rows {
        t.add_row(vec![k.to_owned(), v]);
    }
    let mut out = t.to_string();
    out.push('\n');
    for note in &facts.notes {
        let _ = writeln!(out, "{note}");
    }
    out
}

/// The facts of `model` as `inspect` prints them.
pub fn facts(model: &Model) -> Facts {
    let imported = &model.imported;
    let arch = &imported.architecture;
    let (trainable, non_trainable) = imported.graph.param_counts();
    let dtypes = model
        .dtypes
        .iter()
        .map(|(d, n)| format!("{d} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut rows: Vec<(&str, String)> = vec![
        ("path", model.path.display().to_string()),
        ("container", model.container.to_owned()),
        (
            "naming",
            format!("{} (from {})", model.naming, model.naming_source.name()),
        ),
    ];
    if let Some(key) = &model.key {
        let also = if model.other_keys.is_empty() {
            String::new()
        } else {
            format!(
                " (also in the file: {}; choose with --key)",
                model.other_keys.join(", ")
            )
        };
        rows.push(("key", format!("{}{also}", effnet_io::escape(key))));
    }
    if let Some(prefix) = &model.stripped_prefix {
        rows.push((
            "prefix",
            format!("`{}` removed from every name", effnet_io::escape(prefix)),
        ));
    }
    rows.extend([
        ("variant", imported.identity.label()),
        (
            "family",
            imported
                .identity
                .family()
                .map_or("unknown", |f| f.title())
                .to_owned(),
        ),
        (
            "resolution",
            match (arch.resolution, model.has_architecture) {
                (Some(r), _) => format!("{r}×{r} (the input size the file records)"),
                (None, true) => "not fixed (the model is built for any input size)".to_owned(),
                (None, false) => "not recorded in the file".to_owned(),
            },
        ),
        (
            "blocks",
            format!(
                "{} in {} stages, {} residual",
                arch.blocks.len(),
                arch.blocks.last().map_or(0, |b| b.stage.saturating_sub(1)),
                arch.blocks.iter().filter(|b| b.residual).count()
            ),
        ),
        (
            "widths",
            format!("stem {} · head {}", arch.stem_channels, arch.head_channels),
        ),
        (
            "classes",
            arch.num_classes
                .map_or("none (no classifier)".to_owned(), |c| c.to_string()),
        ),
        ("tensors", {
            let read = read_tensors(model);
            if read == model.tensors {
                format!("{read} ({dtypes})")
            } else {
                format!("{read} ({dtypes}) of the {} in the file", model.tensors)
            }
        }),
        (
            "params",
            format!(
                "{} trainable + {} non-trainable",
                thousands(trainable),
                thousands(non_trainable)
            ),
        ),
    ]);
    let report = &imported.report;
    rows.push((
        "import",
        format!(
            "{} bound, {} skipped (BatchNorm step counters), {} missing, {} unused",
            report.applied.len(),
            report.skipped.len(),
            report.missing.len(),
            report.unused.len()
        ),
    ));
    // The file's own text: escaped, so a metadata value cannot forge lines or colours.
    for (k, v) in &model.metadata {
        rows.push((
            "metadata",
            format!("{} = {}", effnet_io::escape(k), effnet_io::escape(v)),
        ));
    }
    let notes = imported
        .assumptions
        .iter()
        .map(|a| format!("assumed: {a}"))
        .chain(model.warnings.iter().map(|w| format!("warning: {w}")))
        .collect();
    Facts { rows, notes }
}
