//! What a scale action did on the cluster, from the OMS pods seen during the
//! run: how many were Ready before it, which pods it started, when each
//! became Ready, and how many were Ready once they were; and what a rolling
//! restart replaced. Pure: the cluster stack records the pods, this judges
//! them.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// One OMS pod, as the demo saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRecord {
    pub name: String,
    /// The OMS service it runs.
    pub service: String,
    pub created_at: Timestamp,
    /// When its Ready condition last became true.
    pub ready_at: Option<Timestamp>,
    /// When it was being deleted or was no longer there.
    pub gone_at: Option<Timestamp>,
}

impl PodRecord {
    fn ready_at_moment(&self, at: Timestamp) -> bool {
        self.ready_at.is_some_and(|r| r <= at) && self.gone_at.is_none_or(|g| g > at)
    }
}

/// A pod a scale action started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewPod {
    pub name: String,
    pub created_at: Timestamp,
    pub ready_at: Option<Timestamp>,
    /// When its first request (not a probe or a scrape) was served: the
    /// first scrape that counted one, so up to a scrape interval late.
    pub first_request_at: Option<Timestamp>,
    /// From the scale action to Ready.
    pub ready_seconds: Option<f64>,
    /// From the scale action to the first served request.
    pub first_request_seconds: Option<f64>,
}

/// What one scale action did to its service's pods.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleOutcome {
    /// Ready pods when the action was taken.
    pub ready_before: usize,
    /// Ready pods once every pod it started was Ready (none: none became Ready).
    pub ready_after: Option<usize>,
    pub new_pods: Vec<NewPod>,
}

/// The operator stamps an action to the second: a pod created in the same
/// second (or a second before, by the clocks' rounding) is the action's.
const STAMP_SLACK: SignedDuration = SignedDuration::from_secs(1);

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    let d = to.as_millisecond() - from.as_millisecond();
    (d as f64 / 100.0).round() / 10.0
}

/// The pods of `service` that a scale action at `at` started: created from
/// then until `until` (the restore, or the end of the run).
pub fn scale_outcome(
    pods: &[PodRecord],
    service: &str,
    at: Timestamp,
    until: Timestamp,
) -> ScaleOutcome {
    let of_service = || pods.iter().filter(|p| p.service == service);
    let started_by_action =
        |p: &PodRecord| p.created_at >= at - STAMP_SLACK && p.created_at < until;
    // A pod the action started was not there before it, even when the
    // second-resolution stamps put its Ready in the action's second.
    let ready_before = of_service()
        .filter(|p| !started_by_action(p) && p.ready_at_moment(at))
        .count();
    let started: Vec<&PodRecord> = of_service().filter(|p| started_by_action(p)).collect();
    let all_ready = started
        .iter()
        .map(|p| p.ready_at)
        .collect::<Option<Vec<_>>>()
        .and_then(|times| times.into_iter().max());
    let ready_after =
        all_ready.map(|moment| of_service().filter(|p| p.ready_at_moment(moment)).count());
    let new_pods = started
        .into_iter()
        .map(|p| NewPod {
            name: p.name.clone(),
            created_at: p.created_at,
            ready_at: p.ready_at,
            first_request_at: None,
            ready_seconds: p.ready_at.map(|r| seconds(at, r)),
            first_request_seconds: None,
        })
        .collect();
    ScaleOutcome {
        ready_before,
        ready_after,
        new_pods,
    }
}

/// What a rolling restart did to its service's pods: a quiet run with a
/// restart that replaced nothing would prove nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutOutcome {
    /// Pods Ready at the restart that have gone since.
    pub replaced: usize,
    /// Pods Ready at the restart that were still there at the end.
    pub left: usize,
    /// Pods started since, Ready and still there.
    pub started_ready: usize,
    /// From the restart to the last old pod gone, once none is left.
    pub done_seconds: Option<f64>,
    /// Every old pod replaced by a Ready new one.
    pub done: bool,
}

/// The pods of `service` a rolling restart at `at` replaced, and those that
/// replaced them.
pub fn rollout_outcome(pods: &[PodRecord], service: &str, at: Timestamp) -> RolloutOutcome {
    let started_since = |p: &PodRecord| p.created_at >= at - STAMP_SLACK;
    let of_service: Vec<&PodRecord> = pods.iter().filter(|p| p.service == service).collect();
    let old: Vec<&PodRecord> = of_service
        .iter()
        .filter(|p| !started_since(p) && p.ready_at_moment(at))
        .copied()
        .collect();
    let gone: Vec<Timestamp> = old.iter().filter_map(|p| p.gone_at).collect();
    let (replaced, left) = (gone.len(), old.len() - gone.len());
    let started_ready = of_service
        .iter()
        .filter(|p| started_since(p) && p.ready_at.is_some() && p.gone_at.is_none())
        .count();
    RolloutOutcome {
        replaced,
        left,
        started_ready,
        done_seconds: gone
            .iter()
            .max()
            .filter(|_| left == 0)
            .map(|last| seconds(at, *last)),
        done: replaced > 0 && left == 0 && started_ready >= replaced,
    }
}

