use super::*;
use crate::domain::model::{Category, Form, Hours, Sex};
use crate::identity::actor::actor_for;
use time::macros::date;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn sample_volunteer(number: &str, digest: &str) -> Volunteer {
    Volunteer {
        number: RecordId::parse("n", number).unwrap(),
        name: "王秀英".into(),
        sex: Sex::Female,
        birth_date: date!(1980 - 05 - 02),
        residence_area: "城关镇东村".into(),
        phone: "13800000000".into(),
        phone_seals: Default::default(),
        id_digest: digest.into(),
        id_sealed: String::new(),
        id_masked: "4101**********123X".into(),
        skills: vec!["剪纸".into(), "急救".into()],
        categories: vec![Category::Culture, Category::Health],
        home_station: station("xh/t1/v1"),
        registered_on: date!(2026 - 03 - 01),
        consent: true,
        party_member: false,
        deleted: false,
    }
}

fn sample_activity(id: &str, hours: &[(&str, u32)]) -> Activity {
    Activity {
        id: RecordId::parse("id", id).unwrap(),
        name: "理论宣讲进村".into(),
        date: date!(2026 - 11 - 03),
        station: station("xh/t1/v1"),
        place: "村文化广场".into(),
        content: "学习宣讲".into(),
        form: Form::Lecture,
        category: Category::Theory,
        team: None,
        person_in_charge: "李明".into(),
        beneficiaries: 60,
        theme: Some("乡村振兴".into()),
        recorded_on: date!(2026 - 11 - 04),
        late: false,
        deleted: false,
        records: hours
            .iter()
            .map(|(v, centi)| ServiceRecord {
                volunteer: RecordId::parse("v", v).unwrap(),
                home_station: None,
                hours: Hours { centi: *centi },
                recorded_on: date!(2026 - 11 - 04),
                late: false,
                deleted: false,
            })
            .collect(),
    }
}

fn doc(actor_station: &str, incarnation: u64) -> AutoCommit {
    AutoCommit::new().with_actor(actor_for(&station(actor_station), incarnation))
}

#[test]
fn volunteer_round_trip_and_duplicate_refusal() {
    let mut d = doc("xh/t1/v1", 1);
    init_document(&mut d, &DocumentId::roster(&station("xh/t1/v1"))).unwrap();
    let v = sample_volunteer("V001", "aa");
    put_volunteer(&mut d, &v).unwrap();
    assert_eq!(volunteers(&d).unwrap(), vec![v.clone()]);
    assert_eq!(
        volunteer_by_digest(&d, "aa").unwrap(),
        Some(v.number.clone())
    );
    // Same person again under another number.
    let error = put_volunteer(&mut d, &sample_volunteer("V002", "aa")).unwrap_err();
    assert_eq!(
        error,
        LayoutError::DuplicateVolunteer {
            existing: v.number.clone()
        }
    );
    assert_eq!(error.field(), "id_number");
    // Updating the same volunteer is fine and writes nothing if unchanged.
    let heads_before = d.get_heads();
    put_volunteer(&mut d, &v).unwrap();
    d.commit();
    assert_eq!(
        d.get_heads(),
        heads_before,
        "an unchanged record makes no change"
    );
}

#[test]
fn activity_round_trip_and_daily_hours_limit() {
    let mut d = doc("xh/t1/v1", 1);
    let a = sample_activity("A1", &[("V001", 300), ("V002", 150)]);
    put_activity(&mut d, &a).unwrap();
    assert_eq!(activities(&d).unwrap(), vec![a.clone()]);
    // Same day, another activity: 22 more hours for V001 exceeds 24.
    let error = put_activity(&mut d, &sample_activity("A2", &[("V001", 2200)])).unwrap_err();
    assert!(
        matches!(&error, LayoutError::Invalid(e) if e.field == "records[0].hours"),
        "{error}"
    );
    put_activity(&mut d, &sample_activity("A2", &[("V001", 2100)])).unwrap();
    // Correcting A1 itself does not count A1's old hours twice.
    put_activity(
        &mut d,
        &sample_activity("A1", &[("V001", 300), ("V002", 200)]),
    )
    .unwrap();
    delete_activity(&mut d, &RecordId::parse("id", "A1").unwrap()).unwrap();
    assert!(
        activity(&d, &RecordId::parse("id", "A1").unwrap())
            .unwrap()
            .unwrap()
            .deleted
    );
    assert!(put_activity(&mut d, &sample_activity("A3", &[("V1", 100), ("V1", 100)])).is_err());
}

