//! The web console, served by the operator on a port of its own
//! (`--console-listen`, off when unset), everything bundled in the binary:
//! the anomaly reports (open first, filtered by namespace, service and
//! state), one report in detail (its signal against its band as an SVG with
//! a marker for each event, the PromQL behind it, the evidence, the
//! timeline and the actions, a Grafana link when one is configured), and
//! the policies.
//!
//! Every request is a person the API server vouches for ([`auth`]): a
//! bearer token in `Authorization`, or a session signed in from one. What
//! they may see is what RBAC lets them read (a SubjectAccessReview per
//! page). Unauthenticated: 401; not allowed: 403; the API server not
//! answering: 503 with Retry-After. Tokens never appear in pages or logs.
//!
//!
//! A person acts from the pages — acknowledge, approve or reject a step,
//! silence a service, suspend or resume a policy — only when RBAC lets
//! them make that write themselves ([`acts`]); the reports list follows
//! the API server live over server-sent events ([`live`]).
//!
//! - [`auth`]: TokenReview, SubjectAccessReview, sessions, CSRF.
//! - [`pages`]: the pages, pure. [`forms`]: the act forms, pure.
//!   [`chart`]: the SVG, pure. [`html`]: escaping and the frame.

mod acts;
pub mod auth;
mod chart;
mod forms;
mod html;
mod live;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use homeostat_api::{AnomalyReport, RemediationPolicy};
use homeostat_oncall::history;
use kube::{Api, Client};

use acts::Act;
use auth::{Access, AuthError, COOKIE, Person, Session, Sessions};
use forms::Allowed;
use html::{Viewer, escape, page};
use pages::Filters;

/// Where the console listens and what it links to.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    pub listen: SocketAddr,
    /// Prometheus's base URL, for the charts.
    pub prometheus: Option<String>,
    /// Grafana's base URL, for a link to the dashboard of a report's service.
    pub grafana: Option<String>,
}

/// What every request shares.
pub struct Console {
    client: Client,
    sessions: Sessions,
    prometheus: Option<String>,
    grafana: Option<String>,
}

impl Console {
    pub fn new(client: Client, config: &ConsoleConfig) -> Self {
        Self {
            client,
            sessions: Sessions::default(),
            prometheus: config.prometheus.clone(),
            grafana: config.grafana.clone(),
        }
    }
}

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/reports") }))
        .route("/console.css", get(stylesheet))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/console.js", get(script))
        .route("/reports", get(reports))
        .route("/reports/live", get(live::reports))
        .route("/reports/{namespace}/{name}", get(report))
        .route(
            "/reports/{namespace}/{name}/acknowledge",
            post(acts::acknowledge),
        )
        .route("/reports/{namespace}/{name}/verdict", post(acts::judge))
        .route("/reports/{namespace}/{name}/silence", post(acts::hush))
        .route("/policies", get(policies))
        .route("/policies/{namespace}/{name}/suspend", post(acts::suspend))
        .route("/policies/{namespace}/{name}/resume", post(acts::resume))
        .layer(axum::middleware::map_response(guarded))
        .with_state(console)
}

/// Every answer: nothing but the console's own files runs or loads in its
/// pages, no other site may frame them, and nobody caches them.
async fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Serves the console until the process ends.
pub async fn serve(client: Client, config: ConsoleConfig) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("console: listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, "console serving");
    axum::serve(listener, router(Arc::new(Console::new(client, &config))))
        .await
        .context("console: serve")
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        html::STYLE,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        html::SCRIPT,
    )
}

/// Whether RBAC lets `person` do `access`; when the API server does not
/// answer, no (the form is left out; the act itself would ask again).
async fn can(console: &Console, person: &Person, access: &Access) -> bool {
    auth::allowed(&console.client, person, access)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "console: cannot ask what a person may do");
            false
        })
}

/// A page with `status`.
fn answer(status: StatusCode, title: &str, body: String) -> Response {
    (status, Html(page(title, None, &body))).into_response()
}

fn unauthenticated(why: &str) -> Response {
    let mut response = answer(
        StatusCode::UNAUTHORIZED,
        "Sign in",
        format!(
            r#"<p class="refused">{}</p><p><a href="/login">Sign in with a token</a></p>"#,
            escape(why)
        ),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="homeostat""#),
    );
    response
}

