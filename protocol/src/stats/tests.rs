//! One unit: the statistics' tests and property tests (incremental equals
//! from scratch), sharing one set of document builders.
//!
//! Tests of the statistics index against hand-computed figures and, by
//! property, against the from-scratch recomputation.

use super::*;
use crate::domain::model::{
    Activity, Category, Form, Hours, Order, OrderStatus, RecordId, ServiceRecord, Sex, Team,
    Volunteer, VolunteerId,
};
use crate::identity::actor::actor_for;
use crate::identity::document_id::{DocumentId, Month};
use crate::identity::station::{Station, StationId, Tier};
use crate::layout::{
    self, delete_activity, init_document, put_activity, put_order, put_team, put_volunteer,
};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ObjType, ReadDoc, ROOT};
use proptest::prelude::*;
use std::collections::BTreeMap;
use time::macros::date;
use time::Date;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn rid(text: &str) -> RecordId {
    RecordId::parse("id", text).unwrap()
}

fn vid(home: &str, number: &str) -> VolunteerId {
    VolunteerId::new(station(home), rid(number))
}

fn month(text: &str) -> Month {
    Month::parse(text).unwrap()
}

fn volunteer(number: &str, home: &str, registered_on: Date) -> Volunteer {
    Volunteer {
        number: rid(number),
        name: "志愿者".into(),
        sex: Sex::Female,
        birth_date: date!(1980 - 01 - 01),
        residence_area: String::new(),
        phone: String::new(),
        phone_seals: Default::default(),
        id_digest: String::new(),
        id_sealed: String::new(),
        id_masked: String::new(),
        skills: vec![],
        categories: vec![],
        home_station: station(home),
        registered_on,
        consent: true,
        party_member: false,
        deleted: false,
    }
}

fn activity(
    id: &str,
    at: &str,
    day: Date,
    form: Form,
    category: Category,
    records: &[(&str, u32)],
) -> Activity {
    Activity {
        id: rid(id),
        name: "活动".into(),
        date: day,
        station: station(at),
        place: "广场".into(),
        content: "内容".into(),
        form,
        category,
        team: None,
        person_in_charge: "李明".into(),
        beneficiaries: 10,
        theme: None,
        recorded_on: day,
        late: false,
        deleted: false,
        records: records
            .iter()
            .map(|(v, centi)| ServiceRecord {
                volunteer: rid(v),
                home_station: None,
                hours: Hours { centi: *centi },
                recorded_on: day,
                late: false,
                deleted: false,
            })
            .collect(),
    }
}

/// A fresh document with its collection maps made once, so later
/// concurrent writers share them instead of racing to create them.
fn new_doc(id: &DocumentId, writer: &str, incarnation: u64) -> AutoCommit {
    let mut doc = AutoCommit::new().with_actor(actor_for(&station(writer), incarnation));
    init_document(&mut doc, id).unwrap();
    for collection in [
        layout::VOLUNTEERS,
        layout::ID_DIGESTS,
        layout::TEAMS,
        layout::ACTIVITIES,
        layout::ORDERS,
    ] {
        doc.put_object(ROOT, collection, ObjType::Map).unwrap();
    }
    doc.commit();
    doc
}

/// A small county: xh → t1 (v1, v2), t2 (v3).
struct County {
    docs: BTreeMap<DocumentId, AutoCommit>,
    index: StatsIndex,
}

impl County {
    fn new() -> County {
        County {
            docs: BTreeMap::new(),
            index: StatsIndex::new(),
        }
    }

    fn doc(&mut self, id: &DocumentId) -> &mut AutoCommit {
        self.docs
            .entry(id.clone())
            .or_insert_with(|| new_doc(id, id.owner.as_str(), 1))
    }

    fn edit(&mut self, id: &DocumentId, edit: impl FnOnce(&mut AutoCommit)) {
        edit(self.doc(id));
        let doc = &self.docs[id];
        self.index.apply_document(id, doc).unwrap();
    }

    fn check_against_scratch(&self) {
        let scratch = recompute_from_scratch(self.docs.iter()).unwrap();
        assert_eq!(self.index.statistics(), scratch);
    }
}

fn registry() -> Vec<Station> {
    let s = |id: &str, tier: Tier| Station {
        id: station(id),
        name: id.to_string(),
        tier,
    };
    vec![
        s("xh", Tier::County),
        s("xh/t1", Tier::Township),
        s("xh/t1/v1", Tier::Village),
        s("xh/t1/v2", Tier::Village),
        s("xh/t2", Tier::Township),
        s("xh/t2/v3", Tier::Village),
        s("xh/t2/v4", Tier::Village),
    ]
}

