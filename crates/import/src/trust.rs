//! What an import can and cannot vouch for: the semantic changes effnet recorded when it wrote
//! a file (`effnet.changes`), the structural facts a file records that the graph cannot carry
//! (deviations), and the audit findings they all give, with the tensors that are missing,
//! unused or skipped for an unexpected reason. Every rule an audit adds beyond the
//! architecture lives here, so `audit` and `inspect` report the same things.

use effnet_spec::{Finding, Scheme, Severity};

use crate::Model;

/// The metadata key (safetensors `__metadata__`, ONNX `metadata_props`) listing the semantic
/// changes effnet made when it wrote a file, as a JSON array of [`Change`]s.
pub const CHANGES_KEY: &str = "effnet.changes";

/// A semantic change effnet made when writing a file, because a flag allowed it: the output
/// computes something other than its source.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// What changed: `padding`, `shortcut`, `clamp`.
    pub kind: String,
    /// The flag that allowed it (`--allow-padding-change`).
    pub flag: String,
    /// The paper stage, when the change is in one place.
    pub stage: Option<u8>,
    /// The block within the stage, from 1.
    pub block: Option<u16>,
    /// One line for a person.
    pub message: String,
}

impl Change {
    /// A change of `kind` allowed by `flag`.
    pub fn new(kind: &str, flag: &str, message: impl Into<String>) -> Self {
        Change {
            kind: kind.to_owned(),
            flag: flag.to_owned(),
            stage: None,
            block: None,
            message: message.into(),
        }
    }

    /// The line printed on stderr and shown by `inspect`.
    pub fn line(&self) -> String {
        format!("{} (allowed by {})", self.message, self.flag)
    }
}

