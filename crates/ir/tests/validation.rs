//! Graph construction, shape inference and the typed errors of validation.

use effnet_ir::{
    Activation, BatchNorm, Conv2d, DType, Dense, Graph, Input, IrError, NodeId, Op, Padding, Role,
    Tag, Tensor, TensorShape,
};

fn t(shape: &[usize]) -> Tensor {
    Tensor::shape_only(DType::F32, shape.to_vec()).unwrap()
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, groups: usize) -> Op {
    Op::Conv2d(Conv2d {
        in_channels: cin,
        out_channels: cout,
        kernel: [k, k],
        stride: [stride, stride],
        dilation: [1, 1],
        groups,
        padding: Padding::SameUpper,
        weight: t(&[cout, cin / groups.max(1), k, k]),
        bias: None,
    })
}

fn bn(c: usize) -> Op {
    Op::BatchNorm(BatchNorm {
        channels: c,
        eps: 1e-3,
        momentum: None,
        gamma: Some(t(&[c])),
        beta: Some(t(&[c])),
        mean: t(&[c]),
        var: t(&[c]),
    })
}

const TAG: Tag = Tag::stem(Role::StemConv);

fn with_input(resolution: Option<[usize; 2]>) -> (Graph, NodeId) {
    let mut g = Graph::new();
    let x = g
        .add_op(
            "input",
            Tag::stem(Role::Input),
            Op::Input(Input {
                channels: 3,
                resolution,
            }),
            &[],
        )
        .unwrap();
    (g, x)
}

#[test]
fn infers_shapes_through_conv_se_and_head() {
    let (mut g, x) = with_input(Some([224, 224]));
    let c = g.add_op("stem", TAG, conv(3, 32, 3, 2, 1), &[x]).unwrap();
    let a = g
        .add_op("act", TAG, Op::Activation(Activation::Swish), &[c])
        .unwrap();
    let dw = g.add_op("dw", TAG, conv(32, 32, 3, 1, 32), &[a]).unwrap();
    let sq = g
        .add_op("sq", TAG, Op::GlobalAvgPool { keep_dims: true }, &[dw])
        .unwrap();
    let m = g.add_op("mul", TAG, Op::Mul, &[dw, sq]).unwrap();
    let p = g
        .add_op("pool", TAG, Op::GlobalAvgPool { keep_dims: false }, &[m])
        .unwrap();
    let fc = g
        .add_op(
            "fc",
            TAG,
            Op::Dense(Dense {
                in_features: 32,
                out_features: 10,
                weight: t(&[10, 32]),
                bias: Some(t(&[10])),
            }),
            &[p],
        )
        .unwrap();
    g.set_outputs(vec![fc]);
    g.validate().unwrap();
    let s = g.infer_shapes(2, None).unwrap();
    assert_eq!(s[c].dims(), Some(vec![2, 32, 112, 112]));
    assert_eq!(s[sq].dims(), Some(vec![2, 32, 1, 1]));
    assert_eq!(s[m].dims(), Some(vec![2, 32, 112, 112]));
    assert_eq!(
        s[fc],
        TensorShape::Vector {
            batch: 2,
            features: 10
        }
    );
    // Another resolution, and none at all (channels still flow).
    let s = g.infer_shapes(1, Some([225, 225])).unwrap();
    assert_eq!(s[c].spatial(), Some([113, 113]));
    assert!(matches!(g.node(dw).op, Op::Conv2d(ref c) if c.is_depthwise()));
    assert_eq!(g.consumers(dw), vec![sq, m]);
    assert_eq!(g.inputs(m), vec![dw, sq]);
}

#[test]
fn channel_mismatch_names_both_nodes() {
    let (mut g, x) = with_input(None);
    let c = g.add_op("stem", TAG, conv(3, 32, 3, 2, 1), &[x]).unwrap();
    let b = g.add_op("bn", TAG, bn(16), &[c]).unwrap();
    g.set_outputs(vec![b]);
    let err = g.validate().unwrap_err();
    assert_eq!(
        err,
        IrError::ChannelMismatch {
            node: "bn".into(),
            input: "stem".into(),
            expected: 16,
            found: 32
        }
    );
    assert_eq!(
        err.to_string(),
        "node `bn`: expects 16 channels, its input `stem` has 32"
    );
}

