//! Writing outputs without damaging anything.
//!
//! Rules (docs/security.md): the output's folder must exist; an existing output must be a
//! regular file (never a FIFO, device or folder, `--force` or not) and is replaced only with
//! `--force`; an output that *is* an input (same device and inode: the same path, a hard link,
//! a symlink to it), lies inside an input folder, or is a file of an input checkpoint's prefix
//! is refused, `--force` or not. The bytes go to a temporary file created exclusively (`O_EXCL`,
//! random name, never through a symlink) in the output's folder, renamed into place only when
//! complete; a failure removes it. No message ever names the temporary file.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::input::{FileId, kind_of};

/// Why an output cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output exists and `--force` was not given.
    #[error("{} exists; pass --force to overwrite it", path.display())]
    Exists {
        /// The output.
        path: PathBuf,
    },
    /// The output is one of the inputs.
    #[error("{} is the input {} (the same file); write the output elsewhere", path.display(), input.display())]
    IsInput {
        /// The output.
        path: PathBuf,
        /// The input it is.
        input: PathBuf,
    },
    /// The output lies inside an input folder or is a file of an input checkpoint.
    #[error("{} would be written inside the input {}; write the output elsewhere", path.display(), input.display())]
    InsideInput {
        /// The output.
        path: PathBuf,
        /// The input folder or checkpoint prefix.
        input: PathBuf,
    },
    /// The output exists and is not a regular file.
    #[error("{} is {kind}; effnet writes only regular files", path.display())]
    NotRegular {
        /// The output.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The output's folder does not exist.
    #[error("cannot write {}: the folder {} does not exist", path.display(), folder.display())]
    NoFolder {
        /// The output.
        path: PathBuf,
        /// Its missing folder.
        folder: PathBuf,
    },
    /// Writing failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The output.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn folder_of(out: &Path) -> &Path {
    out.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Checks `out` against the rules above; `inputs` are the files, folders or checkpoint
/// prefixes the output was made from.
pub fn check_output(out: &Path, inputs: &[PathBuf], force: bool) -> Result<(), OutputError> {
    let folder = folder_of(out);
    let folder_meta = match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => m,
        _ => {
            return Err(OutputError::NoFolder {
                path: out.to_owned(),
                folder: folder.to_owned(),
            });
        }
    };
    let Some(name) = out.file_name() else {
        return Err(OutputError::NotRegular {
            path: out.to_owned(),
            kind: "a folder",
        });
    };
    let existing = std::fs::metadata(out).ok();
    if let Some(meta) = &existing {
        let id = FileId::of(meta);
        for input in inputs {
            if FileId::of_path(input) == Some(id) {
                return Err(OutputError::IsInput {
                    path: out.to_owned(),
                    input: input.clone(),
                });
            }
        }
        if !meta.is_file() {
            return Err(OutputError::NotRegular {
                path: out.to_owned(),
                kind: kind_of(meta),
            });
        }
    }
    let folder_id = FileId::of(&folder_meta);
    for input in inputs {
        let meta = std::fs::metadata(input);
        if let Ok(meta) = &meta {
            if meta.is_dir() && is_within(folder, FileId::of(meta)) {
                return Err(OutputError::InsideInput {
                    path: out.to_owned(),
                    input: input.clone(),
                });
            }
        }
        // A checkpoint prefix: `prefix.index`, `prefix.data-*` beside it — whatever is at the
        // prefix's own path (nothing, a file, a folder, a symlink to a device).
        if meta.is_ok() && !index_of(input).exists() {
            continue;
        }
        let (Some(stem), Some(prefix_folder)) = (
            input.file_name().and_then(|n| n.to_str()),
            FileId::of_path(folder_of(input)),
        ) else {
            continue;
        };
        let of_prefix = name
            .to_str()
            .and_then(|n| n.strip_prefix(stem))
            .is_some_and(|rest| rest.starts_with('.'));
        if prefix_folder == folder_id && of_prefix {
            return Err(OutputError::InsideInput {
                path: out.to_owned(),
                input: input.clone(),
            });
        }
    }
    if existing.is_some() && !force {
        return Err(OutputError::Exists {
            path: out.to_owned(),
        });
    }
    Ok(())
}

