//! The delta against whole reads: every contribution moved by new changes
//! equals `Contribution::of` of the document then; what it cannot do on
//! its own (records made twice at once, too many operations) it leaves to
//! a whole read.

use super::{contribution_after, DELTA_OPERATIONS_MAX, DELTA_PATH_LOOKUPS_MAX};
use crate::domain::model::{
    Activity, Category, Form, Hours, RecordId, ServiceRecord, Sex, Team, Volunteer,
};
use crate::identity::actor::actor_for;
use crate::identity::document_id::{DocumentId, Month};
use crate::identity::station::StationId;
use crate::layout::{
    delete_activity, init_document, put_activity, put_points_entry, put_team, put_volunteer,
    LayoutResult,
};
use crate::stats::Contribution;
use automerge::{AutoCommit, ChangeHash};
use proptest::prelude::*;
use time::macros::date;
use time::Date;

const VILLAGE: &str = "xh/t1/v1";
/// The two offices writing: the village and its township.
const OFFICES: [&str; 2] = [VILLAGE, "xh/t1"];

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn rid(text: &str) -> RecordId {
    RecordId::parse("id", text).unwrap()
}

fn november() -> Month {
    Month::new(2026, 11).unwrap()
}

fn activities_id() -> DocumentId {
    DocumentId::activities(&station(VILLAGE), november())
}

fn roster_id() -> DocumentId {
    DocumentId::roster(&station(VILLAGE))
}

fn activity(id: u8, served: u8, centi: u32, category: usize) -> Activity {
    Activity {
        id: rid(&format!("A{id}")),
        name: "活动".into(),
        date: date!(2026 - 11 - 05),
        station: station(VILLAGE),
        place: "广场".into(),
        content: "内容".into(),
        form: Form::ALL[usize::from(id) % Form::ALL.len()],
        category: Category::ALL[category % Category::ALL.len()],
        team: None,
        person_in_charge: "李明".into(),
        beneficiaries: u32::from(id) + 3,
        theme: None,
        recorded_on: date!(2026 - 11 - 05),
        late: id % 2 == 1,
        deleted: false,
        records: (0..4u8)
            .filter(|n| served & (1 << n) != 0)
            .map(|n| ServiceRecord {
                volunteer: rid(&format!("N{n}")),
                home_station: (n == 3).then(|| station("xh/t1/v2")),
                hours: Hours { centi },
                recorded_on: date!(2026 - 11 - 05),
                late: n == 2,
                deleted: false,
            })
            .collect(),
    }
}

fn volunteer(number: u8, month: u8, deleted: bool) -> Volunteer {
    Volunteer {
        number: rid(&format!("N{number}")),
        name: "志愿者".into(),
        sex: Sex::Female,
        birth_date: date!(1985 - 02 - 03),
        residence_area: String::new(),
        phone: String::new(),
        phone_seals: Default::default(),
        id_digest: String::new(),
        id_sealed: String::new(),
        id_masked: String::new(),
        skills: vec![],
        categories: vec![],
        home_station: station(VILLAGE),
        registered_on: Date::from_calendar_date(2026, month.try_into().unwrap(), 1).unwrap(),
        consent: true,
        party_member: false,
        deleted,
    }
}

fn team(id: u8, deleted: bool) -> Team {
    Team {
        id: rid(&format!("T{id}")),
        name: "队".into(),
        category: Category::ALL[0],
        station: station(VILLAGE),
        parent: None,
        leader: None,
        members: vec![],
        deleted,
    }
}

/// Commit `write`, or roll it back when the layout refuses it.
fn write(doc: &mut AutoCommit, write: impl FnOnce(&mut AutoCommit) -> LayoutResult<()>) {
    match write(doc) {
        Ok(()) => {
            doc.commit();
        }
        Err(_) => {
            doc.rollback();
        }
    }
}

/// The village's documents with a little in them, and the township's
/// copies, synced.
fn documents() -> ([AutoCommit; 2], [AutoCommit; 2]) {
    let mut activities = AutoCommit::new().with_actor(actor_for(&station(VILLAGE), 1));
    init_document(&mut activities, &activities_id()).unwrap();
    write(&mut activities, |d| {
        put_activity(d, &activity(0, 0b11, 150, 0))
    });
    let mut roster = AutoCommit::new().with_actor(actor_for(&station(VILLAGE), 1));
    init_document(&mut roster, &roster_id()).unwrap();
    write(&mut roster, |d| put_volunteer(d, &volunteer(0, 3, false)));
    write(&mut roster, |d| put_team(d, &team(0, false)));
    let township = actor_for(&station(OFFICES[1]), 1);
    let activities_there = activities.fork().with_actor(township.clone());
    let roster_there = roster.fork().with_actor(township);
    ([activities, activities_there], [roster, roster_there])
}

