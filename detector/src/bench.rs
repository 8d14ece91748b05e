//! `homeostat-detector bench`: fit N synthetic series of H points, then time
//! scoring ticks over all of them, as the daemon does.

use std::time::Instant;

use crate::model::{
    Baseline, Direction, NoveltyConfig, NoveltyScorer, Scale, ScoringConfig, SeriesModel,
};

/// What was measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BenchResult {
    pub series: usize,
    pub history: usize,
    pub ticks: usize,
    pub threads: usize,
    pub fit_seconds: f64,
    /// Median over the ticks.
    pub score_ms_per_tick: f64,
    pub score_ms_per_tick_max: f64,
    /// Peak resident memory of the process.
    pub rss_mb: f64,
    pub seasonal_series: usize,
}

/// One point a minute, as a week of history at 10 080 points.
const STEP: i64 = 60;

/// A latency-like series: a daily cycle whose strength varies by series, plus noise.
fn value(series: usize, i: usize) -> f64 {
    let t = i as f64 * STEP as f64;
    let amplitude = 0.1 + 0.5 * ((series * 7919) % 100) as f64 / 100.0;
    let phase = (series % 24) as f64;
    let daily = 1.0 + amplitude * (std::f64::consts::TAU * (t / 86_400.0 + phase / 24.0)).sin();
    let noise = unit_noise((series as u64) << 32 | i as u64);
    0.005 * (1.0 + 0.05 * (series % 10) as f64) * daily * (1.0 + 0.05 * noise)
}

/// Deterministic noise in [-1, 1) from a 64-bit mix (splitmix64's finaliser).
fn unit_noise(key: u64) -> f64 {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

pub fn run(series: usize, history: usize, ticks: usize) -> BenchResult {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let chunk = series.div_ceil(threads).max(1);
    let mut models: Vec<SeriesModel> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..series)
            .step_by(chunk)
            .map(|first| {
                scope.spawn(move || {
                    let mut points = Vec::with_capacity(history);
                    (first..(first + chunk).min(series))
                        .filter_map(|s| {
                            points.clear();
                            points.extend((0..history).map(|i| (i as i64 * STEP, value(s, i))));
                            // As the engine fits a series it has not seen.
                            let values: Vec<f64> = points.iter().map(|p| p.1).collect();
                            let novelty =
                                NoveltyScorer::calibrated(NoveltyConfig::default(), &values);
                            Baseline::fit(&points, Scale::Log)
                                .ok()
                                .map(|b| SeriesModel::new(b, Direction::Up).with_novelty(novelty))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let fit_seconds = started.elapsed().as_secs_f64();
    let seasonal_series = models
        .iter()
        .filter(|m| m.baseline.seasonality.is_some())
        .count();

    // Scoring runs on one thread, as in the daemon.
    let config = ScoringConfig::default();
    let mut per_tick = Vec::with_capacity(ticks);
    let mut checksum = 0.0;
    for k in 0..ticks {
        let i = history + k;
        let t = i as i64 * STEP;
        let started = Instant::now();
        for (s, model) in models.iter_mut().enumerate() {
            checksum += model.observe(&config, t, value(s, i)).score;
        }
        per_tick.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    std::hint::black_box(checksum);
    let max = per_tick.iter().copied().fold(0.0, f64::max);
    per_tick.sort_by(f64::total_cmp);
    BenchResult {
        series,
        history,
        ticks,
        threads,
        fit_seconds,
        score_ms_per_tick: per_tick.get(per_tick.len() / 2).copied().unwrap_or(0.0),
        score_ms_per_tick_max: max,
        rss_mb: peak_rss_mb(),
        seasonal_series,
    }
}

/// VmHWM from /proc/self/status (Linux); 0 where unavailable.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_fits_every_series_and_finds_the_daily_cycle() {
        let result = run(20, 3 * 1440, 5);
        assert_eq!(result.series, 20);
        assert_eq!(result.seasonal_series, 20);
        assert!(result.score_ms_per_tick >= 0.0 && result.rss_mb > 0.0);
    }
}
