//! `effnet cost`: params, MACs, FLOPs and activation memory.

use std::process::ExitCode;

use anyhow::bail;
use effnet_cost::render::{self, Granularity};
use effnet_cost::{CostOptions, ModelInfo, analyze};
use effnet_ir::DType;

use super::SpecModel;
use crate::cli::{ActivationDtype, By, CostArgs, CostFormat};
use crate::output;

pub fn run(args: &CostArgs) -> anyhow::Result<ExitCode> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let Some(variant) = args.variant else {
        let path = args.path.as_deref().map(|p| p.display().to_string());
        bail!(
            "cannot read `{}`: this build of effnet reads no model files yet; cost a spec model with --variant",
            path.unwrap_or_default()
        );
    };
    let model = SpecModel::build(variant, &args.scaling)?;
    let info = ModelInfo {
        variant: model.spec.variant.map(|v| v.name().to_owned()),
        width: Some(model.spec.width),
        depth: Some(model.spec.depth),
        resolution: model.spec.resolution,
        naming: Some(model.semantics.scheme.name().to_owned()),
        source: "spec".to_owned(),
    };
    let options = CostOptions {
        batch: args.batch,
        dtype: match args.dtype {
            ActivationDtype::F32 => DType::F32,
            ActivationDtype::F16 => DType::F16,
            ActivationDtype::Bf16 => DType::BF16,
        },
        resolution: None,
    };
    let report = analyze(&model.graph, info, &options)?;
    let by = match args.by {
        By::Stage => Granularity::Stage,
        By::Block => Granularity::Block,
        By::Layer => Granularity::Layer,
    };
    let text = match args.format {
        CostFormat::Table => render::table(&report, by),
        CostFormat::Md => render::markdown(&report, by),
        CostFormat::Csv => render::csv(&report, by),
        CostFormat::Json => {
            let mut doc = serde_json::to_string_pretty(&render::json(&report, by))?;
            doc.push('\n');
            doc
        }
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}
