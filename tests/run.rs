//! `effnet run` and `effnet compare` end to end (issue 16): the frameworks' stored outputs
//! reproduced through the CLI, an exact conversion comparing equal, a padding change caught at
//! stage 1, and the exit codes.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use effnet_exec::{Array, Diff, encode_npy, read_npy};
use serde_json::Value;

mod common;
use common::read_io;

fn effnet() -> Command {
    let mut cmd = Command::cargo_bin("effnet").unwrap();
    cmd.env("NO_COLOR", "1");
    cmd
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

fn write_npy(dir: &Path, name: &str, array: &Array) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, encode_npy(array)).unwrap();
    path
}

#[test]
fn run_reproduces_keras_from_its_raw_nhwc_input() {
    let dir = tempfile::tempdir().unwrap();
    let io = fixture("keras/keras-tiny-io.safetensors");
    let x = write_npy(dir.path(), "x.npy", &read_io(&io, "input_nhwc"));
    let y = dir.path().join("y.npy");
    effnet()
        .args(["run", fixture("keras/keras-tiny.h5").to_str().unwrap()])
        .args(["--input", x.to_str().unwrap(), "--layout", "nhwc", "-o"])
        .arg(&y)
        .assert()
        .success();
    let got = read_npy(&y).unwrap();
    let want = read_io(&io, "output");
    assert_eq!(got.shape, want.shape);
    assert!(Diff::of(&got.data, &want.data).relative <= 1e-5);
    // --logits drops the softmax: the logits the generator stored.
    let out = effnet()
        .args(["run", fixture("keras/keras-tiny.h5").to_str().unwrap()])
        .args([
            "--input",
            x.to_str().unwrap(),
            "--layout",
            "nhwc",
            "--logits",
        ])
        .args(["--format", "json"])
        .assert()
        .success();
    let doc: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(doc["schema"], "effnet.run/1");
    assert_eq!(doc["output"]["kind"], "logits");
    let logits = read_io(&io, "logits");
    let best = effnet_exec::top_k(&logits.data, 1)[0].0;
    assert_eq!(doc["top"][0][0]["class"], best);
}

#[test]
fn run_reads_torch_input_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let io = fixture("torch/torchvision-tiny-io.safetensors");
    let x = write_npy(dir.path(), "x.npy", &read_io(&io, "input"));
    let y = dir.path().join("y.npy");
    effnet()
        .args([
            "run",
            fixture("torch/torchvision-tiny.pth").to_str().unwrap(),
        ])
        .args(["--input", x.to_str().unwrap(), "--output"])
        .arg(&y)
        .assert()
        .success();
    let got = read_npy(&y).unwrap();
    assert!(Diff::of(&got.data, &read_io(&io, "output").data).relative <= 1e-5);
    // A second run refuses to overwrite without --force.
    effnet()
        .args([
            "run",
            fixture("torch/torchvision-tiny.pth").to_str().unwrap(),
        ])
        .args(["--input", x.to_str().unwrap(), "--output"])
        .arg(&y)
        .assert()
        .code(2);
}

#[test]
fn run_rejects_a_lying_npy() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = encode_npy(&Array {
        shape: vec![1, 3, 8, 8],
        data: vec![0.0; 192],
    });
    bytes.truncate(bytes.len() - 4);
    let x = dir.path().join("x.npy");
    std::fs::write(&x, bytes).unwrap();
    let out = effnet()
        .args([
            "run",
            fixture("torch/torchvision-tiny.pth").to_str().unwrap(),
        ])
        .args(["--input", x.to_str().unwrap()])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("needs 768 data bytes"), "{stderr}");
}

#[test]
fn compare_of_an_exact_conversion_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    // torchvision → timm: same padding and epsilon, other names: equal.
    let exact = dir.path().join("exact.safetensors");
    effnet()
        .args([
            "convert",
            fixture("torch/torchvision-tiny.pth").to_str().unwrap(),
        ])
        .args(["--naming", "timm", "-q", "-o"])
        .arg(&exact)
        .assert()
        .success();
    let run = effnet()
        .args([
            "compare",
            fixture("torch/torchvision-tiny.pth").to_str().unwrap(),
        ])
        .arg(&exact)
        .args(["--seed", "3", "--resolution", "57", "--format", "json"])
        .assert()
        .code(0);
    let doc: Value = serde_json::from_slice(&run.get_output().stdout).unwrap();
    assert_eq!(doc["schema"], "effnet.compare/1");
    assert_eq!(doc["equal"], true);
    assert_eq!(doc["first_differing_stage"], Value::Null);
    assert_eq!(doc["tolerance"], 1e-4);
    assert_eq!(doc["stages"].as_array().unwrap().len(), 9);
    assert!(doc["output"]["relative_diff"].as_f64().unwrap() <= 1e-6);
}

