//! Orders and points, run through the same service functions the API
//! calls, under the simulation's partitions and crashes.
//!
//! - **Orders** (四单): a village places a citizen's order; its township
//!   dispatches it to a village team, and sometimes the county dispatches
//!   the same order too, within the same day (apart or not: both are
//!   kept); the village records the take and the citizen's rating, or the
//!   citizen withdraws it. Every step is `service::advance_order` at the
//!   node that takes it, reading the order as that node holds it, so a step
//!   out of turn there (the dispatch not arrived yet) is refused and
//!   counted, as a clerk would see it.
//! - **Points** (积分): the county publishes its rate; a village's
//!   supermarket redeems for volunteers who hold points there, sometimes
//!   asking more than the allotment (the product must refuse); villages
//!   move points up to their township and townships down to any of their
//!   villages. Before spending, the node credits the volunteer's earned
//!   points from the hours it holds, as the API does.
//!
//! What a clerk was told goes into [`Workflows`]' own truth (the steps with
//! the heads right after them, the redemptions), for the orders and
//! balances checkers. A balance is looked at after every redemption and
//! transfer, at the node that spent: its own allotment never below zero.
//!
//! Rates are a few per village per week, so a county run stays cheap.

use crate::config::SimConfig;
use crate::rng::{self, Stream};
use crate::time::{Date, SimMs, DAY_MS, HOUR_MS};
use crate::topology::{NodeIndex, Topology};
use crate::workload::{poisson_in_working_hours, to_date, Workload};
use automerge::ChangeHash;
use civsync_protocol::domain::input::OrderInput;
use civsync_protocol::domain::model::{Activity, Order, OrderStatus, RecordId, VolunteerId};
use civsync_protocol::replica::Replica;
use civsync_protocol::service::order_flow::{self, OrderStep};
use civsync_protocol::service::points::{self, RedemptionInput, TransferInput};
use civsync_protocol::service::{self};
use civsync_protocol::stats::StatsIndex;
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::{DocumentId, DocumentKind, Month, StationId, Tier};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Orders a village places per week.
pub const ORDERS_PER_VILLAGE_WEEK: f64 = 1.5;
/// Redemptions at a village's supermarket per week.
pub const REDEMPTIONS_PER_VILLAGE_WEEK: f64 = 2.0;
/// Transfers a village makes up to its township per week.
pub const TRANSFERS_UP_PER_VILLAGE_WEEK: f64 = 0.5;
/// Transfers a township makes down to its villages, per village per week.
pub const TRANSFERS_DOWN_PER_VILLAGE_WEEK: f64 = 0.5;
/// Points per service hour the county publishes.
pub const POINTS_PER_HOUR: u32 = 10;
/// Share of placed orders the county dispatches as well as the township.
pub const COUNTY_DISPATCH_PROBABILITY: f64 = 0.4;
/// A county dispatch this close after the township's is concurrent with
/// it: no simulated link is quicker (`config::FaultMix::latency_ms` ≥ 5).
pub const CONCURRENT_WITHIN_MS: SimMs = 5;
/// Share of placed orders the citizen withdraws.
pub const CANCEL_PROBABILITY: f64 = 0.15;
/// Share of redemptions that ask more than the supermarket's allotment.
pub const OVER_ASK_PROBABILITY: f64 = 0.2;

const MENU_ITEMS: [&str; 5] = ["上门理发", "代购药品", "家电维修", "陪诊", "清扫庭院"];
const SHOP_ITEMS: [&str; 5] = ["大米", "食用油", "洗衣粉", "毛巾", "酱油"];

/// An order of a village: (village, order id).
pub type OrderKey = (StationId, RecordId);

