//! Hostile Keras files: HDF5 and `.keras` archives.
