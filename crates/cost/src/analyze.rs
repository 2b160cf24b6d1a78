use std::collections::BTreeMap;

use effnet_ir::{Activation, DType, Graph, IrError, Op, Shapes, TensorShape, structure};

use crate::memory;
use crate::report::{
    BlockCost, CostReport, Costs, LayerCost, Memory, ModelInfo, OperatorClass, OperatorCost,
    StageCost, Totals,
};

/// What to cost the graph at.
#[derive(Clone, Debug, PartialEq)]
pub struct CostOptions {
    /// Images per batch.
    pub batch: usize,
    /// Dtype of the activations (sizes the activation bytes).
    pub dtype: DType,
    /// Input height and width; `None` takes the resolution the graph records.
    pub resolution: Option<[usize; 2]>,
}

impl Default for CostOptions {
    fn default() -> Self {
        CostOptions {
            batch: 1,
            dtype: DType::F32,
            resolution: None,
        }
    }
}

/// Why a graph could not be costed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CostError {
    /// Shape inference failed.
    #[error(transparent)]
    Graph(#[from] IrError),
    /// Neither the options nor the graph give an input resolution.
    #[error("the model records no input resolution: give one (--resolution)")]
    NoResolution,
    /// The batch is zero.
    #[error("the batch size must be at least 1")]
    Batch,
    /// The counts would not fit in 64 bits (an absurd batch or resolution).
    #[error("batch {batch} at {input} is too large to count: the figures exceed 2^63")]
    TooLarge {
        /// The batch asked for.
        batch: usize,
        /// The input size asked for, in words.
        input: String,
    },
}

/// Costs every node of `graph` and rolls the costs up per block and per stage.
pub fn analyze(
    graph: &Graph,
    mut model: ModelInfo,
    options: &CostOptions,
) -> Result<CostReport, CostError> {
    if options.batch == 0 {
        return Err(CostError::Batch);
    }
    let shapes = graph.infer_shapes(options.batch, options.resolution)?;
    // Every count below is at most (elements of all outputs) × (2 × the largest per-output
    // MAC count + 16): checked once here, so no sum or product can overflow.
    let mut elements: u128 = 0;
    let mut per_output: u128 = 0;
    for (id, node) in graph.nodes() {
        let dims = shapes[id].dims().unwrap_or_default();
        elements += dims
            .iter()
            .fold(1u128, |acc, &d| acc.saturating_mul(d as u128));
        per_output = per_output.max(match &node.op {
            Op::Conv2d(c) => {
                (c.in_channels / c.groups.max(1)) as u128
                    * c.kernel[0] as u128
                    * c.kernel[1] as u128
            }
            Op::Dense(d) => d.in_features as u128,
            _ => 0,
        });
    }
    if elements.saturating_mul(2 * per_output + 16) >= 1u128 << 63 {
        return Err(CostError::TooLarge {
            batch: options.batch,
            input: match options.resolution {
                Some([h, w]) => format!("{h}×{w}"),
                None => "the model's input size".into(),
            },
        });
    }
    let input = graph.input()?;
    let resolution = shapes[input].spatial().ok_or(CostError::NoResolution)?;
    model.resolution = resolution;
    let size = options.dtype.size() as u64;
    let last_block_stage = graph.last_block_stage();

    let layers: Vec<LayerCost> = graph
        .nodes()
        .map(|(id, node)| {
            let out = shapes[id];
            let in_shape = graph.inputs(id).first().map(|&i| shapes[i]);
            let (params, non_trainable_params) =
                node.op.params().iter().fold((0u64, 0u64), |(t, n), p| {
                    let count = p.tensor.numel() as u64;
                    if p.trainable {
                        (t + count, n)
                    } else {
                        (t, n + count)
                    }
                });
            let output_elems = out.elems().unwrap_or(0);
            let macs = macs(&node.op, &out);
            let computes_tensor = !node.op.is_inference_alias() && !matches!(node.op, Op::Input(_));
            let conv = match &node.op {
                Op::Conv2d(c) => Some(c),
                _ => None,
            };
            LayerCost {
                name: node.name.clone(),
                op: node.op.kind(),
                operator: OperatorClass::of(&node.op),
                role: node.tag.role.name(),
                stage: node.tag.stage.number(last_block_stage),
                block: node.tag.block.map(|b| b + 1),
                input_shape: in_shape.and_then(|s| s.dims()).unwrap_or_default(),
                output_shape: out.dims().unwrap_or_default(),
                kernel: conv.map(|c| c.kernel),
                stride: conv.map(|c| c.stride),
                groups: conv.map(|c| c.groups),
                output_elems,
                costs: Costs {
                    params,
                    non_trainable_params,
                    macs,
                    flops: flops(&node.op, macs, output_elems, in_shape),
                    activation_bytes: if computes_tensor {
                        output_elems.saturating_mul(size)
                    } else {
                        0
                    },
                },
            }
        })
        .collect();

    let blocks = roll_up_blocks(graph, &layers);
    let stages = roll_up_stages(graph, &shapes, &layers);
    let operators = roll_up_operators(&layers);
    let mut sum = Costs::default();
    for layer in &layers {
        sum += layer.costs;
    }
    let total = Totals {
        params: sum.params,
        trainable_params: sum.params,
        non_trainable_params: sum.non_trainable_params,
        macs: sum.macs,
        flops: sum.flops,
        activation_bytes: sum.activation_bytes,
        peak_activation_bytes: memory::peak_inference_bytes(graph, &shapes, size),
        training_activation_bytes: memory::training_saved_bytes(graph, &shapes, size),
    };
    let weights_bytes = (total.params + total.non_trainable_params).saturating_mul(size);
    let input_bytes = shapes[input].elems().unwrap_or(0).saturating_mul(size);
    let memory = Memory {
        element_bytes: size,
        weights_bytes,
        input_bytes,
        forward_activation_bytes: total.activation_bytes,
        peak_activation_bytes: total.peak_activation_bytes,
        saved_for_backward_bytes: total.training_activation_bytes,
        inference_total_bytes: weights_bytes.saturating_add(total.peak_activation_bytes),
        training_total_bytes: weights_bytes
            .saturating_mul(2)
            .saturating_add(input_bytes)
            .saturating_add(total.training_activation_bytes),
    };
    Ok(CostReport {
        model,
        batch: options.batch,
        dtype: options.dtype,
        resolution,
        layers,
        blocks,
        stages,
        operators,
        total,
        memory,
    })
}

