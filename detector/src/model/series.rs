//! Scoring one series tick by tick against its baseline.
//!
//! The score maps the deviation in spreads, `z`, to [0, 1] with
//! `z² / (z² + z_half²)`: 0.5 at `z_half` spreads, 0.9 at three times that.
//! Only the harmful direction counts (latency and errors up, traffic down).
//!
//! Beside its baseline a series keeps a [`NoveltyScorer`]: a deviation
//! is *news* when the value also lies where the series has not been lately,
//! and the baseline confirms it (at least `z_half` spreads the harmful way).
//! A point's news is what `score-csv` writes, so the NAB figure measures
//! it. The daemon confirms over a window instead (see the engine): a report
//! opens after the short hold when the series left where it has been
//! within the last `stale_hold`, since a backlog or a ramp leaves its usual
//! range before the baseline's floors let it count as harm.
//!
//! Online learning follows slow, legitimate change but not an incident: a
//! point within `learn_within` spreads nudges a level shift towards itself;
//! a point outside teaches nothing, so an ongoing anomaly never becomes
//! normal, while a slow drift is followed one small step at a time.

use homeostat_api::Severity;

use super::baseline::Baseline;
use super::novelty::NoveltyScorer;

/// Baseline score from which a novelty is confirmed as news: `z_half`
/// spreads the harmful way.
pub const NEWS_CONFIRMED_FROM: f64 = 0.5;

/// Which deviations are harmful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
    Both,
    /// Charted, never harmful: a callee's traffic, which follows its
    /// callers' routing rather than its own health.
    Neither,
}

/// Tuning shared by every series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoringConfig {
    /// Deviation, in spreads, that scores 0.5.
    pub z_half: f64,
    /// Points closer than this many spreads to the expectation are learned.
    pub learn_within: f64,
    /// Share of a learned point's deviation added to the level shift.
    pub learn_rate: f64,
    /// Score from which a deviation is Critical rather than Warning.
    pub critical_score: f64,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            z_half: 4.0,
            learn_within: 3.0,
            learn_rate: 0.02,
            critical_score: 0.9,
        }
    }
}

impl ScoringConfig {
    /// Score of a deviation of `z` spreads in the harmful direction.
    pub fn score(&self, z: f64) -> f64 {
        let z = z.max(0.0);
        z * z / (z * z + self.z_half * self.z_half)
    }

    /// The deviation, in spreads, at which the score reaches `score`.
    pub fn z_at(&self, score: f64) -> f64 {
        let s = score.clamp(0.0, 0.999_999);
        self.z_half * (s / (1.0 - s)).sqrt()
    }

    pub fn severity(&self, score: f64) -> Severity {
        if score >= self.critical_score {
            Severity::Critical
        } else {
            Severity::Warning
        }
    }
}

/// One tick's verdict on one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    pub score: f64,
    /// Signed deviation in spreads.
    pub z: f64,
    /// The value, and what the baseline expected, in the signal's units.
    pub observed: f64,
    pub expected: f64,
    /// The novelty's onset score, in full when the baseline confirms it
    /// (score at least [`NEWS_CONFIRMED_FROM`]), halved otherwise; 0 for a
    /// series without a novelty scorer.
    pub news: f64,
    /// The novelty's onset score alone, confirmed or not.
    pub novelty: f64,
}

/// A series' baseline with its online level shift.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesModel {
    pub baseline: Baseline,
    pub direction: Direction,
    /// Learned since the fit, on the baseline's scale.
    pub shift: f64,
    /// Smallest move, in the signal's own units, that can be harmful at
    /// all: a p99 up from 0.5 ms to 0.8 ms is a large ratio and no incident.
    pub min_effect: f64,
    /// Where the series has been lately; kept across refits of the baseline.
    pub novelty: Option<NoveltyScorer>,
}

impl SeriesModel {
    pub fn new(baseline: Baseline, direction: Direction) -> Self {
        Self {
            baseline,
            direction,
            shift: 0.0,
            min_effect: 0.0,
            novelty: None,
        }
    }

