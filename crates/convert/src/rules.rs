//! When a conversion refuses, and what it records: every rule in one place.
//!
//! An output computes what its source computed, or the conversion refuses with exit 2 and
//! names the flag that states or allows what is missing:
//!
//! 1. The file records something the graph cannot carry (a Keras activation effnet does not
//!    model): refused, no flag.
//! 2. Parameters missing from the file: refused, no flag.
//! 3. The names cannot tell the source scheme (timm or timm-tf) and nothing in the file says
//!    which: refused when the output's numbers depend on the answer (ONNX; a safetensors
//!    target given with `--naming`), `--source-naming` states it. Writing the names and values
//!    unchanged (no `--naming`) goes on with a warning, and the output does not claim a scheme.
//! 4. The architecture is not one effnet recognises and the file does not record its
//!    activation or strides: refused until `--activation` states the activation and
//!    `--assume-architecture` accepts EfficientNet's stage strides with the scheme's padding
//!    and epsilon.
//! 5. A safetensors target that computes otherwise: another activation (refused), another
//!    padding (`--allow-padding-change`), a shortcut added or dropped
//!    (`--allow-shortcut-change`). BatchNorm epsilon is no change: it moves exactly.
//! 6. Values beyond the f16 range: refused unless `--clamp` (counted while writing).
//!
//! Every allowed change prints one warning and is recorded in the output's `effnet.changes`.

use std::path::Path;

use effnet_import::{Change, Model};
use effnet_ir::{Activation, Graph, Op, Role};
use effnet_naming::Identity;
use effnet_naming::export::{Difference, differences};
use effnet_spec::Scheme;

use crate::ConvertError;

/// What the user allowed or stated on the command line.
#[derive(Clone, Debug, Default)]
pub struct Allowances {
    /// `--allow-padding-change`: write into a scheme that pads otherwise.
    pub padding_change: bool,
    /// `--allow-shortcut-change`: write into a scheme that adds or drops a residual shortcut.
    pub shortcut_change: bool,
    /// `--activation`: the activation of the stem, blocks and head, when the file does not
    /// record it.
    pub activation: Option<Activation>,
    /// `--assume-architecture`: accept EfficientNet's stage strides and the naming scheme's
    /// padding and BatchNorm epsilon for an architecture effnet does not recognise.
    pub assume_architecture: bool,
}

/// The output a conversion writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// safetensors in `scheme`; `explicit` when the user named it (`--naming`).
    Safetensors {
        /// The output's naming scheme.
        scheme: Scheme,
        /// Whether `--naming` chose it.
        explicit: bool,
    },
    /// ONNX: the graph as it computes.
    Onnx,
    /// A Keras file: `keras.applications`' layers, TF "same" padding, epsilon 1e-3.
    Keras,
}

/// What a conversion may go on with.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Changes allowed by a flag: one warning each, recorded in `effnet.changes`.
    pub changes: Vec<Change>,
    /// What the user stated that the file does not record, for the metadata
    /// (`effnet.stated`).
    pub stated: Vec<String>,
    /// When the source scheme is one of several the file cannot tell apart and the output does
    /// not depend on it: the candidates (the output then claims none of them).
    pub naming_candidates: Vec<Scheme>,
    /// The graph with what the user stated applied (`--activation`), when it differs from the
    /// imported one.
    pub graph: Option<Graph>,
}

impl Plan {
    /// The graph to write.
    pub fn graph<'a>(&'a self, model: &'a Model) -> &'a Graph {
        self.graph.as_ref().unwrap_or(&model.imported.graph)
    }
}

fn refuse(path: &Path, message: String) -> ConvertError {
    ConvertError::Refused {
        path: path.to_owned(),
        message,
    }
}

/// The roles that compute the model's activation (not the SE gate, not the classifier's).
fn body_activation(role: Role) -> bool {
    matches!(
        role,
        Role::StemAct | Role::ExpandAct | Role::DepthwiseAct | Role::SeReduceAct | Role::HeadAct
    )
}

