//! `GET conflicts` and `POST conflicts/resolve`: fields concurrent edits left with two values.

use super::common::*;
use crate::context::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use civsync_protocol::service::{self};
use civsync_protocol::DocumentId;
use serde::Deserialize;
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route("/api/v1/conflicts", get(list_conflicts))
        .route("/api/v1/conflicts/resolve", post(resolve_conflict))
}

async fn list_conflicts(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let q = query(q)?;
    let station = q.station(&ctx)?;
    let month = q.month.as_ref().map(|_| q.month()).transpose()?;
    Ok(Json(
        ctx.store
            .call(move |replica| service::conflicts(replica, &station, month))
            .await??,
    )
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveInput {
    document: String,
    path: String,
    value: String,
}

async fn resolve_conflict(
    State(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: ResolveInput = json_body(body)?;
    let document = DocumentId::parse(&input.document)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "document", e.to_string()))?;
    ctx.store
        .call_durable(move |replica| {
            service::resolve_conflict(replica, &document, &input.path, &input.value)
        })
        .await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}
