//! How raw pixels reach a graph's input: through the graph's own preprocessing nodes (Keras),
//! through the preprocessing a converted file records in its metadata
//! ([`PREPROCESSING_KEY`]: the steps its Keras source applied inside itself), or through the
//! normalization its scheme leaves to the caller (PyTorch: `(x / 255 − mean) / std`).
//!
//! Steps applied here compute exactly what the graph nodes compute (same f32 operations in the
//! same order), so a Keras model and its conversion fed through [`Feed`] see identical inputs.

use std::collections::BTreeMap;

use effnet_ir::{Graph, Op};
use serde_json::{Value, json};

use crate::{Array, ExecError};

/// The metadata key (safetensors `__metadata__`, ONNX `metadata_props`) under which a
/// conversion records, as JSON, the preprocessing its source applied inside the model:
/// `[{"op": "rescale", "scale": [..], "offset": [..]},
///   {"op": "normalize", "mean": [..], "variance": [..], "std_floor": 1e-7}]`.
pub const PREPROCESSING_KEY: &str = "effnet.preprocessing";

/// One preprocessing step on an NCHW batch.
#[derive(Clone, Debug, PartialEq)]
pub enum PreStep {
    /// `x · scale + offset` per channel (one value: every channel), Keras `Rescaling`.
    Rescale {
        /// One value, or one per channel.
        scale: Vec<f64>,
        /// One value, or one per channel.
        offset: Vec<f64>,
    },
    /// `(x − mean) / max(sqrt(variance), std_floor)` per channel, Keras `Normalization`.
    Normalize {
        /// Per-channel mean.
        mean: Vec<f64>,
        /// Per-channel variance as stored.
        variance: Vec<f64>,
        /// Lower bound of the divisor.
        std_floor: f64,
    },
    /// `(x · pixel_scale − mean) / std` per channel, the PyTorch `ToTensor` + `Normalize`.
    Standardize {
        /// Factor to the 0–1 range.
        pixel_scale: f64,
        /// Per-channel mean.
        mean: Vec<f64>,
        /// Per-channel standard deviation.
        std: Vec<f64>,
    },
}

/// Where a model's preprocessing comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedOrigin {
    /// The graph's own preprocessing nodes: raw pixels go in as they are.
    InGraph,
    /// The file's [`PREPROCESSING_KEY`] (a conversion of a Keras model).
    Metadata,
    /// The naming scheme's convention (ImageNet mean/std on 0–1 values).
    Scheme,
    /// Nothing known: raw values go in as they are.
    None,
}

/// The preprocessing applied to raw 0–255 pixels before a graph's input.
#[derive(Clone, Debug, PartialEq)]
pub struct Feed {
    /// Steps, in order.
    pub steps: Vec<PreStep>,
    /// Where they come from.
    pub origin: FeedOrigin,
}

