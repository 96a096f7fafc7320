//! Org-chart pictures over HTTP, for dashboards to embed (fetched with the bearer token,
//! like any API call): `GET /accounts/<id>/org-chart.svg` and `.../org-chart.dot`.
//! `?includeChildAccounts=false`, `?maxDepth=N` and `?influence=false` shape the chart.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::app::{AppState, authenticate_bearer};
use crate::calendar_http::app_error;
use crate::graphql::ids::{NodeKind, decode};
use crate::services::{org_chart, org_chart_render};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartParams {
    include_child_accounts: Option<bool>,
    max_depth: Option<i32>,
    influence: Option<bool>,
}

pub async fn picture(
    State(state): State<AppState>,
    Path((account, file)): Path<(String, String)>,
    Query(params): Query<ChartParams>,
    headers: HeaderMap,
) -> Response {
    let (render, content_type): (fn(&org_chart::OrgChart, bool) -> String, &str) =
        match file.as_str() {
            "org-chart.svg" => (org_chart_render::svg, "image/svg+xml; charset=utf-8"),
            "org-chart.dot" => (org_chart_render::dot, "text/vnd.graphviz; charset=utf-8"),
            _ => return StatusCode::NOT_FOUND.into_response(),
        };
    let actor = match authenticate_bearer(&state, &headers).await {
        Ok(actor) => actor,
        Err(response) => return response,
    };
    let account_id = match decode("id", &async_graphql::ID(account), NodeKind::Account) {
        Ok(id) => id,
        Err(e) => return app_error(e),
    };
    let chart = match org_chart::org_chart(
        &state.services,
        &actor,
        account_id,
        params.include_child_accounts.unwrap_or(true),
        params.max_depth,
    )
    .await
    {
        Ok(chart) => chart,
        Err(e) => return app_error(e),
    };
    let mut response = render(&chart, params.influence.unwrap_or(true)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // What a chart shows depends on who asks: never from a shared cache.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    // An SVG opened directly runs no script and loads nothing from elsewhere.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
