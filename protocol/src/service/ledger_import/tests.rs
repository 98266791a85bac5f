//! The ledger import against a `MemoryStorage` replica: grouping, refusals
//! by row, all-or-nothing activities, re-import, limits, and equality with
//! recording the same activities one by one.

use super::*;
use crate::domain::input::VolunteerInput;
use crate::replica::ReplicaConfig;
use crate::storage::MemoryStorage;
use proptest::prelude::*;
use time::macros::date;

const TODAY: Date = date!(2026 - 11 - 23);
const VILLAGE: &str = "xh/t1/v1";

fn s(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

/// A valid resident ID number born in `1970 + serial / 1000`.
fn id_number(serial: u32) -> String {
    crate::domain::pii::with_check_digit(&format!(
        "110105{}0101{:03}",
        1970 + serial / 1000,
        serial % 1000
    ))
}

/// A village replica whose roster holds volunteers V1..=V4.
fn village() -> Replica<MemoryStorage> {
    let mut r = Replica::open(
        MemoryStorage::new(),
        s(VILLAGE),
        1,
        ReplicaConfig::default(),
    )
    .unwrap();
    let key = crate::test_support::sealer();
    for serial in 1..=4 {
        let input = VolunteerInput {
            number: Some(format!("V{serial}")),
            name: "赵敏".into(),
            sex: "女".into(),
            id_number: id_number(serial),
            ..VolunteerInput::default()
        };
        service::register_volunteer(&mut r, &s(VILLAGE), &input, &key, TODAY, 0).unwrap();
    }
    r
}

/// A row of activity `name` on `date` with one record (or none).
fn row(at: usize, name: &str, date: &str, volunteer: &str, hours: &str) -> LedgerRow {
    LedgerRow {
        row: at,
        name: name.into(),
        date: date.into(),
        place: "文化广场".into(),
        form: "讲".into(),
        category: "theory".into(),
        volunteer: volunteer.into(),
        hours: hours.into(),
        ..LedgerRow::default()
    }
}

fn month(year: u16, month: u8) -> Month {
    Month::new(year, month).unwrap()
}

fn held(r: &mut Replica<MemoryStorage>, m: Month) -> Vec<Activity> {
    service::activities(r, &s(VILLAGE), m, false).unwrap()
}

/// `(row, field)` of each refusal.
fn refused(report: &ActivityImportReport) -> Vec<(usize, &str)> {
    report
        .refused
        .iter()
        .map(|r| (r.row, r.field.as_str()))
        .collect()
}

#[test]
fn rows_without_ids_group_by_name_date_and_place_and_span_months() {
    let mut r = village();
    let rows = vec![
        row(2, "理论宣讲", "2026-10-30", "V1", "2"),
        row(3, "理论宣讲", "2026-10-30", "V2", "1.5"),
        row(4, "义诊", "2026-11-02", "V1", "3"),
        row(5, "理论宣讲", "2026-11-02", "", ""),
    ];
    let report = import_ledger(&mut r, &s(VILLAGE), &rows, TODAY).unwrap();
    assert_eq!((report.rows, report.accepted), (4, 4), "{report:?}");
    assert!(report.refused.is_empty());
    let rows_of: Vec<&[usize]> = report.activities.iter().map(|a| &a.rows[..]).collect();
    assert_eq!(rows_of, [&[2, 3][..], &[4], &[5]]);
    assert_eq!(report.activities[0].month, "2026-10");
    let october = held(&mut r, month(2026, 10));
    assert_eq!(october.len(), 1);
    assert_eq!(october[0].records.len(), 2);
    assert_eq!(
        october[0].id,
        derived_id(&s(VILLAGE), "理论宣讲", "2026-10-30", "文化广场")
    );
    let november = held(&mut r, month(2026, 11));
    assert_eq!(november.len(), 2);
    assert!(november.iter().any(|a| a.records.is_empty()));
}

#[test]
fn rows_with_an_id_are_one_activity_and_blank_cells_mean_as_above() {
    let mut r = village();
    let mut first = row(2, "敬老", "2026-11-10", "V1", "2");
    first.id = "A-7".into();
    first.beneficiaries = "30".into();
    let second = LedgerRow {
        row: 3,
        id: "A-7".into(),
        volunteer: "V2".into(),
        hours: "4".into(),
        ..LedgerRow::default()
    };
    let report = import_ledger(&mut r, &s(VILLAGE), &[first, second], TODAY).unwrap();
    assert_eq!(report.accepted, 2, "{report:?}");
    let november = held(&mut r, month(2026, 11));
    assert_eq!(november.len(), 1);
    assert_eq!(november[0].id.as_str(), "A-7");
    assert_eq!(november[0].beneficiaries, 30);
    assert_eq!(november[0].records.len(), 2);
}

#[test]
fn a_bad_row_refuses_its_whole_activity_and_writes_nothing_of_it() {
    let mut r = village();
    let rows = vec![
        row(2, "理论宣讲", "2026-11-02", "V1", "2"),
        row(3, "理论宣讲", "2026-11-02", "V9", "1"),
        row(4, "理论宣讲", "2026-11-02", "V3", "1"),
        row(5, "义诊", "2026-11-03", "V2", "2"),
    ];
    let report = import_ledger(&mut r, &s(VILLAGE), &rows, TODAY).unwrap();
    assert_eq!(report.accepted, 1, "{report:?}");
    assert_eq!(report.activities_refused, 1);
    assert_eq!(
        refused(&report),
        [(2, "activity"), (3, "volunteer"), (4, "activity")]
    );
    assert!(report.refused[1].reason.contains("V9"), "{report:?}");
    assert!(report.refused[0].reason.contains("row 3"), "{report:?}");
    let november = held(&mut r, month(2026, 11));
    assert_eq!(november.len(), 1, "only the valid activity is written");
    assert_eq!(november[0].name, "义诊");
}

/// A column and a way to break the second row's cell of it.
type BreakCase = (&'static str, Box<dyn Fn(&mut LedgerRow)>);

#[test]
fn each_kind_of_bad_row_is_named_by_row_and_column() {
    let cases: Vec<BreakCase> = vec![
        ("hours", Box::new(|r| r.hours = "25".into())),
        ("hours", Box::new(|r| r.hours = "".into())),
        ("volunteer", Box::new(|r| r.volunteer = "V 1".into())),
        ("date", Box::new(|r| r.date = "2026-12-01".into())),
        ("date", Box::new(|r| r.date = "30/10/2026".into())),
        ("form", Box::new(|r| r.form = "唱".into())),
        ("category", Box::new(|r| r.category = "juggling".into())),
        (
            "beneficiaries",
            Box::new(|r| r.beneficiaries = "many".into()),
        ),
        ("team", Box::new(|r| r.team = "T-none".into())),
        ("content", Box::new(|r| r.content = "不同".into())),
        (
            "volunteer",
            Box::new(|r| {
                r.volunteer.clear();
                r.hours = "2".into();
            }),
        ),
    ];
    for (field, break_it) in cases {
        let mut r = village();
        let mut rows = vec![
            row(2, "理论宣讲", "2026-11-02", "V1", "2"),
            row(3, "理论宣讲", "2026-11-02", "V2", "2"),
        ];
        // One id, so a changed date or name is a disagreement, not another
        // activity.
        for r in &mut rows {
            r.id = "A-1".into();
        }
        rows[0].content = "宣讲".into();
        break_it(&mut rows[1]);
        let report = import_ledger(&mut r, &s(VILLAGE), &rows, TODAY).unwrap();
        let bad = report.refused.iter().find(|x| x.field != "activity");
        assert_eq!(
            bad.map(|x| (x.row, x.field.as_str())),
            Some((3, field)),
            "{report:?}"
        );
        assert_eq!(report.accepted, 0, "{report:?}");
        assert!(held(&mut r, month(2026, 11)).is_empty());
    }
}

#[test]
fn daily_hours_count_what_is_held_and_the_rest_of_the_file() {
    let mut r = village();
    let held_before = ActivityInput {
        name: "巡河".into(),
        date: "2026-11-02".into(),
        form: "help".into(),
        category: "ecology".into(),
        records: vec![ServiceRecordInput {
            volunteer: "V1".into(),
            hours: HoursInput::Number(10.0),
        }],
        ..ActivityInput::default()
    };
    service::record_activity(&mut r, &s(VILLAGE), &held_before, TODAY, 1).unwrap();
    let rows = vec![
        row(2, "讲座", "2026-11-02", "V1", "8"),
        // 10 held + 8 above + 8 = 26 > 24: this activity goes, the first stays.
        row(3, "义诊", "2026-11-02", "V2", "1"),
        row(4, "义诊", "2026-11-02", "V1", "8"),
    ];
    let report = import_ledger(&mut r, &s(VILLAGE), &rows, TODAY).unwrap();
    assert_eq!(
        refused(&report),
        [(3, "activity"), (4, "hours")],
        "{report:?}"
    );
    assert!(report.refused[1].reason.contains("24"), "{report:?}");
    assert_eq!(held(&mut r, month(2026, 11)).len(), 2);
}

#[test]
fn a_new_month_is_written_in_one_commit_per_month() {
    let mut r = village();
    let rows: Vec<LedgerRow> = (0..30)
        .map(|i| {
            let day = format!("2026-{:02}-{:02}", 9 + i % 3, 1 + i / 3);
            row(i + 2, &format!("活动{i}"), &day, "V1", "1")
        })
        .collect();
    let before: Vec<DocumentId> = r.documents();
    import_ledger(&mut r, &s(VILLAGE), &rows, TODAY).unwrap();
    for m in [9, 10, 11] {
        let document = DocumentId::activities(&s(VILLAGE), month(2026, m));
        assert!(!before.contains(&document));
        assert_eq!(r.change_count(&document).unwrap(), 1, "{document}");
    }
}

#[test]
fn re_importing_the_same_file_changes_nothing() {
    let mut r = village();
    let mut rows = vec![
        row(2, "理论宣讲", "2026-11-02", "V1", "2"),
        row(3, "理论宣讲", "2026-11-02", "V2", "1.5"),
        row(4, "义诊", "2026-11-03", "", ""),
    ];
    rows[2].id = "A-9".into();
    let first = import_ledger(&mut r, &s(VILLAGE), &rows, date!(2026 - 11 - 05)).unwrap();
    let november = held(&mut r, month(2026, 11));
    assert!(november.iter().all(|a| !a.late), "recorded in time");
    let document = DocumentId::activities(&s(VILLAGE), month(2026, 11));
    let heads = r.heads(&document).unwrap().to_vec();
    // Weeks later: the same file again must not mark anything late.
    let second = import_ledger(&mut r, &s(VILLAGE), &rows, TODAY).unwrap();
    assert_eq!(first, second);
    assert_eq!(held(&mut r, month(2026, 11)), november);
    assert_eq!(
        r.heads(&document).unwrap().to_vec(),
        heads,
        "no change at all"
    );
}

#[test]
fn a_deleted_activity_is_not_brought_back() {
    let mut r = village();
    let rows = vec![row(2, "理论宣讲", "2026-11-02", "V1", "2")];
    let report = import_ledger(&mut r, &s(VILLAGE), &rows, TODAY).unwrap();
    let id = report.activities[0].id.clone();
    service::delete_activity(&mut r, &s(VILLAGE), month(2026, 11), &id).unwrap();
    let again = import_ledger(&mut r, &s(VILLAGE), &rows, TODAY).unwrap();
    assert_eq!(refused(&again), [(2, "id")], "{again:?}");
    assert!(held(&mut r, month(2026, 11)).is_empty());
}

#[test]
fn limits_refuse_the_file_and_write_nothing() {
    let mut r = village();
    let too_many_rows: Vec<LedgerRow> = (0..=LEDGER_ROWS_MAX)
        .map(|i| row(i + 2, "讲座", "2026-11-02", "", ""))
        .collect();
    let error = import_ledger(&mut r, &s(VILLAGE), &too_many_rows, TODAY).unwrap_err();
    assert_eq!(error.field(), "file");
    assert!(error.reason().contains("LEDGER_ROWS_MAX"), "{error}");
    let too_many_activities: Vec<LedgerRow> = (0..=LEDGER_ACTIVITIES_MAX)
        .map(|i| row(i + 2, &format!("讲座{i}"), "2026-11-02", "", ""))
        .collect();
    let error = import_ledger(&mut r, &s(VILLAGE), &too_many_activities, TODAY).unwrap_err();
    assert!(error.reason().contains("LEDGER_ACTIVITIES_MAX"), "{error}");
    assert!(held(&mut r, month(2026, 11)).is_empty());
}

#[test]
fn too_many_records_refuse_the_activity_naming_the_limit() {
    let mut r = village();
    let rows: Vec<LedgerRow> = (0..=LEDGER_RECORDS_PER_ACTIVITY_MAX)
        .map(|i| row(i + 2, "讲座", "2026-11-02", &format!("V{}", 1 + i % 4), "1"))
        .collect();
    let report = import_ledger(&mut r, &s(VILLAGE), &rows, TODAY).unwrap();
    let bad: Vec<&RowRefusal> = report
        .refused
        .iter()
        .filter(|x| x.field != "activity")
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].row, LEDGER_RECORDS_PER_ACTIVITY_MAX + 2);
    assert!(bad[0].reason.contains("LEDGER_RECORDS_PER_ACTIVITY_MAX"));
    assert_eq!(report.refused.len(), rows.len());
}

