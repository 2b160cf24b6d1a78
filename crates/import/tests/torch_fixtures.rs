//! Every PyTorch and safetensors fixture opens with the right container, scheme, architecture
//! and parameter count, and every graph parameter holds exactly the bytes torch wrote under
//! the name the scheme gives it.

use std::path::{Path, PathBuf};

use effnet_import::{ImportOptions, NamingSource, open};
use effnet_naming::Identity;
use effnet_spec::Scheme;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/torch")
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// PyTorch's attribute name for an IR parameter name.
fn torch_param(ir: &str) -> &str {
    match ir {
        "gamma" => "weight",
        "beta" => "bias",
        other => other,
    }
}

fn cases() -> Vec<Value> {
    let mut out: Vec<Value> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    out.sort_by_key(|c| c["case"].as_str().unwrap().to_owned());
    out
}

#[test]
fn every_fixture_imports_exactly() {
    let cases = cases();
    assert!(cases.len() >= 21, "{} cases", cases.len());
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let path = fixtures().join(case["file"].as_str().unwrap());
        let key = case["key"]
            .as_str()
            .filter(|k| k.ends_with("_ema"))
            .map(str::to_owned);
        let model = open(
            &path,
            &ImportOptions {
                key,
                ..ImportOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));

        let container = match case["container"].as_str().unwrap() {
            "zip" => "torch-zip",
            "legacy" => "torch-legacy",
            other => other,
        };
        let full_module = name.ends_with("-module");
        assert_eq!(model.container, container, "{name}");
        let scheme: Scheme = case["naming"].as_str().unwrap().parse().unwrap();
        if scheme == Scheme::TimmTf && container != "safetensors" && !full_module {
            // The names cannot tell timm-tf from timm: read as timm, with a warning.
            assert_eq!(model.naming, Scheme::Timm, "{name}");
            assert!(
                model
                    .warnings
                    .iter()
                    .any(|w| w.contains("--naming timm-tf")),
                "{name}"
            );
        } else {
            assert_eq!(model.naming, scheme, "{name}");
        }
        if scheme == Scheme::TimmTf && container == "safetensors" {
            assert_eq!(model.naming_source, NamingSource::Metadata, "{name}");
        }
        if scheme == Scheme::TimmTf && full_module {
            // timm's Conv2dSame in the pickle says TF padding.
            assert_eq!(model.naming_source, NamingSource::ModuleClasses, "{name}");
        }
        assert_eq!(model.key.as_deref(), case["key"].as_str(), "{name}");

        let imported = &model.imported;
        assert_eq!(
            imported.identity,
            Identity::Custom {
                base: effnet_spec::EFFICIENTNET,
                width: 0.1,
                depth: 0.5
            },
            "{name}"
        );
        assert_eq!(imported.architecture.num_classes, Some(10), "{name}");
        let (trainable, _) = imported.graph.param_counts();
        assert_eq!(trainable, case["params"].as_u64().unwrap(), "{name}");

        let tensors = case["tensors"].as_object().unwrap();
        let counters = tensors
            .keys()
            .filter(|k| k.ends_with("num_batches_tracked"))
            .count();
        assert_eq!(
            imported.report.applied.len(),
            tensors.len() - counters,
            "{name}"
        );
        assert_eq!(imported.report.skipped.len(), counters, "{name}");
        assert!(
            imported.report.missing.is_empty(),
            "{name}: {:?}",
            imported.report.missing
        );
        assert!(
            imported.report.unused.is_empty(),
            "{name}: {:?}",
            imported.report.unused
        );

        // Each graph parameter holds the tensor of its own name, byte for byte.
        let mut checked = 0;
        for (_, node) in imported.graph.nodes() {
            for p in node.op.params() {
                let Some(data) = p.tensor.data() else {
                    continue;
                };
                let source = format!("{}.{}", node.name, torch_param(p.name));
                let want = &tensors[&source];
                assert_eq!(
                    p.tensor.shape().len(),
                    want["shape"].as_array().unwrap().len()
                );
                assert_eq!(
                    sha256(data.as_slice()),
                    want["sha256"].as_str().unwrap(),
                    "{name}: {source}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, tensors.len() - counters, "{name}");
    }
}

#[test]
fn timm_tf_is_taken_when_asked() {
    let model = open(
        &fixtures().join("timm-tf-tiny.pth"),
        &ImportOptions {
            key: None,
            naming: Some(Scheme::TimmTf),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(model.naming, Scheme::TimmTf);
    assert_eq!(model.naming_source, NamingSource::Option);
    assert!(model.warnings.is_empty(), "{:?}", model.warnings);
}

#[test]
fn a_missing_key_lists_the_keys_there_are() {
    let err = open(
        &fixtures().join("torchvision-tiny-train.pth"),
        &ImportOptions {
            key: Some("ema".into()),
            ..ImportOptions::default()
        },
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("no tensors under key `ema`"), "{message}");
    assert!(message.contains("model_ema"), "{message}");
}