/// Two nodes each create the same month's document while apart (the
/// village records its activities, the township records one on the
/// village's behalf): after the merge every activity reads, none lost.
#[test]
fn documents_created_apart_read_as_their_union() {
    let mut village = doc("xh/t1/v1", 1);
    let mut township = doc("xh/t1", 2);
    put_activity(&mut village, &sample_activity("A1", &[("V001", 300)])).unwrap();
    put_activity(&mut village, &sample_activity("A2", &[("V002", 100)])).unwrap();
    put_activity(&mut township, &sample_activity("T1", &[("V001", 200)])).unwrap();
    put_volunteer(&mut village, &sample_volunteer("V001", "d1")).unwrap();
    put_volunteer(&mut township, &sample_volunteer("V009", "d9")).unwrap();
    village.merge(&mut township).unwrap();
    assert_eq!(village.get_all(ROOT, ACTIVITIES).unwrap().len(), 2);

    let ids: Vec<String> = activities(&village)
        .unwrap()
        .iter()
        .map(|a| a.id.to_string())
        .collect();
    assert_eq!(ids, ["A1", "A2", "T1"]);
    let numbers: Vec<String> = volunteers(&village)
        .unwrap()
        .iter()
        .map(|v| v.number.to_string())
        .collect();
    assert_eq!(numbers, ["V001", "V009"]);
    assert!(volunteer_registered(&village, &RecordId::parse("n", "V009").unwrap()).unwrap());
    // The digest index is a union too: a third registration of the
    // township's person at the village is refused.
    let error = put_volunteer(&mut village, &sample_volunteer("V010", "d9")).unwrap_err();
    assert!(
        matches!(error, LayoutError::DuplicateVolunteer { existing } if existing.as_str() == "V009")
    );
    // The daily limit sees hours in both halves: V001 has 3 + 2 hours.
    let too_much = sample_activity("A3", &[("V001", 2000)]);
    assert!(put_activity(&mut village, &too_much).is_err());
    // Split maps are not conflicts; nothing to list.
    assert!(
        conflicts(&village).unwrap().is_empty(),
        "{:?}",
        conflicts(&village)
    );
    // An edit of a record living only in the losing half lands there.
    let mut t1 = activity(&village, &RecordId::parse("id", "T1").unwrap())
        .unwrap()
        .unwrap();
    t1.place = "镇文化站".into();
    put_activity(&mut village, &t1).unwrap();
    assert_eq!(
        activity(&village, &t1.id).unwrap().unwrap().place,
        "镇文化站"
    );
    assert_eq!(activities(&village).unwrap().len(), 3);
}

/// The same record created at two nodes: its fields read from one
/// object, differing values are listed as conflicts and resolvable.
#[test]
fn one_record_created_apart_is_one_record_with_conflicts() {
    let mut village = doc("xh/t1/v1", 1);
    let mut township = doc("xh/t1", 2);
    let mut v = sample_volunteer("V001", "d1");
    put_volunteer(&mut village, &v).unwrap();
    v.phone = "13900000000".into();
    put_volunteer(&mut township, &v).unwrap();
    village.merge(&mut township).unwrap();
    assert_eq!(volunteers(&village).unwrap().len(), 1);
    let found = conflicts(&village).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "volunteers.V001.phone");
    resolve_conflict(&mut village, "volunteers.V001.phone", "13900000000").unwrap();
    assert!(conflicts(&village).unwrap().is_empty());
    assert_eq!(
        volunteer(&village, &v.number).unwrap().unwrap().phone,
        "13900000000"
    );
}

