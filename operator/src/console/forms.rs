//! The forms a person acts through, pure: what they may do here (asked of
//! RBAC by the handler) decides which forms appear; a person who may not
//! act is told so instead. Every form carries the session's CSRF token.

use std::fmt::Write as _;

use homeostat_api::{AnomalyReport, ApprovalState, RemediationPolicy, ReportState};
use kube::ResourceExt;

use super::html::escape;

/// What the person looking may do on this page.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    /// The session's CSRF token; `None` when they came with a bearer token
    /// (forms need a signed-in session).
    pub csrf: Option<String>,
    /// Acknowledge, approve, reject (`patch anomalyreports/status`).
    pub report_status: bool,
    /// `create silences`.
    pub silence: bool,
}

/// The hidden field every form carries.
fn csrf_field(csrf: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        escape(csrf)
    )
}

/// The acts on a report: acknowledge, approve or reject each step awaiting
/// approval, silence its service.
pub fn report_acts(report: &AnomalyReport, allowed: &Allowed) -> String {
    let mut body = String::from(r#"<section class="acts"><h2>Act</h2>"#);
    let Some(csrf) = &allowed.csrf else {
        body.push_str(r#"<p><a href="/login">Sign in</a> to act on this report.</p></section>"#);
        return body;
    };
    let (namespace, name) = (report.namespace().unwrap_or_default(), report.name_any());
    let base = format!("/reports/{}/{}", escape(&namespace), escape(&name));
    let csrf = csrf_field(csrf);
    let status = report.status.as_ref();
    if allowed.report_status {
        let _ = write!(
            body,
            r#"<form method="post" action="{base}/acknowledge" id="acknowledge">{csrf}<label>Note<input name="note" maxlength="1024"></label><button>Acknowledge</button></form>"#
        );
        // Awaiting, and nobody has decided yet (a verdict stands once given).
        let decided =
            |step: &str| status.is_some_and(|s| s.approvals.iter().any(|v| v.step == step));
        let awaiting = status.into_iter().flat_map(|s| &s.actions).filter(|a| {
            a.approval
                .as_ref()
                .is_some_and(|a| a.state == ApprovalState::Awaiting)
                && !decided(&a.id)
        });
        for action in awaiting {
            let _ = write!(
                body,
                r#"<form method="post" action="{base}/verdict" class="verdict" data-step="{step}">{csrf}<input type="hidden" name="step" value="{step}"><span>{kind} {target} awaits approval</span><label>Note<input name="note" maxlength="1024"></label><button name="verdict" value="approve">Approve</button><button name="verdict" value="reject">Reject</button></form>"#,
                step = escape(&action.id),
                kind = escape(&action.kind.to_string()),
                target = escape(&action.target),
            );
        }
    } else {
        body.push_str(
            r#"<p class="read-only">Read-only: RBAC does not let you patch anomalyreports/status here (acknowledge, approve, reject).</p>"#,
        );
    }
    let resolved = status.is_none_or(|s| s.state == ReportState::Resolved);
    if allowed.silence && !resolved {
        let _ = write!(
            body,
            r#"<form method="post" action="{base}/silence" id="silence">{csrf}<span>Keep every policy's hands off {service} for</span><select name="for"><option>15m</option><option selected>30m</option><option>1h</option><option>4h</option></select><label>Note<input name="note" maxlength="1024"></label><button>Silence</button></form>"#,
            service = escape(&report.spec.service),
        );
    } else if !allowed.silence {
        body.push_str(
            r#"<p class="read-only">Read-only: RBAC does not let you create silences here.</p>"#,
        );
    }
    body.push_str("</section>");
    body
}

/// A policy's suspend or resume button, when the person may patch it.
pub fn policy_switch(policy: &RemediationPolicy, csrf: Option<&str>, may: bool) -> String {
    let Some(csrf) = csrf.filter(|_| may) else {
        return String::new();
    };
    let (word, label) = if policy.spec.guards.suspend {
        ("resume", "Resume")
    } else {
        ("suspend", "Suspend")
    };
    format!(
        r#"<form method="post" action="/policies/{}/{}/{word}" class="switch">{}<button>{label}</button></form>"#,
        escape(&policy.namespace().unwrap_or_default()),
        escape(&policy.name_any()),
        csrf_field(csrf),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: &str, approval: &str) -> AnomalyReport {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
            "metadata": {"name": "tax-latency-p99-1", "namespace": "shop"},
            "spec": {"service": "tax", "signal": "latency_p99"},
            "status": {
                "state": state, "score": 0.9, "peakScore": 0.9, "severity": "Critical",
                "observed": 0.4, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                "openedAt": "2026-12-04T10:00:00Z",
                "actions": [{
                    "id": "scale-tax-0-1", "policy": "scale-tax", "kind": "scale",
                    "target": "deployment/tax 2→3", "plannedAt": "2026-12-04T10:00:00Z",
                    "approval": {"state": approval, "expiresAt": "2026-12-04T10:15:00Z"}
                }]
            }
        }))
        .expect("report")
    }

    fn everything() -> Allowed {
        Allowed {
            csrf: Some("c0ffee".into()),
            report_status: true,
            silence: true,
        }
    }

    #[test]
    fn a_person_who_may_act_gets_every_form_with_the_csrf_token() {
        let acts = report_acts(&report("Remediating", "Awaiting"), &everything());
        assert!(acts.contains(r#"action="/reports/shop/tax-latency-p99-1/acknowledge""#));
        assert!(acts.contains(r#"data-step="scale-tax-0-1""#));
        assert!(acts.contains(r#"value="approve""#) && acts.contains(r#"value="reject""#));
        assert!(acts.contains(r#"action="/reports/shop/tax-latency-p99-1/silence""#));
        assert_eq!(acts.matches(r#"name="csrf" value="c0ffee""#).count(), 3);
    }

    #[test]
    fn only_steps_still_awaiting_get_a_verdict_form_and_resolved_reports_no_silence() {
        let acts = report_acts(&report("Resolved", "Approved"), &everything());
        assert!(!acts.contains("verdict"), "{acts}");
        assert!(!acts.contains("/silence"), "{acts}");
        assert!(acts.contains("/acknowledge"));
    }

    #[test]
    fn a_read_only_person_is_told_so_and_gets_no_form() {
        let read_only = Allowed {
            csrf: Some("c0ffee".into()),
            ..Allowed::default()
        };
        let acts = report_acts(&report("Open", "Awaiting"), &read_only);
        assert!(!acts.contains("<form"), "{acts}");
        assert!(acts.contains("Read-only"));
        let bearer = report_acts(&report("Open", "Awaiting"), &Allowed::default());
        assert!(!bearer.contains("<form") && bearer.contains("Sign in"));
    }
}
