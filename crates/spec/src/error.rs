/// What can be wrong with a requested spec.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A variant name effnet does not know.
    #[error("unknown variant `{0}` (expected b0 … b7, b8 or l2)")]
    UnknownVariant(String),
    /// A scheme name effnet does not know.
    #[error(
        "unknown naming scheme `{0}` (expected tf-official, keras, torchvision, timm, timm-tf or lukemelas)"
    )]
    UnknownScheme(String),
    /// A width or depth coefficient outside `(0, 100]`.
    #[error("{name} coefficient {value} is out of range: it must be a number in (0, {max}]")]
    Coefficient {
        /// `width` or `depth`.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The largest accepted value.
        max: f64,
    },
    /// A resolution of 0 or beyond what effnet models.
    #[error("resolution {0} is out of range: it must be between 1 and {max}", max = crate::model::MAX_RESOLUTION)]
    Resolution(usize),
    /// A class count of 0.
    #[error("the classifier needs at least one class")]
    Classes,
    /// The graph could not be built (sizes that overflow).
    #[error(transparent)]
    Graph(#[from] effnet_ir::IrError),
}
