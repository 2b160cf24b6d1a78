//! Every PyTorch fixture written by `fixtures/generate/torch_fixtures.py` reads with the right
//! container and every tensor equals what torch wrote (sha256 of its little-endian bytes).

use std::path::{Path, PathBuf};

use effnet_torch::{Container, read};
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

#[test]
fn every_torch_fixture_reads_byte_exactly() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let container = doc["container"].as_str().unwrap();
        if container == "safetensors" {
            continue;
        }
        let file = fixtures().join(doc["file"].as_str().unwrap());
        let torch = read(&file).unwrap_or_else(|e| panic!("{e}"));
        let expected_container = match container {
            "zip" => Container::Zip,
            "legacy" => Container::Legacy,
            "torchscript" => Container::TorchScript,
            other => panic!("unknown container {other}"),
        };
        assert_eq!(torch.container, expected_container, "{}", file.display());
        let prefix = doc["key"]
            .as_str()
            .map(|k| format!("{k}."))
            .unwrap_or_default();
        let wrapped = doc["case"].as_str().unwrap().ends_with("dataparallel");
        for (name, want) in doc["tensors"].as_object().unwrap() {
            let full = if wrapped {
                format!("{prefix}module.{name}")
            } else {
                format!("{prefix}{name}")
            };
            let t = torch
                .checkpoint
                .get(&full)
                .unwrap_or_else(|| panic!("{}: no tensor {full}", file.display()));
            assert_eq!(t.dtype().name(), want["dtype"].as_str().unwrap(), "{full}");
            let shape: Vec<usize> = want["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(t.shape(), shape.as_slice(), "{full}");
            assert_eq!(
                sha256(t.data().unwrap().as_slice()),
                want["sha256"].as_str().unwrap(),
                "{}: {full}",
                file.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} fixtures checked");
}

#[test]
fn a_full_model_file_names_its_module_classes() {
    let torch = read(&fixtures().join("torchvision-tiny-module.pth")).unwrap();
    assert!(
        torch
            .globals
            .iter()
            .any(|g| g == "torchvision.models.efficientnet.MBConv"),
        "{:?}",
        torch.globals
    );
}
