//! Per-stage bar charts of a report as SVG (plotters).

use plotters::prelude::*;

use crate::CostReport;
use crate::render::{human_bytes, human_count};

/// A unit a panel's values are shown in: the divisor and its name.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Unit {
    scale: f64,
    name: &'static str,
}

/// The unit that keeps a count's largest value readable: G, M, K or none.
fn count_unit(max: u64) -> Unit {
    let x = max as f64;
    [(1e9, "G"), (1e6, "M"), (1e3, "K")]
        .into_iter()
        .find(|(scale, _)| x >= *scale)
        .map_or(
            Unit {
                scale: 1.0,
                name: "",
            },
            |(scale, name)| Unit { scale, name },
        )
}

/// The binary unit that keeps a byte size's largest value readable: GiB, MiB, KiB or B.
fn byte_unit(max: u64) -> Unit {
    let x = max as f64;
    const KIB: f64 = 1024.0;
    [(KIB * KIB * KIB, "GiB"), (KIB * KIB, "MiB"), (KIB, "KiB")]
        .into_iter()
        .find(|(scale, _)| x >= *scale)
        .map_or(
            Unit {
                scale: 1.0,
                name: "B",
            },
            |(scale, name)| Unit { scale, name },
        )
}

/// The name of the model's file; `None` for a model built from the spec.
fn file_name(source: &str) -> Option<String> {
    if source == "spec" {
        return None;
    }
    Some(
        std::path::Path::new(source)
            .file_name()
            .map_or_else(|| source.to_owned(), |n| n.to_string_lossy().into_owned()),
    )
}

