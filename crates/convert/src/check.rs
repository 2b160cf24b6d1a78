//! `--check`: the written output, read back from its temporary file, runs on a seeded input
//! beside the source before it replaces anything; a difference beyond the tolerance refuses
//! the conversion.

use std::path::Path;

use effnet_exec::{Comparison, Feed, check_conversion, in_graph_steps};
use effnet_import::{ImportOptions, Model};

use crate::ConvertError;

/// How to check a conversion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckOptions {
    /// Seed of the input's pixels (raw 0–255, NCHW, batch 1).
    pub seed: u64,
    /// Largest relative difference of the outputs (max |a − b| / max |b|) accepted.
    pub tolerance: f64,
    /// Input height and width; `None` takes the model's, else 224×224.
    pub resolution: Option<[usize; 2]>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            seed: 0,
            tolerance: effnet_exec::DEFAULT_TOLERANCE,
            resolution: None,
        }
    }
}

/// The input size a check runs at.
pub fn check_resolution(model: &Model, options: &CheckOptions) -> [usize; 2] {
    options
        .resolution
        .or(model.imported.architecture.resolution.map(|r| [r, r]))
        .unwrap_or([224, 224])
}

/// Runs `model` and the file at `written` (a conversion of it, not yet in place at `out`) on
/// the same seeded input, each fed as its framework expects (the source as `source_feed`
/// says, when the user stated it). Messages name `out`.
pub fn check_written(
    model: &Model,
    written: &Path,
    out: &Path,
    options: &CheckOptions,
    source_feed: Option<Feed>,
) -> Result<Comparison, ConvertError> {
    let fail = |message: String| ConvertError::Check {
        path: out.to_owned(),
        message: message.replace(&written.display().to_string(), &out.display().to_string()),
    };
    let output = effnet_import::open(
        written,
        &ImportOptions {
            key: None,
            naming: None,
            ..ImportOptions::default()
        },
    )
    .map_err(|e| fail(format!("reading it back: {e}")))?;
    let source_graph = &model.imported.graph;
    let source_feed = match source_feed {
        Some(feed) => feed,
        None => Feed::for_model(source_graph, &model.metadata)
            .map_err(|e| fail(format!("feeding the source: {e}")))?,
    };
    let output_graph = &output.imported.graph;
    let steps = in_graph_steps(source_graph);
    let output_feed = if !steps.is_empty() && in_graph_steps(output_graph).is_empty() {
        Feed::from_steps(steps)
    } else {
        Feed::for_model(output_graph, &output.metadata)
            .map_err(|e| fail(format!("feeding the output: {e}")))?
    };
    let hw = check_resolution(model, options);
    check_conversion(
        (source_graph, &source_feed),
        (output_graph, &output_feed),
        options.seed,
        hw,
        options.tolerance,
    )
    .map_err(|e| fail(format!("running the two models: {e}")))
}
