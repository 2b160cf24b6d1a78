//! Renderers for a [`CostReport`]: a terminal table, Markdown, CSV and the `effnet.cost/1`
//! JSON document. Tables round for people; CSV and JSON carry exact integers.

use std::fmt::Write as _;

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use serde_json::{Value, json};

use crate::{CostReport, Costs};

/// The JSON schema identifier of [`json`].
pub const SCHEMA: &str = "effnet.cost/1";

/// What one row of a report stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// Paper stages (Table 1 rows).
    Stage,
    /// MBConv blocks, plus the stem and the head.
    Block,
    /// Every node.
    Layer,
    /// Operator classes (convolution, depthwise convolution, dense, BatchNorm, …).
    Operator,
}

impl Granularity {
    /// Whether rows carry the share of the total MACs.
    fn shows_share(self) -> bool {
        matches!(self, Granularity::Layer | Granularity::Operator)
    }
}

/// The conventions behind the numbers, printed with every report.
const CONVENTIONS: [(&str, &str); 3] = [
    (
        "macs",
        "multiply-accumulates of conv and dense layers (the paper's and torchvision's \"FLOPs\")",
    ),
    (
        "flops",
        "every arithmetic operation: 2 per MAC, bias adds, BatchNorm, activations, pooling, SE products, residual adds (docs/cost.md)",
    ),
    (
        "activation_bytes",
        "output tensors of every node that computes one at inference, at the report's dtype and batch",
    ),
];

struct Row {
    cells: Vec<String>,
    exact: Vec<String>,
}

fn headers(by: Granularity) -> (Vec<&'static str>, Vec<&'static str>) {
    match by {
        Granularity::Stage => (
            vec![
                "Stage",
                "Operator",
                "Resolution",
                "Channels",
                "Layers",
                "Params",
                "MACs",
                "FLOPs",
                "Activations",
            ],
            vec![
                "stage",
                "operator",
                "input_height",
                "input_width",
                "output_channels",
                "layers",
                "params",
                "non_trainable_params",
                "macs",
                "flops",
                "activation_bytes",
            ],
        ),
        Granularity::Block => (
            vec![
                "Stage",
                "Block",
                "Layers",
                "Params",
                "MACs",
                "FLOPs",
                "Activations",
            ],
            vec![
                "stage",
                "block",
                "name",
                "nodes",
                "params",
                "non_trainable_params",
                "macs",
                "flops",
                "activation_bytes",
            ],
        ),
        Granularity::Layer => (
            vec![
                "Stage",
                "Block",
                "Layer",
                "Op",
                "Input",
                "Output",
                "Kernel/stride/groups",
                "Params",
                "MACs",
                "FLOPs",
                "% MACs",
                "Activations",
            ],
            vec![
                "stage",
                "block",
                "name",
                "op",
                "role",
                "output_shape",
                "output_elems",
                "params",
                "non_trainable_params",
                "macs",
                "flops",
                "activation_bytes",
                "input_shape",
                "kernel",
                "stride",
                "groups",
                "operator",
                "macs_pct",
            ],
        ),
        Granularity::Operator => (
            vec![
                "Operator",
                "Ops",
                "Nodes",
                "Params",
                "MACs",
                "FLOPs",
                "% MACs",
                "Activations",
            ],
            vec![
                "operator",
                "ops",
                "nodes",
                "params",
                "non_trainable_params",
                "macs",
                "flops",
                "activation_bytes",
                "macs_pct",
            ],
        ),
    }
}

/// `12.34%`.
fn percent(pct: f64) -> String {
    format!("{pct:.2}%")
}

/// A percentage rounded to four decimals, for CSV and JSON.
fn exact_pct(pct: f64) -> f64 {
    (pct * 1e4).round() / 1e4
}

