//! `POST/PUT/GET volunteers` and `POST import/volunteers` (a roster file).
//!
//! An import into a station whose roster does not exist yet builds the
//! roster on a blocking thread and hands the owner thread only the finished
//! snapshot to store, so a large file does not hold up every other write.

use super::common::*;
use crate::context::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use civsync_protocol::domain::input::VolunteerInput;
use civsync_protocol::replica::StoreBuiltError;
use civsync_protocol::service::{self, ServiceError};
use civsync_protocol::DocumentId;
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new().route(
        "/api/v1/volunteers",
        post(register_volunteer)
            .get(list_volunteers)
            .put(update_volunteer),
    )
}

/// The roster import, under the larger body limit of a file.
pub fn import_routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/import/volunteers", post(import_volunteers))
}

async fn register_volunteer(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let input: VolunteerInput = json_body(body)?;
    let (key, today, nonce) = (ctx.id_sealer.clone(), crate::clock::today(), rand::random());
    let mut volunteer = ctx
        .store
        .call_durable(move |replica| {
            service::register_volunteer(replica, &station, &input, &key, today, nonce)
        })
        .await??;
    ctx.phone_reader.reveal(&mut volunteer);
    Ok((StatusCode::CREATED, Json(volunteer)).into_response())
}

async fn update_volunteer(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let input: VolunteerInput = json_body(body)?;
    if input.number.as_deref().unwrap_or("").is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "number",
            "is required to correct a volunteer",
        ));
    }
    let (key, today) = (ctx.id_sealer.clone(), crate::clock::today());
    let mut volunteer = ctx
        .store
        .call_durable(move |replica| {
            service::update_volunteer(replica, &station, &input, &key, today)
        })
        .await??;
    ctx.phone_reader.reveal(&mut volunteer);
    Ok(Json(volunteer).into_response())
}

async fn list_volunteers(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let mut volunteers = ctx
        .store
        .call(move |replica| service::volunteers(replica, &station))
        .await??;
    // Seals never leave the node: each phone as this office may read it.
    for volunteer in &mut volunteers {
        ctx.phone_reader.reveal(volunteer);
    }
    Ok(Json(volunteers).into_response())
}

async fn import_volunteers(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let station = q.station(&ctx)?;
    let bytes = body.map_err(body_rejection)?;
    let name = match q.format.as_deref() {
        Some("xlsx") => "upload.xlsx",
        Some("csv") | None => "upload.csv",
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "format",
                format!("unknown format {other:?}; use csv or xlsx"),
            ))
        }
    };
    // Parsing a county-sized workbook takes seconds: off the async runtime.
    let rows =
        tokio::task::spawn_blocking(move || crate::files::roster::parse_file_bytes(name, &bytes))
            .await
            .map_err(|e| ApiError::internal(format!("the roster file could not be read: {e}")))?
            .map_err(|e| file_refusal(e.is_too_large(), e.to_string()))?;
    let (key, today) = (ctx.id_sealer.clone(), crate::clock::today());
    let document = DocumentId::roster(&station);
    let asked = station.clone();
    let (held, builder) = ctx
        .store
        .call(move |replica| {
            service::check_station(replica, &asked)?;
            Ok::<_, ServiceError>((replica.holds(&document), replica.document_builder()))
        })
        .await??;
    if held {
        let report = ctx
            .store
            .call_durable(move |replica| {
                service::import_volunteers(replica, &station, rows, &key, today, rand::random)
            })
            .await??;
        return Ok(Json(report).into_response());
    }
    // A new roster: validation and all Automerge work happen here, off the
    // store's owner thread, which then only writes the finished snapshot.
    let built_station = station.clone();
    let (validated, built) = tokio::task::spawn_blocking(move || {
        let validated =
            service::validate_volunteer_rows(&built_station, rows, &key, today, rand::random);
        let built = service::build_new_roster(&builder, &built_station, &validated);
        (validated, built)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the roster build failed: {e}")))?;
    let (built, report) = built?;
    let Some(built) = built else {
        return Ok(Json(report).into_response());
    };
    let report = ctx
        .store
        .call_durable(move |replica| match replica.store_built(built) {
            Ok(()) => Ok(report),
            // Someone created the roster meanwhile: commit the same rows to
            // it the ordinary way, so their duplicates are answered too.
            Err(StoreBuiltError::AlreadyHeld { .. }) => {
                service::import_validated_volunteers(replica, &station, validated)
            }
            Err(other) => Err(ServiceError::Store {
                reason: other.to_string(),
            }),
        })
        .await??;
    Ok(Json(report).into_response())
}

#[cfg(test)]
mod import_tests;
