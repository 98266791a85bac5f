//! What the clerks do: the synthetic workload.
//!
//! The schedule (who does what kind of thing when) is drawn up front from the
//! workload stream; the details of each action (which volunteer, how many
//! hours) are drawn when it runs, from what that clerk's node holds then. An
//! action becomes an [`Edit`]: a document and the domain records to write
//! into it through the real layout code. The edit is acknowledged to the
//! clerk only once the replica has committed and flushed it; only then does
//! it enter the ground truth.
//!
//! Concurrent edits at two tiers are deliberate: a township corrects the
//! beneficiaries of a village's activity (and annotates its content) while the
//! village corrects service hours (and its content). Different fields merge;
//! the shared `content` field conflicts, which exercises convergence without
//! making the statistics depend on which concurrent value wins.

use crate::config::SimConfig;
use crate::names;
use crate::rng::{self, Stream};
use crate::time::{Date, SimMs, DAY_MS, HOUR_MS};
use crate::topology::{NodeIndex, Topology};
use automerge::AutoCommit;
use civsync_protocol::domain::model::{
    Activity, Category, Form, Hours, RecordId, ServiceRecord, Sex, Team, Volunteer,
};
use civsync_protocol::domain::phone::{self, PhoneSeals, PHONE_SEALED_PREFIX};
use civsync_protocol::domain::pii::{self, IdNumber, SEALED_PREFIX};
use civsync_protocol::layout::{self, LayoutResult};
use civsync_protocol::{DocumentId, Month, StationId, Tier};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Longest a clerk waits after an activity before recording it.
pub const RECORDING_DELAY_DAYS_MAX: i64 = 3;
/// Participants of one activity.
pub const PARTICIPANTS_MAX: usize = 12;
/// Share of activities the village later corrects.
pub const VILLAGE_CORRECTION_PROBABILITY: f64 = 0.25;
/// Township corrections per child village per week.
pub const TOWNSHIP_CORRECTIONS_PER_VILLAGE_WEEK: f64 = 0.5;
/// Activities a village deletes per week.
pub const VILLAGE_DELETIONS_PER_WEEK: f64 = 1.0;
/// After a village's delete, its township submits a correction of the
/// deleted activity from a form opened before it, this long after at most
/// (drawn from 0: sometimes before the delete has reached the township,
/// sometimes after).
pub const STALE_CORRECTION_DELAY_MAX_MS: SimMs = 36 * HOUR_MS;
/// Name of the county's reference document of monthly themes: the
/// product's (`catalog`), so the simulated county writes what nodes read.
pub use civsync_protocol::service::catalog::THEMES;

/// A kind of clerk action, scheduled up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Import a roster of this many volunteers in one write.
    ImportRoster(usize),
    RegisterVolunteer,
    FoundTeam,
    RecordActivity,
    CorrectActivity,
    /// A township corrects one of its villages' activities.
    TownshipCorrection,
    /// A village deletes one of its activities.
    DeleteActivity,
    /// A township submits, through the service layer, a correction of
    /// activity `id` that its village `of` deleted, from a form filled in
    /// before the delete (it may or may not have received the delete yet).
    /// Scheduled by the world when the delete is acknowledged.
    StaleCorrection {
        of: NodeIndex,
        id: RecordId,
    },
    /// The county publishes the theme of a month (run by the world through
    /// `service::catalog::set_theme`, `catalog_work.rs`).
    PublishTheme(Month),
    /// An order's or a volunteer's points, through the service layer
    /// (`workflows.rs`), run by the world rather than prepared here.
    Workflow(crate::workflows::Step),
}

impl Action {
    /// Key of the wall-time profile entry for committing this action.
    pub fn profile_key(&self) -> &'static str {
        match self {
            Action::ImportRoster(_) => "commit_import_roster",
            Action::RegisterVolunteer => "commit_register_volunteer",
            Action::FoundTeam => "commit_found_team",
            Action::RecordActivity => "commit_record_activity",
            Action::CorrectActivity => "commit_correct_activity",
            Action::TownshipCorrection => "commit_township_correction",
            Action::DeleteActivity => "commit_delete_activity",
            Action::StaleCorrection { .. } => "commit_stale_correction",
            Action::PublishTheme(_) => "commit_publish_theme",
            Action::Workflow(step) => step.profile_key(),
        }
    }
}

