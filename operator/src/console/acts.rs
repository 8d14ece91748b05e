//! What a person does from the console: acknowledge a report, approve or
//! reject a step awaiting approval, silence a report's service, suspend or
//! resume a policy. Each is the on-call library's act — the very write the
//! `homeostat` CLI makes — made with the operator's client only after a
//! SubjectAccessReview of the person for that same write, and announced by
//! an Event naming them (reported by `homeostat-console`). A form from a
//! signed-in session must carry the session's CSRF token; a request with a
//! bearer token carries no cookie a third party could ride on, so needs
//! none. Refused acts write nothing.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use homeostat_api::{AnomalyReport, VerdictKind};
use homeostat_oncall::{Actor, ack, actor::Missing, silence, suspend, verdict};
use serde::Deserialize;

use super::auth::{self, Access};
use super::html::escape;
use super::{Console, answer, may, person};

/// The controller name on the Events of acts made here.
pub const VIA: &str = "homeostat-console";

/// An act, and the RBAC permission it needs: the same the CLI's write needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Acknowledge,
    Verdict,
    Silence,
    Suspend,
}

impl Act {
    pub fn access(self, namespace: &str) -> Access {
        let namespace = Some(namespace.to_owned());
        match self {
            Act::Acknowledge | Act::Verdict => Access {
                verb: "patch",
                resource: "anomalyreports",
                subresource: Some("status"),
                namespace,
            },
            Act::Silence => Access {
                verb: "create",
                resource: "silences",
                subresource: None,
                namespace,
            },
            Act::Suspend => Access {
                verb: "patch",
                resource: "remediationpolicies",
                subresource: None,
                namespace,
            },
        }
    }
}

/// The person behind a form, once their session's CSRF token matches and
/// RBAC lets them `act` in `namespace`.
async fn actor(
    console: &Console,
    headers: &HeaderMap,
    csrf: &str,
    act: Act,
    namespace: &str,
) -> Result<Actor, Response> {
    let (person, session) = person(console, headers).await?;
    if let Some(session) = session
        && !auth::same_secret(&session.csrf, csrf)
    {
        return Err(answer(
            StatusCode::FORBIDDEN,
            "Not this form",
            r#"<p class="refused">This form is not one the console gave you in this session: load the page again.</p>"#.to_owned(),
        ));
    }
    may(console, &person, &act.access(namespace)).await?;
    Ok(Actor {
        client: console.client.clone(),
        by: person.user,
        via: VIA,
    })
}

/// Back to the page the act was made from (303 See Other).
fn done(to: String) -> Response {
    Redirect::to(&to).into_response()
}

