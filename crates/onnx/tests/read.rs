//! Reading ONNX back: every export option of a tiny model in each convention reads into the
//! same structure (stages, blocks, roles, padding, epsilon, preprocessing), and seeded bit
//! flips and truncations of an export never panic.

use std::sync::Arc;

use effnet_ir::{Graph, Op, Padding, Role, structure};
use effnet_onnx::read::{ReadError, read_storage};
use effnet_onnx::{OnnxOptions, build, encode};
use effnet_spec::{ModelSpec, Scheme, build_graph};

/// A tiny B0-shaped model (w=0.1, d=0.5) in `scheme`'s conventions, every parameter given
/// distinct data.
fn tiny(scheme: Scheme) -> Graph {
    tiny_of(&ModelSpec::custom(0.1, 0.5, 64).unwrap(), scheme)
}

/// `spec`'s model in `scheme`'s conventions, every parameter given distinct data.
fn tiny_of(spec: &ModelSpec, scheme: Scheme) -> Graph {
    let mut graph = build_graph(&spec.architecture(), &scheme.semantics(spec.variant)).unwrap();
    let ids: Vec<_> = graph.nodes().map(|(id, _)| id).collect();
    let mut k = 0u32;
    for id in ids {
        let mut fill = |t: &mut effnet_ir::Tensor| {
            if t.data().is_none() && t.dtype().is_float() {
                k += 1;
                let v: Vec<f32> = (0..t.numel())
                    .map(|i| 0.5 + ((i as u32 * 7 + k) % 13) as f32 / 26.0)
                    .collect();
                *t = effnet_ir::Tensor::from_f32(t.shape().to_vec(), &v).unwrap();
            }
        };
        match &mut graph.node_mut(id).op {
            Op::Conv2d(c) => {
                fill(&mut c.weight);
                c.bias.as_mut().map(&mut fill);
            }
            Op::BatchNorm(b) => {
                b.gamma.as_mut().map(&mut fill);
                b.beta.as_mut().map(&mut fill);
                fill(&mut b.mean);
                fill(&mut b.var);
            }
            Op::Dense(d) => {
                fill(&mut d.weight);
                d.bias.as_mut().map(&mut fill);
            }
            _ => {}
        }
    }
    graph
}

fn options() -> OnnxOptions {
    OnnxOptions {
        opset: 17,
        resolution: Some([64, 64]),
        logits: false,
        no_preprocessing: false,
        doc: "test".into(),
        metadata: vec![],
        fold_bn: false,
        nhwc: false,
        half: false,
    }
}

