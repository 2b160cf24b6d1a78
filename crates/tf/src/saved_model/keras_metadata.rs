//! `keras_metadata.pb`: the root's Keras metadata (the model's class and config).

use std::path::Path;

use effnet_io::Budget;
use prost::Message;

use super::SavedMetadata;
use crate::TfError;
use crate::bundle::charge_proto;

/// The root's metadata (JSON with `class_name` and `config`) in `keras_metadata.pb` (`bytes`,
/// read from `path`), if it has any; the decoded message is charged to `budget`.
pub(super) fn root_metadata(
    budget: &Budget,
    path: &Path,
    bytes: &[u8],
) -> Result<Option<String>, TfError> {
    charge_proto(budget, path, bytes, &crate::wire::SAVED_METADATA, || {
        "decoding keras_metadata.pb".into()
    })?;
    let metadata = SavedMetadata::decode(bytes).map_err(|e| TfError::Format {
        path: path.to_owned(),
        message: format!("not Keras metadata: {e}"),
    })?;
    Ok(metadata
        .nodes
        .into_iter()
        .find(|n| n.node_path == "root")
        .map(|n| n.metadata))
}