/// One thing a clerk does in these workflows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    PublishRate,
    PlaceOrder,
    /// 派单 at this node (township or county) to a team of the village.
    Dispatch {
        village: NodeIndex,
        order: RecordId,
    },
    /// 接单, recorded by the village for its team.
    Take {
        order: RecordId,
    },
    /// 评单, the citizen's rating entered at the village.
    Rate {
        order: RecordId,
    },
    /// 撤单, the citizen withdraws at the village.
    Cancel {
        order: RecordId,
    },
    Redeem,
    /// A village moves points of one of its volunteers to its township.
    TransferUp,
    /// A township moves points it holds down to one of its villages.
    TransferDown,
    /// A decision on a village's month (`approvals.rs`).
    Approval(crate::approvals::ApprovalStep),
    /// A registration, rename or retirement (`registry.rs`).
    Registry(crate::registry::RegistryStep),
    /// A team's delete or its stale correction (`team_deletions.rs`).
    Team(crate::team_deletions::TeamStep),
    /// A theme set or a menu item offered (`catalog_work.rs`).
    Catalog(crate::catalog_work::CatalogStep),
    /// A volunteer's delete or its stale correction
    /// (`volunteer_deletions.rs`).
    Volunteer(crate::volunteer_deletions::VolunteerStep),
    /// A village imports its month's activity ledger (`ledger_imports.rs`).
    ImportLedger,
}

impl Step {
    pub fn profile_key(&self) -> &'static str {
        match self {
            Step::PublishRate => "commit_publish_rate",
            Step::PlaceOrder => "commit_place_order",
            Step::Dispatch { .. } | Step::Take { .. } | Step::Rate { .. } | Step::Cancel { .. } => {
                "commit_order_step"
            }
            Step::Redeem => "commit_redeem",
            Step::TransferUp | Step::TransferDown => "commit_transfer",
            Step::Approval(_) => "commit_approval",
            Step::Registry(_) => "commit_registry",
            Step::Team(_) => "commit_team_deletion",
            Step::Catalog(_) => "commit_catalog",
            Step::Volunteer(_) => "commit_volunteer_deletion",
            Step::ImportLedger => "commit_import_ledger",
        }
    }
}

/// The schedule of the workflows that start on their own, sorted by time;
/// order steps after a placement are scheduled when it is acknowledged.
pub fn schedule(config: &SimConfig, topology: &Topology) -> Vec<(SimMs, NodeIndex, Step)> {
    let mut rng = rng::stream(config.seed, Stream::Workflows);
    let horizon = config.days * DAY_MS;
    let mut out = Vec::new();
    for county in topology.of_tier(Tier::County) {
        out.push((rng.gen_range(0..HOUR_MS), county, Step::PublishRate));
    }
    let per_day = |per_week: f64| per_week / 7.0;
    for village in topology.of_tier(Tier::Village) {
        // Not before the village has founded a team and registered people.
        poisson_in_working_hours(
            &mut rng,
            per_day(ORDERS_PER_VILLAGE_WEEK),
            horizon,
            DAY_MS / 2,
            |at| out.push((at, village, Step::PlaceOrder)),
        );
        poisson_in_working_hours(
            &mut rng,
            per_day(REDEMPTIONS_PER_VILLAGE_WEEK),
            horizon,
            DAY_MS,
            |at| out.push((at, village, Step::Redeem)),
        );
        poisson_in_working_hours(
            &mut rng,
            per_day(TRANSFERS_UP_PER_VILLAGE_WEEK),
            horizon,
            DAY_MS,
            |at| out.push((at, village, Step::TransferUp)),
        );
        let township = topology.nodes[village]
            .parent
            .expect("a village has a township");
        poisson_in_working_hours(
            &mut rng,
            per_day(TRANSFERS_DOWN_PER_VILLAGE_WEEK),
            horizon,
            2 * DAY_MS,
            |at| out.push((at, township, Step::TransferDown)),
        );
    }
    out.extend(crate::approvals::schedule(config, topology));
    out.extend(crate::registry::schedule(config, topology));
    out.extend(crate::team_deletions::schedule(config, topology));
    out.extend(crate::catalog_work::schedule(config, topology));
    out.extend(crate::volunteer_deletions::schedule(config, topology));
    out.extend(crate::ledger_imports::schedule(config, topology));
    out.sort_by_key(|(at, node, _)| (*at, *node));
    out
}

