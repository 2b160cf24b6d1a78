//! A report against a saved `effnet.cost/1` baseline: per-stage and total changes, and the gate
//! CI uses (any total growing past a percentage fails).

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::CostReport;
use crate::render::{SCHEMA, human_bytes, human_count, thousands};

/// Why a baseline could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineError {
    /// Not an `effnet.cost/1` document.
    #[error("not an effnet.cost/1 report: {0}")]
    Schema(String),
    /// The baseline was measured at other settings, so its figures are not comparable.
    #[error(
        "the baseline was measured with {setting} {baseline}, this report with {current}; measure both alike or pass --allow-different-settings"
    )]
    Settings {
        /// `batch`, `dtype`, `resolution` or `naming`.
        setting: &'static str,
        /// The baseline's value.
        baseline: String,
        /// This report's value.
        current: String,
    },
}

/// The settings a baseline must share with the report it is compared with.
fn check_settings(report: &CostReport, baseline: &Value) -> Result<(), BaselineError> {
    let text = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "none".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let model = baseline.get("model");
    let current = [
        ("batch", baseline.get("batch"), report.batch.to_string()),
        (
            "dtype",
            baseline.get("dtype"),
            report.dtype.name().to_owned(),
        ),
        (
            "resolution",
            model.and_then(|m| m.get("resolution")),
            crate::resolution_value(report.model.resolution).to_string(),
        ),
        (
            "naming",
            model.and_then(|m| m.get("naming")),
            report.model.naming.clone().unwrap_or_else(|| "none".into()),
        ),
    ];
    for (setting, base, now) in current {
        let base = text(base);
        if base != now {
            return Err(BaselineError::Settings {
                setting,
                baseline: base,
                current: now,
            });
        }
    }
    Ok(())
}

/// One compared figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// `params`, `macs`, …
    pub metric: &'static str,
    /// The baseline's value.
    pub baseline: u64,
    /// The current value.
    pub current: u64,
}

impl Change {
    /// Relative change in percent (`None` when the baseline is 0).
    pub fn percent(&self) -> Option<f64> {
        (self.baseline != 0)
            .then(|| (self.current as f64 - self.baseline as f64) / self.baseline as f64 * 100.0)
    }

    fn cell(&self, human: fn(u64) -> String) -> String {
        let sign = |d: i128| if d > 0 { "+" } else { "" };
        let delta = i128::from(self.current) - i128::from(self.baseline);
        match self.percent() {
            _ if delta == 0 => format!("{} (=)", human(self.current)),
            Some(p) => format!("{} ({}{:.2}%)", human(self.current), sign(delta), p),
            None => format!("{} (new)", human(self.current)),
        }
    }
}

/// The comparison of a report with a baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Per stage: (stage, params, macs, activation bytes).
    pub stages: Vec<(u8, [Change; 3])>,
    /// Totals: params, non-trainable params, MACs, FLOPs, activation bytes, peak.
    pub totals: Vec<Change>,
    /// The limit, in percent.
    pub max_increase: f64,
    /// Totals that grew past the limit.
    pub exceeded: Vec<Change>,
}

const STAGE_METRICS: [&str; 3] = ["params", "macs", "activation_bytes"];
const TOTAL_METRICS: [&str; 6] = [
    "params",
    "non_trainable_params",
    "macs",
    "flops",
    "activation_bytes",
    "peak_activation_bytes",
];

