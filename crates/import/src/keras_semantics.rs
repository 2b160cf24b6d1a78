//! What a Keras file (its config, a SavedModel's serving function, or the weights alone) says
//! about the semantics its weights do not carry, and how it reaches the graph.

use effnet_ir::Checkpoint;
use effnet_spec::Evidence;

use crate::keras_config;
use crate::keras_padding::check_keras_padding;

/// What a Keras file says about the semantics its weights do not carry.
pub(crate) struct KerasSemantics {
    /// The input preprocessing inside the model; `None` where the file does not say (the
    /// family's, then).
    pub(crate) preprocessing: Option<effnet_spec::Preprocessing>,
    pub(crate) classifier_activation: Option<effnet_ir::Activation>,
    /// From a config: BatchNorm epsilon (the first layer's).
    pub(crate) bn_eps: Option<f64>,
    /// From a config or a function graph: each block's (depthwise stride, has a residual add
    /// when recorded), by Keras block name.
    pub(crate) blocks: Option<std::collections::HashMap<String, (usize, Option<bool>)>>,
    /// From a config: the input height (square inputs).
    pub(crate) resolution: Option<usize>,
    /// From a config: the activation of the stem, blocks and head.
    pub(crate) activation: Option<effnet_ir::Activation>,
    /// From a config: the rate of `top_dropout`.
    pub(crate) dropout: Option<f64>,
    /// From a config: layers whose activation differs from the model's (`activation`), by
    /// Keras layer name (the graph's node name).
    pub(crate) layer_activations: Vec<(String, effnet_ir::Activation)>,
    /// From a config: convolutions that do not pad TF "same", with what they pad.
    pub(crate) layer_padding: Vec<(String, effnet_ir::Padding)>,
    /// From a config: what it records that the graph cannot carry.
    pub(crate) deviations: Vec<effnet_spec::Finding>,
}

impl KerasSemantics {
    /// Writes what the config records layer by layer into the graph (so the audit checks it
    /// and an export keeps it): the activations that differ from the model's, and the
    /// convolutions that do not pad TF "same".
    pub(crate) fn record_layers(&self, graph: &mut effnet_ir::Graph) {
        let ids: Vec<effnet_ir::NodeId> = graph.nodes().map(|(id, _)| id).collect();
        for id in ids {
            let node = graph.node_mut(id);
            if let Some((_, a)) = self.layer_activations.iter().find(|(n, _)| *n == node.name) {
                if let effnet_ir::Op::Activation(slot) = &mut node.op {
                    *slot = *a;
                }
            }
            if let Some((_, p)) = self.layer_padding.iter().find(|(n, _)| *n == node.name) {
                if let effnet_ir::Op::Conv2d(c) = &mut node.op {
                    c.padding = *p;
                }
            }
        }
    }

    /// One warning per deviation the graph cannot carry, naming what inspect and cost count
    /// in its place.
    pub(crate) fn deviation_warnings(&self, graph: &effnet_ir::Graph) -> Vec<String> {
        self.deviations
            .iter()
            .map(|d| {
                format!(
                    "{}: inspect and cost count it as {}; audit reports it, convert refuses it",
                    d.message,
                    graph
                        .nodes()
                        .find_map(|(_, n)| match (&n.op, n.tag.role) {
                            (effnet_ir::Op::Activation(a), effnet_ir::Role::StemAct) => {
                                Some(a.name())
                            }
                            _ => None,
                        })
                        .unwrap_or("swish")
                )
            })
            .collect()
    }

