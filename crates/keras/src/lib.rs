//! Keras HDF5 files (`model.save("x.h5")`, `model.save_weights("x.h5")`) as named tensors.
//!
//! # On disk
//!
//! An HDF5 file. A full-model file keeps the architecture as a JSON string attribute
//! `model_config` at the root (with `keras_version` and `backend`) and the weights under the
//! group `model_weights`; a weights-only file keeps them at the root. Either way the weights
//! group has an attribute `layer_names` (layer order) and one group per layer whose attribute
//! `weight_names` lists its variables (`block2a_dwconv/depthwise_kernel:0`), stored as datasets
//! under that path inside the layer group.
//!
//! A Keras 3 `.keras` file is a zip archive of `config.json` (the architecture), `metadata.json`
//! and `model.weights.h5`, whose groups are named after layer *classes*, not layer names:
//! `layers/conv2d/vars/0`, `layers/batch_normalization_12/vars/0..3`, one group per layer in
//! the order of `config.json`, counted per snake-cased class. Variables are positional
//! (BatchNormalization: gamma, beta, moving_mean, moving_variance). [`read_keras3`] walks the
//! config to give each its `layer/variable` name.
//!
//! Tensors come out in TensorFlow's layout (conv `[kh, kw, in, out]`, depthwise
//! `[kh, kw, C, 1]`, dense `[in, out]`) named `layer/variable` (`stem_conv/kernel`); the `keras`
//! naming scheme moves them to the IR's layout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use effnet_io::Budget;
use effnet_io::text::{excerpt as text, shown};
use effnet_ir::{Bytes, Checkpoint, DType, Tensor, TensorLayout};
use hdf5_reader::{Hdf5File, group::Group};

pub mod write;

/// The HDF5 signature.
pub const HDF5_MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// A Keras HDF5 file read.
#[derive(Debug)]
pub struct KerasFile {
    /// Tensors named `layer/variable`, in layer order.
    pub checkpoint: Checkpoint,
    /// The `model_config` of a full-model file.
    pub config: Option<serde_json::Value>,
    /// `keras_version`, when recorded.
    pub keras_version: Option<String>,
    /// Datasets left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Layers of a Keras 3 `.weights.h5` that does not record layer names, in order within
    /// each class; the `keras` naming scheme's positional reader names them.
    pub unnamed: Vec<UnnamedLayer>,
    /// Whether the file has the Keras 3 layout (`layers/<class>/vars/N`).
    pub keras3: bool,
}

/// A layer of a Keras 3 weights file known only by its class and its place among that class.
#[derive(Clone, Debug)]
pub struct UnnamedLayer {
    /// The group (`layers/batch_normalization_12`).
    pub group: String,
    /// The snake-cased class (`batch_normalization`).
    pub class: String,
    /// Its variables by their Keras names.
    pub variables: Vec<(String, Tensor)>,
}

/// Why a Keras file could not be read. Messages name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KerasError {
    /// The HDF5 structure could not be read.
    #[error("{}: not a readable HDF5 file: {}", shown(path), text(message))]
    Hdf5 {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// The file is HDF5 but not a Keras weights file, or an archive member is refused.
    #[error("{}: {}", shown(path), text(message))]
    NotKeras {
        /// The file.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
}

/// Memory charged for each JSON value beyond the text itself: the `serde_json::Value`, room
/// for its container to grow, and an object entry's map slot.
const JSON_VALUE_COST: u64 = 2 * std::mem::size_of::<serde_json::Value>() as u64 + 48;

/// Parses a JSON config after charging `budget` for what the parsed value can take: the text
/// plus [`JSON_VALUE_COST`] per value (values are counted by a linear scan for the commas,
/// colons and brackets outside strings, an upper bound). serde_json's recursion limit (128)
/// stays on, and dropping the value recurses at most that deep.
pub fn parse_json(bytes: &[u8], budget: &Budget, what: &str) -> Result<serde_json::Value, String> {
    let mut values: u64 = 1;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b':' | b'[' | b'{' => values += 1,
            _ => {}
        }
    }
    budget
        .work(bytes.len() as u64, || format!("parsing {what}"))
        .map_err(|e| e.to_string())?;
    budget
        .memory(
            (bytes.len() as u64).saturating_add(values.saturating_mul(JSON_VALUE_COST)),
            || format!("{what} ({values} JSON values)"),
        )
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(bytes).map_err(|e| format!("{what}: {e}"))
}