/// What one action writes, ready for `Replica::commit`.
#[derive(Debug, Clone)]
pub struct Edit {
    pub document: DocumentId,
    pub change: Change,
}

#[derive(Debug, Clone)]
pub enum Change {
    Volunteers(Vec<Volunteer>),
    Volunteer(Volunteer),
    Team(Team),
    /// A new activity, or a correction of one (the whole record as the clerk
    /// now sees it; the layout writes only the fields that differ).
    Activity {
        activity: Activity,
        correction_by: Option<Tier>,
    },
    /// Mark an activity deleted; `snapshot` is how it read just before.
    DeleteActivity {
        snapshot: Activity,
    },
    /// A correction of a deleted activity from a stale form, submitted by
    /// the world through `service::record_activity` (the whole record as
    /// the form shows it, beneficiaries changed).
    StaleCorrection {
        activity: Activity,
    },
}

impl Edit {
    /// Write the edit into `doc` via the real layout code.
    pub fn apply(&self, doc: &mut AutoCommit) -> LayoutResult<()> {
        layout::init_document(doc, &self.document)?;
        match &self.change {
            Change::Volunteer(volunteer) => layout::put_volunteer(doc, volunteer),
            Change::Volunteers(volunteers) => volunteers
                .iter()
                .try_for_each(|volunteer| layout::put_volunteer(doc, volunteer)),
            Change::Team(team) => layout::put_team(doc, team),
            Change::Activity { activity, .. } => layout::put_activity(doc, activity),
            Change::DeleteActivity { snapshot } => layout::delete_activity(doc, &snapshot.id),
            // The world submits it through the service layer; this is the
            // layout write that path ends in.
            Change::StaleCorrection { activity } => layout::put_activity(doc, activity),
        }
    }

    pub fn describe(&self) -> String {
        match &self.change {
            Change::Volunteer(v) => format!("register volunteer {} in {}", v.number, self.document),
            Change::Volunteers(v) => {
                format!("import {} volunteers into {}", v.len(), self.document)
            }
            Change::Team(t) => format!("found team {} in {}", t.id, self.document),
            Change::Activity {
                activity,
                correction_by: None,
            } => format!("record activity {} in {}", activity.id, self.document),
            Change::Activity {
                activity,
                correction_by: Some(tier),
            } => {
                format!(
                    "{tier} corrects activity {} in {}",
                    activity.id, self.document
                )
            }
            Change::DeleteActivity { snapshot } => {
                format!("delete activity {} in {}", snapshot.id, self.document)
            }
            Change::StaleCorrection { activity } => format!(
                "stale correction of deleted activity {} in {}",
                activity.id, self.document
            ),
        }
    }
}

