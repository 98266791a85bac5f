//! Cost of the county statistics.
//!
//! 1. Applying one changed activities document to the index (one village
//!    records one more service record), in a small county and a full one:
//!    the cost must not depend on the county's size.
//! 2. Rebuilding the whole index from in-memory documents for a county of
//!    650 villages, ~100k volunteers and ~200k service records (goal ≤ 5 s).
//! 3. A county monthly statistics query: the county's figures, the
//!    per-station table with coverage, and the full report (goal ≤ 50 ms).
//!
//! Prints medians. `CIVSYNC_BENCH_VILLAGES` overrides the 650 villages.
//!
//! Run: `cargo bench -p civsync-node --bench stats`

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ReadDoc, ScalarValue, ROOT};
use civsync_node::report::statistics_report;
use civsync_protocol::actor::actor_for;
use civsync_protocol::layout::{self, init_document, put_activity};
use civsync_protocol::model::date_format;
use civsync_protocol::model::{
    Activity, Category, Form, Hours, RecordId, ServiceRecord, Sex, Volunteer,
};
use civsync_protocol::stats::{Contribution, Period, StatsIndex};
use civsync_protocol::{DocumentId, Month, Station, StationId, Tier};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use time::Date;

const VILLAGES_PER_TOWNSHIP: usize = 25;
const VOLUNTEERS_PER_VILLAGE: usize = 154;
const ACTIVITIES_PER_VILLAGE: usize = 31;
const RECORDS_PER_ACTIVITY: usize = 10;
const SMALL_COUNTY_VILLAGES: usize = 10;
const FULL_COUNTY_VILLAGES: usize = 650;
const APPLY_ROUNDS: usize = 41;
const REBUILD_ROUNDS: usize = 3;
const QUERY_ROUNDS: usize = 21;

struct County {
    docs: BTreeMap<DocumentId, AutoCommit>,
    registry: Vec<Station>,
    villages: Vec<StationId>,
}

fn month() -> Month {
    Month::new(2026, 11).unwrap()
}

fn rid(text: &str) -> RecordId {
    RecordId::parse("id", text).unwrap()
}

fn day(n: usize) -> Date {
    Date::from_calendar_date(2026, time::Month::November, 1 + (n % 28) as u8).unwrap()
}

fn volunteer(number: &str, home: &StationId) -> Volunteer {
    Volunteer {
        number: rid(number),
        name: "志愿者".into(),
        sex: Sex::Female,
        birth_date: Date::from_calendar_date(1980, time::Month::May, 2).unwrap(),
        residence_area: String::new(),
        phone: String::new(),
        id_digest: String::new(),
        id_masked: String::new(),
        skills: vec![],
        categories: vec![],
        home_station: home.clone(),
        registered_on: Date::from_calendar_date(2026, time::Month::March, 1).unwrap(),
        consent: true,
        party_member: false,
        deleted: false,
    }
}

fn activity(id: &str, at: &StationId, n: usize, volunteers: &[String]) -> Activity {
    Activity {
        id: rid(id),
        name: "理论宣讲进村".into(),
        date: day(n),
        station: at.clone(),
        place: "文化广场".into(),
        content: "学习宣讲".into(),
        form: Form::ALL[n % Form::ALL.len()],
        category: Category::ALL[n % Category::ALL.len()],
        team: None,
        person_in_charge: "李明".into(),
        beneficiaries: 40,
        theme: None,
        recorded_on: day(n),
        late: false,
        deleted: false,
        records: volunteers
            .iter()
            .map(|v| ServiceRecord {
                volunteer: rid(v),
                hours: Hours { centi: 150 },
                recorded_on: day(n),
                late: false,
                deleted: false,
            })
            .collect(),
    }
}