fn string_attr(group: &Group, name: &str) -> Option<String> {
    group
        .attribute(name)
        .ok()
        .and_then(|a| a.read_string().ok())
}

fn strings_attr(group: &Group, name: &str) -> Option<Vec<String>> {
    group
        .attribute(name)
        .ok()
        .and_then(|a| a.read_strings().ok())
}

/// What effnet records in the Keras files it writes (root attributes of an HDF5 file, the
/// `effnet` object of a `.keras` file's `metadata.json`), kept in the checkpoint's metadata.
pub const EFFNET_KEYS: &[&str] = &[
    "effnet.version",
    "effnet.source",
    "effnet.source_container",
    "effnet.source_naming",
    "effnet.variant",
    "effnet.dtype",
    "effnet.changes",
    "effnet.stated",
    "effnet.input_preprocessing",
    "effnet.input_preprocessing_from",
];

/// Reads a Keras `.h5` file.
pub fn read(path: &Path) -> Result<KerasFile, KerasError> {
    let h5 = |e: hdf5_reader::error::Error| KerasError::Hdf5 {
        path: path.to_owned(),
        message: e.to_string(),
    };
    // Regular files only, checked on the descriptor; mapped, never read whole.
    let (_, map) = effnet_io::input::map_regular(path).map_err(|e| KerasError::NotKeras {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let file_len = map.len() as u64;
    let meta_budget = Budget::for_input(file_len);
    let map = Arc::new(map);
    let file =
        Hdf5File::from_owner(SharedMap(map.clone()), hdf5_options(&meta_budget)).map_err(h5)?;
    let mut data = DataSource {
        file: &file,
        map: Some((map, 0)),
        budget: file_len.saturating_mul(MAX_EXPANSION),
    };
    let root = file.root_group().map_err(h5)?;
    let config = match string_attr(&root, "model_config") {
        Some(text) => Some(
            parse_json(text.as_bytes(), &meta_budget, "the model_config attribute").map_err(
                |message| KerasError::NotKeras {
                    path: path.to_owned(),
                    message,
                },
            )?,
        ),
        None => None,
    };
    let keras_version = string_attr(&root, "keras_version");
    let recorded: Vec<(String, String)> = EFFNET_KEYS
        .iter()
        .filter_map(|&k| string_attr(&root, k).map(|v| (k.to_owned(), v)))
        .collect();
    let weights = if config.is_some() {
        root.group("model_weights").map_err(h5)?
    } else {
        root.clone()
    };
    if config.is_none() && strings_attr(&weights, "layer_names").is_none() {
        if let Ok(layers) = root.group("layers") {
            let mut file = read_keras3_weights(&layers, &mut data).map_err(h5)?;
            file.checkpoint.metadata.extend(recorded);
            return Ok(file);
        }
    }
    let layer_names =
        strings_attr(&weights, "layer_names").ok_or_else(|| KerasError::NotKeras {
            path: path.to_owned(),
            message: "an HDF5 file without Keras `layer_names`: not a Keras weights file".into(),
        })?;
    let mut checkpoint = Checkpoint::with_layout(TensorLayout::Tf);
    let mut skipped = Vec::new();
    for layer in &layer_names {
        let group = weights.group(layer).map_err(h5)?;
        let weight_names = strings_attr(&group, "weight_names").unwrap_or_default();
        for weight in weight_names {
            // `block2a_dwconv/depthwise_kernel:0` is a path inside the layer group.
            let mut node = group.clone();
            let parts: Vec<&str> = weight.split('/').collect();
            for part in &parts[..parts.len() - 1] {
                node = node.group(part).map_err(h5)?;
            }
            let leaf = parts[parts.len() - 1];
            let dataset = node.dataset(leaf).map_err(h5)?;
            let variable = leaf.split(':').next().unwrap_or(leaf);
            // `stem_conv/kernel:0` names its own layer; a model nested in another (transfer
            // learning) keeps its layers' names under the outer layer (`efficientnetb0`).
            let name = match parts.len() {
                1 => format!("{layer}/{variable}"),
                n => format!("{}/{variable}", parts[n - 2]),
            };
            match dataset_tensor(&dataset, &mut data).map_err(h5)? {
                Some(tensor) => checkpoint.tensors.push((name, tensor)),
                None => skipped.push((name, "not a parameter type".into())),
            }
        }
    }
    record_version(&mut checkpoint, keras_version.as_deref());
    checkpoint.metadata.extend(recorded);
    Ok(KerasFile {
        checkpoint,
        config,
        keras_version,
        skipped,
        unnamed: Vec::new(),
        keras3: false,
    })
}

/// The variable names of a snake-cased class in a file without a config, by count.
fn variables_by_count(class: &str, count: usize) -> Option<&'static [&'static str]> {
    Some(match (class, count) {
        ("conv2d" | "dense", 1) => &["kernel"],
        ("conv2d" | "dense", 2) => &["kernel", "bias"],
        ("depthwise_conv2d", 1) => &["depthwise_kernel"],
        ("depthwise_conv2d", 2) => &["depthwise_kernel", "bias"],
        ("batch_normalization", 4) => &["gamma", "beta", "moving_mean", "moving_variance"],
        ("batch_normalization", 2) => &["moving_mean", "moving_variance"],
        ("normalization", 3) => &["mean", "variance", "count"],
        _ => return None,
    })
}

/// A Keras 3 `.weights.h5` (`layers/<class>[_N]/vars/0..n`, no config). Keras ≥ 3.10-ish
/// writes each layer's name as the `name` attribute of its `vars` group; older files have
/// only the class and the per-class counter.
fn read_keras3_weights(
    layers: &Group,
    data: &mut DataSource<'_>,
) -> Result<KerasFile, hdf5_reader::error::Error> {
    let mut read = Vec::new();
    let mut skipped = Vec::new();
    collect_keras3_layers(layers, "layers", data, &mut read, &mut skipped, 0)?;
    // Names when every layer records one; otherwise positions for all.
    let mut named = Checkpoint::with_layout(TensorLayout::Tf);
    let mut unnamed = Vec::new();
    if read.iter().all(|(name, _)| name.is_some()) {
        for (name, layer) in read {
            let name = name.unwrap_or_default();
            for (v, t) in layer.variables {
                named.tensors.push((format!("{name}/{v}"), t));
            }
        }
    } else {
        unnamed.extend(read.into_iter().map(|(_, l)| l));
    }
    Ok(KerasFile {
        checkpoint: named,
        config: None,
        keras_version: None,
        skipped,
        unnamed,
        keras3: true,
    })
}

/// A layer read from a Keras 3 weights file: its recorded name, if any, and its variables.
type Keras3Layer = (Option<String>, UnnamedLayer);

/// The weighted layers under a `layers` group, in order within each class; a nested model's
/// group (`functional`, `sequential`) holds a `layers` group of its own, read in its place.
fn collect_keras3_layers(
    layers: &Group,
    path: &str,
    data: &mut DataSource<'_>,
    read: &mut Vec<Keras3Layer>,
    skipped: &mut Vec<(String, String)>,
    depth: usize,
) -> Result<(), hdf5_reader::error::Error> {
    let (groups, _) = layers.member_names()?;
    let mut entries: Vec<(String, usize, String)> = groups
        .into_iter()
        .map(|g| {
            let (class, n) = match g.rsplit_once('_') {
                Some((c, n)) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
                    (c.to_owned(), n.parse().unwrap_or(usize::MAX))
                }
                _ => (g.clone(), 0),
            };
            (class, n, g)
        })
        .collect();
    entries.sort();
    for (class, _, group_name) in entries {
        let group = layers.group(&group_name)?;
        let origin = format!("{path}/{group_name}");
        if depth < 8 {
            if let Ok(inner) = group.group("layers") {
                collect_keras3_layers(
                    &inner,
                    &format!("{origin}/layers"),
                    data,
                    read,
                    skipped,
                    depth + 1,
                )?;
                continue;
            }
        }
        let Ok(vars) = group.group("vars") else {
            continue;
        };
        let (_, datasets) = vars.member_names()?;
        if datasets.is_empty() {
            continue;
        }
        let mut tensors = Vec::with_capacity(datasets.len());
        for i in 0..datasets.len() {
            let Ok(dataset) = vars.dataset(&i.to_string()) else {
                break;
            };
            tensors.push(dataset_tensor(&dataset, data)?);
        }
        let Some(names) = variables_by_count(&class, tensors.len()) else {
            skipped.push((
                origin,
                format!("a `{class}` layer with {} variables", tensors.len()),
            ));
            continue;
        };
        let variables: Vec<(String, Tensor)> = names
            .iter()
            .zip(tensors)
            .filter_map(|(n, t)| Some(((*n).to_owned(), t?)))
            .collect();
        read.push((
            string_attr(&vars, "name"),
            UnnamedLayer {
                group: origin,
                class,
                variables,
            },
        ));
    }
    Ok(())
}

