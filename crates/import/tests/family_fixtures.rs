//! EfficientNet-Lite and EfficientNetV2 files written by timm, torchvision,
//! efficientnet-lite-pytorch, Keras 3 and tf-keras (`fixtures/families`): each is identified
//! in its family, counts what its framework counts, and conforms to the spec it matches.

use std::path::{Path, PathBuf};

use effnet_import::{ImportOptions, open};
use effnet_spec::{Evidence, Family, Severity, audit, closest_spec};

fn families() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/families")
}

#[test]
fn every_family_fixture_is_identified_counted_and_conforms() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(families())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "{cases:?}");
    for path in cases {
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = case["case"].as_str().unwrap();
        let options = ImportOptions {
            key: None,
            naming: case["naming"].as_str().and_then(|n| n.parse().ok()),
            ..ImportOptions::default()
        };
        let model = open(&families().join(case["file"].as_str().unwrap()), &options)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let imported = &model.imported;
        let want_family = if case["family"].as_str().unwrap().contains("lite") {
            Family::Lite
        } else {
            Family::V2
        };
        assert_eq!(
            imported.identity.family(),
            Some(want_family),
            "{name}: {}",
            imported.identity.label()
        );
        assert_eq!(
            imported.architecture.activation,
            want_family.activation(),
            "{name}"
        );
        let (trainable, _) = imported.graph.param_counts();
        assert_eq!(trainable, case["params"].as_u64().unwrap(), "{name}");
        let (spec, exact) = closest_spec(&imported.architecture);
        assert!(exact, "{name}: closest spec {}", spec.label());
        let report = audit(
            &imported.architecture,
            &spec,
            Evidence::WEIGHTS_ONLY,
            Some(model.naming),
        );
        let errors: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert!(
            imported.report.unused.is_empty(),
            "{name}: {:?}",
            imported.report.unused
        );
        assert!(
            imported.report.missing.is_empty(),
            "{name}: {:?}",
            imported.report.missing
        );
    }
}
