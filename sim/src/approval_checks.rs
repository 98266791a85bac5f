//! The approved-figures checker, run after the final heal.
//!
//! For every village-month a township's clerk was told was approved, at
//! every honest node holding its approval document (the county first of
//! all):
//! - every acknowledged approval is in the month's history with the
//!   figures the township held for the village at that moment, and the
//!   activities heads it held;
//! - the month's standing as the product reads it (`month_status`, what the
//!   API shows): an approval in force is one a clerk was told of, with
//!   those same figures; it is flagged `edited_after_approval` exactly when
//!   the activities document holds an acknowledged edit the approval did
//!   not see (made after it, or apart from it), and nothing the approval
//!   saw is missing any more (an office above the county, which never holds
//!   the village's activities, is checked for the history only).

use crate::checks::{expected_holders, CheckResult};
use crate::workflow_checks::{history, verdict};
use crate::world::World;
use automerge::ChangeHash;
use civsync_protocol::service::approval::{self, Decision};
use civsync_protocol::service::approval_ops;
use civsync_protocol::stats::Figures;
use civsync_protocol::{DocumentId, Month, StationId};
use std::collections::{BTreeMap, BTreeSet};

fn sorted_hex(heads: &[ChangeHash]) -> Vec<String> {
    let mut heads = heads.to_vec();
    heads.sort();
    heads.iter().map(ToString::to_string).collect()
}

