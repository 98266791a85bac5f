//! The statistics index: the last contribution of every document, and
//! running totals kept in step with them.
//!
//! Totals are kept twice: `own` (documents owned by the station) and `rolled`
//! (documents owned by the station or anywhere below it; every contribution
//! is added to its owner and to each ancestor, at most
//! `STATION_DEPTH_MAX` entries). Replacing a document's contribution
//! subtracts the old one and adds the new one, so an update costs
//! O(size of that document × depth) and a query costs O(months × cells),
//! neither depending on the size of the county.
//!
//! Distinct counts (active volunteers) are not additive, so `rolled` keeps,
//! per station and month (and quarter), a reference count per volunteer: how
//! many of the documents below it list that volunteer. A volunteer is active
//! while the count is above zero.
//!
//! Invariant: the totals always equal the sum of the held contributions (the
//! property test in `tests.rs` checks them against
//! [`super::recompute_from_scratch`]).

use super::contribution::{checked_less, ActivityCounts, Contribution, OrderCounts};
use super::contribution::{
    without_common_volunteers, CellCounts, RosterContribution, VolunteerService,
};
use super::figures::{CategoryCounts, Figures, FormCounts, Period, Quarter, StatsError};
use super::retired::RetiredStations;
use super::scratch::{MonthStatistics, StationStatistics, Statistics, VolunteerTally};
use crate::domain::model::{star_level, Category, Form, Hours, RecordId, VolunteerId};
use crate::faults::{self, Fault};
use crate::identity::document_id::{DocumentId, DocumentKind, Month};
use crate::identity::station::{Station, StationId, Tier};
use crate::replica::freshness::{Freshness, StationFreshness};
use automerge::ReadDoc;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Dense number of a volunteer (home station and number) inside the index
/// (cheaper than cloning identities into every distinct-count map).
type VolunteerKey = u32;

/// The index's hash maps: a restart folds every persisted contribution,
/// some 10^6 map operations for a county, and SipHash was a third of that
/// fold. foldhash is seeded per process, so keys a peer chose (station
/// paths, volunteer numbers) still cannot be aimed at one bucket; nothing
/// here depends on iteration order.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Clone, Default)]
struct MonthTotals {
    cells: BTreeMap<(Category, Form), ActivityCounts>,
    orders: OrderCounts,
    registrations: u64,
    /// Only kept in `rolled` totals.
    active: FastMap<VolunteerKey, u32>,
}

impl MonthTotals {
    fn is_empty(&self) -> bool {
        self.cells.is_empty()
            && self.orders.is_zero()
            && self.registrations == 0
            && self.active.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
struct StationTotals {
    months: BTreeMap<Month, MonthTotals>,
    /// Only kept in `rolled` totals.
    quarters_active: BTreeMap<Quarter, FastMap<VolunteerKey, u32>>,
    teams: u64,
    /// Contributions (other than `Nothing`) counted here.
    documents: u64,
}

#[derive(Debug, Clone, Default)]
struct VolunteerTotals {
    hours_centi: u64,
    service_records: u64,
    /// Live listings in the home station's roster (0 or 1; more only while
    /// a roster's concurrent creations are being read as one).
    registered: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    Add,
    Remove,
}

/// A volunteer's accumulated service and star level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolunteerStanding {
    pub number: RecordId,
    /// With the number, who the volunteer is.
    pub home_station: StationId,
    pub hours_centi: u64,
    pub service_records: u64,
    /// 0–5 stars at 100 / 300 / 600 / 1,000 / 1,500 hours.
    pub star_level: u8,
}

/// One line of the per-station table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationRow {
    pub station: StationId,
    /// From the registry, when one was given.
    pub name: Option<String>,
    pub tier: Option<Tier>,
    /// Figures of the station's own documents.
    pub own: Figures,
    /// Figures of the station and everything below it.
    pub subtree: Figures,
    /// How fresh this node's copy of the station's own data is ("as of").
    pub freshness: StationFreshness,
}