fn unavailable(error: &AuthError) -> Response {
    tracing::warn!(%error, "console: the API server did not answer a review");
    let mut response = answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        format!(
            r#"<p class="refused">The API server did not answer: {}. Try again shortly.</p>"#,
            escape(&error.to_string())
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// The value of cookie `name` on the request.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|cookies| auth::cookie(cookies, name))
}

/// Who is looking, for the page frame: their session's CSRF token when
/// they signed in.
fn viewer<'a>(person: &'a Person, session: Option<&'a Session>) -> Viewer<'a> {
    Viewer {
        who: &person.user,
        csrf: session.map(|s| s.csrf.as_str()),
    }
}

/// The person behind the request, and their session when they signed in.
async fn person(
    console: &Console,
    headers: &HeaderMap,
) -> Result<(Person, Option<Session>), Response> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthenticated("The Authorization header is not a bearer token."))?;
        return match auth::review_token(&console.client, token).await {
            Ok(person) => Ok((person, None)),
            Err(AuthError::NotAuthenticated) => {
                Err(unauthenticated("The API server did not accept this token."))
            }
            Err(error) => Err(unavailable(&error)),
        };
    }
    let session = cookie(headers, COOKIE)
        .and_then(|id| console.sessions.get(id))
        .ok_or_else(|| {
            unauthenticated("Sign in first: this page needs a token the API server accepts.")
        })?;
    Ok((session.person.clone(), Some(session)))
}

/// Refuses unless RBAC lets `person` do `access`.
async fn may(console: &Console, person: &Person, access: &Access) -> Result<(), Response> {
    match auth::allowed(&console.client, person, access).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            Err(answer(
                StatusCode::FORBIDDEN,
                "Not allowed",
                format!(
                    r#"<p class="refused">RBAC does not let {} {} {} {}.</p>"#,
                    escape(&person.user),
                    access.verb,
                    access.resource,
                    access.namespace.as_deref().map_or(
                        "in every namespace".to_owned(),
                        |ns| format!("in namespace {}", escape(ns))
                    )
                ),
            ))
        }
        Err(error) => Err(unavailable(&error)),
    }
}

/// The login form's CSRF cookie: the form must send back the same value.
const LOGIN_COOKIE: &str = "homeostat_login";

async fn login_form() -> Response {
    let csrf = auth::random_token();
    let body = format!(
        r#"<h1>Sign in</h1>
<p>Paste a token the cluster accepts: your own (<code>kubectl create token …</code>, or your kubeconfig's) or a ServiceAccount's. The API server checks it; the console keeps only who it says you are.</p>
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}">
<label>Token<textarea name="token" rows="4" cols="80" autocomplete="off"></textarea></label>
<label>Namespace (to open first; leave empty for every one you may read)<input name="namespace" autocomplete="off"></label>
<button>Sign in</button></form>"#
    );
    let mut response = Html(page("Sign in", None, &body)).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={csrf}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=600"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    csrf: String,
    #[serde(default)]
    namespace: String,
}

async fn login(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::same_secret(expected, &form.csrf) {
        return answer(
            StatusCode::FORBIDDEN,
            "Sign in",
            r#"<p class="refused">This form is not one the console gave you (or it expired): <a href="/login">load it again</a>.</p>"#.to_owned(),
        );
    }
    let namespace = form.namespace.trim();
    if !namespace.is_empty() && !homeostat_api::oms::is_service_name(namespace) {
        return answer(
            StatusCode::BAD_REQUEST,
            "Sign in",
            format!(
                r#"<p class="refused">{} is not a namespace name (lower-case letters, digits and '-'): <a href="/login">sign in again</a>.</p>"#,
                escape(namespace)
            ),
        );
    }
    let person = match auth::review_token(&console.client, form.token.trim()).await {
        Ok(person) => person,
        Err(AuthError::NotAuthenticated) => {
            return unauthenticated("The API server did not accept this token.");
        }
        Err(error) => return unavailable(&error),
    };
    tracing::info!(user = %person.user, "console: signed in");
    let id = console.sessions.start(person);
    let first = if namespace.is_empty() {
        "/reports".to_owned()
    } else {
        format!("/reports?namespace={namespace}")
    };
    let mut response = Redirect::to(&first).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        auth::SESSION.as_secs()
    )) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(id) = cookie(&headers, COOKIE)
        && let Some(live) = console.sessions.get(id)
        && auth::same_secret(&live.csrf, &form.csrf)
    {
        console.sessions.end(id);
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "homeostat_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    response
}

