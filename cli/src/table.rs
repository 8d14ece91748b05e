//! Reports and policies as kubectl-style tables: pure, so the columns are
//! unit-tested; the main file only fetches and prints.

use homeostat_api::{AnomalyReport, RemediationPolicy, ReportState};
use jiff::Timestamp;
use kube::ResourceExt;

/// Rows padded into columns, the header first.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("   ").trim_end().to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n") + "\n"
}

pub use homeostat_oncall::age;

pub const REPORT_COLUMNS: [&str; 9] = [
    "NAMESPACE",
    "NAME",
    "SERVICE",
    "SIGNAL",
    "STATE",
    "SEVERITY",
    "SCORE",
    "CULPRIT",
    "AGE",
];

/// AGE, the column that changes with the clock alone.
pub const REPORT_AGE_COLUMN: usize = 8;

/// Open reports first, then the others, newest first within each.
pub fn report_rows(reports: &[AnomalyReport], now: Timestamp) -> Vec<Vec<String>> {
    let mut sorted: Vec<&AnomalyReport> = reports.iter().collect();
    let opened = |r: &AnomalyReport| {
        r.status
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |s| s.opened_at.0)
    };
    let resolved = |r: &AnomalyReport| {
        r.status
            .as_ref()
            .is_some_and(|s| s.state == ReportState::Resolved)
    };
    sorted.sort_by_key(|r| (resolved(r), std::cmp::Reverse(opened(r))));
    sorted
        .into_iter()
        .map(|r| {
            let status = r.status.as_ref();
            vec![
                r.namespace().unwrap_or_default(),
                r.name_any(),
                r.spec.service.clone(),
                r.spec.signal.as_str().to_owned(),
                status.map_or("-".into(), |s| format!("{:?}", s.state)),
                status.map_or("-".into(), |s| s.severity.to_string()),
                status.map_or("-".into(), |s| format!("{:.2}", s.score)),
                status
                    .and_then(|s| s.culprit.as_ref())
                    .map_or("-".into(), |c| c.service.clone()),
                status.map_or("-".into(), |s| age(s.opened_at.0, now)),
            ]
        })
        .collect()
}

pub const POLICY_COLUMNS: [&str; 7] = [
    "NAMESPACE",
    "NAME",
    "READY",
    "SERVICES",
    "HOLDS",
    "ACTIONS",
    "BLOCKED",
];

pub fn policy_rows(policies: &[RemediationPolicy]) -> Vec<Vec<String>> {
    policies
        .iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map_or("-".to_owned(), |c| c.status.clone());
            let holds: Vec<String> = status
                .active
                .iter()
                .map(|a| format!("{} {}", a.kind, a.target))
                .chain(
                    status
                        .awaiting_approval
                        .iter()
                        .map(|a| format!("{} awaits approval ({})", a.id, a.target)),
                )
                .collect();
            let mut flags = Vec::new();
            if p.spec.guards.dry_run {
                flags.push("dry-run");
            }
            if p.spec.guards.suspend {
                flags.push("suspended");
            }
            let ready = if flags.is_empty() {
                ready
            } else {
                format!("{ready} ({})", flags.join(", "))
            };
            vec![
                p.namespace().unwrap_or_default(),
                p.name_any(),
                ready,
                p.spec.services.names.join(","),
                if holds.is_empty() {
                    "-".into()
                } else {
                    holds.join("; ")
                },
                status.actions_taken.to_string(),
                status.actions_blocked.to_string(),
            ]
        })
        .collect()
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
                "state": state, "score": 0.91, "peakScore": 0.95, "severity": "Critical",
                "observed": 0.4, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                "culprit": {"service": "tax", "evidence": ["its own latency"], "confidence": 0.9},
                "openedAt": opened
            }
        }))
        .expect("report")
    }

    #[test]
    fn open_reports_come_first_and_columns_line_up() {
        let now: Timestamp = "2026-11-30T01:00:00Z".parse().expect("now");
        let reports = [
            report("tax-old", "Resolved", "2026-11-30T00:10:00Z"),
            report("tax-new", "Open", "2026-11-30T00:59:30Z"),
        ];
        let rows = report_rows(&reports, now);
        assert_eq!(rows[0][1], "tax-new");
        assert_eq!(rows[0][4], "Open");
        assert_eq!(rows[0][8], "30s");
        assert_eq!(rows[1][8], "50m");
        let text = render(&REPORT_COLUMNS, &rows);
        let lines: Vec<&str> = text.lines().collect();
        let column = |line: &str| line.find("SERVICE").or_else(|| line.find("tax   "));
        assert_eq!(column(lines[0]), lines[1].find("tax   "), "{text}");
    }

    #[test]
    fn the_age_column_is_where_watch_leaves_it_out() {
        assert_eq!(REPORT_COLUMNS[REPORT_AGE_COLUMN], "AGE");
    }

    #[test]
    fn ages_read_like_kubectls() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).expect("t");
        assert_eq!(age(t(0), t(59)), "59s");
        assert_eq!(age(t(0), t(600)), "10m");
        assert_eq!(age(t(0), t(4 * 3600)), "4h");
        assert_eq!(age(t(0), t(3 * 86_400)), "3d");
    }
}