#[test]
fn compare_of_a_padding_change_exits_1_at_stage_1() {
    let dir = tempfile::tempdir().unwrap();
    // timm-tf (TF "same") → timm (symmetric), allowed: the stem's stride-2 conv differs.
    let changed = dir.path().join("timm.safetensors");
    effnet()
        .args([
            "convert",
            fixture("torch/timm-tf-tiny.pth").to_str().unwrap(),
        ])
        .args(["--source-naming", "timm-tf", "--naming", "timm"])
        .args(["--allow-padding-change", "-q", "-o"])
        .arg(&changed)
        .assert()
        .success();
    let run = effnet()
        .args([
            "compare",
            fixture("torch/timm-tf-tiny.pth").to_str().unwrap(),
        ])
        .arg(&changed)
        .args([
            "--naming-a",
            "timm-tf",
            "--resolution",
            "64",
            "--format",
            "json",
        ])
        .assert()
        .code(1);
    let doc: Value = serde_json::from_slice(&run.get_output().stdout).unwrap();
    assert_eq!(doc["equal"], false);
    assert_eq!(doc["first_differing_stage"], 1);
    assert_eq!(doc["stages"][0]["stage"], 1);
    assert_eq!(doc["stages"][0]["within_tolerance"], false);
    // The table says so too.
    let run = effnet()
        .args([
            "compare",
            fixture("torch/timm-tf-tiny.pth").to_str().unwrap(),
        ])
        .arg(&changed)
        .args(["--naming-a", "timm-tf", "--resolution", "64"])
        .assert()
        .code(1);
    let text = String::from_utf8_lossy(&run.get_output().stdout).into_owned();
    assert!(text.contains("first differing stage: 1"), "{text}");
}

#[test]
fn compare_keras_with_its_own_tf_checkpoint_and_savedmodel() {
    // Same weights in three containers: equal at every stage.
    for other in ["tf/keras-tiny-ckpt", "tf/keras-tiny-savedmodel"] {
        effnet()
            .args(["compare", fixture("keras/keras-tiny.h5").to_str().unwrap()])
            .arg(fixture(other))
            .args(["--tolerance", "1e-6"])
            .assert()
            .code(0);
    }
}

#[test]
fn compare_exit_2_when_unreadable_or_incomparable() {
    effnet()
        .args([
            "compare",
            fixture("torch/torchvision-tiny.pth").to_str().unwrap(),
        ])
        .arg(fixture("hostile/random.bin"))
        .assert()
        .code(2);
    // 10 classes against a Keras model of another activation: comparable (same shapes) and
    // different; a model with another output shape is not comparable.
    effnet()
        .args(["compare", fixture("keras/keras-tiny.h5").to_str().unwrap()])
        .arg(fixture("tf/keras-tiny-relu.h5"))
        .assert()
        .code(1);
}

/// `convert --check`: an exact conversion lands with a "checked" line; a padding change is
/// refused with exit 1, the per-stage table (first difference at stage 1) and nothing written,
/// an existing output kept as it was.
#[test]
fn convert_check_lets_exact_conversions_through_and_stops_a_padding_change() {
    let dir = tempfile::tempdir().unwrap();
    for (input, out, extra) in [
        ("torch/torchvision-tiny.pth", "tv.safetensors", &[][..]),
        ("keras/keras-tiny.h5", "k.safetensors", &[][..]),
        ("keras/keras-tiny.h5", "k.onnx", &[][..]),
        ("torch/lukemelas-tiny.pth", "l.onnx", &["--fold-bn"][..]),
        (
            "torch/torchvision-tiny.pth",
            "tv16.onnx",
            &["--dtype", "f16"][..],
        ),
    ] {
        let out = dir.path().join(out);
        let assert = effnet()
            .arg("convert")
            .arg(fixture(input))
            .arg("-o")
            .arg(&out)
            .arg("--check")
            .args(extra)
            .assert()
            .success();
        let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
        assert!(stdout.contains("checked: source and output"), "{stdout}");
        assert!(out.is_file());
    }
    let out = dir.path().join("padding.safetensors");
    std::fs::write(&out, b"the old output").unwrap();
    let assert = effnet()
        .arg("convert")
        .arg(fixture("torch/timm-tf-tiny.pth"))
        .args(["--source-naming", "timm-tf", "--naming", "torchvision"])
        .arg("--allow-padding-change")
        .arg("-o")
        .arg(&out)
        .args(["--check", "--force"])
        .assert()
        .code(1);
    let output = assert.get_output();
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert!(stdout.contains("first differing stage: 1"), "{stdout}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(!stderr.contains("effnet-tmp"), "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), b"the old output");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "no temporary file left: {names:?}");
}

/// A Keras model and its conversion to a PyTorch scheme compare equal on the same raw input:
/// the conversion records the preprocessing the Keras model applied inside itself.
#[test]
fn compare_feeds_a_keras_conversion_as_its_source_was_fed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.safetensors");
    effnet()
        .arg("convert")
        .arg(fixture("keras/keras-tiny.h5"))
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    effnet()
        .arg("compare")
        .arg(fixture("keras/keras-tiny.h5"))
        .arg(&out)
        .assert()
        .success();
}
