use effnet_ir::{
    Activation, BatchNorm, Conv2d, DType, Dense, Graph, GraphMeta, Input, IrError, NodeId,
    Normalize, Op, Padding, Rescale, Role, Tag, Tensor,
};

use crate::scheme::{IMAGENET_MEAN, IMAGENET_STD};
use crate::{
    Architecture, BlockKind, BlockSpec, PaddingStyle, Preprocessing, Semantics, SpecError,
};

/// Builds the shape-only graph of `arch` with the conventions of `semantics`. Node names follow
/// Keras applications (`stem_conv`, `block2a_dwconv`, `top_conv`, `predictions`); tags place
/// every node by stage, block and role, which is how importers bind their tensors.
pub fn build_graph(arch: &Architecture, semantics: &Semantics) -> Result<Graph, SpecError> {
    let mut b = Builder {
        graph: Graph::new(),
        semantics,
        activation: arch.activation,
    };
    b.graph.meta = GraphMeta {
        naming: Some(semantics.scheme.name().to_owned()),
        source: None,
        input_normalization: semantics.input_normalization.clone(),
    };
    let stem = Tag::stem(Role::Input);
    let mut x = b.graph.add_op(
        "input",
        stem,
        Op::Input(Input {
            channels: 3,
            resolution: arch.resolution.map(|r| [r, r]),
        }),
        &[],
    )?;
    x = b.preprocessing(x, semantics.preprocessing)?;

    let stem_out = arch.stem_channels;
    x = b.conv_bn_act_named(
        x,
        [
            "stem_conv".into(),
            "stem_bn".into(),
            "stem_activation".into(),
        ],
        [Role::StemConv, Role::StemBn, Role::StemAct].map(Tag::stem),
        3,
        stem_out,
        arch.stem_kernel,
        2,
        1,
    )?;

    for block in &arch.blocks {
        x = b.block(x, block)?;
    }

    let last_channels = arch.blocks.last().map_or(stem_out, |b| b.out_channels);
    let head_out = arch.head_channels;
    x = b.conv_bn_act_named(
        x,
        ["top_conv".into(), "top_bn".into(), "top_activation".into()],
        [
            Tag::head(Role::HeadConv),
            Tag::head(Role::HeadBn),
            Tag::head(Role::HeadAct),
        ],
        last_channels,
        head_out,
        1,
        1,
        1,
    )?;
    x = b.graph.add_op(
        "avg_pool",
        Tag::head(Role::HeadPool),
        Op::GlobalAvgPool { keep_dims: false },
        &[x],
    )?;
    if let Some(classes) = arch.num_classes {
        x = b.graph.add_op(
            "top_dropout",
            Tag::head(Role::HeadDropout),
            Op::Dropout { rate: arch.dropout },
            &[x],
        )?;
        x = b.graph.add_op(
            "predictions",
            Tag::head(Role::Classifier),
            Op::Dense(Dense {
                in_features: head_out,
                out_features: classes,
                weight: weight(vec![classes, head_out])?,
                bias: Some(weight(vec![classes])?),
            }),
            &[x],
        )?;
        if let Some(activation) = semantics.classifier_activation {
            x = b.act(
                "predictions_activation".into(),
                Tag::head(Role::ClassifierAct),
                x,
                activation,
            )?;
        }
    }
    b.graph.set_outputs(vec![x]);
    b.graph.validate()?;
    Ok(b.graph)
}

/// Keras' block letter: `a`, `b`, … for the repeat index (numbers past `z`).
fn block_letter(index: u16) -> String {
    if index < 26 {
        char::from(b'a' + index as u8).to_string()
    } else {
        format!("_{index}")
    }
}

fn weight(shape: Vec<usize>) -> Result<Tensor, IrError> {
    Tensor::shape_only(DType::F32, shape)
}

struct Builder<'a> {
    graph: Graph,
    semantics: &'a Semantics,
    activation: Activation,
}

