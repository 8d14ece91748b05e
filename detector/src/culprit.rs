//! Culprit localisation: when several services degrade at once, which one is
//! at fault?
//!
//! The call graph comes from client metrics: the latency each caller sees on
//! its calls to each callee. A service whose degradation is matched by slower
//! calls to a callee that is itself degraded is a *symptom* of that callee; the
//! services left over are culprits. Blame follows chains (orders → payment →
//! a slow database) to their end, and a cycle of blame goes to whichever
//! service degraded first. Independent faults give independent culprits.
//!
//! A caller held back by one callee also changes what its other callees
//! see: the requests queued behind the slow one go on together when it
//! answers, and its siblings slow down under the bursts, though nothing
//! they call is slow. On the one-node cluster a tax surge took fulfillment's,
//! inventory's or payment's p99 up 5–50 times, 4–12 s after tax's, in
//! three runs of three (the saga calls tax before them). So a degraded
//! callee whose caller's calls slowed on a sibling first, at most
//! [`SIBLING_WINDOW_SECONDS`] before, is that sibling's symptom.

use std::collections::{BTreeMap, BTreeSet};

use homeostat_api::Signal;

/// One degraded service, by its strongest signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Symptom {
    pub service: String,
    pub signal: Signal,
    pub score: f64,
    /// The value and its baseline expectation, in the signal's units.
    pub observed: f64,
    pub expected: f64,
    /// Unix seconds when its score first crossed the threshold.
    pub since: i64,
    /// Its error ratio is over the threshold too (whatever its strongest
    /// signal): callers retry or fail its calls, so they slow down even
    /// though each call to it is quick.
    pub failing: bool,
}

/// What a caller sees of a callee: client-side latency against its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEdge {
    pub caller: String,
    pub callee: String,
    pub score: f64,
    pub observed: f64,
    pub expected: f64,
}

/// A culprit, with the symptoms it explains and the reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct Localised {
    pub culprit: Symptom,
    /// Services degraded because of it, in the order they were explained.
    pub explains: Vec<String>,
    /// For a person, strongest first.
    pub evidence: Vec<String>,
    pub confidence: f64,
}

/// How long after a caller's calls slow on one callee another callee of the
/// same caller may degrade and still be the first one's symptom: the
/// cluster saw 4–12 s; an independent fault of a sibling later than this
/// is its own culprit.
pub const SIBLING_WINDOW_SECONDS: i64 = 30;

