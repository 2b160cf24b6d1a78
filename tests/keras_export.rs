//! `effnet convert … -o out.keras | out.weights.h5 | out.h5`: Keras files effnet reads back as
//! the model it wrote, checked against the source by running both (`--check`), and refused
//! where Keras would compute something else. `tests/keras/check_keras.py` (run by `.ci/run`)
//! loads the same files into Keras itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

mod common;

fn effnet() -> Command {
    let mut cmd = Command::cargo_bin("effnet").unwrap();
    cmd.env_remove("NO_COLOR");
    cmd
}

fn fixture(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
        .to_string_lossy()
        .into_owned()
}

/// Runs `args`, expects exit 2, and returns stderr.
fn error_of(args: &[&str]) -> String {
    let out = effnet().args(args).assert().code(2).get_output().clone();
    String::from_utf8(out.stderr).unwrap()
}

/// Converts `input` to `name` in a fresh folder with `--check`; returns (folder, path, stdout).
fn convert(input: &str, name: &str, args: &[&str]) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(name);
    let mut all = vec!["convert", input, "-o", out.to_str().unwrap(), "--check"];
    all.extend_from_slice(args);
    let output = effnet().args(&all).assert().success().get_output().clone();
    (dir, out, String::from_utf8(output.stdout).unwrap())
}