#[test]
fn figures_roll_up_the_station_path_and_count_volunteers_once() {
    let mut county = County::new();
    let nov = month("2026-11");
    let v1 = DocumentId::activities(&station("xh/t1/v1"), nov);
    let v2 = DocumentId::activities(&station("xh/t1/v2"), nov);
    let v3 = DocumentId::activities(&station("xh/t2/v3"), nov);
    let day = date!(2026 - 11 - 03);
    county.edit(&v1, |d| {
        put_activity(
            d,
            &activity(
                "A1",
                "xh/t1/v1",
                day,
                Form::Lecture,
                Category::Theory,
                &[("V1", 200), ("V2", 150)],
            ),
        )
        .unwrap();
        put_activity(
            d,
            &activity(
                "A2",
                "xh/t1/v1",
                day,
                Form::Help,
                Category::ElderCare,
                &[("V1", 100)],
            ),
        )
        .unwrap();
    });
    county.edit(&v2, |d| {
        let mut a = activity(
            "A1",
            "xh/t1/v2",
            day,
            Form::Lecture,
            Category::Theory,
            &[("V1", 300)],
        );
        // v1's volunteer V1, serving in the neighbouring village.
        a.records[0].home_station = Some(station("xh/t1/v1"));
        put_activity(d, &a).unwrap();
    });
    county.edit(&v3, |d| {
        put_activity(
            d,
            &activity(
                "A1",
                "xh/t2/v3",
                day,
                Form::Entertain,
                Category::Culture,
                &[("V9", 50)],
            ),
        )
        .unwrap();
    });

    let village = county.index.station_month(&station("xh/t1/v1"), nov);
    assert_eq!(village.counts.activities, 2);
    assert_eq!(village.counts.service_records, 3);
    assert_eq!(village.counts.hours_centi, 450);
    assert_eq!(village.counts.beneficiaries, 20);
    assert_eq!(village.volunteers_active, 2);
    let township = county.index.station_month(&station("xh/t1"), nov);
    assert_eq!(township.counts.activities, 3);
    assert_eq!(township.counts.hours_centi, 750);
    assert_eq!(
        township.volunteers_active, 2,
        "V1 served in two villages and counts once"
    );
    assert_eq!(
        county
            .index
            .own_figures(&station("xh/t1"), Period::Month(nov)),
        Figures::default()
    );
    let top = county.index.station_month(&station("xh"), nov);
    assert_eq!(top.counts.activities, 4);
    assert_eq!(top.counts.hours_centi, 800);
    assert_eq!(top.volunteers_active, 3);
    assert_eq!(
        top.by_category
            .iter()
            .find(|c| c.category == Category::Theory)
            .unwrap()
            .counts
            .activities,
        2
    );
    assert_eq!(
        top.by_form.iter().map(|f| f.counts.activities).sum::<u64>(),
        4
    );
    // Nothing leaks into another month or a sibling.
    assert_eq!(
        county
            .index
            .station_month(&station("xh"), month("2026-10"))
            .counts
            .activities,
        0
    );
    assert_eq!(
        county
            .index
            .station_month(&station("xh/t2"), nov)
            .counts
            .hours_centi,
        50
    );
    assert_eq!(
        county
            .index
            .volunteer(&vid("xh/t1/v1", "V1"))
            .unwrap()
            .hours_centi,
        600
    );
    county.check_against_scratch();
}

#[test]
fn corrections_and_deletions_replace_the_old_contribution() {
    let mut county = County::new();
    let nov = month("2026-11");
    let id = DocumentId::activities(&station("xh/t1/v1"), nov);
    let day = date!(2026 - 11 - 03);
    let mut a1 = activity(
        "A1",
        "xh/t1/v1",
        day,
        Form::Lecture,
        Category::Theory,
        &[("V1", 200), ("V2", 150)],
    );
    county.edit(&id, |d| put_activity(d, &a1).unwrap());
    assert_eq!(
        county
            .index
            .station_month(&station("xh"), nov)
            .counts
            .hours_centi,
        350
    );

    a1.records[0].hours = Hours { centi: 300 };
    county.edit(&id, |d| put_activity(d, &a1).unwrap());
    assert_eq!(
        county
            .index
            .station_month(&station("xh"), nov)
            .counts
            .hours_centi,
        450
    );

    a1.records[1].deleted = true;
    county.edit(&id, |d| put_activity(d, &a1).unwrap());
    let figures = county.index.station_month(&station("xh"), nov);
    assert_eq!(
        (
            figures.counts.hours_centi,
            figures.counts.service_records,
            figures.volunteers_active
        ),
        (300, 1, 1)
    );
    assert!(
        county
            .index
            .volunteer(&vid("xh/t1/v1", "V2"))
            .unwrap()
            .hours_centi
            == 0
    );

    county.edit(&id, |d| delete_activity(d, &rid("A1")).unwrap());
    let figures = county.index.station_month(&station("xh"), nov);
    assert_eq!(
        figures,
        Figures::default(),
        "a deleted activity counts for nothing"
    );
    assert_eq!(county.index.statistics(), Statistics::default());
    county.check_against_scratch();
}

#[test]
fn registrations_are_cumulative_and_teams_are_counted() {
    let mut county = County::new();
    let roster = DocumentId::roster(&station("xh/t1/v1"));
    county.edit(&roster, |d| {
        put_volunteer(d, &volunteer("V1", "xh/t1/v1", date!(2026 - 09 - 10))).unwrap();
        put_volunteer(d, &volunteer("V2", "xh/t1/v1", date!(2026 - 11 - 02))).unwrap();
        put_volunteer(d, &volunteer("V3", "xh/t1/v1", date!(2026 - 11 - 20))).unwrap();
        let mut gone = volunteer("V4", "xh/t1/v1", date!(2026 - 11 - 20));
        gone.deleted = true;
        put_volunteer(d, &gone).unwrap();
        put_team(
            d,
            &Team {
                id: rid("T1"),
                name: "队".into(),
                category: Category::Theory,
                station: station("xh/t1/v1"),
                parent: None,
                leader: None,
                members: vec![rid("V1")],
                deleted: false,
            },
        )
        .unwrap();
    });
    let oct = county.index.station_month(&station("xh"), month("2026-10"));
    assert_eq!(
        (oct.volunteers_registered, oct.volunteers_new, oct.teams),
        (1, 0, 1)
    );
    let nov = county
        .index
        .station_month(&station("xh/t1"), month("2026-11"));
    assert_eq!((nov.volunteers_registered, nov.volunteers_new), (3, 2));
    let q4 = county.index.figures(
        &station("xh"),
        Period::Quarter(Quarter::parse("2026Q4").unwrap()),
    );
    assert_eq!((q4.volunteers_registered, q4.volunteers_new), (3, 2));
    assert_eq!(county.index.volunteers_in(&station("xh/t1"), 10).len(), 3);
    assert!(county.index.volunteers_in(&station("xh/t2"), 10).is_empty());
    county.check_against_scratch();
}