/// The schedule of actions: (when, who, what), sorted by time.
pub fn schedule(config: &SimConfig, topology: &Topology) -> Vec<(SimMs, NodeIndex, Action)> {
    let mut rng = rng::stream(config.seed, Stream::Workload);
    let horizon = config.days * DAY_MS;
    let mut out = Vec::new();
    for county in topology.of_tier(Tier::County) {
        out.push((
            rng.gen_range(0..HOUR_MS),
            county,
            Action::PublishTheme(Date::of_unix_ms(crate::time::RUN_START_UNIX_MS as u64).month()),
        ));
        // Each later month's theme a few days before it starts.
        let mut day = 0;
        while day < config.days {
            let date = Date::of_unix_ms(crate::time::RUN_START_UNIX_MS as u64 + day * DAY_MS);
            if date.day == 25 {
                let at = day * DAY_MS + 9 * HOUR_MS + rng.gen_range(0..8 * HOUR_MS);
                out.push((at, county, Action::PublishTheme(date.month().next())));
            }
            day += 1;
        }
    }
    for village in topology.of_tier(Tier::Village) {
        out.push((rng.gen_range(0..2 * HOUR_MS), village, Action::FoundTeam));
        // Most volunteers arrive with the station's roster spreadsheet,
        // imported in one go in the first days; the rest trickle in.
        let imported = config.volunteers_per_village * 4 / 5;
        if imported > 0 {
            let at = rng.gen_range(2 * HOUR_MS..3 * DAY_MS).min(horizon - 1);
            out.push((at, village, Action::ImportRoster(imported)));
        }
        for _ in imported..config.volunteers_per_village {
            let at = rng.gen_range(0..horizon);
            out.push((at, village, Action::RegisterVolunteer));
        }
        if rng.gen_bool(0.3) {
            out.push((rng.gen_range(0..horizon), village, Action::FoundTeam));
        }
        let per_day = config.activities_per_village_per_week as f64 / 7.0;
        poisson_in_working_hours(&mut rng, per_day, horizon, DAY_MS / 2, |at| {
            out.push((at, village, Action::RecordActivity));
        });
        poisson_in_working_hours(
            &mut rng,
            per_day * VILLAGE_CORRECTION_PROBABILITY,
            horizon,
            2 * DAY_MS,
            |at| {
                out.push((at, village, Action::CorrectActivity));
            },
        );
        poisson_in_working_hours(
            &mut rng,
            VILLAGE_DELETIONS_PER_WEEK / 7.0,
            horizon,
            DAY_MS,
            |at| out.push((at, village, Action::DeleteActivity)),
        );
        let township = topology.nodes[village]
            .parent
            .expect("a village has a township");
        poisson_in_working_hours(
            &mut rng,
            TOWNSHIP_CORRECTIONS_PER_VILLAGE_WEEK / 7.0,
            horizon,
            3 * DAY_MS,
            |at| {
                out.push((at, township, Action::TownshipCorrection));
            },
        );
    }
    out.sort_by_key(|(at, node, _)| (*at, *node));
    out
}

/// Events of a Poisson process of `per_day`, moved into office hours
/// (08:00-18:00 global time), starting no earlier than `not_before`.
pub(crate) fn poisson_in_working_hours<F: FnMut(SimMs)>(
    rng: &mut ChaCha8Rng,
    per_day: f64,
    horizon: SimMs,
    not_before: SimMs,
    mut emit: F,
) {
    if per_day <= 0.0 {
        return;
    }
    let mut at = not_before as f64;
    loop {
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        at += -u.ln() / per_day * DAY_MS as f64;
        if at >= horizon as f64 {
            return;
        }
        let day = at as SimMs / DAY_MS;
        let in_day = 8 * HOUR_MS + (at as SimMs % DAY_MS) * 10 / 24;
        emit((day * DAY_MS + in_day).min(horizon - 1));
    }
}

/// What a clerk remembers between actions (the ids they created).
#[derive(Debug, Default, Clone)]
struct Clerk {
    volunteers: Vec<RecordId>,
    teams: Vec<(RecordId, Category)>,
    activities: Vec<(DocumentId, RecordId)>,
    /// Activities this clerk deleted, as they read just before.
    deleted: Vec<(DocumentId, Activity)>,
}

/// Stand-ins for the seals the registration writes into a volunteer
/// record: the product's prefix, then as many random bytes (in hex) as a
/// real seal to the county holds. A real seal is random bytes of that
/// length to whoever lacks the county's key, and nothing in the simulation
/// opens one, so the documents keep their size and content; sealing for
/// real (one X25519 key agreement per volunteer then) was a fifth of a county
/// run's time.
struct SealStandIns {
    rng: ChaCha8Rng,
}

impl SealStandIns {
    fn random_hex(&mut self, prefix: &str, bytes: usize) -> String {
        let mut out = String::with_capacity(prefix.len() + 2 * bytes);
        out.push_str(prefix);
        for _ in 0..bytes {
            out.push_str(&format!("{:02x}", self.rng.gen::<u8>()));
        }
        out
    }

    fn id_number(&mut self) -> String {
        self.random_hex(SEALED_PREFIX, pii::SEALED_BYTES)
    }

