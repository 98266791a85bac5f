//! How fresh each station's figures are.
//!
//! For every station this node holds data from: the timestamp of the newest
//! change it wrote that this node holds (the Automerge change time, stamped
//! by the writer's clock when it committed: see `Replica::set_now_ms`), and
//! when this node last heard from it directly (the sync layer reports that).
//! Statistics are "as of" these times, and a station silent for too long is
//! flagged so the county can phone it.
//!
//! Units: Automerge stores change times in Unix *seconds* (the convention of
//! its `CommitOptions::with_time` and of the JS library); everything here is
//! Unix milliseconds, converted on the way in. A change time of 0 or less is
//! "no time given" (changes written before times were stamped) and ignored.
//!
//! Both times only move forward (`max`): changes are never removed from a
//! document, so re-observing a document never makes a station look older.
//! Timestamps come from village clocks, which may be wrong; a timestamp from
//! the future is kept as written (it is evidence, not a clock).

use crate::identity::actor::station_of;
use crate::identity::station::StationId;
use automerge::{ActorId, AutoCommit, ChangeHash};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Freshness of one station.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationFreshness {
    /// Newest change time (ms since the epoch) of a change this station wrote.
    pub newest_change_ms: Option<i64>,
    /// When a sync session with this station last succeeded here.
    pub last_heard_ms: Option<i64>,
}

impl StationFreshness {
    /// The latest sign of life: a change or a sync, whichever is newer.
    pub fn latest_ms(&self) -> Option<i64> {
        self.newest_change_ms.max(self.last_heard_ms)
    }
}

/// A station silent for longer than allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietStation {
    pub station: StationId,
    /// Whole days since the latest sign of life; `None` if never seen.
    pub silent_days: Option<i64>,
    pub freshness: StationFreshness,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    stations: BTreeMap<StationId, StationFreshness>,
}

impl Freshness {
    /// One change written by `actor` with Automerge change time
    /// `change_time_s` (Unix seconds). Changes by actors that name no station
    /// (never authorised) and changes without a time are ignored.
    pub fn observe_change(&mut self, actor: &ActorId, change_time_s: i64) {
        if change_time_s <= 0 {
            return;
        }
        if let Some(station) = station_of(actor) {
            let entry = self.stations.entry(station).or_default();
            let change_ms = change_time_s.saturating_mul(1000);
            entry.newest_change_ms = entry.newest_change_ms.max(Some(change_ms));
        }
    }

    /// Every change of `doc` not covered by `since` (pass `&[]` for all of
    /// them, e.g. when rebuilding). Reads change metadata only; cost follows
    /// the number of changes read.
    pub fn observe_document(&mut self, doc: &mut AutoCommit, since: &[ChangeHash]) {
        for change in doc.get_changes_meta(since) {
            self.observe_change(&change.actor, change.timestamp);
        }
    }

    /// The sync layer finished a session with `station` at `now_ms`.
    pub fn record_heard_from(&mut self, station: &StationId, now_ms: i64) {
        let entry = self.stations.entry(station.clone()).or_default();
        entry.last_heard_ms = entry.last_heard_ms.max(Some(now_ms));
    }

    pub fn of(&self, station: &StationId) -> StationFreshness {
        self.stations.get(station).copied().unwrap_or_default()
    }

    /// Every station known, in path order.
    pub fn stations(&self) -> impl Iterator<Item = (&StationId, &StationFreshness)> {
        self.stations.iter()
    }

    /// Known stations whose latest sign of life is more than
    /// `quiet_days_max` days before `now_ms`, quietest first.
    pub fn quiet_stations(&self, now_ms: i64, quiet_days_max: u32) -> Vec<QuietStation> {
        self.quiet_among(self.stations.keys(), now_ms, quiet_days_max)
    }

    /// Like [`Freshness::quiet_stations`] over a given list (the registry's
    /// stations), so a station never heard from at all is flagged too.
    pub fn quiet_among<'a>(
        &self,
        stations: impl IntoIterator<Item = &'a StationId>,
        now_ms: i64,
        quiet_days_max: u32,
    ) -> Vec<QuietStation> {
        let allowed_ms = i64::from(quiet_days_max).saturating_mul(DAY_MS);
        let mut out: Vec<QuietStation> = stations
            .into_iter()
            .filter_map(|station| {
                let freshness = self.of(station);
                let silent_ms = freshness
                    .latest_ms()
                    .map(|latest| now_ms.saturating_sub(latest));
                let quiet = silent_ms.is_none_or(|silent| silent > allowed_ms);
                quiet.then(|| QuietStation {
                    station: station.clone(),
                    silent_days: silent_ms.map(|silent| silent.max(0) / DAY_MS),
                    freshness,
                })
            })
            .collect();
        // Never-seen first, then the longest silence; path order breaks ties.
        out.sort_by(|a, b| {
            let key = |q: &QuietStation| q.freshness.latest_ms().map_or(i64::MIN, |l| l);
            key(a).cmp(&key(b)).then_with(|| a.station.cmp(&b.station))
        });
        out
    }
}
