//! `reroute`: move traffic weight from the failing backend to a healthy one
//! through a router (the OMS's routing ConfigMap or an HTTPRoute), by
//! `weightStep`, up to `maxWeight`; never towards a backend that is itself
//! anomalous.

use homeostat_api::{RerouteAction, Target};
use kube::Client;

use super::StepKind;
use crate::remediation::execute::ExecuteError;
use crate::remediation::plan::{Change, Guard, Report, World};
use crate::remediation::state::State;
use crate::remediation::world::GatherError;
use crate::router::{TrafficRouter, router_for};

impl StepKind for RerouteAction {
    fn targets(&self, _services: &[&str]) -> Vec<Target> {
        vec![self.router.target()]
    }

    fn invalid(&self, _services: &[&str], world: &World) -> Option<String> {
        let router = self.router.target();
        let Some(State::Weights(weights)) = world.states.get(&router) else {
            return Some(format!("router {router} does not exist"));
        };
        [&self.from, &self.to]
            .into_iter()
            .find(|backend| !weights.contains_key(*backend))
            .map(|backend| format!("backend {backend} is not in router {router}"))
    }

    fn next(&self, report: &Report, world: &World) -> Option<Change> {
        // Traffic moves away from the failing service only.
        if self.from != report.service {
            return None;
        }
        let target = self.router.target();
        let Some(State::Weights(before)) = world.states.get(&target) else {
            return None;
        };
        let from_weight = before.get(&self.from).copied().unwrap_or(0);
        let to_weight = before.get(&self.to).copied().unwrap_or(0);
        let moved = self
            .weight_step
            .min(from_weight)
            .min((self.max_weight - to_weight).max(0));
        if moved <= 0 {
            return None;
        }
        let mut after = before.clone();
        after.insert(self.from.clone(), from_weight - moved);
        after.insert(self.to.clone(), to_weight + moved);
        Some(Change {
            target,
            before: State::Weights(before.clone()),
            after: State::Weights(after),
        })
    }

    fn guard(&self, change: &Change, world: &World) -> Option<Guard> {
        let (State::Weights(before), State::Weights(after)) = (&change.before, &change.after)
        else {
            return None;
        };
        after
            .iter()
            .filter(|(backend, weight)| **weight > before.get(*backend).copied().unwrap_or(0))
            .any(|(backend, _)| world.anomalous.contains(backend))
            .then_some(Guard::TargetAnomalous)
    }

    fn restores(&self, target: &Target) -> Option<bool> {
        (self.router.target() == *target).then_some(self.restore)
    }
}

/// The router's weights, or `None` when it does not exist.
pub async fn read(
    client: &Client,
    namespace: &str,
    target: &Target,
) -> Result<Option<State>, GatherError> {
    let Some(kind) = target.router_kind() else {
        return Ok(None);
    };
    let router = router_for(client.clone(), namespace, kind, target.name());
    Ok(router.weights().await?.map(State::Weights))
}

/// Sets the weights, only if the router still has those the change found.
pub async fn write(client: &Client, namespace: &str, change: &Change) -> Result<(), ExecuteError> {
    let (Some(kind), State::Weights(before), State::Weights(after)) =
        (change.target.router_kind(), &change.before, &change.after)
    else {
        return Err(ExecuteError::Mismatch(change.describe()));
    };
    router_for(client.clone(), namespace, kind, change.target.name())
        .set_weights(before, after)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::remediation::state::Weights;

    fn action(fields: serde_json::Value) -> RerouteAction {
        let mut spec = json!({
            "router": {"kind": "OmsConfigMap", "name": "oms-routing"},
            "from": "payment-primary", "to": "payment-secondary",
            "weightStep": 50, "maxWeight": 100
        });
        json_patch::merge(&mut spec, &fields);
        serde_json::from_value(spec).expect("reroute action")
    }

    fn report(service: &str) -> Report {
        crate::remediation::testing::open_report(service, 0)
    }

    fn routing() -> Target {
        Target::OmsConfigMap("oms-routing".into())
    }

    fn weights(primary: i32, secondary: i32) -> Weights {
        BTreeMap::from([
            ("payment-primary".into(), primary),
            ("payment-secondary".into(), secondary),
        ])
    }

    fn at(primary: i32, secondary: i32) -> World {
        World {
            states: [(routing(), State::Weights(weights(primary, secondary)))].into(),
            ..World::default()
        }
    }

    fn next_weights(action: &RerouteAction, world: &World) -> Option<Weights> {
        match action.next(&report("payment-primary"), world)?.after {
            State::Weights(after) => Some(after),
            other => panic!("not a reroute: {other:?}"),
        }
    }

    #[test]
    fn moves_weight_in_steps_up_to_the_maximum() {
        assert_eq!(
            next_weights(&action(json!({})), &at(100, 0)),
            Some(weights(50, 50))
        );
        assert_eq!(
            next_weights(&action(json!({})), &at(50, 50)),
            Some(weights(0, 100))
        );
        assert_eq!(next_weights(&action(json!({})), &at(0, 100)), None);
        let capped = action(json!({"maxWeight": 30}));
        assert_eq!(next_weights(&capped, &at(100, 0)), Some(weights(70, 30)));
        assert_eq!(next_weights(&capped, &at(70, 30)), None);
    }

    #[test]
    fn only_reports_on_the_failing_backend_move_traffic() {
        assert_eq!(
            action(json!({})).next(&report("payment-secondary"), &at(100, 0)),
            None
        );
    }

    #[test]
    fn never_towards_an_anomalous_backend() {
        let change = action(json!({}))
            .next(&report("payment-primary"), &at(100, 0))
            .expect("a step");
        let mut world = at(100, 0);
        assert_eq!(action(json!({})).guard(&change, &world), None);
        world.anomalous.insert("payment-secondary".into());
        assert_eq!(
            action(json!({})).guard(&change, &world),
            Some(Guard::TargetAnomalous)
        );
    }

    #[test]
    fn a_missing_router_or_backend_makes_the_policy_invalid() {
        assert_eq!(action(json!({})).invalid(&[], &at(100, 0)), None);
        assert_eq!(
            action(json!({})).invalid(&[], &World::default()).as_deref(),
            Some("router omsconfigmap/oms-routing does not exist")
        );
        assert_eq!(
            action(json!({"to": "payment-tertiary"}))
                .invalid(&[], &at(100, 0))
                .as_deref(),
            Some("backend payment-tertiary is not in router omsconfigmap/oms-routing")
        );
        assert_eq!(
            action(json!({"restore": false})).restores(&routing()),
            Some(false)
        );
        assert_eq!(
            action(json!({})).restores(&Target::HttpRoute("oms-routing".into())),
            None
        );
    }
}
