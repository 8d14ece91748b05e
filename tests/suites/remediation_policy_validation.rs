//! The API server itself rejects bad homeostat objects with readable messages:
//! schema bounds and CEL rules from the CRDs, no webhook needed.

use homeostat_api::{AnomalyReport, OrderSystem, RemediationPolicy};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Resource};
use serde_json::{Value, json};

use crate::common::{FIELD_MANAGER, api_error_message, control_plane_with_crds};

fn dynamic_api<K: Resource<DynamicType = ()>>(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(&K::group(&()), &K::version(&()), &K::kind(&()));
    Api::default_namespaced_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1",
        "kind": kind,
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("object")
}

fn scale_policy(name: &str, scale: Value) -> DynamicObject {
    object(
        "RemediationPolicy",
        name,
        json!({
            "services": { "names": ["tax"] },
            "trigger": { "signals": ["latency_p99"] },
            "actions": [{ "scale": scale }],
        }),
    )
}

fn reroute_policy(name: &str, reroute: Value) -> DynamicObject {
    object(
        "RemediationPolicy",
        name,
        json!({
            "services": { "names": ["payment-primary"] },
            "trigger": { "signals": ["latency_p99"] },
            "actions": [{ "reroute": reroute }],
        }),
    )
}

#[tokio::test]
async fn policies_are_validated_by_schema_and_cel_rules() {
    let (_plane, client) = control_plane_with_crds().await;
    let api = dynamic_api::<RemediationPolicy>(&client);
    let create = PostParams::default();

    // A minimal valid policy is accepted and the server fills in the documented defaults.
    let created = api
        .create(
            &create,
            &scale_policy("tax-scale", json!({ "maxReplicas": 4 })),
        )
        .await
        .expect("valid policy accepted");
    let spec = &created.data["spec"];
    assert_eq!(spec["guards"]["cooldown"], "1m");
    assert_eq!(spec["guards"]["maxActionsPerHour"], 6);
    assert_eq!(spec["guards"]["dryRun"], false);
    assert_eq!(spec["trigger"]["minScore"], 0.9);
    assert_eq!(spec["trigger"]["for"], "0s");
    assert_eq!(spec["actions"][0]["scale"]["step"], 1);
    assert_eq!(spec["actions"][0]["scale"]["minReplicas"], 1);
    assert_eq!(spec["stableFor"], "1m");
    // And it reads back as the typed resource the operator uses.
    let typed: RemediationPolicy =
        serde_json::from_value(serde_json::to_value(&created).expect("json"))
            .expect("typed policy");
    assert_eq!(
        typed.spec.actions[0].scale.as_ref().map(|s| s.max_replicas),
        Some(4)
    );

    let message = api_error_message(
        api.create(
            &create,
            &scale_policy(
                "min-above-max",
                json!({ "minReplicas": 5, "maxReplicas": 2 }),
            ),
        )
        .await,
        "minReplicas above maxReplicas",
    );
    assert!(
        message.contains("minReplicas must be less than or equal to maxReplicas"),
        "{message}"
    );

    let message = api_error_message(
        api.create(
            &create,
            &reroute_policy(
                "weight-150",
                json!({
                    "router": { "kind": "OmsConfigMap", "name": "oms-routing" },
                    "from": "payment-primary", "to": "payment-secondary", "maxWeight": 150
                }),
            ),
        )
        .await,
        "maxWeight 150",
    );
    assert!(message.contains("maxWeight"), "{message}");
    assert!(message.contains("less than or equal to 100"), "{message}");

    let message = api_error_message(
        api.create(
            &create,
            &reroute_policy(
                "same-backend",
                json!({
                    "router": { "kind": "HTTPRoute", "name": "payments" },
                    "from": "payment-primary", "to": "payment-primary"
                }),
            ),
        )
        .await,
        "from == to",
    );
    assert!(
        message.contains("from and to must name different backends"),
        "{message}"
    );

    let both = object(
        "RemediationPolicy",
        "both-actions",
        json!({
            "services": { "names": ["tax"] },
            "trigger": { "signals": ["latency_p99"] },
            "actions": [{
                "scale": { "maxReplicas": 3 },
                "reroute": { "router": { "kind": "OmsConfigMap", "name": "r" }, "from": "a", "to": "b" }
            }],
        }),
    );
    let message = api_error_message(
        api.create(&create, &both).await,
        "scale and reroute in one action",
    );
    assert!(
        message.contains("each action must set exactly one of scale or reroute"),
        "{message}"
    );

    let no_services = object(
        "RemediationPolicy",
        "no-services",
        json!({
            "services": {},
            "trigger": { "signals": ["latency_p99"] },
            "actions": [{ "scale": { "maxReplicas": 3 } }],
        }),
    );
    let message = api_error_message(api.create(&create, &no_services).await, "empty services");
    assert!(
        message.contains("services must set names or selector"),
        "{message}"
    );

    let mut bad_duration = scale_policy("bad-cooldown", json!({ "maxReplicas": 3 }));
    bad_duration.data["spec"]["guards"] = json!({ "cooldown": "5 minutes" });
    let message = api_error_message(
        api.create(&create, &bad_duration).await,
        "malformed duration",
    );
    assert!(message.contains("spec.guards.cooldown"), "{message}");
    // Objects no SRE means, each refused with a message naming the field.
    let policy = |services: Value, actions: Value, guards: Value| {
        json!({
            "services": services,
            "trigger": { "signals": ["latency_p99"] },
            "actions": actions,
            "guards": guards,
        })
    };
    let scale = json!([{ "scale": { "maxReplicas": 3 } }]);
    let tax = json!({ "names": ["tax"] });
    for (name, spec, expected) in [
        (
            "empty-name",
            policy(json!({ "names": [""] }), scale.clone(), json!({})),
            "spec.services.names[0]",
        ),
        (
            "bad-name",
            policy(
                json!({ "names": ["Tax Service"] }),
                scale.clone(),
                json!({}),
            ),
            "spec.services.names[0]",
        ),
        (
            "twice-named",
            policy(json!({ "names": ["tax", "tax"] }), scale.clone(), json!({})),
            "Duplicate value",
        ),
        (
            "select-all",
            policy(json!({ "selector": {} }), scale.clone(), json!({})),
            "an empty selector selects every Deployment",
        ),
        (
            "bad-operator",
            policy(
                json!({ "selector": { "matchExpressions": [{ "key": "tier", "operator": "Like", "values": ["web"] }] } }),
                scale.clone(),
                json!({}),
            ),
            "operator must be In, NotIn, Exists or DoesNotExist",
        ),
        (
            "pod-target",
            policy(
                tax.clone(),
                json!([{ "scale": { "maxReplicas": 3, "target": { "apiVersion": "v1", "kind": "Pod", "name": "tax-0" } } }]),
                json!({}),
            ),
            "target must be an apps/v1 Deployment or StatefulSet",
        ),
        (
            "no-cooldown",
            policy(tax.clone(), scale.clone(), json!({ "cooldown": "0s" })),
            "guards.cooldown must be at least 1s",
        ),
        (
            "half-second-cooldown",
            policy(tax.clone(), scale.clone(), json!({ "cooldown": "500ms" })),
            "guards.cooldown must be at least 1s",
        ),
        (
            "same-step-twice",
            policy(
                tax.clone(),
                json!([{ "scale": { "maxReplicas": 3 } }, { "scale": { "maxReplicas": 3 } }]),
                json!({}),
            ),
            "actions must not repeat",
        ),
        (
            "reroute-elsewhere",
            policy(
                tax.clone(),
                json!([{ "reroute": {
                    "router": { "kind": "OmsConfigMap", "name": "oms-routing" },
                    "from": "payment-primary", "to": "payment-secondary"
                } }]),
                json!({}),
            ),
            "reroute.from must be one of services.names",
        ),
    ] {
        let message = api_error_message(
            api.create(&create, &object("RemediationPolicy", name, spec))
                .await,
            name,
        );
        assert!(message.contains(expected), "{name}: {message}");
    }

    // A number too large to be a duration the operator can hold.
    let mut huge = scale_policy("huge-cooldown", json!({ "maxReplicas": 3 }));
    huge.data["spec"]["guards"] = json!({ "cooldown": "99999999999h" });
    let message = api_error_message(api.create(&create, &huge).await, "huge duration");
    assert!(message.contains("spec.guards.cooldown"), "{message}");

    let mut bad_signal = scale_policy("bad-signal", json!({ "maxReplicas": 3 }));
    bad_signal.data["spec"]["trigger"]["signals"] = json!(["latency_p42"]);
    let message = api_error_message(api.create(&create, &bad_signal).await, "unknown signal");
    assert!(message.contains("latency_p42"), "{message}");

    // Only the valid policy was stored.
    let names: Vec<String> = api
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(names, vec!["tax-scale".to_owned()]);
}

