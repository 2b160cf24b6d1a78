//! Costs against figures measured on real models: `tests/data/golden.json` is a copy of
//! `shared/reference/golden.json` (torchvision models at native resolution, per paper stage),
//! the other figures come from the published B0–B7 counts and from torchvision at other resolutions.

use effnet_cost::{CostOptions, CostReport, ModelInfo, analyze};
use effnet_ir::DType;
use effnet_spec::{ModelSpec, Scheme, Variant, build_graph};
use serde_json::Value;

fn report(spec: &ModelSpec, scheme: Scheme, options: &CostOptions) -> CostReport {
    let graph = build_graph(&spec.architecture(), &scheme.semantics(spec.variant)).unwrap();
    analyze(&graph, ModelInfo::default(), options).unwrap()
}

/// Sum of conv and dense output elements of a stage (timm's `macts` convention).
fn conv_dense_outputs(report: &CostReport, stage: u8) -> u64 {
    report
        .layers
        .iter()
        .filter(|l| l.stage == stage && matches!(l.op, "Conv2d" | "DepthwiseConv2d" | "Dense"))
        .map(|l| l.output_elems)
        .sum()
}

#[test]
fn per_stage_params_macs_and_activations_match_golden() {
    let golden: Value = serde_json::from_str(include_str!("data/golden.json")).unwrap();
    for variant in &Variant::ALL[..8] {
        let expected = &golden[variant.name()];
        let spec = ModelSpec::variant(*variant);
        assert_eq!(
            expected["resolution"].as_u64().unwrap() as usize,
            spec.resolution
        );
        // Padding and epsilon change no count: both conventions must give the same numbers.
        for scheme in [Scheme::Torchvision, Scheme::TfOfficial] {
            let r = report(&spec, scheme, &CostOptions::default());
            assert_eq!(r.stages.len(), 9);
            for (stage, want) in r.stages.iter().zip(expected["stages"].as_array().unwrap()) {
                let ctx = format!("{variant} {scheme} stage {}", stage.stage);
                assert_eq!(stage.stage as u64, want["stage"].as_u64().unwrap(), "{ctx}");
                assert_eq!(
                    stage.costs.params,
                    want["params"].as_u64().unwrap(),
                    "{ctx} params"
                );
                assert_eq!(
                    stage.costs.macs,
                    want["macs"].as_u64().unwrap(),
                    "{ctx} macs"
                );
                assert_eq!(
                    conv_dense_outputs(&r, stage.stage),
                    want["activation_elems"].as_u64().unwrap(),
                    "{ctx} activation_elems"
                );
            }
            let total = &expected["total"];
            assert_eq!(r.total.params, total["params"].as_u64().unwrap());
            assert_eq!(r.total.macs, total["macs"].as_u64().unwrap());
            let outputs: u64 = (1..=9).map(|s| conv_dense_outputs(&r, s)).sum();
            assert_eq!(outputs, total["activation_elems"].as_u64().unwrap());
        }
    }
}

#[test]
fn macs_at_other_resolutions_match_torchvision() {
    // Measured on real torchvision models (issue 2): B2 at 288 (torchvision's eval size),
    // B0 at 256 (timm's test size), B0 at 225 (odd sizes all the way down).
    for (variant, resolution, macs) in [
        (Variant::B2, 288, 1_087_529_456u64),
        (Variant::B0, 256, 503_337_472),
        (Variant::B0, 225, 449_497_408),
    ] {
        let spec = ModelSpec::variant(variant)
            .with_overrides(None, None, Some(resolution))
            .unwrap();
        for scheme in [Scheme::Torchvision, Scheme::TfOfficial] {
            assert_eq!(
                report(&spec, scheme, &CostOptions::default()).total.macs,
                macs,
                "{variant}@{resolution} {scheme}"
            );
        }
    }
}