fn inspect(path: &Path) -> Value {
    let out = effnet()
        .args(["inspect", path.to_str().unwrap(), "--format", "json"])
        .assert()
        .success()
        .get_output()
        .clone();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every graph parameter's values, keyed by (stage, block, role, parameter).
fn parameters(path: &Path, naming: Option<&str>) -> BTreeMap<String, Vec<f32>> {
    let options = effnet_import::ImportOptions {
        key: None,
        naming: naming.map(|n| n.parse().unwrap()),
        ..Default::default()
    };
    let model = effnet_import::open(path, &options).unwrap();
    let mut out = BTreeMap::new();
    for (_, node) in model.imported.graph.nodes() {
        for p in node.op.params() {
            if p.tensor.data().is_some() && p.tensor.dtype().is_float() {
                let key = format!(
                    "{:?} {:?} {} {}",
                    node.tag.stage, node.tag.block, node.tag.role, p.name
                );
                out.insert(key, p.tensor.to_f32_vec().unwrap());
            }
        }
    }
    out
}

const TARGETS: [&str; 3] = ["out.keras", "out.weights.h5", "out.h5"];

#[test]
fn keras_sources_are_written_back_with_the_same_values() {
    for source in [
        "keras/keras3-tiny.keras",
        "keras/keras-tiny.h5",
        "tf/keras-tiny-ckpt",
        "tf/keras-tiny-savedmodel",
    ] {
        let source = fixture(source);
        let want = parameters(Path::new(&source), None);
        for target in TARGETS {
            let (_dir, out, stdout) = convert(&source, target, &["--resolution", "64"]);
            assert!(stdout.contains("outputs agree"), "{target}: {stdout}");
            let got = parameters(&out, None);
            assert_eq!(got.len(), want.len(), "{source} → {target}");
            for (key, values) in &want {
                assert_eq!(got.get(key), Some(values), "{source} → {target}: {key}");
            }
            let info = inspect(&out);
            assert_eq!(info["params"], 55_458, "{target}");
            assert_eq!(info["variant"], "custom w=0.1 d=0.5", "{target}");
            // The .keras and the tf-keras .h5 carry their architecture.
            assert_eq!(
                info["has_architecture"],
                target != "out.weights.h5",
                "{target}: {info}"
            );
        }
    }
}

#[test]
fn a_pytorch_source_gets_keras_epsilon_and_its_preprocessing_inside() {
    let source = fixture("torch/timm-tf-tiny.pth");
    for target in TARGETS {
        let (_dir, out, stdout) = convert(
            &source,
            target,
            &["--source-naming", "timm-tf", "--resolution", "64"],
        );
        assert!(stdout.contains("outputs agree"), "{stdout}");
        assert!(stdout.contains("classifier linear"), "{stdout}");
        assert!(
            stdout.contains("input preprocessing: the timm-tf convention"),
            "{stdout}"
        );
        assert!(stdout.contains("--input-mean/--input-std"), "{stdout}");
        let info = inspect(&out);
        assert_eq!(info["params"], 55_458);
        let metadata = &info["metadata"];
        assert_eq!(
            metadata["effnet.input_preprocessing_from"], "convention",
            "{info}"
        );
        assert_eq!(metadata["effnet.source_naming"], "timm-tf", "{info}");
    }
    // Stated values go into the Normalization layer and are recorded as stated.
    let (_dir, out, stdout) = convert(
        &source,
        "out.keras",
        &[
            "--source-naming",
            "timm-tf",
            "--resolution",
            "64",
            "--input-mean",
            "0.5,0.5,0.5",
            "--input-std",
            "0.5",
        ],
    );
    assert!(stdout.contains("as stated"), "{stdout}");
    assert!(
        stdout.contains("mean [0.5, 0.5, 0.5], variance [0.25, 0.25, 0.25]"),
        "{stdout}"
    );
    assert_eq!(
        inspect(&out)["metadata"]["effnet.input_preprocessing_from"],
        "stated"
    );
}

#[test]
fn f16_weights_are_written_and_checked() {
    let (_dir, out, stdout) = convert(
        &fixture("keras/keras3-tiny.keras"),
        "out.weights.h5",
        &["--dtype", "f16"],
    );
    assert!(stdout.contains("f16: 0 overflow"), "{stdout}");
    // The weights in f16; the Normalization's mean and variance stay f32, as Keras holds them.
    let info = inspect(&out);
    assert_eq!(info["dtypes"]["f16"], 197, "{info}");
    assert_eq!(info["dtypes"]["f32"], 2, "{info}");
}

#[test]
fn what_keras_would_compute_otherwise_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.keras");
    let out = out.to_str().unwrap();
    // Symmetric padding: refused with the flag that allows it; nothing written.
    let message = error_of(&["convert", &fixture("torch/torchvision-tiny.pth"), "-o", out]);
    assert!(message.contains("--allow-padding-change"), "{message}");
    assert!(!Path::new(out).exists());
    // Allowed: written, printed and recorded.
    let run = effnet()
        .args([
            "convert",
            &fixture("torch/torchvision-tiny.pth"),
            "-o",
            out,
            "--allow-padding-change",
            "--resolution",
            "64",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(stderr.contains("pads symmetrically"), "{stderr}");
    let changes = inspect(Path::new(out))["metadata"]["effnet.changes"].clone();
    assert!(changes.as_str().unwrap().contains("padding"), "{changes}");
    std::fs::remove_file(out).unwrap();
    // A dropped shortcut (EfficientNet-PyTorch), another activation.
    let message = error_of(&["convert", &fixture("torch/lukemelas-tiny.pth"), "-o", out]);
    assert!(message.contains("--allow-shortcut-change"), "{message}");
    let message = error_of(&["convert", &fixture("tf/keras-tiny-relu.h5"), "-o", out]);
    assert!(message.contains("relu"), "{message}");
    // A family keras.applications does not build.
    let message = error_of(&[
        "convert",
        &fixture("families/timm-tf-lite-tiny.pth"),
        "-o",
        out,
        "--source-naming",
        "timm-tf",
        "--resolution",
        "64",
    ]);
    assert!(
        message.contains("EfficientNet-Lite is not in Keras"),
        "{message}"
    );
    // No size recorded: stated with --resolution.
    let message = error_of(&[
        "convert",
        &fixture("torch/timm-tf-tiny.pth"),
        "-o",
        out,
        "--source-naming",
        "timm-tf",
    ]);
    assert!(message.contains("--resolution"), "{message}");
    assert!(!Path::new(out).exists());
}

#[test]
fn keras_flags_and_dtypes_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.weights.h5");
    let out = out.to_str().unwrap();
    let source = fixture("keras/keras3-tiny.keras");
    let message = error_of(&["convert", &source, "-o", out, "--dtype", "bf16"]);
    assert!(message.contains("f32 or f16"), "{message}");
    let message = error_of(&["convert", &source, "-o", out, "--verify"]);
    assert!(message.contains("--verify applies to"), "{message}");
    let message = error_of(&["convert", &source, "-o", out, "--opset", "17"]);
    assert!(message.contains("--opset applies to onnx"), "{message}");
    // The model has its own preprocessing: stated values would be ignored.
    let message = error_of(&[
        "convert",
        &source,
        "-o",
        out,
        "--input-mean",
        "0.5",
        "--input-std",
        "0.5",
    ]);
    assert!(message.contains("own preprocessing"), "{message}");
    // --input-mean needs --input-std; --input-mean for another format is refused.
    error_of(&["convert", &source, "-o", out, "--input-mean", "0.5"]);
    let onnx = dir.path().join("out.onnx");
    let message = error_of(&[
        "convert",
        &source,
        "-o",
        onnx.to_str().unwrap(),
        "--input-mean",
        "0.5",
        "--input-std",
        "0.5",
    ]);
    assert!(message.contains("applies to Keras"), "{message}");
    // The suffix and --to must agree.
    let message = error_of(&["convert", &source, "-o", out, "--to", "keras"]);
    assert!(message.contains("--to says keras"), "{message}");
    assert!(!Path::new(out).exists());
}

#[test]
fn keras_output_to_standard_output() {
    let out = effnet()
        .args([
            "convert",
            &fixture("keras/keras3-tiny.keras"),
            "-o",
            "-",
            "--to",
            "weights-h5",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(&out.stdout[..8], b"\x89HDF\r\n\x1a\n");
}

#[test]
fn efficientnet_v2_is_written_as_keras_applications_builds_it() {
    let source = fixture("families/keras3-v2-tiny.keras");
    let want = parameters(Path::new(&source), None);
    for target in TARGETS {
        let (_dir, out, stdout) = convert(&source, target, &[]);
        assert!(stdout.contains("outputs agree"), "{target}: {stdout}");
        let got = parameters(&out, None);
        for (key, values) in &want {
            assert_eq!(got.get(key), Some(values), "{target}: {key}");
        }
        assert_eq!(inspect(&out)["family"], "efficientnet-v2", "{target}");
    }
    // A V2 weights file holds no preprocessing: keras.applications' V2-S brings x/128 − 1,
    // which is not what a timm-tf source expects. Said when written; `--check`, which reads the
    // file back as Keras would load it, refuses.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.weights.h5");
    let args = [
        "convert",
        &fixture("families/timm-tf-v2s-tiny.safetensors"),
        "-o",
        out.to_str().unwrap(),
        "--source-naming",
        "timm-tf",
        "--resolution",
        "64",
    ];
    let run = effnet().args(args).assert().success().get_output().clone();
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert!(stdout.contains("include_preprocessing=False"), "{stdout}");
    std::fs::remove_file(&out).unwrap();
    effnet().args(args).arg("--check").assert().code(1);
    assert!(!out.exists());
}

#[test]
fn a_model_without_classifier_ends_at_its_pooling() {
    let dir = tempfile::tempdir().unwrap();
    let headless = dir.path().join("headless.safetensors");
    common::rewrite_safetensors(
        &fixture("torch/timm-tf-tiny.safetensors"),
        &headless,
        |n| !n.starts_with("classifier."),
        &[],
        &[],
    );
    let source = headless.to_str().unwrap();
    for target in ["out.keras", "out.weights.h5"] {
        let (_dir, _out, stdout) = convert(
            source,
            target,
            &["--source-naming", "timm-tf", "--resolution", "64"],
        );
        assert!(stdout.contains("classifier none (features)"), "{stdout}");
        assert!(stdout.contains("outputs agree"), "{stdout}");
        if target == "out.weights.h5" {
            assert!(stdout.contains("include_top=False"), "{stdout}");
        }
    }
}
