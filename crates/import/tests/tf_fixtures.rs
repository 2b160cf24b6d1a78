//! The TensorFlow checkpoint fixtures written by `fixtures/generate/tf_fixtures.py`: tf-keras
//! object-based checkpoints (`save_weights`, `tf.train.Checkpoint` with optimizer state, four
//! shards with tensors stored in slices), a Keras 3 `.weights.h5` and a TF1 checkpoint with the
//! official release's names, moving averages and RMSProp slots. Every tensor reads byte-exactly as the framework held it, under
//! the Keras (or official) name, and every file imports as the same tiny EfficientNet. (Outputs
//! are checked against Keras in onnxruntime by `tests/onnx/check_onnx.py`.)

use std::path::{Path, PathBuf};

use effnet_import::{ImportError, ImportOptions, open, read_tensors};
use effnet_naming::positional::{LayerKind, UnnamedLayer, keras_layer_names};
use effnet_spec::Scheme;
use serde_json::Value;

mod common;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tf")
}

fn case(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("{name}.json"))).unwrap())
        .unwrap()
}

const CASES: [(&str, &str, Scheme); 11] = [
    ("keras3-tiny-transfer", "keras-v3", Scheme::Keras),
    ("keras-tiny-transfer", "keras-h5", Scheme::Keras),
    ("keras33-tiny-weights", "keras-v3-weights", Scheme::Keras),
    ("keras-tiny-savedmodel", "saved-model", Scheme::Keras),
    ("keras3-tiny-export", "saved-model", Scheme::Keras),
    ("keras-tiny-relu", "keras-h5", Scheme::Keras),
    ("keras-tiny-ckpt", "tf-bundle", Scheme::Keras),
    ("keras-tiny-sharded", "tf-bundle", Scheme::Keras),
    ("keras-tiny-trackable", "tf-bundle", Scheme::Keras),
    ("keras3-tiny-weights", "keras-v3-weights", Scheme::Keras),
    ("tf-official-tiny", "tf-bundle", Scheme::TfOfficial),
];

#[test]
fn every_tensor_reads_exactly_under_its_framework_name() {
    for (name, container, _) in CASES {
        let doc = case(name);
        let path = fixtures().join(doc["file"].as_str().unwrap());
        let read = read_tensors(&path).unwrap();
        assert_eq!(read.container, container, "{name}");
        common::assert_tensors_match(&read.checkpoint, doc["tensors"].as_object().unwrap(), name);
    }
}

#[test]
fn every_checkpoint_imports_as_the_tiny_model() {
    for (name, container, scheme) in CASES {
        let doc = case(name);
        let path = fixtures().join(doc["file"].as_str().unwrap());
        let model = open(&path, &ImportOptions::default()).unwrap();
        assert_eq!(model.container, container, "{name}");
        assert_eq!(model.naming, scheme, "{name}");
        let imported = &model.imported;
        common::assert_tiny(imported, doc["params"].as_u64().unwrap(), name);
        assert!(
            imported.report.unused.is_empty() && imported.report.missing.is_empty(),
            "{name}: {:?}",
            imported.report
        );
        // Keras counts the BatchNorm statistics and the Normalization's mean, variance and
        // count (3 + 3 + 1); the official graph has no Normalization layer.
        let non_trainable = imported.graph.param_counts().1;
        let bn_channels = common::bn_channels(&imported.graph);
        let normalization = if scheme == Scheme::Keras { 7 } else { 0 };
        assert_eq!(non_trainable, 2 * bn_channels + normalization, "{name}");
        let (spec, exact) = effnet_spec::closest_spec(&imported.architecture);
        assert!(exact, "{name}");
        let report =
            effnet_spec::audit(&imported.architecture, &spec, model.evidence, Some(scheme));
        assert!(report.conforms, "{name}: {:?}", report.findings);
    }
}