/// What an office's index last read of one document.
struct Reader {
    read_at: Vec<ChangeHash>,
    contribution: Contribution,
}

impl Reader {
    fn new(id: &DocumentId, doc: &mut AutoCommit) -> Reader {
        Reader {
            read_at: doc.get_heads(),
            contribution: Contribution::of(id, doc).unwrap(),
        }
    }

    /// Move by the changes since the last read, compare with a whole read,
    /// and take the whole read as the next starting point. Whether the
    /// delta answered.
    fn look(&mut self, id: &DocumentId, doc: &mut AutoCommit) -> bool {
        let changes = doc.get_changes(&self.read_at);
        let moved = contribution_after(id, doc, &self.contribution, &self.read_at, &changes);
        let whole = Contribution::of(id, doc).unwrap();
        if let Some(moved) = &moved {
            assert_eq!(moved, &whole, "moved by {} changes", changes.len());
        }
        self.read_at = doc.get_heads();
        self.contribution = whole;
        moved.is_some()
    }
}

#[test]
fn a_new_activity_a_correction_and_a_delete_move_the_figures_as_a_whole_read_does() {
    let ([mut doc, _], _) = documents();
    let id = activities_id();
    write(&mut doc, |d| put_activity(d, &activity(1, 0b0110, 200, 1)));
    let mut reader = Reader::new(&id, &mut doc);
    write(&mut doc, |d| put_activity(d, &activity(2, 0b1001, 75, 2)));
    write(&mut doc, |d| put_activity(d, &activity(0, 0b0101, 300, 0)));
    write(&mut doc, |d| delete_activity(d, &rid("A1")));
    assert!(
        reader.look(&id, &mut doc),
        "three records moved by their changes"
    );
    let Contribution::Activities(figures) = &reader.contribution else {
        panic!("an activities contribution");
    };
    assert_eq!(figures.totals().activities, 2, "A0 and A2 live, A1 deleted");
    // A correction of a service record alone (a nested record's hours).
    write(&mut doc, |d| put_activity(d, &activity(2, 0b1001, 90, 2)));
    assert!(reader.look(&id, &mut doc));
}

#[test]
fn a_registration_a_deletion_and_a_team_move_a_roster_as_a_whole_read_does() {
    let (_, [mut doc, _]) = documents();
    let id = roster_id();
    let mut reader = Reader::new(&id, &mut doc);
    write(&mut doc, |d| put_volunteer(d, &volunteer(1, 5, false)));
    write(&mut doc, |d| put_volunteer(d, &volunteer(0, 3, true)));
    write(&mut doc, |d| put_team(d, &team(1, false)));
    write(&mut doc, |d| put_team(d, &team(0, true)));
    assert!(reader.look(&id, &mut doc));
    let Contribution::Roster(figures) = &reader.contribution else {
        panic!("a roster contribution");
    };
    assert_eq!((figures.volunteers.len(), figures.teams), (1, 1));
}

#[test]
fn points_entries_alone_leave_a_roster_s_contribution_as_it_was() {
    let (_, [mut doc, _]) = documents();
    let id = roster_id();
    let mut reader = Reader::new(&id, &mut doc);
    let before = reader.contribution.clone();
    write(&mut doc, |d| put_points_entry(d, "p1", "spent 3"));
    let changes = doc.get_changes(&reader.read_at);
    let moved = contribution_after(&id, &doc, &before, &reader.read_at, &changes);
    assert_eq!(moved, Some(before));
    assert!(reader.look(&id, &mut doc));
}

#[test]
fn a_record_made_on_two_offices_at_once_is_left_to_a_whole_read() {
    let ([mut village, mut township], _) = documents();
    let id = activities_id();
    let mut reader = Reader::new(&id, &mut village);
    write(&mut village, |d| put_activity(d, &activity(7, 0b1, 100, 0)));
    write(&mut township, |d| {
        put_activity(d, &activity(7, 0b10, 200, 1))
    });
    village.merge(&mut township).unwrap();
    assert!(
        !reader.look(&id, &mut village),
        "two maps under A7: the layout reads their union, the delta does not"
    );
}

#[test]
fn more_operations_than_the_bound_are_left_to_a_whole_read() {
    let ([mut doc, _], _) = documents();
    let id = activities_id();
    let mut reader = Reader::new(&id, &mut doc);
    let mut operations = 0;
    for n in 0..u8::MAX {
        write(&mut doc, |d| put_activity(d, &activity(n, 0b1111, 10, 0)));
        operations = doc
            .get_changes(&reader.read_at)
            .iter()
            .map(|c| c.len())
            .sum();
        if operations > DELTA_OPERATIONS_MAX {
            break;
        }
    }
    assert!(operations > DELTA_OPERATIONS_MAX, "{operations} operations");
    assert!(!reader.look(&id, &mut doc));
}