/// Records the Keras version in the checkpoint's metadata, when known.
fn record_version(checkpoint: &mut Checkpoint, version: Option<&str>) {
    if let Some(v) = version {
        checkpoint
            .metadata
            .insert("keras_version".into(), v.to_owned());
    }
}

/// The most bytes read from a `.keras` archive member.
const MAX_MEMBER_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// The largest `config.json` effnet reads (and never more than the input's memory budget).
const MAX_CONFIG_BYTES: u64 = 256 * 1024 * 1024;

/// The most a deflated member may inflate to, per byte of its compressed size, past 1 MiB.
const MAX_INFLATION: u64 = 200;

/// The hdf5-reader options for a file whose metadata has `budget`: one read (an attribute, a
/// dataset) may not allocate more than the budget's memory.
fn hdf5_options(budget: &Budget) -> hdf5_reader::OpenOptions {
    hdf5_reader::OpenOptions {
        max_read_bytes: usize::try_from(budget.memory_limit()).unwrap_or(usize::MAX),
        ..hdf5_reader::OpenOptions::default()
    }
}

/// Whether a zip member name is one effnet accepts: relative, no `..`, no backslash or NUL,
/// no drive letter (docs/security.md); checked for every member, read or not.
fn member_name_ok(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains('\0')
        && name.as_bytes().get(1).is_none_or(|&b| b != b':')
        && name.split('/').all(|part| part != "..")
}

