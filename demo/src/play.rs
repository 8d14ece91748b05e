//! Plays a scenario on a running stack: load, warm-up, the detector, then
//! faults and load changes on the scenario's clock, with a live timeline.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use tokio::time::Instant;

use crate::on_call::OnCallPerson;
use crate::outcome::{ActionOutcome, FaultRecord, ReportRecord, RestartRecord};
use crate::scenario::{Fault, FaultKind, Scenario};
use crate::stack::{NAMESPACE, RATE_WINDOW_SECONDS, Stack};
use crate::timeline::Timeline;
use crate::watch::{Seen, action_records, report_record, reports};

const POLL: Duration = Duration::from_millis(500);
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// What happened, for the outcome and the report.
#[derive(Debug, Clone)]
pub struct Played {
    pub started_at: Timestamp,
    pub warmup_ended_at: Timestamp,
    pub ended_at: Timestamp,
    pub faults: Vec<FaultRecord>,
    pub restarts: Vec<RestartRecord>,
    pub reports: Vec<ReportRecord>,
    pub actions: Vec<ActionOutcome>,
    /// Load changes: when, and the new rate.
    pub load_changes: Vec<(Timestamp, f64)>,
}

async fn instant(stack: &Stack, promql: &str) -> Option<f64> {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/query", stack.prometheus_url()))
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["data"]["result"][0]["value"][1]
        .as_str()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// A service's request rate and p99 now, e.g. "40 req/s, p99 35 ms".
async fn rate_and_p99(stack: &Stack, service: &str) -> String {
    let requests = format!(
        r#"http_server_request_duration_seconds_bucket{{service="{service}",http_route!~"/admin/.*"}}"#
    );
    let p99 = instant(
        stack,
        &format!(
            "histogram_quantile(0.99, sum by (le) (rate({requests}[{RATE_WINDOW_SECONDS}s])))"
        ),
    )
    .await;
    let rate = instant(
        stack,
        &format!(
            r#"sum(rate({}[{RATE_WINDOW_SECONDS}s]))"#,
            requests.replace("_bucket{", "_count{")
        ),
    )
    .await;
    format!(
        "{} req/s, p99 {}",
        rate.map_or("?".into(), |r| format!("{r:.0}")),
        p99.map_or("?".into(), |v| format!("{:.0} ms", v * 1000.0)),
    )
}

/// One line on how the OMS is doing now: orders, the service under a
/// fault when there is one, and the payment routing.
async fn status_line(stack: &Stack, scenario: &Scenario) -> String {
    let mut line = format!("orders: {}", rate_and_p99(stack, "orders").await);
    if let Some(f) = scenario.faults.iter().find(|f| f.service != "orders") {
        line += &format!(
            " | {}: {}",
            f.service,
            rate_and_p99(stack, &f.service).await
        );
    }
    let weights = routing(stack).await.unwrap_or_default();
    line + &format!(" | payment routing {weights}")
}

/// The payment routing weights `orders` uses now, e.g. "primary 100 / secondary 0".
async fn routing(stack: &Stack) -> Option<String> {
    let url = format!("{}/v1/routing/payment", stack.oms_url("orders"));
    let body: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    let weights = body["weights"].as_object()?;
    Some(
        weights
            .iter()
            .map(|(b, w)| format!("{} {w}", b.trim_start_matches("payment-")))
            .collect::<Vec<_>>()
            .join(" / "),
    )
}

/// Starts a fault: through the service's fault injector, or, for a surge,
/// as traffic of its own.
async fn start_fault(stack: &mut Stack, f: &Fault) -> anyhow::Result<()> {
    let (ramp, duration) = (f.ramp_seconds, f.duration_seconds);
    let body = match f.kind {
        FaultKind::Latency => json!({
            "kind": "latency", "latency_ms": f.latency_ms, "ramp_seconds": ramp, "duration_seconds": duration
        }),
        FaultKind::Errors => json!({
            "kind": "errors", "error_rate": f.error_rate, "ramp_seconds": ramp, "duration_seconds": duration
        }),
        FaultKind::Surge => return stack.surge(&f.service, f.requests_per_second, duration),
        FaultKind::DropResponse => json!({
            "kind": "drop_response", "error_rate": f.error_rate, "ramp_seconds": ramp, "duration_seconds": duration
        }),
        FaultKind::Down => json!({ "kind": "down", "duration_seconds": duration }),
        FaultKind::SlowConsumer => json!({
            "kind": "slow_consumer", "latency_ms": f.latency_ms, "ramp_seconds": ramp, "duration_seconds": duration
        }),
    };
    stack.inject(&f.service, &body).await
}

enum Due {
    FaultStart(usize),
    FaultEnd(usize),
    Load(f64),
    Restart(usize),
}

/// Live traffic while the detector has nothing to judge yet, with progress;
/// then the detector, fitted on that traffic.
async fn warm_up(
    stack: &mut Stack,
    scenario: &Scenario,
    timeline: &mut Timeline,
) -> anyhow::Result<()> {
    let warmup = Instant::now();
    let mut next_status = warmup + STATUS_EVERY;
    while warmup.elapsed().as_secs_f64() < scenario.warmup_seconds {
        stack.check_alive().await?;
        if Instant::now() >= next_status {
            next_status += STATUS_EVERY;
            let done = warmup.elapsed().as_secs_f64();
            let bar_len = 20;
            let filled = ((done / scenario.warmup_seconds) * bar_len as f64) as usize;
            timeline.say(&format!(
                "warm-up [{}{}] {done:.0}/{:.0} s  {}",
                "#".repeat(filled.min(bar_len)),
                ".".repeat(bar_len - filled.min(bar_len)),
                scenario.warmup_seconds,
                status_line(stack, scenario).await
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    // Fit on full rate windows only: the first window after the load starts reads low.
    let history = (scenario.warmup_seconds as u64).saturating_sub(RATE_WINDOW_SECONDS + 4);
    timeline.say(&format!(
        "starting the detector: baselines from the last {history} s"
    ));
    stack.start_detector(history).await?;
    Ok(())
}

pub async fn play(
    stack: &mut Stack,
    scenario: &Scenario,
    timeline: &mut Timeline,
) -> anyhow::Result<Played> {
    let total = scenario.warmup_seconds + scenario.observe_seconds;
    let started_at = Timestamp::now();
    // Load runs a little past the end so the last seconds are not a drop.
    stack.set_load(
        &scenario.load,
        scenario.load.orders_per_second,
        total + 60.0,
    )?;
    timeline.say(&format!(
        "load: {} orders/s; warm-up for {:.0} s (the detector learns baselines from this live traffic)",
        scenario.load.orders_per_second, scenario.warmup_seconds
    ));
    warm_up(stack, scenario, timeline).await?;
    let zero = Instant::now();
    let warmup_ended_at = Timestamp::now();
    timeline.start_clock(zero);
    timeline.say(&format!(
        "warm-up over: detector ready; observing for {:.0} s",
        scenario.observe_seconds
    ));

    let mut schedule: Vec<(f64, Due)> = Vec::new();
    for (i, (_, start, end)) in scenario.fault_windows().enumerate() {
        schedule.push((start, Due::FaultStart(i)));
        schedule.push((end, Due::FaultEnd(i)));
    }
    for change in &scenario.load_changes {
        schedule.push((change.at_seconds, Due::Load(change.orders_per_second)));
    }
    for (i, restart) in scenario.restarts.iter().enumerate() {
        schedule.push((restart.at_seconds, Due::Restart(i)));
    }
    schedule.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut schedule = schedule.into_iter().peekable();

    let mut faults: Vec<Option<FaultRecord>> = vec![None; scenario.faults.len()];
    let mut load_changes = Vec::new();
    let mut restarts = Vec::new();
    let mut seen = Seen::default();
    let mut on_call = scenario.on_call.clone().map(OnCallPerson::new);
    let mut last_routing = routing(stack).await;
    let mut next_status = zero + STATUS_EVERY;
    while zero.elapsed().as_secs_f64() < scenario.observe_seconds {
        stack.check_alive().await?;
        let now = zero.elapsed().as_secs_f64();
        while let Some((_, due)) = schedule.next_if(|(at, _)| *at <= now) {
            match due {
                Due::FaultStart(i) => {
                    let f = &scenario.faults[i];
                    start_fault(stack, f).await?;
                    faults[i] = Some(FaultRecord {
                        service: f.service.clone(),
                        kind: f.kind,
                        started_at: Timestamp::now(),
                        ended_at: None,
                    });
                    let strength = match f.kind {
                        FaultKind::Latency => format!("+{} ms", f.latency_ms),
                        FaultKind::Errors => format!("{:.0}% errors", f.error_rate * 100.0),
                        FaultKind::Surge => format!("+{} requests/s", f.requests_per_second),
                        FaultKind::DropResponse => {
                            format!("{:.0}% answers dropped", f.error_rate * 100.0)
                        }
                        FaultKind::Down => "down".to_owned(),
                        FaultKind::SlowConsumer => format!("+{} ms an event", f.latency_ms),
                    };
                    let ramp = if f.ramp_seconds > 0.0 {
                        format!(", ramping over {} s", f.ramp_seconds)
                    } else {
                        String::new()
                    };
                    timeline.say(&format!(
                        "FAULT    {} {strength}{ramp} for {} s",
                        f.service, f.duration_seconds
                    ));
                }
                Due::FaultEnd(i) => {
                    if let Some(record) = &mut faults[i] {
                        // The OMS ends the fault by itself at this moment.
                        record.ended_at = Some(Timestamp::now());
                        timeline.say(&format!("FAULT    {} over", record.service));
                    }
                }
                Due::Load(rate) => {
                    let left = scenario.observe_seconds - now + 60.0;
                    stack.set_load(&scenario.load, rate, left)?;
                    load_changes.push((Timestamp::now(), rate));
                    timeline.say(&format!("LOAD     now {rate} orders/s"));
                }
                Due::Restart(i) => {
                    let service = &scenario.restarts[i].service;
                    stack.restart(service).await?;
                    restarts.push(RestartRecord {
                        service: service.clone(),
                        at: Timestamp::now(),
                        rollout: None,
                    });
                    timeline.say(&format!(
                        "RESTART  {service}: each replica replaced, as a deploy does"
                    ));
                }
            }
        }
        stack.observe_pods().await;
        match reports(&stack.client, NAMESPACE).await {
            Ok(list) => {
                for line in seen.changes(&list) {
                    timeline.say(&line);
                }
                if let Some(person) = &mut on_call {
                    person.look(&stack.client, NAMESPACE, &list, timeline).await;
                }
            }
            Err(error) => timeline.say(&format!("cannot list reports: {error:#}")),
        }
        let current = routing(stack).await;
        if current.is_some() && current != last_routing {
            timeline.say(&format!(
                "ROUTING  payment: {}",
                current.clone().unwrap_or_default()
            ));
            last_routing = current;
        }
        if Instant::now() >= next_status {
            next_status += STATUS_EVERY;
            timeline.say(&status_line(stack, scenario).await);
        }
        tokio::time::sleep(POLL).await;
    }
    let ended_at = Timestamp::now();
    timeline.say("observation over");

    let final_reports = reports(&stack.client, NAMESPACE).await?;
    let mut actions: BTreeMap<String, ActionOutcome> = BTreeMap::new();
    for report in &final_reports {
        actions.extend(action_records(report));
    }
    let mut actions: Vec<ActionOutcome> = actions.into_values().collect();
    actions.sort_by_key(|a| a.at);
    let mut report_records: Vec<ReportRecord> = final_reports.iter().map(report_record).collect();
    report_records.sort_by_key(|r| r.opened_at);
    Ok(Played {
        started_at,
        warmup_ended_at,
        ended_at,
        faults: faults.into_iter().flatten().collect(),
        restarts,
        reports: report_records,
        actions,
        load_changes,
    })
}
