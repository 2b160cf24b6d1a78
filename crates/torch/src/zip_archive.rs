//! The zip container (`torch.save`, `torch.jit.save`): entries checked to lie inside the
//! file without overlapping, `data.pkl` scanned and evaluated, storages mapped (or inflated)
//! and their CRC-32s verified.

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use effnet_io::{Budget, escape};
use effnet_ir::Bytes;
use memmap2::Mmap;

use crate::{
    Container, MAX_INFLATE_RATIO, MAX_PICKLE_BYTES, Parsed, StorageBytes, TorchError, pickle_scan,
    scan_error, vm, vm_error,
};

/// Where a zip entry lies in the file.
#[derive(Clone)]
struct EntryPlace {
    name: String,
    header_start: u64,
    data_start: u64,
    compressed: u64,
    size: u64,
    stored: bool,
    crc: u32,
}

/// A zip archive (`torch.save` or `torch.jit.save`).
pub(crate) fn read_zip(
    path: &Path,
    file: &std::fs::File,
    map: &Arc<Mmap>,
    budget: &Budget,
) -> Result<(Parsed, ZipChecksums), TorchError> {
    let archive_err = |message: String| TorchError::Archive {
        path: path.to_owned(),
        message,
    };
    let budget_err = |reason| TorchError::Budget {
        path: path.to_owned(),
        reason,
    };
    // torch writes archives from offset 0; a known offset spares the zip crate a scan of the
    // whole file for a prepended-data offset.
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut archive = zip::ZipArchive::with_config(config, Cursor::new(&map[..])).map_err(|e| {
        archive_err(format!(
            "not a readable zip archive: {}",
            escape(&e.to_string())
        ))
    })?;
    // The zip crate's directory: at most one entry per 46 bytes of central directory.
    budget
        .memory_for(archive.len() as u64, 512, || {
            format!("the zip directory ({} entries)", archive.len())
        })
        .map_err(budget_err)?;
    let mut pickle_entry: Option<(usize, String)> = None;
    let mut torchscript = false;
    let mut entries: HashMap<String, usize> = HashMap::with_capacity(archive.len());
    let mut places: Vec<EntryPlace> = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| archive_err(format!("zip entry #{i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| archive_err(format!("zip entry #{i} has an unreadable name: {e}")))?
            .into_owned();
        if name.starts_with('/') || name.contains('\\') || name.split('/').any(|c| c == "..") {
            return Err(archive_err(format!(
                "zip entry `{}` points outside the archive",
                escape(&name)
            )));
        }
        let (size, compressed) = (entry.size(), entry.compressed_size());
        if size > 1 << 20 && size / compressed.max(1) > MAX_INFLATE_RATIO {
            return Err(archive_err(format!(
                "zip entry `{}` inflates {compressed} bytes to {size} (a decompression bomb?)",
                escape(&name)
            )));
        }
        let stored = entry.compression() == zip::CompressionMethod::Stored;
        if stored && size != compressed {
            return Err(archive_err(format!(
                "zip entry `{}` is stored, but its sizes differ ({compressed} stored, {size} declared)",
                escape(&name)
            )));
        }
        let data_start = entry.data_start().ok_or_else(|| {
            archive_err(format!("zip entry `{}` has no data offset", escape(&name)))
        })?;
        places.push(EntryPlace {
            name: name.clone(),
            header_start: entry.header_start(),
            data_start,
            compressed,
            size,
            stored,
            crc: entry.crc32(),
        });
        let parts: Vec<&str> = name.split('/').collect();
        if parts.len() == 2 && parts[1] == "data.pkl" {
            if pickle_entry.is_some() {
                return Err(archive_err(
                    "the archive holds more than one data.pkl".into(),
                ));
            }
            pickle_entry = Some((i, parts[0].to_owned()));
        }
        if parts.len() >= 2 && (parts[1] == "constants.pkl" || parts[1] == "code") {
            torchscript = true;
        }
        budget
            .memory(2 * name.len() as u64 + 64, || "the zip entry names".into())
            .map_err(budget_err)?;
        entries.insert(name, i);
    }
    check_entry_bounds(&places, archive.central_directory_start(), map.len() as u64)
        .map_err(archive_err)?;
    let (index, root) = pickle_entry.ok_or_else(|| TorchError::Unsupported {
        path: path.to_owned(),
        message: "a zip archive without <root>/data.pkl: not a PyTorch checkpoint".into(),
    })?;
    let place = &places[index];
    if place.size > MAX_PICKLE_BYTES {
        return Err(archive_err(format!(
            "data.pkl declares {} bytes, more than the {MAX_PICKLE_BYTES} accepted",
            place.size
        )));
    }
    let pickle: std::borrow::Cow<'_, [u8]> = if place.stored {
        let bytes = stored_bytes(map, place);
        verify_crcs(&[(place, bytes)], &|_| {}).map_err(archive_err)?;
        std::borrow::Cow::Borrowed(bytes)
    } else {
        budget
            .memory(place.size, || "data.pkl, inflated".into())
            .map_err(budget_err)?;
        std::borrow::Cow::Owned(
            read_entry(&mut archive, place).map_err(|e| archive_err(format!("data.pkl: {e}")))?,
        )
    };
    let (globals, _) =
        pickle_scan::scan(&pickle, 0, budget).map_err(|reason| scan_error(path, reason))?;
    let (root_value, _) = vm::evaluate(&pickle, 0, budget).map_err(|e| vm_error(path, e))?;
    let named = root_value.tensors(budget).map_err(|e| vm_error(path, e))?;
    drop(root_value);

    let mut storages = StorageBytes::new();
    let mut members: Vec<(EntryPlace, Bytes)> = Vec::new();
    let mut wanted: HashSet<&str> = HashSet::new();
    for (_, t) in &named {
        if !wanted.insert(&t.storage.key) {
            continue;
        }
        let entry_name = format!("{root}/data/{}", t.storage.key);
        let &i = entries
            .get(&entry_name)
            .ok_or_else(|| archive_err(format!("storage `{}` is missing", escape(&entry_name))))?;
        let place = &places[i];
        let bytes = if place.stored {
            let storage: Arc<dyn effnet_ir::Storage> = map.clone();
            let bytes = Bytes::new(
                storage,
                usize::try_from(place.data_start).unwrap_or(usize::MAX),
                usize::try_from(place.size).unwrap_or(usize::MAX),
            )
            .map_err(|e| archive_err(format!("{}: {e}", escape(&entry_name))))?;
            members.push((place.clone(), bytes.clone()));
            bytes
        } else {
            budget
                .memory(place.size, || {
                    format!("the inflated storage `{}`", escape(&entry_name))
                })
                .map_err(budget_err)?;
            Bytes::from_vec(
                read_entry(&mut archive, place)
                    .map_err(|e| archive_err(format!("{}: {e}", escape(&entry_name))))?,
            )
        };
        storages.insert(t.storage.key.clone(), bytes);
    }
    let pending = ZipChecksums {
        path: path.to_owned(),
        file: file.try_clone().map_err(|e| TorchError::Io {
            path: path.to_owned(),
            reason: e,
        })?,
        members,
    };
    let container = if torchscript {
        Container::TorchScript
    } else {
        Container::Zip
    };
    Ok(((container, globals, named, storages), pending))
}

