//! Reading a bundle: the header and entries of its `.index`, each entry's bytes in its data
//! shard checked against its crc32c (at once, or when the caller asks), and the object graph of a TF2 checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use effnet_io::Budget;
use effnet_ir::{Bytes, ChecksumError, ChecksumPolicy, DType, PendingChecksums, Tensor};
use prost::Message;

use crate::paths::{index_of, resolve_prefix, shard_bytes};
use crate::proto::{BundleEntryProto, BundleHeaderProto, TrackableObjectGraph};
use crate::shards::Shards;
use crate::slices::{assemble, slice_key_name};
use crate::{MAX_INDEX_BYTES, OBJECT_GRAPH_KEY, TfError, mask, masked_crc32c, table, wire};

/// A checkpoint read.
#[derive(Debug)]
pub struct Bundle {
    /// The prefix (`dir/ckpt-1`): `.index` and `.data-*` files sit beside it.
    pub prefix: PathBuf,
    /// Numeric tensors by key, in key order.
    pub tensors: Vec<(String, Tensor)>,
    /// Entries left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// The object graph of a TF2 checkpoint.
    pub object_graph: Option<TrackableObjectGraph>,
    /// How many data shards the bundle has.
    pub shards: usize,
    /// The tensors' crc32c, when their comparison was deferred.
    pub checksums: Option<Arc<dyn PendingChecksums>>,
}

/// Reads the checkpoint `path` denotes (see [`resolve_prefix`]), every tensor's crc32c
/// compared.
pub fn read(path: &Path) -> Result<Bundle, TfError> {
    read_with_budget(path, 0, ChecksumPolicy::AtOpen).map(|(bundle, _)| bundle)
}

