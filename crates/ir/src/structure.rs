//! The EfficientNet structure read back from a graph: the stem, every MBConv block and the
//! head, with the attributes a spec talks about. It reads the nodes' [`Tag`](crate::Tag)s and
//! ops, so it works the same on a graph built from a spec and on one imported from a file.

use std::collections::BTreeMap;

use crate::{BlockKind, Graph, NodeId, Op, Role, Shapes, Stage};

/// One block as the graph has it.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockInfo {
    /// MBConv or Fused-MBConv (a block without a depthwise convolution).
    pub kind: BlockKind,
    /// Paper stage number of its stage of blocks (from 2).
    pub stage: u8,
    /// Index within the stage, from 0.
    pub index: u16,
    /// Index over all blocks of the model, from 0.
    pub global_index: usize,
    /// Channels entering the block.
    pub input_channels: usize,
    /// Channels after the expansion (= input channels when there is none).
    pub expanded_channels: usize,
    /// Channels leaving the block.
    pub output_channels: usize,
    /// Whether the block has an expansion conv.
    pub has_expand: bool,
    /// The spatial kernel: the depthwise conv's (MBConv) or the first conv's (Fused-MBConv).
    pub kernel: [usize; 2],
    /// The block's stride, on the same conv as the kernel.
    pub stride: [usize; 2],
    /// Squeeze-and-excitation width, when the block has SE.
    pub se_channels: Option<usize>,
    /// Whether the block adds its input to its output.
    pub residual: bool,
    /// Drop-connect rate on the residual branch, when present.
    pub drop_connect_rate: Option<f64>,
    /// Spatial size entering the block, when shapes were given.
    pub input_resolution: Option<[usize; 2]>,
    /// Spatial size leaving the block, when shapes were given.
    pub output_resolution: Option<[usize; 2]>,
    /// The block's nodes, in topological order.
    pub nodes: Vec<NodeId>,
}

impl BlockInfo {
    /// Expansion ratio, `expanded / input` channels.
    pub fn expand_ratio(&self) -> f64 {
        self.expanded_channels as f64 / self.input_channels.max(1) as f64
    }
}

/// One paper stage (Table 1 row) as the graph has it.
#[derive(Clone, Debug, PartialEq)]
pub struct StageInfo {
    /// The stage.
    pub stage: Stage,
    /// Its paper stage number (1 for the stem; the head follows the last block stage).
    pub number: u8,
    /// The paper's operator label: `Conv3x3`, `MBConv6, k5x5`, `Fused-MBConv4, k3x3`,
    /// `Conv1x1 & Pooling & FC`.
    pub operator: String,
    /// Spatial size entering the stage, when shapes were given.
    pub input_resolution: Option<[usize; 2]>,
    /// Spatial size leaving the stage's last feature map, when shapes were given.
    pub output_resolution: Option<[usize; 2]>,
    /// Channels entering the stage.
    pub input_channels: usize,
    /// Channels of the stage's last convolution (the paper's "#Channels").
    pub output_channels: usize,
    /// Blocks in an MBConv stage; 1 for the stem and the head.
    pub layers: usize,
    /// The stage's kernel (first block's depthwise kernel, or the stem/head conv's).
    pub kernel: Option<[usize; 2]>,
    /// The stage's stride (first block's, or the stem's).
    pub stride: Option<[usize; 2]>,
    /// The nodes of the stage, in topological order.
    pub nodes: Vec<NodeId>,
}

