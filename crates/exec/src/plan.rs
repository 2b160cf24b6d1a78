//! From a [`Graph`] to a list of steps: weights widened to f32, each BatchNorm folded into a
//! per-channel scale and shift of the convolution before it, activations fused into that
//! convolution's epilogue, inference aliases (dropout, stochastic depth) resolved to their
//! input.
//!
//! Fusion never crosses a `(stage, block)` boundary and never hides a graph output, so the
//! value of the last node of every stage and block stays observable.

use effnet_ir::{Activation, BatchNorm, Graph, NodeId, Op, Padding};
use rayon::prelude::*;

use crate::ExecError;
use crate::kernels::act::Act;

/// Index of a value (a tensor produced at run time).
pub(crate) type ValueId = usize;

/// A convolution ready to run: weights in `[out, in/groups, kh, kw]` as the source had them,
/// the BatchNorm after it folded into a per-channel scale and shift, and the fused activation:
/// `act(acc · scale + shift)`, the form PyTorch's and TensorFlow's inference BatchNorm compute.
#[derive(Debug)]
pub(crate) struct ConvStep {
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub padding: Padding,
    pub weight: Vec<f32>,
    /// Per output channel: the folded BatchNorm's `γ / sqrt(var + eps)`, or 1.
    pub scale: Vec<f32>,
    /// Per output channel: `(bias − mean) · scale + β`, or the bias.
    pub shift: Vec<f32>,
    pub act: Act,
    pub depthwise: bool,
}

