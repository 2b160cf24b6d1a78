//! Zip archives for the cases, written byte by byte: stored members, or members deflated by a
//! fixed-Huffman encoder (RFC 1951 §3.2.6) that takes literals and back-references as given, so
//! that a flood of runs is written without holding a compressor. CRC-32 computed. Also reads the
//! stored members of a committed archive (`keras3-tiny.keras` is all stored) to edit them.

/// CRC-32 (IEEE) lookup table.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE) of `bytes`, continuing from `crc` (0 to start).
fn crc32_update(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// CRC-32 (IEEE).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32_update(0, bytes)
}

/// A zip entry: its name, its bytes as the archive holds them, and the size its headers declare
/// (its real size unless a test lies).
pub struct Entry {
    pub name: String,
    pub data: Vec<u8>,
    pub declared: Option<u32>,
    /// 0 stored, 8 deflated.
    method: u16,
    crc: u32,
    /// Uncompressed size.
    size: u32,
}

/// A stored entry.
pub fn entry(name: &str, data: &[u8]) -> Entry {
    Entry {
        name: name.into(),
        data: data.to_vec(),
        declared: None,
        method: 0,
        crc: crc32(data),
        size: data.len() as u32,
    }
}

/// A deflated entry from a finished stream.
pub fn deflated(name: &str, stream: Deflate) -> Entry {
    let (data, crc, size) = stream.finish();
    Entry {
        name: name.into(),
        data,
        declared: None,
        method: 8,
        crc,
        size: u32::try_from(size).expect("under 4 GiB"),
    }
}

/// A deflated entry holding `data` as literals (no compression, a deflated member all the same).
pub fn deflated_literals(name: &str, data: &[u8]) -> Entry {
    let mut stream = Deflate::new();
    stream.literals(data);
    deflated(name, stream)
}

/// A zip archive of `entries`, as `torch.save` or Python's `zipfile` writes one.
pub fn zip(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut directory = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let compressed = e.declared.unwrap_or(e.data.len() as u32);
        let size = e.declared.unwrap_or(e.size);
        let name = e.name.as_bytes();
        let fields = |out: &mut Vec<u8>| {
            out.extend(20u16.to_le_bytes()); // version needed
            out.extend(0u16.to_le_bytes()); // flags
            out.extend(e.method.to_le_bytes());
            out.extend(0u32.to_le_bytes()); // time, date
            out.extend(e.crc.to_le_bytes());
            out.extend(compressed.to_le_bytes());
            out.extend(size.to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes()); // extra
        };
        out.extend(0x0403_4b50u32.to_le_bytes());
        fields(&mut out);
        out.extend_from_slice(name);
        out.extend_from_slice(&e.data);
        directory.extend(0x0201_4b50u32.to_le_bytes());
        directory.extend(20u16.to_le_bytes()); // version made by
        fields(&mut directory);
        directory.extend([0u8; 10]); // comment, disk, attributes
        directory.extend(offset.to_le_bytes());
        directory.extend_from_slice(name);
    }
    let start = out.len() as u32;
    out.extend_from_slice(&directory);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((directory.len() as u32).to_le_bytes());
    out.extend(start.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// The members of a zip archive whose members are all stored, in order (name, bytes).
pub fn stored_members(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([archive[at], archive[at + 1]]));
    let u32_at = |at: usize| u32::from_le_bytes(archive[at..at + 4].try_into().unwrap()) as usize;
    let end = archive.len() - 22;
    assert_eq!(u32_at(end), 0x0605_4b50, "no comment after the directory");
    let (count, mut at) = (u16_at(end + 10), u32_at(end + 16));
    let mut members = Vec::new();
    for _ in 0..count {
        assert_eq!(u32_at(at), 0x0201_4b50);
        assert_eq!(u16_at(at + 10), 0, "stored");
        let size = u32_at(at + 20);
        let (name_len, extra, comment) = (u16_at(at + 28), u16_at(at + 30), u16_at(at + 32));
        let name = String::from_utf8(archive[at + 46..at + 46 + name_len].to_vec()).unwrap();
        let local = u32_at(at + 42);
        let data = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        members.push((name, archive[data..data + size].to_vec()));
        at += 46 + name_len + extra + comment;
    }
    members
}

/// Base lengths of the length codes 257…285 and their extra bits.
#[rustfmt::skip]
const LENGTHS: [(u16, u32); 29] = [
    (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0), (10, 0), (11, 1), (13, 1),
    (15, 1), (17, 1), (19, 2), (23, 2), (27, 2), (31, 2), (35, 3), (43, 3), (51, 3), (59, 3),
    (67, 4), (83, 4), (99, 4), (115, 4), (131, 5), (163, 5), (195, 5), (227, 5), (258, 0),
];

