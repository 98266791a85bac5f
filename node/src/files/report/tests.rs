//! Report tests: tables built from real documents, written as CSV and XLSX
//! and read back; certificates issued and verified.

use super::*;
use automerge::AutoCommit;
use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use civsync_protocol::domain::model::{Category, Form, RecordId, ServiceRecord, Sex};
use civsync_protocol::identity::actor::actor_for;
use civsync_protocol::layout::{init_document, put_activity, put_volunteer};
use civsync_protocol::stats::Quarter;
use civsync_protocol::{DocumentId, Month};
use std::collections::BTreeMap;
use std::io::Cursor;
use time::macros::date;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn rid(text: &str) -> RecordId {
    RecordId::parse("id", text).unwrap()
}

fn registry() -> Vec<Station> {
    let s = |id: &str, name: &str, tier: Tier| Station {
        id: station(id),
        name: name.to_string(),
        tier,
    };
    vec![
        s("xh", "西华县", Tier::County),
        s("xh/t1", "城关镇", Tier::Township),
        s("xh/t1/v1", "东村", Tier::Village),
        s("xh/t1/v2", "西村", Tier::Village),
        s("xh/t2", "红花镇", Tier::Township),
        s("xh/t2/v3", "南村", Tier::Village),
    ]
}

fn activity(id: &str, at: &str, day: Date, records: &[(&str, u32)]) -> Activity {
    Activity {
        id: rid(id),
        name: "理论宣讲进村".into(),
        date: day,
        station: station(at),
        place: "文化广场".into(),
        content: "学习宣讲".into(),
        form: Form::Lecture,
        category: Category::Theory,
        team: None,
        person_in_charge: "李明".into(),
        beneficiaries: 40,
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

fn volunteer(number: &str, home: &str) -> Volunteer {
    Volunteer {
        number: rid(number),
        name: "王秀英".into(),
        sex: Sex::Female,
        birth_date: date!(1980 - 05 - 02),
        residence_area: String::new(),
        phone: String::new(),
        phone_seals: Default::default(),
        id_digest: String::new(),
        id_sealed: String::new(),
        id_masked: "4101**********123X".into(),
        skills: vec![],
        categories: vec![],
        home_station: station(home),
        registered_on: date!(2026 - 10 - 08),
        consent: true,
        party_member: false,
        deleted: false,
    }
}

/// November and October activities in three villages, two rosters.
fn county() -> (BTreeMap<DocumentId, AutoCommit>, StatsIndex) {
    let mut docs = BTreeMap::new();
    let mut doc = |id: DocumentId, fill: &dyn Fn(&mut AutoCommit)| {
        let mut d = AutoCommit::new().with_actor(actor_for(&id.owner, 1));
        init_document(&mut d, &id).unwrap();
        fill(&mut d);
        d.commit();
        docs.insert(id, d);
    };
    let nov = Month::new(2026, 11).unwrap();
    let oct = Month::new(2026, 10).unwrap();
    doc(DocumentId::activities(&station("xh/t1/v1"), nov), &|d| {
        put_activity(
            d,
            &activity(
                "A1",
                "xh/t1/v1",
                date!(2026 - 11 - 03),
                &[("V1", 200), ("V2", 150)],
            ),
        )
        .unwrap();
        put_activity(
            d,
            &activity("A2", "xh/t1/v1", date!(2026 - 11 - 10), &[("V1", 250)]),
        )
        .unwrap();
    });
    doc(DocumentId::activities(&station("xh/t1/v2"), nov), &|d| {
        put_activity(
            d,
            &activity("A1", "xh/t1/v2", date!(2026 - 11 - 05), &[("V3", 100)]),
        )
        .unwrap();
    });
    doc(DocumentId::activities(&station("xh/t2/v3"), oct), &|d| {
        put_activity(
            d,
            &activity("A1", "xh/t2/v3", date!(2026 - 10 - 20), &[("V4", 300)]),
        )
        .unwrap();
    });
    doc(DocumentId::roster(&station("xh/t1/v1")), &|d| {
        put_volunteer(d, &volunteer("V1", "xh/t1/v1")).unwrap();
        put_volunteer(d, &volunteer("V2", "xh/t1/v1")).unwrap();
    });
    doc(DocumentId::roster(&station("xh/t2/v3")), &|d| {
        put_volunteer(d, &volunteer("V4", "xh/t2/v3")).unwrap();
    });
    let index = StatsIndex::from_documents(docs.iter());
    (docs, index)
}

fn nov() -> Period {
    Period::Month(Month::new(2026, 11).unwrap())
}

#[test]
fn the_monthly_table_rolls_up_and_totals_match_the_villages() {
    let (_, index) = county();
    let report = statistics_report(&index, &station("xh"), nov(), &registry()).unwrap();
    assert_eq!(report.title, "西华县 新时代文明实践 2026年11月 统计表");
    assert_eq!(report.period, "2026-11");
    let ids: Vec<&str> = report.rows.iter().map(|r| r.station.as_str()).collect();
    assert_eq!(
        ids,
        ["xh", "xh/t1", "xh/t1/v1", "xh/t1/v2", "xh/t2", "xh/t2/v3"]
    );
    let villages: Vec<&ReportRow> = report.rows.iter().filter(|r| r.tier == "站").collect();
    assert_eq!(
        report.totals.activities,
        villages.iter().map(|r| r.activities).sum::<u64>()
    );
    assert_eq!(report.totals.activities, 3);
    assert_eq!(report.totals.hours_centi, 700);
    assert_eq!(report.totals.volunteers_registered, 3);
    assert_eq!(report.totals.volunteers_active, 3);
    assert_eq!(report.totals.name, "合计");
    assert_eq!(
        (
            report.villages,
            report.villages_active,
            report.townships,
            report.townships_active
        ),
        (3, 2, 2, 1)
    );
    let township = &report.rows[1];
    assert_eq!((township.activities, township.coverage), (3, Some(1.0)));
    assert_eq!(
        report.rows[2].coverage, None,
        "a village has no coverage figure"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["totals"]["hours_centi"], 700);
}

#[test]
fn xlsx_reads_back_with_the_expected_rows_and_totals() {
    let (_, index) = county();
    let report = statistics_report(&index, &station("xh"), nov(), &registry()).unwrap();
    let bytes = xlsx_bytes(&report).unwrap();
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    let range = workbook.worksheet_range("统计表").unwrap();
    let rows: Vec<&[Data]> = range.rows().collect();
    assert_eq!(rows.len(), 2 + report.rows.len() + 1);
    assert_eq!(rows[0][0], Data::String(report.title.clone()));
    let headers: Vec<String> = rows[1].iter().map(|c| c.to_string()).collect();
    assert_eq!(headers, HEADERS);
    let number = |row: &[Data], column: &str| -> f64 {
        let at = HEADERS.iter().position(|h| *h == column).unwrap();
        match &row[at] {
            Data::Float(f) => *f,
            Data::Int(i) => *i as f64,
            other => panic!("{column}: expected a number, found {other:?}"),
        }
    };
    let last = rows.last().unwrap();
    assert_eq!(last[1], Data::String("合计".into()));
    assert_eq!(number(last, "活动场次"), 3.0);
    assert_eq!(number(last, "服务时长(小时)"), 7.0);
    assert_eq!(number(last, "参与人次"), 4.0);
    let village_rows: Vec<&&[Data]> = rows[2..rows.len() - 1]
        .iter()
        .filter(|r| r[2] == Data::String("站".into()))
        .collect();
    assert_eq!(village_rows.len(), 3);
    let village_hours: f64 = village_rows
        .iter()
        .map(|r| number(r, "服务时长(小时)"))
        .sum();
    assert_eq!(village_hours, number(last, "服务时长(小时)"));
    assert_eq!(number(last, "覆盖率"), 2.0 / 3.0);
    assert_eq!(rows[4][0], Data::String("xh/t1/v1".into()));
    assert_eq!(number(rows[4], "服务时长(小时)"), 6.0);
}

#[test]
fn csv_has_a_bom_chinese_headers_and_a_total_line() {
    let (_, index) = county();
    let report = statistics_report(&index, &station("xh/t1"), nov(), &registry()).unwrap();
    let mut bytes = Vec::new();
    write_csv(&report, &mut bytes).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let text = text
        .strip_prefix('\u{feff}')
        .expect("starts with a byte-order mark");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        HEADERS
    );
    let lines: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(lines.len(), 4, "xh/t1, v1, v2 and the total");
    assert_eq!(&lines[1][0], "xh/t1/v1");
    assert_eq!(&lines[1][6], "6");
    assert_eq!(&lines[3][1], "合计");
    assert_eq!(&lines[3][6], "7");
    assert_eq!(&lines[3][17], "100.0%");
}

#[test]
fn the_quarterly_bulletin_sums_its_three_months() {
    let (_, index) = county();
    let q4 = Period::Quarter(Quarter::parse("2026Q4").unwrap());
    let report = statistics_report(&index, &station("xh"), q4, &registry()).unwrap();
    assert_eq!(report.title, "西华县 新时代文明实践 2026年第4季度 通报");
    assert_eq!(report.period, "2026Q4");
    assert_eq!(report.totals.activities, 4);
    assert_eq!(report.totals.hours_centi, 1_000);
    assert_eq!(report.totals.volunteers_active, 4);
    assert_eq!(report.totals.volunteers_new, 3);
    assert_eq!((report.villages_active, report.townships_active), (3, 2));
    assert!(xlsx_bytes(&report).is_ok());
}

#[test]
fn a_certificate_lists_the_service_and_each_changed_field_is_named() {
    let (docs, _) = county();
    let activities: Vec<Activity> = docs
        .values()
        .flat_map(|d| civsync_protocol::layout::activities(d).unwrap())
        .collect();
    let office = Station {
        id: station("xh/t1/v1"),
        name: "东村新时代文明实践站".into(),
        tier: Tier::Village,
    };
    let v1 = volunteer("V1", "xh/t1/v1");
    let mut certificate =
        service_certificate(&v1, &activities, &office, date!(2026 - 11 - 23)).unwrap();
    assert_eq!(certificate.activities.len(), 2);
    assert_eq!(certificate.total_hours_centi, 450);
    assert_eq!(certificate.activities[0].date, "2026-11-03");
    assert_eq!(certificate.home_station, station("xh/t1/v1"));
    certificate.verification_code = verification_code_of(b"a signature");
    assert_eq!(certificate.verification_code.len(), 19);

    let text = certificate_text(&certificate);
    for expected in [
        "志愿服务证明",
        "王秀英",
        "4101**********123X",
        "V1",
        "4.5 小时",
        "2.5 小时",
        "东村新时代文明实践站",
        "2026-11-23",
        &certificate.verification_code,
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains("id_digest"));

    // The field list a seal signs, read back from JSON, matches...
    let signed = certificate_fields(&certificate);
    let json = serde_json::to_string(&certificate).unwrap();
    let received: ServiceCertificate = serde_json::from_str(&json).unwrap();
    assert!(changed_fields(&received, &signed).is_empty());
    // ...and names each alteration.
    let mut forged = received.clone();
    forged.total_hours_centi = 45_000;
    forged.activities[0].hours_centi += 1;
    let named: Vec<String> = changed_fields(&forged, &signed)
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(named, ["activities[0]", "total_hours_centi"]);
    // A field list with a name this layout does not produce is malformed.
    let mut odd = signed.clone();
    odd.insert("activities[7]".to_string(), "0".repeat(64));
    assert_eq!(changed_fields(&received, &odd)[0].0, "seal.fields");
    // The signed message lists every field once, after the header.
    let message = String::from_utf8(seal_message(&signed)).unwrap();
    assert!(message.starts_with(SEAL_MESSAGE_HEADER));
    assert_eq!(message.lines().count(), 1 + signed.len());
}

#[test]
fn certificates_leave_out_deleted_service_and_refuse_deleted_volunteers() {
    let office = Station {
        id: station("xh/t1/v1"),
        name: "东村".into(),
        tier: Tier::Village,
    };
    let mut gone = activity("A9", "xh/t1/v1", date!(2026 - 11 - 12), &[("V1", 100)]);
    gone.deleted = true;
    let mut struck = activity("A8", "xh/t1/v1", date!(2026 - 11 - 13), &[("V1", 100)]);
    struck.records[0].deleted = true;
    let kept = activity(
        "A7",
        "xh/t1/v1",
        date!(2026 - 11 - 14),
        &[("V1", 300), ("V2", 100)],
    );
    let v1 = volunteer("V1", "xh/t1/v1");
    let certificate =
        service_certificate(&v1, [&gone, &struck, &kept], &office, date!(2026 - 11 - 23)).unwrap();
    assert_eq!(certificate.activities.len(), 1);
    assert_eq!(certificate.total_hours_centi, 300);
    let mut deleted = v1;
    deleted.deleted = true;
    let error = service_certificate(&deleted, [&kept], &office, date!(2026 - 11 - 23)).unwrap_err();
    assert!(
        matches!(error, ReportError::VolunteerDeleted { .. }),
        "{error}"
    );
}