#[test]
fn a_station_outside_the_subtree_is_forbidden() {
    let mut r = village();
    let rows = vec![row(2, "讲座", "2026-11-02", "", "")];
    let error = import_ledger(&mut r, &s("xh/t1/v2"), &rows, TODAY).unwrap_err();
    assert_eq!(error.class(), service::ErrorClass::Forbidden);
}

/// One generated activity: name index, day, (volunteer, hours) records,
/// whether it carries an explicit id.
type Generated = (u8, u8, Vec<(u8, u8)>, bool);

const HOURS: [&str; 5] = ["1", "2.5", "8", "12", "23"];

fn generated() -> impl Strategy<Value = Vec<Generated>> {
    proptest::collection::vec(
        (
            0u8..3,
            0u8..4,
            proptest::collection::vec((1u8..=5, 0u8..5), 0..4),
            any::<bool>(),
        ),
        1..7,
    )
}

/// The generated activities as clerk input, with the ids the ledger gives.
fn inputs(activities: &[Generated]) -> Vec<ActivityInput> {
    activities
        .iter()
        .enumerate()
        .map(|(i, (name, day, records, with_id))| {
            // Four days across a month boundary; a unique name per
            // activity so no two id-less ones share (name, date, place).
            let date = ["2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02"][*day as usize];
            let name = format!("活动{name}-{i}");
            let id = if *with_id {
                format!("A{i}")
            } else {
                derived_id(&s(VILLAGE), &name, date, "文化广场").to_string()
            };
            ActivityInput {
                id: Some(id),
                name,
                date: date.into(),
                place: "文化广场".into(),
                form: "讲".into(),
                category: "theory".into(),
                records: records
                    .iter()
                    .map(|(v, h)| ServiceRecordInput {
                        // V5 is not in the roster.
                        volunteer: format!("V{v}"),
                        hours: HoursInput::Text(HOURS[*h as usize].into()),
                    })
                    .collect(),
                ..ActivityInput::default()
            }
        })
        .collect()
}

