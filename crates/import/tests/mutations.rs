//! Bytes flipped in real files never panic the importers: every mutated fixture either opens
//! or fails with an error (the binary turns it into exit 2). Seeded, so a failure reproduces.

use std::path::{Path, PathBuf};

use effnet_import::{ImportOptions, open};

/// xorshift64*: enough randomness to place bit flips, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(path)
}

#[test]
fn flipped_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut rng = Rng(0x5eed_e44e_7000_0001);
    for source in [
        "torch/torchvision-tiny.pth",
        "torch/torchvision-tiny-legacy.pth",
        "torch/torchvision-tiny-script.pt",
        "torch/timm-tiny.safetensors",
        "keras/keras-tiny.h5",
        "keras/keras3-tiny.keras",
        "tf/keras3-tiny.weights.h5",
    ] {
        let original = std::fs::read(fixture(source)).unwrap();
        for round in 0..60 {
            let mut bytes = original.clone();
            // Structure lives near the ends (pickles, headers, zip directories, HDF5 superblock).
            for _ in 0..1 + rng.below(4) {
                let span = 32 * 1024.min(bytes.len());
                let at = if rng.below(2) == 0 {
                    rng.below(span)
                } else {
                    bytes.len() - 1 - rng.below(span)
                };
                bytes[at] ^= 1 << rng.below(8);
            }
            if round % 10 == 9 {
                bytes.truncate(rng.below(bytes.len()));
            }
            let path = dir.join(format!("mutated-{round}"));
            std::fs::write(&path, &bytes).unwrap();
            let result = std::panic::catch_unwind(|| {
                let _ = open(&path, &ImportOptions::default());
            });
            assert!(
                result.is_ok(),
                "{source}: round {round} panicked (seed state {:#x})",
                rng.0
            );
        }
    }
}

#[test]
fn flipped_checkpoint_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut rng = Rng(0x5eed_7f00_0000_0002);
    let source = fixture("tf/keras-tiny-ckpt");
    for file in ["ckpt.index", "ckpt.data-00000-of-00001"] {
        let original = std::fs::read(source.join(file)).unwrap();
        for round in 0..40 {
            for other in ["ckpt.index", "ckpt.data-00000-of-00001", "checkpoint"] {
                std::fs::copy(source.join(other), dir.join(other)).unwrap();
            }
            let mut bytes = original.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            if round % 8 == 7 {
                bytes.truncate(rng.below(bytes.len()));
            }
            std::fs::write(dir.join(file), &bytes).unwrap();
            let result = std::panic::catch_unwind(|| {
                let _ = open(dir, &ImportOptions::default());
            });
            assert!(
                result.is_ok(),
                "{file}: round {round} panicked (seed state {:#x})",
                rng.0
            );
        }
    }
}
