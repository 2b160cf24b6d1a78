//! `effnet compare`: two model files on the same input, stage by stage (`effnet.compare/1`).
//! Exit 0 when the outputs agree within the tolerance, 1 when not, 2 when a file cannot be
//! read or the two cannot be compared.

use std::process::ExitCode;

use anyhow::bail;
use comfy_table::{Table, presets};
use effnet_exec::{Comparison, Feed, StageDiff, compare_graphs, input_channels, seeded_pixels};
use serde_json::json;

use crate::cli::{CompareArgs, RunFormat};
use crate::commands::run::{read_input, resolution_of};
use crate::output;

/// The paper's name of a stage's operator.
fn stage_name(stage: u8) -> &'static str {
    match stage {
        1 => "stem",
        2..=8 => "MBConv",
        9 => "head",
        _ => "",
    }
}

fn diff_json(s: &StageDiff) -> serde_json::Value {
    json!({
        "stage": s.stage,
        "shape_a": s.shape_a,
        "shape_b": s.shape_b,
        "max_abs_diff": s.diff.map(|d| d.max_abs),
        "max_abs_ref": s.diff.map(|d| d.max_ref),
        "relative_diff": s.diff.map(|d| d.relative),
    })
}

fn document(
    args: &CompareArgs,
    c: &Comparison,
    input: &serde_json::Value,
    feeds: [&Feed; 2],
) -> serde_json::Value {
    let stages: Vec<serde_json::Value> = c
        .stages
        .iter()
        .map(|s| {
            let mut v = diff_json(s);
            v["within_tolerance"] = json!(s.within(c.tolerance));
            v
        })
        .collect();
    let mut output = diff_json(&c.output);
    if let Some(o) = output.as_object_mut() {
        o.remove("stage");
    }
    output["compared"] = json!(if c.logits { "logits" } else { "output" });
    json!({
        "schema": "effnet.compare/1",
        "a": {"path": args.a.display().to_string(), "preprocessing": feeds[0].describe()},
        "b": {"path": args.b.display().to_string(), "preprocessing": feeds[1].describe()},
        "input": input,
        "stages": stages,
        "output": output,
        "first_differing_stage": c.first_differing_stage,
        "tolerance": c.tolerance,
        "equal": c.equal,
    })
}

/// The per-stage table with what fed each model.
pub(crate) fn table(c: &Comparison, feeds: [&Feed; 2], input: &str) -> String {
    format!(
        "input: {input}\na fed: {}\nb fed: {}\n\n{}",
        feeds[0].describe(),
        feeds[1].describe(),
        stage_table(c)
    )
}

/// The per-stage differences and the verdict (also what `convert --check` prints).
pub(crate) fn stage_table(c: &Comparison) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(vec![
        "stage",
        "operator",
        "shape",
        "max |a−b|",
        "max|a−b|/max|b|",
        "",
    ]);
    let cell = |s: &StageDiff| match s.diff {
        Some(d) => (format!("{:.3e}", d.max_abs), format!("{:.3e}", d.relative)),
        None => ("shapes differ".to_owned(), "—".to_owned()),
    };
    let shape = |s: &StageDiff| {
        if s.shape_a == s.shape_b {
            format!("{:?}", s.shape_a)
        } else {
            format!("{:?} vs {:?}", s.shape_a, s.shape_b)
        }
    };
    for s in &c.stages {
        let (abs, rel) = cell(s);
        let mark = if s.within(c.tolerance) { "" } else { "✗" };
        t.add_row(vec![
            s.stage.to_string(),
            stage_name(s.stage).to_owned(),
            shape(s),
            abs,
            rel,
            mark.to_owned(),
        ]);
    }
    let (abs, rel) = cell(&c.output);
    t.add_row(vec![
        "output".to_owned(),
        if c.logits { "logits" } else { "" }.to_owned(),
        shape(&c.output),
        abs,
        rel,
        if c.equal { "" } else { "✗" }.to_owned(),
    ]);
    let verdict = if c.equal {
        format!("equal within {:e}", c.tolerance)
    } else {
        match c.first_differing_stage {
            Some(s) => format!(
                "NOT equal within {:e}; first differing stage: {s}",
                c.tolerance
            ),
            None => format!("NOT equal within {:e}", c.tolerance),
        }
    };
    format!("{t}\n\n{verdict}\n")
}

pub fn run(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        bail!("--tolerance must be a non-negative number");
    }
    let read = crate::cli::ReadArgs { key: None };
    let a = super::open_model_as(&args.a, args.naming_a, "--naming-a", &read)?;
    super::warn(&a);
    let b = super::open_model_as(&args.b, args.naming_b, "--naming-b", &read)?;
    super::warn(&b);
    let (ga, gb) = (&a.imported.graph, &b.imported.graph);
    let channels = input_channels(ga)?;
    if channels != input_channels(gb)? {
        bail!(
            "not comparable: {} takes {channels} input channels, {} takes {}",
            args.a.display(),
            args.b.display(),
            input_channels(gb)?
        );
    }
    let feed_a = Feed::for_model(ga, &a.metadata)?;
    let feed_b = Feed::for_model(gb, &b.metadata)?;
    let (raw, input_doc, input_text) = match &args.input {
        Some(path) => {
            let x = read_input(path, args.layout)?;
            let text = format!("{} {:?} (raw pixels)", path.display(), x.shape);
            (x, json!({"npy": path.display().to_string()}), text)
        }
        None => {
            let recorded = resolution_of(ga, args.resolution).or_else(|| resolution_of(gb, None));
            let hw = recorded.unwrap_or([224, 224]);
            let seed = args.seed.unwrap_or(0);
            let text = format!(
                "seeded pixels (seed {seed}), [1, {channels}, {}, {}], uniform in 0–255{}",
                hw[0],
                hw[1],
                if recorded.is_none() {
                    " (neither model records a resolution: 224; give --resolution)"
                } else {
                    ""
                }
            );
            (
                seeded_pixels(seed, 1, channels, hw)?,
                json!({"seed": seed, "shape": [1, channels, hw[0], hw[1]]}),
                text,
            )
        }
    };
    let comparison = compare_graphs((ga, &feed_a), (gb, &feed_b), &raw, args.tolerance)?;
    let feeds = [&feed_a, &feed_b];
    let text = match args.format {
        RunFormat::Json => {
            let mut s =
                serde_json::to_string_pretty(&document(args, &comparison, &input_doc, feeds))?;
            s.push('\n');
            s
        }
        RunFormat::Table => table(&comparison, feeds, &effnet_io::escape(&input_text)),
    };
    output::print(&text)?;
    Ok(if comparison.equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
