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

pub mod proto;
pub mod saved_model;
pub mod table;
mod wire;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use effnet_io::text::{excerpt as text, shown};
use effnet_io::{Budget, BudgetError};
use effnet_ir::{Bytes, DType, Tensor};
use memmap2::Mmap;
use prost::Message;

use crate::proto::{BundleEntryProto, BundleHeaderProto, TrackableObjectGraph};
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

fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Whether `bytes` end like a tensor-bundle `.index` file (the table magic).
pub fn is_index(tail: &[u8]) -> bool {
    tail.len() >= 8 && tail[tail.len() - 8..] == 0xdb47_7524_8b80_fb57u64.to_le_bytes()
}

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
}

/// The prefix a user's PATH denotes: a checkpoint directory (through its `checkpoint` state
/// file, or its only `.index`), a prefix, an `.index` file or a data shard.
pub fn resolve_prefix(path: &Path) -> Result<PathBuf, TfError> {
    let not_found = |message: String| TfError::NotFound {
        path: path.to_owned(),
        message,
    };
    if path.is_dir() {
        let state = path.join("checkpoint");
        if state.exists() {
            // Opened as a regular file whatever it is (a FIFO or device is refused, not read).
            let bytes =
                effnet_io::input::read_regular(&state, MAX_STATE_FILE_BYTES).map_err(|reason| {
                    TfError::Io {
                        path: state.clone(),
                        reason,
                    }
                })?;
            let text = String::from_utf8_lossy(&bytes);
            let latest = state_file_path(&text).ok_or_else(|| TfError::Format {
                path: state.clone(),
                message: "no `model_checkpoint_path` in the checkpoint state file".into(),
            })?;
            let prefix =
                state_file_prefix(path, Path::new(&latest)).map_err(|message| TfError::Format {
                    path: state.clone(),
                    message,
                })?;
            let latest = Path::new(&latest);
            if !index_of(&prefix).exists() {
                return Err(not_found(format!(
                    "the checkpoint state file names `{}`, but `{}` does not exist",
                    latest.display(),
                    index_of(&prefix).display()
                )));
            }
            return Ok(prefix);
        }
        let mut indexes: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|reason| TfError::Io {
                path: path.to_owned(),
                reason,
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "index"))
            .collect();
        indexes.sort();
        return match indexes.as_slice() {
            [one] => Ok(one.with_extension("")),
            [] => Err(not_found(
                "a folder with neither a `checkpoint` state file nor an `.index` file".into(),
            )),
            many => Err(not_found(format!(
                "a folder with {} checkpoints and no `checkpoint` state file; name one: {}",
                many.len(),
                many.iter()
                    .map(|p| p.with_extension("").display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if let Some(stem) = name.strip_suffix(".index") {
        return Ok(path.with_file_name(stem));
    }
    if let Some((stem, _)) = name.rsplit_once(".data-") {
        return Ok(path.with_file_name(stem));
    }
    if index_of(path).exists() {
        return Ok(path.to_owned());
    }
    Err(not_found(
        "not a checkpoint: no such file, and no `.index` beside this prefix".into(),
    ))
}

/// The prefix a state file's `model_checkpoint_path` denotes inside `folder`: a relative path
/// going down only, or an absolute one naming a checkpoint in the folder itself (or, from
/// another machine, one whose file name is in the folder). A path leading out of the folder is
/// refused: a state file cannot make effnet read files the user did not name.
fn state_file_prefix(folder: &Path, latest: &Path) -> Result<PathBuf, String> {
    use std::path::Component;
    let outside = || {
        format!(
            "the checkpoint state file names `{}`, outside the folder; pass that checkpoint's path directly to read it",
            latest.display()
        )
    };
    if latest.is_absolute() {
        let name = latest.file_name().ok_or_else(outside)?;
        let in_folder = folder.join(name);
        let same_folder = latest
            .parent()
            .and_then(effnet_io::FileId::of_path)
            .is_some_and(|id| Some(id) == effnet_io::FileId::of_path(folder));
        if same_folder || index_of(&in_folder).exists() {
            return Ok(in_folder);
        }
        return Err(outside());
    }
    if latest
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && latest.file_name().is_some()
    {
        return Ok(folder.join(latest));
    }
    Err(outside())
}

fn index_of(prefix: &Path) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".index");
    PathBuf::from(s)
}

fn shard_of(prefix: &Path, shard: usize, shards: usize) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!(".data-{shard:05}-of-{shards:05}"));
    PathBuf::from(s)
}

/// `model_checkpoint_path: "…"` of a `checkpoint` state file (a text-format proto).
fn state_file_path(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("model_checkpoint_path:"))?;
    let quoted = line.trim().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
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

/// Reads the checkpoint `path` denotes (see [`resolve_prefix`]).
pub fn read(path: &Path) -> Result<Bundle, TfError> {
    read_with_budget(path, 0).map(|(bundle, _)| bundle)
}

/// The size of the data shards beside `prefix` (`prefix.data-*`, regular files only): with the
/// `.index`, the input size a checkpoint's budget derives from.
fn shard_bytes(prefix: &Path) -> u64 {
    let (Some(folder), Some(stem)) = (prefix.parent(), prefix.file_name()) else {
        return 0;
    };
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    let mut start = stem.to_owned();
    start.push(".data-");
    let start = start.as_encoded_bytes().to_vec();
    let Ok(listing) = std::fs::read_dir(folder) else {
        return 0;
    };
    listing
        .filter_map(Result::ok)
        .filter(|e| e.file_name().as_encoded_bytes().starts_with(&start))
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .fold(0u64, u64::saturating_add)
}

/// Reads the checkpoint `path` denotes with the budget of its files plus `other_input` bytes
/// (the other files of a SavedModel), and returns that budget with what is left of it.
pub fn read_with_budget(path: &Path, other_input: u64) -> Result<(Bundle, Budget), TfError> {
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

    let mut shards_read = Shards {
        prefix: prefix.clone(),
        count: shards,
        maps: BTreeMap::new(),
    };
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
    };
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
        if masked_crc32c(bytes) != entry.crc32c {
            return Err(TfError::Checksum {
                path: shard_path,
                key,
            });
        }
        let data = Bytes::new(map.clone(), start, end - start)
            .map_err(|e| format(&shard_path, e.to_string()))?;
        let tensor =
            Tensor::with_data(dt, shape, data).map_err(|e| format(&shard_path, e.to_string()))?;
        bundle.tensors.push((key, tensor));
    }
    if let Some(name) = slices.keys().next() {
        return Err(format(
            &index_path,
            format!("slices of `{name}` without an entry for the whole tensor"),
        ));
    }
    Ok((bundle, budget))
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