/// Reads the checkpoint `path` denotes with the budget of its files plus `other_input` bytes
/// (the other files of a SavedModel), and returns that budget with what is left of it. The
/// tensors' crc32c are compared as `policy` says (the index's blocks, the object graph and
/// slices of partitioned tensors are always checked: they are read here).
pub fn read_with_budget(
    path: &Path,
    other_input: u64,
    policy: ChecksumPolicy,
) -> Result<(Bundle, Budget), TfError> {
    let prefix = resolve_prefix(path)?;
    let index_path = index_of(&prefix);
    let format = |path: &Path, message: String| TfError::Format {
        path: path.to_owned(),
        message,
    };
    // A FIFO, device or folder named `.index` is refused here, on the open descriptor.
    let (index_file, index) =
        effnet_io::input::map_regular(&index_path).map_err(|reason| TfError::Io {
            path: index_path.clone(),
            reason,
        })?;
    drop(index_file);
    let index_len = index.len() as u64;
    if index_len > MAX_INDEX_BYTES {
        return Err(format(
            &index_path,
            format!("the index is {index_len} bytes, beyond the {MAX_INDEX_BYTES}-byte limit"),
        ));
    }
    let budget = Budget::for_input(
        index_len
            .saturating_add(shard_bytes(&prefix))
            .saturating_add(other_input),
    );
    let entries = table::read_with_budget(&index, &budget).map_err(|reason| TfError::Table {
        path: index_path.clone(),
        reason,
    })?;
    let Some((first_key, header_bytes)) = entries.first() else {
        return Err(format(&index_path, "an empty checkpoint index".into()));
    };
    if !first_key.is_empty() {
        return Err(format(
            &index_path,
            "no bundle header (the entry under the empty key)".into(),
        ));
    }
    let header = BundleHeaderProto::decode(*header_bytes)
        .map_err(|e| format(&index_path, format!("the bundle header: {e}")))?;
    if header.endianness != 0 {
        return Err(format(
            &index_path,
            "a big-endian bundle; effnet reads little-endian checkpoints".into(),
        ));
    }
    let shards = usize::try_from(header.num_shards)
        .ok()
        .filter(|&n| (1..=100_000).contains(&n))
        .ok_or_else(|| format(&index_path, format!("{} data shards", header.num_shards)))?;

    let mut shards_read = Shards::new(prefix.clone(), shards);
    let over = TfError::budget(&index_path);
    budget
        .memory_for(
            entries.len() as u64,
            std::mem::size_of::<(String, Tensor)>() as u64,
            || "the tensor list".into(),
        )
        .map_err(over)?;
    let mut bundle = Bundle {
        prefix: prefix.clone(),
        tensors: Vec::with_capacity(entries.len()),
        skipped: Vec::new(),
        object_graph: None,
        shards,
        checksums: None,
    };
    let mut pending: Vec<TensorChecksum> = Vec::new();
    // Slices of partitioned tensors are keyed by an OrderedCode encoding that starts with a
    // zero byte (`EncodeTensorNameSlice`); they sort first.
    let mut slices: BTreeMap<String, Vec<BundleEntryProto>> = BTreeMap::new();
    for (key, value) in &entries[1..] {
        if key.first() == Some(&0) {
            let name = slice_key_name(key)
                .ok_or_else(|| format(&index_path, "a malformed tensor-slice key".into()))?;
            charge_proto(&budget, &index_path, value, &wire::BUNDLE_ENTRY, || {
                format!("a slice of `{name}`")
            })?;
            let entry = BundleEntryProto::decode(*value)
                .map_err(|e| format(&index_path, format!("a slice of `{name}`: {e}")))?;
            slices.entry(name).or_default().push(entry);
            continue;
        }
        let key = String::from_utf8(key.clone())
            .map_err(|_| format(&index_path, "a tensor key that is not UTF-8".into()))?;
        let charged = charge_proto(&budget, &index_path, value, &wire::BUNDLE_ENTRY, || {
            format!("entry `{key}`")
        })?;
        let entry = BundleEntryProto::decode(*value)
            .map_err(|e| format(&index_path, format!("entry `{key}`: {e}")))?;
        let shape = shape(&entry).map_err(|m| format(&index_path, format!("`{key}`: {m}")))?;
        if !entry.slices.is_empty() {
            let Some(dt) = dtype(entry.dtype) else {
                bundle.skipped.push((
                    key,
                    format!("{} is not a parameter type", dtype_name(entry.dtype)),
                ));
                continue;
            };
            let pieces = slices.remove(&key).unwrap_or_default();
            let tensor = assemble(
                &mut shards_read,
                &index_path,
                &key,
                &entry,
                dt,
                shape,
                pieces,
                &budget,
            )?;
            budget.release(charged);
            bundle.tensors.push((key, tensor));
            continue;
        }
        // The entry is not kept: its memory goes back to the budget.
        budget.release(charged);
        let (shard_path, map, start, end) = shards_read.locate(&index_path, &key, &entry)?;
        let bytes = &map[start..end];

        if key == OBJECT_GRAPH_KEY {
            let graph = string_scalar(bytes, entry.crc32c)
                .ok_or_else(|| TfError::Checksum {
                    path: shard_path.clone(),
                    key: key.clone(),
                })
                .and_then(|s| {
                    charge_proto(&budget, &shard_path, s, &wire::OBJECT_GRAPH, || {
                        "the object graph".into()
                    })?;
                    TrackableObjectGraph::decode(s)
                        .map_err(|e| format(&shard_path, format!("the object graph: {e}")))
                })?;
            bundle.object_graph = Some(graph);
            continue;
        }
        let Some(dt) = dtype(entry.dtype) else {
            bundle.skipped.push((
                key,
                format!("{} is not a parameter type", dtype_name(entry.dtype)),
            ));
            continue;
        };
        check_size(&index_path, &key, &shape, dt, bytes.len())?;
        let data = Bytes::new(map.clone(), start, end - start)
            .map_err(|e| format(&shard_path, e.to_string()))?;
        let tensor = Tensor::with_data(dt, shape, data.clone())
            .map_err(|e| format(&shard_path, e.to_string()))?;
        pending.push(TensorChecksum {
            shard: shard_path,
            key: key.clone(),
            bytes: data,
            crc32c: entry.crc32c,
        });
        bundle.tensors.push((key, tensor));
    }
    let pending = BundleChecksums(pending);
    match policy {
        ChecksumPolicy::AtOpen => pending.check(None)?,
        ChecksumPolicy::Deferred => bundle.checksums = Some(Arc::new(pending)),
    }
    if let Some(name) = slices.keys().next() {
        return Err(format(
            &index_path,
            format!("slices of `{name}` without an entry for the whole tensor"),
        ));
    }
    Ok((bundle, budget))
}

/// A tensor's recorded crc32c, not yet compared.
struct TensorChecksum {
    shard: PathBuf,
    key: String,
    bytes: Bytes,
    crc32c: u32,
}

/// The crc32c of a bundle's tensors, not yet compared.
struct BundleChecksums(Vec<TensorChecksum>);

impl std::fmt::Debug for BundleChecksums {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BundleChecksums({} tensors)", self.0.len())
    }
}

