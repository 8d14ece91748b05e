//! Streaming anomaly scoring of one series.
//!
//! Two stages, each online and causal:
//! 1. [`RobustWindow`] turns each value into a *surprise*: how far it lies
//!    from the recent median in units of the recent spread (MAD), for the
//!    level and for the step from the previous value. Robust statistics keep
//!    outliers in the history from widening the band.
//! 2. [`Likelihood`] turns surprises into an anomaly score in [0, 1]: how
//!    unlikely the mean surprise of the last few points is, given the
//!    distribution of surprises over a long history. A series that is always
//!    noisy stops alarming; a quiet series that starts to move alarms fast.

mod likelihood;
mod robust;
mod series;

pub use likelihood::Likelihood;
pub use robust::RobustWindow;
pub use series::{SeriesDetector, SeriesDetectorConfig};
