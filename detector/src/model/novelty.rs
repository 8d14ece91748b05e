//! Support novelty: is the value somewhere the series has not been lately?
//!
//! Values are quantised into bins whose width is learned from the first
//! `calibration` points. The scorer remembers which bins the last `memory`
//! points visited. A value in a visited bin scores below 0.5 (less the more
//! often the bin was visited); a value in a bin not visited scores above 0.5,
//! growing with its distance from the nearest visited bin relative to the
//! visited range. Finally only the onset of a novelty scores in full: a score
//! that does not exceed every raw score of the last `refractory` points is
//! halved, so one incident is one alarm, not a run of them.
//!
//! Causal and deterministic: the score of a point reads only earlier points.

use std::collections::{BTreeMap, VecDeque};

use super::stats::quantile_in_place;

/// Tuning of a [`NoveltyScorer`]. The defaults were chosen on the NAB
/// development set as a whole (see BENCHMARKS.md for how flat the score is
/// around them), never per file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoveltyConfig {
    /// Points that fix the bin width; they score 0.
    pub calibration: usize,
    /// Bins across the central 99% of the calibration points.
    pub bins: u32,
    /// Points whose bins count as visited.
    pub memory: usize,
    /// Points after a novelty during which a weaker one is not news.
    pub refractory: usize,
}

impl Default for NoveltyConfig {
    fn default() -> Self {
        Self {
            calibration: 300,
            bins: 20,
            memory: 10_000,
            refractory: 100,
        }
    }
}

/// Streaming support-novelty scorer of one series.
#[derive(Debug, Clone)]
pub struct NoveltyScorer {
    config: NoveltyConfig,
    calibration: Vec<f64>,
    grid: Option<Grid>,
    /// Visits per bin among the remembered points.
    visits: BTreeMap<i64, u32>,
    remembered: VecDeque<i64>,
    recent_raw: VecDeque<f64>,
}

/// Bin `i` holds values in `[origin + i·width, origin + (i+1)·width)`.
#[derive(Debug, Clone, Copy)]
struct Grid {
    origin: f64,
    width: f64,
}

impl Grid {
    fn from_calibration(values: &mut [f64], bins: u32) -> Option<Self> {
        let low = quantile_in_place(values, 0.005)?;
        let high = quantile_in_place(values, 0.995)?;
        let median = quantile_in_place(values, 0.5)?;
        // A flat calibration still needs a width: relative to the level.
        let width = ((high - low) / f64::from(bins.max(1)))
            .max(median.abs() * 1e-3)
            .max(1e-9);
        Some(Self { origin: low, width })
    }

    fn bin(&self, value: f64) -> i64 {
        // `as` saturates: absurd values land in the outermost bins.
        ((value - self.origin) / self.width).floor() as i64
    }
}

impl NoveltyScorer {
    pub fn new(config: NoveltyConfig) -> Self {
        Self {
            config,
            calibration: Vec::with_capacity(config.calibration),
            grid: None,
            visits: BTreeMap::new(),
            remembered: VecDeque::with_capacity(config.memory + 1),
            recent_raw: VecDeque::with_capacity(config.refractory + 1),
        }
    }

    /// Scores `value` against what came before, then learns it. Missing or
    /// non-finite values score 0 and are not learned: absence is not evidence.
    pub fn update(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let Some(grid) = self.grid else {
            self.calibrate(value);
            return 0.0;
        };
        let bin = grid.bin(value);
        let raw = self.raw_score(bin);
        self.remember(bin);
        self.onset(raw)
    }

    fn calibrate(&mut self, value: f64) {
        self.calibration.push(value);
        if self.calibration.len() < self.config.calibration.max(1) {
            return;
        }
        let calibration = std::mem::take(&mut self.calibration);
        let grid = Grid::from_calibration(&mut calibration.clone(), self.config.bins);
        if let Some(grid) = grid {
            for &v in &calibration {
                self.remember(grid.bin(v));
            }
        }
        self.grid = grid;
    }

