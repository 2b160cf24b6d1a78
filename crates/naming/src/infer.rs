//! The architecture a set of named tensors describes: block kinds (a depthwise conv makes an
//! MBConv, its absence a Fused-MBConv), channels, kernels and SE widths from the shapes, stages
//! from the names (or, for global block indices, from where kind, channels, kernel or expansion
//! change), strides from the stage pattern of the family whose stage kinds the blocks have.

use std::collections::BTreeMap;

use effnet_ir::{Activation, BlockKind, Tensor};
use effnet_spec::{Architecture, Base, BlockSpec};

use crate::key::{BlockRef, Layer, Param, ParsedKey, Scope};
use crate::{Assumption, NamingError};

/// An architecture inferred from tensors, with where each named block landed.
#[derive(Clone, Debug)]
pub struct Inferred {
    /// The network.
    pub architecture: Architecture,
    /// Each block as the scheme named it → (paper stage, index within the stage).
    pub positions: BTreeMap<BlockRef, (u8, u16)>,
    /// What had to be assumed.
    pub assumptions: Vec<Assumption>,
}

/// Weight shapes of one block's layers.
#[derive(Default)]
struct BlockWeights<'a> {
    expand: Option<&'a Tensor>,
    dw: Option<&'a Tensor>,
    se_reduce: Option<&'a Tensor>,
    project: Option<&'a Tensor>,
}

fn shape_err(name: &str, expected: &str, t: &Tensor) -> NamingError {
    NamingError::Inconsistent {
        tensor: name.to_owned(),
        message: format!("expected {expected}, found shape {:?}", t.shape()),
    }
}

fn conv4(name: &str, t: &Tensor) -> Result<[usize; 4], NamingError> {
    <[usize; 4]>::try_from(t.shape()).map_err(|_| shape_err(name, "a 4-d conv weight", t))
}

/// The channel and kernel facts of a block that decide where stages begin.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockShape {
    pub kind: BlockKind,
    pub in_channels: usize,
    pub mid: usize,
    pub out: usize,
    pub kernel: usize,
    pub has_expand: bool,
}

/// Whether `next` repeats `prev`'s stage: same output channels taken from themselves, same
/// kernel, same expansion ratio. (A stage's first block changes channels, kernel or expansion
/// in every EfficientNet; the rule can only miss a boundary where none of them changes.)
pub(crate) fn continues_stage(prev: &BlockShape, next: &BlockShape) -> bool {
    next.kind == prev.kind
        && next.in_channels == next.out
        && next.out == prev.out
        && next.kernel == prev.kernel
        && next.has_expand == prev.has_expand
        && next.mid * prev.in_channels.max(1) == prev.mid * next.in_channels.max(1)
}

/// The most channels a layer may have (EfficientNet-L2's widest has 8,256).
pub const MAX_CHANNELS: usize = 1 << 16;
/// The largest kernel side (EfficientNets use 3 and 5).
pub const MAX_KERNEL: usize = 63;
/// The most classes a classifier may have.
pub const MAX_CLASSES: usize = 1 << 20;

/// Dimensions as they enter from a file: none may be 0 (a layer without channels, a 0×0
/// kernel: the graph could not be built) or absurd (beyond [`MAX_CHANNELS`], [`MAX_KERNEL`],
/// [`MAX_CLASSES`]). The error names the tensor (escaped: names come from the file).
fn check_dims(key: &ParsedKey, name: &str, t: &Tensor) -> Result<(), NamingError> {
    let shape = t.shape();
    let refuse = |message: String| {
        Err(NamingError::Inconsistent {
            tensor: effnet_io::escape(name).into_owned(),
            message: format!("{message} (shape {shape:?})"),
        })
    };
    if let Some(axis) = shape.iter().position(|&d| d == 0) {
        return refuse(format!(
            "dimension {axis} is 0: every layer has at least one channel and a kernel of at least 1×1"
        ));
    }
    match (key.layer, shape) {
        (Layer::Classifier, [classes, features])
            if *classes > MAX_CLASSES || *features > MAX_CHANNELS =>
        {
            refuse(format!(
                "more than {MAX_CLASSES} classes or {MAX_CHANNELS} features"
            ))
        }
        (_, [out, inp, _, _]) if *out > MAX_CHANNELS || *inp > MAX_CHANNELS => {
            refuse(format!("more than {MAX_CHANNELS} channels"))
        }
        (_, [_, _, kh, kw]) if *kh > MAX_KERNEL || *kw > MAX_KERNEL => {
            refuse(format!("a kernel wider than {MAX_KERNEL}"))
        }
        (_, dims) if dims.iter().any(|&d| d > MAX_CLASSES) => {
            refuse(format!("a dimension beyond {MAX_CLASSES}"))
        }
        _ => Ok(()),
    }
}

