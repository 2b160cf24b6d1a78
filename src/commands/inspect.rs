//! `effnet inspect`: what a model file is.

use std::fmt::Write as _;
use std::process::ExitCode;

use comfy_table::{CellAlignment, Table, presets};
use effnet_cost::render::thousands;
use effnet_import::{Model, Opened, OtherFile};
use effnet_ir::{DType, Tensor};
use effnet_stats::Stats;
use serde_json::json;

use super::many::{self, Many, Outcome};
use crate::cli::{InspectArgs, InspectFormat};
use crate::output;

pub fn run(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    if let Some(how) = Many::of(
        &args.paths,
        &args.recursive,
        args.format == InspectFormat::Jsonl,
        args.format == InspectFormat::Json,
        false,
    ) {
        if args.dot.is_some() {
            anyhow::bail!("--dot writes one model's graph: give one path");
        }
        let models = many::models(&args.paths, &args.recursive)?;
        let columns: &(dyn Fn(&serde_json::Value) -> Vec<String> + Sync) = &|doc| {
            let text = |key: &str| match &doc[key] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let variant = match doc["not_efficientnet"].as_str() {
                Some(reason) => format!("not an EfficientNet: {reason}"),
                None => text("variant"),
            };
            let params = doc["params"].as_u64().map(thousands).unwrap_or_default();
            vec![
                text("container"),
                text("naming"),
                variant,
                text("family"),
                params,
            ]
        };
        return many::run(
            &models,
            how,
            (
                &["Container", "Naming", "Variant", "Family", "Params"],
                columns,
            ),
            &|path| {
                let mut doc = match super::open_any(path, args.naming, &args.read, &args.checks)? {
                    Opened::EfficientNet(model) => document(&model),
                    Opened::Other(file) => other_document(&file),
                };
                if args.tensors {
                    let file = effnet_import::read_tensors(path)?;
                    doc["tensor_list"] = TensorList::of(&file.checkpoint.tensors).json();
                }
                Ok(Outcome { doc, status: 0 })
            },
        );
    }
    let path = &args.paths[0];
    let model = match super::open_any(path, args.naming, &args.read, &args.checks)? {
        Opened::EfficientNet(model) => model,
        Opened::Other(file) => return run_other(args, &file),
    };
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
    // The file's tensors as it names them (the model holds them bound into the graph).
    let file = if args.tensors {
        Some(effnet_import::read_tensors(path)?)
    } else {
        None
    };
    let listed = file.as_ref().map(|f| TensorList::of(&f.checkpoint.tensors));
    let text = match args.format {
        InspectFormat::Json | InspectFormat::Jsonl => {
            let mut doc = document(&model);
            if let Some(list) = &listed {
                doc["tensor_list"] = list.json();
            }
            let mut doc = serde_json::to_string_pretty(&doc)?;
            doc.push('\n');
            doc
        }
        InspectFormat::Table => {
            let mut text = table(&model);
            if let Some(list) = &listed {
                text.push('\n');
                text.push_str(&list.table());
            }
            text
        }
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// A file that is not an EfficientNet: what it holds, and why it is not one.
fn run_other(args: &InspectArgs, file: &OtherFile) -> anyhow::Result<ExitCode> {
    if args.dot.is_some() {
        anyhow::bail!(
            "{}: not an EfficientNet: {}; --dot needs a model graph",
            file.path.display(),
            file.reason
        );
    }
    let listed = args.tensors.then(|| TensorList::of(&file.tensors));
    let text = match args.format {
        InspectFormat::Json | InspectFormat::Jsonl => {
            let mut doc = other_document(file);
            if let Some(list) = &listed {
                doc["tensor_list"] = list.json();
            }
            let mut doc = serde_json::to_string_pretty(&doc)?;
            doc.push('\n');
            doc
        }
        InspectFormat::Table => {
            let mut text = other_table(file);
            if let Some(list) = &listed {
                text.push('\n');
                text.push_str(&list.table());
            }
            text
        }
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Every tensor of a file with the statistics of its values.
struct TensorList<'a> {
    tensors: &'a [(String, Tensor)],
    stats: Vec<Option<Stats>>,
}

impl<'a> TensorList<'a> {
    fn of(tensors: &'a [(String, Tensor)]) -> Self {
        let stats = effnet_stats::tensors_stats(tensors.iter().map(|(_, t)| t));
        TensorList { tensors, stats }
    }

    fn json(&self) -> serde_json::Value {
        self.tensors
            .iter()
            .zip(&self.stats)
            .map(|((name, t), s)| {
                json!({
                    "name": name,
                    "shape": t.shape(),
                    "dtype": t.dtype().name(),
                    "bytes": t.nbytes(),
                    "min": s.and_then(|s| s.min),
                    "max": s.and_then(|s| s.max),
                    "mean": s.and_then(|s| s.mean),
                    "std": s.and_then(|s| s.std),
                    "nan": s.map(|s| s.nan),
                    "inf": s.map(|s| s.inf),
                })
            })
            .collect()
    }

    fn table(&self) -> String {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED).set_header([
            "Tensor", "Shape", "Dtype", "Bytes", "Min", "Max", "Mean", "Std", "NaN", "Inf",
        ]);
        let value = |v: Option<f64>| v.map_or("–".to_owned(), number);
        for ((name, tensor), s) in self.tensors.iter().zip(&self.stats) {
            let shape = tensor
                .shape()
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("×");
            let count = |n: Option<u64>| n.map_or("–".to_owned(), thousands);
            t.add_row(vec![
                effnet_io::escape(name).into_owned(),
                if shape.is_empty() {
                    "scalar".to_owned()
                } else {
                    shape
                },
                tensor.dtype().name().to_owned(),
                thousands(tensor.nbytes() as u64),
                value(s.and_then(|s| s.min)),
                value(s.and_then(|s| s.max)),
                value(s.and_then(|s| s.mean)),
                value(s.and_then(|s| s.std)),
                count(s.map(|s| s.nan)),
                count(s.map(|s| s.inf)),
            ]);
        }
        for i in 3..10 {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        let mut out = t.to_string();
        out.push('\n');
        out.push_str(
            "statistics over the finite values (NaN and Inf counted apart); std: population (ddof 0)\n",
        );
        out
    }
}

/// A statistic in a table cell: 6 significant digits.
fn number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".to_owned()
    } else if (1e-3..1e5).contains(&a) {
        let decimals = (5 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.5e}")
    }
}

fn other_document(file: &OtherFile) -> serde_json::Value {
    let elements = file.elements();
    json!({
        "schema": "effnet.inspect/1",
        "path": file.path.display().to_string(),
        "container": file.container,
        "naming": null,
        "naming_source": null,
        "variant": null,
        "family": null,
        "not_efficientnet": file.reason,
        "width": null,
        "depth": null,
        "resolution": null,
        "num_classes": null,
        "tensors": file.tensors.len(),
        "tensors_in_file": file.tensors.len(),
        "dtype": dominant(&file.dtypes),
        "dtypes": file.dtypes.iter().map(|(d, n)| (d.name().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "params": elements,
        "trainable_params": null,
        "non_trainable_params": null,
        "has_architecture": false,
        "checksums": effnet_import::checksum_state(file.container, file.checksums.is_some()),
        "metadata": file.metadata,
        "assumptions": [],
        "warnings": file.warnings,
    })
}

fn other_table(file: &OtherFile) -> String {
    let dtypes = file
        .dtypes
        .iter()
        .map(|(d, n)| format!("{d} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut rows: Vec<(&str, String)> = vec![
        ("path", file.path.display().to_string()),
        ("container", file.container.to_owned()),
        ("variant", "none (not an EfficientNet)".to_owned()),
        ("tensors", format!("{} ({dtypes})", file.tensors.len())),
        (
            "params",
            format!("{} (elements of every tensor)", thousands(file.elements())),
        ),
    ];
    for (k, v) in &file.metadata {
        rows.push((
            "metadata",
            format!("{} = {}", effnet_io::escape(k), effnet_io::escape(v)),
        ));
    }
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    for (k, v) in rows {
        t.add_row(vec![k.to_owned(), v]);
    }
    let mut out = t.to_string();
    out.push('\n');
    let _ = writeln!(out, "not an EfficientNet: {}", file.reason);
    for w in &file.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// Tensors of the model read (under the chosen key), as the dtype counts and params are.
fn read_tensors(model: &Model) -> usize {
    model.dtypes.values().sum()
}

/// The dtype most tensors have, or `mixed` when floating-point dtypes differ.
fn dominant_dtype(model: &Model) -> String {
    dominant(&model.dtypes)
}

/// The floating-point dtype of `dtypes`, `mixed` when they differ, `none` without one.
fn dominant(dtypes: &std::collections::BTreeMap<DType, usize>) -> String {
    let floats: Vec<_> = dtypes.keys().filter(|d| d.is_float()).collect();
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
        "not_efficientnet": null,
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
        "checksums": effnet_import::checksum_state(model.container, model.checksums_pending()),
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
