//! A streaming HDF5 writer for the subset Keras and tf-keras files use: nested groups,
//! contiguous datasets of numbers, and attributes (fixed-length strings, string arrays,
//! integers).
//!
//! The file is laid out before anything is written: a version 2 superblock, every object
//! header (version 2, links stored compactly in the header), then each dataset's raw data in
//! the order the tree lists them. Only the data is streamed, through a callback, so a writer
//! holds one tensor at a time and never seeks: the output can be a zip member as well as a
//! file. Readers need HDF5 1.8 or later (2008), which every h5py build has.

mod checksum;

use std::io::{self, Write};

pub use checksum::lookup3;

/// "Undefined address" in HDF5.
const UNDEFINED: u64 = u64::MAX;
/// The size of a version 2 superblock with 8-byte offsets and lengths.
const SUPERBLOCK_SIZE: u64 = 48;
/// The largest header message: its size is a 16-bit field.
const MAX_MESSAGE: usize = u16::MAX as usize;

/// Why a file cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Hdf5Error {
    /// A link name is empty, holds `/` or a NUL, or is `.`.
    #[error("`{0}` is not a valid HDF5 link name")]
    BadName(String),
    /// Two links of one group have the same name.
    #[error("the group holds `{0}` twice")]
    Duplicate(String),
    /// An attribute does not fit in an object header message (64 KiB).
    #[error("attribute `{name}` takes {bytes} bytes, more than an HDF5 header message holds")]
    AttributeTooLarge {
        /// The attribute.
        name: String,
        /// Its encoded size.
        bytes: usize,
    },
    /// The data callback wrote another number of bytes than the dataset holds.
    #[error("dataset `{name}`: {written} bytes written for {expected}")]
    DataSize {
        /// The dataset's path.
        name: String,
        /// Bytes the callback wrote.
        written: u64,
        /// Bytes the dataset holds.
        expected: u64,
    },
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The element type of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE half precision.
    F16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F16 => 2,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F64 | Dtype::I64 => 8,
        }
    }

    /// The datatype message (little-endian).
    fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20);
        // (sign bit, exponent location, exponent size, mantissa size, bias) of the IEEE formats.
        let float = |out: &mut Vec<u8>, bits: u16, sign: u8, exp: (u8, u8), mant: u8, bias: u32| {
            out.extend_from_slice(&[0x11, 0x20, sign, 0x00]);
            out.extend_from_slice(&u32::from(bits / 8).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&bits.to_le_bytes());
            out.extend_from_slice(&[exp.0, exp.1, 0, mant]);
            out.extend_from_slice(&bias.to_le_bytes());
        };
        let int = |out: &mut Vec<u8>, bits: u16| {
            // Fixed-point, version 1; bit 3 of the class bits: signed.
            out.extend_from_slice(&[0x10, 0x08, 0x00, 0x00]);
            out.extend_from_slice(&u32::from(bits / 8).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&bits.to_le_bytes());
        };
        match self {
            Dtype::F16 => float(&mut out, 16, 15, (10, 5), 10, 15),
            Dtype::F32 => float(&mut out, 32, 31, (23, 8), 23, 127),
            Dtype::F64 => float(&mut out, 64, 63, (52, 11), 52, 1023),
            Dtype::I32 => int(&mut out, 32),
            Dtype::I64 => int(&mut out, 64),
        }
        out
    }
}

/// An attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// A fixed-length UTF-8 byte string (h5py reads `bytes`), null-padded.
    String(String),
    /// A one-dimensional array of fixed-length UTF-8 byte strings, each null-padded to the
    /// longest.
    Strings(Vec<String>),
    /// A signed 64-bit integer scalar.
    I64(i64),
    /// A variable-length UTF-8 string (h5py reads `str`), held in a global heap: any length,
    /// where a fixed-length one must fit in a header message (64 KiB).
    VarString(String),
}