/// The CRC-32s of the stored storage entries, not yet compared.
pub(crate) struct ZipChecksums {
    path: std::path::PathBuf,
    file: std::fs::File,
    /// Each entry, with the bytes it holds.
    members: Vec<(EntryPlace, Bytes)>,
}

impl std::fmt::Debug for ZipChecksums {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZipChecksums({} entries)", self.members.len())
    }
}

impl ZipChecksums {
    /// Compares the CRC-32s of the entries `tensor`'s bytes lie in (every one given `None`,
    /// or for a tensor whose bytes are no view of the file: a strided copy may hold any).
    pub(crate) fn check(&self, tensor: Option<&effnet_ir::Tensor>) -> Result<(), TorchError> {
        let source = tensor.and_then(effnet_ir::Tensor::stored_bytes);
        let entries: Vec<&EntryPlace> = self
            .members
            .iter()
            .filter(|(_, bytes)| source.is_none_or(|source| bytes.overlaps(source)))
            .map(|(place, _)| place)
            .collect();
        // Read from the file, not the map: checking a 267 MB archive maps none of it into the
        // process (a conversion maps each tensor as it goes and releases it in turn).
        verify_file_crcs(&self.file, &entries).map_err(|message| TorchError::Archive {
            path: self.path.clone(),
            message,
        })
    }
}

