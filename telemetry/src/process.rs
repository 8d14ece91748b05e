//! The process's own health for every binary's `/metrics`: the standard
//! `process_*` metrics every Prometheus client library exports (CPU,
//! memory, file descriptors, threads, start time), the tasks alive on its
//! tokio runtime, and `homeostat_build_info`, read when scraped. A soak
//! watches memory and tasks for growth (a leak, or tasks spawned and never
//! finished); the PrometheusRule alerts on nothing here, but dashboards and
//! `process_start_time_seconds` restarts do.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};

/// What binary this is, for `homeostat_build_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Build {
    /// `operator` or `detector`.
    pub component: &'static str,
    /// The crate's version (`CARGO_PKG_VERSION`).
    pub version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    component: String,
    version: String,
}

/// Appends `registry` (the binary's own metrics), the process metrics,
/// `homeostat_build_info` and the OpenMetrics end marker to `out`.
pub fn encode_with_process_metrics(out: &mut String, registry: &Registry, build: Build) {
    // Writing into a String cannot fail.
    let _ = encode_registry(out, registry);
    let _ = encode_registry(out, &process_registry(build));
    let _ = encode_eof(out);
}

fn process_registry(build: Build) -> Registry {
    let mut registry = Registry::default();
    let info = Family::<BuildLabels, Gauge>::default();
    info.get_or_create(&BuildLabels {
        component: build.component.to_owned(),
        version: build.version.to_owned(),
    })
    .set(1);
    registry.register(
        "homeostat_build_info",
        "Always 1: the component and version of this homeostat binary",
        info,
    );
    if let Some(stat) = read("/proc/self/stat").and_then(|s| ProcStat::parse(&s)) {
        registry.register_with_unit(
            "process_cpu",
            "User and system CPU time the process spent",
            Unit::Seconds,
            ConstCounter::new(stat.cpu_seconds()),
        );
        registry.register_with_unit(
            "process_virtual_memory",
            "Virtual memory size of this process",
            Unit::Bytes,
            ConstGauge::new(i64::try_from(stat.virtual_bytes).unwrap_or(i64::MAX)),
        );
        registry.register(
            "process_threads",
            "OS threads in this process",
            ConstGauge::new(stat.threads),
        );
        if let Some(boot) = read("/proc/stat").and_then(|s| boot_time(&s)) {
            registry.register_with_unit(
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Unit::Seconds,
                ConstGauge::new(stat.start_time(boot)),
            );
        }
    }
    if let Some(bytes) = read("/proc/self/status").and_then(|s| resident_bytes(&s)) {
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory of this process",
            Unit::Bytes,
            ConstGauge::new(bytes),
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        registry.register(
            "process_open_fds",
            "Open file descriptors",
            ConstGauge::new(i64::try_from(fds.count()).unwrap_or(i64::MAX)),
        );
    }
    if let Some(max) = read("/proc/self/limits").and_then(|s| max_fds(&s)) {
        registry.register(
            "process_max_fds",
            "The soft limit on open file descriptors",
            ConstGauge::new(max),
        );
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        registry.register(
            "tokio_alive_tasks",
            "Tasks alive on the tokio runtime that serves these metrics",
            ConstGauge::new(i64::try_from(runtime.metrics().num_alive_tasks()).unwrap_or(i64::MAX)),
        );
    }
    registry
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Linux reports times in `/proc` in USER_HZ, which its ABI fixes at 100
/// on every architecture it supports.
const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of `/proc/self/stat` the metrics need.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ProcStat {
    user_ticks: u64,
    system_ticks: u64,
    threads: i64,
    /// Since boot, in ticks.
    start_ticks: u64,
    virtual_bytes: u64,
}

impl ProcStat {
    /// Fields counted after the command's name, which is in parentheses
    /// and may hold spaces and parentheses itself: field 3 (state) is the
    /// first word after the last `)`.
    fn parse(stat: &str) -> Option<ProcStat> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Field N of proc(5) is fields[N - 3].
        let field = |n: usize| fields.get(n - 3).copied();
        Some(ProcStat {
            user_ticks: field(14)?.parse().ok()?,
            system_ticks: field(15)?.parse().ok()?,
            threads: field(20)?.parse().ok()?,
            start_ticks: field(22)?.parse().ok()?,
            virtual_bytes: field(23)?.parse().ok()?,
        })
    }

    fn cpu_seconds(&self) -> f64 {
        (self.user_ticks + self.system_ticks) as f64 / TICKS_PER_SECOND
    }

    /// Seconds since the epoch, given the boot time (`btime`).
    fn start_time(&self, boot: u64) -> f64 {
        boot as f64 + self.start_ticks as f64 / TICKS_PER_SECOND
    }
}

/// `btime` of `/proc/stat`: boot time, seconds since the epoch.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Resident set size, from `/proc/self/status` (`VmRSS: N kB`).
fn resident_bytes(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit of `Max open files` in `/proc/self/limits`; None when
/// unlimited.
fn max_fds(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILD: Build = Build {
        component: "detector",
        version: "0.1.0",
    };

    #[test]
    fn the_fields_of_proc_stat_are_read_after_the_name_even_one_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 1520 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 104857600 2048 18446744073709551615";
        let parsed = ProcStat::parse(stat).expect("parses");
        assert_eq!(
            parsed,
            ProcStat {
                user_ticks: 250,
                system_ticks: 75,
                threads: 9,
                start_ticks: 123_456,
                virtual_bytes: 104_857_600,
            }
        );
        assert_eq!(parsed.cpu_seconds(), 3.25);
        assert_eq!(parsed.start_time(1_700_000_000), 1_700_001_234.56);
        assert_eq!(ProcStat::parse("4242 (short) S 1 2"), None);
        assert_eq!(ProcStat::parse("no parenthesis"), None);
    }

    #[test]
    fn boot_time_resident_memory_and_the_descriptor_limit_are_read() {
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        assert_eq!(boot_time("cpu 1 2 3\n"), None);
        assert_eq!(
            resident_bytes("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2048 * 1024)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_fds(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(max_fds(unlimited), None);
    }

    #[tokio::test]
    async fn the_standard_process_metrics_and_the_build_are_exported() {
        let _task = tokio::spawn(std::future::pending::<()>());
        let mut out = String::new();
        encode_with_process_metrics(&mut out, &Registry::default(), BUILD);
        let value = |name: &str| -> f64 {
            out.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} in {out}"))
        };
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        // Counted in 10 ms ticks: a young test process may show 0.
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_threads") >= 1.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs_f64();
        let started = value("process_start_time_seconds");
        assert!(
            started <= now + 1.0 && started > now - 3600.0,
            "{started} vs {now}"
        );
        assert!(value("tokio_alive_tasks") >= 1.0);
        assert!(
            out.contains(r#"homeostat_build_info{component="detector",version="0.1.0"} 1"#),
            "{out}"
        );
        assert!(out.ends_with("# EOF\n"));
    }
}
