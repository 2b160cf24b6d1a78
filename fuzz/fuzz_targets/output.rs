//! The output rules (`effnet_io::output`): a folder tree with an input file, an input folder
//! (a SavedModel), an input checkpoint prefix, a victim file that is no input, and whatever the
//! input plants (regular files, folders, symlinks to the inputs, the victim, folders, `/dev/null`
//! or nowhere, hard links, FIFOs); then `write_atomic` (or `check_output` alone) on an output
//! path built from components the input picks, with or without `--force`, with a write that
//! fails or that races another file into the output's place.
//!
//! Invariants: nothing but the output's own directory entry changes (no input or victim is
//! written, truncated or replaced; nothing is written through a symlink); no temporary file is
//! left; an accepted write leaves the new bytes in a regular file at the output; an output that
//! is an input by identity, lies in an input folder, or is a file of the input checkpoint is
//! refused, as is an existing output without `--force` or one that is not a regular file.
#![no_main]

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::Bytes;
use effnet_io::OutputError;
use libfuzzer_sys::fuzz_target;

const DIRS: [&str; 6] = ["", "in", "out", "in/saved", "in/saved/variables", "out/sub"];
const NAMES: [&str; 12] = [
    "out.onnx",
    "model.pth",
    "ckpt.index",
    "ckpt.data-00000-of-00001",
    "x",
    "link",
    "sub",
    "soft.pth",
    ".out.onnx.effnet-tmp",
    "victim",
    "v.index",
    "ckpt",
];
const COMPONENTS: [&str; 14] = [
    "in",
    "out",
    "saved",
    "variables",
    "..",
    ".",
    "link",
    "sub",
    "out.onnx",
    "model.pth",
    "ckpt.index",
    "x",
    "",
    "ckpt.data-00000-of-00001",
];

#[derive(Debug, PartialEq)]
enum Entry {
    File(Vec<u8>),
    Dir,
    Link(PathBuf),
    Other,
}

