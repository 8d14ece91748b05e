//! The API server itself rejects bad homeostat objects with readable messages
//! naming the field: schema bounds and CEL rules from the CRDs, no webhook
//! needed. Misspelt fields are refused under strict field validation, which
//! the shipped examples pass and the operator asks for in its own writes.

use homeostat_api::{AnomalyReport, OrderSystem, RemediationPolicy};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Resource};
use serde::Deserialize;
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

#[tokio::test]
async fn valid_objects_are_stored_with_their_documented_defaults() {
    let (_plane, client) = control_plane_with_crds().await;
    let create = PostParams::default();

    let policies = dynamic_api::<RemediationPolicy>(&client);
    let created = policies
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

    let systems = dynamic_api::<OrderSystem>(&client);
    let created = systems
        .create(
            &create,
            &object(
                "OrderSystem",
                "shop",
                json!({
                    "services": { "tax": {
                        "replicas": 2,
                        "resources": { "requests": { "cpu": "100m", "memory": "64Mi" },
                                       "limits": { "cpu": "1", "memory": "256Mi" } },
                    } },
                    "database": { "inCluster": { "storage": "2Gi", "image": "mirror.local:5000/postgres:16-bookworm" } },
                    "events": { "inCluster": {} },
                }),
            ),
        )
        .await
        .expect("valid OrderSystem accepted");
    assert_eq!(created.data["spec"]["paymentPrimaryWeight"], 100);
    assert_eq!(
        created.data["spec"]["image"],
        homeostat_api::DEFAULT_OMS_IMAGE
    );
    let typed: OrderSystem = serde_json::from_value(serde_json::to_value(&created).expect("json"))
        .expect("typed OrderSystem");
    let limits = typed.spec.services["tax"]
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone());
    assert_eq!(limits.and_then(|l| l.memory).as_deref(), Some("256Mi"));

    let reports = dynamic_api::<AnomalyReport>(&client);
    reports
        .create(&create, &report("orders-p99", "orders"))
        .await
        .expect("report accepted");
    reports
        .patch_status(
            "orders-p99",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": report_status() })),
        )
        .await
        .expect("a consistent status accepted");
}

