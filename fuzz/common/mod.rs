//! Input builders shared by the structure-aware targets: pickles of nested containers and
//! tensors, and zip archives (stored or deflated members, many small members, header fields
//! patched afterwards).
#![allow(dead_code)]

use std::io::Write;

/// Largest pickle a builder emits (the input stays small; repetition makes it deep).
pub const MAX_PICKLE: usize = 4 << 20;

/// A protocol-2 pickle under construction.
#[derive(Default)]
pub struct Pickle {
    pub bytes: Vec<u8>,
}

impl Pickle {
    pub fn new() -> Self {
        Self {
            bytes: vec![0x80, 2],
        }
    }
    pub fn full(&self) -> bool {
        self.bytes.len() >= MAX_PICKLE
    }
    pub fn op(&mut self, op: u8) {
        self.bytes.push(op);
    }
    pub fn int(&mut self, v: i32) {
        self.bytes.push(b'J');
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(&mut self, s: &str) {
        self.bytes.push(b'X');
        self.bytes
            .extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(s.as_bytes());
    }
    pub fn global(&mut self, module: &str, name: &str) {
        self.bytes.push(b'c');
        self.bytes.extend_from_slice(module.as_bytes());
        self.bytes.push(b'\n');
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(b'\n');
    }
    /// `OrderedDict()`.
    pub fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.bytes.extend_from_slice(b")R");
    }
    /// `_rebuild_tensor_v2(storage(key, numel), offset, shape, stride, False, OrderedDict())`.
    pub fn tensor(
        &mut self,
        key: &str,
        class: &str,
        numel: i32,
        offset: i32,
        shape: &[i32],
        stride: &[i32],
    ) {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(b'(');
        self.op(b'(');
        self.str("storage");
        self.global("torch", class);
        self.str(key);
        self.str("cpu");
        self.int(numel);
        self.op(b't');
        self.op(b'Q');
        self.int(offset);
        self.op(b'(');
        for &d in shape {
            self.int(d);
        }
        self.op(b't');
        self.op(b'(');
        for &s in stride {
            self.int(s);
        }
        self.op(b't');
        self.op(0x89);
        self.ordered_dict();
        self.op(b't');
        self.op(b'R');
    }
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.push(b'.');
        self.bytes
    }
}

/// A byte reader that yields zeros once the input is used up.
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, at: 0 }
    }
    pub fn done(&self) -> bool {
        self.at >= self.data.len()
    }
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn i32(&mut self) -> i32 {
        i32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// A small dimension, now and then an extreme one.
    pub fn dim(&mut self) -> i32 {
        match self.u8() {
            250 => 0,
            251 => -1,
            252 => i32::MAX,
            253 => 1 << 20,
            254 => self.i32(),
            b => i32::from(b % 8),
        }
    }
}

/// One instruction of the nesting language: each input byte picks an opcode sequence, so a
/// few bytes describe 100,000-deep tuples, lists containing themselves, or a wide dict.
pub fn nested_pickle(input: &[u8]) -> Vec<u8> {
    let mut r = Bytes::new(input);
    let mut p = Pickle::new();
    let mut repeat = 1usize;
    while !r.done() && !p.full() {
        let op = r.u8();
        let times = std::mem::replace(&mut repeat, 1);
        // Operands are read once and reused by every repetition.
        let arg = r.u8();
        for _ in 0..times {
            if p.full() {
                break;
            }
            match op % 26 {
                0 => p.int(i32::from(arg)),
                1 => p.str(&format!("k{arg}")),
                2 => p.op(b']'),
                3 => p.op(b'}'),
                4 => p.op(b'('),
                5 => p.op(b't'),
                6 => p.op(b'l'),
                7 => p.op(b'd'),
                8 => p.op(b'a'),
                9 => p.op(b's'),
                10 => p.op(b'e'),
                11 => p.op(b'u'),
                12 => p.op(0x85),
                13 => p.op(0x86),
                14 => p.bytes.extend_from_slice(&[b'q', arg]),
                15 => p.bytes.extend_from_slice(&[b'h', arg]),
                16 => p.op(0x94),
                17 => p.op(b')'),
                18 => p.op(b'0'),
                19 => p.op(b'2'),
                20 => p.op(b'N'),
                21 => p.ordered_dict(),
                22 => {
                    // A module record: Class.__new__ then BUILD with a state dict.
                    p.global("torch.nn.modules.conv", "Conv2d");
                    p.bytes.extend_from_slice(b")\x81}");
                    p.str("_parameters");
                    p.op(b'}');
                    p.bytes.extend_from_slice(b"sb");
                }
                23 => {
                    let rank = usize::from(arg % 5);
                    let shape: Vec<i32> = (0..rank)
                        .map(|i| [1, 2, 3, 0, 4][(i + usize::from(arg)) % 5])
                        .collect();
                    let stride: Vec<i32> = (0..rank)
                        .map(|i| [1, 0, 2, 4, 1][(i + usize::from(arg / 5)) % 5])
                        .collect();
                    p.tensor(
                        &format!("{}", arg % 4),
                        "FloatStorage",
                        16,
                        i32::from(arg % 3),
                        &shape,
                        &stride,
                    );
                }
                24 => repeat = (usize::from(arg) + 1) * 1000,
                _ => repeat = usize::from(arg) + 1,
            }
        }
    }
    p.finish()
}