/// A step of an order a clerk was told was done.
#[derive(Debug, Clone)]
pub struct AcknowledgedStep {
    pub order: OrderKey,
    pub document: DocumentId,
    pub node: NodeIndex,
    pub at: SimMs,
    /// The status the clerk was shown after the step.
    pub status: OrderStatus,
    /// The fields that say this step was taken, with the values it gave
    /// them: a dispatch its office and team, any other step the status.
    pub wrote: Vec<(&'static str, String)>,
    /// The document's heads right after the step.
    pub heads: Vec<ChangeHash>,
    pub what: String,
}

/// A redemption a supermarket's clerk was told was made.
#[derive(Debug, Clone)]
pub struct AcknowledgedRedemption {
    pub station: StationId,
    pub volunteer: VolunteerId,
    pub points: u64,
}

/// Counts reported at the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct WorkflowCounters {
    pub orders_placed: u64,
    pub order_steps_acknowledged: u64,
    /// Steps refused at the node that tried them, by the field the
    /// refusal names (`status`: out of turn there; `order`: not arrived).
    pub order_steps_refused: BTreeMap<String, u64>,
    pub redemptions: u64,
    pub points_redeemed: u64,
    /// Redemptions refused because the allotment did not cover them.
    pub redemptions_refused_overdraft: u64,
    pub transfers: u64,
    pub earned_months_credited: u64,
    /// Times a node's own allotment was looked at after it spent.
    pub balance_looks: u64,
    pub approvals: crate::approvals::ApprovalCounters,
    pub registry: crate::registry::RegistryCounters,
    pub teams: crate::team_deletions::TeamDeletionCounters,
    pub catalog: crate::catalog_work::CatalogCounters,
    pub volunteers: crate::volunteer_deletions::VolunteerDeletionCounters,
    pub ledgers: crate::ledger_imports::LedgerCounters,
}

/// What one step wrote, for the world's trace, counters and durability.
pub struct Outcome {
    pub written: Option<(DocumentId, Vec<ChangeHash>, String)>,
    pub refused: Option<String>,
    /// Steps this one brings about: (delay, node, step).
    pub follow_ups: Vec<(SimMs, NodeIndex, Step)>,
    /// A team this step deleted, for the ground truth's count of teams.
    pub deleted_team: Option<(StationId, RecordId)>,
    /// A volunteer this step deleted, for the ground truth's count.
    pub deleted_volunteer: Option<(StationId, RecordId)>,
    /// Activities an import wrote, with their document, for the ground
    /// truth and the clerk.
    pub imported_activities: Vec<(DocumentId, Activity)>,
}

impl Outcome {
    pub(crate) fn nothing() -> Outcome {
        Outcome {
            written: None,
            refused: None,
            follow_ups: Vec::new(),
            deleted_team: None,
            deleted_volunteer: None,
            imported_activities: Vec::new(),
        }
    }

    pub(crate) fn refused(reason: String) -> Outcome {
        Outcome {
            refused: Some(reason),
            ..Outcome::nothing()
        }
    }

    pub(crate) fn written(
        document: DocumentId,
        replica: &Replica<MemoryStorage>,
        what: String,
    ) -> Outcome {
        let heads = replica
            .heads(&document)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        Outcome {
            written: Some((document, heads, what)),
            ..Outcome::nothing()
        }
    }
}

/// Where one node does one step.
pub struct At<'a> {
    pub topology: &'a Topology,
    pub workload: &'a Workload,
    pub node: NodeIndex,
    pub replica: &'a mut Replica<MemoryStorage>,
    pub today: Date,
    pub now: SimMs,
}