impl Builder<'_> {
    /// One block: an MBConv (expansion, depthwise, SE, projection) or a Fused-MBConv (a k×k
    /// expansion and a 1×1 projection, or one k×k conv with its activation), with its shortcut.
    fn block(&mut self, x: NodeId, block: &BlockSpec) -> Result<NodeId, IrError> {
        let tag = |role| Tag::in_block(block.stage, block.index, role);
        let name = format!(
            "block{}{}",
            block.stage.saturating_sub(1),
            block_letter(block.index)
        );
        let input = x;
        let mid = block.expanded_channels;
        let fused = block.kind == BlockKind::FusedMBConv;
        let mut x = x;
        if block.has_expand {
            let (kernel, stride) = if fused {
                (block.kernel, block.stride)
            } else {
                (1, 1)
            };
            x = self.conv_bn_act_named(
                x,
                [
                    format!("{name}_expand_conv"),
                    format!("{name}_expand_bn"),
                    format!("{name}_expand_activation"),
                ],
                [
                    tag(Role::ExpandConv),
                    tag(Role::ExpandBn),
                    tag(Role::ExpandAct),
                ],
                block.in_channels,
                mid,
                kernel,
                stride,
                1,
            )?;
        }
        if !fused {
            x = self.conv_bn_act_named(
                x,
                [
                    format!("{name}_dwconv"),
                    format!("{name}_bn"),
                    format!("{name}_activation"),
                ],
                [
                    tag(Role::DepthwiseConv),
                    tag(Role::DepthwiseBn),
                    tag(Role::DepthwiseAct),
                ],
                mid,
                mid,
                block.kernel,
                block.stride,
                mid,
            )?;
        }
        if let Some(se) = block.se_channels {
            x = self.squeeze_excite(x, &name, tag, mid, se)?;
        }
        // A Fused-MBConv without expansion has one conv: the k×k projection, with activation.
        let single = fused && !block.has_expand;
        let (kernel, stride) = if single {
            (block.kernel, block.stride)
        } else {
            (1, 1)
        };
        x = self.conv(
            format!("{name}_project_conv"),
            tag(Role::ProjectConv),
            x,
            mid,
            block.out_channels,
            kernel,
            stride,
            1,
            false,
        )?;
        x = self.bn(
            format!("{name}_project_bn"),
            tag(Role::ProjectBn),
            x,
            block.out_channels,
        )?;
        if single {
            x = self.act(
                format!("{name}_project_activation"),
                tag(Role::ProjectAct),
                x,
                self.activation,
            )?;
        }
        if block.residual {
            x = self.graph.add_op(
                format!("{name}_drop"),
                tag(Role::DropConnect),
                Op::StochasticDepth {
                    rate: block.drop_connect_rate,
                },
                &[x],
            )?;
            x = self.graph.add_op(
                format!("{name}_add"),
                tag(Role::Residual),
                Op::Add,
                &[x, input],
            )?;
        }
        Ok(x)
    }

    /// The preprocessing layers a Keras model carries (none for other schemes).
    fn preprocessing(&mut self, x: NodeId, pre: Preprocessing) -> Result<NodeId, IrError> {
        let tag = Tag::stem(Role::Preprocess);
        let as_f32 = |v: [f64; 3]| v.map(|x| x as f32);
        let (variance, variance_fix) = match pre {
            Preprocessing::External => return Ok(x),
            Preprocessing::KerasSigned => {
                return self.graph.add_op(
                    "rescaling",
                    tag,
                    Op::Rescale(Rescale {
                        scale: vec![1.0 / 128.0],
                        offset: vec![-1.0],
                    }),
                    &[x],
                );
            }
            // What keras.applications' EfficientNet stores as "variance": the standard deviation.
            Preprocessing::Keras { variance_fix } => (IMAGENET_STD, variance_fix),
            Preprocessing::KerasNormalization => (IMAGENET_STD.map(|s| s * s), false),
        };
        let x = self.graph.add_op(
            "rescaling",
            tag,
            Op::Rescale(Rescale {
                scale: vec![1.0 / 255.0],
                offset: vec![0.0],
            }),
            &[x],
        )?;
        let x = self.graph.add_op(
            "normalization",
            tag,
            Op::Normalize(Normalize {
                channels: 3,
                mean: Tensor::from_f32(vec![3], &as_f32(IMAGENET_MEAN))?,
                variance: Tensor::from_f32(vec![3], &as_f32(variance))?,
                count: Some(Tensor::shape_only(DType::I64, vec![])?),
                std_floor: 1e-7,
            }),
            &[x],
        )?;
        if !variance_fix {
            return Ok(x);
        }
        self.graph.add_op(
            "rescaling_1",
            tag,
            Op::Rescale(Rescale {
                scale: IMAGENET_STD.iter().map(|s| 1.0 / s.sqrt()).collect(),
                offset: vec![0.0],
            }),
            &[x],
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: String,
        tag: Tag,
        x: NodeId,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        bias: bool,
    ) -> Result<NodeId, IrError> {
        let padding = match self.semantics.padding {
            PaddingStyle::TfSame => Padding::SameUpper,
            PaddingStyle::Symmetric => Padding::symmetric([kernel, kernel], [1, 1]),
        };
        let op = Op::Conv2d(Conv2d {
            in_channels,
            out_channels,
            kernel: [kernel, kernel],
            stride: [stride, stride],
            dilation: [1, 1],
            groups,
            padding,
            weight: weight(vec![out_channels, in_channels / groups, kernel, kernel])?,
            bias: if bias {
                Some(weight(vec![out_channels])?)
            } else {
                None
            },
        });
        self.graph.add_op(name, tag, op, &[x])
    }

    /// Squeeze and excitation: pool, reduce to `se` channels (swish), expand back (sigmoid),
    /// scale the block's features.
    fn squeeze_excite(
        &mut self,
        x: NodeId,
        name: &str,
        tag: impl Fn(Role) -> Tag,
        channels: usize,
        se: usize,
    ) -> Result<NodeId, IrError> {
        let squeeze = self.graph.add_op(
            format!("{name}_se_squeeze"),
            tag(Role::SeSqueeze),
            Op::GlobalAvgPool { keep_dims: true },
            &[x],
        )?;
        let reduce = self.conv(
            format!("{name}_se_reduce"),
            tag(Role::SeReduce),
            squeeze,
            channels,
            se,
            1,
            1,
            1,
            true,
        )?;
        let reduce = self.act(
            format!("{name}_se_reduce_activation"),
            tag(Role::SeReduceAct),
            reduce,
            self.activation,
        )?;
        let expand = self.conv(
            format!("{name}_se_expand"),
            tag(Role::SeExpand),
            reduce,
            se,
            channels,
            1,
            1,
            1,
            true,
        )?;
        let gate = self.act(
            format!("{name}_se_expand_activation"),
            tag(Role::SeGate),
            expand,
            Activation::Sigmoid,
        )?;
        self.graph.add_op(
            format!("{name}_se_excite"),
            tag(Role::SeScale),
            Op::Mul,
            &[x, gate],
        )
    }

    fn bn(
        &mut self,
        name: String,
        tag: Tag,
        x: NodeId,
        channels: usize,
    ) -> Result<NodeId, IrError> {
        let op = Op::BatchNorm(BatchNorm {
            channels,
            eps: self.semantics.bn_eps,
            momentum: Some(self.semantics.bn_momentum),
            gamma: Some(weight(vec![channels])?),
            beta: Some(weight(vec![channels])?),
            mean: weight(vec![channels])?,
            var: weight(vec![channels])?,
        });
        self.graph.add_op(name, tag, op, &[x])
    }

    fn act(
        &mut self,
        name: String,
        tag: Tag,
        x: NodeId,
        activation: Activation,
    ) -> Result<NodeId, IrError> {
        self.graph
            .add_op(name, tag, Op::Activation(activation), &[x])
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_bn_act_named(
        &mut self,
        x: NodeId,
        [conv_name, bn_name, act_name]: [String; 3],
        [conv_tag, bn_tag, act_tag]: [Tag; 3],
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
    ) -> Result<NodeId, IrError> {
        let x = self.conv(
            conv_name,
            conv_tag,
            x,
            in_channels,
            out_channels,
            kernel,
            stride,
            groups,
            false,
        )?;
        let x = self.bn(bn_name, bn_tag, x, out_channels)?;
        self.act(act_name, act_tag, x, self.activation)
    }
}
