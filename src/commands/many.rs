//! `inspect`, `cost` and `audit` over many models: the paths given and the models found under
//! `--recursive` folders (a SavedModel or a TensorFlow checkpoint folder counts as one model),
//! read on every core, one JSON object per model (`--format jsonl`), a JSON array or a summary
//! table. One bad file never stops the rest; the exit code is the worst: 2 (unreadable) over 1
//! (deviates, over budget) over 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use comfy_table::{Table, presets};
use rayon::prelude::*;
use serde_json::Value;

use crate::output;

/// The most folders `--recursive` descends into, and the most models it collects.
const MAX_DEPTH: usize = 32;
const MAX_MODELS: usize = 100_000;

/// File suffixes of the model files `--recursive` collects.
const MODEL_SUFFIXES: [&str; 8] = [
    ".pth",
    ".pt",
    ".bin",
    ".safetensors",
    ".h5",
    ".hdf5",
    ".keras",
    ".onnx",
];

/// How many models go out, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Many {
    /// One JSON object per line.
    Jsonl,
    /// One JSON array.
    Json,
    /// A summary table (Markdown when `markdown`).
    Table {
        /// Markdown instead of the terminal table.
        markdown: bool,
    },
}

impl Many {
    /// The many-model output for `paths` and `--recursive` folders, given the format asked
    /// for; `None` for one path in a single-model format (the command's own output).
    pub fn of(
        paths: &[PathBuf],
        folders: &[PathBuf],
        jsonl: bool,
        json: bool,
        markdown: bool,
    ) -> Option<Many> {
        if jsonl {
            Some(Many::Jsonl)
        } else if paths.len() > 1 || !folders.is_empty() {
            Some(if json {
                Many::Json
            } else {
                Many::Table { markdown }
            })
        } else {
            None
        }
    }
}

/// The summary table's columns after the path and the status, and a model's cells for them.
pub type Columns<'a> = (&'a [&'a str], &'a (dyn Fn(&Value) -> Vec<String> + Sync));

/// One model's document and exit status.
pub struct Outcome {
    /// The model's JSON document.
    pub doc: Value,
    /// 0, or 1 when it deviates or is over budget.
    pub status: u8,
}

/// Whether a folder is one model: a SavedModel or a TensorFlow checkpoint folder.
fn is_model_folder(dir: &Path) -> bool {
    if dir.join("saved_model.pb").is_file() || dir.join("checkpoint").is_file() {
        return true;
    }
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".index"))
    })
}

/// The models to read: `paths` as given, then what lies under each of `folders` (model
/// files by suffix, model folders as one; symbolic links are not followed), each folder's in
/// name order.
pub fn models(paths: &[PathBuf], folders: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = paths.to_vec();
    for folder in folders {
        if !folder.is_dir() {
            bail!("--recursive {}: not a folder", folder.display());
        }
        if is_model_folder(folder) {
            out.push(folder.clone());
            continue;
        }
        let mut stack = vec![(folder.clone(), 0usize)];
        let mut found = Vec::new();
        while let Some((dir, depth)) = stack.pop() {
            if depth > 0 && is_model_folder(&dir) {
                found.push(dir);
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut entries: Vec<_> = entries.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries.into_iter().rev() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() && depth < MAX_DEPTH {
                    stack.push((path, depth + 1));
                } else if kind.is_file() {
                    let name = entry.file_name().to_string_lossy().to_lowercase();
                    if MODEL_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                        found.push(path);
                    }
                }
            }
            if found.len() > MAX_MODELS {
                bail!(
                    "--recursive {}: more than {MAX_MODELS} models",
                    folder.display()
                );
            }
        }
        found.sort();
        out.extend(found);
    }
    if out.is_empty() {
        bail!("no model found");
    }
    Ok(out)
}

/// Reads every model with `one` on every core and prints the documents as `how` says, with
/// `summary` giving a model's columns for the table (after the path and the status).
pub fn run(
    models: &[PathBuf],
    how: Many,
    summary: Columns<'_>,
    one: &(dyn Fn(&Path) -> anyhow::Result<Outcome> + Sync),
) -> anyhow::Result<ExitCode> {
    let outcomes: Vec<(u8, Value)> = models
        .par_iter()
        .map(|path| {
            let shown = path.display().to_string();
            match one(path) {
                Ok(mut outcome) => {
                    if let Some(doc) = outcome.doc.as_object_mut() {
                        doc.insert("path".into(), Value::String(shown));
                    }
                    (outcome.status, outcome.doc)
                }
                Err(e) => (
                    2,
                    serde_json::json!({
                        "path": shown,
                        "error": effnet_io::escape(&format!("{e:#}")),
                    }),
                ),
            }
        })
        .collect();
    let worst = outcomes.iter().map(|(s, _)| *s).max().unwrap_or(0);
    let text = match how {
        Many::Jsonl => {
            let mut text = String::new();
            for (_, doc) in &outcomes {
                text.push_str(&serde_json::to_string(doc)?);
                text.push('\n');
            }
            text
        }
        Many::Json => {
            let docs: Vec<&Value> = outcomes.iter().map(|(_, d)| d).collect();
            let mut text = serde_json::to_string_pretty(&docs)?;
            text.push('\n');
            text
        }
        Many::Table { markdown } => table(&outcomes, summary, markdown),
    };
    output::print(&text)?;
    Ok(ExitCode::from(worst))
}

fn status_name(status: u8) -> &'static str {
    match status {
        0 => "ok",
        1 => "fails",
        _ => "unreadable",
    }
}

fn table(outcomes: &[(u8, Value)], (columns, cells): Columns<'_>, markdown: bool) -> String {
    let mut header = vec!["Path", "Status"];
    header.extend_from_slice(columns);
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|(status, doc)| {
            let path = doc["path"].as_str().unwrap_or("").to_owned();
            let mut row = vec![
                effnet_io::escape(&path).into_owned(),
                status_name(*status).into(),
            ];
            match doc.get("error").and_then(Value::as_str) {
                Some(error) => {
                    row.push(error.to_owned());
                    row.resize(header.len(), String::new());
                }
                None => row.extend(cells(doc)),
            }
            row
        })
        .collect();
    let counts = [0u8, 1, 2].map(|s| outcomes.iter().filter(|(x, _)| *x == s).count());
    let footer = format!(
        "{} models: {} ok, {} failing, {} unreadable",
        outcomes.len(),
        counts[0],
        counts[1],
        counts[2]
    );
    if markdown {
        let mut out = format!(
            "| {} |\n|{}\n",
            header.join(" | "),
            "---|".repeat(header.len())
        );
        for row in rows {
            out.push_str(&format!("| {} |\n", row.join(" | ").replace('\n', " ")));
        }
        out.push('\n');
        out.push_str(&footer);
        out.push('\n');
        out
    } else {
        let mut table = Table::new();
        table
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
            .set_header(header);
        for row in rows {
            table.add_row(row);
        }
        format!("{table}\n{footer}\n")
    }
}
