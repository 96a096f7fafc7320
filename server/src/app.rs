//! Builds the application: state, schema and the axum router. `main.rs` and the
//! end-to-end tests both start servers through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, BatchResponse, Request, Response};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use sea_orm::DatabaseConnection;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::auth::{self, Actor};
use crate::authz::Authz;
use crate::config::{DatabaseArgs, Limits};
use crate::error::AppError;
use crate::graphql::loaders::Loaders;
use crate::graphql::schema::{self, AppSchema};
use crate::graphql::subscriptions::{SocketToken, SubscriptionsOnly};
use crate::metrics::{Metrics, OutcomeLabel};
use crate::services::Services;

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub schema: AppSchema,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub documents: Arc<crate::graphql::documents::Documents>,
}

/// Connects to the database and applies pending migrations.
pub async fn open_database(
    args: &DatabaseArgs,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<DatabaseConnection> {
    let db = crate::db::connect(args, metrics).await?;
    crate::db::migrate(&db).await?;
    Ok(db)
}

pub async fn state(
    db: DatabaseConnection,
    metrics: Arc<Metrics>,
    limits: Limits,
) -> anyhow::Result<AppState> {
    let authz = Authz::load(&db).await?;
    let mut services = Services::new(
        db,
        authz,
        std::time::Duration::from_secs(limits.auth_cache_seconds),
        crate::sandbox::Sandbox::new(limits.sandbox()?),
    );
    services.egress = Arc::new(crate::scheduler::egress::Egress::new(
        limits.delivery.webhook_allow.clone(),
    ));
    let schema = schema::build(&limits)
        .data(services.clone())
        .data(Arc::clone(&metrics))
        .finish();
    Ok(AppState {
        services,
        schema,
        metrics,
        limits,
        documents: Arc::default(),
    })
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/graphql", post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/graphiql", get(graphiql))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/calendar/{file}", get(crate::calendar_http::feed))
        .route("/accounts/{id}/{file}", get(crate::org_chart_http::picture))
        .route(
            "/calendar/import",
            // The service refuses files over the import limit with a clear message;
            // the transport limit sits a little above it.
            post(crate::calendar_http::import).layer(DefaultBodyLimit::max(
                crate::services::ical::IMPORT_MAX_BYTES + 64 * 1024,
            )),
        )
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A server listening on a real socket.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Opens and migrates the database, binds `listen` and serves until the process ends.
pub async fn start(
    db_args: &DatabaseArgs,
    limits: Limits,
    listen: SocketAddr,
) -> anyhow::Result<RunningServer> {
    let metrics = Metrics::new();
    let db = open_database(db_args, &metrics).await?;
    let state = state(db, metrics, limits).await?;
    let watcher = state
        .services
        .authz
        .spawn_watcher(std::time::Duration::from_millis(
            state.limits.policy_poll_ms.max(10),
        ));
    let announcements =
        crate::events::listen_postgres(&state.services.db, state.services.events.clone());
    let scheduler = if state.limits.delivery.scheduler {
        Some(crate::scheduler::spawn(
            state.services.db.clone(),
            state.services.authz.clone(),
            state.services.events.clone(),
            Arc::clone(&state.metrics),
            &state.limits.delivery,
        )?)
    } else {
        None
    };
    // Reminders of open-ended recurring events exist a few weeks ahead; this keeps
    // the window moving (every instance may run it: reminder keys make it idempotent).
    let top_up = state.limits.delivery.scheduler.then(|| {
        let services = state.services.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = crate::services::calendar::top_up_reminders(&services).await {
                    tracing::warn!(error = ?e, "topping up event reminders failed");
                }
                tokio::time::sleep(std::time::Duration::from_secs(6 * 3600)).await;
            }
        })
    });
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await;
        watcher.abort();
        if let Some(listener) = announcements {
            listener.abort();
        }
        drop(scheduler);
        if let Some(top_up) = top_up {
            top_up.abort();
        }
        served
    });
    Ok(RunningServer { addr, state, task })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}

fn error_body(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
) -> axum::response::Response {
    let body = json!({ "errors": [{ "message": message.into(), "extensions": { "code": code } }] });
    (status, Json(body)).into_response()
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let (scheme, token) = value.split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(());
    }
    Ok(Some(token.trim()))
}

/// Errors raised by async-graphql itself (parse errors, unknown fields, wrong argument
/// types, depth and complexity limits) carry no code; they are the client's to fix.
fn ensure_codes(response: &mut Response) {
    for error in &mut response.errors {
        let ext = error.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", "VALIDATION");
        }
    }
}

