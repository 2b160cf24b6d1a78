//! The model file read: its graph and what the import found and did.

use std::collections::BTreeMap;
use std::path::PathBuf;

use effnet_ir::DType;
use effnet_naming::Imported;
use effnet_spec::{Evidence, Scheme};

use crate::{Change, NamingSource};

/// A model file read into the graph IR.
#[derive(Debug)]
pub struct Model {
    /// The file.
    pub path: PathBuf,
    /// The container (`torch-zip`, `torch-legacy`, `torchscript`, `safetensors`).
    pub container: &'static str,
    /// The naming scheme the tensors were read with.
    pub naming: Scheme,
    /// How it was chosen.
    pub naming_source: NamingSource,
    /// The top-level key the weights were taken from, if they were nested.
    pub key: Option<String>,
    /// Other top-level keys that hold tensors (another `--key` could take them).
    pub other_keys: Vec<String>,
    /// A wrapper prefix removed from every name (`module.`).
    pub stripped_prefix: Option<String>,
    /// The container's metadata.
    pub metadata: BTreeMap<String, String>,
    /// Tensors in the file (all keys).
    pub tensors: usize,
    /// Tensors per dtype among those read.
    pub dtypes: BTreeMap<DType, usize>,
    /// The graph and what the import did.
    pub imported: Imported,
    /// What the file records beyond tensor shapes (what an audit can verify).
    pub evidence: Evidence,
    /// Whether the file carries its architecture (a Keras config).
    pub has_architecture: bool,
    /// What a user should know.
    pub warnings: Vec<String>,
    /// The schemes the file could be in when its names cannot tell them apart (timm and
    /// timm-tf) and nothing else in the file says which: the output of a conversion may
    /// depend on the answer. Empty when the scheme is known.
    pub naming_candidates: Vec<Scheme>,
    /// Entries of the file left out while reading, with the reason.
    pub skipped: Vec<(String, String)>,
    /// What the file records that the graph cannot carry (a Keras activation effnet does not
    /// model): deviations an audit reports and a conversion refuses.
    pub deviations: Vec<effnet_spec::Finding>,
    /// The semantic changes effnet made when it wrote this file (its `effnet.changes`).
    pub changes: Vec<Change>,
    /// Checksums over tensor bytes not compared yet (opened with
    /// [`ChecksumPolicy::Deferred`](effnet_ir::ChecksumPolicy)): compare them with
    /// [`Model::verify_checksums`] before reading any weight.
    pub checksums: Option<std::sync::Arc<dyn effnet_ir::PendingChecksums>>,
}

impl Model {
    /// Compares every checksum the file records over tensor bytes that was left for later
    /// (nothing to do for a model opened with them compared). Every reader of weights calls
    /// it first: the exporters of `effnet_convert` do.
    pub fn verify_checksums(&self) -> Result<(), crate::ImportError> {
        match &self.checksums {
            Some(sums) => sums.verify(None).map_err(crate::ImportError::Checksum),
            None => Ok(()),
        }
    }

    /// Whether checksums over tensor bytes are left to compare.
    pub fn checksums_pending(&self) -> bool {
        self.checksums.is_some()
    }
}
