//! ONNX nodes → the IR's typed ops.
//!
//! Nodes are visited in the file's order (ONNX requires a topological one; an input used
//! before it is produced is refused). Every ONNX value becomes a feature (an IR node), a
//! constant (an initializer, a `Constant`, or what constant inputs fold to), or a pattern
//! still open: `Sigmoid(x)` waits for the `Mul(x, ·)` that makes it swish, `Sub(x, mean)` for
//! the `Div` that makes it a normalization, `Pad` for the `Conv` that takes its pads. What a
//! pattern does not absorb is emitted as it is. `Cast`, `Identity` and `Dropout` pass their
//! input through; the input's `Transpose` from NHWC is the input itself.

use std::collections::HashMap;
use std::sync::Arc;

use effnet_io::Budget;
use effnet_ir::{
    Activation, BatchNorm, Conv2d, DType, Dense, Graph, Input, NodeId, Normalize, Op, Padding,
    Rescale, Role, Storage, Tag, Tensor,
};

use super::wire::{self, Attribute};
use super::{External, Failure, materialize};

/// What a node came from: position, name, op type.
pub(crate) type Origin = (usize, String, String);

pub(crate) struct Translated {
    pub graph: Graph,
    pub origins: Vec<Origin>,
    pub used: Vec<String>,
    pub constants: Vec<(String, Tensor)>,
    pub nhwc: bool,
}

#[derive(Clone)]
enum Val {
    /// An IR node's output; `nhwc` while the input has not been transposed yet.
    Feature { id: NodeId, nhwc: bool },
    /// A constant, with the initializer it came from.
    Const(Tensor, Option<String>),
    /// `Sigmoid(x)` not emitted yet.
    Sigmoid { x: NodeId, at: usize },
    /// `x − mean` on the input, not emitted yet.
    Centered {
        x: NodeId,
        nhwc: bool,
        mean: Vec<f64>,
        at: usize,
    },
    /// The pooled map `x` as a vector, not emitted yet (a `Flatten` where a vector is read;
    /// nothing where it is reshaped back to the map).
    Flat { x: NodeId, at: usize },
    /// `Pad(x)` with `[top, left, bottom, right]`, not emitted yet.
    Padded { x: NodeId, pads: [usize; 4] },
}

struct T<'a> {
    graph: Graph,
    origins: Vec<Origin>,
    values: HashMap<String, Val>,
    used: Vec<String>,
    constants: Vec<(String, Tensor)>,
    uses: HashMap<&'a str, usize>,
    channels: usize,
    nhwc_input: bool,
    transposed: bool,
    budget: &'a Budget,
}

fn attr<'n>(node: &'n wire::Node, name: &str) -> Option<&'n Attribute> {
    node.attributes.iter().find(|a| a.name == name)
}

fn placeholder() -> Tag {
    Tag::stem(Role::Input)
}

fn f32s(t: &Tensor) -> Result<Vec<f32>, String> {
    t.to_f32_vec().map_err(|e| e.to_string())
}

fn i64s(t: &Tensor) -> Result<Vec<i64>, String> {
    match t.dtype() {
        DType::I64 => Ok(t
            .data()
            .ok_or("no data")?
            .as_slice()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()),
        _ => Ok(f32s(t)?.into_iter().map(|v| v as i64).collect()),
    }
}

fn usize_of(v: i64, what: &str) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v <= 1 << 16)
        .ok_or_else(|| format!("{what} {v} out of range"))
}

pub(crate) fn translate(
    graph: &wire::Graph,
    initializers: &[(String, Tensor)],
    storage: &Arc<dyn Storage>,
    budget: &Budget,
    external: &mut External,
) -> Result<Translated, Failure> {
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for n in &graph.nodes {
        for i in &n.inputs {
            *uses.entry(i.as_str()).or_default() += 1;
        }
    }
    for o in &graph.outputs {
        *uses.entry(o.name.as_str()).or_default() += 1;
    }
    let mut t = T {
        graph: Graph::new(),
        origins: Vec::new(),
        values: HashMap::new(),
        used: Vec::new(),
        constants: Vec::new(),
        uses,
        channels: 3,
        nhwc_input: false,
        transposed: false,
        budget,
    };
    for (name, tensor) in initializers {
        t.values
            .insert(name.clone(), Val::Const(tensor.clone(), Some(name.clone())));
    }
    // The image input: the one graph input that is not an initializer.
    let inputs: Vec<&wire::ValueInfo> = graph
        .inputs
        .iter()
        .filter(|i| !t.values.contains_key(&i.name))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(Failure::Invalid(format!(
            "the graph has {} inputs besides its initializers; an EfficientNet has one image input",
            inputs.len()
        )));
    };
    if input.elem_type.is_some_and(|e| e != 1) {
        return Err(Failure::Invalid(format!(
            "the input `{}` is not float32 (element type {})",
            effnet_io::escape(&input.name),
            input.elem_type.unwrap_or_default()
        )));
    }
    let dims = input.dims.clone().unwrap_or_default();
    if dims.len() != 4 {
        return Err(Failure::Invalid(format!(
            "the input `{}` has rank {}; an image batch has rank 4",
            effnet_io::escape(&input.name),
            dims.len()
        )));
    }
    let (nhwc, channels, hw) = match (dims[1], dims[3]) {
        (Some(c @ 1..=4), _) => (false, c, [dims[2], dims[3]]),
        (_, Some(c @ 1..=4)) => (true, c, [dims[1], dims[2]]),
        _ => {
            return Err(Failure::Invalid(format!(
                "the input `{}` has shape {:?}: neither NCHW nor NHWC with 1–4 channels",
                effnet_io::escape(&input.name),
                dims
            )));
        }
    };
    let resolution = match hw {
        [Some(h), Some(w)] if h > 0 && w > 0 && h <= 1 << 16 && w <= 1 << 16 => {
            Some([h as usize, w as usize])
        }
        _ => None,
    };
    t.channels = channels as usize;
    t.nhwc_input = nhwc;
    let id = t
        .graph
        .add_op(
            input.name.clone(),
            Tag::stem(Role::Input),
            Op::Input(Input {
                channels: channels as usize,
                resolution,
            }),
            &[],
        )
        .map_err(|e| Failure::Invalid(e.to_string()))?;
    t.origins.push((0, input.name.clone(), "input".into()));
    t.values
        .insert(input.name.clone(), Val::Feature { id, nhwc });

    for (position, node) in graph.nodes.iter().enumerate() {
        let fail = |message: String| Failure::Node {
            position,
            node: node.name.clone(),
            op: node.op_type.clone(),
            message,
        };
        budget.work(1 + node.inputs.len() as u64, || "the ONNX graph".into())?;
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(fail(format!(
                "an op of domain `{}`, outside the standard ONNX opset",
                effnet_io::escape(&node.domain)
            )));
        }
        if node.attributes.iter().any(|a| a.graphs > 0) {
            return Err(fail("a sub-graph attribute (control flow)".into()));
        }
        if let Some(a) = node.attributes.iter().find(|a| a.ref_attr_name.is_some()) {
            return Err(fail(format!(
                "attribute `{}` refers to a function's attribute",
                effnet_io::escape(&a.name)
            )));
        }
        let out = t.node(node, position, storage, external).map_err(fail)?;
        let Some(first) = node.outputs.first() else {
            return Err(fail("a node without outputs".into()));
        };
        // Extra outputs (BatchNormalization's statistics, Dropout's mask) may not be read.
        for extra in node.outputs.iter().skip(1) {
            if !extra.is_empty() && t.uses.get(extra.as_str()).copied().unwrap_or(0) > 0 {
                return Err(fail(format!(
                    "its output `{}` is read, which inference does not produce",
                    effnet_io::escape(extra)
                )));
            }
        }
        if t.values.contains_key(first) {
            return Err(fail(format!(
                "its output `{}` is produced twice",
                effnet_io::escape(first)
            )));
        }
        if let Val::Const(tensor, _) = &out {
            t.constants.push((first.clone(), tensor.clone()));
        }
        t.values.insert(first.clone(), out);
    }
    let [output] = graph.outputs.as_slice() else {
        return Err(Failure::Invalid(format!(
            "the graph has {} outputs; an EfficientNet classifier has one",
            graph.outputs.len()
        )));
    };
    let val = t.values.get(&output.name).cloned().ok_or_else(|| {
        Failure::Invalid(format!(
            "the output `{}` is produced by no node",
            effnet_io::escape(&output.name)
        ))
    })?;
    let end = t
        .feature(&val, graph.nodes.len())
        .map_err(Failure::Invalid)?;
    t.graph.set_outputs(vec![end]);
    // Every node was read into the graph or refused: the initializers used are those any
    // node reads.
    let names: std::collections::HashSet<&str> =
        initializers.iter().map(|(n, _)| n.as_str()).collect();
    let mut used: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for n in &graph.nodes {
        for i in &n.inputs {
            if names.contains(i.as_str()) && seen.insert(i.as_str()) {
                used.push(i.clone());
            }
        }
    }
    t.used = used;
    Ok(Translated {
        graph: t.graph,
        origins: t.origins,
        used: t.used,
        constants: t.constants,
        nhwc: t.nhwc_input,
    })
}

