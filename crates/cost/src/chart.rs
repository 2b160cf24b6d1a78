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
            chart
                .draw_series(
                    Histogram::vertical(&chart)
                        .style(color.filled())
                        .margin(8)
                        .data(stages.iter().copied().zip(values.iter().copied())),
                )
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}
