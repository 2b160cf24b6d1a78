//! Both directions of every PyTorch scheme on full-size B0–B7: each slot gets a distinct name,
//! each name parses back to its slot, the counts are the published ones, and importing shape-only
//! tensors under those names identifies the variant with torchvision's parameter count.

use std::collections::HashSet;

use effnet_ir::{Checkpoint, DType, Tensor};
use effnet_naming::{BlockRef, Identity, Scope, detect, import, names_for, parse_all};
use effnet_spec::{ModelSpec, Scheme, Variant};

/// Reference §3: PyTorch state_dict entries (num_batches_tracked included).
const STATE_DICT_ENTRIES: [usize; 8] = [360, 508, 508, 574, 706, 854, 986, 1200];
/// Reference §2.5: torchvision `num_params`.
const PARAMS: [u64; 8] = [
    5_288_548, 7_794_184, 9_109_994, 12_233_232, 19_341_616, 30_389_784, 43_040_704, 66_347_960,
];

#[test]
fn every_scheme_names_every_tensor_once_and_parses_it_back() {
    for (i, variant) in Variant::ALL[..8].iter().enumerate() {
        let arch = ModelSpec::variant(*variant).architecture();
        for scheme in [Scheme::Torchvision, Scheme::Timm, Scheme::Lukemelas] {
            let named = names_for(scheme, &arch);
            assert_eq!(named.len(), STATE_DICT_ENTRIES[i], "{variant} {scheme}");
            let names: Vec<&str> = named
                .iter()
                .map(|(n, s)| {
                    n.as_deref()
                        .unwrap_or_else(|| panic!("{scheme}: no name for {s:?}"))
                })
                .collect();
            let distinct: HashSet<&&str> = names.iter().collect();
            assert_eq!(
                distinct.len(),
                names.len(),
                "{variant} {scheme}: duplicate names"
            );
            let parsed = parse_all(scheme, &names);
            for ((name, slot), key) in named.iter().zip(parsed) {
                let mut want = slot.key;
                if scheme == Scheme::Lukemelas {
                    if let Scope::Block(_) = want.scope {
                        want.scope = Scope::Block(BlockRef {
                            stage: None,
                            index: slot.global_index,
                        });
                    }
                }
                assert_eq!(key, Some(want), "{variant} {scheme}: {name:?}");
            }
            assert_eq!(
                detect(&names)[0],
                (scheme, names.len()),
                "{variant} {scheme}"
            );
        }
    }
}

#[test]
fn shape_only_full_size_files_identify_their_variant() {
    for (i, variant) in Variant::ALL[..8].iter().enumerate() {
        let arch = ModelSpec::variant(*variant).architecture();
        for scheme in [Scheme::Torchvision, Scheme::Timm, Scheme::Lukemelas] {
            let checkpoint = Checkpoint {
                tensors: names_for(scheme, &arch)
                    .into_iter()
                    .map(|(name, slot)| {
                        let dtype = if slot.shape.is_empty() {
                            DType::I64
                        } else {
                            DType::F32
                        };
                        (
                            name.unwrap(),
                            Tensor::shape_only(dtype, slot.shape).unwrap(),
                        )
                    })
                    .collect(),
                ..Checkpoint::default()
            };
            let imported = import(&checkpoint, scheme).unwrap();
            assert_eq!(imported.identity, Identity::Variant(*variant), "{scheme}");
            assert_eq!(
                imported.graph.param_counts().0,
                PARAMS[i],
                "{variant} {scheme}"
            );
            assert_eq!(
                imported.architecture.resolution,
                Some(variant.coefficients().resolution)
            );
            assert!(imported.report.unused.is_empty());
        }
    }
}

#[test]
fn torchvision_shifts_module_indices_in_blocks_without_expansion() {
    let arch = ModelSpec::variant(Variant::B0).architecture();
    let names: Vec<String> = names_for(Scheme::Torchvision, &arch)
        .into_iter()
        .filter_map(|(n, _)| n)
        .collect();
    // Reference §3: stage-1 blocks have no expand, so block.0 is the depthwise conv.
    assert!(names.contains(&"features.1.0.block.0.0.weight".to_owned()));
    assert!(names.contains(&"features.1.0.block.1.fc1.weight".to_owned()));
    assert!(names.contains(&"features.1.0.block.2.1.running_var".to_owned()));
    assert!(names.contains(&"features.2.0.block.3.0.weight".to_owned()));
    assert!(names.contains(&"features.8.0.weight".to_owned()));
    assert!(names.contains(&"classifier.1.bias".to_owned()));
    let timm: Vec<String> = names_for(Scheme::Timm, &arch)
        .into_iter()
        .filter_map(|(n, _)| n)
        .collect();
    // conv_pw is the projection in stage 0, the expansion later.
    assert!(timm.contains(&"blocks.0.0.conv_pw.weight".to_owned()));
    assert!(timm.contains(&"blocks.1.0.conv_pwl.weight".to_owned()));
    assert!(timm.contains(&"blocks.1.0.conv_pw.weight".to_owned()));
}

#[test]
fn a_block_named_in_the_stem_stage_is_not_a_block() {
    // `features.0.0.block.0.0.weight` would put a block in paper stage 1: not torchvision.
    let keys = parse_all(
        Scheme::Torchvision,
        &[
            "features.0.0.block.0.0.weight",
            "features.1.0.block.0.0.weight",
            "features.1.0.block.1.0.weight",
        ],
    );
    assert_eq!(keys[0], None);
    assert!(keys[1].is_some());
    let keras = parse_all(
        Scheme::Keras,
        &[
            "block0a_dwconv/depthwise_kernel",
            "block1a_dwconv/depthwise_kernel",
        ],
    );
    assert_eq!(keras[0], None);
    assert!(keras[1].is_some());
}
