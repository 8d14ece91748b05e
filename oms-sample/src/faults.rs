//! Fault injection for drills: added latency drawn from a log-normal
//! distribution, error answers at a rate, either optionally ramping up, for a
//! bounded time. The model is pure; the admin endpoints are in `server`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// The longest a single fault may last.
pub const MAX_FAULT_SECONDS: f64 = 24.0 * 3600.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Added delay before the request is handled.
    Latency,
    /// 503 answers instead of handling the request.
    Errors,
    /// The request is handled, then its answer is cut off: the caller
    /// cannot tell whether it was done (a lost reply).
    DropResponse,
    /// The service stops listening for the fault's duration: connections
    /// are refused and scrapes fail, as a crashed process's would. Requests
    /// in flight finish; the admin call that asks for it is answered first.
    Down,
    /// Each event the service's consumer takes waits `latency_ms` (median,
    /// with jitter) before it is recorded; requests are untouched. Once
    /// events come faster than it works through them, its lag grows.
    SlowConsumer,
}

impl FaultKind {
    /// Whether the fault acts on event consumption rather than on requests.
    pub fn on_events(self) -> bool {
        matches!(self, FaultKind::SlowConsumer)
    }
}

/// A fault to inject, as posted to `POST /admin/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    pub kind: FaultKind,
    /// Latency and slow_consumer: median added delay in milliseconds.
    #[serde(default)]
    pub latency_ms: f64,
    /// Latency: spread of the log-normal delay (sigma of its logarithm); 0 is a constant delay.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Errors: fraction of requests answered with 503; drop_response:
    /// fraction of answers cut off. From 0 to 1.
    #[serde(default)]
    pub error_rate: f64,
    /// When above 0, the fault grows linearly to full strength over this many seconds.
    #[serde(default)]
    pub ramp_seconds: f64,
    /// How long the fault lasts.
    pub duration_seconds: f64,
}

fn default_jitter() -> f64 {
    0.25
}

impl FaultRequest {
    /// Checks the ranges; the error says which field is wrong.
    pub fn validate(&self) -> Result<(), ApiError> {
        let bad = |message: &str| Err(ApiError::unprocessable("invalid_fault", message));
        let finite = [
            self.latency_ms,
            self.jitter,
            self.error_rate,
            self.ramp_seconds,
            self.duration_seconds,
        ];
        if finite.iter().any(|v| !v.is_finite()) {
            return bad("numbers must be finite");
        }
        if !(self.duration_seconds > 0.0 && self.duration_seconds <= MAX_FAULT_SECONDS) {
            return bad("duration_seconds must be above 0 and at most 86400");
        }
        if !(0.0..=MAX_FAULT_SECONDS).contains(&self.ramp_seconds) {
            return bad("ramp_seconds must be from 0 to 86400");
        }
        if !(0.0..=3.0).contains(&self.jitter) {
            return bad("jitter must be from 0 to 3");
        }
        match self.kind {
            FaultKind::Latency | FaultKind::SlowConsumer
                if !(self.latency_ms > 0.0 && self.latency_ms <= 60_000.0) =>
            {
                bad("a latency or slow_consumer fault needs latency_ms above 0 and at most 60000")
            }
            FaultKind::Errors | FaultKind::DropResponse
                if !(self.error_rate > 0.0 && self.error_rate <= 1.0) =>
            {
                bad("an errors or drop_response fault needs error_rate above 0 and at most 1")
            }
            _ => Ok(()),
        }
    }
}

/// An active fault as reported by `GET /admin/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FaultView {
    pub id: u64,
    #[serde(flatten)]
    pub spec: FaultRequest,
    /// Seconds since it started.
    pub elapsed_seconds: f64,
    /// Current strength from 0 to 1 (below 1 while ramping).
    pub strength: f64,
}

#[derive(Debug, Clone)]
struct ActiveFault {
    id: u64,
    spec: FaultRequest,
    started: Instant,
}

impl ActiveFault {
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.started).as_secs_f64() >= self.spec.duration_seconds
    }

    /// A log-normal delay around the fault's current median.
    fn delay(&self, now: Instant, rng: &mut impl Rng) -> Duration {
        let median = self.spec.latency_ms * self.strength(now);
        let ms = median * (self.spec.jitter * standard_normal(rng)).exp();
        Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 120.0))
    }

    fn strength(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        if self.spec.ramp_seconds > 0.0 {
            (elapsed / self.spec.ramp_seconds).min(1.0)
        } else {
            1.0
        }
    }
}

/// What the active faults do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Effect {
    pub delay: Duration,
    pub fail: bool,
    /// Handle the request, then cut the answer off.
    pub drop_response: bool,
}