#[test]
fn orders_follow_the_four_order_workflow() {
    let mut county = County::new();
    let nov = month("2026-11");
    let id = DocumentId::orders(&station("xh/t2/v3"), nov);
    let order = |n: &str, status: OrderStatus, rating: Option<u8>| Order {
        id: rid(n),
        station: station("xh/t2/v3"),
        menu_item: "义诊".into(),
        requester: "王".into(),
        placed_on: date!(2026 - 11 - 02),
        status,
        dispatched_by: None,
        team: None,
        rating,
        comment: String::new(),
    };
    county.edit(&id, |d| {
        put_order(d, &order("O1", OrderStatus::Placed, None)).unwrap();
        put_order(d, &order("O2", OrderStatus::Taken, None)).unwrap();
        put_order(d, &order("O3", OrderStatus::Rated, Some(5))).unwrap();
        put_order(d, &order("O4", OrderStatus::Rated, Some(4))).unwrap();
        put_order(d, &order("O5", OrderStatus::Cancelled, None)).unwrap();
    });
    let figures = county.index.station_month(&station("xh"), nov);
    assert_eq!(
        figures.orders,
        OrderCounts {
            placed: 5,
            dispatched: 3,
            taken: 3,
            rated: 2,
            cancelled: 1,
            ratings: 2,
            rating_sum: 9
        }
    );
    assert_eq!(figures.orders.satisfaction(), Some(4.5));
    county.check_against_scratch();
}

#[test]
fn coverage_counts_villages_and_townships_with_activities() {
    let mut county = County::new();
    let nov = month("2026-11");
    let day = date!(2026 - 11 - 03);
    for village in ["xh/t1/v1", "xh/t1/v2"] {
        county.edit(&DocumentId::roster(&station(village)), |d| {
            put_volunteer(d, &volunteer("V1", village, day)).unwrap();
        });
    }
    county.edit(&DocumentId::roster(&station("xh/t2/v3")), |_| {});
    county.edit(&DocumentId::activities(&station("xh/t1/v1"), nov), |d| {
        put_activity(
            d,
            &activity("A1", "xh/t1/v1", day, Form::Help, Category::Health, &[]),
        )
        .unwrap();
    });
    let with_registry = county
        .index
        .coverage(&station("xh"), Period::Month(nov), &registry());
    assert_eq!(
        with_registry,
        Coverage {
            villages: 4,
            villages_active: 1,
            townships: 2,
            townships_active: 1,
            from_registry: true
        }
    );
    assert_eq!(with_registry.village_share(), Some(0.25));
    let seen_only = county
        .index
        .coverage(&station("xh"), Period::Month(nov), &[]);
    assert_eq!(
        (
            seen_only.villages,
            seen_only.villages_active,
            seen_only.townships
        ),
        (3, 1, 2)
    );
    assert!(!seen_only.from_registry);
    // A registry naming only the county itself (all a node may know) says
    // nothing about villages: they are inferred as without a registry.
    let county_only = [Station {
        id: station("xh"),
        name: "县".into(),
        tier: Tier::County,
    }];
    let inferred = county
        .index
        .coverage(&station("xh"), Period::Month(nov), &county_only);
    assert_eq!(
        (
            inferred.villages,
            inferred.villages_active,
            inferred.townships,
            inferred.from_registry
        ),
        (3, 1, 2, false)
    );
    let township = county
        .index
        .coverage(&station("xh/t1"), Period::Month(nov), &registry());
    assert_eq!(
        (
            township.villages,
            township.villages_active,
            township.townships
        ),
        (2, 1, 1)
    );

    county
        .index
        .freshness_mut()
        .record_heard_from(&station("xh/t1/v1"), 42);
    let table = county
        .index
        .station_table(&station("xh"), Period::Month(nov), &registry());
    let ids: Vec<&str> = table.iter().map(|r| r.station.as_str()).collect();
    assert_eq!(
        ids,
        ["xh", "xh/t1", "xh/t1/v1", "xh/t1/v2", "xh/t2", "xh/t2/v3", "xh/t2/v4"]
    );
    assert_eq!(table[0].subtree.counts.activities, 1);
    assert_eq!(table[2].own.counts.activities, 1);
    assert_eq!(
        table[2].freshness.last_heard_ms,
        Some(42),
        "rows say how fresh they are"
    );
    assert_eq!(table[6].tier, Some(Tier::Village));
}

#[test]
fn stars_follow_accumulated_hours_across_months() {
    let mut county = County::new();
    for (m, day) in [
        ("2026-09", date!(2026 - 09 - 01)),
        ("2026-10", date!(2026 - 10 - 01)),
    ] {
        let id = DocumentId::activities(&station("xh/t1/v1"), month(m));
        county.edit(&id, |d| {
            for n in 0..30 {
                let day = day + time::Duration::days(n);
                let a = activity(
                    &format!("A{n}"),
                    "xh/t1/v1",
                    day,
                    Form::Help,
                    Category::Health,
                    &[("V1", 200)],
                );
                put_activity(d, &a).unwrap();
            }
        });
    }
    county.edit(&DocumentId::roster(&station("xh/t1/v1")), |d| {
        put_volunteer(d, &volunteer("V1", "xh/t1/v1", date!(2026 - 01 - 01))).unwrap();
    });
    let standing = county.index.volunteer(&vid("xh/t1/v1", "V1")).unwrap();
    assert_eq!(
        (
            standing.hours_centi,
            standing.service_records,
            standing.star_level
        ),
        (12_000, 60, 1)
    );
    assert_eq!(county.index.star_levels(&station("xh")), [0, 1, 0, 0, 0, 0]);
    let q3 = county.index.figures(
        &station("xh"),
        Period::Quarter(Quarter::parse("2026Q3").unwrap()),
    );
    assert_eq!((q3.counts.activities, q3.volunteers_active), (30, 1));
    county.check_against_scratch();
}