async fn reports(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(filters): Query<Filters>,
) -> Response {
    let (person, session) = match person(&console, &headers).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let viewer = viewer(&person, session.as_ref());
    let access = Access::homeostat("list", "anomalyreports", filters.namespace());
    if filters.namespace().is_some() {
        if let Err(refused) = may(&console, &person, &access).await {
            return refused;
        }
    } else if !can(&console, &person, &access).await {
        // Most people may read some namespaces, not all: ask which.
        return answer(
            StatusCode::FORBIDDEN,
            "Anomaly reports",
            format!(
                r#"<p class="refused">RBAC does not let {} list anomalyreports in every namespace. Which namespace?</p>
<form class="filters" method="get" action="/reports"><label>Namespace<input name="namespace"></label><button>Show</button></form>"#,
                escape(&person.user)
            ),
        );
    }
    // Decoded one by one: a report this version cannot read is left out
    // (and logged), never the whole page.
    match crate::decode::list_in::<AnomalyReport>(&console.client, filters.namespace()).await {
        Ok(list) => Html(pages::reports(
            &list,
            &filters,
            viewer,
            jiff::Timestamp::now(),
        ))
        .into_response(),
        Err(error) => unavailable(&AuthError::Api(error)),
    }
}

async fn report(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let (person, session) = match person(&console, &headers).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let access = Access::homeostat("get", "anomalyreports", Some(&namespace));
    if let Err(refused) = may(&console, &person, &access).await {
        return refused;
    }
    let found = Api::<AnomalyReport>::namespaced(console.client.clone(), &namespace)
        .get_opt(&name)
        .await;
    let report = match found {
        Ok(Some(report)) => report,
        Ok(None) => {
            return answer(
                StatusCode::NOT_FOUND,
                "Not found",
                format!(
                    "<p>No AnomalyReport {} in namespace {}.</p>",
                    escape(&name),
                    escape(&namespace)
                ),
            );
        }
        Err(error) => return unavailable(&AuthError::Api(error)),
    };
    let now = jiff::Timestamp::now();
    let (service, signal) = (report.spec.service.clone(), report.spec.signal);
    let (from, to) = report.status.as_ref().map_or((0, 0), |s| {
        (
            s.opened_at.0.as_second() - 300,
            s.resolved_at.as_ref().map_or(now, |t| t.0).as_second(),
        )
    });
    let history = match &console.prometheus {
        Some(url) => history::fetch(
            &console.client,
            &history::Source::Url(url.clone()),
            &service,
            signal,
            from,
            to,
        )
        .await
        .map_err(|e| e.to_string()),
        None => Err("no Prometheus configured (--console-prometheus)".to_owned()),
    };
    let allowed = match &session {
        Some(session) => {
            let (status_write, silence_write) = (
                Act::Verdict.access(&namespace),
                Act::Silence.access(&namespace),
            );
            let (report_status, silence) = tokio::join!(
                can(&console, &person, &status_write),
                can(&console, &person, &silence_write),
            );
            Allowed {
                csrf: Some(session.csrf.clone()),
                report_status,
                silence,
            }
        }
        None => Allowed::default(),
    };
    let grafana = console.grafana.as_ref().map(|base| {
        format!(
            "{}/d/homeostat/homeostat?var-service={service}&var-signal={signal}&from={}&to={}",
            base.trim_end_matches('/'),
            from * 1000,
            to * 1000
        )
    });
    Html(pages::report(
        &report,
        &pages::Detail {
            history,
            queries: history::queries(&service, signal).to_vec(),
            grafana,
            viewer: viewer(&person, session.as_ref()),
            allowed,
            now,
        },
    ))
    .into_response()
}

#[derive(serde::Deserialize, Default)]
struct NamespaceFilter {
    #[serde(default)]
    namespace: String,
}

async fn policies(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(filter): Query<NamespaceFilter>,
) -> Response {
    let (person, session) = match person(&console, &headers).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let viewer = viewer(&person, session.as_ref());
    let namespace = (!filter.namespace.is_empty()).then_some(filter.namespace.as_str());
    let access = Access::homeostat("list", "remediationpolicies", namespace);
    if let Err(refused) = may(&console, &person, &access).await {
        return refused;
    }
    match crate::decode::list_in::<RemediationPolicy>(&console.client, namespace).await {
        Ok(list) => {
            // One review per namespace shown, asked at once, and none
            // without a session (no form to show then).
            let namespaces: std::collections::BTreeSet<String> = match viewer.csrf {
                Some(_) => list
                    .iter()
                    .filter_map(|p| p.metadata.namespace.clone())
                    .collect(),
                None => Default::default(),
            };
            let reviews = namespaces.into_iter().map(|ns| async {
                let may = can(&console, &person, &Act::Suspend.access(&ns)).await;
                may.then_some(ns)
            });
            let switchable = futures::future::join_all(reviews)
                .await
                .into_iter()
                .flatten()
                .collect();
            Html(pages::policies(&list, viewer, &switchable)).into_response()
        }
        Err(error) => unavailable(&AuthError::Api(error)),
    }
}
