//! The statistics index as a node keeps it, and the `index` checker.
//!
//! A node never rebuilds its index per query: it loads the entries persisted
//! beside its documents at its first refresh after a start
//! (`StoredStats::open`), then before each query reads again only the
//! documents whose heads moved (`StoredStats::refresh`), writing their
//! entries unflushed, so a crash may lose the newest. The aggregates checker
//! counts over a fresh index and cannot see a defect of that incremental
//! path; here a sample of honest nodes keep the product's `StoredStats` the
//! way the node does — refreshed at a clerk's query every
//! [`INDEX_LOOK_EVERY_MS`], dropped in a crash, opened again from the
//! replica's storage after the restart — and it is compared with
//! `recompute_from_scratch` (a separate code path) over the documents the
//! same replica holds, a few times during the run and at the end.

use crate::checks::CheckResult;
use crate::time::{SimMs, DAY_MS, HOUR_MS};
use crate::topology::{NodeIndex, Topology};
use crate::world::World;
use civsync_protocol::replica::Replica;
use civsync_protocol::stats::{
    ActivityCounts, MonthStatistics, ScratchCount, Statistics, StoredStats,
};
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::Tier;
use std::collections::BTreeMap;

/// How often a watched node's clerk asks for figures. Often enough that a
/// document changes between two refreshes many times over a run (a busy
/// village writes several times a day), rarely enough that a county run
/// pays little for it: hourly looks were 30 % of a county run's CPU, most
/// of it reading the same rosters again.
pub const INDEX_LOOK_EVERY_MS: SimMs = 3 * HOUR_MS;
/// A comparison with a count from scratch clones every document the node
/// holds (most of a look's cost): every fourth simulated day per node
/// during the run, a few times a fortnight.
const COMPARE_EVERY_LOOKS: u64 = 4 * DAY_MS / INDEX_LOOK_EVERY_MS;
/// Villages watched at most, spread over the county: every office above a
/// village is watched, and a county of hundreds of villages would otherwise
/// pay for each.
const VILLAGES_WATCHED_MAX: usize = 12;
/// Townships watched at most, evenly spread: each holds its villages'
/// rosters and activities, so each watched township re-reads what its
/// villages write; a handful exercise the same code as twenty-five.
const TOWNSHIPS_WATCHED_MAX: usize = 6;

#[derive(Default)]
struct Watched {
    /// What the node holds in memory; `None` until its first query after a
    /// start (and after a crash).
    stored: Option<StoredStats>,
    looks: u64,
}

/// The watched nodes' indexes and what was seen of them during the run.
#[derive(Default)]
pub struct IndexWatch {
    nodes: BTreeMap<NodeIndex, Watched>,
    /// Indexes opened from persisted entries (first query after a start).
    opens: u64,
    /// Of those, opens that trusted at least one persisted entry.
    opens_reusing: u64,
    refreshes: u64,
    documents_reread: u64,
    /// Documents moved by their new changes alone (only the records those
    /// touched read).
    documents_from_changes: u64,
    compared_during_run: u64,
    /// The first difference found during the run (the final check reports
    /// it even if later refreshes hid it).
    first_problem: Option<String>,
}

impl IndexWatch {
    /// Every honest office above a township, and up to
    /// [`TOWNSHIPS_WATCHED_MAX`] honest townships and
    /// [`VILLAGES_WATCHED_MAX`] honest villages, each evenly spread.
    pub fn new(topology: &Topology, honest: impl Fn(NodeIndex) -> bool) -> IndexWatch {
        let mut nodes = BTreeMap::new();
        for (tier, watched_max) in [
            (Tier::Village, VILLAGES_WATCHED_MAX),
            (Tier::Township, TOWNSHIPS_WATCHED_MAX),
        ] {
            let honest_of_tier: Vec<NodeIndex> =
                topology.of_tier(tier).filter(|n| honest(*n)).collect();
            let stride = honest_of_tier.len().div_ceil(watched_max).max(1);
            for node in honest_of_tier.into_iter().step_by(stride) {
                nodes.insert(node, Watched::default());
            }
        }
        for node in 0..topology.nodes.len() {
            let tier = topology.nodes[node].tier;
            if tier != Tier::Village && tier != Tier::Township && honest(node) {
                nodes.insert(node, Watched::default());
            }
        }
        IndexWatch {
            nodes,
            ..IndexWatch::default()
        }
    }

    pub fn watched(&self) -> Vec<NodeIndex> {
        self.nodes.keys().copied().collect()
    }

    /// The node's memory is gone; its persisted entries stay in storage.
    pub fn crashed(&mut self, node: NodeIndex) {
        if let Some(watched) = self.nodes.get_mut(&node) {
            watched.stored = None;
        }
    }

    /// A query at `node`: bring its index up to date as the node does and,
    /// once a day, compare it with a count from scratch.
    pub fn look(&mut self, node: NodeIndex, replica: &mut Replica<MemoryStorage>, now: SimMs) {
        let Some(watched) = self.nodes.get_mut(&node) else {
            return;
        };
        match watched.stored.as_mut() {
            Some(stored) => {
                self.refreshes += 1;
                let report = stored.refresh(replica);
                self.documents_reread += report.reread as u64;
                self.documents_from_changes += report.from_changes as u64;
            }
            None => {
                let (stored, report) = StoredStats::open(replica);
                self.opens += 1;
                self.opens_reusing += u64::from(report.reused > 0);
                self.documents_reread += report.refresh.reread as u64;
                self.documents_from_changes += report.refresh.from_changes as u64;
                watched.stored = Some(stored);
            }
        }
        watched.looks += 1;
        if watched.looks % COMPARE_EVERY_LOOKS != 0 || self.first_problem.is_some() {
            return;
        }
        let stored = watched.stored.as_ref().expect("set above");
        self.compared_during_run += 1;
        if let Err(problem) = compare(stored, replica) {
            let station = replica.local().clone();
            self.first_problem = Some(format!("{station} at hour {}: {problem}", now / HOUR_MS));
        }
    }
}

