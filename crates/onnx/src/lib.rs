//! ONNX export of an effnet graph.
//!
//! The model is a `ModelProto` encoded with prost through the hand-declared messages of
//! [`proto`]. What changes numbers is kept: TF "same" convolutions get explicit asymmetric
//! `pads` at a fixed resolution (or `auto_pad = SAME_UPPER` when the size is dynamic),
//! symmetric ones their symmetric pads; BatchNormalization nodes carry the source's epsilon;
//! Keras preprocessing stays as nodes at the input; swish is `Sigmoid` · `Mul`; SE is
//! `GlobalAveragePool` → 1×1 `Conv`. The batch dimension is dynamic.

pub mod proto;
pub mod read;

use std::collections::HashMap;

use effnet_ir::{Activation, Graph, NodeId, Op, Padding, Tensor};
use prost::Message;

use crate::proto::{
    AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto,
    TypeProto, ValueInfoProto, attribute_type, data_type,
};

/// How to export.
#[derive(Clone, Debug)]
pub struct OnnxOptions {
    /// Opset version (13–21).
    pub opset: i64,
    /// Input height and width for explicit pads and a static input shape; `None` leaves the
    /// spatial size dynamic (TF "same" convs then use `auto_pad = SAME_UPPER`).
    pub resolution: Option<[usize; 2]>,
    /// Drop a final softmax and output logits.
    pub logits: bool,
    /// Leave out the preprocessing nodes a Keras model carries.
    pub no_preprocessing: bool,
    /// Written into the model's `doc_string` (the source file).
    pub doc: String,
    /// `metadata_props`.
    pub metadata: Vec<(String, String)>,
    /// Fold each BatchNorm into the convolution before it.
    pub fold_bn: bool,
    /// Take NHWC input (a Transpose to NCHW follows it).
    pub nhwc: bool,
    /// Store weights and compute in f16, with Casts at the input and output so the interface
    /// stays f32.
    pub half: bool,
}

/// Why a graph could not be exported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// An opset outside what effnet writes.
    #[error("opset {0} is not supported (13 to 21)")]
    Opset(i64),
    /// A parameter without data.
    #[error("node `{0}` has a parameter without data")]
    NoData(String),
    /// A graph problem.
    #[error(transparent)]
    Graph(#[from] effnet_ir::IrError),
}

/// The IR version that goes with an opset (onnx/docs/Versioning.md).
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

struct Builder {
    nodes: Vec<NodeProto>,
    /// Initializers without their data, which [`StreamedModel`] produces from `sources`.
    initializers: Vec<TensorProto>,
    /// Each initializer's values: a weight of the graph (a view of its file) or values
    /// computed here (folded BatchNorms, Keras preprocessing constants).
    sources: Vec<Tensor>,
    used: HashMap<String, usize>,
    half: bool,
}

/// What storing the weights in f16 lost: counts over every initializer, and the initializers
/// with values beyond ±65504 (stored clamped to ±65504) or flushed to zero. Empty in f32.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Losses {
    /// Counts over all initializers.
    pub stats: effnet_ir::ConversionStats,
    /// Initializers with values beyond the f16 range, with the count.
    pub overflowing: Vec<(String, usize)>,
    /// Initializers with values that flushed to zero, with the count.
    pub flushed: Vec<(String, usize)>,
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(attribute_type::INT),
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(attribute_type::INTS),
        ..Default::default()
    }
}

fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        f: Some(v),
        r#type: Some(attribute_type::FLOAT),
        ..Default::default()
    }
}

fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        s: Some(v.as_bytes().to_vec()),
        r#type: Some(attribute_type::STRING),
        ..Default::default()
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    if cfg!(target_endian = "little") {
        bytemuck::cast_slice(values).to_vec()
    } else {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

impl Builder {
    /// A fresh value name based on `base`.
    fn name(&mut self, base: &str) -> String {
        let clean: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._/-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let n = self.used.entry(clean.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            clean
        } else {
            format!("{clean}__{n}")
        }
    }

    fn initializer(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        let tensor = Tensor::from_f32(dims.to_vec(), values)
            .expect("computed values match their dimensions");
        self.push(name, tensor)
    }

    fn weight(&mut self, node: &str, param: &str, t: &Tensor) -> Result<String, OnnxError> {
        if t.data().is_none() {
            return Err(OnnxError::NoData(node.to_owned()));
        }
        Ok(self.push(&format!("{node}.{param}"), t.clone()))
    }

    /// An initializer whose data is produced when the model is written.
    fn push(&mut self, name: &str, source: Tensor) -> String {
        let name = self.name(name);
        self.initializers.push(TensorProto {
            dims: source.shape().iter().map(|&d| d as i64).collect(),
            data_type: Some(if self.half {
                data_type::FLOAT16
            } else {
                data_type::FLOAT
            }),
            name: Some(name.clone()),
            raw_data: None,
        });
        self.sources.push(source);
        name
    }

    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: Vec<String>,
        attributes: Vec<AttributeProto>,
        output: Option<String>,
    ) -> String {
        let output = output.unwrap_or_else(|| self.name(name));
        let node_name = self.name(&format!("{name}/{op}"));
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.clone()],
            name: Some(node_name),
            op_type: Some(op.into()),
            attribute: attributes,
            doc_string: None,
        });
        output
    }
}