    fn raw_score(&self, bin: i64) -> f64 {
        let total = self.remembered.len();
        if total == 0 {
            return 0.0;
        }
        if let Some(&count) = self.visits.get(&bin) {
            return 0.5 * (1.0 - f64::from(count) / total as f64);
        }
        let (Some((&lowest, _)), Some((&highest, _))) =
            (self.visits.first_key_value(), self.visits.last_key_value())
        else {
            return 0.0;
        };
        let below = self.visits.range(..bin).next_back().map(|(&b, _)| bin - b);
        let above = self.visits.range(bin..).next().map(|(&b, _)| b - bin);
        let gap = below.into_iter().chain(above).min().unwrap_or(1) as f64;
        let span = (highest - lowest + 1) as f64;
        0.5 + 0.5 * (1.0 - (-gap / span).exp())
    }

    fn remember(&mut self, bin: i64) {
        *self.visits.entry(bin).or_insert(0) += 1;
        self.remembered.push_back(bin);
        while self.remembered.len() > self.config.memory {
            let Some(old) = self.remembered.pop_front() else {
                break;
            };
            if let Some(count) = self.visits.get_mut(&old) {
                *count -= 1;
                if *count == 0 {
                    self.visits.remove(&old);
                }
            }
        }
    }

    /// Full score only for a raw score above every recent one.
    fn onset(&mut self, raw: f64) -> f64 {
        let recent_max = self.recent_raw.iter().copied().fold(0.0, f64::max);
        let score = if raw > recent_max { raw } else { raw * 0.5 };
        self.recent_raw.push_back(raw);
        while self.recent_raw.len() > self.config.refractory {
            self.recent_raw.pop_front();
        }
        score.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::noise;

    fn run(values: impl IntoIterator<Item = f64>) -> Vec<f64> {
        let mut scorer = NoveltyScorer::new(NoveltyConfig::default());
        values.into_iter().map(|v| scorer.update(v)).collect()
    }

    fn max(scores: &[f64]) -> f64 {
        scores.iter().copied().fold(0.0, f64::max)
    }

    #[test]
    fn a_jump_to_an_unvisited_level_is_novel_once() {
        let scores = run((0..1500).map(|i| 10.0 + noise(i) + if i >= 1000 { 8.0 } else { 0.0 }));
        let calm = max(&scores[400..1000]);
        assert!(calm < 0.5, "calm {calm}");
        assert!(scores[1000] > 0.5, "onset {}", scores[1000]);
        // The new level is remembered: later points of it are not alarms.
        let settled = max(&scores[1150..]);
        assert!(settled < 0.5, "settled {settled}");
    }

    #[test]
    fn a_far_spike_outscores_a_near_one() {
        let base = |i: usize| 10.0 + noise(i);
        let near = run((0..800).map(|i| base(i) + if i == 600 { 2.5 } else { 0.0 }));
        let far = run((0..800).map(|i| base(i) + if i == 600 { 50.0 } else { 0.0 }));
        assert!(far[600] > near[600], "far {} near {}", far[600], near[600]);
        assert!(far[600] > 0.5);
    }

    #[test]
    fn recurring_spikes_stop_being_news() {
        let spike = |i: usize| i >= 1000 && i.is_multiple_of(200);
        let scores = run((0..3000).map(|i| if spike(i) { 30.0 } else { noise(i) }));
        assert!(scores[1000] > 0.5, "first spike {}", scores[1000]);
        assert!(max(&scores[2000..]) < 0.5, "{}", max(&scores[2000..]));
    }

    #[test]
    fn calibration_points_score_zero_and_flat_series_stay_calm() {
        let scores = run(std::iter::repeat_n(45.0, 1000));
        assert!(scores.iter().all(|&s| s < 0.5));
        assert!(scores[..300].iter().all(|&s| s == 0.0));
    }

    #[test]
    fn scores_are_causal_and_in_range_with_missing_values() {
        let values: Vec<f64> = (0..2000)
            .map(|i| match i {
                _ if i % 97 == 0 => f64::NAN,
                _ if i > 1500 => 1e9 * noise(i),
                _ => noise(i),
            })
            .collect();
        let full = run(values.iter().copied());
        let prefix = run(values[..1200].iter().copied());
        assert_eq!(&full[..1200], &prefix[..]);
        for (i, s) in full.iter().enumerate() {
            assert!((0.0..=1.0).contains(s), "{i}: {s}");
            if i % 97 == 0 {
                assert_eq!(*s, 0.0);
            }
        }
    }
}
