//! A Keras model config checked layer by layer before its facts reach the graph: every layer
//! must be one the graph effnet builds accounts for, in the place keras.applications puts it,
//! wired to the layers keras.applications wires it to, with attribute values in range.
//! Anything else is refused naming the layer (an extra `Rescaling` between a convolution and
//! its BatchNorm would otherwise be dropped silently on export; a stride of 2^64 − 1 would
//! wrap).
//!
//! The walk is iterative (nested models are flattened with an explicit stack, at most 8 deep)
//! and linear in the number of layers and inbound references.

use std::collections::{HashMap, HashSet};

use effnet_io::escape;
use serde_json::Value;

/// The largest stride a config may state (EfficientNets use 1 and 2).
const MAX_STRIDE: u64 = 16;
/// The largest kernel size.
const MAX_KERNEL: u64 = 31;
/// The most filters or units of one layer.
const MAX_CHANNELS: u64 = 1 << 20;
/// The largest input height or width.
const MAX_INPUT: u64 = 65_536;
/// The most pixels a `ZeroPadding2D` may add on one side.
const MAX_PADDING: u64 = 64;
/// How deep models may nest.
const MAX_NESTING: usize = 8;

use effnet_spec::{IMAGENET_MEAN, IMAGENET_STD};

/// One layer of the flattened config.
struct Layer<'a> {
    name: String,
    class: &'a str,
    config: &'a Value,
    /// The layers it reads, when the config records them (`None` in a `Sequential`).
    inbound: Option<Vec<String>>,
}

fn shown(name: &str) -> String {
    escape(&elide(name)).into_owned()
}

/// A name from a file shortened for a message: the first and last 100 characters of a longer
/// one (an object path can be as long as the file).
pub(crate) fn elide(name: &str) -> String {
    let count = name.chars().count();
    if count <= 240 {
        return name.to_owned();
    }
    let head: String = name.chars().take(100).collect();
    let tail: String = name.chars().skip(count - 100).collect();
    format!("{head}…({} characters)…{tail}", count - 200)
}

/// The layer names a Keras 3 (`args` with `keras_history`) or tf-keras (`[[["name", 0, 0,
/// {}], …]]`) `inbound_nodes` refers to; `Err` when a layer is called more than once.
fn inbound_names(layer: &Value, name: &str) -> Result<Option<Vec<String>>, String> {
    let Some(nodes) = layer.get("inbound_nodes") else {
        return Ok(None);
    };
    let Some(nodes) = nodes.as_array() else {
        return Ok(None);
    };
    match nodes.len() {
        0 => return Ok(Some(Vec::new())),
        1 => {}
        n => {
            return Err(format!(
                "layer `{}` is called {n} times; effnet models each layer once",
                shown(name)
            ));
        }
    }
    let mut out = Vec::new();
    // Explicit stack: the node's structure is walked without recursion.
    let mut stack: Vec<&Value> = vec![&nodes[0]];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(history) = map
                    .get("config")
                    .and_then(|c| c.get("keras_history"))
                    .and_then(|h| h.get(0))
                    .and_then(Value::as_str)
                {
                    out.push(history.to_owned());
                } else {
                    // `args` before `kwargs`: pushed in reverse so they pop in order.
                    let mut values: Vec<(&String, &Value)> = map.iter().collect();
                    values.sort_by_key(|(k, _)| k.as_str() != "args");
                    stack.extend(values.into_iter().rev().map(|(_, v)| v));
                }
            }
            Value::Array(items) => {
                // tf-keras: ["name", node index, tensor index, kwargs].
                if let (Some(Value::String(n)), Some(Value::Number(_))) =
                    (items.first(), items.get(1))
                {
                    out.push(n.clone());
                } else {
                    stack.extend(items.iter().rev());
                }
            }
            _ => {}
        }
    }
    Ok(Some(out))
}