impl T<'_> {
    fn emit(
        &mut self,
        node: &wire::Node,
        at: usize,
        op: Op,
        inputs: &[NodeId],
    ) -> Result<NodeId, String> {
        self.budget
            .memory(512, || "the graph".into())
            .map_err(|e| e.to_string())?;
        let id = self
            .graph
            .add_op(node.name.clone(), placeholder(), op, inputs)
            .map_err(|e| e.to_string())?;
        self.origins
            .push((at, node.name.clone(), node.op_type.clone()));
        Ok(id)
    }

    /// The IR node a value is, emitting an open pattern as it is.
    fn feature(&mut self, v: &Val, at: usize) -> Result<NodeId, String> {
        match v {
            Val::Feature { id, nhwc } => {
                if *nhwc && !self.is_preprocessing(*id) {
                    return Err("a feature map still in NHWC layout".into());
                }
                Ok(*id)
            }
            Val::Const(..) => Err("a constant where a feature map belongs".into()),
            Val::Sigmoid { x, at } => {
                let id = self
                    .graph
                    .add_op(
                        format!("sigmoid@{at}"),
                        placeholder(),
                        Op::Activation(Activation::Sigmoid),
                        &[*x],
                    )
                    .map_err(|e| e.to_string())?;
                self.origins.push((*at, format!("#{at}"), "Sigmoid".into()));
                Ok(id)
            }
            Val::Centered { x, mean, at, .. } => {
                let id = self
                    .graph
                    .add_op(
                        format!("sub@{at}"),
                        placeholder(),
                        Op::Rescale(Rescale {
                            scale: vec![1.0],
                            offset: mean.iter().map(|m| -m).collect(),
                        }),
                        &[*x],
                    )
                    .map_err(|e| e.to_string())?;
                self.origins.push((*at, format!("#{at}"), "Sub".into()));
                Ok(id)
            }
            Val::Flat { x, at } => {
                let id = self
                    .graph
                    .add_op(format!("flatten@{at}"), placeholder(), Op::Flatten, &[*x])
                    .map_err(|e| e.to_string())?;
                self.origins.push((*at, format!("#{at}"), "Flatten".into()));
                Ok(id)
            }
            Val::Padded { .. } => Err(format!("a Pad (node #{at}) that no convolution takes")),
        }
    }

    fn input(&self, node: &wire::Node, slot: usize) -> Result<Option<Val>, String> {
        match node.inputs.get(slot) {
            None => Ok(None),
            Some(name) if name.is_empty() => Ok(None),
            Some(name) => self.values.get(name).cloned().map(Some).ok_or_else(|| {
                format!(
                    "input `{}` is produced by no node before it",
                    effnet_io::escape(name)
                )
            }),
        }
    }

    /// The axes a `ReduceMean` or `Squeeze` reduces (attribute before opset 18, second input
    /// after), negative ones counted from the 4-D end, sorted.
    fn spatial_axes(&self, node: &wire::Node) -> Result<Vec<i64>, String> {
        let mut axes = attr(node, "axes")
            .map(|a| a.ints.clone())
            .unwrap_or_default();
        if axes.is_empty() {
            if let Some(Val::Const(t, _)) = self.input(node, 1)? {
                axes = i64s(&t)?;
            }
        }
        let mut axes: Vec<i64> = axes
            .iter()
            .map(|&a| if a < 0 { a + 4 } else { a })
            .collect();
        axes.sort_unstable();
        Ok(axes)
    }

    fn need(&self, node: &wire::Node, slot: usize) -> Result<Val, String> {
        self.input(node, slot)?
            .ok_or_else(|| format!("input #{slot} is missing"))
    }

    fn constant(&mut self, node: &wire::Node, slot: usize) -> Result<Tensor, String> {
        match self.need(node, slot)? {
            Val::Const(t, source) => {
                if let Some(s) = source {
                    self.used.push(s);
                }
                Ok(t)
            }
            _ => Err(format!("input #{slot} is not a constant")),
        }
    }

    fn is_preprocessing(&self, id: NodeId) -> bool {
        matches!(
            self.graph.node(id).op,
            Op::Input(_) | Op::Rescale(_) | Op::Normalize(_)
        )
    }

    /// One value per channel (or one for all) of a constant applied to the input.
    fn per_channel(&self, c: &Tensor, nhwc: bool) -> Result<Vec<f64>, String> {
        let values = f32s(c)?;
        let shape = c.shape();
        let ok = if values.len() == 1 {
            true
        } else if values.len() == self.channels {
            let lead_ones = |s: &[usize]| s.iter().all(|&d| d == 1);
            if nhwc {
                shape.last() == Some(&self.channels) && lead_ones(&shape[..shape.len() - 1])
            } else {
                // [C, 1, 1] or [1, C, 1, 1]
                let n = shape.len();
                n >= 3
                    && shape[n - 3] == self.channels
                    && shape[n - 2] == 1
                    && shape[n - 1] == 1
                    && lead_ones(&shape[..n - 3])
            }
        } else {
            false
        };
        if !ok {
            return Err(format!(
                "a constant of shape {shape:?} on the input: not one value per channel"
            ));
        }
        Ok(values.into_iter().map(f64::from).collect())
    }

    fn node(
        &mut self,
        node: &wire::Node,
        at: usize,
        storage: &Arc<dyn Storage>,
        external: &mut External,
    ) -> Result<Val, String> {
        let op = node.op_type.as_str();
        // Constants fold whatever the op: shapes, casts, arithmetic on weights.
        if op == "Constant" {
            let a = node
                .attributes
                .first()
                .ok_or("a Constant without a value")?;
            let tensor = match a.name.as_str() {
                "value" => {
                    let msg =
                        a.t.as_ref()
                            .ok_or("a Constant `value` that is not a tensor")?;
                    materialize(msg, storage, self.budget, external)?
                }
                "value_float" => {
                    Tensor::from_f32(vec![], &[a.f.ok_or("value_float without a float")?])
                        .map_err(|e| e.to_string())?
                }
                "value_floats" => {
                    Tensor::from_f32(vec![a.floats.len()], &a.floats).map_err(|e| e.to_string())?
                }
                "value_int" => int_tensor(vec![], &[a.i.ok_or("value_int without an int")?])?,
                "value_ints" => int_tensor(vec![a.ints.len()], &a.ints)?,
                other => {
                    return Err(format!(
                        "a Constant's `{other}`, which effnet does not read"
                    ));
                }
            };
            return Ok(Val::Const(tensor, None));
        }
        let all_const = !node.inputs.is_empty()
            && node
                .inputs
                .iter()
                .filter(|n| !n.is_empty())
                .all(|n| matches!(self.values.get(n), Some(Val::Const(..))));
        if all_const {
            // ConstantOfShape's value is a tensor attribute, read like an initializer.
            let value = match (op, attr(node, "value").and_then(|a| a.t.as_ref())) {
                ("ConstantOfShape", Some(msg)) => {
                    Some(materialize(msg, storage, self.budget, external)?)
                }
                _ => None,
            };
            return self.fold(node, value);
        }
        match op {
            "Identity" | "Dropout" => {
                if op == "Dropout" {
                    if let Some(Val::Const(t, _)) = self.input(node, 2)? {
                        if i64s(&t)?.first().copied().unwrap_or(0) != 0 {
                            return Err("Dropout in training mode".into());
                        }
                    }
                }
                self.need(node, 0)
            }
            "Cast" => {
                let to = attr(node, "to")
                    .and_then(|a| a.i)
                    .ok_or("a Cast without `to`")?;
                if !matches!(to, 1 | 10) {
                    return Err(format!(
                        "a Cast of a feature map to data type {to} (effnet reads float32 and float16 computation)"
                    ));
                }
                self.need(node, 0)
            }
            "Transpose" => {
                let v = self.need(node, 0)?;
                let perm = attr(node, "perm")
                    .map(|a| a.ints.clone())
                    .unwrap_or_default();
                match v {
                    Val::Feature { id, nhwc: true } if perm == [0, 3, 1, 2] => {
                        self.transposed = true;
                        Ok(Val::Feature { id, nhwc: false })
                    }
                    _ => Err(format!(
                        "a Transpose (perm {perm:?}) other than the input's NHWC → NCHW"
                    )),
                }
            }
            "Conv" => self.conv(node, at),
            "Shape" => self.shape_of(node, at),
            "BatchNormalization" => {
                let x = self.need(node, 0)?;
                let x = self.feature(&x, at)?;
                if attr(node, "training_mode").and_then(|a| a.i).unwrap_or(0) != 0 {
                    return Err("BatchNormalization in training mode".into());
                }
                let eps = attr(node, "epsilon").and_then(|a| a.f).unwrap_or(1e-5);
                let momentum = attr(node, "momentum").and_then(|a| a.f).map(f64::from);
                let gamma = self.constant(node, 1)?;
                let beta = self.constant(node, 2)?;
                let mean = self.constant(node, 3)?;
                let var = self.constant(node, 4)?;
                let channels = mean.numel();
                if !(eps.is_finite() && eps > 0.0 && eps < 1.0) {
                    return Err(format!("epsilon {eps} outside (0, 1)"));
                }
                let op = Op::BatchNorm(BatchNorm {
                    channels,
                    // The f32 attribute as the decimal it was written from (1e-3, not
                    // 0.0010000000474974513).
                    eps: shortest(eps),
                    momentum,
                    gamma: Some(gamma),
                    beta: Some(beta),
                    mean,
                    var,
                });
                Ok(Val::Feature {
                    id: self.emit(node, at, op, &[x])?,
                    nhwc: false,
                })
            }
            "Sigmoid" => {
                let x = self.need(node, 0)?;
                let x = self.feature(&x, at)?;
                Ok(Val::Sigmoid { x, at })
            }
            "Relu" => self.unary(node, at, Op::Activation(Activation::Relu)),
            "Clip" => {
                let (lo, hi) = if let (Some(lo), Some(hi)) = (
                    attr(node, "min").and_then(|a| a.f),
                    attr(node, "max").and_then(|a| a.f),
                ) {
                    (Some(lo), Some(hi))
                } else {
                    let get = |s: &mut Self, slot| -> Result<Option<f32>, String> {
                        match s.input(node, slot)? {
                            None => Ok(None),
                            Some(Val::Const(t, _)) => Ok(f32s(&t)?.first().copied()),
                            Some(_) => Err("a Clip bound that is not a constant".into()),
                        }
                    };
                    (get(self, 1)?, get(self, 2)?)
                };
                let activation = match (lo, hi) {
                    (Some(l), Some(h)) if l == 0.0 && h == 6.0 => Activation::Relu6,
                    (Some(0.0), None) => Activation::Relu,
                    _ => {
                        return Err(format!(
                            "a Clip to [{lo:?}, {hi:?}], neither ReLU (0, ∞) nor ReLU6 (0, 6)"
                        ));
                    }
                };
                self.unary(node, at, Op::Activation(activation))
            }
            "Softmax" => {
                let axis = attr(node, "axis").and_then(|a| a.i).unwrap_or(-1);
                if !matches!(axis, 1 | -1) {
                    return Err(format!(
                        "a Softmax over axis {axis} (effnet reads the class axis)"
                    ));
                }
                self.unary(node, at, Op::Activation(Activation::Softmax))
            }
            "GlobalAveragePool" => self.unary(node, at, Op::GlobalAvgPool { keep_dims: true }),
            "ReduceMean" => {
                let axes = self.spatial_axes(node)?;
                if axes != [2, 3] {
                    return Err(format!(
                        "a ReduceMean over axes {axes:?}; effnet reads the spatial mean (axes 2, 3)"
                    ));
                }
                let keep = attr(node, "keepdims").and_then(|a| a.i).unwrap_or(1) != 0;
                self.unary(node, at, Op::GlobalAvgPool { keep_dims: keep })
            }
            "Flatten" => {
                let axis = attr(node, "axis").and_then(|a| a.i).unwrap_or(1);
                if axis != 1 {
                    return Err(format!("a Flatten from axis {axis} (effnet reads axis 1)"));
                }
                self.unary(node, at, Op::Flatten)
            }
            "Reshape" | "Squeeze" => {
                // The pooled map to a vector ([N, C, 1, 1] → [N, C]), and such a vector back to
                // the pooled map ([N, C] → [N, C, 1, 1], tf2onnx's SE).
                let v = self.need(node, 0)?;
                if let (Val::Flat { x, .. }, "Reshape") = (&v, op) {
                    let shape = i64s(&self.constant(node, 1)?)?;
                    if shape.len() == 4 && shape[2] == 1 && shape[3] == 1 {
                        return Ok(Val::Feature {
                            id: *x,
                            nhwc: false,
                        });
                    }
                    if shape.len() == 2 {
                        return Ok(v.clone());
                    }
                }
                let x = self.feature(&v, at)?;
                if op == "Reshape" && self.after_pool(x) {
                    // A 1×1 map reshaped to itself (tf2onnx inside SE).
                    let shape = i64s(&self.constant(node, 1)?)?;
                    if shape.len() == 4 && shape[2] == 1 && shape[3] == 1 {
                        return Ok(Val::Feature { id: x, nhwc: false });
                    }
                }
                let pooled = matches!(self.graph.node(x).op, Op::GlobalAvgPool { keep_dims: true });
                let target_ok = if op == "Reshape" {
                    let shape = i64s(&self.constant(node, 1)?)?;
                    shape.len() == 2
                        && (shape[1] == -1 || shape[0] == -1 || shape[0] == 0 || shape[1] > 0)
                } else {
                    self.spatial_axes(node)? == [2, 3]
                };
                if !(pooled && target_ok) {
                    return Err(format!(
                        "a {op} other than the pooled features' [N, C, 1, 1] → [N, C] (or back)"
                    ));
                }
                Ok(Val::Flat { x, at })
            }
            "Gemm" => {
                let x = self.need(node, 0)?;
                let x = self.feature(&x, at)?;
                for (name, want) in [("alpha", 1.0f32), ("beta", 1.0)] {
                    if attr(node, name)
                        .and_then(|a| a.f)
                        .is_some_and(|v| v != want)
                    {
                        return Err(format!("a Gemm with {name} ≠ 1"));
                    }
                }
                if attr(node, "transA").and_then(|a| a.i).unwrap_or(0) != 0 {
                    return Err("a Gemm with transA".into());
                }
                let w = self.constant(node, 1)?;
                let w = if attr(node, "transB").and_then(|a| a.i).unwrap_or(0) != 0 {
                    w
                } else {
                    w.permuted(&[1, 0]).map_err(|e| e.to_string())?
                };
                let bias = match self.input(node, 2)? {
                    None => None,
                    Some(_) => Some(self.constant(node, 2)?),
                };
                self.dense(node, at, x, w, bias)
            }
            "MatMul" => {
                let x = self.need(node, 0)?;
                let x = self.feature(&x, at)?;
                let w = self.constant(node, 1)?;
                let w = w.permuted(&[1, 0]).map_err(|e| e.to_string())?;
                self.dense(node, at, x, w, None)
            }
            "Pad" => {
                let v = self.need(node, 0)?;
                let x = self.feature(&v, at)?;
                let mode = attr(node, "mode")
                    .and_then(|a| a.s.clone())
                    .unwrap_or("constant".into());
                if mode != "constant" {
                    return Err(format!("a Pad in mode `{}`", effnet_io::escape(&mode)));
                }
                let pads = match attr(node, "pads") {
                    Some(a) => a.ints.clone(),
                    None => i64s(&self.constant(node, 1)?)?,
                };
                if let Some(Val::Const(c, _)) = self.input(node, 2)? {
                    if f32s(&c)?.iter().any(|&v| v != 0.0) {
                        return Err("a Pad with a value other than 0".into());
                    }
                }
                if self.input(node, 3)?.is_some() {
                    return Err("a Pad with explicit axes".into());
                }
                if pads.len() != 8 || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0 {
                    return Err(format!(
                        "pads {pads:?}: effnet reads zero padding of height and width"
                    ));
                }
                let p = |i: usize| usize_of(pads[i], "a pad");
                Ok(Val::Padded {
                    x,
                    pads: [p(2)?, p(3)?, p(6)?, p(7)?],
                })
            }
            "Mul" => self.mul(node, at),
            "Add" => self.add(node, at),
            "Sub" => {
                let a = self.need(node, 0)?;
                let Val::Feature { id, nhwc } = a else {
                    return Err("a Sub of something other than the input".into());
                };
                if !self.is_preprocessing(id) {
                    return Err("a Sub inside the network (effnet reads it only as the input's normalization)".into());
                }
                let mean = self.constant(node, 1)?;
                let mean = self.per_channel(&mean, nhwc)?;
                Ok(Val::Centered {
                    x: id,
                    nhwc,
                    mean,
                    at,
                })
            }
            "Div" => {
                let a = self.need(node, 0)?;
                let d = self.constant(node, 1)?;
                match a {
                    Val::Centered { x, nhwc, mean, .. } => {
                        let std = self.per_channel(&d, nhwc)?;
                        let c = self.channels;
                        let widen = |v: &[f64]| -> Vec<f32> {
                            (0..c).map(|i| v[if v.len() == 1 { 0 } else { i }] as f32).collect()
                        };
                        let variance: Vec<f32> = widen(&std).iter().map(|s| (f64::from(*s) * f64::from(*s)) as f32).collect();
                        let op = Op::Normalize(Normalize {
                            channels: c,
                            mean: Tensor::from_f32(vec![c], &widen(&mean)).map_err(|e| e.to_string())?,
                            variance: Tensor::from_f32(vec![c], &variance).map_err(|e| e.to_string())?,
                            count: None,
                            std_floor: 0.0,
                        });
                        Ok(Val::Feature { id: self.emit(node, at, op, &[x])?, nhwc })
                    }
                    Val::Feature { id, nhwc } if self.is_preprocessing(id) => {
                        let d = self.per_channel(&d, nhwc)?;
                        let op = Op::Rescale(Rescale {
                            scale: d.iter().map(|v| 1.0 / v).collect(),
                            offset: vec![0.0],
                        });
                        Ok(Val::Feature { id: self.emit(node, at, op, &[id])?, nhwc })
                    }
                    _ => Err("a Div inside the network (effnet reads it only as the input's normalization)".into()),
                }
            }
            other => Err(format!(
                "op `{}` is not one an EfficientNet uses",
                effnet_io::escape(other)
            )),
        }
    }

    /// Whether `x` is computed from a kept-dims global pooling through 1×1 convolutions and
    /// activations only (a 1×1 map: SE).
    fn after_pool(&self, mut x: NodeId) -> bool {
        loop {
            match &self.graph.node(x).op {
                Op::GlobalAvgPool { keep_dims: true } => return true,
                Op::Conv2d(c) if c.kernel == [1, 1] => {}
                Op::Activation(_) | Op::BatchNorm(_) => {}
                _ => return false,
            }
            match self.graph.inputs(x).first() {
                Some(&i) => x = i,
                None => return false,
            }
        }
    }

    fn unary(&mut self, node: &wire::Node, at: usize, op: Op) -> Result<Val, String> {
        let v = self.need(node, 0)?;
        let x = self.feature(&v, at)?;
        Ok(Val::Feature {
            id: self.emit(node, at, op, &[x])?,
            nhwc: false,
        })
    }

    fn dense(
        &mut self,
        node: &wire::Node,
        at: usize,
        x: NodeId,
        w: Tensor,
        bias: Option<Tensor>,
    ) -> Result<Val, String> {
        let [out, inp] = <[usize; 2]>::try_from(w.shape())
            .map_err(|_| format!("a weight of shape {:?}, not a matrix", w.shape()))?;
        if out == 0 || inp == 0 || out > 1 << 20 || inp > 1 << 16 {
            return Err(format!(
                "a weight of shape {:?} (features 1–65,536, classes 1–2^20)",
                w.shape()
            ));
        }
        if let Some(b) = &bias {
            if b.numel() != out {
                return Err(format!("a bias of shape {:?} for {out} outputs", b.shape()));
            }
        }
        let bias = bias.map(|b| reshape(&b, vec![out])).transpose()?;
        let op = Op::Dense(Dense {
            in_features: inp,
            out_features: out,
            weight: w,
            bias,
        });
        Ok(Val::Feature {
            id: self.emit(node, at, op, &[x])?,
            nhwc: false,
        })
    }

    fn conv(&mut self, node: &wire::Node, at: usize) -> Result<Val, String> {
        let v = self.need(node, 0)?;
        let (x, pre_pads) = match v {
            Val::Padded { x, pads, .. } => (x, Some(pads)),
            other => (self.feature(&other, at)?, None),
        };
        let w = self.constant(node, 1)?;
        let bias = match self.input(node, 2)? {
            None => None,
            Some(_) => Some(self.constant(node, 2)?),
        };
        let [o, ig, kh, kw] = <[usize; 4]>::try_from(w.shape())
            .map_err(|_| format!("a weight of shape {:?}, not a 2-d convolution's", w.shape()))?;
        let pair = |name: &str, default: [usize; 2]| -> Result<[usize; 2], String> {
            match attr(node, name) {
                None => Ok(default),
                Some(a) if a.ints.len() == 2 => {
                    Ok([usize_of(a.ints[0], name)?, usize_of(a.ints[1], name)?])
                }
                Some(a) => Err(format!("`{name}` {:?}: a 2-d convolution has two", a.ints)),
            }
        };
        // The limits every container's dimensions meet (docs/security.md).
        if o == 0
            || ig == 0
            || o > 1 << 16
            || ig > 1 << 16
            || !(1..=63).contains(&kh)
            || !(1..=63).contains(&kw)
        {
            return Err(format!(
                "a weight of shape {:?} (channels 1–65,536, kernel sides 1–63)",
                w.shape()
            ));
        }
        let kernel = pair("kernel_shape", [kh, kw])?;
        if kernel != [kh, kw] {
            return Err(format!("kernel_shape {kernel:?} and a weight of {kh}×{kw}"));
        }
        let stride = pair("strides", [1, 1])?;
        let dilation = pair("dilations", [1, 1])?;
        let groups = usize_of(attr(node, "group").and_then(|a| a.i).unwrap_or(1), "group")?;
        let auto = attr(node, "auto_pad")
            .and_then(|a| a.s.clone())
            .unwrap_or("NOTSET".into());
        let pads = match attr(node, "pads") {
            None => [0; 4],
            Some(a) if a.ints.len() == 4 => {
                let p = |i: usize| usize_of(a.ints[i], "a pad");
                [p(0)?, p(1)?, p(2)?, p(3)?]
            }
            Some(a) => Err(format!("pads {:?}: a 2-d convolution has four", a.ints))?,
        };
        let padding = match (auto.as_str(), pre_pads) {
            ("NOTSET", pre) => {
                let pre = pre.unwrap_or([0; 4]);
                Padding::Explicit {
                    top: pads[0] + pre[0],
                    left: pads[1] + pre[1],
                    bottom: pads[2] + pre[2],
                    right: pads[3] + pre[3],
                }
            }
            ("SAME_UPPER", None) => Padding::SameUpper,
            ("SAME_LOWER", None) => Padding::SameLower,
            ("VALID", None) => Padding::Valid,
            ("VALID", Some(pre)) => Padding::Explicit {
                top: pre[0],
                left: pre[1],
                bottom: pre[2],
                right: pre[3],
            },
            (other, _) => {
                return Err(format!(
                    "auto_pad `{}`{}",
                    effnet_io::escape(other),
                    if pre_pads.is_some() {
                        " after a Pad"
                    } else {
                        ""
                    }
                ));
            }
        };
        let bias = bias.map(|b| reshape(&b, vec![o])).transpose()?;
        let op = Op::Conv2d(Conv2d {
            in_channels: ig.checked_mul(groups).ok_or("channels overflow")?,
            out_channels: o,
            kernel,
            stride,
            dilation,
            groups,
            padding,
            weight: w,
            bias,
        });
        Ok(Val::Feature {
            id: self.emit(node, at, op, &[x])?,
            nhwc: false,
        })
    }

    fn mul(&mut self, node: &wire::Node, at: usize) -> Result<Val, String> {
        let a = self.need(node, 0)?;
        let b = self.need(node, 1)?;
        match (&a, &b) {
            // x · sigmoid(x): swish.
            (Val::Feature { id, .. }, Val::Sigmoid { x, .. })
            | (Val::Sigmoid { x, .. }, Val::Feature { id, .. })
                if id == x =>
            {
                let id = *id;
                Ok(Val::Feature {
                    id: self.emit(node, at, Op::Activation(Activation::Swish), &[id])?,
                    nhwc: false,
                })
            }
            (Val::Const(..), Val::Feature { .. }) | (Val::Feature { .. }, Val::Const(..)) => {
                let (slot, (x, nhwc)) = match (&a, &b) {
                    (Val::Feature { id, nhwc }, _) => (1, (*id, *nhwc)),
                    (_, Val::Feature { id, nhwc }) => (0, (*id, *nhwc)),
                    _ => unreachable!("one is a feature"),
                };
                if !self.is_preprocessing(x) {
                    return Err("a multiplication by a constant inside the network (effnet reads it only as the input's rescaling)".into());
                }
                let c = self.constant(node, slot)?;
                let scale = self.per_channel(&c, nhwc)?;
                let op = Op::Rescale(Rescale {
                    scale,
                    offset: vec![0.0],
                });
                Ok(Val::Feature {
                    id: self.emit(node, at, op, &[x])?,
                    nhwc,
                })
            }
            _ => {
                let x = self.feature(&a, at)?;
                let y = self.feature(&b, at)?;
                Ok(Val::Feature {
                    id: self.emit(node, at, Op::Mul, &[x, y])?,
                    nhwc: false,
                })
            }
        }
    }

    fn add(&mut self, node: &wire::Node, at: usize) -> Result<Val, String> {
        let a = self.need(node, 0)?;
        let b = self.need(node, 1)?;
        let (x, nhwc, slot) = match (&a, &b) {
            (Val::Feature { id, nhwc }, Val::Const(..)) => (*id, *nhwc, 1),
            (Val::Const(..), Val::Feature { id, nhwc }) => (*id, *nhwc, 0),
            _ => {
                let x = self.feature(&a, at)?;
                let y = self.feature(&b, at)?;
                return Ok(Val::Feature {
                    id: self.emit(node, at, Op::Add, &[x, y])?,
                    nhwc: false,
                });
            }
        };
        let c = self.constant(node, slot)?;
        if self.is_preprocessing(x) {
            let offset = self.per_channel(&c, nhwc)?;
            let op = Op::Rescale(Rescale {
                scale: vec![1.0],
                offset,
            });
            return Ok(Val::Feature {
                id: self.emit(node, at, op, &[x])?,
                nhwc,
            });
        }
        // A bias added after a MatMul or a convolution without one (read only there).
        let producer = node.inputs[1 - slot].as_str();
        let single = self.uses.get(producer).copied().unwrap_or(0) == 1;
        let consumers = self.graph.consumers(x).len();
        let node_mut = self.graph.node_mut(x);
        let values = c.numel();
        match &mut node_mut.op {
            Op::Dense(d)
                if d.bias.is_none() && single && consumers == 0 && values == d.out_features =>
            {
                d.bias = Some(reshape(&c, vec![d.out_features])?);
                Ok(Val::Feature { id: x, nhwc: false })
            }
            Op::Conv2d(conv)
                if conv.bias.is_none()
                    && single
                    && consumers == 0
                    && values == conv.out_channels =>
            {
                conv.bias = Some(reshape(&c, vec![conv.out_channels])?);
                Ok(Val::Feature { id: x, nhwc: false })
            }
            _ => Err("a constant added inside the network other than a layer's bias".into()),
        }
    }

    /// Folds a node whose inputs are all constants (shape arithmetic, casts, weights).
    fn fold(&mut self, node: &wire::Node, value: Option<Tensor>) -> Result<Val, String> {
        let mut inputs: Vec<Option<Folded>> = Vec::new();
        for slot in 0..node.inputs.len() {
            match self.input(node, slot)? {
                Some(Val::Const(t, _)) => {
                    // The extent, not the element count: an empty constant may claim
                    // dimensions the fold allocates per index (`Slice`) or multiplies.
                    self.budget
                        .memory(extent(t.shape())? as u64 * 16, || {
                            "a folded constant".into()
                        })
                        .map_err(|e| e.to_string())?;
                    inputs.push(Some(Folded::of(&t)?));
                }
                _ => inputs.push(None),
            }
        }
        let value = value.as_ref().map(Folded::of).transpose()?;
        // `fold` charges what it allocates beyond its inputs (already charged above).
        let out = fold(node, &inputs, value.as_ref(), self.budget)?;
        Ok(Val::Const(out.tensor()?, None))
    }

    /// `Shape` of a feature map whose size the input fixes (batch 1).
    fn shape_of(&mut self, node: &wire::Node, at: usize) -> Result<Val, String> {
        let v = self.need(node, 0)?;
        let x = self.feature(&v, at)?;
        self.budget
            .work(self.graph.len() as u64 * 4, || "shape inference".into())
            .map_err(|e| e.to_string())?;
        let shapes = self
            .graph
            .infer_shapes(1, None)
            .map_err(|e| e.to_string())?;
        let shape = match shapes[x] {
            effnet_ir::TensorShape::Map {
                batch,
                channels,
                spatial: Some([h, w]),
            } => vec![batch, channels, h, w],
            effnet_ir::TensorShape::Vector { batch, features } => vec![batch, features],
            _ => {
                return Err(
                    "a Shape of a feature map whose size the input does not fix (a dynamic input size)"
                        .into(),
                );
            }
        };
        let values: Vec<f64> = shape.iter().map(|&d| d as f64).collect();
        Ok(Val::Const(
            Folded {
                shape: vec![values.len()],
                values,
                int: true,
            }
            .tensor()?,
            None,
        ))
    }
}

