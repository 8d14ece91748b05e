//! What an OrderSystem becomes, as plain objects: pure, no I/O.
//!
//! Field ownership (so the two controllers never fight): the OrderSystem
//! controller applies every field of its children with server-side apply as
//! `homeostat-order-system`, except
//! - `spec.replicas` of a Deployment that a RemediationPolicy holds (an active
//!   scale remediation): applied as the Deployment has it now until the policy
//!   restores it. Leaving the field out instead would delete it while this
//!   manager still owns it, and the Deployment would fall back to 1 replica.
//!   Every existing Deployment is applied on condition that it is unchanged
//!   since read (resourceVersion): a remediation records its hold before it
//!   scales, so a scale that lands after our read makes the apply conflict
//!   and the next pass sees the hold, instead of undoing the scale;
//! - the routing ConfigMap's weights: written once at creation (the initial
//!   `paymentPrimaryWeight`), then owned by reroute remediations.

use std::collections::BTreeMap;

use homeostat_api::oms::{OMS_SERVICES, handles_events, keeps_state};
use homeostat_api::routing::{payment_routing, render_routing_data};
use homeostat_api::{ImagePullPolicy, OrderSystem, SecretKey};
use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::backing::{self, Backing};
use super::pod_security;

pub const FIELD_MANAGER: &str = "homeostat-order-system";
/// The routing ConfigMap `orders` follows and reroute policies change.
pub const ROUTING_CONFIGMAP: &str = "oms-routing";
/// Port every OMS service listens on in its container.
pub const PORT: i32 = 8080;
/// How long a deleted OMS pod keeps serving before it is told to stop.
/// Its removal from the Service's endpoints and the node's forwarding rules
/// races the stop: a pod that stopped listening at once refused the calls
/// still sent to it meanwhile, and its callers retried them (seen in a
/// rolling restart of tax: orders' p99 from 130 to 550 ms, a false report).
pub const PRE_STOP_SLEEP_SECONDS: i64 = 5;
/// How long an OMS pod finishes the requests in flight once told to stop
/// (`--shutdown-grace-ms`).
pub const DRAIN_SECONDS: i64 = 25;
/// The pod's termination grace: the sleep, the drain and a margin before
/// the kubelet kills it.
pub const TERMINATION_GRACE_SECONDS: i64 = PRE_STOP_SLEEP_SECONDS + DRAIN_SECONDS + 5;

/// One object to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub name: String,
    pub body: Value,
    /// Created when missing, never updated (its content belongs to others after creation).
    pub create_only: bool,
}

/// The label every child carries: the operator's watches select by it.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "homeostat-operator");

/// [`MANAGED_BY`] as a label selector.
pub(super) fn managed_by_selector() -> String {
    format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

pub(super) fn labels(system: &str, component: &str) -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", component),
        ("app.kubernetes.io/part-of", "oms"),
        ("app.kubernetes.io/instance", system),
        MANAGED_BY,
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A service's Deployment as read before applying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDeployment {
    pub replicas: i32,
    pub resource_version: String,
    /// An active scale remediation, or an HPA, holds its replica count.
    pub held: bool,
}

/// The Secret whose key `token` every service takes its admin token from
/// (`/admin/faults`): one per OrderSystem, made once by the operator.
pub fn admin_secret(os: &OrderSystem) -> SecretKey {
    SecretKey {
        name: format!("{}-oms-admin", os.name_any()),
        key: "token".to_owned(),
    }
}

