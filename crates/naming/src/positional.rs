//! Keras layer names for weights that arrive without them: TF2 object-based checkpoints
//! (`layer_with_weights-N`, in `model.layers` order) and Keras 3 `.weights.h5` files from
//! versions that name groups only by class (`conv2d_3`, `batch_normalization_12`: the order
//! within each class). The EfficientNet layer grammar — optional `Normalization`, stem conv and
//! BatchNorm, EfficientNetV2's Fused-MBConv blocks (a k×k conv, then a 1×1 projection when it
//! expanded), then per MBConv block an optional expansion (present exactly when the depthwise conv's
//! channels differ from the block input's), depthwise, optional SE pair (the convs with a
//! bias), projection, then head conv and BatchNorm and an optional classifier — orders the
//! classes and tells every layer's role; block stages follow where channels, kernel or
//! expansion change, as for EfficientNet-PyTorch's global block indices.

use effnet_ir::Tensor;

use crate::NamingError;
use crate::infer::{BlockShape, continues_stage};

/// What a weighted Keras layer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerKind {
    /// `Normalization` (mean, variance, count).
    Normalization,
    /// `Conv2D`.
    Conv,
    /// `DepthwiseConv2D`.
    Depthwise,
    /// `BatchNormalization`.
    BatchNorm,
    /// `Dense`.
    Dense,
}

impl LayerKind {
    /// The kind a layer's variable names reveal (`depthwise_kernel`, `gamma`, a 4-d `kernel`…).
    pub fn from_variables(variables: &[(String, Tensor)]) -> Option<LayerKind> {
        let has = |n: &str| variables.iter().any(|(v, _)| v == n);
        if has("depthwise_kernel") {
            Some(LayerKind::Depthwise)
        } else if has("moving_mean") || has("gamma") {
            Some(LayerKind::BatchNorm)
        } else if has("mean") && has("variance") {
            Some(LayerKind::Normalization)
        } else {
            let (_, kernel) = variables.iter().find(|(v, _)| v == "kernel")?;
            match kernel.shape().len() {
                4 => Some(LayerKind::Conv),
                2 => Some(LayerKind::Dense),
                _ => None,
            }
        }
    }

    /// The kind of a Keras class name in snake case (`depthwise_conv2d`).
    pub fn from_class(snake: &str) -> Option<LayerKind> {
        Some(match snake {
            "normalization" => LayerKind::Normalization,
            "conv2d" => LayerKind::Conv,
            "depthwise_conv2d" => LayerKind::Depthwise,
            "batch_normalization" => LayerKind::BatchNorm,
            "dense" => LayerKind::Dense,
            _ => return None,
        })
    }
}

/// A weighted layer without its name.
#[derive(Clone, Debug)]
pub struct UnnamedLayer {
    /// What it is.
    pub kind: LayerKind,
    /// Where it came from (`layer_with_weights-7`, `layers/conv2d_3`), for messages.
    pub origin: String,
    /// Its variables by Keras name (`kernel`, `gamma`, …).
    pub variables: Vec<(String, Tensor)>,
}

impl UnnamedLayer {
    fn kernel(&self) -> Option<&Tensor> {
        self.variables
            .iter()
            .find(|(v, _)| v == "kernel" || v == "depthwise_kernel")
            .map(|(_, t)| t)
    }

    fn has_bias(&self) -> bool {
        self.variables.iter().any(|(v, _)| v == "bias")
    }
}

/// Layers waiting to be named, one queue per kind.
#[derive(Default)]
struct Queues([std::collections::VecDeque<UnnamedLayer>; 5]);

impl Queues {
    fn pop(&mut self, kind: LayerKind) -> Option<UnnamedLayer> {
        self.0[kind as usize].pop_front()
    }

    fn next(&mut self, kind: LayerKind, what: &str) -> Result<UnnamedLayer, NamingError> {
        self.pop(kind)
            .ok_or_else(|| NamingError::Missing(what.to_owned()))
    }
}