/// A constant being folded: values in f64 (exact for the integers of shape arithmetic).
#[derive(Clone, Debug)]
struct Folded {
    shape: Vec<usize>,
    values: Vec<f64>,
    int: bool,
}

impl Folded {
    fn of(t: &Tensor) -> Result<Self, String> {
        let int = t.dtype() == DType::I64;
        let values = if int {
            i64s(t)?.into_iter().map(|v| v as f64).collect()
        } else {
            f32s(t)?.into_iter().map(f64::from).collect()
        };
        Ok(Folded {
            shape: t.shape().to_vec(),
            values,
            int,
        })
    }

    fn tensor(&self) -> Result<Tensor, String> {
        if self.int {
            let v: Vec<i64> = self.values.iter().map(|&v| v as i64).collect();
            int_tensor(self.shape.clone(), &v)
        } else {
            let v: Vec<f32> = self.values.iter().map(|&v| v as f32).collect();
            Tensor::from_f32(self.shape.clone(), &v).map_err(|e| e.to_string())
        }
    }

    fn ints(&self) -> Vec<i64> {
        self.values.iter().map(|&v| v as i64).collect()
    }
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// An axis, negative ones counted from the end.
fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    usize::try_from(v)
        .ok()
        .filter(|&v| v < rank.max(1))
        .ok_or_else(|| format!("axis {a} of a rank-{rank} constant"))
}

