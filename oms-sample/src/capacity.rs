//! A replica's capacity, for drills where load, not a fault, is the
//! problem: it works on at most `workers` API requests at a time and each
//! holds its worker for at least `service_time` — a pool-bound service (a
//! connection or thread pool of that size, each call that long) — so the
//! rest wait their turn. Past `workers / service_time` requests a second,
//! the queue and the latency grow, as they do for a saturated service, and
//! a second replica behind the Service takes half the queue. The wait
//! counts in the request's latency and in its admission: it is inside the
//! in-flight limit and the request deadline, so an overloaded replica still
//! sheds. Without a capacity a replica works on everything at once, as fast
//! as it can (the default).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::metrics::{ServiceLabel, ServiceMetrics};

/// How fast one replica works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Requests it works on at once.
    pub workers: usize,
    /// The least time a request holds its worker.
    pub service_time: Duration,
}

impl Capacity {
    /// Requests a second it can serve when saturated.
    pub fn throughput(&self) -> f64 {
        self.workers as f64 / self.service_time.as_secs_f64().max(f64::EPSILON)
    }
}

/// The workers of one service replica, shared by its request handlers.
#[derive(Clone)]
pub struct Workers {
    /// The capacity and its workers; none: no limit.
    limit: Option<(Capacity, Arc<Semaphore>)>,
    busy: Gauge,
    waiting: Gauge,
}

impl Workers {
    pub fn new(capacity: Option<Capacity>, metrics: &ServiceMetrics) -> Self {
        // One series each, labelled with the service like the others.
        let gauge = |name: &str, help: &str| {
            let family = Family::<ServiceLabel, Gauge>::default();
            metrics.register(name, help, family.clone());
            family.get_or_create(&metrics.service_label()).clone()
        };
        let total = gauge(
            "oms_workers",
            "Requests the replica works on at once (0: no limit)",
        );
        let busy = gauge("oms_workers_busy", "Workers holding a request now");
        let waiting = gauge(
            "oms_requests_waiting",
            "Admitted requests waiting for a worker",
        );
        total.set(capacity.map_or(0, |c| c.workers as i64));
        Self {
            limit: capacity.map(|c| (c, Arc::new(Semaphore::new(c.workers)))),
            busy,
            waiting,
        }
    }
}

/// The middleware: wait for a worker, work for at least the service time.
pub async fn work(State(workers): State<Workers>, request: Request, next: Next) -> Response {
    let Some((capacity, permits)) = &workers.limit else {
        return next.run(request).await;
    };
    workers.waiting.inc();
    // Never closed, so always a permit.
    let permit = permits.clone().acquire_owned().await.ok();
    workers.waiting.dec();
    workers.busy.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    tokio::time::sleep_until(started + capacity.service_time).await;
    workers.busy.dec();
    drop(permit);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn serving(capacity: Option<Capacity>) -> (Router, Workers) {
        let workers = Workers::new(capacity, &ServiceMetrics::new("tax"));
        let router = Router::new()
            .route("/v1/quote", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(workers.clone(), work));
        (router, workers)
    }

    /// When each of `n` requests sent at once is answered.
    async fn answer_times(router: &Router, n: usize) -> Vec<Duration> {
        let started = Instant::now();
        let calls = (0..n).map(|_| {
            let router = router.clone();
            async move {
                let response = router
                    .oneshot(
                        Request::get("/v1/quote")
                            .body(Body::empty())
                            .expect("request"),
                    )
                    .await
                    .expect("infallible");
                assert!(response.status().is_success());
                started.elapsed()
            }
        });
        futures::future::join_all(calls).await
    }

    #[tokio::test(start_paused = true)]
    async fn requests_beyond_the_workers_wait_their_turn() {
        let capacity = Capacity {
            workers: 2,
            service_time: Duration::from_millis(100),
        };
        let (router, workers) = serving(Some(capacity));
        let mut times = answer_times(&router, 5).await;
        times.sort();
        // Two at 100 ms, two at 200 ms, the last at 300 ms.
        let rounded: Vec<u128> = times.iter().map(|t| t.as_millis() / 100).collect();
        assert_eq!(rounded, [1, 1, 2, 2, 3]);
        assert_eq!(workers.busy.get(), 0);
        assert_eq!(workers.waiting.get(), 0);
        assert_eq!(capacity.throughput(), 20.0);
    }

    #[tokio::test(start_paused = true)]
    async fn twice_the_workers_halve_the_queue() {
        let one = Capacity {
            workers: 2,
            service_time: Duration::from_millis(100),
        };
        let two = Capacity { workers: 4, ..one };
        let slowest = |mut t: Vec<Duration>| {
            t.sort();
            t.last().copied().unwrap_or_default()
        };
        let (router, _) = serving(Some(one));
        let alone = slowest(answer_times(&router, 8).await);
        let (router, _) = serving(Some(two));
        let shared = slowest(answer_times(&router, 8).await);
        assert_eq!(alone.as_millis() / 100, 4);
        assert_eq!(shared.as_millis() / 100, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_capacity_everything_is_served_at_once() {
        let (router, workers) = serving(None);
        let times = answer_times(&router, 50).await;
        assert!(times.iter().all(|t| *t < Duration::from_millis(1)));
        assert_eq!(workers.busy.get(), 0);
    }
}
