//! Graphviz rendering of a graph, one cluster per paper stage.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{Graph, Op};

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Graph {
    /// The graph in Graphviz DOT: nodes labelled with their source name and op, grouped into
    /// one cluster per paper stage.
    pub fn to_dot(&self) -> String {
        let mut out = String::from(
            "digraph efficientnet {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n",
        );
        let last = self.last_block_stage();
        let mut stages: BTreeMap<u8, Vec<String>> = BTreeMap::new();
        for (id, node) in self.nodes() {
            let detail = match &node.op {
                Op::Conv2d(c) => format!(
                    "{} {}x{}/{} {}->{}",
                    node.op.kind(),
                    c.kernel[0],
                    c.kernel[1],
                    c.stride[0],
                    c.in_channels,
                    c.out_channels
                ),
                Op::BatchNorm(b) => format!("BatchNorm eps={:e}", b.eps),
                Op::Dense(d) => format!("Dense {}->{}", d.in_features, d.out_features),
                other => other.kind().to_owned(),
            };
            stages
                .entry(node.tag.stage.number(last))
                .or_default()
                .push(format!(
                    "    n{} [label=\"{}\\n{}\"];",
                    id.index(),
                    escape(&node.name),
                    escape(&detail)
                ));
        }
        for (stage, lines) in stages {
            let _ = writeln!(
                out,
                "  subgraph cluster_stage{stage} {{\n    label=\"stage {stage}\";"
            );
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
            out.push_str("  }\n");
        }
        for (id, _) in self.nodes() {
            for input in self.inputs(id) {
                let _ = writeln!(out, "  n{} -> n{};", input.index(), id.index());
            }
        }
        out.push_str("}\n");
        out
    }
}