/// The workflows' draws, and what their clerks were told.
pub struct Workflows {
    rng: ChaCha8Rng,
    serial: u64,
    pub steps: Vec<AcknowledgedStep>,
    pub redemptions: Vec<AcknowledgedRedemption>,
    /// A node's own allotment read below zero right after it spent.
    pub overdrawn: Vec<String>,
    pub counters: WorkflowCounters,
    /// Monthly approvals and send-backs, and what their clerks were told.
    pub approvals: crate::approvals::Approvals,
    /// The station registry's renames and retirements.
    pub registry: crate::registry::RegistryWork,
    /// Teams deleted, and corrections of them from stale forms.
    pub teams: crate::team_deletions::TeamDeletions,
    /// Themes and menu items, and the last value acknowledged of each.
    pub catalog: crate::catalog_work::CatalogWork,
    /// Volunteers deleted, and corrections of them from stale forms.
    pub volunteers: crate::volunteer_deletions::VolunteerDeletions,
    /// Activity ledgers imported by villages.
    pub ledgers: crate::ledger_imports::LedgerImports,
}

impl Workflows {
    pub fn new(config: &SimConfig) -> Workflows {
        Workflows {
            rng: rng::stream(config.seed ^ 0x0bde5, Stream::Workflows),
            serial: 0,
            steps: Vec::new(),
            redemptions: Vec::new(),
            overdrawn: Vec::new(),
            counters: WorkflowCounters::default(),
            approvals: crate::approvals::Approvals::new(config),
            registry: crate::registry::RegistryWork::new(config),
            teams: crate::team_deletions::TeamDeletions::new(config),
            catalog: crate::catalog_work::CatalogWork::new(config),
            volunteers: crate::volunteer_deletions::VolunteerDeletions::new(config),
            ledgers: crate::ledger_imports::LedgerImports::new(config),
        }
    }

    /// A nonce no other write of the run uses: a serial with random bits.
    fn nonce(&mut self) -> u64 {
        self.serial += 1;
        (self.rng.gen::<u64>() & 0xffff_ffff_0000_0000) | (self.serial & 0xffff_ffff)
    }

    pub fn run(&mut self, at: At<'_>, step: &Step) -> Outcome {
        match step {
            Step::PublishRate => {
                let document = points::rate_document(at.replica.local());
                match points::publish_rate(at.replica, Tier::County, POINTS_PER_HOUR) {
                    Ok(_) => Outcome::written(
                        document,
                        at.replica,
                        format!("publish the points rate {POINTS_PER_HOUR}"),
                    ),
                    Err(error) => Outcome::refused(error.to_string()),
                }
            }
            Step::PlaceOrder => self.place_order(at),
            Step::Dispatch { village, order } => {
                let teams = at.workload.teams_of(*village);
                if teams.is_empty() {
                    return Outcome::nothing();
                }
                let team = &teams[self.rng.gen_range(0..teams.len())];
                let village = at.topology.nodes[*village].station.clone();
                let team = format!("{village}:{team}");
                self.order_step(at, &village, order, OrderStep::Dispatch { team })
            }
            Step::Take { order } => {
                let village = at.topology.nodes[at.node].station.clone();
                self.order_step(at, &village, order, OrderStep::Take)
            }
            Step::Rate { order } => {
                let village = at.topology.nodes[at.node].station.clone();
                let rating = self.rng.gen_range(1..=5);
                let step = OrderStep::Rate {
                    rating,
                    comment: String::new(),
                };
                self.order_step(at, &village, order, step)
            }
            Step::Cancel { order } => {
                let village = at.topology.nodes[at.node].station.clone();
                let step = OrderStep::Cancel {
                    reason: "群众撤单".to_string(),
                };
                self.order_step(at, &village, order, step)
            }
            Step::Redeem => self.redeem(at),
            Step::TransferUp => self.transfer_up(at),
            Step::TransferDown => self.transfer_down(at),
            Step::Approval(step) => {
                let outcome = self.approvals.run(at, step);
                self.counters.approvals = self.approvals.counters.clone();
                outcome
            }
            Step::Registry(step) => {
                let outcome = self.registry.run(at, step);
                self.counters.registry = self.registry.counters.clone();
                outcome
            }
            Step::Team(step) => {
                let outcome = self.teams.run(at, step);
                self.counters.teams = self.teams.counters.clone();
                outcome
            }
            Step::Catalog(step) => {
                let outcome = self.catalog.run(at, step);
                self.counters.catalog = self.catalog.counters.clone();
                outcome
            }
            Step::Volunteer(step) => {
                let outcome = self.volunteers.run(at, step);
                self.counters.volunteers = self.volunteers.counters.clone();
                outcome
            }
            Step::ImportLedger => {
                let outcome = self.ledgers.import(at);
                self.counters.ledgers = self.ledgers.counters.clone();
                outcome
            }
        }
    }

