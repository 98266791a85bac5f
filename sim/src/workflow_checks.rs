//! The checkers of orders and points, run after the final heal.
//!
//! - orders: every order is read the same at every honest node holding its
//!   document, and once there; every step a clerk was told was done is in
//!   the order's agreed state — each field it wrote (a dispatch: office and
//!   team; any other step: status) reads as it wrote it, or its value is
//!   among the concurrent ones the product keeps for a person to settle —
//!   unless a later acknowledged step saw it (its change is in that step's
//!   history) and moved the order on; every order placed is held.
//! - balances: no allotment was below zero when the station that spent
//!   looked right after spending; after the heal no node reads an
//!   allotment of its own station or one below it below zero (it holds
//!   every debit of those); and at each county, earned − spent equals what
//!   the allotments hold, and spent equals the redemptions acknowledged to
//!   its supermarkets.

use crate::checks::{expected_holders, CheckResult};
use crate::topology::NodeIndex;
use crate::workflows::{AcknowledgedStep, OrderKey};
use crate::world::World;
use automerge::{AutoCommit, ChangeHash};
use civsync_protocol::domain::model::Order;
use civsync_protocol::layout;
use civsync_protocol::service::points::{self, Movement};
use civsync_protocol::{DocumentId, DocumentKind, Tier};
use std::collections::{BTreeMap, BTreeSet};

/// Details list at most this many examples.
const EXAMPLES_MAX: usize = 3;

pub(crate) fn verdict(problems: &[String], what: &str, passed: String) -> CheckResult {
    if problems.is_empty() {
        CheckResult {
            passed: true,
            detail: passed,
        }
    } else {
        let examples: Vec<&str> = problems
            .iter()
            .take(EXAMPLES_MAX)
            .map(String::as_str)
            .collect();
        CheckResult {
            passed: false,
            detail: format!("{} {what}: {}", problems.len(), examples.join("; ")),
        }
    }
}

/// One copy of an orders document, as the product reads it.
struct OrdersCopy {
    orders: BTreeMap<OrderKey, Order>,
    /// Concurrent values of each order's fields, by field.
    concurrent_values: BTreeMap<(OrderKey, String), Vec<String>>,
    /// Orders with any field holding concurrent values (two dispatches).
    concurrent: BTreeSet<OrderKey>,
    /// Each change's dependencies.
    deps: BTreeMap<ChangeHash, Vec<ChangeHash>>,
}

fn read_copy(doc: &AutoCommit, problems: &mut Vec<String>, station: &str) -> OrdersCopy {
    let mut copy = OrdersCopy {
        orders: BTreeMap::new(),
        concurrent_values: BTreeMap::new(),
        concurrent: BTreeSet::new(),
        deps: BTreeMap::new(),
    };
    match layout::orders(doc) {
        Ok(orders) => {
            for order in orders {
                let key = (order.station.clone(), order.id.clone());
                if copy.orders.insert(key, order.clone()).is_some() {
                    problems.push(format!(
                        "{station} holds order {} of {} twice in one document",
                        order.id, order.station
                    ));
                }
            }
        }
        Err(error) => problems.push(format!("{station}: orders unreadable: {error}")),
    }
    if let Ok(conflicts) = layout::conflicts(doc) {
        for key in copy.orders.keys() {
            let prefix = format!("{}.{}.", layout::ORDERS, key.1);
            for conflict in conflicts.iter() {
                let Some(field) = conflict.path.strip_prefix(&prefix) else {
                    continue;
                };
                copy.concurrent.insert(key.clone());
                let values = conflict.values.iter().map(|v| v.value.clone()).collect();
                copy.concurrent_values
                    .insert((key.clone(), field.to_string()), values);
            }
        }
    }
    let mut whole = doc.clone();
    for meta in whole.get_changes_meta(&[]) {
        copy.deps.insert(meta.hash, meta.deps.clone());
    }
    copy
}

/// The value of an order's field as readers see it.
fn field_value(order: &Order, field: &str) -> Option<String> {
    match field {
        "status" => Some(order.status.key().to_string()),
        "dispatched_by" => Some(
            order
                .dispatched_by
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
        "team" => Some(order.team.clone().unwrap_or_default()),
        _ => None,
    }
}

/// Every change in the history of `heads`, themselves included.
pub(crate) fn history(
    deps: &BTreeMap<ChangeHash, Vec<ChangeHash>>,
    heads: &[ChangeHash],
) -> BTreeSet<ChangeHash> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<ChangeHash> = heads.to_vec();
    while let Some(hash) = stack.pop() {
        if seen.insert(hash) {
            stack.extend(deps.get(&hash).into_iter().flatten().copied());
        }
    }
    seen
}

