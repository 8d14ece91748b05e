//! The Grafana dashboards under `dashboards/`, as queries: every panel's
//! targets and every annotation, each made into plain PromQL (Grafana's
//! variables given the values "every service", "a rate window") so that
//! `promtool` can parse it and a real Prometheus can answer it. A panel
//! whose query returns nothing over a run is a panel an on-call engineer
//! would open to find empty.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One query of one panel (or annotation) of one dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelQuery {
    /// The dashboard's file name.
    pub dashboard: String,
    /// The panel's title, or `annotation: NAME`.
    pub panel: String,
    /// The query as the dashboard has it, variables and all.
    pub expr: String,
}

impl PanelQuery {
    /// The query with Grafana's variables given values: every service and
    /// signal (`.*`), `rate_window` for `$__rate_interval`.
    pub fn promql(&self, rate_window: &str) -> String {
        self.expr
            .replace("$__rate_interval", rate_window)
            .replace("$__interval", rate_window)
            .replace("$service", ".*")
            .replace("$signal", ".*")
    }
}

impl std::fmt::Display for PanelQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {}: {}", self.dashboard, self.panel, self.expr)
    }
}

#[derive(Deserialize)]
struct Dashboard {
    #[serde(default)]
    panels: Vec<Panel>,
    #[serde(default)]
    annotations: Annotations,
}

#[derive(Deserialize)]
struct Panel {
    title: String,
    #[serde(default)]
    targets: Vec<Query>,
    /// A row's panels.
    #[serde(default)]
    panels: Vec<Panel>,
}

#[derive(Deserialize)]
struct Query {
    #[serde(default)]
    expr: String,
}

#[derive(Deserialize, Default)]
struct Annotations {
    #[serde(default)]
    list: Vec<Annotation>,
}

#[derive(Deserialize)]
struct Annotation {
    name: String,
    #[serde(default)]
    expr: String,
}

/// The dashboards' JSON files in `dir`, sorted.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every query of every dashboard in `dir`.
pub fn queries(dir: &Path) -> Result<Vec<PanelQuery>, String> {
    let mut out = Vec::new();
    for path in files(dir)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let dashboard: Dashboard =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut panels: Vec<&Panel> = dashboard.panels.iter().collect();
        while let Some(panel) = panels.pop() {
            panels.extend(panel.panels.iter());
            out.extend(
                panel
                    .targets
                    .iter()
                    .filter(|t| !t.expr.is_empty())
                    .map(|t| PanelQuery {
                        dashboard: name.clone(),
                        panel: panel.title.clone(),
                        expr: t.expr.clone(),
                    }),
            );
        }
        out.extend(
            dashboard
                .annotations
                .list
                .iter()
                .filter(|a| !a.expr.is_empty())
                .map(|a| PanelQuery {
                    dashboard: name.clone(),
                    panel: format!("annotation: {}", a.name),
                    expr: a.expr.clone(),
                }),
        );
    }
    Ok(out)
}

/// The queries as Prometheus recording rules, one group per dashboard:
/// what `promtool check rules` parses.
pub fn as_rule_file(queries: &[PanelQuery], rate_window: &str) -> String {
    let mut text = String::from("groups:\n");
    let mut current = None;
    for (i, q) in queries.iter().enumerate() {
        if current != Some(&q.dashboard) {
            current = Some(&q.dashboard);
            text += &format!("  - name: {:?}\n    rules:\n", q.dashboard);
        }
        text += &format!(
            "      - record: dashboard_query_{i}\n        expr: {:?}\n",
            q.promql(rate_window)
        );
    }
    text
}

/// The queries that returned no finite sample from `prometheus` between
/// `from` and `to` (Unix seconds), or failed, with why.
pub async fn empty(
    prometheus: &str,
    queries: &[PanelQuery],
    from: i64,
    to: i64,
    step_seconds: u64,
    rate_window: &str,
) -> Vec<(PanelQuery, String)> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for q in queries {
        let answer = client
            .get(format!("{prometheus}/api/v1/query_range"))
            .query(&[
                ("query", q.promql(rate_window)),
                ("start", from.to_string()),
                ("end", to.to_string()),
                ("step", step_seconds.to_string()),
            ])
            .send()
            .await;
        let body: Result<serde_json::Value, String> = match answer {
            Ok(response) => response.json().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match body {
            Ok(body) if body["status"] != "success" => {
                out.push((q.clone(), format!("refused: {}", body["error"])))
            }
            Ok(body) => {
                // NaN (a quantile of no requests) draws nothing: not data.
                let finite = |value: &serde_json::Value| {
                    value[1]
                        .as_str()
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(f64::is_finite)
                };
                let drawn = body["data"]["result"].as_array().is_some_and(|series| {
                    series.iter().any(|s| {
                        s["values"]
                            .as_array()
                            .is_some_and(|values| values.iter().any(finite))
                    })
                });
                if !drawn {
                    out.push((q.clone(), "no data".to_owned()));
                }
            }
            Err(e) => out.push((q.clone(), format!("no answer: {e}"))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
    }

    #[test]
    fn every_shipped_panel_has_a_query_and_variables_become_plain_promql() {
        let queries = queries(&shipped()).expect("dashboards");
        let dashboards: std::collections::BTreeSet<&str> =
            queries.iter().map(|q| q.dashboard.as_str()).collect();
        assert_eq!(
            dashboards.into_iter().collect::<Vec<_>>(),
            ["homeostat.json", "oms-overview.json"]
        );
        assert!(queries.len() >= 30, "{}", queries.len());
        for q in &queries {
            let promql = q.promql("1m");
            assert!(!promql.contains('$'), "a variable left in {q}: {promql}");
        }
        assert!(
            queries.iter().any(|q| q.panel.starts_with("annotation: ")),
            "annotations are queries too"
        );
        let rules = as_rule_file(&queries, "1m");
        assert!(rules.contains("record: dashboard_query_0"));
    }
}
