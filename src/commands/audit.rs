//! `effnet audit`: a model against the spec; exit 0 when it conforms, 1 when it deviates.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, bail};
use comfy_table::{Table, presets};
use effnet_spec::{
    AuditReport, ModelSpec, Severity, Variant, audit, audit_semantics, closest_spec,
};
use serde_json::json;

use super::many::{self, Many, Outcome};
use crate::cli::{AuditArgs, AuditFormat};
use crate::output;

/// Exit status of a model that deviates from its spec.
const EXIT_DEVIATES: u8 = 1;

pub fn run(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let format = args.format;
    if let Some(how) = Many::of(
        &args.paths,
        &args.recursive,
        format == AuditFormat::Jsonl,
        format == AuditFormat::Json,
        format == AuditFormat::Md,
    ) {
        let models = many::models(&args.paths, &args.recursive)?;
        let columns: &(dyn Fn(&serde_json::Value) -> Vec<String> + Sync) = &|doc| {
            vec![
                doc["spec"].as_str().unwrap_or("").to_owned(),
                if doc["conforms"].as_bool() == Some(true) {
                    "conforms".to_owned()
                } else {
                    format!("deviates: {} finding(s)", errors_in(doc))
                },
            ]
        };
        return many::run(&models, how, (&["Spec", "Verdict"], columns), &|path| {
            let model = super::open_model_for_report(path, args.naming, &args.read, &args.checks)?;
            let (report, how) = evaluate(&model, &args.spec, args.width, args.depth)?;
            let doc = document(
                &report,
                &path.display().to_string(),
                how,
                model.naming.name(),
                &model.warnings,
            );
            Ok(Outcome {
                doc,
                status: if report.conforms { 0 } else { EXIT_DEVIATES },
            })
        });
    }
    let path = &args.paths[0];
    let model = super::open_model_for_report(path, args.naming, &args.read, &args.checks)?;
    super::warn(&model);
    let (report, how) = evaluate(&model, &args.spec, args.width, args.depth)?;
    let path = path.display().to_string();
    let text = match format {
        AuditFormat::Json | AuditFormat::Jsonl => {
            let mut doc = serde_json::to_string_pretty(&document(
                &report,
                &path,
                how,
                model.naming.name(),
                &model.warnings,
            ))?;
            doc.push('\n');
            doc
        }
        AuditFormat::Table => render(&report, &path, how, false),
        AuditFormat::Md => render(&report, &path, how, true),
    };
    output::print(&text)?;
    Ok(if report.conforms {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DEVIATES)
    })
}

/// Audits `model` against `spec` (`auto` or a variant; `width` and `depth` for a custom one):
/// the report, with the import's own findings, and how the spec was chosen.
pub fn evaluate(
    model: &effnet_import::Model,
    spec: &str,
    width: Option<f64>,
    depth: Option<f64>,
) -> anyhow::Result<(AuditReport, &'static str)> {
    let arch = &model.imported.architecture;
    let evidence = model.evidence;
    let scheme = Some(model.naming);
    let (spec, how) = match (spec, width, depth) {
        ("auto", Some(_), None) | ("auto", None, Some(_)) => {
            bail!("--width and --depth go together (or name a variant with --spec to override one)")
        }
        ("auto", Some(w), Some(d)) => {
            // The identified model's base network (B0's when unknown), scaled as given.
            let base = model
                .imported
                .identity
                .base()
                .unwrap_or(effnet_spec::EFFICIENTNET);
            (ModelSpec::scaled(base, w, d, 224)?, "given coefficients")
        }
        ("auto", None, None) => match closest_spec(arch) {
            (spec, true) => (spec, "auto: the spec it matches"),
            (spec, false) => (spec, "auto: the closest spec"),
        },
        (name, w, d) => {
            let variant: Variant = name.parse().with_context(|| {
                format!(
                    "--spec {name}: expected auto or a variant ({})",
                    Variant::ALL.map(|v| v.name()).join(", ")
                )
            })?;
            (
                ModelSpec::variant(variant).with_overrides(w, d, None)?,
                "given",
            )
        }
    };
    let mut report = audit(arch, &spec, evidence, scheme);
    audit_semantics(&mut report, &model.imported.graph, &spec, evidence);
    // Tensors missing, unused or skipped, what the file records that the graph cannot carry,
    // and the changes effnet recorded when it wrote the file.
    let extra = model.findings();
    report.conforms &= extra.iter().all(|f| f.severity != Severity::Error);
    report.findings.extend(extra);
    Ok((report, how))
}