/// A weight's values as f32; the pages of a mapped source are released once read (the folded
/// values are what the model holds).
fn values_of(t: &Tensor) -> Result<Vec<f32>, effnet_ir::IrError> {
    let values = t.to_f32_vec()?;
    if let Some(bytes) = t.data() {
        bytes.release();
    }
    Ok(values)
}

fn tensor_type(dims: Vec<DimensionValue>) -> Option<TypeProto> {
    Some(TypeProto {
        tensor_type: Some(TensorTypeProto {
            elem_type: Some(data_type::FLOAT),
            shape: Some(TensorShapeProto {
                dim: dims
                    .into_iter()
                    .map(|d| Dimension { value: Some(d) })
                    .collect(),
            }),
        }),
    })
}

/// Builds the ONNX model of `graph`. With `half`, values beyond the f16 range are stored
/// clamped: use [`build_counted`] to see them (effnet's `convert` refuses them unless told).
pub fn build(graph: &Graph, options: &OnnxOptions) -> Result<ModelProto, OnnxError> {
    build_counted(graph, options).map(|(model, _)| model)
}

/// Builds the ONNX model of `graph` in memory, with what storing its weights in f16 lost.
pub fn build_counted(
    graph: &Graph,
    options: &OnnxOptions,
) -> Result<(ModelProto, Losses), OnnxError> {
    build_streamed(graph, options)?.into_proto()
}

