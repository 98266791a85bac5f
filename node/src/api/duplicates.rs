//! `GET duplicates`: registrations in `?station=`'s subtree (this node's by
//! default) that carry the same ID number — the same person registered in
//! two villages, or twice in one. Only the county's office answers: it alone
//! holds the private key that opens the sealed numbers. Groups are reported,
//! never merged.

use super::common::*;
use crate::context::NodeContext;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use civsync_protocol::service::duplicates::find_duplicates;
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/duplicates", get(list_duplicates))
}

async fn list_duplicates(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let root = query(q)?.station(&ctx)?;
    let Some(key) = ctx.county_id_key.clone() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "station",
            format!(
                "{} holds no county private ID key: only the county's office finds duplicate people",
                ctx.config.station
            ),
        ));
    };
    let report = ctx
        .store
        .call(move |replica| find_duplicates(replica, &key, &root))
        .await??;
    Ok(Json(report).into_response())
}
