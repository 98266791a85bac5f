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
//! - `POST /api/v1/import/stations?format=csv|xlsx`: a station list file
//!   (站点编码, 站点名称, 层级 optional), every valid row registered or renamed
//!   in one commit per registry written (normally one), by the same rules;
//!   answered with `{rows, accepted, refused: [{row, field, reason}]}`. An
//!   administrator's, like `POST stations`.
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

use crate::api::common::{
    accepted_and_refused, body_rejection, end_import_job, json_body, query, read_import_file,
    station_param, upload_name, ApiError, QueryResult,
};
use crate::context::NodeContext;
use crate::progress::{CountUnit, JobKind};
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

/// The station list import, under the larger body limit of a file.
pub fn import_routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/import/stations", post(import_station_file))
}

async fn import_station_file(
    State(ctx): State<Arc<NodeContext>>,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    if q.station.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "station",
            "does not apply: each row's code names its station",
        ));
    }
    let bytes = body.map_err(body_rejection)?;
    let name = upload_name(q.format.as_deref())?;
    let job = ctx.progress.start(
        JobKind::StationImport,
        ctx.config.station.to_string(),
        CountUnit::Rows,
        None,
    );
    job.add_bytes(bytes.len() as u64);
    let counter = job.counter();
    let tier = ctx.config.tier;
    let outcome = async {
        counter.set_phase("reading the file");
        let rows = read_import_file("station", move || {
            crate::files::stations::parse_file_bytes(name, &bytes)
        })
        .await?;
        let count = rows.len() as u64;
        counter.set_total(count);
        counter.set_phase("checking and writing rows");
        let report = ctx
            .store
            .call_durable(move |replica| registry::import::import_stations(replica, tier, rows))
            .await??;
        counter.advance(count);
        Ok(report)
    }
    .await;
    end_import_job(job, outcome, accepted_and_refused)
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