async fn graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> axum::response::Response {
    let started = Instant::now();
    let response = execute(&state, &headers, body).await;
    let outcome = if response.status().is_success() {
        "ok"
    } else {
        "rejected"
    };
    state
        .metrics
        .graphql_requests
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
    state
        .metrics
        .graphql_seconds
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> axum::response::Response {
    let body = match body {
        Ok(b) => b,
        Err(BytesRejection::FailedToBufferBody(_)) => {
            return error_body(
                StatusCode::PAYLOAD_TOO_LARGE,
                "VALIDATION",
                format!(
                    "request body exceeds the limit of {} bytes",
                    state.limits.max_body_bytes
                ),
            );
        }
        Err(_) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "VALIDATION",
                "could not read the request body",
            );
        }
    };
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(_) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "VALIDATION",
                "the body must be a JSON GraphQL request {\"query\": ..., \"variables\": ...} or a non-empty array of them",
            );
        }
    };
    let (requests, was_batch) = match batch {
        BatchRequest::Single(r) => (vec![r], false),
        BatchRequest::Batch(rs) if rs.len() > state.limits.max_batch => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "VALIDATION",
                format!(
                    "a batch may hold at most {} operations, got {}",
                    state.limits.max_batch,
                    rs.len()
                ),
            );
        }
        BatchRequest::Batch(rs) => (rs, true),
    };

    let actor: Option<Actor> = match bearer_actor(state, headers).await {
        Ok(actor) => actor,
        Err(response) => return response,
    };

    if actor.is_none() && !requests.iter().all(is_login_only) {
        return error_body(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "authentication required: send `Authorization: Bearer <token>` (get one with the `login` mutation)",
        );
    }

    // The caller's territory scope, expanded once per policy version and cached.
    let scope = match &actor {
        Some(a) => state.services.authz.scope(a).await,
        None => std::sync::Arc::new(crate::authz::Scope::nothing()),
    };
    let prepared: Vec<(Request, Option<String>)> = requests
        .into_iter()
        .map(|r| {
            // Only an authenticated caller's documents may be kept (see `documents`).
            let (r, to_remember) = state.documents.prepare(r, actor.is_some());
            let r = r.data(Loaders::new(&state.services.db, scope.clone()));
            let r = match &actor {
                Some(a) => r.data(a.clone()),
                None => r.disable_introspection(),
            };
            (r, to_remember)
        })
        .collect();
    let mut responses = Vec::with_capacity(prepared.len());
    for (request, to_remember) in prepared {
        let mut response = state.schema.execute(request).await;
        if let Some(query) = to_remember {
            state.documents.remember(query, &response);
        }
        ensure_codes(&mut response);
        responses.push(response);
    }
    let out = if was_batch {
        BatchResponse::Batch(responses)
    } else {
        match responses.pop() {
            Some(r) => BatchResponse::Single(r),
            None => BatchResponse::Batch(Vec::new()),
        }
    };
    Json(out).into_response()
}

/// Subscriptions over WebSocket (`graphql-transport-ws`, and the older `graphql-ws`).
/// The client authenticates in `connection_init` with `{"token": "<token>"}` (or
/// `{"Authorization": "Bearer <token>"}`); without a valid token the connection closes.
async fn graphql_ws(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> axum::response::Response {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            let executor = SubscriptionsOnly(state.schema.clone());
            GraphQLWebSocket::new(stream, executor, protocol)
                .on_connection_init(move |payload| async move {
                    let token = payload
                        .get("token")
                        .and_then(|t| t.as_str())
                        .or_else(|| {
                            payload
                                .get("Authorization")
                                .or_else(|| payload.get("authorization"))
                                .and_then(|h| h.as_str())
                                .and_then(|h| h.strip_prefix("Bearer "))
                        })
                        .ok_or_else(|| {
                            async_graphql::Error::new(
                                "send {\"token\": \"<token>\"} in connection_init",
                            )
                        })?;
                    let actor =
                        auth::authenticate(&state.services.db, &state.services.tokens, token)
                            .await
                            .map_err(|_| {
                                async_graphql::Error::new(
                                    "the token is invalid, expired or revoked",
                                )
                            })?;
                    let mut data = async_graphql::Data::default();
                    data.insert(actor);
                    data.insert(SocketToken(token.to_owned()));
                    Ok(data)
                })
                .serve()
        })
}

/// Whether an anonymous request only logs in: a mutation whose root fields are all `login`
/// (or `__typename`). Unparseable documents pass through so the client gets the parse error.
fn is_login_only(request: &Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
    let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
        return true;
    };
    let operation = match &doc.operations {
        DocumentOperations::Single(op) => Some(op),
        DocumentOperations::Multiple(ops) => match &request.operation_name {
            Some(name) => ops.get(name.as_str()),
            None if ops.len() == 1 => ops.values().next(),
            None => None,
        },
    };
    let Some(op) = operation else { return true };
    op.node.ty == OperationType::Mutation
        && op
            .node
            .selection_set
            .node
            .items
            .iter()
            .all(|item| match &item.node {
                Selection::Field(f) => matches!(f.node.name.node.as_str(), "login" | "__typename"),
                _ => false,
            })
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Accord GraphiQL")
            .finish(),
    )
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.services.db.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The caller behind an `Authorization: Bearer` header: `None` without one, an error
/// response for a malformed, unknown or revoked token.
async fn bearer_actor(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Actor>, axum::response::Response> {
    Ok(match bearer(headers) {
        Err(()) => {
            return Err(error_body(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "use `Authorization: Bearer <token>`",
            ));
        }
        Ok(None) => None,
        Ok(Some(token)) => {
            match auth::authenticate(&state.services.db, &state.services.tokens, token).await {
                Ok(actor) => Some(actor),
                Err(AppError::Unauthenticated) => {
                    return Err(error_body(
                        StatusCode::UNAUTHORIZED,
                        "UNAUTHENTICATED",
                        "the token is invalid, expired or revoked; log in again",
                    ));
                }
                Err(err) => {
                    tracing::error!(error = ?err, "token lookup failed");
                    return Err(error_body(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "INTERNAL",
                        "internal error",
                    ));
                }
            }
        }
    })
}

/// Like [`bearer_actor`], for endpoints that need a signed-in caller.
pub(crate) async fn authenticate_bearer(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Actor, axum::response::Response> {
    bearer_actor(state, headers).await?.ok_or_else(|| {
        error_body(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "authentication required: send `Authorization: Bearer <token>`",
        )
    })
}