fn read_back(graph: &Graph, options: &OnnxOptions) -> effnet_onnx::read::OnnxModel {
    let bytes = encode(&build(graph, options).unwrap());
    read_storage(Arc::new(bytes), std::path::Path::new("test.onnx"), None)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// (stage, block, role) of every node that has a block, in order.
fn block_roles(graph: &Graph) -> Vec<(effnet_ir::Stage, u16, Role)> {
    graph
        .nodes()
        .filter_map(|(_, n)| n.tag.block.map(|b| (n.tag.stage, b, n.tag.role)))
        .filter(|(_, _, r)| !matches!(r, Role::DropConnect) && !r.name().ends_with("_bn"))
        .collect()
}

#[test]
fn every_export_option_reads_back_into_the_same_structure() {
    // EfficientNet's MBConv, Lite's (no SE, ReLU6), V2-S's Fused-MBConv with and without
    // expansion followed by MBConv.
    let specs = [
        ModelSpec::custom(0.1, 0.5, 64).unwrap(),
        ModelSpec::scaled(effnet_spec::LITE, 0.05, 0.34, 64).unwrap(),
        ModelSpec::scaled(effnet_spec::V2_S, 0.1, 0.2, 64).unwrap(),
    ];
    for (spec, scheme) in specs.iter().flat_map(|spec| {
        [Scheme::Torchvision, Scheme::TimmTf, Scheme::Keras].map(|scheme| (spec, scheme))
    }) {
        let source = tiny_of(spec, scheme);
        let want_blocks = structure::blocks(&source, None);
        for (fold_bn, nhwc, half, dynamic) in [
            (false, false, false, false),
            (false, false, false, true),
            (true, false, false, false),
            (false, true, false, false),
            (false, false, true, false),
            (true, true, true, true),
        ] {
            let mut o = options();
            o.fold_bn = fold_bn;
            o.nhwc = nhwc;
            o.half = half;
            if dynamic {
                o.resolution = None;
            }
            let read = read_back(&source, &o);
            let label = format!(
                "{} {scheme} fold={fold_bn} nhwc={nhwc} f16={half} dynamic={dynamic}",
                spec.label()
            );
            assert_eq!(read.bn_folded, fold_bn, "{label}");
            assert_eq!(read.nhwc, nhwc, "{label}");
            assert!(read.unused.is_empty(), "{label}: {:?}", read.unused);
            let blocks = structure::blocks(&read.graph, None);
            assert_eq!(blocks.len(), want_blocks.len(), "{label}");
            for (a, b) in blocks.iter().zip(&want_blocks) {
                assert_eq!(
                    (
                        a.stage,
                        a.index,
                        a.input_channels,
                        a.expanded_channels,
                        a.output_channels
                    ),
                    (
                        b.stage,
                        b.index,
                        b.input_channels,
                        b.expanded_channels,
                        b.output_channels
                    ),
                    "{label}"
                );
                assert_eq!(
                    (a.kind, a.kernel, a.stride, a.se_channels, a.residual),
                    (b.kind, b.kernel, b.stride, b.se_channels, b.residual),
                    "{label}"
                );
            }
            assert_eq!(block_roles(&read.graph), block_roles(&source), "{label}");
            for (_, n) in read.graph.nodes() {
                match &n.op {
                    Op::BatchNorm(bn) => {
                        assert_eq!(bn.eps, scheme.semantics(None).bn_eps, "{label}");
                    }
                    Op::Conv2d(c)
                        if dynamic && scheme != Scheme::Torchvision && c.kernel != [1, 1] =>
                    {
                        assert_eq!(c.padding, Padding::SameUpper, "{label}: {}", n.name);
                    }
                    Op::Conv2d(c) if scheme == Scheme::Torchvision => {
                        assert_eq!(
                            c.padding,
                            Padding::symmetric(c.kernel, c.dilation),
                            "{label}"
                        );
                    }
                    _ => {}
                }
            }
            let preprocess = read
                .graph
                .nodes()
                .filter(|(_, n)| n.tag.role == Role::Preprocess)
                .count();
            assert_eq!(
                preprocess,
                if scheme == Scheme::Keras { 3 } else { 0 },
                "{label}"
            );
            let softmax = read
                .graph
                .nodes()
                .any(|(_, n)| n.tag.role == Role::ClassifierAct);
            assert_eq!(softmax, scheme == Scheme::Keras, "{label}");
        }
    }
}

#[test]
fn weights_are_views_into_the_file() {
    let graph = tiny(Scheme::Torchvision);
    let bytes = encode(&build(&graph, &options()).unwrap());
    let storage: Arc<Vec<u8>> = Arc::new(bytes);
    let read = read_storage(storage.clone(), std::path::Path::new("t.onnx"), None).unwrap();
    let (_, stem) = read
        .graph
        .nodes()
        .find(|(_, n)| n.tag.role == Role::StemConv)
        .unwrap();
    let Op::Conv2d(c) = &stem.op else { panic!() };
    let data = c.weight.data().unwrap().as_slice();
    let base = storage.as_ptr() as usize;
    let at = data.as_ptr() as usize;
    assert!(at >= base && at + data.len() <= base + storage.len());
}

#[test]
fn bit_flips_and_truncations_never_panic() {
    let graph = tiny(Scheme::Keras);
    let bytes = encode(&build(&graph, &options()).unwrap());
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let mut b = bytes.clone();
        if round % 3 == 0 {
            let cut = (next() as usize) % b.len();
            b.truncate(cut);
        } else {
            for _ in 0..(1 + round % 8) {
                let i = (next() as usize) % b.len();
                b[i] ^= 1 << (next() % 8);
            }
        }
        let result = read_storage(Arc::new(b), std::path::Path::new("m.onnx"), None);
        if let Err(e) = result {
            let text = e.to_string();
            assert!(text.starts_with("m.onnx: "), "{text}");
            assert!(!text.contains('\n'), "{text}");
            let _: &ReadError = &e;
        }
    }
}

#[test]
fn relu_and_relu6_read_back_as_the_activations_they_are() {
    use effnet_ir::Activation;
    let body = |r: Role| {
        matches!(
            r,
            Role::StemAct
                | Role::ExpandAct
                | Role::DepthwiseAct
                | Role::SeReduceAct
                | Role::HeadAct
        )
    };
    for activation in [Activation::Relu, Activation::Relu6] {
        let mut graph = tiny(Scheme::Torchvision);
        let ids: Vec<_> = graph.nodes().map(|(id, _)| id).collect();
        for id in ids {
            let node = graph.node_mut(id);
            if body(node.tag.role) {
                node.op = Op::Activation(activation);
            }
        }
        let read = read_back(&graph, &options());
        let found: Vec<Activation> = read
            .graph
            .nodes()
            .filter(|(_, n)| body(n.tag.role))
            .map(|(_, n)| match n.op {
                Op::Activation(a) => a,
                _ => panic!("{} is not an activation", n.name),
            })
            .collect();
        assert!(
            !found.is_empty() && found.iter().all(|&a| a == activation),
            "{found:?}"
        );
    }
}

