//! What a target holds: a workload's replicas or a router's weights. One
//! type for both, so finishing, noticing someone else's change and restoring
//! are written once, whatever the kind of step.

use std::collections::BTreeMap;

use homeostat_api::{ActiveRemediation, BackendWeight, ChangedState, PendingChange};

/// A router's backends and their weights (percent).
pub type Weights = BTreeMap<String, i32>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Replicas(i32),
    /// Only the backends a step sets: a router's other backends are not ours.
    Weights(Weights),
}

impl State {
    /// Whether `now` is as this state says: the same replicas, or each
    /// listed backend at its weight (a backend missing counts as 0).
    pub fn holds_in(&self, now: &State) -> bool {
        match (self, now) {
            (State::Replicas(ours), State::Replicas(now)) => ours == now,
            (State::Weights(ours), State::Weights(now)) => ours
                .iter()
                .all(|(backend, weight)| now.get(backend).copied().unwrap_or(0) == *weight),
            _ => false,
        }
    }

    /// For a person: `3`, or `payment-primary=100, payment-secondary=0`.
    pub fn text(&self) -> String {
        match self {
            State::Replicas(n) => n.to_string(),
            State::Weights(weights) => weights
                .iter()
                .map(|(backend, weight)| format!("{backend}={weight}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// As the API records it: replicas, or a list of weights.
    pub fn recorded(&self) -> ChangedState {
        match self {
            State::Replicas(n) => ChangedState {
                replicas: Some(*n),
                weights: vec![],
            },
            State::Weights(weights) => ChangedState {
                replicas: None,
                weights: weights
                    .iter()
                    .map(|(backend, weight)| BackendWeight {
                        backend: backend.clone(),
                        weight: *weight,
                    })
                    .collect(),
            },
        }
    }

    /// From what the API recorded; `None` when nothing was.
    pub fn from_recorded(replicas: Option<i32>, weights: &[BackendWeight]) -> Option<State> {
        match replicas {
            Some(n) => Some(State::Replicas(n)),
            None if weights.is_empty() => None,
            None => Some(State::Weights(
                weights
                    .iter()
                    .map(|w| (w.backend.clone(), w.weight))
                    .collect(),
            )),
        }
    }

    /// What a change in force found before its first step.
    pub fn original(active: &ActiveRemediation) -> Option<State> {
        State::from_recorded(active.original_replicas, &active.original_weights)
    }

    /// What the last step done there set.
    pub fn applied(active: &ActiveRemediation) -> Option<State> {
        State::from_recorded(active.applied_replicas, &active.applied_weights)
    }

    /// What a step recorded as pending sets.
    pub fn pending(pending: &PendingChange) -> Option<State> {
        State::from_recorded(pending.replicas, &pending.weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(pairs: &[(&str, i32)]) -> State {
        State::Weights(pairs.iter().map(|(b, w)| ((*b).to_owned(), *w)).collect())
    }

    #[test]
    fn weights_hold_when_every_listed_backend_has_its_weight() {
        let ours = weights(&[("a", 50), ("b", 50)]);
        assert!(ours.holds_in(&weights(&[("a", 50), ("b", 50), ("c", 0)])));
        assert!(!ours.holds_in(&weights(&[("a", 100), ("b", 0)])));
        // A backend gone from the router counts as weight 0.
        assert!(weights(&[("a", 100), ("b", 0)]).holds_in(&weights(&[("a", 100)])));
        assert!(!State::Replicas(3).holds_in(&ours));
        assert!(State::Replicas(3).holds_in(&State::Replicas(3)));
    }

    #[test]
    fn round_trips_through_what_the_api_records() {
        for state in [State::Replicas(0), weights(&[("a", 30), ("b", 70)])] {
            let recorded = state.recorded();
            assert_eq!(
                State::from_recorded(recorded.replicas, &recorded.weights),
                Some(state.clone())
            );
        }
        assert_eq!(State::from_recorded(None, &[]), None);
        assert_eq!(weights(&[("a", 30), ("b", 70)]).text(), "a=30, b=70");
    }
}
