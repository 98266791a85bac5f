//! Statistics recomputed from documents, from scratch.
//!
//! A pure function over documents that deliberately shares no code with the
//! incremental index beyond the document readers of `layout`: it walks
//! every record and rolls it up the station path directly, with plain sets
//! for distinct counts. The index's [`super::StatsIndex::statistics`] must
//! equal it; the property tests and the simulator's aggregates checker hold
//! both to that.
//!
//! [`Statistics`] is canonical: sorted maps keyed by text (`YYYY-MM`,
//! `YYYYQn`, station paths, volunteers by home station and number), and no
//! empty entries, so equal figures compare and serialise equal.

use super::contribution::{cells_listed, month_of, ActivityCounts, CellCounts, OrderCounts};
use super::figures::{Quarter, StatsError};
use crate::domain::model::{Category, Form, OrderStatus, VolunteerId};
use crate::identity::document_id::{DocumentId, DocumentKind, Month};
use crate::identity::station::StationId;
use crate::layout;
use automerge::ReadDoc;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Rolled-up figures of one station for one month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthStatistics {
    /// Non-empty category × form cells in (category, form) order.
    pub cells: Vec<CellCounts>,
    pub orders: OrderCounts,
    /// Live volunteers registered in this month.
    pub registrations: u64,
    /// Distinct volunteers with a live service record in this month.
    pub volunteers_active: u64,
}

impl MonthStatistics {
    fn is_empty(&self) -> bool {
        self.cells.is_empty()
            && self.orders.is_zero()
            && self.registrations == 0
            && self.volunteers_active == 0
    }
}

/// Rolled-up figures of one station (its subtree).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationStatistics {
    /// By `YYYY-MM`.
    pub months: BTreeMap<String, MonthStatistics>,
    /// Distinct active volunteers by `YYYYQn`.
    pub quarters_active: BTreeMap<String, u64>,
    pub teams: u64,
}

impl StationStatistics {
    pub(crate) fn is_empty(&self) -> bool {
        self.months.is_empty() && self.quarters_active.is_empty() && self.teams == 0
    }
}

/// One volunteer's accumulated service over the documents held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolunteerTally {
    pub hours_centi: u64,
    pub service_records: u64,
}

/// Everything the statistics index knows, in canonical form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statistics {
    /// Every station that holds or rolls up anything, by path.
    pub stations: BTreeMap<StationId, StationStatistics>,
    /// Volunteers with at least one live service record, by home station
    /// and number.
    pub volunteers: BTreeMap<VolunteerId, VolunteerTally>,
}

#[derive(Default)]
struct MonthWork {
    cells: BTreeMap<(Category, Form), ActivityCounts>,
    orders: OrderCounts,
    registrations: u64,
    active: BTreeSet<VolunteerId>,
}

#[derive(Default)]
struct StationWork {
    months: BTreeMap<Month, MonthWork>,
    quarters_active: BTreeMap<Quarter, BTreeSet<VolunteerId>>,
    teams: u64,
}

fn path_to(station: &StationId) -> Vec<StationId> {
    let mut out = station.ancestors();
    out.push(station.clone());
    out
}

/// Statistics of the given documents, computed from nothing else. Fails on
/// the first document that cannot be read, naming it.
pub fn recompute_from_scratch<'a, D: ReadDoc + 'a>(
    documents: impl IntoIterator<Item = (&'a DocumentId, &'a D)>,
) -> Result<Statistics, StatsError> {
    let mut count = ScratchCount::default();
    for (id, doc) in documents {
        count.add(id, doc)?;
    }
    Ok(count.finish())
}

/// [`recompute_from_scratch`] one document at a time, for a caller that
/// can lend each document only briefly (a replica's cache): no document
/// needs to outlive its own [`ScratchCount::add`].
#[derive(Default)]
pub struct ScratchCount {
    work: BTreeMap<StationId, StationWork>,
    volunteers: BTreeMap<VolunteerId, VolunteerTally>,
}

