//! Server-side apply with named field managers on the custom resources: the
//! mechanism by which the detector and the operator share objects safely.

use homeostat_api::OrderSystem;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::common::control_plane_with_crds;

fn order_system(spec: Value) -> Value {
    json!({
        "apiVersion": "homeostat.dev/v1alpha1",
        "kind": "OrderSystem",
        "metadata": { "name": "shop" },
        "spec": spec,
    })
}

fn managers(system: &OrderSystem) -> Vec<(String, String)> {
    system
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|entry| {
            (
                entry.manager.clone().unwrap_or_default(),
                entry.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn server_side_apply_tracks_field_managers_and_conflicts() {
    let (_plane, client) = control_plane_with_crds().await;
    let systems: Api<OrderSystem> = Api::default_namespaced(client);

    let sre = PatchParams::apply("sre-gitops");
    let applied = systems
        .patch(
            "shop",
            &sre,
            &Patch::Apply(order_system(
                json!({ "loadGenerator": { "ordersPerSecond": 40 } }),
            )),
        )
        .await
        .expect("first apply");
    assert!(
        managers(&applied).contains(&("sre-gitops".to_owned(), "Apply".to_owned())),
        "{:?}",
        managers(&applied)
    );
    assert_eq!(
        applied
            .spec
            .load_generator
            .as_ref()
            .map(|l| l.orders_per_second),
        Some(40)
    );

    // A second manager changing a field the first owns gets a conflict naming it.
    let drill = PatchParams::apply("load-drill");
    let conflict = systems
        .patch(
            "shop",
            &drill,
            &Patch::Apply(order_system(
                json!({ "loadGenerator": { "ordersPerSecond": 80 } }),
            )),
        )
        .await;
    match conflict {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409, "{status:?}");
            assert!(
                status.message.contains("ordersPerSecond"),
                "{}",
                status.message
            );
            assert!(status.message.contains("sre-gitops"), "{}", status.message);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    // Forcing takes ownership; the first manager's next apply without the field leaves it alone.
    let forced = systems
        .patch(
            "shop",
            &drill.clone().force(),
            &Patch::Apply(order_system(
                json!({ "loadGenerator": { "ordersPerSecond": 80 } }),
            )),
        )
        .await
        .expect("forced apply");
    assert_eq!(
        forced
            .spec
            .load_generator
            .as_ref()
            .map(|l| l.orders_per_second),
        Some(80)
    );
    let after = systems
        .patch(
            "shop",
            &sre,
            &Patch::Apply(order_system(json!({ "paymentPrimaryWeight": 90 }))),
        )
        .await
        .expect("apply without the field");
    assert_eq!(
        after
            .spec
            .load_generator
            .as_ref()
            .map(|l| l.orders_per_second),
        Some(80)
    );
    assert_eq!(after.spec.payment_primary_weight, 90);
}

#[tokio::test]
async fn status_conditions_from_two_managers_merge_by_type() {
    let (_plane, client) = control_plane_with_crds().await;
    let systems: Api<OrderSystem> = Api::default_namespaced(client);
    systems
        .patch(
            "shop",
            &PatchParams::apply("sre"),
            &Patch::Apply(order_system(json!({}))),
        )
        .await
        .expect("create");

    let condition = |type_: &str| {
        json!({
            "type": type_, "status": "True", "reason": "Test", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"
        })
    };
    for (manager, type_) in [
        ("homeostat-operator", "Ready"),
        ("homeostat-detector", "Observed"),
    ] {
        let status = json!({
            "apiVersion": "homeostat.dev/v1alpha1",
            "kind": "OrderSystem",
            "status": { "conditions": [condition(type_)] },
        });
        systems
            .patch_status("shop", &PatchParams::apply(manager), &Patch::Apply(&status))
            .await
            .unwrap_or_else(|e| panic!("{manager} applies status: {e}"));
    }

    let stored = systems.get_status("shop").await.expect("status");
    let mut types: Vec<String> = stored
        .status
        .expect("status set")
        .conditions
        .into_iter()
        .map(|c| c.type_)
        .collect();
    types.sort();
    assert_eq!(types, vec!["Observed".to_owned(), "Ready".to_owned()]);
}