/// `1×32×112×112`.
fn shape_text(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

/// `3×3`.
fn pair_text(pair: Option<[usize; 2]>) -> String {
    pair.map(|[h, w]| format!("{h}×{w}")).unwrap_or_default()
}

/// The rounded cells of a row's figures: params, MACs, FLOPs, (% MACs), activations.
fn human_cells(c: &Costs, share: Option<f64>) -> Vec<String> {
    let mut cells = vec![
        thousands(c.params),
        human_count(c.macs),
        human_count(c.flops),
    ];
    cells.extend(share.map(percent));
    cells.push(human_bytes(c.activation_bytes));
    cells
}

/// The exact cells of a row's figures, in the CSV header's order.
fn exact_cells(c: &Costs) -> [String; 5] {
    [
        c.params.to_string(),
        c.non_trainable_params.to_string(),
        c.macs.to_string(),
        c.flops.to_string(),
        c.activation_bytes.to_string(),
    ]
}

/// A row: its leading cells (human, exact) followed by its figures.
fn row(cells: Vec<String>, exact: Vec<String>, costs: &Costs) -> Row {
    let mut row = Row { cells, exact };
    row.cells.extend(human_cells(costs, None));
    row.exact.extend(exact_cells(costs));
    row
}

/// A row with the share of the total MACs, and exact cells after the figures.
fn row_with_share(
    report: &CostReport,
    cells: Vec<String>,
    exact: Vec<String>,
    costs: &Costs,
    exact_tail: Vec<String>,
) -> Row {
    let share = report.macs_pct(costs.macs);
    let mut row = Row { cells, exact };
    row.cells.extend(human_cells(costs, Some(share)));
    row.exact.extend(exact_cells(costs));
    row.exact.extend(exact_tail);
    row.exact.push(exact_pct(share).to_string());
    row
}

/// `3×3 s2 g96` (groups only when more than one); empty for ops that are not convolutions.
fn conv_text(
    kernel: Option<[usize; 2]>,
    stride: Option<[usize; 2]>,
    groups: Option<usize>,
) -> String {
    let Some([kh, kw]) = kernel else {
        return String::new();
    };
    let stride = match stride {
        Some([sh, sw]) if sh == sw => format!(" s{sh}"),
        Some([sh, sw]) => format!(" s{sh}×{sw}"),
        None => String::new(),
    };
    let groups = match groups {
        Some(g) if g > 1 => format!(" g{g}"),
        _ => String::new(),
    };
    format!("{kh}×{kw}{stride}{groups}")
}

fn rows(report: &CostReport, by: Granularity) -> Vec<Row> {
    let block = |b: Option<u16>| b.map(|b| b.to_string()).unwrap_or_default();
    match by {
        Granularity::Stage => report
            .stages
            .iter()
            .map(|s| {
                let [h, w] = s.input_resolution;
                let lead = [s.stage.to_string(), s.operator.clone()];
                let tail = [s.output_channels.to_string(), s.layers.to_string()];
                row(
                    [lead.to_vec(), vec![format!("{h}×{w}")], tail.to_vec()].concat(),
                    [
                        lead.to_vec(),
                        vec![h.to_string(), w.to_string()],
                        tail.to_vec(),
                    ]
                    .concat(),
                    &s.costs,
                )
            })
            .collect(),
        Granularity::Block => report
            .blocks
            .iter()
            .map(|b| {
                row(
                    vec![
                        b.stage.to_string(),
                        b.block.map_or_else(|| b.name.clone(), |i| i.to_string()),
                        b.nodes.to_string(),
                    ],
                    vec![
                        b.stage.to_string(),
                        block(b.block),
                        b.name.clone(),
                        b.nodes.to_string(),
                    ],
                    &b.costs,
                )
            })
            .collect(),
        Granularity::Layer => report
            .layers
            .iter()
            .map(|l| {
                let shape = shape_text(&l.output_shape);
                let input = shape_text(&l.input_shape);
                row_with_share(
                    report,
                    vec![
                        l.stage.to_string(),
                        block(l.block),
                        l.name.clone(),
                        l.op.to_owned(),
                        input.clone(),
                        shape.clone(),
                        conv_text(l.kernel, l.stride, l.groups),
                    ],
                    vec![
                        l.stage.to_string(),
                        block(l.block),
                        l.name.clone(),
                        l.op.to_owned(),
                        l.role.to_owned(),
                        shape,
                        l.output_elems.to_string(),
                    ],
                    &l.costs,
                    vec![
                        input,
                        pair_text(l.kernel),
                        pair_text(l.stride),
                        l.groups.map(|g| g.to_string()).unwrap_or_default(),
                        l.operator.name().to_owned(),
                    ],
                )
            })
            .collect(),
        Granularity::Operator => report
            .operators
            .iter()
            .map(|o| {
                let ops = o.ops.join(", ");
                row_with_share(
                    report,
                    vec![
                        o.operator.label().to_owned(),
                        ops.clone(),
                        o.nodes.to_string(),
                    ],
                    vec![o.operator.name().to_owned(), ops, o.nodes.to_string()],
                    &o.costs,
                    Vec::new(),
                )
            })
            .collect(),
    }
}

/// The number of figure columns at the end of a table of this granularity.
fn figure_columns(by: Granularity) -> usize {
    if by.shows_share() { 5 } else { 4 }
}

/// The total row, padded to the table's width; the numbers sit in the last columns.
fn total_cells(report: &CostReport, by: Granularity, columns: usize) -> Vec<String> {
    let t = &report.total;
    let mut cells = vec![String::new(); columns];
    cells[0] = "Total".into();
    let totals = Costs {
        params: t.params,
        non_trainable_params: t.non_trainable_params,
        macs: t.macs,
        flops: t.flops,
        activation_bytes: t.activation_bytes,
    };
    let share = by
        .shows_share()
        .then_some(if t.macs == 0 { 0.0 } else { 100.0 });
    let figures = human_cells(&totals, share);
    let from = columns - figures.len();
    for (i, cell) in figures.into_iter().enumerate() {
        cells[from + i] = cell;
    }
    cells
}

fn title(report: &CostReport) -> String {
    let m = &report.model;
    let name = &m.title;
    let [h, w] = report.resolution;
    let naming = m
        .naming
        .as_deref()
        .map(|n| format!(" · {n}"))
        .unwrap_or_default();
    format!(
        "{name} · {h}×{w} · batch {} · {} activations{naming} · {}",
        report.batch, report.dtype, m.source
    )
}

fn summary_lines(report: &CostReport) -> Vec<String> {
    let t = &report.total;
    vec![
        format!(
            "params {} trainable + {} non-trainable",
            thousands(t.params),
            thousands(t.non_trainable_params)
        ),
        format!(
            "MACs {} ({}) · FLOPs {} ({})",
            human_count(t.macs),
            thousands(t.macs),
            human_count(t.flops),
            thousands(t.flops)
        ),
        format!(
            "activations {} in all · inference peak {} · kept for backward {}",
            human_bytes(t.activation_bytes),
            human_bytes(t.peak_activation_bytes),
            human_bytes(t.training_activation_bytes)
        ),
        "MACs: conv + dense multiply-accumulates (paper, torchvision); FLOPs: every arithmetic op (docs/cost.md)".into(),
    ]
}

/// A report as cells, what every renderer draws: the title line, the column headers, the
/// rounded cells of each row, the total row and the summary lines. Numbers are formatted here
/// once; a new renderer (the HTML report) lays these out instead of recomputing them.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// `EfficientNet-B0 · 224×224 · batch 1 · f32 activations · … · source`.
    pub title: String,
    /// Column headers.
    pub header: Vec<&'static str>,
    /// Which columns are right-aligned: the figures and the counts.
    pub right_aligned: Vec<bool>,
    /// One row of rounded cells per stage, block or layer.
    pub rows: Vec<Vec<String>>,
    /// The total row, as wide as the header (the figures in the last four columns).
    pub total: Vec<String>,
    /// The lines printed below the table: exact totals, memory, the conventions.
    pub summary: Vec<String>,
}

