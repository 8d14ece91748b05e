//! Shared onsets: services slowing down together that no chain of slowed
//! calls connects point at something they share that the call graph does
//! not show (the node they run on, the database they all write to), not
//! at each of them. On the one-node cluster a pod starting or a backlog
//! draining into PostgreSQL took fulfillment's, inventory's and payment's
//! p99 up together for one rate window; each was reported, none was at
//! fault. Fulfillment calls inventory, but its calls had not slowed: a
//! call connects two services only when it explains one by the other.
//!
//! Rules:
//! 1. A candidate is a service whose strongest signal is a latency over
//!    the threshold and whose deviation has not opened yet; its onset is
//!    when that deviation began.
//! 2. Two candidates share an onset when their onsets are at most
//!    [`ONSET_WINDOW_SECONDS`] apart and no chain of slowed calls (the
//!    localisation's edge threshold), either way, leads from one to the
//!    other: a caller slowed by its callee is the culprit localisation's
//!    business, not this.
//! 3. The engine holds a shared deviation as long as one without news: a
//!    stall of the node passes, a lasting problem still opens.

use std::collections::{BTreeMap, BTreeSet};

/// Onsets at most this far apart began together: two ticks of the
/// demo's detector, the spread the cluster saw (fulfillment two seconds
/// before inventory and payment).
pub const ONSET_WINDOW_SECONDS: i64 = 10;

/// The candidates (service and onset, in Unix seconds) that share an onset
/// with another (rules 1 and 2); `calls` are the caller → callee pairs whose
/// calls have slowed.
pub fn shared_onsets(candidates: &[(String, i64)], calls: &[(String, String)]) -> BTreeSet<String> {
    let graph = CallGraph::new(calls);
    let mut shared = BTreeSet::new();
    for (i, (a, a_onset)) in candidates.iter().enumerate() {
        for (b, b_onset) in &candidates[i + 1..] {
            if (a_onset - b_onset).abs() <= ONSET_WINDOW_SECONDS && !graph.connects(a, b) {
                shared.insert(a.clone());
                shared.insert(b.clone());
            }
        }
    }
    shared
}

/// Who calls whom, directly.
struct CallGraph<'a> {
    callees: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> CallGraph<'a> {
    fn new(calls: &'a [(String, String)]) -> Self {
        let mut callees: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (caller, callee) in calls {
            callees.entry(caller).or_default().push(callee);
        }
        Self { callees }
    }

    /// Whether a chain of calls leads from `a` to `b` or from `b` to `a`.
    fn connects(&self, a: &str, b: &str) -> bool {
        self.reaches(a, b) || self.reaches(b, a)
    }

    fn reaches(&self, from: &str, to: &str) -> bool {
        let mut seen = BTreeSet::from([from]);
        let mut next = vec![from];
        while let Some(service) = next.pop() {
            for &callee in self.callees.get(service).into_iter().flatten() {
                if callee == to {
                    return true;
                }
                if seen.insert(callee) {
                    next.push(callee);
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    fn onsets(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(s, t)| ((*s).to_owned(), *t)).collect()
    }

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    const OMS: &[(&str, &str)] = &[
        ("orders", "tax"),
        ("orders", "inventory"),
        ("orders", "payment"),
        ("payment", "ledger"),
        ("orders", "fulfillment"),
    ];

    #[test]
    fn siblings_slowing_together_share_an_onset() {
        let shared = shared_onsets(
            &onsets(&[("fulfillment", 100), ("inventory", 102), ("payment", 102)]),
            &calls(OMS),
        );
        assert_eq!(names(&shared), ["fulfillment", "inventory", "payment"]);
    }

    #[test]
    fn a_caller_and_its_callee_slowing_together_do_not_directly_or_through_another() {
        let direct = shared_onsets(&onsets(&[("orders", 100), ("payment", 100)]), &calls(OMS));
        assert!(direct.is_empty(), "{direct:?}");
        let chained = shared_onsets(&onsets(&[("orders", 100), ("ledger", 100)]), &calls(OMS));
        assert!(chained.is_empty(), "{chained:?}");
    }

    #[test]
    fn onsets_further_apart_than_the_window_are_independent() {
        let shared = shared_onsets(
            &onsets(&[("tax", 100), ("inventory", 100 + ONSET_WINDOW_SECONDS + 1)]),
            &calls(OMS),
        );
        assert!(shared.is_empty(), "{shared:?}");
    }

    #[test]
    fn one_candidate_alone_shares_nothing() {
        let shared = shared_onsets(&onsets(&[("tax", 100)]), &calls(OMS));
        assert!(shared.is_empty());
    }

    #[test]
    fn only_the_services_that_began_together_are_shared() {
        let shared = shared_onsets(
            &onsets(&[("tax", 40), ("inventory", 100), ("fulfillment", 104)]),
            &calls(OMS),
        );
        assert_eq!(names(&shared), ["fulfillment", "inventory"]);
    }
}