    /// What `IdSealer::seal_phone` writes without a home phone key: the
    /// masked digits and the seal to the county.
    fn phone(&mut self, digits: &str) -> PhoneSeals {
        PhoneSeals {
            masked: phone::mask(digits),
            county: self.random_hex(
                PHONE_SEALED_PREFIX,
                phone::SEAL_OVERHEAD_BYTES + digits.len(),
            ),
            home: String::new(),
        }
    }
}

/// Draws the details of actions.
pub struct Workload {
    rng: ChaCha8Rng,
    /// Stands in for the sealing of ID numbers and phones (seeded: the run
    /// stays deterministic).
    seals: SealStandIns,
    clerks: BTreeMap<NodeIndex, Clerk>,
    serial: u64,
}

/// Read access to a node's documents, for clerks deciding what to correct.
pub trait ReadActivity {
    fn activity(&mut self, document: &DocumentId, id: &RecordId) -> Option<Activity>;
}

impl Workload {
    pub fn new(config: &SimConfig) -> Workload {
        Workload {
            rng: rng::stream(config.seed ^ 0x5eed, Stream::Workload),
            seals: SealStandIns {
                rng: rng::stream(config.seed, Stream::Identity),
            },
            clerks: BTreeMap::new(),
            serial: 0,
        }
    }

    fn record_id(&mut self, prefix: &str) -> RecordId {
        self.serial += 1;
        // The serial makes ids unique; the random bits make them look real.
        let nonce = (self.rng.gen::<u64>() & 0xffff_ffff_0000_0000) | (self.serial & 0xffff_ffff);
        RecordId::generate(prefix, nonce)
    }

    /// Turn an action at `node` (whose clock reads `today`) into an edit, or
    /// `None` when there is nothing sensible to do (no activity to correct).
    pub fn prepare(
        &mut self,
        topology: &Topology,
        node: NodeIndex,
        action: &Action,
        today: Date,
        docs: &mut dyn ReadActivity,
    ) -> Option<Edit> {
        let station = topology.nodes[node].station.clone();
        match action {
            Action::RegisterVolunteer => Some(self.register(topology, node, &station, today)),
            Action::ImportRoster(count) => {
                let volunteers = (0..*count)
                    .filter_map(
                        |_| match self.register(topology, node, &station, today).change {
                            Change::Volunteer(volunteer) => Some(volunteer),
                            _ => None,
                        },
                    )
                    .collect();
                Some(Edit {
                    document: DocumentId::roster(&station),
                    change: Change::Volunteers(volunteers),
                })
            }
            Action::FoundTeam => Some(self.found_team(topology, node, &station)),
            Action::RecordActivity => self.record_activity(node, &station, today),
            Action::CorrectActivity => self.correct_activity(node, today, docs),
            Action::TownshipCorrection => self.township_correction(topology, node, docs),
            Action::DeleteActivity => self.delete_activity(node, docs),
            Action::StaleCorrection { of, id } => self.stale_correction(*of, id),
            // Run by the world through the service layer (`catalog_work.rs`).
            Action::PublishTheme(_) | Action::Workflow(_) => None,
        }
    }

    /// The volunteers `node`'s clerk registered (acknowledged).
    pub fn volunteers_of(&self, node: NodeIndex) -> &[RecordId] {
        self.clerks
            .get(&node)
            .map_or(&[], |clerk| clerk.volunteers.as_slice())
    }

    /// The activities `node`'s clerk deleted, as they read just before.
    pub fn deleted_of(&self, node: NodeIndex) -> &[(DocumentId, Activity)] {
        self.clerks
            .get(&node)
            .map_or(&[], |clerk| clerk.deleted.as_slice())
    }

    /// The teams `node`'s clerk founded (acknowledged).
    pub fn teams_of(&self, node: NodeIndex) -> Vec<RecordId> {
        self.clerks.get(&node).map_or_else(Vec::new, |clerk| {
            clerk.teams.iter().map(|(id, _)| id.clone()).collect()
        })
    }

