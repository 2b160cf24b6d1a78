//! Hostile Keras files: HDF5 and `.keras` archives.
//!
//! The `.keras` cases are committed under `fixtures/hostile/` (written by
//! `fixtures/generate/hostile_keras_fixtures.py` from the real `fixtures/keras/keras3-tiny.keras`);
//! the others are made here at test time.

use super::{file, fixture, listing, refused, run_limited, scratch};

/// `inspect` and `convert -o` must both refuse `path`, writing nothing; returns the error line.
fn refused_by_inspect_and_convert(path: &std::path::Path) -> String {
    let line = refused(&["inspect", path.to_str().unwrap()], path);
    let out = scratch();
    let onnx = out.path().join("out.onnx");
    refused(
        &[
            "convert",
            path.to_str().unwrap(),
            "-o",
            onnx.to_str().unwrap(),
        ],
        path,
    );
    assert!(listing(out.path()).is_empty(), "nothing written");
    line
}

#[test]
fn a_keras_config_inflating_to_250_mb_is_refused_before_inflating() {
    // 243 KB archive, config.json of 250 MB of `[0,0,…]`: serde asked for 9.6 GB before.
    let path = fixture("hostile/keras3-config-bomb.keras");
    let line = refused(&["inspect", path.to_str().unwrap()], &path);
    assert!(line.contains("config.json"), "{line}");
}

#[test]
fn a_keras_member_leading_outside_the_archive_is_refused() {
    let path = fixture("hostile/keras3-dotdot-member.keras");
    let line = refused(&["inspect", path.to_str().unwrap()], &path);
    assert!(line.contains("outside the archive"), "{line}");
}

#[test]
fn a_keras_member_failing_its_crc_is_refused() {
    let mut bytes = std::fs::read(fixture("keras/keras3-tiny.keras")).unwrap();
    // config.json is stored: change one character of a layer name inside it.
    let at = bytes
        .windows(b"\"stem_activation\"".len())
        .position(|w| w == b"\"stem_activation\"")
        .expect("a layer name in the stored config");
    bytes[at + 1] = b'S';
    let dir = scratch();
    let path = file(dir.path(), "crc.keras", &bytes);
    let line = refused(&["inspect", path.to_str().unwrap()], &path);
    assert!(line.contains("CRC-32"), "{line}");
}

#[test]
fn an_extra_rescaling_inside_the_network_is_refused_and_its_forged_name_escaped() {
    // Properly wired between stem_conv and stem_bn, it conformed and was dropped on export
    // (exit 0). Its name carries a newline, an ANSI escape and a forged `error:` line.
    let path = fixture("hostile/keras3-rescaling-inside.keras");
    let line = refused_by_inspect_and_convert(&path);
    assert!(line.contains("rescaling_1"), "{line}");
    assert!(line.contains("inside the network"), "{line}");
    assert!(line.contains("\\n"), "escaped newline: {line}");
    assert!(!line.contains('\u{1b}'), "escaped ANSI: {line}");
}

#[test]
fn a_stride_of_2_64_minus_1_is_refused() {
    // It was exported as −1 with exit 0.
    let path = fixture("hostile/keras3-stride-max.keras");
    let line = refused_by_inspect_and_convert(&path);
    assert!(line.contains("block1a_dwconv"), "{line}");
    assert!(line.contains("strides"), "{line}");
}

#[test]
fn a_fifo_named_keras_is_refused_without_blocking() {
    let dir = scratch();
    for name in ["model.keras", "model.h5"] {
        let path = dir.path().join(name);
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
        refused(&["inspect", path.to_str().unwrap()], &path);
    }
}

#[test]
fn an_h5_that_is_a_device_is_refused() {
    let dir = scratch();
    let path = dir.path().join("model.h5");
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    let outcome = run_limited(&["inspect", path.to_str().unwrap()]);
    assert_eq!(outcome.code, Some(2), "{outcome:?}");
    assert!(outcome.elapsed < super::LIMIT, "{outcome:?}");
}
