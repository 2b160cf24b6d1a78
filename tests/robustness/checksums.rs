//! Checksums a file records over its weights: `inspect`, `cost` and `audit` read no weight and
//! leave them (`--verify-checksums` compares them), every command that reads weights compares
//! them all, and a value import itself reads is compared before it is read.

use std::path::{Path, PathBuf};

use crate::{file, fixture, listing, refused, run_limited, scratch};

/// Flips one bit at `at` of `path`.
fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

/// A copy of the folder `from` (and its subfolders) inside `to`.
fn copy_dir(from: &Path, to: &Path) -> PathBuf {
    let dir = to.join(from.file_name().unwrap());
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dir);
        } else {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// The file offset of tensor `name`'s stored bytes (in its data shard, for a checkpoint).
fn offset_of(path: &Path, name: &str) -> usize {
    let read = effnet_import::read_tensors(path).unwrap();
    let tensor = read
        .checkpoint
        .get(name)
        .unwrap_or_else(|| panic!("{name} in {}", path.display()));
    tensor.stored_bytes().unwrap().offset()
}

/// Reports succeed, `--verify-checksums` and every command that reads weights refuse, naming
/// `what` (the checksum) and nothing is written.
fn deferred_then_refused(path: &Path, what: &str) {
    let p = path.to_str().unwrap();
    for args in [
        vec!["inspect", p],
        vec!["cost", p, "--resolution", "64"],
        vec!["audit", p, "--spec", "auto"],
    ] {
        let outcome = run_limited(&args);
        assert_eq!(outcome.code, Some(0), "effnet {args:?}: {outcome:?}");
    }
    let line = refused(&["inspect", p, "--verify-checksums"], path);
    assert!(line.contains(what), "{line}");
    let line = refused(&["audit", p, "--spec", "auto", "--verify-checksums"], path);
    assert!(line.contains(what), "{line}");
    let out = scratch();
    let before = listing(out.path());
    for target in ["out.safetensors", "out.onnx"] {
        let o = out.path().join(target);
        let line = refused(&["convert", p, "-o", o.to_str().unwrap()], path);
        assert!(line.contains(what), "{line}");
    }
    let line = refused(&["run", p, "--input", "random"], path);
    assert!(line.contains(what), "{line}");
    assert_eq!(listing(out.path()), before, "nothing written");
}

/// A copy of the tiny torchvision `.pth` in `dir` with one bit flipped inside its largest
/// storage (its CRC-32 then fails).
fn damaged_pth(dir: &Path) -> PathBuf {
    let original = std::fs::read(fixture("torch/torchvision-tiny.pth")).unwrap();
    let members = crate::zip::stored_members(&original);
    let (_, data) = members
        .iter()
        .filter(|(name, _)| name.contains("/data/"))
        .max_by_key(|(_, data)| data.len())
        .unwrap();
    let at = original
        .windows(64)
        .position(|w| w == &data[..64])
        .expect("the storage's bytes in the archive")
        + data.len() / 2;
    let path = file(dir, "damaged.pth", &original);
    flip(&path, at);
    path
}

/// A copy of the TF fixture folder `name` in `dir` with one bit flipped in `tensor`'s bytes in
/// the data shard `shard`.
fn damaged_tf(dir: &Path, name: &str, shard: &str, tensor: &str) -> PathBuf {
    let copy = copy_dir(&fixture(name), dir);
    flip(&copy.join(shard), offset_of(&copy, tensor) + 2);
    copy
}

#[test]
fn a_damaged_pytorch_storage_fails_where_weights_are_read() {
    let dir = scratch();
    deferred_then_refused(&damaged_pth(dir.path()), "CRC-32");
}

#[test]
fn a_damaged_checkpoint_tensor_fails_where_weights_are_read() {
    let dir = scratch();
    let shard = "ckpt.data-00000-of-00001";
    let ckpt = damaged_tf(dir.path(), "tf/keras-tiny-ckpt", shard, "stem_conv/kernel");
    deferred_then_refused(&ckpt, "crc32c");
}

#[test]
fn a_damaged_saved_model_variable_fails_where_weights_are_read() {
    let dir = scratch();
    let shard = "variables/variables.data-00000-of-00001";
    let saved = damaged_tf(
        dir.path(),
        "tf/keras-tiny-savedmodel",
        shard,
        "stem_conv/kernel",
    );
    deferred_then_refused(&saved, "crc32c");
}

#[test]
fn a_value_import_reads_is_compared_before_it_is_read() {
    // The Keras Normalization variance tells the variance fix apart: even `inspect` compares
    // its crc32c.
    let dir = scratch();
    let shard = "ckpt.data-00000-of-00001";
    let ckpt = damaged_tf(
        dir.path(),
        "tf/keras-tiny-ckpt",
        shard,
        "normalization/variance",
    );
    let p = ckpt.to_str().unwrap();
    for args in [vec!["inspect", p], vec!["audit", p, "--spec", "auto"]] {
        let line = refused(&args, &ckpt);
        assert!(
            line.contains("crc32c") && line.contains("variance"),
            "{line}"
        );
    }
}

#[test]
fn an_exporter_compares_checksums_a_deferred_open_left() {
    let dir = scratch();
    let path = damaged_pth(dir.path());
    let options = effnet_import::ImportOptions {
        checksums: effnet_ir::ChecksumPolicy::Deferred,
        ..Default::default()
    };
    let model = effnet_import::open(&path, &options).expect("no weight read at open");
    assert!(model.checksums_pending());
    let out = dir.path().join("out.safetensors");
    let options = effnet_convert::SafetensorsOptions {
        naming: None,
        dtype: effnet_ir::DType::F32,
        keep_bn_f32: false,
        clamp: false,
        allow: Default::default(),
        force: false,
        verify: false,
        check: None,
    };
    let err = effnet_convert::to_safetensors(&model, &out, &options, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("CRC-32"), "{err}");
    assert!(!out.exists());
}