    /// The clerk learns the ids of an acknowledged edit.
    pub fn acknowledged(&mut self, node: NodeIndex, edit: &Edit) {
        let clerk = self.clerks.entry(node).or_default();
        match &edit.change {
            Change::Volunteer(v) => clerk.volunteers.push(v.number.clone()),
            Change::Volunteers(v) => clerk.volunteers.extend(v.iter().map(|v| v.number.clone())),
            Change::Team(t) => clerk.teams.push((t.id.clone(), t.category)),
            Change::Activity {
                activity,
                correction_by: None,
            } => clerk
                .activities
                .push((edit.document.clone(), activity.id.clone())),
            Change::DeleteActivity { snapshot } => {
                clerk.activities.retain(|(_, id)| *id != snapshot.id);
                clerk
                    .deleted
                    .push((edit.document.clone(), snapshot.clone()));
            }
            Change::Activity { .. } | Change::StaleCorrection { .. } => {}
        }
    }

    fn register(
        &mut self,
        topology: &Topology,
        node: NodeIndex,
        station: &StationId,
        today: Date,
    ) -> Edit {
        let number = self.record_id("V");
        let rng = &mut self.rng;
        let birth_year = rng.gen_range(1950..2006);
        let birth = format!(
            "{birth_year:04}{:02}{:02}",
            rng.gen_range(1..=12),
            rng.gen_range(1..=28)
        );
        let first_17 = format!("411602{birth}{:03}", rng.gen_range(0..1000));
        let id_number = IdNumber::parse("id_number", &pii::with_check_digit(&first_17))
            .expect("generated ID numbers are valid");
        let categories = vec![Category::ALL[rng.gen_range(0..Category::ALL.len())]];
        let volunteer = Volunteer {
            number,
            name: names::person(rng),
            sex: if rng.gen_bool(0.5) {
                Sex::Male
            } else {
                Sex::Female
            },
            birth_date: to_date(&Date {
                year: birth_year,
                month: 6,
                day: 15,
            }),
            residence_area: topology.nodes[node]
                .name
                .trim_end_matches("新时代文明实践站")
                .to_string(),
            phone: String::new(),
            phone_seals: self.seals.phone(&format!(
                "1{}{:09}",
                [3, 5, 8][rng.gen_range(0..3)],
                rng.gen_range(0..1_000_000_000u64)
            )),
            id_digest: String::new(),
            id_sealed: self.seals.id_number(),
            id_masked: id_number.masked(),
            skills: Vec::new(),
            categories,
            home_station: station.clone(),
            registered_on: to_date(&today),
            consent: rng.gen_bool(0.9),
            party_member: rng.gen_bool(0.3),
            deleted: false,
        };
        Edit {
            document: DocumentId::roster(station),
            change: Change::Volunteer(volunteer),
        }
    }

    fn found_team(&mut self, topology: &Topology, node: NodeIndex, station: &StationId) -> Edit {
        let id = self.record_id("T");
        let category = Category::ALL[self.rng.gen_range(0..Category::ALL.len() - 1)];
        let station_name = topology.nodes[node]
            .name
            .trim_end_matches("新时代文明实践站")
            .to_string();
        let members = self
            .clerks
            .get(&node)
            .map(|c| c.volunteers.iter().take(8).cloned().collect())
            .unwrap_or_default();
        let team = Team {
            id,
            name: names::team_name(&station_name, category.label()),
            category,
            station: station.clone(),
            parent: None,
            leader: None,
            members,
            deleted: false,
        };
        Edit {
            document: DocumentId::roster(station),
            change: Change::Team(team),
        }
    }

