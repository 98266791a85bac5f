//! Statistics and reports in the API.
//!
//! The node keeps one `StatsIndex` of contributions per document, persisted
//! in the store next to the documents (`StoredStats`, `stats|` keys in the
//! same sled tree). Before a query it refreshes the index on the store's
//! owner thread: only documents whose heads digest moved since the last
//! refresh are read again (a local write or a sync since then), so a query
//! costs the changes since the last one, not the county. The first refresh
//! (at start) loads the persisted entries and reads again only documents
//! whose entry is missing, stale, of an old format or corrupt; it logs why.
//!
//! An office above the county (prefecture, province) holds no rosters,
//! activities or orders: its figures are the counties' statistics documents
//! (`statistics:<county>:<YYYY-MM>`), read at each query — one small
//! document per county and month. They are monthly; a quarter is refused
//! there, since active volunteers of three months do not add up.

use crate::api::common::ApiError;
use crate::context::NodeContext;
use crate::files::report;
use crate::progress::{CountUnit, JobKind};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use civsync_protocol::identity::document_id::holds_others_personal_data;
use civsync_protocol::service::registry;
use civsync_protocol::stats::{figures_of, held_statistics, Period, Quarter, StatsIndex};
use civsync_protocol::{Month, Station, StationId};
use serde::Deserialize;
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/reports/monthly", get(monthly_report))
        .route("/api/v1/reports/quarterly", get(quarterly_report))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    station: Option<String>,
    month: Option<String>,
    quarter: Option<String>,
    format: Option<String>,
}

impl ReportQuery {
    fn station(&self, ctx: &NodeContext) -> Result<StationId, ApiError> {
        crate::api::common::station_param(ctx, self.station.as_deref())
    }

    fn month(&self) -> Result<Month, ApiError> {
        crate::api::common::month_param(self.month.as_deref())
    }

    fn quarter(&self) -> Result<Quarter, ApiError> {
        match &self.quarter {
            None => Ok(Quarter::of(crate::clock::this_month())),
            Some(text) => Quarter::parse(text).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "quarter",
                    format!("{text:?} is not YYYYQn"),
                )
            }),
        }
    }
}

type Ctx = State<Arc<NodeContext>>;
type QueryResult = Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>;

fn query(q: QueryResult) -> Result<ReportQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))
}

/// Station names and tiers for the statistics: every registry this node
/// holds, and itself (`api_stations::registry`). Once the registries name
/// any station besides this one, stations seen in the index but not
/// registered are added with their tier from their depth, so coverage
/// counts the registered villages that never reported *and* the reporting
/// ones nobody registered. With no registry, coverage infers villages from
/// what was seen, as before.
fn with_seen(ctx: &NodeContext, registry: Vec<Station>, index: &StatsIndex) -> Vec<Station> {
    let own = &ctx.config.station;
    if registry.iter().all(|s| &s.id == own) {
        return registry;
    }
    registry::with_unregistered(&registry, index.stations(own, &[]), own, ctx.config.tier)
}

async fn build_report(
    ctx: &NodeContext,
    station: &StationId,
    period: Period,
) -> Result<report::StatisticsReport, ApiError> {
    if !holds_others_personal_data(ctx.config.tier) {
        let mut report = published_report(ctx, station, period).await?;
        crate::api::approvals::mark_report(ctx, &mut report).await?;
        return Ok(report);
    }
    ctx.refresh_stats().await?;
    let (registry, retired) = ctx.registry_retiring().await?;
    let mut report = {
        let mut state = ctx.stats.lock().unwrap_or_else(|p| p.into_inner());
        // Retired stations are not expected to report after retiring.
        state.index_mut().set_retired(retired);
        let registry = with_seen(ctx, registry, state.index());
        report::statistics_report(state.index(), station, period, &registry).map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "station", e.to_string())
        })?
    };
    crate::api::approvals::mark_report(ctx, &mut report).await?;
    Ok(report)
}

/// The report of an office above the county, from the statistics
/// documents its counties published.
async fn published_report(
    ctx: &NodeContext,
    root: &StationId,
    period: Period,
) -> Result<report::StatisticsReport, ApiError> {
    let Period::Month(month) = period else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "quarter",
            "above the county figures come from the counties' monthly statistics; ask for each month"
                .to_string(),
        ));
    };
    let for_root = root.clone();
    let held = ctx
        .store
        .call(move |replica| held_statistics(replica, &for_root, month))
        .await?;
    for (document, reason) in &held.unreadable {
        tracing::warn!(%document, %reason, "statistics document unreadable; its county is left out");
    }
    let registry = ctx.registry().await?;
    let rows = held
        .stations_under(root)
        .iter()
        .map(|(station, counts)| (station.clone(), figures_of(counts)))
        .collect();
    report::published_report(
        root,
        period,
        rows,
        &figures_of(&held.station(root)),
        &registry,
    )
    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "station", e.to_string()))
}

async fn stats(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let q = query(q)?;
    let report = build_report(&ctx, &q.station(&ctx)?, Period::Month(q.month()?)).await?;
    Ok(Json(report).into_response())
}

fn render(report: &report::StatisticsReport, format: Option<&str>) -> Result<Response, ApiError> {
    let file = format!(
        "civsync-{}-{}",
        report.root.as_str().replace('/', "-"),
        report.period
    );
    match format.unwrap_or("json") {
        "json" => Ok(Json(report).into_response()),
        "csv" => {
            let mut bytes = Vec::new();
            report::write_csv(report, &mut bytes).map_err(|e| ApiError::internal(e.to_string()))?;
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{file}.csv\""),
                    ),
                ],
                bytes,
            )
                .into_response())
        }
        "xlsx" => {
            let bytes =
                report::xlsx_bytes(report).map_err(|e| ApiError::internal(e.to_string()))?;
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                            .to_string(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{file}.xlsx\""),
                    ),
                ],
                bytes,
            )
                .into_response())
        }
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "format",
            format!("unknown format {other:?}; use json, csv or xlsx"),
        )),
    }
}

async fn monthly_report(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let q = query(q)?;
    let (station, period) = (q.station(&ctx)?, Period::Month(q.month()?));
    report_file(&ctx, &station, period, q.format.as_deref()).await
}

async fn quarterly_report(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let q = query(q)?;
    let (station, period) = (q.station(&ctx)?, Period::Quarter(q.quarter()?));
    report_file(&ctx, &station, period, q.format.as_deref()).await
}

/// A report as a job of the node's progress registry: its station rows,
/// counted once the file is written.
async fn report_file(
    ctx: &NodeContext,
    station: &StationId,
    period: Period,
    format: Option<&str>,
) -> Result<Response, ApiError> {
    let job = ctx.progress.start(
        JobKind::Report,
        format!("{station} {period}"),
        CountUnit::Rows,
        None,
    );
    job.set_phase("reading the figures");
    let report = build_report(ctx, station, period).await?;
    job.set_total(report.rows.len() as u64);
    job.set_phase("writing the file");
    let response = render(&report, format)?;
    job.advance(report.rows.len() as u64);
    job.finish(format!("{} written", format.unwrap_or("json")));
    Ok(response)
}

#[cfg(test)]
pub(crate) mod above_county_tests;
#[cfg(test)]
mod tests;