impl AttrValue {
    /// `(datatype, dataspace, data)` messages of the value; a variable-length string refers
    /// to the global heap collection at `heap` (object 1).
    fn encode(&self, heap: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let string_type = |len: usize| {
            // String, version 1; null-padded UTF-8.
            let mut t = vec![0x13, 0x11, 0x00, 0x00];
            t.extend_from_slice(&(len as u32).to_le_bytes());
            t
        };
        match self {
            AttrValue::String(s) => {
                let len = s.len().max(1);
                let mut data = s.as_bytes().to_vec();
                data.resize(len, 0);
                (string_type(len), dataspace(None), data)
            }
            AttrValue::Strings(items) => {
                let len = items.iter().map(String::len).max().unwrap_or(0).max(1);
                let mut data = Vec::with_capacity(len * items.len());
                for s in items {
                    data.extend_from_slice(s.as_bytes());
                    data.resize(data.len() + len - s.len(), 0);
                }
                (
                    string_type(len),
                    dataspace(Some(&[items.len() as u64])),
                    data,
                )
            }
            AttrValue::I64(v) => (
                Dtype::I64.encode(),
                dataspace(None),
                v.to_le_bytes().to_vec(),
            ),
            AttrValue::VarString(text) => {
                // Variable-length, version 1: a string, null-terminated, UTF-8; 16 bytes per
                // element (length, heap address, object index); its base type one unsigned
                // byte.
                let mut t = vec![0x19, 0x01, 0x01, 0x00];
                t.extend_from_slice(&16u32.to_le_bytes());
                t.extend_from_slice(&[0x10, 0x00, 0x00, 0x00]);
                t.extend_from_slice(&1u32.to_le_bytes());
                t.extend_from_slice(&0u16.to_le_bytes());
                t.extend_from_slice(&8u16.to_le_bytes());
                let mut data = (text.len() as u32).to_le_bytes().to_vec();
                data.extend_from_slice(&heap.to_le_bytes());
                data.extend_from_slice(&1u32.to_le_bytes());
                (t, dataspace(None), data)
            }
        }
    }
}

/// A version 2 dataspace message: scalar for `None`, else simple with these dimensions.
fn dataspace(dims: Option<&[u64]>) -> Vec<u8> {
    match dims {
        None => vec![2, 0, 0, 0],
        Some(dims) => {
            let mut out = vec![2, dims.len() as u8, 0, 1];
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out
        }
    }
}

/// A dataset: its element type and shape, and a key the data callback receives.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions; empty for a scalar.
    pub shape: Vec<u64>,
    /// Handed to the data callback to say which dataset to write.
    pub key: usize,
    attributes: Vec<(String, AttrValue)>,
}

impl Dataset {
    /// A dataset of `dtype` and `shape`, whose data the callback writes when called with `key`.
    pub fn new(dtype: Dtype, shape: Vec<u64>, key: usize) -> Self {
        Dataset {
            dtype,
            shape,
            key,
            attributes: Vec::new(),
        }
    }

    /// Bytes of data.
    pub fn byte_len(&self) -> u64 {
        self.shape.iter().product::<u64>() * self.dtype.size() as u64
    }

    /// Sets an attribute.
    pub fn set_attr(&mut self, name: &str, value: AttrValue) {
        set(&mut self.attributes, name, value);
    }
}

enum Node {
    Group(Group),
    Dataset(Dataset),
}

/// A group: attributes and named links to groups and datasets, in insertion order.
#[derive(Default)]
pub struct Group {
    attributes: Vec<(String, AttrValue)>,
    links: Vec<(String, Node)>,
}

fn set(attributes: &mut Vec<(String, AttrValue)>, name: &str, value: AttrValue) {
    match attributes.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => *v = value,
        None => attributes.push((name.to_owned(), value)),
    }
}

fn check_name(name: &str) -> Result<(), Hdf5Error> {
    if name.is_empty() || name == "." || name.contains(['/', '\0']) {
        return Err(Hdf5Error::BadName(name.to_owned()));
    }
    Ok(())
}

