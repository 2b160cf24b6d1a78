//! The padding a Keras config's convolutions apply, checked against TF "same".

/// Walks a Keras config's convolutions in order, tracking the spatial size from `resolution`:
/// a `ZeroPadding2D` must be followed by a "valid" convolution. Returns the convolutions that
/// do not pad what TF "same" pads at that size (a `ZeroPadding2D` with other amounts, a "valid"
/// convolution larger than 1×1 without one), with the fixed pads they have: the graph keeps
/// them, the audit reports them. What cannot be read is an error.
pub(crate) fn check_keras_padding(
    layers: &[serde_json::Value],
    resolution: Option<usize>,
) -> Result<Vec<(String, effnet_ir::Padding)>, String> {
    let mut odd = Vec::new();
    let number = |l: &serde_json::Value, key: &str| {
        l.pointer(&format!("/config/{key}/0"))
            .and_then(serde_json::Value::as_u64)
            .map(|v| v as usize)
    };
    let name = |l: &serde_json::Value| {
        l.pointer("/config/name")
            .and_then(|n| n.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let mut size = resolution;
    let mut pending: Option<(String, [usize; 4])> = None;
    for l in layers {
        match l.get("class_name").and_then(|c| c.as_str()).unwrap_or("") {
            "ZeroPadding2D" => {
                let pad = |i: &str| {
                    l.pointer(&format!("/config/padding/0/{i}"))
                        .and_then(serde_json::Value::as_u64)
                        .map(|v| v as usize)
                };
                let (Some(top), Some(bottom)) = (pad("0"), pad("1")) else {
                    return Err(format!(
                        "layer `{}` has a padding effnet cannot read",
                        name(l)
                    ));
                };
                let side = |i: &str| {
                    l.pointer(&format!("/config/padding/1/{i}"))
                        .and_then(serde_json::Value::as_u64)
                        .map(|v| v as usize)
                };
                let (left, right) = (side("0").unwrap_or(top), side("1").unwrap_or(bottom));
                pending = Some((name(l), [top, left, bottom, right]));
            }
            "Conv2D" | "DepthwiseConv2D" => {
                let (Some(k), Some(stride)) = (number(l, "kernel_size"), number(l, "strides"))
                else {
                    return Err(format!("layer `{}` has no kernel size or strides", name(l)));
                };
                let stride = stride.max(1);
                let mode = l
                    .pointer("/config/padding")
                    .and_then(|p| p.as_str())
                    .unwrap_or("");
                // Sizes come from the file: checked, and an empty feature map is an error.
                let vanished = || {
                    format!(
                        "layer `{}` leaves no pixels at the input size the config records",
                        name(l)
                    )
                };
                let valid = |n: usize| {
                    n.checked_sub(k)
                        .map(|d| d / stride + 1)
                        .ok_or_else(vanished)
                };
                match (pending.take(), mode) {
                    (Some((_, [top, left, bottom, right])), "valid") => {
                        if let Some(n) = size {
                            let out = n.div_ceil(stride);
                            let total = out
                                .checked_sub(1)
                                .and_then(|o| o.checked_mul(stride))
                                .and_then(|o| o.checked_add(k))
                                .ok_or_else(vanished)?
                                .saturating_sub(n);
                            let want = (total / 2, total - total / 2);
                            if (top, bottom) != want || (left, right) != want {
                                odd.push((
                                    name(l),
                                    effnet_ir::Padding::Explicit {
                                        top,
                                        left,
                                        bottom,
                                        right,
                                    },
                                ));
                            }
                            size = Some(valid(n + top + bottom)?);
                        }
                    }
                    (None, "same") => size = size.map(|n| n.div_ceil(stride)),
                    (None, "valid") if k == 1 => size = size.map(valid).transpose()?,
                    (None, "valid") => {
                        odd.push((name(l), effnet_ir::Padding::Valid));
                        size = size.map(valid).transpose()?;
                    }
                    (_, other) => {
                        return Err(format!(
                            "layer `{}` is a {k}×{k} convolution with padding \"{other}\" where keras.applications uses TF \"same\"",
                            name(l)
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(odd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(name: &str, k: u64, stride: u64, padding: &str) -> serde_json::Value {
        json!({"class_name": "Conv2D", "config": {"name": name, "kernel_size": [k, k],
            "strides": [stride, stride], "padding": padding}})
    }

    fn pad(name: &str, top: u64, bottom: u64) -> serde_json::Value {
        json!({"class_name": "ZeroPadding2D", "config": {"name": name,
            "padding": [[top, bottom], [top, bottom]]}})
    }

    #[test]
    fn padding_walk_checks_tf_same_and_never_underflows() {
        let stem = [pad("stem_conv_pad", 0, 1), conv("stem_conv", 3, 2, "valid")];
        assert_eq!(check_keras_padding(&stem, Some(64)), Ok(vec![]));
        // Odd sizes pad symmetrically under TF "same": (0, 1) there is kept as what it is.
        let odd = effnet_ir::Padding::Explicit {
            top: 0,
            left: 0,
            bottom: 1,
            right: 1,
        };
        assert_eq!(
            check_keras_padding(&stem, Some(65)),
            Ok(vec![("stem_conv".to_owned(), odd)])
        );
        assert_eq!(
            check_keras_padding(&[pad("p", 1, 1), conv("c", 3, 2, "valid")], Some(65)),
            Ok(vec![])
        );
        // Sizes a hostile config can give: nothing left, or a kernel wider than the map.
        for n in [1, 2] {
            let tiny = [conv("c", 7, 1, "valid")];
            assert!(check_keras_padding(&tiny, Some(n)).is_err());
        }
        let huge = [
            pad("p", 0, 1),
            conv("c", u64::MAX / 2, u64::MAX / 2, "valid"),
        ];
        assert!(check_keras_padding(&huge, Some(3)).is_err());
        // A 3×3 "valid" convolution is not TF "same": kept as "valid".
        assert_eq!(
            check_keras_padding(&[conv("c", 3, 1, "valid")], None),
            Ok(vec![("c".to_owned(), effnet_ir::Padding::Valid)])
        );
        // A padding followed by a "same" convolution is not a layout effnet reads.
        assert!(check_keras_padding(&[pad("p", 1, 1), conv("c", 3, 1, "same")], None).is_err());
    }
}
