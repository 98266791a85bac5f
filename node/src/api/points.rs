//! Points (积分) in the API: the county's rate, a volunteer's balance and
//! history, redemptions at a supermarket (爱心超市), transfers, and each
//! station's month.
//!
//! - `GET /api/v1/points/rate`: the rate this station uses (its nearest
//!   ancestor's published rate, the county's), or `null` when none is held.
//! - `POST /api/v1/points/rate` `{points_per_hour}`: the county publishes
//!   its rate (administrator; a county node only, 422 elsewhere).
//! - `GET /api/v1/points/balance?volunteer=<home>:<number>`: what this
//!   station may spend (`here`), every allotment visible here, earned and
//!   spent.
//! - `GET /api/v1/points/history?volunteer=`: every entry seen here.
//! - `POST /api/v1/points/redemptions` `{volunteer, points, item, clerk}`:
//!   201, or 409 naming `points` with the local balance and where the rest
//!   is held.
//! - `POST /api/v1/points/transfers` `{volunteer, points, to}`: moves points
//!   from this station to one above or below it; 409 like a redemption.
//! - `GET /api/v1/points/months?station=&month=`: per station of the
//!   subtree, earned, spent, moved in and out in the month, and what its
//!   allotments hold at the month's end.
//!
//! Before a volunteer's balance, history, redemption or transfer, a node at
//! the home station or above it credits the points the hours it holds have
//! earned (`credit_earned`: registers only go up), in the same owner-thread
//! job. Rules are the protocol's (`service::points`).

use crate::api::common::{json_body, month_param, station_param, status_of, ApiError};
use crate::context::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use civsync_protocol::domain::model::VolunteerId;
use civsync_protocol::service::points::{self, PointsError, RedemptionInput, TransferInput};
use civsync_protocol::Month;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route("/api/v1/points/rate", get(rate).post(publish_rate))
        .route("/api/v1/points/balance", get(balance))
        .route("/api/v1/points/history", get(history))
        .route("/api/v1/points/redemptions", post(redeem))
        .route("/api/v1/points/transfers", post(transfer))
        .route("/api/v1/points/months", get(months))
}

impl From<PointsError> for ApiError {
    fn from(error: PointsError) -> Self {
        ApiError::new(status_of(error.class()), error.field(), error.reason())
    }
}

type Ctx = State<Arc<NodeContext>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointsQuery {
    volunteer: Option<String>,
    station: Option<String>,
    month: Option<String>,
}

fn query(q: Result<Query<PointsQuery>, QueryRejection>) -> Result<PointsQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))
}

fn volunteer_param(text: Option<&str>) -> Result<VolunteerId, ApiError> {
    let text = text.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "volunteer",
            "is required: <home station>:<number>",
        )
    })?;
    VolunteerId::try_from(text.trim().to_string())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "volunteer", e.reason))
}

/// `POST points/rate`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateInput {
    pub points_per_hour: u32,
}

async fn rate(State(ctx): Ctx) -> Result<Response, ApiError> {
    let station = ctx.config.station.clone();
    let rate = ctx
        .store
        .call(move |replica| points::rate_at(replica, &station))
        .await?;
    Ok(Json(serde_json::json!({ "rate": rate })).into_response())
}

async fn publish_rate(
    State(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: RateInput = json_body(body)?;
    let tier = ctx.config.tier;
    let station = ctx.config.station.clone();
    let (changed, rate) = ctx
        .store
        .call_durable(move |replica| {
            let changed = points::publish_rate(replica, tier, input.points_per_hour)?;
            Ok::<_, PointsError>((changed, points::rate_at(replica, &station)))
        })
        .await??;
    let status = if changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(serde_json::json!({ "rate": rate }))).into_response())
}