impl Group {
    /// An empty group.
    pub fn new() -> Self {
        Group::default()
    }

    /// Sets an attribute.
    pub fn set_attr(&mut self, name: &str, value: AttrValue) {
        set(&mut self.attributes, name, value);
    }

    /// The subgroup `name`, created when missing.
    pub fn group(&mut self, name: &str) -> Result<&mut Group, Hdf5Error> {
        check_name(name)?;
        let index = match self.links.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.links
                    .push((name.to_owned(), Node::Group(Group::new())));
                self.links.len() - 1
            }
        };
        match &mut self.links[index].1 {
            Node::Group(g) => Ok(g),
            Node::Dataset(_) => Err(Hdf5Error::Duplicate(name.to_owned())),
        }
    }

    /// Adds the dataset `name`.
    pub fn add_dataset(&mut self, name: &str, dataset: Dataset) -> Result<(), Hdf5Error> {
        check_name(name)?;
        if self.links.iter().any(|(n, _)| n == name) {
            return Err(Hdf5Error::Duplicate(name.to_owned()));
        }
        self.links.push((name.to_owned(), Node::Dataset(dataset)));
        Ok(())
    }
}

/// One object of the file, in layout order.
enum Object<'a> {
    Group {
        group: &'a Group,
        /// Object index of each link's target.
        children: Vec<usize>,
    },
    Dataset {
        dataset: &'a Dataset,
        path: String,
    },
}

fn flatten<'a>(group: &'a Group, path: &str, objects: &mut Vec<Object<'a>>) -> usize {
    let me = objects.len();
    objects.push(Object::Group {
        group,
        children: Vec::new(),
    });
    let mut children = Vec::with_capacity(group.links.len());
    for (name, node) in &group.links {
        let child_path = format!("{path}/{name}");
        match node {
            Node::Group(g) => children.push(flatten(g, &child_path, objects)),
            Node::Dataset(dataset) => {
                children.push(objects.len());
                objects.push(Object::Dataset {
                    dataset,
                    path: child_path,
                });
            }
        }
    }
    if let Object::Group { children: c, .. } = &mut objects[me] {
        *c = children;
    }
    me
}

/// Appends a header message: type, size, flags, data.
fn message(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(data.len() as u16).to_le_bytes());
    out.push(0);
    out.extend_from_slice(data);
}

fn attribute_messages(
    out: &mut Vec<u8>,
    attributes: &[(String, AttrValue)],
    heaps: &mut dyn FnMut() -> u64,
) -> Result<(), Hdf5Error> {
    for (name, value) in attributes {
        let heap = match value {
            AttrValue::VarString(_) => heaps(),
            _ => UNDEFINED,
        };
        let (datatype, space, data) = value.encode(heap);
        let mut m = vec![3, 0];
        m.extend_from_slice(&(name.len() as u16 + 1).to_le_bytes());
        m.extend_from_slice(&(datatype.len() as u16).to_le_bytes());
        m.extend_from_slice(&(space.len() as u16).to_le_bytes());
        // Name encoding: UTF-8.
        m.push(1);
        m.extend_from_slice(name.as_bytes());
        m.push(0);
        m.extend_from_slice(&datatype);
        m.extend_from_slice(&space);
        m.extend_from_slice(&data);
        if m.len() > MAX_MESSAGE || name.len() > MAX_MESSAGE {
            return Err(Hdf5Error::AttributeTooLarge {
                name: name.clone(),
                bytes: m.len(),
            });
        }
        message(out, 0x0c, &m);
    }
    Ok(())
}

