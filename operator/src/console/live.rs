//! Live reports: the list page listens for server-sent events and the
//! console forwards a watch of the API server, one `report` event per
//! report added, changed or deleted — the row to show (rendered and
//! escaped here, as the page's own rows are) or none when the report is
//! gone or no longer matches the filters. Watched raw and decoded one by
//! one, so a report this version cannot read is skipped, not the stream.
//! The person must be allowed to `watch anomalyreports` where they look.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use homeostat_api::AnomalyReport;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::watcher;
use serde::Serialize;

use super::auth::Access;
use super::pages::{Filters, report_row};
use super::{Console, may, person};
use crate::decode;

/// One `report` event's data.
#[derive(Debug, Serialize, PartialEq)]
pub struct RowUpdate {
    /// `namespace/name`: the row's `data-report`.
    pub key: String,
    /// The row to show, or `None` to take it away.
    pub row: Option<String>,
}

/// What the page should do about `object` after a watch event: `deleted`
/// when the API server says it is gone.
pub fn update(
    object: &DynamicObject,
    deleted: bool,
    filters: &Filters,
    now: jiff::Timestamp,
) -> Option<RowUpdate> {
    let key = format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    );
    if deleted {
        return Some(RowUpdate { key, row: None });
    }
    match decode::decode::<AnomalyReport>(object) {
        Ok(report) => Some(RowUpdate {
            key,
            row: filters.keeps(&report).then(|| report_row(&report, now)),
        }),
        Err(bad) => {
            tracing::warn!(name = %bad.name, error = %bad.error, "console: live update skipped: cannot decode");
            None
        }
    }
}

pub async fn reports(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(filters): Query<Filters>,
) -> Response {
    let (person, _) = match person(&console, &headers).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let access = Access::homeostat("watch", "anomalyreports", filters.namespace());
    if let Err(refused) = may(&console, &person, &access).await {
        return refused;
    }
    let api = decode::raw_api::<AnomalyReport>(&console.client, filters.namespace());
    let events = watcher(api, watcher::Config::default()).filter_map(move |event| {
        let now = jiff::Timestamp::now();
        let update = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                update(&o, false, &filters, now)
            }
            Ok(watcher::Event::Delete(o)) => update(&o, true, &filters, now),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            // The watcher retries by itself; the page keeps what it shows.
            Err(error) => {
                tracing::debug!(%error, "console: live watch interrupted");
                None
            }
        };
        let event = update.and_then(|u| Event::default().event("report").json_data(u).ok());
        std::future::ready(event.map(Ok::<_, Infallible>))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(service: &str, state: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
            "metadata": {"name": "tax-latency-p99-1", "namespace": "shop"},
            "spec": {"service": service, "signal": "latency_p99"},
            "status": {
                "state": state, "score": 0.9, "peakScore": 0.9, "severity": "Critical",
                "observed": 0.4, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                "openedAt": "2026-12-04T10:00:00Z"
            }
        }))
        .expect("object")
    }

    fn now() -> jiff::Timestamp {
        "2026-12-04T10:05:00Z".parse().expect("now")
    }

    #[test]
    fn a_report_that_matches_comes_as_its_row_and_one_that_does_not_is_taken_away() {
        let open = Filters {
            state: "Open".into(),
            ..Filters::default()
        };
        let shown = update(&object("tax", "Open"), false, &open, now()).expect("update");
        assert_eq!(shown.key, "shop/tax-latency-p99-1");
        let row = shown.row.expect("a row");
        assert!(
            row.starts_with(r#"<tr data-report="shop/tax-latency-p99-1">"#),
            "{row}"
        );
        let resolved = update(&object("tax", "Resolved"), false, &open, now()).expect("update");
        assert_eq!(resolved.row, None);
        let deleted = update(&object("tax", "Open"), true, &open, now()).expect("update");
        assert_eq!(deleted.row, None);
    }

    #[test]
    fn a_report_that_does_not_decode_sends_nothing() {
        let bad = object("Not A Service!", "Sideways");
        assert_eq!(update(&bad, false, &Filters::default(), now()), None);
    }
}
