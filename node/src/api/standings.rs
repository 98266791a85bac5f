//! Volunteer standings (志愿者星级与积分) in the API:
//! `GET /api/v1/standings?station=&limit=`.
//!
//! For the volunteers whose home station lies in the station's subtree (this
//! node's own by default), most hours first: accumulated service hours and
//! service records over every activity this node holds, the star level of
//! the national thresholds (100 / 300 / 600 / 1,000 / 1,500 hours), and the
//! points (积分) those hours earn at the rate the county publishes
//! (`service::points::rate_at`; 0 while no rate is held here). Plus how many volunteers stand at each star level, over the
//! whole subtree (not only the listed ones).
//!
//! Figures come from the statistics index, refreshed first, so they count
//! what this node holds: a village sees its own activities, the county sees
//! everything. Names are read from the volunteers' home rosters (personal
//! data flows up, so a node holds the rosters of its subtree); a volunteer
//! whose roster is not held is listed without a name. At most
//! [`STANDINGS_LIMIT_MAX`] volunteers are listed.
//!
//! A volunteer is their home station and number: numbers are unique only
//! per roster, so two villages' "001" are two rows, each with its own hours.

use crate::api::common::{station_param, ApiError};
use crate::context::NodeContext;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use civsync_protocol::domain::model::RecordId;
use civsync_protocol::layout;
use civsync_protocol::stats::VolunteerStanding;
use civsync_protocol::{DocumentId, StationId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Volunteers listed when `limit` is not given.
pub const STANDINGS_LIMIT_DEFAULT: usize = 50;
/// Most volunteers one answer lists (each may cost a roster read).
pub const STANDINGS_LIMIT_MAX: usize = 1_000;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/standings", get(standings))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StandingsQuery {
    station: Option<String>,
    limit: Option<usize>,
}

/// One volunteer's line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandingRow {
    pub number: RecordId,
    /// From the home roster, when this node holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// With `number`, who the volunteer is.
    pub home_station: StationId,
    /// Decimal hours, e.g. `12.5`.
    pub hours: f64,
    pub service_records: u64,
    /// 0–5.
    pub star_level: u8,
    pub points: u64,
}

/// `GET /api/v1/standings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standings {
    pub station: StationId,
    pub points_per_hour: u32,
    /// Volunteers homed in the subtree at star level 0, 1, … 5.
    pub star_levels: [u64; 6],
    /// Most hours first (then by number, then home station), at most `limit`.
    pub volunteers: Vec<StandingRow>,
}

/// Points for `hours_centi` hundredths of an hour: whole points, rounded
/// down (a volunteer earns a point once the time for it is served).
pub fn points(hours_centi: u64, points_per_hour: u32) -> u64 {
    civsync_protocol::service::points::points_for(hours_centi, points_per_hour)
}

async fn standings(
    State(ctx): State<Arc<NodeContext>>,
    q: Result<Query<StandingsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))?;
    let station = station_param(&ctx, q.station.as_deref())?;
    let limit = q.limit.unwrap_or(STANDINGS_LIMIT_DEFAULT);
    if !(1..=STANDINGS_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "limit",
            format!("{limit} volunteers; from 1 to {STANDINGS_LIMIT_MAX} may be listed"),
        ));
    }
    ctx.refresh_stats().await?;
    let (listed, star_levels) = {
        let state = ctx.stats.lock().unwrap_or_else(|p| p.into_inner());
        (
            state.index().volunteers_in(&station, limit),
            state.index().star_levels(&station),
        )
    };
    let names = names_of(&ctx, &listed).await?;
    let local = ctx.config.station.clone();
    let points_per_hour = ctx
        .store
        .call(move |replica| civsync_protocol::service::points::rate_at(replica, &local))
        .await?
        .map_or(0, |rate| rate.points_per_hour);
    let volunteers = listed
        .into_iter()
        .map(|standing| StandingRow {
            name: names
                .get(&(standing.home_station.clone(), standing.number.clone()))
                .cloned(),
            hours: standing.hours_centi as f64 / 100.0,
            points: points(standing.hours_centi, points_per_hour),
            number: standing.number,
            home_station: standing.home_station,
            service_records: standing.service_records,
            star_level: standing.star_level,
        })
        .collect();
    Ok(Json(Standings {
        station,
        points_per_hour,
        star_levels,
        volunteers,
    })
    .into_response())
}

/// The names of `listed` by home station and number, from their home
/// rosters, each roster read once.
async fn names_of(
    ctx: &NodeContext,
    listed: &[VolunteerStanding],
) -> Result<BTreeMap<(StationId, RecordId), String>, ApiError> {
    let mut by_home: BTreeMap<StationId, Vec<RecordId>> = BTreeMap::new();
    for standing in listed {
        by_home
            .entry(standing.home_station.clone())
            .or_default()
            .push(standing.number.clone());
    }
    let names = ctx
        .store
        .call(move |replica| {
            let mut names = BTreeMap::new();
            for (home, numbers) in by_home {
                let roster = DocumentId::roster(&home);
                let found = replica.with_document(&roster, |doc| {
                    numbers
                        .iter()
                        .filter_map(|number| match layout::volunteer(doc, number) {
                            Ok(Some(volunteer)) => {
                                Some(((home.clone(), number.clone()), volunteer.name))
                            }
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                });
                // A roster not held, or not loadable, leaves its names out:
                // the figures stand on their own.
                if let Ok(Some(found)) = found {
                    names.extend(found);
                }
            }
            names
        })
        .await?;
    Ok(names)
}

#[cfg(test)]
mod tests;
