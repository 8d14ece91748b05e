//! The running detector's per-series path, one point at a time: what
//! `run` does to every series, for a series read from a file.
//!
//! As the daemon: the baseline is fitted on the history seen so far (at most
//! `history` points) and fitted again every `refit` points; the novelty
//! scorer is calibrated on the history of the first fit and learns every
//! point from then on, across refits; each point is scored with the model's
//! online learning in between. The score written is the point's *news*
//! (see `series`): what lets the daemon open a report after its usual hold
//! rather than the longer one, and what NAB measures.
//!
//! Causal: a point's score reads only earlier points.

use std::collections::VecDeque;

use super::baseline::{Baseline, MIN_HISTORY, Scale};
use super::novelty::{NoveltyConfig, NoveltyScorer};
use super::series::{Direction, ScoringConfig, SeriesModel};

/// Tuning, in points; the defaults are the daemon's at its default tick
/// (5 s): 3 h of history, a refit every hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunningConfig {
    pub history: usize,
    pub refit: usize,
    pub scoring: ScoringConfig,
    pub novelty: NoveltyConfig,
}

impl Default for RunningConfig {
    fn default() -> Self {
        Self {
            history: 2160,
            refit: 720,
            scoring: ScoringConfig::default(),
            novelty: NoveltyConfig::default(),
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
}

impl RunningScorer {
    pub fn new(config: RunningConfig) -> Self {
        Self {
            config,
            history: VecDeque::new(),
            model: None,
            since_fit: 0,
        }
    }

    /// Scores `value` at `unix_seconds`, then remembers it.
    pub fn update(&mut self, unix_seconds: i64, value: f64) -> f64 {
        let due = self.model.is_none() || self.since_fit >= self.config.refit;
        if due && self.history.len() >= MIN_HISTORY {
            self.refit();
        }
        let news = match (&mut self.model, value.is_finite()) {
            (Some(model), true) => {
                model
                    .observe(&self.config.scoring, unix_seconds, value)
                    .news
            }
            _ => 0.0,
        };
        self.since_fit += 1;
        if value.is_finite() {
            self.history.push_back((unix_seconds, value));
            if self.history.len() > self.config.history {
                self.history.pop_front();
            }
        }
        news
    }

    fn refit(&mut self) {
        let points: Vec<(i64, f64)> = self.history.iter().copied().collect();
        let Ok(baseline) = Baseline::fit(&points, Scale::Linear) else {
            return;
        };
        let novelty = match self.model.take() {
            Some(previous) => previous.novelty,
            None => {
                let values: Vec<f64> = points.iter().map(|p| p.1).collect();
                NoveltyScorer::calibrated(self.config.novelty, &values)
            }
        };
        self.model = Some(SeriesModel::new(baseline, Direction::Both).with_novelty(novelty));
        self.since_fit = 0;
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
    fn a_step_is_news_at_its_first_point_only() {
        let scored = scores(&series(1200, 1000));
        let alarms: Vec<usize> = (0..scored.len()).filter(|&i| scored[i] >= 0.5).collect();
        assert_eq!(alarms, [1000], "{:?}", &scored[995..1010]);
    }

    #[test]
    fn the_novelty_outlives_a_refit() {
        let points = series(2000, 1000);
        let scored = scores(&points);
        // The refits at 1030 and later see the new level in their history;
        // the level is no news again after them either.
        assert!(scored[1001..].iter().all(|s| *s < 0.5));
    }

    #[test]
    fn scores_are_causal_prefix_equals_full_run() {
        let points = series(1500, 1200);
        let full = scores(&points);
        let prefix = scores(&points[..900]);
        assert_eq!(prefix, full[..900]);
    }
}
