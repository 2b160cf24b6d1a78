//! The PyTorch naming schemes, both directions (docs/naming.md).
//!
//! | scheme | stem | block layer | head | classifier |
//! |---|---|---|---|---|
//! | torchvision | `features.0.{0,1}` | `features.S.B.block.I.{0,1}` (conv, BN) and `block.I.fc1/fc2` (SE); `I` counts the block's modules, so blocks without expansion start at the depthwise conv | `features.H.{0,1}` | `classifier.1` |
//! | timm, timm-tf | `conv_stem`, `bn1` | `blocks.S.B.{conv_pw,bn1,conv_dw,bn2,se.conv_reduce,se.conv_expand,conv_pwl,bn3}`; blocks without expansion (`DepthwiseSeparableConv`) are `conv_dw,bn1,se.*,conv_pw,bn2` | `conv_head`, `bn2` | `classifier` |
//! | lukemelas | `_conv_stem`, `_bn0` | `_blocks.G.{_expand_conv,_bn0,_depthwise_conv,_bn1,_se_reduce,_se_expand,_project_conv,_bn2}` (G counts all blocks) | `_conv_head`, `_bn1` | `_fc` |
//!
//! `S` is the paper stage − 1 in torchvision (features.1 is paper stage 2) and − 2 in timm.
//!
//! Fused-MBConv blocks (EfficientNetV2): torchvision `block.0` (the k×k expansion, or the only
//! conv without expansion) and `block.1` (the projection); timm `conv_exp,bn1,conv_pwl,bn2`
//! (`EdgeResidual`) or `conv,bn1` (`ConvBnAct`, without expansion); Keras
//! `blockNx_expand_conv`/`_project_conv` (and `_dwconv2` for V2's MBConv depthwise).
//!
//! The TensorFlow schemes are read only: `keras` (`block2a_expand_conv/kernel`) and
//! `tf-official` (`efficientnet-b0/blocks_1/conv2d/kernel`, the tensorflow/tpu release).

use std::collections::{BTreeMap, BTreeSet};

use effnet_ir::BlockKind;
use effnet_spec::Scheme;

use crate::key::{BlockLayout, BlockRef, Layer, Param, ParsedKey, Scope};

/// Parses every name in `names` under `scheme`; `None` where a name is not part of the scheme.
pub fn parse_all(scheme: Scheme, names: &[&str]) -> Vec<Option<ParsedKey>> {
    match scheme {
        Scheme::Torchvision => torchvision_parse(names),
        Scheme::Timm | Scheme::TimmTf => timm_parse(names),
        Scheme::Lukemelas => names.iter().map(|n| lukemelas_parse(n)).collect(),
        Scheme::Keras => names.iter().map(|n| keras_parse(n)).collect(),
        Scheme::TfOfficial => tf_official_parse(names),
    }
}

/// The name `scheme` gives `key`. `global_index` is the block's index over all blocks,
/// `layout` its shape, `head_stage` the paper stage of the last block (torchvision numbers its
/// head after it). `None` for layers the scheme cannot express.
pub fn format_key(
    scheme: Scheme,
    key: &ParsedKey,
    global_index: usize,
    layout: BlockLayout,
    head_stage: u8,
) -> Option<String> {
    let param = key.param.torch_name();
    let prefix = match scheme {
        Scheme::Torchvision => torchvision_prefix(key, layout, head_stage)?,
        Scheme::Timm | Scheme::TimmTf => timm_prefix(key, layout)?,
        Scheme::Lukemelas => lukemelas_prefix(key, layout, global_index)?,
        Scheme::Keras | Scheme::TfOfficial => return None,
    };
    Some(format!("{prefix}.{param}"))
}

fn split_param(name: &str) -> Option<(&str, &str)> {
    name.rsplit_once('.')
}

fn key(scope: Scope, layer: Layer, param: &str) -> Option<ParsedKey> {
    Some(ParsedKey {
        scope,
        layer,
        param: Param::from_torch(layer, param)?,
    })
}

// ---------------------------------------------------------------------------------------------
// torchvision

