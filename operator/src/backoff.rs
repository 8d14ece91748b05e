//! Retrying an object whose reconcile failed: the delay doubles with each
//! failure in a row (from `BASE`, at most `CAP`) and starts over after a
//! success, so a broken object is not hammered and a transient error is
//! retried at once. Counted per object.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const BASE: Duration = Duration::from_secs(1);
const CAP: Duration = Duration::from_secs(300);

/// The delay after `failures` failures in a row (1 is the first).
pub fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BASE.saturating_mul(1 << doublings).min(CAP)
}

/// Failures in a row, by object (`namespace/name`).
#[derive(Debug, Default)]
pub struct Failures(Mutex<HashMap<String, u32>>);

impl Failures {
    /// Counts a failure of `key`; the failures in a row so far.
    pub fn failed(&self, key: &str) -> u32 {
        let Ok(mut counts) = self.0.lock() else {
            return 1;
        };
        let count = counts.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// `key` reconciled: its next failure waits the base delay again.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut counts) = self.0.lock() {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_five_minutes() {
        let delays: Vec<u64> = [1, 2, 3, 4, 9, 10, 100]
            .map(|n| retry_delay(n).as_secs())
            .to_vec();
        assert_eq!(delays, [1, 2, 4, 8, 256, 300, 300]);
        assert_eq!(retry_delay(0), BASE);
    }

    #[test]
    fn a_success_starts_the_count_over_for_that_object_only() {
        let failures = Failures::default();
        assert_eq!(failures.failed("shop/a"), 1);
        assert_eq!(failures.failed("shop/a"), 2);
        assert_eq!(failures.failed("shop/b"), 1);
        failures.succeeded("shop/a");
        assert_eq!(failures.failed("shop/a"), 1);
        assert_eq!(failures.failed("shop/b"), 2);
    }
}