/// The cells of `report` at granularity `by`.
pub fn grid(report: &CostReport, by: Granularity) -> Grid {
    let (header, _) = headers(by);
    let columns = header.len();
    let numeric_from = columns - figure_columns(by);
    let right_aligned = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            i >= numeric_from || matches!(*h, "Channels" | "Layers" | "Nodes" | "Stage" | "Block")
        })
        .collect();
    Grid {
        title: title(report),
        right_aligned,
        header,
        rows: rows(report, by).into_iter().map(|r| r.cells).collect(),
        total: total_cells(report, by, columns),
        summary: summary_lines(report),
    }
}

/// A terminal table with a title line and a summary below.
pub fn table(report: &CostReport, by: Granularity) -> String {
    let grid = grid(report, by);
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(grid.header.clone());
    for row in grid.rows {
        table.add_row(row);
    }
    table.add_row(grid.total);
    for (column, right) in table.column_iter_mut().zip(&grid.right_aligned) {
        if *right {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = grid.title;
    out.push('\n');
    out.push_str(&table.to_string());
    out.push('\n');
    for line in grid.summary {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&memory_block(report, false));
    out
}

/// A GitHub-flavoured Markdown table with a title and a summary.
pub fn markdown(report: &CostReport, by: Granularity) -> String {
    let (head, _) = headers(by);
    let numeric_from = head.len() - figure_columns(by);
    let mut out = format!("### {}\n\n", title(report));
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let aligns: Vec<&str> = (0..head.len())
        .map(|i| if i >= numeric_from { "---:" } else { "---" })
        .collect();
    let _ = writeln!(out, "|{}|", aligns.join("|"));
    let escape = |s: &str| s.replace('|', "\\|");
    for row in rows(report, by) {
        let cells: Vec<String> = row.cells.iter().map(|c| escape(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let total: Vec<String> = total_cells(report, by, head.len())
        .into_iter()
        .map(|c| if c.is_empty() { c } else { format!("**{c}**") })
        .collect();
    let _ = writeln!(out, "| {} |", total.join(" | "));
    out.push('\n');
    for line in summary_lines(report) {
        let _ = writeln!(out, "- {line}");
    }
    out.push('\n');
    out.push_str(&memory_block(report, true));
    out
}

/// The memory summary (torchinfo's "Estimated Total Size", itemised): aligned lines, or a
/// Markdown table.
fn memory_block(report: &CostReport, markdown: bool) -> String {
    let m = &report.memory;
    let heading = format!(
        "Memory at batch {}, {} ({} bytes per weight and activation)",
        report.batch, report.dtype, m.element_bytes
    );
    let items = [
        (
            "weights",
            m.weights_bytes,
            "every parameter, BatchNorm statistics included",
        ),
        ("input", m.input_bytes, "the input batch"),
        (
            "forward activations",
            m.forward_activation_bytes,
            "every node's output",
        ),
        (
            "inference peak",
            m.peak_activation_bytes,
            "live tensors at the worst step, input included",
        ),
        (
            "saved for backward",
            m.saved_for_backward_bytes,
            "what a training step keeps",
        ),
        (
            "total, inference",
            m.inference_total_bytes,
            "weights + inference peak",
        ),
        (
            "total, training",
            m.training_total_bytes,
            "weights × 2 (with gradients) + input + saved; no optimizer state",
        ),
    ];
    let mut out = String::new();
    if markdown {
        let _ = writeln!(out, "**{heading}**\n");
        let _ = writeln!(out, "| memory | bytes | what |");
        let _ = writeln!(out, "|---|---:|---|");
        for (what, bytes, note) in items {
            let _ = writeln!(out, "| {what} | {} | {note} |", human_bytes(bytes));
        }
    } else {
        let _ = writeln!(out, "{heading}");
        let width = items.iter().map(|(w, _, _)| w.len()).max().unwrap_or(0);
        for (what, bytes, note) in items {
            let _ = writeln!(out, "  {what:<width$}  {:>10}  {note}", human_bytes(bytes));
        }
    }
    out
}

/// CSV with a header row and exact integers, one row per item of the granularity.
pub fn csv(report: &CostReport, by: Granularity) -> String {
    let (_, head) = headers(by);
    let mut out = head.join(",");
    out.push('\n');
    for row in rows(report, by) {
        let cells: Vec<String> = row.exact.iter().map(|c| csv_field(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// The `effnet.cost/1` document. `stages`, `total` and `memory` are always present; `blocks`
/// is added for block and layer granularity, `layers` for layer granularity, `operators` for
/// operator granularity.
pub fn json(report: &CostReport, by: Granularity) -> Value {
    let mut doc = json!({
        "schema": SCHEMA,
        "model": report.model,
        "batch": report.batch,
        "dtype": report.dtype.name(),
        "conventions": CONVENTIONS.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "stages": report.stages,
        "total": report.total,
    });
    doc["memory"] = json!(report.memory);
    if matches!(by, Granularity::Block | Granularity::Layer) {
        doc["blocks"] = json!(report.blocks);
    }
    if by == Granularity::Layer {
        doc["layers"] = report
            .layers
            .iter()
            .map(|l| {
                let mut v = json!(l);
                v["macs_pct"] = json!(exact_pct(report.macs_pct(l.costs.macs)));
                v
            })
            .collect();
    }
    if by == Granularity::Operator {
        doc["operators"] = report
            .operators
            .iter()
            .map(|o| {
                let mut v = json!(o);
                v["label"] = json!(o.operator.label());
                v["macs_pct"] = json!(exact_pct(report.macs_pct(o.costs.macs)));
                v
            })
            .collect();
    }
    doc
}

/// `5,288,548`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `385.81 M`, `37.75 G`, `928`.
pub fn human_count(n: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")];
    let x = n as f64;
    UNITS.iter().find(|(scale, _)| x >= *scale).map_or_else(
        || n.to_string(),
        |(scale, unit)| format!("{:.2} {unit}", x / scale),
    )
}

/// `4.59 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(f64, &str); 3] = [
        (1024.0 * 1024.0 * 1024.0, "GiB"),
        (1024.0 * 1024.0, "MiB"),
        (1024.0, "KiB"),
    ];
    let x = n as f64;
    UNITS.iter().find(|(scale, _)| x >= *scale).map_or_else(
        || format!("{n} B"),
        |(scale, unit)| format!("{:.2} {unit}", x / scale),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(5_288_548), "5,288,548");
        assert_eq!(thousands(928), "928");
        assert_eq!(thousands(0), "0");
        assert_eq!(human_count(385_814_752), "385.81 M");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(12), "12 B");
    }

    #[test]
    fn csv_quotes_commas() {
        assert_eq!(csv_field("MBConv6, k3x3"), "\"MBConv6, k3x3\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
