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
//!
//! The count from scratch runs on a thread of its own ([`Comparer`]), over
//! a copy of the node's store taken at the look: it reads every document
//! the node holds, which on the simulation's one thread was a tenth of a
//! county run. Nothing the simulation does waits for it or reads it before
//! the final check, so the run's events and trace are the same whatever the
//! thread's speed, and its results are taken in the order the looks made
//! them.

use crate::checks::CheckResult;
use crate::time::{SimMs, DAY_MS, HOUR_MS};
use crate::topology::{NodeIndex, Topology};
use crate::world::World;
use civsync_protocol::replica::{Replica, ReplicaConfig};
use civsync_protocol::stats::{
    ActivityCounts, MonthStatistics, ScratchCount, Statistics, StoredStats,
};
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::{StationId, Tier};
use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

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
/// Comparisons waiting for the comparer thread at most: the run waits
/// rather than holding more copies of stores.
const COMPARISONS_QUEUED_MAX: usize = 16;
/// Documents the comparer's replica keeps loaded: it reads each once.
const COMPARER_DOCUMENTS_CACHED_MAX: usize = 8;

#[derive(Default)]
struct Watched {
    /// What the node holds in memory; `None` until its first query after a
    /// start (and after a crash).
    stored: Option<StoredStats>,
    looks: u64,
    /// Which of its looks compare: nodes take turns, so that the
    /// comparisons of a run come one after another, not all in one hour.
    compare_phase: u64,
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
    comparer: Comparer,
    /// The final look was taken (`start_final_comparisons`).
    final_looks_taken: bool,
    /// Watched nodes down at the final look.
    down_at_the_end: u64,
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
        .with_turns()
    }

    fn with_turns(mut self) -> IndexWatch {
        for (nth, watched) in self.nodes.values_mut().enumerate() {
            watched.compare_phase = nth as u64 % COMPARE_EVERY_LOOKS;
        }
        self
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
        if (watched.looks + watched.compare_phase) % COMPARE_EVERY_LOOKS != 0 {
            return;
        }
        let stored = watched.stored.as_ref().expect("set above");
        self.compared_during_run += 1;
        let when = format!("{} at hour {}", replica.local(), now / HOUR_MS);
        self.comparer
            .compare(Comparison::of(stored, replica, when, false));
    }
}

/// The index a node kept at a look, and a copy of its store to count from
/// scratch.
struct Comparison {
    /// Which node and when, for the report.
    when: String,
    /// Made by the final check (else during the run).
    at_the_end: bool,
    kept: Statistics,
    station: StationId,
    config: ReplicaConfig,
    storage: MemoryStorage,
}

impl Comparison {
    fn of(
        stored: &StoredStats,
        replica: &Replica<MemoryStorage>,
        when: String,
        at_the_end: bool,
    ) -> Comparison {
        Comparison {
            when,
            at_the_end,
            kept: stored.index().statistics(),
            station: replica.local().clone(),
            config: replica.config().clone(),
            storage: replica.storage().clone(),
        }
    }

    /// The count from scratch over the copy, against the index kept: the
    /// number of documents counted.
    fn run(self) -> Result<usize, String> {
        let config = ReplicaConfig {
            documents_cached_max: COMPARER_DOCUMENTS_CACHED_MAX,
            ..self.config
        };
        let mut replica = Replica::open(self.storage, self.station, 0, config)
            .map_err(|error| format!("a copy of the store does not open: {error}"))?;
        compare(&self.kept, &mut replica)
    }
}

/// What the comparer found, one outcome a comparison, in the order made.
type Outcomes = Vec<(String, bool, Result<usize, String>)>;

/// The thread that counts from scratch, started at the first comparison.
#[derive(Default)]
struct Comparer {
    jobs: Option<SyncSender<Comparison>>,
    thread: Option<JoinHandle<Outcomes>>,
}

impl Comparer {
    fn compare(&mut self, comparison: Comparison) {
        if self.jobs.is_none() {
            let (jobs, queue) = sync_channel::<Comparison>(COMPARISONS_QUEUED_MAX);
            let thread = std::thread::Builder::new()
                .name("index comparer".to_string())
                .spawn(move || {
                    queue
                        .into_iter()
                        .map(|c| (c.when.clone(), c.at_the_end, c.run()))
                        .collect()
                })
                .expect("a thread starts");
            self.jobs = Some(jobs);
            self.thread = Some(thread);
        }
        let jobs = self.jobs.as_ref().expect("set above");
        // Only a thread that panicked stops taking comparisons; `finish`
        // reports that.
        let _ = jobs.send(comparison);
    }