/// The objects of `os`. `live` are the Deployments that exist, by service;
/// `admin_token` goes into the admin Secret when it is first created.
pub fn render(
    os: &OrderSystem,
    live: &BTreeMap<String, LiveDeployment>,
    admin_token: &str,
) -> Vec<Child> {
    let name = os.name_any();
    let namespace = os.namespace().unwrap_or_default();
    let owner = os
        .controller_owner_ref(&())
        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
    let meta = |object: &str, component: &str| {
        let mut m =
            json!({"name": object, "namespace": namespace, "labels": labels(&name, component)});
        if let Some(owner) = &owner {
            m["ownerReferences"] = json!([owner]);
        }
        m
    };
    let account = format!("{name}-oms");
    let admin = admin_secret(os);
    let mut children = vec![
        Child {
            api_version: "v1",
            kind: "ServiceAccount",
            plural: "serviceaccounts",
            name: account.clone(),
            body: json!({"metadata": meta(&account, "oms")}),
            create_only: false,
        },
        Child {
            api_version: "rbac.authorization.k8s.io/v1",
            kind: "Role",
            plural: "roles",
            name: account.clone(),
            body: json!({
                "metadata": meta(&account, "oms"),
                // orders follows the routing ConfigMap, nothing more.
                "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                           "resourceNames": [ROUTING_CONFIGMAP], "verbs": ["get", "list", "watch"]}]
            }),
            create_only: false,
        },
        Child {
            api_version: "rbac.authorization.k8s.io/v1",
            kind: "RoleBinding",
            plural: "rolebindings",
            name: account.clone(),
            body: json!({
                "metadata": meta(&account, "oms"),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
            }),
            create_only: false,
        },
        Child {
            api_version: "v1",
            kind: "Secret",
            plural: "secrets",
            name: admin.name.clone(),
            body: json!({
                "metadata": meta(&admin.name, "oms"),
                "stringData": {(admin.key.as_str()): admin_token},
            }),
            // Made once; drills read it, nothing rewrites it.
            create_only: true,
        },
        Child {
            api_version: "v1",
            kind: "ConfigMap",
            plural: "configmaps",
            name: ROUTING_CONFIGMAP.to_owned(),
            body: json!({
                "metadata": meta(ROUTING_CONFIGMAP, "oms"),
                "data": render_routing_data(&payment_routing(os.spec.payment_primary_weight.clamp(0, 100) as u32)),
            }),
            create_only: true,
        },
    ];
    let pull_policy = os.spec.image_pull_policy.map(|p| match p {
        ImagePullPolicy::Always => "Always",
        ImagePullPolicy::IfNotPresent => "IfNotPresent",
        ImagePullPolicy::Never => "Never",
    });
    let database_url = backing::url_secret(os, Backing::Postgres);
    let nats_url = backing::url_secret(os, Backing::Nats);
    for service in OMS_SERVICES {
        let overrides = os.spec.services.get(service).cloned().unwrap_or_default();
        let mut args = vec![
            service.to_owned(),
            "--listen".into(),
            format!("0.0.0.0:{PORT}"),
            "--peers".into(),
            format!("http://{{service}}:{PORT}"),
            format!("--shutdown-grace-ms={}", DRAIN_SECONDS * 1000),
        ];
        if service == "orders" {
            args.push("--routing-configmap".into());
            args.push(format!("{namespace}/{ROUTING_CONFIGMAP}"));
        }
        if let Some(capacity) = &overrides.capacity {
            args.push(format!("--workers={}", capacity.workers));
            args.push(format!("--service-time-ms={}", capacity.service_time_ms));
        }
        let mut container = json!({
            "name": service,
            "image": os.spec.image,
            "args": args,
            "ports": [{"name": "http", "containerPort": PORT}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
            "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
        });
        if let Some(policy) = pull_policy {
            container["imagePullPolicy"] = json!(policy);
        }
        let mut env = vec![from_secret("OMS_ADMIN_TOKEN", &admin)];
        if let Some(secret) = database_url.as_ref().filter(|_| keeps_state(service)) {
            env.push(from_secret("OMS_DATABASE_URL", secret));
            if let Some(size) = os.spec.database.as_ref().and_then(|d| d.pool_size) {
                env.push(json!({"name": "OMS_DB_POOL_SIZE", "value": size.to_string()}));
            }
        }
        if let Some(secret) = nats_url.as_ref().filter(|_| handles_events(service)) {
            env.push(from_secret("OMS_NATS_URL", secret));
        }
        container["env"] = json!(env);
        container["securityContext"] = to_value(&pod_security::container());
        container["resources"] = match &overrides.resources {
            Some(resources) => to_value(&ResourceRequirements::from(resources)),
            None => to_value(&pod_security::resources("50m", "64Mi", "256Mi")),
        };
        let mut spec = json!({
            "selector": {"matchLabels": {"app.kubernetes.io/name": service, "app.kubernetes.io/instance": name}},
            "template": {
                "metadata": {"labels": labels(&name, service)},
                "spec": {
                    "serviceAccountName": account,
                    // Only orders reads the API (the routing ConfigMap).
                    "automountServiceAccountToken": service == "orders",
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "securityContext": to_value(&pod_security::pod(pod_security::NONROOT, false)),
                    "containers": [container],
                }
            }
        });
        let mut metadata = meta(service, service);
        spec["replicas"] = json!(overrides.replicas.unwrap_or(1));
        if let Some(d) = live.get(service) {
            metadata["resourceVersion"] = json!(d.resource_version);
            if d.held {
                spec["replicas"] = json!(d.replicas);
            }
        }
        children.push(Child {
            api_version: "apps/v1",
            kind: "Deployment",
            plural: "deployments",
            name: service.to_owned(),
            body: json!({"metadata": metadata, "spec": spec}),
            create_only: false,
        });
        children.push(Child {
            api_version: "v1",
            kind: "Service",
            plural: "services",
            name: service.to_owned(),
            body: json!({
                "metadata": meta(service, service),
                "spec": {
                    "selector": {"app.kubernetes.io/name": service, "app.kubernetes.io/instance": name},
                    "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]
                }
            }),
            create_only: false,
        });
    }
    // Disabled, it is kept at zero replicas rather than left out: left out,
    // the load generator an earlier spec started would run on (children are
    // applied, never deleted, so the operator needs no delete verb).
    if let Some(load) = os.spec.load_generator.as_ref() {
        let loadgen = format!("{name}-loadgen");
        children.push(Child {
            api_version: "apps/v1",
            kind: "Deployment",
            plural: "deployments",
            name: loadgen.clone(),
            body: json!({
                "metadata": meta(&loadgen, "loadgen"),
                "spec": {
                    "replicas": i32::from(load.enabled),
                    "selector": {"matchLabels": {"app.kubernetes.io/name": "loadgen", "app.kubernetes.io/instance": name}},
                    "template": {
                        "metadata": {"labels": labels(&name, "loadgen")},
                        "spec": {
                            "automountServiceAccountToken": false,
                            "securityContext": to_value(&pod_security::pod(pod_security::NONROOT, false)),
                            "containers": [{
                                "name": "loadgen",
                                "image": os.spec.image,
                                "args": ["loadgen", "--target", format!("http://orders:{PORT}"),
                                         "--rate", load.orders_per_second.to_string(),
                                         // A year: the Deployment restarts it if it ever ends.
                                         "--duration", "31536000",
                                         "--new-orders", load.new_order_percent.to_string(),
                                         "--lookups", load.lookup_percent.to_string()],
                                "imagePullPolicy": pull_policy,
                                "securityContext": to_value(&pod_security::container()),
                                "resources": to_value(&pod_security::resources("50m", "32Mi", "128Mi")),
                            }]
                        }
                    }
                }
            }),
            create_only: false,
        });
    }
    children
}

/// ServiceMonitors for every OMS service, for clusters with the Prometheus Operator.
pub fn service_monitor(os: &OrderSystem) -> Child {
    let name = os.name_any();
    let owner = os
        .controller_owner_ref(&())
        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
    let mut metadata = json!({"name": format!("{name}-oms"), "namespace": os.namespace(), "labels": labels(&name, "oms")});
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    Child {
        api_version: "monitoring.coreos.com/v1",
        kind: "ServiceMonitor",
        plural: "servicemonitors",
        name: format!("{name}-oms"),
        body: json!({
            "metadata": metadata,
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/part-of": "oms", "app.kubernetes.io/instance": name}},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "5s"}]
            }
        }),
        create_only: false,
    }
}

