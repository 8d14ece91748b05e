//! One report in text, for a person paged at night: what, where, since
//! when, the observed value against its band, the culprit's evidence, the
//! timeline, and each action as a small tree of what became of it. Pure:
//! the main file fetches, this renders.

use std::fmt::Write as _;

use homeostat_api::{ActionRecord, AnomalyReport, ApprovalState, ChangedState, StepApproval};
use jiff::Timestamp;
use kube::ResourceExt;

use homeostat_oncall::history::Point;

use crate::table::age;

/// Width of the band gauge, in characters.
const GAUGE: usize = 40;

/// The report in text; `history` is its signal over the incident, or why
/// it could not be read.
pub fn render(
    report: &AnomalyReport,
    now: Timestamp,
    history: &Result<Vec<Point>, String>,
) -> String {
    let mut out = String::new();
    let field = |out: &mut String, name: &str, value: String| {
        let _ = writeln!(out, "{name:<10} {value}");
    };
    field(
        &mut out,
        "Report",
        format!(
            "{}/{}",
            report.namespace().unwrap_or_default(),
            report.name_any()
        ),
    );
    field(
        &mut out,
        "Signal",
        format!("{} of {}", report.spec.signal, report.spec.service),
    );
    let Some(status) = &report.status else {
        field(&mut out, "State", "not evaluated yet".to_owned());
        return out;
    };
    field(
        &mut out,
        "State",
        format!(
            "{:?}, {} (score {:.2}, peak {:.2})",
            status.state, status.severity, status.score, status.peak_score
        ),
    );
    field(
        &mut out,
        "Opened",
        format!(
            "{} ({} ago)",
            status.opened_at.0,
            age(status.opened_at.0, now)
        ),
    );
    if let Some(resolved) = &status.resolved_at {
        field(
            &mut out,
            "Resolved",
            format!("{} ({} ago)", resolved.0, age(resolved.0, now)),
        );
    }
    let band = &status.baseline;
    field(
        &mut out,
        "Observed",
        format!(
            "{} against a band of {}–{}",
            number(status.observed),
            number(band.lower),
            number(band.upper)
        ),
    );
    field(&mut out, "", gauge(status.observed, band.lower, band.upper));
    match history {
        Ok(points) if !points.is_empty() => {
            let (line, marks) = sparkline(points);
            let (first, last) = (points[0].at, points[points.len() - 1].at);
            let at = |t: i64| Timestamp::from_second(t).map_or_else(|_| "?".into(), clock);
            field(
                &mut out,
                "History",
                format!("{line}  {} → {}", at(first), at(last)),
            );
            field(
                &mut out,
                "",
                format!("{marks}  ▲ above its band, ▼ below, · inside"),
            );
        }
        Ok(_) => field(&mut out, "History", "no points".to_owned()),
        Err(why) => field(&mut out, "History", format!("unavailable: {why}")),
    }
    if let Some(culprit) = &status.culprit {
        field(
            &mut out,
            "Culprit",
            format!("{} (confidence {:.2})", culprit.service, culprit.confidence),
        );
        for evidence in &culprit.evidence {
            let _ = writeln!(out, "{:<10} - {evidence}", "");
        }
    }
    if let Some(ack) = &status.acknowledged {
        let note = if ack.note.is_empty() {
            String::new()
        } else {
            format!(": {}", ack.note)
        };
        field(
            &mut out,
            "Acked",
            format!("by {} {} ago{note}", ack.by, age(ack.at.0, now)),
        );
    }
    for condition in status.conditions.iter().filter(|c| c.status == "True") {
        field(
            &mut out,
            "Condition",
            format!("{}: {}", condition.type_, condition.message),
        );
    }
    if !status.timeline.is_empty() {
        let _ = writeln!(out, "\nTimeline");
        let mut timeline: Vec<_> = status.timeline.iter().collect();
        timeline.sort_by_key(|t| t.time.0);
        for entry in timeline {
            let _ = writeln!(
                out,
                "  {}  {:<8}  {}",
                clock(entry.time.0),
                entry.source,
                entry.message
            );
        }
    }
    if !status.actions.is_empty() {
        let _ = writeln!(out, "\nActions");
        let mut actions: Vec<_> = status.actions.iter().collect();
        actions.sort_by_key(|a| a.planned_at.0);
        for action in actions {
            out.push_str(&action_tree(action));
        }
    }
    out
}