    /// What the file records beyond tensor shapes. A Keras config (or a serving function)
    /// records strides, shortcuts and epsilon: the audit can check them, and the assumptions
    /// about strides and stages are dropped from `assumptions`.
    pub(crate) fn evidence(
        keras: Option<&KerasSemantics>,
        has_config: bool,
        assumptions: &mut Vec<effnet_naming::Assumption>,
    ) -> Evidence {
        match keras {
            Some(KerasSemantics {
                blocks: Some(blocks),
                bn_eps,
                activation,
                dropout,
                ..
            }) => {
                assumptions.retain(|a| !a.is_structure());
                Evidence {
                    strides: true,
                    residuals: blocks.values().all(|(_, r)| r.is_some()),
                    bn_eps: bn_eps.is_some(),
                    activations: activation.is_some(),
                    // Checked layer by layer against TF "same" (a config, not a function graph).
                    padding: has_config,
                    dropout: dropout.is_some(),
                    batchnorm: true,
                }
            }
            _ => Evidence::WEIGHTS_ONLY,
        }
    }
}

/// A Keras activation setting (`"swish"`, or Keras 3's `{"class_name": "function",
/// "config": "swish"}`) as the IR's; `Ok(None)` for `linear`.
fn keras_activation(value: &serde_json::Value) -> Result<Option<effnet_ir::Activation>, String> {
    use effnet_ir::Activation;
    let name = value
        .as_str()
        .or_else(|| value.get("config").and_then(serde_json::Value::as_str))
        .unwrap_or("");
    Ok(Some(match name {
        "swish" | "silu" => Activation::Swish,
        "relu" => Activation::Relu,
        "relu6" => Activation::Relu6,
        "sigmoid" => Activation::Sigmoid,
        "softmax" => Activation::Softmax,
        "linear" | "" => return Ok(None),
        other => return Err(format!("activation `{other}`, which effnet does not model")),
    }))
}

/// Keras' name of a block: `block{stage − 1}{letter}` (`block2a` is paper stage 3, block 0).
pub(crate) fn keras_block_name(stage: u8, index: u16) -> String {
    let letter = char::from_u32(u32::from('a') + u32::from(index)).unwrap_or('?');
    format!("block{}{letter}", stage.saturating_sub(1))
}