/// An archive member's bytes: a view into the mapped archive (stored members) or inflated.
enum MemberBytes {
    Mapped(Arc<memmap2::Mmap>, std::ops::Range<usize>),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for MemberBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            MemberBytes::Mapped(map, range) => &map[range.clone()],
            MemberBytes::Owned(bytes) => bytes,
        }
    }
}

/// A `.keras` archive, mapped, with every member's name and extent checked.
struct Archive<'a> {
    path: &'a Path,
    map: Arc<memmap2::Mmap>,
    zip: zip::ZipArchive<std::io::Cursor<&'a [u8]>>,
}

impl<'a> Archive<'a> {
    /// Opens the archive in `bytes` (a view of `map`): refuses a member name with `..`, a
    /// leading `/`, a backslash or a drive letter, and members whose data runs into the next
    /// member's header or past the end of the archive.
    fn open(path: &'a Path, map: Arc<memmap2::Mmap>, bytes: &'a [u8]) -> Result<Self, KerasError> {
        let err = |message: String| KerasError::NotKeras {
            path: path.to_owned(),
            message,
        };
        let mut zip = zip::ZipArchive::with_config(zip_config(), std::io::Cursor::new(bytes))
            .map_err(|e| err(format!("not a readable zip archive: {e}")))?;
        let mut extents: Vec<(u64, u64, String)> = Vec::with_capacity(zip.len());
        for i in 0..zip.len() {
            let entry = zip
                .by_index(i)
                .map_err(|e| err(format!("zip member {i}: {e}")))?;
            let name = entry
                .name()
                .map_err(|e| err(format!("zip member {i}: {e}")))?
                .into_owned();
            if !member_name_ok(&name) {
                return Err(err(format!(
                    "zip member `{name}` has a path leading outside the archive (`..`, an absolute path or a backslash)"
                )));
            }
            let start = entry.header_start();
            let end = entry
                .data_start()
                .and_then(|d| d.checked_add(entry.compressed_size()))
                .filter(|&e| e <= bytes.len() as u64)
                .ok_or_else(|| {
                    err(format!(
                        "zip member `{name}` runs past the end of the archive"
                    ))
                })?;
            extents.push((start, end, name));
        }
        extents.sort();
        for pair in extents.windows(2) {
            if pair[0].1 > pair[1].0 {
                return Err(err(format!(
                    "zip member `{}` runs into the next member `{}`",
                    pair[0].2, pair[1].2
                )));
            }
        }
        Ok(Self { path, map, zip })
    }

