//! `POST/GET teams`.

use super::common::*;
use crate::context::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use civsync_protocol::domain::input::TeamInput;
use civsync_protocol::service::{self};
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/teams", post(put_team).get(list_teams))
}

async fn put_team(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let input: TeamInput = json_body(body)?;
    let nonce = rand::random();
    let team = ctx
        .store
        .call_durable(move |replica| service::put_team(replica, &station, &input, nonce))
        .await??;
    Ok((StatusCode::CREATED, Json(team)).into_response())
}

async fn list_teams(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    Ok(Json(
        ctx.store
            .call(move |replica| service::teams(replica, &station))
            .await??,
    )
    .into_response())
}