#[test]
fn macs_at_non_square_sizes_match_fvcore() {
    // fvcore 0.1.5.post20221221 on torchvision 0.x `efficientnet_b0()` and timm
    // `tf_efficientnet_b0` (TF "same" padding), conv + linear of `by_operator()`:
    //   FlopCountAnalysis(model.eval(), torch.zeros(1, 3, h, w)).by_operator()
    //   → by_op["conv"] + by_op["linear"]
    // 224×320 (and 320×224): 550,346,560; 225×330: 631,380,032; 200×300: 499,644,560 —
    // the same for both models. fvcore's total adds BatchNorm (19,250,560 at 224×320) and
    // pooling (3,384,640).
    let spec = ModelSpec::variant(Variant::B0);
    for (hw, macs) in [
        ([224, 320], 550_346_560u64),
        ([320, 224], 550_346_560),
        ([225, 330], 631_380_032),
        ([200, 300], 499_644_560),
    ] {
        for scheme in [Scheme::Torchvision, Scheme::TfOfficial] {
            let r = report(
                &spec,
                scheme,
                &CostOptions {
                    resolution: Some(hw),
                    ..CostOptions::default()
                },
            );
            assert_eq!(r.resolution, hw);
            assert_eq!(r.model.resolution, hw);
            assert_eq!(r.total.macs, macs, "B0 at {hw:?} {scheme}");
            let input = &r.layers[0].output_shape;
            assert_eq!(input[2..], hw, "input shape at {hw:?}");
        }
    }
}

#[test]
fn operator_classes_partition_the_totals() {
    let r = report(
        &ModelSpec::variant(Variant::B0),
        Scheme::Torchvision,
        &CostOptions::default(),
    );
    let mut sum = effnet_cost::Costs::default();
    for o in &r.operators {
        sum += o.costs;
    }
    assert_eq!(sum.macs, r.total.macs);
    assert_eq!(sum.params, r.total.params);
    assert_eq!(sum.flops, r.total.flops);
    assert_eq!(sum.activation_bytes, r.total.activation_bytes);
    let names: Vec<&str> = r.operators.iter().map(|o| o.operator.name()).collect();
    assert_eq!(
        names,
        [
            "convolution",
            "depthwise_convolution",
            "dense",
            "batchnorm",
            "activation",
            "pooling",
            "elementwise",
            "other"
        ]
    );
    let class = |name: &str| {
        r.operators
            .iter()
            .find(|o| o.operator.name() == name)
            .unwrap()
    };
    // fvcore's batch_norm count at 224 (2 per element, as effnet's BatchNorm FLOPs): 13,475,392.
    assert_eq!(class("batchnorm").costs.flops, 13_475_392);
    assert_eq!(class("dense").costs.macs, 1_280_000);
    assert_eq!(
        class("convolution").costs.macs + class("depthwise_convolution").costs.macs,
        384_534_752
    );
    // The stem conv: 3→32, 3×3 stride 2 on 224×224.
    let stem = r.layers.iter().find(|l| l.op == "Conv2d").unwrap();
    assert_eq!(stem.input_shape, [1, 3, 224, 224]);
    assert_eq!(stem.output_shape, [1, 32, 112, 112]);
    assert_eq!(stem.kernel, Some([3, 3]));
    assert_eq!(stem.stride, Some([2, 2]));
    assert_eq!(stem.groups, Some(1));
    let dw = r.layers.iter().find(|l| l.op == "DepthwiseConv2d").unwrap();
    assert_eq!(dw.groups, Some(32));
}

#[test]
fn memory_summary_adds_up() {
    let r = report(
        &ModelSpec::variant(Variant::B0),
        Scheme::Torchvision,
        &CostOptions::default(),
    );
    let m = &r.memory;
    assert_eq!(m.element_bytes, 4);
    // 5,288,548 trainable + 42,016 BatchNorm statistics (no Keras normalization here).
    assert_eq!(
        m.weights_bytes,
        4 * (r.total.params + r.total.non_trainable_params)
    );
    assert_eq!(m.input_bytes, 4 * 3 * 224 * 224);
    assert_eq!(m.peak_activation_bytes, 9_633_792);
    assert_eq!(m.forward_activation_bytes, r.total.activation_bytes);
    assert_eq!(
        m.saved_for_backward_bytes,
        r.total.training_activation_bytes
    );
    assert_eq!(
        m.inference_total_bytes,
        m.weights_bytes + m.peak_activation_bytes
    );
    assert_eq!(
        m.training_total_bytes,
        2 * m.weights_bytes + m.input_bytes + m.saved_for_backward_bytes
    );
}

