//! Hostile ONNX models, encoded here byte by byte: external data leading out of the model's
//! folder (`../`, an absolute path, a symlink), to a FIFO or past the end of its file, tensors
//! whose data disagrees with their shape, sub-graphs nested 50,000 deep, a cut file.

use std::path::Path;

use super::{file, listing, pb_bytes, pb_varint, refused, scratch, varint};

fn entry(key: &str, value: &str) -> Vec<u8> {
    let mut e = Vec::new();
    pb_bytes(&mut e, 1, key.as_bytes());
    pb_bytes(&mut e, 2, value.as_bytes());
    e
}

/// A float tensor `w` of `dims` with `data` as its fields (raw_data, external data, …).
fn tensor(dims: &[u64], data: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        pb_varint(&mut t, 1, d);
    }
    pb_varint(&mut t, 2, 1);
    pb_bytes(&mut t, 8, b"w");
    t.extend_from_slice(data);
    t
}

fn external(location: &str, length: Option<u64>) -> Vec<u8> {
    let mut d = Vec::new();
    pb_bytes(&mut d, 13, &entry("location", location));
    if let Some(l) = length {
        pb_bytes(&mut d, 13, &entry("length", &l.to_string()));
    }
    pb_varint(&mut d, 14, 1);
    d
}

/// An image input `x` of [1, 3, 64, 64].
fn input() -> Vec<u8> {
    let mut shape = Vec::new();
    for d in [1u64, 3, 64, 64] {
        let mut dim = Vec::new();
        pb_varint(&mut dim, 1, d);
        pb_bytes(&mut shape, 1, &dim);
    }
    let mut tensor_type = Vec::new();
    pb_varint(&mut tensor_type, 1, 1);
    pb_bytes(&mut tensor_type, 2, &shape);
    let mut ty = Vec::new();
    pb_bytes(&mut ty, 1, &tensor_type);
    let mut info = Vec::new();
    pb_bytes(&mut info, 1, b"x");
    pb_bytes(&mut info, 2, &ty);
    info
}

/// A model around a graph's fields.
fn model(graph: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    pb_varint(&mut m, 1, 8);
    let mut opset = Vec::new();
    pb_varint(&mut opset, 2, 17);
    pb_bytes(&mut m, 8, &opset);
    pb_bytes(&mut m, 7, graph);
    m
}

/// A graph with one initializer and the image input.
fn with_initializer(t: &[u8]) -> Vec<u8> {
    let mut g = Vec::new();
    pb_bytes(&mut g, 5, t);
    pb_bytes(&mut g, 11, &input());
    model(&g)
}

fn refused_both(path: &Path) -> String {
    let p = path.to_str().unwrap();
    crate::refused_or_not_efficientnet(path);
    let out = path.with_extension("safetensors");
    let line = refused(&["convert", p, "-o", out.to_str().unwrap()], path);
    assert!(!out.exists());
    line
}

#[test]
fn external_data_outside_the_models_folder_is_refused() {
    let dir = scratch();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    file(dir.path(), "secret.bin", &[0u8; 16]);
    for (name, location) in [
        ("dotdot.onnx", "../secret.bin"),
        ("absolute.onnx", "/etc/passwd"),
        ("nested-dotdot.onnx", "a/../../secret.bin"),
    ] {
        let path = file(
            &models,
            name,
            &with_initializer(&tensor(&[4], &external(location, None))),
        );
        let line = refused_both(&path);
        assert!(line.contains("out of the model's folder"), "{line}");
    }
    // A symlink inside the folder that leads out of it.
    std::os::unix::fs::symlink(dir.path().join("secret.bin"), models.join("link.bin")).unwrap();
    let path = file(
        &models,
        "symlink.onnx",
        &with_initializer(&tensor(&[4], &external("link.bin", None))),
    );
    let line = refused_both(&path);
    assert!(line.contains("out of the model's folder"), "{line}");
    let before = listing(&models);
    // A FIFO is never opened for reading, never waited on.
    let fifo = models.join("fifo.bin");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let path = file(
        &models,
        "fifo.onnx",
        &with_initializer(&tensor(&[4], &external("fifo.bin", None))),
    );
    let line = refused_both(&path);
    assert!(line.contains("not a regular file"), "{line}");
    assert_eq!(listing(&models).len(), before.len() + 2);
}

#[test]
fn tensor_sizes_that_lie_are_refused() {
    let dir = scratch();
    file(dir.path(), "w.bin", &[0u8; 16]);
    let mut raw = Vec::new();
    pb_bytes(&mut raw, 9, &[0u8; 4]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // 2^30 × 2^30 floats claimed by 4 bytes of raw_data.
        (
            "huge-raw.onnx",
            tensor(&[1 << 30, 1 << 30], &raw),
            "raw_data of 4 bytes",
        ),
        // A shape whose byte size overflows.
        ("overflow.onnx", tensor(&[1 << 62, 16], &raw), "too large"),
        // External data longer than its file.
        (
            "long-external.onnx",
            tensor(&[1 << 20], &external("w.bin", Some(4 << 20))),
            "outside",
        ),
        // External data shorter than the tensor.
        (
            "short-external.onnx",
            tensor(&[64], &external("w.bin", Some(16))),
            "external data of 16 bytes",
        ),
    ];
    for (name, t, expect) in cases {
        let path = file(dir.path(), name, &with_initializer(&t));
        let line = refused_both(&path);
        assert!(line.contains(expect), "{name}: {line}");
    }
}

