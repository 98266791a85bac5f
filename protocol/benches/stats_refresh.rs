//! What a county's statistics refresh costs per moved document: one
//! township's 26 villages (a roster of 150 volunteers and three months of
//! 10 activities with 5–15 service records each, every activity its own
//! change) held by the county's replica, its `StoredStats` opened once.
//! Each round, every village records one new activity and corrects one
//! volunteer (52 moved documents, as after a township's sync), then:
//!
//! - the refresh, as the node runs it every 10 s (documents moved by their
//!   new changes alone where it can);
//! - the same 52 documents read whole (`Contribution::of`), which is what
//!   the refresh did for each of them before.
//!
//! cargo bench -p civsync-protocol --bench stats_refresh

use civsync_protocol::domain::model::{
    Activity, Category, Form, Hours, RecordId, ServiceRecord, Sex, Volunteer,
};
use civsync_protocol::replica::{Replica, ReplicaConfig};
use civsync_protocol::stats::{Contribution, StoredStats};
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::{layout, DocumentId, Month, StationId};
use std::time::{Duration, Instant};
use time::macros::date;

const VILLAGES: usize = 26;
const VOLUNTEERS_PER_VILLAGE: usize = 150;
const ACTIVITIES_PER_MONTH: usize = 10;
const MONTHS: u8 = 3;
const ROUNDS: usize = 21;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn number(village: usize, n: usize) -> RecordId {
    RecordId::parse("n", &format!("V{village:03}n{n:03}")).unwrap()
}

fn volunteer(village: &StationId, index: usize, n: usize, party_member: bool) -> Volunteer {
    Volunteer {
        number: number(index, n),
        name: "王秀英".into(),
        sex: if n.is_multiple_of(2) {
            Sex::Female
        } else {
            Sex::Male
        },
        birth_date: date!(1975 - 03 - 08),
        residence_area: "东村三组".into(),
        phone: format!("138{index:03}{n:05}"),
        phone_seals: Default::default(),
        id_digest: format!("{index:032x}{n:032x}"),
        id_sealed: String::new(),
        id_masked: "4116**********0001".into(),
        skills: vec!["理发".into()],
        categories: vec![Category::ElderCare],
        home_station: village.clone(),
        registered_on: date!(2025 - 01 - 10),
        consent: true,
        party_member,
        deleted: false,
    }
}

fn activity(village: &StationId, index: usize, month: u8, a: usize) -> Activity {
    let date = time::Date::from_calendar_date(2025, time::Month::try_from(month).unwrap(), 1)
        .unwrap()
        .replace_day(1 + (a % 28) as u8)
        .unwrap();
    let records = 5 + (a + index) % 11;
    Activity {
        id: RecordId::parse("id", &format!("A{month}x{a}")).unwrap(),
        name: "关爱留守老人".into(),
        date,
        station: village.clone(),
        place: "村文化广场".into(),
        content: "上门探访，打扫卫生，理发".into(),
        form: Form::Help,
        category: Category::ElderCare,
        team: None,
        person_in_charge: "站长".into(),
        beneficiaries: 30,
        theme: None,
        recorded_on: date,
        late: false,
        deleted: false,
        records: (0..records)
            .map(|r| ServiceRecord {
                // One volunteer once a day: a volunteer serves at most 24 h.
                volunteer: number(index, (a * 7 + r * 13) % VOLUNTEERS_PER_VILLAGE),
                home_station: None,
                hours: Hours { centi: 150 },
                recorded_on: date,
                late: false,
                deleted: false,
            })
            .collect(),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let mut county = Replica::open(
        MemoryStorage::new(),
        station("xh"),
        1,
        ReplicaConfig::default(),
    )
    .unwrap();
    let villages: Vec<StationId> = (0..VILLAGES)
        .map(|v| station(&format!("xh/t01/v{v:02}")))
        .collect();
    for (index, village) in villages.iter().enumerate() {
        county
            .commit(&DocumentId::roster(village), |doc| {
                for n in 0..VOLUNTEERS_PER_VILLAGE {
                    layout::put_volunteer(doc, &volunteer(village, index, n, false))?;
                }
                Ok::<_, layout::LayoutError>(())
            })
            .unwrap();
        for month in 1..=MONTHS {
            let document = DocumentId::activities(village, Month::new(2025, month).unwrap());
            for a in 0..ACTIVITIES_PER_MONTH {
                let record = activity(village, index, month, a);
                county
                    .commit(&document, |doc| layout::put_activity(doc, &record))
                    .unwrap();
            }
        }
    }
    let (mut stats, opened) = StoredStats::open(&mut county);
    println!(
        "{} documents, {} read at open",
        opened.documents, opened.refresh.reread
    );

    let mut refreshes = Vec::new();
    let mut whole_reads = Vec::new();
    let mut moved_by_changes = Vec::new();
    for round in 0..ROUNDS {
        let mut moved = Vec::new();
        for (index, village) in villages.iter().enumerate() {
            let document = DocumentId::activities(village, Month::new(2025, MONTHS).unwrap());
            let record = activity(village, index, MONTHS, ACTIVITIES_PER_MONTH + round);
            county
                .commit(&document, |doc| layout::put_activity(doc, &record))
                .unwrap();
            let roster = DocumentId::roster(village);
            // Volunteer `round` joins the Party: a new value each round.
            let corrected = volunteer(village, index, round, true);
            county
                .commit(&roster, |doc| layout::put_volunteer(doc, &corrected))
                .unwrap();

            moved.push(document);
            moved.push(roster);
        }
        let started = Instant::now();
        let report = stats.refresh(&mut county);
        refreshes.push(started.elapsed());
        moved_by_changes.push(report.from_changes);
        assert_eq!(
            report.from_changes + report.reread,
            moved.len(),
            "{report:?}"
        );

        let started = Instant::now();
        let read: Vec<Contribution> = moved
            .iter()
            .map(|id| {
                county
                    .with_document(id, |doc| Contribution::of(id, doc))
                    .unwrap()
                    .unwrap()
                    .unwrap()
            })
            .collect();
        whole_reads.push(started.elapsed());
        for (id, contribution) in moved.iter().zip(&read) {
            assert!(stats.index().contribution(id) == Some(contribution));
        }
    }
    let refresh = median(refreshes);
    let whole = median(whole_reads);
    println!(
        "{} moved documents a round, {ROUNDS} rounds; moved by their changes alone: {:?}",
        2 * VILLAGES,
        moved_by_changes
    );
    println!(
        "refresh: median {:.2} ms ({:.1} µs a document); the same documents read whole: median {:.2} ms ({:.1} µs a document); ratio {:.2}",
        refresh.as_secs_f64() * 1e3,
        refresh.as_secs_f64() * 1e6 / (2 * VILLAGES) as f64,
        whole.as_secs_f64() * 1e3,
        whole.as_secs_f64() * 1e6 / (2 * VILLAGES) as f64,
        refresh.as_secs_f64() / whole.as_secs_f64()
    );
}
