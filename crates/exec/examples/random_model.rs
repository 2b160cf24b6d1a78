//! Writes a full-size EfficientNet built from the spec with seeded random weights as a
//! torchvision-named safetensors file, for speed measurements where no trained checkpoint is
//! at hand (`benches/exec.sh`). The weights are scaled so activations stay O(1) through all
//! blocks, like a trained network's: He-scaled convolutions, residual branches damped (the
//! projection BatchNorm's γ near 0.1, the "zero-init residual" practice), and the
//! squeeze-excitation convolutions small so the gates sit near 0.5 — without that the gates of
//! a deep random network collapse to subnormal numbers, which no trained model has and which
//! slow every CPU kernel down by an order of magnitude.
//!
//! `cargo run --release -p effnet-exec --example random_model -- b7 target/bench-exec/b7.safetensors`

use std::collections::BTreeMap;
use std::path::PathBuf;

use effnet_ir::{Op, Role, Tensor};
use effnet_spec::{ModelSpec, Scheme, Variant, build_graph};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [variant, out] = args.as_slice() else {
        return Err("usage: random_model VARIANT OUT.safetensors".into());
    };
    let variant: Variant = variant.parse()?;
    let out = PathBuf::from(out);
    let spec = ModelSpec::variant(variant);
    let arch = spec.architecture();
    let scheme = Scheme::Torchvision;
    let mut graph = build_graph(&arch, &scheme.semantics(Some(variant)))?;
    let mut state = 0x5EED_u64 ^ (variant as u64);
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let ids: Vec<_> = graph.nodes().map(|(id, _)| id).collect();
    for id in ids {
        let node = graph.node_mut(id);
        let mut fill =
            |t: &mut Tensor, scale: f32, offset: f32| -> Result<(), effnet_ir::IrError> {
                let values: Vec<f32> = (0..t.numel()).map(|_| uniform() * scale + offset).collect();
                *t = Tensor::from_f32(t.shape().to_vec(), &values)?;
                Ok(())
            };
        let role = node.tag.role;
        match &mut node.op {
            Op::Conv2d(c) => {
                let fan_in = (c.in_channels / c.groups * c.kernel[0] * c.kernel[1]) as f32;
                // Uniform(−a, a) with variance 2 / fan_in (0.02 / fan_in in SE).
                let gain = if matches!(role, Role::SeReduce | Role::SeExpand) {
                    0.1
                } else {
                    1.0
                };
                fill(&mut c.weight, gain * (6.0 / fan_in).sqrt(), 0.0)?;
                if let Some(b) = &mut c.bias {
                    fill(b, 0.1, 0.0)?;
                }
            }
            Op::Dense(d) => {
                fill(&mut d.weight, (3.0 / d.in_features as f32).sqrt(), 0.0)?;
                if let Some(b) = &mut d.bias {
                    fill(b, 0.1, 0.0)?;
                }
            }
            Op::BatchNorm(bn) => {
                let (spread, centre) = if role == Role::ProjectBn {
                    (0.05, 0.1)
                } else {
                    (0.2, 1.0)
                };
                for g in bn.gamma.iter_mut() {
                    fill(g, spread, centre)?;
                }
                for b in bn.beta.iter_mut() {
                    fill(b, 0.1, 0.0)?;
                }
                fill(&mut bn.mean, 0.1, 0.0)?;
                fill(&mut bn.var, 0.2, 1.0)?;
            }
            _ => {}
        }
    }
    let exported = effnet_naming::export::export(&graph, Some(variant), scheme)?;
    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_owned(), "pt".to_owned());
    metadata.insert("effnet.naming".to_owned(), scheme.name().to_owned());
    metadata.insert(
        "effnet.note".to_owned(),
        format!(
            "{} with seeded random weights (effnet-exec example random_model)",
            spec.label()
        ),
    );
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    effnet_safetensors::write(&out, &exported.tensors, &metadata)?;
    println!("{}: {} tensors", out.display(), exported.tensors.len());
    Ok(())
}
