//! `effnet spec`: the paper's Table 1 for a variant, scaled.

use std::fmt::Write as _;
use std::process::ExitCode;

use comfy_table::{CellAlignment, Table, presets};
use effnet_ir::structure::{self, BlockInfo, StageInfo};
use effnet_spec::{BlockKind, PaddingStyle, Preprocessing};
use serde_json::json;

use super::SpecModel;
use crate::cli::{SpecArgs, SpecFormat};
use crate::output;

pub fn run(args: &SpecArgs) -> anyhow::Result<ExitCode> {
    let model = SpecModel::build(args.variant, &args.scaling)?;
    let shapes = model.graph.infer_shapes(1, Some(model.input_size))?;
    let stages = structure::stages(&model.graph, Some(&shapes));
    let blocks = structure::blocks(&model.graph, Some(&shapes));
    let text = match args.format {
        SpecFormat::Json => {
            let mut doc = serde_json::to_string_pretty(&document(&model, &stages, &blocks))?;
            doc.push('\n');
            doc
        }
        SpecFormat::Table => table(&model, &stages, &blocks, false),
        SpecFormat::Md => table(&model, &stages, &blocks, true),
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn title(model: &SpecModel) -> String {
    let spec = &model.spec;
    let name = match spec.variant {
        Some(v) => v.display_name(),
        None => format!(
            "{} (custom, {} base)",
            spec.family().title(),
            spec.base.name
        ),
    };
    let [h, w] = model.input_size;
    format!(
        "{name} · width {} · depth {} · {h}×{w} · {} conventions",
        spec.width, spec.depth, model.semantics.scheme,
    )
}

fn semantics_line(model: &SpecModel) -> String {
    let s = &model.semantics;
    let padding = match s.padding {
        PaddingStyle::TfSame => "TF \"same\" padding",
        PaddingStyle::Symmetric => "symmetric padding",
    };
    let preprocessing = match s.preprocessing {
        Preprocessing::External => "preprocessing outside the model",
        Preprocessing::Keras { .. } | Preprocessing::KerasNormalization => {
            "Keras Rescaling + Normalization inside the model"
        }
        Preprocessing::KerasSigned => "Keras Rescaling to [-1, 1] inside the model",
    };
    let head = match s.classifier_activation {
        Some(a) => format!("{} head", a.name()),
        None => "logits".to_owned(),
    };
    format!(
        "{padding} · BatchNorm eps {} · {preprocessing} · {head}",
        s.bn_eps
    )
}

fn hw(res: Option<[usize; 2]>) -> String {
    res.map(|[h, w]| format!("{h}×{w}")).unwrap_or_default()
}

fn table(model: &SpecModel, stages: &[StageInfo], blocks: &[BlockInfo], markdown: bool) -> String {
    let head = [
        "Stage",
        "Operator",
        "Resolution",
        "Channels",
        "Layers",
        "Stride",
        "Kernel",
    ];
    let rows: Vec<Vec<String>> = stages
        .iter()
        .map(|s| {
            vec![
                s.number.to_string(),
                s.operator.clone(),
                hw(s.input_resolution),
                s.output_channels.to_string(),
                s.layers.to_string(),
                s.stride.map(|[h, _]| h.to_string()).unwrap_or_default(),
                s.kernel
                    .map(|[h, w]| format!("{h}×{w}"))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let residual = blocks.iter().filter(|b| b.residual).count();
    let kinds: Vec<String> = [BlockKind::FusedMBConv, BlockKind::MBConv]
        .into_iter()
        .filter_map(|kind| {
            let n = blocks.iter().filter(|b| b.kind == kind).count();
            (n > 0).then(|| format!("{n} {kind}"))
        })
        .collect();
    let se = if blocks.iter().any(|b| b.se_channels.is_some()) {
        "SE width = block input channels × 0.25"
    } else {
        "no squeeze-excitation"
    };
    let summary = [
        semantics_line(model),
        format!(
            "{} blocks, {residual} with a residual add · {se} · {} activation · drop-connect {} · b / {} · dropout {}",
            kinds.join(" + "),
            model.spec.family().activation().name(),
            model.spec.drop_connect_rate,
            blocks.len(),
            model.spec.dropout
        ),
    ];
    let mut out = String::new();
    if markdown {
        let _ = writeln!(out, "### {}\n", title(model));
        let _ = writeln!(out, "| {} |", head.join(" | "));
        let _ = writeln!(out, "|---:|---|---|---:|---:|---:|---|");
        for row in rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out.push('\n');
        for line in summary {
            let _ = writeln!(out, "- {line}");
        }
    } else {
        let mut table = Table::new();
        table
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
            .set_header(head);
        for row in rows {
            table.add_row(row);
        }
        for i in [0, 3, 4, 5] {
            if let Some(column) = table.column_mut(i) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        let _ = writeln!(out, "{}\n{table}", title(model));
        for line in summary {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

fn document(model: &SpecModel, stages: &[StageInfo], blocks: &[BlockInfo]) -> serde_json::Value {
    let spec = &model.spec;
    let s = &model.semantics;
    json!({
        "schema": "effnet.spec/1",
        "variant": spec.variant.map(|v| v.name()),
        "family": spec.family().name(),
        "activation": spec.family().activation().name(),
        "width": spec.width,
        "depth": spec.depth,
        "resolution": effnet_cost::resolution_value(model.input_size),
        "input_size": model.input_size,
        "dropout": spec.dropout,
        "drop_connect_rate": spec.drop_connect_rate,
        "num_classes": spec.num_classes,
        "naming": s.scheme.name(),
        "semantics": {
            "padding": match s.padding {
                PaddingStyle::TfSame => "same_upper",
                PaddingStyle::Symmetric => "symmetric",
            },
            "bn_eps": s.bn_eps,
            "preprocessing": match s.preprocessing {
                Preprocessing::External => "external",
                Preprocessing::Keras { .. } => "keras",
                Preprocessing::KerasNormalization => "keras_normalization",
                Preprocessing::KerasSigned => "keras_signed",
            },
            "classifier_activation": s.classifier_activation.map(|a| a.name()),
        },
        "stages": stages.iter().map(|st| json!({
            "stage": st.number,
            "operator": st.operator,
            "input_resolution": st.input_resolution,
            "output_resolution": st.output_resolution,
            "input_channels": st.input_channels,
            "output_channels": st.output_channels,
            "layers": st.layers,
            "kernel": st.kernel.map(|k| k[0]),
            "stride": st.stride.map(|k| k[0]),
        })).collect::<Vec<_>>(),
        "blocks": blocks.iter().map(|b| json!({
            "kind": b.kind.name(),
            "stage": b.stage,
            "block": b.index + 1,
            "global_index": b.global_index,
            "input_channels": b.input_channels,
            "expanded_channels": b.expanded_channels,
            "output_channels": b.output_channels,
            "expand_ratio": b.expand_ratio(),
            "kernel": b.kernel[0],
            "stride": b.stride[0],
            "se_channels": b.se_channels,
            "residual": b.residual,
            "drop_connect_rate": b.drop_connect_rate,
            "input_resolution": b.input_resolution,
            "output_resolution": b.output_resolution,
        })).collect::<Vec<_>>(),
        "totals": {
            "blocks": blocks.len(),
            "residual_blocks": blocks.iter().filter(|b| b.residual).count(),
        },
    })
}
