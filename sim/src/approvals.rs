//! Monthly approvals and send-backs (as DHIS2 does them), racing the
//! village's edits, through the service functions the API calls.
//!
//! A township approves one of its villages' months — the month of its own
//! date or, half the time, the one before — with
//! `approval_ops::approve_month`, from what it holds: a village apart keeps
//! recording, correcting and deleting that month's activities, so the
//! approval often misses edits made before it arrived and sees none made
//! after. Some approvals are sent back (`approval_ops::send_back_month`) by
//! the township or the county, and the township approves the month again
//! a few days later.
//!
//! What the approving clerk was shown goes into [`Approvals`]' own truth:
//! the village's figures for the month as the township held them at that
//! moment — counted here by the statistics index over the documents the
//! approval reads, not by the approval code — and the heads of the
//! village's activities document, for the approved-figures checker.

use crate::config::SimConfig;
use crate::rng::{self, Stream};
use crate::time::{SimMs, DAY_MS, HOUR_MS};
use crate::topology::{NodeIndex, Topology};
use crate::workflows::{At, Outcome, Step};
use crate::workload::poisson_in_working_hours;
use automerge::ChangeHash;
use civsync_protocol::replica::Replica;
use civsync_protocol::service::approval::Decision;
use civsync_protocol::service::approval_ops;
use civsync_protocol::stats::{Figures, Period, StatsIndex};
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::{DocumentId, DocumentKind, Month, StationId, Tier};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;

/// Approvals a township makes of each of its villages per week.
pub const APPROVALS_PER_VILLAGE_WEEK: f64 = 0.25;
/// Share of approvals sent back afterwards.
pub const SEND_BACK_PROBABILITY: f64 = 0.3;
/// Share of send-backs made by the county rather than the township.
pub const COUNTY_SENDS_BACK_PROBABILITY: f64 = 0.5;
/// Share of approvals of the month before the township's date.
pub const PREVIOUS_MONTH_PROBABILITY: f64 = 0.5;

const SEND_BACK_REASONS: [&str; 3] = ["服务时长与签到表不符", "请核实受益人数", "活动照片缺失"];

/// A decision on a village's month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalStep {
    /// The township approves `village`'s month: the given one (a
    /// re-approval), or one it picks.
    Approve {
        village: NodeIndex,
        month: Option<Month>,
    },
    /// This node (the township or the county) sends the month back.
    SendBack { village: NodeIndex, month: Month },
}

/// The approvals that start on their own: (time, township, step).
pub fn schedule(config: &SimConfig, topology: &Topology) -> Vec<(SimMs, NodeIndex, Step)> {
    let mut rng = rng::stream(config.seed ^ 0xa9916, Stream::Workflows);
    let horizon = config.days * DAY_MS;
    let mut out = Vec::new();
    for village in topology.of_tier(Tier::Village) {
        let township = topology.nodes[village]
            .parent
            .expect("a village has a township");
        // Not before the village has recorded something.
        poisson_in_working_hours(
            &mut rng,
            APPROVALS_PER_VILLAGE_WEEK / 7.0,
            horizon,
            2 * DAY_MS,
            |at| {
                let step = ApprovalStep::Approve {
                    village,
                    month: None,
                };
                out.push((at, township, Step::Approval(step)));
            },
        );
    }
    out
}

/// An approval the township's clerk was told was made.
#[derive(Debug, Clone)]
pub struct AcknowledgedApproval {
    pub village: StationId,
    pub month: Month,
    pub node: NodeIndex,
    pub by: StationId,
    pub at_ms: i64,
    /// The village's figures for the month as the township held them.
    pub figures: Figures,
    /// The village's activities document's heads as the township held it.
    pub activities_heads: Vec<ChangeHash>,
    pub what: String,
}

/// Counts reported at the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ApprovalCounters {
    pub approvals: u64,
    pub send_backs: u64,
    /// Decisions refused at the node that tried them, by the refusal.
    pub refused: BTreeMap<String, u64>,
}

/// The approvals' draws, and what their clerks were told.
pub struct Approvals {
    rng: ChaCha8Rng,
    pub approved: Vec<AcknowledgedApproval>,
    pub counters: ApprovalCounters,
}

impl Approvals {
    pub fn new(config: &SimConfig) -> Approvals {
        Approvals {
            rng: rng::stream(config.seed ^ 0xa9917, Stream::Workflows),
            approved: Vec::new(),
            counters: ApprovalCounters::default(),
        }
    }

    pub fn run(&mut self, at: At<'_>, step: &ApprovalStep) -> Outcome {
        match step {
            ApprovalStep::Approve { village, month } => self.approve(at, *village, *month),
            ApprovalStep::SendBack { village, month } => self.send_back(at, *village, *month),
        }
    }

