//! Helpers shared by the integration tests.

// Each test binary uses some of them.
#![allow(dead_code)]

use std::path::Path;

use effnet_exec::Array;
use serde_json::Value;

/// The float32 tensors of a fixture's reference I/O (safetensors).
pub fn read_io(path: &Path, name: &str) -> Array {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let info = &header[name];
    let shape = info["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let (b, e) = (
        info["data_offsets"][0].as_u64().unwrap() as usize,
        info["data_offsets"][1].as_u64().unwrap() as usize,
    );
    let data = bytes[8 + n + b..8 + n + e]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Array { shape, data }
}

/// Writes `dst` as the safetensors file `src` with only the tensors `keep` accepts, plus
/// `extra` tensors `(new name, copy of)` and `raw` ones `(name, dtype, shape, bytes)`: a file
/// derived from one a framework wrote.
pub fn rewrite_safetensors(
    src: &str,
    dst: &std::path::Path,
    keep: impl Fn(&str) -> bool,
    extra: &[(&str, &str)],
    raw: &[(&str, &str, &[usize], &[u8])],
) {
    let bytes = std::fs::read(src).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let slice = |entry: &Value| {
        let offsets = entry["data_offsets"].as_array().unwrap();
        let (a, b) = (offsets[0].as_u64().unwrap(), offsets[1].as_u64().unwrap());
        &data[a as usize..b as usize]
    };
    let mut out_header = serde_json::Map::new();
    let mut out_data = Vec::new();
    let mut push = |name: &str, entry: &Value| {
        let chunk = slice(entry);
        let start = out_data.len();
        out_data.extend_from_slice(chunk);
        out_header.insert(
            name.to_owned(),
            serde_json::json!({
                "dtype": entry["dtype"],
                "shape": entry["shape"],
                "data_offsets": [start, out_data.len()],
            }),
        );
    };
    for (name, entry) in &header {
        if name != "__metadata__" && keep(name) {
            push(name, entry);
        }
    }
    for (name, source) in extra {
        push(name, &header[*source]);
    }
    for (name, dtype, shape, bytes) in raw {
        let start = out_data.len();
        out_data.extend_from_slice(bytes);
        out_header.insert(
            (*name).to_owned(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, out_data.len()]}),
        );
    }
    let mut text = serde_json::to_vec(&out_header).unwrap();
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut file = (text.len() as u64).to_le_bytes().to_vec();
    file.extend(text);
    file.extend(out_data);
    std::fs::write(dst, file).unwrap();
}