impl BundleChecksums {
    /// Compares the checksums covering `tensor` (every one given `None`, or for a tensor whose
    /// bytes are no view of a shard: an assembled slice may hold any entry's) on every core;
    /// each tensor's pages leave the process once compared (they are read again where the
    /// weights are used).
    fn check(&self, tensor: Option<&Tensor>) -> Result<(), TfError> {
        use rayon::prelude::*;
        let source = tensor.and_then(Tensor::stored_bytes);
        self.0
            .par_iter()
            .filter(|c| source.is_none_or(|source| c.bytes.overlaps(source)))
            .try_for_each(|c| {
                let ok = c.bytes.read_with(|b| masked_crc32c(b) == c.crc32c);
                c.bytes.release();
                if ok {
                    Ok(())
                } else {
                    Err(TfError::Checksum {
                        path: c.shard.clone(),
                        key: c.key.clone(),
                    })
                }
            })
    }
}

impl PendingChecksums for BundleChecksums {
    fn verify(&self, tensor: Option<&Tensor>) -> Result<(), ChecksumError> {
        self.check(tensor).map_err(|e| Box::new(e) as ChecksumError)
    }
}

/// Charges the memory the protobuf message in `encoded` may take once decoded (counted from
/// its bytes by [`wire::decoded_size`], before decoding) and the work of the scan; returns the
/// bytes charged.
pub(crate) fn charge_proto(
    budget: &Budget,
    path: &Path,
    encoded: &[u8],
    schema: &'static wire::Schema,
    what: impl FnOnce() -> String,
) -> Result<u64, TfError> {
    let bytes = wire::decoded_size(encoded, schema).map_err(|m| TfError::Format {
        path: path.to_owned(),
        message: m.into(),
    })?;
    budget
        .work(encoded.len() as u64, || "scanning protobuf messages".into())
        .map_err(TfError::budget(path))?;
    budget.memory(bytes, what).map_err(TfError::budget(path))?;
    Ok(bytes)
}

/// The dtypes effnet reads, by `tensorflow.DataType` value.
fn dtype(value: i32) -> Option<DType> {
    Some(match value {
        1 => DType::F32,
        2 => DType::F64,
        9 => DType::I64,
        14 => DType::BF16,
        19 => DType::F16,
        _ => return None,
    })
}

fn dtype_name(value: i32) -> String {
    match value {
        3 => "int32".into(),
        4 => "uint8".into(),
        5 => "int16".into(),
        6 => "int8".into(),
        7 => "string".into(),
        10 => "bool".into(),
        20 => "resource".into(),
        21 => "variant".into(),
        v => format!("dtype {v}"),
    }
}

/// Checks that `bytes` is the size of a `dt` tensor of `shape`.
pub(crate) fn check_size(
    index_path: &Path,
    key: &str,
    shape: &[usize],
    dt: DType,
    bytes: usize,
) -> Result<(), TfError> {
    let expected = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(dt.size()));
    if expected != Some(bytes) {
        return Err(TfError::Format {
            path: index_path.to_owned(),
            message: format!(
                "tensor `{key}` of shape {shape:?} {} claims {bytes} bytes",
                dt.name()
            ),
        });
    }
    Ok(())
}

/// The shape of `entry` (at most 8 dimensions, all known).
pub(crate) fn shape(entry: &BundleEntryProto) -> Result<Vec<usize>, String> {
    let Some(shape) = &entry.shape else {
        return Ok(Vec::new());
    };
    if shape.unknown_rank {
        return Err("unknown rank".into());
    }
    if shape.dim.len() > 8 {
        return Err(format!("{} dimensions", shape.dim.len()));
    }
    shape
        .dim
        .iter()
        .map(|d| usize::try_from(d.size).map_err(|_| format!("dimension {}", d.size)))
        .collect()
}

/// The one element of a string scalar: `varint64 length, masked crc32c of the length, bytes`,
/// checked against the entry's crc32c (TF extends it over the length as a u32, the masked
/// length checksum, then the bytes).
fn string_scalar(bytes: &[u8], expected: u32) -> Option<&[u8]> {
    let mut pos = 0;
    let len = usize::try_from(table::varint64(bytes, &mut pos)?).ok()?;
    let checksum = bytes.get(pos..pos + 4)?;
    let data = bytes.get(pos + 4..pos.checked_add(4)?.checked_add(len)?)?;
    let len32 = u32::try_from(len).ok()?;
    let crc = crc32c::crc32c(&len32.to_le_bytes());
    if mask(crc).to_le_bytes() != checksum {
        return None;
    }
    let crc = crc32c::crc32c_append(crc, checksum);
    let crc = crc32c::crc32c_append(crc, data);
    (mask(crc) == expected).then_some(data)
}