pub fn orders(world: &mut World) -> CheckResult {
    let mut problems = Vec::new();
    let mut documents = BTreeSet::new();
    for node in 0..world.node_count() {
        if let (true, Some(replica)) = (world.is_honest(node), world.replica(node)) {
            documents
                .extend(replica.documents_where(|d| matches!(d.kind, DocumentKind::Orders(_))));
        }
    }
    // The agreed copy of each document, and where each order is held.
    let mut agreed: BTreeMap<DocumentId, OrdersCopy> = BTreeMap::new();
    let mut held_in: BTreeMap<(NodeIndex, OrderKey), DocumentId> = BTreeMap::new();
    let mut copies = 0;
    for document in &documents {
        for node in expected_holders(world, document) {
            let station = world.topology.nodes[node].station.to_string();
            let Some(replica) = world.replica_mut(node) else {
                problems.push(format!("{station} is down"));
                continue;
            };
            let copy = match replica
                .with_document(document, |doc| read_copy(doc, &mut problems, &station))
            {
                Ok(Some(copy)) => copy,
                // Not held: the convergence checker's to report.
                Ok(None) => continue,
                Err(error) => {
                    problems.push(format!("{station}: {document} does not load: {error}"));
                    continue;
                }
            };
            copies += 1;
            for key in copy.orders.keys() {
                if let Some(other) = held_in.insert((node, key.clone()), document.clone()) {
                    problems.push(format!(
                        "{station} holds order {} of {} twice, in {other} and {document}",
                        key.1, key.0
                    ));
                }
            }
            match agreed.get(document) {
                None => {
                    agreed.insert(document.clone(), copy);
                }
                Some(first) => {
                    for (key, order) in &copy.orders {
                        let there = first.orders.get(key);
                        if there != Some(order) {
                            problems.push(format!(
                                "order {} of {} reads {} at {station} but {} elsewhere",
                                key.1,
                                key.0,
                                order.status.key(),
                                there.map_or("absent", |o| o.status.key())
                            ));
                        }
                    }
                    if first.orders.len() != copy.orders.len() {
                        problems.push(format!(
                            "{document} holds {} orders at {station} but {} elsewhere",
                            copy.orders.len(),
                            first.orders.len()
                        ));
                    }
                }
            }
        }
    }
    let mut by_order: BTreeMap<&OrderKey, Vec<&AcknowledgedStep>> = BTreeMap::new();
    for step in world
        .workflows
        .steps
        .iter()
        .filter(|s| world.is_honest(s.node))
    {
        by_order.entry(&step.order).or_default().push(step);
    }
    let mut in_force = 0;
    for (key, steps) in &by_order {
        let Some(copy) = agreed.get(&steps[0].document) else {
            problems.push(format!(
                "order {} of {} was acknowledged but its document is held nowhere",
                key.1, key.0
            ));
            continue;
        };
        let Some(order) = copy.orders.get(*key) else {
            problems.push(format!(
                "order {} of {} was placed but no node holds it",
                key.1, key.0
            ));
            continue;
        };
        let histories: Vec<BTreeSet<ChangeHash>> = steps
            .iter()
            .map(|step| history(&copy.deps, &step.heads))
            .collect();
        for (index, step) in steps.iter().enumerate() {
            // Steps are in the order they were acknowledged: only a later
            // one can have seen this one.
            let seen_later = (index + 1..steps.len())
                .any(|later| step.heads.iter().all(|h| histories[later].contains(h)));
            if seen_later {
                continue;
            }
            in_force += 1;
            let lost: Vec<String> = step
                .wrote
                .iter()
                .filter(|(field, value)| {
                    let agreed = field_value(order, field);
                    agreed.as_deref() != Some(value.as_str())
                        && !copy
                            .concurrent_values
                            .get(&((*key).clone(), field.to_string()))
                            .is_some_and(|values| values.contains(value))
                })
                .map(|(field, value)| {
                    let agreed = field_value(order, field).unwrap_or_default();
                    format!("{field} {value:?} (reads {agreed:?})")
                })
                .collect();
            if !lost.is_empty() {
                problems.push(format!(
                    "{} (acknowledged at {}) is lost: {} at every holder, and no later step \
                     saw it",
                    step.what,
                    world.topology.nodes[step.node].station,
                    lost.join(", ")
                ));
            }
        }
    }
    let concurrent: usize = agreed.values().map(|copy| copy.concurrent.len()).sum();
    let counters = &world.workflows.counters;
    verdict(
        &problems,
        "order problems",
        format!(
            "{} orders in {} documents agree at every holder ({copies} copies); {} steps \
             acknowledged, {in_force} in force all kept; {concurrent} orders with concurrent \
             steps kept as conflicts; refused steps by field: {:?}",
            by_order.len(),
            documents.len(),
            counters.order_steps_acknowledged,
            counters.order_steps_refused
        ),
    )
}

