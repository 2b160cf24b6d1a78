//! Output paths that must never damage the input or another file.

use std::path::{Path, PathBuf};

use super::{fixture, listing, run_limited, scratch};

/// A copy of the torchvision fixture in `dir`.
fn input_in(dir: &Path) -> PathBuf {
    let input = dir.join("model.pth");
    std::fs::copy(fixture("torch/torchvision-tiny.pth"), &input).unwrap();
    input
}

/// Runs `args`, expects exit 2 with one error line containing `needle`, and no temporary file.
fn refused_with(args: &[&str], needle: &str, dir: &Path) {
    let before = listing(dir);
    let outcome = run_limited(args);
    assert_eq!(outcome.code, Some(2), "effnet {args:?}: {outcome:?}");
    let errors: Vec<&str> = outcome
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", outcome.stderr);
    assert!(errors[0].contains(needle), "{needle:?} in {}", errors[0]);
    assert!(!outcome.stderr.contains("effnet-tmp"), "{}", outcome.stderr);
    assert_eq!(listing(dir), before, "nothing written");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_input_by_a_hard_link_or_symlink_is_refused_even_with_force() {
    let dir = scratch();
    let input = input_in(dir.path());
    let original = std::fs::read(&input).unwrap();
    let hard = dir.path().join("hard.onnx");
    std::fs::hard_link(&input, &hard).unwrap();
    let soft = dir.path().join("soft.onnx");
    std::os::unix::fs::symlink(&input, &soft).unwrap();
    for out in [&hard, &soft] {
        refused_with(
            &[
                "convert",
                s(&input),
                "-o",
                s(out),
                "--to",
                "onnx",
                "--force",
            ],
            "is the input",
            dir.path(),
        );
    }
    assert_eq!(std::fs::read(&input).unwrap(), original);
}

#[test]
fn side_outputs_cannot_overwrite_the_input() {
    let dir = scratch();
    let input = input_in(dir.path());
    let original = std::fs::read(&input).unwrap();
    refused_with(
        &["inspect", s(&input), "--dot", s(&input), "--force"],
        "is the input",
        dir.path(),
    );
    refused_with(
        &[
            "cost",
            s(&input),
            "--resolution",
            "64",
            "--svg",
            s(&input),
            "--force",
        ],
        "is the input",
        dir.path(),
    );
    assert_eq!(std::fs::read(&input).unwrap(), original);
    // Nor the `.index` of an input checkpoint.
    let ckpt = dir.path().join("ckpt");
    std::fs::create_dir(&ckpt).unwrap();
    for entry in std::fs::read_dir(fixture("tf/keras-tiny-ckpt")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), ckpt.join(entry.file_name())).unwrap();
    }
    let index = ckpt.join("ckpt.index");
    let before = std::fs::read(&index).unwrap();
    for args in [
        vec!["inspect", s(&ckpt), "--dot", s(&index), "--force"],
        vec![
            "cost",
            s(&ckpt),
            "--resolution",
            "64",
            "--svg",
            s(&index),
            "--force",
        ],
    ] {
        let outcome = run_limited(&args);
        assert_eq!(outcome.code, Some(2), "{args:?}: {outcome:?}");
    }
    assert_eq!(std::fs::read(&index).unwrap(), before);
}

#[test]
fn fifos_and_devices_are_not_outputs() {
    let dir = scratch();
    let input = input_in(dir.path());
    let fifo = dir.path().join("out.onnx");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    refused_with(
        &["convert", s(&input), "-o", s(&fifo), "--force"],
        "FIFO",
        dir.path(),
    );
    let outcome = run_limited(&[
        "convert",
        s(&input),
        "-o",
        "/dev/null",
        "--to",
        "onnx",
        "--force",
    ]);
    assert_eq!(outcome.code, Some(2), "{outcome:?}");
    assert!(
        outcome.stderr.contains("character device"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn a_symlink_at_the_output_is_replaced_not_followed() {
    let dir = scratch();
    let input = input_in(dir.path());
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, b"keep me").unwrap();
    let out = dir.path().join("out.safetensors");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    let outcome = run_limited(&["convert", s(&input), "-o", s(&out), "--force"]);
    assert_eq!(outcome.code, Some(0), "{outcome:?}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert!(std::fs::symlink_metadata(&out).unwrap().is_file());
}

#[test]
fn a_missing_output_folder_is_named() {
    let dir = scratch();
    let input = input_in(dir.path());
    let out = dir.path().join("no-such-folder/out.onnx");
    refused_with(
        &["convert", s(&input), "-o", s(&out)],
        "no-such-folder",
        dir.path(),
    );
    refused_with(
        &["cost", "--variant", "b0", "--svg", s(&out)],
        "no-such-folder",
        dir.path(),
    );
}

#[test]
fn dash_is_standard_output_for_side_outputs() {
    let dir = scratch();
    let input = input_in(dir.path());
    let outcome = run_limited(&["cost", "--variant", "b0", "--svg", "-"]);
    assert_eq!(outcome.code, Some(0), "{outcome:?}");
    assert!(
        outcome.stdout.trim_start().starts_with("<svg"),
        "{}",
        &outcome.stdout[..80]
    );
    let outcome = run_limited(&["inspect", s(&input), "--dot", "-"]);
    assert_eq!(outcome.code, Some(0), "{outcome:?}");
    assert!(
        outcome.stdout.starts_with("digraph"),
        "{}",
        &outcome.stdout[..40]
    );
    assert!(!Path::new("-").exists());
}