/// What an act's failure tells the person: their input or the object's
/// state (4xx, with the reason), the operator not allowed to make the write
/// it was asked to (500: its RBAC in that namespace wants fixing), or the
/// API server not answering (503).
fn failed(error: &anyhow::Error) -> Response {
    let api = error.chain().find_map(|cause| match cause.downcast_ref() {
        Some(kube::Error::Api(status)) => Some(status),
        _ => None,
    });
    let status = error
        .chain()
        .find_map(|cause| {
            if cause.is::<Missing>() {
                Some(StatusCode::NOT_FOUND)
            } else if cause.is::<verdict::Refused>() {
                Some(StatusCode::CONFLICT)
            } else if cause.is::<silence::Refused>() {
                Some(StatusCode::BAD_REQUEST)
            } else {
                None
            }
        })
        .or_else(|| {
            let code = StatusCode::from_u16(api?.code).ok()?;
            Some(match code {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                code if code.is_client_error() => code,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            })
        })
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    // The API server's own words, not the client's debug dump of them.
    let why = match api {
        Some(api) => format!("{error}: {}", api.message),
        None => format!("{error:#}"),
    };
    if status.is_server_error() {
        tracing::warn!(error = %why, "console: an act failed");
    }
    let hint = if status == StatusCode::INTERNAL_SERVER_ERROR {
        " The operator is not allowed to make this write: bind its ClusterRole homeostat-operator-manage in this namespace."
    } else {
        ""
    };
    let mut response = answer(
        status,
        "Not done",
        format!(
            r#"<p class="refused">Not done: {}.{hint}</p><p><a href="javascript:history.back()">Back</a></p>"#,
            escape(&why)
        ),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

#[derive(Deserialize)]
pub struct AckForm {
    /// The session's token; a bearer-token request sends none.
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

pub async fn acknowledge(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Form(form): Form<AckForm>,
) -> Response {
    let actor = match actor(&console, &headers, &form.csrf, Act::Acknowledge, &namespace).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    match ack::acknowledge(&actor, &namespace, &name, form.note.trim()).await {
        Ok(()) => done(format!("/reports/{namespace}/{name}")),
        Err(error) => failed(&error),
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Said {
    Approve,
    Reject,
}

#[derive(Deserialize)]
pub struct VerdictForm {
    /// The session's token; a bearer-token request sends none.
    #[serde(default)]
    csrf: String,
    step: String,
    verdict: Said,
    #[serde(default)]
    note: String,
}

pub async fn judge(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Form(form): Form<VerdictForm>,
) -> Response {
    let actor = match actor(&console, &headers, &form.csrf, Act::Verdict, &namespace).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    let kind = match form.verdict {
        Said::Approve => VerdictKind::Approved,
        Said::Reject => VerdictKind::Rejected,
    };
    match verdict::give(
        &actor,
        &namespace,
        &name,
        &form.step,
        kind,
        form.note.trim(),
    )
    .await
    {
        Ok(()) => done(format!("/reports/{namespace}/{name}")),
        Err(error) => failed(&error),
    }
}

#[derive(Deserialize)]
pub struct SilenceForm {
    /// The session's token; a bearer-token request sends none.
    #[serde(default)]
    csrf: String,
    /// How long: `30m`, `2h`.
    #[serde(rename = "for")]
    length: String,
    #[serde(default)]
    note: String,
}

/// Silences the report's service.
pub async fn hush(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Form(form): Form<SilenceForm>,
) -> Response {
    let actor = match actor(&console, &headers, &form.csrf, Act::Silence, &namespace).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    let length: homeostat_api::Duration = match form.length.trim().parse() {
        Ok(length) => length,
        Err(_) => {
            return answer(
                StatusCode::BAD_REQUEST,
                "Not done",
                format!(
                    r#"<p class="refused">Not done: {:?} is not a length of time (say 30m or 2h).</p>"#,
                    escape(&form.length)
                ),
            );
        }
    };
    let result = async {
        let report: AnomalyReport = actor.report(&namespace, &name).await?;
        silence::create(
            &actor,
            &namespace,
            &[report.spec.service],
            length,
            form.note.trim(),
        )
        .await
    }
    .await;
    match result {
        Ok(_) => done(format!("/reports/{namespace}/{name}")),
        Err(error) => failed(&error),
    }
}

#[derive(Deserialize)]
pub struct SwitchForm {
    /// The session's token; a bearer-token request sends none.
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

async fn switch(
    console: &Console,
    headers: &HeaderMap,
    (namespace, name): (String, String),
    form: SwitchForm,
    on: bool,
) -> Response {
    let actor = match actor(console, headers, &form.csrf, Act::Suspend, &namespace).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    match suspend::set(&actor, &namespace, &name, on, form.note.trim()).await {
        Ok(()) => done(format!("/policies?namespace={namespace}")),
        Err(error) => failed(&error),
    }
}

pub async fn suspend(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(policy): Path<(String, String)>,
    Form(form): Form<SwitchForm>,
) -> Response {
    switch(&console, &headers, policy, form, true).await
}

pub async fn resume(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(policy): Path<(String, String)>,
    Form(form): Form<SwitchForm>,
) -> Response {
    switch(&console, &headers, policy, form, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_act_asks_rbac_for_the_write_the_cli_makes() {
        let ack = Act::Acknowledge.access("shop");
        assert_eq!(
            (
                ack.verb,
                ack.resource,
                ack.subresource,
                ack.namespace.as_deref()
            ),
            ("patch", "anomalyreports", Some("status"), Some("shop"))
        );
        assert_eq!(Act::Verdict.access("shop"), ack);
        let silence = Act::Silence.access("shop");
        assert_eq!((silence.verb, silence.resource), ("create", "silences"));
        let suspend = Act::Suspend.access("shop");
        assert_eq!(
            (suspend.verb, suspend.resource, suspend.subresource),
            ("patch", "remediationpolicies", None)
        );
    }

    #[test]
    fn a_failure_is_answered_by_what_caused_it() {
        let missing = anyhow::Error::new(Missing::report("shop", "gone")).context("acknowledge");
        assert_eq!(failed(&missing).status(), StatusCode::NOT_FOUND);
        let refused = anyhow::Error::new(silence::Refused::NoService);
        assert_eq!(failed(&refused).status(), StatusCode::BAD_REQUEST);
        let api = |code: u16| {
            anyhow::Error::new(kube::Error::Api(
                kube::core::Status::failure("said the API server", "Why")
                    .with_code(code)
                    .boxed(),
            ))
            .context("acknowledge shop/x")
        };
        assert_eq!(failed(&api(422)).status(), StatusCode::UNPROCESSABLE_ENTITY);
        // The operator's own write refused: not the person's doing.
        assert_eq!(
            failed(&api(403)).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(failed(&api(500)).status(), StatusCode::SERVICE_UNAVAILABLE);
        let down = anyhow::anyhow!("connection refused");
        let answer = failed(&down);
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers().contains_key(header::RETRY_AFTER));
    }
}