impl ScratchCount {
    /// Count one document. Fails if it cannot be read, naming it.
    pub fn add<D: ReadDoc>(&mut self, id: &DocumentId, doc: &D) -> Result<(), StatsError> {
        let work = &mut self.work;
        let volunteers = &mut self.volunteers;
        let unreadable = |id: &DocumentId, error: layout::LayoutError| StatsError::Unreadable {
            document: id.clone(),
            reason: error.to_string(),
        };
        let path = path_to(&id.owner);
        match &id.kind {
            DocumentKind::Activities(month) => {
                for activity in layout::activities(doc).map_err(|e| unreadable(id, e))? {
                    if activity.deleted {
                        continue;
                    }
                    let live: Vec<_> = activity.records.iter().filter(|r| !r.deleted).collect();
                    let mut counts = ActivityCounts {
                        activities: 1,
                        beneficiaries: u64::from(activity.beneficiaries),
                        late_records: u64::from(activity.late),
                        ..ActivityCounts::default()
                    };
                    for record in &live {
                        counts.service_records += 1;
                        counts.participations += 1;
                        counts.hours_centi += u64::from(record.hours.centi);
                        counts.late_records += u64::from(record.late);
                        let tally = volunteers
                            .entry(record.volunteer_id(&id.owner))
                            .or_default();
                        tally.hours_centi += u64::from(record.hours.centi);
                        tally.service_records += 1;
                    }
                    for station in &path {
                        let entry = work.entry(station.clone()).or_default();
                        let month_work = entry.months.entry(*month).or_default();
                        month_work
                            .cells
                            .entry((activity.category, activity.form))
                            .or_default()
                            .add(&counts);
                        month_work
                            .active
                            .extend(live.iter().map(|r| r.volunteer_id(&id.owner)));
                        entry
                            .quarters_active
                            .entry(Quarter::of(*month))
                            .or_default()
                            .extend(live.iter().map(|r| r.volunteer_id(&id.owner)));
                    }
                }
            }
            DocumentKind::Roster => {
                let registered: Vec<Month> = layout::volunteers(doc)
                    .map_err(|e| unreadable(id, e))?
                    .iter()
                    .filter(|v| !v.deleted)
                    .map(|v| month_of(v.registered_on))
                    .collect();
                let teams = layout::teams(doc)
                    .map_err(|e| unreadable(id, e))?
                    .iter()
                    .filter(|t| !t.deleted)
                    .count();
                for station in &path {
                    let entry = work.entry(station.clone()).or_default();
                    entry.teams += teams as u64;
                    for month in &registered {
                        entry.months.entry(*month).or_default().registrations += 1;
                    }
                }
            }
            DocumentKind::Orders(month) => {
                for order in layout::orders(doc).map_err(|e| unreadable(id, e))? {
                    let reached = |status: OrderStatus| -> u64 {
                        let rank = |s: OrderStatus| match s {
                            OrderStatus::Placed | OrderStatus::Cancelled => 0,
                            OrderStatus::Dispatched => 1,
                            OrderStatus::Taken => 2,
                            OrderStatus::Rated => 3,
                        };
                        u64::from(rank(order.status) >= rank(status))
                    };
                    let rating = (order.status == OrderStatus::Rated)
                        .then_some(order.rating)
                        .flatten();
                    let counts = OrderCounts {
                        placed: 1,
                        dispatched: reached(OrderStatus::Dispatched),
                        taken: reached(OrderStatus::Taken),
                        rated: reached(OrderStatus::Rated),
                        cancelled: u64::from(order.status == OrderStatus::Cancelled),
                        ratings: u64::from(rating.is_some()),
                        rating_sum: u64::from(rating.unwrap_or(0)),
                    };
                    for station in &path {
                        work.entry(station.clone())
                            .or_default()
                            .months
                            .entry(*month)
                            .or_default()
                            .orders
                            .add(&counts);
                    }
                }
            }
            DocumentKind::Approval(_)
            | DocumentKind::Statistics(_)
            | DocumentKind::Reference(_) => {}
        }
        Ok(())
    }

    /// The statistics of every document added.
    pub fn finish(self) -> Statistics {
        let ScratchCount { work, volunteers } = self;
        let stations = work
            .into_iter()
            .map(|(station, w)| {
                let months = w
                    .months
                    .into_iter()
                    .map(|(month, m)| {
                        (
                            month.to_string(),
                            MonthStatistics {
                                cells: cells_listed(m.cells),
                                orders: m.orders,
                                registrations: m.registrations,
                                volunteers_active: m.active.len() as u64,
                            },
                        )
                    })
                    .filter(|(_, m)| !m.is_empty())
                    .collect();
                let quarters_active = w
                    .quarters_active
                    .into_iter()
                    .filter(|(_, set)| !set.is_empty())
                    .map(|(quarter, set)| (quarter.to_string(), set.len() as u64))
                    .collect();
                (
                    station,
                    StationStatistics {
                        months,
                        quarters_active,
                        teams: w.teams,
                    },
                )
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        Statistics {
            stations,
            volunteers,
        }
    }
}
