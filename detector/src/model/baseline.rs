//! A baseline fitted from history: robust centre and spread, with a daily or
//! weekly profile when the history shows one.
//!
//! Values are compared on a scale where a deviation means the same everywhere
//! ([`Scale`]): latency and traffic on a log scale (twice as slow is twice as
//! slow, at 2 ms or at 2 s), ratios as they are. Medians and MADs make the
//! fit robust: a few incidents in the training window do not widen the band.

use super::stats::{MAD_TO_SIGMA, median_mad, quantile_in_place};

/// How values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// ln(value): for strictly positive quantities such as latency and rate.
    Log,
    /// The value itself: for ratios that can be 0.
    Linear,
}

impl Scale {
    /// Smallest spread on this scale: 5% for log values, half a percentage
    /// point for ratios. Keeps a perfectly steady series from alarming on noise.
    fn spread_floor(self) -> f64 {
        match self {
            Scale::Log => 0.05,
            Scale::Linear => 0.005,
        }
    }

    pub fn forward(self, value: f64) -> f64 {
        match self {
            // Zero latency or traffic is real: keep it finite, far below.
            Scale::Log => value.max(1e-9).ln(),
            Scale::Linear => value,
        }
    }

    pub fn inverse(self, value: f64) -> f64 {
        match self {
            Scale::Log => value.exp(),
            Scale::Linear => value,
        }
    }
}

/// A repeating profile: the offset from the centre for each slot of a period.
#[derive(Debug, Clone, PartialEq)]
pub struct Seasonality {
    pub period_seconds: i64,
    pub offsets: Vec<f64>,
}

impl Seasonality {
    fn slot(&self, unix_seconds: i64) -> usize {
        let slots = self.offsets.len() as i64;
        let slot_len = (self.period_seconds / slots).max(1);
        (unix_seconds.rem_euclid(self.period_seconds) / slot_len).min(slots - 1) as usize
    }

    pub fn offset(&self, unix_seconds: i64) -> f64 {
        self.offsets[self.slot(unix_seconds)]
    }
}

/// Periods looked for, with the slots they are cut into.
const PERIODS: [(i64, usize); 2] = [(86_400, 24), (7 * 86_400, 168)];

/// A profile is kept only when it removes this share of the spread.
const SEASONAL_GAIN: f64 = 0.7;

/// Expected value and spread of a series, on its [`Scale`].
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    pub scale: Scale,
    pub centre: f64,
    pub spread: f64,
    pub seasonality: Option<Seasonality>,
}

/// Why a baseline could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("{have} usable points of history, need at least {need}")]
    TooLittleHistory { have: usize, need: usize },
}

/// Fewest finite points a fit accepts.
pub const MIN_HISTORY: usize = 30;

impl Baseline {
    /// Fits from `(unix_seconds, value)` points; non-finite values are gaps.
    pub fn fit(points: &[(i64, f64)], scale: Scale) -> Result<Self, FitError> {
        let usable: Vec<(i64, f64)> = points
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|&(t, v)| (t, scale.forward(v)))
            .collect();
        if usable.len() < MIN_HISTORY {
            return Err(FitError::TooLittleHistory {
                have: usable.len(),
                need: MIN_HISTORY,
            });
        }
        let values: Vec<f64> = usable.iter().map(|p| p.1).collect();
        let (centre, mad) = median_mad(&values).unwrap_or((0.0, 0.0));
        let plain = Self {
            scale,
            centre,
            spread: (MAD_TO_SIGMA * mad).max(scale.spread_floor()),
            seasonality: None,
        };
        let covered = usable.last().map_or(0, |l| l.0) - usable.first().map_or(0, |f| f.0);
        let seasonal = PERIODS
            .iter()
            .filter(|(period, _)| covered >= 2 * period)
            .filter_map(|&(period, slots)| fit_profile(&usable, centre, period, slots))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match seasonal {
            Some((profile, residual_mad)) if residual_mad < SEASONAL_GAIN * mad => Ok(Self {
                spread: (MAD_TO_SIGMA * residual_mad).max(scale.spread_floor()),
                seasonality: Some(profile),
                ..plain
            }),
            _ => Ok(plain),
        }
    }

    /// The same baseline with its spread at least `floor` (on its scale):
    /// for values that cannot be read finer than that.
    pub fn with_min_spread(self, floor: f64) -> Self {
        Self {
            spread: self.spread.max(floor),
            ..self
        }
    }

    /// Expected value at `unix_seconds`, on the baseline's scale.
    pub fn expected(&self, unix_seconds: i64) -> f64 {
        self.centre
            + self
                .seasonality
                .as_ref()
                .map_or(0.0, |s| s.offset(unix_seconds))
    }

    /// Signed distance of `value` from the expectation, in spreads.
    pub fn z(&self, unix_seconds: i64, value: f64) -> f64 {
        (self.scale.forward(value) - self.expected(unix_seconds)) / self.spread
    }

    /// `[lower, centre, upper]` in the signal's own units for a band of
    /// `width` spreads either side.
    pub fn band(&self, unix_seconds: i64, width: f64, shift: f64) -> [f64; 3] {
        let expected = self.expected(unix_seconds) + shift;
        [
            self.scale.inverse(expected - width * self.spread),
            self.scale.inverse(expected),
            self.scale.inverse(expected + width * self.spread),
        ]
    }
}