fn get(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Compares `report` with `baseline` (an `effnet.cost/1` document); totals growing more than
/// `max_increase` percent are exceeded. A baseline measured at another batch, dtype,
/// resolution or naming is refused unless `allow_different_settings`.
pub fn compare(
    report: &CostReport,
    baseline: &Value,
    max_increase: f64,
    allow_different_settings: bool,
) -> Result<Comparison, BaselineError> {
    if baseline.get("schema").and_then(Value::as_str) != Some(SCHEMA) {
        return Err(BaselineError::Schema(format!(
            "its \"schema\" is {}",
            baseline
                .get("schema")
                .map_or("missing".to_owned(), Value::to_string)
        )));
    }
    if !allow_different_settings {
        check_settings(report, baseline)?;
    }
    let base_total = baseline
        .get("total")
        .ok_or_else(|| BaselineError::Schema("no \"total\"".into()))?;
    let empty = Vec::new();
    let base_stages = baseline
        .get("stages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let stages = report
        .stages
        .iter()
        .map(|s| {
            let base = base_stages
                .iter()
                .find(|b| get(b, "stage") == u64::from(s.stage))
                .cloned()
                .unwrap_or(Value::Null);
            let current = [s.costs.params, s.costs.macs, s.costs.activation_bytes];
            let changes = [0, 1, 2].map(|i| Change {
                metric: STAGE_METRICS[i],
                baseline: get(&base, STAGE_METRICS[i]),
                current: current[i],
            });
            (s.stage, changes)
        })
        .collect();
    let t = &report.total;
    let current = [
        t.params,
        t.non_trainable_params,
        t.macs,
        t.flops,
        t.activation_bytes,
        t.peak_activation_bytes,
    ];
    let totals: Vec<Change> = TOTAL_METRICS
        .iter()
        .zip(current)
        .map(|(&metric, current)| Change {
            metric,
            baseline: get(base_total, metric),
            current,
        })
        .collect();
    let exceeded = totals
        .iter()
        .filter(|c| match c.percent() {
            Some(p) => p > max_increase + 1e-9,
            None => c.current > 0,
        })
        .cloned()
        .collect();
    Ok(Comparison {
        stages,
        totals,
        max_increase,
        exceeded,
    })
}

fn human_for(metric: &str) -> fn(u64) -> String {
    match metric {
        "params" | "non_trainable_params" => thousands,
        "activation_bytes" | "peak_activation_bytes" => human_bytes,
        _ => human_count,
    }
}

impl Comparison {
    /// Whether no total grew past the limit.
    pub fn within_budget(&self) -> bool {
        self.exceeded.is_empty()
    }

    /// `within budget: …` or `over budget (max +2%): params +8.96%, …`.
    pub fn verdict(&self) -> String {
        if self.within_budget() {
            format!(
                "within budget: no total grew more than {}%",
                self.max_increase
            )
        } else {
            let list: Vec<String> = self
                .exceeded
                .iter()
                .map(|c| format!("{} {:+.2}%", c.metric, c.percent().unwrap_or(f64::INFINITY)))
                .collect();
            format!(
                "over budget (max +{}%): {}",
                self.max_increase,
                list.join(", ")
            )
        }
    }

    /// The comparison as cells: the header and one row per stage then the total, each figure
    /// the current value with its change (`1.23 M (+4.50%)`, `(=)`, `(new)`).
    pub fn cells(&self) -> ([&'static str; 4], Vec<Vec<String>>) {
        let header = ["Stage", "Params", "MACs", "Activations"];
        let mut rows: Vec<Vec<String>> = self
            .stages
            .iter()
            .map(|(stage, c)| {
                let mut row = vec![stage.to_string()];
                row.extend(c.iter().map(|c| c.cell(human_for(c.metric))));
                row
            })
            .collect();
        let total = |m: &str| self.totals.iter().find(|c| c.metric == m).expect("metric");
        rows.push(vec![
            "Total".into(),
            total("params").cell(thousands),
            total("macs").cell(human_count),
            total("activation_bytes").cell(human_bytes),
        ]);
        (header, rows)
    }

    /// A Markdown section (for `$GITHUB_STEP_SUMMARY`) or plain text.
    pub fn render(&self, markdown: bool) -> String {
        let mut out = String::new();
        let (header, rows) = self.cells();
        let mark = if self.within_budget() { "✅" } else { "❌" };
        if markdown {
            let _ = writeln!(
                out,
                "#### {mark} Cost against the baseline: {}\n",
                self.verdict()
            );
            let _ = writeln!(out, "| {} |", header.join(" | "));
            let _ = writeln!(out, "|---:|---:|---:|---:|");
            for row in rows {
                let _ = writeln!(out, "| {} |", row.join(" | "));
            }
        } else {
            let _ = writeln!(out, "against the baseline: {}", self.verdict());
            let widths: Vec<usize> = (0..header.len())
                .map(|i| {
                    rows.iter()
                        .map(|r| r[i].chars().count())
                        .chain([header[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: Vec<String>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:>w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            let _ = writeln!(
                out,
                "{}",
                line(header.iter().map(|h| h.to_string()).collect())
            );
            for row in rows {
                let _ = writeln!(out, "{}", line(row));
            }
        }
        out
    }

    /// The `baseline` object added to an `effnet.cost/1` document.
    pub fn json(&self, path: &str) -> Value {
        let change = |c: &Change| json!({"baseline": c.baseline, "current": c.current, "change_pct": c.percent()});
        json!({
            "path": path,
            "max_increase_pct": self.max_increase,
            "within_budget": self.within_budget(),
            "exceeded": self.exceeded.iter().map(|c| c.metric).collect::<Vec<_>>(),
            "total": self.totals.iter().map(|c| (c.metric.to_owned(), change(c))).collect::<serde_json::Map<_, _>>(),
            "stages": self.stages.iter().map(|(s, c)| {
                let mut m = serde_json::Map::new();
                m.insert("stage".into(), json!(s));
                for x in c {
                    m.insert(x.metric.into(), change(x));
                }
                Value::Object(m)
            }).collect::<Vec<_>>(),
        })
    }
}
