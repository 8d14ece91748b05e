//! Anomaly likelihood: how unusual the recent surprises are against the
//! long-run distribution of surprises (after Numenta's anomaly likelihood).

use std::collections::VecDeque;

/// A fixed window with running sum and sum of squares.
#[derive(Debug, Clone)]
struct RunningWindow {
    values: VecDeque<f64>,
    capacity: usize,
    sum: f64,
    sum_sq: f64,
}

impl RunningWindow {
    fn new(capacity: usize) -> Self {
        Self {
            values: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    fn push(&mut self, value: f64) {
        if self.values.len() == self.capacity
            && let Some(old) = self.values.pop_front()
        {
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        self.values.push_back(value);
        self.sum += value;
        self.sum_sq += value * value;
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    fn mean(&self) -> f64 {
        self.sum / self.values.len().max(1) as f64
    }

    fn std(&self) -> f64 {
        let n = self.values.len().max(1) as f64;
        ((self.sum_sq / n) - self.mean().powi(2)).max(0.0).sqrt()
    }
}

/// Turns a stream of surprises in [0, 1) into anomaly scores in [0, 1].
#[derive(Debug, Clone)]
pub struct Likelihood {
    long: RunningWindow,
    short: RunningWindow,
    min_history: usize,
}

impl Likelihood {
    /// `long`: points that define normal; `short`: points averaged for the
    /// current state; `min_history`: points before any score above 0.
    pub fn new(long: usize, short: usize, min_history: usize) -> Self {
        Self {
            long: RunningWindow::new(long),
            short: RunningWindow::new(short),
            min_history,
        }
    }

    /// Adds a surprise and returns the anomaly score for this point.
    pub fn update(&mut self, surprise: f64) -> f64 {
        let surprise = if surprise.is_finite() {
            surprise.clamp(0.0, 1.0)
        } else {
            1.0
        };
        self.short.push(surprise);
        let ready = self.long.len() >= self.min_history;
        let score = if ready {
            // Floor the spread: a perfectly calm history must not make the
            // smallest wobble certain.
            let std = self.long.std().max(0.01);
            let z = (self.short.mean() - self.long.mean()) / std;
            let tail = normal_tail(z);
            log_scale(1.0 - tail)
        } else {
            0.0
        };
        self.long.push(surprise);
        score
    }
}

/// P(Z > z) for a standard normal.
fn normal_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Spreads likelihoods near 1 over [0, 1] the way Numenta's detector does:
/// 0.99 → 0.2, 0.9999 → 0.4, 0.99999999 → 0.8.
fn log_scale(likelihood: f64) -> f64 {
    let scaled = (1.000_000_000_1 - likelihood).ln() / (1.0 - 0.999_999_999_9_f64).ln();
    scaled.clamp(0.0, 1.0)
}

/// Complementary error function (W. J. Cody's rational approximations via
/// Numerical Recipes' erfc with relative error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_known_values() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_tail(-1.959_964) - 0.975).abs() < 1e-6);
    }

    #[test]
    fn steady_surprise_scores_low_and_a_jump_scores_high() {
        let mut l = Likelihood::new(500, 5, 100);
        let mut last = 0.0;
        for i in 0..600 {
            last = l.update(0.1 + 0.02 * ((i % 7) as f64 / 7.0));
        }
        assert!(last < 0.3, "{last}");
        let mut peak: f64 = 0.0;
        for _ in 0..5 {
            peak = peak.max(l.update(0.9));
        }
        assert!(peak > 0.5, "{peak}");
    }

    #[test]
    fn nothing_scores_before_the_history_is_long_enough() {
        let mut l = Likelihood::new(500, 5, 100);
        for _ in 0..99 {
            assert_eq!(l.update(0.99), 0.0);
        }
    }
}