/// Three bar charts, one bar per paper stage labelled with its operator: MACs, parameters
/// and activation memory, each axis in the unit its largest bar needs (K/M/G, KiB/MiB/GiB),
/// every bar's value printed on it in its own unit, over a light grid; titled with the model, its file, the
/// resolution, batch, dtype and the MAC convention.
pub fn svg(report: &CostReport) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1200, 900)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let [h, w] = report.resolution;
        let model = &report.model.title;
        let (title, body) = root.split_vertically(64);
        title
            .titled(
                &format!(
                    "{model}{} · {h}×{w} · batch {} · {} activations",
                    file_name(&report.model.source)
                        .map(|f| format!(" · {f}"))
                        .unwrap_or_default(),
                    report.batch,
                    report.dtype
                ),
                ("sans-serif", 22),
            )
            .map_err(|e| e.to_string())?;
        title
            .draw_text(
                "MACs: conv + dense multiply-accumulates (paper/torchvision convention) · stages of the paper's Table 1",
                &("sans-serif", 13).into_text_style(&title),
                (20, 42),
            )
            .map_err(|e| e.to_string())?;
        let panels = body.split_evenly((3, 1));
        let max_of =
            |f: &dyn Fn(&crate::StageCost) -> u64| report.stages.iter().map(f).max().unwrap_or(0);
        let macs_unit = count_unit(max_of(&|s| s.costs.macs));
        let params_unit = count_unit(max_of(&|s| s.costs.params));
        let bytes_unit = byte_unit(max_of(&|s| s.costs.activation_bytes));
        // Each bar's label is its own value in its own unit (`1.86 K` next to `28.39 M`).
        let counts = |f: &dyn Fn(&crate::StageCost) -> u64| -> Vec<String> {
            report.stages.iter().map(|s| human_count(f(s))).collect()
        };
        let bar_labels: [Vec<String>; 3] = [
            counts(&|s| s.costs.macs),
            counts(&|s| s.costs.params),
            report
                .stages
                .iter()
                .map(|s| human_bytes(s.costs.activation_bytes))
                .collect(),
        ];
        let series: [(String, RGBColor, Vec<f64>); 3] = [
            (
                format!("MACs per stage ({}MACs)", macs_unit.name),
                RGBColor(31, 119, 180),
                report
                    .stages
                    .iter()
                    .map(|s| s.costs.macs as f64 / macs_unit.scale)
                    .collect(),
            ),
            (
                if params_unit.name.is_empty() {
                    "Parameters per stage".to_owned()
                } else {
                    format!("Parameters per stage ({})", params_unit.name)
                },
                RGBColor(255, 127, 14),
                report
                    .stages
                    .iter()
                    .map(|s| s.costs.params as f64 / params_unit.scale)
                    .collect(),
            ),
            (
                format!("Activation memory per stage ({})", bytes_unit.name),
                RGBColor(44, 160, 44),
                report
                    .stages
                    .iter()
                    .map(|s| s.costs.activation_bytes as f64 / bytes_unit.scale)
                    .collect(),
            ),
        ];
        let stages: Vec<u32> = report.stages.iter().map(|s| u32::from(s.stage)).collect();
        let operator = |stage: u32| {
            report
                .stages
                .iter()
                .find(|s| u32::from(s.stage) == stage)
                .map_or_else(String::new, |s| format!("{stage}: {}", s.operator))
        };
        let (first, last) = (
            stages.first().copied().unwrap_or(1),
            stages.last().copied().unwrap_or(1),
        );
        let grid = RGBColor(232, 232, 232);
        for ((panel, (caption, color, values)), labels) in panels.iter().zip(series).zip(bar_labels)
        {
            let top = values.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.18;
            let mut chart = ChartBuilder::on(panel)
                .caption(&caption, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d((first..last).into_segmented(), 0f64..top)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .bold_line_style(grid)
                .light_line_style(grid.mix(0.4))
                .axis_style(RGBColor(160, 160, 160))
                .x_label_style(("sans-serif", 11))
                .x_label_formatter(&|x| match x {
                    SegmentValue::CenterOf(s) => operator(*s),
                    _ => String::new(),
                })
                .draw()
                .map_err(|e| e.to_string())?;
            // One series per bar: a histogram sums its data in a hash map and draws the bars
            // in its order, which changes from run to run; stage order keeps the SVG the same.
            for (&stage, &value) in stages.iter().zip(&values) {
                chart
                    .draw_series(
                        Histogram::vertical(&chart)
                            .style(color.filled())
                            .margin(8)
                            .data([(stage, value)]),
                    )
                    .map_err(|e| e.to_string())?;
            }
            let label_style = ("sans-serif", 12)
                .into_font()
                .color(&RGBColor(40, 40, 40))
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Bottom,
                ));
            chart
                .draw_series(
                    stages
                        .iter()
                        .zip(&values)
                        .zip(labels)
                        .map(|((&s, &v), label)| {
                            Text::new(
                                label,
                                (SegmentValue::CenterOf(s), v + top * 0.01),
                                label_style.clone(),
                            )
                        }),
                )
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CostOptions, ModelInfo, analyze};
    use effnet_spec::{ModelSpec, Scheme, Variant, build_graph};

    #[test]
    fn units_scale_with_the_largest_value() {
        assert_eq!(count_unit(385_814_752).name, "M");
        assert_eq!(count_unit(37_750_000_000).name, "G");
        assert_eq!(count_unit(999).name, "");
        assert_eq!(byte_unit(9_633_792).name, "MiB");
        assert_eq!(byte_unit(3 << 30).name, "GiB");
        assert_eq!(file_name("/models/b0.pth").as_deref(), Some("b0.pth"));
        assert_eq!(file_name("spec"), None);
    }

    #[test]
    fn the_same_report_draws_the_same_svg() {
        let spec = ModelSpec::variant(Variant::B0);
        let graph = build_graph(
            &spec.architecture(),
            &Scheme::TfOfficial.semantics(spec.variant),
        )
        .unwrap();
        let info = ModelInfo {
            title: "EfficientNet-B0".into(),
            variant: Some("b0".into()),
            family: None,
            width: Some(1.0),
            depth: Some(1.0),
            resolution: [224, 224],
            naming: None,
            source: "spec".into(),
        };
        let report = analyze(&graph, info, &CostOptions::default()).unwrap();
        let first = super::svg(&report).unwrap();
        for _ in 0..4 {
            assert!(
                super::svg(&report).unwrap() == first,
                "the SVG changed between runs"
            );
        }
    }
}
