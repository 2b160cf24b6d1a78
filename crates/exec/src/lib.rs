#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod compare;
mod error;
mod executor;
mod feed;
mod image;
mod kernels;
mod labels;
mod npy;
mod plan;

pub use compare::{
    Comparison, DEFAULT_TOLERANCE, Diff, StageDiff, check_conversion, compare_graphs, seeded_pixels,
};
pub use error::ExecError;
pub use executor::{ExecOptions, Executor, RunOutput};
pub use feed::{
    Feed, FeedOrigin, PREPROCESSING_KEY, PreStep, decode_steps, encode_steps, in_graph_steps,
};
pub use image::{ImagePrep, load_images};
pub use labels::{IMAGENET_LABELS, imagenet_labels, top_k};
pub use npy::{encode_npy, parse_npy, read_npy};

use effnet_ir::{Activation, Graph, NodeId, Op};

/// A dense f32 array, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Dimensions (`[n, c, h, w]` for maps, `[n, features]` for vectors).
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

impl Array {
    /// The array with its axes reordered from NHWC to NCHW (`shape` must be 4-d).
    pub fn nhwc_to_nchw(&self) -> Option<Array> {
        let &[n, h, w, c] = self.shape.as_slice() else {
            return None;
        };
        let mut data = vec![0.0f32; self.data.len()];
        for b in 0..n {
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        data[((b * c + ch) * h + y) * w + x] =
                            self.data[((b * h + y) * w + x) * c + ch];
                    }
                }
            }
        }
        Some(Array {
            shape: vec![n, c, h, w],
            data,
        })
    }
}

/// A zeroed buffer of `len` floats, or an error when it cannot be allocated: sizes come from
/// a file or an argument (a recorded resolution of 65,536), and must not abort the process.
pub(crate) fn zeroed(len: usize, what: &'static str) -> Result<Vec<f32>, ExecError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| ExecError::Memory {
        bytes: (len as u64).saturating_mul(4),
        what,
    })?;
    v.resize(len, 0.0);
    Ok(v)
}

/// The element count of `dims`, an error when it overflows.
pub(crate) fn numel(dims: &[usize], what: &'static str) -> Result<usize, ExecError> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or(ExecError::Memory {
            bytes: u64::MAX,
            what,
        })
}

/// Channels of the graph's input.
pub fn input_channels(graph: &Graph) -> Result<usize, ExecError> {
    let id = graph.input().map_err(ExecError::Ir)?;
    match &graph.node(id).op {
        Op::Input(i) => Ok(i.channels),
        _ => Err(ExecError::Ir(effnet_ir::IrError::InputCount(0))),
    }
}

/// Whether the graph's output is a softmax (Keras applications end in one).
pub fn ends_in_softmax(graph: &Graph) -> bool {
    graph
        .outputs()
        .iter()
        .any(|&id| matches!(graph.node(id).op, Op::Activation(Activation::Softmax)))
}

/// The last node of every stage (paper numbering: 1 the stem, then the block stages, then
/// the head), in stage order: the values `compare` sets side by side. Always observable in an
/// [`Executor`] run.
pub fn stage_outputs(graph: &Graph) -> Vec<(u8, NodeId)> {
    let last_block_stage = graph.last_block_stage();
    let mut last: Vec<(u8, NodeId)> = Vec::new();
    for (id, node) in graph.nodes() {
        let stage = node.tag.stage.number(last_block_stage);
        match last.iter_mut().find(|(s, _)| *s == stage) {
            Some(entry) => entry.1 = id,
            None => last.push((stage, id)),
        }
    }
    last.sort_by_key(|&(s, _)| s);
    last
}

/// The last node of every block, `(stage, block from 0)`, in graph order.
pub fn block_outputs(graph: &Graph) -> Vec<((u8, u16), NodeId)> {
    let mut last: Vec<((u8, u16), NodeId)> = Vec::new();
    for (id, node) in graph.nodes() {
        let (Some(stage), Some(block)) = (node.tag.stage.blocks(), node.tag.block) else {
            continue;
        };
        let key = (stage, block);
        match last.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = id,
            None => last.push((key, id)),
        }
    }
    last
}