pub fn balances(world: &mut World) -> CheckResult {
    let mut problems: Vec<String> = world.workflows.overdrawn.clone();
    let mut looked = 0;
    for node in 0..world.node_count() {
        if !world.is_honest(node) {
            continue;
        }
        let station = world.topology.nodes[node].station.clone();
        let Some(replica) = world.replica_mut(node) else {
            problems.push(format!("{station} is down"));
            continue;
        };
        let ledger = match points::read_ledger(replica, None) {
            Ok(ledger) => ledger,
            Err(error) => {
                problems.push(format!("{station}: points unreadable: {error}"));
                continue;
            }
        };
        let volunteers: BTreeSet<_> = ledger.entries.iter().map(|e| &e.volunteer).collect();
        for volunteer in volunteers {
            for (holder, points) in ledger.allotments(volunteer) {
                // Only here or below does this node hold every debit.
                if !station.is_ancestor_or_self_of(&holder) {
                    continue;
                }
                looked += 1;
                if points < 0 {
                    problems.push(format!(
                        "after the heal {station} reads {holder} holding {points} of \
                         {volunteer}'s points"
                    ));
                }
            }
        }
    }
    let mut totals = Vec::new();
    for county in world.topology.of_tier(Tier::County).collect::<Vec<_>>() {
        let station = world.topology.nodes[county].station.clone();
        let Some(replica) = world.replica_mut(county) else {
            continue;
        };
        let Ok(ledger) = points::read_ledger(replica, None) else {
            continue;
        };
        let (mut earned, mut spent, mut redemptions) = (0i64, 0i64, 0u64);
        for entry in &ledger.entries {
            match entry.movement {
                Movement::Earned => earned += entry.points as i64,
                Movement::Redemption { .. } => {
                    spent += entry.points as i64;
                    redemptions += 1;
                }
                Movement::Transfer { .. } => {}
            }
        }
        let volunteers: BTreeSet<_> = ledger.entries.iter().map(|e| &e.volunteer).collect();
        let outstanding: i64 = volunteers
            .into_iter()
            .flat_map(|v| ledger.allotments(v).into_values())
            .sum();
        if earned - spent != outstanding {
            problems.push(format!(
                "{station}: earned {earned} − spent {spent} ≠ outstanding {outstanding}"
            ));
        }
        let acknowledged: Vec<_> = world
            .workflows
            .redemptions
            .iter()
            .filter(|r| station.is_ancestor_or_self_of(&r.station))
            .collect();
        let told: i64 = acknowledged.iter().map(|r| r.points as i64).sum();
        if told != spent || acknowledged.len() as u64 != redemptions {
            problems.push(format!(
                "{station} counts {redemptions} redemptions of {spent} points; its supermarkets \
                 were told of {} of {told}",
                acknowledged.len()
            ));
        }
        totals.push(format!(
            "{station}: earned {earned} − spent {spent} = outstanding {outstanding}"
        ));
    }
    let counters = &world.workflows.counters;
    verdict(
        &problems,
        "balance problems",
        format!(
            "no allotment below zero ({} looks after spending, {looked} after the heal); {}; \
             {} redemptions, {} refused as overdrafts, {} transfers",
            counters.balance_looks,
            totals.join("; "),
            counters.redemptions,
            counters.redemptions_refused_overdraft,
            counters.transfers
        ),
    )
}