/// The hours per month this node holds for `volunteer` when it credits
/// their earned points (it is the home station or above it); else none.
async fn hours_to_credit(
    ctx: &NodeContext,
    volunteer: &VolunteerId,
) -> Result<Option<Vec<(Month, u64)>>, ApiError> {
    if !ctx
        .config
        .station
        .is_ancestor_or_self_of(&volunteer.home_station)
    {
        return Ok(None);
    }
    ctx.refresh_stats().await?;
    let state = ctx.stats.lock().unwrap_or_else(|p| p.into_inner());
    Ok(Some(state.index().volunteer_hours_by_month(volunteer)))
}

/// Run `work` on the owner thread after crediting `volunteer`'s earned
/// points, and answer once both are durable.
async fn credited<R, W>(ctx: &NodeContext, volunteer: VolunteerId, work: W) -> Result<R, ApiError>
where
    W: FnOnce(
            &mut civsync_protocol::replica::Replica<crate::store::SledStorage>,
            &VolunteerId,
        ) -> Result<R, PointsError>
        + Send
        + 'static,
    R: Send + 'static,
{
    let hours = hours_to_credit(ctx, &volunteer).await?;
    let answer = ctx
        .store
        .call_durable(move |replica| {
            if let Some(hours) = hours {
                points::credit_earned(replica, &volunteer, &hours)?;
            }
            work(replica, &volunteer)
        })
        .await??;
    Ok(answer)
}

async fn balance(
    State(ctx): Ctx,
    q: Result<Query<PointsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let volunteer = volunteer_param(q.volunteer.as_deref())?;
    let answer = credited(&ctx, volunteer, points::balance).await?;
    Ok(Json(answer).into_response())
}

async fn history(
    State(ctx): Ctx,
    q: Result<Query<PointsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let volunteer = volunteer_param(q.volunteer.as_deref())?;
    let answer = credited(&ctx, volunteer.clone(), points::history).await?;
    Ok(Json(serde_json::json!({ "volunteer": volunteer, "entries": answer })).into_response())
}

async fn redeem(
    State(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: RedemptionInput = json_body(body)?;
    let volunteer = input.volunteer.clone();
    spend(&ctx, &volunteer, move |replica, today, nonce| {
        points::redeem(replica, &input, today, nonce)
    })
    .await
}

async fn transfer(
    State(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: TransferInput = json_body(body)?;
    let volunteer = input.volunteer.clone();
    spend(&ctx, &volunteer, move |replica, today, nonce| {
        points::transfer(replica, &input, today, nonce)
    })
    .await
}

/// A redemption or a transfer: written for `volunteer` (today and a nonce
/// drawn here), answered 201 with the entry and the balance after it.
async fn spend<E, W>(ctx: &NodeContext, volunteer: &str, write: W) -> Result<Response, ApiError>
where
    W: FnOnce(
            &mut civsync_protocol::replica::Replica<crate::store::SledStorage>,
            time::Date,
            u64,
        ) -> Result<E, PointsError>
        + Send
        + 'static,
    E: Serialize + Send + 'static,
{
    let volunteer = VolunteerId::try_from(volunteer.trim().to_string())
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "volunteer", e.reason))?;
    let today = crate::clock::today();
    let nonce = rand::random();
    let (entry, balance) = credited(ctx, volunteer, move |replica, v| {
        let entry = write(replica, today, nonce)?;
        Ok((entry, points::balance(replica, v)?))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "entry": entry, "balance": balance })),
    )
        .into_response())
}

async fn months(
    State(ctx): Ctx,
    q: Result<Query<PointsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    if q.volunteer.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "volunteer",
            "the months table is per station; see points/history for a volunteer",
        ));
    }
    let station = station_param(&ctx, q.station.as_deref())?;
    let month = month_param(q.month.as_deref())?;
    let root = station.clone();
    let stations = ctx
        .store
        .call(move |replica| points::station_months(replica, &root, month))
        .await??;
    Ok(Json(serde_json::json!({
        "station": station,
        "month": month.to_string(),
        "stations": stations,
    }))
    .into_response())
}

#[cfg(test)]
mod tests;
