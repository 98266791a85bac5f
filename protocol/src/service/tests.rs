//! The clerk operations' tests: registering, importing, recording
//! activities, and pinning each service record to one person.

use super::*;
use crate::domain::input::{HoursInput, ServiceRecordInput};
use crate::replica::{ReplicaConfig, StoreBuiltError};
use crate::storage::MemoryStorage;
use time::macros::date;

fn s(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn replica(station: &str) -> Replica<MemoryStorage> {
    Replica::open(
        MemoryStorage::new(),
        s(station),
        1,
        ReplicaConfig::default(),
    )
    .unwrap()
}

fn volunteer(id_number: &str) -> VolunteerInput {
    VolunteerInput {
        name: "赵敏".into(),
        sex: "女".into(),
        id_number: id_number.into(),
        ..VolunteerInput::default()
    }
}

const TODAY: Date = date!(2026 - 11 - 23);

#[test]
fn a_bare_number_held_by_two_rosters_is_refused_and_a_qualified_one_pins_the_person() {
    let key = crate::test_support::sealer();
    let (township, village) = (s("xh/t1"), s("xh/t1/v1"));
    let mut r = replica("xh/t1");
    let numbered = |id_number: &str, number: &str| VolunteerInput {
        number: Some(number.into()),
        ..volunteer(id_number)
    };
    register_volunteer(
        &mut r,
        &village,
        &numbered("11010519491231002X", "001"),
        &key,
        TODAY,
        1,
    )
    .unwrap();
    let record = |volunteer: &str| ActivityInput {
        name: "义诊".into(),
        date: "2026-11-20".into(),
        form: "help".into(),
        category: "health".into(),
        records: vec![ServiceRecordInput {
            volunteer: volunteer.into(),
            hours: HoursInput::Number(2.0),
        }],
        ..ActivityInput::default()
    };
    // Only the village holds "001": the record names the village's
    // volunteer, stored without a home station (the activity's own).
    let only = record_activity(&mut r, &village, &record("001"), TODAY, 2).unwrap();
    assert_eq!(only.records[0].home_station, None);

    register_volunteer(
        &mut r,
        &township,
        &numbered("11010519491231002X", "001"),
        &key,
        TODAY,
        3,
    )
    .unwrap();
    let error = record_activity(&mut r, &village, &record("001"), TODAY, 4).unwrap_err();
    assert_eq!(error.field(), "records[0].volunteer");
    assert_eq!(error.class(), ErrorClass::BadInput);
    assert!(
        error.reason().contains("xh/t1/v1:001") && error.reason().contains("xh/t1:001"),
        "the refusal names both candidates: {}",
        error.reason()
    );
    let pinned = record_activity(&mut r, &village, &record("xh/t1:001"), TODAY, 5).unwrap();
    assert_eq!(pinned.records[0].home_station, Some(township.clone()));
    assert_eq!(
        pinned.records[0].volunteer_id(&village).to_string(),
        "xh/t1:001"
    );
    let own = record_activity(&mut r, &village, &record("xh/t1/v1:001"), TODAY, 6).unwrap();
    assert_eq!(
        own.records[0].home_station, None,
        "the default is not stored"
    );
    let error = record_activity(&mut r, &village, &record("xh/t1/v2:001"), TODAY, 7).unwrap_err();
    assert_eq!(error.reason(), "unknown volunteer xh/t1/v2:001");
}

#[test]
fn register_record_and_list() {
    let key = crate::test_support::sealer();
    let station = s("xh/t1/v1");
    let mut r = replica("xh/t1/v1");
    let v = register_volunteer(
        &mut r,
        &station,
        &volunteer("11010519491231002X"),
        &key,
        TODAY,
        1,
    )
    .unwrap();
    // The same person again: a village holds nothing that could tell
    // (the number is sealed to the county), so the registration is
    // taken and the county reports the pair (service::duplicates).
    let again = register_volunteer(
        &mut r,
        &station,
        &volunteer("11010519491231002x"),
        &key,
        TODAY,
        2,
    )
    .unwrap();
    assert_ne!(again.number, v.number);
    assert_ne!(again.id_sealed, v.id_sealed, "sealing is randomised");

    let mut input = ActivityInput {
        name: "义诊".into(),
        date: "2026-11-20".into(),
        form: "help".into(),
        category: "health".into(),
        records: vec![ServiceRecordInput {
            volunteer: v.number.to_string(),
            hours: HoursInput::Number(2.0),
        }],
        ..ActivityInput::default()
    };
    let activity = record_activity(&mut r, &station, &input, TODAY, 3).unwrap();
    let month = Month::new(2026, 11).unwrap();
    assert_eq!(
        activities(&mut r, &station, month, false).unwrap(),
        vec![activity]
    );

    input.records[0].volunteer = "V-nobody".into();
    let error = record_activity(&mut r, &station, &input, TODAY, 4).unwrap_err();
    assert_eq!(error.field(), "records[0].volunteer");
    assert_eq!(error.class(), ErrorClass::NotFound);
    input.records.clear();
    input.team = Some("T-none".into());
    assert_eq!(
        record_activity(&mut r, &station, &input, TODAY, 5)
            .unwrap_err()
            .field(),
        "team"
    );
    assert_eq!(
        activities(&mut r, &station, month, false).unwrap().len(),
        1,
        "refusals change nothing"
    );
}

#[test]
fn a_village_cannot_record_for_its_neighbour() {
    let mut r = replica("xh/t1/v1");
    let input = OrderInput {
        menu_item: "理发".into(),
        requester: "李奶奶".into(),
        ..OrderInput::default()
    };
    let error = place_order(&mut r, &s("xh/t1/v2"), &input, TODAY, 1).unwrap_err();
    assert_eq!(error.class(), ErrorClass::Forbidden);
    assert!(r.documents().is_empty());
}

#[test]
fn import_takes_valid_rows_and_reports_the_rest() {
    let key = crate::test_support::sealer();
    let mut r = replica("xh/t1/v1");
    let rows = vec![
        (2, Ok(volunteer("11010519491231002X"))),
        (3, Ok(volunteer("123"))),
        (4, Err(FieldError::new("sex", "missing"))),
        (5, Ok(volunteer("11010519491231002X"))),
    ];
    let mut nonce = 0;
    let report = import_volunteers(&mut r, &s("xh/t1/v1"), rows, &key, TODAY, || {
        nonce += 1;
        nonce
    })
    .unwrap();
    // Row 5 repeats row 2's person: taken here, reported by the county.
    assert_eq!(report.accepted, 2);
    let refused: Vec<_> = report
        .refused
        .iter()
        .map(|r| (r.row, r.field.as_str()))
        .collect();
    assert_eq!(refused, vec![(3, "id_number"), (4, "sex")]);
    assert_eq!(volunteers(&mut r, &s("xh/t1/v1")).unwrap().len(), 2);
}

/// A valid resident ID number born in `1950 + serial / 1000`, with its
/// check character.
fn id_number(serial: u32) -> String {
    crate::domain::pii::with_check_digit(&format!(
        "110105{}0101{:03}",
        1950 + serial / 1000,
        serial % 1000
    ))
}

#[test]
fn a_built_roster_answers_as_a_committed_one() {
    let station = s("xh/t1/v1");
    // More rows than one commit takes, so the committed path spans chunks;
    // a duplicate of row 2 in the last chunk, one within the first, a bad row.
    let count = IMPORT_ROWS_PER_COMMIT as u32 + 300;
    let mut rows: Vec<(usize, Result<VolunteerInput, FieldError>)> = (0..count)
        .map(|serial| (serial as usize + 2, Ok(volunteer(&id_number(serial)))))
        .collect();
    let next_row = rows.len() + 2;
    rows.push((next_row, Ok(volunteer(&id_number(0)))));
    rows.insert(10, (9_999, Ok(volunteer(&id_number(5)))));
    rows.push((next_row + 1, Err(FieldError::new("sex", "missing"))));
    let validate = |rows| {
        let mut nonce = 0;
        // Seals are random: the same seed seals alike.
        let key = crate::test_support::sealer();
        validate_volunteer_rows(&station, rows, &key, TODAY, || {
            nonce += 1;
            nonce
        })
    };
    let validated = validate(rows.clone());
    assert_eq!(validated, validate(rows), "validation is deterministic");

    let mut committed = replica("xh/t1/v1");
    let committed_report =
        import_validated_volunteers(&mut committed, &station, validated.clone()).unwrap();

    let mut stored = replica("xh/t1/v1");
    let (built, built_report) =
        build_new_roster(&stored.document_builder(), &station, &validated).unwrap();
    stored
        .store_built(built.expect("valid rows build a roster"))
        .unwrap();

    assert_eq!(built_report, committed_report);
    // The two repeated people are taken (the county reports them).
    assert_eq!(built_report.accepted, count as usize + 2);
    let refused: Vec<_> = built_report
        .refused
        .iter()
        .map(|r| (r.row, r.field.as_str()))
        .collect();
    assert_eq!(refused, vec![(next_row + 1, "sex")]);

    let document = DocumentId::roster(&station);
    let roster = |r: &mut Replica<MemoryStorage>| {
        r.with_document(&document, layout::volunteers)
            .unwrap()
            .unwrap()
            .unwrap()
    };
    assert_eq!(roster(&mut stored), roster(&mut committed));
    assert_eq!(roster(&mut stored).len(), count as usize + 2);
}

#[test]
fn a_roster_is_built_only_when_a_row_is_valid_and_the_station_is_ours() {
    let key = crate::test_support::sealer();
    let r = replica("xh/t1/v1");
    let rows = vec![(2, Err(FieldError::new("sex", "missing")))];
    let validated = validate_volunteer_rows(&s("xh/t1/v1"), rows, &key, TODAY, || 1);
    let (built, report) =
        build_new_roster(&r.document_builder(), &s("xh/t1/v1"), &validated).unwrap();
    assert!(built.is_none());
    assert_eq!(
        (report.rows, report.accepted, report.refused.len()),
        (1, 0, 1)
    );
    let error = build_new_roster(&r.document_builder(), &s("xh/t1/v2"), &validated).unwrap_err();
    assert_eq!(error.class(), ErrorClass::Forbidden);
}

#[test]
fn a_roster_created_meanwhile_refuses_the_built_one_and_takes_the_rows_committed() {
    let key = crate::test_support::sealer();
    let station = s("xh/t1/v1");
    let mut r = replica("xh/t1/v1");
    let rows = vec![
        (2, Ok(volunteer(&id_number(1)))),
        (3, Ok(volunteer(&id_number(2)))),
    ];
    let mut nonce = 100;
    let validated = validate_volunteer_rows(&station, rows, &key, TODAY, || {
        nonce += 1;
        nonce
    });
    let (built, _) = build_new_roster(&r.document_builder(), &station, &validated).unwrap();
    // A clerk registers the person of row 3 while the file was building
    // (a village cannot tell it is the same person: the county will).
    register_volunteer(&mut r, &station, &volunteer(&id_number(2)), &key, TODAY, 1).unwrap();
    let refusal = r.store_built(built.unwrap()).unwrap_err();
    assert!(matches!(refusal, StoreBuiltError::AlreadyHeld { .. }));
    let report = import_validated_volunteers(&mut r, &station, validated).unwrap();
    assert_eq!(report.accepted, 2);
    assert!(report.refused.is_empty());
    assert_eq!(volunteers(&mut r, &station).unwrap().len(), 3);
}
