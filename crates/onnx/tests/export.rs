//! The structure of exported models (their numbers are checked in onnxruntime by
//! `tests/onnx/check_onnx.py` in `.ci/run`).

use effnet_onnx::proto::{DimensionValue, ModelProto, NodeProto};
use effnet_onnx::{OnnxError, OnnxOptions, build, encode};
use effnet_spec::{ModelSpec, Scheme, build_graph};
use prost::Message;

fn options(resolution: Option<[usize; 2]>) -> OnnxOptions {
    OnnxOptions {
        opset: 17,
        resolution,
        logits: false,
        no_preprocessing: false,
        doc: "test".into(),
        metadata: vec![],
        fold_bn: false,
        nhwc: false,
        half: false,
    }
}

/// A small B0-shaped model in Keras' conventions, every parameter given data.
fn keras_b0() -> effnet_ir::Graph {
    let spec = ModelSpec::custom(0.1, 0.5, 224).unwrap();
    let mut graph =
        build_graph(&spec.architecture(), &Scheme::Keras.semantics(spec.variant)).unwrap();
    let ids: Vec<_> = graph.nodes().map(|(id, _)| id).collect();
    for id in ids {
        let fill = |t: &mut effnet_ir::Tensor| {
            if t.data().is_none() {
                *t =
                    effnet_ir::Tensor::from_f32(t.shape().to_vec(), &vec![0.5; t.numel()]).unwrap();
            }
        };
        match &mut graph.node_mut(id).op {
            effnet_ir::Op::Conv2d(c) => {
                fill(&mut c.weight);
                c.bias.as_mut().map(fill);
            }
            effnet_ir::Op::BatchNorm(b) => {
                b.gamma.as_mut().map(fill);
                b.beta.as_mut().map(fill);
                fill(&mut b.mean);
                fill(&mut b.var);
            }
            effnet_ir::Op::Dense(d) => {
                fill(&mut d.weight);
                d.bias.as_mut().map(fill);
            }
            _ => {}
        }
    }
    graph
}

/// The dimensions of a graph input.
fn input_dims(input: &effnet_onnx::proto::ValueInfoProto) -> Vec<effnet_onnx::proto::Dimension> {
    let tensor = input.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
    tensor.shape.as_ref().unwrap().dim.clone()
}

fn attr_ints<'a>(node: &'a NodeProto, name: &str) -> Option<&'a [i64]> {
    node.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
        .map(|a| a.ints.as_slice())
}

#[test]
fn tf_same_padding_becomes_asymmetric_pads_or_same_upper() {
    let graph = keras_b0();
    let model = build(&graph, &options(Some([224, 224]))).unwrap();
    let g = model.graph.as_ref().unwrap();
    let stem = g
        .node
        .iter()
        .find(|n| n.op_type.as_deref() == Some("Conv"))
        .unwrap();
    // 224 is even: TF pads (0, 1) for a 3×3 stride-2 conv.
    assert_eq!(attr_ints(stem, "pads"), Some(&[0, 0, 1, 1][..]));
    let dynamic = build(&graph, &options(None)).unwrap();
    let stem = dynamic
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .find(|n| n.op_type.as_deref() == Some("Conv"))
        .unwrap();
    let auto = stem
        .attribute
        .iter()
        .find(|a| a.name.as_deref() == Some("auto_pad"))
        .unwrap();
    assert_eq!(auto.s.as_deref(), Some(&b"SAME_UPPER"[..]));
    let input = &dynamic.graph.as_ref().unwrap().input[0];
    let dims = input_dims(input);
    assert_eq!(
        dims[0].value,
        Some(DimensionValue::DimParam("batch".into()))
    );
    assert_eq!(
        dims[2].value,
        Some(DimensionValue::DimParam("height".into()))
    );
}

#[test]
fn keras_model_keeps_preprocessing_and_softmax_unless_asked() {
    let graph = keras_b0();
    let model = build(&graph, &options(Some([224, 224]))).unwrap();
    let g = model.graph.as_ref().unwrap();
    let ops: Vec<&str> = g
        .node
        .iter()
        .take(5)
        .map(|n| n.op_type.as_deref().unwrap())
        .collect();
    assert_eq!(ops, ["Mul", "Sub", "Div", "Mul", "Conv"]);
    assert_eq!(g.output[0].name.as_deref(), Some("probabilities"));
    assert_eq!(g.node.last().unwrap().op_type.as_deref(), Some("Softmax"));
    let bn = g
        .node
        .iter()
        .find(|n| n.op_type.as_deref() == Some("BatchNormalization"))
        .unwrap();
    assert_eq!(bn.attribute[0].f, Some(1e-3));
    let mut opts = options(Some([224, 224]));
    opts.logits = true;
    opts.no_preprocessing = true;
    let bare = build(&graph, &opts).unwrap();
    let g = bare.graph.as_ref().unwrap();
    assert_eq!(g.output[0].name.as_deref(), Some("logits"));
    assert_eq!(g.node[0].op_type.as_deref(), Some("Conv"));
    assert_eq!(g.node.last().unwrap().op_type.as_deref(), Some("Gemm"));
}

#[test]
fn fold_bn_removes_batchnorm_nodes_and_nhwc_adds_a_transpose() {
    let graph = keras_b0();
    let mut opts = options(Some([224, 224]));
    opts.fold_bn = true;
    opts.nhwc = true;
    let model = build(&graph, &opts).unwrap();
    let g = model.graph.as_ref().unwrap();
    assert!(
        !g.node
            .iter()
            .any(|n| n.op_type.as_deref() == Some("BatchNormalization"))
    );
    assert_eq!(g.node[0].op_type.as_deref(), Some("Transpose"));
    let dims = input_dims(&g.input[0]);
    assert_eq!(dims[3].value, Some(DimensionValue::DimValue(3)));
}

#[test]
fn encoding_round_trips_and_opsets_are_checked() {
    let graph = keras_b0();
    let model = build(&graph, &options(Some([224, 224]))).unwrap();
    let bytes = encode(&model);
    assert_eq!(ModelProto::decode(bytes.as_slice()).unwrap(), model);
    assert_eq!(model.ir_version, Some(8));
    let mut opts = options(None);
    opts.opset = 12;
    assert_eq!(build(&graph, &opts).unwrap_err(), OnnxError::Opset(12));
}
