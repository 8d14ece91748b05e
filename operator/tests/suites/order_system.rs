//! The OrderSystem controller against a real kube-apiserver, with the
//! operator as a process.

use crate::common::*;
use homeostat_api::OrderSystem;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_system_becomes_the_oms_and_drift_is_repaired() {
    let (mut plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    let systems: Api<OrderSystem> = Api::namespaced(client.clone(), ns);
    let os: OrderSystem = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "OrderSystem",
        "metadata": {"name": "shop"},
        "spec": {"paymentPrimaryWeight": 90, "services": {"tax": {"replicas": 2}},
                 "loadGenerator": {"ordersPerSecond": 20}}
    }))
    .expect("order system");
    servicemonitor_crd(&client).await;
    systems
        .create(&PostParams::default(), &os)
        .await
        .expect("create");
    let _operator = Operator::start(&plane, "a", &[]);

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    eventually("every OMS Deployment and Service", 60, || async {
        for name in homeostat_api::oms::OMS_SERVICES {
            deployments
                .get(name)
                .await
                .map_err(|e| format!("deployment {name}: {e}"))?;
            services
                .get(name)
                .await
                .map_err(|e| format!("service {name}: {e}"))?;
        }
        deployments
            .get("shop-loadgen")
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    })
    .await;
    let uid = systems
        .get("shop")
        .await
        .expect("get")
        .metadata
        .uid
        .expect("uid");
    let tax = deployments.get("tax").await.expect("tax");
    let owner = &tax.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("OrderSystem", uid.as_str(), Some(true))
    );
    assert_eq!(tax.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let monitors = servicemonitors(&client, ns);
    let monitor = eventually("a ServiceMonitor", 60, || async {
        monitors.get("shop-oms").await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(monitor.data["spec"]["endpoints"][0]["path"], "/metrics");
    let routing = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get("oms-routing")
        .await
        .expect("routing");
    assert_eq!(routing.data.expect("data")["payment.payment-primary"], "90");

    // Status: per service, and conditions (no pods run on this control plane).
    let status = eventually("status with every service", 60, || async {
        let s = systems
            .get("shop")
            .await
            .map_err(|e| e.to_string())?
            .status
            .ok_or("no status")?;
        if s.services.len() == 8 {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert_eq!(status.summary.as_deref(), Some("0/8"));
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False")
    );
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.status == "True")
    );

    // Drift: a deleted Service comes back.
    services
        .delete("tax", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the tax Service back", 60, || async {
        services
            .get("tax")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;

    // A remediation that scaled a Deployment owns its replicas until it
    // restores them.
    policy(
        &client,
        ns,
        "scale-tax",
        json!({
            "services": {"names": ["tax"]},
            "trigger": {"signals": ["latency_p99"]},
            "actions": [{"scale": {"maxReplicas": 5}}],
        // Holding, not acting: this test is about who owns replicas.
        "guards": {"suspend": true}
        }),
    )
    .await;
    // The report it answers stays open (a gone report would be restored).
    open_report(&client, ns, "tax").await;
    let policies: Api<homeostat_api::RemediationPolicy> = Api::namespaced(client.clone(), ns);
    policies
        .patch_status(
            "scale-tax",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"active": [{
                "report": "tax-latency-p99-1", "kind": "scale", "target": "deployment/tax",
                "originalReplicas": 2, "startedAt": "2026-01-01T00:00:00Z", "steps": 2
            }]}})),
        )
        .await
        .expect("hold");
    // As the remediation does: recorded first, then scaled.
    deployment_scale(&client, ns, "tax", 4).await;
    // A spec change makes the controller apply again: orders follows it, tax stays held.
    systems
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"services": {"tax": {"replicas": 2}, "orders": {"replicas": 3}}}}),
            ),
        )
        .await
        .expect("patch");
    wait_replicas(&client, ns, "orders", 3).await;
    assert_eq!(
        replicas(&client, ns, "tax").await,
        4,
        "held by the remediation"
    );

    // A disabled load generator stops: its Deployment goes to zero replicas.
    systems
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"loadGenerator": {"enabled": false}}})),
        )
        .await
        .expect("disable the load generator");
    wait_replicas(&client, ns, "shop-loadgen", 0).await;

    // An HPA scales orders: its replicas are the HPA's, whatever the spec says.
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "orders"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"},
            "minReplicas": 1,
            "maxReplicas": 6
        }
    }))
    .expect("hpa");
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &hpa)
        .await
        .expect("create the HPA");
    deployment_scale(&client, ns, "orders", 5).await;
    let changed = systems
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"services": {"orders": {"replicas": 1}}}})),
        )
        .await
        .expect("patch")
        .metadata
        .generation;
    eventually("the spec change reconciled", 60, || async {
        let observed = systems
            .get("shop")
            .await
            .map_err(|e| e.to_string())?
            .status
            .and_then(|s| s.observed_generation);
        if observed == changed {
            Ok(())
        } else {
            Err(format!("observed {observed:?}, want {changed:?}"))
        }
    })
    .await;
    assert_eq!(replicas(&client, ns, "orders").await, 5, "the HPA's number");

    // Deleting the OrderSystem deletes everything it owns (kube-controller-
    // manager's garbage collector, as on a real cluster).
    plane
        .start_garbage_collector()
        .unwrap_or_else(|e| panic!("garbage collector: {e}"));
    systems
        .delete("shop", &DeleteParams::default())
        .await
        .expect("delete");
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), ns);
    eventually("every child garbage-collected", 120, || async {
        let mut left = Vec::new();
        for name in homeostat_api::oms::OMS_SERVICES {
            if exists(&deployments, name).await? {
                left.push(format!("deployment/{name}"));
            }
            if exists(&services, name).await? {
                left.push(format!("service/{name}"));
            }
        }
        if exists(&deployments, "shop-loadgen").await? {
            left.push("deployment/shop-loadgen".into());
        }
        if exists(&configmaps, "oms-routing").await? {
            left.push("configmap/oms-routing".into());
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(left.join(", "))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_system_can_run_its_own_database_and_broker() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    restricted(&client, ns).await;
    let systems: Api<OrderSystem> = Api::namespaced(client.clone(), ns);
    let os: OrderSystem = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "OrderSystem",
        "metadata": {"name": "shop"},
        "spec": {"database": {"inCluster": {"storage": "2Gi"}, "poolSize": 5},
                 "events": {"inCluster": {"image": "mirror.local/nats:2.10"}},
                 "loadGenerator": {"ordersPerSecond": 5}}
    }))
    .expect("order system");
    systems
        .create(&PostParams::default(), &os)
        .await
        .expect("create");
    let _operator = Operator::start(&plane, "a", &[]);

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let (postgres, nats) = eventually("both StatefulSets", 60, || async {
        let postgres = statefulsets
            .get("shop-postgres")
            .await
            .map_err(|e| e.to_string())?;
        let nats = statefulsets
            .get("shop-nats")
            .await
            .map_err(|e| e.to_string())?;
        Ok((postgres, nats))
    })
    .await;
    for name in ["shop-postgres", "shop-nats"] {
        services.get(name).await.expect("its Service");
    }
    let pod = |s: &StatefulSet| {
        s.spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .expect("pod spec")
    };
    let database = &pod(&postgres).containers[0];
    assert_eq!(database.image.as_deref(), Some("postgres:16-bookworm"));
    let claim = &postgres
        .spec
        .as_ref()
        .expect("spec")
        .volume_claim_templates
        .as_ref()
        .expect("claims")[0];
    assert_eq!(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .map(|r| r["storage"].0.as_str()),
        Some("2Gi")
    );
    assert_eq!(
        pod(&nats).containers[0].image.as_deref(),
        Some("mirror.local/nats:2.10")
    );

    // The database's password is made once: the Secret the services read
    // holds the URL with the password the server was given.
    let data = secret_data(&secrets, "shop-postgres").await;
    let password = String::from_utf8(data["password"].0.clone()).expect("utf-8");
    let admin_token = secret_data(&secrets, "shop-oms-admin").await["token"]
        .0
        .clone();
    assert!(admin_token.len() >= 32, "a strong admin token");
    let url = String::from_utf8(data["url"].0.clone()).expect("utf-8");
    assert!(password.len() >= 32, "a strong password");
    assert_eq!(
        url,
        format!("postgres://oms:{password}@shop-postgres:5432/oms")
    );
    let nats_url = secret_data(&secrets, "shop-nats").await;
    assert_eq!(nats_url["url"].0, b"nats://shop-nats:4222");

    // The stateful services read them.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let env = |d: &Deployment| {
        serde_json::to_value(
            &d.spec
                .as_ref()
                .expect("spec")
                .template
                .spec
                .as_ref()
                .expect("pod")
                .containers[0]
                .env,
        )
        .expect("env")
    };
    let orders = eventually("the orders Deployment", 60, || async {
        deployments.get("orders").await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(
        env(&orders),
        json!([
            {"name": "OMS_ADMIN_TOKEN", "valueFrom": {"secretKeyRef": {"name": "shop-oms-admin", "key": "token"}}},
            {"name": "OMS_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "shop-postgres", "key": "url"}}},
            {"name": "OMS_DB_POOL_SIZE", "value": "5"},
            {"name": "OMS_NATS_URL", "valueFrom": {"secretKeyRef": {"name": "shop-nats", "key": "url"}}},
        ])
    );

    // Another pass (a spec change) keeps the password.
    systems
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paymentPrimaryWeight": 50}})),
        )
        .await
        .expect("patch");
    eventually("the change reconciled", 60, || async {
        let s = systems.get("shop").await.map_err(|e| e.to_string())?;
        match s.status.and_then(|s| s.observed_generation) {
            Some(g) if Some(g) == s.metadata.generation => Ok(()),
            other => Err(format!("observed {other:?}")),
        }
    })
    .await;
    let again = secret_data(&secrets, "shop-postgres").await;
    assert_eq!(again["password"].0, password.as_bytes());
    // So is the admin token every service reads.
    let admin_again = secret_data(&secrets, "shop-oms-admin").await;
    assert_eq!(admin_again["token"].0, admin_token);

    // Every pod it renders passes Pod Security `restricted`, which the
    // namespace enforces: each template, created as a pod (dry run), is
    // admitted.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut templates: Vec<(String, _)> = deployments
        .list(&Default::default())
        .await
        .expect("list Deployments")
        .into_iter()
        .map(|d| {
            (
                d.metadata.name.clone().unwrap_or_default(),
                d.spec.expect("spec").template,
            )
        })
        .collect();
    templates.extend(
        statefulsets
            .list(&Default::default())
            .await
            .expect("list StatefulSets")
            .into_iter()
            .map(|s| {
                let name = s.metadata.name.clone().unwrap_or_default();
                let spec = s.spec.expect("spec");
                let mut template = spec.template;
                // What the StatefulSet controller adds: a claim per template.
                if let Some(pod) = template.spec.as_mut() {
                    for claim in spec.volume_claim_templates.unwrap_or_default() {
                        let volume = claim.metadata.name.unwrap_or_default();
                        pod.volumes.get_or_insert_with(Vec::new).push(
                            serde_json::from_value(json!({"name": volume,
                                "persistentVolumeClaim": {"claimName": format!("{volume}-{name}-0")}}))
                            .expect("volume"),
                        );
                    }
                }
                (name, template)
            }),
    );
    let names: Vec<&str> = templates.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        templates.len(),
        11,
        "8 services, the load generator, 2 servers: {names:?}"
    );
    for (name, template) in templates {
        let pod = Pod {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("{name}-check")),
                ..Default::default()
            },
            spec: template.spec,
            ..Pod::default()
        };
        pods.create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &pod,
        )
        .await
        .unwrap_or_else(|e| panic!("{name}'s pod is refused: {e}"));
    }
    // The check can fail: the same namespace refuses a pod without them.
    let careless: Pod = serde_json::from_value(json!({
        "metadata": {"name": "careless"},
        "spec": {"containers": [{"name": "c", "image": "mirror.local/oms"}]}
    }))
    .expect("pod");
    let refused = pods
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &careless,
        )
        .await
        .expect_err("a pod that is not restricted");
    assert!(
        refused.to_string().contains("violates PodSecurity"),
        "{refused}"
    );

    // No kubelet here: the servers never become ready, and the status says so.
    let status = systems
        .get("shop")
        .await
        .expect("get")
        .status
        .expect("status");
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("shop-postgres") && ready.message.contains("shop-nats"),
        "{}",
        ready.message
    );
}

