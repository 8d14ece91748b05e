//! After an outage of the metrics source, its rate windows span the gap
//! for one window length: a service's traffic then reads as if it had
//! nearly stopped, and its latency quantiles rest on a few requests. The
//! detector stays degraded — opening nothing, resolving nothing — until a
//! whole window of fresh data is in.

/// Whether this tick's data can be scored.
#[derive(Debug, Clone)]
pub struct OutageGuard {
    window_seconds: i64,
    /// The source has failed since the last trusted tick.
    after_outage: bool,
    /// The first tick with data again, after an outage.
    back_since: Option<i64>,
}

impl OutageGuard {
    pub fn new(window_seconds: i64) -> Self {
        Self {
            window_seconds,
            after_outage: false,
            back_since: None,
        }
    }

    /// Whether data read at `now` (`answered`: the source answered) is whole.
    pub fn trusted(&mut self, now: i64, answered: bool) -> bool {
        if !answered {
            self.after_outage = true;
            self.back_since = None;
            return false;
        }
        if self.after_outage {
            let since = *self.back_since.get_or_insert(now);
            if now - since <= self.window_seconds {
                return false;
            }
            self.after_outage = false;
            self.back_since = None;
        }
        true
    }

    /// Still waiting out a window after an outage.
    pub fn recovering(&self) -> bool {
        self.back_since.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_trusted_until_an_outage_and_again_a_whole_window_after_it() {
        let mut guard = OutageGuard::new(30);
        assert!(guard.trusted(0, true));
        assert!(guard.trusted(1, true));
        assert!(!guard.trusted(2, false));
        assert!(!guard.trusted(40, false));
        // Back at 41: its windows still span the gap until 71.
        assert!(!guard.trusted(41, true));
        assert!(guard.recovering());
        assert!(!guard.trusted(71, true));
        assert!(guard.trusted(72, true));
        assert!(!guard.recovering());
        assert!(guard.trusted(73, true));
    }

    #[test]
    fn a_new_outage_while_recovering_starts_the_wait_over() {
        let mut guard = OutageGuard::new(30);
        assert!(!guard.trusted(0, false));
        assert!(!guard.trusted(10, true));
        assert!(!guard.trusted(20, false));
        assert!(!guard.trusted(30, true));
        assert!(!guard.trusted(50, true));
        assert!(guard.trusted(61, true));
    }
}
