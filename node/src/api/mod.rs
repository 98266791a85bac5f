//! The local HTTP JSON API under `/api/v1/`, on 127.0.0.1 by default.
//!
//! Handlers are thin: parse and bound the request, run one
//! `civsync_protocol::service` operation on the store's owner thread, map the
//! outcome to a status. Every refusal is a 4xx with
//! `{"error": {"field": ..., "reason": ...}}` and changes nothing.
//!
//! One exception to "on the owner thread": an import into a station whose
//! roster does not exist yet builds the roster on a blocking thread and
//! hands the owner only the finished snapshot to store, so a large file does
//! not hold up every other write.
//!
//! One file per resource, each with its `routes()`; `common` holds what they
//! share (errors, bounded JSON bodies, `?station=` and `?month=`). This file
//! only assembles the router: no resource file imports it back.

pub mod activities;
pub mod approvals;
pub mod audit;
pub mod backup;
pub mod bundles;
pub mod catalog;
pub mod certificates;
pub mod common;
pub mod conflicts;
#[cfg(test)]
mod deletion_tests;
pub mod duplicates;
pub mod freshness;
pub mod health;
pub mod ledger_import;
pub mod node_status;
pub mod order_flow;
pub mod orders;
pub mod points;
pub mod revocations;
pub mod standings;
pub mod stations;
pub mod stats;
pub mod teams;
#[cfg(test)]
pub(crate) mod test_api;
pub mod users;
pub mod volunteers;

pub use common::{ApiError, IMPORT_BODY_BYTES_MAX, JSON_BODY_BYTES_MAX};

use crate::context::NodeContext;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use std::sync::Arc;

pub fn router(ctx: Arc<NodeContext>) -> Router {
    let import = volunteers::import_routes()
        .merge(teams::import_routes())
        .merge(stations::import_routes())
        .layer(DefaultBodyLimit::max(IMPORT_BODY_BYTES_MAX));
    Router::new()
        .merge(node_status::routes())
        .merge(backup::routes())
        .merge(volunteers::routes())
        .merge(teams::routes())
        .merge(activities::routes())
        .merge(orders::routes())
        .merge(conflicts::routes())
        .merge(duplicates::routes())
        .merge(stats::routes())
        .merge(certificates::routes())
        .merge(approvals::routes())
        .merge(catalog::routes())
        .merge(standings::routes())
        .merge(points::routes())
        .merge(order_flow::routes())
        .merge(freshness::routes())
        .merge(stations::routes())
        .merge(revocations::routes())
        .merge(users::routes())
        .merge(audit::routes())
        .layer(DefaultBodyLimit::max(JSON_BODY_BYTES_MAX))
        .merge(import)
        .merge(ledger_import::routes())
        .merge(bundles::routes())
        .fallback(not_found)
        .with_state(ctx)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "path",
        "no such endpoint; see the API reference in README.md",
    )
}
