//! EfficientNet-Lite and EfficientNetV2 against the reference facts
//! (reference/families.md: counts measured on timm, torchvision and Keras models).

use effnet_ir::{BlockKind, structure};
use effnet_spec::{Family, ModelSpec, Scheme, Variant, build_graph};

/// Trainable parameters at 1,000 classes, as the frameworks count them.
const TRAINABLE: [(Variant, u64); 13] = [
    (Variant::Lite0, 4_652_008),
    (Variant::Lite1, 5_416_680),
    (Variant::Lite2, 6_092_072),
    (Variant::Lite3, 8_197_096),
    (Variant::Lite4, 13_006_568),
    (Variant::V2B0, 7_139_704),
    (Variant::V2B1, 8_141_052),
    (Variant::V2B2, 10_096_086),
    (Variant::V2B3, 14_358_406),
    (Variant::V2S, 21_458_488),
    (Variant::V2M, 54_139_356),
    (Variant::V2L, 118_515_272),
    (Variant::V2XL, 208_119_808),
];

fn graph(variant: Variant) -> effnet_ir::Graph {
    let spec = ModelSpec::variant(variant);
    build_graph(
        &spec.architecture(),
        &Scheme::TimmTf.semantics(Some(variant)),
    )
    .unwrap()
}

#[test]
fn trainable_counts_equal_the_frameworks() {
    for (variant, want) in TRAINABLE {
        let (trainable, _) = graph(variant).param_counts();
        assert_eq!(trainable, want, "{variant}");
    }
}

#[test]
fn lite_blocks_per_stage_and_fixed_widths() {
    let repeats = |v: Variant| -> Vec<usize> {
        ModelSpec::variant(v)
            .stages()
            .iter()
            .map(|s| s.repeats)
            .collect()
    };
    assert_eq!(repeats(Variant::Lite0), [1, 2, 2, 3, 3, 4, 1]);
    assert_eq!(repeats(Variant::Lite1), [1, 3, 3, 4, 4, 5, 1]);
    assert_eq!(repeats(Variant::Lite3), [1, 3, 3, 5, 5, 6, 1]);
    assert_eq!(repeats(Variant::Lite4), [1, 4, 4, 6, 6, 8, 1]);
    let lite4 = ModelSpec::variant(Variant::Lite4).architecture();
    assert_eq!((lite4.stem_channels, lite4.head_channels), (32, 1280));
    assert!(lite4.blocks.iter().all(|b| b.se_channels.is_none()));
    assert_eq!(lite4.activation, effnet_ir::Activation::Relu6);
}

#[test]
fn v2_blocks_per_stage_and_kinds() {
    let repeats = |v: Variant| -> Vec<usize> {
        ModelSpec::variant(v)
            .stages()
            .iter()
            .map(|s| s.repeats)
            .collect()
    };
    assert_eq!(repeats(Variant::V2B0), [1, 2, 2, 3, 5, 8]);
    assert_eq!(repeats(Variant::V2B1), [2, 3, 3, 4, 6, 9]);
    assert_eq!(repeats(Variant::V2B2), [2, 3, 3, 4, 6, 10]);
    assert_eq!(repeats(Variant::V2B3), [2, 3, 3, 5, 7, 12]);
    let s = graph(Variant::V2S);
    let stages = structure::stages(&s, None);
    let labels: Vec<(u8, &str)> = stages
        .iter()
        .map(|s| (s.number, s.operator.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            (1, "Conv3x3"),
            (2, "Fused-MBConv1, k3x3"),
            (3, "Fused-MBConv4, k3x3"),
            (4, "Fused-MBConv4, k3x3"),
            (5, "MBConv4, k3x3"),
            (6, "MBConv6, k3x3"),
            (7, "MBConv6, k3x3"),
            (8, "Conv1x1 & Pooling & FC"),
        ]
    );
    let blocks = structure::blocks(&s, None);
    assert_eq!(blocks.len(), 2 + 4 + 4 + 6 + 9 + 15);
    assert!(
        blocks
            .iter()
            .all(|b| (b.kind == BlockKind::FusedMBConv) == (b.stage <= 4))
    );
    // The fused stage without expansion keeps its shortcut (24 → 24, stride 1).
    assert!(blocks[0].residual && blocks[1].residual);
}

#[test]
fn families_are_named_and_variants_know_theirs() {
    assert_eq!(Variant::Lite2.family(), Family::Lite);
    assert_eq!(Variant::V2XL.family(), Family::V2);
    assert_eq!(Variant::B7.family(), Family::EfficientNet);
    assert_eq!(Family::V2.name(), "efficientnet-v2");
}