/// The most values a folded constant may have (shape arithmetic and small weights).
const MAX_FOLDED: usize = 1 << 24;

/// The element count of `shape`, refused past [`MAX_FOLDED`] before anything is allocated.
fn count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_FOLDED)
        .ok_or_else(|| {
            format!("a folded constant of shape {shape:?} (more than {MAX_FOLDED} values)")
        })
}

/// The product of the non-zero dimensions of `shape`, refused past [`MAX_FOLDED`]: what the
/// fold's strides and per-axis index lists can reach, also for a constant with no elements
/// (a `[0, 2^40]` constant holds nothing but would be sliced over 2^40 indices).
fn extent(shape: &[usize]) -> Result<usize, String> {
    count(&shape.iter().map(|&d| d.max(1)).collect::<Vec<_>>())
}

/// Numpy broadcasting of two shapes.
fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let n = a.len().max(b.len());
    let get = |s: &[usize], i: usize| {
        let pad = n - s.len();
        if i < pad { 1 } else { s[i - pad] }
    };
    (0..n)
        .map(|i| match (get(a, i), get(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            (x, y) => Err(format!(
                "constants of shapes {a:?} and {b:?} do not broadcast ({x} and {y})"
            )),
        })
        .collect()
}

/// The element of `t` (broadcast to `shape`) at the flat index `i` of `shape`.
fn at(t: &Folded, shape: &[usize], i: usize) -> f64 {
    if t.values.len() == 1 {
        return t.values[0];
    }
    let out_strides = strides(shape);
    let pad = shape.len() - t.shape.len();
    let ts = strides(&t.shape);
    let mut flat = 0;
    for (d, &len) in t.shape.iter().enumerate() {
        let coord = (i / out_strides[d + pad]) % shape[d + pad];
        if len != 1 {
            flat += coord * ts[d];
        }
    }
    t.values[flat]
}

