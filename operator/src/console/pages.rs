//! The console's pages as pure functions of what was read: the reports
//! (open first), one report in detail, the policies. The handlers fetch,
//! these render; every outside text is escaped.

use std::fmt::Write as _;

use homeostat_api::{AnomalyReport, ApprovalState, RemediationPolicy, ReportState, VerdictKind};
use jiff::Timestamp;
use kube::ResourceExt;

use homeostat_oncall::age;

use super::chart;
use super::forms::{self, Allowed};
use super::html::{Viewer, escape, page};

/// What the reports list is narrowed to.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub state: String,
}

impl Filters {
    /// The namespace to read, or every one.
    pub fn namespace(&self) -> Option<&str> {
        (!self.namespace.is_empty()).then_some(self.namespace.as_str())
    }

    pub fn keeps(&self, report: &AnomalyReport) -> bool {
        let state = report.status.as_ref().map_or("", |s| state_name(s.state));
        (self.service.is_empty() || report.spec.service == self.service)
            && (self.state.is_empty() || state == self.state)
    }
}

fn state_name(state: ReportState) -> &'static str {
    match state {
        ReportState::Open => "Open",
        ReportState::Remediating => "Remediating",
        ReportState::Resolved => "Resolved",
    }
}

/// Open and remediating reports first, then the rest; newest first within.
fn ordered(reports: &[AnomalyReport]) -> Vec<&AnomalyReport> {
    let mut sorted: Vec<&AnomalyReport> = reports.iter().collect();
    sorted.sort_by_key(|r| {
        let resolved = r
            .status
            .as_ref()
            .is_none_or(|s| s.state == ReportState::Resolved);
        let opened = r.status.as_ref().map_or(0, |s| s.opened_at.0.as_second());
        (resolved, std::cmp::Reverse(opened))
    });
    sorted
}

