//! The checkers, run after the final heal and quiet period. Each returns
//! pass/fail with a detail a person can act on; any failure fails the run.
//!
//! - convergence: every honest node that may hold a document holds it, with
//!   identical heads, and equal heads render identical state;
//! - liveness: that happened within the bound after the last fault ended;
//! - durability: every acknowledged write is in its county's copy;
//! - aggregates: the county's statistics equal those recomputed from the
//!   ground truth;
//! - scope: no node holds a document outside its scope;
//! - statistics (prefecture runs): the figures an office above the county
//!   reads from the statistics documents equal, per county, month and
//!   station, the county's own statistics over the documents it holds;
//! - authority: every change in every document was made by a station that
//!   may write it, under the actor that station's office writes with (a
//!   change under any other actor of the station was forged by someone
//!   else);
//! - deletions: no deleted record comes back — every activity a clerk's
//!   acknowledged delete removed reads deleted at every honest node holding
//!   its document (whatever corrections were submitted after, from stale
//!   forms, before or after the delete arrived), and the truth agrees;
//! - orders and balances (`workflow_checks.rs`): every order agreed at
//!   every holder with no acknowledged step lost or held twice; no
//!   allotment below zero where it is looked at, and earned − spent =
//!   outstanding at each county;
//! - run: nothing went wrong in the machinery itself (a replica that did not
//!   reopen, an honest peer's message refused).
//!
//! Misbehaving nodes are the adversary: their own stores are not checked,
//! but everything honest nodes hold is.

use crate::canonical;
use crate::topology::NodeIndex;
use crate::truth::{MonthFigures, Statistics};
use crate::world::World;
use automerge::{ActorId, AutoCommit, ChangeHash};
use civsync_protocol::domain::model::RecordId;
use civsync_protocol::identity::actor::station_of;
use civsync_protocol::layout;
use civsync_protocol::stats::{held_statistics, station_counts, Period, StatsIndex};
use civsync_protocol::{DocumentId, DocumentKind, Month, StationId, Tier};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Details list at most this many examples.
pub(crate) const EXAMPLES_MAX: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub passed: bool,
    pub detail: String,
}

impl CheckResult {
    pub(crate) fn pass(detail: impl Into<String>) -> CheckResult {
        CheckResult {
            passed: true,
            detail: detail.into(),
        }
    }
    pub(crate) fn fail(detail: impl Into<String>) -> CheckResult {
        CheckResult {
            passed: false,
            detail: detail.into(),
        }
    }
}

/// Every document any honest node holds.
fn universe(world: &World) -> BTreeSet<DocumentId> {
    let mut out = BTreeSet::new();
    for node in 0..world.node_count() {
        if let (true, Some(replica)) = (world.is_honest(node), world.replica(node)) {
            out.extend(replica.documents());
        }
    }
    out
}

/// Does this document name people (volunteers, who served, who asked)?
/// Written out here rather than asked of the product, so the checker does
/// not share a bug with the rule it checks.
fn names_people(document: &DocumentId) -> bool {
    matches!(
        document.kind,
        DocumentKind::Roster | DocumentKind::Activities(_) | DocumentKind::Orders(_)
    )
}

/// An office above the county: it receives statistics, never people.
fn above_county(tier: Tier) -> bool {
    matches!(tier, Tier::Prefecture | Tier::Province)
}

/// The honest nodes that should hold `document`: its owner, the owner's
/// ancestors (for personal documents only up to the county), and for
/// reference data the owner's whole subtree.
pub fn expected_holders(world: &World, document: &DocumentId) -> Vec<NodeIndex> {
    let topology = &world.topology;
    let Some(&owner) = topology.by_station.get(&document.owner) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = Some(owner);
    while let Some(node) = at {
        if node != owner && names_people(document) && above_county(topology.nodes[node].tier) {
            break;
        }
        out.push(node);
        at = topology.nodes[node].parent;
    }
    if document.kind.flows_down() {
        let mut stack = topology.nodes[owner].children.clone();
        while let Some(node) = stack.pop() {
            out.push(node);
            stack.extend(topology.nodes[node].children.iter().copied());
        }
    }
    out.retain(|n| world.is_honest(*n));
    out.sort();
    out
}

