//! A scenario: load, warm-up, faults and load changes, as a YAML file.
//! Unknown fields are an error, and so is anything out of range: a typo in
//! a drill must not silently become a different drill.

use std::path::{Path, PathBuf};

use homeostat_api::oms::{OMS_SERVICES, is_oms_service};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub load: Load,
    /// Baseline learning on live traffic before any fault.
    pub warmup_seconds: f64,
    /// Run length after warm-up.
    pub observe_seconds: f64,
    #[serde(default)]
    pub faults: Vec<Fault>,
    #[serde(default)]
    pub load_changes: Vec<LoadChange>,
    /// Deploy-like restarts of healthy services: business as usual, not a
    /// fault. On the cluster only.
    #[serde(default)]
    pub restarts: Vec<Restart>,
    #[serde(default)]
    pub policies: Policies,
    /// A person on call, played by the demo: gives a verdict on each step
    /// that waits for approval.
    #[serde(default)]
    pub on_call: Option<OnCall>,
}

/// The demo's stand-in for the person on call: it answers each step that
/// awaits approval `after_seconds` after it appears, through the very write
/// `homeostat approve|reject` makes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnCall {
    /// How long the person takes to look.
    pub after_seconds: f64,
    /// What they decide.
    #[serde(default)]
    pub verdict: Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    #[default]
    Approve,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Requests per second to `orders` (held whatever the latency).
    pub orders_per_second: f64,
    /// Share of requests that place an order, in percent.
    #[serde(default = "default_new_order_percent")]
    pub new_order_percent: u32,
    /// Share that look an order up; the rest return an order (refunds go to
    /// the provider that took the payment, whatever the routing).
    #[serde(default = "default_lookup_percent")]
    pub lookup_percent: u32,
}

fn default_new_order_percent() -> u32 {
    70
}

fn default_lookup_percent() -> u32 {
    25
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Latency,
    Errors,
    /// Extra traffic straight to the service, beyond what `orders` sends:
    /// price quotes to `tax` (`oms loadgen --quotes 100`). It hurts only a
    /// service with a bounded capacity (the OrderSystem's
    /// `services.tax.capacity`), and more replicas relieve it.
    Surge,
    /// The request is handled, its answer cut off (a lost reply), for
    /// `error_rate` of the requests.
    DropResponse,
    /// The service stops listening (connections refused, scrapes fail), as
    /// a crashed process would, for the fault's duration.
    Down,
    /// Each order event the service's consumer takes waits `latency_ms`
    /// before it is recorded: its lag grows once events come faster. Its
    /// requests are untouched. Injected into the replicas running when it
    /// starts; a replica added later consumes at full speed.
    SlowConsumer,
}

/// The services a surge can be aimed at: those with a public endpoint the
/// load generator can call directly.
const SURGE_SERVICES: [&str; 1] = ["tax"];

/// The services that consume the order events.
const CONSUMER_SERVICES: [&str; 1] = ["notifications"];

/// An error naming `field` unless `service` is one of `allowed`, for a
/// fault only they can take.
fn only_at(field: &str, service: &str, allowed: &[&str], rule: &str) -> Result<(), String> {
    if allowed.contains(&service) {
        return Ok(());
    }
    Err(format!(
        "{field}: {rule} {}, not {service:?}",
        allowed.join(", ")
    ))
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub service: String,
    pub kind: FaultKind,
    /// Latency and slow_consumer: added delay (median, with jitter), in
    /// milliseconds (per request; per event).
    #[serde(default)]
    pub latency_ms: f64,
    /// Errors: fraction of requests failing with 503.
    #[serde(default)]
    pub error_rate: f64,
    /// Surge: extra requests a second, held whatever the latency.
    #[serde(default)]
    pub requests_per_second: f64,
    /// Above 0: the fault grows linearly to full strength over this time.
    #[serde(default)]
    pub ramp_seconds: f64,
    /// After warm-up.
    pub start_seconds: f64,
    pub duration_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadChange {
    /// After warm-up.
    pub at_seconds: f64,
    pub orders_per_second: f64,
}

/// A rolling restart of a service, as a deploy makes one (`kubectl rollout
/// restart`): each replica replaced by a new one, the new one Ready before
/// the old one goes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    pub service: String,
    /// After warm-up.
    pub at_seconds: f64,
}