impl NewPod {
    pub fn served_first_at(&mut self, first: Timestamp, action_at: Timestamp) {
        self.first_request_at = Some(first);
        self.first_request_seconds = Some(seconds(action_at, first));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("time")
    }

    fn pod(
        name: &str,
        service: &str,
        created: i64,
        ready: Option<i64>,
        gone: Option<i64>,
    ) -> PodRecord {
        PodRecord {
            name: name.into(),
            service: service.into(),
            created_at: t(created),
            ready_at: ready.map(t),
            gone_at: gone.map(t),
        }
    }

    #[test]
    fn a_scale_up_counts_the_pods_before_and_after_and_times_the_new_one() {
        let pods = [
            pod("tax-a", "tax", 0, Some(5), None),
            pod("tax-b", "tax", 0, Some(6), None),
            pod("orders-a", "orders", 0, Some(5), None),
            // Started by the action at 100, Ready 4.5 s later.
            pod("tax-c", "tax", 100, None, None),
        ];
        let mut pods = pods.to_vec();
        pods[3].ready_at = Some(t(104) + SignedDuration::from_millis(500));
        let outcome = scale_outcome(&pods, "tax", t(100), t(300));
        assert_eq!(outcome.ready_before, 2);
        assert_eq!(outcome.ready_after, Some(3));
        assert_eq!(outcome.new_pods.len(), 1);
        assert_eq!(outcome.new_pods[0].name, "tax-c");
        assert_eq!(outcome.new_pods[0].ready_seconds, Some(4.5));
    }

    #[test]
    fn pods_gone_or_not_yet_ready_do_not_count_and_later_pods_are_not_the_actions() {
        let pods = [
            pod("tax-a", "tax", 0, Some(5), Some(90)),
            pod("tax-b", "tax", 0, Some(6), None),
            pod("tax-c", "tax", 99, Some(108), None),
            // After the restore: another action's.
            pod("tax-d", "tax", 310, Some(315), None),
        ];
        let outcome = scale_outcome(&pods, "tax", t(100), t(300));
        assert_eq!(outcome.ready_before, 1);
        assert_eq!(outcome.ready_after, Some(2));
        let names: Vec<&str> = outcome.new_pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["tax-c"]);
    }

    #[test]
    fn a_new_pod_ready_within_the_actions_second_is_not_counted_before_it() {
        // Seen on the cluster: action stamped 23:15:20, new pod created and
        // Ready at 23:15:20 (both to the second).
        let pods = [
            pod("tax-a", "tax", 0, Some(5), None),
            pod("tax-b", "tax", 0, Some(6), None),
            pod("tax-c", "tax", 100, Some(100), None),
        ];
        let outcome = scale_outcome(&pods, "tax", t(100), t(300));
        assert_eq!(outcome.ready_before, 2);
        assert_eq!(outcome.ready_after, Some(3));
        assert_eq!(outcome.new_pods[0].ready_seconds, Some(0.0));
    }

    #[test]
    fn a_rollout_replaces_each_ready_pod_and_times_the_last_one_gone() {
        let pods = [
            pod("tax-a", "tax", 0, Some(5), Some(112)),
            pod("tax-b", "tax", 0, Some(6), Some(121)),
            pod("orders-a", "orders", 0, Some(5), None),
            pod("tax-c", "tax", 100, Some(108), None),
            pod("tax-d", "tax", 112, Some(119), None),
        ];
        let outcome = rollout_outcome(&pods, "tax", t(100));
        assert_eq!(
            outcome,
            RolloutOutcome {
                replaced: 2,
                left: 0,
                started_ready: 2,
                done_seconds: Some(21.0),
                done: true,
            }
        );
    }

    #[test]
    fn a_rollout_that_left_an_old_pod_or_started_nothing_ready_is_not_done() {
        let stuck = [
            pod("tax-a", "tax", 0, Some(5), None),
            pod("tax-c", "tax", 100, None, None),
        ];
        let outcome = rollout_outcome(&stuck, "tax", t(100));
        assert_eq!(
            (outcome.replaced, outcome.left, outcome.started_ready),
            (0, 1, 0)
        );
        assert_eq!(outcome.done_seconds, None);
        assert!(!outcome.done);
        // The old pod went, and its replacement never came up.
        let lost = [pod("tax-a", "tax", 0, Some(5), Some(130))];
        assert!(!rollout_outcome(&lost, "tax", t(100)).done);
    }

    #[test]
    fn a_new_pod_that_never_became_ready_leaves_no_after_count() {
        let pods = [
            pod("tax-a", "tax", 0, Some(5), None),
            pod("tax-b", "tax", 101, None, None),
        ];
        let outcome = scale_outcome(&pods, "tax", t(100), t(300));
        assert_eq!(outcome.ready_after, None);
        let mut new = outcome.new_pods[0].clone();
        assert_eq!(new.ready_seconds, None);
        new.served_first_at(t(112), t(100));
        assert_eq!(new.first_request_seconds, Some(12.0));
    }
}