/// Write an activity with the same fields `layout::put_activity` writes,
/// without its per-record daily-hours check (which re-reads the document
/// and would make building a 200k-record county take most of an hour).
fn write_activity(doc: &mut AutoCommit, activity: &Activity) {
    let all = match doc.get(ROOT, layout::ACTIVITIES).unwrap() {
        Some((_, id)) => id,
        None => doc
            .put_object(ROOT, layout::ACTIVITIES, ObjType::Map)
            .unwrap(),
    };
    let obj = doc
        .put_object(&all, activity.id.as_str(), ObjType::Map)
        .unwrap();
    let text = [
        ("id", activity.id.to_string()),
        ("name", activity.name.clone()),
        ("date", date_format::format(activity.date)),
        ("station", activity.station.to_string()),
        ("place", activity.place.clone()),
        ("content", activity.content.clone()),
        ("form", activity.form.key().to_string()),
        ("category", activity.category.key().to_string()),
        ("team", String::new()),
        ("person_in_charge", activity.person_in_charge.clone()),
        ("theme", String::new()),
        ("recorded_on", date_format::format(activity.recorded_on)),
    ];
    for (key, value) in text {
        doc.put(&obj, key, value).unwrap();
    }
    doc.put(
        &obj,
        "beneficiaries",
        ScalarValue::Uint(u64::from(activity.beneficiaries)),
    )
    .unwrap();
    doc.put(&obj, "late", activity.late).unwrap();
    doc.put(&obj, "deleted", activity.deleted).unwrap();
    let records = doc.put_object(&obj, layout::RECORDS, ObjType::Map).unwrap();
    for record in &activity.records {
        let entry = doc
            .put_object(&records, record.volunteer.as_str(), ObjType::Map)
            .unwrap();
        doc.put(&entry, "volunteer", record.volunteer.as_str())
            .unwrap();
        doc.put(
            &entry,
            "hours_centi",
            ScalarValue::Uint(u64::from(record.hours.centi)),
        )
        .unwrap();
        doc.put(
            &entry,
            "recorded_on",
            date_format::format(record.recorded_on),
        )
        .unwrap();
        doc.put(&entry, "late", record.late).unwrap();
        doc.put(&entry, "deleted", record.deleted).unwrap();
    }
}

/// Write a volunteer with the fields `layout::put_volunteer` writes, without
/// its per-field read-before-write.
fn write_volunteer(doc: &mut AutoCommit, volunteer: &Volunteer) {
    let all = match doc.get(ROOT, layout::VOLUNTEERS).unwrap() {
        Some((_, id)) => id,
        None => doc
            .put_object(ROOT, layout::VOLUNTEERS, ObjType::Map)
            .unwrap(),
    };
    let obj = doc
        .put_object(&all, volunteer.number.as_str(), ObjType::Map)
        .unwrap();
    let text = [
        ("number", volunteer.number.to_string()),
        ("name", volunteer.name.clone()),
        ("sex", volunteer.sex.key().to_string()),
        ("birth_date", date_format::format(volunteer.birth_date)),
        ("residence_area", volunteer.residence_area.clone()),
        ("phone", volunteer.phone.clone()),
        ("id_digest", volunteer.id_digest.clone()),
        ("id_masked", volunteer.id_masked.clone()),
        ("skills", String::new()),
        ("categories", String::new()),
        ("home_station", volunteer.home_station.to_string()),
        (
            "registered_on",
            date_format::format(volunteer.registered_on),
        ),
    ];
    for (key, value) in text {
        doc.put(&obj, key, value).unwrap();
    }
    doc.put(&obj, "consent", volunteer.consent).unwrap();
    doc.put(&obj, "party_member", volunteer.party_member)
        .unwrap();
    doc.put(&obj, "deleted", volunteer.deleted).unwrap();
}