    /// A member's bytes, at most `limit`: a stored member is a view into the map with its
    /// CRC-32 checked; a deflated one is refused before inflating if it declares more than
    /// `limit`, more than [`MAX_INFLATION`] × its compressed size (past 1 MiB) or more than the
    /// budget's memory, and its CRC-32 is checked as it is read to its end.
    fn member(
        &mut self,
        name: &str,
        limit: u64,
        budget: &Budget,
    ) -> Result<MemberBytes, KerasError> {
        use std::io::Read;
        let path = self.path;
        let err = |message: String| KerasError::NotKeras {
            path: path.to_owned(),
            message,
        };
        let entry = self
            .zip
            .by_name(name)
            .map_err(|e| err(format!("`{name}`: {e}")))?;
        if entry.encrypted() {
            return Err(err(format!("`{name}` is encrypted")));
        }
        let size = entry.size();
        let compressed = entry.compressed_size();
        if size > limit {
            return Err(err(format!(
                "`{name}` declares {size} bytes, beyond the {limit}-byte limit"
            )));
        }
        if size > 1 << 20 && size > compressed.saturating_mul(MAX_INFLATION) {
            return Err(err(format!(
                "`{name}` would inflate from {compressed} to {size} bytes, more than {MAX_INFLATION}× (a deflate bomb)"
            )));
        }
        if entry.compression() == zip::CompressionMethod::Stored {
            let start = entry
                .data_start()
                .and_then(|s| usize::try_from(s).ok())
                .ok_or_else(|| err(format!("`{name}` has no data")))?;
            let range = usize::try_from(size)
                .ok()
                .filter(|_| size == compressed)
                .and_then(|n| Some(start..start.checked_add(n)?))
                .filter(|r| r.end <= self.map.len())
                .ok_or_else(|| err(format!("`{name}` lies outside the archive")))?;
            // Hashed on every core; the pages leave the process once hashed (the weights are
            // read again only where they are used).
            let map = &self.map;
            let release = |piece: &[u8]| {
                use effnet_ir::Storage;
                let start = piece.as_ptr() as usize - map.as_ptr() as usize;
                map.release(start, piece.len());
            };
            let crc = effnet_io::checksum::crc32_parts(&[&map[range.clone()]], 8 << 20, &release);
            if crc[0] != entry.crc32() {
                return Err(err(format!(
                    "`{name}` fails its CRC-32 check (the archive is damaged)"
                )));
            }
            return Ok(MemberBytes::Mapped(self.map.clone(), range));
        }
        budget
            .memory(size, || format!("inflating `{name}`"))
            .map_err(|e| err(e.to_string()))?;
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // Read to the member's end: the zip reader checks the CRC-32 there.
        entry
            .take(size.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| err(format!("`{name}`: {e}")))?;
        if out.len() as u64 != size {
            return Err(err(format!(
                "`{name}` inflates to {} bytes where it declares {size}",
                out.len()
            )));
        }
        Ok(MemberBytes::Owned(out))
    }
}

/// Archives start at byte 0: without saying so, the `zip` crate scans the whole file for
/// prepended data (0.2 s for a 266 MB PyTorch archive).
fn zip_config() -> zip::read::Config {
    zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    }
}

/// Whether a zip archive's entry names are those of a Keras 3 `.keras` file.
pub fn is_keras_zip(path: &Path) -> bool {
    let Ok(file) = effnet_io::input::open_regular(path) else {
        return false;
    };
    let Ok(archive) = zip::ZipArchive::with_config(zip_config(), std::io::BufReader::new(file))
    else {
        return false;
    };
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    // `metadata.json` beside `config.json` marks a `.keras` file even when its weights are
    // missing (which `read_keras3` then reports).
    names.iter().any(|n| n == "config.json")
        && names
            .iter()
            .any(|n| n == "model.weights.h5" || n == "metadata.json")
}

/// Keras' `to_snake_case` of a class name (`DepthwiseConv2D` → `depthwise_conv2d`).
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev.is_ascii_lowercase() || (next_lower && prev != '_') {
                out.push('_');
            }
        }
        out.push(c);
    }
    out.to_lowercase()
}

/// The variable names of a layer class, by position.
fn variables(class: &str, config: &serde_json::Value) -> Vec<&'static str> {
    let flag = |key: &str| {
        config
            .get(key)
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true)
    };
    match class {
        "Conv2D" | "Dense" => vec!["kernel", "bias"],
        "DepthwiseConv2D" => vec!["depthwise_kernel", "bias"],
        "BatchNormalization" => {
            let mut v = Vec::new();
            if flag("scale") {
                v.push("gamma");
            }
            if flag("center") {
                v.push("beta");
            }
            v.extend(["moving_mean", "moving_variance"]);
            v
        }
        "Normalization" => vec!["mean", "variance", "count"],
        _ => Vec::new(),
    }
}

