//! `POST/GET teams`, `DELETE teams/{id}` (kept, marked deleted) and
//! `POST import/teams` (a file of a station's teams, written in one commit).

use super::common::*;
use crate::context::NodeContext;
use crate::progress::{CountUnit, JobKind};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use civsync_protocol::domain::input::TeamInput;
use civsync_protocol::service::team_import::import_teams;
use civsync_protocol::service::{self, ImportReport};
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route("/api/v1/teams", post(put_team).get(list_teams))
        .route("/api/v1/teams/{id}", axum::routing::delete(delete_team))
}

async fn delete_team(
    State(ctx): Ctx,
    q: QueryResult,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let id = civsync_protocol::domain::model::RecordId::parse("id", &id)
        .map_err(service::ServiceError::from)?;
    ctx.store
        .call_durable(move |replica| service::delete_team(replica, &station, &id))
        .await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The team import, under the larger body limit of a file.
pub fn import_routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/import/teams", post(import_team_file))
}

async fn import_team_file(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let station = q.station(&ctx)?;
    let bytes = body.map_err(body_rejection)?;
    let name = upload_name(q.format.as_deref())?;
    let job = ctx.progress.start(
        JobKind::TeamImport,
        station.to_string(),
        CountUnit::Rows,
        None,
    );
    job.add_bytes(bytes.len() as u64);
    let counter = job.counter();
    let outcome = async {
        counter.set_phase("reading the file");
        let rows = read_import_file("team", move || {
            crate::files::teams::parse_file_bytes(name, &bytes)
        })
        .await?;
        counter.set_total(rows.len() as u64);
        counter.set_phase("checking and writing rows");
        let count = rows.len() as u64;
        let report: ImportReport = ctx
            .store
            .call_durable(move |replica| import_teams(replica, &station, rows, rand::random))
            .await??;
        counter.advance(count);
        Ok(report)
    }
    .await;
    end_import_job(job, outcome, accepted_and_refused)
}

async fn put_team(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let input: TeamInput = json_body(body)?;
    let nonce = rand::random();
    let team = ctx
        .store
        .call_durable(move |replica| service::put_team(replica, &station, &input, nonce))
        .await??;
    Ok((StatusCode::CREATED, Json(team)).into_response())
}

async fn list_teams(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    Ok(Json(
        ctx.store
            .call(move |replica| service::teams(replica, &station))
            .await??,
    )
    .into_response())
}

#[cfg(test)]
mod import_tests;
