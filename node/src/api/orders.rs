//! `POST/GET orders`: a citizen's order (点单); its later steps are in `order_flow`.

use super::common::*;
use crate::context::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use civsync_protocol::domain::input::OrderInput;
use civsync_protocol::service::{self};
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/orders", post(place_order).get(list_orders))
}

async fn place_order(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let input: OrderInput = json_body(body)?;
    let (today, nonce) = (crate::clock::today(), rand::random());
    let order = ctx
        .store
        .call_durable(move |replica| service::place_order(replica, &station, &input, today, nonce))
        .await??;
    Ok((StatusCode::CREATED, Json(order)).into_response())
}

async fn list_orders(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let q = query(q)?;
    let (station, month) = (q.station(&ctx)?, q.month()?);
    Ok(Json(
        ctx.store
            .call(move |replica| service::orders(replica, &station, month))
            .await??,
    )
    .into_response())
}