/// The data of the Secret `name`, once it exists: one reconcile pass
/// applies the backing servers' objects before the OMS's, so the admin
/// Secret can come a moment after the StatefulSets.
async fn secret_data(
    secrets: &Api<Secret>,
    name: &str,
) -> std::collections::BTreeMap<String, k8s_openapi::ByteString> {
    eventually(&format!("Secret {name} with data"), 30, || async {
        secrets
            .get(name)
            .await
            .map_err(|e| e.to_string())?
            .data
            .ok_or_else(|| "no data yet".to_owned())
    })
    .await
}

/// Makes `ns` enforce Pod Security `restricted`.
async fn restricted(client: &kube::Client, ns: &str) {
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted"}}})),
        )
        .await
        .expect("label the namespace");
}

async fn exists<K>(api: &Api<K>, name: &str) -> Result<bool, String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map(|o| o.is_some())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_it_did_not_create_are_never_adopted() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    // Someone else's routing ConfigMap and tax Service, there first.
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "oms-routing"},
        "data": {"owner": "someone else"}
    }))
    .expect("configmap");
    configmaps
        .create(&PostParams::default(), &theirs)
        .await
        .expect("their ConfigMap");
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let their_service: Service = serde_json::from_value(json!({
        "metadata": {"name": "tax", "labels": {"team": "someone-else"}},
        "spec": {"ports": [{"port": 9999}]}
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &their_service)
        .await
        .expect("their Service");

    let systems: Api<OrderSystem> = Api::namespaced(client.clone(), ns);
    let os: OrderSystem = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "OrderSystem",
        "metadata": {"name": "shop"}, "spec": {}
    }))
    .expect("order system");
    systems
        .create(&PostParams::default(), &os)
        .await
        .expect("create");
    let _operator = Operator::start(&plane, "a", &[]);

    let message = eventually("Degraded, naming what is not its own", 60, || async {
        let os = systems.get("shop").await.map_err(|e| e.to_string())?;
        let degraded = os
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Degraded"))
            .ok_or("no Degraded condition")?;
        if degraded.status == "True" && degraded.reason == "NotOwned" {
            Ok(degraded.message)
        } else {
            Err(format!("{degraded:?}"))
        }
    })
    .await;
    assert!(message.contains("ConfigMap/oms-routing"), "{message}");
    assert!(message.contains("Service/tax"), "{message}");
    // Everything else is made, and owned.
    let orders = services.get("orders").await.expect("orders Service");
    assert!(orders.metadata.owner_references.is_some());
    // Theirs is as they left it.
    let cm = configmaps.get("oms-routing").await.expect("ConfigMap");
    assert_eq!(
        cm.data.unwrap_or_default().into_iter().collect::<Vec<_>>(),
        vec![("owner".to_owned(), "someone else".to_owned())]
    );
    assert!(cm.metadata.owner_references.is_none());
    let tax = services.get("tax").await.expect("Service");
    assert!(tax.metadata.owner_references.is_none());
    let ports: Vec<i32> = tax
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, vec![9999]);
    assert!(
        event_reasons(&client, ns, "shop")
            .await
            .iter()
            .any(|r| r == "NotOwned")
    );
}

