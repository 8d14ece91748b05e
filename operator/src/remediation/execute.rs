//! Carrying out the decisions of [`plan`](super::plan), recording each step
//! before and after it happens.
//!
//! An act is three writes: the pending step into the policy status and the
//! report (with an Event), the change itself, then the step as done (in the
//! report, then in the policy). A restart between any two finds the pending
//! step and finishes it with its recorded, absolute target: nothing is done
//! twice and nothing is lost (`operator/tests/suites/faults.rs` kills the operator
//! at each of these points).
//!
//! Every change and every restore is conditional on what the decision saw
//! (a JSON-Patch `test` of the replicas or of each weight): when someone
//! else changed the target in between, the write fails whole, and the
//! target is recorded as theirs instead.

use homeostat_api::{
    ActionRecord, ActiveRemediation, AnomalyReport, AwaitingApproval, ChangedByOthers,
    PendingChange, RemediationPolicy, RemediationPolicyStatus, Target,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::Recorder;
use kube::{Client, ResourceExt};

use super::approval::NotApproved;
use super::kinds;
use super::plan::{Change, Decision, Forgotten, Guard, Step};
use super::record::{self, ActionUpdate, ReportEntry, set_condition, time};
use crate::crash::{self, CrashPoint};
use crate::router::RouterError;

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error(transparent)]
    Router(#[from] RouterError),
    /// A change whose states are not of its target's kind: a bug, refused
    /// rather than written.
    #[error("not a change its target's kind can make: {0}")]
    Mismatch(String),
}

impl ExecuteError {
    /// A conditional write refused because the target is no longer what
    /// the decision saw: a failed JSON-Patch `test` (422) or a conflict.
    fn changed_by_others(&self) -> bool {
        match self {
            ExecuteError::Api(kube::Error::Api(e))
            | ExecuteError::Router(RouterError::Api(kube::Error::Api(e))) => {
                e.code == 409 || (e.code == 422 && e.message.contains("Testing value"))
            }
            ExecuteError::Router(RouterError::Changed(_)) => true,
            _ => false,
        }
    }
}

/// The outcomes a step of a kind is counted under
/// (`homeostat_operator_actions_total`), each counter made at 0 at start.
pub const STEP_OUTCOMES: [&str; 8] = [
    "acted",
    "dry-run",
    "blocked",
    "restored",
    "failed",
    "yielded",
    "awaiting-approval",
    "not-done",
];

/// What one pass did, for metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// (kind, outcome) per step: acted, dry-run, blocked, restored, forgotten, failed.
    pub steps: Vec<(String, String)>,
    /// Guards that blocked a step.
    pub blocked: Vec<String>,
    pub invalid: Option<String>,
}

impl Outcome {
    /// Counts a step of `kind` under `what` (one of [`STEP_OUTCOMES`]).
    fn count(&mut self, kind: impl std::fmt::Display, what: &str) {
        self.steps.push((kind.to_string(), what.to_owned()));
    }
}

pub struct Executor<'a> {
    pub client: &'a Client,
    pub recorder: &'a Recorder,
    pub policy: &'a RemediationPolicy,
    pub reports: &'a [AnomalyReport],
    pub now: i64,
    /// The policy's resourceVersion as of our last write (optimistic concurrency).
    pub resource_version: std::sync::Mutex<Option<String>>,
}