/// Share of villages and townships in a subtree with at least one activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub villages: u64,
    pub villages_active: u64,
    pub townships: u64,
    pub townships_active: u64,
    /// True when tiers came from a registry; false when villages were taken
    /// to be the leaf stations seen, and townships their parents.
    pub from_registry: bool,
}

impl Coverage {
    pub fn village_share(&self) -> Option<f64> {
        (self.villages > 0).then(|| self.villages_active as f64 / self.villages as f64)
    }
    pub fn township_share(&self) -> Option<f64> {
        (self.townships > 0).then(|| self.townships_active as f64 / self.townships as f64)
    }
}

/// What the node persists so a restart need not re-read every document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub contributions: Vec<(DocumentId, Contribution)>,
    pub freshness: Freshness,
}

#[derive(Debug, Clone, Default)]
pub struct StatsIndex {
    contributions: BTreeMap<DocumentId, Contribution>,
    own: FastMap<StationId, StationTotals>,
    rolled: FastMap<StationId, StationTotals>,
    /// Shares each identity with `volunteers`: one allocation a volunteer,
    /// not a copy in each.
    volunteer_keys: FastMap<Arc<VolunteerId>, VolunteerKey>,
    volunteers: Vec<(Arc<VolunteerId>, VolunteerTotals)>,
    unreadable: BTreeMap<DocumentId, String>,
    freshness: Freshness,
    /// Retired stations, as the registry said at the last query (set by
    /// the caller before asking for coverage; never persisted).
    retired: RetiredStations,
}

/// The station and its ancestors, top down.
fn chain(station: &StationId) -> Vec<StationId> {
    let mut chain = station.ancestors();
    chain.push(station.clone());
    chain
}