/// `--watch-namespaces`: an OrderSystem and a policy in a watched namespace
/// are acted on; the same in another namespace are not even read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_acts_only_in_the_namespaces_it_watches() {
    let (plane, client) = plane().await;
    let system = |name: &str| -> OrderSystem {
        serde_json::from_value(json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "OrderSystem",
            "metadata": {"name": name},
            "spec": {"paymentPrimaryWeight": 100}
        }))
        .expect("order system")
    };
    for ns in ["watched", "elsewhere"] {
        namespace(&client, ns).await;
        Api::<OrderSystem>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &system("shop"))
            .await
            .expect("create");
    }
    let mut operator = Operator::start(&plane, "a", &["--watch-namespaces", "watched"]);

    let watched: Api<Deployment> = Api::namespaced(client.clone(), "watched");
    eventually("the watched namespace's OMS", 60, || async {
        for name in homeostat_api::oms::OMS_SERVICES {
            watched
                .get(name)
                .await
                .map_err(|e| format!("deployment {name}: {e}"))?;
        }
        Ok(())
    })
    .await;
    let watched_status = eventually("the watched OrderSystem's status", 60, || async {
        Api::<OrderSystem>::namespaced(client.clone(), "watched")
            .get("shop")
            .await
            .map_err(|e| e.to_string())?
            .status
            .ok_or_else(|| "no status yet".to_owned())
    })
    .await;
    assert!(!watched_status.services.is_empty(), "{watched_status:?}");
    // A later change in the watched namespace is applied: an operator
    // watching every namespace would have made the other OMS long before.
    Api::<OrderSystem>::namespaced(client.clone(), "watched")
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"services": {"tax": {"replicas": 2}}}})),
        )
        .await
        .expect("patch");
    eventually("the watched OMS's tax at 2 replicas", 60, || async {
        match watched.get("tax").await.map_err(|e| e.to_string())?.spec {
            Some(spec) if spec.replicas == Some(2) => Ok(()),
            other => Err(format!("{:?}", other.and_then(|s| s.replicas))),
        }
    })
    .await;
    let elsewhere = Api::<Deployment>::namespaced(client.clone(), "elsewhere")
        .list(&Default::default())
        .await
        .expect("list");
    assert!(elsewhere.items.is_empty(), "{:?}", elsewhere.items);
    let untouched = Api::<OrderSystem>::namespaced(client.clone(), "elsewhere")
        .get("shop")
        .await
        .expect("get");
    assert!(untouched.status.is_none(), "{:?}", untouched.status);
    assert!(untouched.metadata.finalizers.is_none());

    // A name Kubernetes would refuse is refused at start, with the reason.
    let mut refused = Operator::start(&plane, "b", &["--watch-namespaces", "Shop"]);
    let status = refused.exited(30).await;
    assert_eq!(status.code(), Some(2), "{status:?}");
    operator.terminate(std::time::Duration::from_secs(20));
}