fn ledger(inputs: &[ActivityInput], explicit: &[bool]) -> Vec<LedgerRow> {
    let mut rows = Vec::new();
    for (input, with_id) in inputs.iter().zip(explicit) {
        let base = LedgerRow {
            id: if *with_id {
                input.id.clone().unwrap()
            } else {
                String::new()
            },
            name: input.name.clone(),
            date: input.date.clone(),
            place: input.place.clone(),
            form: input.form.clone(),
            category: input.category.clone(),
            ..LedgerRow::default()
        };
        if input.records.is_empty() {
            rows.push(LedgerRow {
                row: rows.len() + 2,
                ..base.clone()
            });
        }
        for record in &input.records {
            let HoursInput::Text(hours) = &record.hours else {
                unreachable!("generated as text")
            };
            rows.push(LedgerRow {
                row: rows.len() + 2,
                volunteer: record.volunteer.clone(),
                hours: hours.clone(),
                ..base.clone()
            });
        }
    }
    rows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Importing a ledger leaves the same activities as recording each of
    /// its activities one by one, refusals included.
    #[test]
    fn the_import_equals_recording_one_by_one(activities in generated()) {
        let inputs = inputs(&activities);
        let explicit: Vec<bool> = activities.iter().map(|a| a.3).collect();
        let mut one_by_one = village();
        let mut accepted_one_by_one = Vec::new();
        for input in &inputs {
            if service::record_activity(&mut one_by_one, &s(VILLAGE), input, TODAY, 0).is_ok() {
                accepted_one_by_one.push(input.id.clone().unwrap());
            }
        }
        let mut imported = village();
        let rows = ledger(&inputs, &explicit);
        let report = import_ledger(&mut imported, &s(VILLAGE), &rows, TODAY).unwrap();
        prop_assert_eq!(report.accepted + report.refused.len(), rows.len());
        let accepted: Vec<String> =
            report.activities.iter().map(|a| a.id.to_string()).collect();
        prop_assert_eq!(accepted, accepted_one_by_one);
        for m in [month(2026, 10), month(2026, 11)] {
            prop_assert_eq!(held(&mut imported, m), held(&mut one_by_one, m));
        }
    }
}

