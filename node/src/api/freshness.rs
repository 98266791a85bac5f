//! How fresh this node's picture of each station is, in the API:
//! `GET /api/v1/freshness?station=`.
//!
//! For the station (this node's own by default) and every station below it
//! that this node knows of — those it holds data from, and those a registry
//! held here names even if never heard from: the newest change held that
//! the station wrote (its own clock when it committed, carried by the
//! change), when this node last heard from it directly (sync peers only),
//! and whether it is quiet — no sign of life for more than `quiet_days_max`
//! days (`civsync.toml`), or none ever. The answer says when it was
//! computed (`as_of_ms`): a county reads "as of" per station, and phones
//! the quiet ones (by name, when a registry names them).
//!
//! A retired station (撤并, itself or an ancestor: see the registry) is
//! listed, never hidden, with `retired_on`, and is never quiet: nobody
//! should phone a closed village. If it still wrote a change dated on or
//! after its retirement (an offline node that had not heard), the row says
//! `still_recording` so a clerk can follow up; what it wrote is kept and
//! counted. The clerk sees every station in one list, the closed ones
//! marked, rather than having to remember which are missing.
//!
//! Change times come from the statistics index's freshness, which the
//! statistics refresh keeps up to date from every document it reads again;
//! "last heard" comes from the peer board and is folded into the same index
//! (so it is kept with it).

use crate::api::common::{station_param, ApiError};
use crate::context::NodeContext;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use civsync_protocol::domain::model::date_format;
use civsync_protocol::service::approval_ops;
use civsync_protocol::stats::{Freshness, RetiredStations, DAY_MS};
use civsync_protocol::StationId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use time::Date;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/freshness", get(freshness))
}

/// One station's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationFreshnessRow {
    pub station: StationId,
    /// The station's name, when a registry held here names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Newest change held that the station wrote (Unix ms, its clock).
    pub newest_change_ms: Option<i64>,
    /// When this node last received anything from it directly (Unix ms).
    pub last_heard_ms: Option<i64>,
    /// The later of the two: this station's figures are "as of" then.
    pub as_of_ms: Option<i64>,
    /// Whole days since `as_of_ms`; `None` when never seen.
    pub silent_days: Option<i64>,
    /// Silent for more than `quiet_days_max` days, or never seen; never
    /// for a retired station.
    pub quiet: bool,
    /// The day the station (or a station above it) was retired, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_on: Option<String>,
    /// Retired, yet a change it wrote is dated on or after `retired_on`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub still_recording: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreshnessReport {
    pub root: StationId,
    /// When this answer was computed (Unix ms, this node's clock).
    pub as_of_ms: i64,
    pub quiet_days_max: u32,
    /// Stations flagged quiet.
    pub quiet: usize,
    /// Stations listed as retired.
    #[serde(default)]
    pub retired: usize,
    /// Every known station of the subtree, in path order.
    pub stations: Vec<StationFreshnessRow>,
}

/// Lay out the rows for `stations` at `now_ms`; which are quiet is the
/// protocol's decision ([`Freshness::quiet_among`]), not redone here, over
/// the stations not `retired`.
pub fn freshness_rows(
    stations: &BTreeSet<StationId>,
    freshness: &Freshness,
    retired: &RetiredStations,
    now_ms: i64,
    quiet_days_max: u32,
) -> Vec<StationFreshnessRow> {
    let quiet: BTreeSet<StationId> = freshness
        .quiet_among(
            stations.iter().filter(|s| retired.retired_on(s).is_none()),
            now_ms,
            quiet_days_max,
        )
        .into_iter()
        .map(|q| q.station)
        .collect();
    stations
        .iter()
        .map(|station| {
            let of = freshness.of(station);
            let as_of_ms = of.latest_ms();
            let retired_on = retired.retired_on(station);
            let still_recording = retired_on.is_some_and(|on| {
                of.newest_change_ms
                    .is_some_and(|newest| newest >= beijing_midnight_ms(on))
            });
            debug_assert!(retired_on.is_none() || !quiet.contains(station));
            StationFreshnessRow {
                station: station.clone(),
                name: None,
                newest_change_ms: of.newest_change_ms,
                last_heard_ms: of.last_heard_ms,
                as_of_ms,
                silent_days: as_of_ms.map(|latest| now_ms.saturating_sub(latest).max(0) / DAY_MS),
                quiet: quiet.contains(station),
                retired_on: retired_on.map(date_format::format),
                still_recording,
            }
        })
        .collect()
}

/// The start of `day` in Beijing (UTC+8), in Unix ms: dates in the
/// registry are the offices' calendar days.
fn beijing_midnight_ms(day: Date) -> i64 {
    const BEIJING_OFFSET_MS: i64 = 8 * 60 * 60 * 1000;
    day.midnight().assume_utc().unix_timestamp() * 1000 - BEIJING_OFFSET_MS
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreshnessQuery {
    station: Option<String>,
}

async fn freshness(
    State(ctx): State<Arc<NodeContext>>,
    q: Result<Query<FreshnessQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))?;
    let root = station_param(&ctx, q.station.as_deref())?;
    if !ctx.config.station.is_ancestor_or_self_of(&root) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "station",
            format!(
                "this node is {} and sees only it and the stations below it, not {root}",
                ctx.config.station
            ),
        ));
    }
    ctx.refresh_stats().await?;
    let (registry, retired) = ctx.registry_retiring().await?;
    let known_root = root.clone();
    let known = ctx
        .store
        .call(move |replica| approval_ops::known_stations(replica, &known_root))
        .await??;
    let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
    let peers = ctx.peers.snapshot();
    let mut state = ctx.stats.lock().unwrap_or_else(|p| p.into_inner());
    let freshness = state.index_mut().freshness_mut();
    for peer in &peers {
        if let Some(seen) = peer.last_seen_unix_ms {
            freshness.record_heard_from(&peer.station, i64::try_from(seen).unwrap_or(i64::MAX));
        }
    }
    let mut stations: BTreeSet<StationId> = known.into_iter().collect();
    // Registered stations never heard from are listed too, and flagged.
    stations.extend(
        registry
            .iter()
            .map(|s| &s.id)
            .filter(|station| root.is_ancestor_or_self_of(station))
            .cloned(),
    );
    stations.extend(
        freshness
            .stations()
            .map(|(station, _)| station)
            .filter(|station| root.is_ancestor_or_self_of(station))
            .cloned(),
    );
    let mut rows = freshness_rows(
        &stations,
        freshness,
        &retired,
        now_ms,
        ctx.config.quiet_days_max,
    );
    for row in &mut rows {
        row.name = registry
            .binary_search_by(|s| s.id.cmp(&row.station))
            .ok()
            .map(|at| registry[at].name.clone())
            .filter(|name| !name.is_empty());
    }
    drop(state);
    let report = FreshnessReport {
        root,
        as_of_ms: now_ms,
        quiet_days_max: ctx.config.quiet_days_max,
        quiet: rows.iter().filter(|row| row.quiet).count(),
        retired: rows.iter().filter(|row| row.retired_on.is_some()).count(),
        stations: rows,
    };
    Ok(Json(report).into_response())
}
