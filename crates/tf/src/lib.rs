//! TensorFlow tensor-bundle checkpoints (`x.index` + `x.data-0000N-of-0000M`) as named tensors.
//!
//! # On disk
//!
//! The `.index` file is a sorted table ([`table`]) mapping each tensor's key to a
//! [`proto::BundleEntryProto`] (dtype, shape, shard, offset, size, masked crc32c); the empty key
//! holds a [`proto::BundleHeaderProto`] (shard count, endianness). The bytes live in the data
//! shards, little-endian and contiguous. TF2 object-based checkpoints (`model.save_weights`,
//! `tf.train.Checkpoint`) key tensors by object path
//! (`layer_with_weights-3/kernel/.ATTRIBUTES/VARIABLE_VALUE`) and store the object graph as a
//! serialized [`proto::TrackableObjectGraph`] in the string tensor
//! `_CHECKPOINTABLE_OBJECT_GRAPH`; TF1 name-based checkpoints (`tf.train.Saver`) key tensors by
//! variable name, often with `…/ExponentialMovingAverage` shadows and optimizer slots beside
//! them ([`name_based`]).
//!
//! Data shards are memory-mapped; tensors are views into them, each checked against its
//! crc32c. SavedModel directories are read by [`saved_model`]. Tensors stored in slices (TF1 partitioned variables, TF ≥ 2.16 sharding policies) are
//! assembled from their slices; big-endian bundles are refused with a clear error.

mod bundle;
mod moving_averages;
mod object_graph;
mod paths;
pub mod proto;
pub mod saved_model;
mod shards;
mod slices;
pub mod table;
mod wire;

use std::path::{Path, PathBuf};

use effnet_io::BudgetError;
use effnet_io::text::{excerpt as text, shown};

pub use crate::bundle::{Bundle, read, read_with_budget};
pub use crate::moving_averages::{NameBased, name_based};
pub use crate::object_graph::{ObjectLayer, object_layers};
pub use crate::paths::resolve_prefix;
use crate::table::TableError;

/// The key of the object graph in TF2 checkpoints.
pub const OBJECT_GRAPH_KEY: &str = "_CHECKPOINTABLE_OBJECT_GRAPH";

/// The largest `.index` file effnet reads.
pub const MAX_INDEX_BYTES: u64 = 1 << 30;

/// The largest `checkpoint` state file effnet reads (a text proto of a few paths).
pub const MAX_STATE_FILE_BYTES: u64 = 1 << 20;

/// Why a checkpoint could not be read. Messages name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TfError {
    /// A file could not be opened or read.
    #[error("{}: {reason}", shown(path))]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
    /// The `.index` table is damaged or not a table.
    #[error("{}: {reason}", shown(path))]
    Table {
        /// The `.index` file.
        path: PathBuf,
        /// What is wrong.
        reason: TableError,
    },
    /// An entry or the bundle is not what a checkpoint holds.
    #[error("{}: {}", shown(path), text(message))]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor's bytes do not match their checksum.
    #[error(
        "{}: tensor `{}` fails its crc32c check (the data shard is damaged)",
        shown(path),
        text(key)
    )]
    Checksum {
        /// The data shard.
        path: PathBuf,
        /// The tensor.
        key: String,
    },
    /// The path is not a checkpoint (no `.index` found).
    #[error("{}: {}", shown(path), text(message))]
    NotFound {
        /// The path given.
        path: PathBuf,
        /// What was looked for.
        message: String,
    },
    /// Reading the metadata would take more memory or work than the input's size allows.
    #[error("{}: {source}", shown(path))]
    Budget {
        /// The file being read.
        path: PathBuf,
        /// What asked for too much.
        source: BudgetError,
    },
}

impl TfError {
    pub(crate) fn budget(path: &Path) -> impl FnOnce(BudgetError) -> TfError + '_ {
        move |source| TfError::Budget {
            path: path.to_owned(),
            source,
        }
    }
}

/// LevelDB's masked crc32c.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    mask(crc32c::crc32c(bytes))
}

/// LevelDB's crc32c mask (`masked_crc32c` is `mask(crc32c)`).
pub(crate) fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Whether `bytes` end like a tensor-bundle `.index` file (the table magic).
pub fn is_index(tail: &[u8]) -> bool {
    tail.len() >= 8 && tail[tail.len() - 8..] == 0xdb47_7524_8b80_fb57u64.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_masking_matches_leveldb() {
        // LevelDB's crc32c test vector: 32 zero bytes → 0x8a9136aa.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        let crc = crc32c::crc32c(b"foo");
        assert_ne!(mask(crc), crc);
        assert_ne!(mask(mask(crc)), crc);
    }
}