/// The data shards, memory-mapped as entries need them.
struct Shards {
    prefix: PathBuf,
    count: usize,
    maps: BTreeMap<usize, (PathBuf, Arc<Mmap>)>,
}

impl Shards {
    /// The shard and byte range of `entry`'s data, checked to lie inside the shard.
    fn locate(
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

fn check_size(
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

/// The tensor name in a slice key: after the leading `WriteNumIncreasing(0)` (one zero byte),
/// an OrderedCode string (`\x00` escaped as `\x00\xff`, `\xff` as `\xff\x00`, ended by
/// `\x00\x01`).
fn slice_key_name(key: &[u8]) -> Option<String> {
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match (*key.get(i)?, key.get(i + 1).copied()) {
            (0x00, Some(0x01)) => break,
            (0x00, Some(0xff)) => {
                out.push(0x00);
                i += 2;
            }
            (0xff, Some(0x00)) => {
                out.push(0xff);
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// One extent of a slice: `(start, length)`, length `None` for the whole dimension.
type Extent = (i64, Option<i64>);

/// A tensor stored as slices (`TensorSliceProto`s on its entry, each slice's bytes under its
/// own key), copied into one buffer. Slice keys encode their extents order-preservingly, so
/// the slice entries (in key order) pair with the extents sorted the same way; every slice's
/// shape is checked against its extent and its bytes against its crc32c.
///
/// Every slice is validated first (extents, shapes, bytes inside their shard, checksums, no
/// overlap, exact coverage); only then is the tensor allocated, so its size is at most the
/// bytes its slices occupy in the shards. The pairwise overlap check is charged as work.
#[allow(clippy::too_many_arguments)]
fn assemble(
    shards: &mut Shards,
    index_path: &Path,
    key: &str,
    entry: &BundleEntryProto,
    dt: DType,
    shape: Vec<usize>,
    pieces: Vec<BundleEntryProto>,
    budget: &Budget,
) -> Result<Tensor, TfError> {
    let format = |message: String| TfError::Format {
        path: index_path.to_owned(),
        message: format!("`{key}`: {message}"),
    };
    let mut extents: Vec<Vec<Extent>> = Vec::new();
    for raw in &entry.slices {
        budget
            .memory_for(raw.len() as u64 + 1, 48, || {
                format!("the slices of `{key}`")
            })
            .map_err(TfError::budget(index_path))?;
        let slice = proto::TensorSliceProto::decode(raw.as_slice())
            .map_err(|e| format(format!("a slice: {e}")))?;
        extents.push(slice.extent.iter().map(|e| (e.start, e.length)).collect());
    }
    if extents.len() != pieces.len() {
        return Err(format(format!(
            "{} slices declared, {} stored",
            extents.len(),
            pieces.len()
        )));
    }
    // OrderedCode orders the dimension count first, then each start and length (−1 = whole).
    extents.sort_by_cached_key(|e| {
        let mut k = vec![e.len() as i64];
        for (start, length) in e {
            k.extend([*start, length.unwrap_or(-1)]);
        }
        k
    });
    let total = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(dt.size()))
        .ok_or_else(|| format("too large".into()))?;
    // Pass 1: every slice checked, nothing allocated for the tensor.
    struct Placed {
        boxed: Vec<(usize, usize)>,
        starts: Vec<usize>,
        lengths: Vec<usize>,
        map: Arc<Mmap>,
        range: (usize, usize),
    }
    let mut placed: Vec<Placed> = Vec::with_capacity(pieces.len());
    let mut covered = 0usize;
    for (extent, piece) in extents.iter().zip(&pieces) {
        if extent.len() != shape.len() {
            return Err(format("a slice of another rank".into()));
        }
        let mut starts = Vec::with_capacity(shape.len());
        let mut lengths = Vec::with_capacity(shape.len());
        for (&(start, length), &dim) in extent.iter().zip(&shape) {
            let start = usize::try_from(start).map_err(|_| format("a negative slice".into()))?;
            let length = match length {
                None => dim.checked_sub(start),
                Some(l) => usize::try_from(l).ok(),
            }
            .filter(|&l| start.checked_add(l).is_some_and(|e| e <= dim))
            .ok_or_else(|| format("a slice outside the tensor".into()))?;
            starts.push(start);
            lengths.push(length);
        }
        let piece_shape = self::shape(piece).map_err(format)?;
        if piece_shape != lengths {
            return Err(format(format!(
                "a slice of shape {piece_shape:?} where its extent says {lengths:?}"
            )));
        }
        let (shard_path, map, start, end) = shards.locate(index_path, key, piece)?;
        let bytes = &map[start..end];
        check_size(index_path, key, &lengths, dt, bytes.len())?;
        budget
            .work(placed.len() as u64 + 1, || {
                format!("checking the slices of `{key}` for overlaps")
            })
            .map_err(TfError::budget(index_path))?;
        let this: Vec<(usize, usize)> = starts
            .iter()
            .copied()
            .zip(lengths.iter().copied())
            .collect();
        if placed
            .iter()
            .any(|other| boxes_overlap(&other.boxed, &this))
        {
            return Err(format("two of its slices overlap".into()));
        }
        if masked_crc32c(bytes) != piece.crc32c {
            return Err(TfError::Checksum {
                path: shard_path,
                key: key.to_owned(),
            });
        }
        covered = covered
            .checked_add(bytes.len())
            .ok_or_else(|| format("too large".into()))?;
        placed.push(Placed {
            boxed: this,
            starts,
            lengths,
            map,
            range: (start, end),
        });
    }
    if covered != total {
        return Err(format("its slices do not cover it exactly once".into()));
    }
    // Pass 2: the tensor is as large as the slices' bytes in the shards, no larger.
    let mut out = vec![0u8; total];
    for p in &placed {
        let bytes = &p.map[p.range.0..p.range.1];
        copy_slice(&mut out, &shape, &p.starts, &p.lengths, bytes, dt.size());
    }
    Tensor::with_data(dt, shape, Bytes::from_vec(out)).map_err(|e| format(e.to_string()))
}

/// Whether two boxes (`(start, length)` per dimension) share an element.
fn boxes_overlap(a: &[(usize, usize)], b: &[(usize, usize)]) -> bool {
    a.iter()
        .zip(b)
        .all(|(&(a0, al), &(b0, bl))| al > 0 && bl > 0 && a0 < b0 + bl && b0 < a0 + al)
}

/// Copies a row-major block of `lengths` into `out` (row-major `shape`) at `starts`.
fn copy_slice(
    out: &mut [u8],
    shape: &[usize],
    starts: &[usize],
    lengths: &[usize],
    bytes: &[u8],
    item: usize,
) {
    let rank = shape.len();
    if rank == 0 {
        out.copy_from_slice(bytes);
        return;
    }
    let run = lengths[rank - 1] * item;
    let rows: usize = lengths[..rank - 1].iter().product();
    let mut index = vec![0usize; rank - 1];
    for row in 0..rows {
        let mut offset = 0usize;
        for d in 0..rank - 1 {
            offset = offset * shape[d] + starts[d] + index[d];
        }
        let at = (offset * shape[rank - 1] + starts[rank - 1]) * item;
        out[at..at + run].copy_from_slice(&bytes[row * run..(row + 1) * run]);
        for d in (0..rank - 1).rev() {
            index[d] += 1;
            if index[d] < lengths[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

fn shape(entry: &BundleEntryProto) -> Result<Vec<usize>, String> {
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

/// One Keras layer of an object-based checkpoint: its variables in the order it tracks them.
#[derive(Clone, Debug)]
pub struct ObjectLayer {
    /// Its path in the object graph (`layer_with_weights-3`, `model/layer_with_weights-3`).
    pub path: String,
    /// `(variable name, bundle key)`: `kernel`, `gamma`, `moving_mean`, …
    pub variables: Vec<(String, String)>,
}

/// The weighted layers of the Keras model in an object graph, in `model.layers` order (the
/// `layer_with_weights-N` children of the object that has the most of them), and the bundle
/// keys that belong to other objects (optimizer, step counters).
pub fn object_layers(graph: &TrackableObjectGraph) -> Option<(Vec<ObjectLayer>, Vec<String>)> {
    let nodes = &graph.nodes;
    let node = |id: i32| usize::try_from(id).ok().and_then(|i| nodes.get(i));
    let weighted = |n: &proto::TrackableObject| {
        n.children
            .iter()
            .filter_map(|c| {
                let k: usize = c
                    .local_name
                    .strip_prefix("layer_with_weights-")?
                    .parse()
                    .ok()?;
                Some((k, c.node_id))
            })
            .collect::<Vec<_>>()
    };
    let (model_id, _) = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (i, weighted(n).len()))
        .filter(|&(_, n)| n > 0)
        .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))?;
    let model_path = path_to(graph, model_id);
    let mut layers = weighted(&nodes[model_id]);
    layers.sort_unstable();
    let mut used = std::collections::HashSet::new();
    let out: Vec<ObjectLayer> = layers
        .into_iter()
        .filter_map(|(k, id)| {
            let layer = node(id)?;
            let variables = layer
                .children
                .iter()
                .filter_map(|c| {
                    let var = node(c.node_id)?;
                    let key = var
                        .attributes
                        .iter()
                        .find(|a| a.name == "VARIABLE_VALUE")?
                        .checkpoint_key
                        .clone();
                    used.insert(key.clone());
                    Some((c.local_name.clone(), key))
                })
                .collect();
            let local = format!("layer_with_weights-{k}");
            Some(ObjectLayer {
                path: if model_path.is_empty() {
                    local
                } else {
                    format!("{model_path}/{local}")
                },
                variables,
            })
        })
        .collect();
    let others = nodes
        .iter()
        .flat_map(|n| n.attributes.iter().map(|a| a.checkpoint_key.clone()))
        .filter(|k| !used.contains(k))
        .collect();
    Some((out, others))
}

/// The path of node `target` from the root (`model/layer_with_weights-3`), by breadth-first
/// search: each node records the edge it was reached by (a parent link, not a path), and only
/// the target's path is built, by following the links back. Linear in nodes and edges, with
/// memory for one link per node; a node the root does not reach has the empty path.
fn path_to(graph: &TrackableObjectGraph, target: usize) -> String {
    let nodes = &graph.nodes;
    // (parent node, child index in the parent) of each node reached.
    let mut parent: Vec<Option<(usize, usize)>> = vec![None; nodes.len()];
    let mut seen = vec![false; nodes.len()];
    if nodes.is_empty() {
        return String::new();
    }
    seen[0] = true;
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        if i == target {
            break;
        }
        for (k, c) in nodes[i].children.iter().enumerate() {
            if let Some(j) = usize::try_from(c.node_id).ok().filter(|&j| j < nodes.len()) {
                if !seen[j] {
                    seen[j] = true;
                    parent[j] = Some((i, k));
                    queue.push_back(j);
                }
            }
        }
    }
    let mut names: Vec<&str> = Vec::new();
    let mut at = target;
    while let Some((p, k)) = parent.get(at).copied().flatten() {
        names.push(&nodes[p].children[k].local_name);
        at = p;
    }
    names.reverse();
    names.join("/")
}

/// A TF1 name-based checkpoint reduced to the model's variables.
#[derive(Debug, Default)]
pub struct NameBased {
    /// The model's tensors under their variable names.
    pub tensors: Vec<(String, Tensor)>,
    /// Whether the values are the `ExponentialMovingAverage` shadows.
    pub moving_averages: bool,
    /// Keys left out, with the reason.
    pub dropped: Vec<(String, String)>,
}

/// Optimizer slot suffixes of TF1 optimizers (`var/RMSProp`, `var/Adam_1`, `var/Momentum`).
const SLOT_SUFFIXES: [&str; 8] = [
    "RMSProp",
    "RMSProp_1",
    "Momentum",
    "Adam",
    "Adam_1",
    "Adagrad",
    "Ftrl",
    "Ftrl_1",
];

/// Keeps the model's variables of a name-based checkpoint: their `/ExponentialMovingAverage`
/// shadows where present (the values the release checkpoints are meant to be used with),
/// without optimizer slots and step counters.
pub fn name_based(tensors: Vec<(String, Tensor)>) -> NameBased {
    const EMA: &str = "/ExponentialMovingAverage";
    let averages: BTreeMap<String, Tensor> = tensors
        .iter()
        .filter_map(|(k, t)| Some((k.strip_suffix(EMA)?.to_owned(), t.clone())))
        .collect();
    let mut out = NameBased {
        moving_averages: !averages.is_empty(),
        ..NameBased::default()
    };
    for (key, tensor) in tensors {
        if key.ends_with(EMA) {
            continue;
        }
        let last = key.rsplit('/').next().unwrap_or(&key);
        if SLOT_SUFFIXES.contains(&last) {
            out.dropped.push((key, "an optimizer slot".into()));
        } else if matches!(
            key.as_str(),
            "global_step" | "step" | "save_counter" | "iterations"
        ) || key.ends_with("/global_step")
        {
            out.dropped.push((key, "a step counter".into()));
        } else if let Some(average) = averages.get(&key) {
            out.dropped.push((
                key.clone(),
                "replaced by its ExponentialMovingAverage".into(),
            ));
            out.tensors.push((key, average.clone()));
        } else {
            out.tensors.push((key, tensor));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_paths_unquote() {
        assert_eq!(
            state_file_path(
                "model_checkpoint_path: \"ckpt-1\"\nall_model_checkpoint_paths: \"ckpt-1\"\n"
            ),
            Some("ckpt-1".into())
        );
        assert_eq!(
            state_file_path("model_checkpoint_path: \"/a/b \\\"c\\\"\""),
            Some("/a/b \"c\"".into())
        );
        assert_eq!(state_file_path("all_model_checkpoint_paths: \"x\""), None);
    }

    #[test]
    fn state_files_cannot_lead_out_of_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("ckpt");
        std::fs::create_dir(&folder).unwrap();
        let inside = |p: &str| state_file_prefix(&folder, Path::new(p));
        assert_eq!(inside("model.ckpt-5").unwrap(), folder.join("model.ckpt-5"));
        assert_eq!(inside("./sub/m").unwrap(), folder.join("./sub/m"));
        for outside in ["../other/m", "sub/../../m", "/elsewhere/m", ".."] {
            let err = inside(outside).unwrap_err();
            assert!(err.contains("outside the folder"), "{outside}: {err}");
        }
        // An absolute path naming the folder itself, or one from another machine whose file
        // name is in the folder, reads the folder's checkpoint.
        let own = folder.join("m");
        assert_eq!(inside(own.to_str().unwrap()).unwrap(), own);
        std::fs::write(folder.join("n.index"), b"").unwrap();
        assert_eq!(inside("/other/machine/n").unwrap(), folder.join("n"));
    }

    #[test]
    fn object_paths_follow_parent_links() {
        let reference = |id: i32, name: &str| proto::ObjectReference {
            node_id: id,
            local_name: name.into(),
        };
        // A 60,000-node chain: one path is built, not one per node.
        let n = 60_000;
        let nodes = (0..n)
            .map(|i| proto::TrackableObject {
                children: if i + 1 < n {
                    vec![reference(i + 1, "child"), reference(0, "back")]
                } else {
                    Vec::new()
                },
                ..proto::TrackableObject::default()
            })
            .collect();
        let graph = TrackableObjectGraph { nodes };
        assert_eq!(path_to(&graph, 3), "child/child/child");
        assert_eq!(path_to(&graph, 0), "");
        assert_eq!(
            path_to(&graph, n as usize - 1).len(),
            6 * (n as usize - 1) - 1
        );
    }

    #[test]
    fn slice_keys_give_their_tensor_name() {
        let key = b"\x00model/a\x00\xffb/kernel\x00\x01\x01\x04\x80\x85";
        assert_eq!(slice_key_name(key).as_deref(), Some("model/a\0b/kernel"));
        assert_eq!(slice_key_name(b"\x00unterminated"), None);
    }

    #[test]
    fn slices_land_where_their_extents_say() {
        // A 2×3 tensor of u8 from a left 2×1 and a right 2×2 block.
        let mut out = [0u8; 6];
        copy_slice(&mut out, &[2, 3], &[0, 0], &[2, 1], &[1, 4], 1);
        copy_slice(&mut out, &[2, 3], &[0, 1], &[2, 2], &[2, 3, 5, 6], 1);
        assert_eq!(out, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn slices_that_share_an_element_overlap() {
        assert!(boxes_overlap(&[(0, 2), (0, 3)], &[(1, 1), (2, 1)]));
        assert!(!boxes_overlap(&[(0, 2), (0, 1)], &[(0, 2), (1, 2)]));
        assert!(!boxes_overlap(&[(0, 0)], &[(0, 4)]));
    }

    #[test]
    fn crc_masking_matches_leveldb() {
        // LevelDB's crc32c test vector: 32 zero bytes → 0x8a9136aa.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        let crc = crc32c::crc32c(b"foo");
        assert_ne!(mask(crc), crc);
        assert_ne!(mask(mask(crc)), crc);
    }

    #[test]
    fn moving_averages_replace_raw_values_and_slots_are_dropped() {
        let t = |v: f32| Tensor::from_f32(vec![1], &[v]).unwrap();
        let kept = name_based(vec![
            ("m/w".into(), t(1.0)),
            ("m/w/ExponentialMovingAverage".into(), t(2.0)),
            ("m/w/RMSProp".into(), t(3.0)),
            ("global_step".into(), t(4.0)),
        ]);
        assert!(kept.moving_averages);
        assert_eq!(kept.tensors.len(), 1);
        assert_eq!(kept.tensors[0].1.to_f32_vec().unwrap(), [2.0]);
        assert_eq!(kept.dropped.len(), 3);
    }
}