#[test]
fn bulk_activities_equal_one_by_one_and_keep_the_daily_limit() {
    let mut batch = vec![
        sample_activity("A1", &[("V001", 800), ("V002", 100)]),
        sample_activity("A2", &[("V001", 800)]),
        sample_activity("A3", &[("V001", 900)]), // 25 hours: refused
        sample_activity("A4", &[("V001", 100), ("V001", 100)]), // listed twice
    ];
    let mut corrected = sample_activity("A1", &[("V001", 700)]);
    corrected.place = "村委会".into();
    batch.push(corrected); // a repeated id corrects the earlier row
    batch.push(sample_activity("A5", &[("V001", 900)])); // fits after the correction
    let mut bulk = doc("xh/t1/v1", 1);
    let answers = put_activities(&mut bulk, &batch).unwrap();
    let mut single = doc("xh/t1/v1", 1);
    let single_answers: Vec<_> = batch.iter().map(|a| put_activity(&mut single, a)).collect();
    assert_eq!(answers, single_answers);
    assert!(answers[2].is_err() && answers[3].is_err());
    assert!(answers[5].is_ok(), "{answers:?}");
    assert_eq!(activities(&bulk).unwrap(), activities(&single).unwrap());
    assert_eq!(activities(&bulk).unwrap().len(), 3);
    // Into a document that has activities: one by one, same rules.
    let answers = put_activities(&mut bulk, &[sample_activity("A6", &[("V001", 100)])]).unwrap();
    assert!(answers[0].is_err(), "V001 already has 24 hours that day");
}

#[test]
fn the_daily_limit_follows_a_corrected_date() {
    let mut d = doc("xh/t1/v1", 1);
    let mut a1 = sample_activity("A1", &[("V001", 800)]);
    put_activity(&mut d, &a1).unwrap();
    a1.date = date!(2026 - 11 - 04);
    put_activity(&mut d, &a1).unwrap();
    let mut a2 = sample_activity("A2", &[("V001", 1700)]);
    a2.date = date!(2026 - 11 - 04);
    assert!(
        put_activity(&mut d, &a2).is_err(),
        "8 + 17 hours on the 4th"
    );
    let a3 = sample_activity("A3", &[("V001", 2000)]);
    put_activity(&mut d, &a3).unwrap(); // A1 left the 3rd
    assert_eq!(activities(&d).unwrap().len(), 2);
}

#[test]
fn an_activity_entered_before_its_records_counts_once_it_has_them() {
    let mut d = doc("xh/t1/v1", 1);
    let mut a1 = sample_activity("A1", &[]);
    put_activity(&mut d, &a1).unwrap();
    assert!(
        root_maps(&d, DAYS).unwrap().is_empty(),
        "no records, nothing to list"
    );
    // Its records arrive later, after its date was corrected too.
    a1.date = date!(2026 - 11 - 04);
    put_activity(&mut d, &a1).unwrap();
    a1.records = sample_activity("A1", &[("V001", 800)]).records;
    put_activity(&mut d, &a1).unwrap();
    let mut a2 = sample_activity("A2", &[("V001", 1700)]);
    a2.date = date!(2026 - 11 - 04);
    assert!(
        put_activity(&mut d, &a2).is_err(),
        "8 + 17 hours on the 4th"
    );
    // A correction that mentions no records keeps the ones held, on
    // the new date.
    let a3 = sample_activity("A3", &[("V002", 800)]);
    put_activity(&mut d, &a3).unwrap();
    let mut moved = sample_activity("A3", &[]);
    moved.date = date!(2026 - 11 - 05);
    put_activity(&mut d, &moved).unwrap();
    let mut a4 = sample_activity("A4", &[("V002", 1700)]);
    a4.date = date!(2026 - 11 - 05);
    assert!(
        put_activity(&mut d, &a4).is_err(),
        "8 + 17 hours on the 5th"
    );
    // The bulk path too: an activity without records is listed when a
    // correction gives it some.
    let mut bulk = doc("xh/t1/v1", 1);
    let sheet = [sample_activity("B1", &[]), sample_activity("B2", &[])];
    assert!(put_activities(&mut bulk, &sheet)
        .unwrap()
        .iter()
        .all(Result::is_ok));
    put_activity(&mut bulk, &sample_activity("B1", &[("V001", 2000)])).unwrap();
    assert!(put_activity(&mut bulk, &sample_activity("B2", &[("V001", 500)])).is_err());
}

