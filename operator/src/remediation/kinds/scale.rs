//! `scale`: more replicas of a workload, through its scale subresource.
//! Only ever up, by `step`, to `maxReplicas`; never a workload a
//! HorizontalPodAutoscaler scales (two writers of one number).

use homeostat_api::{ScaleAction, Target};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::Patch;
use kube::{Api, Client};
use serde_json::json;

use super::{Observed, StepKind};
use crate::remediation::execute::ExecuteError;
use crate::remediation::plan::{Change, Guard, Report, World};
use crate::remediation::state::State;
use crate::remediation::world::GatherError;

impl StepKind for ScaleAction {
    fn targets(&self, services: &[&str]) -> Vec<Target> {
        match &self.target {
            Some(workload) => vec![workload.target()],
            None => services.iter().map(|s| self.workload(s)).collect(),
        }
    }

    fn invalid(&self, services: &[&str], world: &World) -> Option<String> {
        self.targets(services)
            .into_iter()
            .find(|t| !world.states.contains_key(t))
            .map(|missing| format!("scale target {missing} does not exist"))
    }

    fn next(&self, report: &Report, world: &World) -> Option<Change> {
        let target = self.workload(&report.service);
        let State::Replicas(current) = *world.states.get(&target)? else {
            return None;
        };
        // Up only: a workload already above `maxReplicas` (a person scaled
        // it further) is left as it is, never cut down mid-incident.
        let to = current
            .saturating_add(self.step)
            .max(self.min_replicas)
            .min(self.max_replicas);
        (to > current).then_some(Change {
            target,
            before: State::Replicas(current),
            after: State::Replicas(to),
        })
    }

    fn guard(&self, change: &Change, world: &World) -> Option<Guard> {
        world
            .autoscaled
            .contains_key(&change.target)
            .then_some(Guard::Autoscaled)
    }

    fn restores(&self, target: &Target) -> Option<bool> {
        let ours = match &self.target {
            Some(workload) => workload.target() == *target,
            None => matches!(target, Target::Deployment(_)),
        };
        ours.then_some(self.scale_back)
    }
}