/// `prefix.index`, the file that makes `prefix` a TF checkpoint.
fn index_of(prefix: &Path) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".index");
    PathBuf::from(s)
}

/// Whether `folder` or one of its ancestors is the folder `target`.
fn is_within(folder: &Path, target: FileId) -> bool {
    let Ok(mut current) = std::fs::canonicalize(folder) else {
        return false;
    };
    loop {
        if FileId::of_path(&current) == Some(target) {
            return true;
        }
        if !current.pop() {
            return false;
        }
    }
}

/// Writes `out` by the rules above: `write` fills an exclusively created temporary file in the
/// output's folder, which is renamed into place when it returns `Ok`; on any failure the
/// temporary file is removed and an existing output is left as it was.
pub fn write_atomic<E: From<OutputError>>(
    out: &Path,
    inputs: &[PathBuf],
    force: bool,
    write: impl FnOnce(&mut File) -> Result<(), E>,
) -> Result<(), E> {
    write_atomic_checked(out, inputs, force, write, |_| Ok(()))
}

/// Like [`write_atomic`], with `check` run on the complete temporary file (its path keeps the
/// output's extension) before the rename: an error from it removes the file and leaves an
/// existing output as it was. Whatever `check` reports must name `out`, never the temporary
/// path.
pub fn write_atomic_checked<E: From<OutputError>>(
    out: &Path,
    inputs: &[PathBuf],
    force: bool,
    write: impl FnOnce(&mut File) -> Result<(), E>,
    check: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    check_output(out, inputs, force)?;
    let io_error = |source: io::Error| OutputError::Io {
        path: out.to_owned(),
        source,
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let extension = out
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    // Created with mode 0666 less the umask, as `File::create` would make the output (the
    // crate's default, 0600, would leave outputs unreadable to the group).
    let mut tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .prefix(&format!(".{name}."))
        .suffix(&format!(".effnet-tmp{extension}"))
        .tempfile_in(folder_of(out))
        .map_err(io_error)?;
    write(tmp.as_file_mut())?;
    tmp.as_file_mut().flush().map_err(io_error)?;
    check(tmp.path())?;
    // Checked again just before the rename: the output may have appeared meanwhile.
    check_output(out, inputs, force)?;
    if force {
        tmp.persist(out).map_err(|e| io_error(e.error))?;
    } else {
        tmp.persist_noclobber(out)
            .map_err(|e| match e.error.kind() {
                io::ErrorKind::AlreadyExists => OutputError::Exists {
                    path: out.to_owned(),
                },
                _ => io_error(e.error),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("model.pth");
        std::fs::write(&input, b"weights").unwrap();
        (dir, input)
    }

    fn write(out: &Path, inputs: &[PathBuf], force: bool) -> Result<(), OutputError> {
        write_atomic(out, inputs, force, |f| {
            f.write_all(b"new").map_err(|source| OutputError::Io {
                path: out.into(),
                source,
            })
        })
    }

    #[test]
    fn writes_and_refuses_to_overwrite_without_force() {
        let (dir, input) = setup();
        let out = dir.path().join("out.safetensors");
        write(&out, std::slice::from_ref(&input), false).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        assert!(matches!(
            write(&out, std::slice::from_ref(&input), false),
            Err(OutputError::Exists { .. })
        ));
        write(&out, &[input], true).unwrap();
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 2, "no temporary file left");
    }

    #[test]
    fn outputs_get_the_mode_file_create_would_give() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, input) = setup();
        let out = dir.path().join("out.safetensors");
        write(&out, &[input], false).unwrap();
        let reference = dir.path().join("reference");
        std::fs::File::create(&reference).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out), mode(&reference));
    }

    #[test]
    fn the_input_by_any_name_is_refused_even_with_force() {
        let (dir, input) = setup();
        let hard = dir.path().join("hard.pth");
        std::fs::hard_link(&input, &hard).unwrap();
        let soft = dir.path().join("soft.pth");
        std::os::unix::fs::symlink(&input, &soft).unwrap();
        for out in [input.clone(), hard, soft, dir.path().join("./model.pth")] {
            assert!(
                matches!(
                    write(&out, std::slice::from_ref(&input), true),
                    Err(OutputError::IsInput { .. })
                ),
                "{}",
                out.display()
            );
        }
        assert_eq!(std::fs::read(&input).unwrap(), b"weights");
    }

    #[test]
    fn outputs_inside_an_input_folder_or_checkpoint_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("saved");
        std::fs::create_dir_all(saved.join("variables")).unwrap();
        let out = saved.join("variables/x.onnx");
        assert!(matches!(
            write(&out, std::slice::from_ref(&saved), true),
            Err(OutputError::InsideInput { .. })
        ));
        let prefix = dir.path().join("ckpt-1");
        let out = dir.path().join("ckpt-1.index");
        assert!(matches!(
            write(&out, &[prefix], true),
            Err(OutputError::InsideInput { .. })
        ));
    }

    /// `output` fuzz target (crash-aaf92caf…): the input checkpoint's prefix path `in/ckpt` held
    /// a symlink to `/dev/null`, so the prefix rule was skipped and `-o in/ckpt.data-00000-of-00001
    /// --force` replaced the checkpoint's data shard. The rule now holds whatever is at the
    /// prefix's path (a file, a folder, a symlink), while an ordinary input file's name stays
    /// free to extend (`model.pth` → `model.pth.onnx`).
    #[test]
    fn a_checkpoint_prefix_is_protected_whatever_is_at_its_own_path() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("ckpt");
        std::fs::write(dir.path().join("ckpt.index"), b"INDEX").unwrap();
        std::fs::write(dir.path().join("ckpt.data-00000-of-00001"), b"DATA").unwrap();
        let at_prefix: [&dyn Fn(&Path); 3] = [
            &|p| std::os::unix::fs::symlink("/dev/null", p).unwrap(),
            &|p| std::fs::write(p, b"x").unwrap(),
            &|p| std::fs::create_dir(p).unwrap(),
        ];
        for plant in at_prefix {
            plant(&prefix);
            for out in ["ckpt.data-00000-of-00001", "ckpt.index"] {
                let out = dir.path().join(out);
                assert!(
                    matches!(
                        write(&out, std::slice::from_ref(&prefix), true),
                        Err(OutputError::InsideInput { .. })
                    ),
                    "{}",
                    out.display()
                );
            }
            let _ = std::fs::remove_file(&prefix).or_else(|_| std::fs::remove_dir(&prefix));
        }
        assert_eq!(
            std::fs::read(dir.path().join("ckpt.data-00000-of-00001")).unwrap(),
            b"DATA"
        );
        assert_eq!(
            std::fs::read(dir.path().join("ckpt.index")).unwrap(),
            b"INDEX"
        );
        let (dir, input) = setup();
        write(&dir.path().join("model.pth.onnx"), &[input], false).unwrap();
    }

    #[test]
    fn devices_and_missing_folders_are_refused() {
        let (dir, input) = setup();
        assert!(matches!(
            write(Path::new("/dev/null"), std::slice::from_ref(&input), true),
            Err(OutputError::NotRegular { .. })
        ));
        let err = write(&dir.path().join("nope/out.onnx"), &[input], true).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(matches!(err, OutputError::NoFolder { .. }));
    }

    #[test]
    fn a_planted_symlink_cannot_redirect_the_write() {
        let (dir, input) = setup();
        // Whatever a symlink planted in the folder names, the temporary file is new.
        for i in 0..50 {
            let _ = std::os::unix::fs::symlink(&input, dir.path().join(format!(".out.onnx.{i}")));
        }
        write(
            &dir.path().join("out.onnx"),
            std::slice::from_ref(&input),
            false,
        )
        .unwrap();
        assert_eq!(std::fs::read(&input).unwrap(), b"weights");
    }

    #[test]
    fn a_failed_write_leaves_the_old_output_and_no_temporary_file() {
        let (dir, input) = setup();
        let out = dir.path().join("out.onnx");
        std::fs::write(&out, b"old").unwrap();
        let result: Result<(), OutputError> = write_atomic(&out, &[input], true, |_| {
            Err(OutputError::Io {
                path: "x".into(),
                source: io::Error::other("disk full"),
            })
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
