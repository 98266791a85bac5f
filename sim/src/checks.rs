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
//! - authority: every change in every document was made by a station that
//!   may write it;
//! - run: nothing went wrong in the machinery itself (a replica that did not
//!   reopen, an honest peer's message refused).
//!
//! Misbehaving nodes are the adversary: their own stores are not checked,
//! but everything honest nodes hold is.

use crate::canonical;
use crate::config::InjectedBug;
use crate::statistics;
use crate::topology::NodeIndex;
use crate::truth::Statistics;
use crate::world::World;
use automerge::{ChangeHash, ReadDoc};
use civsync_protocol::actor::station_of;
use civsync_protocol::{DocumentId, DocumentKind, Tier};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Details list at most this many examples.
const EXAMPLES_MAX: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub passed: bool,
    pub detail: String,
}

impl CheckResult {
    fn pass(detail: impl Into<String>) -> CheckResult {
        CheckResult {
            passed: true,
            detail: detail.into(),
        }
    }
    fn fail(detail: impl Into<String>) -> CheckResult {
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

/// The honest nodes that should hold `document`: its owner, the owner's
/// ancestors, and for reference data the owner's whole subtree.
pub fn expected_holders(world: &World, document: &DocumentId) -> Vec<NodeIndex> {
    let topology = &world.topology;
    let Some(&owner) = topology.by_station.get(&document.owner) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = Some(owner);
    while let Some(node) = at {
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
    debug_assert!(out
        .iter()
        .all(|n| document.in_scope_of(&topology.nodes[*n].station)));
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
    let mut out = BTreeMap::new();
    out.insert("convergence", convergence(world));
    out.insert("liveness", liveness(world));
    out.insert("durability", durability(world));
    out.insert("aggregates", aggregates(world));
    out.insert("scope", scope(world));
    out.insert("authority", authority(world));
    out.insert("run", run_problems(world));
    out
}

fn convergence(world: &mut World) -> CheckResult {
    let documents = match heads_agree(world) {
        Ok(count) => count,
        Err(problem) => return CheckResult::fail(problem),
    };
    let mut compared = 0;
    for document in universe(world) {
        let mut rendered: Option<(NodeIndex, String)> = None;
        for node in expected_holders(world, &document) {
            let Some(replica) = world.replica_mut(node) else {
                continue;
            };
            let text = match replica.with_document(&document, canonical::render) {
                Ok(Some(text)) => text,
                other => return CheckResult::fail(format!("{document} does not load: {other:?}")),
            };
            compared += 1;
            match &rendered {
                None => rendered = Some((node, text)),
                Some((first, expected)) if *expected != text => {
                    return CheckResult::fail(format!(
                        "{document}: equal heads but different state at {} and {}",
                        world.topology.nodes[*first].station, world.topology.nodes[node].station
                    ));
                }
                Some(_) => {}
            }
        }
    }
    CheckResult::pass(format!(
        "{documents} documents, {compared} copies identical"
    ))
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

fn durability(world: &mut World) -> CheckResult {
    let mut missing = Vec::new();
    let mut checked = 0;
    let writes: Vec<(NodeIndex, DocumentId, Vec<ChangeHash>, String)> = world
        .truth
        .writes
        .iter()
        .filter(|w| world.is_honest(w.node))
        .map(|w| (w.node, w.document.clone(), w.heads.clone(), w.what.clone()))
        .collect();
    for (node, document, heads, what) in writes {
        let owner = world
            .topology
            .by_station
            .get(&document.owner)
            .copied()
            .unwrap_or(node);
        // A county's or prefecture's own writes must be at the top node.
        let county = world
            .topology
            .county_of(owner)
            .unwrap_or(world.topology.root());
        checked += 1;
        let present = world
            .replica_mut(county)
            .and_then(|r| {
                r.with_document(&document, |doc| {
                    heads.iter().all(|h| doc.get_change_by_hash(h).is_some())
                })
                .ok()
            })
            .flatten()
            .unwrap_or(false);
        if !present {
            missing.push(format!(
                "{what} (acknowledged at {})",
                world.topology.nodes[node].station
            ));
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

fn aggregates(world: &mut World) -> CheckResult {
    let expected_all = world.truth.statistics();
    let counties: Vec<NodeIndex> = world.topology.of_tier(Tier::County).collect();
    let miscount = world.config.inject_bug == Some(InjectedBug::MiscountAggregate);
    let mut compared = 0;
    for county in counties {
        let station = world.topology.nodes[county].station.clone();
        let expected = expected_all.under(&station);
        let Some(replica) = world.replica_mut(county) else {
            return CheckResult::fail(format!("county {station} is down"));
        };
        let mut found = Statistics::default();
        let mut doubled = !miscount;
        for document in replica.documents_owned_within(&station) {
            let mut add = |found: &mut Statistics| -> Result<(), String> {
                replica
                    .with_document(&document, |doc| {
                        statistics::add_document(found, &document, doc)
                    })
                    .map_err(|e| e.to_string())?
                    .unwrap_or(Ok(()))
            };
            if let Err(problem) = add(&mut found) {
                return CheckResult::fail(format!("county {station}: {problem}"));
            }
            // The injected bug: one month's activities are counted twice.
            if !doubled && matches!(document.kind, DocumentKind::Activities(_)) {
                doubled = true;
                let _ = add(&mut found);
            }
        }
        if let Some(difference) = expected.first_difference(&found) {
            return CheckResult::fail(format!("county {station}: {difference}"));
        }
        compared += 1;
        let total = found.total();
        if compared == 1 {
            let detail = format!(
                "{} activities, {} participations, {:.1} service hours, {} beneficiaries",
                total.activities,
                total.participations,
                total.hours_centi as f64 / 100.0,
                total.beneficiaries
            );
            if world.topology.of_tier(Tier::County).count() == 1 {
                return CheckResult::pass(format!(
                    "county figures equal the ground truth: {detail}"
                ));
            }
        }
    }
    CheckResult::pass(format!(
        "{compared} counties' figures equal the ground truth"
    ))
}

fn scope(world: &World) -> CheckResult {
    let mut held = 0;
    for node in 0..world.node_count() {
        if !world.is_honest(node) {
            continue;
        }
        let station = &world.topology.nodes[node].station;
        let Some(replica) = world.replica(node) else {
            continue;
        };
        for document in replica.documents() {
            held += 1;
            if !document.in_scope_of(station) {
                return CheckResult::fail(format!("{station} holds {document}, outside its scope"));
            }
        }
    }
    CheckResult::pass(format!(
        "{held} document copies, all within their holder's scope"
    ))
}

fn authority(world: &mut World) -> CheckResult {
    let mut changes_checked = 0u64;
    for node in 0..world.node_count() {
        if !world.is_honest(node) {
            continue;
        }
        let station = world.topology.nodes[node].station.clone();
        let Some(replica) = world.replica_mut(node) else {
            continue;
        };
        for document in replica.documents() {
            let heads: Vec<ChangeHash> = replica.heads(&document).unwrap_or_default().to_vec();
            let verdict = replica.with_document(&document, |doc| {
                // Walk the whole history from the heads.
                let mut seen: BTreeSet<ChangeHash> = BTreeSet::new();
                let mut stack: Vec<ChangeHash> = heads;
                let mut count = 0u64;
                while let Some(hash) = stack.pop() {
                    if !seen.insert(hash) {
                        continue;
                    }
                    let Some(change) = doc.get_change_by_hash(&hash) else {
                        return Err(format!("change {hash} missing from {document}"));
                    };
                    count += 1;
                    match station_of(change.actor_id()) {
                        Some(writer) if document.writable_by(&writer) => {}
                        Some(writer) => return Err(format!("{document} at {station} holds a change by {writer}, who may not write it")),
                        None => return Err(format!("{document} at {station} holds a change by unknown actor {}", change.actor_id())),
                    }
                    stack.extend(change.deps().iter().copied());
                }
                Ok(count)
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
        "{changes_checked} changes, every one by a station that may write its document"
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
