//! The zip containers, structure-aware: a `torch.save` archive (a `data.pkl` of tensors over
//! storages) or a `.keras` archive (config, metadata, weights), built from the input with
//! stored or deflated members, up to 65,535 small extra members, odd member names, header
//! fields (CRC-32, sizes, name lengths, offsets, method, flags) rewritten in the local or
//! central header afterwards, bytes flipped and the archive cut. Read by `effnet_torch::read`
//! (entry walk, bounds, CRC-32 of every entry read, inflation) or `effnet_keras::read_keras3`
//! (member names, extents, CRC-32, inflation ratio and budget). First byte 2: the rest of the
//! input is the file itself, read both ways.
//!
//! Invariant checked beyond "no crash": what effnet accepts, the `zip` crate can read with
//! its CRC-32 checks, and the accepted archive's members do not overlap.
#![no_main]

#[path = "../common/mod.rs"]
mod common;

use std::io::Read;
use std::sync::OnceLock;

use common::{Bytes, Pickle};
use libfuzzer_sys::fuzz_target;

fn fixture_member(name: &str) -> &'static [u8] {
    static CONFIG: OnceLock<Vec<u8>> = OnceLock::new();
    static WEIGHTS: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = if name == "config.json" {
        &CONFIG
    } else {
        &WEIGHTS
    };
    cell.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/keras/keras3-tiny.keras"
        );
        let file = std::fs::File::open(path).expect("the .keras fixture");
        let mut archive = zip::ZipArchive::new(file).expect("a zip");
        let mut member = archive.by_name(name).expect("member");
        let mut out = Vec::new();
        member.read_to_end(&mut out).expect("read");
        out
    })
}

const CLASSES: [&str; 5] = [
    "FloatStorage",
    "HalfStorage",
    "DoubleStorage",
    "LongStorage",
    "ByteStorage",
];

fn odd_name(r: &mut Bytes) -> String {
    match r.u8() % 8 {
        0 => "../evil".into(),
        1 => "/abs".into(),
        2 => "archive/data.pkl".into(),
        3 => "a\\b".into(),
        4 => "C:x".into(),
        5 => "config.json".into(),
        6 => "archive/data/0".into(),
        _ => {
            let n = usize::from(r.u8() % 12);
            (0..n)
                .map(|_| char::from(b"./a\0:\\ ."[usize::from(r.u8() % 8)]))
                .collect()
        }
    }
}

fn torch_entries(r: &mut Bytes) -> Vec<(String, Vec<u8>, bool)> {
    let mut p = Pickle::new();
    p.op(b'}');
    p.op(b'(');
    for i in 0..r.u8() % 8 {
        let key = format!("{}", r.u8() % 6);
        let class = CLASSES[usize::from(r.u8()) % CLASSES.len()];
        let numel = r.dim();
        let offset = r.dim();
        let rank = usize::from(r.u8() % 4);
        let shape: Vec<i32> = (0..rank).map(|_| r.dim()).collect();
        let stride: Vec<i32> = (0..rank).map(|_| r.dim()).collect();
        p.str(&format!("t{i}"));
        p.tensor(&key, class, numel, offset, &shape, &stride);
    }
    p.op(b'u');
    let flags = r.u8();
    let mut entries = vec![("archive/data.pkl".to_owned(), p.finish(), flags & 1 == 1)];
    for key in 0..6u8 {
        let spec = r.u8();
        if spec & 1 == 1 {
            continue;
        }
        let len = usize::from(r.u8()) * usize::from(1 + (spec >> 5));
        let fill = if spec & 4 == 4 { 0 } else { key };
        entries.push((
            format!("archive/data/{key}"),
            vec![fill; len],
            spec & 2 == 2,
        ));
    }
    if flags & 2 == 2 {
        entries.push(("archive/version".into(), b"3\n".to_vec(), false));
    }
    if flags & 4 == 4 {
        entries.push((
            "archive/constants.pkl".into(),
            vec![0x80, 2, b'N', b'.'],
            false,
        ));
    }
    entries
}