/// The reports list (the page's script keeps it live).
pub fn reports(
    reports: &[AnomalyReport],
    filters: &Filters,
    viewer: Viewer<'_>,
    now: Timestamp,
) -> String {
    let mut body = String::from(r#"<h1>Anomaly reports<span id="live"></span></h1>"#);
    let _ = write!(
        body,
        r#"<form class="filters" method="get" action="/reports">
<label>Namespace<input name="namespace" value="{}"></label>
<label>Service<input name="service" value="{}"></label>
<label>State<select name="state">"#,
        escape(&filters.namespace),
        escape(&filters.service)
    );
    for state in ["", "Open", "Remediating", "Resolved"] {
        let selected = if filters.state == state {
            " selected"
        } else {
            ""
        };
        let shown = if state.is_empty() { "any" } else { state };
        let _ = write!(
            body,
            r#"<option value="{state}"{selected}>{shown}</option>"#
        );
    }
    body.push_str(r#"</select></label><button>Filter</button></form>"#);
    body.push_str(
        "<table id=\"reports\"><thead><tr><th>Namespace</th><th>Report</th><th>Service</th><th>Signal</th><th>Severity</th><th>Score</th><th>Culprit</th><th>State</th><th>Age</th><th>Actions</th></tr></thead><tbody>",
    );
    let shown: Vec<&AnomalyReport> = ordered(reports)
        .into_iter()
        .filter(|r| filters.keeps(r))
        .collect();
    for report in &shown {
        body.push_str(&report_row(report, now));
    }
    if shown.is_empty() {
        body.push_str(r#"<tr class="empty"><td colspan="10">No report matches.</td></tr>"#);
    }
    body.push_str("</tbody></table>");
    page("Anomaly reports", Some(viewer), &body)
}

/// One row of the list (also what a live update replaces).
pub fn report_row(report: &AnomalyReport, now: Timestamp) -> String {
    let namespace = report.namespace().unwrap_or_default();
    let name = report.name_any();
    let status = report.status.as_ref();
    let state = status.map_or("—", |s| state_name(s.state));
    let severity = status.map_or(String::new(), |s| s.severity.to_string());
    let score = status.map_or(String::new(), |s| format!("{:.2}", s.score));
    let culprit = status
        .and_then(|s| s.culprit.as_ref())
        .map_or("—", |c| c.service.as_str());
    let done = status.map_or(0, |s| {
        s.actions.iter().filter(|a| a.done_at.is_some()).count()
    });
    let opened = status.map_or(String::new(), |s| age(s.opened_at.0, now));
    format!(
        r#"<tr data-report="{ns}/{nm}"><td>{ns}</td><td><a href="/reports/{ns}/{nm}">{nm}</a></td><td>{service}</td><td>{signal}</td><td class="sev-{severity}">{severity}</td><td>{score}</td><td>{culprit}</td><td class="state-{state}">{state}</td><td>{opened}</td><td>{done}</td></tr>"#,
        ns = escape(&namespace),
        nm = escape(&name),
        service = escape(&report.spec.service),
        signal = report.spec.signal,
        culprit = escape(culprit),
    )
}

/// What the detail page shows beyond the report itself.
pub struct Detail<'a> {
    /// The signal over the incident, or why it cannot be drawn.
    pub history: Result<Vec<homeostat_oncall::history::Point>, String>,
    /// The PromQL behind the chart.
    pub queries: Vec<String>,
    /// A Grafana dashboard link for the service and time range.
    pub grafana: Option<String>,
    pub viewer: Viewer<'a>,
    /// What the viewer may do to the report.
    pub allowed: Allowed,
    pub now: Timestamp,
}

/// The markers of a report's life: opened, each action done, each
/// restore, resolved.
pub fn markers(report: &AnomalyReport) -> Vec<chart::Marker> {
    use chart::{Marker, MarkerKind};
    let Some(status) = &report.status else {
        return Vec::new();
    };
    let mut markers = vec![Marker {
        at: status.opened_at.0.as_second(),
        label: "opened".into(),
        kind: MarkerKind::Opened,
    }];
    for action in &status.actions {
        if let Some(done) = &action.done_at {
            markers.push(Marker {
                at: done.0.as_second(),
                label: format!("{} {}", action.kind, action.target),
                kind: MarkerKind::Action,
            });
        }
        if let Some(restored) = &action.restored_at {
            markers.push(Marker {
                at: restored.0.as_second(),
                label: format!("restored {}", action.id),
                kind: MarkerKind::Restore,
            });
        }
    }
    if let Some(resolved) = &status.resolved_at {
        markers.push(Marker {
            at: resolved.0.as_second(),
            label: "resolved".into(),
            kind: MarkerKind::Resolved,
        });
    }
    markers.sort_by_key(|m| m.at);
    markers
}

/// One report: what, where, since when, the chart, the evidence, the
/// timeline and the actions.
pub fn report(report: &AnomalyReport, detail: &Detail<'_>) -> String {
    let namespace = report.namespace().unwrap_or_default();
    let name = report.name_any();
    let mut body = format!(
        "<h1>{} — {} of {}</h1>",
        escape(&name),
        report.spec.signal,
        escape(&report.spec.service)
    );
    let Some(status) = &report.status else {
        body.push_str("<p>Not evaluated yet.</p>");
        return page(&name, Some(detail.viewer), &body);
    };
    let mut facts = vec![
        ("Namespace", escape(&namespace)),
        (
            "State",
            format!(
                r#"<span class="state-{s}">{s}</span>, <span class="sev-{v}">{v}</span> (score {:.2}, peak {:.2})"#,
                status.score,
                status.peak_score,
                s = state_name(status.state),
                v = status.severity
            ),
        ),
        (
            "Opened",
            format!(
                "{} ({} ago)",
                status.opened_at.0,
                age(status.opened_at.0, detail.now)
            ),
        ),
        (
            "Observed",
            format!(
                "{:.4} against a band of {:.4}–{:.4}",
                status.observed, status.baseline.lower, status.baseline.upper
            ),
        ),
    ];
    if let Some(resolved) = &status.resolved_at {
        facts.push(("Resolved", resolved.0.to_string()));
    }
    if let Some(ack) = &status.acknowledged {
        facts.push((
            "Acknowledged",
            format!(
                r#"<span class="acknowledged">by {} at {}: {}</span>"#,
                escape(&ack.by),
                ack.at.0,
                escape(&ack.note)
            ),
        ));
    }
    body.push_str("<dl>");
    for (term, value) in facts {
        let _ = write!(body, "<dt>{term}</dt><dd>{value}</dd>");
    }
    body.push_str("</dl><h2>Signal against its band</h2>");
    let unit = if report.spec.signal.to_string().starts_with("latency") {
        "seconds"
    } else {
        "value"
    };
    match &detail.history {
        Ok(points) => match chart::svg(points, &markers(report), unit) {
            Some(svg) => body.push_str(&svg),
            None => body.push_str("<p>No points in this report's time.</p>"),
        },
        Err(why) => {
            let _ = write!(body, "<p class=\"refused\">No chart: {}</p>", escape(why));
        }
    }
    body.push_str("<details><summary>The PromQL behind the chart</summary>");
    for query in &detail.queries {
        let _ = write!(body, "<pre>{}</pre>", escape(query));
    }
    body.push_str("</details>");
    if let Some(link) = &detail.grafana {
        let _ = write!(
            body,
            r#"<p><a href="{}">Open in Grafana</a></p>"#,
            escape(link)
        );
    }
    if let Some(culprit) = &status.culprit {
        let _ = write!(
            body,
            "<h2>Culprit: {} (confidence {:.2})</h2><ul>",
            escape(&culprit.service),
            culprit.confidence
        );
        for evidence in &culprit.evidence {
            let _ = write!(body, "<li>{}</li>", escape(evidence));
        }
        body.push_str("</ul>");
    }
    body.push_str(&forms::report_acts(report, &detail.allowed));
    body.push_str("<h2>Timeline</h2><table><tbody>");
    let mut timeline: Vec<_> = status.timeline.iter().collect();
    timeline.sort_by_key(|t| t.time.0);
    for entry in timeline {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            entry.time.0,
            escape(&entry.source),
            escape(&entry.message)
        );
    }
    body.push_str("</tbody></table><h2>Actions</h2><table><thead><tr><th>Step</th><th>Policy</th><th>Change</th><th>Planned</th><th>Done</th><th>Restored</th><th>Stopped by</th><th>Approval</th></tr></thead><tbody>");
    for action in &status.actions {
        let when = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            t.as_ref().map_or("—".to_owned(), |t| t.0.to_string())
        };
        let verdict = status.approvals.iter().find(|v| v.step == action.id);
        let approval = match (&action.approval, verdict) {
            (None, _) => "<td>—</td>".to_owned(),
            // Decided, and the operator has not yet done as told.
            (Some(a), Some(v)) if a.state == ApprovalState::Awaiting => {
                let (state, next) = match v.verdict {
                    VerdictKind::Approved => ("Approved", "the operator carries it out next"),
                    VerdictKind::Rejected => ("Rejected", "the operator records it not done"),
                };
                format!(
                    r#"<td class="approval-{state}">{state} by {}; {next}</td>"#,
                    escape(&v.by)
                )
            }
            (Some(a), _) => {
                let by =
                    a.by.as_deref()
                        .map(|b| format!(" by {}", escape(b)))
                        .unwrap_or_default();
                format!(r#"<td class="approval-{s}">{s}{by}</td>"#, s = a.state)
            }
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{approval}</tr>",
            escape(&action.id),
            escape(&action.policy),
            escape(&action.target),
            action.planned_at.0,
            when(&action.done_at),
            when(&action.restored_at),
            escape(action.blocked_by.as_deref().unwrap_or("—")),
        );
    }
    body.push_str("</tbody></table>");
    page(&name, Some(detail.viewer), &body)
}

/// The policies: ready or not and why, dry-run, suspended (and by whom),
/// what each holds now and would restore, steps awaiting approval, guard
/// blocks; a suspend or resume button where the viewer may patch policies
/// (`switchable`: those namespaces).
pub fn policies(
    policies: &[RemediationPolicy],
    viewer: Viewer<'_>,
    switchable: &std::collections::BTreeSet<String>,
) -> String {
    let mut body = String::from(
        "<h1>Remediation policies</h1><table id=\"policies\"><thead><tr><th>Namespace</th><th>Policy</th><th>Ready</th><th>Mode</th><th>Services</th><th>Holds (restores to)</th><th>Awaiting approval</th><th>Steps</th><th>Blocked</th><th></th></tr></thead><tbody>",
    );
    for policy in policies {
        let status = policy.status.clone().unwrap_or_default();
        let namespace = policy.namespace().unwrap_or_default();
        let switch = forms::policy_switch(policy, viewer.csrf, switchable.contains(&namespace));
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map_or("—".to_owned(), |c| {
                if c.status == "True" {
                    "Ready".to_owned()
                } else {
                    format!("Invalid: {}", escape(&c.message))
                }
            });
        let mut mode = Vec::new();
        if policy.spec.guards.dry_run {
            mode.push("dry-run");
        }
        let suspended_by = policy
            .annotations()
            .get(homeostat_oncall::suspend::SUSPENDED_BY)
            .map(|by| format!("suspended by {}", escape(by)));
        if policy.spec.guards.suspend {
            mode.push(suspended_by.as_deref().unwrap_or("suspended"));
        }
        let holds: Vec<String> = status
            .active
            .iter()
            .map(|a| {
                let original = match (a.original_replicas, a.original_weights.is_empty()) {
                    (Some(n), _) => format!("{n} replicas"),
                    (None, false) => a
                        .original_weights
                        .iter()
                        .map(|w| format!("{}={}", w.backend, w.weight))
                        .collect::<Vec<_>>()
                        .join(", "),
                    (None, true) => "—".to_owned(),
                };
                format!(
                    "{} for {} ({})",
                    a.target,
                    escape(&a.report),
                    escape(&original)
                )
            })
            .collect();
        let awaiting: Vec<String> = status
            .awaiting_approval
            .iter()
            .map(|a| format!("{} until {}", escape(&a.id), a.expires_at.0))
            .collect();
        let _ = write!(
            body,
            "<tr data-policy=\"{ns}/{nm}\"><td>{ns}</td><td>{nm}</td><td>{ready}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{switch}</td></tr>",
            if mode.is_empty() {
                "acting".to_owned()
            } else {
                mode.join(", ")
            },
            escape(&policy.spec.services.names.join(", ")),
            if holds.is_empty() {
                "—".to_owned()
            } else {
                holds.join("<br>")
            },
            if awaiting.is_empty() {
                "—".to_owned()
            } else {
                awaiting.join("<br>")
            },
            status.actions_taken,
            status.actions_blocked,
            ns = escape(&namespace),
            nm = escape(&policy.name_any()),
        );
    }
    body.push_str("</tbody></table>");
    page("Remediation policies", Some(viewer), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, state: &str, opened: &str) -> AnomalyReport {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"service": "tax", "signal": "latency_p99"},
            "status": {
                "state": state, "score": 0.9, "peakScore": 0.9, "severity": "Critical",
                "observed": 0.4, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                "openedAt": opened
            }
        }))
        .expect("report")
    }

    fn alice() -> Viewer<'static> {
        Viewer {
            who: "alice",
            csrf: Some("c0ffee"),
        }
    }

    #[test]
    fn open_reports_come_first_newest_first_and_filters_narrow_them() {
        let now: Timestamp = "2026-12-04T12:00:00Z".parse().expect("now");
        let reports = [
            report("old-resolved", "Resolved", "2026-12-04T09:00:00Z"),
            report("older-open", "Open", "2026-12-04T10:00:00Z"),
            report("newer-open", "Remediating", "2026-12-04T11:00:00Z"),
        ];
        let page = super::reports(&reports, &Filters::default(), alice(), now);
        let at = |name: &str| page.find(&format!(">{name}</a>")).expect(name);
        assert!(at("newer-open") < at("older-open") && at("older-open") < at("old-resolved"));
        let open = Filters {
            state: "Open".into(),
            ..Filters::default()
        };
        let page = super::reports(&reports, &open, alice(), now);
        assert!(page.contains(">older-open</a>") && !page.contains(">newer-open</a>"));
        let elsewhere = Filters {
            service: "orders".into(),
            ..Filters::default()
        };
        let page = super::reports(&reports, &elsewhere, alice(), now);
        assert!(page.contains("No report matches."));
    }
}