    fn place_order(&mut self, at: At<'_>) -> Outcome {
        let station = at.topology.nodes[at.node].station.clone();
        let input = OrderInput {
            id: None,
            menu_item: MENU_ITEMS[self.rng.gen_range(0..MENU_ITEMS.len())].to_string(),
            requester: crate::names::person(&mut self.rng),
            placed_on: None,
        };
        let nonce = self.nonce();
        let order =
            match service::place_order(at.replica, &station, &input, to_date(&at.today), nonce) {
                Ok(order) => order,
                Err(error) => return Outcome::refused(error.to_string()),
            };
        self.counters.orders_placed += 1;
        let what = format!("place order {} at {station}", order.id);
        let outcome = Outcome::written(
            orders_document(&station, order.placed_on),
            at.replica,
            what.clone(),
        );
        let wrote = vec![("status", order.status.key().to_string())];
        self.acknowledge_step(&at, &order, wrote, &outcome, what);
        let mut follow_ups = Vec::new();
        let village = at.node;
        let township = at.topology.nodes[village]
            .parent
            .expect("a village has a township");
        let dispatched = self.rng.gen_range(HOUR_MS..DAY_MS);
        follow_ups.push((
            dispatched,
            township,
            Step::Dispatch {
                village,
                order: order.id.clone(),
            },
        ));
        if self.rng.gen_bool(COUNTY_DISPATCH_PROBABILITY) {
            // Half the time within a few milliseconds of the township,
            // quicker than any link, so neither dispatch has reached the
            // other office: two concurrent dispatches, as two offices apart
            // make them (partitions make more).
            let delay = if self.rng.gen_bool(0.5) {
                dispatched + self.rng.gen_range(0..CONCURRENT_WITHIN_MS)
            } else {
                self.rng.gen_range(HOUR_MS..DAY_MS)
            };
            if let Some(county) = at.topology.county_of(village) {
                follow_ups.push((
                    delay,
                    county,
                    Step::Dispatch {
                        village,
                        order: order.id.clone(),
                    },
                ));
            }
        }
        let id = order.id;
        if self.rng.gen_bool(CANCEL_PROBABILITY) {
            let delay = self.rng.gen_range(0..2 * DAY_MS);
            follow_ups.push((delay, village, Step::Cancel { order: id }));
        } else {
            let take = self.rng.gen_range(DAY_MS..3 * DAY_MS);
            let rate = take + self.rng.gen_range(DAY_MS..3 * DAY_MS);
            follow_ups.push((take, village, Step::Take { order: id.clone() }));
            follow_ups.push((rate, village, Step::Rate { order: id }));
        }
        Outcome {
            follow_ups,
            ..outcome
        }
    }

