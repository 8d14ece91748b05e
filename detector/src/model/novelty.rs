//! Support novelty: is the value somewhere the series has not been lately?
//!
//! Values are quantised into bins whose width is laid over the history the
//! scorer is calibrated on. The scorer remembers when each bin was last
//! visited. A value in a bin visited within the last `memory` points is not
//! novel and scores 0; a value in a bin not visited lately scores above 0.5,
//! growing with its distance from the nearest visited bin relative to the
//! visited range. Only the onset of a novelty scores in full: a score that
//! does not exceed every raw score of the last `refractory` points is
//! halved, so one incident is one alarm, not a run of them.
//!
//! Memory is one entry per bin visited lately (at most `max_bins`), not one
//! per point: a detector holds a scorer for every series it watches.
//!
//! Causal and deterministic: the score of a point reads only earlier points.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::stats::quantile_in_place;

/// Tuning of a [`NoveltyScorer`]. The defaults were chosen on the NAB
/// development set as a whole (see BENCHMARKS.md for how flat the score is
/// around them), never per file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoveltyConfig {
    /// Bins across the central 99% of the calibration values.
    pub bins: u32,
    /// Points for which a visited bin stays visited.
    pub memory: u64,
    /// Points after a novelty during which a weaker one is not news.
    pub refractory: usize,
    /// Bins remembered at most; the least recently visited go first.
    pub max_bins: usize,
}

impl Default for NoveltyConfig {
    fn default() -> Self {
        Self {
            bins: 20,
            memory: 10_000,
            refractory: 100,
            max_bins: 512,
        }
    }
}

/// Streaming support-novelty scorer of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct NoveltyScorer {
    config: NoveltyConfig,
    grid: Grid,
    /// Points learned so far: the clock of `last_visit`.
    learned: u64,
    last_visit: BTreeMap<i64, u64>,
    /// `(last visit, bin)`, oldest first: what expires next.
    by_age: BTreeSet<(u64, i64)>,
    recent_raw: VecDeque<f64>,
}

/// Bin `i` holds values in `[origin + i·width, origin + (i+1)·width)`.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// A scorer whose bins are laid over `history` (its finite values), which
    /// it remembers as visited; `None` without a finite value.
    pub fn calibrated(config: NoveltyConfig, history: &[f64]) -> Option<Self> {
        let mut values: Vec<f64> = history.iter().copied().filter(|v| v.is_finite()).collect();
        let grid = Grid::from_calibration(&mut values, config.bins)?;
        let mut scorer = Self {
            config,
            grid,
            learned: 0,
            last_visit: BTreeMap::new(),
            by_age: BTreeSet::new(),
            recent_raw: VecDeque::with_capacity(config.refractory + 1),
        };
        // As if each value were remembered in turn, in one pass: only each
        // bin's last visit matters.
        for value in history.iter().copied().filter(|v| v.is_finite()) {
            scorer
                .last_visit
                .insert(scorer.grid.bin(value), scorer.learned);
            scorer.learned += 1;
        }
        scorer.by_age = scorer.last_visit.iter().map(|(&b, &at)| (at, b)).collect();
        while scorer.by_age.len() > config.max_bins.max(1) {
            scorer.forget_oldest();
        }
        scorer.forget_expired();
        Some(scorer)
    }

    /// Scores `value` against what came before, then learns it. Missing or
    /// non-finite values score 0 and are not learned: absence is not evidence.
    pub fn update(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let bin = self.grid.bin(value);
        self.forget_expired();
        let raw = self.raw_score(bin);
        self.remember(bin);
        self.onset(raw)
    }

    fn raw_score(&self, bin: i64) -> f64 {
        if self.last_visit.contains_key(&bin) {
            return 0.0;
        }
        let (Some((&lowest, _)), Some((&highest, _))) = (
            self.last_visit.first_key_value(),
            self.last_visit.last_key_value(),
        ) else {
            return 0.0;
        };
        let below = self
            .last_visit
            .range(..bin)
            .next_back()
            .map(|(&b, _)| bin - b);
        let above = self.last_visit.range(bin..).next().map(|(&b, _)| b - bin);
        let gap = below.into_iter().chain(above).min().unwrap_or(1) as f64;
        let span = (highest - lowest + 1) as f64;
        0.5 + 0.5 * (1.0 - (-gap / span).exp())
    }

    fn remember(&mut self, bin: i64) {
        if let Some(previous) = self.last_visit.insert(bin, self.learned) {
            self.by_age.remove(&(previous, bin));
        }
        self.by_age.insert((self.learned, bin));
        self.learned += 1;
        while self.by_age.len() > self.config.max_bins.max(1) {
            self.forget_oldest();
        }
    }

    /// Bins not visited within the last `memory` points are not visited lately.
    fn forget_expired(&mut self) {
        while let Some(&(visited, _)) = self.by_age.first()
            && self.learned - visited >= self.config.memory
        {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, bin)) = self.by_age.pop_first() {
            self.last_visit.remove(&bin);
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

    const CALIBRATION: usize = 300;

    /// Calibrated on the first points (scored 0), then scored point by point.
    fn run_with(config: NoveltyConfig, values: impl IntoIterator<Item = f64>) -> Vec<f64> {
        let values: Vec<f64> = values.into_iter().collect();
        let (history, rest) = values.split_at(CALIBRATION.min(values.len()));
        let mut scorer = NoveltyScorer::calibrated(config, history).expect("calibrated");
        let scored = rest.iter().map(|&v| scorer.update(v));
        std::iter::repeat_n(0.0, history.len())
            .chain(scored)
            .collect()
    }

    fn run(values: impl IntoIterator<Item = f64>) -> Vec<f64> {
        run_with(NoveltyConfig::default(), values)
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
    fn a_level_not_visited_within_the_memory_is_novel_again() {
        let config = NoveltyConfig {
            memory: 500,
            ..NoveltyConfig::default()
        };
        let level = |i: usize| match i {
            1000..1050 | 1300..1350 | 2000..2050 => 30.0,
            _ => 10.0,
        } + noise(i);
        let scores = run_with(config, (0..2500).map(level));
        assert!(scores[1000] > 0.5, "first visit {}", scores[1000]);
        // 250 points later the level is still remembered ...
        assert!(scores[1300] < 0.5, "second visit {}", scores[1300]);
        // ... 650 points later it is not.
        assert!(scores[2000] > 0.5, "after the memory {}", scores[2000]);
    }

    #[test]
    fn remembers_at_most_max_bins() {
        let config = NoveltyConfig {
            max_bins: 8,
            ..NoveltyConfig::default()
        };
        let history: Vec<f64> = (0..300).map(noise).collect();
        let mut scorer = NoveltyScorer::calibrated(config, &history).expect("calibrated");
        for i in 0..5000 {
            scorer.update(i as f64 * 1e6);
        }
        assert!(scorer.last_visit.len() <= 8 && scorer.by_age.len() <= 8);
    }

    #[test]
    fn calibration_points_score_zero_and_flat_series_stay_calm() {
        let scores = run(std::iter::repeat_n(45.0, 1000));
        assert!(scores.iter().all(|&s| s < 0.5));
        assert!(scores[..CALIBRATION].iter().all(|&s| s == 0.0));
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
