//! The cost of the EfficientNet-Lite and EfficientNetV2 fixtures against what their
//! generators measured: fvcore's conv + linear multiply-accumulates for the PyTorch models,
//! the Keras layer shapes for the Keras ones (`fixtures/families/<case>.json`, `macs`).

use std::path::{Path, PathBuf};

use effnet_cost::{CostOptions, ModelInfo, analyze};
use effnet_import::{ImportOptions, open};

fn families() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/families")
}

#[test]
fn family_macs_equal_fvcore_conv_and_linear() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(families())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10);
    for path in cases {
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = case["case"].as_str().unwrap();
        let options = ImportOptions {
            key: None,
            naming: case["naming"].as_str().and_then(|n| n.parse().ok()),
            ..Default::default()
        };
        let model = open(&families().join(case["file"].as_str().unwrap()), &options).unwrap();
        let resolution = case["resolution"].as_u64().unwrap() as usize;
        let report = analyze(
            &model.imported.graph,
            ModelInfo::default(),
            &CostOptions {
                batch: 1,
                dtype: effnet_ir::DType::F32,
                resolution: Some([resolution, resolution]),
            },
        )
        .unwrap();
        assert_eq!(
            report.total.macs,
            case["macs"]["total"].as_u64().unwrap(),
            "{name}: {}",
            case["macs"]["method"]
        );
    }
}

mod common;

/// The opt-in tier: every variant of each family at full size from each framework, and the
/// pretrained Lite0–2 `.pth` of the PyPI wheels, written by
/// `fixtures/generate/full_family_fixtures.py` (`just fixtures-full-families`) into
/// `target/fixtures-full/families`. Run with `cargo test --test families -- --ignored`.
#[test]
#[ignore = "needs target/fixtures-full/families (just fixtures-full-families)"]
fn full_size_families_are_their_variant_and_compute_their_framework_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures-full/families");
    let mut docs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("target/fixtures-full/families is missing: run `just fixtures-full-families`")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty());
    for path in docs {
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let file = dir.join(doc["file"].as_str().unwrap());
        let name = file.display().to_string();
        let options = ImportOptions {
            key: None,
            naming: doc["naming"].as_str().and_then(|n| n.parse().ok()),
            ..Default::default()
        };
        let model = open(&file, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        let imported = &model.imported;
        let want: effnet_spec::Variant = doc["variant"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            imported.identity,
            effnet_naming::Identity::Variant(want),
            "{name}"
        );
        assert_eq!(
            imported.graph.param_counts().0,
            doc["params"].as_u64().unwrap(),
            "{name}"
        );
        assert!(imported.report.missing.is_empty(), "{name}");
        assert!(imported.report.unused.is_empty(), "{name}");
        let (spec, exact) = effnet_spec::closest_spec(&imported.architecture);
        assert!(exact && spec.variant == Some(want), "{name}");
        // fvcore was not run on the largest models (over 60 M parameters).
        if let Some(macs) = doc["macs"]["total"].as_u64() {
            let resolution = doc["resolution"].as_u64().unwrap() as usize;
            let report = analyze(
                &imported.graph,
                ModelInfo::default(),
                &CostOptions {
                    batch: 1,
                    dtype: effnet_ir::DType::F32,
                    resolution: Some([resolution, resolution]),
                },
            )
            .unwrap();
            assert_eq!(report.total.macs, macs, "{name}");
        }
        // The pretrained files: the companion package's output on the same input.
        if let Some(io) = doc["io"].as_str() {
            let input = common::read_io(&dir.join(io), "input");
            let reference = common::read_io(&dir.join(io), "output");
            let exec = effnet_exec::Executor::new(
                &imported.graph,
                &effnet_exec::ExecOptions { logits: false },
            )
            .unwrap();
            let out = exec.run(input).unwrap().output;
            let diff = effnet_exec::Diff::of(&out.data, &reference.data);
            println!("{name}: max|diff|/max|ref| = {:e}", diff.relative);
            assert!(diff.relative <= 1e-4, "{name}: {:e}", diff.relative);
        }
    }
}
