//! `effnet run`: a model on a `.npy` array or on images, with the top-5 classes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use comfy_table::{Table, presets};
use effnet_cost::{CostOptions, ModelInfo, analyze};
use effnet_exec::{
    Array, ExecOptions, Executor, Feed, ImagePrep, ends_in_softmax, imagenet_labels, load_images,
    read_npy, top_k,
};
use serde_json::json;

use crate::cli::{Layout, RunArgs, RunFormat};
use crate::output;

/// A regular file read whole (its size bounds what is allocated).
pub(crate) fn read_input(path: &Path, layout: Layout) -> anyhow::Result<Array> {
    let meta = std::fs::metadata(path).with_context(|| path.display().to_string())?;
    if !meta.is_file() {
        bail!("{}: not a regular file", path.display());
    }
    let array = read_npy(path)?;
    let array = match array.shape.len() {
        4 => array,
        3 => Array {
            shape: std::iter::once(1)
                .chain(array.shape.iter().copied())
                .collect(),
            data: array.data,
        },
        _ => bail!(
            "{}: expected an image batch ({} dimensions: [n, c, h, w] or [n, h, w, c]), found shape {:?}",
            path.display(),
            4,
            array.shape
        ),
    };
    Ok(match layout {
        Layout::Nchw => array,
        Layout::Nhwc => array.nhwc_to_nchw().expect("4-d"),
    })
}