#[test]
fn a_month_built_away_and_written_meanwhile_is_committed_with_the_same_answers() {
    let mut r = village();
    let rows = vec![
        row(2, "讲座", "2026-11-02", "V1", "8"),
        row(3, "义诊", "2026-11-02", "V1", "8"),
    ];
    let plan = plan_ledger(&mut r, &s(VILLAGE), &rows, TODAY).unwrap();
    assert!(!plan.months[0].held);
    let (built, answered) = r
        .document_builder()
        .build(&plan.months[0].document, |doc| {
            put_month(doc, &plan.months[0])
        })
        .unwrap();
    assert_eq!(answered.accepted.len(), 2);
    // A clerk records 10 hours for V1 that day while the month is built.
    let clerk = ActivityInput {
        name: "巡河".into(),
        date: "2026-11-02".into(),
        form: "help".into(),
        category: "ecology".into(),
        records: vec![ServiceRecordInput {
            volunteer: "V1".into(),
            hours: HoursInput::Number(10.0),
        }],
        ..ActivityInput::default()
    };
    service::record_activity(&mut r, &s(VILLAGE), &clerk, TODAY, 1).unwrap();
    assert!(matches!(
        r.store_built(built),
        Err(crate::replica::StoreBuiltError::AlreadyHeld { .. })
    ));
    // The ordinary commit answers against what the month holds now.
    let written = commit_month(&mut r, &plan.months[0]).unwrap();
    assert_eq!(written.accepted.len(), 1);
    assert_eq!(written.refused.len(), 1);
    assert_eq!(
        (written.refused[0].row, written.refused[0].field.as_str()),
        (3, "hours")
    );
    assert_eq!(held(&mut r, month(2026, 11)).len(), 2);
}