/// The version 2 object header holding `messages`, with its checksum.
fn object_header(messages: &[u8]) -> Vec<u8> {
    let len = messages.len();
    let (flags, size): (u8, Vec<u8>) = if len <= 0xff {
        (0, vec![len as u8])
    } else if len <= 0xffff {
        (1, (len as u16).to_le_bytes().to_vec())
    } else {
        (2, (len as u32).to_le_bytes().to_vec())
    };
    let mut out = Vec::with_capacity(len + 16);
    out.extend_from_slice(b"OHDR");
    out.push(2);
    out.push(flags);
    out.extend_from_slice(&size);
    out.extend_from_slice(messages);
    let sum = lookup3(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn encode(
    object: &Object<'_>,
    addresses: &[u64],
    data_address: u64,
    heaps: &mut dyn FnMut() -> u64,
) -> Result<Vec<u8>, Hdf5Error> {
    let mut m = Vec::new();
    match object {
        Object::Group { group, children } => {
            // Link info: no creation order, compact storage (no fractal heap, no name index).
            let mut info = vec![0, 0];
            info.extend_from_slice(&UNDEFINED.to_le_bytes());
            info.extend_from_slice(&UNDEFINED.to_le_bytes());
            message(&mut m, 0x02, &info);
            message(&mut m, 0x0a, &[0, 0]);
            for ((name, _), &child) in group.links.iter().zip(children) {
                // Link, version 1: hard link, UTF-8 name with a 1- or 2-byte length.
                let wide = name.len() > 0xff;
                let mut link = vec![1, 0x10 | u8::from(wide), 1];
                if wide {
                    link.extend_from_slice(&(name.len() as u16).to_le_bytes());
                } else {
                    link.push(name.len() as u8);
                }
                link.extend_from_slice(name.as_bytes());
                link.extend_from_slice(&addresses[child].to_le_bytes());
                message(&mut m, 0x06, &link);
            }
            attribute_messages(&mut m, &group.attributes, heaps)?;
        }
        Object::Dataset { dataset, .. } => {
            let space = if dataset.shape.is_empty() {
                dataspace(None)
            } else {
                dataspace(Some(&dataset.shape))
            };
            message(&mut m, 0x01, &space);
            message(&mut m, 0x03, &dataset.dtype.encode());
            // Fill value, version 3: late allocation, written if set, the default value.
            message(&mut m, 0x05, &[3, 0x0a]);
            // Layout, version 3: contiguous.
            let len = dataset.byte_len();
            let mut layout = vec![3, 1];
            let address = if len == 0 { UNDEFINED } else { data_address };
            layout.extend_from_slice(&address.to_le_bytes());
            layout.extend_from_slice(&len.to_le_bytes());
            message(&mut m, 0x08, &layout);
            attribute_messages(&mut m, &dataset.attributes, heaps)?;
        }
    }
    Ok(object_header(&m))
}

/// A global heap collection holding `data` as object 1, at least 4 KiB as HDF5 sizes them,
/// the rest described by the free-space object 0.
fn heap_collection(data: &[u8]) -> Vec<u8> {
    const HEADER: usize = 16;
    let padded = data.len().div_ceil(8) * 8;
    let used = HEADER + HEADER + padded;
    let mut size = used.max(4096);
    if size > used && size - used < HEADER {
        size = used + HEADER;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"GCOL");
    out.extend_from_slice(&[1, 0, 0, 0]);
    out.extend_from_slice(&(size as u64).to_le_bytes());
    // Object 1: index, reference count, reserved, size, data padded to 8 bytes.
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data);
    out.resize(used, 0);
    if size > used {
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&((size - used) as u64).to_le_bytes());
        out.resize(size, 0);
    }
    out
}

/// Counts what passes through.
struct Counting<'a> {
    inner: &'a mut dyn Write,
    written: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the file whose root group is `root` to `out`, front to back. `data(key, writer)`