/// Builds the ONNX model of `graph` with its initializers' data left to be produced as the
/// model is written ([`StreamedModel::write`]): the weights are read from the graph's tensors
/// (views of the source file) one at a time, never all held.
pub fn build_streamed(graph: &Graph, options: &OnnxOptions) -> Result<StreamedModel, OnnxError> {
    if !(13..=21).contains(&options.opset) {
        return Err(OnnxError::Opset(options.opset));
    }
    let input_id = graph.input()?;
    let Op::Input(input) = &graph.node(input_id).op else {
        unreachable!("graph.input() returns an Input node");
    };
    let shapes = graph.infer_shapes(1, options.resolution)?;
    let mut b = Builder {
        nodes: Vec::new(),
        initializers: Vec::new(),
        sources: Vec::new(),
        used: HashMap::new(),
        half: options.half,
    };
    b.used.insert("input".into(), 1);
    let mut value: HashMap<NodeId, String> = HashMap::new();
    let mut entry = "input".to_owned();
    if options.nhwc {
        entry = b.node(
            "Transpose",
            "input_nchw",
            vec![entry],
            vec![attr_ints("perm", &[0, 3, 1, 2])],
            None,
        );
    }
    if options.half {
        entry = b.node(
            "Cast",
            "input_f16",
            vec![entry],
            vec![attr_int("to", i64::from(data_type::FLOAT16))],
            None,
        );
    }
    value.insert(input_id, entry);
    // Convolutions whose only reader is a BatchNorm, folded with --fold-bn.
    let mut folded: HashMap<NodeId, NodeId> = HashMap::new();
    if options.fold_bn {
        for (id, node) in graph.nodes() {
            if let Op::BatchNorm(_) = node.op {
                let conv = graph.inputs(id)[0];
                if matches!(graph.node(conv).op, Op::Conv2d(_)) && graph.consumers(conv) == [id] {
                    folded.insert(conv, id);
                }
            }
        }
    }
    let outputs = graph.outputs().to_vec();
    let last = *outputs.first().ok_or(effnet_ir::IrError::NoOutput)?;
    let mut final_node = last;
    if options.logits {
        if let Op::Activation(Activation::Softmax) = graph.node(last).op {
            final_node = graph.inputs(last)[0];
        }
    }
    let output_name = if final_node != last
        || !matches!(graph.node(last).op, Op::Activation(Activation::Softmax))
    {
        "logits"
    } else {
        "probabilities"
    };

    // The node writing the graph output; in f16 it writes an internal value that a Cast turns
    // back into f32.
    let output_value = if options.half {
        format!("{output_name}_f16")
    } else {
        output_name.to_owned()
    };
    for (id, node) in graph.nodes() {
        if id == input_id || value.contains_key(&id) {
            continue;
        }
        let ins: Vec<String> = graph.inputs(id).iter().map(|i| value[i].clone()).collect();
        // A folded conv writes its BatchNorm's output.
        let writes = folded.get(&id).copied().unwrap_or(id);
        let out = (writes == final_node).then(|| output_value.clone());
        let name = node.name.as_str();
        let v = match &node.op {
            Op::Input(_) => unreachable!("one input"),
            Op::Rescale(r) if !options.no_preprocessing => {
                let shape = if r.scale.len() == 1 {
                    vec![1]
                } else {
                    vec![1, r.scale.len(), 1, 1]
                };
                let scale: Vec<f32> = r.scale.iter().map(|&x| x as f32).collect();
                let s = b.initializer(&format!("{name}.scale"), &shape, &scale);
                let has_offset = r.offset.iter().any(|&o| o != 0.0);
                let mul_out = if has_offset { None } else { out.clone() };
                let y = b.node("Mul", name, vec![ins[0].clone(), s], vec![], mul_out);
                if has_offset {
                    let shape = if r.offset.len() == 1 {
                        vec![1]
                    } else {
                        vec![1, r.offset.len(), 1, 1]
                    };
                    let offset: Vec<f32> = r.offset.iter().map(|&x| x as f32).collect();
                    let o = b.initializer(&format!("{name}.offset"), &shape, &offset);
                    b.node("Add", name, vec![y, o], vec![], out.clone())
                } else {
                    y
                }
            }
            Op::Normalize(n) if !options.no_preprocessing => {
                let mean = n
                    .mean
                    .to_f32_vec()
                    .map_err(|_| OnnxError::NoData(name.into()))?;
                let var = n
                    .variance
                    .to_f32_vec()
                    .map_err(|_| OnnxError::NoData(name.into()))?;
                let std: Vec<f32> = var
                    .iter()
                    .map(|v| v.sqrt().max(n.std_floor as f32))
                    .collect();
                let shape = [1, n.channels, 1, 1];
                let m = b.initializer(&format!("{name}.mean"), &shape, &mean);
                let s = b.initializer(&format!("{name}.std"), &shape, &std);
                let centered = b.node("Sub", name, vec![ins[0].clone(), m], vec![], None);
                b.node("Div", name, vec![centered, s], vec![], out.clone())
            }
            Op::Rescale(_) | Op::Normalize(_) | Op::Dropout { .. } | Op::StochasticDepth { .. } => {
                // Identity at inference (or preprocessing left out): pass the input through.
                if out.is_some() {
                    b.node("Identity", name, ins.clone(), vec![], out.clone())
                } else {
                    ins[0].clone()
                }
            }
            Op::Conv2d(c) => {
                let mut inputs = vec![ins[0].clone()];
                if let Some(&bn_id) = folded.get(&id) {
                    let Op::BatchNorm(bn) = &graph.node(bn_id).op else {
                        unreachable!("folded into a BatchNorm")
                    };
                    let (w, bias) = fold(c, bn).map_err(|_| OnnxError::NoData(name.to_owned()))?;
                    inputs.push(b.initializer(&format!("{name}.weight"), c.weight.shape(), &w));
                    inputs.push(b.initializer(&format!("{name}.bias"), &[c.out_channels], &bias));
                } else {
                    inputs.push(b.weight(name, "weight", &c.weight)?);
                    if let Some(bias) = &c.bias {
                        inputs.push(b.weight(name, "bias", bias)?);
                    }
                }
                let mut attrs = vec![
                    attr_ints("kernel_shape", &[c.kernel[0] as i64, c.kernel[1] as i64]),
                    attr_ints("strides", &[c.stride[0] as i64, c.stride[1] as i64]),
                    attr_ints("dilations", &[c.dilation[0] as i64, c.dilation[1] as i64]),
                    attr_int("group", c.groups as i64),
                ];
                // Without a fixed resolution every spatial size is dynamic.
                let input_hw = options
                    .resolution
                    .and_then(|_| graph.inputs(id).first().and_then(|&i| shapes[i].spatial()));
                match (c.padding, input_hw) {
                    (Padding::SameUpper, None) => attrs.push(attr_string("auto_pad", "SAME_UPPER")),
                    (Padding::SameLower, None) => attrs.push(attr_string("auto_pad", "SAME_LOWER")),
                    (padding, hw) => {
                        let pads = match hw {
                            Some(hw) => {
                                padding
                                    .resolve(name, hw, c.kernel, c.stride, c.dilation)?
                                    .pads
                            }
                            None => match padding {
                                Padding::Explicit {
                                    top,
                                    left,
                                    bottom,
                                    right,
                                } => [top, left, bottom, right],
                                _ => [0; 4],
                            },
                        };
                        attrs.push(attr_ints("pads", &pads.map(|p| p as i64)));
                    }
                }
                b.node("Conv", name, inputs, attrs, out.clone())
            }
            Op::BatchNorm(bn) => {
                let channels = bn.channels;
                let gamma = match &bn.gamma {
                    Some(g) => b.weight(name, "gamma", g)?,
                    None => {
                        b.initializer(&format!("{name}.gamma"), &[channels], &vec![1.0; channels])
                    }
                };
                let beta = match &bn.beta {
                    Some(t) => b.weight(name, "beta", t)?,
                    None => {
                        b.initializer(&format!("{name}.beta"), &[channels], &vec![0.0; channels])
                    }
                };
                let mean = b.weight(name, "running_mean", &bn.mean)?;
                let var = b.weight(name, "running_var", &bn.var)?;
                b.node(
                    "BatchNormalization",
                    name,
                    vec![ins[0].clone(), gamma, beta, mean, var],
                    vec![attr_float("epsilon", bn.eps as f32)],
                    out.clone(),
                )
            }
            Op::Activation(Activation::Swish) => {
                let gate = b.node("Sigmoid", name, vec![ins[0].clone()], vec![], None);
                b.node("Mul", name, vec![ins[0].clone(), gate], vec![], out.clone())
            }
            Op::Activation(Activation::Sigmoid) => {
                b.node("Sigmoid", name, ins.clone(), vec![], out.clone())
            }
            Op::Activation(Activation::Relu) => {
                b.node("Relu", name, ins.clone(), vec![], out.clone())
            }
            Op::Activation(Activation::Relu6) => {
                let lo = b.initializer(&format!("{name}.min"), &[], &[0.0]);
                let hi = b.initializer(&format!("{name}.max"), &[], &[6.0]);
                b.node(
                    "Clip",
                    name,
                    vec![ins[0].clone(), lo, hi],
                    vec![],
                    out.clone(),
                )
            }
            Op::Activation(Activation::Softmax) => b.node(
                "Softmax",
                name,
                ins.clone(),
                vec![attr_int("axis", 1)],
                out.clone(),
            ),
            Op::GlobalAvgPool { keep_dims } => {
                if *keep_dims {
                    b.node("GlobalAveragePool", name, ins.clone(), vec![], out.clone())
                } else {
                    let pooled = b.node("GlobalAveragePool", name, ins.clone(), vec![], None);
                    b.node(
                        "Flatten",
                        name,
                        vec![pooled],
                        vec![attr_int("axis", 1)],
                        out.clone(),
                    )
                }
            }
            Op::Mul => b.node("Mul", name, ins.clone(), vec![], out.clone()),
            Op::Add => b.node("Add", name, ins.clone(), vec![], out.clone()),
            Op::Flatten => b.node(
                "Flatten",
                name,
                ins.clone(),
                vec![attr_int("axis", 1)],
                out.clone(),
            ),
            Op::Dense(d) => {
                let mut inputs = vec![ins[0].clone(), b.weight(name, "weight", &d.weight)?];
                if let Some(bias) = &d.bias {
                    inputs.push(b.weight(name, "bias", bias)?);
                }
                b.node(
                    "Gemm",
                    name,
                    inputs,
                    vec![attr_int("transB", 1)],
                    out.clone(),
                )
            }
        };
        value.insert(id, v.clone());
        if let Some(&bn_id) = folded.get(&id) {
            value.insert(bn_id, v);
        }
        if writes == final_node {
            break;
        }
    }
    if options.half {
        b.node(
            "Cast",
            "output_f32",
            vec![output_value],
            vec![attr_int("to", i64::from(data_type::FLOAT))],
            Some(output_name.to_owned()),
        );
    }

    let spatial = |i: usize, label: &str| match options.resolution {
        Some(hw) => DimensionValue::DimValue(hw[i] as i64),
        None => DimensionValue::DimParam(label.into()),
    };
    let channels = DimensionValue::DimValue(input.channels as i64);
    let batch = DimensionValue::DimParam("batch".into());
    let input_info = ValueInfoProto {
        name: Some("input".into()),
        r#type: tensor_type(if options.nhwc {
            vec![batch, spatial(0, "height"), spatial(1, "width"), channels]
        } else {
            vec![batch, channels, spatial(0, "height"), spatial(1, "width")]
        }),
    };
    let out_shape = shapes[final_node];
    let output_info = ValueInfoProto {
        name: Some(output_name.into()),
        r#type: tensor_type(vec![
            DimensionValue::DimParam("batch".into()),
            DimensionValue::DimValue(out_shape.channels() as i64),
        ]),
    };
    let model = ModelProto {
        ir_version: Some(ir_version(options.opset)),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(options.opset),
        }],
        producer_name: Some("effnet".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(options.doc.clone()),
        graph: Some(GraphProto {
            node: b.nodes,
            name: Some("efficientnet".into()),
            initializer: b.initializers,
            doc_string: None,
            input: vec![input_info],
            output: vec![output_info],
        }),
        metadata_props: options
            .metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect(),
    };
    Ok(StreamedModel {
        proto: model,
        sources: b.sources,
        half: options.half,
    })
}

