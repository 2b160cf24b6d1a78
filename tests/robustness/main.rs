//! Robustness of the `effnet` binary against hostile files and output paths (docs/security.md):
//! every case runs the binary under a 1 GiB address-space limit and a timeout, and expects
//! exit 2, one escaped line naming the file, under 5 s, and nothing written.

mod arguments;
mod keras;
mod outputs;
mod tf;
mod torch;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Address space allowed to the binary in these tests (KiB, as `ulimit -v` takes it).
const ADDRESS_SPACE_KIB: u64 = 1 << 20;
/// Wall time allowed to one run.
const LIMIT: Duration = Duration::from_secs(5);

/// What one limited run of the binary did.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `effnet args…` under the address-space limit and a 20 s hard timeout.
pub fn run_limited(args: &[&str]) -> Outcome {
    let exe = assert_cmd::cargo::cargo_bin("effnet");
    let start = Instant::now();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB}; exec timeout -s KILL 20 \"$0\" \"$@\""
        ))
        .arg(&exe)
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("bash runs");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Asserts the contract for a hostile input: exit 2 within the time limit, no panic, nothing
/// on stdout, exactly one `error:` line on stderr that names `path` (as given); returns it.
pub fn refused(args: &[&str], path: &Path) -> String {
    let outcome = run_limited(args);
    assert_eq!(
        outcome.code,
        Some(2),
        "effnet {args:?}: expected exit 2, got {outcome:?}"
    );
    assert!(
        outcome.elapsed < LIMIT,
        "effnet {args:?} took {:?}",
        outcome.elapsed
    );
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
    let errors: Vec<&str> = outcome
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", outcome.stderr);
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(
        errors[0].contains(name.as_ref()),
        "the error names {name}: {}",
        errors[0]
    );
    errors[0].to_owned()
}

/// A fresh folder for a test's files.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary folder")
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

/// The names of the files in `dir` (to check nothing was written).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read folder")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A committed fixture.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}
