//! The detector's decisions, tick by tick, as plain data: which services are
//! degraded, who is to blame, and which reports open, change or resolve.
//!
//! Pure: the daemon feeds it history and observations read from Prometheus
//! and turns its [`ReportEvent`]s into AnomalyReports. Reports are opened per
//! *culprit*: a caller that is slow only because its callee is slow appears
//! in the culprit's evidence, not in a report of its own.

use std::collections::{BTreeMap, BTreeSet};

use homeostat_api::{Severity, Signal};
use ndarray::Array2;

use crate::availability::{self, Reach};
use crate::culprit::{CallEdge, Localised, Symptom, localise};
use crate::model::{
    Baseline, DebounceConfig, Direction, FitError, JointModel, NoveltyConfig, NoveltyScorer, Phase,
    Scale, ScoringConfig, SeriesModel, Tick, Transition,
};
use crate::shared;

/// One series: a service and a signal.
pub type SeriesKey = (String, Signal);
/// A call from one service to another.
pub type EdgeKey = (String, String);

/// Values at one instant; a series missing from the maps has no data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub series: BTreeMap<SeriesKey, f64>,
    /// Client-side p99 latency per caller → callee.
    pub edges: BTreeMap<EdgeKey, f64>,
    /// Per callee: what its callers' calls to it got back.
    pub reach: BTreeMap<String, Reach>,
    /// Per service: the highest `up` of its scrape targets (0: all down).
    pub targets_up: BTreeMap<String, f64>,
}

/// `(unix_seconds, value)` points per series, for fitting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub series: BTreeMap<SeriesKey, Vec<(i64, f64)>>,
    pub edges: BTreeMap<EdgeKey, Vec<(i64, f64)>>,
}

/// Tuning of the engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    pub scoring: ScoringConfig,
    pub debounce: DebounceConfig,
    pub novelty: NoveltyConfig,
    /// Score from which a caller's calls to a callee count as slowed.
    pub edge_threshold: f64,
    /// Gaussians in each service's joint model; 0 turns it off.
    pub joint_components: usize,
    /// The rate window of the queries: with the request rate it tells how
    /// many requests a latency quantile was read from.
    pub rate_window_seconds: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            scoring: ScoringConfig::default(),
            debounce: DebounceConfig::default(),
            novelty: NoveltyConfig::default(),
            edge_threshold: 0.5,
            joint_components: 2,
            rate_window_seconds: 20.0,
        }
    }
}

/// Novelty onset from which a deviation held within the next
/// `stale_hold` is news, and opens after the usual hold rather than the
/// longer one for a deviation the series has shown lately: the value went
/// beyond where the series has been lately by a tenth of that range (a
/// novelty of 0.5 is one bin beyond it, such as a slowdown the service
/// showed an hour ago, met again a few milliseconds slower). The baseline
/// confirms it by holding the score above the threshold; it may do so a
/// little later, as a consumer's lag leaves its usual few events well before
/// it passes the 500-event floor.
pub const NEWS_OPENS: f64 = 0.55;

/// Smallest spread of a latency baseline (log scale). The OMS's latency
/// buckets are 25% apart, so a p99 cannot be read finer than about one
/// bucket, and services that share the machine and the database with a
/// failing one swing by about 2x while a remediation moves its load (the
/// demo saw fulfillment's and inventory's p99 at 2.0–2.3x during a reroute,
/// against baselines fitted on a minute). At 0.15 a rise must reach about
/// 2.5x to open (score 0.7); 2x scores 0.57, 3x 0.77, 10x 0.94.
pub const LATENCY_MIN_SPREAD: f64 = 0.15;

/// Smallest latency increase that can be an incident, in seconds: below
/// it no customer notices, whatever the ratio to a millisecond baseline.
/// Services that share a node stall together for tens of milliseconds when
/// a pod starts on it (the one-node cluster saw inventory's, payment's and
/// fulfillment's p99 go from 5 ms to 25–40 ms for one rate window while a
/// scale action started a tax pod): 8x, and no incident.
pub const LATENCY_MIN_EFFECT_SECONDS: f64 = 0.05;

/// How a signal is compared and which way is harmful.
pub fn signal_model(signal: Signal) -> (Scale, Direction) {
    match signal {
        Signal::LatencyP50 | Signal::LatencyP95 | Signal::LatencyP99 => (Scale::Log, Direction::Up),
        Signal::ErrorRatio => (Scale::Linear, Direction::Up),
        // Traffic growth is business, not an incident; traffic loss is.
        Signal::RequestRate => (Scale::Log, Direction::Down),
        // Never fitted (see `availability`): the share not answering.
        Signal::Availability => (Scale::Linear, Direction::Up),
        // A backlog is harmful as it grows; an empty one never is.
        Signal::ConsumerLag | Signal::OutboxAge => (Scale::Linear, Direction::Up),
    }
}

/// Smallest spread of a consumer-lag baseline, in events: a consumer that
/// keeps up reads 0 most scrapes and a burst's worth now and then, a spread
/// of nothing that would make one burst an incident.
pub const CONSUMER_LAG_MIN_SPREAD: f64 = 50.0;

/// Smallest growth of a consumer's lag that can be an incident, in events:
/// a few seconds of the OMS's event traffic at its usual rates.
pub const CONSUMER_LAG_MIN_EFFECT: f64 = 500.0;

/// Smallest spread of an outbox-age baseline, in seconds: the relay
/// publishes every fraction of a second, so the oldest event is young.
pub const OUTBOX_AGE_MIN_SPREAD_SECONDS: f64 = 1.0;

/// Smallest growth of the outbox's oldest event's age that can be an
/// incident: events held back this long are late for whoever waits on them.
pub const OUTBOX_AGE_MIN_EFFECT_SECONDS: f64 = 10.0;

/// Requests that must lie above a latency quantile before it is judged.
/// With fewer, the quantile is one of the few slowest requests of the window
/// (interpolated inside a histogram bucket), and one slow request holds a
/// low-traffic service over its band for a whole window: a drained payment
/// provider, probed twice a second, kept its report open for a minute after
/// it healed because one probe in forty waited on an fsync.
const REQUESTS_ABOVE_QUANTILE: f64 = 5.0;

/// Whether a latency quantile read from `requests` requests says anything:
/// p99 needs 500 requests in the window, p95 100, p50 10.
pub fn enough_requests(signal: Signal, requests: f64) -> bool {
    let quantile = match signal {
        Signal::LatencyP50 => 0.5,
        Signal::LatencyP95 => 0.95,
        Signal::LatencyP99 => 0.99,
        Signal::ErrorRatio
        | Signal::RequestRate
        | Signal::Availability
        | Signal::ConsumerLag
        | Signal::OutboxAge => return true,
    };
    requests * (1.0 - quantile) >= REQUESTS_ABOVE_QUANTILE - 1e-9
}

/// A fitted series' model, with the floors above for the signals that
/// have them.
fn model_for(signal: Signal, baseline: Baseline, direction: Direction) -> SeriesModel {
    let floors = match signal {
        _ if signal.is_latency() => Some((LATENCY_MIN_SPREAD, LATENCY_MIN_EFFECT_SECONDS)),
        Signal::ConsumerLag => Some((CONSUMER_LAG_MIN_SPREAD, CONSUMER_LAG_MIN_EFFECT)),
        Signal::OutboxAge => Some((OUTBOX_AGE_MIN_SPREAD_SECONDS, OUTBOX_AGE_MIN_EFFECT_SECONDS)),
        _ => None,
    };
    match floors {
        Some((spread, effect)) => {
            SeriesModel::new(baseline.with_min_spread(spread), direction).with_min_effect(effect)
        }
        None => SeriesModel::new(baseline, direction),
    }
}