    fn record_activity(
        &mut self,
        node: NodeIndex,
        station: &StationId,
        today: Date,
    ) -> Option<Edit> {
        let clerk = self.clerks.get(&node).cloned().unwrap_or_default();
        let id = self.record_id("A");
        let rng = &mut self.rng;
        let held = Date::from_days(days_of(&today) - rng.gen_range(0..=RECORDING_DELAY_DAYS_MAX));
        let form = Form::ALL[rng.gen_range(0..Form::ALL.len())];
        let (team, category) = match clerk.teams.first() {
            Some((team, category)) => (Some(team.clone()), *category),
            None => (None, Category::Other),
        };
        let mut participants: Vec<RecordId> = clerk.volunteers.clone();
        let count = rng.gen_range(0..=PARTICIPANTS_MAX.min(participants.len()));
        let mut records = Vec::with_capacity(count);
        for _ in 0..count {
            let volunteer = participants.swap_remove(rng.gen_range(0..participants.len()));
            records.push(ServiceRecord {
                volunteer,
                home_station: None,
                hours: Hours {
                    centi: rng.gen_range(2..=8) * 50,
                },
                recorded_on: to_date(&today),
                late: false,
                deleted: false,
            });
        }
        let theme = names::MONTHLY_THEMES[(held.month as usize + 11) % 12];
        let activity = Activity {
            id,
            name: names::activity_title(rng, theme),
            date: to_date(&held),
            station: station.clone(),
            place: "村文明实践站".to_string(),
            content: format!("{}，参与群众踊跃。", names::activity_title(rng, theme)),
            form,
            category,
            team,
            person_in_charge: names::person(rng),
            beneficiaries: rng.gen_range(10..=200),
            theme: Some(theme.to_string()),
            recorded_on: to_date(&today),
            late: false,
            deleted: false,
            records,
        };
        Some(Edit {
            document: DocumentId::activities(station, held.month()),
            change: Change::Activity {
                activity,
                correction_by: None,
            },
        })
    }

    fn correct_activity(
        &mut self,
        node: NodeIndex,
        today: Date,
        docs: &mut dyn ReadActivity,
    ) -> Option<Edit> {
        let clerk = self.clerks.get(&node)?;
        if clerk.activities.is_empty() {
            return None;
        }
        let (document, id) =
            clerk.activities[self.rng.gen_range(0..clerk.activities.len())].clone();
        let mut activity = docs.activity(&document, &id)?;
        if !activity.records.is_empty() && self.rng.gen_bool(0.7) {
            let at = self.rng.gen_range(0..activity.records.len());
            activity.records[at].hours = Hours {
                centi: self.rng.gen_range(2..=8) * 50,
            };
            activity.records[at].recorded_on = to_date(&today);
        } else {
            activity.content = format!("{}（站点更正）", activity.content);
        }
        Some(Edit {
            document,
            change: Change::Activity {
                activity,
                correction_by: Some(Tier::Village),
            },
        })
    }

    fn delete_activity(&mut self, node: NodeIndex, docs: &mut dyn ReadActivity) -> Option<Edit> {
        let clerk = self.clerks.get(&node)?;
        if clerk.activities.is_empty() {
            return None;
        }
        let (document, id) =
            clerk.activities[self.rng.gen_range(0..clerk.activities.len())].clone();
        let snapshot = docs.activity(&document, &id)?;
        Some(Edit {
            document,
            change: Change::DeleteActivity { snapshot },
        })
    }

    /// When the township submits its stale correction of an activity its
    /// village just deleted: this long from now.
    pub fn stale_correction_delay(&mut self) -> SimMs {
        self.rng.gen_range(0..=STALE_CORRECTION_DELAY_MAX_MS)
    }

    /// The township's clerk had activity `id` of village `of` open before
    /// the village deleted it, and submits a correction now.
    fn stale_correction(&mut self, of: NodeIndex, id: &RecordId) -> Option<Edit> {
        let deleted = &self.clerks.get(&of)?.deleted;
        let (document, mut activity) = deleted.iter().find(|(_, a)| a.id == *id)?.clone();
        activity.beneficiaries = self.rng.gen_range(10..=200);
        Some(Edit {
            document,
            change: Change::StaleCorrection { activity },
        })
    }

    fn township_correction(
        &mut self,
        topology: &Topology,
        node: NodeIndex,
        docs: &mut dyn ReadActivity,
    ) -> Option<Edit> {
        // The township picks an activity of one of its villages that it has
        // already received.
        let children = &topology.nodes[node].children;
        let village = children[self.rng.gen_range(0..children.len())];
        let clerk = self.clerks.get(&village)?;
        if clerk.activities.is_empty() {
            return None;
        }
        let (document, id) =
            clerk.activities[self.rng.gen_range(0..clerk.activities.len())].clone();
        let mut activity = docs.activity(&document, &id)?;
        activity.beneficiaries = self.rng.gen_range(10..=200);
        if self.rng.gen_bool(0.5) {
            activity.content = format!("{}（所核实）", activity.content);
        }
        Some(Edit {
            document,
            change: Change::Activity {
                activity,
                correction_by: Some(Tier::Township),
            },
        })
    }
}

