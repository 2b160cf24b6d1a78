//! The path forms of a checkpoint: a folder (through its `checkpoint` state file), a prefix,
//! its `.index` file or one of its data shards.

use std::path::{Path, PathBuf};

use crate::{MAX_STATE_FILE_BYTES, TfError};

/// The prefix a user's PATH denotes: a checkpoint directory (through its `checkpoint` state
/// file, or its only `.index`), a prefix, an `.index` file or a data shard.
pub fn resolve_prefix(path: &Path) -> Result<PathBuf, TfError> {
    let not_found = |message: String| TfError::NotFound {
        path: path.to_owned(),
        message,
    };
    if path.is_dir() {
        let state = path.join("checkpoint");
        if state.exists() {
            // Opened as a regular file whatever it is (a FIFO or device is refused, not read).
            let bytes =
                effnet_io::input::read_regular(&state, MAX_STATE_FILE_BYTES).map_err(|reason| {
                    TfError::Io {
                        path: state.clone(),
                        reason,
                    }
                })?;
            let text = String::from_utf8_lossy(&bytes);
            let latest = state_file_path(&text).ok_or_else(|| TfError::Format {
                path: state.clone(),
                message: "no `model_checkpoint_path` in the checkpoint state file".into(),
            })?;
            let prefix =
                state_file_prefix(path, Path::new(&latest)).map_err(|message| TfError::Format {
                    path: state.clone(),
                    message,
                })?;
            let latest = Path::new(&latest);
            if !index_of(&prefix).exists() {
                return Err(not_found(format!(
                    "the checkpoint state file names `{}`, but `{}` does not exist",
                    latest.display(),
                    index_of(&prefix).display()
                )));
            }
            return Ok(prefix);
        }
        let mut indexes: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|reason| TfError::Io {
                path: path.to_owned(),
                reason,
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "index"))
            .collect();
        indexes.sort();
        return match indexes.as_slice() {
            [one] => Ok(one.with_extension("")),
            [] => Err(not_found(
                "a folder with neither a `checkpoint` state file nor an `.index` file".into(),
            )),
            many => Err(not_found(format!(
                "a folder with {} checkpoints and no `checkpoint` state file; name one: {}",
                many.len(),
                many.iter()
                    .map(|p| p.with_extension("").display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if let Some(stem) = name.strip_suffix(".index") {
        return Ok(path.with_file_name(stem));
    }
    if let Some((stem, _)) = name.rsplit_once(".data-") {
        return Ok(path.with_file_name(stem));
    }
    if index_of(path).exists() {
        return Ok(path.to_owned());
    }
    Err(not_found(
        "not a checkpoint: no such file, and no `.index` beside this prefix".into(),
    ))
}

/// The prefix a state file's `model_checkpoint_path` denotes inside `folder`: a relative path
/// going down only, or an absolute one naming a checkpoint in the folder itself (or, from
/// another machine, one whose file name is in the folder). A path leading out of the folder is
/// refused: a state file cannot make effnet read files the user did not name.
fn state_file_prefix(folder: &Path, latest: &Path) -> Result<PathBuf, String> {
    use std::path::Component;
    let outside = || {
        format!(
            "the checkpoint state file names `{}`, outside the folder; pass that checkpoint's path directly to read it",
            latest.display()
        )
    };
    if latest.is_absolute() {
        let name = latest.file_name().ok_or_else(outside)?;
        let in_folder = folder.join(name);
        let same_folder = latest
            .parent()
            .and_then(effnet_io::FileId::of_path)
            .is_some_and(|id| Some(id) == effnet_io::FileId::of_path(folder));
        if same_folder || index_of(&in_folder).exists() {
            return Ok(in_folder);
        }
        return Err(outside());
    }
    if latest
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && latest.file_name().is_some()
    {
        return Ok(folder.join(latest));
    }
    Err(outside())
}

/// The `.index` file of `prefix`.
pub(crate) fn index_of(prefix: &Path) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".index");
    PathBuf::from(s)
}

/// Data shard `shard` of `shards` beside `prefix`.
pub(crate) fn shard_of(prefix: &Path, shard: usize, shards: usize) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!(".data-{shard:05}-of-{shards:05}"));
    PathBuf::from(s)
}

/// `model_checkpoint_path: "…"` of a `checkpoint` state file (a text-format proto).
fn state_file_path(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("model_checkpoint_path:"))?;
    let quoted = line.trim().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

/// The size of the data shards beside `prefix` (`prefix.data-*`, regular files only): with the
/// `.index`, the input size a checkpoint's budget derives from.
pub(crate) fn shard_bytes(prefix: &Path) -> u64 {
    let (Some(folder), Some(stem)) = (prefix.parent(), prefix.file_name()) else {
        return 0;
    };
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    let mut start = stem.to_owned();
    start.push(".data-");
    let start = start.as_encoded_bytes().to_vec();
    let Ok(listing) = std::fs::read_dir(folder) else {
        return 0;
    };
    listing
        .filter_map(Result::ok)
        .filter(|e| e.file_name().as_encoded_bytes().starts_with(&start))
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_paths_unquote() {
        assert_eq!(
            state_file_path(
                "model_checkpoint_path: \"ckpt-1\"\nall_model_checkpoint_paths: \"ckpt-1\"\n"
            ),
            Some("ckpt-1".into())
        );
        assert_eq!(
            state_file_path("model_checkpoint_path: \"/a/b \\\"c\\\"\""),
            Some("/a/b \"c\"".into())
        );
        assert_eq!(state_file_path("all_model_checkpoint_paths: \"x\""), None);
    }

    #[test]
    fn state_files_cannot_lead_out_of_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("ckpt");
        std::fs::create_dir(&folder).unwrap();
        let inside = |p: &str| state_file_prefix(&folder, Path::new(p));
        assert_eq!(inside("model.ckpt-5").unwrap(), folder.join("model.ckpt-5"));
        assert_eq!(inside("./sub/m").unwrap(), folder.join("./sub/m"));
        for outside in ["../other/m", "sub/../../m", "/elsewhere/m", ".."] {
            let err = inside(outside).unwrap_err();
            assert!(err.contains("outside the folder"), "{outside}: {err}");
        }
        // An absolute path naming the folder itself, or one from another machine whose file
        // name is in the folder, reads the folder's checkpoint.
        let own = folder.join("m");
        assert_eq!(inside(own.to_str().unwrap()).unwrap(), own);
        std::fs::write(folder.join("n.index"), b"").unwrap();
        assert_eq!(inside("/other/machine/n").unwrap(), folder.join("n"));
    }
}
