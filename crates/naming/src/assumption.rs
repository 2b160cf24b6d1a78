//! What an import had to assume because the file does not record it.

use std::fmt;

use effnet_spec::Family;

/// One assumption an import made; printed as `assumed: …` and refused by conversions that
/// depend on it unless the user states it.
#[derive(Clone, Debug, PartialEq)]
pub enum Assumption {
    /// Stages inferred where block kind, channels, kernel or expansion change (global block
    /// indices, positional Keras layers).
    StagesFromShapes,
    /// Strides taken from a family's stage pattern.
    StridesFromPattern(Family),
    /// The stages match no family's pattern: strides taken as 1.
    StridesUnknown {
        /// The first block stage.
        first: u8,
        /// The last block stage.
        last: u8,
    },
    /// Keras layer names reconstructed from the order and shapes of the weights.
    LayerNamesByPosition,
    /// ONNX: stages where stride, channels, kernel or expansion change.
    OnnxStages,
    /// ONNX: layers of the SE or the classifier given the zero bias an exporter dropped.
    ZeroBiases(usize),
    /// ONNX: explicit pads equal to TF "same" at the graph's only input size, read as such.
    PadsReadAsSame(usize),
}

impl Assumption {
    /// Whether it concerns strides (what an architecture's file records, or not).
    pub fn is_strides(&self) -> bool {
        matches!(
            self,
            Assumption::StridesFromPattern(_) | Assumption::StridesUnknown { .. }
        )
    }

    /// Whether it concerns strides or stages: a file with its architecture (a Keras config,
    /// a serving function) makes it unnecessary.
    pub fn is_structure(&self) -> bool {
        self.is_strides() || *self == Assumption::StagesFromShapes
    }
}

impl fmt::Display for Assumption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Assumption::StagesFromShapes => f.write_str(
                "stages inferred from where block kind, channels, kernel or expansion change between blocks",
            ),
            Assumption::StridesFromPattern(family) => write!(
                f,
                "strides taken from the {} stage pattern (the tensors effnet reads from this file do not record them)",
                family.title()
            ),
            Assumption::StridesUnknown { first, last } => write!(
                f,
                "the blocks form stages {first}–{last} in no EfficientNet family's pattern: strides are unknown and taken as 1"
            ),
            Assumption::LayerNamesByPosition => f.write_str(
                "layer names reconstructed from the order and shapes of the weights (the file records none); stages from where channels, kernel or expansion change",
            ),
            Assumption::OnnxStages => f.write_str(
                "stages from where stride, channels, kernel or expansion change (an ONNX graph names none)",
            ),
            Assumption::ZeroBiases(n) => write!(
                f,
                "{n} layer(s) of the SE or the classifier without a bias in the graph (an exporter drops a zero bias): given a zero bias, which computes the same"
            ),
            Assumption::PadsReadAsSame(n) => write!(
                f,
                "{n} convolution(s) with explicit pads equal to TF \"same\" at the only input size the graph takes, read as TF \"same\""
            ),
        }
    }
}