#[test]
fn the_official_checkpoint_uses_its_moving_averages_and_drops_optimizer_state() {
    let model = open(
        &fixtures().join("tf-official-tiny"),
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(model.metadata["tf.checkpoint"], "name-based");
    assert_eq!(model.metadata["tf.moving_averages"], "true");
    let joined = model.warnings.join("\n");
    assert!(
        joined.contains("270 entries (an optimizer slot)"),
        "{joined}"
    );
    assert!(joined.contains("`global_step`: a step counter"), "{joined}");
    // The release's preprocessing is outside the graph and its head gives logits.
    let first = model.imported.graph.nodes().nth(1).unwrap().1;
    assert_eq!(first.op.kind(), "Conv2d");
    let last = model.imported.graph.node(model.imported.graph.outputs()[0]);
    assert_eq!(last.op.kind(), "Dense");
}

#[test]
fn a_checkpoint_is_found_from_its_folder_prefix_index_or_shard() {
    let folder = fixtures().join("tf-official-tiny");
    let prefix = folder.join("model.ckpt-1000");
    let forms = [
        folder.clone(),
        prefix.clone(),
        folder.join("model.ckpt-1000.index"),
        folder.join("model.ckpt-1000.data-00000-of-00001"),
    ];
    for form in forms {
        assert_eq!(
            effnet_tf::resolve_prefix(&form).unwrap(),
            prefix,
            "{}",
            form.display()
        );
        assert_eq!(read_tensors(&form).unwrap().checkpoint.len(), 197);
    }
}

#[test]
fn object_based_layers_are_named_from_any_interleaving_of_their_classes() {
    // What a Keras 3 `.weights.h5` without layer names gives: the order within each class.
    let bundle = effnet_tf::read(&fixtures().join("keras-tiny-ckpt")).unwrap();
    let (layers, _) = effnet_tf::object_layers(bundle.object_graph.as_ref().unwrap()).unwrap();
    let layers: Vec<UnnamedLayer> = layers
        .into_iter()
        .map(|l| {
            let mut seen = std::collections::HashSet::new();
            let variables: Vec<_> = l
                .variables
                .iter()
                .filter(|(_, k)| seen.insert(k.clone()))
                .map(|(n, k)| {
                    let t = bundle.tensors.iter().find(|(key, _)| key == k).unwrap();
                    (n.clone(), t.1.clone())
                })
                .collect();
            UnnamedLayer {
                kind: LayerKind::from_variables(&variables).unwrap(),
                origin: l.path,
                variables,
            }
        })
        .collect();
    let in_order: Vec<String> = keras_layer_names(layers.clone())
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut by_class = layers;
    by_class.sort_by_key(|l| l.kind);
    let from_classes: Vec<String> = keras_layer_names(by_class)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(in_order, from_classes);
    let doc = case("keras-tiny-ckpt");
    let mut want: Vec<&str> = doc["tensors"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.split('/').next().unwrap())
        .collect();
    want.dedup();
    let mut got = in_order.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// Copies the official fixture to a temporary folder, letting `damage` change it.
fn damaged(damage: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join("tf-official-tiny")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    damage(dir.path());
    let path = dir.path().to_owned();
    (dir, path)
}

fn error_of(path: &Path) -> String {
    match open(path, &ImportOptions::default()) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => {
            let message = e.to_string();
            assert!(!matches!(e, ImportError::Naming { .. }), "{message}");
            message
        }
    }
}

#[test]
fn damaged_checkpoints_are_refused_naming_the_file() {
    let index = "model.ckpt-1000.index";
    let data = "model.ckpt-1000.data-00000-of-00001";
    let flip = |file: &'static str, at: usize| {
        move |dir: &Path| {
            let path = dir.join(file);
            let mut bytes = std::fs::read(&path).unwrap();
            let at = at.min(bytes.len() - 1);
            bytes[at] ^= 0x20;
            std::fs::write(path, bytes).unwrap();
        }
    };
    let (_d, path) = damaged(flip(index, 1000));
    let e = error_of(&path);
    assert!(e.contains(index) && e.contains("crc32c"), "{e}");

    let (_d, path) = damaged(flip(data, 5000));
    let e = error_of(&path);
    assert!(e.contains(data) && e.contains("crc32c"), "{e}");

    let (_d, path) = damaged(|dir| {
        let path = dir.join(data);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    });
    let e = error_of(&path);
    assert!(e.contains(data) && e.contains("cut short"), "{e}");

    let (_d, path) = damaged(|dir| std::fs::remove_file(dir.join(data)).unwrap());
    let e = error_of(&path);
    assert!(e.contains(data), "{e}");

    let (_d, path) = damaged(|dir| {
        let path = dir.join(index);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(path, &bytes[..bytes.len() - 10]).unwrap();
    });
    let e = error_of(&path.join("model.ckpt-1000"));
    assert!(e.contains(index), "{e}");

    let (_d, path) = damaged(|dir| {
        std::fs::write(dir.join("checkpoint"), "model_checkpoint_path: \"gone\"\n").unwrap()
    });
    let e = error_of(&path);
    assert!(e.contains("gone.index"), "{e}");
}

#[test]
fn an_index_with_a_bad_block_handle_is_refused() {
    // The footer's index handle pointing past the end, checksums aside.
    let (_d, path) = damaged(|dir| {
        let path = dir.join("model.ckpt-1000.index");
        let mut bytes = std::fs::read(&path).unwrap();
        let footer = bytes.len() - 48;
        // Metaindex handle: two one-byte varints at most for this small file; make the index
        // handle's offset a huge varint.
        let mut pos = footer;
        for _ in 0..2 {
            while bytes[pos] & 0x80 != 0 {
                pos += 1;
            }
            pos += 1;
        }
        bytes[pos..pos + 5].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        std::fs::write(path, bytes).unwrap();
    });
    let e = error_of(&path);
    assert!(e.contains("block handle") || e.contains("footer"), "{e}");
}