/// An action and what became of it, as a tree.
fn action_tree(action: &ActionRecord) -> String {
    let mut out = format!(
        "  {}  {} {}  (policy {})\n",
        action.id,
        action.kind,
        change(action),
        action.policy
    );
    let mut steps = vec![format!("planned   {}", clock(action.planned_at.0))];
    if let Some(approval) = &action.approval {
        steps.push(approval_line(approval, &action.id));
    }
    if let Some(guard) = &action.blocked_by {
        steps.push(format!("blocked by {guard}"));
    } else if action.dry_run {
        steps.push("dry run: not carried out".to_owned());
    }
    if let Some(done) = &action.done_at {
        steps.push(format!("done      {}", clock(done.0)));
    }
    if let Some(restored) = &action.restored_at {
        steps.push(format!("restored  {}", clock(restored.0)));
    }
    let last = steps.len() - 1;
    for (i, step) in steps.into_iter().enumerate() {
        let branch = if i == last { "└─" } else { "├─" };
        out.push_str(&format!("  {branch} {step}\n"));
    }
    out
}

/// Where a step that needs approval stands, and what a person can do.
fn approval_line(approval: &StepApproval, id: &str) -> String {
    let by = approval
        .by
        .as_deref()
        .map(|by| format!(" by {by}"))
        .unwrap_or_default();
    match approval.state {
        ApprovalState::Awaiting => format!(
            "awaiting approval until {} (homeostat approve|reject REPORT {id})",
            clock(approval.expires_at.0)
        ),
        ApprovalState::Approved => format!("approved{by}"),
        state => {
            let why = approval.reason.as_deref().unwrap_or_default();
            format!("{} — not done: {why}", state.as_str().to_lowercase())
        }
    }
}

/// `deployment/tax 2→3`, from the values where they are recorded.
fn change(action: &ActionRecord) -> String {
    let state = |s: Option<&ChangedState>| match s {
        Some(ChangedState {
            replicas: Some(n), ..
        }) => n.to_string(),
        Some(s) => s
            .weights
            .iter()
            .map(|w| format!("{}={}", w.backend, w.weight))
            .collect::<Vec<_>>()
            .join(","),
        None => "?".to_owned(),
    };
    match &action.object {
        Some(object) => format!(
            "{object} {}→{}",
            state(action.before.as_ref()),
            state(action.after.as_ref())
        ),
        None => action.target.clone(),
    }
}

const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The values as blocks, on one scale with their band; and under each,
/// where it lies against the band it was judged by: `▲` above, `▼` below,
/// `·` inside, a space where no band was known.
pub fn sparkline(points: &[Point]) -> (String, String) {
    let bounds = points.iter().flat_map(|p| {
        [p.observed]
            .into_iter()
            .chain(p.band.into_iter().flat_map(|(l, u)| [l, u]))
    });
    let (low, high) = bounds
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let level = |v: f64| {
        if high > low {
            (((v - low) / (high - low)) * (BLOCKS.len() - 1) as f64).round() as usize
        } else {
            0
        }
    };
    let line = points
        .iter()
        .map(|p| BLOCKS[level(p.observed).min(BLOCKS.len() - 1)])
        .collect();
    let marks = points
        .iter()
        .map(|p| match p.band {
            Some((_, upper)) if p.observed > upper => '▲',
            Some((lower, _)) if p.observed < lower => '▼',
            Some(_) => '·',
            None => ' ',
        })
        .collect();
    (line, marks)
}

/// Where `observed` lies against the band `[lower, upper]`: `=` is the
/// band, `●` the value.
pub fn gauge(observed: f64, lower: f64, upper: f64) -> String {
    let low = lower.min(observed).min(0.0);
    let high = upper.max(observed) * 1.1;
    let values = [observed, lower, upper];
    if values.iter().any(|v| !v.is_finite()) || high <= low {
        return String::new();
    }
    let at = |v: f64| (((v - low) / (high - low)) * (GAUGE - 1) as f64).round() as usize;
    let (from, to, mark) = (at(lower), at(upper), at(observed));
    let marks: String = (0..GAUGE)
        .map(|i| match i {
            _ if i == mark => '●',
            _ if (from..=to).contains(&i) => '=',
            _ => '-',
        })
        .collect();
    format!("|{marks}|")
}

fn clock(t: Timestamp) -> String {
    t.strftime("%H:%M:%S").to_string()
}

