//! What every OMS service shares: the API routes wrapped in telemetry and
//! fault injection, plus `/openapi.json`, `/metrics`, `/healthz`, `/readyz`
//! and the token-protected `/admin/faults`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use tokio::sync::watch;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;

use crate::admission::{self, Admission, Limits};
use crate::capacity::{self, Workers};
use crate::error::{ApiError, JsonBody};
use crate::faults::{FaultRequest, FaultSet};
use crate::metrics::{ServerLabels, ServiceMetrics};
use crate::recycle;
use crate::telemetry;

/// Largest request body any OMS endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The parts of a service that the shared routes and middleware use.
#[derive(Clone)]
pub struct ServiceContext {
    pub name: &'static str,
    pub metrics: ServiceMetrics,
    pub faults: Arc<FaultSet>,
    pub admin_token: Arc<str>,
    pub admission: Admission,
    pub workers: Workers,
}

impl ServiceContext {
    pub fn new(name: &'static str, admin_token: &str, limits: Limits) -> Self {
        let metrics = ServiceMetrics::new(name);
        Self {
            name,
            admission: Admission::new(name, limits, &metrics),
            workers: Workers::new(limits.capacity, &metrics),
            metrics,
            faults: Arc::new(FaultSet::default()),
            admin_token: Arc::from(admin_token),
        }
    }
}