/// What a report should say now.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportUpdate {
    pub service: String,
    pub signal: Signal,
    pub score: f64,
    pub peak_score: f64,
    pub severity: Severity,
    pub observed: f64,
    /// `[lower, centre, upper]` in the signal's units.
    pub band: [f64; 3],
    pub culprit: Option<Localised>,
    pub opened_at: i64,
    pub evaluated_at: i64,
    /// The detector lacks data for this series this tick.
    pub degraded: bool,
}

/// A change to the reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportEvent {
    Open(ReportUpdate),
    Update(ReportUpdate),
    Resolve { update: ReportUpdate, at: i64 },
}

impl ReportEvent {
    pub fn update(&self) -> &ReportUpdate {
        match self {
            ReportEvent::Open(u)
            | ReportEvent::Update(u)
            | ReportEvent::Resolve { update: u, .. } => u,
        }
    }
}

/// An anomaly being reported, keyed by its service.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub signal: Signal,
    pub opened_at: i64,
    pub peak_score: f64,
    last: Option<ReportUpdate>,
}

/// How long a service explained as a culprit's symptom stays one after its
/// culprit's report last stood open, while its own signals are not back.
/// Long enough for the culprit's remediation to be undone (the sample
/// policies' stable times are 1–2 minutes) and its callers' rate windows to
/// drain; short enough that a caller which stays degraded on its own is
/// reported within minutes.
pub const SYMPTOM_MEMORY_SECONDS: i64 = 300;

/// A service degraded because of another: it opens no report of its own
/// until its own signals are back (its phase is quiet), so a caller whose
/// window still drains a resolved culprit's effect, or that runs degraded
/// while the culprit's remediation is in force, is not blamed.
#[derive(Debug, Clone, PartialEq)]
struct SymptomOf {
    culprit: String,
    /// Last tick the culprit's report was open.
    explained_at: i64,
}

/// Scores of one tick, for metrics and charts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickScores {
    pub series: BTreeMap<SeriesKey, Tick>,
    /// `[lower, centre, upper]` of each scored series: the band outside
    /// which its score passes the report threshold.
    pub bands: BTreeMap<SeriesKey, [f64; 3]>,
    pub joint: BTreeMap<String, f64>,
    pub edges: BTreeMap<EdgeKey, Tick>,
}

/// The result of one tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickOutcome {
    pub scores: TickScores,
    pub events: Vec<ReportEvent>,
    /// Services whose deviation this tick found began together with
    /// another's no call connects (`shared`): held for the long hold.
    pub held_as_shared: Vec<String>,
}

/// Models, debouncing state and open incidents.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    series: BTreeMap<SeriesKey, SeriesModel>,
    edges: BTreeMap<EdgeKey, SeriesModel>,
    joint: BTreeMap<String, JointModel>,
    phases: BTreeMap<String, Phase>,
    incidents: BTreeMap<String, Incident>,
    symptoms: BTreeMap<String, SymptomOf>,
    /// When one of each service's series last left where it has been lately.
    last_news: BTreeMap<String, i64>,
    /// Services whose deviation began with another's they have no calls
    /// to or from (`shared`): held as long as one without news, until quiet.
    shared_onset: BTreeSet<String>,
}