fn fold(
    node: &wire::Node,
    inputs: &[Option<Folded>],
    value: Option<&Folded>,
    budget: &Budget,
) -> Result<Folded, String> {
    // Outputs larger than the inputs (broadcasting, gathering, ConstantOfShape) are charged
    // before they are built: two 4,096-value constants broadcast to 2^24 values.
    let charge = |n: usize| {
        budget
            .memory(n as u64 * 16, || "a folded constant".into())
            .map_err(|e| e.to_string())
    };
    let op = node.op_type.as_str();
    let get = |i: usize| -> Result<&Folded, String> {
        inputs
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("input #{i} is missing"))
    };
    let ints_attr = |name: &str| attr(node, name).map(|a| a.ints.clone());
    let x = get(0)?;
    let rank = x.shape.len();
    let same = |values: Vec<f64>, int: bool| Folded {
        shape: x.shape.clone(),
        values,
        int,
    };
    for t in inputs.iter().flatten().chain(value) {
        extent(&t.shape)?;
    }
    if rank == 0 && matches!(op, "Gather" | "Concat" | "Slice" | "Flatten") {
        return Err(format!("a {op} of a scalar constant"));
    }
    Ok(match op {
        "Identity" => x.clone(),
        "Cast" => {
            let to = attr(node, "to")
                .and_then(|a| a.i)
                .ok_or("a Cast without `to`")?;
            let int = matches!(to, 6 | 7);
            if !matches!(to, 1 | 6 | 7 | 10 | 11) {
                return Err(format!("a Cast of a constant to data type {to}"));
            }
            same(
                x.values
                    .iter()
                    .map(|&v| if int { v.trunc() } else { v })
                    .collect(),
                int,
            )
        }
        "Sqrt" | "Reciprocal" | "Neg" | "Ceil" | "Floor" | "Abs" => {
            let f: fn(f64) -> f64 = match op {
                "Sqrt" => f64::sqrt,
                "Reciprocal" => f64::recip,
                "Neg" => |v| -v,
                "Ceil" => f64::ceil,
                "Floor" => f64::floor,
                _ => f64::abs,
            };
            let values: Vec<f64> = x.values.iter().map(|&v| f(v)).collect();
            if matches!(op, "Sqrt" | "Reciprocal") {
                same(values.iter().map(|&v| f64::from(v as f32)).collect(), false)
            } else {
                same(values, x.int)
            }
        }
        "Mul" | "Div" | "Add" | "Sub" | "Max" | "Min" | "Pow" => {
            let y = get(1)?;
            let shape = broadcast(&x.shape, &y.shape)?;
            let n = count(&shape)?;
            charge(n)?;
            let int = x.int && y.int;
            let values = (0..n)
                .map(|i| {
                    let (p, q) = (at(x, &shape, i), at(y, &shape, i));
                    let v = match op {
                        "Mul" => p * q,
                        "Div" if int => {
                            if q == 0.0 {
                                0.0
                            } else {
                                (p / q).trunc()
                            }
                        }
                        "Div" => p / q,
                        "Add" => p + q,
                        "Sub" => p - q,
                        "Max" => p.max(q),
                        "Min" => p.min(q),
                        _ => p.powf(q),
                    };
                    if int { v } else { f64::from(v as f32) }
                })
                .collect();
            Folded { shape, values, int }
        }
        "Clip" => {
            let bound = |i: usize| match inputs.get(i).and_then(Option::as_ref) {
                None => Ok(None),
                Some(t) if t.values.len() == 1 => Ok(Some(t.values[0])),
                Some(t) => Err(format!(
                    "a Clip bound of shape {:?} (a single value expected)",
                    t.shape
                )),
            };
            let (lo, hi) = (bound(1)?, bound(2)?);
            same(
                x.values
                    .iter()
                    .map(|&v| v.max(lo.unwrap_or(f64::MIN)).min(hi.unwrap_or(f64::MAX)))
                    .collect(),
                x.int,
            )
        }
        "Shape" => Folded {
            shape: vec![rank],
            values: x.shape.iter().map(|&d| d as f64).collect(),
            int: true,
        },
        "Unsqueeze" | "Squeeze" => {
            let axes = match ints_attr("axes") {
                Some(a) if !a.is_empty() => a,
                _ => inputs
                    .get(1)
                    .and_then(Option::as_ref)
                    .map(Folded::ints)
                    .unwrap_or_default(),
            };
            let mut shape = x.shape.clone();
            if op == "Unsqueeze" {
                let out_rank = rank + axes.len();
                let mut axes: Vec<usize> = axes
                    .iter()
                    .map(|&a| axis(a, out_rank))
                    .collect::<Result<_, _>>()?;
                axes.sort_unstable();
                for a in axes {
                    shape.insert(a.min(shape.len()), 1);
                }
            } else if axes.is_empty() {
                shape.retain(|&d| d != 1);
            } else {
                let axes: Vec<usize> = axes
                    .iter()
                    .map(|&a| axis(a, rank))
                    .collect::<Result<_, _>>()?;
                shape = shape
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !axes.contains(i))
                    .map(|(_, &d)| d)
                    .collect();
            }
            Folded { shape, ..x.clone() }
        }
        "Reshape" => {
            let s = get(1)?.ints();
            let known: i64 = s
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if d == 0 {
                        x.shape.get(i).copied().unwrap_or(1) as i64
                    } else {
                        d
                    }
                })
                .filter(|&d| d > 0)
                .try_fold(1i64, i64::checked_mul)
                .ok_or_else(|| format!("a Reshape to {s:?}"))?;
            let shape: Vec<usize> = s
                .iter()
                .enumerate()
                .map(|(i, &d)| match d {
                    -1 => x.values.len() / (known.max(1) as usize),
                    0 => x.shape.get(i).copied().unwrap_or(1),
                    d => d.max(0) as usize,
                })
                .collect();
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if n != Some(x.values.len()) {
                return Err(format!("a Reshape of {:?} to {s:?}", x.shape));
            }
            Folded { shape, ..x.clone() }
        }
        "Flatten" => {
            let a = attr(node, "axis")
                .and_then(|a| a.i)
                .unwrap_or(1)
                .clamp(0, rank as i64) as usize;
            let outer: usize = x.shape[..a].iter().product();
            Folded {
                shape: vec![outer, x.values.len() / outer.max(1)],
                ..x.clone()
            }
        }
        "ConstantOfShape" => {
            let shape: Vec<usize> = x.ints().iter().map(|&d| d.max(0) as usize).collect();
            let n: usize = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or("a shape too large")?;
            if n > 1 << 20 {
                return Err(format!("a ConstantOfShape of {n} values"));
            }
            charge(n)?;
            let (v, int) = match value {
                Some(t) if t.values.len() == 1 => (t.values[0], t.int),
                Some(_) => return Err("a ConstantOfShape value of more than one element".into()),
                None => (0.0, false),
            };
            Folded {
                shape,
                values: vec![v; n],
                int,
            }
        }
        "Concat" => {
            let parts: Vec<&Folded> = inputs.iter().flatten().collect();
            let a = axis(attr(node, "axis").and_then(|a| a.i).unwrap_or(0), rank)?;
            let fits = |p: &Folded| {
                p.shape.len() == rank
                    && p.shape
                        .iter()
                        .zip(&x.shape)
                        .enumerate()
                        .all(|(i, (d, e))| i == a || d == e)
            };
            if !parts.iter().all(|p| fits(p)) {
                return Err("a Concat of constants whose shapes do not fit".into());
            }
            let mut shape = x.shape.clone();
            shape[a] = parts
                .iter()
                .map(|p| p.shape.get(a).copied().unwrap_or(0))
                .sum();
            let outer: usize = x.shape[..a].iter().product();
            let mut values = Vec::new();
            for o in 0..outer {
                for p in &parts {
                    if p.shape.len() != rank {
                        return Err("a Concat of constants of different ranks".into());
                    }
                    let chunk: usize = p.shape[a..].iter().product();
                    values.extend_from_slice(&p.values[o * chunk..(o + 1) * chunk]);
                }
            }
            Folded {
                shape,
                values,
                int: parts.iter().all(|p| p.int),
            }
        }
        "Gather" => {
            let idx = get(1)?;
            let a = axis(attr(node, "axis").and_then(|a| a.i).unwrap_or(0), rank)?;
            let s = strides(&x.shape);
            let outer: usize = x.shape[..a].iter().product();
            let inner = s[a];
            charge(count(&[outer, idx.values.len(), inner])?)?;
            let mut values = Vec::new();
            for o in 0..outer {
                for &i in &idx.ints() {
                    let i = if i < 0 { i + x.shape[a] as i64 } else { i } as usize;
                    if i >= x.shape[a] {
                        return Err(format!("a Gather index {i} past {}", x.shape[a]));
                    }
                    let start = o * x.shape[a] * inner + i * inner;
                    values.extend_from_slice(&x.values[start..start + inner]);
                }
            }
            let mut shape = x.shape[..a].to_vec();
            shape.extend_from_slice(&idx.shape);
            shape.extend_from_slice(&x.shape[a + 1..]);
            Folded {
                shape,
                values,
                int: x.int,
            }
        }
        "Slice" => {
            let starts = get(1)?.ints();
            let ends = get(2)?.ints();
            let axes: Vec<i64> = inputs
                .get(3)
                .and_then(Option::as_ref)
                .map(Folded::ints)
                .unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps: Vec<i64> = inputs
                .get(4)
                .and_then(Option::as_ref)
                .map(Folded::ints)
                .unwrap_or_else(|| vec![1; starts.len()]);
            if starts.len() != ends.len()
                || axes.len() != starts.len()
                || steps.len() != starts.len()
            {
                return Err("a Slice whose starts, ends, axes and steps differ in length".into());
            }
            // Per axis, the indices kept.
            let mut keep: Vec<Vec<usize>> = x.shape.iter().map(|&d| (0..d).collect()).collect();
            for (k, &ax) in axes.iter().enumerate() {
                let a = axis(ax, rank)?;
                let d = x.shape[a] as i64;
                let step = steps.get(k).copied().unwrap_or(1);
                if step == 0 {
                    return Err("a Slice with step 0".into());
                }
                let norm = |v: i64, lo: i64, hi: i64| {
                    let v = if v < 0 { v + d } else { v };
                    v.clamp(lo, hi)
                };
                let mut out = Vec::new();
                if step > 0 {
                    let (mut i, e) = (norm(starts[k], 0, d), norm(ends[k], 0, d));
                    while i < e {
                        out.push(i as usize);
                        i += step;
                    }
                } else {
                    let (mut i, e) = (norm(starts[k], -1, d - 1), norm(ends[k], -1, d - 1));
                    while i > e {
                        out.push(i as usize);
                        i += step;
                    }
                }
                keep[a] = out;
            }
            let shape: Vec<usize> = keep.iter().map(Vec::len).collect();
            let s = strides(&x.shape);
            let n: usize = shape.iter().product();
            let os = strides(&shape);
            let values = (0..n)
                .map(|i| {
                    let flat: usize = (0..rank)
                        .map(|d| keep[d][(i / os[d]) % shape[d]] * s[d])
                        .sum();
                    x.values[flat]
                })
                .collect();
            Folded {
                shape,
                values,
                int: x.int,
            }
        }
        "Transpose" => {
            let perm: Vec<usize> = match ints_attr("perm") {
                Some(p) if !p.is_empty() => {
                    p.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?
                }
                _ => (0..rank).rev().collect(),
            };
            let t = Tensor::from_f32(
                x.shape.clone(),
                &x.values.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            )
            .map_err(|e| e.to_string())?;
            let p = t.permuted(&perm).map_err(|e| e.to_string())?;
            Folded {
                shape: p.shape().to_vec(),
                values: if x.int {
                    // permute exact integers through their indices
                    let s = strides(&x.shape);
                    let shape = p.shape().to_vec();
                    let os = strides(&shape);
                    (0..x.values.len())
                        .map(|i| {
                            let flat: usize = (0..rank)
                                .map(|d| ((i / os[d]) % shape[d]) * s[perm[d]])
                                .sum();
                            x.values[flat]
                        })
                        .collect()
                } else {
                    f32s(&p)?.into_iter().map(f64::from).collect()
                },
                int: x.int,
            }
        }
        other => {
            return Err(format!(
                "op `{}` on constants, which effnet does not fold",
                effnet_io::escape(other)
            ));
        }
    })
}