#[test]
fn keras_counts_include_bn_statistics_and_normalization() {
    // Reference §2.5: Keras count_params() = trainable + 2 × BN channels + 7.
    let expected = [
        (Variant::B0, 5_330_571u64, 42_023u64),
        (Variant::B1, 7_856_239, 62_055),
        (Variant::B2, 9_177_569, 67_575),
        (Variant::B3, 12_320_535, 87_303),
        (Variant::B4, 19_466_823, 125_207),
        (Variant::B5, 30_562_527, 172_743),
        (Variant::B6, 43_265_143, 224_439),
        (Variant::B7, 66_658_687, 310_727),
    ];
    for (variant, keras_total, non_trainable) in expected {
        let spec = ModelSpec::variant(variant);
        let r = report(&spec, Scheme::Keras, &CostOptions::default());
        assert_eq!(r.total.non_trainable_params, non_trainable, "{variant}");
        assert_eq!(
            r.total.params + r.total.non_trainable_params,
            keras_total,
            "{variant}"
        );
    }
}

#[test]
fn stage_rows_read_like_the_paper() {
    let r = report(
        &ModelSpec::variant(Variant::B0),
        Scheme::TfOfficial,
        &CostOptions::default(),
    );
    let rows: Vec<(&str, usize, usize, usize)> = r
        .stages
        .iter()
        .map(|s| {
            (
                s.operator.as_str(),
                s.input_resolution[0],
                s.output_channels,
                s.layers,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("Conv3x3", 224, 32, 1),
            ("MBConv1, k3x3", 112, 16, 1),
            ("MBConv6, k3x3", 112, 24, 2),
            ("MBConv6, k5x5", 56, 40, 2),
            ("MBConv6, k3x3", 28, 80, 3),
            ("MBConv6, k5x5", 14, 112, 3),
            ("MBConv6, k5x5", 14, 192, 4),
            ("MBConv6, k3x3", 7, 320, 1),
            ("Conv1x1 & Pooling & FC", 7, 1280, 1),
        ]
    );
}

#[test]
fn batch_and_dtype_scale_what_they_should() {
    let spec = ModelSpec::variant(Variant::B0);
    let one = report(&spec, Scheme::TfOfficial, &CostOptions::default());
    let four_half = report(
        &spec,
        Scheme::TfOfficial,
        &CostOptions {
            batch: 4,
            dtype: DType::F16,
            resolution: None,
        },
    );
    assert_eq!(four_half.total.params, one.total.params);
    assert_eq!(four_half.total.macs, 4 * one.total.macs);
    assert_eq!(four_half.total.flops, 4 * one.total.flops);
    assert_eq!(
        four_half.total.activation_bytes,
        2 * one.total.activation_bytes
    );
    assert_eq!(
        four_half.total.peak_activation_bytes,
        2 * one.total.peak_activation_bytes
    );
}

#[test]
fn b0_inference_peak_is_the_expanded_block_2a_pair() {
    // Block 2a's expansion output (96×112×112) and its BatchNorm output are live together;
    // the block input was freed after the expansion conv (no shortcut in a stride-2 block).
    let r = report(
        &ModelSpec::variant(Variant::B0),
        Scheme::TfOfficial,
        &CostOptions::default(),
    );
    assert_eq!(r.total.peak_activation_bytes, 2 * 96 * 112 * 112 * 4);
    assert!(r.total.training_activation_bytes > r.total.peak_activation_bytes);
    assert!(r.total.training_activation_bytes < r.total.activation_bytes);
}

#[test]
fn flops_are_at_least_twice_the_macs() {
    for variant in &Variant::ALL[..8] {
        let r = report(
            &ModelSpec::variant(*variant),
            Scheme::TfOfficial,
            &CostOptions::default(),
        );
        assert!(r.total.flops > 2 * r.total.macs, "{variant}");
        assert!(r.total.flops < 3 * r.total.macs, "{variant}");
    }
}
