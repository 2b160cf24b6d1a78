//! Every parameter tensor an architecture has, with its key and canonical shape: what a
//! scheme must name to write the model, and what tests use to check both directions.

use effnet_spec::Architecture;

use crate::key::{BlockLayout, BlockRef, Layer, Param, ParsedKey, Scope};
use crate::schemes::format_key;

/// One parameter tensor of an architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSlot {
    /// What it is.
    pub key: ParsedKey,
    /// Its block's index over all blocks (0 outside blocks).
    pub global_index: usize,
    /// Its block's layout (both false outside blocks).
    pub layout: BlockLayout,
    /// Its shape in the canonical (PyTorch) layout.
    pub shape: Vec<usize>,
}

const BN_PARAMS: [Param; 5] = [
    Param::Gamma,
    Param::Beta,
    Param::RunningMean,
    Param::RunningVar,
    Param::NumBatchesTracked,
];

/// Collects slots in state_dict order.
struct Slots(Vec<TensorSlot>);

impl Slots {
    fn add(&mut self, key: ParsedKey, global_index: usize, layout: BlockLayout, shape: Vec<usize>) {
        self.0.push(TensorSlot {
            key,
            global_index,
            layout,
            shape,
        });
    }

    fn param(
        &mut self,
        scope: Scope,
        layer: Layer,
        param: Param,
        at: (usize, BlockLayout),
        shape: Vec<usize>,
    ) {
        self.add(
            ParsedKey {
                scope,
                layer,
                param,
            },
            at.0,
            at.1,
            shape,
        );
    }

    /// A bias-free conv and its BatchNorm.
    fn conv_bn(
        &mut self,
        scope: Scope,
        (conv, bn): (Layer, Layer),
        at: (usize, BlockLayout),
        weight: Vec<usize>,
    ) {
        let channels = weight[0];
        self.param(scope, conv, Param::Weight, at, weight);
        for p in BN_PARAMS {
            let shape = if p == Param::NumBatchesTracked {
                vec![]
            } else {
                vec![channels]
            };
            self.param(scope, bn, p, at, shape);
        }
    }

    /// A conv or dense layer with a bias.
    fn with_bias(
        &mut self,
        scope: Scope,
        layer: Layer,
        at: (usize, BlockLayout),
        weight: Vec<usize>,
    ) {
        let out = weight[0];
        self.param(scope, layer, Param::Weight, at, weight);
        self.param(scope, layer, Param::Bias, at, vec![out]);
    }
}

/// Every parameter tensor of `arch` as PyTorch's state_dict holds it (BatchNorm step counters
/// included), stem first.
pub fn tensor_slots(arch: &Architecture) -> Vec<TensorSlot> {
    let mut slots = Slots(Vec::new());
    let outside = (
        0,
        BlockLayout {
            has_expand: false,
            has_se: false,
        },
    );
    slots.conv_bn(
        Scope::Stem,
        (Layer::StemConv, Layer::StemBn),
        outside,
        vec![arch.stem_channels, 3, arch.stem_kernel, arch.stem_kernel],
    );
    for b in &arch.blocks {
        let scope = Scope::Block(BlockRef {
            stage: Some(b.stage),
            index: usize::from(b.index),
        });
        let at = (
            b.global_index,
            BlockLayout {
                has_expand: b.has_expand,
                has_se: b.se_channels.is_some(),
            },
        );
        let mid = b.expanded_channels;
        if b.has_expand {
            slots.conv_bn(
                scope,
                (Layer::ExpandConv, Layer::ExpandBn),
                at,
                vec![mid, b.in_channels, 1, 1],
            );
        }
        slots.conv_bn(
            scope,
            (Layer::DwConv, Layer::DwBn),
            at,
            vec![mid, 1, b.kernel, b.kernel],
        );
        if let Some(se) = b.se_channels {
            slots.with_bias(scope, Layer::SeReduce, at, vec![se, mid, 1, 1]);
            slots.with_bias(scope, Layer::SeExpand, at, vec![mid, se, 1, 1]);
        }
        slots.conv_bn(
            scope,
            (Layer::ProjectConv, Layer::ProjectBn),
            at,
            vec![b.out_channels, mid, 1, 1],
        );
    }
    let last = arch
        .blocks
        .last()
        .map_or(arch.stem_channels, |b| b.out_channels);
    slots.conv_bn(
        Scope::Head,
        (Layer::HeadConv, Layer::HeadBn),
        outside,
        vec![arch.head_channels, last, 1, 1],
    );
    if let Some(classes) = arch.num_classes {
        slots.with_bias(
            Scope::Classifier,
            Layer::Classifier,
            outside,
            vec![classes, arch.head_channels],
        );
    }
    slots.0
}

/// The names `scheme` gives every tensor of `arch`, with their slots; `None` where the scheme
/// cannot name a slot.
pub fn names_for(
    scheme: effnet_spec::Scheme,
    arch: &Architecture,
) -> Vec<(Option<String>, TensorSlot)> {
    let head_stage = arch.blocks.last().map_or(1, |b| b.stage);
    tensor_slots(arch)
        .into_iter()
        .map(|slot| {
            let name = format_key(
                scheme,
                &slot.key,
                slot.global_index,
                slot.layout,
                head_stage,
            );
            (name, slot)
        })
        .collect()
}
