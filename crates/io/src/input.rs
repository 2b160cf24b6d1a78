//! Opening inputs: regular files only, checked on the open descriptor.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use memmap2::Mmap;

/// A file's identity: device and inode (a hard link or a symlink of a file has the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    /// The identity of what `metadata` describes.
    pub fn of(metadata: &Metadata) -> Self {
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }

    /// The identity of the file or folder at `path` (symlinks followed), if it exists.
    pub fn of_path(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Self::of(&m))
    }
}

/// What kind of thing a path is, in words, for an error message.
pub fn kind_of(metadata: &Metadata) -> &'static str {
    let t = metadata.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading only if it is a regular file. The file is opened without blocking
/// (a FIFO cannot stall the open) and its type checked on the descriptor, so a path swapped
/// after a name check cannot slip a device or FIFO in.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}, not a regular file", kind_of(&metadata)),
        ));
    }
    Ok(file)
}

/// Opens a regular file and maps it read-only; an empty file maps to an empty slice.
pub fn map_regular(path: &Path) -> io::Result<(File, Mmap)> {
    let file = open_regular(path)?;
    // SAFETY: the map is read-only and effnet never writes its inputs (outputs that are an
    // input are refused by identity); a concurrent writer could change bytes under it, which
    // read-only tools accept, as torch.load(mmap=True) and safetensors do.
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file) }?;
    Ok((file, map))
}

/// Reads a whole regular file, refusing one larger than `limit` bytes (checked on the
/// descriptor and again while reading, so a file that grows cannot exceed it).
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > limit {
        return Err(too_large(len, limit));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64, limit));
    }
    Ok(bytes)
}

fn too_large(len: u64, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{len} bytes, more than the {limit} accepted for this file"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_folders_are_refused() {
        let err = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = open_regular(dir.path()).unwrap_err();
        assert!(err.to_string().contains("folder"), "{err}");
        let fifo = dir.path().join("model.pth");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        #[allow(unsafe_code)]
        // SAFETY: a valid NUL-terminated path.
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0);
        let err = open_regular(&fifo).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    #[test]
    fn a_symlink_to_a_device_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("ckpt.index");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(read_regular(&link, 1 << 20).is_err());
    }

    #[test]
    fn read_regular_enforces_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 100]).unwrap();
        assert_eq!(read_regular(&path, 100).unwrap().len(), 100);
        assert!(read_regular(&path, 99).is_err());
    }
}