fn to_value<T: serde::Serialize>(typed: &T) -> Value {
    serde_json::to_value(typed).unwrap_or(Value::Null)
}

/// An environment variable read from one key of a Secret.
fn from_secret(variable: &str, secret: &SecretKey) -> Value {
    json!({
        "name": variable,
        "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(os: &OrderSystem, live: &BTreeMap<String, LiveDeployment>) -> Vec<Child> {
        super::render(os, live, "t0ken")
    }

    fn admin_env() -> Value {
        json!({"name": "OMS_ADMIN_TOKEN",
               "valueFrom": {"secretKeyRef": {"name": "shop-oms-admin", "key": "token"}}})
    }

    fn system(spec: Value) -> OrderSystem {
        let mut os: OrderSystem = serde_json::from_value(json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "OrderSystem",
            "metadata": {"name": "shop", "namespace": "shop", "uid": "1234"},
            "spec": spec
        }))
        .expect("order system");
        os.metadata.uid = Some("1234".into());
        os
    }

    fn find<'a>(children: &'a [Child], kind: &str, name: &str) -> &'a Child {
        children
            .iter()
            .find(|c| c.kind == kind && c.name == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    #[test]
    fn every_service_gets_a_deployment_and_a_service_owned_by_the_order_system() {
        let children = render(
            &system(json!({"services": {"tax": {"replicas": 3}}})),
            &BTreeMap::new(),
        );
        for service in OMS_SERVICES {
            let d = find(&children, "Deployment", service);
            assert_eq!(
                d.body["metadata"]["ownerReferences"][0]["kind"],
                "OrderSystem"
            );
            assert_eq!(d.body["metadata"]["ownerReferences"][0]["controller"], true);
            find(&children, "Service", service);
        }
        assert_eq!(
            find(&children, "Deployment", "tax").body["spec"]["replicas"],
            3
        );
        assert_eq!(
            find(&children, "Deployment", "inventory").body["spec"]["replicas"],
            1
        );
        let orders = &find(&children, "Deployment", "orders").body["spec"]["template"]["spec"]["containers"]
            [0]["args"];
        assert!(
            orders
                .as_array()
                .expect("args")
                .contains(&json!("shop/oms-routing")),
            "{orders}"
        );
    }

    #[test]
    fn the_admin_token_is_made_once_into_a_secret_every_service_reads() {
        let children = render(&system(json!({})), &BTreeMap::new());
        let secret = find(&children, "Secret", "shop-oms-admin");
        assert!(secret.create_only, "never rewritten");
        assert_eq!(secret.body["stringData"]["token"], "t0ken");
        assert_eq!(
            secret.body["metadata"]["ownerReferences"][0]["kind"],
            "OrderSystem"
        );
        for service in OMS_SERVICES {
            let env = &find(&children, "Deployment", service).body["spec"]["template"]["spec"]["containers"]
                [0]["env"];
            assert!(
                env.as_array().expect("env").contains(&admin_env()),
                "{service}: {env}"
            );
        }
    }

    #[test]
    fn a_deleted_pod_serves_until_its_endpoints_are_gone_then_drains_within_its_grace() {
        let children = render(&system(json!({})), &BTreeMap::new());
        for service in OMS_SERVICES {
            let pod = &find(&children, "Deployment", service).body["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            assert_eq!(
                container["lifecycle"]["preStop"]["sleep"]["seconds"], PRE_STOP_SLEEP_SECONDS,
                "{service}"
            );
            assert!(
                container["args"]
                    .as_array()
                    .expect("args")
                    .contains(&json!(format!(
                        "--shutdown-grace-ms={}",
                        DRAIN_SECONDS * 1000
                    ))),
                "{service}"
            );
            let grace = pod["terminationGracePeriodSeconds"]
                .as_i64()
                .expect("grace");
            assert!(
                grace > PRE_STOP_SLEEP_SECONDS + DRAIN_SECONDS,
                "{service}: {grace}"
            );
        }
    }

    #[test]
    fn a_service_with_a_capacity_gets_it_as_flags() {
        let children = render(
            &system(
                json!({"services": {"tax": {"capacity": {"workers": 4, "serviceTimeMs": 20}}}}),
            ),
            &BTreeMap::new(),
        );
        let args = |service: &str| {
            find(&children, "Deployment", service).body["spec"]["template"]["spec"]["containers"][0]
                ["args"]
                .clone()
        };
        let tax = args("tax");
        let tax = tax.as_array().expect("args");
        assert!(tax.contains(&json!("--workers=4")), "{tax:?}");
        assert!(tax.contains(&json!("--service-time-ms=20")), "{tax:?}");
        let orders = args("orders").to_string();
        assert!(!orders.contains("--workers"), "{orders}");
    }

    #[test]
    fn stateful_services_read_the_database_url_from_the_secret() {
        let children = render(
            &system(json!({"database": {"urlSecret": {"name": "oms-db"}, "poolSize": 4}})),
            &BTreeMap::new(),
        );
        let env = |service: &str| {
            find(&children, "Deployment", service).body["spec"]["template"]["spec"]["containers"][0]
                ["env"]
                .clone()
        };
        for service in OMS_SERVICES {
            assert_eq!(env(service)[0], admin_env(), "{service}");
            if service == "tax" {
                assert_eq!(env(service), json!([admin_env()]), "tax keeps no state");
                continue;
            }
            assert_eq!(
                env(service)[1],
                json!({"name": "OMS_DATABASE_URL",
                       "valueFrom": {"secretKeyRef": {"name": "oms-db", "key": "url"}}}),
                "{service}"
            );
            assert_eq!(env(service)[2]["value"], "4");
        }
    }

    #[test]
    fn orders_and_notifications_read_the_nats_url_from_the_secret() {
        let children = render(
            &system(json!({"events": {"natsUrlSecret": {"name": "oms-nats"}}})),
            &BTreeMap::new(),
        );
        for service in OMS_SERVICES {
            let env = find(&children, "Deployment", service).body["spec"]["template"]["spec"]
                ["containers"][0]["env"]
                .clone();
            if matches!(service, "orders" | "notifications") {
                assert_eq!(
                    env,
                    json!([admin_env(), {"name": "OMS_NATS_URL",
                            "valueFrom": {"secretKeyRef": {"name": "oms-nats", "key": "url"}}}]),
                    "{service}"
                );
            } else {
                assert_eq!(
                    env,
                    json!([admin_env()]),
                    "{service} neither sends nor receives events"
                );
            }
        }
    }

    #[test]
    fn a_held_deployment_leaves_its_replicas_to_the_remediation() {
        let live = BTreeMap::from([
            (
                "tax".to_owned(),
                LiveDeployment {
                    replicas: 5,
                    resource_version: "42".into(),
                    held: true,
                },
            ),
            (
                "orders".to_owned(),
                LiveDeployment {
                    replicas: 7,
                    resource_version: "43".into(),
                    held: false,
                },
            ),
        ]);
        let children = render(
            &system(json!({"services": {"tax": {"replicas": 3}}})),
            &live,
        );
        let tax = &find(&children, "Deployment", "tax").body;
        assert_eq!(tax["spec"]["replicas"], 5, "as the remediation set it");
        assert_eq!(
            tax["metadata"]["resourceVersion"], "42",
            "only if unchanged since read"
        );
        let orders = &find(&children, "Deployment", "orders").body;
        assert_eq!(orders["spec"]["replicas"], 1, "not held: the spec's");
        assert_eq!(orders["metadata"]["resourceVersion"], "43");
        assert!(
            find(&children, "Deployment", "fulfillment").body["metadata"]
                .get("resourceVersion")
                .is_none(),
            "created unconditionally"
        );
    }

    #[test]
    fn the_routing_configmap_is_written_once_with_the_initial_weights() {
        let children = render(
            &system(json!({"paymentPrimaryWeight": 70})),
            &BTreeMap::new(),
        );
        let cm = find(&children, "ConfigMap", ROUTING_CONFIGMAP);
        assert!(cm.create_only);
        assert_eq!(cm.body["data"]["payment.payment-primary"], "70");
        assert_eq!(cm.body["data"]["payment.payment-secondary"], "30");
    }

    #[test]
    fn the_load_generator_runs_only_when_enabled_and_stops_when_disabled() {
        let on = render(
            &system(json!({"loadGenerator": {"ordersPerSecond": 25}})),
            &BTreeMap::new(),
        );
        let args = &find(&on, "Deployment", "shop-loadgen").body["spec"]["template"]["spec"]["containers"]
            [0]["args"];
        assert!(args.as_array().expect("args").contains(&json!("25")));
        let off = render(
            &system(json!({"loadGenerator": {"enabled": false}})),
            &BTreeMap::new(),
        );
        assert_eq!(
            find(&off, "Deployment", "shop-loadgen").body["spec"]["replicas"],
            0
        );
        let none = render(&system(json!({})), &BTreeMap::new());
        assert!(!none.iter().any(|c| c.name == "shop-loadgen"));
    }
}