/// The faults of one service.
#[derive(Debug, Default)]
pub struct FaultSet {
    inner: Mutex<(u64, Vec<ActiveFault>)>,
    /// Woken on every change, for the server to notice a `down` fault.
    changed: tokio::sync::Notify,
}

impl FaultSet {
    pub fn add(&self, spec: FaultRequest, now: Instant) -> Result<FaultView, ApiError> {
        spec.validate()?;
        let mut inner = self.lock();
        inner.0 += 1;
        let fault = ActiveFault {
            id: inner.0,
            spec,
            started: now,
        };
        inner.1.push(fault.clone());
        drop(inner);
        self.changed.notify_waiters();
        Ok(view(&fault, now))
    }

    /// Ends every fault; returns how many were active.
    pub fn clear(&self) -> usize {
        let mut inner = self.lock();
        let n = inner.1.len();
        inner.1.clear();
        drop(inner);
        self.changed.notify_waiters();
        n
    }

    /// Ends one fault; false when it was not active.
    pub fn remove(&self, id: u64) -> bool {
        let mut inner = self.lock();
        let before = inner.1.len();
        inner.1.retain(|f| f.id != id);
        let removed = inner.1.len() != before;
        drop(inner);
        self.changed.notify_waiters();
        removed
    }

    pub fn active(&self, now: Instant) -> Vec<FaultView> {
        let mut inner = self.lock();
        inner.1.retain(|f| !f.expired(now));
        inner.1.iter().map(|f| view(f, now)).collect()
    }

    /// Combines the active faults for one request: delays add up, and any
    /// errors fault may fail it.
    pub fn effect(&self, now: Instant, rng: &mut impl Rng) -> Effect {
        let mut inner = self.lock();
        inner.1.retain(|f| !f.expired(now));
        let mut effect = Effect::default();
        for fault in &inner.1 {
            let strength = fault.strength(now);
            match fault.spec.kind {
                FaultKind::Latency => effect.delay += fault.delay(now, rng),
                FaultKind::Errors => {
                    if rng.r#gen::<f64>() < fault.spec.error_rate * strength {
                        effect.fail = true;
                    }
                }
                FaultKind::DropResponse => {
                    if rng.r#gen::<f64>() < fault.spec.error_rate * strength {
                        effect.drop_response = true;
                    }
                }
                // Nothing reaches a service that is down (see `down_until`).
                FaultKind::Down => {}
                // Requests are untouched (see `event_delay`).
                FaultKind::SlowConsumer => {}
            }
        }
        effect
    }

    /// How long the service's consumer waits before recording one event.
    pub fn event_delay(&self, now: Instant, rng: &mut impl Rng) -> Duration {
        let mut inner = self.lock();
        inner.1.retain(|f| !f.expired(now));
        inner
            .1
            .iter()
            .filter(|f| f.spec.kind == FaultKind::SlowConsumer)
            .map(|f| f.delay(now, rng))
            .sum()
    }

    /// When the latest `down` fault in force ends; `None` while the service is up.
    pub fn down_until(&self, now: Instant) -> Option<Instant> {
        let mut inner = self.lock();
        inner.1.retain(|f| !f.expired(now));
        inner
            .1
            .iter()
            .filter(|f| f.spec.kind == FaultKind::Down)
            .map(|f| f.started + Duration::from_secs_f64(f.spec.duration_seconds))
            .max()
    }

    /// Waits until a `down` fault is in force.
    pub async fn went_down(&self) {
        loop {
            // Created before the check, so a change in between still wakes it.
            let changed = self.changed.notified();
            if self.down_until(Instant::now()).is_some() {
                return;
            }
            changed.await;
        }
    }

    /// Waits until no `down` fault is in force (ended, removed or cleared).
    pub async fn came_up(&self) {
        loop {
            let changed = self.changed.notified();
            let Some(until) = self.down_until(Instant::now()) else {
                return;
            };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Vec<ActiveFault>)> {
        // A panic while holding this lock cannot leave the list inconsistent.
        crate::sync::lock(&self.inner)
    }
}

fn view(fault: &ActiveFault, now: Instant) -> FaultView {
    FaultView {
        id: fault.id,
        spec: fault.spec.clone(),
        elapsed_seconds: now.saturating_duration_since(fault.started).as_secs_f64(),
        strength: fault.strength(now),
    }
}