/// Reads a Keras 3 `.keras` archive.
pub fn read_keras3(path: &Path) -> Result<KerasFile, KerasError> {
    let err = |message: String| KerasError::NotKeras {
        path: path.to_owned(),
        message,
    };
    let h5 = |e: hdf5_reader::error::Error| KerasError::Hdf5 {
        path: path.to_owned(),
        message: e.to_string(),
    };
    // Regular files only, checked on the descriptor; the archive is mapped, never read whole.
    let (_, map) = effnet_io::input::map_regular(path).map_err(|e| err(e.to_string()))?;
    let map = Arc::new(map);
    let file_len = map.len() as u64;
    let budget = Budget::for_input(file_len);
    let mut archive = Archive::open(path, map.clone(), &map[..])?;
    let config_bytes = archive.member("config.json", MAX_CONFIG_BYTES, &budget)?;
    let config = parse_json(config_bytes.as_ref(), &budget, "config.json").map_err(err)?;
    drop(config_bytes);
    // Optional; but when present it is read like the others (a failed CRC-32 is an error).
    let metadata = if archive.zip.index_for_name("metadata.json").is_some() {
        Some(archive.member("metadata.json", 1024 * 1024, &budget)?)
    } else {
        None
    };
    let metadata = metadata.and_then(|m| parse_json(m.as_ref(), &budget, "metadata.json").ok());
    let keras_version = metadata.as_ref().and_then(|m| {
        m.get("keras_version")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    });
    // What effnet recorded when it wrote the file.
    let recorded: Vec<(String, String)> = EFFNET_KEYS
        .iter()
        .filter_map(|&k| {
            let value = metadata.as_ref()?.get("effnet")?.get(k)?.as_str()?;
            Some((k.to_owned(), value.to_owned()))
        })
        .collect();
    let weights = archive.member(
        "model.weights.h5",
        MAX_MEMBER_BYTES.min(file_len.saturating_mul(MAX_INFLATION)),
        &budget,
    )?;
    drop(archive);
    let data_budget = (weights.as_ref().len() as u64).saturating_mul(MAX_EXPANSION);
    // A stored member is a range of the archive's map: its contiguous datasets are views.
    let member_map = match &weights {
        MemberBytes::Mapped(map, range) => Some((map.clone(), range.start)),
        MemberBytes::Owned(_) => None,
    };
    let h5file = Hdf5File::from_owner(weights, hdf5_options(&budget)).map_err(h5)?;
    let mut data = DataSource {
        file: &h5file,
        map: member_map,
        budget: data_budget,
    };
    let root = h5file.root_group().map_err(h5)?;
    let layers_group = root.group("layers").map_err(h5)?;
    let layers = config
        .pointer("/config/layers")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| err("config.json lists no layers".into()))?;
    let mut checkpoint = Checkpoint::with_layout(TensorLayout::Tf);
    let mut skipped = Vec::new();
    read_config_layers(
        &layers_group,
        layers,
        &mut data,
        &mut checkpoint,
        &mut skipped,
        0,
    )
    .map_err(h5)?;
    record_version(&mut checkpoint, keras_version.as_deref());
    checkpoint.metadata.extend(recorded);
    Ok(KerasFile {
        checkpoint,
        config: Some(config),
        keras_version,
        skipped,
        unnamed: Vec::new(),
        keras3: true,
    })
}

/// How many times its file size a file's datasets may claim together (HDF5 can compress;
/// Keras does not).
const MAX_EXPANSION: u64 = 200;

