//! The soak's verdict: over a long run with a fault every few minutes, no
//! process grows (resident memory, live tokio tasks), every report resolves
//! and every action is undone. The judging is pure; `fetch` reads the
//! processes' own metrics back from Prometheus.

use jiff::Timestamp;
use serde::Serialize;

use crate::outcome::Outcome;
use crate::series::{Points, range};

/// More than this growth from the warmed-up level to the end is a leak.
pub const MAX_GROWTH: f64 = 0.10;
/// Task counts this small move by a few in-flight requests at any scrape:
/// up to this many more tasks at the end is still flat.
pub const TASK_SLACK: f64 = 2.0;
/// The warmed-up level: the median over this part of the run...
const BASELINE: (f64, f64) = (0.2, 0.4);
/// ... against the median over this part, the end.
const END: (f64, f64) = (0.8, 1.0);

/// The processes the local stack runs, and the Prometheus jobs scraping each.
const PROCESSES: [(&str, &str); 3] = [
    // `oms up`: one process serving every OMS service's port.
    ("oms", r#"job=~"oms-.*""#),
    ("homeostat-operator", r#"job="homeostat-operator""#),
    ("homeostat-detector", r#"job="homeostat-detector""#),
];

/// One process's resident memory and live tasks over the run.
#[derive(Debug, Clone, Default)]
pub struct ProcessSeries {
    pub process: String,
    pub resident_bytes: Points,
    pub tasks: Points,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessVerdict {
    pub process: String,
    pub resident_mib_baseline: f64,
    pub resident_mib_end: f64,
    /// End over baseline, minus one.
    pub resident_growth: f64,
    pub tasks_baseline: f64,
    pub tasks_end: f64,
    pub flat: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoakOutcome {
    pub processes: Vec<ProcessVerdict>,
    pub faults: usize,
    pub reports: usize,
    pub actions_done: usize,
    /// Reports still open at the end, by name.
    pub unresolved_reports: Vec<String>,
    /// Actions done and never undone, as "policy: target".
    pub unrestored_actions: Vec<String>,
    /// Why the soak failed; empty when it passed.
    pub failures: Vec<String>,
}

impl SoakOutcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The median of the values whose time lies in `[from, to]` of `span`
/// (fractions of it).
fn median_within(points: &Points, span: (f64, f64), part: (f64, f64)) -> Option<f64> {
    let length = span.1 - span.0;
    let (from, to) = (span.0 + part.0 * length, span.0 + part.1 * length);
    let mut values: Vec<f64> = points
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .map(|(_, v)| *v)
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

fn judge_process(series: &ProcessSeries, span: (f64, f64)) -> Result<ProcessVerdict, String> {
    let level = |points: &Points, what: &str| {
        Ok::<_, String>((
            median_within(points, span, BASELINE)
                .ok_or_else(|| format!("{}: no {what} samples to warm up on", series.process))?,
            median_within(points, span, END)
                .ok_or_else(|| format!("{}: no {what} samples at the end", series.process))?,
        ))
    };
    let (rss_baseline, rss_end) = level(&series.resident_bytes, "memory")?;
    let (tasks_baseline, tasks_end) = level(&series.tasks, "task")?;
    let growth = rss_end / rss_baseline - 1.0;
    let tasks_flat = tasks_end <= tasks_baseline * (1.0 + MAX_GROWTH)
        || tasks_end <= tasks_baseline + TASK_SLACK;
    let mib = |bytes: f64| (bytes / (1024.0 * 1024.0) * 10.0).round() / 10.0;
    Ok(ProcessVerdict {
        process: series.process.clone(),
        resident_mib_baseline: mib(rss_baseline),
        resident_mib_end: mib(rss_end),
        resident_growth: (growth * 1000.0).round() / 1000.0,
        tasks_baseline,
        tasks_end,
        flat: growth < MAX_GROWTH && tasks_flat,
    })
}

/// The verdict on a run from `from` to `to` (unix seconds): the processes'
/// series and what the demo saw happen.
pub fn judge(series: &[ProcessSeries], outcome: &Outcome, from: f64, to: f64) -> SoakOutcome {
    let mut failures = Vec::new();
    let mut processes = Vec::new();
    for s in series {
        match judge_process(s, (from, to)) {
            Ok(verdict) => {
                if !verdict.flat {
                    failures.push(format!(
                        "{} grew: memory {:.1} → {:.1} MiB ({:+.1}%), tasks {} → {}",
                        verdict.process,
                        verdict.resident_mib_baseline,
                        verdict.resident_mib_end,
                        verdict.resident_growth * 100.0,
                        verdict.tasks_baseline,
                        verdict.tasks_end
                    ));
                }
                processes.push(verdict);
            }
            Err(missing) => failures.push(missing),
        }
    }
    let unresolved_reports: Vec<String> = outcome
        .reports
        .iter()
        .filter(|r| r.resolved_at.is_none())
        .map(|r| r.name.clone())
        .collect();
    let done: Vec<_> = outcome.actions.iter().filter(|a| a.acted()).collect();
    let unrestored_actions: Vec<String> = done
        .iter()
        .filter(|a| a.restored_at.is_none())
        .map(|a| format!("{}: {}", a.policy, a.target))
        .collect();
    let ended = outcome
        .faults
        .iter()
        .filter(|f| f.ended_at.is_some())
        .count();
    if ended < 2 {
        failures.push(format!(
            "{ended} faults ran to their end: a soak needs several"
        ));
    }
    if done.is_empty() {
        failures.push("no action was taken: nothing was exercised".to_owned());
    }
    if !unresolved_reports.is_empty() {
        failures.push(format!(
            "reports still open: {}",
            unresolved_reports.join(", ")
        ));
    }
    if !unrestored_actions.is_empty() {
        failures.push(format!(
            "actions never undone: {}",
            unrestored_actions.join(", ")
        ));
    }
    SoakOutcome {
        processes,
        faults: ended,
        reports: outcome.reports.len(),
        actions_done: done.len(),
        unresolved_reports,
        unrestored_actions,
        failures,
    }
}

/// Each process's memory and tasks from `start` to `end`, every `step` seconds.
pub async fn fetch(
    prometheus: &str,
    start: Timestamp,
    end: Timestamp,
    step: f64,
) -> anyhow::Result<Vec<ProcessSeries>> {
    let http = reqwest::Client::new();
    let mut all = Vec::new();
    for (process, jobs) in PROCESSES {
        let resident_bytes = range(
            &http,
            prometheus,
            &format!("max(process_resident_memory_bytes{{{jobs}}})"),
            start,
            end,
            step,
        )
        .await?;
        let tasks = range(
            &http,
            prometheus,
            &format!("max(tokio_alive_tasks{{{jobs}}})"),
            start,
            end,
            step,
        )
        .await?;
        all.push(ProcessSeries {
            process: process.to_owned(),
            resident_bytes,
            tasks,
        });
    }
    Ok(all)
}

/// The verdict as a table, for the terminal and BENCHMARKS.md.
pub fn print(soak: &SoakOutcome) {
    println!("\n== soak ==");
    println!(
        "{:<20} {:>14} {:>10} {:>8} {:>12} {:>10}",
        "process", "memory (MiB)", "at end", "growth", "tasks", "at end"
    );
    for p in &soak.processes {
        println!(
            "{:<20} {:>14.1} {:>10.1} {:>7.1}% {:>12} {:>10}",
            p.process,
            p.resident_mib_baseline,
            p.resident_mib_end,
            p.resident_growth * 100.0,
            p.tasks_baseline,
            p.tasks_end
        );
    }
    println!(
        "{} faults, {} reports ({} still open), {} actions done ({} never undone)",
        soak.faults,
        soak.reports,
        soak.unresolved_reports.len(),
        soak.actions_done,
        soak.unrestored_actions.len()
    );
    if soak.passed() {
        println!("soak passed");
    } else {
        for failure in &soak.failures {
            println!("FAILED: {failure}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{ActionOutcome, FaultRecord, ReportRecord};
    use crate::scenario::FaultKind;
    use homeostat_api::ActionKind;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("time")
    }

    fn flat(process: &str, rss: f64, tasks: f64) -> ProcessSeries {
        let points = |v: f64| (0..=100).map(|i| (i as f64 * 10.0, v)).collect();
        ProcessSeries {
            process: process.into(),
            resident_bytes: points(rss),
            tasks: points(tasks),
        }
    }

    fn healthy_outcome() -> Outcome {
        let fault = |at: i64| FaultRecord {
            service: "tax".into(),
            kind: FaultKind::Latency,
            started_at: t(at),
            ended_at: Some(t(at + 60)),
        };
        let report = ReportRecord {
            name: "tax-latency-p99-1".into(),
            service: "tax".into(),
            signal: "latency_p99".into(),
            culprit: "tax".into(),
            score: 0.9,
            opened_at: t(110),
            resolved_at: Some(t(180)),
        };
        let action = ActionOutcome {
            policy: "scale-tax".into(),
            kind: ActionKind::Scale,
            target: "tax".into(),
            from: "1".into(),
            to: "2".into(),
            at: t(115),
            restored_at: Some(t(250)),
            dry_run: false,
            blocked_by: None,
            scale: None,
            approval: None,
        };
        Outcome::compute(
            "soak",
            t(0),
            vec![fault(100), fault(400)],
            vec![report],
            vec![action],
            &[],
        )
    }

    #[test]
    fn flat_processes_and_everything_undone_pass() {
        let series = [
            flat("oms", 80e6, 40.0),
            flat("homeostat-operator", 30e6, 12.0),
        ];
        let soak = judge(&series, &healthy_outcome(), 0.0, 1000.0);
        assert!(soak.passed(), "{:?}", soak.failures);
        assert_eq!(soak.processes[0].resident_mib_baseline, 76.3);
        assert_eq!(soak.processes[0].resident_growth, 0.0);
    }

    #[test]
    fn memory_that_keeps_growing_fails_and_says_by_how_much() {
        let mut leaking = flat("homeostat-detector", 0.0, 10.0);
        leaking.resident_bytes = (0..=100)
            .map(|i| (i as f64 * 10.0, 50e6 + i as f64 * 0.5e6))
            .collect();
        let soak = judge(&[leaking], &healthy_outcome(), 0.0, 1000.0);
        assert!(!soak.passed());
        assert!(
            soak.failures[0].starts_with("homeostat-detector grew"),
            "{:?}",
            soak.failures
        );
    }

    #[test]
    fn tasks_that_pile_up_fail_but_a_couple_more_do_not() {
        let mut piling = flat("oms", 80e6, 0.0);
        piling.tasks = (0..=100)
            .map(|i| (i as f64 * 10.0, 20.0 + i as f64))
            .collect();
        assert!(!judge(&[piling], &healthy_outcome(), 0.0, 1000.0).passed());
        let mut wobbling = flat("oms", 80e6, 0.0);
        wobbling.tasks = (0..=100)
            .map(|i| (i as f64 * 10.0, if i > 80 { 6.0 } else { 4.0 }))
            .collect();
        assert!(judge(&[wobbling], &healthy_outcome(), 0.0, 1000.0).passed());
    }

    #[test]
    fn an_open_report_or_an_action_never_undone_fails() {
        let mut outcome = healthy_outcome();
        outcome.reports[0].resolved_at = None;
        outcome.actions[0].restored_at = None;
        let soak = judge(&[flat("oms", 80e6, 40.0)], &outcome, 0.0, 1000.0);
        assert_eq!(soak.unresolved_reports, ["tax-latency-p99-1"]);
        assert_eq!(soak.unrestored_actions, ["scale-tax: tax"]);
        assert_eq!(soak.failures.len(), 2, "{:?}", soak.failures);
    }

    #[test]
    fn a_process_without_samples_fails_rather_than_passing_unseen() {
        let silent = ProcessSeries {
            process: "homeostat-detector".into(),
            ..ProcessSeries::default()
        };
        let soak = judge(&[silent], &healthy_outcome(), 0.0, 1000.0);
        assert!(!soak.passed());
        assert!(soak.failures[0].contains("no memory samples"));
    }
}
