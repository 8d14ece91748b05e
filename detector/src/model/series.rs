//! The detector of one series: surprise from robust level and step
//! statistics, then likelihood.

use super::{Likelihood, RobustWindow};

/// Tuning of a [`SeriesDetector`]. Defaults are chosen on the NAB development
/// set as a whole, never on single files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesDetectorConfig {
    /// Points in the robust level/step window.
    pub window: usize,
    /// Points whose surprises define normal.
    pub long: usize,
    /// Points averaged for the current state.
    pub short: usize,
    /// Points before any score above 0.
    pub min_history: usize,
}

impl Default for SeriesDetectorConfig {
    fn default() -> Self {
        Self {
            window: 300,
            long: 1000,
            short: 10,
            min_history: 150,
        }
    }
}

/// Streaming, causal scorer of one series.
#[derive(Debug, Clone)]
pub struct SeriesDetector {
    levels: RobustWindow,
    steps: RobustWindow,
    seasonal_errors: RobustWindow,
    history: std::collections::VecDeque<f64>,
    likelihood: Likelihood,
    previous: Option<f64>,
}

/// Points per day at NAB's usual 5-minute spacing.
const SEASON: usize = 288;

impl SeriesDetector {
    pub fn new(config: SeriesDetectorConfig) -> Self {
        Self {
            levels: RobustWindow::new(config.window),
            steps: RobustWindow::new(config.window),
            seasonal_errors: RobustWindow::new(config.window),
            history: std::collections::VecDeque::with_capacity(SEASON + 1),
            likelihood: Likelihood::new(config.long, config.short, config.min_history),
            previous: None,
        }
    }

    /// Scores `value` (using only values seen so far), then learns it.
    pub fn update(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            // Missing data is not evidence of anything.
            return 0.0;
        }
        let step = self.previous.map(|p| value - p);
        let level_z = robust_z(&self.levels, value);
        let step_z = step.map(|s| robust_z(&self.steps, s)).unwrap_or(0.0);
        // Against the same time yesterday: explains daily patterns.
        let seasonal = (self.history.len() == SEASON).then(|| value - self.history[0]);
        let seasonal_z = seasonal.map(|e| robust_z(&self.seasonal_errors, e));
        // A series whose value yesterday predicts today better than its
        // median does is seasonal: judge it by yesterday's course.
        let seasonal_fits = match (self.seasonal_errors.mad(), self.levels.mad()) {
            (Some(seasonal), Some(level)) => seasonal < 0.5 * level,
            _ => false,
        };
        let z = match seasonal_z {
            Some(s) if seasonal_fits => s.max(step_z.min(s)),
            Some(s) => level_z.min(s).max(step_z.min(s)),
            None => level_z.max(step_z),
        };
        let surprise = z / (z + 3.0);
        let score = self.likelihood.update(surprise);
        self.levels.push(value);
        if let Some(step) = step {
            self.steps.push(step);
        }
        if let Some(error) = seasonal {
            self.seasonal_errors.push(error);
        }
        if self.history.len() == SEASON {
            self.history.pop_front();
        }
        self.history.push_back(value);
        self.previous = Some(value);
        score
    }
}

/// |value − median| in robust standard deviations (1.4826 · MAD), with a
/// floor on the spread from the window's range so flat series are not
/// infinitely sensitive.
fn robust_z(window: &RobustWindow, value: f64) -> f64 {
    let (Some(median), Some(mad), Some(low), Some(high)) = (
        window.median(),
        window.mad(),
        window.quantile(0.01),
        window.quantile(0.99),
    ) else {
        return 0.0;
    };
    let floor = ((high - low) * 0.01).max(median.abs() * 1e-3).max(1e-9);
    (value - median).abs() / (1.4826 * mad).max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: impl IntoIterator<Item = f64>) -> Vec<f64> {
        let mut d = SeriesDetector::new(SeriesDetectorConfig::default());
        values.into_iter().map(|v| d.update(v)).collect()
    }

    fn noise(i: usize) -> f64 {
        // Deterministic pseudo-noise in [-1, 1].
        let x = (i as f64 * 12.9898).sin() * 43_758.545_3;
        2.0 * (x - x.floor()) - 1.0
    }

    #[test]
    fn a_level_shift_scores_high_soon_after_it_starts() {
        let values = (0..1200).map(|i| 10.0 + noise(i) + if i >= 1000 { 15.0 } else { 0.0 });
        let scores = run(values);
        let before = scores[300..1000].iter().cloned().fold(0.0, f64::max);
        let after = scores[1000..1010].iter().cloned().fold(0.0, f64::max);
        assert!(after > before, "after {after} before {before}");
        assert!(after > 0.5, "{after}");
    }

    #[test]
    fn a_daily_pattern_is_normal_but_a_break_in_it_is_not() {
        let daily =
            |i: usize| 50.0 + 40.0 * (i as f64 * std::f64::consts::TAU / SEASON as f64).sin();
        let quiet = run((0..SEASON * 5).map(|i| daily(i) + noise(i)));
        let calm = quiet[SEASON * 2..].iter().cloned().fold(0.0, f64::max);
        // The same pattern, but one afternoon stays 30 below its usual course.
        let start = SEASON * 4 + 100;
        let broken = run((0..SEASON * 5).map(|i| {
            daily(i) + noise(i)
                - if (start..start + 60).contains(&i) {
                    30.0
                } else {
                    0.0
                }
        }));
        let alarm = broken[start..start + 30]
            .iter()
            .cloned()
            .fold(0.0, f64::max);
        assert!(alarm > calm + 0.2, "alarm {alarm} calm {calm}");
    }

    #[test]
    fn scores_are_causal_prefix_equals_full_run() {
        let values: Vec<f64> = (0..800)
            .map(|i| 5.0 + noise(i) + if i > 600 { 3.0 } else { 0.0 })
            .collect();
        let full = run(values.iter().copied());
        let prefix = run(values[..500].iter().copied());
        assert_eq!(&full[..500], &prefix[..]);
    }

    #[test]
    fn scores_stay_in_unit_interval_and_missing_values_score_zero() {
        let values = (0..400).map(|i| {
            if i % 50 == 0 {
                f64::NAN
            } else {
                noise(i) * 1e6
            }
        });
        for (i, score) in run(values).into_iter().enumerate() {
            assert!((0.0..=1.0).contains(&score), "{i}: {score}");
            if i % 50 == 0 {
                assert_eq!(score, 0.0);
            }
        }
    }
}