/// Names `layers` (in model order, or in order within each kind: only the relative order of
/// layers of the same kind is used) as `keras.applications` names them. Returns the layers in
/// model order with their names.
pub fn keras_layer_names(
    layers: Vec<UnnamedLayer>,
) -> Result<Vec<(String, UnnamedLayer)>, NamingError> {
    let mut queues = Queues::default();
    for layer in layers {
        queues.0[layer.kind as usize].push_back(layer);
    }
    let channels = |layer: &UnnamedLayer, axis: usize| -> Result<usize, NamingError> {
        layer
            .kernel()
            .and_then(|k| k.shape().get(axis).copied())
            .ok_or_else(|| NamingError::Inconsistent {
                tensor: layer.origin.clone(),
                message: "a kernel of an unexpected shape".into(),
            })
    };

    let mut named: Vec<(String, UnnamedLayer)> = Vec::new();
    // Blocks: (shape, expansion, depthwise, depthwise BN, SE pair, projection, projection BN).
    struct Block {
        shape: BlockShape,
        layers: Vec<(&'static str, UnnamedLayer)>,
    }
    let mut blocks: Vec<Block> = Vec::new();

    if let Some(n) = queues.pop(LayerKind::Normalization) {
        named.push(("normalization".into(), n));
    }
    let stem = queues.next(LayerKind::Conv, "stem convolution")?;
    let mut current = channels(&stem, 3)?;
    named.push(("stem_conv".into(), stem));
    named.push((
        "stem_bn".into(),
        queues.next(LayerKind::BatchNorm, "stem BatchNorm")?,
    ));

    // EfficientNetV2's Fused-MBConv blocks come first: a k×k conv over all channels (the
    // expansion, or without expansion the projection), then a 1×1 projection when it expanded
    // (narrower than its input, where an MBConv expansion or the head widens).
    let kernel_of = |layer: &UnnamedLayer| layer.kernel().and_then(|k| k.shape().first().copied());
    while queues.0[LayerKind::Conv as usize]
        .front()
        .is_some_and(|c| kernel_of(c).is_some_and(|k| k > 1))
    {
        let b = blocks.len();
        let label = format!("block {}", b + 1);
        let first = queues.next(LayerKind::Conv, "a Fused-MBConv convolution")?;
        let kernel = channels(&first, 0)?;
        if channels(&first, 2)? != current {
            return Err(NamingError::Inconsistent {
                tensor: first.origin.clone(),
                message: format!("expected a convolution from {current} channels"),
            });
        }
        let first_out = channels(&first, 3)?;
        let first_bn = queues.next(LayerKind::BatchNorm, &format!("BatchNorm of {label}"))?;
        let projection = queues.0[LayerKind::Conv as usize].front().is_some_and(|p| {
            kernel_of(p) == Some(1)
                && channels(p, 2).ok() == Some(first_out)
                && channels(p, 3).is_ok_and(|out| out < first_out)
        });
        let (layers, mid, out) = if projection {
            let project = queues.next(LayerKind::Conv, "projection conv")?;
            let out = channels(&project, 3)?;
            let project_bn = queues.next(
                LayerKind::BatchNorm,
                &format!("projection BatchNorm of {label}"),
            )?;
            (
                vec![
                    ("expand_conv", first),
                    ("expand_bn", first_bn),
                    ("project_conv", project),
                    ("project_bn", project_bn),
                ],
                first_out,
                out,
            )
        } else {
            (
                vec![("project_conv", first), ("project_bn", first_bn)],
                current,
                first_out,
            )
        };
        blocks.push(Block {
            shape: BlockShape {
                kind: effnet_ir::BlockKind::FusedMBConv,
                in_channels: current,
                mid,
                out,
                kernel,
                has_expand: projection,
            },
            layers,
        });
        current = out;
    }

    loop {
        let Some(dw) = queues.pop(LayerKind::Depthwise) else {
            break;
        };
        let mid = channels(&dw, 2)?;
        let kernel = channels(&dw, 0)?;
        let mut layers = Vec::with_capacity(8);
        let has_expand = mid != current;
        let label = |i: usize| format!("block {}", i + 1);
        let b = blocks.len();
        if has_expand {
            let expand =
                queues.next(LayerKind::Conv, &format!("expansion conv of {}", label(b)))?;
            if channels(&expand, 2)? != current || channels(&expand, 3)? != mid {
                return Err(NamingError::Inconsistent {
                    tensor: expand.origin.clone(),
                    message: format!("expected an expansion conv {current} → {mid} channels"),
                });
            }
            layers.push(("expand_conv", expand));
            layers.push((
                "expand_bn",
                queues.next(
                    LayerKind::BatchNorm,
                    &format!("expansion BatchNorm of {}", label(b)),
                )?,
            ));
        }
        layers.push(("dwconv", dw));
        layers.push((
            "bn",
            queues.next(
                LayerKind::BatchNorm,
                &format!("depthwise BatchNorm of {}", label(b)),
            )?,
        ));
        let se = queues.0[LayerKind::Conv as usize]
            .front()
            .is_some_and(UnnamedLayer::has_bias);
        if se {
            layers.push(("se_reduce", queues.next(LayerKind::Conv, "SE reduce conv")?));
            layers.push((
                "se_expand",
                queues.next(LayerKind::Conv, &format!("SE expand conv of {}", label(b)))?,
            ));
        }
        let project = queues.next(LayerKind::Conv, &format!("projection conv of {}", label(b)))?;
        if channels(&project, 2)? != mid {
            return Err(NamingError::Inconsistent {
                tensor: project.origin.clone(),
                message: format!("expected a projection from {mid} channels"),
            });
        }
        let out = channels(&project, 3)?;
        layers.push(("project_conv", project));
        layers.push((
            "project_bn",
            queues.next(
                LayerKind::BatchNorm,
                &format!("projection BatchNorm of {}", label(b)),
            )?,
        ));
        blocks.push(Block {
            shape: BlockShape {
                kind: effnet_ir::BlockKind::MBConv,
                in_channels: current,
                mid,
                out,
                kernel,
                has_expand,
            },
            layers,
        });
        current = out;
    }
    if blocks.is_empty() {
        return Err(NamingError::Missing("MBConv blocks".into()));
    }

    // Stages from where the block pattern changes; `block{stage − 1}{letter}`.
    let mut stage = 1u32;
    let mut letter = 0u32;
    for i in 0..blocks.len() {
        if i > 0 && continues_stage(&blocks[i - 1].shape, &blocks[i].shape) {
            letter += 1;
        } else {
            stage += 1;
            letter = 0;
        }
        let prefix = format!(
            "block{}{}",
            stage - 1,
            char::from_u32('a' as u32 + letter).unwrap_or('?')
        );
        for (suffix, layer) in std::mem::take(&mut blocks[i].layers) {
            named.push((format!("{prefix}_{suffix}"), layer));
        }
    }

    named.push((
        "top_conv".into(),
        queues.next(LayerKind::Conv, "head convolution")?,
    ));
    named.push((
        "top_bn".into(),
        queues.next(LayerKind::BatchNorm, "head BatchNorm")?,
    ));
    if let Some(dense) = queues.pop(LayerKind::Dense) {
        named.push(("predictions".into(), dense));
    }
    if let Some(extra) = queues.0.iter().flatten().next() {
        return Err(NamingError::Inconsistent {
            tensor: extra.origin.clone(),
            message: "a layer left over after the EfficientNet layers (not an EfficientNet from keras.applications?)".into(),
        });
    }
    Ok(named)
}