/// Multiply-accumulates of conv and dense layers; 0 for everything else.
fn macs(op: &Op, out: &TensorShape) -> u64 {
    let out_elems = out.elems().unwrap_or(0);
    match op {
        Op::Conv2d(c) => {
            let per_output =
                (c.in_channels / c.groups.max(1)) as u64 * c.kernel[0] as u64 * c.kernel[1] as u64;
            out_elems.saturating_mul(per_output)
        }
        Op::Dense(d) => out_elems.saturating_mul(d.in_features as u64),
        _ => 0,
    }
}

/// Arithmetic operations, by the rules of docs/cost.md.
fn flops(op: &Op, macs: u64, out_elems: u64, input: Option<TensorShape>) -> u64 {
    let per_output = |n: u64| out_elems.saturating_mul(n);
    match op {
        Op::Conv2d(c) => 2 * macs + if c.bias.is_some() { out_elems } else { 0 },
        Op::Dense(d) => 2 * macs + if d.bias.is_some() { out_elems } else { 0 },
        Op::BatchNorm(_) | Op::Normalize(_) => per_output(2),
        Op::Rescale(r) => per_output(if r.offset.iter().any(|&o| o != 0.0) {
            2
        } else {
            1
        }),
        Op::Activation(a) => per_output(match a {
            Activation::Relu => 1,
            Activation::Relu6 => 2,
            Activation::Sigmoid => 4,
            Activation::Swish | Activation::Softmax => 5,
        }),
        Op::GlobalAvgPool { .. } => input
            .and_then(|s| s.elems())
            .unwrap_or(0)
            .saturating_add(out_elems),
        Op::Mul | Op::Add => out_elems,
        Op::Input(_) | Op::Dropout { .. } | Op::StochasticDepth { .. } | Op::Flatten => 0,
    }
}

fn roll_up_blocks(graph: &Graph, layers: &[LayerCost]) -> Vec<BlockCost> {
    let head = effnet_ir::Stage::Head.number(graph.last_block_stage());
    let mut groups: BTreeMap<(u8, Option<u16>), BlockCost> = BTreeMap::new();
    for layer in layers {
        let entry = groups
            .entry((layer.stage, layer.block))
            .or_insert_with(|| BlockCost {
                stage: layer.stage,
                block: layer.block,
                name: match (layer.stage, layer.block) {
                    (s, Some(b)) => format!("stage {s} block {b}"),
                    (effnet_ir::Stage::STEM_NUMBER, None) => "stem".into(),
                    (s, None) if s == head => "head".into(),
                    (s, None) => format!("stage {s}"),
                },
                nodes: 0,
                costs: Costs::default(),
            });
        entry.nodes += 1;
        entry.costs += layer.costs;
    }
    groups.into_values().collect()
}

fn roll_up_operators(layers: &[LayerCost]) -> Vec<OperatorCost> {
    OperatorClass::ALL
        .into_iter()
        .filter_map(|class| {
            let mut cost = OperatorCost {
                operator: class,
                ops: Vec::new(),
                nodes: 0,
                costs: Costs::default(),
            };
            for layer in layers.iter().filter(|l| l.operator == class) {
                if !cost.ops.contains(&layer.op) {
                    cost.ops.push(layer.op);
                }
                cost.nodes += 1;
                cost.costs += layer.costs;
            }
            (cost.nodes > 0).then_some(cost)
        })
        .collect()
}

fn roll_up_stages(graph: &Graph, shapes: &Shapes, layers: &[LayerCost]) -> Vec<StageCost> {
    structure::stages(graph, Some(shapes))
        .into_iter()
        .map(|info| {
            let in_stage = layers.iter().filter(|l| l.stage == info.number);
            let mut cost = StageCost {
                stage: info.number,
                operator: info.operator,
                input_resolution: info.input_resolution.unwrap_or_default(),
                output_channels: info.output_channels,
                layers: info.layers,
                costs: Costs::default(),
            };
            for layer in in_stage {
                cost.costs += layer.costs;
            }
            cost
        })
        .collect()
}
