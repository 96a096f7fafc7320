//! Data loaders for `accord seed`: a small realistic demo company, and a generated data
//! set of configurable size for benchmarks.

mod demo;
mod scale;

pub use demo::{DEMO_PASSWORD, demo};
pub use scale::{SCALE_PASSWORD, ScaleCounts, scale};