/// is called once per dataset with data, in the order the groups list them, and must write
/// exactly the dataset's bytes (little-endian, C order). Returns the file's size.
pub fn write(
    root: &Group,
    out: &mut dyn Write,
    mut data: impl FnMut(usize, &mut dyn Write) -> io::Result<()>,
) -> Result<u64, Hdf5Error> {
    let mut objects = Vec::new();
    flatten(root, "", &mut objects);
    // Header sizes do not depend on the addresses they hold: lay out with placeholders.
    let placeholder = vec![0u64; objects.len()];
    let mut addresses = Vec::with_capacity(objects.len());
    let mut next = SUPERBLOCK_SIZE;
    for object in &objects {
        addresses.push(next);
        next += encode(object, &placeholder, 0, &mut || 0)?.len() as u64;
    }
    // One global heap collection per variable-length string, after the headers.
    let strings: Vec<&str> = objects
        .iter()
        .flat_map(|o| match o {
            Object::Group { group, .. } => group.attributes.iter(),
            Object::Dataset { dataset, .. } => dataset.attributes.iter(),
        })
        .filter_map(|(_, v)| match v {
            AttrValue::VarString(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let collections: Vec<Vec<u8>> = strings
        .iter()
        .map(|t| heap_collection(t.as_bytes()))
        .collect();
    let mut heap_addresses = Vec::with_capacity(collections.len());
    for c in &collections {
        heap_addresses.push(next);
        next += c.len() as u64;
    }
    let mut data_addresses = Vec::with_capacity(objects.len());
    for object in &objects {
        data_addresses.push(next);
        if let Object::Dataset { dataset, .. } = object {
            next += dataset.byte_len();
        }
    }
    let end = next;

    let mut superblock = Vec::with_capacity(SUPERBLOCK_SIZE as usize);
    superblock.extend_from_slice(b"\x89HDF\r\n\x1a\n");
    superblock.extend_from_slice(&[2, 8, 8, 0]);
    superblock.extend_from_slice(&0u64.to_le_bytes());
    superblock.extend_from_slice(&UNDEFINED.to_le_bytes());
    superblock.extend_from_slice(&end.to_le_bytes());
    superblock.extend_from_slice(&addresses[0].to_le_bytes());
    let sum = lookup3(&superblock);
    superblock.extend_from_slice(&sum.to_le_bytes());
    out.write_all(&superblock)?;
    let mut heap = heap_addresses.iter().copied();
    let mut heaps = || heap.next().unwrap_or(UNDEFINED);
    for (object, &at) in objects.iter().zip(&data_addresses) {
        out.write_all(&encode(object, &addresses, at, &mut heaps)?)?;
    }
    for c in &collections {
        out.write_all(c)?;
    }
    for object in &objects {
        let Object::Dataset { dataset, path } = object else {
            continue;
        };
        let expected = dataset.byte_len();
        if expected == 0 {
            continue;
        }
        let mut counting = Counting {
            inner: out,
            written: 0,
        };
        data(dataset.key, &mut counting)?;
        if counting.written != expected {
            return Err(Hdf5Error::DataSize {
                name: path.clone(),
                written: counting.written,
                expected,
            });
        }
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let mut root = Group::new();
        assert!(matches!(root.group("a/b"), Err(Hdf5Error::BadName(_))));
        root.add_dataset("x", Dataset::new(Dtype::F32, vec![1], 0))
            .unwrap();
        assert!(matches!(
            root.add_dataset("x", Dataset::new(Dtype::F32, vec![1], 0)),
            Err(Hdf5Error::Duplicate(_))
        ));
        assert!(matches!(root.group("x"), Err(Hdf5Error::Duplicate(_))));
    }

    #[test]
    fn a_short_callback_is_an_error() {
        let mut root = Group::new();
        root.add_dataset("x", Dataset::new(Dtype::F32, vec![2], 7))
            .unwrap();
        let mut out = Vec::new();
        let err = write(&root, &mut out, |_, w| w.write_all(&[0; 4])).unwrap_err();
        assert!(
            matches!(
                err,
                Hdf5Error::DataSize {
                    written: 4,
                    expected: 8,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn oversized_attributes_are_refused() {
        let mut root = Group::new();
        root.set_attr("big", AttrValue::String("x".repeat(70_000)));
        let err = write(&root, &mut Vec::new(), |_, _| Ok(())).unwrap_err();
        assert!(matches!(err, Hdf5Error::AttributeTooLarge { .. }), "{err}");
    }
}
