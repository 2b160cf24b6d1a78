//! What the fuzzers found in the Keras reader, one test each, on the inputs they found
//! (committed under `fixtures/hostile/fuzz-*`).

use std::path::Path;

fn hostile(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/hostile")
        .join(name)
}

/// `hdf5` target, 190 s in: a dataset whose dataspace claims 2^60 floats made the reader try
/// to allocate 4 EiB (refused by the allocator, but a claim of a few GiB would have been
/// granted and filled). Datasets may now claim at most 200× the file's size, checked before
/// any allocation.
#[test]
fn hdf5_dataset_claiming_exabytes_is_refused_before_allocating() {
    let path = hostile("fuzz-h5-dataset-claims-exabytes.h5");
    let error = effnet_keras::read(&path).unwrap_err().to_string();
    assert!(error.contains("claims more bytes"), "{error}");
    assert!(
        error.contains("fuzz-h5-dataset-claims-exabytes.h5"),
        "{error}"
    );
}