/// Base distances of the distance codes 0…29 and their extra bits.
#[rustfmt::skip]
const DISTANCES: [(u16, u32); 30] = [
    (1, 0), (2, 0), (3, 0), (4, 0), (5, 1), (7, 1), (9, 2), (13, 2), (17, 3), (25, 3),
    (33, 4), (49, 4), (65, 5), (97, 5), (129, 6), (193, 6), (257, 7), (385, 7), (513, 8),
    (769, 8), (1025, 9), (1537, 9), (2049, 10), (3073, 10), (4097, 11), (6145, 11),
    (8193, 12), (12289, 12), (16385, 13), (24577, 13),
];

/// Window of back-references.
const WINDOW: usize = 1 << 15;

/// A raw deflate stream of one fixed-Huffman block, fed literals and back-references; keeps the
/// CRC-32 and size of what it inflates to.
pub struct Deflate {
    out: Vec<u8>,
    bits: u64,
    count: u32,
    window: Vec<u8>,
    size: u64,
    crc: u32,
}

impl Deflate {
    pub fn new() -> Self {
        let mut d = Deflate {
            out: Vec::new(),
            bits: 0,
            count: 0,
            window: vec![0; WINDOW],
            size: 0,
            crc: 0,
        };
        d.put(1, 1); // BFINAL
        d.put(1, 2); // BTYPE 01: fixed Huffman codes
        d
    }

    /// `n` bits of `value`, least significant first (headers, extra bits).
    fn put(&mut self, value: u32, n: u32) {
        self.bits |= u64::from(value) << self.count;
        self.count += n;
        while self.count >= 8 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.count -= 8;
        }
    }

    /// A Huffman code of `n` bits, most significant first.
    fn code(&mut self, code: u32, n: u32) {
        let reversed = code.reverse_bits() >> (32 - n);
        self.put(reversed, n);
    }

    /// A literal/length symbol in the fixed code.
    fn symbol(&mut self, s: u32) {
        match s {
            0..=143 => self.code(0x30 + s, 8),
            144..=255 => self.code(0x190 + s - 144, 9),
            256..=279 => self.code(s - 256, 7),
            _ => self.code(0xc0 + s - 280, 8),
        }
    }

    /// Records `bytes` as inflated output (window, CRC, size).
    fn emitted(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.window[(self.size as usize) % WINDOW] = b;
            self.size += 1;
        }
        self.crc = crc32_update(self.crc, bytes);
    }

    pub fn literals(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.symbol(u32::from(b));
        }
        self.emitted(bytes);
    }

    /// `len` bytes copied from `distance` back (1…32768), as matches of 3…258 bytes.
    pub fn repeat(&mut self, distance: usize, mut len: usize) {
        assert!((1..=WINDOW).contains(&distance) && distance as u64 <= self.size && len >= 3);
        while len > 0 {
            let take = if len <= 258 {
                len
            } else if len - 258 >= 3 {
                258
            } else {
                len - 3
            };
            self.matched(take, distance);
            len -= take;
        }
    }

    fn matched(&mut self, len: usize, distance: usize) {
        let i = LENGTHS
            .iter()
            .rposition(|&(base, _)| usize::from(base) <= len)
            .unwrap();
        let (base, extra) = LENGTHS[i];
        self.symbol(257 + i as u32);
        self.put((len - usize::from(base)) as u32, extra);
        let j = DISTANCES
            .iter()
            .rposition(|&(base, _)| usize::from(base) <= distance)
            .unwrap();
        let (base, extra) = DISTANCES[j];
        self.code(j as u32, 5);
        self.put((distance - usize::from(base)) as u32, extra);
        let mut copied = Vec::with_capacity(len);
        for k in 0..len {
            let from = self.size as usize + k - distance;
            let b = if k >= distance {
                copied[k - distance]
            } else {
                self.window[from % WINDOW]
            };
            copied.push(b);
        }
        self.emitted(&copied);
    }

    /// The stream (end-of-block written, last byte padded), its CRC-32 and inflated size.
    pub fn finish(mut self) -> (Vec<u8>, u32, u64) {
        self.symbol(256);
        if self.count > 0 {
            self.out.push(self.bits as u8);
        }
        (self.out, self.crc, self.size)
    }
}
