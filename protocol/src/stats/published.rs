//! A county's figures as its statistics documents carry them upward, and
//! read back at an office above the county.
//!
//! The county publishes, per month, every station of its subtree with the
//! same figures its own statistics answer for that station (rolled up over
//! the station's subtree): [`county_month`]. A prefecture or province holds
//! no rosters, activities or orders, so its figures are these documents as
//! read: [`held_statistics`]. Only counts and sums travel (see
//! `layout::statistics`); figures per category and per form stay at the
//! county for now.

use super::figures::Figures;
use super::index::StatsIndex;
use crate::identity::document_id::{DocumentId, DocumentKind, Month};
use crate::identity::station::StationId;
use crate::layout::{self, MonthCounts, StationCounts};
use crate::replica::Replica;
use crate::storage::Storage;
use std::collections::BTreeMap;

/// A station's figures as a statistics document holds them.
pub fn station_counts(figures: &Figures) -> StationCounts {
    StationCounts {
        activities: figures.counts.activities,
        service_records: figures.counts.service_records,
        participations: figures.counts.participations,
        hours_centi: figures.counts.hours_centi,
        beneficiaries: figures.counts.beneficiaries,
        late_records: figures.counts.late_records,
        orders_placed: figures.orders.placed,
        orders_dispatched: figures.orders.dispatched,
        orders_taken: figures.orders.taken,
        orders_rated: figures.orders.rated,
        orders_cancelled: figures.orders.cancelled,
        orders_ratings: figures.orders.ratings,
        orders_rating_sum: figures.orders.rating_sum,
        volunteers_registered: figures.volunteers_registered,
        volunteers_new: figures.volunteers_new,
        volunteers_active: figures.volunteers_active,
        teams: figures.teams,
    }
}

/// The figures a statistics document's counts stand for (no breakdown by
/// category or form: those are not published).
pub fn figures_of(counts: &StationCounts) -> Figures {
    let mut figures = Figures::default();
    figures.counts.activities = counts.activities;
    figures.counts.service_records = counts.service_records;
    figures.counts.participations = counts.participations;
    figures.counts.hours_centi = counts.hours_centi;
    figures.counts.beneficiaries = counts.beneficiaries;
    figures.counts.late_records = counts.late_records;
    figures.orders.placed = counts.orders_placed;
    figures.orders.dispatched = counts.orders_dispatched;
    figures.orders.taken = counts.orders_taken;
    figures.orders.rated = counts.orders_rated;
    figures.orders.cancelled = counts.orders_cancelled;
    figures.orders.ratings = counts.orders_ratings;
    figures.orders.rating_sum = counts.orders_rating_sum;
    figures.volunteers_registered = counts.volunteers_registered;
    figures.volunteers_new = counts.volunteers_new;
    figures.volunteers_active = counts.volunteers_active;
    figures.teams = counts.teams;
    figures
}

/// What `county`'s statistics document of `month` should hold: every
/// station of its subtree with any figure in the month, with its figures
/// rolled up over its own subtree, as the county's own statistics answer.
pub fn county_month(index: &StatsIndex, county: &StationId, month: Month) -> MonthCounts {
    index
        .stations(county, &[])
        .into_iter()
        .filter_map(|station| {
            let counts = station_counts(&index.station_month(&station, month));
            (!counts.is_zero()).then_some((station, counts))
        })
        .collect()
}

/// The statistics documents held here for `month` whose owner is `root`
/// or below it, read: per owning county its stations' counts. A document
/// that cannot be read is listed with the reason, never guessed at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldStatistics {
    pub counties: BTreeMap<StationId, MonthCounts>,
    pub unreadable: Vec<(DocumentId, String)>,
}

impl HeldStatistics {
    /// The figures of `station` as published: its own line where a county
    /// published one, else the sum of the counties below it (a prefecture's
    /// line is the sum of its counties').
    pub fn station(&self, station: &StationId) -> StationCounts {
        let mut sum = StationCounts::default();
        for (county, stations) in &self.counties {
            if let Some(line) = stations.get(station) {
                return *line;
            }
            if station.is_strict_ancestor_of(county) {
                if let Some(line) = stations.get(county) {
                    sum.add(line);
                }
            }
        }
        sum
    }

    /// Every station line published under `root`, in path order.
    pub fn stations_under(&self, root: &StationId) -> BTreeMap<StationId, StationCounts> {
        self.counties
            .values()
            .flat_map(|stations| stations.iter())
            .filter(|(station, _)| root.is_ancestor_or_self_of(station))
            .map(|(station, counts)| (station.clone(), *counts))
            .collect()
    }
}

pub fn held_statistics<S: Storage>(
    replica: &mut Replica<S>,
    root: &StationId,
    month: Month,
) -> HeldStatistics {
    let documents = replica.documents_where(|id| {
        id.kind == DocumentKind::Statistics(month)
            && (root.is_ancestor_or_self_of(&id.owner) || id.owner.is_strict_ancestor_of(root))
    });
    let mut out = HeldStatistics::default();
    for document in documents {
        match replica.with_document(&document, layout::statistics) {
            Ok(Some(Ok(stations))) => {
                out.counties.insert(document.owner.clone(), stations);
            }
            Ok(None) => {}
            Ok(Some(Err(error))) => out.unreadable.push((document, error.to_string())),
            Err(error) => out.unreadable.push((document, error.to_string())),
        }
    }
    out
}