/// How a refused object is written.
enum Write {
    /// Created as it is (the API server's default, lenient field validation).
    Create(&'static str, Value),
    /// Created with strict field validation, as `kubectl create` and
    /// `kubectl apply` send it.
    StrictCreate(&'static str, Value),
    /// A report created valid, then this status written to it.
    ReportStatus(Value),
}

struct Refused {
    name: &'static str,
    write: Write,
    /// A piece of the API server's message: the field, or the rule's words.
    says: &'static str,
}

fn refused(name: &'static str, write: Write, says: &'static str) -> Refused {
    Refused { name, write, says }
}

fn policy(services: Value, actions: Value, guards: Value) -> Value {
    json!({
        "services": services,
        "trigger": { "signals": ["latency_p99"] },
        "actions": actions,
        "guards": guards,
    })
}

fn report(name: &str, service: &str) -> DynamicObject {
    object(
        "AnomalyReport",
        name,
        json!({ "service": service, "signal": "latency_p99" }),
    )
}

/// A status the detector could have written.
fn report_status() -> Value {
    json!({
        "state": "Open", "score": 0.93, "peakScore": 0.97, "severity": "Critical",
        "observed": 0.8, "baseline": { "lower": 0.01, "centre": 0.05, "upper": 0.12 },
        "openedAt": "2026-12-04T10:00:00Z",
        "culprit": { "service": "tax", "confidence": 0.8, "evidence": ["tax p99 up 16x"] },
    })
}

/// `report_status()` with `changes` merged in (JSON merge patch rules).
fn status_with(changes: Value) -> Value {
    let mut status = report_status();
    json_patch::merge(&mut status, &changes);
    status
}

fn policies_no_sre_means() -> Vec<Refused> {
    let scale = json!([{ "scale": { "maxReplicas": 3 } }]);
    let tax = json!({ "names": ["tax"] });
    let policy_with =
        |scale_fields: Value| policy(tax.clone(), json!([{ "scale": scale_fields }]), json!({}));
    let reroute = |fields: Value| {
        let mut action = json!({
            "router": { "kind": "OmsConfigMap", "name": "oms-routing" },
            "from": "payment-primary", "to": "payment-secondary",
        });
        json_patch::merge(&mut action, &fields);
        policy(
            json!({ "names": ["payment-primary"] }),
            json!([{ "reroute": action }]),
            json!({}),
        )
    };
    let trigger = |fields: Value| {
        let mut spec = policy(tax.clone(), scale.clone(), json!({}));
        json_patch::merge(&mut spec["trigger"], &fields);
        spec
    };
    let guards = |fields: Value| policy(tax.clone(), scale.clone(), fields);
    use Write::{Create, StrictCreate};
    const RP: &str = "RemediationPolicy";
    vec![
        refused(
            "min-above-max",
            Create(
                RP,
                policy_with(json!({ "minReplicas": 5, "maxReplicas": 2 })),
            ),
            "minReplicas must be less than or equal to maxReplicas",
        ),
        refused(
            "zero-max",
            Create(RP, policy_with(json!({ "maxReplicas": 0 }))),
            "spec.actions[0].scale.maxReplicas",
        ),
        refused(
            "zero-step",
            Create(RP, policy_with(json!({ "maxReplicas": 3, "step": 0 }))),
            "spec.actions[0].scale.step",
        ),
        refused(
            "pod-target",
            Create(
                RP,
                policy_with(json!({ "maxReplicas": 3,
                "target": { "apiVersion": "v1", "kind": "Pod", "name": "tax-0" } })),
            ),
            "target must be an apps/v1 Deployment or StatefulSet",
        ),
        refused(
            "weight-150",
            Create(RP, reroute(json!({ "maxWeight": 150 }))),
            "spec.actions[0].reroute.maxWeight",
        ),
        refused(
            "same-backend",
            Create(RP, reroute(json!({ "to": "payment-primary" }))),
            "from and to must name different backends",
        ),
        refused(
            "step-over-max",
            Create(RP, reroute(json!({ "weightStep": 60, "maxWeight": 50 }))),
            "weightStep must not exceed maxWeight",
        ),
        refused(
            "unknown-router",
            Create(RP, reroute(json!({ "router": { "kind": "Istio" } }))),
            "spec.actions[0].reroute.router.kind",
        ),
        refused(
            "reroute-elsewhere",
            Create(
                RP,
                policy(
                    tax.clone(),
                    json!([{ "reroute": {
                "router": { "kind": "OmsConfigMap", "name": "oms-routing" },
                "from": "payment-primary", "to": "payment-secondary" } }]),
                    json!({}),
                ),
            ),
            "reroute.from must be one of services.names",
        ),
        refused(
            "both-actions",
            Create(
                RP,
                policy(
                    tax.clone(),
                    json!([{
                "scale": { "maxReplicas": 3 },
                "reroute": { "router": { "kind": "OmsConfigMap", "name": "r" }, "from": "a", "to": "b" } }]),
                    json!({}),
                ),
            ),
            "each action must set exactly one of scale or reroute",
        ),
        refused(
            "no-actions",
            Create(RP, policy(tax.clone(), json!([]), json!({}))),
            "spec.actions",
        ),
        refused(
            "same-step-twice",
            Create(
                RP,
                policy(
                    tax.clone(),
                    json!([{ "scale": { "maxReplicas": 3 } }, { "scale": { "maxReplicas": 3 } }]),
                    json!({}),
                ),
            ),
            "actions must not repeat",
        ),
        refused(
            "no-services",
            Create(RP, policy(json!({}), scale.clone(), json!({}))),
            "services must set names or selector",
        ),
        refused(
            "empty-name",
            Create(
                RP,
                policy(json!({ "names": [""] }), scale.clone(), json!({})),
            ),
            "spec.services.names[0]",
        ),
        refused(
            "bad-name",
            Create(
                RP,
                policy(
                    json!({ "names": ["Tax Service"] }),
                    scale.clone(),
                    json!({}),
                ),
            ),
            "spec.services.names[0]",
        ),
        refused(
            "twice-named",
            Create(
                RP,
                policy(json!({ "names": ["tax", "tax"] }), scale.clone(), json!({})),
            ),
            "Duplicate value",
        ),
        refused(
            "select-all",
            Create(
                RP,
                policy(json!({ "selector": {} }), scale.clone(), json!({})),
            ),
            "an empty selector selects every Deployment",
        ),
        refused(
            "bad-operator",
            Create(
                RP,
                policy(
                    json!({ "selector": { "matchExpressions": [
                { "key": "tier", "operator": "Like", "values": ["web"] }] } }),
                    scale.clone(),
                    json!({}),
                ),
            ),
            "operator must be In, NotIn, Exists or DoesNotExist",
        ),
        refused(
            "no-signals",
            Create(RP, trigger(json!({ "signals": [] }))),
            "spec.trigger.signals",
        ),
        refused(
            "bad-signal",
            Create(RP, trigger(json!({ "signals": ["latency_p42"] }))),
            "latency_p42",
        ),
        refused(
            "score-above-one",
            Create(RP, trigger(json!({ "minScore": 1.5 }))),
            "spec.trigger.minScore",
        ),
        refused(
            "bad-severity",
            Create(RP, trigger(json!({ "minSeverity": "Fatal" }))),
            "spec.trigger.minSeverity",
        ),
        refused(
            "bad-hold",
            Create(RP, trigger(json!({ "for": "soon" }))),
            "spec.trigger.for",
        ),
        refused(
            "approval-timeout-without-approval",
            Create(
                RP,
                policy(
                    tax.clone(),
                    json!([{ "scale": { "maxReplicas": 3 }, "approvalTimeout": "5m" }]),
                    json!({}),
                ),
            ),
            "approvalTimeout is for an action with requireApproval: true",
        ),
        refused(
            "approval-timeout-of-a-second",
            Create(
                RP,
                policy(
                    tax.clone(),
                    json!([{ "scale": { "maxReplicas": 3 }, "requireApproval": true, "approvalTimeout": "1s" }]),
                    json!({}),
                ),
            ),
            "approvalTimeout must be at least 10s",
        ),
        refused(
            "no-cooldown",
            Create(RP, guards(json!({ "cooldown": "0s" }))),
            "guards.cooldown must be at least 1s",
        ),
        refused(
            "half-second-cooldown",
            Create(RP, guards(json!({ "cooldown": "500ms" }))),
            "guards.cooldown must be at least 1s",
        ),
        refused(
            "words-cooldown",
            Create(RP, guards(json!({ "cooldown": "5 minutes" }))),
            "spec.guards.cooldown",
        ),
        refused(
            "huge-cooldown",
            Create(RP, guards(json!({ "cooldown": "99999999999h" }))),
            "spec.guards.cooldown",
        ),
        refused(
            "no-actions-per-hour",
            Create(RP, guards(json!({ "maxActionsPerHour": 0 }))),
            "spec.guards.maxActionsPerHour",
        ),
        // A safety field in the wrong place would be dropped by a lenient
        // write and the policy would act for real: strict validation refuses it.
        refused(
            "misspelt-dry-run",
            StrictCreate(RP, guards(json!({ "dryrun": true }))),
            "unknown field \"spec.guards.dryrun\"",
        ),
        refused(
            "dry-run-misplaced",
            StrictCreate(RP, {
                let mut spec = policy(tax.clone(), scale.clone(), json!({}));
                spec["dryRun"] = json!(true);
                spec
            }),
            "unknown field \"spec.dryRun\"",
        ),
    ]
}

fn order_systems_no_sre_means() -> Vec<Refused> {
    let tax = |overrides: Value| json!({ "services": { "tax": overrides } });
    let resources = |resources: Value| tax(json!({ "resources": resources }));
    use Write::{Create, StrictCreate};
    const OS: &str = "OrderSystem";
    vec![
        refused(
            "unknown-service",
            Create(OS, json!({ "services": { "payments": { "replicas": 2 } } })),
            "services keys must be OMS service names",
        ),
        refused(
            "negative-replicas",
            Create(OS, tax(json!({ "replicas": -1 }))),
            "spec.services.tax.replicas",
        ),
        refused(
            "replicas-101",
            Create(OS, tax(json!({ "replicas": 101 }))),
            "spec.services.tax.replicas",
        ),
        refused(
            "no-workers",
            Create(
                OS,
                tax(json!({ "capacity": { "workers": 0, "serviceTimeMs": 100 } })),
            ),
            "spec.services.tax.capacity.workers",
        ),
        refused(
            "image-with-space",
            Create(OS, json!({ "image": "oms sample:1" })),
            "spec.image",
        ),
        refused(
            "image-in-capitals",
            Create(OS, json!({ "image": "Homeostat/OMS:1" })),
            "spec.image",
        ),
        refused(
            "empty-image",
            Create(OS, json!({ "image": "" })),
            "spec.image",
        ),
        refused(
            "bad-digest",
            Create(OS, json!({ "image": "oms@sha256:xyz" })),
            "spec.image",
        ),
        refused(
            "bad-server-image",
            Create(
                OS,
                json!({ "database": { "inCluster": { "image": "postgres 16" } } }),
            ),
            "spec.database.inCluster.image",
        ),
        refused(
            "bad-pull-policy",
            Create(OS, json!({ "imagePullPolicy": "Sometimes" })),
            "spec.imagePullPolicy",
        ),
        refused(
            "cpu-in-words",
            Create(OS, resources(json!({ "limits": { "cpu": "lots" } }))),
            "spec.services.tax.resources.limits.cpu",
        ),
        refused(
            "memory-with-space",
            Create(OS, resources(json!({ "requests": { "memory": "1 GB" } }))),
            "spec.services.tax.resources.requests.memory",
        ),
        refused(
            "requests-above-limits",
            Create(
                OS,
                resources(json!({
                "requests": { "memory": "512Mi" }, "limits": { "memory": "256Mi" } })),
            ),
            "resources.requests.memory must not exceed resources.limits.memory",
        ),
        refused(
            "cpu-requests-above-limits",
            Create(
                OS,
                resources(json!({
                "requests": { "cpu": "2" }, "limits": { "cpu": "500m" } })),
            ),
            "resources.requests.cpu must not exceed resources.limits.cpu",
        ),
        refused(
            "gpu",
            StrictCreate(
                OS,
                resources(json!({ "limits": { "nvidia.com/gpu": "1" } })),
            ),
            "nvidia.com/gpu",
        ),
        refused(
            "weight-101",
            Create(OS, json!({ "paymentPrimaryWeight": 101 })),
            "spec.paymentPrimaryWeight",
        ),
        refused(
            "no-load",
            Create(OS, json!({ "loadGenerator": { "ordersPerSecond": 0 } })),
            "spec.loadGenerator.ordersPerSecond",
        ),
        refused(
            "mix-over-100",
            Create(
                OS,
                json!({ "loadGenerator":
                { "newOrderPercent": 90, "lookupPercent": 20, "returnPercent": 0 } }),
            ),
            "must equal 100",
        ),
        refused(
            "db-both",
            Create(
                OS,
                json!({ "database": { "urlSecret": { "name": "db" }, "inCluster": {} } }),
            ),
            "database takes one of urlSecret",
        ),
        refused(
            "db-neither",
            Create(OS, json!({ "database": { "poolSize": 4 } })),
            "database takes one of urlSecret",
        ),
        refused(
            "no-pool",
            Create(
                OS,
                json!({ "database": { "urlSecret": { "name": "db" }, "poolSize": 0 } }),
            ),
            "spec.database.poolSize",
        ),
        refused(
            "bad-secret-name",
            Create(
                OS,
                json!({ "database": { "urlSecret": { "name": "DB_Secret" } } }),
            ),
            "spec.database.urlSecret.name",
        ),
        refused(
            "nats-both",
            Create(
                OS,
                json!({ "events": { "natsUrlSecret": { "name": "nats" }, "inCluster": {} } }),
            ),
            "events takes one of natsUrlSecret",
        ),
        refused(
            "storage-in-words",
            Create(
                OS,
                json!({ "database": { "inCluster": { "storage": "lots" } } }),
            ),
            "spec.database.inCluster.storage",
        ),
    ]
}

fn reports_no_detector_writes() -> Vec<Refused> {
    use Write::{Create, ReportStatus};
    const AR: &str = "AnomalyReport";
    vec![
        refused(
            "no-service",
            Create(AR, json!({ "service": "", "signal": "latency_p99" })),
            "spec.service",
        ),
        refused(
            "service-in-words",
            Create(
                AR,
                json!({ "service": "Tax Service", "signal": "latency_p99" }),
            ),
            "spec.service",
        ),
        refused(
            "unknown-signal",
            Create(AR, json!({ "service": "tax", "signal": "latency_p42" })),
            "spec.signal",
        ),
        refused(
            "score-above-one",
            ReportStatus(status_with(json!({ "score": 1.5, "peakScore": 1.5 }))),
            "status.score",
        ),
        refused(
            "peak-below-score",
            ReportStatus(status_with(json!({ "score": 0.9, "peakScore": 0.5 }))),
            "status.peakScore must be at least status.score",
        ),
        refused(
            "unknown-state",
            ReportStatus(status_with(json!({ "state": "Exploded" }))),
            "status.state",
        ),
        refused(
            "band-upside-down",
            ReportStatus(status_with(
                json!({ "baseline": { "lower": 0.5, "upper": 0.1 } }),
            )),
            "baseline.lower must not be above baseline.upper",
        ),
        refused(
            "resolved-while-open",
            ReportStatus(status_with(json!({ "resolvedAt": "2026-12-04T10:05:00Z" }))),
            "status.resolvedAt is set only on a Resolved report",
        ),
        refused(
            "resolved-before-opened",
            ReportStatus(status_with(json!({
                "state": "Resolved", "resolvedAt": "2026-12-04T09:00:00Z" }))),
            "status.resolvedAt must not be before status.openedAt",
        ),
        refused(
            "sure-twice-over",
            ReportStatus(status_with(json!({ "culprit": { "confidence": 2.0 } }))),
            "status.culprit.confidence",
        ),
        refused(
            "culprit-in-words",
            ReportStatus(status_with(
                json!({ "culprit": { "service": "Payment Primary" } }),
            )),
            "status.culprit.service",
        ),
        refused(
            "negative-replicas",
            ReportStatus(status_with(json!({ "actions": [{
                "id": "a1", "policy": "p", "kind": "scale", "target": "deployment/tax 2→3",
                "before": { "replicas": -1 }, "after": { "replicas": 3 },
                "plannedAt": "2026-12-04T10:01:00Z" }] }))),
            "status.actions[0].before.replicas",
        ),
        refused(
            "weight-150",
            ReportStatus(status_with(json!({ "actions": [{
                "id": "a1", "policy": "p", "kind": "reroute", "target": "omsconfigmap/oms-routing",
                "after": { "weights": [{ "backend": "payment-secondary", "weight": 150 }] },
                "plannedAt": "2026-12-04T10:01:00Z" }] }))),
            "status.actions[0].after.weights[0].weight",
        ),
        refused(
            "unknown-action-kind",
            ReportStatus(status_with(json!({ "actions": [{
                "id": "a1", "policy": "p", "kind": "restart", "target": "deployment/tax",
                "plannedAt": "2026-12-04T10:01:00Z" }] }))),
            "status.actions[0].kind",
        ),
    ]
}

/// Writes one refused object; the API server's message.
async fn write_refused(client: &kube::Client, case: &Refused) -> String {
    let api = |kind: &str| match kind {
        "RemediationPolicy" => dynamic_api::<RemediationPolicy>(client),
        "OrderSystem" => dynamic_api::<OrderSystem>(client),
        _ => dynamic_api::<AnomalyReport>(client),
    };
    let what = case.name.to_owned();
    match &case.write {
        Write::Create(kind, spec) => api_error_message(
            api(kind)
                .create(
                    &PostParams::default(),
                    &object(kind, case.name, spec.clone()),
                )
                .await,
            &what,
        ),
        Write::StrictCreate(kind, spec) => {
            let gvk = GroupVersionKind::gvk(homeostat_api::GROUP, homeostat_api::VERSION, kind);
            let plural = ApiResource::from_gvk(&gvk).plural;
            let request = http::Request::post(format!(
                "/apis/homeostat.dev/v1alpha1/namespaces/default/{plural}?fieldValidation=Strict"
            ))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&object(kind, case.name, spec.clone())).expect("json"))
            .expect("request");
            api_error_message(client.request::<DynamicObject>(request).await, &what)
        }
        Write::ReportStatus(status) => {
            let reports = api("AnomalyReport");
            let name = format!("status-{}", case.name);
            reports
                .create(&PostParams::default(), &report(&name, "orders"))
                .await
                .unwrap_or_else(|e| panic!("{what}: create the report: {e}"));
            api_error_message(
                reports
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "status": status })),
                    )
                    .await,
                &what,
            )
        }
    }
}