fn torchvision_parse(names: &[&str]) -> Vec<Option<ParsedKey>> {
    // First pass: which module indices each block has, and which of them are SE.
    let mut modules: BTreeMap<(usize, usize), BTreeMap<usize, bool>> = BTreeMap::new();
    for name in names {
        let parts: Vec<&str> = name.split('.').collect();
        if let ["features", s, b, "block", i, sub, _] = parts.as_slice() {
            if let (Ok(s), Ok(b), Ok(i)) = (s.parse(), b.parse(), i.parse()) {
                let is_se = matches!(*sub, "fc1" | "fc2");
                modules.entry((s, b)).or_default().insert(i, is_se);
            }
        }
    }
    let head_index = names
        .iter()
        .filter_map(|n| {
            let parts: Vec<&str> = n.split('.').collect();
            match parts.as_slice() {
                ["features", h, "0" | "1", _] => h.parse::<usize>().ok().filter(|&h| h > 0),
                _ => None,
            }
        })
        .max();
    names
        .iter()
        .map(|name| {
            let parts: Vec<&str> = name.split('.').collect();
            match parts.as_slice() {
                ["features", "0", "0", p] => key(Scope::Stem, Layer::StemConv, p),
                ["features", "0", "1", p] => key(Scope::Stem, Layer::StemBn, p),
                ["features", h, sub @ ("0" | "1"), p] if h.parse::<usize>().ok() == head_index => {
                    let layer = if *sub == "0" {
                        Layer::HeadConv
                    } else {
                        Layer::HeadBn
                    };
                    key(Scope::Head, layer, p)
                }
                ["classifier", "1", p] => key(Scope::Classifier, Layer::Classifier, p),
                ["features", s, b, "block", i, sub, p] => {
                    let (s, b, i): (usize, usize, usize) =
                        (s.parse().ok()?, b.parse().ok()?, i.parse().ok()?);
                    // features.0 is the stem: blocks start at features.1 (paper stage 2).
                    if s == 0 {
                        return None;
                    }
                    let block = modules.get(&(s, b))?;
                    let convs: Vec<usize> = block
                        .iter()
                        .filter(|(_, se)| !**se)
                        .map(|(i, _)| *i)
                        .collect();
                    let has_se = block.values().any(|se| *se);
                    let position = convs.iter().position(|&c| c == i);
                    // Three convs: expand, depthwise, project (MBConv). Two around an SE:
                    // depthwise, project (MBConv without expansion). Two without SE: a
                    // Fused-MBConv's k×k expansion and projection. One: a Fused-MBConv without
                    // expansion. (torchvision builds no MBConv without SE.)
                    let conv_bn = match (convs.len(), has_se, position) {
                        (3, _, Some(0)) | (2, false, Some(0)) => {
                            Some((Layer::ExpandConv, Layer::ExpandBn))
                        }
                        (3, _, Some(1)) | (2, true, Some(0)) => Some((Layer::DwConv, Layer::DwBn)),
                        (3, _, Some(2)) | (2, _, Some(1)) | (1, false, Some(0)) => {
                            Some((Layer::ProjectConv, Layer::ProjectBn))
                        }
                        _ => None,
                    };
                    let layer = match (*sub, conv_bn) {
                        ("0", Some((conv, _))) => conv,
                        ("1", Some((_, bn))) => bn,
                        ("fc1", _) => Layer::SeReduce,
                        ("fc2", _) => Layer::SeExpand,
                        _ => return None,
                    };
                    let scope = Scope::Block(BlockRef {
                        stage: Some(u8::try_from(s + 1).ok()?),
                        index: b,
                    });
                    key(scope, layer, p)
                }
                _ => None,
            }
        })
        .collect()
}