#[test]
fn the_keras_config_gives_the_activation_and_dropout() {
    let model = open(
        &fixtures().join("keras-tiny-relu.h5"),
        &ImportOptions::default(),
    )
    .unwrap();
    let acts: std::collections::BTreeSet<&str> = model
        .imported
        .graph
        .nodes()
        .filter_map(|(_, n)| match &n.op {
            effnet_ir::Op::Activation(a) => Some(a.name()),
            _ => None,
        })
        .collect();
    // ReLU where swish was; the SE gate stays sigmoid and the head softmax.
    assert_eq!(
        acts.into_iter().collect::<Vec<_>>(),
        ["relu", "sigmoid", "softmax"]
    );
    assert_eq!(model.imported.architecture.dropout, 0.2);
    // A config records activations, padding and dropout: the audit checks them, and ReLU
    // where the spec has swish is an error.
    assert!(model.evidence.activations && model.evidence.padding && model.evidence.dropout);
    let (spec, _) = effnet_spec::closest_spec(&model.imported.architecture);
    let mut report = effnet_spec::audit(
        &model.imported.architecture,
        &spec,
        model.evidence,
        Some(model.naming),
    );
    effnet_spec::audit_semantics(&mut report, &model.imported.graph, &spec, model.evidence);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.field == "activation" && f.message.contains("relu")),
        "{:?}",
        report.findings
    );
}

#[test]
fn savedmodels_give_their_semantics() {
    // tf-keras: the config in keras_metadata.pb, as in a full-model .h5.
    let model = open(
        &fixtures().join("keras-tiny-savedmodel"),
        &ImportOptions::default(),
    )
    .unwrap();
    assert!(model.has_architecture);
    assert_eq!(model.imported.architecture.resolution, Some(64));
    assert!(model.evidence.strides && model.evidence.residuals && model.evidence.bn_eps);
    // Keras 3 export: strides bound to the depthwise kernels the serving function reads, the
    // input size from the signature, the softmax from its ops; the second copy of every weight
    // is left out.
    let model = open(
        &fixtures().join("keras3-tiny-export"),
        &ImportOptions::default(),
    )
    .unwrap();
    assert!(!model.has_architecture);
    assert_eq!(model.imported.architecture.resolution, Some(64));
    assert!(model.evidence.strides && !model.evidence.residuals);
    let strides: Vec<usize> = model
        .imported
        .architecture
        .blocks
        .iter()
        .map(|b| b.stride)
        .collect();
    assert_eq!(strides, [1, 2, 2, 2, 1, 1, 1, 2, 1, 1]);
    let joined = model.warnings.join("\n");
    assert!(joined.contains("197 entries (a second copy"), "{joined}");
    let last = model.imported.graph.node(model.imported.graph.outputs()[0]);
    assert_eq!(last.op.kind(), "Softmax");
}

#[test]
fn damaged_savedmodels_are_refused_naming_the_file() {
    let copy = |damage: &dyn Fn(&Path)| {
        let dir = tempfile::tempdir().unwrap();
        let src = fixtures().join("keras3-tiny-export");
        std::fs::create_dir(dir.path().join("variables")).unwrap();
        for rel in [
            "saved_model.pb",
            "variables/variables.index",
            "variables/variables.data-00000-of-00001",
        ] {
            std::fs::copy(src.join(rel), dir.path().join(rel)).unwrap();
        }
        damage(dir.path());
        dir
    };
    let dir = copy(&|d| std::fs::write(d.join("saved_model.pb"), b"garbage\x00\xff").unwrap());
    let e = error_of(dir.path());
    assert!(e.contains("saved_model.pb"), "{e}");
    let dir = copy(&|d| std::fs::remove_dir_all(d.join("variables")).unwrap());
    let e = error_of(dir.path());
    assert!(e.contains("variables"), "{e}");
    let dir = copy(&|d| {
        let shard = d.join("variables/variables.data-00000-of-00001");
        let len = std::fs::metadata(&shard).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&shard)
            .unwrap()
            .set_len(len / 3)
            .unwrap();
    });
    let e = error_of(dir.path());
    assert!(e.contains("cut short"), "{e}");
    // An op effnet does not know (the depthwise op renamed in place).
    let dir = copy(&|d| {
        let pb = d.join("saved_model.pb");
        let bytes = std::fs::read(&pb).unwrap();
        let (from, to) = (b"DepthwiseConv2dNative", b"DepthwiseConv2dNativX");
        let mut out = bytes.clone();
        for i in 0..bytes.len().saturating_sub(from.len()) {
            if &bytes[i..i + from.len()] == from {
                out[i..i + to.len()].copy_from_slice(to);
            }
        }
        std::fs::write(pb, out).unwrap();
    });
    let e = error_of(dir.path());
    assert!(
        e.contains("op `DepthwiseConv2dNativX`") && e.contains("in function `__inference"),
        "{e}"
    );
}
