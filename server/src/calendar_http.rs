//! The two calendar endpoints that are not GraphQL, because calendar clients and
//! command-line uploads do not speak it:
//! - `GET /calendar/<token>.ics`: the feed behind a secret token (no other auth, as
//!   Google Calendar, Outlook and Apple Calendar subscribe to a bare URL);
//! - `POST /calendar/import`: an `.ics` file as the raw body, with a bearer token
//!   (`?timeZone=` for dates and floating times; UTC by default).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::error::AppError;
use crate::services::ical;

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "errors": [{ "message": message.into(), "extensions": { "code": code } }] });
    (status, axum::Json(body)).into_response()
}

pub(crate) fn app_error(err: AppError) -> Response {
    let status = match &err {
        AppError::Validation { .. } => StatusCode::BAD_REQUEST,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
        AppError::Conflict(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match &err {
        AppError::Internal(e) => {
            tracing::error!(error = ?e, "calendar endpoint failed");
            "internal error".to_owned()
        }
        AppError::Validation { field, message } => format!("{field}: {message}"),
        other => other.to_string(),
    };
    error(status, err.code(), message)
}

pub async fn feed(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(token) = file.strip_suffix(".ics") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match ical::render_feed(&state.services, token).await {
        Ok(Some(body)) => {
            let mut response = body.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/calendar; charset=utf-8"),
            );
            // The URL is a secret: no shared caches.
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=300"),
            );
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("inline; filename=\"accord.ics\""),
            );
            response
        }
        // Unknown and revoked tokens look the same.
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => app_error(e),
    }
}

#[derive(Deserialize)]
pub struct ImportParams {
    #[serde(rename = "timeZone")]
    time_zone: Option<String>,
}

pub async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<ImportParams>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let actor = match crate::app::authenticate_bearer(&state, &headers).await {
        Ok(actor) => actor,
        Err(response) => return response,
    };
    let body = match body {
        Ok(b) => b,
        Err(BytesRejection::FailedToBufferBody(_)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "VALIDATION",
                format!(
                    "ics: the file is larger than {} bytes (1 MiB)",
                    ical::IMPORT_MAX_BYTES
                ),
            );
        }
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION",
                "could not read the request body",
            );
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION",
            "ics: the file is not UTF-8 text",
        );
    };
    let zone = params.time_zone.as_deref().unwrap_or("UTC");
    match ical::import(&state.services, &actor, text, zone).await {
        Ok(r) => axum::Json(json!({
            "eventsCreated": r.events_created,
            "eventsUpdated": r.events_updated,
            "tasksCreated": r.tasks_created,
            "tasksUpdated": r.tasks_updated,
        }))
        .into_response(),
        Err(e) => app_error(e),
    }
}