#[test]
fn a_document_without_the_day_index_is_indexed_before_use() {
    let mut d = doc("xh/t1/v1", 1);
    put_activity(&mut d, &sample_activity("A1", &[("V001", 800)])).unwrap();
    d.delete(ROOT, DAYS).unwrap(); // as an older node wrote it
    put_activity(&mut d, &sample_activity("A2", &[("V002", 100)])).unwrap();
    assert!(put_activity(&mut d, &sample_activity("A3", &[("V001", 1700)])).is_err());
}

#[test]
fn bulk_registration_equals_one_by_one_and_refuses_duplicates() {
    let batch: Vec<Volunteer> = (0..40)
        .map(|n| sample_volunteer(&format!("V{n:03}"), &format!("d{n}")))
        .chain([sample_volunteer("V999", "d7")]) // same person as V007
        .collect();
    let mut bulk = doc("xh/t1/v1", 1);
    let answers = put_volunteers(&mut bulk, &batch).unwrap();
    let mut single = doc("xh/t1/v1", 1);
    let single_answers: Vec<_> = batch
        .iter()
        .map(|v| put_volunteer(&mut single, v))
        .collect();
    assert_eq!(answers, single_answers);
    assert!(
        matches!(&answers[40], Err(LayoutError::DuplicateVolunteer { existing }) if existing.as_str() == "V007")
    );
    assert_eq!(volunteers(&bulk).unwrap(), volunteers(&single).unwrap());
    assert_eq!(volunteers(&bulk).unwrap().len(), 40);
    assert_eq!(
        volunteer_by_digest(&bulk, "d7").unwrap().unwrap().as_str(),
        "V007"
    );
    // Into an existing roster the bulk path falls back to one by one.
    let more = [
        sample_volunteer("V100", "d100"),
        sample_volunteer("V101", "d1"),
    ];
    let answers = put_volunteers(&mut bulk, &more).unwrap();
    assert!(answers[0].is_ok());
    assert!(
        matches!(&answers[1], Err(LayoutError::DuplicateVolunteer { existing }) if existing.as_str() == "V001")
    );
    assert_eq!(volunteers(&bulk).unwrap().len(), 41);
}

#[test]
fn concurrent_edits_of_one_field_are_listed_and_resolvable() {
    let mut village = doc("xh/t1/v1", 1);
    put_activity(&mut village, &sample_activity("A1", &[("V001", 300)])).unwrap();
    village.commit();
    let mut township = village.fork().with_actor(actor_for(&station("xh/t1"), 2));
    let mut a = sample_activity("A1", &[("V001", 300)]);
    a.place = "村委会".into();
    put_activity(&mut village, &a).unwrap();
    a.place = "镇文化站".into();
    a.beneficiaries = 80; // a different field: merges without conflict
    put_activity(&mut township, &a).unwrap();
    village.merge(&mut township).unwrap();

    let found = conflicts(&village).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "activities.A1.place");
    let writers: Vec<_> = found[0]
        .values
        .iter()
        .map(|v| v.written_by.clone().unwrap())
        .collect();
    assert!(writers.contains(&station("xh/t1")) && writers.contains(&station("xh/t1/v1")));
    assert_eq!(
        activity(&village, &a.id).unwrap().unwrap().beneficiaries,
        80
    );

    assert!(resolve_conflict(&mut village, "activities.A1.place", "nowhere").is_err());
    resolve_conflict(&mut village, "activities.A1.place", "村委会").unwrap();
    assert!(conflicts(&village).unwrap().is_empty());
    assert_eq!(activity(&village, &a.id).unwrap().unwrap().place, "村委会");
}

