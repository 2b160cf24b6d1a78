//! The executor against the frameworks: every committed fixture (every container and naming
//! scheme, Keras with its preprocessing, SavedModels, TF checkpoints, f16/bf16/f64 files) run
//! on the reference input its generator stored, compared with the output the framework
//! computed (`<model>-io.safetensors`), as `tests/onnx/check_onnx.py` feeds them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use effnet_exec::{Array, Diff, ExecOptions, Executor};
use effnet_import::{ImportOptions, open};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The float32 tensors of a safetensors file (the fixtures' reference I/O).
fn read_io(path: &Path) -> BTreeMap<String, Array> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out = BTreeMap::new();
    for (name, info) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        assert_eq!(info["dtype"], "F32", "{name}");
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let offsets = info["data_offsets"].as_array().unwrap();
        let (b, e) = (
            offsets[0].as_u64().unwrap() as usize,
            offsets[1].as_u64().unwrap() as usize,
        );
        let values = data[b..e]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        out.insert(
            name.clone(),
            Array {
                shape,
                data: values,
            },
        );
    }
    out
}

struct Case {
    name: String,
    file: PathBuf,
    naming: String,
    key: Option<String>,
    io: PathBuf,
    /// Weights stored in f16/bf16: the reference (an f32 model) is reached within their
    /// precision only.
    half: bool,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for dir in [
        "fixtures/torch",
        "fixtures/keras",
        "fixtures/tf",
        "fixtures/families",
    ] {
        let dir = root().join(dir);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        entries.sort();
        for path in entries {
            let case: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let name = case["case"].as_str().unwrap().to_owned();
            // Other weights than the reference model (perturbed EMA, overflowing f16).
            if name.ends_with("-train-ema") || name.ends_with("-f16-overflow") {
                continue;
            }
            let naming = case["naming"].as_str().unwrap().to_owned();
            let io = case["io"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{naming}-tiny-io.safetensors"));
            let half = case["tensors"].as_object().is_some_and(|t| {
                t.values()
                    .any(|v| v["dtype"] == "f16" || v["dtype"] == "bf16")
            });
            cases.push(Case {
                file: dir.join(case["file"].as_str().unwrap()),
                key: case["key"].as_str().map(str::to_owned),
                io: dir.join(io),
                naming,
                name,
                half,
            });
        }
    }
    cases
}

#[test]
fn every_fixture_reproduces_its_framework_output() {
    let cases = cases();
    assert!(cases.len() >= 30, "found {} fixtures", cases.len());
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for case in &cases {
        let options = ImportOptions {
            key: case.key.clone().filter(|k| k.ends_with("_ema")),
            naming: case.naming.parse().ok(),
            ..ImportOptions::default()
        };
        let model = match open(&case.file, &options) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: open: {e}", case.name));
                continue;
            }
        };
        let graph = &model.imported.graph;
        let io = read_io(&case.io);
        // Where the probabilities saturate, the reference holds logits: compare those.
        let logits = io.contains_key("logits");
        let exec = Executor::new(graph, &ExecOptions { logits }).unwrap();
        let out = match exec.run(io["input"].clone()) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: run: {e}", case.name));
                continue;
            }
        };
        let reference = &io[if logits { "logits" } else { "output" }];
        assert_eq!(out.output.shape, reference.shape, "{}", case.name);
        let diff = Diff::of(&out.output.data, &reference.data);
        let tolerance = if case.half { 2e-2 } else { 1e-5 };
        lines.push(format!(
            "{:<32} {:<12} {:>9.2e} (≤ {tolerance:e}){}",
            case.name,
            case.naming,
            diff.relative,
            if logits { " logits" } else { "" }
        ));
        if diff.relative > tolerance {
            failures.push(format!(
                "{}: max|diff|/max|ref| = {:e} > {tolerance:e}",
                case.name, diff.relative
            ));
        }
        // With softmax kept, the probabilities match too.
        if logits {
            let exec = Executor::new(graph, &ExecOptions::default()).unwrap();
            let probs = exec.run(io["input"].clone()).unwrap().output;
            let diff = Diff::of(&probs.data, &io["output"].data);
            if diff.relative > 1e-5 {
                failures.push(format!("{} probabilities: {:e}", case.name, diff.relative));
            }
        }
    }
    println!("{}", lines.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn half_precision_files_equal_the_widened_f32_model() {
    // f16/bf16 weights are widened exactly, so the f16 file computes what the f32 model
    // computes with its weights rounded to f16: checked here to 1e-5 against the f32 file
    // whose weights were rounded through the same dtype.
    let dir = root().join("fixtures/torch");
    let f32_model = open(&dir.join("torchvision-tiny.pth"), &ImportOptions::default()).unwrap();
    let io = read_io(&dir.join("torchvision-tiny-io.safetensors"));
    for (file, dtype) in [
        ("torchvision-tiny-f16.pth", effnet_ir::DType::F16),
        ("torchvision-tiny-bf16.pth", effnet_ir::DType::BF16),
    ] {
        let half = open(&dir.join(file), &ImportOptions::default()).unwrap();
        let mut rounded = f32_model.imported.graph.clone();
        let ids: Vec<_> = rounded.nodes().map(|(id, _)| id).collect();
        for id in ids {
            let node = rounded.node_mut(id);
            let round = |t: &mut effnet_ir::Tensor| {
                let (converted, _) = t.to_dtype(dtype, false).unwrap();
                *t = converted;
            };
            match &mut node.op {
                effnet_ir::Op::Conv2d(c) => {
                    round(&mut c.weight);
                    if let Some(b) = &mut c.bias {
                        round(b);
                    }
                }
                effnet_ir::Op::Dense(d) => {
                    round(&mut d.weight);
                    if let Some(b) = &mut d.bias {
                        round(b);
                    }
                }
                effnet_ir::Op::BatchNorm(bn) => {
                    for t in [&mut bn.gamma, &mut bn.beta].into_iter().flatten() {
                        round(t);
                    }
                    round(&mut bn.mean);
                    round(&mut bn.var);
                }
                _ => {}
            }
        }
        let run = |g: &effnet_ir::Graph| {
            Executor::new(g, &ExecOptions::default())
                .unwrap()
                .run(io["input"].clone())
                .unwrap()
                .output
        };
        let diff = Diff::of(&run(&half.imported.graph).data, &run(&rounded).data);
        println!(
            "{file}: {:e} against the f32 model rounded to {dtype}",
            diff.relative
        );
        assert!(diff.relative <= 1e-5, "{file}: {:e}", diff.relative);
    }
}

#[test]
fn any_batch_and_input_size_runs() {
    let dir = root().join("fixtures");
    for file in ["torch/timm-tf-tiny.safetensors", "keras/keras-tiny.h5"] {
        let model = open(&dir.join(file), &ImportOptions::default()).unwrap();
        let exec = Executor::new(&model.imported.graph, &ExecOptions::default()).unwrap();
        let io_name = if file.starts_with("keras") {
            "keras/keras-tiny-io.safetensors"
        } else {
            "torch/timm-tf-tiny-io.safetensors"
        };
        let io = read_io(&dir.join(io_name));
        let one = io["input"].clone();
        // A batch of the reference twice gives the reference twice.
        let mut two = one.clone();
        two.shape[0] = 2;
        two.data.extend_from_slice(&one.data);
        let out = exec.run(two).unwrap();
        assert_eq!(out.output.shape, vec![2, 10]);
        assert_eq!(out.output.data[..10], out.output.data[10..]);
        // Odd and non-square sizes resolve TF "same" padding per size.
        for hw in [[33, 47], [1, 1], [97, 64]] {
            let x = effnet_exec::seeded_pixels(3, 1, 3, hw).unwrap();
            let out = exec.run(x).unwrap();
            assert_eq!(out.output.shape, vec![1, 10]);
            assert!(out.output.data.iter().all(|v| v.is_finite()));
        }
    }
}
