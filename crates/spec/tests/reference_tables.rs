//! The scaled architecture against the published per-stage tables of the B0–B7 release.

use effnet_ir::structure;
use effnet_spec::{ModelSpec, Scheme, Variant, build_graph};

/// Reference §2.3: stem, (out_channels, repeats) of the seven MBConv stages, head, blocks.
#[allow(clippy::type_complexity)]
const SCALED: [(Variant, usize, [(usize, usize); 7], usize, usize); 8] = [
    (
        Variant::B0,
        32,
        [
            (16, 1),
            (24, 2),
            (40, 2),
            (80, 3),
            (112, 3),
            (192, 4),
            (320, 1),
        ],
        1280,
        16,
    ),
    (
        Variant::B1,
        32,
        [
            (16, 2),
            (24, 3),
            (40, 3),
            (80, 4),
            (112, 4),
            (192, 5),
            (320, 2),
        ],
        1280,
        23,
    ),
    (
        Variant::B2,
        32,
        [
            (16, 2),
            (24, 3),
            (48, 3),
            (88, 4),
            (120, 4),
            (208, 5),
            (352, 2),
        ],
        1408,
        23,
    ),
    (
        Variant::B3,
        40,
        [
            (24, 2),
            (32, 3),
            (48, 3),
            (96, 5),
            (136, 5),
            (232, 6),
            (384, 2),
        ],
        1536,
        26,
    ),
    (
        Variant::B4,
        48,
        [
            (24, 2),
            (32, 4),
            (56, 4),
            (112, 6),
            (160, 6),
            (272, 8),
            (448, 2),
        ],
        1792,
        32,
    ),
    (
        Variant::B5,
        48,
        [
            (24, 3),
            (40, 5),
            (64, 5),
            (128, 7),
            (176, 7),
            (304, 9),
            (512, 3),
        ],
        2048,
        39,
    ),
    (
        Variant::B6,
        56,
        [
            (32, 3),
            (40, 6),
            (72, 6),
            (144, 8),
            (200, 8),
            (344, 11),
            (576, 3),
        ],
        2304,
        45,
    ),
    (
        Variant::B7,
        64,
        [
            (32, 4),
            (48, 7),
            (80, 7),
            (160, 10),
            (224, 10),
            (384, 13),
            (640, 4),
        ],
        2560,
        55,
    ),
];

/// Reference §2.3: spatial size after the stem and after each MBConv stage.
const SPATIAL: [(Variant, [usize; 8]); 8] = [
    (Variant::B0, [112, 112, 56, 28, 14, 14, 7, 7]),
    (Variant::B1, [120, 120, 60, 30, 15, 15, 8, 8]),
    (Variant::B2, [130, 130, 65, 33, 17, 17, 9, 9]),
    (Variant::B3, [150, 150, 75, 38, 19, 19, 10, 10]),
    (Variant::B4, [190, 190, 95, 48, 24, 24, 12, 12]),
    (Variant::B5, [228, 228, 114, 57, 29, 29, 15, 15]),
    (Variant::B6, [264, 264, 132, 66, 33, 33, 17, 17]),
    (Variant::B7, [300, 300, 150, 75, 38, 38, 19, 19]),
];

#[test]
fn scaled_stage_table_matches_reference() {
    for (variant, stem, stages, head, blocks) in SCALED {
        let spec = ModelSpec::variant(variant);
        assert_eq!(spec.stem_out(), stem, "{variant} stem");
        let got: Vec<(usize, usize)> = spec
            .stages()
            .iter()
            .map(|s| (s.out_channels, s.repeats))
            .collect();
        assert_eq!(got, stages, "{variant} stages");
        assert_eq!(spec.head_out(), head, "{variant} head");
        assert_eq!(spec.blocks().len(), blocks, "{variant} blocks");
    }
}

#[test]
fn spatial_sizes_match_reference_in_every_padding_style() {
    for scheme in [Scheme::TfOfficial, Scheme::Torchvision] {
        for (variant, sizes) in SPATIAL {
            let spec = ModelSpec::variant(variant);
            let graph = build_graph(&spec.architecture(), &scheme.semantics(spec.variant)).unwrap();
            let shapes = graph.infer_shapes(1, None).unwrap();
            let stages = structure::stages(&graph, Some(&shapes));
            let got: Vec<usize> = stages[..8]
                .iter()
                .map(|s| s.output_resolution.unwrap()[0])
                .collect();
            assert_eq!(got, sizes, "{variant} with {scheme}");
            assert_eq!(
                stages[8].input_resolution.unwrap()[0],
                sizes[7],
                "{variant} head input"
            );
        }
    }
}