#[test]
fn a_matmul_and_add_head_and_a_sqrt_of_the_variance_read_back() {
    use effnet_onnx::proto::{NodeProto, TensorProto};
    let graph = tiny(Scheme::Keras);
    let mut model = build(&graph, &options()).unwrap();
    let g = model.graph.as_mut().unwrap();
    let init = |g: &effnet_onnx::proto::GraphProto, name: &str| {
        g.initializer
            .iter()
            .find(|t| t.name.as_deref() == Some(name))
            .cloned()
            .unwrap()
    };
    let floats = |t: &TensorProto| -> Vec<f32> {
        t.raw_data
            .as_ref()
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let tensor = |name: &str, dims: Vec<i64>, values: &[f32]| TensorProto {
        dims,
        data_type: Some(1),
        name: Some(name.into()),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
    };
    // Gemm(x, W[out, in], b) → Add(MatMul(x, Wᵀ), b).
    let at = g
        .node
        .iter()
        .position(|n| n.op_type.as_deref() == Some("Gemm"))
        .unwrap();
    let gemm = g.node[at].clone();
    let w = init(g, &gemm.input[1]);
    let (out, inp) = (w.dims[0] as usize, w.dims[1] as usize);
    let wv = floats(&w);
    let wt: Vec<f32> = (0..inp * out)
        .map(|k| wv[(k % out) * inp + k / out])
        .collect();
    g.initializer
        .push(tensor("w_t", vec![inp as i64, out as i64], &wt));
    let matmul = NodeProto {
        input: vec![gemm.input[0].clone(), "w_t".into()],
        output: vec!["mm".into()],
        name: Some("head/MatMul".into()),
        op_type: Some("MatMul".into()),
        ..Default::default()
    };
    let add = NodeProto {
        input: vec!["mm".into(), gemm.input[2].clone()],
        output: gemm.output.clone(),
        name: Some("head/Add".into()),
        op_type: Some("Add".into()),
        ..Default::default()
    };
    g.node.splice(at..=at, [matmul, add]);
    // Div(x − mean, std) → Div(x − mean, Sqrt(var)).
    let div = g
        .node
        .iter()
        .position(|n| n.op_type.as_deref() == Some("Div"))
        .unwrap();
    let std = init(g, &g.node[div].input[1].clone());
    let var: Vec<f32> = floats(&std).iter().map(|s| s * s).collect();
    g.initializer.push(tensor("var", std.dims.clone(), &var));
    g.node[div].input[1] = "sqrt_var".into();
    g.node.insert(
        0,
        NodeProto {
            input: vec!["var".into()],
            output: vec!["sqrt_var".into()],
            name: Some("sqrt".into()),
            op_type: Some("Sqrt".into()),
            ..Default::default()
        },
    );
    let read = read_storage(
        Arc::new(encode(&model)),
        std::path::Path::new("edited.onnx"),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dense = read
        .graph
        .nodes()
        .find_map(|(_, n)| match &n.op {
            Op::Dense(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(dense.weight.shape(), &[out, inp]);
    assert_eq!(dense.weight.to_f32_vec().unwrap(), wv);
    assert!(dense.bias.is_some());
    assert!(
        read.graph
            .nodes()
            .any(|(_, n)| matches!(n.op, Op::Normalize(_)))
    );
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    varint(out, u64::from(number << 3 | 2));
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[test]
fn initializers_in_an_external_data_file_are_read_as_views_of_it() {
    use prost::Message;
    let graph = tiny(Scheme::TimmTf);
    let model = build(&graph, &options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Every initializer's data in `weights.bin` (at 64-byte aligned offsets, as onnx writes
    // them), its TensorProto pointing there.
    let mut data = Vec::new();
    let mut tensors = Vec::new();
    let g = model.graph.as_ref().unwrap();
    for t in &g.initializer {
        let raw = t.raw_data.clone().unwrap();
        data.resize(data.len().div_ceil(64) * 64, 0);
        let offset = data.len();
        data.extend_from_slice(&raw);
        let mut bytes = t.clone_without_data().encode_to_vec();
        for (k, v) in [
            ("location", "sub/weights.bin".to_owned()),
            ("offset", offset.to_string()),
            ("length", raw.len().to_string()),
        ] {
            let mut entry = Vec::new();
            field(&mut entry, 1, k.as_bytes());
            field(&mut entry, 2, v.as_bytes());
            field(&mut bytes, 13, &entry);
        }
        bytes.extend_from_slice(&[14 << 3, 1]); // data_location = EXTERNAL
        tensors.push(bytes);
    }
    let mut graph_bytes = g.clone_without_initializers().encode_to_vec();
    for t in &tensors {
        field(&mut graph_bytes, 5, t);
    }
    let mut bytes = model.clone_without_graph().encode_to_vec();
    field(&mut bytes, 7, &graph_bytes);
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/weights.bin"), &data).unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, &bytes).unwrap();
    let read = effnet_onnx::read::read(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.external_files.len(), 1);
    assert_eq!(read.used.len(), g.initializer.len());
    let inline = read_back(&graph, &options());
    let params = |m: &effnet_onnx::read::OnnxModel| -> Vec<Vec<f32>> {
        m.graph
            .nodes()
            .flat_map(|(_, n)| n.op.params())
            .map(|p| p.tensor.to_f32_vec().unwrap())
            .collect()
    };
    assert_eq!(params(&read), params(&inline));
    // The same file with the data cut short is refused, naming the tensor.
    std::fs::write(dir.path().join("sub/weights.bin"), &data[..data.len() - 1]).unwrap();
    let err = effnet_onnx::read::read(&path).unwrap_err().to_string();
    assert!(err.contains("lies outside"), "{err}");
}
