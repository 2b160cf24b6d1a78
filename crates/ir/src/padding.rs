use crate::IrError;

/// How a convolution pads its input. Kept as the source had it and resolved per input size,
/// because TensorFlow's "same" puts the odd pixel at the end and so depends on the input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// No padding.
    Valid,
    /// Fixed pads in pixels (PyTorch's `padding=`, Keras' `ZeroPadding2D`).
    Explicit {
        /// Rows added above.
        top: usize,
        /// Columns added on the left.
        left: usize,
        /// Rows added below.
        bottom: usize,
        /// Columns added on the right.
        right: usize,
    },
    /// TensorFlow "same": output `ceil(in / stride)`, the odd pad row/column at the end
    /// (ONNX `auto_pad = SAME_UPPER`).
    SameUpper,
    /// Like `SameUpper` with the odd pad at the start (ONNX `auto_pad = SAME_LOWER`).
    SameLower,
}

/// Padding resolved for one input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedPadding {
    /// Pads as `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Output height and width.
    pub output: [usize; 2],
}

impl Padding {
    /// Symmetric padding `dilation × (kernel − 1) / 2` on every side, as torchvision and timm
    /// build it.
    pub fn symmetric(kernel: [usize; 2], dilation: [usize; 2]) -> Self {
        let h = dilation[0] * kernel[0].saturating_sub(1) / 2;
        let w = dilation[1] * kernel[1].saturating_sub(1) / 2;
        Padding::Explicit {
            top: h,
            left: w,
            bottom: h,
            right: w,
        }
    }

    /// Whether this is one of the input-size-dependent "same" modes.
    pub fn is_same(&self) -> bool {
        matches!(self, Padding::SameUpper | Padding::SameLower)
    }

    /// A short name for reports: `valid`, `same_upper`, `same_lower`, `explicit(t,l,b,r)`.
    pub fn describe(&self) -> String {
        match self {
            Padding::Valid => "valid".into(),
            Padding::SameUpper => "same_upper".into(),
            Padding::SameLower => "same_lower".into(),
            Padding::Explicit {
                top,
                left,
                bottom,
                right,
            } => format!("explicit({top},{left},{bottom},{right})"),
        }
    }

    /// The pads and output size for an `input` of height × width. `node` names the convolution
    /// in the error when the kernel does not fit.
    pub fn resolve(
        &self,
        node: &str,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<ResolvedPadding, IrError> {
        let too_large = || IrError::KernelTooLarge {
            node: node.to_owned(),
            kernel,
            input,
        };
        // Shape inference runs before a graph is validated (an ONNX `Shape` of a feature
        // map): a stride of 0 is an error here, not a division by zero.
        if stride.contains(&0) || dilation.contains(&0) {
            return Err(IrError::BadAttribute {
                node: node.to_owned(),
                message: format!("stride {stride:?} and dilation {dilation:?} must be positive"),
            });
        }
        let mut pads = [0usize; 4];
        let mut output = [0usize; 2];
        for axis in 0..2 {
            let effective = dilation[axis]
                .checked_mul(kernel[axis].saturating_sub(1))
                .and_then(|v| v.checked_add(1))
                .ok_or_else(too_large)?;
            let (before, after) = match *self {
                Padding::Valid => (0, 0),
                Padding::Explicit {
                    top,
                    left,
                    bottom,
                    right,
                } => {
                    if axis == 0 {
                        (top, bottom)
                    } else {
                        (left, right)
                    }
                }
                Padding::SameUpper | Padding::SameLower => {
                    let out = input[axis].div_ceil(stride[axis]);
                    let needed = (out.saturating_sub(1) * stride[axis] + effective)
                        .saturating_sub(input[axis]);
                    let small = needed / 2;
                    if *self == Padding::SameUpper {
                        (small, needed - small)
                    } else {
                        (needed - small, small)
                    }
                }
            };
            let padded = input[axis]
                .checked_add(before)
                .and_then(|v| v.checked_add(after))
                .ok_or_else(too_large)?;
            if padded < effective {
                return Err(too_large());
            }
            output[axis] = (padded - effective) / stride[axis] + 1;
            pads[axis] = before;
            pads[axis + 2] = after;
        }
        Ok(ResolvedPadding { pads, output })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(input: usize, k: usize, s: usize) -> ResolvedPadding {
        Padding::SameUpper
            .resolve("t", [input, input], [k, k], [s, s], [1, 1])
            .unwrap()
    }

    #[test]
    fn tf_same_puts_the_extra_pixel_at_the_end() {
        // Reference G1: even inputs to a stride-2 conv pad (0,1) for k=3 and (1,2) for k=5.
        assert_eq!(same(224, 3, 2).pads, [0, 0, 1, 1]);
        assert_eq!(same(224, 3, 2).output, [112, 112]);
        assert_eq!(same(112, 5, 2).pads, [1, 1, 2, 2]);
        // Odd inputs pad symmetrically.
        assert_eq!(same(225, 3, 2).pads, [1, 1, 1, 1]);
        assert_eq!(same(225, 3, 2).output, [113, 113]);
        assert_eq!(same(15, 5, 2).pads, [2, 2, 2, 2]);
        // Stride 1 with an odd kernel is symmetric.
        assert_eq!(same(14, 5, 1).pads, [2, 2, 2, 2]);
        assert_eq!(same(7, 1, 1).pads, [0, 0, 0, 0]);
    }

    #[test]
    fn same_lower_mirrors_same_upper() {
        let r = Padding::SameLower
            .resolve("t", [224, 224], [3, 3], [2, 2], [1, 1])
            .unwrap();
        assert_eq!(r.pads, [1, 1, 0, 0]);
    }

    #[test]
    fn symmetric_padding_keeps_output_sizes_of_same() {
        for input in [7usize, 8, 15, 224, 225] {
            for k in [3usize, 5] {
                let sym = Padding::symmetric([k, k], [1, 1])
                    .resolve("t", [input, input], [k, k], [2, 2], [1, 1])
                    .unwrap();
                assert_eq!(sym.output, same(input, k, 2).output);
            }
        }
    }

    #[test]
    fn kernel_larger_than_input_is_an_error() {
        let err = Padding::Valid.resolve("conv", [2, 2], [3, 3], [1, 1], [1, 1]);
        assert!(matches!(err, Err(IrError::KernelTooLarge { .. })));
    }

    #[test]
    fn a_zero_stride_or_dilation_is_an_error_not_a_division_by_zero() {
        for padding in [Padding::Valid, Padding::SameUpper, Padding::SameLower] {
            let err = padding.resolve("conv", [8, 8], [3, 3], [0, 1], [1, 1]);
            assert!(matches!(err, Err(IrError::BadAttribute { .. })), "{err:?}");
            let err = padding.resolve("conv", [8, 8], [3, 3], [1, 1], [1, 0]);
            assert!(matches!(err, Err(IrError::BadAttribute { .. })), "{err:?}");
        }
        let huge = Padding::Explicit {
            top: usize::MAX,
            left: 0,
            bottom: 1,
            right: 0,
        };
        assert!(
            huge.resolve("conv", [8, 8], [3, 3], [1, 1], [1, 1])
                .is_err()
        );
    }
}