/// The figures a clerk reads of a month, summed over its cells.
fn month_summary(month: Option<&MonthStatistics>) -> String {
    let Some(month) = month else {
        return "nothing".to_string();
    };
    let mut sum = ActivityCounts::default();
    for cell in &month.cells {
        sum.activities += cell.counts.activities;
        sum.participations += cell.counts.participations;
        sum.hours_centi += cell.counts.hours_centi;
        sum.beneficiaries += cell.counts.beneficiaries;
    }
    format!(
        "{} activities, {} participations, {:.2} hours, {} beneficiaries, {} registrations, {} volunteers active, {} orders placed",
        sum.activities,
        sum.participations,
        sum.hours_centi as f64 / 100.0,
        sum.beneficiaries,
        month.registrations,
        month.volunteers_active,
        month.orders.placed
    )
}

/// Rolled-up figures first (what offices read), then volunteers.
fn first_difference(kept: &Statistics, scratch: &Statistics) -> String {
    let stations = kept.stations.keys().chain(scratch.stations.keys());
    for station in stations {
        let (a, b) = (kept.stations.get(station), scratch.stations.get(station));
        if a == b {
            continue;
        }
        let (a, b) = (
            a.cloned().unwrap_or_default(),
            b.cloned().unwrap_or_default(),
        );
        for month in a.months.keys().chain(b.months.keys()) {
            let (x, y) = (a.months.get(month), b.months.get(month));
            if x != y {
                return format!(
                    "{station} {month}: the index kept says {}; a count from scratch {}",
                    month_summary(x),
                    month_summary(y)
                );
            }
        }
        return format!(
            "{station}: the index kept says teams {} and quarters {:?}, a count from scratch teams {} and quarters {:?}",
            a.teams, a.quarters_active, b.teams, b.quarters_active
        );
    }
    for volunteer in kept.volunteers.keys().chain(scratch.volunteers.keys()) {
        let (a, b) = (
            kept.volunteers.get(volunteer),
            scratch.volunteers.get(volunteer),
        );
        if a != b {
            return format!(
                "volunteer {volunteer:?}: the index kept says {a:?}, a count from scratch {b:?}"
            );
        }
    }
    "the index kept differs from a count from scratch".to_string()
}

/// The index kept against a count from scratch (`ScratchCount`, the
/// streaming form of `recompute_from_scratch`) over every document the
/// replica holds; the number of documents compared. Each document is
/// counted where the replica holds it, never cloned: a county's clones were
/// a tenth of the comparison's time and its largest allocations.
fn compare(stored: &StoredStats, replica: &mut Replica<MemoryStorage>) -> Result<usize, String> {
    let mut count = ScratchCount::default();
    let mut documents = 0usize;
    for id in replica.documents() {
        match replica.with_document(&id, |doc| count.add(&id, doc)) {
            Ok(Some(Ok(()))) => documents += 1,
            Ok(Some(Err(error))) => return Err(format!("no count from scratch: {error}")),
            Ok(None) => {}
            Err(error) => return Err(format!("{id} does not load: {error}")),
        }
    }
    let scratch = count.finish();
    let kept = stored.index().statistics();
    if kept != scratch {
        return Err(first_difference(&kept, &scratch));
    }
    Ok(documents)
}

/// After the heal every watched node that is up answers one more query and
/// its index must equal a count from scratch over what it holds; so must
/// every comparison made during the run.
pub fn index(world: &mut World) -> CheckResult {
    let mut watch = std::mem::take(&mut world.index_watch);
    let world_now = world.now();
    let mut problem = watch.first_problem.clone();
    let mut nodes = 0u64;
    let mut documents = 0usize;
    let mut down = 0u64;
    for node in watch.watched() {
        let Some(replica) = world.replica_mut(node) else {
            down += 1;
            continue;
        };
        watch.look(node, replica, world_now);
        let stored = watch.nodes[&node].stored.as_ref().expect("a look opens it");
        match compare(stored, replica) {
            Ok(count) => {
                nodes += 1;
                documents += count;
            }
            Err(error) => {
                problem.get_or_insert(format!("{}, at the end: {error}", replica.local()));
            }
        }
    }
    let summary = format!(
        "{} opens ({} reusing persisted entries), {} refreshes, {} documents read again whole, {} moved by their new changes alone, {} comparisons during the run",
        watch.opens,
        watch.opens_reusing,
        watch.refreshes,
        watch.documents_reread,
        watch.documents_from_changes,
        watch.compared_during_run
    );
    world.index_watch = watch;
    match problem {
        Some(problem) => CheckResult {
            passed: false,
            detail: format!("incremental statistics index: {problem}"),
        },
        None => CheckResult {
            passed: true,
            detail: format!(
                "the statistics index kept by {nodes} nodes ({down} down) equals a count from scratch over their {documents} documents; {summary}"
            ),
        },
    }
}