#[test]
fn b0_has_nine_residual_blocks_and_se_from_block_input() {
    let spec = ModelSpec::variant(Variant::B0);
    let blocks = spec.blocks();
    assert_eq!(blocks.iter().filter(|b| b.residual).count(), 9);
    // Block 2a: 16 → expand 96 → SE 96 → 4 → 96 (SE width from the block input).
    let b2a = blocks
        .iter()
        .find(|b| b.stage == 3 && b.index == 0)
        .unwrap();
    assert_eq!(
        (b2a.in_channels, b2a.expanded_channels, b2a.se_channels),
        (16, 96, Some(4))
    );
    // The graph has what the spec says.
    let graph = build_graph(
        &spec.architecture(),
        &Scheme::TfOfficial.semantics(spec.variant),
    )
    .unwrap();
    let built = structure::blocks(&graph, None);
    assert_eq!(built.len(), 16);
    assert_eq!(built.iter().filter(|b| b.residual).count(), 9);
    let b2a = &built[1];
    assert_eq!(
        (b2a.input_channels, b2a.expanded_channels, b2a.se_channels),
        (16, 96, Some(4))
    );
    assert!(built.iter().all(|b| b.has_expand == (b.stage != 2)));
}

#[test]
fn residual_only_where_stride_one_and_channels_kept() {
    for variant in Variant::ALL {
        for block in ModelSpec::variant(variant).blocks() {
            assert_eq!(
                block.residual,
                block.stride == 1 && block.in_channels == block.out_channels,
                "{variant} block {}",
                block.global_index
            );
        }
    }
}

#[test]
fn drop_connect_schedule_is_linear_over_global_block_index() {
    let spec = ModelSpec::variant(Variant::B0);
    let blocks = spec.blocks();
    assert_eq!(blocks[0].drop_connect_rate, 0.0);
    assert!((blocks[15].drop_connect_rate - 0.1875).abs() < 1e-12);
    let graph = build_graph(
        &spec.architecture(),
        &Scheme::TfOfficial.semantics(spec.variant),
    )
    .unwrap();
    let rates: Vec<f64> = structure::blocks(&graph, None)
        .iter()
        .filter_map(|b| b.drop_connect_rate)
        .collect();
    // Only residual blocks carry a drop-connect node; the last one is block 15 of 16 (7b),
    // since 8a (192 → 320) has no shortcut.
    assert_eq!(rates.len(), 9);
    assert!((rates.last().unwrap() - 0.2 * 14.0 / 16.0).abs() < 1e-12);
}

#[test]
fn b8_and_l2_scale_like_the_others() {
    let b8 = ModelSpec::variant(Variant::B8);
    assert_eq!(b8.stem_out(), 72);
    assert_eq!(b8.head_out(), 2816);
    let l2 = ModelSpec::variant(Variant::L2);
    assert_eq!(l2.stem_out(), 136);
    assert_eq!(l2.head_out(), 5504);
    let repeats: Vec<usize> = l2.stages().iter().map(|s| s.repeats).collect();
    assert_eq!(repeats, vec![6, 11, 11, 16, 16, 22, 6]);
}

#[test]
fn half_width_half_depth_by_hand() {
    // round_filters(c, 0.5): 32→16, 16→8, 24→16 (12 → int(16)//8*8 = 16), 40→24 (20 → 24),
    // 80→40, 112→56, 192→96, 320→160, 1280→640; round_repeats(r, 0.5) = ceil(r/2).
    let spec = ModelSpec::custom(0.5, 0.5, 224).unwrap();
    assert_eq!(spec.variant, None);
    assert_eq!(spec.stem_out(), 16);
    let got: Vec<(usize, usize, usize)> = spec
        .stages()
        .iter()
        .map(|s| (s.in_channels, s.out_channels, s.repeats))
        .collect();
    assert_eq!(
        got,
        vec![
            (16, 8, 1),
            (8, 16, 1),
            (16, 24, 1),
            (24, 40, 2),
            (40, 56, 2),
            (56, 96, 2),
            (96, 160, 1)
        ]
    );
    assert_eq!(spec.head_out(), 640);
    // SE widths from block inputs: 16·0.25 = 4, 8·0.25 = 2, …
    let se: Vec<usize> = spec.blocks().iter().filter_map(|b| b.se_channels).collect();
    assert_eq!(se, vec![4, 2, 4, 6, 10, 10, 14, 14, 24, 24]);
}

#[test]
fn keras_scheme_carries_preprocessing_and_softmax() {
    let spec = ModelSpec::variant(Variant::B0);
    let graph = build_graph(&spec.architecture(), &Scheme::Keras.semantics(spec.variant)).unwrap();
    let kinds: Vec<&str> = graph.nodes().take(4).map(|(_, n)| n.op.kind()).collect();
    assert_eq!(kinds, ["Input", "Rescale", "Normalize", "Rescale"]);
    let last = graph.node(graph.outputs()[0]);
    assert_eq!(last.op.kind(), "Softmax");
    assert!(graph.meta.input_normalization.is_none());
    let tv = build_graph(
        &spec.architecture(),
        &Scheme::Torchvision.semantics(spec.variant),
    )
    .unwrap();
    assert_eq!(tv.node(tv.outputs()[0]).op.kind(), "Dense");
    assert!(tv.meta.input_normalization.is_some());
}