fn torchvision_prefix(key: &ParsedKey, layout: BlockLayout, head_stage: u8) -> Option<String> {
    Some(match (key.scope, key.layer) {
        (Scope::Stem, Layer::StemConv) => "features.0.0".into(),
        (Scope::Stem, Layer::StemBn) => "features.0.1".into(),
        (Scope::Head, Layer::HeadConv) => format!("features.{head_stage}.0"),
        (Scope::Head, Layer::HeadBn) => format!("features.{head_stage}.1"),
        (Scope::Classifier, Layer::Classifier) => "classifier.1".into(),
        (
            Scope::Block(BlockRef {
                stage: Some(s),
                index,
            }),
            layer,
        ) => {
            let e = usize::from(layout.has_expand);
            let se = usize::from(layout.has_se);
            let (module, sub) = match (layout.kind, layer) {
                // Read back as a Fused-MBConv: torchvision has no such block.
                (BlockKind::MBConv, _) if !layout.has_expand && !layout.has_se => return None,
                (BlockKind::FusedMBConv, _) if layout.has_se => return None,
                (BlockKind::FusedMBConv, Layer::ExpandConv) => (0, "0"),
                (BlockKind::FusedMBConv, Layer::ExpandBn) => (0, "1"),
                (BlockKind::FusedMBConv, Layer::ProjectConv) => (e, "0"),
                (BlockKind::FusedMBConv, Layer::ProjectBn) => (e, "1"),
                (BlockKind::FusedMBConv, _) => return None,
                (BlockKind::MBConv, layer) => match layer {
                    Layer::ExpandConv => (0, "0"),
                    Layer::ExpandBn => (0, "1"),
                    Layer::DwConv => (e, "0"),
                    Layer::DwBn => (e, "1"),
                    Layer::SeReduce => (e + 1, "fc1"),
                    Layer::SeExpand => (e + 1, "fc2"),
                    Layer::ProjectConv => (e + 1 + se, "0"),
                    Layer::ProjectBn => (e + 1 + se, "1"),
                    _ => return None,
                },
            };
            format!("features.{}.{index}.block.{module}.{sub}", s - 1)
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// timm / timm-tf

/// timm's block classes, told apart by their module names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TimmBlock {
    /// `InvertedResidual`: `conv_pw`, `conv_dw`, `conv_pwl`.
    Inverted,
    /// `DepthwiseSeparableConv`: `conv_dw`, `conv_pw`.
    Separable,
    /// `EdgeResidual` (Fused-MBConv): `conv_exp`, `conv_pwl`.
    Edge,
    /// `ConvBnAct` (Fused-MBConv without expansion): `conv`.
    ConvBnAct,
}

fn timm_parse(names: &[&str]) -> Vec<Option<ParsedKey>> {
    let mut kinds: BTreeMap<(usize, usize), TimmBlock> = BTreeMap::new();
    for n in names {
        let parts: Vec<&str> = n.split('.').collect();
        let ["blocks", s, b, module, _] = parts.as_slice() else {
            continue;
        };
        let (Ok(s), Ok(b)) = (s.parse(), b.parse()) else {
            continue;
        };
        let kind = match *module {
            "conv_exp" => TimmBlock::Edge,
            "conv" => TimmBlock::ConvBnAct,
            "conv_pwl" => TimmBlock::Inverted,
            _ => TimmBlock::Separable,
        };
        let entry = kinds.entry((s, b)).or_insert(kind);
        if *entry == TimmBlock::Separable
            || (*entry == TimmBlock::Inverted && kind == TimmBlock::Edge)
        {
            *entry = kind;
        }
    }
    names
        .iter()
        .map(|name| {
            let (module, p) = split_param(name)?;
            let parts: Vec<&str> = module.split('.').collect();
            match parts.as_slice() {
                ["conv_stem"] => key(Scope::Stem, Layer::StemConv, p),
                ["bn1"] => key(Scope::Stem, Layer::StemBn, p),
                ["conv_head"] => key(Scope::Head, Layer::HeadConv, p),
                ["bn2"] => key(Scope::Head, Layer::HeadBn, p),
                ["classifier"] => key(Scope::Classifier, Layer::Classifier, p),
                ["blocks", s, b, rest @ ..] => {
                    let (s, b): (usize, usize) = (s.parse().ok()?, b.parse().ok()?);
                    use TimmBlock::{ConvBnAct, Edge, Inverted, Separable};
                    let kind = *kinds.get(&(s, b))?;
                    let layer = match (rest, kind) {
                        (["se", "conv_reduce"], _) => Layer::SeReduce,
                        (["se", "conv_expand"], _) => Layer::SeExpand,
                        (["conv_pw"], Inverted) | (["conv_exp"], Edge) => Layer::ExpandConv,
                        (["bn1"], Inverted | Edge) => Layer::ExpandBn,
                        (["conv_dw"], Inverted | Separable) => Layer::DwConv,
                        (["bn2"], Inverted) | (["bn1"], Separable) => Layer::DwBn,
                        (["conv_pwl"], Inverted | Edge)
                        | (["conv_pw"], Separable)
                        | (["conv"], ConvBnAct) => Layer::ProjectConv,
                        (["bn3"], Inverted)
                        | (["bn2"], Separable | Edge)
                        | (["bn1"], ConvBnAct) => Layer::ProjectBn,
                        _ => return None,
                    };
                    let scope = Scope::Block(BlockRef {
                        stage: Some(u8::try_from(s + 2).ok()?),
                        index: b,
                    });
                    key(scope, layer, p)
                }
                _ => None,
            }
        })
        .collect()
}

fn timm_prefix(key: &ParsedKey, layout: BlockLayout) -> Option<String> {
    Some(match (key.scope, key.layer) {
        (Scope::Stem, Layer::StemConv) => "conv_stem".into(),
        (Scope::Stem, Layer::StemBn) => "bn1".into(),
        (Scope::Head, Layer::HeadConv) => "conv_head".into(),
        (Scope::Head, Layer::HeadBn) => "bn2".into(),
        (Scope::Classifier, Layer::Classifier) => "classifier".into(),
        (
            Scope::Block(BlockRef {
                stage: Some(s),
                index,
            }),
            layer,
        ) => {
            let e = layout.has_expand;
            let module = match (layout.kind, layer, e) {
                (_, Layer::SeReduce, _) if layout.kind == BlockKind::MBConv || e => {
                    "se.conv_reduce"
                }
                (_, Layer::SeExpand, _) if layout.kind == BlockKind::MBConv || e => {
                    "se.conv_expand"
                }
                (BlockKind::MBConv, Layer::ExpandConv, true) => "conv_pw",
                (BlockKind::MBConv, Layer::ExpandBn, true) => "bn1",
                (BlockKind::MBConv, Layer::DwConv, _) => "conv_dw",
                (BlockKind::MBConv, Layer::DwBn, true) => "bn2",
                (BlockKind::MBConv, Layer::DwBn, false) => "bn1",
                (BlockKind::MBConv, Layer::ProjectConv, true) => "conv_pwl",
                (BlockKind::MBConv, Layer::ProjectConv, false) => "conv_pw",
                (BlockKind::MBConv, Layer::ProjectBn, true) => "bn3",
                (BlockKind::MBConv, Layer::ProjectBn, false) => "bn2",
                (BlockKind::FusedMBConv, Layer::ExpandConv, true) => "conv_exp",
                (BlockKind::FusedMBConv, Layer::ExpandBn, true) => "bn1",
                (BlockKind::FusedMBConv, Layer::ProjectConv, true) => "conv_pwl",
                (BlockKind::FusedMBConv, Layer::ProjectBn, true) => "bn2",
                (BlockKind::FusedMBConv, Layer::ProjectConv, false) => "conv",
                (BlockKind::FusedMBConv, Layer::ProjectBn, false) => "bn1",
                _ => return None,
            };
            format!("blocks.{}.{index}.{module}", s.checked_sub(2)?)
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// lukemelas (EfficientNet-PyTorch)

fn lukemelas_parse(name: &str) -> Option<ParsedKey> {
    let (module, p) = split_param(name)?;
    let parts: Vec<&str> = module.split('.').collect();
    match parts.as_slice() {
        ["_conv_stem"] => key(Scope::Stem, Layer::StemConv, p),
        ["_bn0"] => key(Scope::Stem, Layer::StemBn, p),
        ["_conv_head"] => key(Scope::Head, Layer::HeadConv, p),
        ["_bn1"] => key(Scope::Head, Layer::HeadBn, p),
        ["_fc"] => key(Scope::Classifier, Layer::Classifier, p),
        ["_blocks", g, module] => {
            let layer = match *module {
                "_expand_conv" => Layer::ExpandConv,
                "_bn0" => Layer::ExpandBn,
                "_depthwise_conv" => Layer::DwConv,
                "_bn1" => Layer::DwBn,
                "_se_reduce" => Layer::SeReduce,
                "_se_expand" => Layer::SeExpand,
                "_project_conv" => Layer::ProjectConv,
                "_bn2" => Layer::ProjectBn,
                _ => return None,
            };
            let scope = Scope::Block(BlockRef {
                stage: None,
                index: g.parse().ok()?,
            });
            key(scope, layer, p)
        }
        _ => None,
    }
}

fn lukemelas_prefix(key: &ParsedKey, layout: BlockLayout, global_index: usize) -> Option<String> {
    if layout.kind == BlockKind::FusedMBConv {
        return None;
    }
    Some(match (key.scope, key.layer) {
        (Scope::Stem, Layer::StemConv) => "_conv_stem".into(),
        (Scope::Stem, Layer::StemBn) => "_bn0".into(),
        (Scope::Head, Layer::HeadConv) => "_conv_head".into(),
        (Scope::Head, Layer::HeadBn) => "_bn1".into(),
        (Scope::Classifier, Layer::Classifier) => "_fc".into(),
        (Scope::Block(_), layer) => {
            let module = match layer {
                Layer::ExpandConv => "_expand_conv",
                Layer::ExpandBn => "_bn0",
                Layer::DwConv => "_depthwise_conv",
                Layer::DwBn => "_bn1",
                Layer::SeReduce => "_se_reduce",
                Layer::SeExpand => "_se_expand",
                Layer::ProjectConv => "_project_conv",
                Layer::ProjectBn => "_bn2",
                _ => return None,
            };
            format!("_blocks.{global_index}.{module}")
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// keras (keras.applications layer/variable names)

/// `stem_conv/kernel`, `block2a_dwconv/depthwise_kernel`, `top_bn/moving_variance`,
/// `predictions/bias`, `normalization/mean`. `blockNx` is paper stage N + 1, repeat `x`
/// (`a` = 0).
fn keras_parse(name: &str) -> Option<ParsedKey> {
    let (layer_name, variable) = name.split_once('/')?;
    let keras = |scope, layer: Layer| {
        Some(ParsedKey {
            scope,
            layer,
            param: Param::from_keras(layer, variable)?,
        })
    };
    match layer_name {
        "stem_conv" => return keras(Scope::Stem, Layer::StemConv),
        "stem_bn" => return keras(Scope::Stem, Layer::StemBn),
        "top_conv" => return keras(Scope::Head, Layer::HeadConv),
        "top_bn" => return keras(Scope::Head, Layer::HeadBn),
        "predictions" => return keras(Scope::Classifier, Layer::Classifier),
        "normalization" => return keras(Scope::Stem, Layer::Normalization),
        // Keras makes auto-generated names unique per session: `normalization_1`.
        n if n
            .strip_prefix("normalization_")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) =>
        {
            return keras(Scope::Stem, Layer::Normalization);
        }
        _ => {}
    }
    let rest = layer_name.strip_prefix("block")?;
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    // `block1a` is the first MBConv stage (paper stage 2); there is no block0.
    let stage: u8 = rest[..digits].parse().ok().filter(|&n| n >= 1)?;
    let mut chars = rest[digits..].chars();
    let letter = chars.next()?;
    let suffix = chars.as_str().strip_prefix('_')?;
    let index = (letter as u32).checked_sub('a' as u32)? as usize;
    let layer = match suffix {
        "expand_conv" => Layer::ExpandConv,
        "expand_bn" => Layer::ExpandBn,
        // `dwconv2` in keras.applications' EfficientNetV2.
        "dwconv" | "dwconv2" => Layer::DwConv,
        "bn" => Layer::DwBn,
        "se_reduce" => Layer::SeReduce,
        "se_expand" => Layer::SeExpand,
        "project_conv" => Layer::ProjectConv,
        "project_bn" => Layer::ProjectBn,
        _ => return None,
    };
    keras(
        Scope::Block(BlockRef {
            stage: Some(stage.checked_add(1)?),
            index,
        }),
        layer,
    )
}

// ---------------------------------------------------------------------------------------------
// tf-official (the tensorflow/tpu release checkpoints)

/// The BatchNorm layer names of the release: `tpu_batch_normalization` from TPU training,
/// `batch_normalization` from GPU/CPU training of the same code.
fn tf_official_bn(name: &str) -> Option<usize> {
    let rest = name
        .strip_prefix("tpu_batch_normalization")
        .or_else(|| name.strip_prefix("batch_normalization"))?;
    match rest {
        "" => Some(0),
        _ => rest.strip_prefix('_')?.parse().ok(),
    }
}

/// `<model>/stem/conv2d/kernel`, `<model>/blocks_G/{conv2d,conv2d_1,depthwise_conv2d,
/// tpu_batch_normalization[_1|_2],se/conv2d[_1]}/…`, `<model>/head/{conv2d,
/// tpu_batch_normalization,dense}/…`. Block indices are global. In a block with an expansion
/// `conv2d` is the expansion and `conv2d_1` the projection, and the BatchNorms count expand,
/// depthwise, project; without one, `conv2d` is the projection and they count depthwise,
/// project.
fn tf_official_parse(names: &[&str]) -> Vec<Option<ParsedKey>> {
    fn scoped(name: &str) -> Option<Vec<&str>> {
        let parts: Vec<&str> = name.split('/').collect();
        let at = parts
            .iter()
            .position(|p| matches!(*p, "stem" | "head") || p.starts_with("blocks_"))?;
        (at <= 1).then(|| parts[at..].to_vec())
    }
    let expanded: BTreeSet<&str> = names
        .iter()
        .filter_map(|n| match scoped(n)?.as_slice() {
            [block, "conv2d_1", _] => Some(*block),
            _ => None,
        })
        .collect();
    names
        .iter()
        .map(|name| {
            let parts = scoped(name)?;
            let keras = |scope, layer: Layer, variable: &str| {
                Some(ParsedKey {
                    scope,
                    layer,
                    param: Param::from_keras(layer, variable)?,
                })
            };
            match parts.as_slice() {
                ["stem", "conv2d", v] => keras(Scope::Stem, Layer::StemConv, v),
                ["stem", bn, v] if tf_official_bn(bn) == Some(0) => {
                    keras(Scope::Stem, Layer::StemBn, v)
                }
                ["head", "conv2d", v] => keras(Scope::Head, Layer::HeadConv, v),
                ["head", "dense", v] => keras(Scope::Classifier, Layer::Classifier, v),
                ["head", bn, v] if tf_official_bn(bn) == Some(0) => {
                    keras(Scope::Head, Layer::HeadBn, v)
                }
                [block, rest @ ..] => {
                    let index = block.strip_prefix("blocks_")?.parse().ok()?;
                    let e = expanded.contains(block);
                    let (layer, v) = match rest {
                        ["conv2d", v] if e => (Layer::ExpandConv, v),
                        ["conv2d", v] => (Layer::ProjectConv, v),
                        ["conv2d_1", v] => (Layer::ProjectConv, v),
                        ["depthwise_conv2d", v] => (Layer::DwConv, v),
                        ["se", "conv2d", v] => (Layer::SeReduce, v),
                        ["se", "conv2d_1", v] => (Layer::SeExpand, v),
                        [bn, v] => match (tf_official_bn(bn)?, e) {
                            (0, true) => (Layer::ExpandBn, v),
                            (0, false) | (1, true) => (Layer::DwBn, v),
                            (1, false) | (2, true) => (Layer::ProjectBn, v),
                            _ => return None,
                        },
                        _ => return None,
                    };
                    keras(Scope::Block(BlockRef { stage: None, index }), layer, v)
                }
                _ => None,
            }
        })
        .collect()
}