/// The first few fields in which `held` differs from `expected`, as
/// `path: held (expected)`.
fn differences(held: &Figures, expected: &Figures) -> String {
    fn leaves(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    leaves(&format!("{prefix}{key}."), value, out);
                }
            }
            other => {
                out.insert(prefix.trim_end_matches('.').to_string(), other.to_string());
            }
        }
    }
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    leaves("", &serde_json::to_value(held).unwrap_or_default(), &mut a);
    leaves(
        "",
        &serde_json::to_value(expected).unwrap_or_default(),
        &mut b,
    );
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|key| a.get(*key) != b.get(*key))
        .take(3)
        .map(|key| {
            let read = |m: &BTreeMap<String, String>| m.get(key).cloned().unwrap_or_default();
            format!("{key}: {} ({})", read(&a), read(&b))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn approved_figures(world: &mut World) -> CheckResult {
    let mut problems = Vec::new();
    let mut by_month: BTreeMap<(StationId, Month), Vec<crate::approvals::AcknowledgedApproval>> =
        BTreeMap::new();
    for approval in &world.workflows.approvals.approved {
        if world.is_honest(approval.node) {
            by_month
                .entry((approval.village.clone(), approval.month))
                .or_default()
                .push(approval.clone());
        }
    }
    let (mut reads, mut in_force, mut flagged, mut sent_back) = (0, 0, 0, 0);
    for ((village, month), acknowledged) in &by_month {
        let approval_id = DocumentId::approval(village, *month);
        let activities_id = DocumentId::activities(village, *month);
        // Acknowledged edits of the month, as heads right after each.
        let edits: Vec<Vec<ChangeHash>> = world
            .truth
            .writes
            .iter()
            .filter(|w| w.document == activities_id && world.is_honest(w.node))
            .map(|w| w.heads.clone())
            .collect();
        // An office above the county holds the decision, never the
        // village's activities: its standing is not read there.
        let read_standing = expected_holders(world, &activities_id);
        for node in expected_holders(world, &approval_id) {
            let station = world.topology.nodes[node].station.clone();
            let Some(replica) = world.replica_mut(node) else {
                problems.push(format!("{station} is down"));
                continue;
            };
            let decisions = match replica.with_document(&approval_id, approval::approval_history) {
                Ok(Some(Ok(decisions))) => decisions,
                // Not held: the convergence checker's to report.
                Ok(None) => continue,
                Ok(Some(Err(error))) => {
                    problems.push(format!("{station}: {approval_id}: {error}"));
                    continue;
                }
                Err(error) => {
                    problems.push(format!("{station}: {approval_id} does not load: {error}"));
                    continue;
                }
            };
            reads += 1;
            for told in acknowledged {
                let kept = decisions.iter().find(|d| {
                    matches!(d, Decision::Approved { by, at_ms, .. }
                        if *by == told.by && *at_ms == told.at_ms)
                });
                match kept {
                    None => problems.push(format!(
                        "{station} has no record of {} (acknowledged)",
                        told.what
                    )),
                    Some(Decision::Approved {
                        figures,
                        activities_heads,
                        ..
                    }) => {
                        if *figures != told.figures {
                            problems.push(format!(
                                "{station} holds {} with other figures than the village's: {}",
                                told.what,
                                differences(figures, &told.figures)
                            ));
                        }
                        if *activities_heads != sorted_hex(&told.activities_heads) {
                            problems.push(format!(
                                "{station} holds {} with other activities heads than the \
                                 township held",
                                told.what
                            ));
                        }
                    }
                    Some(Decision::SentBack { .. }) => {}
                }
            }
            if !read_standing.contains(&node) {
                continue;
            }
            let status = match approval_ops::month_status(replica, village, *month) {
                Ok(status) => status,
                Err(error) => {
                    problems.push(format!("{station}: {village} {month}: {error}"));
                    continue;
                }
            };
            let Some(Decision::Approved {
                by,
                at_ms,
                figures,
                activities_heads,
            }) = &status.decision
            else {
                sent_back += 1;
                continue;
            };
            in_force += 1;
            let Some(told) = acknowledged
                .iter()
                .find(|t| t.by == *by && t.at_ms == *at_ms)
            else {
                problems.push(format!(
                    "{station} reads {village} {month} approved by {by} at {at_ms}, which no \
                     clerk was told of"
                ));
                continue;
            };
            if *figures != told.figures {
                problems.push(format!(
                    "{station} reads {village} {month} approved with other figures than the \
                     village's at {}: {}",
                    told.what,
                    differences(figures, &told.figures)
                ));
            }
            // Which acknowledged edits this copy holds that the approval
            // did not see.
            let approved: Vec<ChangeHash> = activities_heads
                .iter()
                .filter_map(|hex| hex.parse().ok())
                .collect();
            let deps = match replica.with_document(&activities_id, |doc| {
                let mut whole = doc.clone();
                whole
                    .get_changes_meta(&[])
                    .into_iter()
                    .map(|meta| (meta.hash, meta.deps.clone()))
                    .collect::<BTreeMap<_, _>>()
            }) {
                Ok(deps) => deps.unwrap_or_default(),
                Err(error) => {
                    problems.push(format!("{station}: {activities_id} does not load: {error}"));
                    continue;
                }
            };
            let seen: BTreeSet<ChangeHash> = history(&deps, &approved);
            let unseen = edits
                .iter()
                .filter(|heads| heads.iter().all(|h| deps.contains_key(h)))
                .filter(|heads| !heads.iter().all(|h| seen.contains(h)))
                .count();
            if status.approved_records_missing {
                problems.push(format!(
                    "{station} still misses changes {} saw after the heal",
                    told.what
                ));
            }
            if status.edited_after_approval {
                flagged += 1;
            }
            match (unseen > 0, status.edited_after_approval) {
                (true, false) => problems.push(format!(
                    "{station} reads {village} {month} cleanly approved ({}), but holds {unseen} \
                     acknowledged edits the approval did not see",
                    told.what
                )),
                (false, true) => problems.push(format!(
                    "{station} flags {village} {month} edited after {}, but holds no edit the \
                     approval did not see",
                    told.what
                )),
                _ => {}
            }
        }
    }
    let counters = &world.workflows.approvals.counters;
    verdict(
        &problems,
        "approval problems",
        format!(
            "{} approvals and {} send-backs of {} village-months kept with the figures the \
             township held ({reads} reads); in force: {in_force} approved ({flagged} flagged \
             edited after approval), {sent_back} sent back; refused: {:?}",
            counters.approvals,
            counters.send_backs,
            by_month.len(),
            counters.refused
        ),
    )
}
