//! The `.index` file: a LevelDB-format sorted table (TensorFlow's `tsl/lib/io/table`).
//!
//! # On disk
//!
//! Data blocks, a meta-index block, an index block, then a 48-byte footer: two block handles
//! (meta-index, index; each a varint64 offset and varint64 size), zero padding to 40 bytes and
//! the magic `0xdb4775248b80fb57` (little-endian). Every block is followed by a 5-byte trailer:
//! its compression type (0 = none) and the masked crc32c of the block and that type byte. A
//! block holds prefix-compressed entries (varint32 shared key bytes, varint32 unshared key
//! bytes, varint32 value length, the unshared key bytes, the value), then an array of u32
//! restart offsets and their count. The index block maps each data block's last key to the
//! data block's handle.
//!
//! Keys are rebuilt from their shared prefixes one entry at a time; every key's full length is
//! charged to the reader's [`Budget`] (memory, and work for the bytes copied) before it is
//! built, so a table of long keys sharing long prefixes cannot expand far beyond the file.

use effnet_io::{Budget, BudgetError};

use crate::masked_crc32c;

/// The table magic number.
const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// The footer's size.
const FOOTER: usize = 48;
/// A block trailer's size.
const TRAILER: usize = 5;

/// What is wrong with a table. Positions are byte offsets in the `.index` file.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableError {
    /// Too short for a footer, or the magic is wrong.
    #[error("not a TensorFlow checkpoint index (no table footer)")]
    NoFooter,
    /// A block handle points outside the file.
    #[error("a block handle ({offset}, {size}) points outside the {len}-byte file")]
    BadHandle {
        /// Offset.
        offset: u64,
        /// Size.
        size: u64,
        /// File length.
        len: usize,
    },
    /// A block's checksum does not match.
    #[error("the block at byte {offset} fails its crc32c check")]
    Checksum {
        /// Offset of the block.
        offset: usize,
    },
    /// A compressed block.
    #[error(
        "the block at byte {offset} is compressed (type {kind}); TensorFlow writes checkpoint indexes uncompressed and effnet reads only those"
    )]
    Compressed {
        /// Offset of the block.
        offset: usize,
        /// Compression type (1 = snappy).
        kind: u8,
    },
    /// A block's entries cannot be parsed.
    #[error("the block at byte {offset} is malformed: {what}")]
    Malformed {
        /// Offset of the block.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// Keys out of order.
    #[error("keys out of order at `{key}`")]
    Unsorted {
        /// The key.
        key: String,
    },
    /// More entries than a checkpoint can reasonably hold.
    #[error("more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// The keys would take more memory or work than the file's size allows.
    #[error("{0}")]
    Budget(#[from] BudgetError),
}

/// A table entry: the key and a view of its value.
pub type Entry<'a> = (Vec<u8>, &'a [u8]);

/// The most entries effnet reads from one table (a B7 with optimizer state has a few thousand).
pub const MAX_ENTRIES: usize = 1_000_000;

/// Reads a varint of at most `max_bytes` bytes from `bytes[*pos..]`.
fn varint(bytes: &[u8], pos: &mut usize, max_bytes: usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..max_bytes {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A varint64 (at most 10 bytes).
pub(crate) fn varint64(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    varint(bytes, pos, 10)
}

fn varint32(bytes: &[u8], pos: &mut usize) -> Option<usize> {
    varint(bytes, pos, 5)
        .and_then(|v| u32::try_from(v).ok())
        .map(|v| v as usize)
}

/// A block's position in the file.
#[derive(Clone, Copy, Debug)]
struct Handle {
    offset: u64,
    size: u64,
}

fn handle(bytes: &[u8], pos: &mut usize) -> Option<Handle> {
    Some(Handle {
        offset: varint64(bytes, pos)?,
        size: varint64(bytes, pos)?,
    })
}

/// The contents of the block at `h`, checksum verified.
fn block(file: &[u8], h: Handle) -> Result<&[u8], TableError> {
    let bad = TableError::BadHandle {
        offset: h.offset,
        size: h.size,
        len: file.len(),
    };
    let start = usize::try_from(h.offset).map_err(|_| bad.clone())?;
    let size = usize::try_from(h.size).map_err(|_| bad.clone())?;
    let end = start
        .checked_add(size)
        .and_then(|e| e.checked_add(TRAILER))
        .filter(|&e| e <= file.len())
        .ok_or(bad)?;
    let with_type = &file[start..start + size + 1];
    let stored = u32::from_le_bytes(file[end - 4..end].try_into().expect("4 bytes"));
    if masked_crc32c(with_type) != stored {
        return Err(TableError::Checksum { offset: start });
    }
    match with_type[size] {
        0 => Ok(&with_type[..size]),
        kind => Err(TableError::Compressed {
            offset: start,
            kind,
        }),
    }
}

/// Memory charged per entry beyond its key bytes: the entry itself in the table's vector.
const ENTRY_OVERHEAD: u64 = std::mem::size_of::<Entry<'static>>() as u64;

/// The `(key, value)` entries of a block, in order; each key's memory and copying are charged
/// to `budget` before the key is built.
fn entries<'a>(
    contents: &'a [u8],
    offset: usize,
    budget: &Budget,
) -> Result<Vec<Entry<'a>>, TableError> {
    let malformed = |what| TableError::Malformed { offset, what };
    if contents.len() < 4 {
        return Err(malformed("shorter than its restart count"));
    }
    let restarts =
        u32::from_le_bytes(contents[contents.len() - 4..].try_into().expect("4 bytes")) as usize;
    let data_end = restarts
        .checked_mul(4)
        .and_then(|r| r.checked_add(4))
        .and_then(|r| contents.len().checked_sub(r))
        .ok_or_else(|| malformed("restart array longer than the block"))?;
    let data = &contents[..data_end];
    let mut out: Vec<Entry<'_>> = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let header = (|| {
            Some((
                varint32(data, &mut pos)?,
                varint32(data, &mut pos)?,
                varint32(data, &mut pos)?,
            ))
        })();
        let (shared, unshared, value_len) =
            header.ok_or_else(|| malformed("a truncated entry header"))?;
        if shared > key.len() {
            return Err(malformed("an entry shares more key bytes than there are"));
        }
        let key_end = pos
            .checked_add(unshared)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| malformed("a key past the block's end"))?;
        let value_end = key_end
            .checked_add(value_len)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| malformed("a value past the block's end"))?;
        let full = (shared + unshared) as u64;
        budget.memory(full + ENTRY_OVERHEAD, || {
            format!("the keys of the index block at byte {offset}")
        })?;
        budget.work(full + 1, || {
            format!("rebuilding the keys of the index block at byte {offset}")
        })?;
        key.truncate(shared);
        key.extend_from_slice(&data[pos..key_end]);
        out.push((key.clone(), &data[key_end..value_end]));
        pos = value_end;
    }
    Ok(out)
}

