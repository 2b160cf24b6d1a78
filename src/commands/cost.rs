//! `effnet cost`: params, MACs, FLOPs and activation memory.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use effnet_cost::baseline::{Comparison, compare};
use effnet_cost::render::{self, Granularity, thousands};
use effnet_cost::{CostOptions, CostReport, ModelInfo, analyze};
use effnet_ir::{DType, Graph};

use super::SpecModel;
use super::many::{self, Many, Outcome};
use crate::cli::{ActivationDtype, By, CostArgs, CostFormat};
use crate::output;

pub fn run(args: &CostArgs) -> anyhow::Result<ExitCode> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let options = |resolution| CostOptions {
        batch: args.batch,
        dtype: match args.dtype {
            ActivationDtype::F32 => DType::F32,
            ActivationDtype::F16 => DType::F16,
            ActivationDtype::Bf16 => DType::BF16,
        },
        resolution: Some(resolution),
    };
    let by = match args.by {
        By::Stage => Granularity::Stage,
        By::Block => Granularity::Block,
        By::Layer => Granularity::Layer,
        By::Operator => Granularity::Operator,
    };
    if let Some(how) = Many::of(
        &args.paths,
        &args.recursive,
        args.format == CostFormat::Jsonl,
        args.format == CostFormat::Json,
        args.format == CostFormat::Md,
    ) {
        if args.baseline.is_some() || args.svg.is_some() {
            bail!("--baseline and --svg measure one model: give one path");
        }
        if args.scaling.width.is_some() || args.scaling.depth.is_some() {
            bail!(
                "--width and --depth scale a --variant; a model file's own coefficients are measured"
            );
        }
        let models = many::models(&args.paths, &args.recursive)?;
        let columns: &(dyn Fn(&serde_json::Value) -> Vec<String> + Sync) = &|doc| {
            let total = |key: &str| {
                doc["total"][key]
                    .as_u64()
                    .map(thousands)
                    .unwrap_or_default()
            };
            let model = &doc["model"];
            vec![
                match (model["variant"].as_str(), model["width"].as_f64()) {
                    (Some(v), _) => v.to_owned(),
                    (None, Some(w)) => format!("w={w} d={}", model["depth"]),
                    (None, None) => String::new(),
                },
                model["input_size"]
                    .as_array()
                    .map(|hw| {
                        hw.iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join("×")
                    })
                    .unwrap_or_default(),
                total("params"),
                total("macs"),
            ]
        };
        return many::run(
            &models,
            how,
            (&["Variant", "Input", "Params", "MACs"], columns),
            &|path| {
                let model = super::open_model_for_report(
                    path,
                    args.scaling.naming,
                    &args.read,
                    &args.checks,
                )?;
                let info = file_info(&model, path, args.scaling.resolution.map(|r| r.hw()))?;
                let resolution = info.resolution;
                let report = analyze(&model.imported.graph, info, &options(resolution))?;
                Ok(Outcome {
                    doc: render::json(&report, by),
                    status: 0,
                })
            },
        );
    }
    let path = args.paths.first();
    if args.variant.is_some() && args.read.key.is_some() {
        bail!("--key reads a checkpoint file; it does not apply to --variant");
    }
    if path.is_some() && (args.scaling.width.is_some() || args.scaling.depth.is_some()) {
        bail!(
            "--width and --depth scale a --variant; a model file's own coefficients are measured"
        );
    }
    let (graph, info): (Graph, ModelInfo) = match (path, args.variant) {
        (_, Some(variant)) => {
            let model = SpecModel::build(variant, &args.scaling)?;
            let info = ModelInfo {
                title: match model.spec.variant {
                    Some(v) => v.display_name(),
                    None => format!(
                        "{} w={} d={}",
                        model.spec.family().title(),
                        model.spec.width,
                        model.spec.depth
                    ),
                },
                variant: model.spec.variant.map(|v| v.name().to_owned()),
                family: Some(model.spec.family().name().to_owned()),
                width: Some(model.spec.width),
                depth: Some(model.spec.depth),
                resolution: model.input_size,
                naming: Some(model.semantics.scheme.name().to_owned()),
                source: "spec".to_owned(),
            };
            (model.graph, info)
        }
        (Some(path), None) => {
            let model =
                super::open_model_for_report(path, args.scaling.naming, &args.read, &args.checks)?;
            super::warn(&model);
            let info = file_info(&model, path, args.scaling.resolution.map(|r| r.hw()))?;
            (model.imported.graph, info)
        }
        (None, None) => bail!("give a model file or --variant"),
    };
    let resolution = info.resolution;
    let report = analyze(&graph, info, &options(resolution))?;
    let comparison = match &args.baseline {
        Some(path) => Some(load_baseline(
            path,
            &report,
            args.max_increase,
            args.allow_different_settings,
        )?),
        None => None,
    };
    if let Some(svg) = &args.svg {
        let text = effnet_cost::chart::svg(&report)
            .map_err(|e| anyhow::anyhow!("{}: cannot draw the chart: {e}", svg.display()))?;
        let inputs: Vec<std::path::PathBuf> = path.into_iter().cloned().collect();
        if !output::write_text(svg, &inputs, args.force, &text)? {
            // The chart took stdout; the budget verdict still sets the exit code.
            return Ok(match comparison {
                Some(c) if !c.within_budget() => {
                    eprint!("{}", c.render(false));
                    ExitCode::from(1)
                }
                _ => ExitCode::SUCCESS,
            });
        }
        output::note(&format!("wrote {}", svg.display()));
    }
    let mut text = match args.format {
        CostFormat::Table => render::table(&report, by),
        CostFormat::Md => render::markdown(&report, by),
        CostFormat::Csv => render::csv(&report, by),
        CostFormat::Json | CostFormat::Jsonl => {
            let mut doc = render::json(&report, by);
            if let (Some(c), Some(path)) = (&comparison, &args.baseline) {
                doc["baseline"] = c.json(&path.display().to_string());
            }
            let mut doc = serde_json::to_string_pretty(&doc)?;
            doc.push('\n');
            doc
        }
    };
    if let Some(c) = &comparison {
        match args.format {
            CostFormat::Table => text.push_str(&format!("\n{}", c.render(false))),
            CostFormat::Md => text.push_str(&format!("\n{}", c.render(true))),
            // CSV and JSON stay machine-readable; the verdict goes to stderr.
            CostFormat::Csv | CostFormat::Json | CostFormat::Jsonl => {
                eprint!("{}", c.render(false))
            }
        }
    }
    output::print(&text)?;
    Ok(match comparison {
        Some(c) if !c.within_budget() => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

/// What a cost report says of the model read from `path`; `resolution` overrides the one the
/// file records, and one of the two is needed.
pub fn file_info(
    model: &effnet_import::Model,
    path: &Path,
    resolution: Option<[usize; 2]>,
) -> anyhow::Result<ModelInfo> {
    let identity = &model.imported.identity;
    // The flag, else what the file records: a square size, or the input node's height and
    // width (an ONNX model exported at a non-square size).
    let resolution = resolution
        .or(model.imported.architecture.resolution.map(|r| [r, r]))
        .or_else(|| super::run::resolution_of(&model.imported.graph, None))
        .with_context(|| {
            format!(
                "{}: the file does not record an input resolution ({}); give one with --resolution",
                path.display(),
                identity.label()
            )
        })?;
    if resolution.contains(&0) {
        bail!("resolution 0 is out of range");
    }
    let (width, depth) = identity.coefficients().unzip();
    Ok(ModelInfo {
        title: match (&identity, identity.family()) {
            (effnet_naming::Identity::Variant(v), _) => v.display_name(),
            (
                effnet_naming::Identity::Custom {
                    base, width, depth, ..
                },
                _,
            ) => format!("{} w={width} d={depth}", base.family.title()),
            _ => "EfficientNet".to_owned(),
        },
        variant: match identity {
            effnet_naming::Identity::Variant(v) => Some(v.name().to_owned()),
            _ => None,
        },
        family: identity.family().map(|f| f.name().to_owned()),
        width,
        depth,
        resolution,
        naming: Some(model.naming.name().to_owned()),
        source: path.display().to_string(),
    })
}

/// Reads the `effnet.cost/1` document at `path` and compares `report` with it.
pub fn load_baseline(
    path: &Path,
    report: &CostReport,
    max_increase: f64,
    allow_different_settings: bool,
) -> anyhow::Result<Comparison> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the baseline", path.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: the baseline is not JSON", path.display()))?;
    compare(report, &doc, max_increase, allow_different_settings)
        .with_context(|| format!("{}: unusable baseline", path.display()))
}
