use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::shape::TensorShape;
use crate::{IrError, Op, Shapes, Stage, Tag, Tensor};

/// Identifies a node of a [`Graph`].
pub type NodeId = NodeIndex<u32>;

/// One operation with its source name and its place in the structure.
#[derive(Clone, Debug)]
pub struct Node {
    /// The name the source gave it (a Keras layer, a state_dict prefix); unique by convention.
    pub name: String,
    /// Stage, block and role.
    pub tag: Tag,
    /// The operation.
    pub op: Op,
}

/// The normalization a caller must apply to raw pixels before the graph input, for sources
/// whose preprocessing lives outside the model (PyTorch: `Normalize(mean, std)` on 0–1 inputs).
/// Keras models carry theirs inside the graph as `Rescale`/`Normalize` nodes instead.
#[derive(Clone, Debug, PartialEq)]
pub struct InputNormalization {
    /// Factor taking raw pixel values to the range `mean`/`std` refer to (1/255 for 0–1).
    pub pixel_scale: f64,
    /// Per-channel mean.
    pub mean: Vec<f64>,
    /// Per-channel standard deviation.
    pub std: Vec<f64>,
}

/// Facts about a graph as a whole.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphMeta {
    /// The naming scheme the graph was read with or built for (`torchvision`, `keras`, …).
    pub naming: Option<String>,
    /// Where the graph came from: a file path, or `spec:b0`.
    pub source: Option<String>,
    /// Preprocessing the caller must apply, when the source keeps it outside the model.
    pub input_normalization: Option<InputNormalization>,
}