impl Executor<'_> {
    async fn save(&self, status: &RemediationPolicyStatus) -> Result<(), ExecuteError> {
        let current = self
            .resource_version
            .lock()
            .map(|rv| rv.clone())
            .unwrap_or_default();
        let next = record::policy_status(self.client, self.policy, current, status).await?;
        if let Ok(mut rv) = self.resource_version.lock() {
            *rv = next;
        }
        Ok(())
    }

    fn namespace(&self) -> String {
        self.policy.namespace().unwrap_or_default()
    }

    fn report(&self, name: &str) -> Option<&AnomalyReport> {
        self.reports.iter().find(|r| r.name_any() == name)
    }

    /// Carries out `decisions` in order, updating `status` as it goes.
    pub async fn run(
        &self,
        decisions: Vec<Decision>,
        status: &mut RemediationPolicyStatus,
    ) -> Result<Outcome, ExecuteError> {
        let mut outcome = Outcome::default();
        let generation = self.policy.metadata.generation;
        status.observed_generation = generation;
        if !decisions.iter().any(|d| matches!(d, Decision::Invalid(_))) {
            set_condition(
                &mut status.conditions,
                "Invalid",
                false,
                "Valid",
                "every target exists",
                self.now,
                generation,
            );
            set_condition(
                &mut status.conditions,
                "Ready",
                true,
                "Valid",
                "the policy can act",
                self.now,
                generation,
            );
        }
        for decision in decisions {
            match decision {
                Decision::Invalid(reason) => {
                    set_condition(
                        &mut status.conditions,
                        "Invalid",
                        true,
                        "TargetNotFound",
                        &reason,
                        self.now,
                        generation,
                    );
                    set_condition(
                        &mut status.conditions,
                        "Ready",
                        false,
                        "Invalid",
                        &reason,
                        self.now,
                        generation,
                    );
                    self.save(status).await?;
                    record::event(
                        self.recorder,
                        self.policy,
                        None,
                        true,
                        "Invalid",
                        reason.clone(),
                    )
                    .await;
                    outcome.invalid = Some(reason);
                    return Ok(outcome);
                }
                Decision::Act(step) => {
                    self.record_pending(&step, status).await?;
                    crash::point(CrashPoint::BeforeChange);
                    self.finish(&step, status, &mut outcome).await?;
                }
                Decision::Finish(step) => self.finish(&step, status, &mut outcome).await?,
                Decision::Block { step, guard } => {
                    self.block(&step, guard, status, &mut outcome).await?
                }
                Decision::Propose(step) => self.propose(&step, status, &mut outcome).await?,
                Decision::NotDone { step, why } => {
                    self.not_done(&step, &why, status, &mut outcome).await?
                }
                Decision::Restore { report, change } => {
                    if let Err(error) = self.apply_change(&change).await {
                        if !error.changed_by_others() {
                            return Err(error);
                        }
                        self.yield_target(
                            &report,
                            &change.target,
                            change.before.text(),
                            "changed during the restore".into(),
                            status,
                            &mut outcome,
                        )
                        .await?;
                        continue;
                    }
                    let target = change.target.clone();
                    status
                        .active
                        .retain(|a| !(a.report == report && a.target == target));
                    self.save(status).await?;
                    self.mark_restored(&report, &target).await?;
                    record::event(
                        self.recorder,
                        self.policy,
                        self.report(&report),
                        false,
                        "Restored",
                        format!("{report} resolved and stable: {}", change.describe()),
                    )
                    .await;
                    outcome.count(change.kind(), "restored");
                }
                Decision::Yield {
                    report,
                    target,
                    expected,
                    found,
                } => {
                    self.yield_target(&report, &target, expected, found, status, &mut outcome)
                        .await?
                }
                Decision::Forget {
                    report,
                    target,
                    why,
                } => {
                    status
                        .active
                        .retain(|a| !(a.report == report && a.target == target));
                    self.save(status).await?;
                    if why == Forgotten::TargetGone {
                        let message =
                            format!("{}: {target} {}", self.policy.name_any(), why.describe());
                        self.warn(&report, &target, "gone", "TargetGone", message)
                            .await?;
                    }
                    outcome.count("-", "forgotten");
                }
            }
        }
        self.save(status).await?;
        Ok(outcome)
    }

    /// Before: the step is pending in the policy and planned on the report.
    async fn record_pending(
        &self,
        step: &Step,
        status: &mut RemediationPolicyStatus,
    ) -> Result<(), ExecuteError> {
        let target = step.change.target.clone();
        let after = step.change.after.recorded();
        let before = step.change.before.recorded();
        let pending = PendingChange {
            id: step.id.clone(),
            replicas: after.replicas,
            weights: after.weights,
            planned_at: time(self.now),
        };
        // An approved step stops waiting in the same write that makes it pending.
        status.awaiting_approval.retain(|a| a.id != step.id);
        match status
            .active
            .iter_mut()
            .find(|a| a.report == step.report && a.target == target)
        {
            Some(active) => active.pending = Some(pending),
            None => status.active.push(ActiveRemediation {
                report: step.report.clone(),
                kind: step.change.kind(),
                target: target.clone(),
                target_uid: step.target_uid.clone(),
                original_replicas: before.replicas,
                original_weights: before.weights,
                started_at: time(self.now),
                steps: 0,
                pending: Some(pending),
                applied_replicas: None,
                applied_weights: vec![],
                changed_by_others: None,
            }),
        }
        self.save(status).await?;
        self.tell_report(
            step,
            StepOutcome::Planned,
            "planned",
            format!(
                "{}: {} planned",
                self.policy.name_any(),
                step.change.describe()
            ),
            false,
        )
        .await?;
        record::event(
            self.recorder,
            self.policy,
            self.report(&step.report),
            false,
            "Planned",
            format!(
                "{} for {}: {}",
                step.change.kind(),
                step.report,
                step.change.describe()
            ),
        )
        .await;
        Ok(())
    }

    /// The change, then the step recorded as done.
    async fn finish(
        &self,
        step: &Step,
        status: &mut RemediationPolicyStatus,
        outcome: &mut Outcome,
    ) -> Result<(), ExecuteError> {
        if let Err(error) = self.apply_change(&step.change).await {
            if error.changed_by_others() {
                return self
                    .yield_target(
                        &step.report,
                        &step.change.target,
                        step.change.before.text(),
                        "changed before the step could be made".into(),
                        status,
                        outcome,
                    )
                    .await;
            }
            outcome.count(step.change.kind(), "failed");
            record::event(
                self.recorder,
                self.policy,
                self.report(&step.report),
                true,
                "ActionFailed",
                format!("{}: {error}", step.change.describe()),
            )
            .await;
            return Err(error);
        }
        crash::point(CrashPoint::AfterChange);
        // The report first, the policy last: until the policy records the
        // step done it stays pending, and a restart finishes it again (its
        // target is absolute), telling the report again; the other way
        // round, a crash between the two would leave the report saying
        // "planned" of a step done.
        self.tell_report(
            step,
            StepOutcome::Done(time(self.now)),
            "done",
            format!(
                "{}: {} done",
                self.policy.name_any(),
                step.change.describe()
            ),
            true,
        )
        .await?;
        crash::point(CrashPoint::AfterReport);
        if let Some(active) = status
            .active
            .iter_mut()
            .find(|a| a.report == step.report && a.target == step.change.target)
        {
            let applied = step.change.after.recorded();
            active.pending = None;
            active.steps += 1;
            (active.applied_replicas, active.applied_weights) = (applied.replicas, applied.weights);
        }
        status.last_action_time = Some(time(self.now));
        status.actions_taken += 1;
        status
            .recent_actions
            .retain(|t| self.now - t.0.as_second() < 3600);
        status.recent_actions.push(time(self.now));
        self.save(status).await?;
        let reason = kinds::done_reason(step.change.kind());
        record::event(
            self.recorder,
            self.policy,
            self.report(&step.report),
            false,
            reason,
            step.change.describe(),
        )
        .await;
        outcome.count(step.change.kind(), "acted");
        Ok(())
    }

    async fn block(
        &self,
        step: &Step,
        guard: Guard,
        status: &mut RemediationPolicyStatus,
        outcome: &mut Outcome,
    ) -> Result<(), ExecuteError> {
        let id = format!("{}-{}", step.id, guard.as_str());
        let dry_run = guard == Guard::DryRun;
        let record = self.step_record(
            step,
            id.clone(),
            if dry_run {
                StepOutcome::DryRun
            } else {
                StepOutcome::Blocked(guard)
            },
        );
        let message = if dry_run {
            format!(
                "{}: dry run, would do {}",
                self.policy.name_any(),
                step.change.describe()
            )
        } else {
            format!(
                "{}: {} blocked by {}",
                self.policy.name_any(),
                step.change.describe(),
                guard.as_str()
            )
        };
        record::report_status(
            self.client,
            &self.namespace(),
            &step.report,
            ReportEntry {
                action: Some(ActionUpdate::Step(Box::new(record))),
                timeline: Some((id, message.clone())),
                remediating: false,
                now: self.now,
            },
        )
        .await?;
        status.actions_blocked += 1;
        let reason = if dry_run { "DryRun" } else { "Blocked" };
        record::event(
            self.recorder,
            self.policy,
            self.report(&step.report),
            !dry_run,
            reason,
            message,
        )
        .await;
        outcome.count(
            step.change.kind(),
            if dry_run { "dry-run" } else { "blocked" },
        );
        outcome.blocked.push(guard.as_str().to_owned());
        Ok(())
    }

    /// Records a step as awaiting approval: in the policy (what it would
    /// do, until when), then on the report and as an Event, for the people
    /// who may approve it. Nothing is changed.
    async fn propose(
        &self,
        step: &Step,
        status: &mut RemediationPolicyStatus,
        outcome: &mut Outcome,
    ) -> Result<(), ExecuteError> {
        let Some(approval) = &step.approval else {
            return Err(ExecuteError::Mismatch(format!(
                "{} proposed without an approval",
                step.id
            )));
        };
        let awaiting = AwaitingApproval {
            id: step.id.clone(),
            report: step.report.clone(),
            target: step.change.target.clone(),
            target_uid: step.target_uid.clone(),
            before: step.change.before.recorded(),
            after: step.change.after.recorded(),
            planned_at: time(self.now),
            expires_at: approval.expires_at.clone(),
        };
        // Proposed again (the report lacked its record): one entry still.
        match status
            .awaiting_approval
            .iter_mut()
            .find(|a| a.id == step.id)
        {
            Some(existing) => existing.expires_at = awaiting.expires_at,
            None => status.awaiting_approval.push(awaiting),
        }
        self.save(status).await?;
        let message = format!(
            "{}: {} awaits approval until {} (homeostat approve {} {} -n {})",
            self.policy.name_any(),
            step.change.describe(),
            approval.expires_at.0,
            step.report,
            step.id,
            self.namespace(),
        );
        self.tell_report(
            step,
            StepOutcome::Planned,
            "awaiting-approval",
            message.clone(),
            false,
        )
        .await?;
        record::event(
            self.recorder,
            self.policy,
            self.report(&step.report),
            false,
            "AwaitingApproval",
            message,
        )
        .await;
        outcome.count(step.change.kind(), "awaiting-approval");
        Ok(())
    }

    /// Records a step that awaited approval as not done: on the report
    /// first (a restart before the policy is written settles it again, to
    /// the same record), then it stops waiting in the policy.
    async fn not_done(
        &self,
        step: &Step,
        why: &NotApproved,
        status: &mut RemediationPolicyStatus,
        outcome: &mut Outcome,
    ) -> Result<(), ExecuteError> {
        let mut step = step.clone();
        if let Some(approval) = step.approval.as_mut() {
            approval.state = why.state();
            approval.by = why.by().map(str::to_owned);
            approval.reason = Some(why.describe());
        }
        let message = format!(
            "{}: {} not done: {}",
            self.policy.name_any(),
            step.change.describe(),
            why.describe()
        );
        self.tell_report(
            &step,
            StepOutcome::Planned,
            "not-done",
            message.clone(),
            false,
        )
        .await?;
        status.awaiting_approval.retain(|a| a.id != step.id);
        self.save(status).await?;
        record::event(
            self.recorder,
            self.policy,
            self.report(&step.report),
            !matches!(why, NotApproved::Rejected { .. }),
            "NotApproved",
            message,
        )
        .await;
        outcome.count(step.change.kind(), "not-done");
        Ok(())
    }

    /// The step's record on its report, as it stands after `outcome`, and a
    /// timeline entry `<id>-<what>` saying so.
    async fn tell_report(
        &self,
        step: &Step,
        outcome: StepOutcome,
        what: &str,
        message: String,
        remediating: bool,
    ) -> Result<(), ExecuteError> {
        let record = self.step_record(step, step.id.clone(), outcome);
        record::report_status(
            self.client,
            &self.namespace(),
            &step.report,
            ReportEntry {
                action: Some(ActionUpdate::Step(Box::new(record))),
                timeline: Some((format!("{}-{what}", step.id), message)),
                remediating,
                now: self.now,
            },
        )
        .await?;
        Ok(())
    }

    /// Tells the report's readers something happened to `target`: a
    /// timeline entry `<policy>-<target>-<what>` and a Warning Event.
    async fn warn(
        &self,
        report: &str,
        target: &Target,
        what: &str,
        reason: &str,
        message: String,
    ) -> Result<(), ExecuteError> {
        let policy = self.policy.name_any();
        record::report_status(
            self.client,
            &self.namespace(),
            report,
            ReportEntry {
                action: None,
                timeline: Some((
                    format!("{policy}-{}-{what}", target.to_string().replace('/', "-")),
                    message.clone(),
                )),
                remediating: false,
                now: self.now,
            },
        )
        .await?;
        record::event(
            self.recorder,
            self.policy,
            self.report(report),
            true,
            reason,
            message,
        )
        .await;
        Ok(())
    }

    /// Records that someone else changed `target` (a Warning Event, a
    /// timeline entry on the report): the policy leaves it to them.
    async fn yield_target(
        &self,
        report: &str,
        target: &Target,
        expected: String,
        found: String,
        status: &mut RemediationPolicyStatus,
        outcome: &mut Outcome,
    ) -> Result<(), ExecuteError> {
        let Some(active) = status
            .active
            .iter_mut()
            .find(|a| a.report == report && a.target == *target)
        else {
            return Ok(());
        };
        active.pending = None;
        let kind = active.kind;
        let message = format!(
            "{}: {target} was changed by someone else (homeostat had it at {expected}, found {found}); homeostat takes no more steps on it and will not restore it",
            self.policy.name_any()
        );
        active.changed_by_others = Some(ChangedByOthers {
            noticed_at: time(self.now),
            expected,
            found,
        });
        self.save(status).await?;
        self.warn(
            report,
            target,
            "changed-by-others",
            "ChangedByOthers",
            message,
        )
        .await?;
        outcome.count(kind, "yielded");
        Ok(())
    }

    /// A step's record in the report's `actions`: what it is, for a person
    /// and as values (object, before, after), so nothing parses the text back.
    fn step_record(&self, step: &Step, id: String, outcome: StepOutcome) -> ActionRecord {
        let change = &step.change;
        let (dry_run, blocked_by, done_at) = match outcome {
            StepOutcome::Planned => (false, None, None),
            StepOutcome::Done(at) => (false, None, Some(at)),
            StepOutcome::DryRun => (true, None, None),
            StepOutcome::Blocked(guard) => (false, Some(guard.as_str().to_owned()), None),
        };
        ActionRecord {
            id,
            policy: self.policy.name_any(),
            kind: change.kind(),
            target: change.describe(),
            object: Some(change.target.clone()),
            before: Some(change.before.recorded()),
            after: Some(change.after.recorded()),
            planned_at: time(self.now),
            done_at,
            restored_at: None,
            dry_run,
            blocked_by,
            approval: step.approval.clone(),
        }
    }

    /// Sets the absolute state a change describes, if the target is still
    /// as the change found it.
    async fn apply_change(&self, change: &Change) -> Result<(), ExecuteError> {
        kinds::write(self.client, &self.namespace(), change).await
    }

    async fn mark_restored(&self, report: &str, target: &Target) -> Result<(), ExecuteError> {
        let Some(current) = self.report(report) else {
            return Ok(());
        };
        let policy = self.policy.name_any();
        let ids: Vec<String> = current
            .status
            .iter()
            .flat_map(|s| s.actions.iter())
            .filter(|a| {
                a.policy == policy
                    && a.done_at.is_some()
                    && a.restored_at.is_none()
                    && a.object.as_ref() == Some(target)
            })
            .map(|a| a.id.clone())
            .collect();
        for id in &ids {
            record::report_status(
                self.client,
                &self.namespace(),
                report,
                ReportEntry {
                    action: Some(ActionUpdate::Restored { id: id.clone() }),
                    timeline: None,
                    remediating: false,
                    now: self.now,
                },
            )
            .await?;
        }
        record::report_status(
            self.client,
            &self.namespace(),
            report,
            ReportEntry {
                action: None,
                timeline: Some((
                    format!("{policy}-{}-restored", target.to_string().replace('/', "-")),
                    format!("{policy}: {target} restored"),
                )),
                remediating: false,
                now: self.now,
            },
        )
        .await?;
        Ok(())
    }
}

/// Where a step stands, as its action record says.
enum StepOutcome {
    Planned,
    Done(Time),
    DryRun,
    Blocked(Guard),
}
