//! The running detector's per-series path, one point at a time: what
//! `run` does to every series, for a series read from a file.
//!
//! As the daemon: the baseline is fitted on the history seen so far (at most
//! `history` points), fitted again every `refit` points, and scored point by
//! point with the model's online learning in between; the debounce opens an
//! anomaly once the score has held for `hold` points and resolves it after
//! `quiet` calm ones. What a reader of the reports sees is the opening, so
//! that is the alarm: the point an anomaly opens scores its full score, every
//! other point half of it.
//!
//! Causal: a point's score reads only earlier points.

use std::collections::VecDeque;

use super::baseline::{Baseline, MIN_HISTORY, Scale};
use super::debounce::{DebounceConfig, Phase, Transition};
use super::series::{Direction, ScoringConfig, SeriesModel};

/// Tuning, in points; the defaults are the daemon's at its default tick
/// (5 s): 3 h of history, a refit every hour, a 10 s hold, a 30 s quiet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunningConfig {
    pub history: usize,
    pub refit: usize,
    pub hold: i64,
    pub quiet: i64,
    pub threshold: f64,
    pub scoring: ScoringConfig,
}

impl Default for RunningConfig {
    fn default() -> Self {
        let debounce = DebounceConfig::default();
        Self {
            history: 2160,
            refit: 720,
            hold: 2,
            quiet: 6,
            threshold: debounce.threshold,
            scoring: ScoringConfig::default(),
        }
    }
}

/// One series scored as the daemon scores it.
#[derive(Debug, Clone)]
pub struct RunningScorer {
    config: RunningConfig,
    history: VecDeque<(i64, f64)>,
    model: Option<SeriesModel>,
    since_fit: usize,
    phase: Phase,
    index: i64,
}

impl RunningScorer {
    pub fn new(config: RunningConfig) -> Self {
        Self {
            config,
            history: VecDeque::new(),
            model: None,
            since_fit: 0,
            phase: Phase::default(),
            index: 0,
        }
    }

    /// Scores `value` at `unix_seconds`, then remembers it.
    pub fn update(&mut self, unix_seconds: i64, value: f64) -> f64 {
        let due = self.model.is_none() || self.since_fit >= self.config.refit;
        if due && self.history.len() >= MIN_HISTORY {
            let points: Vec<(i64, f64)> = self.history.iter().copied().collect();
            if let Ok(baseline) = Baseline::fit(&points, Scale::Linear) {
                self.model = Some(SeriesModel::new(baseline, Direction::Both));
                self.since_fit = 0;
            }
        }
        let score = match (&mut self.model, value.is_finite()) {
            (Some(model), true) => Some(
                model
                    .observe(&self.config.scoring, unix_seconds, value)
                    .score,
            ),
            _ => None,
        };
        // The debounce counts in points here, not seconds.
        let debounce = DebounceConfig {
            threshold: self.config.threshold,
            hold_seconds: self.config.hold,
            quiet_seconds: self.config.quiet,
        };
        let opened = matches!(
            self.phase.observe(&debounce, self.index, score),
            Transition::Opened { .. }
        );
        self.index += 1;
        self.since_fit += 1;
        if value.is_finite() {
            self.history.push_back((unix_seconds, value));
            if self.history.len() > self.config.history {
                self.history.pop_front();
            }
        }
        let score = score.unwrap_or(0.0);
        if opened { score } else { score / 2.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::noise;

    fn series(n: usize, step_at: usize) -> Vec<(i64, f64)> {
        (0..n)
            .map(|i| {
                let level = if i >= step_at { 30.0 } else { 10.0 };
                (i as i64 * 300, level + noise(i))
            })
            .collect()
    }

    fn scores(points: &[(i64, f64)]) -> Vec<f64> {
        let mut scorer = RunningScorer::new(RunningConfig::default());
        points.iter().map(|&(t, v)| scorer.update(t, v)).collect()
    }

    #[test]
    fn a_step_alarms_once_when_the_anomaly_opens_after_the_hold() {
        let scored = scores(&series(1200, 1000));
        let alarms: Vec<usize> = (0..scored.len()).filter(|&i| scored[i] >= 0.7).collect();
        // Opened on the third point above the threshold: the hold is 2 points.
        assert_eq!(alarms, [1002], "{:?}", &scored[995..1010]);
        assert!(scored[..1000].iter().all(|s| *s < 0.5));
    }

    #[test]
    fn scores_are_causal_prefix_equals_full_run() {
        let points = series(1500, 1200);
        let full = scores(&points);
        let prefix = scores(&points[..900]);
        assert_eq!(prefix, full[..900]);
    }
}
