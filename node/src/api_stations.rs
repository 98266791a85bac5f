//! The station registry in the API.
//!
//! - `POST /api/v1/stations` `{id, name, tier}`: register a station of this
//!   node's subtree, or rename one. The rules are the protocol's
//!   (`registry_service`): the id below this node, the tier matching its
//!   depth under this node's tier, a non-empty bounded name. A refusal is a
//!   4xx `{"error":{"field","reason"}}` naming `id`, `name` or `tier`, and
//!   writes nothing.
//! - `GET /api/v1/stations?under=`: every registered station of the subtree
//!   of `under` (this node's own station by default), from every registry
//!   this node holds, each with the registry it comes from.
//!
//! [`registry`] is what statistics and freshness take as the list of
//! stations: the merged registries plus this node's own station as its
//! configuration says (its tier is its certificate's).

use crate::api::{json_body, station_param, ApiError};
use crate::node::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use civsync_protocol::registry_service::{
    self, RegistryEntry, RegistryError, RegistryRead, StationInput,
};
use civsync_protocol::{Station, StationId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/stations", get(list).post(register))
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        ApiError::new(
            crate::api::status_of(error.class()),
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
        .call_durable(move |replica| registry_service::register_station(replica, tier, &input))
        .await??;
    let status = if registered.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(registered)).into_response())
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
    let read = read(&ctx).await?;
    Ok(Json(StationList {
        stations: read.under(&under).cloned().collect(),
        under,
    })
    .into_response())
}

/// Merge every registry held, on the store's owner thread; log what could
/// not be read (it is left out, never guessed).
async fn read(ctx: &NodeContext) -> Result<RegistryRead, ApiError> {
    let read = ctx.store.call(registry_service::read_registry).await?;
    for problem in &read.unreadable {
        tracing::warn!(
            document = %problem.document,
            key = problem.key.as_deref().unwrap_or("-"),
            reason = %problem.reason,
            "registry entry not readable; left out"
        );
    }
    Ok(read)
}

/// The stations this node knows by registry, and itself: its tier from its
/// configuration, its name from there unless that is empty.
pub async fn registry(ctx: &NodeContext) -> Result<Vec<Station>, ApiError> {
    let mut stations = read(ctx).await?.stations();
    let own = &ctx.config.station;
    match stations.iter_mut().find(|s| &s.id == own) {
        Some(listed) => {
            listed.tier = ctx.config.tier;
            if !ctx.config.name.is_empty() {
                listed.name = ctx.config.name.clone();
            }
        }
        None => {
            let at = stations.partition_point(|s| &s.id < own);
            stations.insert(
                at,
                Station {
                    id: own.clone(),
                    name: ctx.config.name.clone(),
                    tier: ctx.config.tier,
                },
            );
        }
    }
    debug_assert!(stations.windows(2).all(|w| w[0].id < w[1].id));
    Ok(stations)
}

#[cfg(test)]
mod tests;
