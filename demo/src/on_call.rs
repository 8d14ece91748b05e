//! The demo's stand-in for the person on call: it looks at the reports as
//! the demo polls them and answers each step awaiting approval once it has
//! waited `after_seconds`, through `homeostat approve|reject`'s own write
//! (`homeostat_oncall::verdict`), as whoever the demo's kubeconfig is.

use std::collections::BTreeMap;
use std::time::Duration;

use homeostat_api::{AnomalyReport, ApprovalState, VerdictKind};
use homeostat_oncall::{Actor, verdict};
use kube::ResourceExt;
use tokio::time::Instant;

use crate::scenario::{Answer, OnCall};
use crate::timeline::Timeline;

/// Attempts at one verdict before the stand-in gives up on it.
const ATTEMPTS: u32 = 5;

pub struct OnCallPerson {
    plan: OnCall,
    /// Steps seen awaiting approval: when first seen, and the attempts left.
    steps: BTreeMap<(String, String), (Instant, u32)>,
}

impl OnCallPerson {
    pub fn new(plan: OnCall) -> Self {
        Self {
            plan,
            steps: BTreeMap::new(),
        }
    }

    /// Answers the steps that have waited long enough.
    pub async fn look(
        &mut self,
        client: &kube::Client,
        namespace: &str,
        reports: &[AnomalyReport],
        timeline: &mut Timeline,
    ) {
        let wait = Duration::from_secs_f64(self.plan.after_seconds);
        let awaiting = reports.iter().flat_map(|r| {
            r.status
                .iter()
                .flat_map(|s| s.actions.iter())
                .filter(|a| a.approval.as_ref().map(|p| p.state) == Some(ApprovalState::Awaiting))
                .map(move |a| (r.name_any(), a.id.clone()))
        });
        for key in awaiting {
            let (seen, attempts) = self
                .steps
                .entry(key.clone())
                .or_insert((Instant::now(), ATTEMPTS));
            if seen.elapsed() < wait || *attempts == 0 {
                continue;
            }
            *attempts -= 1;
            let (report, step) = &key;
            let kind = match self.plan.verdict {
                Answer::Approve => VerdictKind::Approved,
                Answer::Reject => VerdictKind::Rejected,
            };
            let note = "the demo's on-call stand-in";
            let given = match Actor::from_kubeconfig(client.clone(), "homeostat-demo").await {
                Ok(actor) => verdict::give(&actor, namespace, report, step, kind, note)
                    .await
                    .map(|()| actor.by),
                Err(error) => Err(error),
            };
            match given {
                Ok(by) => {
                    *attempts = 0;
                    timeline.say(&format!(
                        "ON-CALL  {step} {} by {by} after {:.0} s",
                        verdict::word(kind),
                        seen.elapsed().as_secs_f64()
                    ));
                }
                Err(error) => timeline.say(&format!("ON-CALL  cannot answer {step}: {error:#}")),
            }
        }
    }
}
