//! `effnet run` and `compare` on hostile inputs beside a valid model.

use super::{file, fixture, listing, refused, run_limited, scratch};

#[test]
fn a_fifo_named_png_is_refused_without_blocking() {
    let dir = scratch();
    let path = dir.path().join("cat.png");
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let model = fixture("keras/keras-tiny.h5");
    let line = refused(
        &["run", model.to_str().unwrap(), path.to_str().unwrap()],
        &path,
    );
    assert!(line.contains("not a regular file"), "{line}");
}

#[test]
fn an_input_too_large_to_hold_is_refused_not_an_abort() {
    let model = fixture("keras/keras-tiny.h5");
    let model = model.to_str().unwrap();
    // 3 × 65536² seeded pixels: 51 GB, asked for before anything runs.
    let outcome = run_limited(&["compare", model, model, "--resolution", "65536"]);
    assert_eq!(outcome.code, Some(2), "{outcome:?}");
    assert!(
        outcome.stderr.contains("does not fit in memory"),
        "{}",
        outcome.stderr
    );
    // convert --check at that size: refused, and nothing written.
    let dir = scratch();
    let out = dir.path().join("out.onnx");
    let outcome = run_limited(&[
        "convert",
        model,
        "-o",
        out.to_str().unwrap(),
        "--check",
        "--resolution",
        "65536",
    ]);
    assert_eq!(outcome.code, Some(2), "{outcome:?}");
    assert!(
        outcome.stderr.contains("does not fit in memory"),
        "{}",
        outcome.stderr
    );
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[test]
fn run_never_writes_a_file_called_dash() {
    let dir = scratch();
    let model = fixture("keras/keras-tiny.h5");
    // A valid [1, 3, 32, 32] float32 input: without the refusal, the run succeeds and writes.
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 32, 32), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let padded = format!("{header:<117}\n");
    npy.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    npy.extend_from_slice(padded.as_bytes());
    npy.extend_from_slice(&[0u8; 3 * 32 * 32 * 4]);
    let inputs = scratch();
    let x = file(inputs.path(), "x.npy", &npy);
    let outcome = std::process::Command::new(assert_cmd::cargo::cargo_bin("effnet"))
        .current_dir(dir.path())
        .args(["run", model.to_str().unwrap(), "--input"])
        .arg(&x)
        .args(["-o", "-"])
        .output()
        .unwrap();
    assert_eq!(outcome.status.code(), Some(2), "{outcome:?}");
    let stderr = String::from_utf8_lossy(&outcome.stderr);
    assert!(stderr.contains("-o -"), "{stderr}");
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

/// A copy of a safetensors fixture with `extra` added to its `__metadata__`.
fn with_metadata(dir: &std::path::Path, name: &str, extra: &[(&str, &str)]) -> std::path::PathBuf {
    let bytes = std::fs::read(fixture("torch/torchvision-tiny.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta = header
        .as_object_mut()
        .unwrap()
        .entry("__metadata__")
        .or_insert_with(|| serde_json::json!({}));
    for (k, v) in extra {
        meta[*k] = serde_json::Value::String((*v).to_owned());
    }
    let mut text = serde_json::to_vec(&header).unwrap();
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    file(dir, name, &out)
}

#[test]
fn metadata_printed_on_standard_output_is_escaped() {
    let dir = scratch();
    let changes =
        r#"[{"kind": "padding", "flag": "--x", "message": "ok\n\u001b[32mforged: conforms"}]"#;
    let path = with_metadata(
        dir.path(),
        "forged.safetensors",
        &[
            ("note\u{1b}[31m", "x\nerror: forged\u{1b}[32m"),
            ("effnet.changes", changes),
        ],
    );
    for command in ["inspect", "audit"] {
        let outcome = run_limited(&[command, path.to_str().unwrap()]);
        assert!(matches!(outcome.code, Some(0 | 1)), "{outcome:?}");
        for stream in [&outcome.stdout, &outcome.stderr] {
            assert!(!stream.contains('\u{1b}'), "{command}: {stream}");
            assert!(
                !stream
                    .lines()
                    .any(|l| l.trim_start().starts_with("error: forged")),
                "{command}: {stream}"
            );
        }
    }
}