    /// Every outcome, once the thread has counted all it was given.
    fn finish(&mut self) -> Result<Outcomes, String> {
        drop(self.jobs.take());
        match self.thread.take() {
            None => Ok(Vec::new()),
            Some(thread) => thread
                .join()
                .map_err(|_| "the thread counting from scratch panicked".to_string()),
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
fn compare(kept: &Statistics, replica: &mut Replica<MemoryStorage>) -> Result<usize, String> {
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
    if *kept != scratch {
        return Err(first_difference(kept, &scratch));
    }
    Ok(documents)
}

/// The difference to report: the run's first (later refreshes may hide
/// it), else the end's first.
fn first_problem(outcomes: &Outcomes) -> Option<String> {
    let during_run = outcomes.iter().filter(|(_, at_the_end, _)| !at_the_end);
    let at_the_end = outcomes.iter().filter(|(_, at_the_end, _)| *at_the_end);
    during_run
        .chain(at_the_end)
        .find_map(|(when, at_the_end, outcome)| {
            let place = if *at_the_end { ", at the end" } else { "" };
            outcome
                .as_ref()
                .err()
                .map(|error| format!("{when}{place}: {error}"))
        })
}

/// After the heal every watched node that is up answers one more query,
/// whose count from scratch starts on the comparer's thread: called before
/// the other checkers, so that it counts while they run (no event comes
/// after the heal, and no checker writes).
pub fn start_final_comparisons(world: &mut World) {
    let mut watch = std::mem::take(&mut world.index_watch);
    let world_now = world.now();
    for node in watch.watched() {
        let Some(replica) = world.replica_mut(node) else {
            watch.down_at_the_end += 1;
            continue;
        };
        watch.look(node, replica, world_now);
        let stored = watch.nodes[&node].stored.as_ref().expect("a look opens it");
        let when = replica.local().to_string();
        watch
            .comparer
            .compare(Comparison::of(stored, replica, when, true));
    }
    watch.final_looks_taken = true;
    world.index_watch = watch;
}

/// Every watched node's index at the end must equal a count from scratch
/// over what it holds (see [`start_final_comparisons`]); so must every
/// comparison made during the run.
pub fn index(world: &mut World) -> CheckResult {
    // Never a pass over no final look, whoever calls the checker.
    if !world.index_watch.final_looks_taken {
        start_final_comparisons(world);
    }
    let mut watch = std::mem::take(&mut world.index_watch);
    let down = watch.down_at_the_end;
    let outcomes = watch.comparer.finish();
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
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(problem) => {
            return CheckResult {
                passed: false,
                detail: format!("incremental statistics index: {problem}"),
            }
        }
    };
    let problem = first_problem(&outcomes);
    let (nodes, documents) = outcomes
        .iter()
        .filter(|(_, at_the_end, _)| *at_the_end)
        .filter_map(|(_, _, outcome)| outcome.as_ref().ok())
        .fold((0u64, 0usize), |(n, d), count| (n + 1, d + count));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_seen_during_the_run_is_reported_before_the_ends() {
        let outcomes: Outcomes = vec![
            ("xh/t01 at hour 3".to_string(), false, Ok(40)),
            (
                "xh".to_string(),
                true,
                Err("the end's difference".to_string()),
            ),
            (
                "xh/t02 at hour 96".to_string(),
                false,
                Err("the run's".to_string()),
            ),
            (
                "xh/t03 at hour 99".to_string(),
                false,
                Err("a later one".to_string()),
            ),
        ];
        assert_eq!(
            first_problem(&outcomes).as_deref(),
            Some("xh/t02 at hour 96: the run's")
        );
        let at_the_end_only: Outcomes = outcomes
            .into_iter()
            .filter(|o| o.1 || o.2.is_ok())
            .collect();
        assert_eq!(
            first_problem(&at_the_end_only).as_deref(),
            Some("xh, at the end: the end's difference")
        );
        let all_equal: Outcomes = vec![("xh".to_string(), true, Ok(12))];
        assert_eq!(first_problem(&all_equal), None);
    }
}
