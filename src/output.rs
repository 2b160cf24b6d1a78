//! Writing to stdout, where a closed pipe (`effnet cost … | head`) is not an error; stderr
//! lines escaped (text from a file never forges a line); side files written by the output
//! rules of `effnet_io::output`.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use effnet_io::escape;

use indicatif::{ProgressBar, ProgressStyle};

/// How chatty stderr is.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ui {
    /// No warnings, notes or progress.
    pub quiet: bool,
    /// Extra detail.
    pub verbose: u8,
}

static UI: OnceLock<Ui> = OnceLock::new();

/// Sets the stderr policy for the run.
pub fn set_ui(ui: Ui) {
    let _ = UI.set(ui);
}

/// The stderr policy.
pub fn ui() -> Ui {
    UI.get().copied().unwrap_or_default()
}

/// `text` in the ANSI colour `code` when stdout is a terminal and `NO_COLOR` is unset.
pub fn paint(text: &str, code: &str) -> String {
    let colour =
        io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// A warning on stderr, unless quiet.
pub fn warn(message: &str) {
    if !ui().quiet {
        eprintln!("warning: {}", escape(message));
    }
}

/// A note on stderr (a file written beside the report), unless quiet.
pub fn note(message: &str) {
    if !ui().quiet {
        eprintln!("{}", escape(message));
    }
}

/// Detail on stderr with `-v`.
pub fn detail(message: &str) {
    if ui().verbose > 0 && !ui().quiet {
        eprintln!("{}", escape(message));
    }
}

/// Files at least this large get a progress bar (`EFFNET_PROGRESS_MIN_BYTES` overrides it).
const PROGRESS_MIN_BYTES: u64 = 16 * 1024 * 1024;

/// A progress bar on stderr for work over `total_bytes` of an input of `input_bytes`, only when
/// stderr is a terminal, the run is not quiet, and the input is large.
pub fn progress(label: &str, input_bytes: u64) -> Option<ProgressBar> {
    let min = std::env::var("EFFNET_PROGRESS_MIN_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PROGRESS_MIN_BYTES);
    if ui().quiet || !io::stderr().is_terminal() || input_bytes < min {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(label.to_owned());
    Some(bar)
}

/// Writes `text` to stdout and flushes.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Whether `err` comes from writing into a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// An error on stderr, on one escaped line.
pub fn error(err: &anyhow::Error) {
    eprintln!("error: {}", escape(&format!("{err:#}")));
}

/// Writes `text` to `path` (`-`: stdout) by the output rules: never one of `inputs` or inside
/// one, never over an existing file without `force`, atomically. Returns whether a file was
/// written (false for stdout).
pub fn write_text(
    path: &Path,
    inputs: &[PathBuf],
    force: bool,
    text: &str,
) -> anyhow::Result<bool> {
    if path.as_os_str() == "-" {
        print(text)?;
        return Ok(false);
    }
    effnet_io::write_atomic(path, inputs, force, |file| {
        file.write_all(text.as_bytes())
            .map_err(|source| effnet_io::OutputError::Io {
                path: path.to_owned(),
                source,
            })
    })?;
    Ok(true)
}