/// An ONNX model whose initializers' data is produced as it is written.
#[derive(Debug)]
pub struct StreamedModel {
    /// The model, its initializers without `raw_data`.
    pub proto: ModelProto,
    /// Each initializer's values, in order.
    sources: Vec<Tensor>,
    half: bool,
}

impl StreamedModel {
    /// Writes the model's protobuf to `out`, each initializer's data produced, written and
    /// its source's pages released in turn, then the metadata (the model's own, then
    /// `extra`'s, which sees what storing the weights lost). Fields are written in another
    /// order than [`encode`]'s, which protobuf readers accept. Returns the bytes written and
    /// the losses.
    pub fn write(
        &self,
        out: &mut dyn std::io::Write,
        extra: &dyn Fn(&Losses) -> Vec<(String, String)>,
    ) -> std::io::Result<(u64, Losses)> {
        use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
        let mut written = 0u64;
        let mut put = |out: &mut dyn std::io::Write, bytes: &[u8]| -> std::io::Result<()> {
            written += bytes.len() as u64;
            out.write_all(bytes)
        };
        let mut head = self.proto.clone_without_graph();
        let metadata = std::mem::take(&mut head.metadata_props);
        put(out, &head.encode_to_vec())?;
        let mut losses = Losses::default();
        if let Some(graph) = &self.proto.graph {
            let bare = graph.clone_without_initializers();
            let raw_len = |i: usize| self.raw_len(i) as u64;
            let tensor_len = |i: usize, t: &TensorProto| {
                let raw = raw_len(i);
                t.encoded_len() as u64 + key_len(9) as u64 + encoded_len_varint(raw) as u64 + raw
            };
            let graph_len = bare.encoded_len() as u64
                + graph
                    .initializer
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let n = tensor_len(i, t);
                        key_len(5) as u64 + encoded_len_varint(n) as u64 + n
                    })
                    .sum::<u64>();
            let mut frame = Vec::new();
            encode_key(7, WireType::LengthDelimited, &mut frame);
            encode_varint(graph_len, &mut frame);
            bare.encode(&mut frame).map_err(std::io::Error::other)?;
            put(out, &frame)?;
            for (i, tensor) in graph.initializer.iter().enumerate() {
                let mut frame = Vec::new();
                encode_key(5, WireType::LengthDelimited, &mut frame);
                encode_varint(tensor_len(i, tensor), &mut frame);
                tensor.encode(&mut frame).map_err(std::io::Error::other)?;
                encode_key(9, WireType::LengthDelimited, &mut frame);
                encode_varint(raw_len(i), &mut frame);
                put(out, &frame)?;
                let name = tensor.name.as_deref().unwrap_or_default();
                let mut sent = 0u64;
                self.produce(i, name, &mut losses, &mut |bytes| {
                    sent += bytes.len() as u64;
                    put(out, bytes)
                })?;
                if sent != raw_len(i) {
                    return Err(std::io::Error::other(format!(
                        "initializer `{name}`: {sent} bytes produced where {} were announced",
                        raw_len(i)
                    )));
                }
            }
        }
        let tail = ModelProto {
            metadata_props: metadata
                .into_iter()
                .chain(
                    extra(&losses)
                        .into_iter()
                        .map(|(k, v)| StringStringEntryProto {
                            key: Some(k),
                            value: Some(v),
                        }),
                )
                .collect(),
            ..Default::default()
        };
        put(out, &tail.encode_to_vec())?;
        Ok((written, losses))
    }

    /// The model with every initializer's data in memory, and the losses.
    pub fn into_proto(self) -> Result<(ModelProto, Losses), OnnxError> {
        let mut proto = self.proto.clone();
        let mut losses = Losses::default();
        if let Some(graph) = &mut proto.graph {
            for (i, tensor) in graph.initializer.iter_mut().enumerate() {
                let name = tensor.name.clone().unwrap_or_default();
                let mut raw = Vec::with_capacity(self.raw_len(i));
                self.produce(i, &name, &mut losses, &mut |bytes| {
                    raw.extend_from_slice(bytes);
                    Ok(())
                })
                .map_err(|_| OnnxError::NoData(name.clone()))?;
                tensor.raw_data = Some(raw);
            }
        }
        Ok((proto, losses))
    }

    /// The bytes of initializer `i`'s data.
    fn raw_len(&self, i: usize) -> usize {
        self.sources[i].numel() * if self.half { 2 } else { 4 }
    }

    /// Hands initializer `i`'s data to `sink` (f32 kept as f32 goes as it is stored, with no
    /// copy), counting what f16 loses; the source's pages are released afterwards.
    fn produce(
        &self,
        i: usize,
        name: &str,
        losses: &mut Losses,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let t = &self.sources[i];
        let data = t
            .data()
            .ok_or_else(|| std::io::Error::other(format!("initializer `{name}` has no data")))?;
        let result = if !self.half && t.dtype() == effnet_ir::DType::F32 {
            if cfg!(target_endian = "little") {
                data.read_with(|bytes| sink(bytes))
            } else {
                let values = t.to_f32_vec().map_err(std::io::Error::other)?;
                sink(&f32_bytes(&values))
            }
        } else {
            let values = t.to_f32_vec().map_err(std::io::Error::other)?;
            if self.half {
                let (bytes, stats) = effnet_ir::encode_f32(&values, effnet_ir::DType::F16, true);
                if stats.overflow > 0 {
                    losses.overflowing.push((name.to_owned(), stats.overflow));
                }
                if stats.flushed_to_zero > 0 {
                    losses
                        .flushed
                        .push((name.to_owned(), stats.flushed_to_zero));
                }
                losses.stats.merge(&stats);
                sink(&bytes)
            } else {
                sink(&f32_bytes(&values))
            }
        };
        data.release();
        result
    }
}