/// A township importing a village's ledger looks each number up in two
/// rosters (the village's and its own); the answers kept across the
/// file's activities are per roster, so a number held in one roster is
/// neither found nor made ambiguous by the other, however often the file
/// names it.
#[test]
fn names_repeated_across_activities_resolve_per_roster_as_one_by_one() {
    let township = s("xh/t1");
    let fresh = || {
        let mut r = Replica::open(
            MemoryStorage::new(),
            township.clone(),
            1,
            ReplicaConfig::default(),
        )
        .unwrap();
        let key = crate::test_support::sealer();
        // V1 only in the village, V9 only at the township, V2 in both.
        for (serial, station) in [(1, VILLAGE), (2, VILLAGE), (2, "xh/t1"), (9, "xh/t1")] {
            let input = VolunteerInput {
                number: Some(format!("V{serial}")),
                name: "赵敏".into(),
                sex: "女".into(),
                id_number: id_number(serial + 100 * (station.len() as u32)),
                ..VolunteerInput::default()
            };
            service::register_volunteer(&mut r, &s(station), &input, &key, TODAY, 0).unwrap();
        }
        r
    };
    let mut rows = Vec::new();
    for (a, names) in [["V1", "V9"], ["V9", "V1"], ["V2", "V1"], ["V1", "V9"]]
        .iter()
        .enumerate()
    {
        for volunteer in names {
            let at = rows.len() + 2;
            rows.push(row(at, &format!("讲座{a}"), "2026-11-02", volunteer, "1"));
        }
    }
    let mut imported = fresh();
    let report = import_ledger(&mut imported, &s(VILLAGE), &rows, TODAY).unwrap();
    let mut one_by_one = fresh();
    let mut accepted_one_by_one = Vec::new();
    for a in 0..4 {
        let group: Vec<LedgerRow> = rows
            .iter()
            .filter(|r| r.name == format!("讲座{a}"))
            .cloned()
            .collect();
        let single = import_ledger(&mut one_by_one, &s(VILLAGE), &group, TODAY).unwrap();
        accepted_one_by_one.extend(single.activities.iter().map(|x| x.id.to_string()));
    }
    let accepted: Vec<String> = report.activities.iter().map(|x| x.id.to_string()).collect();
    assert_eq!(
        accepted.len(),
        3,
        "V2 is ambiguous, the rest resolve: {report:?}"
    );
    assert_eq!(accepted, accepted_one_by_one);
    assert_eq!(refused(&report), vec![(6, "volunteer"), (7, "activity")]);
    assert_eq!(
        held(&mut imported, month(2026, 11)),
        held(&mut one_by_one, month(2026, 11))
    );
}