/// Byte offsets of one zip member's headers, found by walking the central directory.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub local: usize,
    pub central: usize,
}

/// The members of a zip archive written by [`write_zip`], walking the central directory.
pub fn members(zip: &[u8]) -> Vec<Member> {
    let Some(eocd) = zip.windows(4).rposition(|w| w == b"PK\x05\x06") else {
        return Vec::new();
    };
    let le16 = |at: usize| {
        zip.get(at..at + 2)
            .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let le32 = |at: usize| {
        zip.get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = le16(eocd + 10);
    let mut at = le32(eocd + 16);
    let mut out = Vec::new();
    for _ in 0..count {
        if zip.get(at..at + 4) != Some(b"PK\x01\x02") {
            break;
        }
        out.push(Member {
            local: le32(at + 42),
            central: at,
        });
        at += 46 + le16(at + 28) + le16(at + 30) + le16(at + 32);
    }
    out
}

/// Writes `(name, bytes, deflated)` members into an archive in memory.
pub fn write_zip(entries: &[(String, Vec<u8>, bool)]) -> Option<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes, deflated) in entries {
        let method = if *deflated {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .large_file(false);
        zip.start_file(name.as_str(), options).ok()?;
        zip.write_all(bytes).ok()?;
    }
    Some(zip.finish().ok()?.into_inner())
}

/// Header fields of a member a patch can rewrite: (offset from the local header, from the
/// central header, width).
pub const FIELDS: [(Option<usize>, Option<usize>, usize); 10] = [
    (Some(14), Some(16), 4), // CRC-32
    (Some(18), Some(20), 4), // compressed size
    (Some(22), Some(24), 4), // size
    (Some(26), Some(28), 2), // name length
    (Some(28), Some(30), 2), // extra length
    (Some(8), Some(10), 2),  // method
    (Some(6), Some(8), 2),   // flags
    (None, Some(42), 4),     // local header offset
    (Some(14), None, 4),     // CRC-32, local only
    (None, Some(20), 4),     // compressed size, central only
];

/// Rewrites field `field` of member `member` (in the local header, the central one, or both)
/// to `value` (`mode` 0: set, 1: add, 2: xor).
pub fn patch(
    zip: &mut [u8],
    members: &[Member],
    member: usize,
    field: usize,
    mode: u8,
    value: u32,
) {
    let Some(m) = members.get(member % members.len().max(1)) else {
        return;
    };
    let (local, central, width) = FIELDS[field % FIELDS.len()];
    for at in [local.map(|o| m.local + o), central.map(|o| m.central + o)]
        .into_iter()
        .flatten()
    {
        let Some(slot) = zip.get_mut(at..at + width) else {
            continue;
        };
        let mut old = [0u8; 4];
        old[..width].copy_from_slice(slot);
        let old = u32::from_le_bytes(old);
        let new = match mode % 3 {
            0 => value,
            1 => old.wrapping_add(value),
            _ => old ^ value,
        };
        slot.copy_from_slice(&new.to_le_bytes()[..width]);
    }
}

/// A path in `$TMPDIR` private to this process, for targets whose readers map files.
pub fn temp_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("effnet-fuzz-{tag}-{}", std::process::id()))
}