/// What a step computes.
#[derive(Debug)]
pub(crate) enum Kernel {
    /// `x · scale[c] + offset[c]` (Rescale, a BatchNorm with no convolution before it);
    /// vectors of length 1 apply to every channel.
    Affine { scale: Vec<f32>, offset: Vec<f32> },
    /// `(x − mean[c]) / divisor[c]` (Keras `Normalization`).
    Normalize { mean: Vec<f32>, divisor: Vec<f32> },
    /// A convolution.
    Conv(Box<ConvStep>),
    /// An element-wise activation.
    Act(Act),
    /// Softmax over channels.
    Softmax,
    /// Mean over height and width.
    GlobalPool { keep_dims: bool },
    /// Element-wise product, a `C×1×1` operand broadcast.
    Mul,
    /// Element-wise sum.
    Add,
    /// Fully connected: `weight` `[out, in]`.
    Dense {
        in_features: usize,
        out_features: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    /// A map to a vector.
    Flatten,
}

/// One step: a kernel, its input values and its output value.
#[derive(Debug)]
pub(crate) struct Step {
    pub kernel: Kernel,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
    /// The source name of the step's last node.
    pub name: String,
}

/// The compiled graph.
#[derive(Debug)]
pub(crate) struct Plan {
    pub steps: Vec<Step>,
    pub values: usize,
    pub input: ValueId,
    pub input_channels: usize,
    pub output: ValueId,
    /// The value each graph node's output is, when it is observable.
    pub node_value: Vec<Option<ValueId>>,
    /// Steps reading each value.
    pub uses: Vec<usize>,
    /// BatchNorms folded into convolutions.
    pub folded_bn: usize,
    /// Activations fused into convolutions.
    pub fused_act: usize,
}

/// A parameter widened to f32. The source bytes are not read again: a memory-mapped file
/// gives their pages back (they stay in the file and the page cache).
fn weights(graph: &Graph, id: NodeId, t: &effnet_ir::Tensor) -> Result<Vec<f32>, ExecError> {
    let values = t.to_f32_vec().map_err(|_| ExecError::NoWeights {
        node: graph.node(id).name.clone(),
    })?;
    if let Some(bytes) = t.data() {
        bytes.release();
    }
    Ok(values)
}

fn act_of(a: Activation) -> Option<Act> {
    match a {
        Activation::Swish => Some(Act::Swish),
        Activation::Sigmoid => Some(Act::Sigmoid),
        Activation::Relu => Some(Act::Relu),
        Activation::Relu6 => Some(Act::Relu6),
        Activation::Softmax => None,
    }
}

/// Per-channel `(scale, shift)` of an inference BatchNorm, in f64:
/// `y = x · scale + shift` with `scale = γ / sqrt(var + eps)`, `shift = β − mean · scale`.
fn bn_affine(graph: &Graph, id: NodeId, bn: &BatchNorm) -> Result<(Vec<f64>, Vec<f64>), ExecError> {
    let c = bn.channels;
    let mean = weights(graph, id, &bn.mean)?;
    let var = weights(graph, id, &bn.var)?;
    let gamma = match &bn.gamma {
        Some(g) => weights(graph, id, g)?,
        None => vec![1.0; c],
    };
    let beta = match &bn.beta {
        Some(b) => weights(graph, id, b)?,
        None => vec![0.0; c],
    };
    let scale: Vec<f64> = (0..c)
        .map(|i| f64::from(gamma[i]) / (f64::from(var[i]) + bn.eps).sqrt())
        .collect();
    let shift = (0..c)
        .map(|i| f64::from(beta[i]) - f64::from(mean[i]) * scale[i])
        .collect();
    Ok((scale, shift))
}

/// Weight, epilogue scale and epilogue shift of a convolution.
type ConvParams = (Vec<f32>, Vec<f32>, Vec<f32>);

/// The weight of convolution `id` widened to f32, and its epilogue: with the BatchNorm `bn`
/// folded in (in f64, rounded once), `scale = γ / sqrt(var + eps)` and
/// `shift = (bias − mean) · scale + β`; without, scale 1 and the bias. The weights themselves
/// are left as the source had them: folding the scale into them rounds every weight once
/// more, which doubled the difference from the frameworks' outputs on the fixtures.
fn conv_weights(graph: &Graph, id: NodeId, bn: Option<NodeId>) -> Result<ConvParams, ExecError> {
    let node = graph.node(id);
    let Op::Conv2d(conv) = &node.op else {
        unreachable!("conv jobs name convolutions")
    };
    let weight = weights(graph, id, &conv.weight)?;
    let bias = match &conv.bias {
        Some(b) => weights(graph, id, b)?,
        None => vec![0.0; conv.out_channels],
    };
    if weight.len() != conv.expected_weight_shape().iter().product::<usize>()
        || bias.len() != conv.out_channels
    {
        return Err(ExecError::Ir(effnet_ir::IrError::ParamShape {
            node: node.name.clone(),
            param: "weight",
            expected: conv.expected_weight_shape(),
            found: conv.weight.shape().to_vec(),
        }));
    }
    let Some(bn_id) = bn else {
        return Ok((weight, vec![1.0; conv.out_channels], bias));
    };
    let Op::BatchNorm(norm) = &graph.node(bn_id).op else {
        unreachable!("folded nodes are BatchNorms")
    };
    let (scale, shift) = bn_affine(graph, bn_id, norm)?;
    let shift = (0..conv.out_channels)
        .map(|o| (f64::from(bias[o]) * scale[o] + shift[o]) as f32)
        .collect();
    let scale = scale.iter().map(|&s| s as f32).collect();
    Ok((weight, scale, shift))
}

impl Plan {
    /// Compiles `graph`; with `logits`, a softmax producing the graph output is left out.
    pub fn new(graph: &Graph, logits: bool) -> Result<Plan, ExecError> {
        let input_node = graph.input().map_err(ExecError::Ir)?;
        let output_node = match graph.outputs() {
            [one] => *one,
            other => return Err(ExecError::Outputs(other.len())),
        };
        let n = graph.len();
        let mut node_value: Vec<Option<ValueId>> = vec![None; n];
        let mut absorbed = vec![false; n];
        let mut steps = Vec::new();
        let mut values = 1usize;
        let (mut folded_bn, mut fused_act) = (0, 0);
        // (step, conv node, BatchNorm folded into it)
        let mut conv_jobs: Vec<(usize, NodeId, Option<NodeId>)> = Vec::new();
        node_value[input_node.index()] = Some(0);
        let input_channels = match &graph.node(input_node).op {
            Op::Input(i) => i.channels,
            _ => unreachable!("graph.input() returns an Input node"),
        };
        // The single consumer of `id` when it may be fused into it: same stage and block, and
        // `id` is not the graph output.
        let sole_consumer = |id: NodeId| -> Option<NodeId> {
            if id == output_node {
                return None;
            }
            match graph.consumers(id).as_slice() {
                [c] if graph.inputs(*c).len() == 1 => {
                    let (a, b) = (graph.node(id).tag, graph.node(*c).tag);
                    (a.stage == b.stage && a.block == b.block).then_some(*c)
                }
                _ => None,
            }
        };
        for (id, node) in graph.nodes() {
            if absorbed[id.index()] || id == input_node {
                continue;
            }
            let inputs: Vec<NodeId> = graph.inputs(id);
            let input_values = inputs
                .iter()
                .map(|i| {
                    node_value[i.index()].ok_or_else(|| ExecError::Unsupported {
                        node: node.name.clone(),
                        message: format!("its input `{}` has no value", graph.node(*i).name),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut last = id;
            let kernel = match &node.op {
                Op::Input(_) => {
                    return Err(ExecError::Ir(effnet_ir::IrError::InputCount(2)));
                }
                Op::Dropout { .. } | Op::StochasticDepth { .. } => {
                    node_value[id.index()] = Some(input_values[0]);
                    continue;
                }
                Op::Activation(Activation::Softmax) if logits && id == output_node => {
                    node_value[id.index()] = Some(input_values[0]);
                    continue;
                }
                Op::Rescale(r) => Kernel::Affine {
                    scale: r.scale.iter().map(|&v| v as f32).collect(),
                    offset: r.offset.iter().map(|&v| v as f32).collect(),
                },
                Op::Normalize(norm) => {
                    let var = weights(graph, id, &norm.variance)?;
                    Kernel::Normalize {
                        mean: weights(graph, id, &norm.mean)?,
                        divisor: var
                            .iter()
                            .map(|v| v.sqrt().max(norm.std_floor as f32))
                            .collect(),
                    }
                }
                Op::BatchNorm(bn) => {
                    let (scale, shift) = bn_affine(graph, id, bn)?;
                    Kernel::Affine {
                        scale: scale.iter().map(|&v| v as f32).collect(),
                        offset: shift.iter().map(|&v| v as f32).collect(),
                    }
                }
                Op::Conv2d(conv) => {
                    // Weights are widened and folded later, on every core.
                    let (weight, scale, shift) = (Vec::new(), Vec::new(), Vec::new());
                    let mut act = Act::None;
                    let mut folded = None;
                    if let Some(next) = sole_consumer(last) {
                        if let Op::BatchNorm(bn) = &graph.node(next).op {
                            if bn.channels == conv.out_channels {
                                folded = Some(next);
                                absorbed[next.index()] = true;
                                folded_bn += 1;
                                last = next;
                            }
                        }
                    }
                    conv_jobs.push((steps.len(), id, folded));
                    if let Some(next) = sole_consumer(last) {
                        if let Op::Activation(a) = &graph.node(next).op {
                            if let Some(a) = act_of(*a) {
                                act = a;
                                absorbed[next.index()] = true;
                                fused_act += 1;
                                last = next;
                            }
                        }
                    }
                    Kernel::Conv(Box::new(ConvStep {
                        in_channels: conv.in_channels,
                        out_channels: conv.out_channels,
                        groups: conv.groups,
                        kernel: conv.kernel,
                        stride: conv.stride,
                        dilation: conv.dilation,
                        padding: conv.padding,
                        weight,
                        scale,
                        shift,
                        act,
                        depthwise: conv.is_depthwise() && conv.out_channels == conv.in_channels,
                    }))
                }
                Op::Activation(Activation::Softmax) => Kernel::Softmax,
                Op::Activation(a) => Kernel::Act(act_of(*a).expect("not softmax")),
                Op::GlobalAvgPool { keep_dims } => Kernel::GlobalPool {
                    keep_dims: *keep_dims,
                },
                Op::Mul => Kernel::Mul,
                Op::Add => Kernel::Add,
                Op::Dense(d) => {
                    let weight = weights(graph, id, &d.weight)?;
                    let bias = match &d.bias {
                        Some(b) => weights(graph, id, b)?,
                        None => vec![0.0; d.out_features],
                    };
                    if weight.len() != d.in_features * d.out_features
                        || bias.len() != d.out_features
                    {
                        return Err(ExecError::Ir(effnet_ir::IrError::ParamShape {
                            node: node.name.clone(),
                            param: "weight",
                            expected: vec![d.out_features, d.in_features],
                            found: d.weight.shape().to_vec(),
                        }));
                    }
                    Kernel::Dense {
                        in_features: d.in_features,
                        out_features: d.out_features,
                        weight,
                        bias,
                    }
                }
                Op::Flatten => Kernel::Flatten,
            };
            let output = values;
            values += 1;
            node_value[last.index()] = Some(output);
            steps.push(Step {
                kernel,
                inputs: input_values,
                output,
                name: graph.node(last).name.clone(),
            });
        }
        let prepared: Vec<ConvParams> = conv_jobs
            .par_iter()
            .map(|&(_, conv, bn)| conv_weights(graph, conv, bn))
            .collect::<Result<_, _>>()?;
        for (&(step, _, _), (weight, scale, shift)) in conv_jobs.iter().zip(prepared) {
            if let Kernel::Conv(c) = &mut steps[step].kernel {
                c.weight = weight;
                c.scale = scale;
                c.shift = shift;
            }
        }
        let output = node_value[output_node.index()].ok_or_else(|| ExecError::Unsupported {
            node: graph.node(output_node).name.clone(),
            message: "the graph output has no value".into(),
        })?;
        let mut uses = vec![0usize; values];
        for step in &steps {
            for &v in &step.inputs {
                uses[v] += 1;
            }
        }
        Ok(Plan {
            steps,
            values,
            input: 0,
            input_channels,
            output,
            node_value,
            uses,
            folded_bn,
            fused_act,
        })
    }
}
