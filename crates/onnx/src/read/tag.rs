//! Placing every node of a translated graph by stage, block and role: the EfficientNet
//! structure is walked from the input (preprocessing, stem, MBConv and Fused-MBConv blocks,
//! head) and any node the walk does not reach, or reaches where another op belongs, is refused
//! by name.
//!
//! Stages are not in an ONNX file: a block starts a new stage where it changes the block kind,
//! the stride, the channels, the kernel or the expansion (the same rule as for checkpoints
//! without stage names), numbered from 2.

use effnet_ir::{BlockKind, Graph, NodeId, Op, Role, Tag};

use super::Failure;
use super::translate::Origin;

struct Walk<'a> {
    graph: &'a mut Graph,
    origins: &'a [Origin],
    tagged: Vec<bool>,
    bn_missing: usize,
    bn_present: usize,
}

/// One block as the walk found it, before stages are known.
struct Found {
    kind: BlockKind,
    nodes: Vec<(NodeId, Role)>,
    in_channels: usize,
    mid: usize,
    out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    has_expand: bool,
}

/// Tags every node of `graph`; returns whether the BatchNorms were folded into the
/// convolutions.
pub(crate) fn tag(graph: &mut Graph, origins: &[Origin]) -> Result<bool, Failure> {
    let n = graph.len();
    let mut w = Walk {
        graph,
        origins,
        tagged: vec![false; n],
        bn_missing: 0,
        bn_present: 0,
    };
    w.run()?;
    if let Some(i) = w.tagged.iter().position(|t| !t) {
        return Err(w.fail(
            NodeId::new(i),
            "not part of the EfficientNet structure effnet recognises",
        ));
    }
    if w.bn_missing > 0 && w.bn_present > 0 {
        return Err(Failure::Invalid(format!(
            "{} convolution(s) have a BatchNormalization and {} have it folded in: effnet reads one or the other",
            w.bn_present, w.bn_missing
        )));
    }
    Ok(w.bn_missing > 0)
}

