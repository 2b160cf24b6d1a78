//! An architecture compared with a spec, stage by stage and block by block.
//!
//! Widths are checked once per stage (a stage's output channels, which the next stage's input
//! inherits), so one wrong width gives one finding. Block fields (expansion, kernel, SE width,
//! stride, residual) are checked against the spec applied to the block's *found* input, so a
//! width deviation upstream does not cascade. Fields the source does not record are listed as
//! unverifiable, never passed. Conventions (epsilon, padding, preprocessing, classifier head)
//! are findings of severity `info`, with the scheme that explains them.

use std::fmt;

use crate::{Architecture, ModelSpec, Scheme};

/// What the source of an architecture records, beyond tensor shapes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Strides (a weights-only file has none: they are assumed from the stage pattern).
    pub strides: bool,
    /// Residual connections.
    pub residuals: bool,
    /// Activations.
    pub activations: bool,
    /// Padding.
    pub padding: bool,
    /// BatchNorm epsilon.
    pub bn_eps: bool,
    /// Dropout and drop-connect rates.
    pub dropout: bool,
    /// BatchNorm layers as layers (false when the source folded them into the convolutions'
    /// bias, as ONNX exporters do: whether each layer has one cannot be checked).
    pub batchnorm: bool,
}

impl Evidence {
    /// A weights-only file: shapes and nothing else.
    pub const WEIGHTS_ONLY: Evidence = Evidence {
        strides: false,
        residuals: false,
        activations: false,
        padding: false,
        bn_eps: false,
        dropout: false,
        batchnorm: true,
    };
    /// A graph built from the spec itself, or a file with its full architecture.
    pub const EVERYTHING: Evidence = Evidence {
        strides: true,
        residuals: true,
        activations: true,
        padding: true,
        bn_eps: true,
        dropout: true,
        batchnorm: true,
    };
}

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// A convention or a benign difference (classes): does not fail the audit.
    Info,
    /// Something a person must know that is not a deviation from the spec (a semantic change
    /// effnet made when it wrote the file): does not fail the audit, but the verdict says it.
    Warning,
    /// A deviation from the spec.
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`.
    pub const fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One difference between a model and its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// Paper stage (1–9), if the finding is about one.
    pub stage: Option<u8>,
    /// Block within the stage, from 1.
    pub block: Option<u16>,
    /// The field: `width`, `repeats`, `kernel`, `expand_ratio`, `se`, `stride`, …
    pub field: &'static str,
    /// What the spec says.
    pub expected: String,
    /// What the model has.
    pub found: String,
    /// One line for a person.
    pub message: String,
}

/// The verdict of an audit.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditReport {
    /// The spec the model was compared with (`b0`, `w=1.3 d=1.6`, `lite0`).
    pub spec: String,
    /// The spec's family.
    pub family: crate::Family,
    /// Whether no finding is an error.
    pub conforms: bool,
    /// Every difference, errors and infos, in stage order.
    pub findings: Vec<Finding>,
    /// What the source does not record and so could not be checked.
    pub unverifiable: Vec<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Finding {
    /// The message without its leading place (`stage 6 block 2: `), for a table whose
    /// columns already say it.
    pub fn detail(&self) -> &str {
        let place = place(self.stage, self.block);
        self.message
            .strip_prefix(place.as_str())
            .unwrap_or(&self.message)
    }
}

fn place(stage: Option<u8>, block: Option<u16>) -> String {
    match (stage, block) {
        (Some(s), Some(b)) => format!("stage {s} block {b}: "),
        (Some(s), None) => format!("stage {s}: "),
        _ => String::new(),
    }
}

struct Findings(Vec<Finding>);

impl Findings {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        severity: Severity,
        stage: Option<u8>,
        block: Option<u16>,
        field: &'static str,
        expected: impl fmt::Display,
        found: impl fmt::Display,
        what: &str,
    ) {
        let (expected, found) = (expected.to_string(), found.to_string());
        let message = format!(
            "{}{what} {found}, spec says {expected}",
            place(stage, block)
        );
        self.0.push(Finding {
            severity,
            stage,
            block,
            field,
            expected,
            found,
            message,
        });
    }

    fn error(
        &mut self,
        stage: Option<u8>,
        block: Option<u16>,
        field: &'static str,
        expected: impl fmt::Display,
        found: impl fmt::Display,
        what: &str,
    ) {
        self.add(Severity::Error, stage, block, field, expected, found, what);
    }
}

/// Compares `arch` with `spec`. `evidence` says what the source records; `scheme`, when
/// known, is whose conventions the model follows (reported as info).
pub fn audit(
    arch: &Architecture,
    spec: &ModelSpec,
    evidence: Evidence,
    scheme: Option<Scheme>,
) -> AuditReport {
    let want = spec.architecture();
    let mut f = Findings(Vec::new());
    let stem = Some(effnet_ir::Stage::STEM_NUMBER);
    let head = Some(effnet_ir::Stage::Head.number(want.blocks.last().map_or(1, |b| b.stage)));

    // Stage 1: the stem.
    if arch.stem_channels != want.stem_channels {
        f.error(
            stem,
            None,
            "width",
            want.stem_channels,
            arch.stem_channels,
            "stem width",
        );
    }
    if arch.stem_kernel != want.stem_kernel {
        let k = |k: usize| format!("{k}×{k}");
        f.error(
            stem,
            None,
            "kernel",
            k(want.stem_kernel),
            k(arch.stem_kernel),
            "stem kernel",
        );
    }

    // The block stages: repeats and widths per stage, then each block.
    let stages: Vec<u8> = {
        let mut s: Vec<u8> = want
            .blocks
            .iter()
            .chain(&arch.blocks)
            .map(|b| b.stage)
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    for stage in stages {
        let ours: Vec<_> = arch.blocks.iter().filter(|b| b.stage == stage).collect();
        let theirs: Vec<_> = want.blocks.iter().filter(|b| b.stage == stage).collect();
        if ours.len() != theirs.len() {
            let block = (ours.len() > theirs.len()).then(|| theirs.len() as u16 + 1);
            let noun = if ours.len() == 1 { "block" } else { "blocks" };
            let extra = if ours.len() > theirs.len() {
                format!(" (from block {} on, extra)", theirs.len() + 1)
            } else {
                String::new()
            };
            f.0.push(Finding {
                severity: Severity::Error,
                stage: Some(stage),
                block,
                field: "repeats",
                expected: theirs.len().to_string(),
                found: ours.len().to_string(),
                message: format!(
                    "stage {stage}: {} {noun}{extra}, spec says {}",
                    ours.len(),
                    theirs.len()
                ),
            });
        }
        if let (Some(o), Some(t)) = (ours.last(), theirs.last()) {
            if o.out_channels != t.out_channels {
                f.error(
                    Some(stage),
                    None,
                    "width",
                    t.out_channels,
                    o.out_channels,
                    "output channels",
                );
            }
        }
        for (o, t) in ours.iter().zip(&theirs) {
            let block = Some(o.index + 1);
            let s = Some(stage);
            if o.kind != t.kind {
                f.0.push(Finding {
                    severity: Severity::Error,
                    stage: s,
                    block,
                    field: "block_kind",
                    expected: t.kind.name().into(),
                    found: o.kind.name().into(),
                    message: format!("{}{} expected, found {}", place(s, block), t.kind, o.kind),
                });
                continue;
            }
            // The spec applied to the block's found input.
            let row = &spec.base.stages
                [usize::from(stage.saturating_sub(2)).min(spec.base.stages.len() - 1)];
            let (expand, se_ratio) = (row.expand, row.se_ratio);
            let want_mid = o.in_channels * expand;
            if o.has_expand != t.has_expand || o.expanded_channels != want_mid {
                let ratio = |mid: usize, input: usize| {
                    let r = mid as f64 / input.max(1) as f64;
                    if (r - r.round()).abs() < 1e-9 {
                        format!("{}", r.round())
                    } else {
                        format!("{r:.2}")
                    }
                };
                f.error(
                    s,
                    block,
                    "expand_ratio",
                    expand,
                    ratio(o.expanded_channels, o.in_channels),
                    "expand ratio",
                );
            }
            if o.kernel != t.kernel {
                let k = |k: usize| format!("{k}×{k}");
                f.error(s, block, "kernel", k(t.kernel), k(o.kernel), "kernel");
            }
            let want_se =
                (se_ratio > 0.0).then(|| ((o.in_channels as f64 * se_ratio) as usize).max(1));
            match (o.se_channels, want_se) {
                (None, Some(w)) => f.error(
                    s,
                    block,
                    "se",
                    format!("SE {w}"),
                    "no SE",
                    "squeeze-excitation:",
                ),
                (Some(x), None) => f.error(
                    s,
                    block,
                    "se",
                    "no SE",
                    format!("SE {x}"),
                    "squeeze-excitation:",
                ),
                (Some(x), Some(w)) if x != w => f.error(s, block, "se", w, x, "SE width"),
                _ => {}
            }
            if evidence.strides && o.stride != t.stride {
                f.error(s, block, "stride", t.stride, o.stride, "stride");
            }
            if evidence.residuals {
                let want_residual = o.stride == 1 && o.in_channels == o.out_channels;
                if o.residual != want_residual {
                    let r = |b: bool| if b { "residual add" } else { "no residual add" };
                    f.error(s, block, "residual", r(want_residual), r(o.residual), "");
                }
            }
        }
    }

    // The head and the classifier.
    if arch.head_channels != want.head_channels {
        f.error(
            head,
            None,
            "width",
            want.head_channels,
            arch.head_channels,
            "head width",
        );
    }
    match (arch.num_classes, want.num_classes) {
        (Some(c), Some(w)) if c != w => f.0.push(Finding {
            severity: Severity::Info,
            stage: head,
            block: None,
            field: "classes",
            expected: w.to_string(),
            found: c.to_string(),
            message: format!(
                "{}a classifier of {c} classes, spec says {w} (ImageNet); the body is unaffected",
                place(head, None)
            ),
        }),
        (None, Some(w)) => f.0.push(Finding {
            severity: Severity::Info,
            stage: head,
            block: None,
            field: "classes",
            expected: w.to_string(),
            found: "none".into(),
            message: format!("{}no classifier (a feature extractor)", place(head, None)),
        }),
        _ => {}
    }

    // Conventions that differ from TF's reference, as info.
    if let Some(scheme) = scheme
        .map(|s| (s, s.semantics(spec.variant)))
        .filter(|(_, sem)| sem.padding != crate::PaddingStyle::TfSame || sem.bn_eps != 1e-3)
        .map(|(s, _)| s)
    {
        let sem = scheme.semantics(spec.variant);
        let padding = match sem.padding {
            crate::PaddingStyle::TfSame => "TF \"same\" padding",
            crate::PaddingStyle::Symmetric => "symmetric padding",
        };
        f.0.push(Finding {
            severity: Severity::Info,
            stage: None,
            block: None,
            field: "conventions",
            expected: "TF \"same\" padding, BatchNorm eps 1e-3".into(),
            found: format!("{padding}, BatchNorm eps {:e}", sem.bn_eps),
            message: format!(
                "{padding} and BatchNorm eps {:e} are {}'s conventions, not deviations (TF's reference uses \"same\" and 1e-3)",
                sem.bn_eps, scheme
            ),
        });
    }

    let mut unverifiable = Vec::new();
    if !evidence.strides {
        unverifiable.push(
            "strides: the file records none (the stage pattern was assumed to build the graph)"
                .to_owned(),
        );
    }
    if !evidence.residuals {
        unverifiable.push("residual connections: they have no weights".to_owned());
    }
    if !evidence.activations {
        unverifiable.push(format!(
            "activations ({}, sigmoid gate): they have no weights",
            spec.family().activation().name()
        ));
    }
    if !evidence.padding {
        unverifiable.push("padding: implied by the naming scheme, not recorded".to_owned());
    }
    if !evidence.batchnorm {
        unverifiable.push(
            "BatchNorm: folded into the convolutions (whether each layer has one, and its epsilon, cannot be checked)"
                .to_owned(),
        );
    } else if !evidence.bn_eps {
        unverifiable
            .push("BatchNorm epsilon: implied by the naming scheme, not recorded".to_owned());
    }
    if !evidence.dropout {
        unverifiable.push("dropout and drop-connect rates: not recorded".to_owned());
    }
    let conforms = f.0.iter().all(|x| x.severity != Severity::Error);
    AuditReport {
        spec: spec.label(),
        family: spec.family(),
        conforms,
        findings: f.0,
        unverifiable,
    }
}

/// The spec `--spec auto` compares with: among the named variants and the coefficients fitted
/// to the architecture, the one that leaves the fewest deviations (a named variant on a tie).
/// Returns the spec and whether it matches exactly.
pub fn closest_spec(arch: &Architecture) -> (ModelSpec, bool) {
    let fitted = crate::Base::ALL.into_iter().filter_map(|base| {
        let fit = crate::fit_coefficients(arch, &base);
        ModelSpec::scaled(base, fit.width, fit.depth, 224).ok()
    });
    let deviations = |spec: &ModelSpec| {
        audit(arch, spec, Evidence::WEIGHTS_ONLY, None)
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    };
    let mut best: Option<(ModelSpec, usize)> = None;
    for spec in crate::Variant::ALL
        .into_iter()
        .map(ModelSpec::variant)
        .chain(fitted)
    {
        let n = deviations(&spec);
        if best.as_ref().is_none_or(|(_, b)| n < *b) {
            best = Some((spec, n));
        }
    }
    let (spec, n) = best.expect("at least the variants");
    (spec, n == 0)
}

/// Adds to `report` the checks of what a graph with its full architecture records (a Keras
/// config, a SavedModel graph), each where `evidence` says the source records it:
/// activations (swish everywhere, a sigmoid SE gate), padding (TF "same" or symmetric,
/// consistently), BatchNorm epsilon (one value), dropout and drop-connect rates (info: they
/// only matter in training).
pub fn audit_semantics(
    report: &mut AuditReport,
    graph: &effnet_ir::Graph,
    spec: &ModelSpec,
    evidence: Evidence,
) {
    use effnet_ir::{Activation, Op, Padding, Role};
    let mut f = Findings(Vec::new());
    let block = |tag: effnet_ir::Tag| tag.block.map(|b| b + 1);
    let last_block_stage = graph.last_block_stage();
    let stage = |tag: effnet_ir::Tag| Some(tag.stage.number(last_block_stage));
    let body = spec.family().activation();
    let resolution = [spec.resolution, spec.resolution];
    let shapes = graph.infer_shapes(1, Some(resolution)).ok();
    let mut eps: Vec<f64> = Vec::new();
    // Convs whose pads are only TF's "same", only symmetric (where the two differ), or neither.
    let (mut same_only, mut symmetric_only, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for (id, node) in graph.nodes() {
        let tag = node.tag;
        match &node.op {
            Op::Activation(a) if evidence.activations => {
                let want = match tag.role {
                    Role::SeGate => Some(Activation::Sigmoid),
                    Role::StemAct
                    | Role::ExpandAct
                    | Role::DepthwiseAct
                    | Role::ProjectAct
                    | Role::SeReduceAct
                    | Role::HeadAct => Some(body),
                    _ => None,
                };
                if let Some(want) = want.filter(|w| w != a) {
                    f.error(
                        stage(tag),
                        block(tag),
                        "activation",
                        want.name(),
                        a.name(),
                        &format!("{} activation", tag.role),
                    );
                }
            }
            Op::BatchNorm(bn) if evidence.bn_eps => eps.push(bn.eps),
            Op::Conv2d(c) if evidence.padding => {
                let input = graph
                    .inputs(id)
                    .first()
                    .and_then(|&i| shapes.as_ref().and_then(|s| s[i].spatial()));
                let Some(input) = input else { continue };
                let resolve = |p: Padding| {
                    p.resolve(&node.name, input, c.kernel, c.stride, c.dilation)
                        .map(|r| r.pads)
                        .ok()
                };
                let pads = resolve(c.padding);
                let is_same = pads == resolve(Padding::SameUpper);
                let is_symmetric = pads == resolve(Padding::symmetric(c.kernel, c.dilation));
                match (is_same, is_symmetric) {
                    (true, false) => same_only.push((tag, node.name.clone())),
                    (false, true) => symmetric_only.push((tag, node.name.clone())),
                    (false, false) => other.push((tag, node.name.clone(), c.padding.describe())),
                    (true, true) => {}
                }
            }
            Op::Dropout { rate }
                if evidence.dropout
                    && tag.role == Role::HeadDropout
                    && (rate - spec.dropout).abs() > 1e-9 =>
            {
                f.add(
                    Severity::Info,
                    Some(last_block_stage + 1),
                    None,
                    "dropout",
                    spec.dropout,
                    rate,
                    "classifier dropout (training only)",
                );
            }
            Op::StochasticDepth { rate } | Op::Dropout { rate }
                if evidence.dropout && tag.role == Role::DropConnect =>
            {
                let blocks = spec.blocks();
                let want = blocks
                    .iter()
                    .find(|b| Some(b.stage) == tag.stage.blocks() && Some(b.index) == tag.block)
                    .map(|b| b.drop_connect_rate);
                if let Some(want) = want.filter(|w| (w - rate).abs() > 1e-6) {
                    f.add(
                        Severity::Info,
                        stage(tag),
                        block(tag),
                        "drop_connect",
                        format!("{want:.4}"),
                        format!("{rate:.4}"),
                        "drop-connect rate (training only)",
                    );
                }
            }
            _ => {}
        }
    }
    for (tag, name, padding) in other {
        f.error(
            stage(tag),
            block(tag),
            "padding",
            "TF \"same\" or symmetric",
            format!("{padding} in `{name}`"),
            "padding",
        );
    }
    match (same_only.len(), symmetric_only.len()) {
        (0, n) if n > 0 => f.add(
            Severity::Info,
            None,
            None,
            "padding",
            "TF \"same\"",
            "symmetric",
            "padding (a PyTorch convention: torchvision, timm)",
        ),
        // Mixed conventions: each convolution of the minority is a deviation, where it is.
        (s, n) if s > 0 && n > 0 => {
            let (odd, want, found, rest) = if n <= s {
                (&symmetric_only, "TF \"same\"", "symmetric", s)
            } else {
                (&same_only, "symmetric", "TF \"same\"", n)
            };
            for (tag, name) in odd {
                f.error(
                    stage(*tag),
                    block(*tag),
                    "padding",
                    format!("{want}, as the other {rest} convolutions"),
                    format!("{found} in `{name}`"),
                    "padding",
                );
            }
        }
        _ => {}
    }
    if evidence.bn_eps && !eps.is_empty() {
        let first = eps[0];
        if eps
            .iter()
            .any(|&e| (e - first).abs() > f64::EPSILON * first.max(1.0))
        {
            let mut distinct: Vec<String> = eps.iter().map(|e| format!("{e:e}")).collect();
            distinct.sort();
            distinct.dedup();
            f.error(
                None,
                None,
                "bn_eps",
                "one epsilon for every BatchNorm",
                distinct.join(", "),
                "BatchNorm epsilon:",
            );
        } else if (first - 1e-3).abs() > 1e-12 {
            f.add(
                Severity::Info,
                None,
                None,
                "bn_eps",
                "1e-3",
                format!("{first:e}"),
                "BatchNorm epsilon (a PyTorch convention)",
            );
        }
    }
    report.conforms &= f.0.iter().all(|x| x.severity != Severity::Error);
    report.findings.extend(f.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Variant;

    #[test]
    fn a_spec_conforms_to_itself() {
        for v in Variant::ALL {
            let spec = ModelSpec::variant(v);
            let report = audit(&spec.architecture(), &spec, Evidence::EVERYTHING, None);
            assert!(report.conforms, "{v}: {:?}", report.findings);
            assert!(report.findings.is_empty());
            assert!(report.unverifiable.is_empty());
        }
    }

    #[test]
    fn b0_against_b1_lists_the_repeats_that_differ() {
        let b0 = ModelSpec::variant(Variant::B0).architecture();
        let report = audit(
            &b0,
            &ModelSpec::variant(Variant::B1),
            Evidence::WEIGHTS_ONLY,
            None,
        );
        assert!(!report.conforms);
        let repeats: Vec<(u8, &str, &str)> = report
            .findings
            .iter()
            .map(|f| (f.stage.unwrap(), f.expected.as_str(), f.found.as_str()))
            .collect();
        // B1 repeats 2,3,3,4,4,5,2 against B0's 1,2,2,3,3,4,1.
        assert_eq!(
            repeats,
            vec![
                (2, "2", "1"),
                (3, "3", "2"),
                (4, "3", "2"),
                (5, "4", "3"),
                (6, "4", "3"),
                (7, "5", "4"),
                (8, "2", "1")
            ]
        );
        assert!(report.findings.iter().all(|f| f.field == "repeats"));
    }

    #[test]
    fn a_graph_with_its_semantics_is_checked_where_it_records_them() {
        use effnet_ir::{Activation, Op, Role};
        let spec = ModelSpec::variant(Variant::B0);
        let graph =
            crate::build_graph(&spec.architecture(), &Scheme::Keras.semantics(spec.variant))
                .unwrap();
        let mut report = audit(&spec.architecture(), &spec, Evidence::EVERYTHING, None);
        audit_semantics(&mut report, &graph, &spec, Evidence::EVERYTHING);
        assert!(
            report.conforms && report.findings.is_empty(),
            "{:?}",
            report.findings
        );

        // torchvision's conventions are info, not deviations.
        let tv = crate::build_graph(
            &spec.architecture(),
            &Scheme::Torchvision.semantics(spec.variant),
        )
        .unwrap();
        let mut report = audit(&spec.architecture(), &spec, Evidence::EVERYTHING, None);
        audit_semantics(&mut report, &tv, &spec, Evidence::EVERYTHING);
        assert!(report.conforms, "{:?}", report.findings);
        let fields: Vec<&str> = report.findings.iter().map(|f| f.field).collect();
        assert_eq!(fields, ["padding", "bn_eps"]);

        // A ReLU where swish belongs, and one BatchNorm with another epsilon, are deviations.
        let mut bad = graph.clone();
        let ids: Vec<_> = bad.nodes().map(|(id, _)| id).collect();
        for id in ids {
            let node = bad.node_mut(id);
            if node.tag.stage == effnet_ir::Stage::Blocks(4)
                && node.tag.block == Some(1)
                && node.tag.role == Role::DepthwiseAct
            {
                node.op = Op::Activation(Activation::Relu);
            }
            if node.tag.stage == effnet_ir::Stage::Blocks(5)
                && node.tag.block == Some(0)
                && node.tag.role == Role::ProjectBn
            {
                if let Op::BatchNorm(bn) = &mut node.op {
                    bn.eps = 1e-5;
                }
            }
        }
        let mut report = audit(&spec.architecture(), &spec, Evidence::EVERYTHING, None);
        audit_semantics(&mut report, &bad, &spec, Evidence::EVERYTHING);
        assert!(!report.conforms);
        let errors: Vec<(Option<u8>, Option<u16>, &str)> = report
            .findings
            .iter()
            .map(|f| (f.stage, f.block, f.field))
            .collect();
        assert_eq!(
            errors,
            [(Some(4), Some(2), "activation"), (None, None, "bn_eps")]
        );
    }

    #[test]
    fn one_convolution_padded_otherwise_is_a_finding_where_it_is() {
        use effnet_ir::{Op, Padding, Role};
        let spec = ModelSpec::variant(Variant::B0);
        let mut graph =
            crate::build_graph(&spec.architecture(), &Scheme::Keras.semantics(spec.variant))
                .unwrap();
        let stem = graph
            .nodes()
            .find(|(_, n)| n.tag.role == Role::StemConv)
            .map(|(id, _)| id)
            .unwrap();
        if let Op::Conv2d(c) = &mut graph.node_mut(stem).op {
            c.padding = Padding::symmetric(c.kernel, c.dilation);
        }
        let mut report = audit(&spec.architecture(), &spec, Evidence::EVERYTHING, None);
        audit_semantics(&mut report, &graph, &spec, Evidence::EVERYTHING);
        assert!(!report.conforms);
        let errors: Vec<(Option<u8>, Option<u16>, &str)> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| (f.stage, f.block, f.field))
            .collect();
        assert_eq!(errors, [(Some(1), None, "padding")]);
    }

    #[test]
    fn one_changed_kernel_gives_one_finding() {
        let spec = ModelSpec::variant(Variant::B0);
        let mut arch = spec.architecture();
        let b = arch
            .blocks
            .iter_mut()
            .find(|b| b.stage == 6 && b.index == 2)
            .unwrap();
        b.kernel = 3;
        let report = audit(&arch, &spec, Evidence::WEIGHTS_ONLY, None);
        assert_eq!(report.findings.len(), 1);
        let f = &report.findings[0];
        assert_eq!((f.stage, f.block, f.field), (Some(6), Some(3), "kernel"));
        assert_eq!(f.message, "stage 6 block 3: kernel 3×3, spec says 5×5");
    }
}
