//! The TF `checkpoint` state file: the input is the state file of a checkpoint folder (with
//! `@F`, `@O` and `@B` standing for the folder's, a sibling folder's and their parent's
//! absolute paths, so inputs can name real places), resolved by `effnet_tf::resolve_prefix`.
//!
//! Invariant: whatever the file says, the prefix effnet resolves is inside the folder — a
//! state file naming a checkpoint elsewhere (`../`, absolute, through `.`/`..` tricks) is
//! refused, though `outside/ckpt.index` and `top.index` exist. An accepted prefix is then
//! read as a checkpoint.
#![no_main]

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

struct Tree {
    base: PathBuf,
    folder: PathBuf,
    outside: PathBuf,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let base = common::temp_path("state");
        let _ = std::fs::remove_dir_all(&base);
        let folder = base.join("folder");
        let outside = base.join("outside");
        let fixture = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/tf/keras-tiny-ckpt"
        ));
        for dir in [
            &folder,
            &outside,
            &folder.join("sub"),
            &base.join("folderx"),
        ] {
            std::fs::create_dir_all(dir).expect("tree");
        }
        for name in ["ckpt.index", "ckpt.data-00000-of-00001"] {
            std::fs::copy(fixture.join(name), folder.join(name)).expect("fixture");
            std::fs::copy(fixture.join(name), outside.join(name)).expect("fixture");
        }
        for file in [
            folder.join("sub/inner.index"),
            base.join("top.index"),
            base.join("folderx/ckpt.index"),
            outside.join("other.index"),
        ] {
            std::fs::write(file, b"").expect("tree");
        }
        Tree {
            folder: folder.canonicalize().expect("canonical"),
            outside: outside.canonicalize().expect("canonical"),
            base: base.canonicalize().expect("canonical"),
        }
    })
}

fn replace(data: &[u8], tree: &Tree) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let place = match (data[i], data.get(i + 1)) {
            (b'@', Some(b'F')) => Some(&tree.folder),
            (b'@', Some(b'O')) => Some(&tree.outside),
            (b'@', Some(b'B')) => Some(&tree.base),
            _ => None,
        };
        match place {
            Some(p) => {
                out.extend_from_slice(p.as_os_str().as_encoded_bytes());
                i += 2;
            }
            None => {
                out.push(data[i]);
                i += 1;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let tree = tree();
    let state = tree.folder.join("checkpoint");
    if std::fs::write(&state, replace(data, tree)).is_err() {
        return;
    }
    let Ok(prefix) = effnet_tf::resolve_prefix(&tree.folder) else {
        return;
    };
    let mut index = prefix.clone().into_os_string();
    index.push(".index");
    let index = Path::new(&index)
        .canonicalize()
        .unwrap_or_else(|e| panic!("resolved {} whose .index is missing: {e}", prefix.display()));
    assert!(
        index.starts_with(&tree.folder),
        "the state file led outside the folder: {} (from {:?})",
        index.display(),
        String::from_utf8_lossy(data)
    );
    let _ = effnet_tf::read(&tree.folder);
});
