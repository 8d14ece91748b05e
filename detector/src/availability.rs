//! A dead service sends no data, and no data never opens a report (that is
//! right for a Prometheus outage). So its absence is read where it still
//! shows while Prometheus answers: in its scrape targets (`up`) and in its
//! callers' calls to it, which get no answer (refused, lost, timed out).
//!
//! Judged by rule, not against a baseline: every unanswered call is a
//! customer-facing failure whatever the history says.

/// What callers' calls to one service got back, per second over the rate
/// window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reach {
    pub calls: f64,
    /// Calls that got no answer at all (an error answer is an answer).
    pub unanswered: f64,
}

/// Fewer calls than this a second say nothing: with a 20 s window, one lost
/// reply among four calls is not an outage.
pub const MIN_CALLS_PER_SECOND: f64 = 0.25;

/// The share of unanswered calls that scores the report threshold: a
/// fifth. A callee's replica restarting alone loses far fewer (callers
/// spread over the others); a dead service loses all of them, so the share
/// crosses this within a fifth of the rate window.
pub const UNANSWERED_AT_THRESHOLD: f64 = 0.2;

/// The share from which a callee explains its callers' slowdown, reported
/// or not: one call in twenty unanswered is no accident of the network.
pub const UNANSWERED_EXPLAINS_CALLERS: f64 = 0.05;

/// The share that scores 1: half the calls unanswered.
pub const UNANSWERED_AT_FULL: f64 = 0.5;

/// One service's availability this tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Availability {
    /// Share of the service not answering, 0 to 1: its callers' unanswered
    /// calls, or 1 when every scrape target of it is down.
    pub unanswered: f64,
    pub score: f64,
}

/// Judges a service from its callers' calls to it and the highest `up` of
/// its scrape targets (0: all down). `None` when neither says anything.
/// `threshold` is the report threshold the shares above map to.
pub fn judge(
    reach: Option<Reach>,
    targets_up: Option<f64>,
    threshold: f64,
) -> Option<Availability> {
    let from_callers = reach
        .filter(|r| r.calls >= MIN_CALLS_PER_SECOND && r.calls.is_finite())
        .map(|r| (r.unanswered / r.calls).clamp(0.0, 1.0));
    let from_targets = targets_up
        .filter(|up| up.is_finite())
        .map(|up| if up <= 0.0 { 1.0 } else { 0.0 });
    let unanswered = match (from_callers, from_targets) {
        (None, None) => return None,
        (a, b) => a.unwrap_or(0.0).max(b.unwrap_or(0.0)),
    };
    Some(Availability {
        unanswered,
        score: score(unanswered, threshold),
    })
}

/// Piecewise linear through (0, 0), (the threshold share, `threshold`) and
/// (the full share, 1).
fn score(unanswered: f64, threshold: f64) -> f64 {
    if unanswered <= UNANSWERED_AT_THRESHOLD {
        threshold * unanswered / UNANSWERED_AT_THRESHOLD
    } else {
        let over =
            (unanswered - UNANSWERED_AT_THRESHOLD) / (UNANSWERED_AT_FULL - UNANSWERED_AT_THRESHOLD);
        (threshold + (1.0 - threshold) * over).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(calls: f64, unanswered: f64) -> Option<Reach> {
        Some(Reach { calls, unanswered })
    }

    #[test]
    fn every_call_refused_is_a_full_score() {
        let a = judge(reach(30.0, 30.0), None, 0.7).expect("judged");
        assert_eq!((a.unanswered, a.score), (1.0, 1.0));
    }

    #[test]
    fn a_fifth_of_calls_unanswered_reaches_the_threshold_and_fewer_stay_under() {
        let at = judge(reach(30.0, 6.0), None, 0.7).expect("judged");
        assert!((at.score - 0.7).abs() < 1e-9, "{at:?}");
        let under = judge(reach(30.0, 3.0), None, 0.7).expect("judged");
        assert!(under.score < 0.7, "{under:?}");
        let healthy = judge(reach(30.0, 0.0), Some(1.0), 0.7).expect("judged");
        assert_eq!(healthy.score, 0.0);
    }

    #[test]
    fn every_target_down_is_unavailable_even_without_callers() {
        let a = judge(None, Some(0.0), 0.7).expect("judged");
        assert_eq!(a.score, 1.0);
        // One replica of several still answering its scrapes is not.
        assert_eq!(judge(None, Some(1.0), 0.7).expect("judged").score, 0.0);
    }

    #[test]
    fn a_handful_of_calls_or_no_data_says_nothing() {
        assert_eq!(judge(reach(0.1, 0.1), None, 0.7), None);
        assert_eq!(judge(None, None, 0.7), None);
        assert_eq!(judge(reach(f64::NAN, 1.0), Some(f64::NAN), 0.7), None);
    }
}