/// Four decimals: enough to read a latency in seconds or a ratio.
fn number(v: f64) -> String {
    format!("{v:.4}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> AnomalyReport {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
            "metadata": {"name": "tax-latency-p99-1", "namespace": "shop"},
            "spec": {"service": "tax", "signal": "latency_p99"},
            "status": {
                "state": "Resolved", "score": 0.2, "peakScore": 0.97, "severity": "Critical",
                "observed": 0.4, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                "culprit": {"service": "tax", "evidence": ["tax p99 up 16x"], "confidence": 0.9},
                "openedAt": "2026-12-04T10:00:00Z", "resolvedAt": "2026-12-04T10:05:00Z",
                "timeline": [
                    {"id": "resolved", "time": "2026-12-04T10:05:00Z", "source": "detector", "message": "tax back in band"},
                    {"id": "opened", "time": "2026-12-04T10:00:00Z", "source": "detector", "message": "tax anomalous"}
                ],
                "actions": [
                    {"id": "scale-tax-0-1", "policy": "scale-tax", "kind": "scale",
                     "target": "deployment/tax 2→3", "object": "deployment/tax",
                     "before": {"replicas": 2}, "after": {"replicas": 3},
                     "plannedAt": "2026-12-04T10:00:12Z", "doneAt": "2026-12-04T10:00:12Z",
                     "restoredAt": "2026-12-04T10:06:00Z"},
                    {"id": "scale-tax-0-2-cooldown", "policy": "scale-tax", "kind": "scale",
                     "target": "deployment/tax 3→4", "object": "deployment/tax",
                     "before": {"replicas": 3}, "after": {"replicas": 4},
                     "plannedAt": "2026-12-04T10:00:30Z", "blockedBy": "cooldown"}
                ]
            }
        }))
        .expect("report")
    }

    #[test]
    fn tells_what_where_since_when_and_what_was_done() {
        let now: Timestamp = "2026-12-04T10:10:00Z".parse().expect("now");
        let text = render(&report(), now, &Err("no Prometheus given".into()));
        assert!(text.contains("Report     shop/tax-latency-p99-1"), "{text}");
        assert!(text.contains("latency_p99 of tax"), "{text}");
        assert!(
            text.contains("Opened     2026-12-04T10:00:00Z (10m ago)"),
            "{text}"
        );
        assert!(text.contains("Culprit    tax (confidence 0.90)"), "{text}");
        assert!(text.contains("- tax p99 up 16x"), "{text}");
        // The timeline in time order.
        let opened = text.find("tax anomalous").expect("opened");
        let resolved = text.find("tax back in band").expect("resolved");
        assert!(opened < resolved, "{text}");
        // Each action as a tree of what became of it.
        assert!(
            text.contains(
                "  scale-tax-0-1  scale deployment/tax 2→3  (policy scale-tax)\n  ├─ planned   10:00:12\n  ├─ done      10:00:12\n  └─ restored  10:06:00\n"
            ),
            "{text}"
        );
        assert!(text.contains("  └─ blocked by cooldown\n"), "{text}");
    }

    #[test]
    fn the_sparkline_rises_with_the_value_and_marks_it_against_its_band() {
        let point = |at, observed| Point {
            at,
            observed,
            band: Some((0.01, 0.05)),
        };
        let points = [
            point(0, 0.02),
            point(2, 0.4),
            point(4, 0.2),
            point(6, 0.005),
            Point {
                at: 8,
                observed: 0.03,
                band: None,
            },
        ];
        let (line, marks) = sparkline(&points);
        assert_eq!(line.chars().count(), 5);
        assert_eq!(line.chars().nth(1), Some('█'), "the highest value: {line}");
        assert_eq!(marks, "·▲▲▼ ");
        let now: Timestamp = "2026-12-04T10:10:00Z".parse().expect("now");
        let text = render(&report(), now, &Ok(points.to_vec()));
        assert!(
            text.contains(&format!("History    {line}  00:00:00 → 00:00:08")),
            "{text}"
        );
        assert!(text.contains("·▲▲▼   ▲ above its band"), "{text}");
    }

    #[test]
    fn the_gauge_puts_the_value_against_its_band() {
        let g = gauge(0.4, 0.01, 0.05);
        assert_eq!(g.chars().count(), GAUGE + 2);
        let band = g.find('=').expect("band");
        let value = g.find('●').expect("value");
        assert!(band < value, "{g}");
        // Inside the band, the value sits among the `=`.
        let inside = gauge(0.03, 0.01, 0.05);
        let chars: Vec<char> = inside.chars().collect();
        let at = chars.iter().position(|c| *c == '●').expect("value");
        assert!(chars[at - 1] == '=' || chars[at + 1] == '=', "{inside}");
        assert_eq!(gauge(f64::NAN, 0.0, 1.0), "");
    }
}
