//! CRC-32 of mapped bytes on every core: each part cut into pieces hashed in parallel, the
//! pieces' CRCs combined in order, each piece released (its pages dropped from a map) once
//! hashed — how the zip readers check stored members without holding them in memory.

/// The CRC-32 of each of `parts`, hashed in pieces of `piece` bytes by as many threads as
/// there are cores; `release` is called on each piece once it is hashed.
pub fn crc32_parts(parts: &[&[u8]], piece: usize, release: &(dyn Fn(&[u8]) + Sync)) -> Vec<u32> {
    let piece = piece.max(1);
    let pieces: Vec<(usize, &[u8])> = parts
        .iter()
        .enumerate()
        .flat_map(|(i, bytes)| bytes.chunks(piece).map(move |c| (i, c)))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pieces.len().div_ceil(4))
        .max(1);
    let hash = |c: &[u8]| {
        let mut h = crc32fast::Hasher::new();
        h.update(c);
        release(c);
        h
    };
    let hashed: Vec<crc32fast::Hasher> = if threads == 1 {
        pieces.iter().map(|(_, c)| hash(c)).collect()
    } else {
        let mut out: Vec<Option<crc32fast::Hasher>> = vec![None; pieces.len()];
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let pieces = &pieces;
                    let hash = &hash;
                    scope.spawn(move || {
                        pieces
                            .iter()
                            .enumerate()
                            .skip(t)
                            .step_by(threads)
                            .map(|(k, (_, c))| (k, hash(c)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for worker in workers {
                for (k, h) in worker.join().expect("a CRC worker does not panic") {
                    out[k] = Some(h);
                }
            }
        });
        out.into_iter()
            .map(|h| h.expect("every piece hashed"))
            .collect()
    };
    let mut combined = vec![crc32fast::Hasher::new(); parts.len()];
    for ((i, _), h) in pieces.iter().zip(&hashed) {
        combined[*i].combine(h);
    }
    combined.into_iter().map(|h| h.finalize()).collect()
}

/// The CRC-32 of each of `parts` (`(offset, length)` ranges of `file`), read with `pread` into
/// a small buffer per thread and hashed on every core in pieces of `piece` bytes: no page of
/// the file is mapped into the process, so nothing has to be released (and no other core's
/// TLB flushed) afterwards.
pub fn crc32_file_parts(
    file: &std::fs::File,
    parts: &[(u64, u64)],
    piece: u64,
) -> std::io::Result<Vec<u32>> {
    use std::os::unix::fs::FileExt;
    const BUFFER: usize = 1 << 20;
    let piece = piece.max(1);
    let pieces: Vec<(usize, u64, u64)> = parts
        .iter()
        .enumerate()
        .flat_map(|(i, &(offset, len))| {
            (0..len.div_ceil(piece))
                .map(move |k| (i, offset + k * piece, piece.min(len - k * piece)))
        })
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pieces.len().div_ceil(4))
        .max(1);
    let hash = |buffer: &mut Vec<u8>, at: u64, len: u64| -> std::io::Result<crc32fast::Hasher> {
        let mut h = crc32fast::Hasher::new();
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(BUFFER as u64) as usize;
            buffer.resize(n, 0);
            file.read_exact_at(&mut buffer[..n], at + done)?;
            h.update(&buffer[..n]);
            done += n as u64;
        }
        Ok(h)
    };
    let mut hashed: Vec<Option<crc32fast::Hasher>> = vec![None; pieces.len()];
    std::thread::scope(|scope| -> std::io::Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let pieces = &pieces;
                let hash = &hash;
                scope.spawn(
                    move || -> std::io::Result<Vec<(usize, crc32fast::Hasher)>> {
                        let mut buffer = Vec::with_capacity(BUFFER);
                        pieces
                            .iter()
                            .enumerate()
                            .skip(t)
                            .step_by(threads)
                            .map(|(k, &(_, at, len))| Ok((k, hash(&mut buffer, at, len)?)))
                            .collect()
                    },
                )
            })
            .collect();
        for worker in workers {
            for (k, h) in worker.join().expect("a CRC worker does not panic")? {
                hashed[k] = Some(h);
            }
        }
        Ok(())
    })?;
    let mut combined = vec![crc32fast::Hasher::new(); parts.len()];
    for ((i, _, _), h) in pieces.iter().zip(hashed) {
        combined[*i].combine(&h.expect("every piece hashed"));
    }
    Ok(combined.into_iter().map(|h| h.finalize()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ranges_hash_to_the_crcs_of_their_bytes() {
        use std::io::Write;
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let parts = [
            (0u64, 3_000_000u64),
            (17, 1_500_001),
            (2_999_999, 1),
            (5, 0),
        ];
        for piece in [1 << 20, 777_777, 8 << 20] {
            let crcs = crc32_file_parts(&file, &parts, piece).unwrap();
            let want: Vec<u32> = parts
                .iter()
                .map(|&(o, l)| crc32fast::hash(&data[o as usize..(o + l) as usize]))
                .collect();
            assert_eq!(crcs, want, "piece {piece}");
        }
        // A range past the end is an error, not a short hash.
        assert!(crc32_file_parts(&file, &[(2_999_000, 2_000)], 1 << 20).is_err());
    }

    #[test]
    fn pieces_combine_to_the_whole_crc() {
        let a: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b = b"effnet".to_vec();
        let empty: &[u8] = &[];
        for piece in [1, 7, 4096, 1 << 20] {
            assert_eq!(
                crc32_parts(&[&a, &b, empty], piece, &|_| {}),
                [
                    crc32fast::hash(&a),
                    crc32fast::hash(&b),
                    crc32fast::hash(empty)
                ]
            );
        }
    }
}
