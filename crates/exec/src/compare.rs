//! Two graphs on the same raw input, stage by stage: what `effnet compare` and
//! `effnet convert --check` report.

use effnet_ir::{Graph, NodeId};

use crate::{Array, ExecError, ExecOptions, Executor, Feed, ends_in_softmax, stage_outputs};

/// The default tolerance on the output's relative difference.
pub const DEFAULT_TOLERANCE: f64 = 1e-4;

/// How two values differ: `relative = max|a − b| / max|b|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Diff {
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Largest absolute value of the reference (`b`).
    pub max_ref: f64,
    /// `max_abs / max_ref` (`max_abs` when the reference is all zeros).
    pub relative: f64,
}

impl Diff {
    /// The difference of `a` from the reference `b` (same length).
    pub fn of(a: &[f32], b: &[f32]) -> Diff {
        let mut max_abs = 0.0f64;
        let mut max_ref = 0.0f64;
        for (&x, &y) in a.iter().zip(b) {
            let d = (f64::from(x) - f64::from(y)).abs();
            // NaN anywhere counts as an infinite difference.
            max_abs = if d.is_nan() {
                f64::INFINITY
            } else {
                max_abs.max(d)
            };
            max_ref = max_ref.max(f64::from(y).abs());
        }
        let relative = if max_ref > 0.0 {
            max_abs / max_ref
        } else {
            max_abs
        };
        Diff {
            max_abs,
            max_ref,
            relative,
        }
    }
}

/// One stage (or the output) of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct StageDiff {
    /// Paper stage (1 stem … 9 head); 0 for the output.
    pub stage: u8,
    /// Shape of the value in the first graph.
    pub shape_a: Vec<usize>,
    /// Shape of the value in the second graph.
    pub shape_b: Vec<usize>,
    /// The difference; `None` when the shapes differ.
    pub diff: Option<Diff>,
}

impl StageDiff {
    fn new(stage: u8, a: &Array, b: &Array) -> StageDiff {
        StageDiff {
            stage,
            shape_a: a.shape.clone(),
            shape_b: b.shape.clone(),
            diff: (a.shape == b.shape).then(|| Diff::of(&a.data, &b.data)),
        }
    }

    /// Whether the value is within `tolerance` (relative).
    pub fn within(&self, tolerance: f64) -> bool {
        self.diff.is_some_and(|d| d.relative <= tolerance)
    }
}

/// The result of running two graphs on one input.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Every stage both graphs have, in order.
    pub stages: Vec<StageDiff>,
    /// The graph outputs.
    pub output: StageDiff,
    /// The first stage beyond the tolerance.
    pub first_differing_stage: Option<u8>,
    /// The tolerance on relative differences.
    pub tolerance: f64,
    /// Whether the outputs agree within the tolerance.
    pub equal: bool,
    /// Whether logits were compared because only one graph ends in softmax.
    pub logits: bool,
    /// Peak activation bytes of each run.
    pub peak_bytes: [u64; 2],
}

/// Raw pixels in 0–255 from `seed` (a splitmix64 stream, the same on every platform), NCHW.
pub fn seeded_pixels(
    seed: u64,
    batch: usize,
    channels: usize,
    hw: [usize; 2],
) -> Result<Array, ExecError> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let n = crate::numel(&[batch, channels, hw[0], hw[1]], "seeded pixels")?;
    let mut data = crate::zeroed(n, "seeded pixels")?;
    for v in &mut data {
        *v = ((next() >> 40) as f64 / (1u64 << 24) as f64 * 255.0) as f32;
    }
    Ok(Array {
        shape: vec![batch, channels, hw[0], hw[1]],
        data,
    })
}

/// Runs `a` and `b` on the raw input `raw`, each through its own feed, and compares the
/// output of every stage both have and the graph outputs. When exactly one graph ends in
/// softmax, both are compared on logits.
pub fn compare_graphs(
    a: (&Graph, &Feed),
    b: (&Graph, &Feed),
    raw: &Array,
    tolerance: f64,
) -> Result<Comparison, ExecError> {
    let logits = ends_in_softmax(a.0) != ends_in_softmax(b.0);
    let options = ExecOptions { logits };
    let run =
        |graph: &Graph, feed: &Feed| -> Result<(Vec<(u8, NodeId)>, crate::RunOutput), ExecError> {
            let exec = Executor::new(graph, &options)?;
            let stages = stage_outputs(graph);
            let nodes: Vec<NodeId> = stages.iter().map(|&(_, id)| id).collect();
            let out = exec.run_capturing(feed.apply(raw)?, &nodes)?;
            Ok((stages, out))
        };
    let (stages_a, out_a) = run(a.0, a.1)?;
    let (stages_b, out_b) = run(b.0, b.1)?;
    if out_a.output.shape != out_b.output.shape {
        return Err(ExecError::Incomparable(format!(
            "the outputs have shapes {:?} and {:?}",
            out_a.output.shape, out_b.output.shape
        )));
    }
    let mut stages = Vec::new();
    for (i, &(stage, _)) in stages_a.iter().enumerate() {
        if let Some(j) = stages_b.iter().position(|&(s, _)| s == stage) {
            stages.push(StageDiff::new(
                stage,
                &out_a.captured[i].1,
                &out_b.captured[j].1,
            ));
        }
    }
    let output = StageDiff::new(0, &out_a.output, &out_b.output);
    let equal = output.within(tolerance);
    let first_differing_stage = stages
        .iter()
        .find(|s| !s.within(tolerance))
        .map(|s| s.stage)
        .or_else(|| (!equal).then(|| stages.last().map_or(0, |s| s.stage)));
    Ok(Comparison {
        stages,
        output,
        first_differing_stage,
        tolerance,
        equal,
        logits,
        peak_bytes: [out_a.peak_bytes, out_b.peak_bytes],
    })
}

/// What `effnet convert --check` needs: `source` and the `output` read back from the written
/// file, on seeded pixels at `resolution`, each through its feed. When the output lost the
/// source's in-graph preprocessing (a Keras model written in a PyTorch scheme) and records
/// none, it is fed the source's steps, as the conversion's note tells users to.
pub fn check_conversion(
    source: (&Graph, &Feed),
    output: (&Graph, &Feed),
    seed: u64,
    resolution: [usize; 2],
    tolerance: f64,
) -> Result<Comparison, ExecError> {
    let channels = crate::input_channels(source.0)?;
    let raw = seeded_pixels(seed, 1, channels, resolution)?;
    compare_graphs(source, output, &raw, tolerance)
}