/// The blocks of `graph`, in order. `shapes` (from [`Graph::infer_shapes`]) fills in
/// resolutions.
pub fn blocks(graph: &Graph, shapes: Option<&Shapes>) -> Vec<BlockInfo> {
    let mut groups: BTreeMap<(u8, u16), Vec<NodeId>> = BTreeMap::new();
    for (id, node) in graph.nodes() {
        if let (Some(stage), Some(block)) = (node.tag.stage.blocks(), node.tag.block) {
            groups.entry((stage, block)).or_default().push(id);
        }
    }
    let mut out: Vec<BlockInfo> = Vec::with_capacity(groups.len());
    for ((stage, index), nodes) in groups {
        let role = |r: Role| nodes.iter().copied().find(|&n| graph.node(n).tag.role == r);
        let conv = |r: Role| {
            role(r).and_then(|n| match &graph.node(n).op {
                Op::Conv2d(c) => Some(c),
                _ => None,
            })
        };
        let dw = conv(Role::DepthwiseConv);
        let expand = conv(Role::ExpandConv);
        let project = conv(Role::ProjectConv);
        let kind = if dw.is_some() {
            BlockKind::MBConv
        } else {
            BlockKind::FusedMBConv
        };
        // The conv that carries the block's kernel and stride.
        let spatial = match kind {
            BlockKind::MBConv => dw,
            BlockKind::FusedMBConv => expand.or(project),
        };
        let input_channels = expand
            .or(dw)
            .or(project)
            .map(|c| c.in_channels)
            .unwrap_or_default();
        let drop_connect_rate = role(Role::DropConnect).and_then(|n| match graph.node(n).op {
            Op::StochasticDepth { rate } | Op::Dropout { rate } => Some(rate),
            _ => None,
        });
        let first = nodes[0];
        let last = *nodes.last().expect("a group has a node");
        let input_resolution =
            shapes.and_then(|s| graph.inputs(first).first().and_then(|&i| s[i].spatial()));
        let output_resolution = shapes.and_then(|s| s[last].spatial());
        out.push(BlockInfo {
            kind,
            stage,
            index,
            global_index: out.len(),
            input_channels,
            expanded_channels: expand.map(|c| c.out_channels).unwrap_or(input_channels),
            output_channels: project.map(|c| c.out_channels).unwrap_or_default(),
            has_expand: expand.is_some(),
            kernel: spatial.map(|c| c.kernel).unwrap_or_default(),
            stride: spatial.map(|c| c.stride).unwrap_or([1, 1]),
            se_channels: conv(Role::SeReduce).map(|c| c.out_channels),
            residual: role(Role::Residual).is_some(),
            drop_connect_rate,
            input_resolution,
            output_resolution,
            nodes,
        });
    }
    out
}