/// A standard normal sample (Box–Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn latency(ms: f64, ramp: f64, duration: f64) -> FaultRequest {
        FaultRequest {
            kind: FaultKind::Latency,
            latency_ms: ms,
            jitter: 0.25,
            error_rate: 0.0,
            ramp_seconds: ramp,
            duration_seconds: duration,
        }
    }

    fn median_delay_ms(faults: &FaultSet, at: Instant) -> f64 {
        let mut rng = StdRng::seed_from_u64(7);
        let mut delays: Vec<f64> = (0..2001)
            .map(|_| faults.effect(at, &mut rng).delay.as_secs_f64() * 1000.0)
            .collect();
        delays.sort_by(f64::total_cmp);
        delays[1000]
    }

    #[test]
    fn latency_is_distributed_around_the_median_not_constant() {
        let faults = FaultSet::default();
        let t0 = Instant::now();
        faults.add(latency(300.0, 0.0, 60.0), t0).expect("add");
        let median = median_delay_ms(&faults, t0);
        assert!((median - 300.0).abs() < 20.0, "median {median}");
        let mut rng = StdRng::seed_from_u64(1);
        let samples: Vec<Duration> = (0..50).map(|_| faults.effect(t0, &mut rng).delay).collect();
        assert!(samples.windows(2).any(|w| w[0] != w[1]), "delays must vary");
    }

    #[test]
    fn a_slow_consumer_delays_events_and_no_request() {
        let faults = FaultSet::default();
        let t0 = Instant::now();
        let spec = FaultRequest {
            kind: FaultKind::SlowConsumer,
            ..latency(50.0, 0.0, 60.0)
        };
        faults.add(spec, t0).expect("add");
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(faults.effect(t0, &mut rng), Effect::default());
        let mut delays: Vec<f64> = (0..2001)
            .map(|_| faults.event_delay(t0, &mut rng).as_secs_f64() * 1000.0)
            .collect();
        delays.sort_by(f64::total_cmp);
        assert!((delays[1000] - 50.0).abs() < 5.0, "median {}", delays[1000]);
        // Ended: events flow at full speed again.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(faults.event_delay(later, &mut rng), Duration::ZERO);
    }

    #[test]
    fn ramp_grows_linearly_to_full_strength() {
        let faults = FaultSet::default();
        let t0 = Instant::now();
        faults.add(latency(400.0, 10.0, 60.0), t0).expect("add");
        let quarter = median_delay_ms(&faults, t0 + Duration::from_millis(2500));
        let full = median_delay_ms(&faults, t0 + Duration::from_secs(20));
        assert!((quarter - 100.0).abs() < 10.0, "quarter {quarter}");
        assert!((full - 400.0).abs() < 30.0, "full {full}");
    }

    #[test]
    fn faults_end_after_their_duration_and_on_clear() {
        let faults = FaultSet::default();
        let t0 = Instant::now();
        faults.add(latency(100.0, 0.0, 5.0), t0).expect("add");
        let mut rng = StdRng::seed_from_u64(3);
        assert!(faults.effect(t0 + Duration::from_secs(4), &mut rng).delay > Duration::ZERO);
        assert_eq!(
            faults.effect(t0 + Duration::from_secs(5), &mut rng),
            Effect::default()
        );
        assert!(faults.active(t0 + Duration::from_secs(5)).is_empty());

        let view = faults.add(latency(100.0, 0.0, 5.0), t0).expect("add");
        assert!(faults.remove(view.id));
        assert!(!faults.remove(view.id));
        faults.add(latency(100.0, 0.0, 5.0), t0).expect("add");
        assert_eq!(faults.clear(), 1);
    }

    #[test]
    fn error_rate_fails_that_fraction_of_requests() {
        let faults = FaultSet::default();
        let t0 = Instant::now();
        let spec = FaultRequest {
            kind: FaultKind::Errors,
            error_rate: 0.3,
            ..latency(0.0, 0.0, 60.0)
        };
        faults.add(spec, t0).expect("add");
        let mut rng = StdRng::seed_from_u64(11);
        let failed = (0..10_000)
            .filter(|_| faults.effect(t0, &mut rng).fail)
            .count();
        assert!((2_800..3_200).contains(&failed), "{failed}");
    }

    #[test]
    fn invalid_faults_are_rejected_with_the_field_named() {
        let faults = FaultSet::default();
        let cases = [
            (latency(0.0, 0.0, 10.0), "latency_ms"),
            (latency(100.0, 0.0, 0.0), "duration_seconds"),
            (latency(100.0, -1.0, 10.0), "ramp_seconds"),
            (latency(f64::NAN, 0.0, 10.0), "finite"),
            (
                FaultRequest {
                    kind: FaultKind::Errors,
                    error_rate: 1.5,
                    ..latency(0.0, 0.0, 10.0)
                },
                "error_rate",
            ),
        ];
        for (spec, field) in cases {
            let err = faults.add(spec, Instant::now()).expect_err(field);
            assert!(err.message.contains(field), "{}", err.message);
        }
        assert!(faults.active(Instant::now()).is_empty());
    }
}