fn build_county(villages: usize) -> County {
    let county = StationId::parse("xh").unwrap();
    let mut registry = vec![Station {
        id: county.clone(),
        name: "县中心".into(),
        tier: Tier::County,
    }];
    let mut docs = BTreeMap::new();
    let mut village_ids = Vec::new();
    for v in 0..villages {
        let township = county
            .child(&format!("t{:02}", v / VILLAGES_PER_TOWNSHIP))
            .unwrap();
        if v % VILLAGES_PER_TOWNSHIP == 0 {
            registry.push(Station {
                id: township.clone(),
                name: township.to_string(),
                tier: Tier::Township,
            });
        }
        let village = township.child(&format!("v{v:03}")).unwrap();
        registry.push(Station {
            id: village.clone(),
            name: village.to_string(),
            tier: Tier::Village,
        });
        let numbers: Vec<String> = (0..VOLUNTEERS_PER_VILLAGE)
            .map(|n| format!("V{v:03}{n:03}"))
            .collect();

        let roster_id = DocumentId::roster(&village);
        let mut roster = AutoCommit::new().with_actor(actor_for(&village, 1));
        init_document(&mut roster, &roster_id).unwrap();
        for number in &numbers {
            write_volunteer(&mut roster, &volunteer(number, &village));
        }
        roster.commit();
        docs.insert(roster_id, roster);

        let activities_id = DocumentId::activities(&village, month());
        let mut activities = AutoCommit::new().with_actor(actor_for(&village, 1));
        init_document(&mut activities, &activities_id).unwrap();
        for a in 0..ACTIVITIES_PER_VILLAGE {
            let served: Vec<String> = (0..RECORDS_PER_ACTIVITY)
                .map(|k| numbers[(a * RECORDS_PER_ACTIVITY + k) % numbers.len()].clone())
                .collect();
            write_activity(
                &mut activities,
                &activity(&format!("A{a:03}"), &village, a, &served),
            );
        }
        activities.commit();
        docs.insert(activities_id, activities);
        village_ids.push(village);
    }
    County {
        docs,
        registry,
        villages: village_ids,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median cost of applying one village's changed activities document:
/// (read the document + fold, fold only).
fn apply_one_change(county: &mut County, index: &mut StatsIndex) -> (Duration, Duration) {
    let village = county.villages[county.villages.len() / 2].clone();
    let id = DocumentId::activities(&village, month());
    let mut with_read = Vec::new();
    let mut fold_only = Vec::new();
    for round in 0..APPLY_ROUNDS {
        let doc = county.docs.get_mut(&id).unwrap();
        let extra = activity(
            &format!("X{round:03}"),
            &village,
            round,
            &[format!("V{:03}000", 0)],
        );
        put_activity(doc, &extra).unwrap();
        doc.commit();
        let doc = &county.docs[&id];
        let started = Instant::now();
        index.apply_document(&id, doc).unwrap();
        with_read.push(started.elapsed());
        let contribution = Contribution::of(&id, doc).unwrap();
        let started = Instant::now();
        index.apply(&id, contribution).unwrap();
        fold_only.push(started.elapsed());
    }
    (median(with_read), median(fold_only))
}

fn main() {
    let full_villages = std::env::var("CIVSYNC_BENCH_VILLAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FULL_COUNTY_VILLAGES);

    let started = Instant::now();
    let mut small = build_county(SMALL_COUNTY_VILLAGES);
    let mut small_index = StatsIndex::from_documents(small.docs.iter());
    let (small_read, small_fold) = apply_one_change(&mut small, &mut small_index);
    println!(
        "small county ({SMALL_COUNTY_VILLAGES} villages, {} documents): apply one changed activities document: \
         median {:?} (read + fold), {:?} (fold only)",
        small.docs.len(),
        small_read,
        small_fold
    );

    let mut county = build_county(full_villages);
    let records: usize = full_villages * ACTIVITIES_PER_VILLAGE * RECORDS_PER_ACTIVITY;
    println!(
        "built county: {full_villages} villages, {} volunteers, {records} service records, {} documents in {:?}",
        full_villages * VOLUNTEERS_PER_VILLAGE,
        county.docs.len(),
        started.elapsed()
    );

    let mut rebuilds = Vec::new();
    let mut index = StatsIndex::new();
    for _ in 0..REBUILD_ROUNDS {
        let started = Instant::now();
        index = StatsIndex::from_documents(county.docs.iter());
        rebuilds.push(started.elapsed());
    }
    assert!(index.unreadable().is_empty());
    println!(
        "full rebuild of the index from documents: median {:?} (goal ≤ 5 s)",
        median(rebuilds)
    );

    let (full_read, full_fold) = apply_one_change(&mut county, &mut index);
    println!(
        "full county: apply one changed activities document: median {:?} (read + fold), {:?} (fold only)",
        full_read, full_fold
    );

    let root = StationId::parse("xh").unwrap();
    let period = Period::Month(month());
    let mut figures_times = Vec::new();
    let mut table_times = Vec::new();
    let mut report_times = Vec::new();
    for _ in 0..QUERY_ROUNDS {
        let started = Instant::now();
        let figures = index.figures(&root, period);
        figures_times.push(started.elapsed());
        assert!(figures.counts.service_records >= records as u64);

        let started = Instant::now();
        let table = index.station_table(&root, period, &county.registry);
        let coverage = index.coverage(&root, period, &county.registry);
        table_times.push(started.elapsed());
        assert_eq!(coverage.villages_active as usize, full_villages);
        assert_eq!(table.len(), county.registry.len());

        let started = Instant::now();
        let report = statistics_report(&index, &root, period, &county.registry).unwrap();
        report_times.push(started.elapsed());
        assert_eq!(report.rows.len(), county.registry.len());
    }
    println!(
        "county monthly query: figures median {:?}",
        median(figures_times)
    );
    println!(
        "county monthly query: per-station table + coverage median {:?} (goal ≤ 50 ms)",
        median(table_times)
    );
    println!(
        "county monthly report (rows, coverage per township, totals) median {:?}",
        median(report_times)
    );
}
