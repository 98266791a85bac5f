//! Service menus (服务菜单) and monthly themes (一月一主题) in the API.
//!
//! - `POST /api/v1/menu` `{id?, name, category, description?, provider?,
//!   withdrawn?}`: add an item to this node's menu, or change one (by id);
//!   `withdrawn: true` stops offering it while keeping it listed. 201 when
//!   written, 200 when the menu already said exactly this.
//! - `GET /api/v1/menu?station=`: what is offered at the station (this
//!   node's own by default): its own items and every ancestor's held here,
//!   county first, each with the office whose menu it is; `unreadable`
//!   lists items another program wrote that this node cannot read.
//! - `POST /api/v1/themes` `{month, title, description?}`: set or correct
//!   this node's theme of a month.
//! - `GET /api/v1/themes?station=&month=`: the themes that apply there
//!   (its own and its ancestors'), optionally of one month.
//!
//! Rules are the protocol's (`catalog`); a refusal is a 4xx
//! `{"error":{"field","reason"}}` and writes nothing.

use crate::api::common::{json_body, station_param, status_of, ApiError};
use crate::context::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use civsync_protocol::service::catalog::{self, CatalogError, MenuItemInput, ThemeInput, Written};
use civsync_protocol::Month;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route("/api/v1/menu", get(menu).post(put_menu_item))
        .route("/api/v1/themes", get(themes).post(set_theme))
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        ApiError::new(status_of(error.class()), error.field(), error.reason())
    }
}

type Ctx = State<Arc<NodeContext>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogQuery {
    station: Option<String>,
    month: Option<String>,
}

fn query(q: Result<Query<CatalogQuery>, QueryRejection>) -> Result<CatalogQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))
}

fn written<T: Serialize>(written: Written<T>) -> Response {
    let status = if written.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(written)).into_response()
}

async fn put_menu_item(
    State(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: MenuItemInput = json_body(body)?;
    let nonce = rand::random();
    let outcome = ctx
        .store
        .call_durable(move |replica| catalog::put_menu_item(replica, &input, nonce))
        .await??;
    Ok(written(outcome))
}

async fn set_theme(
    State(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: ThemeInput = json_body(body)?;
    let outcome = ctx
        .store
        .call_durable(move |replica| catalog::set_theme(replica, &input))
        .await??;
    Ok(written(outcome))
}

async fn menu(
    State(ctx): Ctx,
    q: Result<Query<CatalogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    if q.month.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "month",
            "a menu is not by month",
        ));
    }
    let station = station_param(&ctx, q.station.as_deref())?;
    let read = ctx
        .store
        .call(move |replica| catalog::menu_offered_at(replica, &station))
        .await?;
    Ok(Json(read).into_response())
}

async fn themes(
    State(ctx): Ctx,
    q: Result<Query<CatalogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let station = station_param(&ctx, q.station.as_deref())?;
    let month = match q.month.as_deref() {
        None => None,
        Some(text) => Some(Month::parse(text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "month",
                format!("{text:?} is not YYYY-MM"),
            )
        })?),
    };
    let read = ctx
        .store
        .call(move |replica| catalog::themes_for(replica, &station, month))
        .await?;
    Ok(Json(read).into_response())
}

#[cfg(test)]
mod tests;
