//! In-process benchmarks (criterion) of the pieces a command is made of: the spec graph and
//! its cost report, the f32 → f16 conversion, the layout transposes (OIHW ↔ HWIO), and — over
//! the full-size files of `just fixtures-full` (skipped with a note when absent) — opening each
//! container, exporting to safetensors and Keras and building the ONNX model. Run with
//! `cargo bench --bench pipeline`.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use effnet_cost::{CostOptions, ModelInfo, analyze};
use effnet_import::{ImportOptions, open};
use effnet_ir::{DType, Tensor};
use effnet_spec::{ModelSpec, Scheme, Variant, build_graph};

fn full(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/fixtures-full")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is missing (just fixtures-full)",
            path.display()
        );
        None
    }
}

fn spec_and_cost(c: &mut Criterion) {
    let spec = ModelSpec::variant(Variant::B7);
    let semantics = Scheme::Torchvision.semantics(Some(Variant::B7));
    c.bench_function("spec graph b7", |b| {
        b.iter(|| build_graph(&spec.architecture(), &semantics).unwrap())
    });
    let graph = build_graph(&spec.architecture(), &semantics).unwrap();
    c.bench_function("cost analysis b7", |b| {
        b.iter(|| {
            let info = ModelInfo {
                title: "EfficientNet-B7".into(),
                variant: Some("b7".into()),
                family: Some("efficientnet".into()),
                width: Some(spec.width),
                depth: Some(spec.depth),
                resolution: [spec.resolution, spec.resolution],
                naming: None,
                source: "spec".into(),
            };
            analyze(&graph, info, &CostOptions::default()).unwrap()
        })
    });
}

fn f16_conversion(c: &mut Criterion) {
    // 16 M values (64 MiB), as many as B7's largest stages together.
    let values: Vec<f32> = (0..16 << 20).map(|i| (i as f32 * 1e-3).sin()).collect();
    let tensor = Tensor::from_f32(vec![values.len()], &values).unwrap();
    let mut group = c.benchmark_group("f32 to f16");
    group.throughput(criterion::Throughput::Bytes((values.len() * 4) as u64));
    group.bench_function("64 MiB", |b| {
        b.iter(|| tensor.to_dtype(DType::F16, false).unwrap())
    });
    group.finish();
}

fn layout_transposes(c: &mut Criterion) {
    // B7's largest 1×1 convolution ([3840, 640, 1, 1], 9.4 MiB) and a 5×5 depthwise one, to
    // TensorFlow's layout and back: gathered in tiles.
    let mut group = c.benchmark_group("transpose");
    for (name, shape, perm) in [
        ("conv 1x1 OIHW to HWIO", vec![3840, 640, 1, 1], [2, 3, 1, 0]),
        ("conv 3x3 OIHW to HWIO", vec![384, 384, 3, 3], [2, 3, 1, 0]),
        ("depthwise 5x5 to HWC1", vec![3840, 1, 5, 5], [2, 3, 0, 1]),
    ] {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let tensor = Tensor::from_f32(shape, &values).unwrap();
        group.throughput(criterion::Throughput::Bytes((n * 4) as u64));
        group.bench_function(name, |b| {
            b.iter(|| tensor.permuted(&perm).unwrap().data().unwrap().to_vec())
        });
    }
    group.finish();
}

fn open_containers(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for name in [
        "torchvision-b0.pth",
        "torchvision-b7.pth",
        "timm-b7.safetensors",
        "lukemelas-b7.pth",
        "keras-b7.h5",
        "keras-b7-ckpt",
        "tf-official-b7",
        "keras3-b7.keras",
    ] {
        let Some(path) = full(name) else { continue };
        group.bench_function(name, |b| {
            b.iter(|| open(&path, &ImportOptions::default()).unwrap())
        });
    }
    group.finish();
}

/// Opening with the checksums over the weights left for later (what `inspect`, `cost` and
/// `audit` do) against comparing them at open, and comparing them afterwards.
fn deferred_checksums(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksums");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let deferred = ImportOptions {
        checksums: effnet_ir::ChecksumPolicy::Deferred,
        ..ImportOptions::default()
    };
    for name in ["torchvision-b7.pth", "keras-b7-ckpt", "tf-official-b7"] {
        let Some(path) = full(name) else { continue };
        group.bench_function(format!("{name}: open, deferred"), |b| {
            b.iter(|| open(&path, &deferred).unwrap())
        });
        group.bench_function(format!("{name}: open, compared"), |b| {
            b.iter(|| open(&path, &ImportOptions::default()).unwrap())
        });
        let model = open(&path, &deferred).unwrap();
        group.bench_function(format!("{name}: compare all"), |b| {
            b.iter(|| model.verify_checksums().unwrap())
        });
    }
    group.finish();
}

fn exports(c: &mut Criterion) {
    let Some(path) = full("torchvision-b7.pth") else {
        return;
    };
    let model = open(&path, &ImportOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("export b7");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("f16 safetensors", |b| {
        let out = dir.path().join("b7.safetensors");
        let options = effnet_convert::SafetensorsOptions {
            naming: None,
            dtype: DType::F16,
            keep_bn_f32: false,
            clamp: false,
            allow: Default::default(),
            force: true,
            verify: false,
            check: None,
        };
        b.iter(|| effnet_convert::to_safetensors(&model, &out, &options, &mut |_, _| {}).unwrap())
    });
    group.bench_function("keras weights.h5", |b| {
        let out = dir.path().join("b7.weights.h5");
        let options = effnet_convert::KerasOptions {
            target: effnet_keras::write::KerasTarget::WeightsH5,
            dtype: DType::F32,
            clamp: false,
            input_mean: None,
            input_std: None,
            resolution: None,
            // torchvision pads symmetrically; the writing is what is measured.
            allow: effnet_convert::Allowances {
                padding_change: true,
                ..Default::default()
            },
            force: true,
            check: None,
        };
        b.iter(|| effnet_convert::to_keras(&model, &out, &options, &mut |_, _| {}).unwrap())
    });
    let options = effnet_onnx::OnnxOptions {
        opset: 17,
        resolution: Some([600, 600]),
        logits: false,
        no_preprocessing: false,
        doc: String::new(),
        metadata: Vec::new(),
        fold_bn: false,
        nhwc: false,
        half: false,
    };
    group.bench_function("onnx model (in memory)", |b| {
        b.iter(|| effnet_onnx::build(&model.imported.graph, &options).unwrap())
    });
    // What `convert -o x.onnx` does: the weights produced and written one at a time, here
    // copied into a 1 MiB ring as `write(2)` copies them into the page cache.
    group.bench_function("onnx streamed", |b| {
        let mut ring = Ring(vec![0; 1 << 20], 0);
        b.iter(|| {
            let streamed = effnet_onnx::build_streamed(&model.imported.graph, &options).unwrap();
            streamed.write(&mut ring, &|_| Vec::new()).unwrap()
        })
    });
    group.finish();
}

/// A writer that copies everything into a fixed buffer, round and round.
struct Ring(Vec<u8>, usize);

impl std::io::Write for Ring {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = bytes.len().min(self.0.len() - self.1);
        self.0[self.1..self.1 + n].copy_from_slice(&bytes[..n]);
        self.1 = (self.1 + n) % self.0.len();
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

criterion_group!(
    benches,
    spec_and_cost,
    f16_conversion,
    layout_transposes,
    open_containers,
    deferred_checksums,
    exports
);
criterion_main!(benches);
