//! `POST/PUT/GET volunteers`, `DELETE volunteers/{number}` (kept, marked
//! deleted) and `POST import/volunteers` (a roster file).
//!
//! An import into a station whose roster does not exist yet builds the
//! roster on a blocking thread and hands the owner thread only the finished
//! snapshot to store, so a large file does not hold up every other write.
//! An import is a job in the node's progress registry: rows are checked
//! (and, into a held roster, written) in batches of
//! `IMPORT_ROWS_PER_COMMIT`, each counted as it is done.

use super::common::*;
use crate::context::NodeContext;
use crate::progress::{CountUnit, JobCounter, JobKind};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use civsync_protocol::domain::input::VolunteerInput;
use civsync_protocol::domain::model::FieldError;
use civsync_protocol::domain::pii::IdSealer;
use civsync_protocol::replica::StoreBuiltError;
use civsync_protocol::service::{
    self, ImportReport, ServiceError, ValidatedRows, IMPORT_ROWS_PER_COMMIT,
};
use civsync_protocol::{DocumentId, StationId};
use std::sync::Arc;

/// One row of a roster file as read: its row number and input.
type RosterRow = (usize, Result<VolunteerInput, FieldError>);

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route(
            "/api/v1/volunteers",
            post(register_volunteer)
                .get(list_volunteers)
                .put(update_volunteer),
        )
        .route(
            "/api/v1/volunteers/{number}",
            axum::routing::delete(delete_volunteer),
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

async fn delete_volunteer(
    State(ctx): Ctx,
    q: QueryResult,
    Path(number): Path<String>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let number = civsync_protocol::domain::model::RecordId::parse("number", &number)
        .map_err(ServiceError::from)?;
    ctx.store
        .call_durable(move |replica| service::delete_volunteer(replica, &station, &number))
        .await??;
    Ok(StatusCode::NO_CONTENT.into_response())
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
    let name = upload_name(q.format.as_deref())?;
    let job = ctx.progress.start(
        JobKind::RosterImport,
        station.to_string(),
        CountUnit::Rows,
        None,
    );
    job.add_bytes(bytes.len() as u64);
    let outcome = import_roster(&ctx, station, name, bytes, job.counter()).await;
    end_import_job(job, outcome, accepted_and_refused)
}

/// Read, check and write one roster file, counting rows into `counter`
/// per batch of [`IMPORT_ROWS_PER_COMMIT`].
async fn import_roster(
    ctx: &NodeContext,
    station: StationId,
    name: &'static str,
    bytes: Bytes,
    counter: JobCounter,
) -> Result<ImportReport, ApiError> {
    counter.set_phase("reading the file");
    let rows = read_import_file("roster", move || {
        crate::files::roster::parse_file_bytes(name, &bytes)
    })
    .await?;
    counter.set_total(rows.len() as u64);
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
        return import_into_held_roster(ctx, station, rows, counter).await;
    }
    // A new roster: validation and all Automerge work happen here, off the
    // store's owner thread, which then only writes the finished snapshot.
    let built_station = station.clone();
    let built_counter = counter.clone();
    let (validated, built) = tokio::task::spawn_blocking(move || {
        built_counter.set_phase("checking rows");
        let validated = validate_in_batches(&built_station, rows, &key, today, &built_counter);
        built_counter.set_phase("building the roster");
        let built = service::build_new_roster(&builder, &built_station, &validated);
        (validated, built)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the roster build failed: {e}")))?;
    let (built, report) = built?;
    let Some(built) = built else {
        return Ok(report);
    };
    counter.set_phase("storing the roster");
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
    Ok(report)
}

/// Rows into a roster already held: each batch checked off the owner
/// thread, then committed and flushed on it, before the next.
async fn import_into_held_roster(
    ctx: &NodeContext,
    station: StationId,
    rows: Vec<RosterRow>,
    counter: JobCounter,
) -> Result<ImportReport, ApiError> {
    counter.set_phase("checking and writing rows");
    let mut report = ImportReport {
        rows: rows.len(),
        ..ImportReport::default()
    };
    let mut rows = rows.into_iter();
    loop {
        let batch: Vec<RosterRow> = rows.by_ref().take(IMPORT_ROWS_PER_COMMIT).collect();
        if batch.is_empty() {
            break;
        }
        let count = batch.len() as u64;
        let (key, today, at) = (
            ctx.id_sealer.clone(),
            crate::clock::today(),
            station.clone(),
        );
        let validated = tokio::task::spawn_blocking(move || {
            service::validate_volunteer_rows(&at, batch, &key, today, rand::random)
        })
        .await
        .map_err(|e| ApiError::internal(format!("checking the roster rows failed: {e}")))?;
        let at = station.clone();
        let written = ctx
            .store
            .call_durable(move |replica| {
                service::import_validated_volunteers(replica, &at, validated)
            })
            .await??;
        report.accepted += written.accepted;
        report.refused.extend(written.refused);
        counter.advance(count);
    }
    report.refused.sort_by_key(|refusal| refusal.row);
    Ok(report)
}

/// [`service::validate_volunteer_rows`] a batch at a time, counting each.
fn validate_in_batches(
    station: &StationId,
    rows: Vec<RosterRow>,
    key: &IdSealer,
    today: time::Date,
    counter: &JobCounter,
) -> ValidatedRows {
    let mut all = ValidatedRows {
        rows: rows.len(),
        valid: Vec::with_capacity(rows.len()),
        refused: Vec::new(),
    };
    let mut rows = rows.into_iter();
    loop {
        let batch: Vec<RosterRow> = rows.by_ref().take(IMPORT_ROWS_PER_COMMIT).collect();
        if batch.is_empty() {
            break;
        }
        let count = batch.len() as u64;
        let validated = service::validate_volunteer_rows(station, batch, key, today, rand::random);
        all.valid.extend(validated.valid);
        all.refused.extend(validated.refused);
        counter.advance(count);
    }
    all
}

#[cfg(test)]
mod import_tests;
