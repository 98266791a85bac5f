//! `GET audit`: the audit log, newest first, for auditors (and admins).
//! Nothing here writes or removes an entry: there is no route that could.

use super::common::*;
use crate::access::audit::AuditQuery;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

pub fn routes() -> Router<Arc<crate::context::NodeContext>> {
    Router::new().route("/api/v1/audit", get(list))
}

async fn list(
    State(ctx): Ctx,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, "query", error.body_text()))?;
    let access = ctx.access.clone();
    let entries = tokio::task::spawn_blocking(move || access.audit.list(&query))
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?
        .map_err(|reason| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit", reason))?;
    Ok(Json(entries).into_response())
}
