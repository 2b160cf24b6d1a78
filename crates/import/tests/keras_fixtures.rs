//! The Keras fixtures written by `fixtures/generate/keras_fixtures.py` (tf-keras): every
//! dataset reads byte-exactly as Keras held it, and the model imports as the tiny EfficientNet
//! it is, with Keras' preprocessing and softmax head. (Its outputs are checked against Keras
//! in onnxruntime by `tests/onnx/check_onnx.py`.)

use std::path::{Path, PathBuf};

use effnet_import::{ImportOptions, open};
use effnet_ir::{Activation, Op};
use effnet_spec::Scheme;
use serde_json::Value;

mod common;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/keras")
}

#[test]
fn keras_h5_files_import_exactly() {
    for (case, container) in [
        ("keras-tiny", "keras-h5"),
        ("keras-tiny-weights", "keras-h5"),
        ("keras3-tiny", "keras-v3"),
    ] {
        let doc: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("{case}.json"))).unwrap(),
        )
        .unwrap();
        let path = fixtures().join(doc["file"].as_str().unwrap());
        // The container: Keras' own layout and bytes.
        let file = if container == "keras-v3" {
            effnet_keras::read_keras3(&path).unwrap()
        } else {
            effnet_keras::read(&path).unwrap()
        };
        common::assert_tensors_match(&file.checkpoint, doc["tensors"].as_object().unwrap(), case);
        assert_eq!(file.config.is_some(), doc["kind"] != "weights", "{case}");

        // The model.
        let model = open(&path, &ImportOptions::default()).unwrap();
        assert_eq!(model.container, container);
        assert_eq!(model.naming, Scheme::Keras);
        let imported = &model.imported;
        common::assert_tiny(imported, doc["params"].as_u64().unwrap(), case);
        // Keras counts BatchNorm statistics and the Normalization's mean, variance and count.
        let non_trainable = imported.graph.param_counts().1;
        assert_eq!(non_trainable, 2 * common::bn_channels(&imported.graph) + 7);
        assert!(imported.report.unused.is_empty() && imported.report.missing.is_empty());
        // Preprocessing inside the model, a softmax head, TF padding and epsilon.
        let kinds: Vec<&str> = imported
            .graph
            .nodes()
            .take(3)
            .map(|(_, n)| n.op.kind())
            .collect();
        assert_eq!(kinds, ["Input", "Rescale", "Normalize"]);
        let last = imported.graph.node(imported.graph.outputs()[0]);
        assert!(matches!(last.op, Op::Activation(Activation::Softmax)));
        assert!(
            imported
                .graph
                .nodes()
                .any(|(_, n)| matches!(&n.op, Op::BatchNorm(b) if b.eps == 1e-3))
        );
        // A config records strides, shortcuts and the input size: the audit checks them
        // instead of assuming.
        let has_config = doc["kind"] != "weights";
        assert_eq!(model.has_architecture, has_config, "{case}");
        assert_eq!(
            imported.architecture.resolution,
            has_config.then_some(64),
            "{case}"
        );
        assert_eq!(model.evidence.strides, has_config, "{case}");
        assert_eq!(model.evidence.residuals, has_config, "{case}");
        let (spec, exact) = effnet_spec::closest_spec(&imported.architecture);
        assert!(exact, "{case}");
        let report = effnet_spec::audit(
            &imported.architecture,
            &spec,
            model.evidence,
            Some(model.naming),
        );
        assert!(report.conforms, "{case}: {:?}", report.findings);
        assert_eq!(
            report.unverifiable.iter().any(|u| u.starts_with("strides")),
            !has_config,
            "{case}"
        );
    }
}
