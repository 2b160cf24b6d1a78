//! The opt-in tier: full-size B0–B7 files written by `fixtures/generate/full_fixtures.py`
//! (`just fixtures-full`) into `target/fixtures-full/`. Run with
//! `cargo test -p effnet-import --test full_size -- --ignored`.

use std::path::{Path, PathBuf};

use effnet_import::{ImportOptions, open};
use effnet_naming::Identity;
use effnet_spec::{Evidence, ModelSpec, Variant, audit, closest_spec};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures-full")
}

#[test]
#[ignore = "needs target/fixtures-full (just fixtures-full)"]
fn full_size_files_import_as_their_variant() {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("target/fixtures-full is missing: run `just fixtures-full`")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".json"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "no full-size fixtures");
    for doc_path in docs {
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&doc_path).unwrap()).unwrap();
        let file = dir().join(doc["file"].as_str().unwrap());
        let model = open(&file, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let name = file.display();
        assert_eq!(
            model.naming.name(),
            doc["naming"].as_str().unwrap(),
            "{name}"
        );
        let Identity::Variant(v) = model.imported.identity else {
            panic!("{name}: identified as {}", model.imported.identity.label());
        };
        assert_eq!(v.name(), doc["variant"].as_str().unwrap(), "{name}");
        assert_eq!(
            model.imported.graph.param_counts().0,
            doc["params"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            model.tensors as u64,
            doc["tensors"].as_u64().unwrap(),
            "{name}"
        );
        assert!(model.imported.report.missing.is_empty(), "{name}");
        assert!(model.imported.report.unused.is_empty(), "{name}");
        // It conforms to its own spec, which --spec auto finds.
        let (spec, exact) = closest_spec(&model.imported.architecture);
        assert!(exact, "{name}");
        assert_eq!(spec.variant, Some(v), "{name}");
        // A B0 file against B1: the repeats of every stage differ, nothing else.
        if v == Variant::B0 {
            let report = audit(
                &model.imported.architecture,
                &ModelSpec::variant(Variant::B1),
                Evidence::WEIGHTS_ONLY,
                None,
            );
            assert!(!report.conforms);
            assert!(
                report.findings.iter().all(|f| f.field == "repeats"),
                "{name}"
            );
            assert_eq!(report.findings.len(), 7, "{name}");
        }
    }
}