fn refcount(map: &mut FastMap<VolunteerKey, u32>, key: VolunteerKey, sign: Sign) {
    match sign {
        Sign::Add => *map.entry(key).or_default() += 1,
        Sign::Remove => {
            let count = map.get_mut(&key);
            debug_assert!(count.is_some(), "removing a volunteer never added");
            if let Some(count) = count {
                *count -= 1;
                if *count == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

impl StatsIndex {
    pub fn new() -> StatsIndex {
        StatsIndex::default()
    }

    /// Which stations are retired, so that [`StatsIndex::coverage`] does
    /// not count them as not reporting in periods after their retirement.
    /// Figures are unaffected.
    pub fn set_retired(&mut self, retired: RetiredStations) {
        self.retired = retired;
    }

    /// Build the index from documents (a rebuild). Unreadable documents are
    /// listed in [`StatsIndex::unreadable`] and contribute nothing.
    pub fn from_documents<'a, D: ReadDoc + 'a>(
        documents: impl IntoIterator<Item = (&'a DocumentId, &'a D)>,
    ) -> StatsIndex {
        let mut index = StatsIndex::new();
        for (id, doc) in documents {
            // An error is recorded in `unreadable`; the rebuild goes on.
            let _ = index.apply_document(id, doc);
        }
        index
    }

    /// Rebuild the totals from persisted contributions (no document read).
    pub fn restore(snapshot: StatsSnapshot) -> Result<StatsIndex, StatsError> {
        let mut index = StatsIndex {
            freshness: snapshot.freshness,
            ..StatsIndex::default()
        };
        for (id, contribution) in snapshot.contributions {
            index.apply(&id, contribution)?;
        }
        Ok(index)
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            contributions: self
                .contributions
                .iter()
                .map(|(id, c)| (id.clone(), c.clone()))
                .collect(),
            freshness: self.freshness.clone(),
        }
    }

    /// Recompute one document's contribution and apply it. If the document
    /// cannot be read, its previous contribution stays (figures go stale,
    /// never silently drop) and the document is listed as unreadable.
    pub fn apply_document<D: ReadDoc>(
        &mut self,
        id: &DocumentId,
        doc: &D,
    ) -> Result<(), StatsError> {
        match Contribution::of(id, doc) {
            Ok(contribution) => self.apply(id, contribution),
            Err(error) => {
                let reason = error.to_string();
                self.unreadable.insert(id.clone(), reason.clone());
                Err(StatsError::Unreadable {
                    document: id.clone(),
                    reason,
                })
            }
        }
    }

    /// List `id` as unreadable: its previous contribution stays.
    pub fn mark_unreadable(&mut self, id: &DocumentId, reason: String) {
        self.unreadable.insert(id.clone(), reason);
    }

    /// Replace the contribution of document `id`.
    pub fn apply(&mut self, id: &DocumentId, contribution: Contribution) -> Result<(), StatsError> {
        check_matches(id, &contribution)?;
        match self.contributions.remove(id) {
            Some(old) => {
                // Volunteers listed alike in both cancel out: a roster of 150
                // moved by one registration folds one volunteer, not 300.
                // The new one first: the station keeps a document throughout,
                // so the removal does not drop totals the common volunteers
                // still hold.
                let (old_trimmed, new_trimmed) = without_common_volunteers(&old, &contribution);
                self.fold(new_trimmed.as_ref().unwrap_or(&contribution), Sign::Add);
                if !faults::armed(Fault::KeepReplacedContribution) {
                    self.fold(old_trimmed.as_ref().unwrap_or(&old), Sign::Remove);
                }
            }
            None => self.fold(&contribution, Sign::Add),
        }
        self.contributions.insert(id.clone(), contribution);
        self.unreadable.remove(id);
        Ok(())
    }

    /// Forget a document (evicted from this node's scope).
    pub fn remove(&mut self, id: &DocumentId) {
        if let Some(old) = self.contributions.remove(id) {
            self.fold(&old, Sign::Remove);
        }
        self.unreadable.remove(id);
    }

    pub fn contribution(&self, id: &DocumentId) -> Option<&Contribution> {
        self.contributions.get(id)
    }

    pub fn documents(&self) -> usize {
        self.contributions.len()
    }

    /// Documents whose latest version could not be read, with the reason.
    pub fn unreadable(&self) -> &BTreeMap<DocumentId, String> {
        &self.unreadable
    }

    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    pub fn freshness_mut(&mut self) -> &mut Freshness {
        &mut self.freshness
    }

    fn volunteer_key(&mut self, volunteer: &VolunteerId) -> VolunteerKey {
        match self.volunteer_keys.get(volunteer) {
            Some(key) => *key,
            None => self.new_volunteer_key(volunteer.clone()),
        }
    }

    /// As `volunteer_key`, for an identity the caller built only to ask.
    fn volunteer_key_owned(&mut self, volunteer: VolunteerId) -> VolunteerKey {
        match self.volunteer_keys.get(&volunteer) {
            Some(key) => *key,
            None => self.new_volunteer_key(volunteer),
        }
    }

    fn new_volunteer_key(&mut self, volunteer: VolunteerId) -> VolunteerKey {
        let key =
            VolunteerKey::try_from(self.volunteers.len()).expect("fewer than 2^32 volunteers");
        let volunteer = Arc::new(volunteer);
        self.volunteer_keys.insert(volunteer.clone(), key);
        self.volunteers
            .push((volunteer, VolunteerTotals::default()));
        key
    }

    fn fold(&mut self, contribution: &Contribution, sign: Sign) {
        let Some(station) = contribution.station().cloned() else {
            return;
        };
        let chain = chain(&station);
        let count = |entry: &mut StationTotals| match sign {
            Sign::Add => entry.documents += 1,
            Sign::Remove => entry.documents = checked_less(entry.documents, 1),
        };
        count(self.own.entry(station.clone()).or_default());
        for s in &chain {
            count(self.rolled.entry(s.clone()).or_default());
        }
        match contribution {
            Contribution::Activities(a) => {
                let keys: Vec<VolunteerKey> = a
                    .volunteers
                    .iter()
                    .map(|v| self.volunteer_key(&v.volunteer))
                    .collect();
                for (service, key) in a.volunteers.iter().zip(&keys) {
                    let totals = &mut self.volunteers[*key as usize].1;
                    match sign {
                        Sign::Add => {
                            totals.hours_centi += service.hours_centi;
                            totals.service_records += service.service_records;
                        }
                        Sign::Remove => {
                            totals.hours_centi =
                                checked_less(totals.hours_centi, service.hours_centi);
                            totals.service_records =
                                checked_less(totals.service_records, service.service_records);
                        }
                    }
                }
                let quarter = Quarter::of(a.month);
                let own = self.own.get_mut(&station).expect("entry made above");
                fold_cells(own.months.entry(a.month).or_default(), &a.cells, sign);
                for s in &chain {
                    let rolled = self.rolled.get_mut(s).expect("entry made above");
                    let month = rolled.months.entry(a.month).or_default();
                    fold_cells(month, &a.cells, sign);
                    for key in &keys {
                        refcount(&mut month.active, *key, sign);
                    }
                    let quarter_active = rolled.quarters_active.entry(quarter).or_default();
                    for key in &keys {
                        refcount(quarter_active, *key, sign);
                    }
                    if quarter_active.is_empty() {
                        rolled.quarters_active.remove(&quarter);
                    }
                }
            }
            Contribution::Roster(r) => {
                for entry in &r.volunteers {
                    // The roster holding a volunteer is their home: the
                    // station a service record's bare number is looked up in.
                    let key = self.volunteer_key_owned(VolunteerId::new(
                        r.station.clone(),
                        entry.number.clone(),
                    ));
                    let registered = &mut self.volunteers[key as usize].1.registered;
                    match sign {
                        Sign::Add => *registered += 1,
                        Sign::Remove => {
                            debug_assert!(*registered > 0, "removing a listing never added");
                            *registered = registered.saturating_sub(1);
                        }
                    }
                }
                fold_roster(
                    self.own.get_mut(&station).expect("entry made above"),
                    r,
                    sign,
                );
                for s in &chain {
                    fold_roster(self.rolled.get_mut(s).expect("entry made above"), r, sign);
                }
            }
            Contribution::Orders(o) => {
                let own = self.own.get_mut(&station).expect("entry made above");
                fold_orders(own.months.entry(o.month).or_default(), &o.counts, sign);
                for s in &chain {
                    let rolled = self.rolled.get_mut(s).expect("entry made above");
                    fold_orders(rolled.months.entry(o.month).or_default(), &o.counts, sign);
                }
            }
            Contribution::Nothing => unreachable!("returned above: no station"),
        }
        // Drop what the removal emptied, so totals stay small and
        // `stations()` lists only stations that still hold something.
        if sign == Sign::Remove {
            for (totals, stations) in [
                (&mut self.own, std::slice::from_ref(&station)),
                (&mut self.rolled, &chain[..]),
            ] {
                for s in stations {
                    if let Some(entry) = totals.get_mut(s) {
                        entry.months.retain(|_, month| !month.is_empty());
                        if entry.documents == 0 {
                            debug_assert!(
                                entry.months.is_empty()
                                    && entry.teams == 0
                                    && entry.quarters_active.is_empty()
                            );
                            totals.remove(s);
                        }
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ queries

    /// Figures of `station` and everything below it for a month or quarter.
    pub fn figures(&self, station: &StationId, period: Period) -> Figures {
        let totals = self.rolled.get(station);
        let active = match (totals, period) {
            (None, _) => 0,
            (Some(t), Period::Month(month)) => {
                t.months.get(&month).map_or(0, |m| m.active.len() as u64)
            }
            (Some(t), Period::Quarter(quarter)) => t
                .quarters_active
                .get(&quarter)
                .map_or(0, |q| q.len() as u64),
        };
        figures_from(totals, period, active)
    }

    /// The months in which `station` or a station below it has anything
    /// counted (activities, orders or registrations), in order: the months
    /// a county publishes statistics documents for.
    pub fn months_of(&self, station: &StationId) -> Vec<Month> {
        self.rolled
            .get(station)
            .map(|totals| totals.months.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Convenience for [`StatsIndex::figures`] over one month.
    pub fn station_month(&self, station: &StationId, month: Month) -> Figures {
        self.figures(station, Period::Month(month))
    }

    /// Figures of the documents `station` owns itself.
    pub fn own_figures(&self, station: &StationId, period: Period) -> Figures {
        let Some(own) = self.own.get(station) else {
            return figures_from(None, period, 0);
        };
        // A station's own activities documents are one per month, each
        // listing its volunteers once, sorted: one month's count is a length,
        // and only a quarter with several months needs a union. (The
        // per-station table asks this of every station: a set per station
        // was most of its cost.)
        let lists: Vec<&[VolunteerService]> = period
            .months()
            .into_iter()
            .filter(|month| own.months.contains_key(month))
            .filter_map(|month| {
                match self
                    .contributions
                    .get(&DocumentId::activities(station, month))
                {
                    Some(Contribution::Activities(a)) if !a.volunteers.is_empty() => {
                        Some(a.volunteers.as_slice())
                    }
                    _ => None,
                }
            })
            .collect();
        let active = match lists.as_slice() {
            [] => 0,
            [only] => only.len(),
            several => several
                .iter()
                .flat_map(|list| list.iter().map(|v| &v.volunteer))
                .collect::<BTreeSet<&VolunteerId>>()
                .len(),
        };
        figures_from(Some(own), period, active as u64)
    }

    /// Stations in the subtree of `root` that hold or roll up anything here,
    /// plus every registry station in it, in path order.
    pub fn stations(&self, root: &StationId, registry: &[Station]) -> Vec<StationId> {
        let mut out: BTreeSet<StationId> = self
            .rolled
            .keys()
            .filter(|s| root.is_ancestor_or_self_of(s))
            .cloned()
            .collect();
        out.extend(
            registry
                .iter()
                .map(|s| &s.id)
                .filter(|s| root.is_ancestor_or_self_of(s))
                .cloned(),
        );
        out.into_iter().collect()
    }

    /// Every station of the subtree with its own and rolled-up figures.
    pub fn station_table(
        &self,
        root: &StationId,
        period: Period,
        registry: &[Station],
    ) -> Vec<StationRow> {
        let by_id: HashMap<&StationId, &Station> = registry.iter().map(|s| (&s.id, s)).collect();
        self.stations(root, registry)
            .into_iter()
            .map(|station| {
                let known = by_id.get(&station);
                StationRow {
                    name: known.map(|s| s.name.clone()),
                    tier: known.map(|s| s.tier),
                    own: self.own_figures(&station, period),
                    subtree: self.figures(&station, period),
                    freshness: self.freshness.of(&station),
                    station,
                }
            })
            .collect()
    }

    /// Share of villages (and townships) under `root` with at least one
    /// activity in the period. Tiers come from `registry`; without one,
    /// villages are the leaf stations seen and townships their parents.
    pub fn coverage(&self, root: &StationId, period: Period, registry: &[Station]) -> Coverage {
        let active = |station: &StationId| {
            let totals = self.rolled.get(station);
            period.months().iter().any(|m| {
                totals
                    .and_then(|t| t.months.get(m))
                    .is_some_and(|m| m.cells.values().any(|c| c.activities > 0))
            })
        };
        let in_tree: Vec<&Station> = registry
            .iter()
            .filter(|s| root.is_ancestor_or_self_of(&s.id))
            .collect();
        // A registry that names no village here (a node that knows only
        // itself) says nothing about villages: infer them instead.
        let registry_names_villages = in_tree.iter().any(|s| s.tier == Tier::Village);
        let (villages, townships, from_registry): (Vec<StationId>, Vec<StationId>, bool) =
            if !registry_names_villages {
                let seen: BTreeSet<&str> = self
                    .own
                    .keys()
                    .filter(|s| root.is_ancestor_or_self_of(s))
                    .map(|s| s.as_str())
                    .collect();
                // Descendants of `s` are exactly the paths in [`s/`, `s0`)
                // ('0' follows '/'): one range probe per station, not a
                // comparison with every other station.
                let has_descendant = |s: &str| {
                    let (low, high) = (format!("{s}/"), format!("{s}0"));
                    seen.range::<str, _>((
                        std::ops::Bound::Included(low.as_str()),
                        std::ops::Bound::Excluded(high.as_str()),
                    ))
                    .next()
                    .is_some()
                };
                let leaves: Vec<StationId> = self
                    .own
                    .keys()
                    .filter(|s| root.is_ancestor_or_self_of(s) && !has_descendant(s.as_str()))
                    .cloned()
                    .collect();
                let parents: BTreeSet<StationId> = leaves
                    .iter()
                    .filter_map(|leaf| leaf.parent())
                    .filter(|parent| root.is_ancestor_or_self_of(parent))
                    .collect();
                (leaves, parents.into_iter().collect(), false)
            } else {
                let of_tier = |tier: Tier| {
                    in_tree
                        .iter()
                        .filter(|s| s.tier == tier)
                        .map(|s| s.id.clone())
                        .collect::<Vec<_>>()
                };
                (of_tier(Tier::Village), of_tier(Tier::Township), true)
            };
        // A station retired before the period is not expected to report;
        // one that reported anyway (an offline node that had not heard)
        // is counted, active, never dropped.
        let expected =
            |station: &&StationId| self.retired.expected_in(station, period) || active(station);
        let villages: Vec<&StationId> = villages.iter().filter(expected).collect();
        let townships: Vec<&StationId> = townships.iter().filter(expected).collect();
        Coverage {
            villages: villages.len() as u64,
            villages_active: villages.iter().filter(|v| active(v)).count() as u64,
            townships: townships.len() as u64,
            townships_active: townships.iter().filter(|t| active(t)).count() as u64,
            from_registry,
        }
    }

    /// One volunteer's accumulated hours (over every document held here).
    pub fn volunteer(&self, volunteer: &VolunteerId) -> Option<VolunteerStanding> {
        let key = self.volunteer_keys.get(volunteer)?;
        Some(standing(&self.volunteers[*key as usize]))
    }

    /// Every person known here under `number` whose home station lies
    /// under `root` (listed in a roster or having served), by home station:
    /// what a bare number may mean, since numbers are unique only per
    /// roster. A lookup by number: costs O(volunteers known).
    pub fn volunteers_numbered(&self, number: &RecordId, root: &StationId) -> Vec<VolunteerId> {
        let mut out: Vec<VolunteerId> = self
            .volunteers
            .iter()
            .filter(|(id, totals)| {
                id.number == *number
                    && root.is_ancestor_or_self_of(&id.home_station)
                    && (totals.registered > 0 || totals.service_records > 0)
            })
            .map(|(id, _)| VolunteerId::clone(id))
            .collect();
        out.sort();
        out
    }

    /// The activities documents in which `volunteer` has at least one live
    /// service record, in document order: what a certificate must read,
    /// instead of every activities document held.
    pub fn documents_serving(&self, volunteer: &VolunteerId) -> Vec<DocumentId> {
        self.contributions
            .iter()
            .filter(|(_, contribution)| match contribution {
                Contribution::Activities(activities) => activities
                    .volunteers
                    .binary_search_by(|service| service.volunteer.cmp(volunteer))
                    .is_ok(),
                _ => false,
            })
            .map(|(document, _)| document.clone())
            .collect()
    }

    /// One volunteer's hundredths of service hours per month over the
    /// activities documents held here, months in order: what earned points
    /// are credited from. Costs O(documents held).
    pub fn volunteer_hours_by_month(&self, volunteer: &VolunteerId) -> Vec<(Month, u64)> {
        let mut out: BTreeMap<Month, u64> = BTreeMap::new();
        for (document, contribution) in &self.contributions {
            let (Some(month), Contribution::Activities(activities)) =
                (document.month(), contribution)
            else {
                continue;
            };
            if let Ok(found) = activities
                .volunteers
                .binary_search_by(|service| service.volunteer.cmp(volunteer))
            {
                let hours = out.entry(month).or_insert(0);
                *hours = hours.saturating_add(activities.volunteers[found].hours_centi);
            }
        }
        out.into_iter().collect()
    }

    /// Volunteers whose home station lies under `root`, most hours first,
    /// at most `limit`. A listing: costs O(volunteers known).
    pub fn volunteers_in(&self, root: &StationId, limit: usize) -> Vec<VolunteerStanding> {
        let mut out: Vec<VolunteerStanding> = self
            .volunteers
            .iter()
            .filter(|(id, t)| t.registered > 0 && root.is_ancestor_or_self_of(&id.home_station))
            .map(standing)
            .collect();
        out.sort_by(|a, b| {
            b.hours_centi
                .cmp(&a.hours_centi)
                .then_with(|| a.number.cmp(&b.number))
                .then_with(|| a.home_station.cmp(&b.home_station))
        });
        out.truncate(limit);
        out
    }

    /// Number of volunteers homed under `root` at each star level 0–5.
    pub fn star_levels(&self, root: &StationId) -> [u64; 6] {
        let mut levels = [0u64; 6];
        for (id, totals) in &self.volunteers {
            if totals.registered > 0 && root.is_ancestor_or_self_of(&id.home_station) {
                levels[usize::from(star_level(hours(totals.hours_centi)))] += 1;
            }
        }
        levels
    }

    /// Everything the index knows, in the canonical form that
    /// [`super::recompute_from_scratch`] also produces.
    pub fn statistics(&self) -> Statistics {
        let mut stations = BTreeMap::new();
        for (station, totals) in &self.rolled {
            let months: BTreeMap<String, MonthStatistics> = totals
                .months
                .iter()
                .filter(|(_, m)| !m.is_empty())
                .map(|(month, m)| {
                    (
                        month.to_string(),
                        MonthStatistics {
                            cells: m
                                .cells
                                .iter()
                                .map(|((category, form), counts)| CellCounts {
                                    category: *category,
                                    form: *form,
                                    counts: *counts,
                                })
                                .collect(),
                            orders: m.orders,
                            registrations: m.registrations,
                            volunteers_active: m.active.len() as u64,
                        },
                    )
                })
                .collect();
            let quarters_active: BTreeMap<String, u64> = totals
                .quarters_active
                .iter()
                .map(|(q, set)| (q.to_string(), set.len() as u64))
                .collect();
            let entry = StationStatistics {
                months,
                quarters_active,
                teams: totals.teams,
            };
            if !entry.is_empty() {
                stations.insert(station.clone(), entry);
            }
        }
        let volunteers = self
            .volunteers
            .iter()
            .filter(|(_, t)| t.service_records > 0)
            .map(|(id, t)| {
                (
                    VolunteerId::clone(id),
                    VolunteerTally {
                        hours_centi: t.hours_centi,
                        service_records: t.service_records,
                    },
                )
            })
            .collect();
        Statistics {
            stations,
            volunteers,
        }
    }
}

fn hours(centi: u64) -> Hours {
    Hours {
        centi: u32::try_from(centi).unwrap_or(u32::MAX),
    }
}

fn standing((id, totals): &(Arc<VolunteerId>, VolunteerTotals)) -> VolunteerStanding {
    VolunteerStanding {
        number: id.number.clone(),
        home_station: id.home_station.clone(),
        hours_centi: totals.hours_centi,
        service_records: totals.service_records,
        star_level: star_level(hours(totals.hours_centi)),
    }
}

fn check_matches(id: &DocumentId, contribution: &Contribution) -> Result<(), StatsError> {
    let fits = match (&id.kind, contribution) {
        (DocumentKind::Activities(month), Contribution::Activities(a)) => {
            a.station == id.owner && a.month == *month
        }
        (DocumentKind::Roster, Contribution::Roster(r)) => r.station == id.owner,
        (DocumentKind::Orders(month), Contribution::Orders(o)) => {
            o.station == id.owner && o.month == *month
        }
        (
            DocumentKind::Approval(_) | DocumentKind::Statistics(_) | DocumentKind::Reference(_),
            Contribution::Nothing,
        ) => true,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        let found = match contribution {
            Contribution::Activities(a) => format!("activities:{}:{}", a.station, a.month),
            Contribution::Roster(r) => format!("roster:{}", r.station),
            Contribution::Orders(o) => format!("orders:{}:{}", o.station, o.month),
            Contribution::Nothing => "a document without figures".to_string(),
        };
        Err(StatsError::Mismatch {
            document: id.clone(),
            found,
        })
    }
}

fn fold_cells(month: &mut MonthTotals, cells: &[CellCounts], sign: Sign) {
    for cell in cells {
        let key = (cell.category, cell.form);
        match sign {
            Sign::Add => month.cells.entry(key).or_default().add(&cell.counts),
            Sign::Remove => {
                let counts = month.cells.get_mut(&key);
                debug_assert!(counts.is_some(), "removing a cell never added");
                if let Some(counts) = counts {
                    counts.subtract(&cell.counts);
                    if counts.is_zero() {
                        month.cells.remove(&key);
                    }
                }
            }
        }
    }
}

fn fold_orders(month: &mut MonthTotals, counts: &OrderCounts, sign: Sign) {
    match sign {
        Sign::Add => month.orders.add(counts),
        Sign::Remove => month.orders.subtract(counts),
    }
}

fn fold_roster(totals: &mut StationTotals, roster: &RosterContribution, sign: Sign) {
    for registration in &roster.registrations {
        let month = totals.months.entry(registration.month).or_default();
        match sign {
            Sign::Add => month.registrations += registration.volunteers,
            Sign::Remove => {
                month.registrations = checked_less(month.registrations, registration.volunteers)
            }
        }
    }
    match sign {
        Sign::Add => totals.teams += roster.teams,
        Sign::Remove => totals.teams = checked_less(totals.teams, roster.teams),
    }
}

fn figures_from(totals: Option<&StationTotals>, period: Period, volunteers_active: u64) -> Figures {
    let mut figures = Figures {
        volunteers_active,
        ..Figures::default()
    };
    let Some(totals) = totals else { return figures };
    figures.teams = totals.teams;
    let mut by_category: BTreeMap<Category, ActivityCounts> = BTreeMap::new();
    let mut by_form: BTreeMap<Form, ActivityCounts> = BTreeMap::new();
    let months = period.months();
    for month in &months {
        let Some(m) = totals.months.get(month) else {
            continue;
        };
        for ((category, form), counts) in &m.cells {
            figures.counts.add(counts);
            by_category.entry(*category).or_default().add(counts);
            by_form.entry(*form).or_default().add(counts);
        }
        figures.orders.add(&m.orders);
        figures.volunteers_new += m.registrations;
    }
    let last = period.last_month();
    figures.volunteers_registered = totals
        .months
        .range(..=last)
        .map(|(_, m)| m.registrations)
        .sum();
    figures.by_category = by_category
        .into_iter()
        .map(|(category, counts)| CategoryCounts { category, counts })
        .collect();
    figures.by_form = by_form
        .into_iter()
        .map(|(form, counts)| FormCounts { form, counts })
        .collect();
    figures
}
