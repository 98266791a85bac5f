//! The steps of a citizen's order after it was placed, in the API:
//!
//! - `POST /api/v1/orders/dispatch` `{station, order, team}` (派单; `team` is
//!   `<station>:<team id>`);
//! - `POST /api/v1/orders/take` `{station, order}` (接单);
//! - `POST /api/v1/orders/rate` `{station, order, rating, comment?}` (评单);
//! - `POST /api/v1/orders/cancel` `{station, order, reason}` (撤单).
//!
//! `station` is the order's (the village where it was placed); the step is
//! done as this node's station, which must be that station or above it.
//! Rules are the protocol's (`order_flow`). Each answers the order as the
//! step left it; a refusal is a 4xx `{"error":{"field","reason"}}` naming
//! `status` (out of turn), `team`, `rating`, `reason`, `order` (unknown) or
//! `station`, and writes nothing.

use crate::api::common::{json_body, ApiError};
use crate::context::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use civsync_protocol::domain::model::RecordId;
use civsync_protocol::service::order_flow::{self, OrderStep};
use civsync_protocol::StationId;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route("/api/v1/orders/dispatch", post(dispatch))
        .route("/api/v1/orders/take", post(take))
        .route("/api/v1/orders/rate", post(rate))
        .route("/api/v1/orders/cancel", post(cancel))
}

type Body = Result<Bytes, BytesRejection>;
type Ctx = State<Arc<NodeContext>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DispatchBody {
    station: String,
    order: String,
    team: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TakeBody {
    station: String,
    order: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateBody {
    station: String,
    order: String,
    rating: u8,
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    station: String,
    order: String,
    reason: String,
}

async fn dispatch(State(ctx): Ctx, body: Body) -> Result<Response, ApiError> {
    let body: DispatchBody = parse(body)?;
    advance(
        &ctx,
        &body.station,
        &body.order,
        OrderStep::Dispatch { team: body.team },
    )
    .await
}

async fn take(State(ctx): Ctx, body: Body) -> Result<Response, ApiError> {
    let body: TakeBody = parse(body)?;
    advance(&ctx, &body.station, &body.order, OrderStep::Take).await
}

async fn rate(State(ctx): Ctx, body: Body) -> Result<Response, ApiError> {
    let body: RateBody = parse(body)?;
    let step = OrderStep::Rate {
        rating: body.rating,
        comment: body.comment,
    };
    advance(&ctx, &body.station, &body.order, step).await
}

async fn cancel(State(ctx): Ctx, body: Body) -> Result<Response, ApiError> {
    let body: CancelBody = parse(body)?;
    let step = OrderStep::Cancel {
        reason: body.reason,
    };
    advance(&ctx, &body.station, &body.order, step).await
}

fn parse<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    json_body(body)
}

async fn advance(
    ctx: &NodeContext,
    station: &str,
    order: &str,
    step: OrderStep,
) -> Result<Response, ApiError> {
    let station = StationId::parse(station).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "station",
            e.to_string(),
        )
    })?;
    let order = RecordId::parse("order", order).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            e.field,
            e.reason,
        )
    })?;
    let advanced = ctx
        .store
        .call_durable(move |replica| order_flow::advance_order(replica, &station, &order, &step))
        .await??;
    Ok(Json(advanced).into_response())
}

#[cfg(test)]
mod tests;