    fn order_step(
        &mut self,
        at: At<'_>,
        village: &StationId,
        order: &RecordId,
        step: OrderStep,
    ) -> Outcome {
        match order_flow::advance_order(at.replica, village, order, &step) {
            Ok(next) => {
                self.counters.order_steps_acknowledged += 1;
                let document = orders_document(village, next.placed_on);
                let what = format!(
                    "{} order {order} of {village} at {}: now {}",
                    step_name(&step),
                    at.replica.local(),
                    next.status.key()
                );
                let outcome = Outcome::written(document, at.replica, what.clone());
                let wrote = match &step {
                    OrderStep::Dispatch { .. } => vec![
                        (
                            "dispatched_by",
                            next.dispatched_by
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_default(),
                        ),
                        ("team", next.team.clone().unwrap_or_default()),
                    ],
                    _ => vec![("status", next.status.key().to_string())],
                };
                self.acknowledge_step(&at, &next, wrote, &outcome, what);
                outcome
            }
            Err(error) => {
                *self
                    .counters
                    .order_steps_refused
                    .entry(error.field().to_string())
                    .or_default() += 1;
                Outcome::refused(format!("{} order {order}: {error}", step_name(&step)))
            }
        }
    }

    /// `order` as the clerk was shown it after a step.
    fn acknowledge_step(
        &mut self,
        at: &At<'_>,
        order: &Order,
        wrote: Vec<(&'static str, String)>,
        outcome: &Outcome,
        what: String,
    ) {
        let heads = outcome
            .written
            .as_ref()
            .map(|(_, heads, _)| heads.clone())
            .unwrap_or_default();
        self.steps.push(AcknowledgedStep {
            order: (order.station.clone(), order.id.clone()),
            document: orders_document(&order.station, order.placed_on),
            node: at.node,
            at: at.now,
            status: order.status,
            wrote,
            heads,
            what,
        });
    }

    /// Credit `volunteer`'s earned points from the hours held here, as the
    /// API does before a balance or a spend (only at the home station or
    /// above it).
    fn credit(&mut self, replica: &mut Replica<MemoryStorage>, volunteer: &VolunteerId) {
        let local = replica.local().clone();
        if !local.is_ancestor_or_self_of(&volunteer.home_station) {
            return;
        }
        let hours = hours_held(replica, volunteer);
        if let Ok(raised) = points::credit_earned(replica, volunteer, &hours) {
            self.counters.earned_months_credited += raised.len() as u64;
        }
    }

    /// What this station may spend of `volunteer`'s points, after crediting.
    fn here(&mut self, replica: &mut Replica<MemoryStorage>, volunteer: &VolunteerId) -> i64 {
        self.credit(replica, volunteer);
        points::balance(replica, volunteer).map_or(0, |balance| balance.here)
    }

    /// The spender looks at its own allotment of `volunteer` right after
    /// spending: in its own view it holds every debit it wrote, so it is
    /// never below zero.
    fn look_after_spending(
        &mut self,
        replica: &mut Replica<MemoryStorage>,
        volunteer: &VolunteerId,
        what: &str,
    ) {
        self.counters.balance_looks += 1;
        let station = replica.local().clone();
        match points::read_ledger(replica, Some(volunteer)) {
            Ok(ledger) => {
                let here = ledger
                    .allotments(volunteer)
                    .get(&station)
                    .copied()
                    .unwrap_or(0);
                if here < 0 {
                    self.overdrawn.push(format!(
                        "{station} holds {here} of {volunteer}'s points right after {what}"
                    ));
                }
            }
            Err(error) => self.overdrawn.push(format!(
                "{station} cannot read its points after {what}: {error}"
            )),
        }
    }

    fn redeem(&mut self, at: At<'_>) -> Outcome {
        let station = at.replica.local().clone();
        // Mostly volunteers with points credited here (visitors included);
        // otherwise one of the village's own, whose hours may not be
        // credited yet.
        let holding = holding_points(at.replica, &station);
        let own: Vec<VolunteerId> = at
            .workload
            .volunteers_of(at.node)
            .iter()
            .map(|number| VolunteerId::new(station.clone(), number.clone()))
            .collect();
        let volunteer = if !holding.is_empty() && (own.is_empty() || self.rng.gen_bool(0.8)) {
            holding[self.rng.gen_range(0..holding.len())].clone()
        } else if !own.is_empty() {
            own[self.rng.gen_range(0..own.len())].clone()
        } else {
            return Outcome::nothing();
        };
        let here = self.here(at.replica, &volunteer);
        let asked = if here > 0 && !self.rng.gen_bool(OVER_ASK_PROBABILITY) {
            self.rng.gen_range(1..=here) as u64
        } else {
            here.max(0) as u64 + self.rng.gen_range(1..=30)
        };
        let input = RedemptionInput {
            volunteer: volunteer.to_string(),
            points: asked,
            item: SHOP_ITEMS[self.rng.gen_range(0..SHOP_ITEMS.len())].to_string(),
            clerk: crate::names::person(&mut self.rng),
        };
        let nonce = self.nonce();
        match points::redeem(at.replica, &input, to_date(&at.today), nonce) {
            Ok(entry) => {
                self.counters.redemptions += 1;
                self.counters.points_redeemed += entry.points;
                self.redemptions.push(AcknowledgedRedemption {
                    station: station.clone(),
                    volunteer: volunteer.clone(),
                    points: entry.points,
                });
                let what = format!("redeem {asked} of {volunteer}'s points at {station}");
                self.look_after_spending(at.replica, &volunteer, &what);
                Outcome::written(DocumentId::roster(&station), at.replica, what)
            }
            Err(points::PointsError::Overdraft { .. }) => {
                self.counters.redemptions_refused_overdraft += 1;
                Outcome::refused(format!("redeem {asked} of {volunteer}'s points: overdraft"))
            }
            Err(error) => Outcome::refused(format!("redeem: {error}")),
        }
    }

    fn transfer_up(&mut self, at: At<'_>) -> Outcome {
        let station = at.replica.local().clone();
        // A volunteer of this village who has points here.
        let own: Vec<VolunteerId> = holding_points(at.replica, &station)
            .into_iter()
            .filter(|volunteer| volunteer.home_station == station)
            .collect();
        if own.is_empty() {
            return Outcome::nothing();
        }
        let volunteer = own[self.rng.gen_range(0..own.len())].clone();
        let Some(township) = at.topology.nodes[at.node].parent else {
            return Outcome::nothing();
        };
        let to = at.topology.nodes[township].station.clone();
        self.transfer(at, volunteer, to, DocumentId::roster(&station))
    }

    fn transfer_down(&mut self, at: At<'_>) -> Outcome {
        let station = at.replica.local().clone();
        let holding = holding_points(at.replica, &station);
        let children = &at.topology.nodes[at.node].children;
        if holding.is_empty() || children.is_empty() {
            return Outcome::nothing();
        }
        let volunteer = holding[self.rng.gen_range(0..holding.len())].clone();
        let child = children[self.rng.gen_range(0..children.len())];
        let to = at.topology.nodes[child].station.clone();
        let document = DocumentId::roster(&to);
        self.transfer(at, volunteer, to, document)
    }

    /// Move some of what this station holds of `volunteer` to `to`.
    fn transfer(
        &mut self,
        at: At<'_>,
        volunteer: VolunteerId,
        to: StationId,
        document: DocumentId,
    ) -> Outcome {
        let here = self.here(at.replica, &volunteer);
        if here <= 0 {
            return Outcome::nothing();
        }
        let input = TransferInput {
            volunteer: volunteer.to_string(),
            points: self.rng.gen_range(1..=here) as u64,
            to: to.to_string(),
        };
        let nonce = self.nonce();
        match points::transfer(at.replica, &input, to_date(&at.today), nonce) {
            Ok(entry) => {
                self.counters.transfers += 1;
                let what = format!(
                    "transfer {} of {volunteer}'s points from {} to {to}",
                    entry.points,
                    at.replica.local()
                );
                self.look_after_spending(at.replica, &volunteer, &what);
                Outcome::written(document, at.replica, what)
            }
            Err(error) => Outcome::refused(format!("transfer: {error}")),
        }
    }
}

fn step_name(step: &OrderStep) -> &'static str {
    match step {
        OrderStep::Dispatch { .. } => "dispatch",
        OrderStep::Take => "take",
        OrderStep::Rate { .. } => "rate",
        OrderStep::Cancel { .. } => "cancel",
    }
}