impl Walk<'_> {
    fn fail(&self, id: NodeId, message: &str) -> Failure {
        let (position, node, op) = self.origins[id.index()].clone();
        Failure::Node {
            position,
            node,
            op,
            message: format!(
                "{message} (the graph has {} there)",
                self.graph.node(id).op.kind()
            ),
        }
    }

    fn set(&mut self, id: NodeId, tag: Tag) {
        self.graph.node_mut(id).tag = tag;
        self.tagged[id.index()] = true;
    }

    /// The single consumer of `id`.
    fn next(&self, id: NodeId, what: &str) -> Result<NodeId, Failure> {
        match self.graph.consumers(id).as_slice() {
            [one] => Ok(*one),
            [] => Err(self.fail(id, &format!("the graph ends here; {what} should follow"))),
            _ => Err(self.fail(
                id,
                &format!("read by several nodes where only {what} should follow"),
            )),
        }
    }

    fn is_conv(&self, id: NodeId) -> bool {
        matches!(self.graph.node(id).op, Op::Conv2d(_))
    }

    fn conv(&self, id: NodeId) -> Option<&effnet_ir::Conv2d> {
        match &self.graph.node(id).op {
            Op::Conv2d(c) => Some(c),
            _ => None,
        }
    }

    fn is_act(&self, id: NodeId) -> bool {
        matches!(self.graph.node(id).op, Op::Activation(_))
    }

    /// conv → [BatchNorm] → activation from `conv`; tags them and returns the activation.
    fn conv_bn_act(
        &mut self,
        conv: NodeId,
        roles: [Role; 3],
        tag: impl Fn(Role) -> Tag,
        act_required: bool,
        nodes: &mut Vec<(NodeId, Role)>,
    ) -> Result<NodeId, Failure> {
        self.set(conv, tag(roles[0]));
        nodes.push((conv, roles[0]));
        let mut last = conv;
        let consumers = self.graph.consumers(conv);
        let after = match consumers.as_slice() {
            [one] => *one,
            _ if !act_required => conv,
            _ => self.next(conv, "a BatchNormalization or an activation")?,
        };
        if after != conv && matches!(self.graph.node(after).op, Op::BatchNorm(_)) {
            self.set(after, tag(roles[1]));
            nodes.push((after, roles[1]));
            self.bn_present += 1;
            last = after;
        } else {
            self.bn_missing += 1;
        }
        if !act_required {
            return Ok(last);
        }
        let act = self.next(last, "an activation")?;
        if !self.is_act(act) {
            return Err(self.fail(act, "an activation belongs here"));
        }
        self.set(act, tag(roles[2]));
        nodes.push((act, roles[2]));
        Ok(act)
    }

    fn run(&mut self) -> Result<(), Failure> {
        let input = self
            .graph
            .input()
            .map_err(|e| Failure::Invalid(e.to_string()))?;
        self.set(input, Tag::stem(Role::Input));
        let mut x = input;
        loop {
            let next = self.next(x, "the stem convolution")?;
            if matches!(self.graph.node(next).op, Op::Rescale(_) | Op::Normalize(_)) {
                self.set(next, Tag::stem(Role::Preprocess));
                x = next;
            } else {
                break;
            }
        }
        let stem = self.next(x, "the stem convolution")?;
        match self.conv(stem) {
            Some(c) if c.groups == 1 && c.kernel != [1, 1] => {}
            _ => return Err(self.fail(stem, "the stem convolution belongs here")),
        }
        let mut scratch = Vec::new();
        x = self.conv_bn_act(
            stem,
            [Role::StemConv, Role::StemBn, Role::StemAct],
            Tag::stem,
            true,
            &mut scratch,
        )?;

        let mut blocks: Vec<Found> = Vec::new();
        let head_conv = loop {
            // The block input is read by the block's first convolution and, with a shortcut,
            // by the residual Add.
            let consumers = self.graph.consumers(x);
            let convs: Vec<NodeId> = consumers
                .iter()
                .copied()
                .filter(|&c| self.is_conv(c))
                .collect();
            let [first] = convs.as_slice() else {
                return Err(self.fail(x, "one convolution should read this"));
            };
            let first = *first;
            let others: Vec<NodeId> = consumers.iter().copied().filter(|&c| c != first).collect();
            if others.len() > 1
                || others
                    .first()
                    .is_some_and(|&o| !matches!(self.graph.node(o).op, Op::Add))
            {
                return Err(self.fail(
                    x,
                    "read by nodes other than a block's convolution and its residual Add",
                ));
            }
            let c = self.conv(first).expect("a convolution").clone();
            let pointwise = c.kernel == [1, 1] && c.groups == 1;
            if c.groups == 1 && !pointwise {
                // A k×k convolution over all channels opens a Fused-MBConv.
                let block = self.fused_block(x, first, others.first().copied())?;
                x = block.1;
                blocks.push(block.0);
                continue;
            }
            if pointwise {
                // An expansion (a depthwise convolution follows its activation) or the head.
                let mut probe = self.next(first, "a BatchNormalization or an activation")?;
                if matches!(self.graph.node(probe).op, Op::BatchNorm(_)) {
                    probe = self.next(probe, "an activation")?;
                }
                let after = self.next(probe, "a depthwise convolution or the head's pooling")?;
                let depthwise_next = self.conv(after).is_some_and(|d| d.groups > 1);
                if !depthwise_next {
                    if !others.is_empty() {
                        return Err(self.fail(x, "a residual Add without a block"));
                    }
                    break first;
                }
            }
            let block = self.block(x, first, pointwise, others.first().copied())?;
            x = block.1;
            blocks.push(block.0);
        };
        // Stages: a new one where stride, channels, kernel or expansion change.
        let mut stage = 1u8;
        let mut index = 0u16;
        for i in 0..blocks.len() {
            let continues = i > 0 && {
                let (p, b) = (&blocks[i - 1], &blocks[i]);
                b.kind == p.kind
                    && b.stride == [1, 1]
                    && b.in_channels == b.out
                    && b.out == p.out
                    && b.kernel == p.kernel
                    && b.has_expand == p.has_expand
                    && b.mid * p.in_channels.max(1) == p.mid * b.in_channels.max(1)
            };
            if continues {
                index += 1;
            } else {
                stage += 1;
                index = 0;
            }
            if stage > 8 {
                let id = blocks[i].nodes[0].0;
                return Err(self.fail(id, "an eighth stage of blocks (an EfficientNet has seven)"));
            }
            for &(id, role) in &blocks[i].nodes {
                self.graph.node_mut(id).tag = Tag::in_block(stage, index, role);
            }
        }

        // The head: conv → [BN] → act → pool → [flatten] → dense → [softmax].
        let head9 = Tag::head;
        let act = self.conv_bn_act(
            head_conv,
            [Role::HeadConv, Role::HeadBn, Role::HeadAct],
            head9,
            true,
            &mut scratch,
        )?;
        let pool = self.next(act, "the head's global pooling")?;
        if !matches!(self.graph.node(pool).op, Op::GlobalAvgPool { .. }) {
            return Err(self.fail(pool, "the head's global pooling belongs here"));
        }
        self.set(pool, head9(Role::HeadPool));
        let mut last = pool;
        loop {
            if self.graph.outputs() == [last] {
                break;
            }
            let next = self.next(last, "the classifier")?;
            let role = match self.graph.node(next).op {
                Op::Flatten => Role::Reshape,
                Op::Dropout { .. } => Role::HeadDropout,
                Op::Dense(_) => Role::Classifier,
                Op::Activation(effnet_ir::Activation::Softmax)
                    if self.graph.node(last).tag.role == Role::Classifier =>
                {
                    Role::ClassifierAct
                }
                _ => return Err(self.fail(next, "the classifier belongs here")),
            };
            self.set(next, head9(role));
            last = next;
        }
        Ok(())
    }

    /// Whether `conv` (1×1) is an MBConv expansion: an activation follows it (after its
    /// BatchNorm), where a projection has none.
    fn is_expansion(&self, conv: NodeId) -> bool {
        let mut after = self.graph.consumers(conv);
        if let [bn] = after.as_slice() {
            if matches!(self.graph.node(*bn).op, Op::BatchNorm(_)) {
                after = self.graph.consumers(*bn);
            }
        }
        matches!(after.as_slice(), [a] if self.is_act(*a))
    }

    /// One Fused-MBConv block from its input `x` and first (k×k) convolution: with expansion,
    /// conv → BN → act → 1×1 projection → BN; without, conv → BN → act (the projection).
    fn fused_block(
        &mut self,
        x: NodeId,
        first: NodeId,
        residual: Option<NodeId>,
    ) -> Result<(Found, NodeId), Failure> {
        let mut nodes = Vec::new();
        let tag = |r| Tag::in_block(2, 0, r);
        let c = self.conv(first).expect("a convolution").clone();
        let act = self.conv_bn_act(
            first,
            [Role::ExpandConv, Role::ExpandBn, Role::ExpandAct],
            tag,
            true,
            &mut nodes,
        )?;
        let projection = match self.graph.consumers(act).as_slice() {
            [p] if self
                .conv(*p)
                .is_some_and(|p| p.kernel == [1, 1] && p.groups == 1)
                && !self.is_expansion(*p) =>
            {
                Some(*p)
            }
            _ => None,
        };
        let (mut out, project_out) = match projection {
            Some(project) => {
                let out = self.conv_bn_act(
                    project,
                    [Role::ProjectConv, Role::ProjectBn, Role::ProjectBn],
                    tag,
                    false,
                    &mut nodes,
                )?;
                let channels = self.conv(project).expect("a convolution").out_channels;
                (out, channels)
            }
            None => {
                // Without expansion the k×k convolution is the projection, with activation.
                for (_, role) in &mut nodes {
                    *role = match *role {
                        Role::ExpandConv => Role::ProjectConv,
                        Role::ExpandBn => Role::ProjectBn,
                        _ => Role::ProjectAct,
                    };
                }
                for &(id, role) in &nodes {
                    self.set(id, tag(role));
                }
                (act, c.out_channels)
            }
        };
        if let Some(add) = residual {
            out = self.residual(add, x, out, tag, &mut nodes)?;
        }
        let has_expand = projection.is_some();
        Ok((
            Found {
                kind: BlockKind::FusedMBConv,
                nodes,
                in_channels: c.in_channels,
                mid: if has_expand {
                    c.out_channels
                } else {
                    c.in_channels
                },
                out: project_out,
                kernel: c.kernel,
                stride: c.stride,
                has_expand,
            },
            out,
        ))
    }

    /// Tags the residual `add` of a block from `x` to `out` and returns it.
    fn residual(
        &mut self,
        add: NodeId,
        x: NodeId,
        out: NodeId,
        tag: impl Fn(Role) -> Tag,
        nodes: &mut Vec<(NodeId, Role)>,
    ) -> Result<NodeId, Failure> {
        let mut ins = self.graph.inputs(add);
        ins.sort_unstable();
        let mut want = vec![x, out];
        want.sort_unstable();
        if ins != want {
            return Err(self.fail(
                add,
                "the residual Add should add the block's input to its output",
            ));
        }
        self.set(add, tag(Role::Residual));
        nodes.push((add, Role::Residual));
        Ok(add)
    }

    /// One MBConv block from its input `x` and first convolution; returns it and its output.
    fn block(
        &mut self,
        x: NodeId,
        first: NodeId,
        has_expand: bool,
        residual: Option<NodeId>,
    ) -> Result<(Found, NodeId), Failure> {
        let mut nodes = Vec::new();
        let tag = |r| Tag::in_block(2, 0, r);
        let in_channels = self.conv(first).expect("a convolution").in_channels;
        let mut dw = first;
        if has_expand {
            let act = self.conv_bn_act(
                first,
                [Role::ExpandConv, Role::ExpandBn, Role::ExpandAct],
                tag,
                true,
                &mut nodes,
            )?;
            dw = self.next(act, "the depthwise convolution")?;
        }
        let d = match self.conv(dw) {
            Some(d) if d.groups > 1 && d.groups == d.in_channels && d.groups == d.out_channels => {
                d.clone()
            }
            _ => return Err(self.fail(dw, "a depthwise convolution belongs here")),
        };
        let act = self.conv_bn_act(
            dw,
            [Role::DepthwiseConv, Role::DepthwiseBn, Role::DepthwiseAct],
            tag,
            true,
            &mut nodes,
        )?;
        // Squeeze-and-excitation: the activation is read by the pooling and the scaling Mul.
        let consumers = self.graph.consumers(act);
        let mut y = act;
        if consumers.len() == 2 {
            let pool = consumers
                .iter()
                .copied()
                .find(|&c| matches!(self.graph.node(c).op, Op::GlobalAvgPool { keep_dims: true }));
            let scale = consumers
                .iter()
                .copied()
                .find(|&c| matches!(self.graph.node(c).op, Op::Mul));
            let (Some(pool), Some(scale)) = (pool, scale) else {
                return Err(self.fail(act, "read by nodes other than a squeeze-and-excitation"));
            };
            self.set(pool, tag(Role::SeSqueeze));
            nodes.push((pool, Role::SeSqueeze));
            let reduce = self.next(pool, "the SE reduction")?;
            if !self
                .conv(reduce)
                .is_some_and(|c| c.kernel == [1, 1] && c.groups == 1)
            {
                return Err(self.fail(reduce, "the SE reduction (1×1 convolution) belongs here"));
            }
            self.set(reduce, tag(Role::SeReduce));
            nodes.push((reduce, Role::SeReduce));
            let ract = self.next(reduce, "the SE activation")?;
            if !self.is_act(ract) {
                return Err(self.fail(ract, "the SE activation belongs here"));
            }
            self.set(ract, tag(Role::SeReduceAct));
            nodes.push((ract, Role::SeReduceAct));
            let expand = self.next(ract, "the SE expansion")?;
            if !self
                .conv(expand)
                .is_some_and(|c| c.kernel == [1, 1] && c.groups == 1)
            {
                return Err(self.fail(expand, "the SE expansion (1×1 convolution) belongs here"));
            }
            self.set(expand, tag(Role::SeExpand));
            nodes.push((expand, Role::SeExpand));
            let gate = self.next(expand, "the SE gate")?;
            if !self.is_act(gate) {
                return Err(self.fail(gate, "the SE gate (sigmoid) belongs here"));
            }
            self.set(gate, tag(Role::SeGate));
            nodes.push((gate, Role::SeGate));
            let mut ins = self.graph.inputs(scale);
            ins.sort_unstable();
            let mut want = vec![act, gate];
            want.sort_unstable();
            if ins != want || self.next(gate, "the SE scaling")? != scale {
                return Err(self.fail(
                    scale,
                    "the SE scaling should multiply the block's features by the gate",
                ));
            }
            self.set(scale, tag(Role::SeScale));
            nodes.push((scale, Role::SeScale));
            y = scale;
        }
        let project = self.next(y, "the projection")?;
        let p = match self.conv(project) {
            Some(p) if p.kernel == [1, 1] && p.groups == 1 => p.clone(),
            _ => return Err(self.fail(project, "the projection (1×1 convolution) belongs here")),
        };
        let mut out = self.conv_bn_act(
            project,
            [Role::ProjectConv, Role::ProjectBn, Role::ProjectBn],
            tag,
            false,
            &mut nodes,
        )?;
        if let Some(add) = residual {
            out = self.residual(add, x, out, tag, &mut nodes)?;
        }
        Ok((
            Found {
                kind: BlockKind::MBConv,
                nodes,
                in_channels,
                mid: d.in_channels,
                out: p.out_channels,
                kernel: d.kernel,
                stride: d.stride,
                has_expand,
            },
            out,
        ))
    }
}