/// A convolution with the BatchNorm after it folded in: `W·s`, `(b − mean)·s + beta` with
/// `s = gamma / sqrt(var + eps)`, computed in f64.
fn fold(
    c: &effnet_ir::Conv2d,
    bn: &effnet_ir::BatchNorm,
) -> Result<(Vec<f32>, Vec<f32>), effnet_ir::IrError> {
    let w = values_of(&c.weight)?;
    let n = c.out_channels;
    let ones = vec![1.0f32; n];
    let zeros = vec![0.0f32; n];
    let gamma = bn
        .gamma
        .as_ref()
        .map(values_of)
        .transpose()?
        .unwrap_or(ones);
    let beta = bn
        .beta
        .as_ref()
        .map(values_of)
        .transpose()?
        .unwrap_or(zeros.clone());
    let mean = values_of(&bn.mean)?;
    let var = values_of(&bn.var)?;
    let bias = c.bias.as_ref().map(values_of).transpose()?.unwrap_or(zeros);
    let per_out = w.len() / n.max(1);
    let scale: Vec<f64> = (0..n)
        .map(|o| f64::from(gamma[o]) / (f64::from(var[o]) + bn.eps).sqrt())
        .collect();
    let weight = w
        .iter()
        .enumerate()
        .map(|(i, &x)| (f64::from(x) * scale[i / per_out]) as f32)
        .collect();
    let bias = (0..n)
        .map(|o| ((f64::from(bias[o]) - f64::from(mean[o])) * scale[o] + f64::from(beta[o])) as f32)
        .collect();
    Ok((weight, bias))
}

/// Decodes a model written by [`encode`] (or anything using the same message subset).
pub fn decode(bytes: &[u8]) -> Result<ModelProto, prost::DecodeError> {
    ModelProto::decode(bytes)
}

/// The model's protobuf bytes.
pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}
