#![doc = include_str!("../README.md")]

mod analyze;
pub mod baseline;
pub mod chart;
mod memory;
pub mod render;
mod report;

pub use analyze::{CostError, CostOptions, analyze};
pub use report::{
    BlockCost, CostReport, Costs, LayerCost, Memory, ModelInfo, OperatorClass, OperatorCost,
    StageCost, Totals, resolution_value,
};