/// Slot medians of the residuals, and the MAD of what is left.
fn fit_profile(
    usable: &[(i64, f64)],
    centre: f64,
    period: i64,
    slots: usize,
) -> Option<(Seasonality, f64)> {
    let mut by_slot: Vec<Vec<f64>> = vec![Vec::new(); slots];
    let mut profile = Seasonality {
        period_seconds: period,
        offsets: vec![0.0; slots],
    };
    for &(t, v) in usable {
        by_slot[profile.slot(t)].push(v - centre);
    }
    // Every slot needs data, or the profile would invent a shape.
    if by_slot.iter().any(|s| s.len() < 3) {
        return None;
    }
    for (offset, values) in profile.offsets.iter_mut().zip(&mut by_slot) {
        *offset = quantile_in_place(values, 0.5)?;
    }
    let mut residuals: Vec<f64> = usable
        .iter()
        .map(|&(t, v)| (v - centre - profile.offset(t)).abs())
        .collect();
    let residual_mad = quantile_in_place(&mut residuals, 0.5)?;
    Some((profile, residual_mad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::noise;

    const MINUTE: i64 = 60;

    fn daily(t: i64) -> f64 {
        0.010 * (1.0 + 0.6 * (t as f64 * std::f64::consts::TAU / 86_400.0).sin())
    }

    #[test]
    fn a_daily_profile_is_learned_when_history_covers_two_days() {
        let points: Vec<(i64, f64)> = (0..3 * 1440)
            .map(|i| {
                let t = i * MINUTE;
                (t, daily(t) * (1.0 + 0.03 * noise(i as usize)))
            })
            .collect();
        let fit = Baseline::fit(&points, Scale::Log).expect("fit");
        let profile = fit.seasonality.as_ref().expect("seasonality found");
        assert_eq!(profile.period_seconds, 86_400);
        // At the daily peak the expectation follows the peak, not the median.
        let peak = 86_400 / 4;
        let expected = Scale::Log.inverse(fit.expected(peak));
        assert!((expected / daily(peak) - 1.0).abs() < 0.1, "{expected}");
        // The same value is normal at the peak and anomalous at the trough.
        assert!(fit.z(peak, daily(peak)).abs() < 2.0);
        assert!(fit.z(3 * 86_400 / 4, daily(peak)) > 6.0);
    }

    #[test]
    fn no_profile_is_invented_for_a_flat_series() {
        let points: Vec<(i64, f64)> = (0..3 * 1440)
            .map(|i| (i * MINUTE, 0.02 * (1.0 + 0.05 * noise(i as usize))))
            .collect();
        let fit = Baseline::fit(&points, Scale::Log).expect("fit");
        assert!(fit.seasonality.is_none());
    }

    #[test]
    fn outliers_in_the_training_window_do_not_widen_the_band() {
        let clean: Vec<(i64, f64)> = (0..720)
            .map(|i| (i * 5, 0.004 * (1.0 + 0.05 * noise(i as usize))))
            .collect();
        let mut dirty = clean.clone();
        // An incident: 5% of the history at twenty times the latency.
        for p in dirty.iter_mut().skip(300).take(36) {
            p.1 *= 20.0;
        }
        let a = Baseline::fit(&clean, Scale::Log).expect("clean");
        let b = Baseline::fit(&dirty, Scale::Log).expect("dirty");
        assert!(b.spread < a.spread * 1.2, "{} vs {}", b.spread, a.spread);
        assert!((b.centre - a.centre).abs() < 0.5 * a.spread);
    }

    #[test]
    fn too_little_history_is_an_error_not_a_baseline() {
        let points: Vec<(i64, f64)> = (0..10).map(|i| (i, 1.0)).collect();
        assert_eq!(
            Baseline::fit(&points, Scale::Log),
            Err(FitError::TooLittleHistory { have: 10, need: 30 })
        );
    }

    #[test]
    fn gaps_are_skipped_and_zero_ratios_stay_finite() {
        let points: Vec<(i64, f64)> = (0..100)
            .map(|i| (i, if i % 10 == 0 { f64::NAN } else { 0.0 }))
            .collect();
        let fit = Baseline::fit(&points, Scale::Linear).expect("fit");
        assert_eq!(fit.centre, 0.0);
        assert_eq!(fit.spread, 0.005);
        assert!(fit.z(0, 0.2) > 30.0);
    }
}