fn snapshot(root: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let Ok(dir) = std::fs::read_dir(root) else {
        return;
    };
    for e in dir.flatten() {
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let t = meta.file_type();
        if t.is_symlink() {
            out.insert(
                path.clone(),
                Entry::Link(std::fs::read_link(&path).unwrap_or_default()),
            );
        } else if t.is_dir() {
            out.insert(path.clone(), Entry::Dir);
            snapshot(&path, out);
        } else if t.is_file() {
            out.insert(
                path.clone(),
                Entry::File(std::fs::read(&path).unwrap_or_default()),
            );
        } else {
            out.insert(path.clone(), Entry::Other);
        }
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: a NUL-terminated path.
    unsafe {
        libc::mkfifo(c.as_ptr(), 0o600);
    }
}

/// Plants `kind` at `path`.
fn plant(root: &Path, path: &Path, kind: u8) {
    use std::os::unix::fs::symlink;
    let _ = match kind % 12 {
        // Never through what is there (a FIFO would block the open).
        0 => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| f.write_all(b"OLD")),
        1 => std::fs::create_dir(path),
        2 => symlink(root.join("in/model.pth"), path),
        3 => symlink(root.join("victim"), path),
        4 => symlink(root.join("in/saved"), path),
        5 => symlink(root.join("out"), path),
        6 => symlink(root.join("nowhere"), path),
        7 => symlink("/dev/null", path),
        8 => std::fs::hard_link(root.join("in/model.pth"), path),
        9 => std::fs::hard_link(root.join("in/ckpt.index"), path),
        10 => {
            mkfifo(path);
            Ok(())
        }
        _ => symlink(root.join("in/ckpt.index"), path),
    };
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fuzz_target!(|data: &[u8]| {
    let mut r = Bytes::new(data);
    let root = common::temp_path("out");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["in/saved/variables", "out/sub"] {
        if std::fs::create_dir_all(root.join(d)).is_err() {
            return;
        }
    }
    let root = root.canonicalize().expect("root");
    let setup = [
        ("in/model.pth", &b"INPUT"[..]),
        ("in/ckpt.index", b"INDEX"),
        ("in/ckpt.data-00000-of-00001", b"DATA"),
        ("in/saved/saved_model.pb", b"PB"),
        ("in/saved/variables/v.index", b"VAR"),
        ("victim", b"VICTIM"),
    ];
    for (name, bytes) in setup {
        std::fs::write(root.join(name), bytes).expect("setup");
    }
    let _ = std::os::unix::fs::symlink(root.join("in/model.pth"), root.join("in/soft.pth"));
    for _ in 0..r.u8() % 8 {
        let dir = DIRS[usize::from(r.u8()) % DIRS.len()];
        let name = NAMES[usize::from(r.u8()) % NAMES.len()];
        plant(&root, &root.join(dir).join(name), r.u8());
    }
    let mut out = root.clone();
    for _ in 0..1 + r.u8() % 5 {
        out.push(COMPONENTS[usize::from(r.u8()) % COMPONENTS.len()]);
    }
    let which = r.u8();
    let candidates = [
        root.join("in/model.pth"),
        root.join("in/saved"),
        root.join("in/ckpt"),
        root.join("in/soft.pth"),
        root.join("out/../in/model.pth"),
    ];
    let inputs: Vec<PathBuf> = candidates
        .iter()
        .enumerate()
        .filter(|(i, _)| which & (1 << i) != 0 || *i == 0)
        .map(|(_, p)| p.clone())
        .collect();
    let force = which & 0x40 != 0;
    let action = r.u8();

    // What the output's directory entry is: its folder resolved, and its name.
    let dest = out
        .file_name()
        .and_then(|name| Some(out.parent()?.canonicalize().ok()?.join(name)));
    if dest.as_ref().is_some_and(|d| !d.starts_with(&root)) {
        return; // `..` led out of the tree: not a place this target watches.
    }
    let before_out = std::fs::metadata(&out).ok();
    let out_folder_ok = out.parent().is_some_and(|p| p.is_dir());
    let mut before = BTreeMap::new();
    snapshot(&root, &mut before);

    let result: Result<(), OutputError> = if action & 1 == 1 {
        effnet_io::check_output(&out, &inputs, force)
    } else {
        effnet_io::write_atomic(&out, &inputs, force, |file| {
            let io = |source| OutputError::Io {
                path: "w".into(),
                source,
            };
            file.write_all(b"NEW").map_err(io)?;
            if action & 6 != 0 {
                // Another process puts something at the output meanwhile.
                plant(&root, &out, [0, 2, 10, 3][usize::from(action >> 1) & 3]);
            }
            if action & 8 == 8 {
                return Err(io(std::io::Error::other("disk full")));
            }
            Ok(())
        })
    };

    let mut after = BTreeMap::new();
    snapshot(&root, &mut after);
    for path in after.keys() {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        assert!(
            !(name.ends_with(".effnet-tmp") && name.starts_with('.') && !before.contains_key(path)),
            "a temporary file was left: {}",
            path.display()
        );
    }
    let raced = action & 1 == 0 && action & 6 != 0;
    for (path, entry) in &before {
        if Some(path) == dest.as_ref() {
            continue;
        }
        assert_eq!(
            after.get(path),
            Some(entry),
            "{} changed (output {})",
            path.display(),
            out.display()
        );
    }
    for path in after.keys() {
        assert!(
            before.contains_key(path) || Some(path) == dest.as_ref(),
            "{} appeared (output {})",
            path.display(),
            out.display()
        );
    }
    let written = action & 1 == 0 && result.is_ok();
    if written {
        let dest = dest.as_ref().expect("a written output has a place");
        assert_eq!(
            after.get(dest),
            Some(&Entry::File(b"NEW".to_vec())),
            "{}",
            out.display()
        );
    }
    if result.is_ok() {
        assert!(out_folder_ok);
        if let Some(meta) = &before_out {
            assert!(
                force && meta.is_file(),
                "an existing {} accepted without --force or not a file",
                out.display()
            );
            let id = (meta.dev(), meta.ino());
            assert!(
                !inputs.iter().any(|i| identity(i) == Some(id)),
                "{} is an input, accepted",
                out.display()
            );
        }
        let dest = dest.as_ref().expect("an accepted output has a place");
        assert!(
            !(inputs.contains(&candidates[1]) && dest.starts_with(root.join("in/saved"))),
            "{} inside the input folder accepted",
            out.display()
        );
        if inputs.contains(&candidates[2]) && dest.parent() == Some(&root.join("in")) {
            let name = dest.file_name().unwrap_or_default().to_string_lossy();
            assert!(
                !name.starts_with("ckpt."),
                "{} of the input checkpoint accepted",
                out.display()
            );
        }
        let _ = raced;
    }
});
