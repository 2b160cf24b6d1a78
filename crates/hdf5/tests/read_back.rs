//! What the writer produces reads back through an independent HDF5 reader (hdf5-reader, which
//! verifies the version 2 checksums): the tree, the values, the attributes. h5py/libhdf5 read the
//! same files in `tests/keras/check_keras.py` (through Keras) and with
//! `cargo run -p effnet-hdf5 --example write_sample`.

use std::io::Write;

use effnet_hdf5::{AttrValue, Dataset, Dtype, Group, write};
use hdf5_reader::Hdf5File;

#[test]
fn a_written_file_reads_back() {
    let mut root = Group::new();
    root.set_attr("backend", AttrValue::String("tensorflow".into()));
    let names: Vec<String> = (0..300).map(|i| format!("layer_{i}")).collect();
    root.set_attr("layer_names", AttrValue::Strings(names.clone()));
    root.set_attr("empty", AttrValue::Strings(Vec::new()));
    let config = format!("{{\"layers\": \"{}\"}}", "x".repeat(200_000));
    root.set_attr("model_config", AttrValue::VarString(config.clone()));
    let layers = root.group("layers").unwrap();
    for (i, name) in names.iter().enumerate() {
        let vars = layers.group(name).unwrap().group("vars").unwrap();
        vars.set_attr("name", AttrValue::String(name.clone()));
        vars.add_dataset("0", Dataset::new(Dtype::F32, vec![2, 3], i))
            .unwrap();
    }
    root.add_dataset("count", Dataset::new(Dtype::I64, vec![], 1000))
        .unwrap();
    root.add_dataset("half", Dataset::new(Dtype::F16, vec![2], 1001))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.h5");
    let mut file = std::fs::File::create(&path).unwrap();
    let size = write(&root, &mut file, |key, w| match key {
        1000 => w.write_all(&7i64.to_le_bytes()),
        // 1.0 and -2.0 in f16.
        1001 => w.write_all(&[0x00, 0x3c, 0x00, 0xc0]),
        i => (0..6).try_for_each(|j| w.write_all(&((i * 10 + j) as f32).to_le_bytes())),
    })
    .unwrap();
    file.flush().unwrap();
    assert_eq!(size, std::fs::metadata(&path).unwrap().len());

    let h5 = Hdf5File::open(&path).unwrap();
    let root = h5.root_group().unwrap();
    assert_eq!(
        root.attribute("backend").unwrap().read_string().unwrap(),
        "tensorflow"
    );
    assert_eq!(
        root.attribute("layer_names")
            .unwrap()
            .read_strings()
            .unwrap(),
        names
    );
    assert_eq!(
        root.attribute("model_config")
            .unwrap()
            .read_string()
            .unwrap(),
        config
    );
    assert!(
        root.attribute("empty")
            .unwrap()
            .read_strings()
            .unwrap()
            .is_empty()
    );
    let layer = h5.dataset("/layers/layer_299/vars/0").unwrap();
    assert_eq!(layer.shape(), [2, 3]);
    let values: Vec<f32> = layer.read_array::<f32>().unwrap().iter().copied().collect();
    assert_eq!(values, [2990.0, 2991.0, 2992.0, 2993.0, 2994.0, 2995.0]);
    let vars = h5.group("/layers/layer_5/vars").unwrap();
    assert_eq!(
        vars.attribute("name").unwrap().read_string().unwrap(),
        "layer_5"
    );
    let count = h5.dataset("/count").unwrap();
    assert_eq!(
        count
            .read_array::<i64>()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [7]
    );
    assert_eq!(
        h5.dataset("/half").unwrap().read_raw_bytes().unwrap(),
        [0x00, 0x3c, 0x00, 0xc0]
    );
}
