//! Leading only while the Lease is known to be ours.
//!
//! The Lease library keeps saying "leader" while it cannot reach the API
//! server, and another replica takes the Lease once it has gone unrenewed
//! for its duration. So this process fences itself: it acts only until
//! half a grace period before its last renewal it has seen would expire.
//! The holder renews a whole grace period before expiry, so in health the
//! fence never closes; cut off from the API server, the process stops
//! acting before anyone else can start.

use std::time::{Duration, SystemTime};

/// What a read of the Lease showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseSeen {
    /// Held by this process, last renewed at this time.
    Ours { renewed: SystemTime },
    /// Held by someone else, or by nobody.
    NotOurs,
    /// It could not be read.
    Unreadable,
}

#[derive(Debug, Clone)]
pub struct Fence {
    /// How long after a renewal this process may still act.
    valid_for: Duration,
    renewed: Option<SystemTime>,
}

impl Fence {
    pub fn new(duration: Duration, grace: Duration) -> Self {
        Self {
            valid_for: duration.saturating_sub(grace / 2),
            renewed: None,
        }
    }

    /// Takes in a read of the Lease.
    pub fn saw(&mut self, seen: LeaseSeen) {
        match seen {
            LeaseSeen::Ours { renewed } => self.renewed = Some(renewed),
            LeaseSeen::NotOurs => self.renewed = None,
            // Nothing learnt: the last renewal seen keeps counting down.
            LeaseSeen::Unreadable => {}
        }
    }

    /// Whether this process may act at `now`.
    pub fn holds(&self, now: SystemTime) -> bool {
        self.renewed
            .is_some_and(|renewed| now < renewed + self.valid_for)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_until_half_a_grace_before_the_last_renewal_seen_expires() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut fence = Fence::new(Duration::from_secs(3), Duration::from_secs(1));
        assert!(!fence.holds(at(0)), "not before a renewal is seen");
        fence.saw(LeaseSeen::Ours { renewed: at(0) });
        assert!(fence.holds(at(2_400)));
        assert!(!fence.holds(at(2_500)));
        // Cut off: reads fail, the clock runs down all the same.
        fence.saw(LeaseSeen::Unreadable);
        assert!(!fence.holds(at(2_600)));
        // Renewed again in time.
        fence.saw(LeaseSeen::Ours { renewed: at(2_000) });
        assert!(fence.holds(at(4_000)));
        // Someone else holds it: at once.
        fence.saw(LeaseSeen::NotOurs);
        assert!(!fence.holds(at(2_100)));
    }
}
