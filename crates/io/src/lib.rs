//! Safe file access, shared by every effnet reader and writer (docs/security.md):
//!
//! - [`input`]: only regular files are opened and mapped (checked on the open descriptor, so
//!   a FIFO or device never blocks or feeds a reader), and files are known by identity.
//! - [`budget`]: the memory and work a reader may spend on metadata, derived from the input's
//!   size and charged before allocating.
//! - [`output`]: outputs written through an exclusively created temporary file in the target
//!   folder and renamed into place; an output that is an input (same device and inode), lies
//!   inside an input folder, or is not a regular file is refused, `--force` or not.
//! - [`text`]: text that comes from a file escaped before it is printed.
//! - [`checksum`]: CRC-32 of mapped bytes on every core, pages released as they are hashed.

pub mod budget;
pub mod checksum;
pub mod input;
pub mod output;
pub mod text;

pub use budget::{Budget, BudgetError};
pub use input::{FileId, open_regular};
pub use output::{OutputError, check_output, write_atomic, write_atomic_checked};
pub use text::{escape, excerpt, shown};