/// The paper stage and block (from 1) of a Keras layer name: `stem_*` is stage 1, `top_*`
/// stage 9, `block2b_*` stage 3 block 2.
fn keras_layer_place(layer: &str) -> (Option<u8>, Option<u16>) {
    if layer.starts_with("stem_") {
        return (Some(1), None);
    }
    if layer.starts_with("top_") {
        return (Some(9), None);
    }
    let Some(rest) = layer.strip_prefix("block") else {
        return (None, None);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let letter = rest[digits.len()..].chars().next();
    match (digits.parse::<u8>(), letter) {
        (Ok(n), Some(c)) if c.is_ascii_lowercase() => {
            (n.checked_add(1), Some(u16::from(c as u8 - b'a') + 1))
        }
        _ => (None, None),
    }
}

/// From a full model's config: a second `Rescaling` after `Normalization` (the Keras ≥ 2.9
/// variance fix) and the classifier's activation. Without a config: the fix is taken to be
/// there when the stored "variance" is the ImageNet standard deviation (the values the
/// keras-applications files ship, which the fix exists for), and the head is softmax.
pub(crate) fn keras_semantics(
    config: Option<&serde_json::Value>,
    checkpoint: &Checkpoint,
    warnings: &mut Vec<String>,
) -> Result<KerasSemantics, String> {
    let layers = config
        .and_then(|c| c.pointer("/config/layers"))
        .and_then(|l| l.as_array());
    if let Some(layers) = layers {
        fn class(l: &serde_json::Value) -> &str {
            l.get("class_name").and_then(|c| c.as_str()).unwrap_or("")
        }
        // The classes keras.applications builds an EfficientNet from (tf-keras and Keras 3).
        const KNOWN: [&str; 14] = [
            "InputLayer",
            "Rescaling",
            "Normalization",
            "ZeroPadding2D",
            "Conv2D",
            "DepthwiseConv2D",
            "BatchNormalization",
            "Activation",
            "GlobalAveragePooling2D",
            "Reshape",
            "Multiply",
            "Add",
            "Dropout",
            "Dense",
        ];
        if let Some(l) = layers.iter().find(|l| !KNOWN.contains(&class(l))) {
            return Err(format!(
                "the config's layer `{}` is a `{}`, not a layer of a keras.applications EfficientNet",
                l.pointer("/config/name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("?"),
                class(l)
            ));
        }
        // One classifier: a hidden Dense (a deeper head) is not part of the graph effnet builds.
        let denses: Vec<&serde_json::Value> =
            layers.iter().filter(|l| class(l) == "Dense").collect();
        if denses.len() > 1 {
            return Err(format!(
                "the config has {} Dense layers (`{}` …); effnet models one classifier after the pooling",
                denses.len(),
                denses[0]
                    .pointer("/config/name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("?")
            ));
        }
        let norm = layers.iter().position(|l| class(l) == "Normalization");
        let variance_fix =
            norm.is_some_and(|i| layers.get(i + 1).is_some_and(|l| class(l) == "Rescaling"));
        // keras.applications' EfficientNetV2 normalizes with constants in the config (the
        // checks in keras_config made sure they are ImageNet's mean and std²); S/M/L rescale to
        // [−1, 1] with one Rescaling.
        let constant_norm = norm.is_some_and(|i| {
            layers[i]
                .pointer("/config/mean")
                .is_some_and(|m| !m.is_null())
        });
        let preprocessing = match (norm, variance_fix, constant_norm) {
            (Some(_), _, true) => effnet_spec::Preprocessing::KerasNormalization,
            (Some(_), fix, false) => effnet_spec::Preprocessing::Keras { variance_fix: fix },
            (None, _, _) if layers.iter().any(|l| class(l) == "Rescaling") => {
                effnet_spec::Preprocessing::KerasSigned
            }
            (None, _, _) => effnet_spec::Preprocessing::External,
        };
        let head_activation = match layers
            .iter()
            .rev()
            .find(|l| class(l) == "Dense")
            .and_then(|l| l.pointer("/config/activation"))
        {
            Some(a) => keras_activation(a).map_err(|e| format!("the classifier uses {e}"))?,
            None => None,
        };
        let name = |l: &serde_json::Value| {
            l.pointer("/config/name")
                .and_then(|n| n.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let bn_eps = layers
            .iter()
            .find(|l| class(l) == "BatchNormalization")
            .and_then(|l| l.pointer("/config/epsilon"))
            .and_then(serde_json::Value::as_f64);
        let adds: std::collections::HashSet<String> = layers
            .iter()
            .filter(|l| class(l) == "Add")
            .filter_map(|l| name(l).strip_suffix("_add").map(str::to_owned))
            .collect();
        // The conv that carries a block's stride: the depthwise one (`_dwconv`, V2's
        // `_dwconv2`), or a Fused-MBConv's k×k expansion or (without expansion) projection.
        let blocks = layers
            .iter()
            .filter(|l| match class(l) {
                "DepthwiseConv2D" => true,
                "Conv2D" => l
                    .pointer("/config/kernel_size/0")
                    .and_then(serde_json::Value::as_u64)
                    .is_some_and(|k| k > 1),
                _ => false,
            })
            .filter_map(|l| {
                let layer = name(l);
                let block = ["_dwconv", "_dwconv2", "_expand_conv", "_project_conv"]
                    .iter()
                    .find_map(|suffix| layer.strip_suffix(suffix))?
                    .to_owned();
                let stride = l
                    .pointer("/config/strides/0")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(1) as usize;
                let residual = adds.contains(&block);
                Some((block, (stride, Some(residual))))
            })
            .collect();
        // tf-keras writes `batch_input_shape`, Keras 3 `batch_shape`: [null, h, w, 3].
        let resolution = layers
            .iter()
            .find(|l| class(l) == "InputLayer")
            .and_then(|l| {
                l.pointer("/config/batch_shape/1")
                    .or_else(|| l.pointer("/config/batch_input_shape/1"))
            })
            .and_then(serde_json::Value::as_u64)
            .and_then(|r| usize::try_from(r).ok())
            .filter(|&r| (1..=65_536).contains(&r));
        // Every Activation layer but the SE gate uses the model's `activation` argument. A
        // layer with another one is kept in the graph where effnet models it, and is a
        // deviation the audit reports where it does not.
        let mut found_activations: Vec<(String, effnet_ir::Activation)> = Vec::new();
        let mut deviations = Vec::new();
        for l in layers.iter().filter(|l| class(l) == "Activation") {
            let layer = name(l);
            if layer.ends_with("_se_expand") {
                continue;
            }
            match keras_activation(l.pointer("/config/activation").unwrap_or_default()) {
                Ok(Some(a)) => found_activations.push((layer, a)),
                Ok(None) => {}
                Err(_) => {
                    let (stage, block) = keras_layer_place(&layer);
                    let found = l
                        .pointer("/config/activation")
                        .map(|v| {
                            v.as_str()
                                .or_else(|| v.get("config").and_then(|c| c.as_str()))
                                .unwrap_or("?")
                        })
                        .map(keras_config::elide)
                        .unwrap_or_default();
                    let layer = keras_config::elide(&layer);
                    deviations.push(effnet_spec::Finding {
                        severity: effnet_spec::Severity::Error,
                        stage,
                        block,
                        field: "activation",
                        expected: "swish".into(),
                        found: found.clone(),
                        message: format!(
                            "{}activation `{found}` in `{layer}`, spec says swish (an activation effnet does not model)",
                            match (stage, block) {
                                (Some(s), Some(b)) => format!("stage {s} block {b}: "),
                                (Some(s), None) => format!("stage {s}: "),
                                _ => String::new(),
                            }
                        ),
                    });
                }
            }
        }
        // The model's activation is the one most layers use; the others are per layer.
        let activation = {
            let mut counts: Vec<(effnet_ir::Activation, usize)> = Vec::new();
            for (_, a) in &found_activations {
                match counts.iter_mut().find(|(b, _)| b == a) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((*a, 1)),
                }
            }
            counts.iter().max_by_key(|(_, n)| *n).map(|(a, _)| *a)
        };
        let layer_activations: Vec<(String, effnet_ir::Activation)> = found_activations
            .into_iter()
            .filter(|(_, a)| Some(*a) != activation)
            .collect();
        let dropout = layers
            .iter()
            .find(|l| name(l) == "top_dropout")
            .and_then(|l| l.pointer("/config/rate"))
            .and_then(serde_json::Value::as_f64);
        // keras.applications pads stride-2 convs with ZeroPadding2D(correct_pad(...)), computed
        // from the input size the model was built with; without one it pads (k/2 − 1, k/2).
        let asymmetric = layers
            .iter()
            .filter(|l| class(l) == "ZeroPadding2D")
            .filter_map(|l| l.pointer("/config/padding/0"))
            .any(|p| p.get(0) != p.get(1));
        let layer_padding = check_keras_padding(layers, resolution)?;
        if resolution.is_none() && asymmetric {
            warnings.push(
                "the Keras model was built without a fixed input size, so it pads stride-2 convolutions by (k/2 − 1, k/2) at any size; effnet's TF \"same\" padding equals that at even input sizes only".into(),
            );
        }
        return Ok(KerasSemantics {
            resolution,
            preprocessing: Some(preprocessing),
            classifier_activation: head_activation,
            bn_eps,
            blocks: Some(blocks),
            activation,
            dropout,
            layer_activations,
            layer_padding,
            deviations,
        });
    }
    let shipped_std = holds_imagenet_std(checkpoint);
    // EfficientNet's Normalization learns its statistics (weights); EfficientNetV2's holds
    // constants (none): its preprocessing is the family's.
    let has_normalization = checkpoint
        .tensors
        .iter()
        .any(|(n, _)| n.starts_with("normalization"));
    warnings.push(format!(
        "a weights-only Keras file does not record its preprocessing: assumed {} and a softmax head",
        match (has_normalization, shipped_std) {
            (false, _) => "the family's (EfficientNetV2: Rescaling + Normalization with ImageNet's mean and variance as constants)",
            (true, true) => "the Keras ≥ 2.9 variance fix (its stored \"variance\" is ImageNet's std)",
            (true, false) => "no variance fix",
        }
    ));
    Ok(KerasSemantics {
        preprocessing: has_normalization.then_some(effnet_spec::Preprocessing::Keras {
            variance_fix: shipped_std,
        }),
        classifier_activation: Some(effnet_ir::Activation::Softmax),
        bn_eps: None,
        blocks: None,
        resolution: None,
        activation: None,
        dropout: None,
        layer_activations: Vec::new(),
        layer_padding: Vec::new(),
        deviations: Vec::new(),
    })
}

/// Whether the Normalization "variance" is ImageNet's standard deviation (the values the
/// keras-applications weights ship, which the Keras ≥ 2.9 variance fix exists for).
fn holds_imagenet_std(checkpoint: &Checkpoint) -> bool {
    let variance = checkpoint
        .get("normalization/variance")
        .and_then(|t| t.to_f32_vec().ok());
    variance.as_ref().is_some_and(|v| {
        v.len() == 3
            && v.iter()
                .zip([0.229f32, 0.224, 0.225])
                .all(|(a, b)| (a - b).abs() < 1e-3)
    })
}

/// What a SavedModel's serving function says: strides of the depthwise convolutions (bound to
/// their kernels), the activation, a softmax head, the input size. The variance fix is
/// inferred from the stored variance, as for weights-only files.
pub(crate) fn function_semantics(
    facts: &effnet_tf::saved_model::FunctionFacts,
    checkpoint: &Checkpoint,
    warnings: &mut Vec<String>,
) -> KerasSemantics {
    use effnet_ir::Activation;
    let has = |op: &str| facts.ops.contains_key(op);
    let activation = if has("Relu6") {
        Activation::Relu6
    } else if has("Relu") {
        Activation::Relu
    } else {
        Activation::Swish
    };
    // A block's stride sits on its depthwise conv (`_dwconv`, V2's `_dwconv2`), else on a
    // Fused-MBConv's expansion, else on its projection (a Fused-MBConv without expansion).
    let mut blocks = std::collections::HashMap::new();
    for suffixes in [
        &["_dwconv", "_dwconv2"][..],
        &["_expand_conv"],
        &["_project_conv"],
    ] {
        for (kernel, &stride) in &facts.conv_strides {
            let Some(layer) = kernel.split('/').next() else {
                continue;
            };
            if let Some(block) = suffixes.iter().find_map(|s| layer.strip_suffix(s)) {
                blocks.entry(block.to_owned()).or_insert((stride, None));
            }
        }
    }
    // EfficientNet's Normalization holds variables; EfficientNetV2's constants (none here).
    let has_normalization = checkpoint
        .tensors
        .iter()
        .any(|(n, _)| n.starts_with("normalization"));
    let variance_fix = holds_imagenet_std(checkpoint);
    warnings.push(format!(
        "the SavedModel's serving function `{}` gives strides, activation and head; the preprocessing is assumed {}",
        facts.function,
        match (has_normalization, variance_fix) {
            (false, _) => "to be the family's (EfficientNetV2: its constants, not read from the function)",
            (true, true) => "to include the Keras ≥ 2.9 variance fix (its stored \"variance\" is ImageNet's std)",
            (true, false) => "to be Rescaling + Normalization without the variance fix",
        }
    ));
    KerasSemantics {
        preprocessing: has_normalization
            .then_some(effnet_spec::Preprocessing::Keras { variance_fix }),
        classifier_activation: has("Softmax").then_some(Activation::Softmax),
        bn_eps: None,
        blocks: Some(blocks),
        resolution: facts.resolution,
        activation: Some(activation),
        dropout: None,
        layer_activations: Vec::new(),
        layer_padding: Vec::new(),
        deviations: Vec::new(),
    }
}

/// A Keras config with every nested model (`Functional`, `Sequential`, `Model`: an
/// EfficientNet inside a transfer-learning model) replaced by its own layers, in order.
pub(crate) fn flatten_keras_config(mut config: serde_json::Value) -> serde_json::Value {
    fn flatten(layers: &[serde_json::Value], out: &mut Vec<serde_json::Value>, depth: usize) {
        for l in layers {
            let class = l.get("class_name").and_then(|c| c.as_str()).unwrap_or("");
            let inner = l.pointer("/config/layers").and_then(|v| v.as_array());
            match (class, inner) {
                ("Functional" | "Sequential" | "Model", Some(inner)) if depth < 8 => {
                    flatten(inner, out, depth + 1);
                }
                _ => out.push(l.clone()),
            }
        }
    }
    if let Some(layers) = config.pointer("/config/layers").and_then(|v| v.as_array()) {
        let mut flat = Vec::with_capacity(layers.len());
        flatten(layers, &mut flat, 0);
        if let Some(slot) = config.pointer_mut("/config/layers") {
            *slot = serde_json::Value::Array(flat);
        }
    }
    config
}

/// The classifier of a transfer-learning model is the user's own `Dense` (`dense_3`), not
/// keras.applications' `predictions`: the last `Dense` of the config (or, without one, the only
/// 2-d kernel) is read as the classifier.
pub(crate) fn alias_keras_classifier(
    checkpoint: &mut Checkpoint,
    config: Option<&serde_json::Value>,
) {
    if checkpoint.get("predictions/kernel").is_some() {
        return;
    }
    let from_config = config
        .and_then(|c| c.pointer("/config/layers"))
        .and_then(|l| l.as_array())
        .and_then(|layers| {
            layers
                .iter()
                .rev()
                .find(|l| l.get("class_name").and_then(|c| c.as_str()) == Some("Dense"))
        })
        .and_then(|l| l.pointer("/config/name"))
        .and_then(|n| n.as_str())
        .map(str::to_owned);
    let dense = from_config.or_else(|| {
        let mut kernels = checkpoint
            .tensors
            .iter()
            .filter(|(n, t)| n.ends_with("/kernel") && t.shape().len() == 2)
            .map(|(n, _)| n.trim_end_matches("/kernel").to_owned());
        let first = kernels.next()?;
        kernels.next().is_none().then_some(first)
    });
    let Some(dense) = dense else {
        return;
    };
    for (name, _) in &mut checkpoint.tensors {
        if let Some(variable) = name.strip_prefix(&format!("{dense}/")) {
            *name = format!("predictions/{variable}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_config_with_a_deeper_head_is_refused() {
        let config = json!({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [null, 64, 64, 3]}},
            {"class_name": "Dense", "config": {"name": "hidden", "activation": "relu"}},
            {"class_name": "Dense", "config": {"name": "out", "activation": "softmax"}},
        ]}});
        let error = keras_semantics(Some(&config), &Checkpoint::default(), &mut Vec::new())
            .err()
            .unwrap();
        assert!(error.contains("2 Dense layers"), "{error}");
    }

    #[test]
    fn a_zero_input_size_is_not_a_resolution() {
        let config = json!({"class_name": "Functional", "config": {"layers": [
            {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [null, 0, 0, 3]}},
        ]}});
        let semantics =
            keras_semantics(Some(&config), &Checkpoint::default(), &mut Vec::new()).unwrap();
        assert_eq!(semantics.resolution, None);
    }
}