/// The document an order placed on `placed_on` lives in.
pub fn orders_document(village: &StationId, placed_on: time::Date) -> DocumentId {
    let month = Month::new(placed_on.year() as u16, placed_on.month() as u8)
        .expect("simulated dates lie in 2000-2200");
    DocumentId::orders(village, month)
}

/// Volunteers whose allotment at `station` is positive in this node's view.
fn holding_points(replica: &mut Replica<MemoryStorage>, station: &StationId) -> Vec<VolunteerId> {
    let Ok(ledger) = points::read_ledger(replica, None) else {
        return Vec::new();
    };
    let volunteers: BTreeSet<VolunteerId> =
        ledger.entries.iter().map(|e| e.volunteer.clone()).collect();
    volunteers
        .into_iter()
        .filter(|v| ledger.allotments(v).get(station).copied().unwrap_or(0) > 0)
        .collect()
}

/// A volunteer's hours per month held here, counted by the product's
/// statistics index (what the API credits from). Only the home station's
/// activities documents are read: the simulated clerks record volunteers
/// only at their home station, and indexing a township's every document
/// at each spend would cost more than the spend.
fn hours_held(replica: &mut Replica<MemoryStorage>, volunteer: &VolunteerId) -> Vec<(Month, u64)> {
    let documents = replica.documents_where(|document| {
        matches!(document.kind, DocumentKind::Activities(_))
            && document.owner == volunteer.home_station
    });
    let mut index = StatsIndex::new();
    for document in documents {
        let _ = replica.with_document(&document, |doc| index.apply_document(&document, doc));
    }
    index.volunteer_hours_by_month(volunteer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FaultMix;

    #[test]
    fn each_scheduled_step_is_at_the_tier_that_takes_it_within_the_run_and_in_time_order() {
        let config = SimConfig {
            townships: 2,
            villages_per_township: 3,
            days: 28,
            ..SimConfig::default()
        };
        let topology = Topology::build(&config, &FaultMix::draw(&config));
        let schedule = schedule(&config, &topology);
        assert!(schedule.windows(2).all(|w| w[0].0 <= w[1].0));
        let mut kinds = BTreeSet::new();
        for (at, node, step) in &schedule {
            assert!(*at < config.days * DAY_MS);
            let tier = topology.nodes[*node].tier;
            let expected = match step {
                Step::PublishRate => Tier::County,
                // The county renames villages too.
                Step::Registry(crate::registry::RegistryStep::Rename { .. })
                    if tier == Tier::County =>
                {
                    Tier::County
                }
                Step::TransferDown | Step::Approval(_) | Step::Registry(_) => Tier::Township,
                // Themes: the county's come from the workload's schedule.
                Step::Catalog(crate::catalog_work::CatalogStep::SetTheme(_)) => Tier::Township,
                // Townships offer menu items of their own too.
                Step::Catalog(
                    crate::catalog_work::CatalogStep::OfferMenuItem
                    | crate::catalog_work::CatalogStep::WithdrawMenuItem,
                ) if tier == Tier::Township => Tier::Township,
                _ => Tier::Village,
            };
            assert_eq!(tier, expected, "{step:?}");
            kinds.insert(step.profile_key());
        }
        // Orders, redemptions, both kinds of transfer, the rate, approvals,
        // the registry, team deletes, menus and themes, volunteer deletes
        // and ledger imports.
        assert_eq!(kinds.len(), 10, "{kinds:?}");
        assert!(schedule.iter().any(|(_, _, s)| *s == Step::TransferUp));
        assert_eq!(
            format!("{:?}", schedule),
            format!("{:?}", super::schedule(&config, &topology))
        );
    }
}
