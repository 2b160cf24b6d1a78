//! The data shards of a bundle, memory-mapped as its entries need them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::TfError;
use crate::paths::shard_of;
use crate::proto::BundleEntryProto;

/// The data shards, memory-mapped as entries need them.
pub(crate) struct Shards {
    prefix: PathBuf,
    count: usize,
    maps: BTreeMap<usize, (PathBuf, Arc<Mmap>)>,
}

impl Shards {
    /// The `count` shards beside `prefix`, none mapped yet.
    pub(crate) fn new(prefix: PathBuf, count: usize) -> Self {
        Shards {
            prefix,
            count,
            maps: BTreeMap::new(),
        }
    }

    /// The shard and byte range of `entry`'s data, checked to lie inside the shard.
    pub(crate) fn locate(
        &mut self,
        index_path: &Path,
        key: &str,
        entry: &BundleEntryProto,
    ) -> Result<(PathBuf, Arc<Mmap>, usize, usize), TfError> {
        let count = self.count;
        let shard = usize::try_from(entry.shard_id)
            .ok()
            .filter(|&s| s < count)
            .ok_or_else(|| TfError::Format {
                path: index_path.to_owned(),
                message: format!("`{key}` names shard {} of {count}", entry.shard_id),
            })?;
        if let std::collections::btree_map::Entry::Vacant(slot) = self.maps.entry(shard) {
            let shard_path = shard_of(&self.prefix, shard, count);
            // Regular files only, checked on the descriptor; mapped read-only.
            let (_, map) =
                effnet_io::input::map_regular(&shard_path).map_err(|reason| TfError::Io {
                    path: shard_path.clone(),
                    reason,
                })?;
            slot.insert((shard_path, Arc::new(map)));
        }
        let (shard_path, map) = &self.maps[&shard];
        let range = usize::try_from(entry.offset)
            .ok()
            .zip(usize::try_from(entry.size).ok())
            .and_then(|(o, s)| Some((o, o.checked_add(s)?)))
            .filter(|&(_, end)| end <= map.len());
        let Some((start, end)) = range else {
            return Err(TfError::Format {
                path: shard_path.clone(),
                message: format!(
                    "tensor `{key}` lies at bytes {}..+{}, past the shard's end ({} bytes): the file is cut short",
                    entry.offset,
                    entry.size,
                    map.len()
                ),
            });
        };
        Ok((shard_path.clone(), map.clone(), start, end))
    }
}
