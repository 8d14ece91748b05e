//! Objects the operator cannot decode — stored under an older, looser
//! schema — are marked Invalid with the field that failed, and never stop
//! the handling of the others (a typed list or watch fails whole on them):
//! policies and OrderSystems it owns, and the Silences and reports a
//! policy reads.

use crate::common::*;
use homeostat_api::{AnomalyReport, OrderSystem, RemediationPolicy, Silence};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use serde_json::json;

/// The real CRDs back, as an upgrade would put them.
async fn restore_crds(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in homeostat_api::all_crds() {
        let name = crd.metadata.name.clone().expect("name");
        let mut current = api.get(&name).await.expect("CRD");
        current.spec = crd.spec;
        current.metadata.managed_fields = None;
        api.replace(&name, &PostParams::default(), &current)
            .await
            .expect("restore the CRD");
    }
}

/// Creates `object` once the API server takes it (a schema change is
/// served a moment after it is stored).
async fn create_raw<K: kube::Resource<DynamicType = ()>>(
    client: &kube::Client,
    ns: &str,
    object: serde_json::Value,
) {
    let api = homeostat_operator::decode::raw_api::<K>(client, Some(ns));
    let object: DynamicObject = serde_json::from_value(object).expect("object");
    eventually("the loose schema served", 30, || async {
        api.create(&PostParams::default(), &object)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
}

/// The note of the Undecodable Event about `name`, once there is one.
async fn undecodable_event(client: &kube::Client, ns: &str, name: &str) -> String {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("an Undecodable Event about {name}"),
        60,
        || async {
            events
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .find(|e| e.reason.as_deref() == Some("Undecodable"))
                .and_then(|e| e.note)
                .ok_or_else(|| "none yet".to_owned())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_the_operator_cannot_read_are_marked_invalid_and_stop_nothing() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;

    // Written while the schema let anything through.
    loosen(&client, "remediationpolicies.homeostat.dev").await;
    loosen(&client, "ordersystems.homeostat.dev").await;
    create_raw::<RemediationPolicy>(
        &client,
        ns,
        json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "RemediationPolicy",
            "metadata": {"name": "unreadable"},
            "spec": {
                "services": {"names": ["tax"]},
                "trigger": {"signals": ["latency_p99"]},
                "actions": [{"scale": {"maxReplicas": 3}}],
                "guards": {"cooldown": "99999999999h"}
            }
        }),
    )
    .await;
    create_raw::<OrderSystem>(
        &client,
        ns,
        json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "OrderSystem",
            "metadata": {"name": "unreadable-system"},
            "spec": {"services": {"tax": {"replicas": "two"}}}
        }),
    )
    .await;
    // A Silence and a report no version of homeostat could read: lists
    // of them are decoded one by one too, so neither holds up the policy.
    loosen(&client, "silences.homeostat.dev").await;
    loosen(&client, "anomalyreports.homeostat.dev").await;
    create_raw::<Silence>(
        &client,
        ns,
        json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "Silence",
            "metadata": {"name": "unreadable-silence"},
            "spec": {"services": "tax", "until": "tomorrow"}
        }),
    )
    .await;
    create_raw::<AnomalyReport>(
        &client,
        ns,
        json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
            "metadata": {"name": "unreadable-report"},
            "spec": {"service": "tax", "signal": "a feeling"}
        }),
    )
    .await;
    restore_crds(&client).await;

    policy(
        &client,
        ns,
        "scale-tax",
        json!({
            "services": {"names": ["tax"]},
            "trigger": {"signals": ["latency_p99"], "minScore": 0.8},
            "actions": [{"scale": {"step": 1, "minReplicas": 1, "maxReplicas": 2}}],
            "guards": {"cooldown": "1s"},
            "stableFor": "2s"
        }),
    )
    .await;
    let _operator = Operator::start(&plane, "a", &[]);
    let _report = open_report(&client, ns, "tax").await;

    // The readable policy acts, past the unreadable Silence and report ...
    wait_replicas(&client, ns, "tax", 2).await;
    // ... and each unreadable object is marked with the field that failed.
    let policy = undecodable_event(&client, ns, "unreadable").await;
    assert!(policy.contains("spec.guards.cooldown"), "{policy}");
    let system = undecodable_event(&client, ns, "unreadable-system").await;
    assert!(system.contains("spec.services.tax.replicas"), "{system}");
    // Where the API server takes its status (the policy also fails today's
    // CEL rules, so it cannot), the object says so itself.
    let systems = homeostat_operator::decode::raw_api::<OrderSystem>(&client, Some(ns));
    eventually("the OrderSystem's own Invalid condition", 30, || async {
        let raw = systems
            .get("unreadable-system")
            .await
            .map_err(|e| e.to_string())?;
        let conditions = raw.data["status"]["conditions"].as_array().cloned();
        let marked = conditions.iter().flatten().any(|c| {
            c["type"] == "Invalid" && c["status"] == "True" && c["reason"] == "Undecodable"
        });
        if marked {
            Ok(())
        } else {
            Err(format!("{}", raw.data["status"]))
        }
    })
    .await;
    // Marking it changed nothing of the spec.
    let raw = homeostat_operator::decode::raw_api::<RemediationPolicy>(&client, Some(ns))
        .get("unreadable")
        .await
        .expect("policy");
    assert_eq!(raw.data["spec"]["guards"]["cooldown"], "99999999999h");
}
