//! Hostile Keras files: HDF5 and `.keras` archives.
//!
//! `keras3-config-bomb.keras` and `keras3-dotdot-member.keras` are committed under
//! `fixtures/hostile/` (written by `fixtures/generate/hostile_keras_fixtures.py`); the others are
//! made here at test time, most as edits of the real `fixtures/keras/keras3-tiny.keras` and
//! `fixtures/keras/keras-tiny.h5`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::zip::{Entry, deflated_literals, entry, stored_members, zip};
use super::{file, fixture, listing, refused, refused_by_inspect_and_cost, run_limited, scratch};

/// The members of `fixtures/keras/keras3-tiny.keras` (all stored), in order.
fn keras3_tiny() -> Vec<(String, Vec<u8>)> {
    stored_members(&std::fs::read(fixture("keras/keras3-tiny.keras")).unwrap())
}

/// `keras3-tiny.keras` with its `config.json` replaced by `edit(config)`, every member deflated
/// (as Python's `zipfile` wrote these edits).
fn keras3_edited(dir: &Path, name: &str, edit: impl Fn(&mut Value)) -> PathBuf {
    let members: Vec<Entry> = keras3_tiny()
        .into_iter()
        .map(|(n, data)| {
            if n == "config.json" {
                let mut config: Value = serde_json::from_slice(&data).unwrap();
                edit(&mut config);
                deflated_literals(&n, &serde_json::to_vec(&config).unwrap())
            } else {
                deflated_literals(&n, &data)
            }
        })
        .collect();
    file(dir, name, &zip(&members))
}

/// The layer list of a `.keras` config.
fn layers(config: &mut Value) -> &mut Vec<Value> {
    config["config"]["layers"].as_array_mut().unwrap()
}

/// A name that, printed raw, would forge an `error:` line.
const FORGED: &str = "rescaling_1\n\u{1b}[31merror: forged line";

/// `keras3-tiny.keras` with an extra, properly wired `Rescaling(scale=1000)` between the stem
/// conv and its BatchNorm, named [`FORGED`].
fn rescaling_inside(dir: &Path) -> PathBuf {
    keras3_edited(dir, "keras3-rescaling-inside.keras", |config| {
        let ls = layers(config);
        let i = ls
            .iter()
            .position(|l| l["config"]["name"] == "stem_conv")
            .unwrap();
        let history = |n: &str| {
            json!({"class_name": "__keras_tensor__", "config": {"shape": [null, 32, 32, 8],
                   "dtype": "float32", "keras_history": [n, 0, 0]}})
        };
        let extra = json!({
            "module": "keras.layers",
            "class_name": "Rescaling",
            "config": {"name": FORGED, "trainable": true, "dtype": "float32", "scale": 1000.0,
                       "offset": 0.0},
            "registered_name": null,
            "name": FORGED,
            "inbound_nodes": [{"args": [history("stem_conv")], "kwargs": {}}],
        });
        ls.insert(i + 1, extra);
        ls[i + 2]["inbound_nodes"] = json!([{"args": [history(FORGED)], "kwargs": {}}]);
        assert_eq!(ls[i + 2]["config"]["name"], "stem_bn");
    })
}

/// `keras3-tiny.keras` with a depthwise stride of 2^64 − 1 and the input size left open (as
/// `include_top=False` models have it), so that no size walk catches it.
fn stride_max(dir: &Path) -> PathBuf {
    keras3_edited(dir, "keras3-stride-max.keras", |config| {
        let ls = layers(config);
        ls[0]["config"]["batch_shape"] = json!([null, null, null, 3]);
        let dw = ls
            .iter_mut()
            .find(|l| l["config"]["name"] == "block1a_dwconv")
            .unwrap();
        dw["config"]["strides"] = json!([u64::MAX, u64::MAX]);
    })
}

/// `keras3-tiny.keras` (stored) with its members passed through `edit` (`None` drops one).
fn keras3_stored(
    dir: &Path,
    name: &str,
    edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>,
) -> PathBuf {
    let members: Vec<Entry> = keras3_tiny()
        .into_iter()
        .filter_map(|(n, data)| edit(&n, data).map(|d| entry(&n, &d)))
        .collect();
    file(dir, name, &zip(&members))
}

/// Edits of committed Keras files that `fixtures/hostile/` held until they were made here: each
/// meets the contract `tests/cli.rs` checks on that folder.
#[test]
fn edited_keras_files_are_refused_without_side_effects() {
    let dir = scratch();
    let mut paths = vec![rescaling_inside(dir.path()), stride_max(dir.path())];
    // A .keras archive without its weights.
    paths.push(keras3_stored(
        dir.path(),
        "keras3-no-weights.keras",
        |n, d| (n != "model.weights.h5").then_some(d),
    ));
    // A .keras whose config has a layer that runs code (a Lambda where a Dropout was).
    paths.push(keras3_stored(
        dir.path(),
        "keras3-lambda-layer.keras",
        |n, d| {
            if n != "config.json" {
                return Some(d);
            }
            let (from, to) = (
                &b"\"class_name\": \"Dropout\""[..],
                &b"\"class_name\": \"Lambda\""[..],
            );
            let at = d
                .windows(from.len())
                .position(|w| w == from)
                .expect("a Dropout layer");
            Some([&d[..at], to, &d[at + from.len()..]].concat())
        },
    ));
    let h5 = std::fs::read(fixture("keras/keras-tiny.h5")).unwrap();
    // An HDF5 file whose superblock puts the root group beyond the end of the file.
    assert_eq!(&h5[..8], b"\x89HDF\r\n\x1a\n");
    // Superblock v0/v1: the root group symbol table entry's object header address follows the
    // four 8-byte addresses at offset 24 (v0); v2/v3 keep the root address at offset 36.
    let at = match h5[8] {
        0 => 24 + 32 + 8,
        1 => 24 + 4 + 32 + 8,
        _ => 36,
    };
    let mut root = h5.clone();
    root[at..at + 8].copy_from_slice(&(h5.len() as u64 * 16).to_le_bytes());
    paths.push(file(dir.path(), "h5-root-out-of-range.h5", &root));
    // A Keras HDF5 file cut in half.
    paths.push(file(dir.path(), "truncated-keras.h5", &h5[..h5.len() / 2]));
    for path in &paths {
        refused_by_inspect_and_cost(path);
    }
}

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
    let dir = scratch();
    let path = rescaling_inside(dir.path());
    let line = refused_by_inspect_and_convert(&path);
    assert!(line.contains("rescaling_1"), "{line}");
    assert!(line.contains("inside the network"), "{line}");
    assert!(line.contains("\\n"), "escaped newline: {line}");
    assert!(!line.contains('\u{1b}'), "escaped ANSI: {line}");
}

#[test]
fn a_stride_of_2_64_minus_1_is_refused() {
    // It was exported as −1 with exit 0.
    let dir = scratch();
    let path = stride_max(dir.path());
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