/// The resolution images are brought to: the flag, else the one the model records.
pub(crate) fn resolution_of(
    graph: &effnet_ir::Graph,
    flag: Option<crate::cli::Resolution>,
) -> Option<[usize; 2]> {
    flag.map(|r| r.hw()).or_else(|| {
        graph.nodes().find_map(|(_, n)| match &n.op {
            effnet_ir::Op::Input(i) => i.resolution,
            _ => None,
        })
    })
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    // `-` is standard output elsewhere; here stdout carries the report, so it is refused
    // rather than written as a file called `-`.
    if args.output.as_ref().is_some_and(|p| p.as_os_str() == "-") {
        bail!("-o - : standard output carries the report; give the .npy a file name");
    }
    let started = Instant::now();
    let model = super::open_model(&args.model, args.naming, &args.read)?;
    super::warn(&model);
    let graph = &model.imported.graph;
    let opened = started.elapsed();

    // What goes in, and the sentence that says how it was prepared.
    let (input, source, preprocessing) = match (&args.input, args.images.as_slice()) {
        (Some(path), []) => {
            let x = read_input(path, args.layout)?;
            let how = "as given (the input the source framework's model takes)".to_owned();
            (x, json!({"npy": path.display().to_string()}), how)
        }
        (None, []) => bail!("give --input X.npy or one or more images"),
        (Some(_), _) => bail!("give --input or images, not both"),
        (None, images) => {
            let Some([h, w]) = resolution_of(graph, args.resolution) else {
                bail!("the model records no input resolution: give one (--resolution)");
            };
            if h != w {
                if args.resolution.is_some() {
                    bail!("images are cropped square: give --resolution R, not {h}×{w}");
                }
                bail!("images are cropped square; the model records {h}×{w}: give --resolution");
            }
            let prep = ImagePrep::for_family(graph.meta.naming.as_deref(), h);
            let feed = Feed::for_model(graph, &model.metadata)?;
            let raw = load_images(images, &prep)?;
            let how = format!("{}, then {}", prep.describe(), feed.describe());
            let names: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
            (feed.apply(&raw)?, json!({"images": names}), how)
        }
    };
    let input_shape = input.shape.clone();
    let [n, _, h, w] = [
        input_shape[0],
        input_shape[1],
        input_shape[2],
        input_shape[3],
    ];

    let t = Instant::now();
    let exec = Executor::new(
        graph,
        &ExecOptions {
            logits: args.logits,
        },
    )?;
    let compiled = t.elapsed();
    let t = Instant::now();
    let out = exec.run(input)?;
    let ran = t.elapsed();
    let kind = if ends_in_softmax(graph) && !args.logits {
        "probabilities"
    } else {
        "logits"
    };
    let estimate = analyze(
        graph,
        ModelInfo::default(),
        &CostOptions {
            batch: n,
            resolution: Some([h, w]),
            ..CostOptions::default()
        },
    )
    .ok()
    .map(|r| r.total.peak_activation_bytes);

    if let Some(path) = &args.output {
        let inputs: Vec<PathBuf> = effnet_convert::inputs_of(&model)
            .into_iter()
            .chain(args.input.clone())
            .chain(args.images.iter().cloned())
            .collect();
        let bytes = effnet_exec::encode_npy(&out.output);
        effnet_io::write_atomic(path, &inputs, args.force, |file| {
            use std::io::Write as _;
            file.write_all(&bytes)
                .map_err(|source| effnet_io::OutputError::Io {
                    path: path.clone(),
                    source,
                })
        })?;
        output::note(&format!(
            "wrote {} ({kind}, shape {:?})",
            path.display(),
            out.output.shape
        ));
    }

    // Top-5 per sample, for a classifier.
    let classes = match out.output.shape.as_slice() {
        &[_, c] if c > 1 => Some(c),
        _ => None,
    };
    let labels = (classes == Some(1000)).then(imagenet_labels);
    let tops: Vec<Vec<(usize, f32)>> = match classes {
        Some(c) => out.output.data.chunks(c).map(|row| top_k(row, 5)).collect(),
        None => Vec::new(),
    };
    let label = |i: usize| labels.as_ref().map(|l| l[i].to_owned());

    let text = match args.format {
        RunFormat::Json => {
            let top: Vec<serde_json::Value> = tops
                .iter()
                .map(|t| {
                    t.iter()
                        .map(|&(i, s)| json!({"class": i, "label": label(i), "score": s}))
                        .collect()
                })
                .collect();
            let doc = json!({
                "schema": "effnet.run/1",
                "model": model.path.display().to_string(),
                "naming": model.naming.name(),
                "input": {
                    "shape": input_shape,
                    "source": source,
                    "preprocessing": preprocessing,
                },
                "output": {"shape": out.output.shape, "kind": kind},
                "top": top,
                "timing_ms": {
                    "open": opened.as_secs_f64() * 1e3,
                    "compile": compiled.as_secs_f64() * 1e3,
                    "run": ran.as_secs_f64() * 1e3,
                },
                "memory": {
                    "peak_activation_bytes": out.peak_bytes,
                    "estimated_peak_activation_bytes": estimate,
                },
            });
            let mut s = serde_json::to_string_pretty(&doc)?;
            s.push('\n');
            s
        }
        RunFormat::Table => {
            let mut s = format!(
                "model:  {} ({})\ninput:  {:?}, {preprocessing}\noutput: {:?} {kind}\n",
                effnet_io::escape(&model.path.display().to_string()),
                model.naming.name(),
                input_shape,
                out.output.shape,
            );
            let names: Vec<String> = match &args.input {
                Some(p) => (0..n).map(|i| format!("{} [{i}]", p.display())).collect(),
                None => args
                    .images
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            };
            for (i, top) in tops.iter().enumerate() {
                let mut table = Table::new();
                table.load_preset(presets::NOTHING);
                if labels.is_some() {
                    table.set_header(vec!["rank", "class", "label", kind]);
                } else {
                    table.set_header(vec!["rank", "class", kind]);
                }
                for (rank, &(class, score)) in top.iter().enumerate() {
                    let mut row = vec![(rank + 1).to_string(), class.to_string()];
                    row.extend(label(class));
                    row.push(format!("{score:.6}"));
                    table.add_row(row);
                }
                s.push_str(&format!(
                    "\n{}\n{table}\n",
                    effnet_io::escape(names.get(i).map_or("", String::as_str))
                ));
            }
            let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
            s.push_str(&format!(
                "\ntime: open {:.1} ms, compile {:.1} ms, run {:.1} ms; peak activations {:.1} MiB{}\n",
                opened.as_secs_f64() * 1e3,
                compiled.as_secs_f64() * 1e3,
                ran.as_secs_f64() * 1e3,
                mib(out.peak_bytes),
                estimate.map_or(String::new(), |e| format!(
                    " (IR estimate {:.1} MiB)",
                    mib(e)
                )),
            ));
            s
        }
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}
