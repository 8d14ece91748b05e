//! Reading one value from a process's Prometheus `/metrics`.

/// The value of the unlabelled series `name` at `url`, or why there is none
/// (not serving yet, or not exported).
pub async fn metric_value(url: &str, name: &str) -> Result<f64, String> {
    let text = reqwest::get(url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{name} not in {url}"))
}
