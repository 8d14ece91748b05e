//! The detector's pure core: no I/O, causal by construction.
//!
//! - [`novelty`]: support novelty of one series: is a value where the
//!   series has not been lately?
//! - [`running`]: one series scored as the daemon scores it, point by point
//!   (what `score-csv` runs, measured on NAB).
//! - [`baseline`]: a robust, optionally seasonal baseline fitted from history.
//! - [`series`]: tick-by-tick scores against a baseline, following slow
//!   change, and the news a novelty confirmed by the baseline brings.
//! - [`joint`]: a Gaussian mixture over a service's signals together.
//! - [`debounce`]: when a held score opens an anomaly and when it resolves.
//! - [`stats`]: order statistics shared by the models.

pub mod baseline;
pub mod debounce;
pub mod joint;
pub mod novelty;
pub mod running;
pub mod series;
pub mod stats;
#[cfg(test)]
pub(crate) mod testing;

pub use baseline::{Baseline, FitError, Scale};
pub use debounce::{DebounceConfig, Phase, Transition};
pub use joint::JointModel;
pub use novelty::{NoveltyConfig, NoveltyScorer};
pub use running::{RunningConfig, RunningScorer};
pub use series::{Direction, ScoringConfig, SeriesModel, Tick};
