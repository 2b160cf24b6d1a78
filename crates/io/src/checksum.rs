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

#[cfg(test)]
mod tests {
    use super::*;

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