impl Feed {
    /// The feed of a model: its own nodes, else the file's record, else its scheme's
    /// convention. A file converted from a Keras model that records no preprocessing is an
    /// error: its input would be a guess.
    pub fn for_model(
        graph: &Graph,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Feed, ExecError> {
        if !in_graph_steps(graph).is_empty() {
            return Ok(Feed {
                steps: Vec::new(),
                origin: FeedOrigin::InGraph,
            });
        }
        if let Some(text) = metadata.get(PREPROCESSING_KEY) {
            let steps = decode_steps(text)
                .and_then(|steps| {
                    check_channels(&steps, crate::input_channels(graph).unwrap_or(0))?;
                    Ok(steps)
                })
                .map_err(|m| {
                    ExecError::Preprocessing(format!("`{PREPROCESSING_KEY}` in the metadata: {m}"))
                })?;
            return Ok(Feed {
                steps,
                origin: FeedOrigin::Metadata,
            });
        }
        if metadata.get("effnet.source_naming").map(String::as_str) == Some("keras") {
            return Err(ExecError::Preprocessing(format!(
                "this file was converted from a Keras model, whose input preprocessing it does \
                 not record (`{PREPROCESSING_KEY}`); feed it preprocessed input with `run --input`, \
                 or convert the source again with an effnet that records it"
            )));
        }
        if let Some(norm) = &graph.meta.input_normalization {
            return Ok(Feed {
                steps: vec![PreStep::Standardize {
                    pixel_scale: norm.pixel_scale,
                    mean: norm.mean.clone(),
                    std: norm.std.clone(),
                }],
                origin: FeedOrigin::Scheme,
            });
        }
        Ok(Feed {
            steps: Vec::new(),
            origin: FeedOrigin::None,
        })
    }

    /// A feed of explicit steps (a conversion's output fed as its source was).
    pub fn from_steps(steps: Vec<PreStep>) -> Feed {
        Feed {
            steps,
            origin: FeedOrigin::Metadata,
        }
    }

    /// `raw` with the steps applied.
    pub fn apply(&self, raw: &Array) -> Result<Array, ExecError> {
        let mut data = crate::zeroed(raw.data.len(), "the preprocessed input")?;
        data.copy_from_slice(&raw.data);
        let mut out = Array {
            shape: raw.shape.clone(),
            data,
        };
        if out.shape.len() != 4 {
            return Ok(out);
        }
        let (c, plane) = (out.shape[1], out.shape[2] * out.shape[3]);
        if c == 0 || plane == 0 {
            return Ok(out);
        }
        let pick = |v: &[f64], ch: usize| v[if v.len() == 1 { 0 } else { ch.min(v.len() - 1) }];
        for step in &self.steps {
            for (i, p) in out.data.chunks_mut(plane).enumerate() {
                let ch = i % c;
                match step {
                    PreStep::Rescale { scale, offset } => {
                        let (s, o) = (pick(scale, ch) as f32, pick(offset, ch) as f32);
                        p.iter_mut().for_each(|v| *v = *v * s + o);
                    }
                    PreStep::Normalize {
                        mean,
                        variance,
                        std_floor,
                    } => {
                        let m = pick(mean, ch) as f32;
                        let d = (pick(variance, ch) as f32).sqrt().max(*std_floor as f32);
                        p.iter_mut().for_each(|v| *v = (*v - m) / d);
                    }
                    PreStep::Standardize {
                        pixel_scale,
                        mean,
                        std,
                    } => {
                        let (m, sd) = (pick(mean, ch), pick(std, ch));
                        p.iter_mut()
                            .for_each(|v| *v = ((f64::from(*v) * pixel_scale - m) / sd) as f32);
                    }
                }
            }
        }
        Ok(out)
    }

    /// One line for people: `x · 0.00392…, then (x − [0.485, …]) / sqrt([…])`.
    pub fn describe(&self) -> String {
        if self.steps.is_empty() {
            return match self.origin {
                FeedOrigin::InGraph => "raw pixels (the model preprocesses them itself)".into(),
                _ => "none (values go in as given)".into(),
            };
        }
        let list = |v: &[f64]| {
            let items: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
            if items.len() == 1 {
                items[0].clone()
            } else {
                format!("[{}]", items.join(", "))
            }
        };
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| match s {
                PreStep::Rescale { scale, offset } => {
                    if offset.iter().all(|&o| o == 0.0) {
                        format!("x · {}", list(scale))
                    } else {
                        format!("x · {} + {}", list(scale), list(offset))
                    }
                }
                PreStep::Normalize { mean, variance, .. } => {
                    format!("(x − {}) / sqrt({})", list(mean), list(variance))
                }
                PreStep::Standardize {
                    pixel_scale,
                    mean,
                    std,
                } => format!("(x · {pixel_scale} − {}) / {}", list(mean), list(std)),
            })
            .collect();
        steps.join(", then ")
    }
}

/// The preprocessing a graph applies inside itself (Keras `Rescaling`, `Normalization`), in
/// order: what a conversion that drops those nodes records under [`PREPROCESSING_KEY`].
pub fn in_graph_steps(graph: &Graph) -> Vec<PreStep> {
    graph
        .nodes()
        .filter_map(|(_, n)| match &n.op {
            Op::Rescale(r) => Some(PreStep::Rescale {
                scale: r.scale.clone(),
                offset: r.offset.clone(),
            }),
            Op::Normalize(norm) => {
                let values = |t: &effnet_ir::Tensor| {
                    t.to_f32_vec()
                        .map(|v| v.into_iter().map(f64::from).collect::<Vec<_>>())
                        .unwrap_or_default()
                };
                Some(PreStep::Normalize {
                    mean: values(&norm.mean),
                    variance: values(&norm.variance),
                    std_floor: norm.std_floor,
                })
            }
            _ => None,
        })
        .collect()
}

/// `steps` as the JSON written under [`PREPROCESSING_KEY`]. Values are written with Rust's
/// shortest round-trip formatting, so decoding gives the same f64s back.
pub fn encode_steps(steps: &[PreStep]) -> String {
    let list: Vec<Value> = steps
        .iter()
        .map(|s| match s {
            PreStep::Rescale { scale, offset } => {
                json!({"op": "rescale", "scale": scale, "offset": offset})
            }
            PreStep::Normalize {
                mean,
                variance,
                std_floor,
            } => json!({"op": "normalize", "mean": mean, "variance": variance, "std_floor": std_floor}),
            PreStep::Standardize {
                pixel_scale,
                mean,
                std,
            } => json!({"op": "standardize", "pixel_scale": pixel_scale, "mean": mean, "std": std}),
        })
        .collect();
    Value::Array(list).to_string()
}