#[test]
fn sub_graphs_nested_fifty_thousand_deep_are_skipped_in_one_pass_and_refused() {
    // graph { node { attribute { g: graph { node { attribute { g: … } } } } } }, written
    // outside-in: every header first, then the innermost graph.
    const DEPTH: usize = 50_000;
    let core: Vec<u8> = Vec::new();
    let mut headers: Vec<Vec<u8>> = Vec::with_capacity(DEPTH * 3);
    let mut inner_len = core.len();
    for _ in 0..DEPTH {
        // attribute { name "then_branch", g (6): graph }
        let mut attr_head = Vec::new();
        pb_bytes(&mut attr_head, 1, b"then_branch");
        varint(&mut attr_head, 6 << 3 | 2);
        varint(&mut attr_head, inner_len as u64);
        let attr_len = attr_head.len() + inner_len;
        // node { op_type "If", attribute (5): … }
        let mut node_head = Vec::new();
        pb_bytes(&mut node_head, 4, b"If");
        pb_bytes(&mut node_head, 1, b"x");
        pb_bytes(&mut node_head, 2, b"y");
        varint(&mut node_head, 5 << 3 | 2);
        varint(&mut node_head, attr_len as u64);
        let node_len = node_head.len() + attr_len;
        // graph { node (1): … }
        let mut graph_head = Vec::new();
        varint(&mut graph_head, 1 << 3 | 2);
        varint(&mut graph_head, node_len as u64);
        inner_len = graph_head.len() + node_len;
        headers.push(attr_head);
        headers.push(node_head);
        headers.push(graph_head);
    }
    // The outermost graph's node list, without its own header; plus the input and output.
    headers.pop();
    let mut graph: Vec<u8> = headers.iter().rev().flatten().copied().collect();
    graph.extend_from_slice(&core);
    // Re-wrap the outermost node as graph field 1 and add the input and output.
    let mut outer = Vec::new();
    pb_bytes(&mut outer, 1, &graph);
    pb_bytes(&mut outer, 11, &input());
    let mut output = Vec::new();
    pb_bytes(&mut output, 1, b"y");
    pb_bytes(&mut outer, 12, &output);
    let dir = scratch();
    let path = file(dir.path(), "nested.onnx", &model(&outer));
    let line = refused_both(&path);
    assert!(line.contains("sub-graph") || line.contains("If"), "{line}");
}

#[test]
fn cut_and_garbage_models_are_refused() {
    let dir = scratch();
    let good = with_initializer(&tensor(&[4], &{
        let mut raw = Vec::new();
        pb_bytes(&mut raw, 9, &[0u8; 16]);
        raw
    }));
    let cut = file(dir.path(), "cut.onnx", &good[..good.len() - 7]);
    let line = refused_both(&cut);
    assert!(
        line.contains("runs past") || line.contains("ends inside"),
        "{line}"
    );
    // A group (wire type 3), which ONNX never writes.
    let mut group = vec![0x08, 0x08, 0x42, 0x02, 0x10, 0x11];
    group.extend_from_slice(&[0x3b, 0x00]);
    let path = file(dir.path(), "group.onnx", &group);
    let line = refused_both(&path);
    assert!(line.contains("group"), "{line}");
}

#[test]
fn a_zero_stride_measured_by_shape_is_refused_not_a_division_by_zero() {
    // x → Conv(w, strides [0, 0]) → Shape: the shape is inferred while translating, before
    // the graph is validated.
    let mut raw = Vec::new();
    pb_bytes(&mut raw, 9, &[0u8; 8 * 3 * 3 * 3 * 4]);
    let mut g = Vec::new();
    let mut attr = Vec::new();
    pb_bytes(&mut attr, 1, b"strides");
    pb_varint(&mut attr, 8, 0);
    pb_varint(&mut attr, 8, 0);
    pb_varint(&mut attr, 20, 7);
    let mut conv = Vec::new();
    pb_bytes(&mut conv, 1, b"x");
    pb_bytes(&mut conv, 1, b"w");
    pb_bytes(&mut conv, 2, b"c");
    pb_bytes(&mut conv, 3, b"conv");
    pb_bytes(&mut conv, 4, b"Conv");
    pb_bytes(&mut conv, 5, &attr);
    pb_bytes(&mut g, 1, &conv);
    let mut shape = Vec::new();
    pb_bytes(&mut shape, 1, b"c");
    pb_bytes(&mut shape, 2, b"s");
    pb_bytes(&mut shape, 3, b"shape");
    pb_bytes(&mut shape, 4, b"Shape");
    pb_bytes(&mut g, 1, &shape);
    pb_bytes(&mut g, 5, &tensor(&[8, 3, 3, 3], &raw));
    pb_bytes(&mut g, 11, &input());
    let mut output = Vec::new();
    pb_bytes(&mut output, 1, b"s");
    pb_bytes(&mut g, 12, &output);
    let dir = scratch();
    let path = file(dir.path(), "stride0.onnx", &model(&g));
    let line = refused_both(&path);
    assert!(line.contains("stride"), "{line}");
}