/// Names the culprits among `symptoms` (one per service) using `edges`; an
/// edge counts as slowed when its score is at least `edge_threshold`.
pub fn localise(symptoms: &[Symptom], edges: &[CallEdge], edge_threshold: f64) -> Vec<Localised> {
    let by_service: BTreeMap<&str, &Symptom> =
        symptoms.iter().map(|s| (s.service.as_str(), s)).collect();
    let failing = |service: &str| by_service.get(service).is_some_and(|s| s.failing);
    let slowed: Vec<&CallEdge> = edges
        .iter()
        .filter(|e| e.caller != e.callee)
        .filter(|e| e.score >= edge_threshold || failing(e.callee.as_str()))
        .collect();

    // caller → degraded callees it blames.
    let mut blames: BTreeMap<&str, Vec<&CallEdge>> = BTreeMap::new();
    for edge in &slowed {
        let (Some(caller), Some(callee)) = (
            by_service.get(edge.caller.as_str()),
            by_service.get(edge.callee.as_str()),
        ) else {
            continue;
        };
        // In a cycle the one that degraded later is the symptom.
        let reverse = slowed
            .iter()
            .any(|r| r.caller == edge.callee && r.callee == edge.caller);
        let caller_first = (caller.since, std::cmp::Reverse(ordered(caller.ratio())))
            < (callee.since, std::cmp::Reverse(ordered(callee.ratio())));
        if reverse && caller_first {
            continue;
        }
        blames
            .entry(caller.service.as_str())
            .or_default()
            .push(edge);
    }

    // callee → (the sibling it came after, their common caller).
    let mut after_sibling: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for (caller, edges) in &blames {
        let callees: Vec<&Symptom> = edges
            .iter()
            .filter_map(|e| by_service.get(e.callee.as_str()).copied())
            .collect();
        let Some(first) = callees.iter().min_by_key(|s| (s.since, &s.service)) else {
            continue;
        };
        for later in &callees {
            let gap = later.since - first.since;
            if gap > 0
                && gap <= SIBLING_WINDOW_SECONDS
                && !blames.contains_key(later.service.as_str())
                && !reaches(
                    &blames,
                    &BTreeMap::new(),
                    &first.service,
                    &later.service,
                    &mut BTreeSet::new(),
                )
            {
                after_sibling
                    .entry(later.service.as_str())
                    .or_insert((first.service.as_str(), caller));
            }
        }
    }

    let mut culprits: Vec<&Symptom> = symptoms
        .iter()
        .filter(|s| !blames.contains_key(s.service.as_str()))
        .filter(|s| !after_sibling.contains_key(s.service.as_str()))
        .collect();
    culprits.sort_by(|a, b| (a.since, &a.service).cmp(&(b.since, &b.service)));

    culprits
        .into_iter()
        .map(|culprit| {
            let mut evidence = vec![match culprit.signal {
                Signal::Availability => format!(
                    "{} does not answer: {:.0}% of calls to it unanswered or every scrape target down, since {}",
                    culprit.service,
                    culprit.observed * 100.0,
                    clock(culprit.since)
                ),
                // A backlog reads in its own units: a ratio to an empty
                // one says nothing.
                Signal::ConsumerLag => format!(
                    "{}: its consumer is {:.0} events behind (normally {:.0}), since {}",
                    culprit.service,
                    culprit.observed,
                    culprit.expected,
                    clock(culprit.since)
                ),
                Signal::OutboxAge => format!(
                    "{}: its oldest unpublished event has waited {:.1} s (normally {:.1} s), since {}",
                    culprit.service,
                    culprit.observed,
                    culprit.expected,
                    clock(culprit.since)
                ),
                _ => format!(
                    "{} {} {} since {}",
                    culprit.service,
                    culprit.signal,
                    change(culprit.observed, culprit.expected),
                    clock(culprit.since)
                ),
            }];
            let mut explains = Vec::new();
            for (service, (sibling, caller)) in &after_sibling {
                if !reaches(
                    &blames,
                    &after_sibling,
                    service,
                    &culprit.service,
                    &mut BTreeSet::new(),
                ) {
                    continue;
                }
                let symptom = by_service[service];
                evidence.push(format!(
                    "{} {} {}: it slowed {} s after {}, another callee of {}, whose requests held back by {} reach it together",
                    symptom.service,
                    symptom.signal,
                    change(symptom.observed, symptom.expected),
                    symptom.since - by_service[sibling].since,
                    sibling,
                    caller,
                    sibling,
                ));
                explains.push(service.to_string());
            }
            for (service, edges) in &blames {
                if *service == culprit.service
                    || !reaches(
                        &blames,
                        &after_sibling,
                        service,
                        &culprit.service,
                        &mut BTreeSet::new(),
                    )
                {
                    continue;
                }
                let symptom = by_service[service];
                let direct = edges.iter().find(|e| e.callee == culprit.service);
                evidence.push(match direct {
                    Some(_) if culprit.failing => format!(
                        "{} {} {}: its calls to {} fail and are retried or given up",
                        symptom.service,
                        symptom.signal,
                        change(symptom.observed, symptom.expected),
                        culprit.service,
                    ),
                    Some(edge) => format!(
                        "{} {} {}: its calls to {} account for the increase ({})",
                        symptom.service,
                        symptom.signal,
                        change(symptom.observed, symptom.expected),
                        culprit.service,
                        change(edge.observed, edge.expected)
                    ),
                    None => format!(
                        "{} {} {}: it waits on services that wait on {}",
                        symptom.service,
                        symptom.signal,
                        change(symptom.observed, symptom.expected),
                        culprit.service
                    ),
                });
                explains.push(service.to_string());
            }
            // Slower calls to a callee whose own serving is normal point at
            // the path between them, not at either end.
            let unexplained: Vec<&&CallEdge> = slowed
                .iter()
                .filter(|e| {
                    e.caller == culprit.service && !by_service.contains_key(e.callee.as_str())
                })
                .collect();
            for edge in &unexplained {
                evidence.push(format!(
                    "its calls to {} are {} while {} itself serves normally",
                    edge.callee,
                    change(edge.observed, edge.expected),
                    edge.callee
                ));
            }
            let confidence = if unexplained.is_empty() { 0.9 } else { 0.6 };
            evidence.truncate(16);
            Localised {
                culprit: culprit.clone(),
                explains,
                evidence,
                confidence,
            }
        })
        .collect()
}

/// Whether blame from `from` leads to `to`, through slowed calls and
/// `after_sibling` (a callee to the sibling it came after).
fn reaches<'a>(
    blames: &BTreeMap<&'a str, Vec<&'a CallEdge>>,
    after_sibling: &BTreeMap<&'a str, (&'a str, &'a str)>,
    from: &'a str,
    to: &str,
    seen: &mut BTreeSet<&'a str>,
) -> bool {
    if !seen.insert(from) {
        return false;
    }
    let next = blames
        .get(from)
        .into_iter()
        .flatten()
        .map(|e| e.callee.as_str())
        .chain(after_sibling.get(from).map(|(sibling, _)| *sibling));
    next.collect::<Vec<_>>()
        .into_iter()
        .any(|n| n == to || reaches(blames, after_sibling, n, to, seen))
}