/// Cheap convergence test from the replicas' indexes (no loading).
pub fn heads_agree(world: &World) -> Result<usize, String> {
    let documents = universe(world);
    for document in &documents {
        let mut reference: Option<(NodeIndex, &[ChangeHash])> = None;
        for node in expected_holders(world, document) {
            let Some(replica) = world.replica(node) else {
                return Err(format!("{} is down", world.topology.nodes[node].station));
            };
            let Some(heads) = replica.heads(document) else {
                return Err(format!(
                    "{} does not hold {document}",
                    world.topology.nodes[node].station
                ));
            };
            match reference {
                None => reference = Some((node, heads)),
                Some((first, expected)) if expected != heads => {
                    return Err(format!(
                        "{document}: {} and {} hold different heads",
                        world.topology.nodes[first].station, world.topology.nodes[node].station
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(documents.len())
}

pub fn run_all(world: &mut World) -> BTreeMap<&'static str, CheckResult> {
    type Checker = fn(&mut World) -> CheckResult;
    let checkers: [(&'static str, Checker); 14] = [
        ("convergence", convergence),
        ("liveness", |w| liveness(w)),
        ("durability", durability),
        ("aggregates", aggregates),
        ("scope", |w| scope(w)),
        ("statistics", statistics),
        ("authority", authority),
        ("deletions", deletions),
        ("catalog", crate::catalog_work::check),
        ("orders", crate::workflow_checks::orders),
        ("balances", crate::workflow_checks::balances),
        ("approved-figures", crate::approval_checks::approved_figures),
        ("index", crate::index_checks::index),
        ("run", |w| run_problems(w)),
    ];
    let mut out = BTreeMap::new();
    crate::index_checks::start_final_comparisons(world);
    for (name, checker) in checkers {
        // Wall time is measured for the report only.
        let started = std::time::Instant::now();
        out.insert(name, checker(world));
        world.profile.insert(name, started.elapsed().as_secs_f64());
    }
    out
}

/// Copies rendered at once by the convergence checker, at least: every
/// copy of one document goes in the same batch, split over two threads.
const RENDER_BATCH_COPIES: usize = 256;

fn convergence(world: &mut World) -> CheckResult {
    let documents = match heads_agree(world) {
        Ok(count) => count,
        Err(problem) => return CheckResult::fail(problem),
    };
    let mut compared = 0;
    let mut batch: Vec<(DocumentId, NodeIndex, AutoCommit)> = Vec::new();
    let universe = universe(world);
    let last = universe.len().saturating_sub(1);
    for (nth, document) in universe.into_iter().enumerate() {
        for node in expected_holders(world, &document) {
            let Some(replica) = world.replica_mut(node) else {
                continue;
            };
            match replica.with_document(&document, |doc| doc.clone()) {
                Ok(Some(copy)) => batch.push((document.clone(), node, copy)),
                other => {
                    let other = other.map(|copy| copy.map(|_| "held"));
                    return CheckResult::fail(format!("{document} does not load: {other:?}"));
                }
            }
        }
        if batch.len() < RENDER_BATCH_COPIES && nth != last {
            continue;
        }
        compared += batch.len();
        if let Some((first, other)) = differing_copies(&batch) {
            let station = |i: usize| &world.topology.nodes[batch[i].1].station;
            return CheckResult::fail(format!(
                "{}: equal heads but different state at {} and {}",
                batch[first].0,
                station(first),
                station(other)
            ));
        }
        batch.clear();
    }
    CheckResult::pass(format!(
        "{documents} documents, {compared} copies identical"
    ))
}

/// The first document of `batch` (its copies in a row) whose copies render
/// differently: the positions of its first copy and of one that differs.
/// Rendering is most of the checker's time: half the copies are rendered on
/// a second thread.
fn differing_copies<K: PartialEq + Sync>(
    batch: &[(K, NodeIndex, AutoCommit)],
) -> Option<(usize, usize)> {
    let (first_half, second_half) = batch.split_at(batch.len() / 2);
    let render_all = |copies: &[(K, NodeIndex, AutoCommit)]| -> Vec<String> {
        copies
            .iter()
            .map(|(_, _, doc)| canonical::render(doc))
            .collect()
    };
    let texts: Vec<String> = std::thread::scope(|scope| {
        let second = scope.spawn(|| render_all(second_half));
        let mut texts = render_all(first_half);
        texts.extend(second.join().expect("rendering a document does not panic"));
        texts
    });
    let mut first_copy = 0;
    for (i, (document, _, _)) in batch.iter().enumerate() {
        if *document != batch[first_copy].0 {
            first_copy = i;
        } else if texts[i] != texts[first_copy] {
            return Some((first_copy, i));
        }
    }
    None
}

fn liveness(world: &World) -> CheckResult {
    let bound_s = world.config.liveness_bound_s;
    match world.converged_at {
        Some(at) => {
            let after_s = (at - world.heal_at) as f64 / 1000.0;
            CheckResult::pass(format!(
                "converged {after_s:.0} s after the final heal (bound {bound_s} s)"
            ))
        }
        None => CheckResult::fail(format!(
            "not converged within {bound_s} s of the final heal"
        )),
    }
}

/// Every change of a document as (hash, actor), read in one pass (looking
/// changes up one by one rebuilds each from the op set).
fn changes_of(doc: &AutoCommit) -> Vec<(ChangeHash, ActorId)> {
    let mut copy = doc.clone();
    copy.get_changes_meta(&[])
        .into_iter()
        .map(|meta| (meta.hash, meta.actor.into_owned()))
        .collect()
}

/// An acknowledged write: who, the heads right after it, what it was.
type WriteToFind = (NodeIndex, Vec<ChangeHash>, String);

fn durability(world: &mut World) -> CheckResult {
    // Group the writes by the county copy that must hold them.
    let mut by_copy: BTreeMap<(NodeIndex, DocumentId), Vec<WriteToFind>> = BTreeMap::new();
    let mut checked = 0;
    for write in world
        .truth
        .writes
        .iter()
        .filter(|w| world.is_honest(w.node))
    {
        let owner = world
            .topology
            .by_station
            .get(&write.document.owner)
            .copied()
            .unwrap_or(write.node);
        // A county's or prefecture's own writes must be at the top node.
        let county = world
            .topology
            .county_of(owner)
            .unwrap_or(world.topology.root());
        checked += 1;
        by_copy
            .entry((county, write.document.clone()))
            .or_default()
            .push((write.node, write.heads.clone(), write.what.clone()));
    }
    let mut missing = Vec::new();
    for ((county, document), writes) in by_copy {
        let held: BTreeSet<ChangeHash> = world
            .replica_mut(county)
            .and_then(|r| {
                r.with_document(&document, |doc| {
                    changes_of(doc).into_iter().map(|(h, _)| h).collect()
                })
                .ok()
            })
            .flatten()
            .unwrap_or_default();
        for (node, heads, what) in writes {
            if !heads.iter().all(|h| held.contains(h)) {
                missing.push(format!(
                    "{what} (acknowledged at {})",
                    world.topology.nodes[node].station
                ));
            }
        }
    }
    if missing.is_empty() {
        CheckResult::pass(format!(
            "{checked} acknowledged writes all present at their county"
        ))
    } else {
        let examples: Vec<String> = missing.iter().take(EXAMPLES_MAX).cloned().collect();
        CheckResult::fail(format!(
            "{} of {checked} acknowledged writes missing at the county: {}",
            missing.len(),
            examples.join("; ")
        ))
    }
}

fn deletions(world: &mut World) -> CheckResult {
    let deleted: Vec<(DocumentId, RecordId, bool)> = world
        .truth
        .deleted_activities()
        .into_iter()
        .map(|(document, id, in_truth)| (document.clone(), id.clone(), in_truth))
        .collect();
    let mut problems = Vec::new();
    let mut reads = 0;
    let mut came_back = BTreeSet::new();
    for (document, id, in_truth) in &deleted {
        if !in_truth {
            came_back.insert((document, id));
            problems.push(format!(
                "the truth holds activity {id} of {document} live again"
            ));
        }
        for node in expected_holders(world, document) {
            let station = world.topology.nodes[node].station.clone();
            let Some(replica) = world.replica_mut(node) else {
                problems.push(format!("{station} is down"));
                continue;
            };
            // A document not held is the convergence checker's to report.
            match replica.with_document(document, |doc| layout::activity(doc, id)) {
                Ok(None) => {}
                Ok(Some(Ok(Some(activity)))) => {
                    reads += 1;
                    if !activity.deleted {
                        came_back.insert((document, id));
                        problems.push(format!(
                            "{station} reads activity {id} of {document} as live after its delete"
                        ));
                    }
                }
                Ok(Some(Ok(None))) => problems.push(format!(
                    "{station} holds {document} without activity {id}, which was deleted"
                )),
                Ok(Some(Err(error))) => problems.push(format!("{station}: {document}: {error}")),
                Err(error) => {
                    problems.push(format!("{station}: {document} does not load: {error}"))
                }
            }
        }
    }
    let (teams_back, team_reads) = crate::team_deletions::check(world, &mut problems);
    let (volunteers_back, volunteer_reads) =
        crate::volunteer_deletions::check(world, &mut problems);
    let teams = &world.workflows.teams.counters;
    let volunteers = &world.workflows.volunteers.counters;
    if problems.is_empty() {
        CheckResult::pass(format!(
            "{} deleted activities read deleted at every holder ({reads} reads); {} stale \
             corrections refused as deleted, {} taken before the delete arrived; {} deleted \
             teams read deleted at every holder ({team_reads} reads), {} stale corrections \
             refused as deleted, {} taken; {} deleted volunteers read deleted at every holder \
             ({volunteer_reads} reads), {} stale corrections refused as deleted, {} taken",
            deleted.len(),
            world.counters.stale_corrections_refused_deleted,
            world.counters.stale_corrections_taken,
            teams.teams_deleted,
            teams.stale_corrections_refused_deleted,
            teams.stale_corrections_taken,
            volunteers.volunteers_deleted,
            volunteers.stale_corrections_refused_deleted,
            volunteers.stale_corrections_taken
        ))
    } else {
        let examples: Vec<String> = problems.iter().take(EXAMPLES_MAX).cloned().collect();
        CheckResult::fail(format!(
            "{} of {} deleted activities, {teams_back} of {} deleted teams and \
             {volunteers_back} of {} deleted volunteers came back ({} problems): {}",
            came_back.len(),
            deleted.len(),
            teams.teams_deleted,
            volunteers.volunteers_deleted,
            problems.len(),
            examples.join("; ")
        ))
    }
}

fn aggregates(world: &mut World) -> CheckResult {
    let expected_all = world.truth.statistics();
    let counties: Vec<NodeIndex> = world.topology.of_tier(Tier::County).collect();
    let mut compared = 0;
    let mut detail = String::new();
    for county in counties {
        let station = world.topology.nodes[county].station.clone();
        let expected = expected_all.under(&station);
        let Some(replica) = world.replica_mut(county) else {
            return CheckResult::fail(format!("county {station} is down"));
        };
        // The county's statistics, as the product computes them (the
        // statistics index over the documents it holds) ...
        let mut index = StatsIndex::new();
        for document in replica.documents_owned_within(&station) {
            let applied =
                replica.with_document(&document, |doc| index.apply_document(&document, doc));
            match applied {
                Ok(Some(Ok(_))) | Ok(None) => {}
                Ok(Some(Err(error))) => {
                    return CheckResult::fail(format!("county {station}: {document}: {error}"))
                }
                Err(error) => {
                    return CheckResult::fail(format!(
                        "county {station}: {document} does not load: {error}"
                    ))
                }
            }
        }
        // ... read back per station and month, and rolled up at the county.
        let mut found = Statistics::default();
        let months: BTreeSet<Month> = expected.months.keys().map(|(_, m)| *m).collect();
        let stations: BTreeSet<StationId> = expected
            .months
            .keys()
            .map(|(s, _)| s.clone())
            .chain(expected.volunteers.keys().cloned())
            .chain(expected.teams.keys().cloned())
            .chain(
                index
                    .stations(&station, &[])
                    .into_iter()
                    .filter(|s| *s != station),
            )
            .collect();
        let mut probe_months: BTreeSet<Month> = months.clone();
        probe_months.extend(months.iter().map(|m| m.next()));
        let last_month = probe_months.iter().next_back().copied();
        for s in &stations {
            for month in &probe_months {
                let counts = index.own_figures(s, Period::Month(*month)).counts;
                if counts.activities > 0 || counts.hours_centi > 0 || counts.beneficiaries > 0 {
                    found.months.insert(
                        (s.clone(), *month),
                        MonthFigures {
                            activities: counts.activities,
                            participations: counts.participations,
                            hours_centi: counts.hours_centi,
                            beneficiaries: counts.beneficiaries,
                        },
                    );
                }
            }
            if let Some(month) = last_month {
                let figures = index.own_figures(s, Period::Month(month));
                if figures.volunteers_registered > 0 {
                    found
                        .volunteers
                        .insert(s.clone(), figures.volunteers_registered);
                }
                if figures.teams > 0 {
                    found.teams.insert(s.clone(), figures.teams);
                }
            }
        }
        if let Some(difference) = expected.first_difference(&found) {
            return CheckResult::fail(format!("county {station}: {difference}"));
        }
        // The county's rolled-up figures must be the sum of its stations'.
        for month in &probe_months {
            let rolled = index.figures(&station, Period::Month(*month)).counts;
            let mut sum = MonthFigures::default();
            for ((_, m), figures) in &expected.months {
                if m == month {
                    sum += *figures;
                }
            }
            let rolled = MonthFigures {
                activities: rolled.activities,
                participations: rolled.participations,
                hours_centi: rolled.hours_centi,
                beneficiaries: rolled.beneficiaries,
            };
            if rolled != sum {
                return CheckResult::fail(format!(
                    "county {station} {month} rolled up: expected {sum:?}, found {rolled:?}"
                ));
            }
        }
        compared += 1;
        if detail.is_empty() {
            let total = found.total();
            detail = format!(
                "{station}: {} activities, {} participations, {:.1} service hours, {} beneficiaries",
                total.activities,
                total.participations,
                total.hours_centi as f64 / 100.0,
                total.beneficiaries
            );
        }
    }
    CheckResult::pass(format!(
        "statistics index of {compared} counties equals the ground truth, per station-month and rolled up ({detail})"
    ))
}

/// The county's statistics as the product computes them: the index over
/// every document it holds of its subtree.
fn county_index(world: &mut World, county: NodeIndex) -> Result<StatsIndex, String> {
    let station = world.topology.nodes[county].station.clone();
    let Some(replica) = world.replica_mut(county) else {
        return Err(format!("county {station} is down"));
    };
    let mut index = StatsIndex::new();
    for document in replica.documents_owned_within(&station) {
        match replica.with_document(&document, |doc| index.apply_document(&document, doc)) {
            Ok(Some(Ok(_))) | Ok(None) => {}
            Ok(Some(Err(error))) => return Err(format!("county {station}: {document}: {error}")),
            Err(error) => {
                return Err(format!(
                    "county {station}: {document} does not load: {error}"
                ))
            }
        }
    }
    Ok(index)
}

/// Above the county only statistics travel; they must say what the county
/// itself counts. For every county and every month it counts anything in
/// (or published a document for), each station's figures as the office
/// above reads them (`held_statistics`, what its API answers from) equal
/// the county's own figures for that station, rolled up over its subtree.
fn statistics(world: &mut World) -> CheckResult {
    let above: Vec<NodeIndex> = (0..world.node_count())
        .filter(|n| world.is_honest(*n) && above_county(world.topology.nodes[*n].tier))
        .collect();
    if above.is_empty() {
        return CheckResult::pass("no office above the county: nothing published");
    }
    let counties: Vec<NodeIndex> = world.topology.of_tier(Tier::County).collect();
    let mut compared = 0u64;
    let mut months_compared = 0u64;
    for county in counties {
        let station = world.topology.nodes[county].station.clone();
        let index = match county_index(world, county) {
            Ok(index) => index,
            Err(problem) => return CheckResult::fail(problem),
        };
        for &office in &above {
            let office_station = world.topology.nodes[office].station.clone();
            if !office_station.is_strict_ancestor_of(&station) {
                continue;
            }
            let Some(replica) = world.replica_mut(office) else {
                return CheckResult::fail(format!("{office_station} is down"));
            };
            let published: BTreeSet<Month> = replica
                .documents_where(|d| {
                    d.owner == station && matches!(d.kind, DocumentKind::Statistics(_))
                })
                .into_iter()
                .filter_map(|d| d.month())
                .collect();
            let months: BTreeSet<Month> = index
                .months_of(&station)
                .into_iter()
                .chain(published)
                .collect();
            for month in months {
                let held = held_statistics(replica, &station, month);
                if let Some((document, reason)) = held.unreadable.first() {
                    return CheckResult::fail(format!(
                        "{office_station} cannot read {document}: {reason}"
                    ));
                }
                let found = held.counties.get(&station).cloned().unwrap_or_default();
                // Written out here from the index's own figures, not asked
                // of the publisher.
                let mut expected = BTreeMap::new();
                for s in index.stations(&station, &[]) {
                    let counts = station_counts(&index.figures(&s, Period::Month(month)));
                    if !counts.is_zero() {
                        expected.insert(s, counts);
                    }
                }
                months_compared += 1;
                for s in expected.keys().chain(found.keys()).collect::<BTreeSet<_>>() {
                    compared += 1;
                    let (want, got) = (expected.get(s), found.get(s));
                    if want != got {
                        return CheckResult::fail(format!(
                            "{office_station} reads {s} {month} as {got:?}; the county {station} counts {want:?}"
                        ));
                    }
                }
            }
        }
    }
    CheckResult::pass(format!(
        "{months_compared} county-months, {compared} station lines read above the county equal the county's own figures"
    ))
}

fn scope(world: &World) -> CheckResult {
    let mut held = 0;
    let mut expected: BTreeMap<DocumentId, Vec<NodeIndex>> = BTreeMap::new();
    for node in 0..world.node_count() {
        if !world.is_honest(node) {
            continue;
        }
        let spec = &world.topology.nodes[node];
        let station = &spec.station;
        let Some(replica) = world.replica(node) else {
            continue;
        };
        for document in replica.documents() {
            held += 1;
            if above_county(spec.tier) && names_people(&document) && document.owner != *station {
                return CheckResult::fail(format!(
                    "{station} ({}) holds {document}: personal data must stop at the county",
                    spec.tier
                ));
            }
            let holders = expected
                .entry(document.clone())
                .or_insert_with(|| expected_holders(world, &document));
            if holders.binary_search(&node).is_err() {
                return CheckResult::fail(format!("{station} holds {document}, outside its scope"));
            }
        }
    }
    CheckResult::pass(format!(
        "{held} document copies, all within their holder's scope (personal data no higher than the county)"
    ))
}

fn authority(world: &mut World) -> CheckResult {
    let mut changes_checked = 0u64;
    let genuine = world.genuine_actors();
    // The simulated county registers nothing: its stations are the topology's.
    let known: std::collections::BTreeSet<_> = world
        .topology
        .nodes
        .iter()
        .map(|node| node.station.clone())
        .collect();
    for node in 0..world.node_count() {
        if !world.is_honest(node) {
            continue;
        }
        let station = world.topology.nodes[node].station.clone();
        let Some(replica) = world.replica_mut(node) else {
            continue;
        };
        for document in replica.documents() {
            if !known.contains(&document.owner) {
                return CheckResult::fail(format!(
                    "{document} at {station}: a document of a station no registry lists"
                ));
            }
            let verdict = replica.with_document(&document, |doc| {
                let changes = changes_of(doc);
                for (_, actor) in &changes {
                    match station_of(actor) {
                        Some(writer) if document.writable_by(&writer) && !genuine.contains(actor) => {
                            return Err(format!("{document} at {station} holds a change by {writer} under actor {actor}, which no office of {writer} writes with: a forgery"))
                        }
                        Some(writer) if document.writable_by(&writer) => {}
                        Some(writer) => {
                            return Err(format!("{document} at {station} holds a change by {writer}, who may not write it"))
                        }
                        None => return Err(format!("{document} at {station} holds a change by unknown actor {actor}")),
                    }
                }
                Ok(changes.len() as u64)
            });
            match verdict {
                Ok(Some(Ok(count))) => changes_checked += count,
                Ok(Some(Err(problem))) => return CheckResult::fail(problem),
                Ok(None) => {}
                Err(error) => {
                    return CheckResult::fail(format!(
                        "{document} at {station} does not load: {error}"
                    ))
                }
            }
        }
    }
    CheckResult::pass(format!(
        "{changes_checked} changes, every one by a station that may write its document, under an actor it writes with"
    ))
}

fn run_problems(world: &World) -> CheckResult {
    if world.problems.is_empty() {
        CheckResult::pass("no machinery problems")
    } else {
        let examples: Vec<String> = world
            .problems
            .iter()
            .take(EXAMPLES_MAX)
            .map(|p| p.0.clone())
            .collect();
        CheckResult::fail(format!(
            "{} problems: {}",
            world.problems.len(),
            examples.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    fn copy_saying(word: &str) -> AutoCommit {
        let mut doc = AutoCommit::new();
        doc.put(automerge::ROOT, "word", word).unwrap();
        doc
    }

    #[test]
    fn copies_of_one_document_that_render_differently_are_named_and_other_documents_are_not_compared(
    ) {
        let batch = vec![
            ("a", 0, copy_saying("same")),
            ("a", 1, copy_saying("same")),
            ("b", 2, copy_saying("other")),
            ("b", 3, copy_saying("other")),
            ("b", 4, copy_saying("changed")),
            ("c", 5, copy_saying("last")),
        ];
        assert_eq!(differing_copies(&batch), Some((2, 4)));
        let agreeing: Vec<_> = batch.into_iter().filter(|copy| copy.1 != 4).collect();
        assert_eq!(differing_copies(&agreeing), None);
    }
}