/// The error findings of an `effnet.audit/1` document.
fn errors_in(doc: &serde_json::Value) -> usize {
    doc["findings"]
        .as_array()
        .map_or(0, |f| f.iter().filter(|f| f["severity"] == "error").count())
}

fn errors(report: &AuditReport) -> usize {
    report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count()
}

fn document(
    report: &AuditReport,
    path: &str,
    how: &str,
    naming: &str,
    warnings: &[String],
) -> serde_json::Value {
    json!({
        "schema": "effnet.audit/1",
        "path": path,
        "naming": naming,
        "spec": report.spec,
        "family": report.family.name(),
        "spec_source": how,
        "conforms": report.conforms,
        "findings": report.findings.iter().map(|f| json!({
            "severity": f.severity.name(),
            "stage": f.stage,
            "block": f.block,
            "field": f.field,
            "expected": f.expected,
            "found": f.found,
            "message": f.message,
        })).collect::<Vec<_>>(),
        "unverifiable": report.unverifiable,
        "warnings": warnings,
    })
}

/// Findings by severity: errors, warnings, infos.
pub fn counts(report: &AuditReport) -> (usize, usize, usize) {
    let deviations = errors(report);
    let warned = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    (
        deviations,
        warned,
        report.findings.len() - deviations - warned,
    )
}

/// `conforms to EfficientNet b0`, `…, with 2 warning(s)` or `deviates from …: 3 finding(s)`.
pub fn verdict(report: &AuditReport) -> String {
    let (deviations, warned, _) = counts(report);
    if report.conforms && warned > 0 {
        format!(
            "conforms to {} {}, with {warned} warning(s)",
            report.family.title(),
            report.spec
        )
    } else if report.conforms {
        format!("conforms to {} {}", report.family.title(), report.spec)
    } else {
        format!(
            "deviates from {} {}: {deviations} finding(s)",
            report.family.title(),
            report.spec
        )
    }
}

fn render(report: &AuditReport, path: &str, how: &str, markdown: bool) -> String {
    let (_, _, infos) = counts(report);
    let verdict = verdict(report);
    let mut out = String::new();
    if markdown {
        let mark = if report.conforms { "✅" } else { "❌" };
        let _ = writeln!(out, "### {mark} `{path}` {verdict}\n");
        let _ = writeln!(
            out,
            "Spec: {} ({how}). {infos} info, {} unverifiable.\n",
            report.spec,
            report.unverifiable.len()
        );
        if !report.findings.is_empty() {
            let _ = writeln!(
                out,
                "| Severity | Stage | Block | Field | Expected | Found | Finding |"
            );
            let _ = writeln!(out, "|---|---:|---:|---|---|---|---|");
            for f in &report.findings {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    f.severity.name(),
                    f.stage.map(|s| s.to_string()).unwrap_or_default(),
                    f.block.map(|b| b.to_string()).unwrap_or_default(),
                    f.field,
                    f.expected.replace('|', "\\|"),
                    f.found.replace('|', "\\|"),
                    f.message.replace('|', "\\|")
                );
            }
            out.push('\n');
        }
        if !report.unverifiable.is_empty() {
            let _ = writeln!(out, "Not verifiable from this file:\n");
            for u in &report.unverifiable {
                let _ = writeln!(out, "- {u}");
            }
        }
        return out;
    }
    let verdict = output::paint(&verdict, if report.conforms { "32" } else { "31;1" });
    let _ = writeln!(out, "{path}: {verdict}");
    let _ = writeln!(out, "spec {} ({how})", report.spec);
    if !report.findings.is_empty() {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
            .set_header(["Severity", "Stage", "Block", "Field", "Finding"]);
        for f in &report.findings {
            t.add_row(vec![
                f.severity.name().to_owned(),
                f.stage.map(|s| s.to_string()).unwrap_or_default(),
                f.block.map(|b| b.to_string()).unwrap_or_default(),
                f.field.to_owned(),
                f.detail().to_owned(),
            ]);
        }
        let _ = writeln!(out, "{t}");
    }
    for u in &report.unverifiable {
        let _ = writeln!(out, "unverifiable: {u}");
    }
    out
}