#[test]
fn groups_must_divide_channels() {
    let (mut g, x) = with_input(None);
    let mut op = conv(3, 32, 3, 1, 1);
    if let Op::Conv2d(c) = &mut op {
        c.groups = 2;
    }
    let c = g.add_op("bad", TAG, op, &[x]).unwrap();
    g.set_outputs(vec![c]);
    assert!(matches!(
        g.validate(),
        Err(IrError::BadGroups { groups: 2, .. })
    ));
}

#[test]
fn parameter_shapes_must_match_attributes() {
    let (mut g, x) = with_input(None);
    let mut op = conv(3, 32, 3, 1, 1);
    if let Op::Conv2d(c) = &mut op {
        c.weight = t(&[32, 3, 5, 5]);
    }
    let c = g.add_op("stem", TAG, op, &[x]).unwrap();
    g.set_outputs(vec![c]);
    assert_eq!(
        g.validate(),
        Err(IrError::ParamShape {
            node: "stem".into(),
            param: "weight",
            expected: vec![32, 3, 3, 3],
            found: vec![32, 3, 5, 5]
        })
    );
}

#[test]
fn arity_and_dangling_inputs_are_refused_at_insertion() {
    let (mut g, x) = with_input(None);
    assert!(matches!(
        g.add_op("add", TAG, Op::Add, &[x]),
        Err(IrError::Arity {
            expected: 2,
            found: 1,
            ..
        })
    ));
    let ghost = NodeId::new(42);
    assert!(matches!(
        g.add_op("act", TAG, Op::Activation(Activation::Relu), &[ghost]),
        Err(IrError::DanglingInput { slot: 0, .. })
    ));
}

#[test]
fn graph_level_errors() {
    let (g, _) = with_input(None);
    assert_eq!(g.validate(), Err(IrError::NoOutput));
    let mut empty = Graph::new();
    empty.set_outputs(vec![]);
    assert_eq!(empty.infer_shapes(1, None), Err(IrError::InputCount(0)));
}

#[test]
fn element_wise_ops_need_compatible_shapes() {
    let (mut g, x) = with_input(Some([32, 32]));
    let a = g.add_op("a", TAG, conv(3, 8, 3, 1, 1), &[x]).unwrap();
    let b = g.add_op("b", TAG, conv(3, 8, 3, 2, 1), &[x]).unwrap();
    let add = g.add_op("add", TAG, Op::Add, &[a, b]).unwrap();
    g.set_outputs(vec![add]);
    assert!(matches!(
        g.validate(),
        Err(IrError::ShapeMismatch { ref node, .. }) if node == "add"
    ));
}

#[test]
fn dense_on_a_feature_map_is_a_rank_error() {
    let (mut g, x) = with_input(Some([8, 8]));
    let fc = g
        .add_op(
            "fc",
            TAG,
            Op::Dense(Dense {
                in_features: 3,
                out_features: 2,
                weight: t(&[2, 3]),
                bias: None,
            }),
            &[x],
        )
        .unwrap();
    g.set_outputs(vec![fc]);
    assert!(matches!(g.validate(), Err(IrError::Rank { .. })));
}

#[test]
fn bad_attributes_are_reported() {
    let (mut g, x) = with_input(None);
    let mut op = bn(3);
    if let Op::BatchNorm(b) = &mut op {
        b.eps = f64::NAN;
    }
    let n = g.add_op("bn", TAG, op, &[x]).unwrap();
    let d = g
        .add_op("drop", TAG, Op::Dropout { rate: 1.5 }, &[n])
        .unwrap();
    g.set_outputs(vec![d]);
    assert!(matches!(
        g.validate(),
        Err(IrError::BadAttribute { ref node, .. }) if node == "bn"
    ));
}

#[test]
fn kernel_larger_than_input_is_reported_with_the_node() {
    let (mut g, x) = with_input(Some([2, 2]));
    let mut op = conv(3, 8, 5, 1, 1);
    if let Op::Conv2d(c) = &mut op {
        c.padding = Padding::Valid;
    }
    let c = g.add_op("big", TAG, op, &[x]).unwrap();
    g.set_outputs(vec![c]);
    assert!(matches!(
        g.validate(),
        Err(IrError::KernelTooLarge { ref node, .. }) if node == "big"
    ));
}
