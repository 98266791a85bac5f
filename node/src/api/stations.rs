//! The station registry in the API.
//!
//! - `POST /api/v1/stations` `{id, name, tier}`: register a station of this
//!   node's subtree, or rename one. The rules are the protocol's
//!   (`service::registry`): the id below this node, the tier matching its
//!   depth under this node's tier, a non-empty bounded name. A refusal is a
//!   4xx `{"error":{"field","reason"}}` naming `id`, `name` or `tier`, and
//!   writes nothing.
//! - `POST /api/v1/stations/retire` `{id, retired_on, merged_into?}`: retire
//!   (撤并) a registered station below this node as of `retired_on`
//!   (`YYYY-MM-DD`), optionally naming the station that took over its work;
//!   `retired_on` null or absent un-retires it (a clerk's mistake undone).
//!   Rules are the protocol's (`registry::retire_station`); today
//!   is this node's (Beijing) date. Refusals name `id`, `retired_on` or
//!   `merged_into` and write nothing. 201 when written, 200 when the entry
//!   already said exactly this.
//! - `GET /api/v1/stations?under=`: every registered station of the subtree
//!   of `under` (this node's own station by default), from every registry
//!   this node holds, each with the registry it comes from and, when
//!   retired, `retired: {retired_on, merged_into?}`. Retired stations are
//!   listed: nothing is hidden.
//!
//! [`registry`] is what statistics and freshness take as the list of
//! stations: the merged registries plus this node's own station as its
//! configuration says (its tier is its certificate's); [`registry_retiring`]
//! adds which stations are retired.

use crate::api::common::{json_body, station_param, ApiError};
use crate::context::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use civsync_protocol::service::registry::{
    self, RegistryEntry, RegistryError, RetireInput, StationInput,
};
use civsync_protocol::StationId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route("/api/v1/stations", get(list).post(register))
        .route("/api/v1/stations/retire", post(retire))
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        ApiError::new(
            crate::api::common::status_of(error.class()),
            error.field(),
            error.reason(),
        )
    }
}

async fn register(
    State(ctx): State<Arc<NodeContext>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: StationInput = json_body(body)?;
    let tier = ctx.config.tier;
    let registered = ctx
        .store
        .call_durable(move |replica| registry::register_station(replica, tier, &input))
        .await??;
    let status = if registered.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(registered)).into_response())
}

async fn retire(
    State(ctx): State<Arc<NodeContext>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: RetireInput = json_body(body)?;
    let today = crate::clock::today();
    let retired = ctx
        .store
        .call_durable(move |replica| registry::retire_station(replica, &input, today))
        .await??;
    let status = if retired.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(retired)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    under: Option<String>,
}

/// `GET /api/v1/stations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationList {
    pub under: StationId,
    /// In path order.
    pub stations: Vec<RegistryEntry>,
}

async fn list(
    State(ctx): State<Arc<NodeContext>>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))?;
    let under = station_param(&ctx, q.under.as_deref())
        .map_err(|e| ApiError::new(e.status, "under", e.reason))?;
    let read = ctx.read_registry().await?;
    Ok(Json(StationList {
        stations: read.under(&under).cloned().collect(),
        under,
    })
    .into_response())
}

#[cfg(test)]
mod tests;