    fn approve(&mut self, at: At<'_>, village: NodeIndex, month: Option<Month>) -> Outcome {
        let station = at.topology.nodes[village].station.clone();
        let month = month.unwrap_or_else(|| {
            let this = at.today.month();
            match previous(this) {
                Some(before)
                    if before >= run_start_month()
                        && self.rng.gen_bool(PREVIOUS_MONTH_PROBABILITY) =>
                {
                    before
                }
                _ => this,
            }
        });
        let figures = figures_held(at.replica, &station, month);
        let activities_heads = at
            .replica
            .heads(&DocumentId::activities(&station, month))
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let at_ms = at.replica.now_ms();
        let by = at.replica.local().clone();
        match approval_ops::approve_month(at.replica, &station, month, at_ms) {
            Ok(Decision::Approved { .. }) => {
                self.counters.approvals += 1;
                let what = format!("approve {station} {month} at {by}");
                self.approved.push(AcknowledgedApproval {
                    village: station.clone(),
                    month,
                    node: at.node,
                    by,
                    at_ms,
                    figures,
                    activities_heads,
                    what: what.clone(),
                });
                let outcome =
                    Outcome::written(DocumentId::approval(&station, month), at.replica, what);
                let mut follow_ups = Vec::new();
                if self.rng.gen_bool(SEND_BACK_PROBABILITY) {
                    let township = at.node;
                    let by = match at.topology.county_of(village) {
                        Some(county) if self.rng.gen_bool(COUNTY_SENDS_BACK_PROBABILITY) => county,
                        _ => township,
                    };
                    let delay = self.rng.gen_range(HOUR_MS..2 * DAY_MS);
                    let step = ApprovalStep::SendBack { village, month };
                    follow_ups.push((delay, by, Step::Approval(step)));
                }
                Outcome {
                    follow_ups,
                    ..outcome
                }
            }
            Ok(Decision::SentBack { .. }) => Outcome::refused(format!(
                "approve {station} {month}: answered with a send-back"
            )),
            Err(error) => {
                *self
                    .counters
                    .refused
                    .entry(format!("approve: {}", error.field()))
                    .or_default() += 1;
                Outcome::refused(format!("approve {station} {month}: {error}"))
            }
        }
    }

    fn send_back(&mut self, at: At<'_>, village: NodeIndex, month: Month) -> Outcome {
        let station = at.topology.nodes[village].station.clone();
        let reason = SEND_BACK_REASONS[self.rng.gen_range(0..SEND_BACK_REASONS.len())];
        let at_ms = at.replica.now_ms();
        match approval_ops::send_back_month(at.replica, &station, month, reason, at_ms) {
            Ok(_) => {
                self.counters.send_backs += 1;
                let what = format!(
                    "send back {station} {month} from {}: {reason}",
                    at.replica.local()
                );
                let outcome =
                    Outcome::written(DocumentId::approval(&station, month), at.replica, what);
                // The village fixes what it was told and the township
                // approves the month again.
                let township = at.topology.nodes[village]
                    .parent
                    .expect("a village has a township");
                let delay = self.rng.gen_range(DAY_MS..3 * DAY_MS);
                let step = ApprovalStep::Approve {
                    village,
                    month: Some(month),
                };
                Outcome {
                    follow_ups: vec![(delay, township, Step::Approval(step))],
                    ..outcome
                }
            }
            Err(error) => {
                *self
                    .counters
                    .refused
                    .entry(format!("send back: {}", error.field()))
                    .or_default() += 1;
                Outcome::refused(format!("send back {station} {month}: {error}"))
            }
        }
    }
}

fn previous(month: Month) -> Option<Month> {
    if month.month == 1 {
        Month::new(month.year.checked_sub(1)?, 12)
    } else {
        Month::new(month.year, month.month - 1)
    }
}

fn run_start_month() -> Month {
    crate::time::Date::of_unix_ms(crate::time::RUN_START_UNIX_MS as u64).month()
}

/// `village`'s figures for `month` as this node holds them: its subtree's
/// rosters and that month's activities and orders, counted by the
/// statistics index (the approval's own counting is what is checked).
pub fn figures_held(
    replica: &mut Replica<MemoryStorage>,
    village: &StationId,
    month: Month,
) -> Figures {
    let documents = replica.documents_where(|document| {
        village.is_ancestor_or_self_of(&document.owner)
            && match document.kind {
                DocumentKind::Roster => true,
                DocumentKind::Activities(m) | DocumentKind::Orders(m) => m == month,
                DocumentKind::Approval(_)
                | DocumentKind::Statistics(_)
                | DocumentKind::Reference(_) => false,
            }
    });
    let mut index = StatsIndex::new();
    for document in documents {
        let _ = replica.with_document(&document, |doc| index.apply_document(&document, doc));
    }
    index.figures(village, Period::Month(month))
}
