//! Debouncing: an anomaly opens only when its score has held above the
//! threshold for `hold`, and resolves after `quiet` below it. One scrape blip
//! never opens a report, and absence of data neither opens nor resolves one.
//! A deviation that brought no news (the series has been there lately: a
//! recurring spike, a level it keeps visiting) must hold for `stale_hold`.

/// Thresholds and times, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DebounceConfig {
    pub threshold: f64,
    pub hold_seconds: i64,
    pub quiet_seconds: i64,
    /// The hold of a deviation without news.
    pub stale_hold_seconds: i64,
}

impl Default for DebounceConfig {
    fn default() -> Self {
        Self {
            threshold: 0.7,
            hold_seconds: 4,
            quiet_seconds: 30,
            stale_hold_seconds: 30,
        }
    }
}

/// Where one series stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Quiet,
    /// Above the threshold since `since`, not yet for `hold`.
    Pending { since: i64 },
    /// Open since `since`; below the threshold since `calm_since`, if it is.
    Open { since: i64, calm_since: Option<i64> },
}

/// What a tick changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    /// The anomaly opens; it began at `since`.
    Opened {
        since: i64,
    },
    /// The anomaly ended at `at` (the first calm tick).
    Resolved {
        at: i64,
    },
}

impl DebounceConfig {
    /// This configuration for a deviation that brought no news.
    pub fn without_news(self) -> Self {
        Self {
            hold_seconds: self.stale_hold_seconds.max(self.hold_seconds),
            ..self
        }
    }
}

impl Phase {
    /// Advances by one tick at `now`; `score` is `None` when there is no data.
    pub fn observe(&mut self, config: &DebounceConfig, now: i64, score: Option<f64>) -> Transition {
        let above = score.map(|s| s >= config.threshold);
        match (*self, above) {
            (Phase::Quiet, Some(true)) if config.hold_seconds <= 0 => {
                *self = Phase::Open {
                    since: now,
                    calm_since: None,
                };
                Transition::Opened { since: now }
            }
            (Phase::Quiet, Some(true)) => {
                *self = Phase::Pending { since: now };
                Transition::None
            }
            (Phase::Quiet, _) => Transition::None,
            (Phase::Pending { since }, Some(true)) if now - since >= config.hold_seconds => {
                *self = Phase::Open {
                    since,
                    calm_since: None,
                };
                Transition::Opened { since }
            }
            (Phase::Pending { .. }, Some(true)) => Transition::None,
            // Below the threshold, or no data: the evidence did not hold.
            (Phase::Pending { .. }, _) => {
                *self = Phase::Quiet;
                Transition::None
            }
            (Phase::Open { since, .. }, Some(true)) | (Phase::Open { since, .. }, None) => {
                // No data is not calm: the quiet time starts again.
                *self = Phase::Open {
                    since,
                    calm_since: None,
                };
                Transition::None
            }
            (Phase::Open { since, calm_since }, Some(false)) => {
                let calm = calm_since.unwrap_or(now);
                if now - calm >= config.quiet_seconds {
                    *self = Phase::Quiet;
                    Transition::Resolved { at: calm }
                } else {
                    *self = Phase::Open {
                        since,
                        calm_since: Some(calm),
                    };
                    Transition::None
                }
            }
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Phase::Open { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scores: &[Option<f64>]) -> Vec<Transition> {
        let config = DebounceConfig {
            threshold: 0.7,
            hold_seconds: 3,
            quiet_seconds: 3,
            stale_hold_seconds: 9,
        };
        let mut phase = Phase::default();
        scores
            .iter()
            .enumerate()
            .map(|(t, s)| phase.observe(&config, t as i64, *s))
            .collect()
    }

    #[test]
    fn one_blip_never_opens() {
        let t = run(&[
            Some(0.1),
            Some(0.99),
            Some(0.1),
            Some(0.99),
            Some(0.2),
            Some(0.1),
        ]);
        assert!(t.iter().all(|t| *t == Transition::None), "{t:?}");
    }

    #[test]
    fn a_held_score_opens_from_its_start_and_resolves_after_quiet() {
        let s = [0.1, 0.8, 0.9, 0.8, 0.9, 0.2, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1];
        let t = run(&s.map(Some));
        assert_eq!(t[4], Transition::Opened { since: 1 });
        // A calm spell broken by a spike restarts the quiet time.
        assert_eq!(t[11], Transition::Resolved { at: 8 });
        assert_eq!(t.iter().filter(|t| **t != Transition::None).count(), 2);
    }

    #[test]
    fn missing_data_neither_opens_nor_resolves() {
        let t = run(&[Some(0.9), Some(0.9), None, Some(0.9), Some(0.9), Some(0.9)]);
        assert!(t.iter().all(|t| *t == Transition::None), "{t:?}");
        let mut phase = Phase::Open {
            since: 0,
            calm_since: Some(0),
        };
        let config = DebounceConfig::default();
        for now in 1..100 {
            assert_eq!(phase.observe(&config, now, None), Transition::None);
        }
        assert!(phase.is_open());
    }
}
