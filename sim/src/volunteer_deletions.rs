//! Volunteers deleted at their village racing corrections from the township.
//!
//! A village deletes one of its volunteers now and then
//! (`service::delete_volunteer`, as the API does); the township had the
//! volunteer open in a form before and submits a correction through
//! `service::update_volunteer` within a day and a half — refused where the
//! delete has arrived, taken where it has not. Either way the volunteer
//! must end deleted at every holder: the deletions checker reads every
//! deleted volunteer here at every holder of its roster.
//!
//! A correction seals the ID number the form carries, for real: the rest of
//! the run writes stand-in seals (`workload.rs`), but these corrections are
//! rare and one key agreement each is cheap.

use crate::config::SimConfig;
use crate::rng::{self, Stream};
use crate::time::{SimMs, DAY_MS};
use crate::topology::{NodeIndex, Topology};
use crate::workflows::{At, Outcome, Step};
use crate::workload::{poisson_in_working_hours, STALE_CORRECTION_DELAY_MAX_MS};
use civsync_protocol::domain::input::VolunteerInput;
use civsync_protocol::domain::model::{RecordId, Volunteer};
use civsync_protocol::domain::pii::{self, CountyOpenKey, IdSealer};
use civsync_protocol::layout;
use civsync_protocol::service::{self, ServiceError};
use civsync_protocol::{DocumentId, StationId, Tier};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Volunteers a village deletes per week.
pub const DELETES_PER_VILLAGE_WEEK: f64 = 0.1;

/// A step of a volunteer's delete and its stale correction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolunteerStep {
    /// The village deletes one of its live volunteers.
    Delete,
    /// The township submits a correction of `volunteer` from a form filled
    /// in before the village deleted them.
    Correct { volunteer: Box<Volunteer> },
}

/// The deletes that start on their own: (time, village, step).
pub fn schedule(config: &SimConfig, topology: &Topology) -> Vec<(SimMs, NodeIndex, Step)> {
    let mut rng = rng::stream(config.seed ^ 0x70173, Stream::Workflows);
    let horizon = config.days * DAY_MS;
    let mut out = Vec::new();
    for village in topology.of_tier(Tier::Village) {
        // Not before the roster is imported (within the first three days).
        poisson_in_working_hours(
            &mut rng,
            DELETES_PER_VILLAGE_WEEK / 7.0,
            horizon,
            3 * DAY_MS,
            |at| out.push((at, village, Step::Volunteer(VolunteerStep::Delete))),
        );
    }
    out
}

/// A volunteer delete a village's clerk was told was made.
#[derive(Debug, Clone)]
pub struct AcknowledgedVolunteerDelete {
    pub station: StationId,
    pub number: RecordId,
}

/// Counts reported at the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct VolunteerDeletionCounters {
    pub volunteers_deleted: u64,
    /// Stale corrections refused because the township held the delete.
    pub stale_corrections_refused_deleted: u64,
    /// Taken: the delete had not arrived (it wins when it does).
    pub stale_corrections_taken: u64,
    pub stale_corrections_refused_otherwise: u64,
}

/// The deletes' draws, and what their clerks were told.
pub struct VolunteerDeletions {
    rng: ChaCha8Rng,
    /// Seals the ID numbers of the township's forms.
    sealer: IdSealer,
    pub deleted: Vec<AcknowledgedVolunteerDelete>,
    pub counters: VolunteerDeletionCounters,
}

impl VolunteerDeletions {
    pub fn new(config: &SimConfig) -> VolunteerDeletions {
        let mut keys = rng::stream(config.seed ^ 0x70174, Stream::Identity);
        let sealer = IdSealer::new(CountyOpenKey::generate(keys.gen()).seal_key(), keys.gen());
        VolunteerDeletions {
            rng: rng::stream(config.seed ^ 0x70175, Stream::Workflows),
            sealer,
            deleted: Vec::new(),
            counters: VolunteerDeletionCounters::default(),
        }
    }

