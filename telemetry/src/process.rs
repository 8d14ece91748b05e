//! The process's own health for every binary's `/metrics`: resident memory
//! and the tasks alive on its tokio runtime, read when scraped. A soak
//! watches both for growth (a leak, or tasks spawned and never finished).

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// Appends `registry` (the binary's own metrics), the process metrics and
/// the OpenMetrics end marker to `out`.
pub fn encode_with_process_metrics(out: &mut String, registry: &Registry) {
    // Writing into a String cannot fail.
    let _ = encode_registry(out, registry);
    let _ = encode_registry(out, &process_registry());
    let _ = encode_eof(out);
}

fn process_registry() -> Registry {
    let mut registry = Registry::default();
    if let Some(bytes) = resident_bytes() {
        let resident = Gauge::<i64>::default();
        resident.set(bytes);
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory of this process",
            Unit::Bytes,
            resident,
        );
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let tasks = Gauge::<i64>::default();
        tasks.set(i64::try_from(runtime.metrics().num_alive_tasks()).unwrap_or(i64::MAX));
        registry.register(
            "tokio_alive_tasks",
            "Tasks alive on the tokio runtime that serves these metrics",
            tasks,
        );
    }
    registry
}

/// Resident set size, from /proc/self/status (`VmRSS: N kB`); None off Linux.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_resident_memory_and_live_tasks() {
        let _task = tokio::spawn(std::future::pending::<()>());
        let mut out = String::new();
        encode_with_process_metrics(&mut out, &Registry::default());
        let value = |name: &str| -> f64 {
            out.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} in {out}"))
        };
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("tokio_alive_tasks") >= 1.0);
        assert!(out.ends_with("# EOF\n"));
    }
}