#[test]
fn teams_merge_concurrent_membership() {
    let mut a = doc("xh/t1/v1", 1);
    let team = Team {
        id: RecordId::parse("id", "T1").unwrap(),
        name: "东村志愿服务队".into(),
        category: Category::ElderCare,
        station: station("xh/t1/v1"),
        parent: Some("xh/t1:T0".into()),
        leader: None,
        members: vec![RecordId::parse("m", "V001").unwrap()],
        deleted: false,
    };
    put_team(&mut a, &team).unwrap();
    a.commit();
    let mut b = a.fork().with_actor(actor_for(&station("xh/t1"), 2));
    set_team_member(
        &mut a,
        &team.id,
        &RecordId::parse("m", "V002").unwrap(),
        true,
    )
    .unwrap();
    set_team_member(
        &mut b,
        &team.id,
        &RecordId::parse("m", "V003").unwrap(),
        true,
    )
    .unwrap();
    a.merge(&mut b).unwrap();
    assert_eq!(teams(&a).unwrap()[0].members.len(), 3);
}

#[test]
fn malformed_documents_are_reported_with_the_path() {
    let mut d = doc("xh/t1/v1", 1);
    put_activity(&mut d, &sample_activity("A1", &[])).unwrap();
    let a1 = record_at(&d, ACTIVITIES, "A1").unwrap();
    d.put(&a1[0], "date", "not a date").unwrap();
    let error = activities(&d).unwrap_err();
    assert!(
        matches!(&error, LayoutError::Malformed { path, .. } if path == "activities.A1.date"),
        "{error}"
    );
}

/// A month's document at the village holding activity A1, and a township
/// copy of it (a fork with the township's actor), as after a sync.
fn village_and_township_copies() -> (AutoCommit, AutoCommit) {
    let mut village = doc("xh/t1/v1", 1);
    let id = DocumentId::activities(&station("xh/t1/v1"), crate::Month::new(2026, 11).unwrap());
    init_document(&mut village, &id).unwrap();
    put_activity(&mut village, &sample_activity("A1", &[("V001", 200)])).unwrap();
    village.commit();
    let township = village.fork().with_actor(actor_for(&station("xh/t1"), 1));
    (village, township)
}

fn a1(d: &AutoCommit) -> Activity {
    activity(d, &RecordId::parse("id", "A1").unwrap())
        .unwrap()
        .unwrap()
}

#[test]
fn a_write_never_clears_a_deleted_flag_it_sees() {
    let (mut village, _) = village_and_township_copies();
    delete_activity(&mut village, &RecordId::parse("id", "A1").unwrap()).unwrap();
    let mut stale = sample_activity("A1", &[("V001", 200)]);
    stale.name = "改过的".into();
    assert!(!stale.deleted);
    put_activity(&mut village, &stale).unwrap();
    let held = a1(&village);
    assert!(held.deleted, "still deleted");
    assert_eq!(held.name, "改过的");
    // The same for a volunteer and a team.
    let mut roster = doc("xh/t1/v1", 1);
    init_document(&mut roster, &DocumentId::roster(&station("xh/t1/v1"))).unwrap();
    let volunteer = sample_volunteer("V001", "aa");
    put_volunteer(
        &mut roster,
        &Volunteer {
            deleted: true,
            ..volunteer.clone()
        },
    )
    .unwrap();
    put_volunteer(&mut roster, &volunteer).unwrap();
    assert!(volunteers(&roster).unwrap()[0].deleted);
    let team = Team {
        id: RecordId::parse("id", "T1").unwrap(),
        name: "文艺队".into(),
        category: Category::Culture,
        station: station("xh/t1/v1"),
        parent: None,
        leader: None,
        members: vec![volunteer.number.clone()],
        deleted: true,
    };
    put_team(&mut roster, &team).unwrap();
    put_team(
        &mut roster,
        &Team {
            deleted: false,
            ..team
        },
    )
    .unwrap();
    assert!(teams(&roster).unwrap()[0].deleted);
}

