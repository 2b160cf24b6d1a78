//! Output paths that must never damage the input or another file.
