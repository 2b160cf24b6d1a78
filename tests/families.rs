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