/// The paper stages present in `graph`, in order, with their Table 1 attributes.
pub fn stages(graph: &Graph, shapes: Option<&Shapes>) -> Vec<StageInfo> {
    let mut groups: BTreeMap<Stage, Vec<NodeId>> = BTreeMap::new();
    for (id, node) in graph.nodes() {
        groups.entry(node.tag.stage).or_default().push(id);
    }
    let all_blocks = blocks(graph, shapes);
    let last_block_stage = graph.last_block_stage();
    groups
        .into_iter()
        .map(|(stage, nodes)| {
            let stage_blocks: Vec<&BlockInfo> = all_blocks
                .iter()
                .filter(|b| Some(b.stage) == stage.blocks())
                .collect();
            let convs: Vec<(Role, &crate::Conv2d)> = nodes
                .iter()
                .filter_map(|&n| match &graph.node(n).op {
                    Op::Conv2d(c) => Some((graph.node(n).tag.role, c)),
                    _ => None,
                })
                .collect();
            // The first node fed from outside the stage; the graph input for stage 1.
            let entry = nodes.iter().copied().find_map(|n| {
                graph
                    .inputs(n)
                    .into_iter()
                    .find(|i| graph.node(*i).tag.stage != stage)
            });
            let entry_shape = |s: &Shapes| match entry {
                Some(i) => Some(s[i]),
                None => graph.input().ok().map(|i| s[i]),
            };
            let input_resolution = shapes.and_then(|s| entry_shape(s)?.spatial());
            let input_channels = match (shapes.and_then(entry_shape), convs.first()) {
                (Some(shape), _) => shape.channels(),
                (None, Some((_, c))) => c.in_channels,
                (None, None) => 0,
            };
            let output_resolution = shapes.and_then(|s| {
                nodes
                    .iter()
                    .rev()
                    .find_map(|&n| s[n].spatial().filter(|_| !is_pooled(graph, n)))
            });
            let (operator, kernel, stride, layers) = match stage_blocks.first() {
                Some(first) => (
                    // Blocks of a stage that differ (a custom model) show every value, in order.
                    format!(
                        "{}, {}",
                        block_operator(&stage_blocks),
                        distinct(
                            stage_blocks
                                .iter()
                                .map(|b| format!("k{}x{}", b.kernel[0], b.kernel[1]))
                        )
                        .join("/")
                    ),
                    Some(first.kernel),
                    Some(first.stride),
                    stage_blocks.len(),
                ),
                None => {
                    let first_conv = convs.first().map(|(_, c)| *c);
                    (
                        plain_stage_operator(graph, &nodes),
                        first_conv.map(|c| c.kernel),
                        first_conv.map(|c| c.stride),
                        1,
                    )
                }
            };
            StageInfo {
                stage,
                number: stage.number(last_block_stage),
                operator,
                input_resolution,
                output_resolution,
                input_channels,
                output_channels: convs.last().map(|(_, c)| c.out_channels).unwrap_or(
                    shapes
                        .and_then(|s| nodes.last().map(|&n| s[n].channels()))
                        .unwrap_or_default(),
                ),
                layers,
                kernel,
                stride,
                nodes,
            }
        })
        .collect()
}

/// `MBConv6`, `Fused-MBConv4`, or every value of a stage whose blocks differ: `MBConv6/1`,
/// `Fused-MBConv4/MBConv4`.
fn block_operator(blocks: &[&BlockInfo]) -> String {
    let kinds = distinct(blocks.iter().map(|b| b.kind.name().to_owned()));
    let ratios = |bs: &mut dyn Iterator<Item = &&BlockInfo>| {
        distinct(bs.map(|b| format_ratio(b.expand_ratio()))).join("/")
    };
    if let [kind] = kinds.as_slice() {
        format!("{kind}{}", ratios(&mut blocks.iter()))
    } else {
        distinct(
            blocks
                .iter()
                .map(|b| format!("{}{}", b.kind.name(), format_ratio(b.expand_ratio()))),
        )
        .join("/")
    }
}

/// The distinct values of `items`, in first-seen order.
fn distinct(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

/// Whether `node` is a global pooling output (1×1 maps that are not a stage's resolution).
fn is_pooled(graph: &Graph, node: NodeId) -> bool {
    let mut current = node;
    loop {
        match graph.node(current).op {
            Op::GlobalAvgPool { .. } => return true,
            Op::Conv2d(_) | Op::Input(_) | Op::Add => return false,
            _ => match graph.inputs(current).first() {
                Some(&i) => current = i,
                None => return false,
            },
        }
    }
}

/// `Conv3x3`, or `Conv1x1 & Pooling & FC` for a head.
fn plain_stage_operator(graph: &Graph, nodes: &[NodeId]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for &n in nodes {
        let part = match &graph.node(n).op {
            Op::Conv2d(c) => format!("Conv{}x{}", c.kernel[0], c.kernel[1]),
            Op::GlobalAvgPool { .. } => "Pooling".into(),
            Op::Dense(_) => "FC".into(),
            _ => continue,
        };
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    if parts.is_empty() {
        "Input".into()
    } else {
        parts.join(" & ")
    }
}

/// `6` for 6.0, `2.5` for 2.5.
fn format_ratio(ratio: f64) -> String {
    if (ratio - ratio.round()).abs() < 1e-9 {
        format!("{}", ratio.round() as i64)
    } else {
        format!("{ratio:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}