/// The model's layers with nested models replaced by theirs, and each nested model's name
/// mapped to its output layer.
fn flatten(config: &Value) -> Result<(Vec<Layer<'_>>, HashMap<String, String>), String> {
    let mut out = Vec::new();
    let mut alias = HashMap::new();
    let Some(top) = config.pointer("/config/layers").and_then(Value::as_array) else {
        return Ok((out, alias));
    };
    let mut stack: Vec<(std::slice::Iter<'_, Value>, usize)> = vec![(top.iter(), 0)];
    while let Some((iter, depth)) = stack.last_mut() {
        let depth = *depth;
        let Some(l) = iter.next() else {
            stack.pop();
            continue;
        };
        let class = l.get("class_name").and_then(Value::as_str).unwrap_or("");
        let config = l.get("config").unwrap_or(&Value::Null);
        let name = config
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let inner = config.get("layers").and_then(Value::as_array);
        if let (true, Some(inner)) = (
            matches!(class, "Functional" | "Sequential" | "Model"),
            inner,
        ) {
            if depth + 1 > MAX_NESTING {
                return Err(format!(
                    "model `{}` nests models more than {MAX_NESTING} deep",
                    shown(&name)
                ));
            }
            let last = inner
                .last()
                .and_then(|l| l.pointer("/config/name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            check_output(config, last, &name)?;
            alias.insert(name, last.to_owned());
            stack.push((inner.iter(), depth + 1));
            continue;
        }
        let inbound = inbound_names(l, &name)?;
        out.push(Layer {
            name,
            class,
            config,
            inbound,
        });
    }
    Ok((out, alias))
}

/// The model's outputs (`output_layers`: `["name", 0, 0]` in Keras 3, `[["name", 0, 0], …]`
/// in tf-keras) must be its last layer alone: the graph computes the whole network.
fn check_output(config: &Value, last: &str, model: &str) -> Result<(), String> {
    let Some(outputs) = config.get("output_layers") else {
        return Ok(());
    };
    let names: Vec<&str> = match outputs.get(0) {
        Some(Value::String(n)) => vec![n.as_str()],
        Some(Value::Array(_)) => outputs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get(0).and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    };
    match names.as_slice() {
        [] => Ok(()),
        [one] if *one == last => Ok(()),
        _ => Err(format!(
            "model `{}` outputs {}, not its last layer `{}`; effnet's graph computes the whole network",
            shown(model),
            shown(&names.join(", ")),
            shown(last)
        )),
    }
}

fn uint(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

/// A pair attribute (`[2, 2]`, or a single number) with both values equal and in `range`.
fn square(
    layer: &Layer<'_>,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
    default: Option<u64>,
) -> Result<u64, String> {
    let v = layer.config.get(key);
    let value = match v {
        None | Some(Value::Null) => default,
        Some(Value::Array(items)) => match items.as_slice() {
            [a, b] if a == b => uint(Some(a)),
            _ => None,
        },
        Some(n) => uint(Some(n)),
    };
    value.filter(|n| range.contains(n)).ok_or_else(|| {
        format!(
            "layer `{}` has {key} {}, where effnet reads equal values from {} to {}",
            shown(&layer.name),
            v.map_or("(none)".into(), |v| shown(&v.to_string())),
            range.start(),
            range.end()
        )
    })
}

fn number(layer: &Layer<'_>, key: &str) -> Option<f64> {
    layer.config.get(key).and_then(Value::as_f64)
}

/// Whether a `Rescaling` multiplies by `want` (one value or one per channel) and adds 0.
fn rescales_by(layer: &Layer<'_>, want: &[f64]) -> bool {
    rescales_with(layer, want, 0.0)
}

/// Whether a `Rescaling` multiplies by `want` and adds `add`.
fn rescales_with(layer: &Layer<'_>, want: &[f64], add: f64) -> bool {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6_f64.max(b.abs() * 1e-4);
    let scale_ok = match layer.config.get("scale") {
        Some(Value::Number(n)) => n
            .as_f64()
            .is_some_and(|s| want.iter().all(|&w| close(s, w))),
        Some(Value::Array(items)) => {
            items.len() == want.len()
                && items
                    .iter()
                    .zip(want)
                    .all(|(v, &w)| v.as_f64().is_some_and(|s| close(s, w)))
        }
        _ => false,
    };
    let offset_ok = match layer.config.get("offset") {
        None | Some(Value::Null) => add == 0.0,
        Some(Value::Number(n)) => n.as_f64() == Some(add),
        Some(Value::Array(items)) => items.iter().all(|v| v.as_f64() == Some(add)),
        _ => false,
    };
    scale_ok && offset_ok
}

/// Checks each layer's attribute values where they enter.
fn check_values(layer: &Layer<'_>) -> Result<(), String> {
    let name = shown(&layer.name);
    let bad = |what: String| Err(format!("layer `{name}` has {what}"));
    match layer.class {
        "Conv2D" | "DepthwiseConv2D" => {
            square(layer, "strides", 1..=MAX_STRIDE, Some(1))?;
            square(layer, "kernel_size", 1..=MAX_KERNEL, None)?;
            square(layer, "dilation_rate", 1..=1, Some(1))?;
            if layer.class == "Conv2D" {
                let filters = uint(layer.config.get("filters"));
                if !filters.is_some_and(|f| (1..=MAX_CHANNELS).contains(&f)) {
                    return bad(format!(
                        "filters {}, not 1 to {MAX_CHANNELS}",
                        shown(
                            &layer
                                .config
                                .get("filters")
                                .cloned()
                                .unwrap_or_default()
                                .to_string()
                        )
                    ));
                }
                if uint(layer.config.get("groups")).is_some_and(|g| g != 1) {
                    return bad(
                        "grouped convolution (`groups` ≠ 1), which effnet does not model".into(),
                    );
                }
            } else if uint(layer.config.get("depth_multiplier")).is_some_and(|m| m != 1) {
                return bad("a depth multiplier other than 1, which effnet does not model".into());
            }
            match layer.config.get("data_format").and_then(Value::as_str) {
                None | Some("channels_last") => {}
                Some(other) => return bad(format!("data format `{}`", shown(other))),
            }
        }
        "BatchNormalization" => {
            let eps = number(layer, "epsilon");
            if !eps.is_some_and(|e| e.is_finite() && e > 0.0 && e < 1.0) {
                return bad(format!("epsilon {eps:?}, not between 0 and 1"));
            }
            let axis_ok = match layer.config.get("axis") {
                None => true,
                Some(Value::Array(items)) => {
                    matches!(items.as_slice(), [a] if a.as_i64() == Some(-1) || a.as_i64() == Some(3))
                }
                Some(a) => a.as_i64() == Some(-1) || a.as_i64() == Some(3),
            };
            if !axis_ok {
                return bad("a BatchNorm axis other than the channels".into());
            }
        }
        "Dense"
            if !uint(layer.config.get("units"))
                .is_some_and(|u| (1..=MAX_CHANNELS).contains(&u)) =>
        {
            return bad(format!("units not 1 to {MAX_CHANNELS}"));
        }
        "Dropout" => {
            let rate = number(layer, "rate");
            if !rate.is_some_and(|r| r.is_finite() && (0.0..1.0).contains(&r)) {
                return bad(format!("dropout rate {rate:?}, not in [0, 1)"));
            }
        }
        "ZeroPadding2D" => {
            let pads: Vec<Option<u64>> = (0..2)
                .flat_map(|i| (0..2).map(move |j| (i, j)))
                .map(|(i, j)| uint(layer.config.pointer(&format!("/padding/{i}/{j}"))))
                .collect();
            if !pads.iter().all(|p| p.is_some_and(|p| p <= MAX_PADDING)) {
                return bad(format!(
                    "a padding that is not 0 to {MAX_PADDING} pixels a side"
                ));
            }
        }
        "InputLayer" => {
            let shape = layer
                .config
                .get("batch_shape")
                .or_else(|| layer.config.get("batch_input_shape"))
                .and_then(Value::as_array);
            if let Some(shape) = shape {
                let ok = shape.len() == 4
                    && shape[1..3].iter().all(|d| {
                        d.is_null() || uint(Some(d)).is_some_and(|d| (1..=MAX_INPUT).contains(&d))
                    })
                    && shape[3].as_u64() == Some(3);
                if !ok {
                    return bad(format!(
                        "input shape {}, where effnet reads [batch, 1–{MAX_INPUT}, 1–{MAX_INPUT}, 3]",
                        shown(&Value::Array(shape.clone()).to_string())
                    ));
                }
            }
        }
        "Normalization" => {
            // EfficientNetV2 (keras.applications) normalizes with constants: ImageNet's mean
            // and its std² as variance. Other constants are not what effnet's graph holds.
            let imagenet_variance = IMAGENET_STD.map(|s| s * s);
            for (key, want) in [("mean", IMAGENET_MEAN), ("variance", imagenet_variance)] {
                let Some(value) = layer.config.get(key).filter(|v| !v.is_null()) else {
                    continue;
                };
                let values: Option<Vec<f64>> = value
                    .as_array()
                    .map(|a| a.iter().map(Value::as_f64).collect())
                    .unwrap_or(None);
                let imagenet = values.is_some_and(|v| {
                    v.len() == 3
                        && v.iter()
                            .zip(want)
                            .all(|(a, b)| (a - b).abs() <= 1e-6 * b.abs().max(1.0))
                });
                if !imagenet {
                    return bad(format!(
                        "a constant `{key}` {} in its config, not ImageNet's (EfficientNetV2's): effnet's graph normalizes with ImageNet's",
                        shown(&value.to_string())
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The block a layer belongs to (`block2a` of `block2a_dwconv`).
fn block_of(name: &str) -> Option<&str> {
    let (block, _) = name.split_once('_')?;
    (block.starts_with("block") && block.len() > 5).then_some(block)
}

/// Checks a Keras model config (before its nested models are flattened): see the module
/// documentation.
pub(crate) fn check(config: &Value) -> Result<(), String> {
    let (layers, alias) = flatten(config)?;
    if layers.is_empty() {
        return Ok(());
    }
    let last = config
        .pointer("/config/layers")
        .and_then(Value::as_array)
        .and_then(|l| l.last())
        .and_then(|l| l.pointer("/config/name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let model = config
        .pointer("/config/name")
        .and_then(Value::as_str)
        .unwrap_or("model");
    check_output(config.get("config").unwrap_or(&Value::Null), last, model)?;
    let resolve = |n: &str| -> String {
        // A nested model's output stands for the model; aliases chain at most 8 deep.
        let mut n = n.to_owned();
        for _ in 0..=MAX_NESTING {
            match alias.get(&n) {
                Some(out) => n = out.clone(),
                None => break,
            }
        }
        n
    };
    let mut names = HashSet::new();
    for l in &layers {
        if !names.insert(l.name.as_str()) {
            return Err(format!(
                "the config has two layers named `{}`",
                shown(&l.name)
            ));
        }
        check_values(l)?;
    }

    // Preprocessing: Rescaling(1/255), Normalization and (Keras ≥ 2.9) Rescaling by
    // 1/√std, before the first convolution and nowhere else: that is what the graph computes.
    let first_conv = layers
        .iter()
        .position(|l| {
            matches!(
                l.class,
                "Conv2D" | "DepthwiseConv2D" | "ZeroPadding2D" | "BatchNormalization"
            )
        })
        .unwrap_or(layers.len());
    let preprocessing: Vec<&Layer<'_>> = layers
        .iter()
        .filter(|l| matches!(l.class, "Rescaling" | "Normalization"))
        .collect();
    if let Some(stray) = layers[first_conv..]
        .iter()
        .find(|l| matches!(l.class, "Rescaling" | "Normalization"))
    {
        return Err(format!(
            "the config's layer `{}` is a `{}` inside the network; effnet's graph has input preprocessing only, so the model would be exported without it",
            shown(&stray.name),
            stray.class
        ));
    }
    let fix: Vec<f64> = IMAGENET_STD.iter().map(|s| 1.0 / s.sqrt()).collect();
    let classes: Vec<&str> = preprocessing.iter().map(|l| l.class).collect();
    match classes.as_slice() {
        [] => {}
        // EfficientNetV2-S/M/L: pixels to [−1, 1].
        ["Rescaling"] => {
            if !rescales_with(preprocessing[0], &[1.0 / 128.0], -1.0) {
                return Err(format!(
                    "the config's layer `{}` rescales otherwise than keras.applications' EfficientNetV2 (x / 128 − 1)",
                    shown(&preprocessing[0].name)
                ));
            }
        }
        ["Rescaling", "Normalization"] | ["Rescaling", "Normalization", "Rescaling"] => {
            if !rescales_by(preprocessing[0], &[1.0 / 255.0]) {
                return Err(format!(
                    "the config's layer `{}` rescales by {}, where keras.applications (and effnet's graph) rescales by 1/255",
                    shown(&preprocessing[0].name),
                    shown(
                        &preprocessing[0]
                            .config
                            .get("scale")
                            .cloned()
                            .unwrap_or_default()
                            .to_string()
                    )
                ));
            }
            if let Some(second) = preprocessing.get(2) {
                if !rescales_by(second, &fix) {
                    return Err(format!(
                        "the config's layer `{}` rescales by {}, where the Keras variance fix (and effnet's graph) rescales by 1/√{IMAGENET_STD:?}",
                        shown(&second.name),
                        shown(
                            &second
                                .config
                                .get("scale")
                                .cloned()
                                .unwrap_or_default()
                                .to_string()
                        )
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "the config's input preprocessing is {other:?} (`{}` …), not keras.applications' Rescaling and Normalization",
                shown(&preprocessing[0].name)
            ));
        }
    }

    // Wiring: each layer reads the layer before it, except an SE `Multiply` (the block's
    // activation and the gate) and a residual `Add` (the block's last layer and its input).
    let mut block: Option<&str> = None;
    let mut block_input: Option<String> = None;
    let mut squeeze_input: Option<String> = None;
    let mut prev: Option<&str> = None;
    for l in &layers {
        let this_block = block_of(&l.name);
        if this_block != block {
            block = this_block;
            block_input = prev.map(str::to_owned);
        }
        let wiring_error = |inbound: &[String]| {
            format!(
                "the config's layer `{}` ({}) reads {}, where keras.applications wires it to {}; effnet's graph would not compute this model",
                shown(&l.name),
                l.class,
                shown(&format!("{inbound:?}")),
                shown(&format!("{:?}", prev.unwrap_or("nothing")))
            )
        };
        if let (Some(inbound), Some(p)) = (&l.inbound, prev) {
            if l.class != "InputLayer" {
                let inbound: Vec<String> = inbound.iter().map(|n| resolve(n)).collect();
                let ok = match l.class {
                    "Multiply" => {
                        inbound.len() == 2
                            && inbound.iter().any(|n| n == p)
                            && inbound.iter().any(|n| Some(n) == squeeze_input.as_ref())
                    }
                    "Add" => {
                        inbound.len() == 2
                            && inbound.iter().any(|n| n == p)
                            && inbound.iter().any(|n| Some(n) == block_input.as_ref())
                    }
                    _ => inbound.len() == 1 && inbound[0] == p,
                };
                if !ok {
                    return Err(wiring_error(&inbound));
                }
            }
        }
        if l.class == "GlobalAveragePooling2D" && this_block.is_some() {
            squeeze_input = prev.map(str::to_owned);
        }
        prev = Some(&l.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(class: &str, name: &str, config: Value, inbound: &[&str]) -> Value {
        let mut config = config;
        config["name"] = json!(name);
        let args: Vec<Value> = inbound
            .iter()
            .map(|n| json!({"class_name": "__keras_tensor__", "config": {"keras_history": [n, 0, 0]}}))
            .collect();
        let args = if args.len() == 1 {
            args[0].clone()
        } else {
            json!([args])
        };
        json!({"class_name": class, "config": config,
            "inbound_nodes": if inbound.is_empty() { json!([]) } else { json!([{"args": [args], "kwargs": {}}]) }})
    }

    fn stem(extra: Option<Value>) -> Value {
        let conv =
            json!({"filters": 8, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same"});
        let mut layers = vec![
            layer(
                "InputLayer",
                "input_layer",
                json!({"batch_shape": [null, 64, 64, 3]}),
                &[],
            ),
            layer(
                "Rescaling",
                "rescaling",
                json!({"scale": 1.0 / 255.0, "offset": 0.0}),
                &["input_layer"],
            ),
            layer("Normalization", "normalization", json!({}), &["rescaling"]),
            layer("Conv2D", "stem_conv", conv, &["normalization"]),
        ];
        let bn_input = match extra {
            Some(x) => {
                layers.push(x);
                "rescaling_1"
            }
            None => "stem_conv",
        };
        layers.push(layer(
            "BatchNormalization",
            "stem_bn",
            json!({"epsilon": 0.001}),
            &[bn_input],
        ));
        json!({"class_name": "Functional", "config": {"layers": layers}})
    }

    #[test]
    fn a_plain_stem_passes() {
        check(&stem(None)).unwrap();
    }

    #[test]
    fn a_rescaling_wired_inside_the_network_is_refused() {
        let extra = layer(
            "Rescaling",
            "rescaling_1",
            json!({"scale": 1000.0, "offset": 0.0}),
            &["stem_conv"],
        );
        let err = check(&stem(Some(extra))).unwrap_err();
        assert!(err.contains("rescaling_1"), "{err}");
        assert!(err.contains("inside the network"), "{err}");
    }

    #[test]
    fn a_layer_bypassed_by_its_successor_is_refused() {
        // A Dropout placed after the stem conv, which the BatchNorm does not read.
        let mut config = stem(None);
        let layers = config
            .pointer_mut("/config/layers")
            .unwrap()
            .as_array_mut()
            .unwrap();
        layers.insert(
            4,
            layer("Dropout", "x", json!({"rate": 0.5}), &["stem_conv"]),
        );
        let err = check(&config).unwrap_err();
        assert!(err.contains("stem_bn"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (key, value) in [
            ("strides", json!([u64::MAX, u64::MAX])),
            ("strides", json!([2, 1])),
            ("kernel_size", json!([0, 0])),
            ("filters", json!(0)),
            ("dilation_rate", json!([2, 2])),
        ] {
            let mut config = stem(None);
            config["config"]["layers"][3]["config"][key] = value.clone();
            let err = check(&config).unwrap_err();
            assert!(err.contains("stem_conv"), "{key} {value}: {err}");
        }
        let mut config = stem(None);
        config["config"]["layers"][4]["config"]["epsilon"] = json!(-1.0);
        assert!(check(&config).is_err());
        let mut config = stem(None);
        config["config"]["layers"][1]["config"]["scale"] = json!(1000.0);
        assert!(check(&config).unwrap_err().contains("1/255"));
    }

    #[test]
    fn a_model_must_output_its_last_layer() {
        let mut config = stem(None);
        config["config"]["output_layers"] = json!([["stem_bn", 0, 0]]);
        check(&config).unwrap();
        config["config"]["output_layers"] = json!(["stem_conv", 0, 0]);
        assert!(check(&config).unwrap_err().contains("stem_conv"));
        config["config"]["output_layers"] = json!([["stem_bn", 0, 0], ["stem_conv", 0, 0]]);
        assert!(check(&config).is_err());
    }

    #[test]
    fn a_forged_layer_name_is_escaped() {
        let mut config = stem(None);
        config["config"]["layers"][3]["config"]["strides"] = json!([0, 0]);
        config["config"]["layers"][3]["config"]["name"] = json!("x\nerror: forged");
        let err = check(&config).unwrap_err();
        assert!(!err.contains('\n'), "{err}");
    }
}