/// Infers the architecture from parsed `(key, name, tensor)` triples. Every tensor's
/// dimensions are validated first ([`check_dims`]).
pub fn infer(keys: &[(ParsedKey, &str, &Tensor)]) -> Result<Inferred, NamingError> {
    for (key, name, t) in keys {
        check_dims(key, name, t)?;
    }
    let weight = |scope: Scope, layer: Layer| {
        keys.iter()
            .find(|(k, _, _)| k.scope == scope && k.layer == layer && k.param == Param::Weight)
            .map(|(_, n, t)| (*n, *t))
    };
    let missing = |what: &str| NamingError::Missing(what.to_owned());

    let (stem_name, stem) =
        weight(Scope::Stem, Layer::StemConv).ok_or_else(|| missing("stem convolution"))?;
    let [stem_channels, stem_in, stem_kernel, stem_kw] = conv4(stem_name, stem)?;
    if stem_in != 3 || stem_kernel != stem_kw {
        return Err(shape_err(
            stem_name,
            "3 input channels and a square kernel",
            stem,
        ));
    }

    let mut blocks: BTreeMap<BlockRef, BlockWeights> = BTreeMap::new();
    for (k, _, t) in keys {
        if let (Scope::Block(b), Param::Weight) = (k.scope, k.param) {
            let entry = blocks.entry(b).or_default();
            match k.layer {
                Layer::ExpandConv => entry.expand = Some(t),
                Layer::DwConv => entry.dw = Some(t),
                Layer::SeReduce => entry.se_reduce = Some(t),
                Layer::ProjectConv => entry.project = Some(t),
                _ => {}
            }
        }
    }

    struct Raw {
        block: BlockRef,
        kind: BlockKind,
        in_channels: usize,
        mid: usize,
        out: usize,
        kernel: usize,
        se: Option<usize>,
        has_expand: bool,
    }
    impl Raw {
        fn shape(&self) -> BlockShape {
            BlockShape {
                kind: self.kind,
                in_channels: self.in_channels,
                mid: self.mid,
                out: self.out,
                kernel: self.kernel,
                has_expand: self.has_expand,
            }
        }
    }
    let mut raws = Vec::with_capacity(blocks.len());
    for (block, w) in &blocks {
        let label = match block.stage {
            Some(s) => format!("stage {s} block {}", block.index + 1),
            None => format!("block {}", block.index),
        };
        let Some(project) = w.project else {
            return Err(missing(&format!("projection convolution in {label}")));
        };
        let [out, project_in, pk, pkw] = conv4(&label, project)?;
        // An MBConv: the depthwise conv sets the kernel; a Fused-MBConv: its first conv does.
        let (kind, mid, kernel) = match w.dw {
            Some(dw) => {
                let [mid, one, kh, kw] = conv4(&label, dw)?;
                if one != 1 || kh != kw {
                    return Err(shape_err(
                        &label,
                        "a square depthwise kernel [C, 1, k, k]",
                        dw,
                    ));
                }
                (BlockKind::MBConv, mid, kh)
            }
            None => match w.expand {
                Some(e) => {
                    let [mid, _, kh, kw] = conv4(&label, e)?;
                    if kh != kw {
                        return Err(shape_err(&label, "a square expansion kernel", e));
                    }
                    (BlockKind::FusedMBConv, mid, kh)
                }
                None if pk == pkw => (BlockKind::FusedMBConv, project_in, pk),
                None => return Err(shape_err(&label, "a square kernel", project)),
            },
        };
        if project_in != mid {
            return Err(shape_err(
                &label,
                &format!("a projection from {mid} channels"),
                project,
            ));
        }
        let in_channels = match w.expand {
            Some(e) => {
                let [e_out, e_in, _, _] = conv4(&label, e)?;
                if e_out != mid {
                    return Err(shape_err(
                        &label,
                        &format!("an expansion to {mid} channels"),
                        e,
                    ));
                }
                e_in
            }
            None => mid,
        };
        let se = match w.se_reduce {
            Some(r) => Some(conv4(&label, r)?[0]),
            None => None,
        };
        raws.push(Raw {
            block: *block,
            kind,
            in_channels,
            mid,
            out,
            kernel,
            se,
            has_expand: w.expand.is_some(),
        });
    }
    if raws.is_empty() {
        return Err(missing("MBConv blocks"));
    }

    // Stage of every block: from the name, or where the block pattern changes.
    let mut assumptions = Vec::new();
    let mut stage_of: Vec<u8> = Vec::with_capacity(raws.len());
    if raws.iter().all(|r| r.block.stage.is_some()) {
        stage_of.extend(raws.iter().map(|r| r.block.stage.expect("checked")));
    } else {
        let mut stage = 1u8;
        for (i, r) in raws.iter().enumerate() {
            let continues = i > 0 && continues_stage(&raws[i - 1].shape(), &r.shape());
            if !continues {
                stage = stage.saturating_add(1);
            }
            stage_of.push(stage);
        }
        assumptions.push(Assumption::StagesFromShapes);
    }
    if let Some(&bad) = stage_of.iter().find(|&&s| s < 2) {
        return Err(NamingError::Inconsistent {
            tensor: format!("stage {bad} blocks"),
            message: "blocks start at paper stage 2 (stage 1 is the stem)".into(),
        });
    }
    // The stage kinds in order; the base networks whose stages have them give the strides.
    let mut stage_kinds: Vec<(u8, BlockKind)> = raws
        .iter()
        .zip(&stage_of)
        .map(|(r, &s)| (s, r.kind))
        .collect();
    stage_kinds.dedup_by_key(|(s, _)| *s);
    let pattern = Base::ALL.into_iter().find(|base| {
        base.stages.len() == stage_kinds.len()
            && stage_kinds
                .iter()
                .zip(base.stages)
                .enumerate()
                .all(|(i, ((s, kind), row))| usize::from(*s) == i + 2 && *kind == row.kind)
    });
    let first_stage = *stage_of.first().expect("non-empty");
    let last_stage = *stage_of.last().expect("non-empty");
    assumptions.push(match pattern {
        Some(base) => Assumption::StridesFromPattern(base.family),
        None => Assumption::StridesUnknown {
            first: first_stage,
            last: last_stage,
        },
    });

    let total = raws.len();
    let mut positions = BTreeMap::new();
    let mut specs = Vec::with_capacity(total);
    let mut index_in_stage = 0u16;
    let mut previous_out = stem_channels;
    for (g, (r, &stage)) in raws.iter().zip(&stage_of).enumerate() {
        if g > 0 && stage_of[g - 1] != stage {
            index_in_stage = 0;
        }
        if r.in_channels != previous_out {
            return Err(NamingError::Inconsistent {
                tensor: format!("stage {stage} block {}", index_in_stage + 1),
                message: format!(
                    "takes {} channels, the layer before gives {previous_out}",
                    r.in_channels
                ),
            });
        }
        let stride = match pattern {
            Some(base) if index_in_stage == 0 => base.stages[usize::from(stage - 2)].stride,
            _ => 1,
        };
        positions.insert(r.block, (stage, index_in_stage));
        specs.push(BlockSpec {
            kind: r.kind,
            stage,
            index: index_in_stage,
            global_index: g,
            in_channels: r.in_channels,
            expanded_channels: r.mid,
            out_channels: r.out,
            has_expand: r.has_expand,
            kernel: r.kernel,
            stride,
            se_channels: r.se,
            residual: stride == 1 && r.in_channels == r.out,
            drop_connect_rate: 0.2 * g as f64 / total as f64,
        });
        previous_out = r.out;
        index_in_stage += 1;
    }

    let (head_name, head) =
        weight(Scope::Head, Layer::HeadConv).ok_or_else(|| missing("head convolution"))?;
    let [head_channels, head_in, _, _] = conv4(head_name, head)?;
    if head_in != previous_out {
        return Err(shape_err(
            head_name,
            &format!("a head conv from {previous_out} channels"),
            head,
        ));
    }
    let num_classes = match weight(Scope::Classifier, Layer::Classifier) {
        Some((name, fc)) => match fc.shape() {
            [classes, features] if *features == head_channels => Some(*classes),
            _ => {
                return Err(shape_err(
                    name,
                    &format!("a [classes, {head_channels}] weight"),
                    fc,
                ));
            }
        },
        None => None,
    };
    Ok(Inferred {
        architecture: Architecture {
            stem_channels,
            stem_kernel,
            blocks: specs,
            head_channels,
            num_classes,
            resolution: None,
            dropout: 0.2,
            // Tensors do not record it: the family's, once identified.
            activation: Activation::Swish,
            family: None,
        },
        positions,
        assumptions,
    })
}