#[tokio::test]
async fn objects_no_sre_means_are_refused_with_a_message_naming_the_field() {
    let (_plane, client) = control_plane_with_crds().await;
    let cases: Vec<Refused> = [
        policies_no_sre_means(),
        order_systems_no_sre_means(),
        reports_no_detector_writes(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        cases.len() >= 40,
        "the table covers {} objects",
        cases.len()
    );

    let mut wrong = Vec::new();
    for case in &cases {
        let message = write_refused(&client, case).await;
        if !message.contains(case.says) {
            wrong.push(format!(
                "{}: expected {:?} in {message:?}",
                case.name, case.says
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Nothing refused was stored, and a status refused left the report's
    // status unwritten.
    for (kind, api) in [
        (
            "RemediationPolicy",
            dynamic_api::<RemediationPolicy>(&client),
        ),
        ("OrderSystem", dynamic_api::<OrderSystem>(&client)),
    ] {
        let stored = api.list(&Default::default()).await.expect("list");
        assert!(
            stored.items.is_empty(),
            "{kind}s stored: {:?}",
            stored.items
        );
    }
    let reports = dynamic_api::<AnomalyReport>(&client)
        .list(&Default::default())
        .await
        .expect("list reports");
    for stored in reports.items {
        assert!(
            stored.data.get("status").is_none(),
            "{:?} has a status written: {:?}",
            stored.metadata.name,
            stored.data["status"]
        );
    }
}

#[tokio::test]
async fn a_report_spec_is_immutable() {
    let (_plane, client) = control_plane_with_crds().await;
    let reports = dynamic_api::<AnomalyReport>(&client);
    reports
        .create(&PostParams::default(), &report("orders-p99", "orders"))
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

/// Every homeostat object in the shipped samples and the demo's policies,
/// as `kubectl apply` sends it (strict field validation, here as a dry run).
#[tokio::test]
async fn the_shipped_examples_pass_strict_field_validation() {
    let (_plane, client) = control_plane_with_crds().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["deploy/samples", "tests/scenarios/policies"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("examples directory") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER)
        .validation_strict()
        .dry_run();
    let mut applied = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read example");
        for document in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).expect("YAML document");
            let is_homeostat = value["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("homeostat.dev/"));
            if !is_homeostat {
                continue;
            }
            let mut example: DynamicObject =
                serde_json::from_value(value).expect("a Kubernetes object");
            example.metadata.namespace = None;
            let kind = example
                .types
                .as_ref()
                .map(|t| t.kind.clone())
                .unwrap_or_default();
            let api = match kind.as_str() {
                "RemediationPolicy" => dynamic_api::<RemediationPolicy>(&client),
                "OrderSystem" => dynamic_api::<OrderSystem>(&client),
                other => panic!("{}: unexpected kind {other}", path.display()),
            };
            let name = example.metadata.name.clone().expect("example name");
            api.patch(&name, &params, &Patch::Apply(&example))
                .await
                .unwrap_or_else(|e| panic!("{} {kind}/{name}: {e}", path.display()));
            applied.push(format!("{kind}/{name}"));
        }
    }
    assert!(
        applied.iter().any(|a| a.starts_with("OrderSystem/"))
            && applied.iter().any(|a| a.starts_with("RemediationPolicy/")),
        "examples found: {applied:?}"
    );
}