/// The tensor with another shape of as many elements.
fn reshape(t: &Tensor, shape: Vec<usize>) -> Result<Tensor, String> {
    let data = t.data().cloned().ok_or("a constant without data")?;
    Tensor::with_data(t.dtype(), shape, data).map_err(|e| e.to_string())
}

fn int_tensor(shape: Vec<usize>, values: &[i64]) -> Result<Tensor, String> {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Tensor::with_data(DType::I64, shape, effnet_ir::Bytes::from_vec(bytes))
        .map_err(|e| e.to_string())
}

/// The shortest decimal that rounds to `v` as an f32, as an f64 (the epsilon a framework was
/// given, not its f32 approximation).
fn shortest(v: f32) -> f64 {
    format!("{v}").parse().unwrap_or(f64::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str) -> wire::Node {
        wire::Node {
            op_type: op.into(),
            ..wire::Node::default()
        }
    }

    fn budget() -> Budget {
        Budget::for_input(1 << 10)
    }

    #[test]
    fn a_broadcast_past_the_budget_is_refused_before_it_is_built() {
        let x = ints(vec![4096, 1], vec![1.0; 4096]);
        let y = ints(vec![1, 4096], vec![2.0; 4096]);
        let small = budget();
        let e = fold(&node("Mul"), &[x, y], None, &small).unwrap_err();
        assert!(e.contains("folded constant"), "{e}");
        // Gathering 4,096 rows of 4,096 from a 4,096-value constant: also charged first.
        let table = ints(vec![1, 4096], vec![0.0; 4096]);
        let idx = ints(vec![4096], vec![0.0; 4096]);
        let e = fold(&node("Gather"), &[table, idx], None, &budget()).unwrap_err();
        assert!(e.contains("folded constant"), "{e}");
    }

    fn ints(shape: Vec<usize>, values: Vec<f64>) -> Option<Folded> {
        Some(Folded {
            shape,
            values,
            int: true,
        })
    }

    #[test]
    fn folding_empty_or_huge_constants_is_an_error_not_a_panic() {
        let x = ints(vec![2], vec![1.0, 5.0]);
        // A Clip whose bound is an empty tensor.
        let e = fold(
            &node("Clip"),
            &[x.clone(), ints(vec![0], vec![])],
            None,
            &budget(),
        )
        .unwrap_err();
        assert!(e.contains("Clip bound"), "{e}");
        let clipped = fold(
            &node("Clip"),
            &[x.clone(), ints(vec![], vec![2.0])],
            None,
            &budget(),
        )
        .unwrap();
        assert_eq!(clipped.values, vec![2.0, 5.0]);
        // An empty constant claiming 2^40 indices along an axis: sliced, gathered or
        // strided over, it would allocate them all (or overflow a stride).
        let empty = ints(vec![0, 1 << 40], vec![]);
        let one = ints(vec![1], vec![0.0]);
        let e = fold(
            &node("Slice"),
            &[empty.clone(), one.clone(), ints(vec![1], vec![1.0])],
            None,
            &budget(),
        )
        .unwrap_err();
        assert!(e.contains("folded constant"), "{e}");
        assert!(fold(&node("Gather"), &[empty, one], None, &budget()).is_err());
        // A Reshape whose target shape overflows (in debug builds: a panic).
        let e = fold(
            &node("Reshape"),
            &[
                ints(vec![1], vec![7.0]),
                ints(vec![3], vec![4294967296.0, 4294967296.0, 4294967296.0]),
            ],
            None,
            &budget(),
        )
        .unwrap_err();
        assert!(e.contains("Reshape"), "{e}");
        let e = fold(
            &node("Reshape"),
            &[
                ints(vec![1], vec![7.0]),
                ints(vec![2], vec![274177.0, 67280421310721.0]),
            ],
            None,
            &budget(),
        )
        .unwrap_err();
        assert!(e.contains("Reshape"), "{e}");
    }
}