impl effnet_ir::PendingChecksums for ZipChecksums {
    fn verify(&self, tensor: Option<&effnet_ir::Tensor>) -> Result<(), effnet_ir::ChecksumError> {
        self.check(tensor).map_err(|e| Box::new(e) as _)
    }
}

/// The bytes of a stored entry (inside the file: checked by [`check_entry_bounds`]).
fn stored_bytes<'m>(map: &'m Mmap, place: &EntryPlace) -> &'m [u8] {
    let start = usize::try_from(place.data_start).unwrap_or(usize::MAX);
    let len = usize::try_from(place.compressed).unwrap_or(usize::MAX);
    start
        .checked_add(len)
        .and_then(|end| map.get(start..end))
        .unwrap_or_default()
}

/// Every entry's local header and data lie inside the file, before the central directory,
/// and no two overlap (as Python's zipfile requires): an entry whose size runs into the next
/// entry is refused instead of read.
fn check_entry_bounds(places: &[EntryPlace], directory: u64, file_len: u64) -> Result<(), String> {
    let mut order: Vec<&EntryPlace> = places.iter().collect();
    order.sort_unstable_by_key(|p| p.header_start);
    let end_of = |p: &EntryPlace| p.data_start.checked_add(p.compressed);
    for (k, p) in order.iter().enumerate() {
        let end = end_of(p)
            .filter(|&e| e <= file_len && e <= directory && p.data_start >= p.header_start)
            .ok_or_else(|| {
                format!(
                    "zip entry `{}` ({} bytes at offset {}) runs past the entries' area of the archive",
                    escape(&p.name),
                    p.compressed,
                    p.data_start
                )
            })?;
        if let Some(next) = order.get(k + 1) {
            if end > next.header_start {
                return Err(format!(
                    "zip entry `{}` ({} bytes at offset {}) runs into the next entry `{}` at offset {}",
                    escape(&p.name),
                    p.compressed,
                    p.data_start,
                    escape(&next.name),
                    next.header_start
                ));
            }
        }
    }
    Ok(())
}

/// Checks the recorded CRC-32 of stored entries by reading them from `file` on every core.
fn verify_file_crcs(file: &std::fs::File, entries: &[&EntryPlace]) -> Result<(), String> {
    let ranges: Vec<(u64, u64)> = entries.iter().map(|p| (p.data_start, p.size)).collect();
    let crcs = effnet_io::checksum::crc32_file_parts(file, &ranges, 8 << 20)
        .map_err(|e| format!("reading the stored entries: {e}"))?;
    for (place, crc) in entries.iter().zip(crcs) {
        if crc != place.crc {
            return Err(crc_mismatch(place, crc));
        }
    }
    Ok(())
}

fn crc_mismatch(place: &EntryPlace, crc: u32) -> String {
    format!(
        "zip entry `{}` fails its CRC-32 check (computed {crc:08x}, recorded {:08x}): the file is corrupt",
        escape(&place.name),
        place.crc
    )
}

/// Checks the CRC-32 of stored entries against their mapped bytes, in parallel: every entry
/// is cut into 8 MiB pieces hashed by as many threads as there are cores, the pieces' CRCs
/// then combined in order. `release` is called on each piece once it is hashed.
fn verify_crcs(
    entries: &[(&EntryPlace, &[u8])],
    release: &(dyn Fn(&[u8]) + Sync),
) -> Result<(), String> {
    verify_crcs_in_pieces(entries, 8 << 20, release)
}

