//! The Keras 3 `config.json` of a [`KerasModel`]: a functional model in the form
//! `keras.saving.load_model` reads without custom objects.

use serde_json::{Value, json};

use super::build::{KerasModel, LayerKind};

fn dtype_policy() -> Value {
    json!({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null})
}

fn shape(output: &[usize]) -> Value {
    let mut dims = vec![Value::Null];
    dims.extend(output.iter().map(|&d| json!(d)));
    Value::Array(dims)
}

fn padding(same: bool) -> &'static str {
    if same { "same" } else { "valid" }
}

/// The layer's own attributes (`config` of its entry).
fn layer_config(name: &str, kind: &LayerKind, input: &[usize]) -> Value {
    let mut config = match kind {
        LayerKind::Input => {
            return json!({"batch_shape": shape(input), "dtype": "float32", "sparse": false, "name": name});
        }
        LayerKind::Rescaling { scale, offset } => json!({"scale": scale, "offset": offset}),
        LayerKind::Normalization { constants } => {
            let (mean, variance) = match constants {
                Some((m, v)) => (json!(m), json!(v)),
                None => (Value::Null, Value::Null),
            };
            json!({"axis": [3], "invert": false, "mean": mean, "variance": variance})
        }
        LayerKind::ZeroPadding2D { padding } => {
            json!({"padding": padding, "data_format": "channels_last"})
        }
        LayerKind::Conv2D {
            filters,
            kernel,
            strides,
            same,
            use_bias,
            activation,
        } => json!({
            "filters": filters, "kernel_size": kernel, "strides": strides,
            "padding": padding(*same), "data_format": "channels_last", "dilation_rate": [1, 1],
            "groups": 1, "activation": activation, "use_bias": use_bias,
        }),
        LayerKind::DepthwiseConv2D {
            kernel,
            strides,
            same,
        } => json!({
            "depth_multiplier": 1, "kernel_size": kernel, "strides": strides,
            "padding": padding(*same), "data_format": "channels_last", "dilation_rate": [1, 1],
            "activation": "linear", "use_bias": false,
        }),
        LayerKind::BatchNormalization { epsilon, momentum } => json!({
            "axis": 3, "momentum": momentum, "epsilon": epsilon, "center": true, "scale": true,
        }),
        LayerKind::Activation(a) => json!({"activation": a}),
        LayerKind::GlobalAveragePooling2D => {
            json!({"data_format": "channels_last", "keepdims": false})
        }
        LayerKind::Reshape { target } => json!({"target_shape": target}),
        LayerKind::Multiply | LayerKind::Add => json!({}),
        LayerKind::Dropout { rate, per_sample } => json!({
            "rate": rate, "seed": null,
            "noise_shape": if *per_sample { json!([null, 1, 1, 1]) } else { Value::Null },
        }),
        LayerKind::Dense { units, activation } => {
            json!({"units": units, "activation": activation, "use_bias": true})
        }
    };
    let map = config.as_object_mut().expect("an object");
    map.insert("name".into(), json!(name));
    map.insert("trainable".into(), json!(true));
    map.insert("dtype".into(), dtype_policy());
    config
}

/// The functional model's `config.json`.
pub fn keras3_config(model: &KerasModel) -> Value {
    let tensor = |i: usize| {
        let layer = &model.layers[i];
        json!({"class_name": "__keras_tensor__", "config": {
            "shape": shape(&layer.output), "dtype": "float32", "keras_history": [layer.name, 0, 0],
        }})
    };
    let layers: Vec<Value> = model
        .layers
        .iter()
        .map(|layer| {
            let inputs: Vec<&[usize]> = layer
                .inputs
                .iter()
                .map(|&i| model.layers[i].output.as_slice())
                .collect();
            let own_input = match inputs.as_slice() {
                [] => layer.output.as_slice(),
                [one, ..] => one,
            };
            let mut entry = json!({
                "module": "keras.layers",
                "class_name": layer.kind.class_name(),
                "config": layer_config(&layer.name, &layer.kind, own_input),
                "registered_name": null,
            });
            let map = entry.as_object_mut().expect("an object");
            if !layer.inputs.is_empty() {
                let input_shape = if inputs.len() == 1 {
                    shape(inputs[0])
                } else {
                    Value::Array(inputs.iter().map(|s| shape(s)).collect())
                };
                map.insert("build_config".into(), json!({"input_shape": input_shape}));
            }
            map.insert("name".into(), json!(layer.name));
            let args = match layer.inputs.as_slice() {
                [] => None,
                [one] => Some(json!([tensor(*one)])),
                many => Some(json!([many.iter().map(|&i| tensor(i)).collect::<Vec<_>>()])),
            };
            let inbound = match args {
                None => json!([]),
                Some(args) => json!([{"args": args, "kwargs": {}}]),
            };
            map.insert("inbound_nodes".into(), inbound);
            entry
        })
        .collect();
    let first = model.layers.first().map_or("", |l| l.name.as_str());
    let last = model.layers.last().map_or("", |l| l.name.as_str());
    json!({
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": model.name,
            "trainable": true,
            "layers": layers,
            "input_layers": [first, 0, 0],
            "output_layers": [last, 0, 0],
        },
        "registered_name": "Functional",
        "build_config": {"input_shape": null},
        "compile_config": null,
    })
}

/// The layer's attributes as tf-keras (Keras 2) writes them: `dtype` a name, BatchNorm's
/// `axis` a list, swish as `swish`.
fn legacy_layer_config(name: &str, kind: &LayerKind, input: &[usize]) -> Value {
    if let LayerKind::Input = kind {
        return json!({"batch_input_shape": shape(input), "dtype": "float32", "sparse": false, "ragged": false, "name": name});
    }
    let mut config = layer_config(name, kind, input);
    let map = config.as_object_mut().expect("an object");
    map.insert("dtype".into(), json!("float32"));
    if let LayerKind::BatchNormalization { .. } = kind {
        map.insert("axis".into(), json!([3]));
    }
    for key in ["activation"] {
        if map.get(key).and_then(Value::as_str) == Some("silu") {
            map.insert(key.into(), json!("swish"));
        }
    }
    config
}

/// The functional model's `model_config` as tf-keras writes it in a full-model `.h5`.
pub fn tf_keras_config(model: &KerasModel, keras_version: &str) -> Value {
    let layers: Vec<Value> = model
        .layers
        .iter()
        .map(|layer| {
            let own_input = match layer.inputs.first() {
                Some(&i) => model.layers[i].output.as_slice(),
                None => layer.output.as_slice(),
            };
            let inbound = if layer.inputs.is_empty() {
                json!([])
            } else {
                let refs: Vec<Value> = layer
                    .inputs
                    .iter()
                    .map(|&i| json!([model.layers[i].name, 0, 0, {}]))
                    .collect();
                json!([refs])
            };
            json!({
                "class_name": layer.kind.class_name(),
                "config": legacy_layer_config(&layer.name, &layer.kind, own_input),
                "name": layer.name,
                "inbound_nodes": inbound,
            })
        })
        .collect();
    let first = model.layers.first().map_or("", |l| l.name.as_str());
    let last = model.layers.last().map_or("", |l| l.name.as_str());
    json!({
        "class_name": "Functional",
        "config": {
            "name": model.name,
            "trainable": true,
            "layers": layers,
            "input_layers": [[first, 0, 0]],
            "output_layers": [[last, 0, 0]],
        },
        "keras_version": keras_version,
        "backend": "tensorflow",
    })
}
