//! Choosing the naming scheme a file's tensor names are read with: the user's, the file's own
//! metadata, the module classes a full-model pickle names, or detection (with timm and
//! timm-tf, which the names cannot tell apart, left as candidates).

use std::collections::BTreeMap;
use std::path::Path;

use effnet_naming::{NamingError, detect};
use effnet_spec::Scheme;

use crate::{ImportError, ambiguity_warning};

/// How the naming scheme was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamingSource {
    /// `--naming`.
    Option,
    /// The file's metadata (`effnet.naming` in safetensors).
    Metadata,
    /// The module classes a full-model pickle names.
    ModuleClasses,
    /// The tensor names.
    Detected,
    /// The conventions an ONNX graph computes (padding, preprocessing).
    Graph,
}

impl NamingSource {
    /// Lower-case description.
    pub const fn name(self) -> &'static str {
        match self {
            NamingSource::Option => "given",
            NamingSource::Metadata => "file metadata",
            NamingSource::ModuleClasses => "module classes",
            NamingSource::Detected => "tensor names",
            NamingSource::Graph => "the graph's conventions",
        }
    }
}

/// The scheme chosen, how, and the schemes the file could be in when nothing tells them apart.
pub(crate) struct SchemeChoice {
    pub(crate) scheme: Scheme,
    pub(crate) source: NamingSource,
    pub(crate) candidates: Vec<Scheme>,
}

/// Chooses the scheme for `names`: `given` (refused when it reads none of them), else the
/// scheme `metadata` records, else detection; an ambiguity is warned about in `warnings`.
pub(crate) fn choose_scheme(
    path: &Path,
    given: Option<Scheme>,
    metadata: &BTreeMap<String, String>,
    names: &[&str],
    globals: &[String],
    warnings: &mut Vec<String>,
) -> Result<SchemeChoice, ImportError> {
    let mut naming_candidates = Vec::new();
    let (scheme, source) = if let Some(scheme) = given {
        let parsed = effnet_naming::parse_all(scheme, names);
        if !names.is_empty() && parsed.iter().all(Option::is_none) {
            let (best, count) = detect(names)[0];
            return Err(ImportError::WrongNaming {
                path: path.to_owned(),
                given: scheme,
                looks_like: (count > 0 && best != scheme).then_some(best),
                example: effnet_io::escape(names[0]).into_owned(),
            });
        }
        (scheme, NamingSource::Option)
    } else if let Some(scheme) = metadata
        .get("effnet.naming")
        .and_then(|n| n.parse::<Scheme>().ok())
    {
        (scheme, NamingSource::Metadata)
    } else {
        let (best, count) = detect(names)[0];
        if count == 0 {
            return Err(ImportError::Naming {
                path: path.to_owned(),
                reason: NamingError::Unrecognized(
                    names.first().copied().unwrap_or_default().into(),
                ),
            });
        }
        if best == Scheme::Timm {
            if globals
                .iter()
                .any(|g| g.ends_with(".Conv2dSame") || g.contains("timm.layers.padding"))
            {
                (Scheme::TimmTf, NamingSource::ModuleClasses)
            } else {
                naming_candidates = vec![Scheme::Timm, Scheme::TimmTf];
                warnings.push(ambiguity_warning(
                    &naming_candidates,
                    Scheme::Timm,
                    "--naming",
                ));
                (Scheme::Timm, NamingSource::Detected)
            }
        } else {
            (best, NamingSource::Detected)
        }
    };
    Ok(SchemeChoice {
        scheme,
        source,
        candidates: naming_candidates,
    })
}