#[test]
fn a_correction_concurrent_with_a_delete_converges_to_deleted_on_both() {
    let (mut village, mut township) = village_and_township_copies();
    delete_activity(&mut village, &RecordId::parse("id", "A1").unwrap()).unwrap();
    let mut corrected = sample_activity("A1", &[("V001", 300)]);
    corrected.name = "改过的".into();
    put_activity(&mut township, &corrected).unwrap();
    village.merge(&mut township.clone()).unwrap();
    township.merge(&mut village.clone()).unwrap();
    assert_eq!(village.get_heads(), township.get_heads());
    for d in [&village, &township] {
        let held = a1(d);
        assert!(held.deleted, "delete wins");
        assert_eq!(held.name, "改过的", "the correction's fields are kept");
        assert_eq!(held.records[0].hours.centi, 300);
    }
    assert_eq!(
        village.hydrate(ROOT, None).unwrap(),
        township.hydrate(ROOT, None).unwrap()
    );
}

proptest::proptest! {
    /// Whatever each side wrote while apart — corrections before and after
    /// the delete on the deleting side, any number of corrections on the
    /// other — and in whichever order the two merge, both read the same
    /// activity, and it is deleted.
    #[test]
    fn delete_wins_over_any_concurrent_corrections(
        before in proptest::collection::vec(1u32..60, 0..3),
        after in proptest::collection::vec(1u32..60, 0..3),
        apart in proptest::collection::vec(1u32..60, 1..4),
        township_deletes in proptest::bool::ANY,
        village_merges_first in proptest::bool::ANY,
    ) {
        let (mut village, mut township) = village_and_township_copies();
        let correct = |d: &mut AutoCommit, beneficiaries: u32| {
            let mut a = sample_activity("A1", &[("V001", 200)]);
            a.beneficiaries = beneficiaries;
            put_activity(d, &a).unwrap();
            d.commit();
        };
        let (deleter, other) = if township_deletes {
            (&mut township, &mut village)
        } else {
            (&mut village, &mut township)
        };
        for b in &before {
            correct(deleter, *b);
        }
        delete_activity(deleter, &RecordId::parse("id", "A1").unwrap()).unwrap();
        deleter.commit();
        for b in &after {
            correct(deleter, *b);
        }
        for b in &apart {
            correct(other, *b);
        }
        if village_merges_first {
            village.merge(&mut township.clone()).unwrap();
            township.merge(&mut village.clone()).unwrap();
        } else {
            township.merge(&mut village.clone()).unwrap();
            village.merge(&mut township.clone()).unwrap();
        }
        proptest::prop_assert!(a1(&village).deleted);
        proptest::prop_assert_eq!(a1(&village), a1(&township));
    }
}

/// The one-pass read of a roster's registered numbers answers as a look-up
/// of each number does: deleted records, collections created apart, and
/// one record created apart with a delete on one side.
#[test]
fn registered_volunteers_read_whole_answer_as_each_look_up() {
    let mut village = doc("xh/t1/v1", 1);
    let mut township = doc("xh/t1", 2);
    let deleted = |number: &str, digest: &str| Volunteer {
        deleted: true,
        ..sample_volunteer(number, digest)
    };
    put_volunteer(&mut village, &sample_volunteer("V001", "d1")).unwrap();
    put_volunteer(&mut village, &sample_volunteer("V002", "d2")).unwrap();
    put_volunteer(&mut village, &deleted("V003", "d3")).unwrap();
    put_volunteer(&mut township, &deleted("V001", "d1")).unwrap();
    put_volunteer(&mut township, &sample_volunteer("V009", "d9")).unwrap();
    put_volunteer(&mut township, &deleted("V010", "d10")).unwrap();
    village.merge(&mut township).unwrap();
    assert_eq!(village.get_all(ROOT, VOLUNTEERS).unwrap().len(), 2);

    let whole = registered_volunteers(&village).unwrap();
    let mut looked_up = HashSet::new();
    for number in ["V001", "V002", "V003", "V004", "V009", "V010"] {
        if volunteer_registered(&village, &RecordId::parse("n", number).unwrap()).unwrap() {
            looked_up.insert(number.to_string());
        }
    }
    assert_eq!(whole, looked_up);
    assert!(
        whole.contains("V002") && whole.contains("V009"),
        "{whole:?}"
    );
    assert!(
        !whole.contains("V003") && !whole.contains("V010"),
        "{whole:?}"
    );
    // Each collection's records, V001 once in each.
    assert_eq!(volunteer_records(&village).unwrap(), 6);
}