/// Why fitting produced no model for a series (the others still fit).
#[derive(Debug, Clone, PartialEq)]
pub struct FitProblem {
    pub series: String,
    pub error: FitError,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Self {
            config,
            series: BTreeMap::new(),
            edges: BTreeMap::new(),
            joint: BTreeMap::new(),
            phases: BTreeMap::new(),
            incidents: BTreeMap::new(),
            symptoms: BTreeMap::new(),
            last_news: BTreeMap::new(),
            shared_onset: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Fits every model from `history`, replacing earlier fits. Debouncing
    /// state and open incidents carry over. Returns the series that could not
    /// be fitted; they are not scored until a later fit succeeds.
    pub fn fit(&mut self, history: &History) -> Vec<FitProblem> {
        let mut problems = Vec::new();
        // Where a series has been lately outlives its baseline's refits.
        let mut previous = std::mem::take(&mut self.series);
        let callees: BTreeSet<&str> = history.edges.keys().map(|(_, c)| c.as_str()).collect();
        let window = self.config.rate_window_seconds;
        let rates: BTreeMap<&str, BTreeMap<i64, f64>> = history
            .series
            .iter()
            .filter(|((_, signal), _)| *signal == Signal::RequestRate)
            .map(|((service, _), points)| (service.as_str(), points.iter().copied().collect()))
            .collect();
        for ((service, signal), points) in &history.series {
            // A quantile is fitted on the windows in which it can be judged,
            // as it is scored: a drained provider's p99 over forty probes is
            // no baseline for its p99 once customers' traffic comes back.
            let judged: Vec<(i64, f64)>;
            let points = match rates.get(service.as_str()) {
                Some(rate) if signal.is_latency() => {
                    judged = points
                        .iter()
                        .filter(|(t, _)| {
                            rate.get(t)
                                .is_some_and(|r| enough_requests(*signal, r * window))
                        })
                        .copied()
                        .collect();
                    &judged
                }
                _ => points,
            };
            let (scale, mut direction) = signal_model(*signal);
            // Traffic loss is judged where customers arrive. A callee's
            // traffic follows its callers' routing: a reroute away from it
            // must not keep its report open once it is healthy again.
            if *signal == Signal::RequestRate && callees.contains(service.as_str()) {
                direction = Direction::Neither;
            }
            match Baseline::fit(points, scale) {
                Ok(b) => {
                    let key = (service.clone(), *signal);
                    let novelty = previous.remove(&key).and_then(|m| m.novelty).or_else(|| {
                        let values: Vec<f64> = points.iter().map(|p| p.1).collect();
                        NoveltyScorer::calibrated(self.config.novelty, &values)
                    });
                    self.series
                        .insert(key, model_for(*signal, b, direction).with_novelty(novelty));
                }
                Err(error) => problems.push(FitProblem {
                    series: format!("{service} {signal}"),
                    error,
                }),
            }
        }
        self.edges.clear();
        for ((caller, callee), points) in &history.edges {
            if let Ok(b) = Baseline::fit(points, Scale::Log) {
                self.edges.insert(
                    (caller.clone(), callee.clone()),
                    SeriesModel::new(b.with_min_spread(LATENCY_MIN_SPREAD), Direction::Up)
                        .with_min_effect(LATENCY_MIN_EFFECT_SECONDS),
                );
            }
        }
        self.fit_joint(history);
        problems
    }

    fn fit_joint(&mut self, history: &History) {
        self.joint.clear();
        if self.config.joint_components == 0 {
            return;
        }
        for service in self.services() {
            let rows = self.joint_rows(&service, history);
            let Some(rows) = rows else { continue };
            if let Ok(model) = JointModel::fit(&rows, self.config.joint_components) {
                self.joint.insert(service, model);
            }
        }
    }

    /// Deviation vectors (one column per signal) at the instants where every
    /// signal of `service` has a value.
    fn joint_rows(&self, service: &str, history: &History) -> Option<Array2<f64>> {
        let mut by_time: BTreeMap<i64, [f64; 5]> = BTreeMap::new();
        for (column, signal) in Signal::OF_REQUESTS.iter().enumerate() {
            let key = (service.to_owned(), *signal);
            let model = self.series.get(&key)?;
            for &(t, v) in history.series.get(&key)? {
                let row = by_time.entry(t).or_insert([f64::NAN; 5]);
                row[column] = model.joint_deviation_at(t, v);
            }
        }
        let complete: Vec<[f64; 5]> = by_time
            .into_values()
            .filter(|r| r.iter().all(|v| v.is_finite()))
            .collect();
        let mut rows = Array2::zeros((complete.len(), 5));
        for (i, r) in complete.iter().enumerate() {
            for (j, v) in r.iter().enumerate() {
                rows[[i, j]] = *v;
            }
        }
        Some(rows)
    }

    fn services(&self) -> Vec<String> {
        let mut services: Vec<String> = self.series.keys().map(|k| k.0.clone()).collect();
        services.dedup();
        services
    }

    /// The services judged this tick: those with a fitted series, and those
    /// only their scrape targets or callers speak of (a service that serves
    /// no requests of its own, such as an event consumer, can still die).
    fn subjects(&self, observed: &Observation) -> BTreeSet<String> {
        let mut subjects: BTreeSet<String> = self.services().into_iter().collect();
        subjects.extend(observed.targets_up.keys().cloned());
        subjects.extend(observed.reach.keys().cloned());
        subjects
    }

    /// Marks the deviations about to open that began together with another
    /// in a service no slowed calls connect them to (`shared`, rules 1 and
    /// 2); a mark lasts until its service is quiet again. Returns the newly
    /// marked.
    fn mark_shared_onsets(
        &mut self,
        now: i64,
        strongest: &BTreeMap<String, (Signal, f64)>,
        edges: &BTreeMap<EdgeKey, Tick>,
    ) -> Vec<String> {
        let phases = &self.phases;
        self.shared_onset
            .retain(|service| phases.get(service).is_some_and(|p| *p != Phase::Quiet));
        let threshold = self.config.debounce.threshold;
        let candidates: Vec<(String, i64)> = strongest
            .iter()
            .filter(|(_, (signal, score))| signal.is_latency() && *score >= threshold)
            .filter(|(service, _)| !self.incidents.contains_key(*service))
            .filter_map(
                |(service, _)| match phases.get(service).copied().unwrap_or_default() {
                    Phase::Open { .. } => None,
                    Phase::Pending { since } => Some((service.clone(), since)),
                    Phase::Quiet => Some((service.clone(), now)),
                },
            )
            .collect();
        let slowed: Vec<EdgeKey> = edges
            .iter()
            .filter(|(_, tick)| tick.score >= self.config.edge_threshold)
            .map(|(call, _)| call.clone())
            .collect();
        shared::shared_onsets(&candidates, &slowed)
            .into_iter()
            .filter(|service| self.shared_onset.insert(service.clone()))
            .collect()
    }

    /// Whether any series has a model.
    pub fn is_fitted(&self) -> bool {
        !self.series.is_empty()
    }

    /// Continues an anomaly reported before a restart: its service is open
    /// since `opened_at` and its report is updated, not opened again.
    pub fn resume(&mut self, service: &str, signal: Signal, opened_at: i64, peak_score: f64) {
        self.phases.insert(
            service.to_owned(),
            Phase::Open {
                since: opened_at,
                calm_since: None,
            },
        );
        self.incidents.insert(
            service.to_owned(),
            Incident {
                signal,
                opened_at,
                peak_score,
                last: None,
            },
        );
    }

    pub fn incidents(&self) -> &BTreeMap<String, Incident> {
        &self.incidents
    }

    /// One evaluation at `now`. `None` means no data at all (Prometheus
    /// unreachable): nothing opens or resolves, open reports are marked degraded.
    pub fn tick(&mut self, now: i64, observation: Option<&Observation>) -> TickOutcome {
        let empty = Observation::default();
        let observed = observation.unwrap_or(&empty);
        let subjects = self.subjects(observed);
        let scores = self.score(now, observed, &subjects);

        // Per service: the strongest signal, and whether it holds.
        let mut strongest: BTreeMap<String, (Signal, f64)> = BTreeMap::new();
        for ((service, signal), tick) in &scores.series {
            let entry = strongest.entry(service.clone()).or_insert((*signal, -1.0));
            if tick.score > entry.1 {
                *entry = (*signal, tick.score);
            }
        }
        for (service, joint) in &scores.joint {
            if let Some(entry) = strongest.get_mut(service)
                && *joint > entry.1
            {
                // The combination is off while no value alone is: blame the
                // signal that strays furthest.
                let signal = scores
                    .series
                    .iter()
                    .filter(|((s, _), _)| s == service)
                    .max_by(|a, b| a.1.z.abs().total_cmp(&b.1.z.abs()))
                    .map_or(entry.0, |((_, sig), _)| *sig);
                *entry = (signal, *joint);
            }
        }
        for ((service, _), tick) in &scores.series {
            if tick.novelty >= NEWS_OPENS {
                self.last_news.insert(service.clone(), now);
            }
        }
        let held_as_shared = self.mark_shared_onsets(now, &strongest, &scores.edges);
        let mut resolved = Vec::new();
        for service in subjects {
            let score = strongest.get(&service).map(|s| s.1);
            let newsworthy = self
                .last_news
                .get(&service)
                .is_some_and(|at| now - at <= self.config.debounce.stale_hold_seconds);
            let debounce = if newsworthy && !self.shared_onset.contains(&service) {
                self.config.debounce
            } else {
                self.config.debounce.without_news()
            };
            let phase = self.phases.entry(service.clone()).or_default();
            if let Transition::Resolved { at } = phase.observe(&debounce, now, score) {
                resolved.push((service, at));
            }
        }

        // Localise among everything degraded now, pending included, so a
        // caller that crossed the threshold a tick before its callee is not
        // reported as the culprit.
        let threshold = self.config.debounce.threshold;
        // A culprit whose report is still open keeps explaining its
        // symptoms while it recovers: a caller's rate window drains later
        // than its callee's, and must not become a culprit of its own then.
        let symptoms: Vec<Symptom> = strongest
            .iter()
            .filter_map(|(service, &(signal, score))| {
                // A callee leaving some of its callers' calls unanswered
                // explains their slowdown even while too few go unanswered,
                // or for too short a time, to report it (a restart).
                let unanswering = scores
                    .series
                    .get(&(service.clone(), Signal::Availability))
                    .is_some_and(|t| t.observed >= availability::UNANSWERED_EXPLAINS_CALLERS);
                if score < threshold && !unanswering && !self.incidents.contains_key(service) {
                    return None;
                }
                let since = match self.phases.get(service).copied().unwrap_or_default() {
                    Phase::Open { since, .. } | Phase::Pending { since } => since,
                    Phase::Quiet => now,
                };
                let tick = scores.series.get(&(service.clone(), signal))?;
                // Failing answers or none at all: its callers' calls to it
                // fail, however quick each one is.
                let failing = unanswering
                    || scores
                        .series
                        .get(&(service.clone(), Signal::ErrorRatio))
                        .is_some_and(|t| t.score >= threshold);
                Some(Symptom {
                    service: service.clone(),
                    signal,
                    score,
                    observed: tick.observed,
                    expected: tick.expected,
                    since,
                    failing,
                })
            })
            .collect();
        let edges: Vec<CallEdge> = scores
            .edges
            .iter()
            .map(|((caller, callee), tick)| CallEdge {
                caller: caller.clone(),
                callee: callee.clone(),
                score: tick.score,
                observed: tick.observed,
                expected: tick.expected,
            })
            .collect();
        let culprits = localise(&symptoms, &edges, self.config.edge_threshold);
        self.remember_symptoms(now);

        let mut events = Vec::new();
        let degraded = observation.is_none();
        for found in culprits {
            let service = found.culprit.service.clone();
            if !self.phases.get(&service).is_some_and(Phase::is_open) {
                continue;
            }
            if !self.incidents.contains_key(&service) && self.symptoms.contains_key(&service) {
                continue;
            }
            // A report keeps the signal it opened with.
            let signal = self
                .incidents
                .get(&service)
                .map_or(found.culprit.signal, |i| i.signal);
            let Some(update) = self.update_for(now, signal, &found, &scores, degraded) else {
                continue;
            };
            match self.incidents.get_mut(&service) {
                Some(incident) => {
                    incident.peak_score = incident.peak_score.max(update.score);
                    let update = ReportUpdate {
                        opened_at: incident.opened_at,
                        peak_score: incident.peak_score,
                        ..update
                    };
                    incident.last = Some(update.clone());
                    events.push(ReportEvent::Update(update));
                }
                None => {
                    self.incidents.insert(
                        service.clone(),
                        Incident {
                            signal: update.signal,
                            opened_at: update.opened_at,
                            peak_score: update.score,
                            last: Some(update.clone()),
                        },
                    );
                    events.push(ReportEvent::Open(update));
                }
            }
            for symptom in &found.explains {
                self.symptoms.insert(
                    symptom.clone(),
                    SymptomOf {
                        culprit: service.clone(),
                        explained_at: now,
                    },
                );
            }
        }
        // Open incidents the localisation did not mention this tick (no data,
        // or now explained by another culprit) are kept up to date as they are.
        for (service, incident) in &mut self.incidents {
            if events.iter().any(|e| &e.update().service == service) {
                continue;
            }
            if let Some(last) = &incident.last {
                let update = ReportUpdate {
                    evaluated_at: now,
                    degraded: degraded || !scores.series.keys().any(|(s, _)| s == service),
                    ..last.clone()
                };
                events.push(ReportEvent::Update(update));
            }
        }
        for (service, at) in resolved {
            if let Some(incident) = self.incidents.remove(&service) {
                let update = incident
                    .last
                    .clone()
                    .map(|last| ReportUpdate {
                        evaluated_at: now,
                        degraded: false,
                        ..last
                    })
                    .unwrap_or_else(|| self.quiet_update(&service, &incident, now, &scores));
                events.retain(|e| e.update().service != service);
                events.push(ReportEvent::Resolve { update, at });
            }
        }
        TickOutcome {
            scores,
            events,
            held_as_shared,
        }
    }

    /// Keeps a symptom while its culprit's report is open and for
    /// [`SYMPTOM_MEMORY_SECONDS`] after; lets it go once its own signals
    /// are back, so a later degradation is its own.
    fn remember_symptoms(&mut self, now: i64) {
        let (phases, incidents) = (&self.phases, &self.incidents);
        self.symptoms.retain(|service, symptom| {
            if incidents.contains_key(&symptom.culprit) {
                symptom.explained_at = now;
            }
            let degraded = !matches!(phases.get(service), None | Some(Phase::Quiet));
            degraded && now - symptom.explained_at <= SYMPTOM_MEMORY_SECONDS
        });
    }

    fn score(
        &mut self,
        now: i64,
        observed: &Observation,
        subjects: &BTreeSet<String>,
    ) -> TickScores {
        let config = self.config.scoring;
        let mut scores = TickScores::default();
        let band_width = config.z_at(self.config.debounce.threshold);
        let window = self.config.rate_window_seconds;
        for (key, model) in &mut self.series {
            let requests = observed
                .series
                .get(&(key.0.clone(), Signal::RequestRate))
                .map_or(f64::INFINITY, |rate| rate * window);
            if let Some(&value) = observed.series.get(key)
                && value.is_finite()
                && enough_requests(key.1, requests)
            {
                scores
                    .series
                    .insert(key.clone(), model.observe(&config, now, value));
                scores
                    .bands
                    .insert(key.clone(), model.band(now, band_width));
            }
        }
        for (key, model) in &mut self.edges {
            if let Some(&value) = observed.edges.get(key)
                && value.is_finite()
            {
                scores
                    .edges
                    .insert(key.clone(), model.observe(&config, now, value));
            }
        }
        for service in subjects {
            let judged = availability::judge(
                observed.reach.get(service).copied(),
                observed.targets_up.get(service).copied(),
                self.config.debounce.threshold,
            );
            if let Some(judged) = judged {
                let key = (service.clone(), Signal::Availability);
                let tick = Tick {
                    score: judged.score,
                    // No spread to count in: it stays out of the joint blame.
                    z: 0.0,
                    observed: judged.unanswered,
                    expected: 0.0,
                    // Calls going unanswered are news however often seen.
                    news: judged.score,
                    novelty: judged.score,
                };
                scores.series.insert(key.clone(), tick);
                scores
                    .bands
                    .insert(key, [0.0, 0.0, availability::UNANSWERED_AT_THRESHOLD]);
            }
        }
        for (service, model) in &self.joint {
            let vector: Option<Vec<f64>> = Signal::OF_REQUESTS
                .iter()
                .map(|s| {
                    let key = (service.clone(), *s);
                    let tick = scores.series.get(&key)?;
                    Some(
                        self.series
                            .get(&key)
                            .map_or(tick.z, |m| m.joint_deviation(tick)),
                    )
                })
                .collect();
            if let Some(vector) = vector {
                scores.joint.insert(
                    service.clone(),
                    model.score(ndarray::ArrayView1::from(&vector)),
                );
            }
        }
        scores
    }

    fn update_for(
        &self,
        now: i64,
        signal: Signal,
        found: &Localised,
        scores: &TickScores,
        degraded: bool,
    ) -> Option<ReportUpdate> {
        let culprit = &found.culprit;
        let key = (culprit.service.clone(), signal);
        let tick = scores.series.get(&key)?;
        let band = *scores.bands.get(&key)?;
        let observed = tick.observed;
        Some(ReportUpdate {
            service: culprit.service.clone(),
            signal,
            score: culprit.score.clamp(0.0, 1.0),
            peak_score: culprit.score.clamp(0.0, 1.0),
            severity: self.config.scoring.severity(culprit.score),
            observed,
            band,
            culprit: Some(found.clone()),
            opened_at: culprit.since,
            evaluated_at: now,
            degraded,
        })
    }

    /// An update for a resumed incident that never got a scored tick.
    fn quiet_update(
        &self,
        service: &str,
        incident: &Incident,
        now: i64,
        scores: &TickScores,
    ) -> ReportUpdate {
        let key = (service.to_owned(), incident.signal);
        let band_width = self.config.scoring.z_at(self.config.debounce.threshold);
        let band = self
            .series
            .get(&key)
            .map_or([0.0; 3], |m| m.band(now, band_width));
        let tick = scores.series.get(&key);
        ReportUpdate {
            service: service.to_owned(),
            signal: incident.signal,
            score: tick.map_or(0.0, |t| t.score),
            peak_score: incident.peak_score,
            severity: Severity::Warning,
            observed: tick.map_or(band[1], |t| t.observed),
            band,
            culprit: None,
            opened_at: incident.opened_at,
            evaluated_at: now,
            degraded: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::noise;

    const STEP: i64 = 5;
    const SERVICES: [&str; 3] = ["orders", "payment-primary", "tax"];

    /// Normal values of a synthetic OMS: orders waits on payment and tax.
    fn normal(service: &str, signal: Signal, i: usize) -> f64 {
        let jitter = 1.0 + 0.04 * noise(i * 7 + service.len() * 13 + signal as usize);
        // Tens of milliseconds, as the OMS's services on a busy node: above
        // the smallest effect that can be an incident.
        let own = match service {
            "payment-primary" => 0.060,
            "tax" => 0.020,
            _ => 0.040,
        };
        let latency = |base: f64| base * jitter;
        match signal {
            Signal::LatencyP50 => latency(own),
            Signal::LatencyP95 => latency(own * 2.0),
            Signal::LatencyP99 => latency(own * 3.0),
            Signal::ErrorRatio | Signal::Availability => 0.0,
            Signal::RequestRate => 40.0 * jitter,
            // A consumer that keeps up: a handful of events in flight.
            Signal::ConsumerLag => 5.0 * jitter,
            Signal::OutboxAge => 0.2 * jitter,
        }
    }

    /// Observation at tick `i`, with payment-primary `slowdown` times slower.
    fn observe(i: usize, slowdown: f64) -> Observation {
        let mut o = Observation::default();
        for service in SERVICES {
            for signal in Signal::OF_REQUESTS {
                let mut v = normal(service, signal, i);
                let is_latency = signal.is_latency();
                if is_latency && service != "tax" {
                    v *= slowdown;
                }
                o.series.insert((service.into(), signal), v);
            }
        }
        let edge = |i: usize, base: f64| base * (1.0 + 0.04 * noise(i * 11 + 5));
        o.edges.insert(
            ("orders".into(), "payment-primary".into()),
            edge(i, 0.180) * slowdown,
        );
        o.edges
            .insert(("orders".into(), "tax".into()), edge(i, 0.060));
        o
    }

    /// 720 ticks of history, each observed by `observation`.
    fn history(observation: impl Fn(usize) -> Observation) -> History {
        let mut history = History::default();
        for i in 0..720 {
            let t = i as i64 * STEP;
            let o = observation(i);
            for (k, v) in o.series {
                history.series.entry(k).or_default().push((t, v));
            }
            for (k, v) in o.edges {
                history.edges.entry(k).or_default().push((t, v));
            }
        }
        history
    }

    fn fitted() -> Engine {
        let mut engine = Engine::new(EngineConfig::default());
        assert!(engine.fit(&history(|i| observe(i, 1.0))).is_empty());
        engine
    }

    fn run(engine: &mut Engine, ticks: std::ops::Range<usize>, slowdown: f64) -> Vec<ReportEvent> {
        ticks
            .flat_map(|i| {
                engine
                    .tick(i as i64 * STEP, Some(&observe(i, slowdown)))
                    .events
            })
            .collect()
    }

    fn opened(events: &[ReportEvent]) -> Vec<&ReportUpdate> {
        events
            .iter()
            .filter_map(|e| match e {
                ReportEvent::Open(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn normal_traffic_opens_nothing() {
        let mut engine = fitted();
        assert!(run(&mut engine, 720..1440, 1.0).is_empty());
    }

    #[test]
    fn a_slowdown_the_service_showed_lately_must_hold_longer_to_open() {
        let mut engine = fitted();
        // Opened on the first tick at least the hold after the start.
        let on_a_tick = |seconds: i64| (seconds + STEP - 1) / STEP * STEP;
        let hold = on_a_tick(engine.config.debounce.hold_seconds);
        let stale_hold = on_a_tick(engine.config.debounce.stale_hold_seconds);
        let held = |events: &[ReportEvent]| {
            let open = opened(events);
            assert_eq!(open.len(), 1, "{events:?}");
            open[0].evaluated_at - open[0].opened_at
        };
        let mut events = run(&mut engine, 720..760, 6.0);
        assert_eq!(held(&events), hold, "news: the usual hold");
        events = run(&mut engine, 760..900, 1.0);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ReportEvent::Resolve { .. }))
        );
        // The same slowdown again: payment has been there lately.
        events = run(&mut engine, 900..960, 6.0);
        assert_eq!(held(&events), stale_hold, "no news: the longer hold");
    }

    #[test]
    fn a_slow_payment_provider_opens_one_report_naming_it() {
        let mut engine = fitted();
        let events = run(&mut engine, 720..760, 6.0);
        let opened = opened(&events);
        assert_eq!(opened.len(), 1, "{opened:#?}");
        let report = opened[0];
        assert_eq!(report.service, "payment-primary");
        let culprit = report.culprit.as_ref().expect("culprit");
        assert_eq!(culprit.explains, ["orders"]);
        assert!(report.observed > report.band[2], "{report:?}");
        // It opened after the hold time, dated from the first degraded tick.
        assert_eq!(report.opened_at, 720 * STEP);
        // While open it is updated, never opened again.
        let later = run(&mut engine, 760..800, 6.0);
        assert!(opened_count(&later) == 0 && !later.is_empty());
    }

    fn resolves(events: &[ReportEvent], service: &str) -> bool {
        events
            .iter()
            .any(|e| matches!(e, ReportEvent::Resolve { update, .. } if update.service == service))
    }

    fn opened_count(events: &[ReportEvent]) -> usize {
        opened(events).len()
    }

    #[test]
    fn recovery_resolves_the_report_after_the_quiet_time() {
        let mut engine = fitted();
        run(&mut engine, 720..760, 6.0);
        let events = run(&mut engine, 760..800, 1.0);
        let resolved: Vec<i64> = events
            .iter()
            .filter_map(|e| match e {
                ReportEvent::Resolve { at, update } => {
                    assert_eq!(update.service, "payment-primary");
                    Some(*at)
                }
                _ => None,
            })
            .collect();
        assert_eq!(resolved, [760 * STEP]);
        assert!(engine.incidents().is_empty());
    }

    #[test]
    fn no_data_opens_nothing_and_marks_open_reports_degraded() {
        let mut engine = fitted();
        for i in 720..800 {
            assert!(engine.tick(i * STEP, None).events.is_empty());
        }
        run(&mut engine, 800..840, 6.0);
        let events = engine.tick(840 * STEP, None).events;
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0], ReportEvent::Update(u) if u.degraded));
    }

    #[test]
    fn scores_are_causal_prefix_equals_full_run() {
        let tick = |engine: &mut Engine, i: usize| {
            let slowdown = if i >= 760 { 6.0 } else { 1.0 };
            engine.tick(i as i64 * STEP, Some(&observe(i, slowdown)))
        };
        let fitted = fitted();
        let mut full = fitted.clone();
        let full: Vec<TickOutcome> = (720..800).map(|i| tick(&mut full, i)).collect();
        let mut prefix = fitted;
        let prefix: Vec<TickOutcome> = (720..770).map(|i| tick(&mut prefix, i)).collect();
        assert_eq!(&full[..50], &prefix[..]);
    }

    #[test]
    fn a_resumed_incident_is_updated_not_reopened() {
        let mut engine = fitted();
        engine.resume("payment-primary", Signal::LatencyP99, 700 * STEP, 0.95);
        let events = run(&mut engine, 720..760, 6.0);
        assert_eq!(opened_count(&events), 0);
        assert!(events.iter().all(|e| e.update().opened_at == 700 * STEP));
    }
    /// Observation at tick `i` with `service`'s traffic scaled by `factor`.
    fn with_traffic(i: usize, slowdown: f64, service: &str, factor: f64) -> Observation {
        let mut o = observe(i, slowdown);
        if let Some(rate) = o.series.get_mut(&(service.to_owned(), Signal::RequestRate)) {
            *rate *= factor;
        }
        o
    }

    #[test]
    fn a_callee_losing_traffic_to_a_reroute_opens_nothing() {
        let mut engine = fitted();
        for i in 720..800 {
            let o = with_traffic(i, 1.0, "payment-primary", 0.05);
            let outcome = engine.tick(i as i64 * STEP, Some(&o));
            assert!(outcome.events.is_empty(), "{:#?}", outcome.events);
            // Still charted: the drop is visible in its z.
            let rate = &outcome.scores.series[&("payment-primary".into(), Signal::RequestRate)];
            assert!(rate.z < -10.0 && rate.score == 0.0, "{rate:?}");
        }
    }

    #[test]
    fn traffic_loss_where_customers_arrive_opens_a_report() {
        let mut engine = fitted();
        let events: Vec<ReportEvent> = (720..760)
            .flat_map(|i| {
                let o = with_traffic(i, 1.0, "orders", 0.05);
                engine.tick(i as i64 * STEP, Some(&o)).events
            })
            .collect();
        let opened = opened(&events);
        assert_eq!(opened.len(), 1, "{opened:#?}");
        assert_eq!(opened[0].service, "orders");
        assert_eq!(opened[0].signal, Signal::RequestRate);
    }

    #[test]
    fn a_rerouted_culprit_resolves_once_its_own_latency_is_normal() {
        let mut engine = fitted();
        run(&mut engine, 720..760, 6.0);
        // Traffic moved away (probes only), the provider still slow: open.
        let still_slow: Vec<ReportEvent> = (760..800)
            .flat_map(|i| {
                let o = with_traffic(i, 6.0, "payment-primary", 0.05);
                engine.tick(i as i64 * STEP, Some(&o)).events
            })
            .collect();
        assert!(
            !still_slow
                .iter()
                .any(|e| matches!(e, ReportEvent::Resolve { .. }))
        );
        // The provider healed while it still gets little traffic: resolved.
        let healed: Vec<ReportEvent> = (800..840)
            .flat_map(|i| {
                let o = with_traffic(i, 1.0, "payment-primary", 0.05);
                engine.tick(i as i64 * STEP, Some(&o)).events
            })
            .collect();
        assert!(resolves(&healed, "payment-primary"), "{healed:#?}");
    }
    #[test]
    fn a_slow_probe_in_a_drained_providers_window_does_not_hold_its_report_open() {
        let mut engine = fitted();
        run(&mut engine, 720..760, 6.0);
        // Healed and drained: probes only, and one of them was slow, which
        // lifts the window's p95 (the second slowest of forty) far above its
        // band for as long as the slow probe stays in the window.
        let healed: Vec<ReportEvent> = (760..840)
            .flat_map(|i| {
                let mut o = with_traffic(i, 1.0, "payment-primary", 0.05);
                let p95 = ("payment-primary".to_owned(), Signal::LatencyP95);
                o.series.insert(p95.clone(), normal(&p95.0, p95.1, i) * 4.0);
                engine.tick(i as i64 * STEP, Some(&o)).events
            })
            .collect();
        assert!(resolves(&healed, "payment-primary"), "{healed:#?}");
    }
    #[test]
    fn a_caller_still_draining_its_window_stays_a_symptom_of_the_recovering_culprit() {
        let mut engine = fitted();
        run(&mut engine, 720..760, 6.0);
        // payment-primary serves normally again; orders and its calls to
        // payment-primary still read slow for a few ticks (their windows lag).
        let events: Vec<ReportEvent> = (760..766)
            .flat_map(|i| {
                let mut o = observe(i, 6.0);
                for signal in [Signal::LatencyP50, Signal::LatencyP95, Signal::LatencyP99] {
                    let key = ("payment-primary".to_owned(), signal);
                    o.series.insert(key.clone(), normal(&key.0, signal, i));
                }
                engine.tick(i as i64 * STEP, Some(&o)).events
            })
            .collect();
        assert_eq!(opened_count(&events), 0, "{events:#?}");
    }
    /// payment-primary healed and drained (probes only, no calls from
    /// orders), orders' latency `orders_factor` times its normal.
    fn rerouted(i: usize, orders_factor: f64) -> Observation {
        let mut o = with_traffic(i, 1.0, "payment-primary", 0.05);
        o.edges
            .remove(&("orders".to_owned(), "payment-primary".to_owned()));
        for signal in [Signal::LatencyP50, Signal::LatencyP95, Signal::LatencyP99] {
            let key = ("orders".to_owned(), signal);
            o.series
                .insert(key, normal("orders", signal, i) * orders_factor);
        }
        o
    }

    fn tick_all(
        engine: &mut Engine,
        ticks: std::ops::Range<usize>,
        observation: impl Fn(usize) -> Observation,
    ) -> Vec<ReportEvent> {
        ticks
            .flat_map(|i| engine.tick(i as i64 * STEP, Some(&observation(i))).events)
            .collect()
    }

    fn opened_on<'a>(events: &'a [ReportEvent], service: &str) -> Vec<&'a ReportUpdate> {
        opened(events)
            .into_iter()
            .filter(|u| u.service == service)
            .collect()
    }

    #[test]
    fn a_symptom_stays_a_symptom_after_its_culprit_resolves_until_its_own_signals_are_back() {
        let mut engine = fitted();
        let fault = run(&mut engine, 720..760, 6.0);
        assert_eq!(
            opened(&fault)[0]
                .culprit
                .as_ref()
                .expect("culprit")
                .explains,
            ["orders"]
        );
        // The reroute in force: payment-primary healed and drained, its
        // report resolves; orders still runs 3x slow on the other provider
        // and no call of it blames anyone.
        let handover = tick_all(&mut engine, 760..800, |i| rerouted(i, 3.0));
        assert!(resolves(&handover, "payment-primary"), "{handover:#?}");
        assert!(opened_on(&handover, "orders").is_empty(), "{handover:#?}");
        // orders back to normal long enough to be quiet, then slow on its
        // own: that is its incident.
        let quiet = tick_all(&mut engine, 800..820, |i| rerouted(i, 1.0));
        assert!(opened(&quiet).is_empty(), "{quiet:#?}");
        let own = tick_all(&mut engine, 820..840, |i| rerouted(i, 3.0));
        let own = opened_on(&own, "orders");
        assert_eq!(own.len(), 1, "{own:#?}");
        assert_eq!(own[0].opened_at, 820 * STEP);
    }

    #[test]
    fn a_symptom_that_stays_degraded_long_after_its_culprit_resolved_is_reported() {
        let mut engine = fitted();
        run(&mut engine, 720..760, 6.0);
        let events = tick_all(&mut engine, 760..900, |i| rerouted(i, 3.0));
        let resolved_at = events
            .iter()
            .find_map(|e| match e {
                ReportEvent::Resolve { update, .. } if update.service == "payment-primary" => {
                    Some(update.evaluated_at)
                }
                _ => None,
            })
            .expect("payment-primary resolved");
        let opened = events
            .iter()
            .find_map(|e| match e {
                ReportEvent::Open(u) if u.service == "orders" => Some(u.evaluated_at),
                _ => None,
            })
            .expect("orders reported in the end");
        assert!(
            opened - resolved_at > SYMPTOM_MEMORY_SECONDS,
            "{opened} vs {resolved_at}"
        );
        assert!(opened - resolved_at <= SYMPTOM_MEMORY_SECONDS + STEP);
    }

    /// The synthetic OMS with its event pipeline: orders' outbox and
    /// notifications' consumer, notifications `behind` events further
    /// behind than usual.
    fn with_events(i: usize, behind: f64) -> Observation {
        let mut o = observe(i, 1.0);
        for (service, signal) in [
            ("notifications", Signal::ConsumerLag),
            ("orders", Signal::OutboxAge),
        ] {
            o.series
                .insert((service.into(), signal), normal(service, signal, i));
        }
        *o.series
            .get_mut(&("notifications".to_owned(), Signal::ConsumerLag))
            .expect("lag") += behind;
        o
    }

    #[test]
    fn a_consumer_falling_behind_is_reported_and_named_not_its_producer() {
        let mut engine = Engine::new(EngineConfig::default());
        assert!(engine.fit(&history(|i| with_events(i, 0.0))).is_empty());
        // A burst of a few hundred events drains: no incident.
        let burst = tick_all(&mut engine, 720..740, |i| {
            with_events(i, if i < 724 { 300.0 } else { 0.0 })
        });
        assert!(burst.is_empty(), "{burst:#?}");
        // Falling behind by 100 events a tick, for good.
        let behind = tick_all(&mut engine, 740..780, |i| {
            with_events(i, (i - 739) as f64 * 100.0)
        });
        let opened = opened(&behind);
        assert_eq!(opened.len(), 1, "{opened:#?}");
        let report = opened[0];
        assert_eq!(
            (report.service.as_str(), report.signal),
            ("notifications", Signal::ConsumerLag)
        );
        let culprit = report.culprit.as_ref().expect("culprit");
        assert_eq!(culprit.culprit.service, "notifications");
        assert!(culprit.explains.is_empty(), "{culprit:?}");
        assert!(
            culprit.evidence[0].starts_with("notifications: its consumer is"),
            "{:?}",
            culprit.evidence
        );
        // Drained (scaled out, say): resolved after the quiet time.
        let drained = tick_all(&mut engine, 780..800, |i| with_events(i, 0.0));
        assert!(resolves(&drained, "notifications"), "{drained:#?}");
    }

    #[test]
    fn a_backlog_leaving_its_usual_range_is_news_when_it_passes_the_floor() {
        let mut engine = Engine::new(EngineConfig::default());
        assert!(engine.fit(&history(|i| with_events(i, 0.0))).is_empty());
        // 200 events more a tick: out of its usual few at once, over the
        // 500-event floor three ticks later.
        let events = tick_all(&mut engine, 720..740, |i| {
            with_events(i, (i - 719) as f64 * 200.0)
        });
        let opened = opened(&events);
        assert_eq!(opened.len(), 1, "{opened:#?}");
        let held = opened[0].evaluated_at - opened[0].opened_at;
        let hold = engine.config.debounce.hold_seconds;
        assert!(held <= hold + STEP, "held {held} s: not the stale hold");
    }

    /// payment-primary dead: none of its own series, every call to it
    /// refused, its scrape target down; orders answers quickly (it rejects).
    fn payment_dead(i: usize) -> Observation {
        let mut o = observe(i, 1.0);
        o.series
            .retain(|(service, _), _| service != "payment-primary");
        o.edges
            .remove(&("orders".to_owned(), "payment-primary".to_owned()));
        o.reach.insert(
            "payment-primary".into(),
            Reach {
                calls: 30.0,
                unanswered: 30.0,
            },
        );
        o.targets_up.insert("payment-primary".into(), 0.0);
        o.targets_up.insert("orders".into(), 1.0);
        o
    }

    #[test]
    fn a_dead_service_opens_a_critical_availability_report_naming_it() {
        let mut engine = fitted();
        let events = tick_all(&mut engine, 720..730, payment_dead);
        let opened = opened(&events);
        assert_eq!(opened.len(), 1, "{opened:#?}");
        let report = opened[0];
        assert_eq!(
            (report.service.as_str(), report.signal, report.severity),
            ("payment-primary", Signal::Availability, Severity::Critical)
        );
        assert_eq!(report.observed, 1.0);
        let evidence = &report.culprit.as_ref().expect("culprit").evidence[0];
        assert!(
            evidence.starts_with("payment-primary does not answer: 100% of calls"),
            "{evidence}"
        );
        // Opened after the hold time (10 s), dated from the first tick.
        assert_eq!(report.opened_at, 720 * STEP);
        assert!(report.evaluated_at - report.opened_at <= 10, "{report:?}");
        // Back: every call answered, the target up again: resolved.
        let back = tick_all(&mut engine, 730..750, |i| {
            let mut o = observe(i, 1.0);
            o.reach.insert(
                "payment-primary".into(),
                Reach {
                    calls: 30.0,
                    unanswered: 0.0,
                },
            );
            o
        });
        assert!(resolves(&back, "payment-primary"), "{back:#?}");
    }

    #[test]
    fn a_service_known_only_by_its_scrape_target_is_reported_when_it_dies() {
        let mut engine = fitted();
        let quiet = tick_all(&mut engine, 720..730, |i| {
            let mut o = observe(i, 1.0);
            o.targets_up.insert("notifications".into(), 1.0);
            o
        });
        assert!(quiet.is_empty(), "{quiet:#?}");
        let dead = tick_all(&mut engine, 730..740, |i| {
            let mut o = observe(i, 1.0);
            o.targets_up.insert("notifications".into(), 0.0);
            o
        });
        let opened = opened(&dead);
        assert_eq!(opened.len(), 1, "{opened:#?}");
        assert_eq!(
            (opened[0].service.as_str(), opened[0].signal),
            ("notifications", Signal::Availability)
        );
    }

    #[test]
    fn a_callers_slowdown_during_a_callees_short_outage_is_the_callees_and_opens_nothing() {
        let mut engine = fitted();
        // tax restarted: a tenth of orders' calls to it refused over the
        // window (too few to report tax), orders' latency 4x meanwhile.
        let events = tick_all(&mut engine, 720..730, |i| {
            let mut o = observe(i, 1.0);
            for signal in [Signal::LatencyP50, Signal::LatencyP95, Signal::LatencyP99] {
                let key = ("orders".to_owned(), signal);
                o.series.insert(key, normal("orders", signal, i) * 4.0);
            }
            o.reach.insert(
                "tax".into(),
                Reach {
                    calls: 40.0,
                    unanswered: 4.0,
                },
            );
            o
        });
        assert!(opened(&events).is_empty(), "{events:#?}");
    }

    #[test]
    fn a_prometheus_outage_is_not_a_dead_service() {
        let mut engine = fitted();
        for i in 720..760 {
            assert!(engine.tick(i as i64 * STEP, None).events.is_empty());
        }
    }

    #[test]
    fn a_quantile_learned_from_probes_alone_is_not_a_baseline_for_customer_traffic() {
        // payment-primary drained during the whole history: 2 requests a
        // second (probes), its tail quantiles those of forty probes.
        let mut engine = Engine::new(EngineConfig::default());
        let problems = engine.fit(&history(|i| with_traffic(i, 1.0, "payment-primary", 0.05)));
        let unfitted: Vec<&str> = problems.iter().map(|p| p.series.as_str()).collect();
        assert_eq!(
            unfitted,
            ["payment-primary latency_p95", "payment-primary latency_p99"]
        );
        // Customers come back; their p99 is twice the probes': nothing opens,
        // the median (fitted on probes, judged all along) keeps watch.
        let events: Vec<ReportEvent> = (720..780)
            .flat_map(|i| {
                let mut o = observe(i, 1.0);
                let p99 = ("payment-primary".to_owned(), Signal::LatencyP99);
                o.series.insert(p99.clone(), normal(&p99.0, p99.1, i) * 2.0);
                engine.tick(i as i64 * STEP, Some(&o)).events
            })
            .collect();
        assert_eq!(opened_count(&events), 0, "{events:#?}");
        assert!(
            engine
                .series
                .contains_key(&("payment-primary".to_owned(), Signal::LatencyP50))
        );
    }

    #[test]
    fn a_bystanders_p99_doubling_under_a_load_shift_opens_nothing_but_tripling_does() {
        // tax's p99 (baseline fitted tight: 4% jitter) while another
        // service's remediation moves load: 2.3x, as the demo saw.
        let tax_p99 = |engine: &mut Engine, factor: f64| -> Vec<ReportEvent> {
            (720..760)
                .flat_map(|i| {
                    let mut o = observe(i, 1.0);
                    let key = ("tax".to_owned(), Signal::LatencyP99);
                    o.series
                        .insert(key.clone(), normal(&key.0, key.1, i) * factor);
                    engine.tick(i as i64 * STEP, Some(&o)).events
                })
                .collect()
        };
        // The per-series floor alone: this synthetic history moves all of a
        // service's signals together, so its joint model would flag any one
        // moving alone.
        let per_series = || {
            let mut engine = Engine::new(EngineConfig {
                joint_components: 0,
                ..EngineConfig::default()
            });
            assert!(engine.fit(&history(|i| observe(i, 1.0))).is_empty());
            engine
        };
        let doubled = tax_p99(&mut per_series(), 2.3);
        assert_eq!(opened_count(&doubled), 0, "{doubled:#?}");
        let tripled = tax_p99(&mut per_series(), 3.0);
        assert_eq!(opened_count(&tripled), 1, "{tripled:#?}");
    }

    #[test]
    fn a_node_wide_stall_of_tens_of_milliseconds_opens_nothing_on_fast_services() {
        // The same OMS ten times faster: p99s of 6 to 18 ms.
        let fast = |i: usize, p99_factor: f64| {
            let mut o = observe(i, 1.0);
            for ((_, signal), v) in o.series.iter_mut() {
                if signal.is_latency() {
                    *v *= 0.1;
                }
                if *signal == Signal::LatencyP99 {
                    *v *= p99_factor;
                }
            }
            o
        };
        let stalled = |factor: f64| {
            // Joint models on: they must not flag what the floor ignores.
            let mut engine = Engine::new(EngineConfig::default());
            assert!(engine.fit(&history(|i| fast(i, 1.0))).is_empty());
            (720..760)
                .flat_map(|i| engine.tick(i as i64 * STEP, Some(&fast(i, factor))).events)
                .collect::<Vec<_>>()
        };
        // Every p99 three times higher: up by 12 to 36 ms, under the floor.
        let small = stalled(3.0);
        assert_eq!(opened_count(&small), 0, "{small:#?}");
        // Ten times: up by 54 to 162 ms, an incident.
        let large = stalled(10.0);
        assert!(opened_count(&large) >= 1, "{large:#?}");
    }

    /// Tick `i` with every service `factor` times slower, as when the node
    /// or the database they share stalls.
    fn stalled(i: usize, factor: f64) -> Observation {
        let mut o = observe(i, factor);
        for ((service, signal), v) in o.series.iter_mut() {
            if service == "tax" && signal.is_latency() {
                *v *= factor;
            }
        }
        if let Some(v) = o.edges.get_mut(&("orders".to_owned(), "tax".to_owned())) {
            *v *= factor;
        }
        o
    }

    #[test]
    fn services_no_call_connects_slowing_together_for_a_window_open_nothing() {
        let mut engine = fitted();
        // Twenty seconds, a rate window: payment and tax are both callees
        // of orders and neither calls the other.
        let mut held = Vec::new();
        let stall: Vec<ReportEvent> = (720..724)
            .flat_map(|i| {
                let outcome = engine.tick(i as i64 * STEP, Some(&stalled(i, 6.0)));
                held.extend(outcome.held_as_shared);
                outcome.events
            })
            .collect();
        // Said once each, when their onsets were found together.
        assert_eq!(held, ["payment-primary", "tax"]);
        let after = run(&mut engine, 724..760, 1.0);
        assert_eq!(opened_count(&stall) + opened_count(&after), 0, "{stall:#?}");
        // The same slowdown of payment alone opens within the usual hold.
        let alone = run(&mut fitted(), 720..724, 6.0);
        assert_eq!(opened_count(&alone), 1, "{alone:#?}");
    }

    #[test]
    fn a_caller_whose_calls_did_not_slow_shares_the_onset_of_its_callee() {
        let mut engine = fitted();
        // Every service slower, every call as quick as ever: orders calls
        // payment and tax, and neither explains it.
        let mut held = Vec::new();
        let events: Vec<ReportEvent> = (720..724)
            .flat_map(|i| {
                let mut o = stalled(i, 6.0);
                o.edges = observe(i, 1.0).edges;
                let outcome = engine.tick(i as i64 * STEP, Some(&o));
                held.extend(outcome.held_as_shared);
                outcome.events
            })
            .collect();
        assert_eq!(held, ["orders", "payment-primary", "tax"]);
        assert_eq!(opened_count(&events), 0, "{events:#?}");
    }

    #[test]
    fn services_slowing_together_for_longer_than_the_long_hold_are_reported() {
        let mut engine = fitted();
        let events: Vec<ReportEvent> = (720..740)
            .flat_map(|i| engine.tick(i as i64 * STEP, Some(&stalled(i, 6.0))).events)
            .collect();
        let open = opened(&events);
        let mut services: Vec<&str> = open.iter().map(|u| u.service.as_str()).collect();
        services.sort();
        assert_eq!(services, ["payment-primary", "tax"], "{open:#?}");
        let stale_hold = engine.config.debounce.stale_hold_seconds;
        for update in open {
            assert!(
                update.evaluated_at - update.opened_at >= stale_hold,
                "{update:?}"
            );
        }
    }

    #[test]
    fn quantiles_need_enough_requests_to_be_judged() {
        assert!(enough_requests(Signal::LatencyP99, 500.0));
        assert!(!enough_requests(Signal::LatencyP99, 400.0));
        assert!(enough_requests(Signal::LatencyP95, 100.0));
        // Health probes alone (2/s over 20 s): only the median is judged.
        assert!(!enough_requests(Signal::LatencyP95, 40.0));
        assert!(enough_requests(Signal::LatencyP50, 40.0));
        assert!(!enough_requests(Signal::LatencyP50, 8.0));
        assert!(enough_requests(Signal::ErrorRatio, 0.0));
    }

    #[test]
    fn one_slow_request_in_a_quiet_window_is_not_a_p99_incident() {
        let mut engine = fitted();
        // payment-primary at 1 req/s (20 requests a window): its p99 is its
        // slowest request; 6x on that alone opens nothing.
        for i in 720..760 {
            let mut o = with_traffic(i, 1.0, "payment-primary", 1.0 / 40.0);
            let key = ("payment-primary".to_owned(), Signal::LatencyP99);
            let normal_p99 = o.series[&key];
            o.series.insert(key.clone(), normal_p99 * 6.0);
            let outcome = engine.tick(i as i64 * STEP, Some(&o));
            assert!(!outcome.scores.series.contains_key(&key));
            assert!(opened_count(&outcome.events) == 0, "{:#?}", outcome.events);
        }
    }
}
