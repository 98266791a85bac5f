//! `POST/GET activities` and `DELETE activities/{month}/{id}` (kept, marked deleted).

use super::common::*;
use crate::context::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use civsync_protocol::domain::input::ActivityInput;
use civsync_protocol::service::{self, ServiceError};
use civsync_protocol::Month;
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route(
            "/api/v1/activities",
            post(record_activity).get(list_activities),
        )
        .route(
            "/api/v1/activities/{month}/{id}",
            axum::routing::delete(delete_activity),
        )
}

async fn record_activity(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let input: ActivityInput = json_body(body)?;
    let (today, nonce) = (crate::clock::today(), rand::random());
    let activity = ctx
        .store
        .call_durable(move |replica| {
            service::record_activity(replica, &station, &input, today, nonce)
        })
        .await??;
    Ok((StatusCode::CREATED, Json(activity)).into_response())
}

async fn delete_activity(
    State(ctx): Ctx,
    q: QueryResult,
    Path((month, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let month = Month::parse(&month).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "month",
            format!("{month:?} is not YYYY-MM"),
        )
    })?;
    let id =
        civsync_protocol::domain::model::RecordId::parse("id", &id).map_err(ServiceError::from)?;
    ctx.store
        .call_durable(move |replica| service::delete_activity(replica, &station, month, &id))
        .await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_activities(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let q = query(q)?;
    let (station, month, subtree) = (q.station(&ctx)?, q.month()?, q.subtree);
    let activities = ctx
        .store
        .call(move |replica| service::activities(replica, &station, month, subtree))
        .await??;
    Ok(Json(activities).into_response())
}

#[cfg(test)]
mod tests;