fn keras_entries(r: &mut Bytes) -> Vec<(String, Vec<u8>, bool)> {
    let flags = r.u8();
    let mut entries = Vec::new();
    let config = match flags & 3 {
        0 => Some(fixture_member("config.json").to_vec()),
        1 => {
            let n = usize::from(r.u8());
            Some((0..n).map(|_| r.u8()).collect())
        }
        2 => Some(b"{\"config\": {\"layers\": []}}".to_vec()),
        _ => None,
    };
    if let Some(c) = config {
        entries.push(("config.json".to_owned(), c, flags & 4 == 4));
    }
    if flags & 8 == 0 {
        entries.push((
            "metadata.json".to_owned(),
            br#"{"keras_version": "3.15.1"}"#.to_vec(),
            flags & 16 == 16,
        ));
    }
    let weights = match (flags >> 5) & 3 {
        0 => Some(fixture_member("model.weights.h5").to_vec()),
        1 => Some(vec![0u8; usize::from(r.u16())]),
        2 => {
            let n = usize::from(r.u8());
            Some((0..n).map(|_| r.u8()).collect())
        }
        _ => None,
    };
    if let Some(w) = weights {
        // The fixture's weights stay stored: deflating 600 KB every run would take the time.
        let deflated = flags & 128 == 128 && w.len() < 1 << 16;
        entries.push(("model.weights.h5".to_owned(), w, deflated));
    }
    entries
}

/// The checks effnet documents, made independently with the `zip` crate: every member the
/// reader needed reads with a matching CRC-32, and no two members overlap.
fn assert_sound(bytes: &[u8], needed: &[&str], what: &str) {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .unwrap_or_else(|e| panic!("{what} accepted an archive the zip crate cannot open: {e}"));
    for name in needed {
        let mut out = Vec::new();
        archive
            .by_name(name)
            .and_then(|mut m| m.read_to_end(&mut out).map_err(Into::into))
            .unwrap_or_else(|e| panic!("{what} accepted `{name}`, which fails to read: {e}"));
    }
    let mut extents = Vec::new();
    for i in 0..archive.len() {
        let m = archive.by_index_raw(i).expect("raw member");
        let end = m.data_start().expect("data start") + m.compressed_size();
        assert!(
            end <= bytes.len() as u64,
            "{what} accepted a member running past the file"
        );
        extents.push((m.header_start(), end));
    }
    extents.sort_unstable();
    for pair in extents.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "{what} accepted overlapping members {pair:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Bytes::new(data);
    let kind = r.u8() % 3;
    let bytes = if kind == 2 {
        data[1.min(data.len())..].to_vec()
    } else {
        let mut entries = if kind == 0 {
            torch_entries(&mut r)
        } else {
            keras_entries(&mut r)
        };
        // Many small members, and an odd one.
        let filler = r.u8();
        if filler & 1 == 1 {
            let count = if filler & 2 == 2 {
                usize::from(r.u16())
            } else {
                usize::from(filler >> 2)
            };
            let tag = if kind == 0 {
                "archive/extra/"
            } else {
                "assets/"
            };
            for i in 0..count {
                entries.push((
                    format!("{tag}{i}"),
                    vec![i as u8; i % 4],
                    i < 16 && i % 7 == 0,
                ));
            }
        }
        if filler & 4 == 4 {
            let name = odd_name(&mut r);
            entries.push((name, vec![1, 2, 3], false));
        }
        if filler & 8 == 8 {
            entries.reverse();
        }
        let Some(mut zip) = common::write_zip(&entries) else {
            return;
        };
        let members = common::members(&zip);
        for _ in 0..r.u8() % 6 {
            let (m, f, mode) = (usize::from(r.u8()), usize::from(r.u8()), r.u8());
            let value = r.i32() as u32;
            common::patch(&mut zip, &members, m, f, mode, value);
        }
        for _ in 0..r.u8() % 4 {
            let at = usize::from(r.u16()) % zip.len().max(1);
            let x = r.u8();
            if let Some(b) = zip.get_mut(at) {
                *b ^= x.max(1);
            }
        }
        if r.u8() & 1 == 1 {
            let keep = usize::from(r.u16()) % zip.len().max(1);
            zip.truncate(keep);
        }
        zip
    };
    let path = common::temp_path("zip");
    if std::fs::write(&path, &bytes).is_err() {
        return;
    }
    if kind != 1 {
        if let Ok(file) = effnet_torch::read(&path) {
            let root = {
                let archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).expect("zip");
                archive
                    .file_names()
                    .filter_map(|n| n.ok().map(|n| n.into_owned()))
                    .find(|n| n.ends_with("/data.pkl"))
                    .expect("a data.pkl")
            };
            assert!(!file.checkpoint.is_empty());
            assert_sound(&bytes, &[&root], "effnet_torch::read");
        }
    }
    if kind != 0 {
        if effnet_keras::read_keras3(&path).is_ok() {
            assert_sound(
                &bytes,
                &["config.json", "model.weights.h5"],
                "effnet_keras::read_keras3",
            );
        }
    }
});