#[cfg(test)]
mod dims_tests {
    use super::*;
    use effnet_ir::DType;

    fn key(scope: Scope, layer: Layer) -> ParsedKey {
        ParsedKey {
            scope,
            layer,
            param: Param::Weight,
        }
    }

    #[test]
    fn zero_and_absurd_dimensions_are_refused_naming_the_tensor() {
        let stem = key(Scope::Stem, Layer::StemConv);
        for (shape, what) in [
            (vec![0, 3, 3, 3], "dimension 0 is 0"),
            (vec![8, 3, 0, 0], "dimension 2 is 0"),
            (vec![MAX_CHANNELS + 1, 3, 3, 3], "channels"),
            (vec![8, 3, MAX_KERNEL + 1, 3], "kernel"),
        ] {
            let t = Tensor::shape_only(DType::F32, shape).unwrap();
            let err = infer(&[(stem, "conv\nstem", &t)]).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
            assert!(err.contains("conv\\nstem"), "{err}");
        }
        let fc = Tensor::shape_only(DType::F32, vec![MAX_CLASSES + 1, 8]).unwrap();
        let err = check_dims(&key(Scope::Classifier, Layer::Classifier), "fc", &fc).unwrap_err();
        assert!(err.to_string().contains("classes"), "{err}");
        let fine = Tensor::shape_only(DType::F32, vec![21_843, 1280]).unwrap();
        assert!(check_dims(&key(Scope::Classifier, Layer::Classifier), "fc", &fine).is_ok());
    }
}