/// `changes` as the JSON array written under [`CHANGES_KEY`].
pub fn encode_changes(changes: &[Change]) -> String {
    let list: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| {
            let mut o = serde_json::Map::new();
            o.insert("kind".into(), c.kind.clone().into());
            o.insert("flag".into(), c.flag.clone().into());
            if let Some(s) = c.stage {
                o.insert("stage".into(), s.into());
            }
            if let Some(b) = c.block {
                o.insert("block".into(), b.into());
            }
            o.insert("message".into(), c.message.clone().into());
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// The changes a file's [`CHANGES_KEY`] lists. A value that is not such a list is itself
/// reported as one change, so an unreadable record is never taken for "no change". The text
/// is the file's: escaped here, as audit and inspect print it on standard output too.
pub fn decode_changes(text: &str) -> Vec<Change> {
    let parsed: Option<Vec<Change>> = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .map(|items| {
            items
                .iter()
                .map(|c| {
                    let s = |k: &str| {
                        effnet_io::escape(c.get(k).and_then(|v| v.as_str()).unwrap_or(""))
                            .into_owned()
                    };
                    Change {
                        kind: s("kind"),
                        flag: s("flag"),
                        stage: c
                            .get("stage")
                            .and_then(|v| v.as_u64())
                            .and_then(|v| u8::try_from(v).ok()),
                        block: c
                            .get("block")
                            .and_then(|v| v.as_u64())
                            .and_then(|v| u16::try_from(v).ok()),
                        message: s("message"),
                    }
                })
                .collect()
        });
    parsed.unwrap_or_else(|| {
        vec![Change::new(
            "unknown",
            "?",
            format!("`{CHANGES_KEY}` is not a list of changes effnet reads"),
        )]
    })
}

/// The warning given when the names cannot tell the candidates apart; `flag` is the option
/// that states the source scheme on the command at hand (`--naming`, `--source-naming`).
pub fn ambiguity_warning(candidates: &[Scheme], chosen: Scheme, flag: &str) -> String {
    let names: Vec<&str> = candidates.iter().map(|s| s.name()).collect();
    let semantics = chosen.semantics(None);
    let padding = match semantics.padding {
        effnet_spec::PaddingStyle::TfSame => "TF \"same\" padding",
        effnet_spec::PaddingStyle::Symmetric => "symmetric padding",
    };
    let other = candidates
        .iter()
        .find(|&&s| s != chosen)
        .map_or("", |s| s.name());
    format!(
        "{} (tf_efficientnet_*) use the same tensor names and the file does not say which it is: read as {chosen} ({padding}, BatchNorm eps {:e}); pass {flag} {other} for TF-ported weights",
        names.join(" and "),
        semantics.bn_eps
    )
}

/// Skip reasons that are bookkeeping, not the model: optimizer state, step counters, values
/// replaced by their moving average, second copies of a variable.
fn expected_skip(reason: &str) -> bool {
    const EXPECTED: [&str; 8] = [
        "optimizer",
        "step counter",
        "ExponentialMovingAverage",
        "second copy",
        "random-number",
        "not part of the model",
        "not a variable of the saved objects",
        "bookkeeping",
    ];
    EXPECTED.iter().any(|e| reason.contains(e))
}

/// Up to five names in backquotes (escaped: they are the file's), and how many more.
fn some(names: &[String]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(5)
        .map(|n| format!("`{}`", effnet_io::escape(n)))
        .collect();
    let more = names.len().saturating_sub(5);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

impl Model {
    /// Restates the warning about indistinguishable schemes with the flag that states the
    /// source scheme on the command at hand (`convert` reads it from `--source-naming`).
    pub fn restate_naming_flag(&mut self, flag: &str) {
        if self.naming_candidates.is_empty() {
            return;
        }
        let old = ambiguity_warning(&self.naming_candidates, self.naming, "--naming");
        let new = ambiguity_warning(&self.naming_candidates, self.naming, flag);
        for w in &mut self.warnings {
            if *w == old {
                w.clone_from(&new);
            }
        }
    }

    /// Tensors skipped for a reason that is not bookkeeping, as `(name, reason)`.
    pub fn unexpected_skips(&self) -> Vec<(String, String)> {
        self.skipped
            .iter()
            .filter(|(_, reason)| !expected_skip(reason))
            .cloned()
            .collect()
    }

    /// What an audit adds to the architecture's findings: tensors missing, unused or skipped
    /// unexpectedly (errors: the file is not the whole model, or holds more than it), the
    /// structure the file records that the graph cannot carry (errors), and the semantic
    /// changes effnet recorded when it wrote the file (a dropped or added shortcut is an
    /// error where it is; other changes are warnings).
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let report = &self.imported.report;
        let mut tensors = |what: String, names: &[String]| {
            out.push(Finding {
                severity: Severity::Error,
                stage: None,
                block: None,
                field: "tensors",
                expected: "every tensor of the model, and only those".into(),
                found: format!("{} {what}", names.len()),
                message: format!("{} {what}: {}", names.len(), some(names)),
            });
        };
        if !report.missing.is_empty() {
            tensors(
                "parameter(s) of the model missing from the file".into(),
                &report.missing,
            );
        }
        if !report.unused.is_empty() {
            tensors(
                format!(
                    "tensor(s) in the file not part of the model as the {} scheme reads it",
                    self.naming
                ),
                &report.unused,
            );
        }
        let skipped = self.unexpected_skips();
        if !skipped.is_empty() {
            let names: Vec<String> = skipped.iter().map(|(n, _)| n.clone()).collect();
            let mut reasons: Vec<&str> = skipped.iter().map(|(_, r)| r.as_str()).collect();
            reasons.sort_unstable();
            reasons.dedup();
            tensors(
                format!("tensor(s) skipped while reading ({})", reasons.join("; ")),
                &names,
            );
        }
        out.extend(self.deviations.iter().cloned());
        for c in &self.changes {
            let shortcut = c.kind == "shortcut";
            out.push(Finding {
                severity: if shortcut {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                stage: c.stage,
                block: c.block,
                field: match c.kind.as_str() {
                    "shortcut" => "residual",
                    "padding" => "padding",
                    "clamp" => "values",
                    _ => "changes",
                },
                expected: "the source's computation".into(),
                found: format!("changed when written ({})", c.flag),
                message: format!(
                    "{}written with a semantic change: {}",
                    match (c.stage, c.block) {
                        (Some(s), Some(b)) => format!("stage {s} block {b}: "),
                        (Some(s), None) => format!("stage {s}: "),
                        _ => String::new(),
                    },
                    c.line()
                ),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_file_is_escaped_for_standard_output() {
        let forged = r#"[{"kind": "padding", "flag": "--x\u001b[0m",
            "message": "ok\n\u001b[32mmodel.safetensors: conforms to EfficientNet"}]"#;
        let changes = decode_changes(forged);
        assert_eq!(changes.len(), 1);
        let line = changes[0].line();
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line:?}");
        assert!(line.contains("ok\\n\\u{1b}[32mmodel"), "{line}");
        let names = some(&["a\u{202e}b".to_owned(), "c\nd".to_owned()]);
        assert_eq!(names, "`a\\u{202e}b`, `c\\nd`");
    }
}