/// The variables of `layers` (a config's layer list) from the `layers` group of a Keras 3
/// weights file: groups are the snake-cased class plus a per-class counter in config order; a
/// nested model's group holds its own `layers` group, read with its own config.
fn read_config_layers(
    group: &Group,
    layers: &[serde_json::Value],
    data: &mut DataSource<'_>,
    checkpoint: &mut Checkpoint,
    skipped: &mut Vec<(String, String)>,
    depth: usize,
) -> Result<(), hdf5_reader::error::Error> {
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for layer in layers {
        let class = layer
            .get("class_name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        let layer_config = layer.get("config").cloned().unwrap_or_default();
        let name = layer_config
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned();
        let snake = snake_case(class);
        let n = counts.entry(snake.clone()).or_insert(0);
        let group_name = if *n == 0 {
            snake.clone()
        } else {
            format!("{snake}_{n}")
        };
        *n += 1;
        let Ok(layer_group) = group.group(&group_name) else {
            continue;
        };
        let inner = layer_config
            .get("layers")
            .and_then(serde_json::Value::as_array);
        if let (Some(inner), Ok(inner_group), true) =
            (inner, layer_group.group("layers"), depth < 8)
        {
            read_config_layers(&inner_group, inner, data, checkpoint, skipped, depth + 1)?;
            continue;
        }
        let Ok(vars) = layer_group.group("vars") else {
            continue;
        };
        for (i, variable) in variables(class, &layer_config).into_iter().enumerate() {
            let Ok(dataset) = vars.dataset(&i.to_string()) else {
                continue;
            };
            let full = format!("{name}/{variable}");
            match dataset_tensor(&dataset, data)? {
                Some(t) => checkpoint.tensors.push((full, t)),
                None => skipped.push((full, "not a parameter type".into())),
            }
        }
    }
    Ok(())
}

/// A memory map shared between the HDF5 reader and the tensors viewing it.
struct SharedMap(Arc<memmap2::Mmap>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Where datasets' bytes come from: the open file, the map its HDF5 bytes sit in (with their
/// offset in it) when they are mapped, and what the datasets still to be read may claim.
struct DataSource<'a> {
    file: &'a Hdf5File,
    map: Option<(Arc<memmap2::Mmap>, usize)>,
    budget: u64,
}

impl DataSource<'_> {
    /// A contiguous, little-endian dataset of `len` bytes as a view into the map: nothing is
    /// read until the weights are used. `None` where the dataset is stored otherwise (compact,
    /// chunked, big-endian, unallocated) or the file is not mapped: it is read then.
    fn view(&self, dataset: &hdf5_reader::dataset::Dataset, len: usize) -> Option<Bytes> {
        use hdf5_reader::messages::HdfMessage;
        use hdf5_reader::messages::layout::DataLayout;
        let (map, offset) = self.map.as_ref()?;
        let little_endian = match dataset.dtype() {
            hdf5_reader::Datatype::FloatingPoint { byte_order, .. }
            | hdf5_reader::Datatype::FixedPoint { byte_order, .. } => {
                *byte_order == hdf5_reader::ByteOrder::LittleEndian
            }
            _ => false,
        };
        if !little_endian || cfg!(target_endian = "big") {
            return None;
        }
        let header = self.file.get_or_parse_header(dataset.address()).ok()?;
        let (address, size) = header.messages.iter().find_map(|m| match m {
            HdfMessage::DataLayout(l) => match l.layout {
                DataLayout::Contiguous { address, size } => Some((address, size)),
                _ => None,
            },
            _ => None,
        })?;
        if usize::try_from(size).ok()? != len {
            return None;
        }
        let start = self
            .file
            .superblock()
            .base_address
            .checked_add(address)
            .and_then(|a| usize::try_from(a).ok())
            .and_then(|a| a.checked_add(*offset))?;
        Bytes::new(map.clone(), start, len).ok()
    }
}

