//! Hostile PyTorch and safetensors files, made here at test time: pickles are written opcode
//! by opcode and zip archives byte by byte (CRC-32 computed), so that only the hostile part
//! is wrong.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::zip::{Deflate, deflated, entry, zip};
use super::{file, fixture, listing, refused, refused_by_inspect_and_cost, run_limited, scratch};

/// BINUNICODE.
fn s(text: &str) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend((text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

fn long(v: i64) -> Vec<u8> {
    let mut out = vec![0x8a, 8];
    out.extend(v.to_le_bytes());
    out
}

/// `_rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), 0, shape, stride, False,
/// OrderedDict())`.
fn tensor(key: &str, shape: &[i64], stride: &[i64], numel: i64) -> Vec<u8> {
    let mut p = b"ctorch._utils\n_rebuild_tensor_v2\n((".to_vec();
    p.extend(s("storage"));
    p.extend_from_slice(b"ctorch\nFloatStorage\n");
    p.extend(s(key));
    p.extend(s("cpu"));
    p.extend(long(numel));
    p.extend_from_slice(b"tQ");
    p.extend(long(0));
    p.push(b'(');
    for &d in shape {
        p.extend(long(d));
    }
    p.extend_from_slice(b"t(");
    for &d in stride {
        p.extend(long(d));
    }
    p.extend_from_slice(b"t\x89ccollections\nOrderedDict\n)RtR");
    p
}

/// A `{name: value}` pickle from already-pickled values.
fn dict(items: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    for (k, v) in items {
        p.extend(s(k));
        p.extend_from_slice(v);
    }
    p.extend_from_slice(b"u.");
    p
}

/// A `torch.save` archive holding `pickle` as data.pkl and one 4-byte storage `0`.
fn pth(dir: &Path, name: &str, pickle: &[u8]) -> PathBuf {
    file(
        dir,
        name,
        &zip(&[
            entry("archive/data.pkl", pickle),
            entry("archive/data/0", &[0, 0, 128, 63]),
            entry("archive/version", b"3\n"),
        ]),
    )
}

/// A `torch.save` archive whose deflated data.pkl is PROTO 4, None, then `ops` MEMOIZE opcodes,
/// every 1400 of them a 4-byte pseudo-random string pushed and popped, then POP, EMPTY_DICT,
/// STOP (what `fixtures/generate/hostile_budget_fixtures.py` wrote: deflated at a ratio near
/// 75, under the 200 of the bomb check, so that only the memory budget refuses it).
fn memoize_flood(ops: usize) -> Vec<u8> {
    const EVERY: usize = 1400;
    let mut pickle = Deflate::new();
    pickle.literals(b"\x80\x04N");
    let mut state = 15u32;
    for _ in 0..ops / EVERY {
        pickle.literals(&[0x94]);
        pickle.repeat(1, EVERY - 1);
        let mut text = [0x8c, 4, 0, 0, 0, 0, b'0'];
        for b in &mut text[2..6] {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *b = (state >> 24) as u8;
        }
        pickle.literals(&text);
    }
    pickle.literals(b"0}.");
    zip(&[
        deflated("archive/data.pkl", pickle),
        entry("archive/data/0", &[0, 0, 128, 63]),
        entry("archive/version", b"3\n"),
    ])
}

/// A legacy stream (PyTorch ≤ 1.5) whose object pickle is `object` (protocol 2 header
/// included) and whose only storage `0` holds one float.
fn legacy(dir: &Path, name: &str, object: &[u8]) -> PathBuf {
    let mut keys = vec![0x80, 2, b']'];
    keys.extend(s("0"));
    keys.extend_from_slice(b"a.");
    legacy_with_keys(dir, name, object, &keys)
}

/// A legacy stream with its own storage key list pickle.
fn legacy_with_keys(dir: &Path, name: &str, object: &[u8], keys: &[u8]) -> PathBuf {
    let mut f = vec![0x80, 2, 0x8a, 10];
    f.extend([0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
    f.push(b'.');
    f.extend_from_slice(&[0x80, 2, b'M', 0xe9, 0x03, b'.']);
    f.extend_from_slice(&[0x80, 2, b'}', b'.']);
    f.extend_from_slice(object);
    f.extend_from_slice(keys);
    f.extend(1u64.to_le_bytes());
    f.extend([0, 0, 128, 63]);
    file(dir, name, &f)
}

/// `(((…())…))`: TUPLE1 applied `n` times to an empty tuple.
fn nested_tuples(n: usize) -> Vec<u8> {
    let mut p = vec![b')'];
    p.extend(std::iter::repeat_n(0x85u8, n));
    p
}

/// Runs `inspect` and `convert -o out.safetensors` on `path`; both must be refused and write
/// nothing. Returns inspect's error line.
fn refused_both(path: &Path) -> String {
    let dir = path.parent().unwrap();
    let before = listing(dir);
    let p = path.to_str().unwrap();
    crate::refused_or_not_efficientnet(path);
    let out = dir.join("out.safetensors");
    let line = refused(&["convert", p, "-o", out.to_str().unwrap()], path);
    assert_eq!(listing(dir), before, "nothing written");
    line
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let dir = scratch();
    // 150,000 nested tuples (150 KB), alone and beside a valid tensor, zip and legacy.
    let deep = nested_tuples(150_000);
    let alone = pth(dir.path(), "deep.pth", &dict(&[("deep", deep.clone())]));
    let beside = dict(&[("w", tensor("0", &[1], &[1], 1)), ("deep", deep)]);
    let zipped = pth(dir.path(), "deep-beside.pth", &beside);
    let old = legacy(dir.path(), "deep-legacy.pth", &beside);
    for path in [alone, zipped, old] {
        let line = refused_both(&path);
        assert!(line.contains("nest deeper"), "{line}");
    }
    // Lists a million deep through memo references, a list APPENDed into the previous one.
    let mut p = vec![0x80, 2, b']', b'r'];
    p.extend(0u32.to_le_bytes());
    for _ in 0..200_000u32 {
        // GET last; EMPTY_LIST; PUT last; APPEND (the new list into the last one).
        p.push(b'j');
        p.extend(0u32.to_le_bytes());
        p.extend_from_slice(b"]r");
        p.extend(0u32.to_le_bytes());
        p.extend_from_slice(b"a0");
    }
    p.extend_from_slice(b"]a.");
    let lists = pth(dir.path(), "deep-lists.pth", &p);
    refused_both(&lists);
}

#[test]
fn broadcast_and_overflowing_views_are_refused_within_the_budget() {
    let dir = scratch();
    // A 4-byte storage viewed as 2^20 × 2^20 through zero strides: 4 TiB if materialised.
    let broadcast = pth(
        dir.path(),
        "broadcast.pth",
        &dict(&[("w", tensor("0", &[1 << 20, 1 << 20], &[0, 0], 1))]),
    );
    assert!(std::fs::metadata(&broadcast).unwrap().len() < 1024);
    let line = refused_both(&broadcast);
    assert!(line.contains("memory"), "{line}");
    // A shape whose byte size wraps: 2^62 elements of 4 bytes.
    let wraps = pth(
        dir.path(),
        "wraps.pth",
        &dict(&[("w", tensor("0", &[1 << 62], &[1], 1))]),
    );
    let line = refused_both(&wraps);
    assert!(line.contains("overflow"), "{line}");
    // Strides whose reach overflows.
    let strides = pth(
        dir.path(),
        "strides.pth",
        &dict(&[("w", tensor("0", &[3, 3], &[1 << 62, 1 << 62], 1))]),
    );
    refused_both(&strides);
}

#[test]
fn metadata_floods_are_charged_to_the_budget() {
    let dir = scratch();
    // 10 million MEMOIZE opcodes (a 10 MB pickle): 640 MB of memo entries if allowed.
    let mut p = vec![0x80, 4, b'N'];
    p.extend(std::iter::repeat_n(0x94u8, 10_000_000));
    p.extend_from_slice(b"0}.");
    let memo = pth(dir.path(), "memo.pth", &p);
    let line = refused_both(&memo);
    assert!(line.contains("memory"), "{line}");
    // One 1 MB key in a dict referenced 50,000 times: 50 GB of dotted names.
    let mut p = vec![0x80, 2, b']', b'(', b'}', b'q', 1];
    p.extend(s(&"k".repeat(1 << 20)));
    p.extend(tensor("0", &[1], &[1], 1));
    p.push(b's');
    for _ in 0..49_999 {
        p.extend_from_slice(&[b'h', 1]);
    }
    p.extend_from_slice(b"e.");
    let shared = pth(dir.path(), "shared-key.pth", &p);
    let line = refused_both(&shared);
    assert!(line.contains("memory"), "{line}");
    // A list containing itself 100,000 times.
    let mut p = vec![0x80, 2, b']', b'q', 0];
    for _ in 0..100_000 {
        p.extend_from_slice(&[b'h', 0, b'a']);
    }
    p.push(b'.');
    refused_both(&pth(dir.path(), "self-list.pth", &p));
    // A module whose state has 100,000 entries, referenced 100,000 times: 10^10 lookups.
    let mut p = b"\x80\x02ctorch.nn.modules.conv\nConv2d\n)\x81q\x00}q\x01".to_vec();
    for chunk in 0..100 {
        p.push(b'(');
        for i in 0..1000 {
            p.extend_from_slice(&[0x8c, 6]);
            p.extend_from_slice(format!("a{:05}", chunk * 1000 + i).as_bytes());
            p.push(b'N');
        }
        p.push(b'u');
    }
    p.extend_from_slice(b"b0]");
    for _ in 0..100 {
        p.push(b'(');
        p.extend(std::iter::repeat_n([b'h', 0], 1000).flatten());
        p.push(b'e');
    }
    p.push(b'.');
    let line = refused_both(&pth(dir.path(), "state-flood.pth", &p));
    assert!(line.contains("work"), "{line}");
    // A legacy storage key list naming one 1 MB string 100,000 times.
    let mut keys = vec![0x80, 2, b']'];
    keys.extend(s(&"k".repeat(1 << 20)));
    keys.extend_from_slice(b"q\x000");
    for _ in 0..100 {
        keys.push(b'(');
        keys.extend(std::iter::repeat_n([b'h', 0], 1000).flatten());
        keys.push(b'e');
    }
    keys.push(b'.');
    let object = dict(&[("w", tensor("0", &[1], &[1], 1))]);
    let line = refused_both(&legacy_with_keys(
        dir.path(),
        "key-flood.pth",
        &object,
        &keys,
    ));
    assert!(line.contains("memory"), "{line}");
    // Deflated data.pkl floods: 99 million MEMOIZE opcodes (99 MB inflated) in a 1.3 MB
    // archive, refused by the memory budget before inflating; 30 million (30 MB, within the
    // budget to inflate) in 0.4 MB, refused as the memo grows.
    for (name, ops) in [
        ("memoize-flood-99m.pth", 99_000_000),
        ("memoize-flood-30m.pth", 30_000_000),
    ] {
        let path = file(dir.path(), name, &memoize_flood(ops));
        refused_by_inspect_and_cost(&path);
        let line = refused(&["inspect", path.to_str().unwrap()], &path);
        assert!(line.contains("memory"), "{line}");
        let out = dir.path().join("out.safetensors");
        refused(
            &[
                "convert",
                path.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
            &path,
        );
        assert!(!out.exists());
    }
    // A legacy stream whose pickle runs past the 100 MiB cap (one 101 MiB string).
    let mut object = vec![0x80, 2, b'X'];
    object.extend((101u32 << 20).to_le_bytes());
    object.extend(std::iter::repeat_n(b'x', 101 << 20));
    object.push(b'.');
    let big = legacy(dir.path(), "big-legacy.pth", &object);
    let line = refused(&["inspect", big.to_str().unwrap()], &big);
    assert!(line.contains("104857600"), "{line}");
}

/// `n` tensors named `k{i}.weight` (no naming scheme reads them: exit 2 once read).
fn many_safetensors(dir: &Path, n: usize) -> PathBuf {
    let mut header = String::from("{");
    for i in 0..n {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            "\"k{i}.weight\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[{},{}]}}",
            4 * i,
            4 * i + 4
        ));
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, 4 * n));
    file(dir, "many.safetensors", &bytes)
}

#[test]
fn a_hundred_thousand_tensors_are_read_in_linear_time() {
    let dir = scratch();
    let st = many_safetensors(dir.path(), 100_000);
    let start = Instant::now();
    refused_both(&st);
    eprintln!("100,000-tensor safetensors: {:?}", start.elapsed());
    // The same as a torch.save archive, globals memoized as torch writes them.
    let mut p = vec![0x80, 2, b'}'];
    let mut first = true;
    for chunk in 0..100 {
        p.push(b'(');
        for i in 0..1000 {
            p.extend(s(&format!("k{}.weight", chunk * 1000 + i)));
            if first {
                p.extend(tensor("0", &[1], &[1], 1));
                p.extend_from_slice(&[b'q', 0]);
                first = false;
            } else {
                // The same tensor again, through the memo (as torch writes shared storages).
                p.extend_from_slice(&[b'h', 0]);
            }
        }
        p.push(b'u');
    }
    p.push(b'.');
    let many = pth(dir.path(), "many.pth", &p);
    let start = Instant::now();
    refused_both(&many);
    eprintln!("100,000-tensor .pth: {:?}", start.elapsed());
}

#[test]
fn only_regular_files_are_read() {
    let dir = scratch();
    let fifo = dir.path().join("model.pth");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let line = refused(&["inspect", fifo.to_str().unwrap()], &fifo);
    assert!(line.contains("FIFO"), "{line}");
    for name in ["zero.pth", "zero.safetensors"] {
        let link = dir.path().join(name);
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let line = refused(&["inspect", link.to_str().unwrap()], &link);
        assert!(line.contains("device"), "{line}");
    }
}

#[test]
fn zip_entries_must_match_their_crc_and_stay_in_bounds() {
    let dir = scratch();
    let pickle = dict(&[("w", tensor("0", &[1], &[1], 1))]);
    // A storage byte changed after the CRC was recorded.
    let mut bytes = zip(&[
        entry("archive/data.pkl", &pickle),
        entry("archive/data/0", &[1, 2, 3, 4]),
        entry("archive/version", b"3\n"),
    ]);
    let at = bytes.windows(4).position(|w| w == [1, 2, 3, 4]).unwrap();
    bytes[at] = 9;
    let path = file(dir.path(), "crc.pth", &bytes);
    let line = refused_both(&path);
    assert!(line.contains("CRC-32"), "{line}");
    // The same in data.pkl.
    let mut bytes = zip(&[
        entry("archive/data.pkl", &pickle),
        entry("archive/data/0", &[1, 2, 3, 4]),
    ]);
    let at = bytes.windows(4).position(|w| w == b"cpu\x8a").unwrap();
    bytes[at] = b'g';
    let path = file(dir.path(), "crc-pickle.pth", &bytes);
    let line = refused_both(&path);
    assert!(line.contains("CRC-32"), "{line}");
    // A stored entry whose declared size runs into the next entry.
    let mut storage = entry("archive/data/0", &[1, 2, 3, 4]);
    storage.declared = Some(40);
    let path = file(
        dir.path(),
        "overlap.pth",
        &zip(&[
            entry("archive/data.pkl", &pickle),
            storage,
            entry("archive/version", b"3\n"),
        ]),
    );
    let line = refused_both(&path);
    assert!(line.contains("runs into"), "{line}");
}

#[test]
fn zero_channels_are_refused_naming_the_tensor() {
    let dir = scratch();
    let original = std::fs::read(fixture("torch/timm-tiny.safetensors")).unwrap();
    let n = u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&original[8..8 + n]).unwrap();
    // Every channel count 0, consistently (depthwise and RGB inputs kept, kernels kept): the
    // file is valid safetensors and its layers agree, but hold no channels (this reached a
    // division by zero when the graph was built).
    let mut tensors: Vec<(String, serde_json::Value)> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    tensors.sort_by_key(|(_, v)| v["data_offsets"][0].as_u64().unwrap());
    let mut zeroed = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, mut info) in tensors {
        let dims: Vec<u64> = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        let dims = match dims[..] {
            [_, i, kh, kw] => vec![0, if i == 1 || i == 3 { i } else { 0 }, kh, kw],
            [classes, _] => vec![classes, 0],
            [_] => vec![0],
            _ => dims,
        };
        let size = if info["dtype"] == "I64" { 8 } else { 4 };
        let bytes = dims.iter().product::<u64>() * size;
        info["shape"] = serde_json::json!(dims);
        info["data_offsets"] = serde_json::json!([offset, offset + bytes]);
        offset += bytes;
        zeroed.insert(name, info);
    }
    let mut json = serde_json::to_vec(&zeroed).unwrap();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    bytes.extend(std::iter::repeat_n(0u8, offset as usize));
    let path = file(dir.path(), "zero-channels.safetensors", &bytes);
    let line = refused_both(&path);
    assert!(line.contains("is 0"), "{line}");
    assert!(line.contains("tensor `"), "{line}");
}

#[test]
fn text_from_the_file_is_escaped() {
    let dir = scratch();
    // A tensor whose name forges an error line and a colour, with a lying shape.
    let forged = "w\nerror: all good\u{1b}[32m";
    let path = pth(
        dir.path(),
        "forged.pth",
        &dict(&[(forged, tensor("0", &[10], &[1], 1))]),
    );
    let outcome = run_limited(&["inspect", path.to_str().unwrap()]);
    assert!(!outcome.stderr.contains('\u{1b}'), "{}", outcome.stderr);
    let line = refused(&["inspect", path.to_str().unwrap()], &path);
    assert!(line.contains("w\\nerror: all good\\u{1b}[32m"), "{line}");
    // A STACK_GLOBAL operand with a newline.
    let mut p = vec![0x80, 4];
    p.extend(s("os\nerror: fine"));
    p.extend(s("system"));
    p.extend_from_slice(&[0x93, b'.']);
    let path = pth(dir.path(), "forged-global.pth", &p);
    let line = refused(&["inspect", path.to_str().unwrap()], &path);
    assert!(line.contains("os\\nerror: fine.system"), "{line}");
}
