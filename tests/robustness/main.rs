//! Robustness of the `effnet` binary against hostile files and output paths (docs/security.md):
//! every case runs the binary under a 1 GiB address-space limit and a timeout, and expects
//! exit 2, one escaped line naming the file, under 5 s of CPU time (user + system, all threads:
//! the work the file caused, whatever else loads the machine), and nothing written.

mod arguments;
mod checksums;
mod keras;
mod onnx;
mod outputs;
mod run;
mod tf;
mod torch;
mod zip;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Address space allowed to the binary in these tests (KiB, as `ulimit -v` takes it).
const ADDRESS_SPACE_KIB: u64 = 1 << 20;
/// CPU time allowed to one run.
const LIMIT: Duration = Duration::from_secs(5);
/// Marks the line the harness adds to stderr with the child's CPU time.
const CPU_MARK: &str = "@@effnet-test-cpu";

/// What one limited run of the binary did.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// CPU time of the binary (user + system, every thread).
    pub elapsed: Duration,
    /// Wall time.
    pub wall: Duration,
}

/// Seconds in a `times` field such as `1m2.345s`.
fn seconds(field: &str) -> f64 {
    let field = field.trim().trim_end_matches('s');
    let (minutes, secs) = field.split_once('m').unwrap_or(("0", field));
    minutes.parse::<f64>().unwrap_or(0.0) * 60.0 + secs.parse::<f64>().unwrap_or(0.0)
}

/// Runs `effnet args…` under the address-space limit and a 20 s hard timeout (wall time),
/// measuring its CPU time with the shell's `times`.
pub fn run_limited(args: &[&str]) -> Outcome {
    run_limited_in(None, args)
}

/// [`run_limited`] in the working directory `cwd` (the test's own when `None`).
pub fn run_limited_in(cwd: Option<&Path>, args: &[&str]) -> Outcome {
    let exe = assert_cmd::cargo::cargo_bin("effnet");
    let start = Instant::now();
    let mut command = Command::new("bash");
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let out = command
        .arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB}; timeout -s KILL 20 \"$0\" \"$@\"; rc=$?; \
             {{ echo {CPU_MARK}; times; }} >&2; exit $rc"
        ))
        .arg(&exe)
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("bash runs");
    let wall = start.elapsed();
    let code = match out.status.code() {
        // The shell reports a child killed by a signal as 128 + the signal.
        Some(c) if c > 128 => None,
        c => c,
    };
    // After the mark, `times` prints the shell's own times, then its children's.
    let text = String::from_utf8_lossy(&out.stderr);
    let (stderr, cpu) = match text.rsplit_once(CPU_MARK) {
        Some((before, after)) => {
            let children = after.lines().nth(2).unwrap_or_default();
            let cpu = children.split_whitespace().map(seconds).sum::<f64>();
            (before.to_owned(), Duration::from_secs_f64(cpu))
        }
        None => (text.into_owned(), wall),
    };
    Outcome {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        elapsed: cpu,
        wall,
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
        "effnet {args:?} took {:?} of CPU time",
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

/// `inspect` of a hostile file: refused as [`refused`] checks, or — a file whose container
/// reads but that is not an EfficientNet — described with exit 0 within the same limits, no
/// panic, and the reason in `not_efficientnet`. Returns the error line or the reason.
pub fn refused_or_not_efficientnet(path: &Path) -> String {
    let p = path.to_str().unwrap();
    let outcome = run_limited(&["inspect", p, "--format", "json"]);
    if outcome.code != Some(0) {
        return refused(&["inspect", p], path);
    }
    assert!(
        outcome.elapsed < LIMIT,
        "effnet inspect {p} took {:?} of CPU time",
        outcome.elapsed
    );
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
    let doc: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert!(doc["variant"].is_null(), "{doc}");
    doc["not_efficientnet"]
        .as_str()
        .unwrap_or_else(|| panic!("a reason: {doc}"))
        .to_owned()
}

/// The contract `tests/cli.rs` checks on every file committed under `fixtures/hostile/`, for a
/// file made here instead: `inspect` and `cost --resolution 64` both exit 2 (within the limits of
/// [`refused`]) with nothing on stdout, exactly one line on stderr, `error: ` naming the file, no
/// panic, and nothing left in the working directory.
pub fn refused_by_inspect_and_cost(path: &Path) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let cwd = scratch();
    for args in [
        vec!["inspect", path.to_str().unwrap()],
        vec!["cost", path.to_str().unwrap(), "--resolution", "64"],
    ] {
        let outcome = run_limited_in(Some(cwd.path()), &args);
        assert_eq!(outcome.code, Some(2), "{name}: {args:?}: {outcome:?}");
        assert!(outcome.elapsed < LIMIT, "{name}: {args:?}: {outcome:?}");
        assert!(
            outcome.stdout.is_empty(),
            "{name}: stdout {:?}",
            outcome.stdout
        );
        assert_eq!(
            outcome.stderr.lines().count(),
            1,
            "{name}: {}",
            outcome.stderr
        );
        assert!(
            outcome.stderr.starts_with("error: "),
            "{name}: {}",
            outcome.stderr
        );
        assert!(outcome.stderr.contains(&name), "{name}: {}", outcome.stderr);
        assert!(
            !outcome.stderr.contains("panicked"),
            "{name}: {}",
            outcome.stderr
        );
    }
    assert!(
        listing(cwd.path()).is_empty(),
        "{name} left files behind: {:?}",
        listing(cwd.path())
    );
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

/// Appends `v` as a protobuf varint.
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a varint field.
pub fn pb_varint(out: &mut Vec<u8>, field: u32, v: u64) {
    varint(out, u64::from(field << 3));
    varint(out, v);
}

/// Appends a length-delimited field.
pub fn pb_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A committed fixture.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

#[test]
fn the_harness_measures_cpu_time_and_keeps_stderr_clean() {
    let outcome = run_limited(&["cost", "--variant", "b7", "--by", "layer"]);
    let (cpu, wall) = (outcome.elapsed, outcome.wall);
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(!outcome.stderr.contains(CPU_MARK), "{}", outcome.stderr);
    assert!(cpu > Duration::ZERO && cpu < LIMIT, "{cpu:?}");
    assert!(wall < Duration::from_secs(20), "{wall:?}");
    let killed = run_limited(&["inspect", "/proc/self/fd/0"]);
    assert_ne!(killed.code, None, "an error is an exit code, not a signal");
}
