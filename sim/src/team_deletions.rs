//! Teams deleted at their village racing corrections from the township.
//!
//! A village deletes one of its teams now and then
//! (`service::delete_team`, as the API does); the township had the team
//! open in a form before and submits a correction through
//! `service::put_team`, as the API does, within a day and a half — refused
//! where the delete has arrived, taken where it has not. Either way the
//! team must end deleted at every holder: the deletions checker reads
//! every deleted team here at every holder of its roster.

use crate::config::SimConfig;
use crate::rng::{self, Stream};
use crate::time::{SimMs, DAY_MS};
use crate::topology::{NodeIndex, Topology};
use crate::workflows::{At, Outcome, Step};
use crate::workload::{poisson_in_working_hours, STALE_CORRECTION_DELAY_MAX_MS};
use civsync_protocol::domain::input::TeamInput;
use civsync_protocol::domain::model::{RecordId, Team};
use civsync_protocol::layout;
use civsync_protocol::service::{self, ServiceError};
use civsync_protocol::{DocumentId, StationId, Tier};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Teams a village deletes per week.
pub const DELETES_PER_VILLAGE_WEEK: f64 = 0.1;

/// A step of a team's delete and its stale correction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamStep {
    /// The village deletes one of its live teams.
    Delete,
    /// The township submits a correction of `team` from a form filled in
    /// before the village deleted it.
    Correct { team: Box<Team> },
}

/// The deletes that start on their own: (time, village, step).
pub fn schedule(config: &SimConfig, topology: &Topology) -> Vec<(SimMs, NodeIndex, Step)> {
    let mut rng = rng::stream(config.seed ^ 0x7ea35, Stream::Workflows);
    let horizon = config.days * DAY_MS;
    let mut out = Vec::new();
    for village in topology.of_tier(Tier::Village) {
        // Not before the village has founded teams.
        poisson_in_working_hours(
            &mut rng,
            DELETES_PER_VILLAGE_WEEK / 7.0,
            horizon,
            DAY_MS,
            |at| out.push((at, village, Step::Team(TeamStep::Delete))),
        );
    }
    out
}

/// A team delete a village's clerk was told was made.
#[derive(Debug, Clone)]
pub struct AcknowledgedTeamDelete {
    pub station: StationId,
    pub team: RecordId,
}

/// Counts reported at the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TeamDeletionCounters {
    pub teams_deleted: u64,
    /// Stale corrections refused because the township held the delete.
    pub stale_corrections_refused_deleted: u64,
    /// Taken: the delete had not arrived (it wins when it does).
    pub stale_corrections_taken: u64,
    pub stale_corrections_refused_otherwise: u64,
}

/// The deletes' draws, and what their clerks were told.
pub struct TeamDeletions {
    rng: ChaCha8Rng,
    pub deleted: Vec<AcknowledgedTeamDelete>,
    pub counters: TeamDeletionCounters,
}

impl TeamDeletions {
    pub fn new(config: &SimConfig) -> TeamDeletions {
        TeamDeletions {
            rng: rng::stream(config.seed ^ 0x7ea36, Stream::Workflows),
            deleted: Vec::new(),
            counters: TeamDeletionCounters::default(),
        }
    }

    pub fn run(&mut self, at: At<'_>, step: &TeamStep) -> Outcome {
        match step {
            TeamStep::Delete => self.delete(at),
            TeamStep::Correct { team } => self.correct(at, team),
        }
    }

    fn delete(&mut self, at: At<'_>) -> Outcome {
        let station = at.replica.local().clone();
        let live = service::teams(at.replica, &station).unwrap_or_default();
        if live.is_empty() {
            return Outcome::nothing();
        }
        let team = live[self.rng.gen_range(0..live.len())].clone();
        let roster = DocumentId::roster(&station);
        // Through `service::delete_team`, as the API deletes.
        if let Err(error) = service::delete_team(at.replica, &station, &team.id) {
            return Outcome::refused(format!("delete team {} at {station}: {error}", team.id));
        }
        self.counters.teams_deleted += 1;
        self.deleted.push(AcknowledgedTeamDelete {
            station: station.clone(),
            team: team.id.clone(),
        });
        let outcome = Outcome {
            deleted_team: Some((station.clone(), team.id.clone())),
            ..Outcome::written(
                roster,
                at.replica,
                format!("delete team {} at {station}", team.id),
            )
        };
        let Some(township) = at.topology.nodes[at.node].parent else {
            return outcome;
        };
        let delay = self.rng.gen_range(0..=STALE_CORRECTION_DELAY_MAX_MS);
        let step = TeamStep::Correct {
            team: Box::new(team),
        };
        Outcome {
            follow_ups: vec![(delay, township, Step::Team(step))],
            ..outcome
        }
    }

    fn correct(&mut self, at: At<'_>, team: &Team) -> Outcome {
        let input = TeamInput {
            id: Some(team.id.to_string()),
            name: format!("{}（更正）", team.name),
            category: team.category.key().to_string(),
            parent: team.parent.clone(),
            leader: team.leader.as_ref().map(ToString::to_string),
            members: team.members.iter().map(ToString::to_string).collect(),
        };
        // The id is given: no nonce is drawn.
        match service::put_team(at.replica, &team.station, &input, 0) {
            Ok(_) => {
                self.counters.stale_corrections_taken += 1;
                Outcome::written(
                    DocumentId::roster(&team.station),
                    at.replica,
                    format!(
                        "correct team {} of {} at {} from a stale form",
                        team.id,
                        team.station,
                        at.replica.local()
                    ),
                )
            }
            Err(error) => {
                if matches!(error, ServiceError::Deleted { .. }) {
                    self.counters.stale_corrections_refused_deleted += 1;
                } else {
                    self.counters.stale_corrections_refused_otherwise += 1;
                }
                Outcome::refused(format!("correct team {}: {error}", team.id))
            }
        }
    }
}

/// Every team whose delete was acknowledged reads deleted at every
/// honest holder of its roster; the problems found, and how many teams
/// came back and how many reads were made.
pub fn check(world: &mut crate::world::World, problems: &mut Vec<String>) -> (usize, usize) {
    let told: Vec<_> = world
        .workflows
        .teams
        .deleted
        .iter()
        .map(|d| (d.station.clone(), d.team.clone()))
        .collect();
    crate::roster_deletions::check(
        world,
        "team",
        &told,
        |doc, id| Ok(layout::team(doc, id)?.map(|record| record.deleted)),
        problems,
    )
}