/// Checks every rule for writing `model` as `target`; returns what the conversion goes on
/// with, or the refusal naming the flag that states or allows what is missing.
pub fn check(model: &Model, target: Target, allow: &Allowances) -> Result<Plan, ConvertError> {
    let path = &model.path;
    let imported = &model.imported;
    let mut plan = Plan::default();

    // 1. What the file records that the graph cannot carry.
    if let Some(d) = model.deviations.first() {
        return Err(refuse(
            path,
            format!(
                "{} deviation(s) effnet cannot write, e.g. {}; an output would compute something else",
                model.deviations.len(),
                d.message
            ),
        ));
    }
    // 2. Parameters missing.
    let missing = &imported.report.missing;
    if !missing.is_empty() {
        return Err(refuse(
            path,
            format!(
                "{} parameter(s) of the model are missing from the file, e.g. `{}`; an output would not compute the model",
                missing.len(),
                missing[0]
            ),
        ));
    }

    // 3. A source scheme the file does not state.
    if !model.naming_candidates.is_empty() {
        let names: Vec<&str> = model.naming_candidates.iter().map(|s| s.name()).collect();
        let depends = match target {
            Target::Onnx => Some("the ONNX graph's padding and BatchNorm epsilon".to_owned()),
            Target::Keras => Some("the Keras model's padding and BatchNorm statistics".to_owned()),
            Target::Safetensors { scheme, explicit } => {
                // The output's names and values are the input's when the scheme is kept; any
                // other target moves epsilon or changes padding by the candidate's values.
                let variant = imported.identity.semantics_variant();
                let semantics: Vec<_> = model
                    .naming_candidates
                    .iter()
                    .map(|c| {
                        let s = c.semantics(variant);
                        (s.padding, s.bn_eps.to_bits())
                    })
                    .collect();
                let differ = semantics.windows(2).any(|w| w[0] != w[1]);
                (explicit && differ)
                    .then(|| format!("the {scheme} output's padding and BatchNorm statistics"))
            }
        };
        match depends {
            Some(what) => {
                return Err(refuse(
                    path,
                    format!(
                        "{} use the same tensor names and the file does not say which it is; {what} depend on the answer: pass --source-naming {}{}",
                        names.join(" and "),
                        names.join(" or --source-naming "),
                        if matches!(target, Target::Safetensors { .. }) {
                            " (or leave out --naming to write the names and values unchanged)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            None => plan.naming_candidates = model.naming_candidates.clone(),
        }
    }

    // 4. Assumptions the file cannot confirm.
    let graph_activation = imported
        .graph
        .nodes()
        .find_map(|(_, n)| match (&n.op, n.tag.role) {
            (Op::Activation(a), role) if body_activation(role) => Some(*a),
            _ => None,
        });
    match (allow.activation, model.evidence.activations) {
        (Some(a), true) if Some(a) != graph_activation => {
            return Err(refuse(
                path,
                format!(
                    "--activation {}: the file records {}",
                    a.name(),
                    graph_activation.map_or("no activation", |g| g.name())
                ),
            ));
        }
        (Some(a), false) => {
            plan.stated
                .push(format!("activation {} (--activation)", a.name()));
            if Some(a) != graph_activation {
                let mut graph = imported.graph.clone();
                let ids: Vec<_> = graph.nodes().map(|(id, _)| id).collect();
                for id in ids {
                    let node = graph.node_mut(id);
                    if body_activation(node.tag.role) {
                        node.op = Op::Activation(a);
                    }
                }
                plan.graph = Some(graph);
            }
        }
        _ => {}
    }
    if imported.identity == Identity::Unknown {
        let mut needed = Vec::new();
        if !model.evidence.activations && allow.activation.is_none() {
            needed.push(format!(
                "its activation (taken as {}; state it with --activation swish|relu|relu6)",
                graph_activation.map_or("swish", |a| a.name())
            ));
        }
        if !model.evidence.strides && !allow.assume_architecture {
            let strides = imported.assumptions.iter().find(|a| a.is_strides()).map_or(
                "strides from EfficientNet's stage pattern".to_owned(),
                |a| a.to_string(),
            );
            needed.push(format!(
                "its strides, padding and BatchNorm epsilon (assumed: {strides}; the {} scheme's padding and epsilon; accept them with --assume-architecture)",
                model.naming
            ));
        }
        if !needed.is_empty() {
            return Err(refuse(
                path,
                format!(
                    "the architecture is not one effnet recognises (variant unknown) and the file does not record {}: the output's numbers would rest on an assumption",
                    needed.join(", nor ")
                ),
            ));
        }
        if !model.evidence.strides {
            plan.stated.push(format!(
                "EfficientNet stage strides, {} padding and BatchNorm epsilon (--assume-architecture)",
                model.naming
            ));
        }
    }

    // 5. A target that computes otherwise.
    let compared = match target {
        Target::Safetensors { scheme, .. } => Some(scheme),
        Target::Keras => Some(Scheme::Keras),
        Target::Onnx => None,
    };
    let keras = target == Target::Keras;
    if let Some(scheme) = compared {
        let graph = plan.graph(model);
        let variant = imported.identity.semantics_variant();
        let mut shortcut_refusals = Vec::new();
        for d in differences(graph, &imported.architecture, variant, scheme) {
            match d {
                Difference::Activation { found, target } => {
                    return Err(refuse(
                        path,
                        format!(
                            "the model uses {found} activations; {scheme} computes {target}, so its weights would give other numbers (ONNX export keeps the activation)"
                        ),
                    ));
                }
                Difference::Padding {
                    source,
                    target,
                    keeps,
                    convs,
                } => {
                    let message = format!(
                        "the model pads {source}; {scheme} pads {target}, which changes the outputs of {convs} convolution(s)"
                    );
                    if !allow.padding_change {
                        let keep = match keeps {
                            _ if keras => {
                                "Keras applications pad TF \"same\"; ONNX export keeps its numbers"
                                    .into()
                            }
                            Some(k) => format!("use --naming {k} to keep its numbers"),
                            None => "no PyTorch scheme keeps its numbers (ONNX export does)".into(),
                        };
                        return Err(refuse(
                            path,
                            format!("{message}. {keep}, or pass --allow-padding-change"),
                        ));
                    }
                    plan.changes
                        .push(Change::new("padding", "--allow-padding-change", message));
                }
                Difference::Shortcut {
                    stage,
                    block,
                    source_has,
                } => {
                    let message = if source_has {
                        format!(
                            "stage {stage} block {block} has a residual shortcut; {scheme} drops it (EfficientNet-PyTorch stores a stage's first stride as a list), which changes the outputs"
                        )
                    } else {
                        format!(
                            "stage {stage} block {block} has no residual shortcut; {scheme} adds one, which changes the outputs"
                        )
                    };
                    if allow.shortcut_change {
                        let mut change =
                            Change::new("shortcut", "--allow-shortcut-change", message);
                        change.stage = Some(stage);
                        change.block = Some(block);
                        plan.changes.push(change);
                    } else {
                        shortcut_refusals.push(message);
                    }
                }
            }
        }
        if let Some(first) = shortcut_refusals.first() {
            return Err(refuse(
                path,
                format!(
                    "{first}{}. Keep the source's scheme, or pass --allow-shortcut-change",
                    if shortcut_refusals.len() > 1 {
                        format!(" ({} blocks in all)", shortcut_refusals.len())
                    } else {
                        String::new()
                    }
                ),
            ));
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(name: &str, naming: Option<Scheme>) -> Model {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/torch")
            .join(name);
        effnet_import::open(
            &path,
            &effnet_import::ImportOptions {
                key: None,
                naming,
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn refusal(result: Result<Plan, ConvertError>) -> String {
        match result {
            Err(ConvertError::Refused { message, .. }) => message,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn an_unstated_timm_scheme_refuses_only_what_depends_on_it() {
        let model = open("timm-tf-tiny.pth", None);
        assert_eq!(model.naming_candidates, [Scheme::Timm, Scheme::TimmTf]);
        let allow = Allowances::default();
        let onnx = refusal(check(&model, Target::Onnx, &allow));
        assert!(onnx.contains("--source-naming timm-tf"), "{onnx}");
        for scheme in [Scheme::Timm, Scheme::TimmTf, Scheme::Torchvision] {
            let target = Target::Safetensors {
                scheme,
                explicit: true,
            };
            let message = refusal(check(&model, target, &allow));
            assert!(message.contains("--source-naming"), "{scheme}: {message}");
        }
        // The names and values kept: no claim, no refusal.
        let kept = Target::Safetensors {
            scheme: Scheme::Timm,
            explicit: false,
        };
        let plan = check(&model, kept, &allow).unwrap();
        assert_eq!(plan.naming_candidates, [Scheme::Timm, Scheme::TimmTf]);
        assert!(plan.changes.is_empty());
        // Stated, nothing is ambiguous.
        let model = open("timm-tf-tiny.pth", Some(Scheme::TimmTf));
        assert!(check(&model, Target::Onnx, &allow).is_ok());
    }

    #[test]
    fn each_change_needs_its_own_flag_and_is_listed() {
        let model = open("timm-tf-tiny.safetensors", None);
        let to = |scheme| Target::Safetensors {
            scheme,
            explicit: true,
        };
        let padding_only = Allowances {
            padding_change: true,
            ..Allowances::default()
        };
        let message = refusal(check(&model, to(Scheme::Lukemelas), &padding_only));
        assert!(message.contains("--allow-shortcut-change"), "{message}");
        let shortcut = Allowances {
            shortcut_change: true,
            ..Allowances::default()
        };
        let plan = check(&model, to(Scheme::Lukemelas), &shortcut).unwrap();
        let kinds: Vec<(&str, Option<u8>, Option<u16>)> = plan
            .changes
            .iter()
            .map(|c| (c.kind.as_str(), c.stage, c.block))
            .collect();
        assert_eq!(kinds, [("shortcut", Some(2), Some(1))]);
        let message = refusal(check(&model, to(Scheme::Torchvision), &shortcut));
        assert!(message.contains("--allow-padding-change"), "{message}");
        let plan = check(&model, to(Scheme::Torchvision), &padding_only).unwrap();
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].kind, "padding");
        // Within its family nothing changes.
        let plan = check(&model, to(Scheme::TimmTf), &Allowances::default()).unwrap();
        assert!(plan.changes.is_empty());
    }
}
