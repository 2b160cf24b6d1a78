//! TensorFlow containers: a tensor-bundle checkpoint (name-based, or object-based with Keras
//! names reconstructed by position) and a SavedModel (variables named by its object graph).

use std::collections::BTreeMap;
use std::path::Path;

use effnet_ir::{Checkpoint, ChecksumPolicy};

use crate::{ImportError, Tensors, keras_config, name_by_position, unsupported};

/// A SavedModel's variables (named by the object graph) and, from tf-keras, its Keras config.
pub(crate) fn read_saved_model(
    path: &Path,
    policy: ChecksumPolicy,
) -> Result<Tensors, ImportError> {
    let saved = effnet_tf::saved_model::read_saved_model_with(path, policy)?;
    let keras_config = match &saved.keras_metadata {
        Some(json) => Some(untuple(
            effnet_keras::parse_json(
                json.as_bytes(),
                &effnet_io::Budget::for_input(json.len() as u64),
                "the root's Keras metadata",
            )
            .map_err(|e| {
                unsupported(
                    &path.join("keras_metadata.pb"),
                    &format!("the root's metadata is not JSON: {e}"),
                )
            })?,
        )),
        None => None,
    };
    let mut metadata = BTreeMap::new();
    if saved.signature_variables > 0 {
        metadata.insert(
            "tf.signature_variables".into(),
            saved.signature_variables.to_string(),
        );
    }
    Ok(Tensors {
        container: "saved-model",
        checkpoint: Checkpoint {
            tensors: saved.tensors,
            metadata,
            layout: effnet_ir::TensorLayout::Tf,
        },
        globals: Vec::new(),
        skipped: saved.skipped,
        keras_config: keras_config.filter(|c| c.pointer("/config/layers").is_some()),
        positional: false,
        function_facts: saved.facts,
        checksums: saved.checksums,
    })
}

/// tf-keras metadata writes tuples as `{"class_name": "__tuple__", "items": [...]}`; the
/// model config elsewhere has plain arrays.
fn untuple(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(mut map) => {
            if map.get("class_name").and_then(Value::as_str) == Some("__tuple__") {
                if let Some(Value::Array(items)) = map.remove("items") {
                    return Value::Array(items.into_iter().map(untuple).collect());
                }
            }
            Value::Object(map.into_iter().map(|(k, v)| (k, untuple(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(untuple).collect()),
        other => other,
    }
}

/// What a TF checkpoint holds: the model's tensors (Keras names reconstructed for object-based
/// checkpoints, variable names for name-based ones; facts about the bundle in the metadata).
pub(crate) fn read_tf(path: &Path, policy: ChecksumPolicy) -> Result<Tensors, ImportError> {
    let (bundle, _) = effnet_tf::read_with_budget(path, 0, policy)?;
    let mut notes = BTreeMap::new();
    notes.insert("tf.prefix".into(), bundle.prefix.display().to_string());
    let mut skipped = bundle.skipped;
    let Some(graph) = &bundle.object_graph else {
        notes.insert("tf.checkpoint".into(), "name-based".into());
        let kept = effnet_tf::name_based(bundle.tensors);
        if kept.moving_averages {
            notes.insert("tf.moving_averages".into(), "true".into());
        }
        skipped.extend(kept.dropped);
        let checkpoint = Checkpoint {
            tensors: kept.tensors,
            metadata: notes.clone(),
            layout: effnet_ir::TensorLayout::Tf,
        };
        return Ok(Tensors {
            container: "tf-bundle",
            checkpoint,
            globals: Vec::new(),
            skipped,
            keras_config: None,
            positional: false,
            function_facts: None,
            checksums: bundle.checksums.clone(),
        });
    };
    notes.insert("tf.checkpoint".into(), "object-based".into());
    let Some((layers, others)) = effnet_tf::object_layers(graph) else {
        return Err(unsupported(
            path,
            "an object-based checkpoint whose object graph holds no Keras model (no `layer_with_weights-N` children)",
        ));
    };
    let by_key: std::collections::HashMap<&str, &effnet_ir::Tensor> = bundle
        .tensors
        .iter()
        .map(|(k, t)| (k.as_str(), t))
        .collect();
    let mut unnamed = Vec::with_capacity(layers.len());
    for layer in layers {
        let mut seen = std::collections::HashSet::new();
        let variables: Vec<(String, effnet_ir::Tensor)> = layer
            .variables
            .iter()
            .filter(|(_, key)| seen.insert(key.clone()))
            .filter_map(|(name, key)| Some((name.clone(), (*by_key.get(key.as_str())?).clone())))
            .collect();
        let Some(kind) = effnet_naming::positional::LayerKind::from_variables(&variables) else {
            return Err(unsupported(
                path,
                &format!(
                    "`{}` is not a layer of a keras.applications EfficientNet (variables {})",
                    keras_config::elide(&layer.path),
                    keras_config::elide(
                        &layer
                            .variables
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                ),
            ));
        };
        unnamed.push(effnet_naming::positional::UnnamedLayer {
            kind,
            origin: layer.path,
            variables,
        });
    }
    for key in others {
        if by_key.contains_key(key.as_str()) || key.ends_with("VARIABLE_VALUE") {
            let reason = if key.contains(".OPTIMIZER_SLOT") || key.starts_with("optimizer/") {
                "optimizer state"
            } else {
                "not part of the model"
            };
            skipped.push((key, reason.into()));
        }
    }
    let mut checkpoint = name_by_position(path, unnamed)?;
    checkpoint.metadata = notes;
    Ok(Tensors {
        container: "tf-bundle",
        checkpoint,
        globals: Vec::new(),
        skipped,
        keras_config: None,
        positional: true,
        function_facts: None,
        checksums: bundle.checksums.clone(),
    })
}
