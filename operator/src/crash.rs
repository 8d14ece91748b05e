//! Fault injection for the fault suite: with `HOMEOSTAT_CRASH_AT` set to a
//! point's name, the operator dies there at once (abort: no step finished,
//! no status written, no Lease released — as a SIGKILL or a lost node
//! would leave things) the first time one of its passes gets there. Unset,
//! as it always is outside the fault suite, nothing happens.

use std::sync::OnceLock;

/// The points of a step between which a crash can leave things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The step is recorded pending; the target is not changed yet.
    BeforeChange,
    /// The target is changed; the step is not yet recorded done.
    AfterChange,
    /// The report tells the step done; the policy has it pending still.
    AfterReport,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 3] = [
        CrashPoint::BeforeChange,
        CrashPoint::AfterChange,
        CrashPoint::AfterReport,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::BeforeChange => "before-change",
            CrashPoint::AfterChange => "after-change",
            CrashPoint::AfterReport => "after-report",
        }
    }
}

/// The environment variable naming the point to die at.
pub const CRASH_AT_ENV: &str = "HOMEOSTAT_CRASH_AT";

/// Dies here when told to.
pub fn point(point: CrashPoint) {
    static CRASH_AT: OnceLock<Option<String>> = OnceLock::new();
    let crash_at = CRASH_AT.get_or_init(|| std::env::var(CRASH_AT_ENV).ok());
    if crash_at.as_deref() == Some(point.name()) {
        eprintln!("{CRASH_AT_ENV}={}: dying here, as told", point.name());
        std::process::abort();
    }
}