/// `default` (the sample policies in deploy/samples) or policy files.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Policies {
    #[default]
    Default,
    Files(Vec<PathBuf>),
}

impl<'de> Deserialize<'de> for Policies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Files(Vec<PathBuf>),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Word(w) if w == "default" => Ok(Policies::Default),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "policies must be `default` or a list of file paths, not {w:?}"
            ))),
            Raw::Files(files) => Ok(Policies::Files(files)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("scenario {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_norway::Error,
    },
    #[error("scenario {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The longest run a scenario may ask for, warm-up included.
const MAX_SECONDS: f64 = 6.0 * 3600.0;

impl Scenario {
    /// Reads, parses and checks a scenario file; policy paths are taken
    /// relative to the file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut scenario = Self::parse(&text).map_err(|e| match e {
            ParseError::Yaml(source) => ScenarioError::Parse {
                path: path.to_owned(),
                source,
            },
            ParseError::Invalid(message) => ScenarioError::Invalid {
                path: path.to_owned(),
                message,
            },
        })?;
        if let Policies::Files(files) = &mut scenario.policies {
            let base = path.parent().unwrap_or(Path::new("."));
            for file in files.iter_mut() {
                if file.is_relative() {
                    *file = base.join(&*file);
                }
            }
        }
        Ok(scenario)
    }

    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let scenario: Scenario = serde_norway::from_str(text).map_err(ParseError::Yaml)?;
        scenario.validate().map_err(ParseError::Invalid)?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), String> {
        let finite_in = |what: &str, v: f64, min: f64, max: f64| {
            if v.is_finite() && v >= min && v <= max {
                Ok(())
            } else {
                Err(format!("{what} must be from {min} to {max}, not {v}"))
            }
        };
        if self.name.trim().is_empty() {
            return Err("name must not be empty".into());
        }
        finite_in(
            "load.orders_per_second",
            self.load.orders_per_second,
            0.1,
            2000.0,
        )?;
        if self.load.new_order_percent + self.load.lookup_percent > 100 {
            return Err(format!(
                "load.new_order_percent + load.lookup_percent must be at most 100, not {}",
                self.load.new_order_percent + self.load.lookup_percent
            ));
        }
        // The detector needs 30 two-second points after a full rate window.
        finite_in("warmup_seconds", self.warmup_seconds, 90.0, MAX_SECONDS)?;
        finite_in("observe_seconds", self.observe_seconds, 1.0, MAX_SECONDS)?;
        for (i, f) in self.faults.iter().enumerate() {
            let at = |field: &str| format!("faults[{i}].{field}");
            if !is_oms_service(&f.service) {
                return Err(format!(
                    "{} {:?} is not an OMS service (one of {})",
                    at("service"),
                    f.service,
                    OMS_SERVICES.join(", ")
                ));
            }
            match f.kind {
                FaultKind::Latency => finite_in(&at("latency_ms"), f.latency_ms, 1.0, 60_000.0)?,
                FaultKind::SlowConsumer => {
                    only_at(
                        &at("service"),
                        &f.service,
                        &CONSUMER_SERVICES,
                        "a slow_consumer fault needs a service that consumes events:",
                    )?;
                    finite_in(&at("latency_ms"), f.latency_ms, 1.0, 60_000.0)?
                }
                FaultKind::Errors | FaultKind::DropResponse => {
                    finite_in(&at("error_rate"), f.error_rate, 0.001, 1.0)?
                }
                FaultKind::Down => {}
                FaultKind::Surge => {
                    // The load generator calls no other service directly.
                    only_at(
                        &at("service"),
                        &f.service,
                        &SURGE_SERVICES,
                        "a surge can only be aimed at",
                    )?;
                    finite_in(
                        &at("requests_per_second"),
                        f.requests_per_second,
                        0.1,
                        2000.0,
                    )?;
                    if f.ramp_seconds > 0.0 {
                        return Err(format!("{}: a surge starts at once", at("ramp_seconds")));
                    }
                }
            }
            finite_in(&at("ramp_seconds"), f.ramp_seconds, 0.0, MAX_SECONDS)?;
            finite_in(
                &at("start_seconds"),
                f.start_seconds,
                0.0,
                self.observe_seconds,
            )?;
            finite_in(
                &at("duration_seconds"),
                f.duration_seconds,
                1.0,
                MAX_SECONDS,
            )?;
        }
        if let Some(on_call) = &self.on_call {
            finite_in(
                "on_call.after_seconds",
                on_call.after_seconds,
                0.0,
                self.observe_seconds,
            )?;
        }
        for (i, c) in self.load_changes.iter().enumerate() {
            finite_in(
                &format!("load_changes[{i}].at_seconds"),
                c.at_seconds,
                0.0,
                self.observe_seconds,
            )?;
            finite_in(
                &format!("load_changes[{i}].orders_per_second"),
                c.orders_per_second,
                0.1,
                2000.0,
            )?;
        }
        for (i, r) in self.restarts.iter().enumerate() {
            if !is_oms_service(&r.service) {
                return Err(format!(
                    "restarts[{i}].service {:?} is not an OMS service (one of {})",
                    r.service,
                    OMS_SERVICES.join(", ")
                ));
            }
            finite_in(
                &format!("restarts[{i}].at_seconds"),
                r.at_seconds,
                0.0,
                self.observe_seconds,
            )?;
        }
        Ok(())
    }

    /// Why this scenario cannot be played on the local stack, if it cannot:
    /// there the OMS is one process, with no Deployment to roll.
    pub fn needs_cluster(&self) -> Option<String> {
        (!self.restarts.is_empty()).then(|| {
            format!(
                "scenario {} restarts services as a deploy does, which needs their Deployments: play it with --cluster",
                self.name
            )
        })
    }

    /// The faults, each with its start and end in seconds after warm-up.
    pub fn fault_windows(&self) -> impl Iterator<Item = (&Fault, f64, f64)> {
        self.faults
            .iter()
            .map(|f| (f, f.start_seconds, f.start_seconds + f.duration_seconds))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Yaml(serde_norway::Error),
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name: payment-latency
load:
  orders_per_second: 40
warmup_seconds: 90
observe_seconds: 300
faults:
  - service: payment-primary
    kind: latency
    latency_ms: 300
    error_rate: 0.0
    ramp_seconds: 0
    start_seconds: 30
    duration_seconds: 180
load_changes:
  - at_seconds: 60
    orders_per_second: 80
policies: default
"#;

    #[test]
    fn the_documented_example_parses() {
        let s = Scenario::parse(EXAMPLE).expect("parse");
        assert_eq!(s.name, "payment-latency");
        assert_eq!(s.faults[0].kind, FaultKind::Latency);
        assert_eq!(s.load_changes[0].orders_per_second, 80.0);
        assert_eq!(s.policies, Policies::Default);
        let windows: Vec<(f64, f64)> = s.fault_windows().map(|(_, a, b)| (a, b)).collect();
        assert_eq!(windows, [(30.0, 210.0)]);
    }

    #[test]
    fn a_restart_names_an_oms_service_inside_the_run_and_needs_the_cluster() {
        assert_eq!(
            Scenario::parse(EXAMPLE).expect("parse").needs_cluster(),
            None
        );
        let restart = format!("{EXAMPLE}restarts:\n  - service: inventory\n    at_seconds: 20\n");
        let s = Scenario::parse(&restart).expect("a restart");
        assert_eq!(
            s.restarts,
            [Restart {
                service: "inventory".into(),
                at_seconds: 20.0
            }]
        );
        assert!(
            s.needs_cluster()
                .expect("needs the cluster")
                .contains("--cluster")
        );
        for (from, to, field) in [
            (
                "service: inventory",
                "service: billing",
                "restarts[0].service",
            ),
            (
                "at_seconds: 20\n",
                "at_seconds: 301\n",
                "restarts[0].at_seconds",
            ),
        ] {
            let err = Scenario::parse(&restart.replace(from, to)).expect_err(to);
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn unknown_fields_are_an_error() {
        let text = EXAMPLE.replace("latency_ms: 300", "latency_ms: 300\n    latncy: 5");
        let err = Scenario::parse(&text).expect_err("unknown field");
        assert!(err.to_string().contains("latncy"), "{err}");
        let top = format!("{EXAMPLE}\nwarmup: 3\n");
        assert!(Scenario::parse(&top).is_err());
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        for (from, to, field) in [
            (
                "service: payment-primary",
                "service: billing",
                "faults[0].service",
            ),
            ("latency_ms: 300", "latency_ms: 0", "faults[0].latency_ms"),
            ("warmup_seconds: 90", "warmup_seconds: 10", "warmup_seconds"),
            (
                "start_seconds: 30",
                "start_seconds: 400",
                "faults[0].start_seconds",
            ),
            (
                "orders_per_second: 80",
                "orders_per_second: -1",
                "load_changes[0].orders_per_second",
            ),
            ("policies: default", "policies: mine", "policies"),
            (
                "orders_per_second: 40",
                "orders_per_second: 40\n  lookup_percent: 50",
                "load.new_order_percent + load.lookup_percent",
            ),
        ] {
            let err = Scenario::parse(&EXAMPLE.replace(from, to)).expect_err(to);
            assert!(err.to_string().contains(field), "{to}: {err}");
        }
    }

    #[test]
    fn an_on_call_stand_in_answers_after_a_while_approving_by_default() {
        let s =
            Scenario::parse(&format!("{EXAMPLE}on_call:\n  after_seconds: 4\n")).expect("parse");
        assert_eq!(
            s.on_call,
            Some(OnCall {
                after_seconds: 4.0,
                verdict: Answer::Approve
            })
        );
        let reject = format!("{EXAMPLE}on_call:\n  after_seconds: 4\n  verdict: reject\n");
        assert_eq!(
            Scenario::parse(&reject)
                .expect("parse")
                .on_call
                .map(|o| o.verdict),
            Some(Answer::Reject)
        );
        let late = format!("{EXAMPLE}on_call:\n  after_seconds: 900\n");
        let err = Scenario::parse(&late).expect_err("after the run");
        assert!(err.to_string().contains("on_call.after_seconds"), "{err}");
        let typo = format!("{EXAMPLE}on_call:\n  after_seconds: 4\n  verdict: shrug\n");
        assert!(Scenario::parse(&typo).is_err());
    }

    #[test]
    fn a_slow_consumer_is_aimed_at_a_service_that_consumes_events() {
        let slow = EXAMPLE
            .replace("service: payment-primary", "service: notifications")
            .replace("kind: latency", "kind: slow_consumer");
        let s = Scenario::parse(&slow).expect("a slow consumer on notifications");
        assert_eq!(s.faults[0].kind, FaultKind::SlowConsumer);
        let err = Scenario::parse(&slow.replace("service: notifications", "service: tax"))
            .expect_err("tax consumes nothing");
        assert!(err.to_string().contains("consumes events"), "{err}");
    }

    #[test]
    fn a_surge_is_aimed_at_tax_with_a_rate() {
        let surge = EXAMPLE
            .replace("service: payment-primary", "service: tax")
            .replace("kind: latency", "kind: surge\n    requests_per_second: 150");
        let s = Scenario::parse(&surge).expect("a surge on tax");
        assert_eq!(s.faults[0].kind, FaultKind::Surge);
        assert_eq!(s.faults[0].requests_per_second, 150.0);
        for (from, to, message) in [
            (
                "service: tax",
                "service: inventory",
                "a surge can only be aimed at tax",
            ),
            (
                "requests_per_second: 150",
                "requests_per_second: 0",
                "faults[0].requests_per_second",
            ),
            (
                "ramp_seconds: 0",
                "ramp_seconds: 10",
                "a surge starts at once",
            ),
        ] {
            let err = Scenario::parse(&surge.replace(from, to)).expect_err(to);
            assert!(err.to_string().contains(message), "{to}: {err}");
        }
    }

    #[test]
    fn policy_files_are_relative_to_the_scenario() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.yaml");
        let text = EXAMPLE.replace("policies: default", "policies: [mine.yaml, /abs/p.yaml]");
        std::fs::write(&path, text).expect("write");
        let s = Scenario::load(&path).expect("load");
        assert_eq!(
            s.policies,
            Policies::Files(vec![
                dir.path().join("mine.yaml"),
                PathBuf::from("/abs/p.yaml")
            ])
        );
    }

    #[test]
    fn the_project_scenarios_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let mut n = 0;
        for dir in [root.clone(), root.join("catalogue")] {
            for entry in std::fs::read_dir(&dir).expect("tests/scenarios") {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                    n += 1;
                }
            }
        }
        assert!(n >= 16, "{n} scenarios");
    }
}