    pub fn run(&mut self, at: At<'_>, step: &VolunteerStep) -> Outcome {
        match step {
            VolunteerStep::Delete => self.delete(at),
            VolunteerStep::Correct { volunteer } => self.correct(at, volunteer),
        }
    }

    fn delete(&mut self, at: At<'_>) -> Outcome {
        let station = at.replica.local().clone();
        let live = service::volunteers(at.replica, &station).unwrap_or_default();
        if live.is_empty() {
            return Outcome::nothing();
        }
        let volunteer = live[self.rng.gen_range(0..live.len())].clone();
        let roster = DocumentId::roster(&station);
        if let Err(error) = service::delete_volunteer(at.replica, &station, &volunteer.number) {
            return Outcome::refused(format!(
                "delete volunteer {} at {station}: {error}",
                volunteer.number
            ));
        }
        self.counters.volunteers_deleted += 1;
        self.deleted.push(AcknowledgedVolunteerDelete {
            station: station.clone(),
            number: volunteer.number.clone(),
        });
        let outcome = Outcome {
            deleted_volunteer: Some((station.clone(), volunteer.number.clone())),
            ..Outcome::written(
                roster,
                at.replica,
                format!("delete volunteer {} at {station}", volunteer.number),
            )
        };
        let Some(township) = at.topology.nodes[at.node].parent else {
            return outcome;
        };
        let delay = self.rng.gen_range(0..=STALE_CORRECTION_DELAY_MAX_MS);
        let step = VolunteerStep::Correct {
            volunteer: Box::new(volunteer),
        };
        Outcome {
            follow_ups: vec![(delay, township, Step::Volunteer(step))],
            ..outcome
        }
    }

    fn correct(&mut self, at: At<'_>, volunteer: &Volunteer) -> Outcome {
        // The form carries the person's ID number; the run never kept one
        // (it writes stand-in seals), so the form's is drawn to match the
        // birth date the roster holds.
        let birth = volunteer.birth_date;
        let first_17 = format!(
            "411602{:04}{:02}{:02}{:03}",
            birth.year(),
            u8::from(birth.month()),
            birth.day(),
            self.rng.gen_range(0..1000)
        );
        let input = VolunteerInput {
            number: Some(volunteer.number.to_string()),
            name: format!("{}（更正）", volunteer.name),
            sex: volunteer.sex.label().to_string(),
            birth_date: None,
            residence_area: volunteer.residence_area.clone(),
            phone: String::new(),
            id_number: pii::with_check_digit(&first_17),
            skills: volunteer.skills.clone(),
            categories: volunteer
                .categories
                .iter()
                .map(|c| c.key().to_string())
                .collect(),
            consent: volunteer.consent,
            party_member: volunteer.party_member,
            registered_on: None,
        };
        let home = &volunteer.home_station;
        match service::update_volunteer(
            at.replica,
            home,
            &input,
            &self.sealer,
            crate::workload::to_date(&at.today),
        ) {
            Ok(_) => {
                self.counters.stale_corrections_taken += 1;
                Outcome::written(
                    DocumentId::roster(home),
                    at.replica,
                    format!(
                        "correct volunteer {} of {home} at {} from a stale form",
                        volunteer.number,
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
                Outcome::refused(format!("correct volunteer {}: {error}", volunteer.number))
            }
        }
    }
}

/// Every volunteer whose delete was acknowledged reads deleted at every
/// honest holder of its roster; the problems found, and how many volunteers
/// came back and how many reads were made.
pub fn check(world: &mut crate::world::World, problems: &mut Vec<String>) -> (usize, usize) {
    let told: Vec<_> = world
        .workflows
        .volunteers
        .deleted
        .iter()
        .map(|d| (d.station.clone(), d.number.clone()))
        .collect();
    crate::roster_deletions::check(
        world,
        "volunteer",
        &told,
        |doc, id| Ok(layout::volunteer(doc, id)?.map(|record| record.deleted)),
        problems,
    )
}