/// The service's whole router: its documented API plus the shared endpoints.
pub fn service_router(ctx: ServiceContext, api: OpenApiRouter) -> Router {
    let (api, openapi) = api.split_for_parts();
    let openapi = titled(&ctx, openapi);
    let openapi_json = Arc::new(serde_json::to_value(&openapi).unwrap_or_default());

    let api = api
        .layer(middleware::from_fn_with_state(ctx.clone(), inject_faults))
        // Waiting for a worker is inside admission: it counts in flight and
        // against the deadline.
        .layer(middleware::from_fn_with_state(
            ctx.workers.clone(),
            capacity::work,
        ))
        .layer(middleware::from_fn_with_state(
            ctx.admission.clone(),
            admission::admit,
        ))
        .layer(middleware::from_fn_with_state(ctx.clone(), observe))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));

    let admin = Router::new()
        .route(
            "/admin/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/admin/faults/{id}", delete(remove_fault))
        .layer(middleware::from_fn_with_state(
            ctx.clone(),
            require_admin_token,
        ))
        .with_state(ctx.clone());

    let scraped = ctx.clone();
    Router::new()
        .merge(api)
        .merge(admin)
        .route(
            "/openapi.json",
            get(move || async move { Json((*openapi_json).clone()) }),
        )
        .route(
            "/metrics",
            get(move || async move {
                // Faults also end by themselves; count them at scrape time.
                refresh_fault_gauge(&scraped);
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    scraped.metrics.encode(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
}

/// The service's OpenAPI document, as served at `/openapi.json`.
pub fn document(ctx: &ServiceContext, api: OpenApiRouter) -> utoipa::openapi::OpenApi {
    titled(ctx, api.into_openapi())
}

fn titled(ctx: &ServiceContext, mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    openapi.info.title = format!("OMS {} service", ctx.name);
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    openapi
}

/// Serves `router` on `listener` until `stop` turns true, recycling
/// keep-alive connections (see [`recycle`]). While a `down` fault is in
/// force it does not listen at all, then binds the same address again.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    faults: Arc<FaultSet>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let app = router
        .layer(middleware::from_fn(recycle::recycle))
        .into_make_service_with_connect_info::<recycle::Connection>();
    let stopped = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let mut listener = Some(listener);
    loop {
        let current = match listener.take() {
            Some(listener) => listener,
            None => match rebind(address, stop.clone()).await {
                Some(listener) => listener,
                None => return Ok(()),
            },
        };
        let watched = faults.clone();
        let went_down = async move { watched.went_down().await };
        let until = stopped(stop.clone());
        axum::serve(current, app.clone())
            .with_graceful_shutdown(async move {
                tokio::select! {
                    () = until => {}
                    () = went_down => {}
                }
            })
            .await?;
        if *stop.borrow() {
            return Ok(());
        }
        // Down: not listening at all until the fault is over.
        tracing::warn!(%address, "down (injected fault): not listening");
        tokio::select! {
            () = stopped(stop.clone()) => return Ok(()),
            () = faults.came_up() => {}
        }
        tracing::warn!(%address, "up again: listening");
    }
}

/// Binds `address` again after a `down` fault, retrying while another
/// process holds the port (as a restarted process would); `None` once
/// stopped.
async fn rebind(
    address: std::net::SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> Option<tokio::net::TcpListener> {
    loop {
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => return Some(listener),
            Err(error) => tracing::warn!(%address, %error, "cannot listen again yet; retrying"),
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return None,
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
    }
}

/// Records the server histogram (fault delays included) inside a span that
/// continues the caller's trace.
async fn observe(State(ctx): State<ServiceContext>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!("http.server", service = ctx.name, http.route = %route, http.method = %method);
    telemetry::adopt_remote_parent(&span, request.headers());

    let gauge = ctx
        .metrics
        .in_flight
        .get_or_create(&ctx.metrics.service_label())
        .clone();
    gauge.inc();
    let started = Instant::now();
    let response = next.run(request).instrument(span).await;
    gauge.dec();
    ctx.metrics
        .server_duration
        .get_or_create(&ServerLabels {
            service: ctx.name.to_owned(),
            http_route: route,
            http_request_method: method,
            http_response_status_code: response.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn inject_faults(
    State(ctx): State<ServiceContext>,
    request: Request,
    next: Next,
) -> Response {
    let effect = ctx.faults.effect(Instant::now(), &mut rand::thread_rng());
    if !effect.delay.is_zero() {
        tokio::time::sleep(effect.delay).await;
    }
    if effect.fail {
        return ApiError::unavailable(format!("{} is failing (injected fault)", ctx.name))
            .into_response();
    }
    let response = next.run(request).await;
    if effect.drop_response {
        return cut_off(response);
    }
    response
}

/// The handler's answer with its body broken off after the headers: the
/// connection closes mid-answer, so the caller gets no usable reply although
/// the request was handled.
fn cut_off(response: Response) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let broken = futures::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::other("answer dropped (injected fault)"))
    });
    Response::from_parts(parts, axum::body::Body::from_stream(broken))
}

async fn require_admin_token(
    State(ctx): State<ServiceContext>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|token| constant_time_eq(token.as_bytes(), ctx.admin_token.as_bytes()))
    {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "admin endpoints need `Authorization: Bearer <admin token>`",
        )
        .into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn list_faults(State(ctx): State<ServiceContext>) -> impl IntoResponse {
    Json(ctx.faults.active(Instant::now()))
}

async fn add_fault(
    State(ctx): State<ServiceContext>,
    JsonBody(spec): JsonBody<FaultRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if spec.kind.on_events() && !crate::services::consumes_events(ctx.name) {
        return Err(ApiError::unprocessable(
            "invalid_fault",
            format!(
                "{} consumes no events: a slow_consumer fault would do nothing",
                ctx.name
            ),
        ));
    }
    let view = ctx.faults.add(spec, Instant::now())?;
    tracing::warn!(service = ctx.name, fault = ?view.spec, "fault injected");
    Ok((StatusCode::CREATED, Json(view)))
}

async fn clear_faults(State(ctx): State<ServiceContext>) -> impl IntoResponse {
    let ended = ctx.faults.clear();
    tracing::warn!(service = ctx.name, ended, "faults cleared");
    Json(serde_json::json!({ "ended": ended }))
}

async fn remove_fault(
    State(ctx): State<ServiceContext>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    if ctx.faults.remove(id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no active fault {id}")))
    }
}

fn refresh_fault_gauge(ctx: &ServiceContext) {
    let active = ctx.faults.active(Instant::now()).len();
    ctx.metrics
        .active_faults
        .get_or_create(&ctx.metrics.service_label())
        .set(i64::try_from(active).unwrap_or(i64::MAX));
}
