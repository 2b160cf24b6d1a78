//! Per-stage bar charts of a report as SVG (plotters).

use plotters::prelude::*;

use crate::CostReport;

/// Three stacked bar charts, one bar per paper stage: MACs (millions), parameters (millions)
/// and activation memory (MiB), titled with the model, resolution, batch, dtype and convention.
pub fn svg(report: &CostReport) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 860)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let [h, w] = report.resolution;
        let model = &report.model.title;
        let (title, body) = root.split_vertically(60);
        title
            .titled(
                &format!(
                    "{model} · {h}×{w} · batch {} · {} activations",
                    report.batch, report.dtype
                ),
                ("sans-serif", 22),
            )
            .map_err(|e| e.to_string())?;
        title
            .draw_text(
                "MACs: conv + dense multiply-accumulates (paper/torchvision convention) · stages of the paper's Table 1",
                &("sans-serif", 13).into_text_style(&title),
                (20, 40),
            )
            .map_err(|e| e.to_string())?;
        let panels = body.split_evenly((3, 1));
        let series: [(&str, RGBColor, Vec<f64>); 3] = [
            (
                "MACs per stage (millions)",
                RGBColor(31, 119, 180),
                report
                    .stages
                    .iter()
                    .map(|s| s.costs.macs as f64 / 1e6)
                    .collect(),
            ),
            (
                "Parameters per stage (millions)",
                RGBColor(255, 127, 14),
                report
                    .stages
                    .iter()
                    .map(|s| s.costs.params as f64 / 1e6)
                    .collect(),
            ),
            (
                "Activation memory per stage (MiB)",
                RGBColor(44, 160, 44),
                report
                    .stages
                    .iter()
                    .map(|s| s.costs.activation_bytes as f64 / (1024.0 * 1024.0))
                    .collect(),
            ),
        ];
        let stages: Vec<u32> = report.stages.iter().map(|s| u32::from(s.stage)).collect();
        let (first, last) = (
            stages.first().copied().unwrap_or(1),
            stages.last().copied().unwrap_or(1),
        );
        for (panel, (caption, color, values)) in panels.iter().zip(series) {
            let top = values.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.15;
            let mut chart = ChartBuilder::on(panel)
                .caption(caption, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d((first..last).into_segmented(), 0f64..top)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_label_formatter(&|x| match x {
                    SegmentValue::CenterOf(s) => format!("stage {s}"),
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
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::{CostOptions, ModelInfo, analyze};
    use effnet_spec::{ModelSpec, Scheme, Variant, build_graph};

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
            resolution: 224,
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