/// A roster read whole answers as its look-ups do, also when one of its
/// records does not read: only an activity naming that record fails, as
/// it did one number at a time.
#[test]
fn a_record_that_does_not_read_fails_only_the_activities_naming_it() {
    use automerge::transaction::Transactable;
    use automerge::{ReadDoc, Value, ROOT};
    let mut r = village();
    let roster = DocumentId::roster(&s(VILLAGE));
    r.commit(&roster, |doc: &mut AutoCommit| {
        let Some((Value::Object(_), volunteers)) = doc.get(ROOT, "volunteers")? else {
            panic!("the roster has its volunteers");
        };
        let Some((Value::Object(_), v4)) = doc.get(&volunteers, "V4")? else {
            panic!("V4 is registered");
        };
        doc.put(&v4, "deleted", "perhaps")
    })
    .unwrap();
    let rows = vec![
        row(2, "讲座", "2026-11-02", "V1", "2"),
        row(3, "讲座", "2026-11-02", "V2", "1"),
        row(4, "义诊", "2026-11-03", "V3", "1"),
    ];
    let report = import_ledger(&mut r, &s(VILLAGE), &rows, TODAY).unwrap();
    assert_eq!(report.activities.len(), 2, "{report:?}");
    assert!(refused(&report).is_empty(), "{report:?}");
    let naming_it = vec![row(2, "培训", "2026-11-04", "V4", "1")];
    assert!(import_ledger(&mut r, &s(VILLAGE), &naming_it, TODAY).is_err());
}