/// A dataset as a tensor (`None` for types that are not parameters): a view into the map when
/// it is stored contiguously, read otherwise. `data.budget` is what the datasets still to be
/// read may claim; a dataset claiming more is refused before anything is allocated.
fn dataset_tensor(
    dataset: &hdf5_reader::dataset::Dataset,
    data: &mut DataSource<'_>,
) -> Result<Option<Tensor>, hdf5_reader::error::Error> {
    let budget = &mut data.budget;
    let dtype = match dataset.dtype() {
        hdf5_reader::Datatype::FloatingPoint { size: 4, .. } => DType::F32,
        hdf5_reader::Datatype::FloatingPoint { size: 2, .. } => DType::F16,
        hdf5_reader::Datatype::FloatingPoint { size: 8, .. } => DType::F64,
        hdf5_reader::Datatype::FixedPoint {
            size: 8,
            signed: true,
            ..
        } => DType::I64,
        _ => return Ok(None),
    };
    let claimed = dataset
        .shape()
        .iter()
        .try_fold(dtype.size() as u64, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= *budget)
        .ok_or_else(|| {
            hdf5_reader::error::Error::Other(format!(
                "dataset `{}` claims more bytes ({:?} × {}) than the file can hold",
                dataset.name(),
                dataset.shape(),
                dtype.size()
            ))
        })?;
    *budget -= claimed;
    let shape: Vec<usize> = dataset
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    let bytes = match usize::try_from(claimed)
        .ok()
        .and_then(|len| data.view(dataset, len))
    {
        Some(view) => view,
        None => Bytes::from_vec(dataset.read_native_bytes()?),
    };
    Ok(Tensor::with_data(dtype, shape, bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A zip archive of `(name, bytes, deflated)` members, written to a temporary file.
    fn archive(members: &[(&str, &[u8], bool)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.keras");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for (name, bytes, deflated) in members {
            let method = if *deflated {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            };
            let options = zip::write::SimpleFileOptions::default().compression_method(method);
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        (dir, path)
    }

    fn read_error(path: &Path) -> String {
        read_keras3(path).unwrap_err().to_string()
    }

    #[test]
    fn member_names_leading_outside_are_refused() {
        for bad in ["../x", "a/../../x", "/etc/passwd", "a\\b", "C:x", ""] {
            assert!(!member_name_ok(bad), "{bad}");
        }
        for good in ["config.json", "assets/a..b", "model.weights.h5"] {
            assert!(member_name_ok(good), "{good}");
        }
        let (_dir, path) = archive(&[
            ("config.json", b"{}", false),
            ("metadata.json", b"{}", false),
            ("../evil", b"x", false),
        ]);
        assert!(read_error(&path).contains("outside the archive"));
    }

    #[test]
    fn a_stored_member_failing_its_crc_is_refused() {
        let (_dir, path) = archive(&[
            ("metadata.json", b"{}", false),
            ("config.json", b"{\"config\": {\"layers\": []}}", false),
        ]);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(6).position(|w| w == b"layers").unwrap();
        bytes[at] = b'L';
        std::fs::write(&path, bytes).unwrap();
        assert!(read_error(&path).contains("CRC-32"));
        // An optional member read is checked too.
        let (_dir, path) = archive(&[
            ("metadata.json", b"{\"keras_version\": \"3.0\"}", false),
            ("config.json", b"{}", false),
        ]);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(3).position(|w| w == b"3.0").unwrap();
        bytes[at] = b'4';
        std::fs::write(&path, bytes).unwrap();
        assert!(read_error(&path).contains("CRC-32"));
    }

    #[test]
    fn a_deflated_member_is_refused_before_inflating_past_its_ratio() {
        let zeros = vec![b' '; 50 << 20];
        let (_dir, path) = archive(&[
            ("metadata.json", b"{}", false),
            ("config.json", &zeros, true),
        ]);
        assert!(std::fs::metadata(&path).unwrap().len() < 1 << 20);
        let error = read_error(&path);
        assert!(error.contains("deflate bomb"), "{error}");
    }

    #[test]
    fn json_values_are_charged_before_parsing() {
        // 10 MB of `[0,0,…]`: 5 M values, far more than the budget of a small input.
        let mut text = b"[".to_vec();
        text.extend(std::iter::repeat_n(*b"0,", 5_000_000).flatten());
        text.extend(b"0]");
        let budget = Budget::for_input(250_000);
        let error = parse_json(&text, &budget, "config.json").unwrap_err();
        assert!(error.contains("memory"), "{error}");
        // Commas and brackets inside strings are not values.
        let budget = Budget::with_limits(0, 4096, 4096);
        let value = parse_json(b"{\"a\": \"[,,,,{\\\"\"}", &budget, "x").unwrap();
        assert_eq!(value["a"], "[,,,,{\"");
    }

    #[test]
    fn snake_case_matches_keras() {
        assert_eq!(snake_case("Conv2D"), "conv2d");
        assert_eq!(snake_case("DepthwiseConv2D"), "depthwise_conv2d");
        assert_eq!(snake_case("BatchNormalization"), "batch_normalization");
        assert_eq!(
            snake_case("GlobalAveragePooling2D"),
            "global_average_pooling2d"
        );
        assert_eq!(snake_case("InputLayer"), "input_layer");
        assert_eq!(snake_case("ZeroPadding2D"), "zero_padding2d");
        assert_eq!(snake_case("Dense"), "dense");
    }
}
