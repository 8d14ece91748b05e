//! The detector's pure core: no I/O, causal by construction.
//!
//! - [`novelty`]: support novelty of one series, learning online from its
//!   first point (the model `score-csv` runs, measured on NAB).
//! - [`stats`]: order statistics shared by the models.

pub mod novelty;
pub mod stats;
#[cfg(test)]
pub(crate) mod testing;

pub use novelty::{NoveltyConfig, NoveltyScorer};
