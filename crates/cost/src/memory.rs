//! Activation memory over an execution schedule.

use effnet_ir::{Activation, Graph, NodeId, Op, Shapes, TensorShape};

/// The buffer a node's output lives in: its own, or (for ops that compute nothing at
/// inference) the buffer of its input.
fn inference_buffers(graph: &Graph) -> Vec<usize> {
    let mut buffer = Vec::with_capacity(graph.len());
    for (id, node) in graph.nodes() {
        let own = id.index();
        let b = if node.op.is_inference_alias() {
            graph.inputs(id).first().map_or(own, |i| buffer[i.index()])
        } else {
            own
        };
        buffer.push(b);
    }
    buffer
}

/// The largest total size of live tensors when the nodes run one after another in topological
/// order, each output allocated before its inputs are freed and freed after its last reader.
/// The graph input is counted; outputs stay live to the end.
pub(crate) fn peak_inference_bytes(graph: &Graph, shapes: &Shapes, elem_size: u64) -> u64 {
    let n = graph.len();
    let buffer = inference_buffers(graph);
    let bytes = |id: usize| elems(shapes, id).saturating_mul(elem_size);
    // Last step at which each buffer is read.
    let mut last_use: Vec<usize> = (0..n).collect();
    for (id, _) in graph.nodes() {
        for input in graph.inputs(id) {
            let b = buffer[input.index()];
            last_use[b] = last_use[b].max(id.index());
        }
    }
    for &out in graph.outputs() {
        last_use[buffer[out.index()]] = n;
    }
    let mut frees: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
    for b in 0..n {
        if buffer[b] == b {
            frees[last_use[b]].push(b);
        }
    }
    let (mut live, mut peak) = (0u64, 0u64);
    for step in 0..n {
        if buffer[step] == step {
            live = live.saturating_add(bytes(step));
            peak = peak.max(live);
        }
        for &b in &frees[step] {
            live -= bytes(b);
        }
    }
    peak
}

/// Bytes of the distinct activation tensors that autograd keeps for the backward pass
/// (PyTorch's saved tensors): conv, dense, BatchNorm and swish keep their input; sigmoid,
/// ReLU and softmax their output; a product both operands; dropout a one-byte mask.
pub(crate) fn training_saved_bytes(graph: &Graph, shapes: &Shapes, elem_size: u64) -> u64 {
    let n = graph.len();
    // In training, dropout and drop-connect compute new tensors; only a flatten is a view.
    let mut tensor = Vec::with_capacity(n);
    for (id, node) in graph.nodes() {
        let t = match node.op {
            Op::Flatten => graph
                .inputs(id)
                .first()
                .map_or(id.index(), |i| tensor[i.index()]),
            _ => id.index(),
        };
        tensor.push(t);
    }
    let mut saved = vec![false; n];
    let mut masks = 0u64;
    let mut keep = |id: NodeId| saved[tensor[id.index()]] = true;
    for (id, node) in graph.nodes() {
        let inputs = graph.inputs(id);
        match &node.op {
            Op::Conv2d(_) | Op::Dense(_) | Op::BatchNorm(_) => keep(inputs[0]),
            Op::Activation(Activation::Swish) => keep(inputs[0]),
            Op::Activation(_) => keep(id),
            Op::Mul => inputs.iter().for_each(|&i| keep(i)),
            // torch keeps a bool mask per element; stochastic depth one scale per sample.
            Op::Dropout { .. } => masks += elems(shapes, id.index()),
            Op::StochasticDepth { .. } => {
                masks += batch(shapes, id.index()).saturating_mul(elem_size)
            }
            _ => {}
        }
    }
    let tensors: u64 = (0..n)
        .filter(|&t| saved[t])
        .map(|t| elems(shapes, t).saturating_mul(elem_size))
        .sum();
    tensors.saturating_add(masks)
}

/// Output elements of the node at `index`.
fn elems(shapes: &Shapes, index: usize) -> u64 {
    shapes
        .get(NodeId::new(index))
        .and_then(|s| s.elems())
        .unwrap_or(0)
}

/// Batch size of the node at `index`.
fn batch(shapes: &Shapes, index: usize) -> u64 {
    match shapes.get(NodeId::new(index)) {
        Some(TensorShape::Map { batch, .. } | TensorShape::Vector { batch, .. }) => *batch as u64,
        None => 0,
    }
}
