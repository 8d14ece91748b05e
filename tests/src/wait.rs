//! Waiting for a condition instead of sleeping for a guessed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every `interval` until it returns `Some`, or fails after
/// `timeout` with `what` in the message and the last observation.
pub async fn wait_until<T, O, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T, String>
where
    O: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, O>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(value) => return Ok(value),
            Err(observed) => observed,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {timeout:?} waiting for {what}; last seen: {last:?}"
            ));
        }
        tokio::time::sleep(interval).await;
    }
}

/// Polls `url` with GET every `interval` until it answers with a success
/// status, or fails after `timeout` with the last status or error.
pub async fn wait_for_ok(
    what: &str,
    url: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<(), String> {
    let http = reqwest::Client::new();
    wait_until(what, timeout, interval, || async {
        match http.get(url).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(r.status().to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}