#[test]
fn snapshot_restores_the_same_statistics() {
    let mut county = County::new();
    let day = date!(2026 - 11 - 03);
    county.edit(
        &DocumentId::activities(&station("xh/t1/v1"), month("2026-11")),
        |d| {
            put_activity(
                d,
                &activity(
                    "A1",
                    "xh/t1/v1",
                    day,
                    Form::Help,
                    Category::Health,
                    &[("V1", 100)],
                ),
            )
            .unwrap();
        },
    );
    county.edit(&DocumentId::roster(&station("xh/t1/v2")), |d| {
        put_volunteer(d, &volunteer("V2", "xh/t1/v2", day)).unwrap();
    });
    county
        .index
        .freshness_mut()
        .record_heard_from(&station("xh/t1"), 1_000);
    let snapshot = county.index.snapshot();
    let bytes = postcard::to_allocvec(&snapshot).unwrap();
    let restored = StatsIndex::restore(postcard::from_bytes(&bytes).unwrap()).unwrap();
    assert_eq!(restored.statistics(), county.index.statistics());
    assert_eq!(restored.freshness(), county.index.freshness());
    let json = serde_json::to_string(&snapshot).unwrap();
    let restored = StatsIndex::restore(serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(restored.statistics(), county.index.statistics());
    // Statistics serialise as JSON too (the simulator prints them).
    assert!(serde_json::to_string(&county.index.statistics())
        .unwrap()
        .contains("2026-11"));
}

#[test]
fn a_contribution_for_another_document_is_refused() {
    let mut index = StatsIndex::new();
    let nov = month("2026-11");
    let doc = new_doc(
        &DocumentId::activities(&station("xh/t1/v1"), nov),
        "xh/t1/v1",
        1,
    );
    let contribution =
        Contribution::of(&DocumentId::activities(&station("xh/t1/v1"), nov), &doc).unwrap();
    let error = index
        .apply(
            &DocumentId::activities(&station("xh/t1/v2"), nov),
            contribution,
        )
        .unwrap_err();
    assert!(matches!(error, StatsError::Mismatch { .. }), "{error}");
    assert_eq!(index.documents(), 0);
}

#[test]
fn an_unreadable_document_keeps_its_last_figures_and_is_listed() {
    let mut county = County::new();
    let nov = month("2026-11");
    let id = DocumentId::activities(&station("xh/t1/v1"), nov);
    let day = date!(2026 - 11 - 03);
    county.edit(&id, |d| {
        put_activity(
            d,
            &activity(
                "A1",
                "xh/t1/v1",
                day,
                Form::Help,
                Category::Health,
                &[("V1", 100)],
            ),
        )
        .unwrap();
    });
    let doc = county.doc(&id);
    let (_, all) = doc.get(ROOT, layout::ACTIVITIES).unwrap().unwrap();
    let (_, a1) = doc.get(&all, "A1").unwrap().unwrap();
    doc.put(&a1, "form", "dance").unwrap();
    let doc = &county.docs[&id];
    let error = county.index.apply_document(&id, doc).unwrap_err();
    assert!(
        matches!(&error, StatsError::Unreadable { document, .. } if *document == id),
        "{error}"
    );
    assert!(county.index.unreadable().contains_key(&id));
    assert_eq!(
        county
            .index
            .station_month(&station("xh"), nov)
            .counts
            .hours_centi,
        100
    );
    assert!(recompute_from_scratch(county.docs.iter()).is_err());
}

#[test]
fn freshness_reads_change_times_and_flags_quiet_stations() {
    let id = DocumentId::activities(&station("xh/t1/v1"), month("2026-11"));
    let mut village = new_doc(&id, "xh/t1/v1", 1);
    put_activity(
        &mut village,
        &activity(
            "A1",
            "xh/t1/v1",
            date!(2026 - 11 - 03),
            Form::Help,
            Category::Health,
            &[],
        ),
    )
    .unwrap();
    village.commit_with(CommitOptions::default().with_time(5 * DAY_MS / 1000));
    let mut township = village.fork().with_actor(actor_for(&station("xh/t1"), 2));
    put_activity(
        &mut township,
        &activity(
            "A2",
            "xh/t1/v1",
            date!(2026 - 11 - 04),
            Form::Help,
            Category::Health,
            &[],
        ),
    )
    .unwrap();
    township.commit_with(CommitOptions::default().with_time(9 * DAY_MS / 1000));
    village.merge(&mut township).unwrap();

    let mut freshness = Freshness::default();
    freshness.observe_document(&mut village, &[]);
    assert_eq!(
        freshness.of(&station("xh/t1/v1")).newest_change_ms,
        Some(5 * DAY_MS)
    );
    assert_eq!(
        freshness.of(&station("xh/t1")).newest_change_ms,
        Some(9 * DAY_MS)
    );
    // Older evidence never makes a station look older.
    freshness.observe_change(&actor_for(&station("xh/t1/v1"), 1), DAY_MS / 1000);
    assert_eq!(
        freshness.of(&station("xh/t1/v1")).newest_change_ms,
        Some(5 * DAY_MS)
    );
    freshness.record_heard_from(&station("xh/t1"), 10 * DAY_MS);

    let quiet = freshness.quiet_stations(13 * DAY_MS, 7);
    assert_eq!(quiet.len(), 1);
    assert_eq!(
        (quiet[0].station.as_str(), quiet[0].silent_days),
        ("xh/t1/v1", Some(8))
    );
    assert!(
        freshness.quiet_stations(12 * DAY_MS, 7).is_empty(),
        "exactly 7 days is not yet quiet"
    );
    let expected = [station("xh/t1/v1"), station("xh/t2/v3")];
    let quiet = freshness.quiet_among(&expected, 13 * DAY_MS, 7);
    assert_eq!(
        quiet[0].station,
        station("xh/t2/v3"),
        "never heard from comes first"
    );
    assert_eq!(quiet[0].silent_days, None);
}

#[test]
fn conflicts_are_listed_with_their_document() {
    let nov = month("2026-11");
    let id = DocumentId::activities(&station("xh/t1/v1"), nov);
    let mut village = new_doc(&id, "xh/t1/v1", 1);
    let day = date!(2026 - 11 - 03);
    let mut a = activity("A1", "xh/t1/v1", day, Form::Help, Category::Health, &[]);
    put_activity(&mut village, &a).unwrap();
    village.commit();
    let mut township = village.fork().with_actor(actor_for(&station("xh/t1"), 2));
    a.place = "村委会".into();
    put_activity(&mut village, &a).unwrap();
    a.place = "文化站".into();
    put_activity(&mut township, &a).unwrap();
    village.merge(&mut township).unwrap();
    let clean_id = DocumentId::roster(&station("xh/t1/v1"));
    let clean = new_doc(&clean_id, "xh/t1/v1", 1);

    let listing = list_conflicts([(&id, &village), (&clean_id, &clean)], 100);
    assert_eq!(listing.conflicts.len(), 1);
    assert_eq!(listing.conflicts[0].document, id);
    assert_eq!(listing.conflicts[0].conflict.path, "activities.A1.place");
    assert_eq!(listing.left_out, 0);
    let capped = list_conflicts([(&id, &village)], 0);
    assert_eq!((capped.conflicts.len(), capped.left_out), (0, 1));
    let json = serde_json::to_value(&listing).unwrap();
    assert_eq!(
        json["conflicts"][0]["document"],
        "activities:xh/t1/v1:2026-11"
    );
}

#[test]
fn periods_parse_and_name_their_months() {
    let q = Quarter::parse("2026Q4").unwrap();
    assert_eq!(
        q.months(),
        [month("2026-10"), month("2026-11"), month("2026-12")]
    );
    assert_eq!(q.to_string(), "2026Q4");
    assert_eq!(
        Quarter::of(month("2026-03")),
        Quarter::parse("2026q1").unwrap()
    );
    for bad in ["2026Q5", "2026Q0", "26Q1", "2026-11", "Q1"] {
        assert!(Quarter::parse(bad).is_none(), "{bad}");
    }
    assert_eq!(
        Period::parse("2026-11"),
        Some(Period::Month(month("2026-11")))
    );
    assert_eq!(
        Period::parse("2026Q2"),
        Some(Period::Quarter(Quarter::new(2026, 2).unwrap()))
    );
    assert_eq!(month_of(date!(1998 - 05 - 01)), month("2000-01"));
}

// ---------------------------------------------------------------- property

const STATIONS: [&str; 3] = ["xh/t1/v1", "xh/t1/v2", "xh/t2/v3"];
const MONTHS: [&str; 2] = ["2026-09", "2026-10"];

#[derive(Debug, Clone)]
enum Op {
    PutActivity {
        at_b: bool,
        station: usize,
        month: usize,
        activity: u8,
        form: usize,
        category: usize,
        late: bool,
        records: Vec<(u8, u32, bool, Option<usize>)>,
    },
    DeleteActivity {
        at_b: bool,
        station: usize,
        month: usize,
        activity: u8,
    },
    DeleteRecord {
        at_b: bool,
        station: usize,
        month: usize,
        activity: u8,
        volunteer: u8,
    },
    PutVolunteer {
        at_b: bool,
        station: usize,
        volunteer: u8,
        month: usize,
        deleted: bool,
    },
    PutTeam {
        at_b: bool,
        station: usize,
        team: u8,
        deleted: bool,
    },
    PutOrder {
        at_b: bool,
        station: usize,
        month: usize,
        order: u8,
        status: usize,
        rating: u8,
    },
    MergeIntoA,
    MergeIntoB,
}

fn op() -> impl Strategy<Value = Op> {
    let at = any::<bool>();
    let s = 0..STATIONS.len();
    let m = 0..MONTHS.len();
    prop_oneof![
        4 => (at, s.clone(), m.clone(), 0u8..4, 0..Form::ALL.len(), 0..3usize, any::<bool>(),
            proptest::collection::vec((0u8..6, 1u32..500, any::<bool>(),
                proptest::option::weighted(0.3, 0..STATIONS.len())), 0..4))
            .prop_map(|(at_b, station, month, activity, form, category, late, records)| Op::PutActivity {
                at_b, station, month, activity, form, category, late, records
            }),
        1 => (at, s.clone(), m.clone(), 0u8..4)
            .prop_map(|(at_b, station, month, activity)| Op::DeleteActivity { at_b, station, month, activity }),
        1 => (at, s.clone(), m.clone(), 0u8..4, 0u8..6).prop_map(|(at_b, station, month, activity, volunteer)| {
            Op::DeleteRecord { at_b, station, month, activity, volunteer }
        }),
        2 => (at, s.clone(), 0u8..6, m.clone(), proptest::bool::weighted(0.2))
            .prop_map(|(at_b, station, volunteer, month, deleted)| Op::PutVolunteer { at_b, station, volunteer, month, deleted }),
        1 => (at, s.clone(), 0u8..3, proptest::bool::weighted(0.3))
            .prop_map(|(at_b, station, team, deleted)| Op::PutTeam { at_b, station, team, deleted }),
        1 => (at, s, m, 0u8..3, 0..OrderStatus::ALL.len(), 0u8..6)
            .prop_map(|(at_b, station, month, order, status, rating)| Op::PutOrder { at_b, station, month, order, status, rating }),
        1 => Just(Op::MergeIntoA),
        1 => Just(Op::MergeIntoB),
    ]
}

/// Two nodes editing the same documents: A (the county, whose index is under
/// test) and B (a township), merging now and then.
struct TwoNodes {
    a: BTreeMap<DocumentId, AutoCommit>,
    b: BTreeMap<DocumentId, AutoCommit>,
    index: StatsIndex,
    clock_ms: i64,
}

impl TwoNodes {
    fn doc(&mut self, id: &DocumentId, at_b: bool) -> &mut AutoCommit {
        if !self.a.contains_key(id) {
            let mut doc = new_doc(id, "xh", 1);
            let fork = doc.fork().with_actor(actor_for(&station("xh/t1"), 2));
            self.b.insert(id.clone(), fork);
            self.index.apply_document(id, &doc).unwrap();
            self.a.insert(id.clone(), doc);
        }
        if at_b {
            self.b.get_mut(id).unwrap()
        } else {
            self.a.get_mut(id).unwrap()
        }
    }

    fn edit(&mut self, id: &DocumentId, at_b: bool, edit: impl FnOnce(&mut AutoCommit)) {
        self.clock_ms += 1_000;
        let now = self.clock_ms;
        let doc = self.doc(id, at_b);
        edit(doc);
        doc.commit_with(CommitOptions::default().with_time(now));
        if !at_b {
            self.index.apply_document(id, &self.a[id]).unwrap();
        }
    }

    fn run(&mut self, op: Op) {
        let activities =
            |s: usize, m: usize| DocumentId::activities(&station(STATIONS[s]), month(MONTHS[m]));
        let day = |m: usize| {
            Date::from_calendar_date(2026, time::Month::try_from(9 + m as u8).unwrap(), 1).unwrap()
        };
        match op {
            Op::PutActivity {
                at_b,
                station: s,
                month: m,
                activity: n,
                form,
                category,
                late,
                records,
            } => {
                self.edit(&activities(s, m), at_b, |d| {
                    let mut seen = Vec::new();
                    let records: Vec<(String, u32, bool, Option<usize>)> = records
                        .into_iter()
                        .filter(|(v, ..)| {
                            let fresh = !seen.contains(v);
                            seen.push(*v);
                            fresh
                        })
                        .map(|(v, centi, late, home)| (format!("V{v}"), centi, late, home))
                        .collect();
                    let listed: Vec<(&str, u32)> =
                        records.iter().map(|(v, c, ..)| (v.as_str(), *c)).collect();
                    let mut a = activity(
                        &format!("A{n}"),
                        STATIONS[s],
                        day(m),
                        Form::ALL[form],
                        [Category::Theory, Category::Health, Category::Culture][category],
                        &listed,
                    );
                    a.late = late;
                    for (record, (_, _, late, home)) in a.records.iter_mut().zip(&records) {
                        record.late = *late;
                        // Another station's volunteer sharing the number: a
                        // different person, whom the figures must keep apart.
                        record.home_station = home.map(|h| station(STATIONS[h]));
                    }
                    // The 24-hours-a-day rule may refuse it: a refused edit changes nothing.
                    let _ = put_activity(d, &a);
                });
            }
            Op::DeleteActivity {
                at_b,
                station: s,
                month: m,
                activity: n,
            } => {
                self.edit(&activities(s, m), at_b, |d| {
                    let _ = delete_activity(d, &rid(&format!("A{n}")));
                });
            }
            Op::DeleteRecord {
                at_b,
                station: s,
                month: m,
                activity: n,
                volunteer: v,
            } => {
                self.edit(&activities(s, m), at_b, |d| {
                    if let Ok(Some(mut a)) = layout::activity(d, &rid(&format!("A{n}"))) {
                        if let Some(record) = a
                            .records
                            .iter_mut()
                            .find(|r| r.volunteer.as_str() == format!("V{v}"))
                        {
                            record.deleted = true;
                            let _ = put_activity(d, &a);
                        }
                    }
                });
            }
            Op::PutVolunteer {
                at_b,
                station: s,
                volunteer: v,
                month: m,
                deleted,
            } => {
                self.edit(&DocumentId::roster(&station(STATIONS[s])), at_b, |d| {
                    let mut record = volunteer(&format!("V{v}"), STATIONS[s], day(m));
                    record.deleted = deleted;
                    put_volunteer(d, &record).unwrap();
                });
            }
            Op::PutTeam {
                at_b,
                station: s,
                team,
                deleted,
            } => {
                self.edit(&DocumentId::roster(&station(STATIONS[s])), at_b, |d| {
                    put_team(
                        d,
                        &Team {
                            id: rid(&format!("T{team}")),
                            name: "队".into(),
                            category: Category::Health,
                            station: station(STATIONS[s]),
                            parent: None,
                            leader: None,
                            members: vec![],
                            deleted,
                        },
                    )
                    .unwrap();
                });
            }
            Op::PutOrder {
                at_b,
                station: s,
                month: m,
                order,
                status,
                rating,
            } => {
                self.edit(
                    &DocumentId::orders(&station(STATIONS[s]), month(MONTHS[m])),
                    at_b,
                    |d| {
                        put_order(
                            d,
                            &Order {
                                id: rid(&format!("O{order}")),
                                station: station(STATIONS[s]),
                                menu_item: "义诊".into(),
                                requester: "王".into(),
                                placed_on: day(m),
                                status: OrderStatus::ALL[status],
                                dispatched_by: None,
                                team: None,
                                rating: (1..=5).contains(&rating).then_some(rating),
                                comment: String::new(),
                            },
                        )
                        .unwrap();
                    },
                );
            }
            Op::MergeIntoA => {
                for (id, b) in self.b.iter_mut() {
                    let a = self.a.get_mut(id).unwrap();
                    a.merge(b).unwrap();
                    self.index.apply_document(id, &*a).unwrap();
                }
            }
            Op::MergeIntoB => {
                for (id, a) in self.a.iter_mut() {
                    self.b.get_mut(id).unwrap().merge(a).unwrap();
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any interleaving of edits, corrections, deletions and merges leaves
    /// the incremental index equal to a recomputation from the documents.
    #[test]
    fn incremental_equals_from_scratch(ops in proptest::collection::vec(op(), 1..40)) {
        let mut nodes = TwoNodes { a: BTreeMap::new(), b: BTreeMap::new(), index: StatsIndex::new(), clock_ms: 0 };
        for op in ops {
            nodes.run(op);
            let scratch = recompute_from_scratch(nodes.a.iter()).unwrap();
            prop_assert_eq!(&nodes.index.statistics(), &scratch);
        }
        // Both nodes converge after a full exchange, and a rebuild agrees.
        nodes.run(Op::MergeIntoA);
        nodes.run(Op::MergeIntoB);
        let from_b = recompute_from_scratch(nodes.b.iter()).unwrap();
        prop_assert_eq!(&nodes.index.statistics(), &from_b);
        let rebuilt = StatsIndex::from_documents(nodes.a.iter());
        prop_assert_eq!(rebuilt.statistics(), nodes.index.statistics());
        let restored = StatsIndex::restore(nodes.index.snapshot()).unwrap();
        prop_assert_eq!(restored.statistics(), nodes.index.statistics());
        // Spot-check the query path against the canonical form.
        let scratch = recompute_from_scratch(nodes.a.iter()).unwrap();
        for m in MONTHS {
            let top = nodes.index.station_month(&station("xh"), month(m));
            let expected = scratch.stations.get(&station("xh")).and_then(|s| s.months.get(m)).cloned().unwrap_or_default();
            prop_assert_eq!(top.counts.activities, expected.cells.iter().map(|c| c.counts.activities).sum::<u64>());
            prop_assert_eq!(top.volunteers_active, expected.volunteers_active);
        }
    }
}

#[test]
fn own_figures_count_a_volunteer_once_per_quarter() {
    let mut county = County::new();
    let (oct, nov) = (month("2026-10"), month("2026-11"));
    let v1 = "xh/t1/v1";
    county.edit(&DocumentId::activities(&station(v1), oct), |d| {
        let a = activity(
            "A1",
            v1,
            date!(2026 - 10 - 03),
            Form::Help,
            Category::Health,
            &[("V1", 100)],
        );
        put_activity(d, &a).unwrap();
    });
    county.edit(&DocumentId::activities(&station(v1), nov), |d| {
        let records = [("V1", 100), ("V2", 200)];
        let a = activity(
            "A2",
            v1,
            date!(2026 - 11 - 03),
            Form::Help,
            Category::Health,
            &records,
        );
        put_activity(d, &a).unwrap();
    });
    // A sibling whose path sorts between v1 and v1's (absent) children.
    county.edit(&DocumentId::activities(&station("xh/t1/v1-b"), nov), |d| {
        let a = activity(
            "A3",
            "xh/t1/v1-b",
            date!(2026 - 11 - 04),
            Form::Help,
            Category::Health,
            &[("V3", 100)],
        );
        put_activity(d, &a).unwrap();
    });
    let quarter = Period::Quarter(Quarter::parse("2026Q4").unwrap());
    let own = |period| {
        county
            .index
            .own_figures(&station(v1), period)
            .volunteers_active
    };
    assert_eq!(own(Period::Month(oct)), 1);
    assert_eq!(own(Period::Month(nov)), 2);
    assert_eq!(own(quarter), 2, "V1 served in both months, counted once");
    // v1 is a leaf: its own figures are its subtree's.
    for period in [Period::Month(oct), Period::Month(nov), quarter] {
        assert_eq!(
            county.index.own_figures(&station(v1), period),
            county.index.figures(&station(v1), period)
        );
    }
    let coverage = county
        .index
        .coverage(&station("xh"), Period::Month(nov), &[]);
    assert_eq!((coverage.villages, coverage.villages_active), (2, 2));
    county.check_against_scratch();
}

/// Retiring a station changes who is expected to report, never figures:
/// for every retirement day from September to January, every month that
/// ends before it keeps its coverage exactly; later months do not count the
/// retired villages as not reporting, unless they reported anyway.
#[test]
fn a_retirement_leaves_earlier_months_as_they_were_and_later_ones_do_not_expect_it() {
    let mut county = County::new();
    let (oct, nov, dec) = (month("2026-10"), month("2026-11"), month("2026-12"));
    for (m, day) in [(oct, date!(2026 - 10 - 09)), (dec, date!(2026 - 12 - 04))] {
        // v1 reports in October and, not having heard it was closed, in
        // December; v2 never reports.
        county.edit(&DocumentId::activities(&station("xh/t1/v1"), m), |d| {
            put_activity(
                d,
                &activity("A1", "xh/t1/v1", day, Form::Help, Category::Health, &[]),
            )
            .unwrap();
        });
    }
    let months = [oct, nov, dec];
    let periods: Vec<Period> = months
        .iter()
        .map(|m| Period::Month(*m))
        .chain([Period::Quarter(Quarter::new(2026, 4).unwrap())])
        .collect();
    let root = station("xh");
    let before: Vec<(Coverage, Figures)> = periods
        .iter()
        .map(|p| {
            (
                county.index.coverage(&root, *p, &registry()),
                county.index.figures(&root, *p),
            )
        })
        .collect();
    let mut day = date!(2026 - 09 - 01);
    while day <= date!(2027 - 01 - 31) {
        county.index.set_retired(RetiredStations::new([
            (station("xh/t1/v1"), day),
            (station("xh/t1/v2"), day),
        ]));
        for (period, (coverage, figures)) in periods.iter().zip(&before) {
            let last_day = period.last_month().next();
            let last_day = Date::from_calendar_date(
                i32::from(last_day.year),
                time::Month::try_from(last_day.month).unwrap(),
                1,
            )
            .unwrap()
            .previous_day()
            .unwrap();
            let now = county.index.coverage(&root, *period, &registry());
            assert_eq!(
                &county.index.figures(&root, *period),
                figures,
                "{period} {day}"
            );
            let first_day = Date::from_calendar_date(
                i32::from(period.months()[0].year),
                time::Month::try_from(period.months()[0].month).unwrap(),
                1,
            )
            .unwrap();
            if last_day < day || first_day < day {
                // Open on at least one day of the period: as before.
                assert_eq!(&now, coverage, "{period} retired on {day}");
                continue;
            }
            let v1_active = period.months().contains(&oct) || period.months().contains(&dec);
            assert_eq!(
                now.villages,
                coverage.villages - if v1_active { 1 } else { 2 },
                "{period} retired on {day}: v2 (and a silent v1) not expected"
            );
            assert_eq!(
                now.villages_active, coverage.villages_active,
                "{period} {day}"
            );
        }
        day = day.next_day().unwrap();
    }
    county.index.set_retired(RetiredStations::default());
    assert_eq!(
        county
            .index
            .coverage(&root, Period::Month(nov), &registry()),
        before[1].0,
        "un-retired: as before"
    );
}

#[test]
fn documents_serving_lists_exactly_the_months_with_a_live_record_of_the_volunteer() {
    let mut county = County::new();
    let months = [
        ("xh/t1/v1", "2026-09", date!(2026 - 09 - 03), "V1"),
        ("xh/t1/v1", "2026-10", date!(2026 - 10 - 03), "V2"),
        ("xh/t2/v3", "2026-10", date!(2026 - 10 - 05), "V1"),
        ("xh/t2/v3", "2026-11", date!(2026 - 11 - 05), "V1"),
    ];
    for (at, m, day, volunteer) in months {
        let id = DocumentId::activities(&station(at), month(m));
        county.edit(&id, |d| {
            let a = activity(
                "A1",
                at,
                day,
                Form::Help,
                Category::Health,
                &[(volunteer, 150)],
            );
            put_activity(d, &a).unwrap();
        });
    }
    let serving = |county: &County, home: &str, number: &str| {
        county.index.documents_serving(&vid(home, number))
    };
    // v1's V1 and v3's V1 are two people sharing a number.
    assert_eq!(
        serving(&county, "xh/t1/v1", "V1"),
        vec![DocumentId::activities(
            &station("xh/t1/v1"),
            month("2026-09")
        )]
    );
    assert_eq!(
        serving(&county, "xh/t2/v3", "V1"),
        vec![
            DocumentId::activities(&station("xh/t2/v3"), month("2026-10")),
            DocumentId::activities(&station("xh/t2/v3"), month("2026-11")),
        ]
    );
    assert_eq!(
        serving(&county, "xh/t1/v1", "V2"),
        vec![DocumentId::activities(
            &station("xh/t1/v1"),
            month("2026-10")
        )]
    );
    assert!(serving(&county, "xh/t1/v1", "V9").is_empty());
    // A deleted activity is no service: its month is no longer listed.
    let november = DocumentId::activities(&station("xh/t2/v3"), month("2026-11"));
    county.edit(&november, |d| delete_activity(d, &rid("A1")).unwrap());
    assert!(!serving(&county, "xh/t2/v3", "V1").contains(&november));
}

#[test]
fn two_villages_volunteer_001_stay_two_people_with_their_own_hours() {
    let mut county = County::new();
    let nov = month("2026-11");
    let day = date!(2026 - 11 - 03);
    for (village, centi) in [("xh/t1/v1", 300), ("xh/t2/v3", 500)] {
        county.edit(&DocumentId::roster(&station(village)), |d| {
            put_volunteer(d, &volunteer("001", village, date!(2026 - 10 - 01))).unwrap();
        });
        county.edit(&DocumentId::activities(&station(village), nov), |d| {
            let a = activity(
                "A1",
                village,
                day,
                Form::Help,
                Category::Health,
                &[("001", centi)],
            );
            put_activity(d, &a).unwrap();
        });
    }
    // The township's own "001" serves at v1, next to v1's "001": a third
    // person, named on the record by home station.
    county.edit(&DocumentId::roster(&station("xh/t1")), |d| {
        put_volunteer(d, &volunteer("001", "xh/t1", date!(2026 - 10 - 01))).unwrap();
    });
    county.edit(&DocumentId::activities(&station("xh/t1/v1"), nov), |d| {
        let mut a = activity(
            "A2",
            "xh/t1/v1",
            day,
            Form::Lecture,
            Category::Theory,
            &[("001", 200)],
        );
        a.records[0].home_station = Some(station("xh/t1"));
        put_activity(d, &a).unwrap();
    });

    let top = county.index.station_month(&station("xh"), nov);
    assert_eq!((top.counts.hours_centi, top.volunteers_active), (1_000, 3));
    assert_eq!(
        county
            .index
            .own_figures(&station("xh/t1/v1"), Period::Month(nov))
            .volunteers_active,
        2,
        "v1's 001 and the township's 001 both served at v1"
    );
    let listed: Vec<(String, String, u64)> = county
        .index
        .volunteers_in(&station("xh"), 10)
        .into_iter()
        .map(|s| {
            (
                s.home_station.to_string(),
                s.number.to_string(),
                s.hours_centi,
            )
        })
        .collect();
    let row = |home: &str, centi| (home.to_string(), "001".to_string(), centi);
    assert_eq!(
        listed,
        vec![
            row("xh/t2/v3", 500),
            row("xh/t1/v1", 300),
            row("xh/t1", 200)
        ]
    );
    assert_eq!(county.index.star_levels(&station("xh")), [3, 0, 0, 0, 0, 0]);
    assert_eq!(
        county
            .index
            .volunteers_numbered(&rid("001"), &station("xh")),
        vec![
            vid("xh/t1", "001"),
            vid("xh/t1/v1", "001"),
            vid("xh/t2/v3", "001")
        ]
    );
    assert_eq!(
        county
            .index
            .volunteers_numbered(&rid("001"), &station("xh/t2")),
        vec![vid("xh/t2/v3", "001")]
    );
    assert_eq!(
        county.index.documents_serving(&vid("xh/t1", "001")),
        vec![DocumentId::activities(&station("xh/t1/v1"), nov)]
    );
    county.check_against_scratch();
    let restored = StatsIndex::restore(county.index.snapshot()).unwrap();
    assert_eq!(restored.statistics(), county.index.statistics());
}
