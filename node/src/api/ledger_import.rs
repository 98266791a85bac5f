//! `POST /api/v1/import/activities?station=&format=csv|xlsx`: an activity
//! ledger (活动台账) file as the body, answered with a report of every row.
//!
//! The file is read on a blocking thread; the ledger is planned (grouped,
//! validated, names checked against the rosters) in one job on the store's
//! owner thread, which writes nothing. Month documents the station does not
//! hold yet are then built on every core ([`crate::store::bulk::build_in_parallel`])
//! and only stored on the owner thread, with the months already held
//! committed there in the same durable job — one commit or one stored
//! document per month. A month created meanwhile (`AlreadyHeld`) is
//! committed the ordinary way, which answers exactly as the build would
//! have. Every refusal of the request itself is a 4xx with
//! `{"error":{"field","reason"}}` and writes nothing; a store failure part
//! way leaves whole months (each month is atomic) and is harmless to retry,
//! as a re-import is. An import is a job in the node's progress registry,
//! counting month documents as each is built or committed.

use crate::api::common::{end_import_job, file_refusal, station_param, upload_name, ApiError};
use crate::context::NodeContext;
use crate::progress::{thousands, CountUnit, JobCounter, JobKind};
use crate::store::bulk::{build_in_parallel, build_threads, Built};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use civsync_protocol::replica::StoreBuiltError;
use civsync_protocol::service::ledger_import::{
    self, ActivityImportReport, MonthBatch, MonthWritten,
};
use civsync_protocol::service::ServiceError;
use civsync_protocol::StationId;
use serde::Deserialize;
use std::sync::Arc;

/// Largest ledger body accepted: the largest ledger file.
pub const LEDGER_BODY_BYTES_MAX: usize = crate::files::ledger::LEDGER_BYTES_MAX;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route("/api/v1/import/activities", post(import_activities))
        .layer(DefaultBodyLimit::max(LEDGER_BODY_BYTES_MAX))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerQuery {
    /// Station whose ledger this is; the node's own when absent.
    station: Option<String>,
    /// `csv` (default) or `xlsx`.
    format: Option<String>,
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "the file is larger than the {LEDGER_BODY_BYTES_MAX} bytes accepted (LEDGER_BYTES_MAX)"
        )
    } else {
        rejection.body_text()
    };
    ApiError::new(status, "body", reason)
}

async fn import_activities(
    State(ctx): State<Arc<NodeContext>>,
    query: Result<Query<LedgerQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))?;
    let station = station_param(&ctx, query.station.as_deref())?;
    let name = upload_name(query.format.as_deref())?;
    let bytes = body.map_err(body_rejection)?;
    let job = ctx.progress.start(
        JobKind::LedgerImport,
        station.to_string(),
        CountUnit::Documents,
        None,
    );
    job.add_bytes(bytes.len() as u64);
    let outcome = import_ledger(&ctx, station, name, bytes, job.counter()).await;
    end_import_job(job, outcome, |report| {
        format!(
            "{} rows, {} refused",
            thousands(report.rows as u64),
            thousands(report.refused.len() as u64)
        )
    })
}

/// Read, plan and write one ledger file, counting each month document
/// into `counter` as it is built or committed.
async fn import_ledger(
    ctx: &NodeContext,
    station: StationId,
    name: &'static str,
    bytes: Bytes,
    counter: JobCounter,
) -> Result<ActivityImportReport, ApiError> {
    counter.set_phase("reading the file");
    let rows =
        tokio::task::spawn_blocking(move || crate::files::ledger::parse_file_bytes(name, &bytes))
            .await
            .map_err(|e| ApiError::internal(format!("reading the ledger failed: {e}")))?
            .map_err(|e| file_refusal(e.is_too_large(), e.to_string()))?;

    counter.set_phase("checking rows");
    let today = crate::clock::today();
    let (plan, builder) = ctx
        .store
        .call(move |replica| {
            let plan = ledger_import::plan_ledger(replica, &station, &rows, today)?;
            Ok::<_, ServiceError>((plan, replica.document_builder()))
        })
        .await??;
    let mut report = ActivityImportReport::of_plan(&plan);
    let (new, held): (Vec<MonthBatch>, Vec<MonthBatch>) = plan
        .months
        .into_iter()
        .filter(|batch| !batch.activities.is_empty())
        .partition(|batch| !batch.held);
    counter.set_total((new.len() + held.len()) as u64);
    counter.set_phase("building months");
    let built_counter = counter.clone();

    // New months: all Automerge work here, off the owner thread.
    let (new, built) = tokio::task::spawn_blocking(move || {
        let mut built: Vec<Option<Built<MonthWritten, ServiceError>>> =
            new.iter().map(|_| None).collect();
        let jobs: Vec<_> = new
            .iter()
            .map(|batch| {
                let job =
                    move |doc: &mut automerge::AutoCommit| ledger_import::put_month(doc, batch);
                (batch.document.clone(), job)
            })
            .collect();
        build_in_parallel(&builder, jobs, build_threads(), |position, answer| {
            built[position] = Some(answer);
            built_counter.advance(1);
        });
        (new, built)
    })
    .await
    .map_err(|e| ApiError::internal(format!("building the ledger's months failed: {e}")))?;

    counter.set_phase("storing months");
    let held_counter = counter.clone();
    let written = ctx
        .store
        .call_durable(move |replica| {
            let mut written = Vec::with_capacity(held.len() + new.len());
            for batch in &held {
                written.push(ledger_import::commit_month(replica, batch)?);
                held_counter.advance(1);
            }
            for (batch, answer) in new.iter().zip(built) {
                let month = match answer {
                    Some(Ok((document, month))) => match replica.store_built(document) {
                        Ok(()) => month,
                        // Someone wrote this month meanwhile: commit the same
                        // activities to it, answered against what it holds.
                        Err(StoreBuiltError::AlreadyHeld { .. }) => {
                            ledger_import::commit_month(replica, batch)?
                        }
                        Err(other) => {
                            return Err(ServiceError::Store {
                                reason: other.to_string(),
                            })
                        }
                    },
                    // A failed or panicked build: the ordinary commit gives
                    // the month its answer (or the same error, reported).
                    Some(Err(_)) | None => ledger_import::commit_month(replica, batch)?,
                };
                written.push(month);
            }
            Ok(written)
        })
        .await??;
    for month in written {
        report.add(month);
    }
    Ok(report.finished())
}

#[cfg(test)]
mod tests;