impl Symptom {
    /// observed / expected, or infinity when nothing was expected.
    pub fn ratio(&self) -> f64 {
        if self.expected > 0.0 {
            self.observed / self.expected
        } else if self.observed > 0.0 {
            f64::INFINITY
        } else {
            1.0
        }
    }
}

/// `up 6.0x`, `down to 0.40x`, or, where the baseline is 0 (no errors
/// expected), `at 0.300 (normally 0)`.
pub fn change(observed: f64, expected: f64) -> String {
    if expected > 0.0 && expected.is_finite() && observed.is_finite() {
        let ratio = observed / expected;
        if ratio >= 1.0 {
            format!("up {ratio:.1}x")
        } else {
            format!("down to {ratio:.2}x")
        }
    } else {
        format!("at {observed:.3} (normally {expected:.3})")
    }
}

/// Total order for ratios (NaN last).
fn ordered(x: f64) -> i64 {
    if x.is_finite() {
        (x * 1e6) as i64
    } else {
        i64::MIN
    }
}

/// `HH:MM:SS UTC` of a unix time.
pub fn clock(unix_seconds: i64) -> String {
    jiff::Timestamp::from_second(unix_seconds)
        .map(|t| t.strftime("%H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| unix_seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symptom(service: &str, ratio: f64, since: i64) -> Symptom {
        Symptom {
            service: service.into(),
            signal: Signal::LatencyP99,
            score: 0.95,
            observed: 0.01 * ratio,
            expected: 0.01,
            since,
            failing: false,
        }
    }

    fn edge(caller: &str, callee: &str, score: f64, ratio: f64) -> CallEdge {
        CallEdge {
            caller: caller.into(),
            callee: callee.into(),
            score,
            observed: 0.02 * ratio,
            expected: 0.02,
        }
    }

    fn names(found: &[Localised]) -> Vec<&str> {
        found.iter().map(|l| l.culprit.service.as_str()).collect()
    }

    #[test]
    fn a_downstream_fault_blames_the_callee_not_its_callers() {
        let symptoms = [
            symptom("orders", 6.0, 43_205),
            symptom("payment-primary", 8.0, 43_203),
        ];
        let edges = [
            edge("orders", "payment-primary", 0.97, 7.5),
            edge("orders", "tax", 0.0, 1.0),
        ];
        let found = localise(&symptoms, &edges, 0.7);
        assert_eq!(names(&found), ["payment-primary"]);
        assert_eq!(found[0].explains, ["orders"]);
        assert_eq!(
            found[0].evidence[0],
            "payment-primary latency_p99 up 8.0x since 12:00:03 UTC"
        );
        assert!(
            found[0].evidence[1].contains("its calls to payment-primary account for the increase")
        );
    }

    #[test]
    fn an_upstream_fault_stays_with_the_caller() {
        // orders is slow but its calls are not: the fault is in orders.
        let symptoms = [symptom("orders", 5.0, 100)];
        let edges = [
            edge("orders", "payment-primary", 0.05, 1.02),
            edge("orders", "inventory", 0.01, 0.98),
        ];
        let found = localise(&symptoms, &edges, 0.7);
        assert_eq!(names(&found), ["orders"]);
        assert!(found[0].explains.is_empty());
        assert_eq!(found[0].confidence, 0.9);
    }

    #[test]
    fn two_independent_faults_give_two_culprits_in_start_order() {
        let symptoms = [
            symptom("orders", 4.0, 110),
            symptom("tax", 3.0, 105),
            symptom("notifications", 9.0, 100),
        ];
        // orders is explained by tax; notifications is nobody's callee here.
        let edges = [edge("orders", "tax", 0.9, 3.1)];
        let found = localise(&symptoms, &edges, 0.7);
        assert_eq!(names(&found), ["notifications", "tax"]);
        assert_eq!(found[1].explains, ["orders"]);
    }

    #[test]
    fn a_callee_slowing_soon_after_its_sibling_is_that_siblings_symptom_and_later_its_own() {
        // The tax surge on the cluster: orders' calls slow on tax first,
        // then fulfillment's p99 rises though nothing it calls is slow.
        let symptoms = [
            symptom("orders", 20.0, 103),
            symptom("tax", 8.7, 100),
            symptom("fulfillment", 5.9, 112),
        ];
        let edges = [
            edge("orders", "tax", 0.99, 9.0),
            edge("orders", "fulfillment", 0.9, 5.0),
            edge("fulfillment", "inventory", 0.1, 1.1),
        ];
        let found = localise(&symptoms, &edges, 0.7);
        assert_eq!(names(&found), ["tax"]);
        let mut explained = found[0].explains.clone();
        explained.sort();
        assert_eq!(explained, ["fulfillment", "orders"]);
        assert!(
            found[0].evidence.iter().any(|e| e
                == "fulfillment latency_p99 up 5.9x: it slowed 12 s after tax, another callee of orders, whose requests held back by tax reach it together"),
            "{:?}",
            found[0].evidence
        );

        // Degrading well after tax (beyond the window): its own.
        let late = [
            symptom("orders", 20.0, 103),
            symptom("tax", 8.7, 100),
            symptom("fulfillment", 5.9, 100 + SIBLING_WINDOW_SECONDS + 1),
        ];
        assert_eq!(names(&localise(&late, &edges, 0.7)), ["tax", "fulfillment"]);
        // The first of the two to slow is the one named.
        let first = [
            symptom("orders", 20.0, 103),
            symptom("tax", 8.7, 100),
            symptom("fulfillment", 5.9, 99),
        ];
        let found = localise(&first, &edges, 0.7);
        assert_eq!(names(&found), ["fulfillment"]);
        assert!(found[0].explains.contains(&"tax".to_owned()));
        // A sibling whose caller's calls to it did not slow is no symptom
        // of the caller's other callee.
        let quiet = [
            edge("orders", "tax", 0.99, 9.0),
            edge("orders", "fulfillment", 0.2, 1.1),
        ];
        let found = localise(&symptoms, &quiet, 0.7);
        assert_eq!(names(&found), ["tax", "fulfillment"]);
    }

    #[test]
    fn blame_follows_a_chain_to_its_end() {
        let symptoms = [
            symptom("orders", 3.0, 102),
            symptom("returns", 3.0, 101),
            symptom("payment-primary", 3.0, 100),
        ];
        let edges = [
            edge("orders", "returns", 0.9, 3.0),
            edge("returns", "payment-primary", 0.9, 3.0),
        ];
        let found = localise(&symptoms, &edges, 0.7);
        assert_eq!(names(&found), ["payment-primary"]);
        assert_eq!(found[0].explains, ["orders", "returns"]);
    }

    #[test]
    fn a_cycle_of_blame_goes_to_the_first_to_degrade() {
        let symptoms = [symptom("orders", 3.0, 100), symptom("returns", 3.0, 95)];
        let edges = [
            edge("orders", "returns", 0.9, 3.0),
            edge("returns", "orders", 0.9, 3.0),
        ];
        assert_eq!(names(&localise(&symptoms, &edges, 0.7)), ["returns"]);
    }

    #[test]
    fn changes_read_as_factors_or_as_values_when_nothing_was_expected() {
        assert_eq!(change(0.06, 0.01), "up 6.0x");
        assert_eq!(change(4.0, 10.0), "down to 0.40x");
        assert_eq!(change(0.3, 0.0), "at 0.300 (normally 0.000)");
        let errors = Symptom {
            observed: 0.3,
            expected: 0.0,
            ..symptom("inventory", 1.0, 0)
        };
        assert_eq!(errors.ratio(), f64::INFINITY);
    }

    #[test]
    fn callers_of_a_failing_service_are_its_symptoms_though_their_calls_are_quick() {
        let inventory = Symptom {
            signal: Signal::ErrorRatio,
            observed: 0.3,
            expected: 0.0,
            failing: true,
            ..symptom("inventory", 1.0, 102)
        };
        // fulfillment and returns slowed by retries crossed first; each call
        // to inventory is as quick as ever (its 503s are fast).
        let symptoms = [
            symptom("fulfillment", 100.0, 100),
            symptom("returns", 30.0, 100),
            inventory,
        ];
        let edges = [
            edge("fulfillment", "inventory", 0.0, 1.0),
            edge("returns", "inventory", 0.1, 1.0),
        ];
        let found = localise(&symptoms, &edges, 0.7);
        assert_eq!(names(&found), ["inventory"]);
        assert_eq!(found[0].explains, ["fulfillment", "returns"]);
        assert!(
            found[0].evidence[1].contains("its calls to inventory fail"),
            "{:?}",
            found[0].evidence
        );
    }

    #[test]
    fn slower_calls_to_a_healthy_callee_lower_confidence() {
        let symptoms = [symptom("orders", 3.0, 100)];
        let edges = [edge("orders", "inventory", 0.9, 3.0)];
        let found = localise(&symptoms, &edges, 0.7);
        assert_eq!(names(&found), ["orders"]);
        assert_eq!(found[0].confidence, 0.6);
        assert!(found[0].evidence[1].contains("inventory itself serves normally"));
    }
}
