use std::fmt;
use std::ops::Index;

use crate::NodeId;

/// The shape of a value flowing along the graph, NCHW.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorShape {
    /// A feature map `N × C × H × W`; the spatial size is `None` when no input resolution was
    /// given (channel checks still run).
    Map {
        /// Batch size.
        batch: usize,
        /// Channels.
        channels: usize,
        /// Height and width, when known.
        spatial: Option<[usize; 2]>,
    },
    /// A vector per sample, `N × F`.
    Vector {
        /// Batch size.
        batch: usize,
        /// Features.
        features: usize,
    },
}

impl TensorShape {
    /// Channels of a map, features of a vector.
    pub fn channels(&self) -> usize {
        match *self {
            TensorShape::Map { channels, .. } => channels,
            TensorShape::Vector { features, .. } => features,
        }
    }

    /// Height and width of a map, when known; `None` for vectors.
    pub fn spatial(&self) -> Option<[usize; 2]> {
        match *self {
            TensorShape::Map { spatial, .. } => spatial,
            TensorShape::Vector { .. } => None,
        }
    }

    /// The dimensions, when all are known.
    pub fn dims(&self) -> Option<Vec<usize>> {
        match *self {
            TensorShape::Map {
                batch,
                channels,
                spatial: Some([h, w]),
            } => Some(vec![batch, channels, h, w]),
            TensorShape::Map { spatial: None, .. } => None,
            TensorShape::Vector { batch, features } => Some(vec![batch, features]),
        }
    }

    /// Number of elements, when all dimensions are known (saturating at `u64::MAX`).
    pub fn elems(&self) -> Option<u64> {
        self.dims()
            .map(|d| d.iter().fold(1u64, |acc, &x| acc.saturating_mul(x as u64)))
    }
}

impl fmt::Display for TensorShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TensorShape::Map {
                batch,
                channels,
                spatial: Some([h, w]),
            } => write!(f, "[{batch}, {channels}, {h}, {w}]"),
            TensorShape::Map {
                batch,
                channels,
                spatial: None,
            } => write!(f, "[{batch}, {channels}, ?, ?]"),
            TensorShape::Vector { batch, features } => write!(f, "[{batch}, {features}]"),
        }
    }
}

/// The output shape of every node, indexed by [`NodeId`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shapes(pub(crate) Vec<TensorShape>);

impl Shapes {
    /// The output shape of `node`.
    pub fn get(&self, node: NodeId) -> Option<&TensorShape> {
        self.0.get(node.index())
    }
}

impl Index<NodeId> for Shapes {
    type Output = TensorShape;

    fn index(&self, node: NodeId) -> &TensorShape {
        &self.0[node.index()]
    }
}