/// The workload's replicas and uid (its Scale's), or `None` when it does
/// not exist.
pub async fn read(
    client: &Client,
    namespace: &str,
    target: &Target,
) -> Result<Option<Observed>, GatherError> {
    let scale = match target {
        Target::StatefulSet(name) => {
            Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .get_scale(name)
                .await
        }
        other => {
            Api::<Deployment>::namespaced(client.clone(), namespace)
                .get_scale(other.name())
                .await
        }
    };
    match scale {
        Ok(s) => Ok(Some(Observed {
            state: State::Replicas(s.spec.and_then(|s| s.replicas).unwrap_or(0)),
            uid: s.metadata.uid,
        })),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The JSON Patch that moves a Scale from `from` replicas to `to`, and
/// fails (422) when the Scale no longer has `from`. A Scale's JSON leaves
/// out a count of zero (`"spec": {}`), so from zero the test is of the
/// whole, empty spec.
fn scale_ops(from: i32, to: i32) -> serde_json::Value {
    if from == 0 {
        json!([
            {"op": "test", "path": "/spec", "value": {}},
            {"op": "add", "path": "/spec/replicas", "value": to},
        ])
    } else {
        json!([
            {"op": "test", "path": "/spec/replicas", "value": from},
            {"op": "replace", "path": "/spec/replicas", "value": to},
        ])
    }
}

/// Sets the replicas, with a JSON-Patch `test` of what the change found.
pub async fn write(client: &Client, namespace: &str, change: &Change) -> Result<(), ExecuteError> {
    let (State::Replicas(from), State::Replicas(to)) = (&change.before, &change.after) else {
        return Err(ExecuteError::Mismatch(change.describe()));
    };
    let ops: json_patch::Patch =
        serde_json::from_value(scale_ops(*from, *to)).map_err(kube::Error::SerdeError)?;
    let patch = Patch::<()>::Json(ops);
    let params = crate::writes::patch();
    match &change.target {
        Target::StatefulSet(name) => {
            Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .patch_scale(name, &params, &patch)
                .await?;
        }
        other => {
            Api::<Deployment>::namespaced(client.clone(), namespace)
                .patch_scale(other.name(), &params, &patch)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;

    fn action(fields: serde_json::Value) -> ScaleAction {
        let mut spec = json!({"step": 1, "minReplicas": 1, "maxReplicas": 4});
        json_patch::merge(&mut spec, &fields);
        serde_json::from_value(spec).expect("scale action")
    }

    fn report(service: &str) -> Report {
        crate::remediation::testing::open_report(service, 0)
    }

    fn tax() -> Target {
        Target::Deployment("tax".into())
    }

    fn at(replicas: i32) -> World {
        World {
            states: [(tax(), State::Replicas(replicas))].into(),
            ..World::default()
        }
    }

    fn next(action: &ScaleAction, replicas: i32) -> Option<(i32, i32)> {
        let change = action.next(&report("tax"), &at(replicas))?;
        match (change.before, change.after) {
            (State::Replicas(from), State::Replicas(to)) => Some((from, to)),
            other => panic!("not a scale: {other:?}"),
        }
    }

    #[test]
    fn scales_the_reports_service_by_the_step() {
        assert_eq!(next(&action(json!({})), 2), Some((2, 3)));
        assert_eq!(next(&action(json!({"step": 3})), 2), Some((2, 4)));
        assert_eq!(
            action(json!({}))
                .next(&report("tax"), &at(2))
                .map(|c| c.target),
            Some(tax())
        );
    }

    #[test]
    fn never_above_max_and_never_down() {
        assert_eq!(next(&action(json!({})), 4), None);
        // Above the maximum (a person scaled it further): left alone.
        assert_eq!(next(&action(json!({})), 6), None);
        // From zero, straight to the minimum.
        assert_eq!(next(&action(json!({"minReplicas": 2})), 0), Some((0, 2)));
    }

    /// Applies `scale_ops` to a Scale's spec as the API server stores it.
    fn patched(spec: serde_json::Value, from: i32, to: i32) -> Result<serde_json::Value, String> {
        let mut scale = json!({"spec": spec});
        let ops: json_patch::Patch = serde_json::from_value(scale_ops(from, to)).expect("ops");
        json_patch::patch(&mut scale, &ops).map_err(|e| e.to_string())?;
        Ok(scale["spec"].clone())
    }

    #[test]
    fn every_scale_write_is_conditional_on_what_the_step_found() {
        assert_eq!(
            patched(json!({"replicas": 2}), 2, 3),
            Ok(json!({"replicas": 3}))
        );
        assert!(patched(json!({"replicas": 4}), 2, 3).is_err());
        // From zero too: a person who scaled it up meanwhile wins.
        assert_eq!(patched(json!({}), 0, 2), Ok(json!({"replicas": 2})));
        assert!(patched(json!({"replicas": 1}), 0, 2).is_err());
    }

    #[test]
    fn an_explicit_target_is_the_one_scaled_and_required() {
        let db = action(
            json!({"target": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}}),
        );
        assert_eq!(db.targets(&["tax"]), vec![Target::StatefulSet("db".into())]);
        assert_eq!(
            db.invalid(&["tax"], &at(2)).as_deref(),
            Some("scale target statefulset/db does not exist")
        );
        assert_eq!(db.restores(&tax()), None);
        assert_eq!(db.restores(&Target::StatefulSet("db".into())), Some(true));
    }

    #[test]
    fn a_workload_an_hpa_scales_is_guarded() {
        let change = action(json!({}))
            .next(&report("tax"), &at(2))
            .expect("a step");
        let mut world = at(2);
        assert_eq!(action(json!({})).guard(&change, &world), None);
        world.autoscaled.insert(tax(), "tax-hpa".into());
        assert_eq!(
            action(json!({})).guard(&change, &world),
            Some(Guard::Autoscaled)
        );
    }
}
