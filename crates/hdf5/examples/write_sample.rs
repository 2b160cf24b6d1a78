//! Writes a sample file with every feature of the writer: `cargo run -p effnet-hdf5 --example
//! write_sample -- out.h5` (read it back with h5py to check the format).

use effnet_hdf5::{AttrValue, Dataset, Dtype, Group, write};

fn main() {
    let path = std::env::args().nth(1).expect("an output path");
    let mut root = Group::new();
    root.set_attr("backend", AttrValue::String("tensorflow".into()));
    root.set_attr("empty", AttrValue::Strings(Vec::new()));
    root.set_attr("count", AttrValue::I64(-3));
    root.set_attr(
        "config",
        AttrValue::VarString("{\"big\": \"".to_owned() + &"é".repeat(100_000) + "\"}"),
    );
    root.set_attr("short", AttrValue::VarString("tiny".into()));
    let names: Vec<String> = (0..1000).map(|i| format!("layer_{i}")).collect();
    root.set_attr("layer_names", AttrValue::Strings(names.clone()));
    let layers = root.group("layers").unwrap();
    for (i, name) in names.iter().enumerate() {
        let vars = layers.group(name).unwrap().group("vars").unwrap();
        vars.set_attr("name", AttrValue::String(name.clone()));
        vars.add_dataset("0", Dataset::new(Dtype::F32, vec![2, 3], i))
            .unwrap();
    }
    root.add_dataset("half", Dataset::new(Dtype::F16, vec![4], 2000))
        .unwrap();
    root.add_dataset("double", Dataset::new(Dtype::F64, vec![1], 2001))
        .unwrap();
    root.add_dataset("scalar", Dataset::new(Dtype::I64, vec![], 2002))
        .unwrap();
    root.add_dataset("none", Dataset::new(Dtype::F32, vec![0, 5], 2003))
        .unwrap();
    let mut file = std::fs::File::create(path).unwrap();
    write(&root, &mut file, |key, w| match key {
        2000 => {
            for v in [1.0f32, -2.0, 0.5, 65504.0] {
                w.write_all(&half_bits(v).to_le_bytes())?;
            }
            Ok(())
        }
        2001 => w.write_all(&std::f64::consts::PI.to_le_bytes()),
        2002 => w.write_all(&42i64.to_le_bytes()),
        i => {
            for j in 0..6 {
                w.write_all(&((i * 6 + j) as f32).to_le_bytes())?;
            }
            Ok(())
        }
    })
    .unwrap();
}

/// f16 bits of the exactly representable values above.
fn half_bits(v: f32) -> u16 {
    match v {
        1.0 => 0x3c00,
        -2.0 => 0xc000,
        0.5 => 0x3800,
        _ => 0x7bff,
    }
}