fn days_of(date: &Date) -> i64 {
    (to_date(date).to_julian_day()
        - time::Date::from_calendar_date(1970, time::Month::January, 1)
            .expect("valid")
            .to_julian_day()) as i64
}

pub fn to_date(date: &Date) -> time::Date {
    let month = time::Month::try_from(date.month).expect("simulated months are 1-12");
    time::Date::from_calendar_date(date.year, month, date.day).expect("simulated dates are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FaultMix;
    use crate::time::MINUTE_MS;

    struct Nothing;
    impl ReadActivity for Nothing {
        fn activity(&mut self, _: &DocumentId, _: &RecordId) -> Option<Activity> {
            None
        }
    }

    #[test]
    fn every_scheduled_action_prepares_a_valid_edit() {
        let config = SimConfig {
            townships: 2,
            villages_per_township: 2,
            days: 40,
            ..SimConfig::default()
        };
        let topology = Topology::build(&config, &FaultMix::draw(&config));
        let schedule = schedule(&config, &topology);
        assert!(schedule.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(schedule
            .iter()
            .any(|(_, _, a)| matches!(a, Action::PublishTheme(m) if m.month == 12)));
        let mut workload = Workload::new(&config);
        let mut written = 0;
        let mut docs: BTreeMap<DocumentId, AutoCommit> = BTreeMap::new();
        for (at, node, action) in &schedule {
            let today = Date::of_unix_ms(crate::time::NodeClock::EXACT.local_unix_ms(*at));
            if let Some(edit) = workload.prepare(&topology, *node, action, today, &mut Nothing) {
                let doc = docs.entry(edit.document.clone()).or_default();
                edit.apply(doc)
                    .unwrap_or_else(|e| panic!("{}: {e}", edit.describe()));
                workload.acknowledged(*node, &edit);
                written += 1;
            }
        }
        assert!(written > 4 * config.volunteers_per_village);
        assert!(docs
            .keys()
            .any(|d| d.to_string().starts_with("activities:xh/t01/v01:")));
    }

    #[test]
    fn stand_in_seals_are_the_shape_and_size_of_real_ones() {
        use civsync_protocol::domain::pii::{CountyOpenKey, IdSealer};
        let config = SimConfig::default();
        let mut identity = rng::stream(config.seed, Stream::Identity);
        let sealer = IdSealer::new(
            CountyOpenKey::generate(identity.gen()).seal_key(),
            identity.gen(),
        );
        let mut stand_ins = SealStandIns { rng: identity };
        let id_number = IdNumber::parse("id_number", &pii::with_check_digit("41160219800615123"))
            .expect("valid");
        let real = sealer.seal(&id_number);
        let stand_in = stand_ins.id_number();
        assert_eq!(stand_in.len(), real.len());
        assert!(stand_in.starts_with(SEALED_PREFIX) && real.starts_with(SEALED_PREFIX));
        let station = StationId::parse("xh/t01/v01").expect("valid");
        let real = sealer.seal_phone(&station, "13812345678");
        let stand_in = stand_ins.phone("13812345678");
        assert_eq!(stand_in.masked, real.masked);
        assert_eq!(stand_in.county.len(), real.county.len());
        assert!(stand_in.county.starts_with(PHONE_SEALED_PREFIX));
        assert_eq!(stand_in.home, real.home);
        assert_ne!(stand_ins.id_number(), stand_ins.id_number());
    }

    #[test]
    fn working_hours_only() {
        let mut rng = rng::stream(1, Stream::Workload);
        poisson_in_working_hours(&mut rng, 5.0, 30 * DAY_MS, 0, |at| {
            let in_day = at % DAY_MS;
            assert!((8 * HOUR_MS..18 * HOUR_MS + MINUTE_MS).contains(&in_day));
        });
    }
}