    /// The same model, judging news with `novelty`.
    pub fn with_novelty(self, novelty: Option<NoveltyScorer>) -> Self {
        Self { novelty, ..self }
    }

    /// The same model, ignoring moves smaller than `min_effect`.
    pub fn with_min_effect(self, min_effect: f64) -> Self {
        Self { min_effect, ..self }
    }

    /// Scores `value` observed at `unix_seconds`, then learns it if normal.
    pub fn observe(&mut self, config: &ScoringConfig, unix_seconds: i64, value: f64) -> Tick {
        let scale = self.baseline.scale;
        let expected = self.baseline.expected(unix_seconds) + self.shift;
        let deviation = scale.forward(value) - expected;
        let z = deviation / self.baseline.spread;
        let negligible = (value - scale.inverse(expected)).abs() < self.min_effect;
        let harmful = match self.direction {
            _ if negligible => 0.0,
            Direction::Up => z,
            Direction::Down => -z,
            Direction::Both => z.abs(),
            Direction::Neither => 0.0,
        };
        if z.abs() < config.learn_within {
            self.shift += config.learn_rate * deviation;
        }
        let score = config.score(harmful);
        let onset = self.novelty.as_mut().map_or(0.0, |n| n.update(value));
        Tick {
            score,
            z,
            observed: value,
            expected: scale.inverse(expected),
            news: if score >= NEWS_CONFIRMED_FROM {
                onset
            } else {
                onset / 2.0
            },
            novelty: onset,
        }
    }

    /// The deviation the joint model sees for a scored tick: none for a
    /// series that is never harmful, or for a move smaller than
    /// `min_effect`, so neither can make a combination look unseen.
    pub fn joint_deviation(&self, tick: &Tick) -> f64 {
        let negligible = (tick.observed - tick.expected).abs() < self.min_effect;
        if self.direction == Direction::Neither || negligible {
            0.0
        } else {
            tick.z
        }
    }

    /// [`Self::joint_deviation`] of a historical `value` at `unix_seconds`.
    pub fn joint_deviation_at(&self, unix_seconds: i64, value: f64) -> f64 {
        self.joint_deviation(&Tick {
            score: 0.0,
            z: self.baseline.z(unix_seconds, value),
            observed: value,
            expected: self
                .baseline
                .scale
                .inverse(self.baseline.expected(unix_seconds)),
            news: 0.0,
            novelty: 0.0,
        })
    }