#[test]
fn corrections_into_more_held_objects_than_the_bound_are_left_to_a_whole_read() {
    let ([mut doc, _], _) = documents();
    let id = activities_id();
    let activities: Vec<u8> = (1..=140).collect();
    for n in &activities {
        write(&mut doc, |d| put_activity(d, &activity(*n, 0b1, 10, 0)));
    }
    let mut reader = Reader::new(&id, &mut doc);
    // A category corrected writes into the activity's own map, held.
    for n in &activities[..20] {
        write(&mut doc, |d| put_activity(d, &activity(*n, 0b1, 10, 1)));
    }
    assert!(
        reader.look(&id, &mut doc),
        "20 activities: within the bound"
    );
    for n in &activities {
        write(&mut doc, |d| put_activity(d, &activity(*n, 0b1, 10, 2)));
    }
    let operations: usize = doc
        .get_changes(&reader.read_at)
        .iter()
        .map(|c| c.len())
        .sum();
    assert!(
        operations <= DELTA_OPERATIONS_MAX,
        "{operations} operations"
    );
    assert!(
        !reader.look(&id, &mut doc),
        "140 activities written into, more than {DELTA_PATH_LOOKUPS_MAX}"
    );
}

#[derive(Debug, Clone)]
enum Edit {
    Record {
        office: usize,
        activity: u8,
        served: u8,
        centi: u32,
        category: usize,
    },
    Delete {
        office: usize,
        activity: u8,
    },
    Register {
        office: usize,
        number: u8,
        month: u8,
        deleted: bool,
    },
    Team {
        office: usize,
        team: u8,
        deleted: bool,
    },
    Points {
        office: usize,
        key: u8,
    },
    Sync,
    Look {
        office: usize,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (0..2usize, 0..5u8, 0..16u8, 1..900u32, 0..3usize).prop_map(
            |(office, activity, served, centi, category)| Edit::Record {
                office, activity, served, centi, category
            }
        ),
        1 => (0..2usize, 0..5u8).prop_map(|(office, activity)| Edit::Delete { office, activity }),
        3 => (0..2usize, 0..5u8, 1..13u8, proptest::bool::weighted(0.2)).prop_map(
            |(office, number, month, deleted)| Edit::Register { office, number, month, deleted }
        ),
        1 => (0..2usize, 0..3u8, any::<bool>())
            .prop_map(|(office, team, deleted)| Edit::Team { office, team, deleted }),
        1 => (0..2usize, 0..3u8).prop_map(|(office, key)| Edit::Points { office, key }),
        2 => Just(Edit::Sync),
        3 => (0..2usize).prop_map(|office| Edit::Look { office }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Two offices edit the same month of activities and the same roster,
    /// syncing now and then; at every look of either, a contribution moved
    /// by the changes since its last look equals a whole read.
    #[test]
    fn a_contribution_moved_by_new_changes_equals_a_whole_read(
        edits in proptest::collection::vec(edit(), 1..40)
    ) {
        let (mut activities, mut rosters) = documents();
        let ids = [activities_id(), roster_id()];
        let mut readers: Vec<[Reader; 2]> = (0..2)
            .map(|office| {
                [
                    Reader::new(&ids[0], &mut activities[office]),
                    Reader::new(&ids[1], &mut rosters[office]),
                ]
            })
            .collect();
        for edit in edits {
            match edit {
                Edit::Record { office, activity: n, served, centi, category } => write(
                    &mut activities[office],
                    |d| put_activity(d, &activity(n, served, centi, category)),
                ),
                Edit::Delete { office, activity } => write(
                    &mut activities[office],
                    |d| delete_activity(d, &rid(&format!("A{activity}"))),
                ),
                Edit::Register { office, number, month, deleted } => write(
                    &mut rosters[office],
                    |d| put_volunteer(d, &volunteer(number, month, deleted)),
                ),
                Edit::Team { office, team: n, deleted } => {
                    write(&mut rosters[office], |d| put_team(d, &team(n, deleted)))
                }
                Edit::Points { office, key } => write(
                    &mut rosters[office],
                    |d| put_points_entry(d, &format!("p{key}"), &format!("spent {office}")),
                ),
                Edit::Sync => {
                    let [a, b] = &mut activities;
                    a.merge(b).unwrap();
                    b.merge(a).unwrap();
                    let [a, b] = &mut rosters;
                    a.merge(b).unwrap();
                    b.merge(a).unwrap();
                }
                Edit::Look { office } => {
                    readers[office][0].look(&ids[0], &mut activities[office]);
                    readers[office][1].look(&ids[1], &mut rosters[office]);
                }
            }
        }
        for office in 0..2 {
            readers[office][0].look(&ids[0], &mut activities[office]);
            readers[office][1].look(&ids[1], &mut rosters[office]);
        }
    }
}
