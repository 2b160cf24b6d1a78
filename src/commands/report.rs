//! `effnet report`: one self-contained HTML page about a model: what `inspect` says, the
//! `audit` verdict and findings, the per-stage `cost` table and charts, and the comparison
//! with a cost baseline. Exit 0 when written and the model conforms (and is within budget), 1
//! when written but it deviates or is over budget.
//!
//! Every figure and verdict comes from the builders the other commands print with
//! (`inspect::facts`, `audit::evaluate`, `effnet_cost::render::grid`, `Comparison::cells`);
//! [`crate::render_html`] only lays them out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use effnet_cost::render::{self, Granularity};
use effnet_cost::{CostOptions, analyze};
use effnet_ir::DType;

use crate::cli::ReportArgs;
use crate::output;
use crate::render_html::Page;

/// Exit status of a report written about a model that deviates or grew past the budget.
const EXIT_VERDICT: u8 = 1;

/// The file written without `-o`: the model's name without its last extension (a folder's
/// name as it is) followed by `.report.html`, in the current folder.
pub fn default_output(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .filter(|s| !s.is_empty())
        .map_or_else(|| "model".into(), |s| s.to_os_string());
    let mut name = stem;
    name.push(".report.html");
    PathBuf::from(name)
}

pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| default_output(&args.model));
    let model = super::open_model_for_report(&args.model, args.naming, &args.read, &args.checks)?;
    super::warn(&model);
    let mut inputs = effnet_convert::inputs_of(&model);
    inputs.extend(args.baseline.iter().cloned());
    let to_stdout = out.as_os_str() == "-";
    if !to_stdout {
        // Refused before the work, as it would be after it.
        effnet_io::check_output(&out, &inputs, args.force)?;
    }

    let facts = super::inspect::facts(&model);
    let (audit, how) = super::audit::evaluate(&model, "auto", None, None)?;
    let info = super::cost::file_info(&model, &args.model, args.resolution.map(|r| r.hw()))?;
    let options = CostOptions {
        batch: 1,
        dtype: DType::F32,
        resolution: Some(info.resolution),
    };
    let cost = analyze(&model.imported.graph, info, &options)?;
    let comparison = match &args.baseline {
        Some(path) => Some(super::cost::load_baseline(
            path,
            &cost,
            args.max_increase,
            args.allow_different_settings,
        )?),
        None => None,
    };
    let chart = effnet_cost::chart::svg(&cost)
        .map_err(|e| anyhow::anyhow!("cannot draw the cost chart: {e}"))?;

    let shown = args.model.display().to_string();
    let audit_verdict = super::audit::verdict(&audit);
    let mut page = Page::new(&format!("effnet report: {shown}"));
    page.header(
        "EfficientNet report:",
        &shown,
        &format!(
            "{} · {} container · {} names · measured at {h}×{w}",
            model.imported.identity.label(),
            model.container,
            model.naming,
            h = cost.model.resolution[0],
            w = cost.model.resolution[1]
        ),
    );
    let mut verdicts = vec![(audit.conforms, format!("Audit: {audit_verdict}"))];
    if let Some(c) = &comparison {
        verdicts.push((c.within_budget(), format!("Cost: {}", c.verdict())));
    }
    page.verdicts(&verdicts);
    page.end_header();

    page.section("model", "Model");
    page.facts(&facts.rows);
    page.list(&facts.notes);
    page.end_section();

    page.section("audit", "Audit");
    page.verdict(audit.conforms, &audit_verdict);
    let (errors, warnings, infos) = super::audit::counts(&audit);
    page.paragraph(
        &format!(
            "Spec {} ({how}). {errors} error(s), {warnings} warning(s), {infos} info; {} not verifiable from this file.",
            audit.spec,
            audit.unverifiable.len()
        ),
        true,
    );
    if audit.findings.is_empty() {
        page.paragraph("No findings: every checked field matches the spec.", false);
    } else {
        let rows: Vec<[String; 7]> = audit
            .findings
            .iter()
            .map(|f| {
                [
                    f.severity.name().to_owned(),
                    f.stage.map(|s| s.to_string()).unwrap_or_default(),
                    f.block.map(|b| b.to_string()).unwrap_or_default(),
                    f.field.to_owned(),
                    f.expected.clone(),
                    f.found.clone(),
                    f.message.clone(),
                ]
            })
            .collect();
        page.findings(&rows);
    }
    if !audit.unverifiable.is_empty() {
        page.paragraph("Not verifiable from this file:", false);
        page.list(&audit.unverifiable);
    }
    page.end_section();

    let grid = render::grid(&cost, Granularity::Stage);
    page.section("cost", "Cost per stage");
    page.paragraph(&grid.title, true);
    page.table(
        "cost wide",
        &grid.header,
        &grid.rows,
        &grid.right_aligned,
        Some(&grid.total),
    );
    page.list(&grid.summary);
    page.figure_svg(
        &chart,
        "Per-stage MACs, parameters and activation memory",
        "MACs (millions), parameters (millions) and activation memory (MiB) per stage of the paper's Table 1.",
    )
    .map_err(|e| anyhow::anyhow!("cannot embed the cost chart: {e}"))?;
    page.end_section();

    if let (Some(c), Some(path)) = (&comparison, &args.baseline) {
        page.section("baseline", "Against the baseline");
        page.verdict(c.within_budget(), &c.verdict());
        page.paragraph(
            &format!(
                "Baseline {}; each figure is the current value and its change. The gate looks at the totals (params, non-trainable params, MACs, FLOPs, activation memory, inference peak).",
                path.display()
            ),
            true,
        );
        let (header, rows) = c.cells();
        let (body, total) = rows.split_at(rows.len().saturating_sub(1));
        page.table(
            "baseline",
            &header,
            body,
            &[true; 4],
            total.first().map(Vec::as_slice),
        );
        page.end_section();
    }
    let html = page.finish(&format!(
        "Written by effnet {}. A self-contained page: no scripts, nothing loaded from the network.",
        env!("CARGO_PKG_VERSION")
    ));

    if output::write_text(&out, &inputs, args.force, &html)
        .with_context(|| format!("{}: cannot write the report", out.display()))?
    {
        output::note(&format!("wrote {}", out.display()));
    }
    let within_budget = comparison.as_ref().is_none_or(|c| c.within_budget());
    output::note(&format!("audit: {audit_verdict}"));
    if let Some(c) = &comparison {
        output::note(&format!("cost: {}", c.verdict()));
    }
    Ok(if audit.conforms && within_budget {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VERDICT)
    })
}

#[cfg(test)]
mod tests {
    use super::default_output;
    use std::path::{Path, PathBuf};

    #[test]
    fn default_output_is_the_stem_in_the_current_folder() {
        assert_eq!(
            default_output(Path::new("models/efficientnet_b0.pth")),
            PathBuf::from("efficientnet_b0.report.html")
        );
        assert_eq!(
            default_output(Path::new("exports/saved_model/")),
            PathBuf::from("saved_model.report.html")
        );
        assert_eq!(
            default_output(Path::new("b0.weights.h5")),
            PathBuf::from("b0.weights.report.html")
        );
        assert_eq!(
            default_output(Path::new("..")),
            PathBuf::from("model.report.html")
        );
    }
}