    /// `[lower, centre, upper]` at `unix_seconds` for a band of `width` spreads.
    pub fn band(&self, unix_seconds: i64, width: f64) -> [f64; 3] {
        self.baseline.band(unix_seconds, width, self.shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::baseline::Scale;
    use crate::model::testing::noise;

    const STEP: i64 = 5;

    /// p99 latency around 4 ms with 5% noise, one point every 5 s.
    fn latency(i: usize) -> f64 {
        0.004 * (1.0 + 0.05 * noise(i))
    }

    fn fitted(history: usize) -> SeriesModel {
        let points: Vec<(i64, f64)> = (0..history)
            .map(|i| (i as i64 * STEP, latency(i)))
            .collect();
        SeriesModel::new(
            Baseline::fit(&points, Scale::Log).expect("fit"),
            Direction::Up,
        )
    }

    fn scores(model: &mut SeriesModel, from: usize, values: impl Iterator<Item = f64>) -> Vec<f64> {
        let config = ScoringConfig::default();
        values
            .enumerate()
            .map(|(k, v)| model.observe(&config, (from + k) as i64 * STEP, v).score)
            .collect()
    }

    fn max(v: &[f64]) -> f64 {
        v.iter().copied().fold(0.0, f64::max)
    }

    #[test]
    fn a_level_shift_up_scores_high_at_once_and_stays_high() {
        let mut model = fitted(720);
        let s = scores(&mut model, 720, (720..900).map(|i| latency(i) * 3.0));
        assert!(s[0] > 0.9, "{}", s[0]);
        // The incident is not learned as the new normal.
        assert!(
            s.iter().all(|&x| x > 0.9),
            "{}",
            s.iter().copied().fold(1.0, f64::min)
        );
    }

    #[test]
    fn a_single_spike_scores_high_for_that_tick_only() {
        let mut model = fitted(720);
        let values = (720..760).map(|i| latency(i) * if i == 730 { 8.0 } else { 1.0 });
        let s = scores(&mut model, 720, values);
        assert!(s[10] > 0.9);
        assert!(max(&s[11..]) < 0.3, "{}", max(&s[11..]));
    }

    #[test]
    fn a_slow_drift_is_followed_without_alarm() {
        let mut model = fitted(720);
        // +80% over six hours: legitimate growth, 0.01% per tick.
        let ticks = 6 * 720;
        let values = (0..ticks).map(|k| latency(720 + k) * (1.0 + 0.8 * k as f64 / ticks as f64));
        let s = scores(&mut model, 720, values);
        assert!(max(&s) < 0.5, "{}", max(&s));
    }

    #[test]
    fn a_negligible_move_is_no_alarm_however_large_the_ratio() {
        let config = ScoringConfig::default();
        // p99 steady at 0.5 ms (the lowest bucket), 2 ms minimum effect.
        let points: Vec<(i64, f64)> = (0..60)
            .map(|i| (i * 2, 0.0005 * (1.0 + 0.01 * noise(i as usize))))
            .collect();
        let baseline = Baseline::fit(&points, Scale::Log).expect("fit");
        let mut model = SeriesModel::new(baseline, Direction::Up).with_min_effect(0.002);
        assert_eq!(
            model.observe(&config, 200, 0.0009).score,
            0.0,
            "0.5 → 0.9 ms"
        );
        assert!(
            model.observe(&config, 202, 0.010).score > 0.9,
            "0.5 → 10 ms"
        );
    }

    #[test]
    fn a_ramp_alarms_before_it_ends() {
        let mut model = fitted(720);
        // Ten times slower over five minutes: an incident growing.
        let values = (0..60).map(|k| latency(720 + k) * 10f64.powf(k as f64 / 60.0));
        let s = scores(&mut model, 720, values);
        let first = s.iter().position(|&x| x > 0.7).expect("alarm");
        assert!(first < 30, "alarm only at tick {first}");
    }

    #[test]
    fn faster_is_not_an_alarm_for_latency_but_less_traffic_is_for_rate() {
        let config = ScoringConfig::default();
        let mut latency_model = fitted(720);
        assert!(latency_model.observe(&config, 0, 0.0005).score < 0.01);
        let mut rate_model = SeriesModel {
            min_effect: 0.0,
            direction: Direction::Down,
            ..fitted(720)
        };
        assert!(rate_model.observe(&config, 0, 0.0005).score > 0.9);
    }

    #[test]
    fn a_deviation_is_news_once_and_only_where_the_series_has_not_been() {
        use crate::model::NoveltyConfig;
        let history: Vec<f64> = (0..720).map(latency).collect();
        let novelty = NoveltyScorer::calibrated(NoveltyConfig::default(), &history);
        let mut model = fitted(720).with_novelty(novelty);
        let config = ScoringConfig::default();
        let mut news = |k: usize, v: f64| model.observe(&config, (720 + k) as i64 * STEP, v).news;
        assert!(news(0, latency(720)) < 0.5, "a usual value");
        assert!(news(1, latency(721) * 3.0) > 0.5, "the first slow point");
        assert!(news(2, latency(722) * 3.0) < 0.5, "the same level again");
        // Faster than ever: novel, but no harm the baseline confirms.
        assert!(news(3, latency(723) / 10.0) < 0.5);
    }

    #[test]
    fn the_score_is_half_at_z_half_and_inverts() {
        let config = ScoringConfig::default();
        assert!((config.score(config.z_half) - 0.5).abs() < 1e-12);
        let z = config.z_at(0.7);
        assert!((config.score(z) - 0.7).abs() < 1e-9);
        assert_eq!(config.severity(0.95), Severity::Critical);
        assert_eq!(config.severity(0.75), Severity::Warning);
    }
}