/// Every per-channel list of `steps` holds one value or one per input channel, and no
/// divisor is 0: [`Feed::apply`] would otherwise reuse the last value for the missing channels
/// (or ignore the extra ones) and feed the model a guess.
fn check_channels(steps: &[PreStep], channels: usize) -> Result<(), String> {
    for step in steps {
        let lists: &[(&str, &Vec<f64>)] = match step {
            PreStep::Rescale { scale, offset } => &[("scale", scale), ("offset", offset)],
            PreStep::Normalize { mean, variance, .. } => &[("mean", mean), ("variance", variance)],
            PreStep::Standardize { mean, std, .. } => &[("mean", mean), ("std", std)],
        };
        for (key, list) in lists {
            if list.len() != 1 && list.len() != channels {
                return Err(format!(
                    "`{key}` holds {} values for an input of {channels} channels (1 or {channels})",
                    list.len()
                ));
            }
        }
        if let PreStep::Standardize { std, .. } = step {
            if std.contains(&0.0) {
                return Err("`std` holds 0".into());
            }
        }
    }
    Ok(())
}

/// Parses what [`encode_steps`] wrote.
pub fn decode_steps(text: &str) -> Result<Vec<PreStep>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let items = value.as_array().ok_or("not a JSON array")?;
    items
        .iter()
        .map(|item| {
            let floats = |key: &str| -> Result<Vec<f64>, String> {
                let list = item
                    .get(key)
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("no `{key}` list"))?;
                let v: Option<Vec<f64>> = list.iter().map(Value::as_f64).collect();
                let v = v.ok_or_else(|| format!("`{key}` holds a non-number"))?;
                if v.is_empty() || v.len() > 4096 || v.iter().any(|x| !x.is_finite()) {
                    return Err(format!("`{key}` must hold 1–4096 finite numbers"));
                }
                Ok(v)
            };
            let float = |key: &str| -> Result<f64, String> {
                item.get(key)
                    .and_then(Value::as_f64)
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| format!("no finite `{key}`"))
            };
            match item.get("op").and_then(Value::as_str) {
                Some("rescale") => Ok(PreStep::Rescale {
                    scale: floats("scale")?,
                    offset: floats("offset")?,
                }),
                Some("normalize") => Ok(PreStep::Normalize {
                    mean: floats("mean")?,
                    variance: floats("variance")?,
                    std_floor: float("std_floor")?,
                }),
                Some("standardize") => Ok(PreStep::Standardize {
                    pixel_scale: float("pixel_scale")?,
                    mean: floats("mean")?,
                    std: floats("std")?,
                }),
                other => Err(format!("unknown step {other:?}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_through_json() {
        let steps = vec![
            PreStep::Rescale {
                scale: vec![1.0 / 255.0],
                offset: vec![0.0],
            },
            PreStep::Normalize {
                mean: vec![0.485, 0.456, 0.406],
                variance: vec![0.229, 0.224, 0.225],
                std_floor: 1e-7,
            },
        ];
        assert_eq!(decode_steps(&encode_steps(&steps)).unwrap(), steps);
        assert!(decode_steps("[{\"op\": \"rescale\"}]").is_err());
        assert!(decode_steps("{}").is_err());
    }

    #[test]
    fn recorded_steps_must_fit_the_input_channels() {
        let steps = |mean: &str| {
            decode_steps(&format!(
                "[{{\"op\": \"normalize\", \"mean\": {mean}, \"variance\": [1.0], \"std_floor\": 1e-7}}]"
            ))
            .unwrap()
        };
        assert!(check_channels(&steps("[0.5]"), 3).is_ok());
        assert!(check_channels(&steps("[0.1, 0.2, 0.3]"), 3).is_ok());
        let two = check_channels(&steps("[0.1, 0.2]"), 3).unwrap_err();
        assert!(
            two.contains("`mean` holds 2 values for an input of 3 channels"),
            "{two}"
        );
        assert!(check_channels(&steps("[0.1, 0.2, 0.3, 0.4]"), 3).is_err());
        let zero = decode_steps(
            "[{\"op\": \"standardize\", \"pixel_scale\": 1.0, \"mean\": [0.0], \"std\": [0.0]}]",
        )
        .unwrap();
        assert!(
            check_channels(&zero, 3)
                .unwrap_err()
                .contains("`std` holds 0")
        );
    }
}