fn verify_crcs_in_pieces(
    entries: &[(&EntryPlace, &[u8])],
    piece: usize,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Result<(), String> {
    let parts: Vec<&[u8]> = entries.iter().map(|(_, bytes)| *bytes).collect();
    let crcs = effnet_io::checksum::crc32_parts(&parts, piece, release);
    for ((place, _), crc) in entries.iter().zip(crcs) {
        if crc != place.crc {
            return Err(crc_mismatch(place, crc));
        }
    }
    Ok(())
}

/// Reads a whole compressed zip entry: at most its declared size (charged by the caller),
/// and its CRC-32 checked.
fn read_entry<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    place: &EntryPlace,
) -> Result<Vec<u8>, String> {
    let index = archive
        .index_for_name(&place.name)
        .ok_or("the entry vanished")?;
    let entry = archive.by_index(index).map_err(|e| e.to_string())?;
    let limit = place.size;
    let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
    entry
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 != limit {
        return Err(format!(
            "inflates to {} bytes, not the {limit} its directory declares",
            out.len()
        ));
    }
    let crc = crc32fast::hash(&out);
    if crc != place.crc {
        return Err(format!(
            "fails its CRC-32 check (computed {crc:08x}, recorded {:08x}): the file is corrupt",
            place.crc
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read;

    fn place(name: &str, header_start: u64, data_start: u64, compressed: u64) -> EntryPlace {
        EntryPlace {
            name: name.into(),
            header_start,
            data_start,
            compressed,
            size: compressed,
            stored: true,
            crc: 0,
        }
    }

    #[test]
    fn entries_may_not_overlap_or_run_past_the_directory() {
        let a = place("a", 0, 31, 10);
        let b = place("b", 41, 72, 10);
        assert!(check_entry_bounds(&[a, b], 82, 200).is_ok());
        let a = place("a", 0, 31, 11);
        let b = place("b", 41, 72, 10);
        let err = check_entry_bounds(&[b, a], 82, 200).unwrap_err();
        assert!(err.contains("runs into the next entry `b`"), "{err}");
        let a = place("a", 0, 31, 100);
        assert!(check_entry_bounds(&[a], 82, 200).is_err());
        let a = place("a\n", 0, 31, u64::MAX);
        let err = check_entry_bounds(&[a], 82, 200).unwrap_err();
        assert!(!err.contains('\n'), "{err}");
    }

    /// An archive with a deflated data.pkl `{'w': tensor}` and a stored 4-byte storage.
    fn deflated_archive() -> Vec<u8> {
        use std::io::Write;
        let mut pickle = vec![0x80, 2, b'}', b'X', 1, 0, 0, 0, b'w'];
        pickle.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((X\x07\0\0\0storage");
        pickle.extend_from_slice(b"ctorch\nFloatStorage\nX\x01\0\0\0\x30X\x03\0\0\0cpuK\x01tQ");
        pickle.extend_from_slice(b"K\0K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRs.");
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", deflated).unwrap();
        zip.write_all(&pickle).unwrap();
        zip.start_file("archive/data/0", stored).unwrap();
        zip.write_all(&1f32.to_le_bytes()).unwrap();
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn a_deflated_pickle_is_read_and_its_crc_checked() {
        let dir = std::env::temp_dir().join(format!("effnet-torch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = deflated_archive();
        let path = dir.join("deflated.pth");
        std::fs::write(&path, &good).unwrap();
        let file = read(&path).unwrap();
        assert_eq!(file.checkpoint.tensors[0].0, "w");
        // The recorded CRC-32 of data.pkl changed in both headers.
        let crc = crc32fast::hash(&{
            let mut a = zip::ZipArchive::new(Cursor::new(&good)).unwrap();
            let mut out = Vec::new();
            a.by_name("archive/data.pkl")
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            out
        })
        .to_le_bytes();
        let mut bad = good.clone();
        let mut at = 0;
        while let Some(i) = bad[at..].windows(4).position(|w| w == crc) {
            bad[at + i] ^= 0xff;
            at += i + 4;
        }
        assert!(at > 0);
        std::fs::write(&path, &bad).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("CRC") || err.contains("checksum"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn crcs_are_combined_across_pieces_and_threads() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut a = place("a", 0, 0, data.len() as u64);
        a.crc = crc32fast::hash(&data);
        let mut b = place("b", 0, 0, 3);
        b.crc = crc32fast::hash(b"xyz");
        let empty = place("c", 0, 0, 0);
        for piece in [1000, 4096, 1 << 20] {
            verify_crcs_in_pieces(&[(&a, &data), (&b, b"xyz"), (&empty, b"")], piece, &|_| {})
                .unwrap();
        }
        let mut flipped = data.clone();
        flipped[99_999] ^= 1;
        let err =
            verify_crcs_in_pieces(&[(&b, b"xyz"), (&a, &flipped)], 1000, &|_| {}).unwrap_err();
        assert!(err.contains("`a` fails its CRC-32"), "{err}");
    }
}