#[tokio::test]
async fn order_systems_and_reports_are_validated() {
    let (_plane, client) = control_plane_with_crds().await;
    let create = PostParams::default();

    let systems = dynamic_api::<OrderSystem>(&client);
    let created = systems
        .create(
            &create,
            &object(
                "OrderSystem",
                "shop",
                json!({ "services": { "tax": { "replicas": 2 } } }),
            ),
        )
        .await
        .expect("valid OrderSystem accepted");
    assert_eq!(created.data["spec"]["paymentPrimaryWeight"], 100);
    assert_eq!(
        created.data["spec"]["image"],
        homeostat_api::DEFAULT_OMS_IMAGE
    );

    let message = api_error_message(
        systems
            .create(
                &create,
                &object(
                    "OrderSystem",
                    "typo",
                    json!({ "services": { "payments": { "replicas": 2 } } }),
                ),
            )
            .await,
        "unknown service name",
    );
    assert!(
        message.contains("services keys must be OMS service names"),
        "{message}"
    );

    let message = api_error_message(
        systems
            .create(
                &create,
                &object(
                    "OrderSystem",
                    "bad-mix",
                    json!({ "loadGenerator": { "newOrderPercent": 90, "lookupPercent": 20, "returnPercent": 0 } }),
                ),
            )
            .await,
        "load mix over 100%",
    );
    assert!(message.contains("must equal 100"), "{message}");

    // A database or broker is either named or run by the operator, not both
    // nor neither.
    for (name, spec, expected) in [
        (
            "db-both",
            json!({ "database": { "urlSecret": { "name": "db" }, "inCluster": {} } }),
            "database takes one of urlSecret",
        ),
        (
            "db-neither",
            json!({ "database": { "poolSize": 4 } }),
            "database takes one of urlSecret",
        ),
        (
            "nats-both",
            json!({ "events": { "natsUrlSecret": { "name": "nats" }, "inCluster": {} } }),
            "events takes one of natsUrlSecret",
        ),
        (
            "bad-storage",
            json!({ "database": { "inCluster": { "storage": "lots" } } }),
            "storage",
        ),
    ] {
        let message = api_error_message(
            systems
                .create(&create, &object("OrderSystem", name, spec))
                .await,
            name,
        );
        assert!(message.contains(expected), "{name}: {message}");
    }
    systems
        .create(
            &create,
            &object(
                "OrderSystem",
                "in-cluster",
                json!({ "database": { "inCluster": { "storage": "2Gi" } }, "events": { "inCluster": {} } }),
            ),
        )
        .await
        .expect("in-cluster servers accepted");

    // A report's identity is immutable once written.
    let reports = dynamic_api::<AnomalyReport>(&client);
    reports
        .create(
            &create,
            &object(
                "AnomalyReport",
                "orders-p99",
                json!({ "service": "orders", "signal": "latency_p99" }),
            ),
        )
        .await
        .expect("report accepted");
    let change = json!({
        "apiVersion": "homeostat.dev/v1alpha1",
        "kind": "AnomalyReport",
        "spec": { "service": "tax", "signal": "latency_p99" },
    });
    let message = api_error_message(
        reports
            .patch(
                "orders-p99",
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&change),
            )
            .await,
        "changed report spec",
    );
    assert!(message.contains("spec is immutable"), "{message}");
}