/// Every `(key, value)` of the table, in key order, within the budget of a file of its size.
pub fn read(file: &[u8]) -> Result<Vec<Entry<'_>>, TableError> {
    read_with_budget(file, &Budget::for_input(file.len() as u64))
}

/// Every `(key, value)` of the table, in key order; keys are charged to `budget`.
pub fn read_with_budget<'a>(file: &'a [u8], budget: &Budget) -> Result<Vec<Entry<'a>>, TableError> {
    if file.len() < FOOTER {
        return Err(TableError::NoFooter);
    }
    let footer = &file[file.len() - FOOTER..];
    if u64::from_le_bytes(footer[40..].try_into().expect("8 bytes")) != MAGIC {
        return Err(TableError::NoFooter);
    }
    let mut pos = 0;
    let _meta_index = handle(footer, &mut pos).ok_or(TableError::NoFooter)?;
    let index = handle(footer, &mut pos).ok_or(TableError::NoFooter)?;
    let index_offset = usize::try_from(index.offset).unwrap_or(usize::MAX);
    let index_entries = entries(block(file, index)?, index_offset, budget)?;
    let mut out: Vec<Entry<'_>> = Vec::new();
    for (_, value) in index_entries {
        let mut p = 0;
        let h = handle(value, &mut p).ok_or(TableError::Malformed {
            offset: index_offset,
            what: "an index entry that is not a block handle",
        })?;
        let offset = usize::try_from(h.offset).unwrap_or(usize::MAX);
        for (key, value) in entries(block(file, h)?, offset, budget)? {
            if out.last().is_some_and(|(last, _)| *last >= key) {
                return Err(TableError::Unsorted {
                    key: crate::text(&String::from_utf8_lossy(&key)),
                });
            }
            if out.len() == MAX_ENTRIES {
                return Err(TableError::TooManyEntries { limit: MAX_ENTRIES });
            }
            out.push((key, value));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_and_refuse_overlong() {
        let mut pos = 0;
        assert_eq!(varint64(&[0xac, 0x02], &mut pos), Some(300));
        assert_eq!(pos, 2);
        let mut pos = 0;
        assert_eq!(varint32(&[0xff; 6], &mut pos), None);
        let mut pos = 0;
        assert_eq!(varint64(&[0x80], &mut pos), None);
    }

    #[test]
    fn short_or_foreign_files_have_no_footer() {
        assert_eq!(read(b"tiny"), Err(TableError::NoFooter));
        assert_eq!(read(&[0u8; 64]), Err(TableError::NoFooter));
    }

    #[test]
    fn entries_refuse_a_restart_count_beyond_the_block() {
        let block = [0u8, 0, 0, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(
            entries(&block, 0, &Budget::for_input(7)),
            Err(TableError::Malformed { .. })
        ));
    }

    /// A block of `n` entries whose keys each share all of the previous key and add `step`
    /// bytes: the file grows by `step` bytes an entry, the keys by the whole key length.
    fn growing_keys_block(n: usize, step: usize) -> Vec<u8> {
        let mut block = Vec::new();
        for i in 0..n {
            let shared = i * step;
            for v in [shared, step, 0] {
                let mut v = v as u64;
                loop {
                    let byte = (v & 0x7f) as u8;
                    v >>= 7;
                    if v == 0 {
                        block.push(byte);
                        break;
                    }
                    block.push(byte | 0x80);
                }
            }
            block.extend(std::iter::repeat_n(b'a', step));
        }
        block.extend(0u32.to_le_bytes());
        block
    }

    #[test]
    fn prefix_compressed_keys_are_charged_in_full() {
        // 20,000 entries adding 4 bytes each: an 120 KB block whose keys would take 800 MB.
        let block = growing_keys_block(20_000, 4);
        assert!(block.len() < 200_000);
        let budget = Budget::for_input(block.len() as u64);
        let err = entries(&block, 0, &budget).unwrap_err();
        assert!(matches!(err, TableError::Budget(_)), "{err}");
        assert!(budget.memory_used() <= budget.memory_limit());
        // The same keys, few enough, are read.
        let block = growing_keys_block(100, 4);
        let keys = entries(&block, 0, &Budget::for_input(block.len() as u64)).unwrap();
        assert_eq!(keys.len(), 100);
        assert_eq!(keys[99].0.len(), 400);
    }
}
