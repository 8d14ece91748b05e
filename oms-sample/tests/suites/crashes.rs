//! Crashes while load runs, one at a time, on `oms up --replicas 2` over a
//! real PostgreSQL and a real nats-server: an orders replica, a payment
//! provider and inventory are SIGKILLed mid-call (and restarted by the
//! supervisor), the broker is SIGKILLed and PostgreSQL crashes (immediate
//! shutdown, WAL replay on restart). After each comes back, every order
//! reaches a terminal state and `oms audit` passes.

use crate::common::{
    Backing, Load, Oms, PLENTIFUL, books_balance, histogram_count, more_orders, none_left,
};
use serde_json::json;

/// What crashes in a drill.
#[derive(Debug, Clone, Copy)]
enum Victim {
    /// SIGKILL replica 0 of a service.
    Replica(&'static str),
    Broker,
    Database,
}

/// Orders per second through the front door while each drill runs.
const PACE: u32 = 40;

/// 400 ms more on every request, for `seconds`.
fn slow(seconds: f64) -> serde_json::Value {
    json!({ "kind": "latency", "latency_ms": 400, "jitter": 0.0, "duration_seconds": seconds })
}

/// Calls from both orders replicas to `peer` that ended without an answer
/// (lost, timed out or refused at connect).
async fn unanswered_calls(oms: &Oms, peer: &str) -> f64 {
    let mut total = 0.0;
    for index in 0..2 {
        let metrics = oms.replica_metrics("orders", index).await;
        for error in ["lost", "timeout", "connect"] {
            total += histogram_count(
                &metrics,
                "http_client_request_duration_seconds",
                &[
                    &format!("peer_service=\"{peer}\""),
                    &format!("error_type=\"{error}\""),
                ],
            );
        }
    }
    total
}

#[tokio::test]
async fn every_crash_under_load_leaves_every_order_settled_and_the_books_balanced() {
    let mut backing = Backing::start().await;
    let oms = backing
        .oms_with(&["--replicas", "2", "--ship-delay-ms", "200"])
        .await;
    let db = backing.db().await;

    for victim in [
        Victim::Replica("payment-primary"),
        Victim::Replica("inventory"),
        Victim::Replica("orders"),
        Victim::Broker,
        Victim::Database,
    ] {
        // Work is in flight on the victim when it dies: a slow provider or
        // inventory replica holds its calls; a slow provider holds the
        // sagas of an orders replica.
        match victim {
            Victim::Replica("orders") => {
                for index in 0..2 {
                    oms.inject_replica("payment-primary", index, &slow(10.0))
                        .await;
                }
            }
            Victim::Replica(service) => oms.inject_replica(service, 0, &slow(600.0)).await,
            Victim::Broker | Victim::Database => {}
        }
        let load = Load::start(&oms, PACE, PLENTIFUL);
        // Orders are flowing when the crash comes…
        more_orders(&db, 20).await;
        let unanswered_before = match victim {
            Victim::Replica(peer @ ("payment-primary" | "inventory")) => {
                unanswered_calls(&oms, peer).await
            }
            _ => 0.0,
        };
        match victim {
            Victim::Replica(service) => oms.crash_replica(service, 0).await,
            Victim::Broker => {
                backing.nats.kill();
                backing.nats.restart().await.expect("NATS back");
            }
            Victim::Database => {
                backing.postgres.crash();
                backing.postgres.restart().await.expect("PostgreSQL back");
            }
        }
        // …and flow again once it is back.
        more_orders(&db, 20).await;
        let tally = load.stop().await;
        eprintln!("{victim:?}: {tally:?}");

        // The crash hit work in flight.
        match victim {
            Victim::Replica("orders") => {
                // Its stranded sagas are settled once their lease runs
                // out, by whichever replica's sweep comes first: the other
                // one, or the killed one restarted.
                none_left(&db, "pending").await;
                let mut recovered = false;
                for index in 0..2 {
                    let metrics = oms.replica_metrics("orders", index).await;
                    recovered |= metrics.contains("outcome=\"recovered\"");
                }
                assert!(
                    recovered,
                    "no saga was in flight on the killed orders replica: {tally:?}"
                );
            }
            Victim::Replica(peer) => {
                let lost = unanswered_calls(&oms, peer).await - unanswered_before;
                assert!(lost > 0.0, "no call was in flight on the killed {peer}");
            }
            Victim::Broker | Victim::Database => {}
        }
        assert_eq!(
            tally.failures(),
            [],
            "{victim:?}: only busy or unavailable answers may fail"
        );
        assert!(
            tally.answered.get(&201).copied().unwrap_or(0) > 0,
            "{victim:?}: no order placed: {tally:?}"
        );
        none_left(&db, "pending").await;
        books_balance(&backing).await;
    }
}