/// A directed acyclic graph of typed ops. Edges run from producer to consumer and carry the
/// consumer's input slot. Nodes can only take inputs that already exist, so insertion order is
/// a topological order and cycles cannot be built.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    inner: DiGraph<Node, usize, u32>,
    outputs: Vec<NodeId>,
    /// Facts about the whole graph.
    pub meta: GraphMeta,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Graph::default()
    }

    /// Adds `node` fed by `inputs` (in slot order). Fails when the count does not match the
    /// op's arity or an input is not in the graph.
    pub fn add(&mut self, node: Node, inputs: &[NodeId]) -> Result<NodeId, IrError> {
        let expected = node.op.arity();
        if inputs.len() != expected {
            return Err(IrError::Arity {
                node: node.name,
                op: node.op.kind(),
                expected,
                found: inputs.len(),
            });
        }
        if let Some(slot) = inputs
            .iter()
            .position(|i| i.index() >= self.inner.node_count())
        {
            return Err(IrError::DanglingInput {
                node: node.name,
                slot,
            });
        }
        let id = self.inner.add_node(node);
        for (slot, &input) in inputs.iter().enumerate() {
            self.inner.add_edge(input, id, slot);
        }
        Ok(id)
    }

    /// Shorthand for [`Graph::add`] with a fresh [`Node`].
    pub fn add_op(
        &mut self,
        name: impl Into<String>,
        tag: Tag,
        op: Op,
        inputs: &[NodeId],
    ) -> Result<NodeId, IrError> {
        self.add(
            Node {
                name: name.into(),
                tag,
                op,
            },
            inputs,
        )
    }

    /// Declares the graph outputs.
    pub fn set_outputs(&mut self, outputs: Vec<NodeId>) {
        self.outputs = outputs;
    }

    /// The graph outputs.
    pub fn outputs(&self) -> &[NodeId] {
        &self.outputs
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.inner.node_count()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.inner.node_count() == 0
    }

    /// The node `id`.
    ///
    /// # Panics
    /// When `id` is not a node of this graph.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.inner[id]
    }

    /// The node `id`, mutably (to bind weights or change semantics in place).
    ///
    /// # Panics
    /// When `id` is not a node of this graph.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.inner[id]
    }

    /// Every node with its id, in topological order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = (NodeId, &Node)> + '_ {
        self.inner
            .node_indices()
            .map(move |id| (id, &self.inner[id]))
    }

    /// The paper stage number of the last stage of blocks (1 when there is no block).
    pub fn last_block_stage(&self) -> u8 {
        self.nodes()
            .filter_map(|(_, n)| n.tag.stage.blocks())
            .max()
            .unwrap_or(Stage::STEM_NUMBER)
    }

    /// The paper stage number of `stage` in this graph (the head follows the last block stage).
    pub fn stage_number(&self, stage: Stage) -> u8 {
        stage.number(self.last_block_stage())
    }

    /// The first node with this source name.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.nodes().find(|(_, n)| n.name == name).map(|(id, _)| id)
    }

    /// The inputs of `id`, in slot order.
    pub fn inputs(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(usize, NodeId)> = self
            .inner
            .edges_directed(id, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        edges.sort_unstable();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// The nodes that read the output of `id`, each once, in topological order.
    pub fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self
            .inner
            .neighbors_directed(id, Direction::Outgoing)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The single input node.
    pub fn input(&self) -> Result<NodeId, IrError> {
        let inputs: Vec<NodeId> = self
            .nodes()
            .filter(|(_, n)| matches!(n.op, Op::Input(_)))
            .map(|(id, _)| id)
            .collect();
        match inputs.as_slice() {
            [one] => Ok(*one),
            other => Err(IrError::InputCount(other.len())),
        }
    }

    /// `(trainable, non_trainable)` parameter counts over all nodes.
    pub fn param_counts(&self) -> (u64, u64) {
        let mut counts = (0u64, 0u64);
        for (_, node) in self.nodes() {
            for p in node.op.params() {
                let n = p.tensor.numel() as u64;
                if p.trainable {
                    counts.0 += n;
                } else {
                    counts.1 += n;
                }
            }
        }
        counts
    }

    /// The underlying petgraph graph, for algorithms this crate does not offer.
    pub fn petgraph(&self) -> &DiGraph<Node, usize, u32> {
        &self.inner
    }

    /// Checks every node's attributes and parameter shapes, the channel flow, and that the
    /// graph has one input and at least one output. Spatial sizes are checked when the input
    /// records a resolution.
    pub fn validate(&self) -> Result<(), IrError> {
        if self.outputs.is_empty() {
            return Err(IrError::NoOutput);
        }
        for (_, node) in self.nodes() {
            check_node(node)?;
        }
        self.infer_shapes(1, None).map(|_| ())
    }

    /// The output shape of every node for a batch of `batch` images of `resolution`
    /// (height, width); `None` takes the resolution the input records, if any, and otherwise
    /// leaves spatial sizes unknown.
    pub fn infer_shapes(
        &self,
        batch: usize,
        resolution: Option<[usize; 2]>,
    ) -> Result<Shapes, IrError> {
        self.input()?;
        let mut shapes: Vec<TensorShape> = Vec::with_capacity(self.len());
        for (id, node) in self.nodes() {
            let inputs: Vec<(NodeId, TensorShape)> = self
                .inputs(id)
                .into_iter()
                .map(|i| (i, shapes[i.index()]))
                .collect();
            let shape = self.infer_node(node, &inputs, batch, resolution)?;
            shapes.push(shape);
        }
        Ok(Shapes(shapes))
    }

    fn infer_node(
        &self,
        node: &Node,
        inputs: &[(NodeId, TensorShape)],
        batch: usize,
        resolution: Option<[usize; 2]>,
    ) -> Result<TensorShape, IrError> {
        let name = || node.name.clone();
        let input_name = |slot: usize| self.node(inputs[slot].0).name.clone();
        let expect_channels = |slot: usize, expected: usize| {
            let found = inputs[slot].1.channels();
            if found == expected {
                Ok(())
            } else {
                Err(IrError::ChannelMismatch {
                    node: name(),
                    input: input_name(slot),
                    expected,
                    found,
                })
            }
        };
        let expect_map = |slot: usize| match inputs[slot].1 {
            TensorShape::Map {
                batch,
                channels,
                spatial,
            } => Ok((batch, channels, spatial)),
            other => Err(IrError::Rank {
                node: name(),
                input: input_name(slot),
                expected: "a feature map",
                found: other.to_string(),
            }),
        };
        let same = || Ok(inputs[0].1);
        match &node.op {
            Op::Input(input) => Ok(TensorShape::Map {
                batch,
                channels: input.channels,
                spatial: resolution.or(input.resolution),
            }),
            Op::Rescale(r) => {
                let c = inputs[0].1.channels();
                for len in [r.scale.len(), r.offset.len()] {
                    if len != 1 && len != c {
                        return Err(IrError::ChannelMismatch {
                            node: name(),
                            input: input_name(0),
                            expected: len,
                            found: c,
                        });
                    }
                }
                same()
            }
            Op::Normalize(n) => {
                expect_channels(0, n.channels)?;
                same()
            }
            Op::BatchNorm(bn) => {
                expect_channels(0, bn.channels)?;
                same()
            }
            Op::Activation(_) | Op::Dropout { .. } | Op::StochasticDepth { .. } => same(),
            Op::Conv2d(conv) => {
                let (batch, _, spatial) = expect_map(0)?;
                expect_channels(0, conv.in_channels)?;
                let spatial = match spatial {
                    Some(hw) => Some(
                        conv.padding
                            .resolve(&node.name, hw, conv.kernel, conv.stride, conv.dilation)?
                            .output,
                    ),
                    None => None,
                };
                Ok(TensorShape::Map {
                    batch,
                    channels: conv.out_channels,
                    spatial,
                })
            }
            Op::GlobalAvgPool { keep_dims } => {
                let (batch, channels, _) = expect_map(0)?;
                Ok(if *keep_dims {
                    TensorShape::Map {
                        batch,
                        channels,
                        spatial: Some([1, 1]),
                    }
                } else {
                    TensorShape::Vector {
                        batch,
                        features: channels,
                    }
                })
            }
            Op::Mul => broadcast(node, inputs, true),
            Op::Add => broadcast(node, inputs, false),
            Op::Dense(dense) => match inputs[0].1 {
                TensorShape::Vector { batch, .. } => {
                    expect_channels(0, dense.in_features)?;
                    Ok(TensorShape::Vector {
                        batch,
                        features: dense.out_features,
                    })
                }
                other => Err(IrError::Rank {
                    node: name(),
                    input: input_name(0),
                    expected: "a vector (insert a Flatten)",
                    found: other.to_string(),
                }),
            },
            Op::Flatten => match inputs[0].1 {
                TensorShape::Map {
                    batch,
                    channels,
                    spatial: Some([h, w]),
                } => {
                    let features = channels
                        .checked_mul(h)
                        .and_then(|v| v.checked_mul(w))
                        .ok_or_else(|| IrError::ShapeOverflow(vec![channels, h, w]))?;
                    Ok(TensorShape::Vector { batch, features })
                }
                vector @ TensorShape::Vector { .. } => Ok(vector),
                other => Err(IrError::Rank {
                    node: name(),
                    input: input_name(0),
                    expected: "a map of known size",
                    found: other.to_string(),
                }),
            },
        }
    }
}

/// Shape of an element-wise op; `allow_gate` lets a `C×1×1` operand broadcast (SE scaling).
fn broadcast(
    node: &Node,
    inputs: &[(NodeId, TensorShape)],
    allow_gate: bool,
) -> Result<TensorShape, IrError> {
    let (a, b) = (inputs[0].1, inputs[1].1);
    let mismatch = || IrError::ShapeMismatch {
        node: node.name.clone(),
        left: a.to_string(),
        right: b.to_string(),
    };
    match (a, b) {
        (
            TensorShape::Map {
                batch: na,
                channels: ca,
                spatial: sa,
            },
            TensorShape::Map {
                batch: nb,
                channels: cb,
                spatial: sb,
            },
        ) => {
            if na != nb || ca != cb {
                return Err(mismatch());
            }
            let gate = Some([1, 1]);
            let spatial = match (sa, sb) {
                _ if sa == sb => sa,
                (_, s) if allow_gate && s == gate => sa,
                (s, _) if allow_gate && s == gate => sb,
                _ => return Err(mismatch()),
            };
            Ok(TensorShape::Map {
                batch: na,
                channels: ca,
                spatial,
            })
        }
        (TensorShape::Vector { .. }, TensorShape::Vector { .. }) if a == b => Ok(a),
        _ => Err(mismatch()),
    }
}

/// Attribute ranges and parameter shapes of one node.
fn check_node(node: &Node) -> Result<(), IrError> {
    let name = || node.name.clone();
    let bad = |message: String| IrError::BadAttribute {
        node: name(),
        message,
    };
    let check_shape = |param: &'static str, tensor: &Tensor, expected: Vec<usize>| {
        if tensor.shape() == expected.as_slice() {
            Ok(())
        } else {
            Err(IrError::ParamShape {
                node: name(),
                param,
                expected,
                found: tensor.shape().to_vec(),
            })
        }
    };
    let check_rate = |rate: f64| {
        if (0.0..1.0).contains(&rate) {
            Ok(())
        } else {
            Err(bad(format!("drop rate {rate} is outside [0, 1)")))
        }
    };
    match &node.op {
        Op::Input(input) => {
            if input.channels == 0 {
                return Err(bad("the input has 0 channels".into()));
            }
        }
        Op::Rescale(r) => {
            if r.scale.is_empty() || r.offset.is_empty() {
                return Err(bad("scale and offset need at least one value".into()));
            }
        }
        Op::Normalize(n) => {
            check_shape("mean", &n.mean, vec![n.channels])?;
            check_shape("variance", &n.variance, vec![n.channels])?;
        }
        Op::Conv2d(conv) => {
            if conv.kernel.contains(&0) || conv.stride.contains(&0) || conv.dilation.contains(&0) {
                return Err(bad(format!(
                    "kernel {:?}, stride {:?} and dilation {:?} must be positive",
                    conv.kernel, conv.stride, conv.dilation
                )));
            }
            if conv.in_channels == 0 || conv.out_channels == 0 {
                return Err(bad("a convolution needs channels".into()));
            }
            if conv.groups == 0
                || conv.in_channels % conv.groups != 0
                || conv.out_channels % conv.groups != 0
            {
                return Err(IrError::BadGroups {
                    node: name(),
                    groups: conv.groups,
                    in_channels: conv.in_channels,
                    out_channels: conv.out_channels,
                });
            }
            check_shape("weight", &conv.weight, conv.expected_weight_shape())?;
            if let Some(bias) = &conv.bias {
                check_shape("bias", bias, vec![conv.out_channels])?;
            }
        }
        Op::BatchNorm(bn) => {
            if !(bn.eps.is_finite() && bn.eps >= 0.0) {
                return Err(bad(format!(
                    "epsilon {} is not a non-negative number",
                    bn.eps
                )));
            }
            for (param, tensor) in [("gamma", &bn.gamma), ("beta", &bn.beta)] {
                if let Some(t) = tensor {
                    check_shape(param, t, vec![bn.channels])?;
                }
            }
            check_shape("running_mean", &bn.mean, vec![bn.channels])?;
            check_shape("running_var", &bn.var, vec![bn.channels])?;
        }
        Op::Dense(d) => {
            check_shape("weight", &d.weight, vec![d.out_features, d.in_features])?;
            if let Some(bias) = &d.bias {
                check_shape("bias", bias, vec![d.out_features])?;
            }
        }
        Op::Dropout { rate } | Op::StochasticDepth { rate } => check_rate(*rate)?,
        Op::Activation(_) | Op::GlobalAvgPool { .. } | Op::Mul | Op::Add | Op::Flatten => {}
    }
    Ok(())
}
