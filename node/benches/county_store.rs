//! A whole county in one store: import, cold open, memory.
//!
//! - import: 650 village rosters with 100,000 volunteers and 19,500
//!   activities (5–15 service records each) spread over 12 monthly documents
//!   per village — 650 + 7,800 documents — into sled, one commit per
//!   document (a roster's volunteers, and a month's activities, created in
//!   one batch each, as the bulk paths do), one flush at the end;
//! - cold open: open that store and serve a first request (a village roster);
//! - memory: RSS after the open, and peak RSS after a full statistics
//!   rebuild over every document;
//! - RSS of an idle village node process (`civsync run`, its own store).
//!
//! cargo bench -p civsync-node --bench county_store

use automerge::AutoCommit;

use civsync_node::store::bulk;
use civsync_node::store::SledStorage;
use civsync_protocol::domain::model::{
    Activity, Category, Form, Hours, RecordId, ServiceRecord, Sex, Volunteer,
};
use civsync_protocol::replica::{Replica, ReplicaConfig};
use civsync_protocol::stats::StatsIndex;
use civsync_protocol::{layout, DocumentId, Month, StationId};
use std::time::{Duration, Instant};
use time::macros::date;

const TOWNSHIPS: usize = 25;
const VILLAGES_PER_TOWNSHIP: usize = 26;
const VOLUNTEERS: usize = 100_000;
const ACTIVITIES: usize = 19_500;

fn status_kib(pid: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time this process has used (user + system), from /proc: on a
/// shared machine wall time measures the neighbours as much as us.
fn cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields of the whole line.
    let after = text.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

fn villages() -> Vec<StationId> {
    let mut out = Vec::new();
    for t in 0..TOWNSHIPS {
        for v in 0..VILLAGES_PER_TOWNSHIP {
            out.push(StationId::parse(&format!("xh/t{t:02}/v{v:02}")).unwrap());
        }
    }
    out
}

fn volunteer(station: &StationId, n: usize) -> Volunteer {
    Volunteer {
        number: RecordId::parse("n", &format!("V{n:07}")).unwrap(),
        name: format!("志愿者{n}"),
        sex: if n.is_multiple_of(2) {
            Sex::Female
        } else {
            Sex::Male
        },
        birth_date: date!(1980 - 01 - 01),
        residence_area: "村".into(),
        phone: format!("138{n:08}"),
        phone_seals: Default::default(),
        id_digest: format!("{:064x}", n),
        id_sealed: String::new(),
        id_masked: "4116**********0001".into(),
        skills: vec![],
        categories: vec![Category::Culture],
        home_station: station.clone(),
        registered_on: date!(2025 - 01 - 10),
        consent: true,
        party_member: n.is_multiple_of(5),
        deleted: false,
    }
}

type BuildJob = Box<dyn FnOnce(&mut AutoCommit) -> Result<(), layout::LayoutError> + Send>;

fn roster_job(village: StationId, numbers: Vec<usize>) -> BuildJob {
    Box::new(move |doc| {
        let roster: Vec<Volunteer> = numbers.iter().map(|&n| volunteer(&village, n)).collect();
        for answer in layout::put_volunteers(doc, &roster)? {
            answer?;
        }
        Ok(())
    })
}

fn month_job(
    index: usize,
    village: StationId,
    month: u8,
    in_month: Vec<usize>,
    numbers: Vec<usize>,
) -> BuildJob {
    Box::new(move |doc| {
        let mut month_sheet = Vec::with_capacity(in_month.len());
        for &a in &in_month {
            let records = (0..5 + a % 11)
                .map(|r| ServiceRecord {
                    volunteer: RecordId::parse(
                        "v",
                        &format!("V{:07}", numbers[(a * 7 + r) % numbers.len()]),
                    )
                    .unwrap(),
                    home_station: None,
                    hours: Hours { centi: 150 },
                    recorded_on: date!(2025 - 12 - 01),
                    late: false,
                    deleted: false,
                })
                .collect();
            month_sheet.push(Activity {
                id: RecordId::parse("id", &format!("A{index:03}x{a:03}")).unwrap(),
                name: "理论宣讲".into(),
                date: time::Date::from_calendar_date(
                    2025,
                    time::Month::try_from(month).unwrap(),
                    10,
                )
                .unwrap(),
                station: village.clone(),
                place: "村文化广场".into(),
                content: "学习宣讲".into(),
                form: Form::Lecture,
                category: Category::Theory,
                team: None,
                person_in_charge: "站长".into(),
                beneficiaries: 40,
                theme: None,
                recorded_on: date!(2025 - 12 - 01),
                late: false,
                deleted: false,
                records,
            });
        }
        for answer in layout::put_activities(doc, &month_sheet)? {
            answer?;
        }
        Ok(())
    })
}

/// The county's documents, each with the job that fills it.
fn county_jobs() -> Vec<(DocumentId, BuildJob)> {
    let villages = villages();
    let per_village = VOLUNTEERS / villages.len();
    let activities_per_village = ACTIVITIES / villages.len();
    let mut jobs = Vec::new();
    let mut next_volunteer = 0;
    for (index, village) in villages.iter().enumerate() {
        let count = if index == villages.len() - 1 {
            VOLUNTEERS - next_volunteer
        } else {
            per_village
        };
        let numbers: Vec<usize> = (next_volunteer..next_volunteer + count).collect();
        next_volunteer += count;
        jobs.push((
            DocumentId::roster(village),
            roster_job(village.clone(), numbers.clone()),
        ));
        for month in 1..=12u8 {
            let in_month: Vec<usize> = (0..activities_per_village)
                .filter(|a| a % 12 == usize::from(month - 1))
                .collect();
            if in_month.is_empty() {
                continue;
            }
            let document = DocumentId::activities(village, Month::new(2025, month).unwrap());
            jobs.push((
                document,
                month_job(index, village.clone(), month, in_month, numbers.clone()),
            ));
        }
    }
    jobs
}

/// Import the county as the node's bulk path does: documents built on
/// `threads` workers, stored by this thread as they come, one flush.
fn import(replica: &mut Replica<SledStorage>, threads: usize) -> Duration {
    let started = Instant::now();
    let builder = replica.document_builder();
    bulk::build_in_parallel(&builder, county_jobs(), threads, |_, built| {
        let (built, ()) = built.unwrap();
        replica.store_built(built).unwrap();
    });
    replica.flush().unwrap();
    started.elapsed()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let county = StationId::parse("xh").unwrap();
    let me = std::process::id().to_string();

    // One worker first (the CPU the import costs), then every core (what
    // an office waits for); each into a store of its own.
    let threads = bulk::build_threads();
    let mut runs = vec![1, threads];
    runs.dedup();
    for workers in runs {
        let path = dir.path().join(format!("store-{workers}"));
        let storage = SledStorage::open(&path).unwrap();
        let mut replica =
            Replica::open(storage, county.clone(), 1, ReplicaConfig::default()).unwrap();
        let cpu_before = cpu_seconds();
        let import_time = import(&mut replica, workers);
        let import_cpu = cpu_seconds() - cpu_before;
        let documents = replica.documents().len();
        drop(replica);
        println!("county import, {workers} build thread(s): {VOLUNTEERS} volunteers in 650 rosters + {ACTIVITIES} activities, {documents} documents: {:.2} s wall, {import_cpu:.2} s CPU", import_time.as_secs_f64());
    }
    let path = dir.path().join(format!("store-{threads}"));

    // What the import left in this process (allocator pools, sled's
    // cache), so that the RSS after the open below can be read against it.
    println!(
        "RSS after the import, replica dropped: {} MiB",
        status_kib(&me, "VmRSS:") / 1024
    );
    let mut opens = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let storage = SledStorage::open(&path).unwrap();
        let mut replica =
            Replica::open(storage, county.clone(), 1, ReplicaConfig::default()).unwrap();
        let first = DocumentId::roster(&StationId::parse("xh/t07/v13").unwrap());
        let served = replica
            .with_document(&first, |doc| layout::volunteers(doc).unwrap().len())
            .unwrap()
            .unwrap();
        assert!(served > 100);
        opens.push(started.elapsed().as_secs_f64());
        drop(replica);
    }
    opens.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "cold open to first request (median of 3): {:.3} s  (runs {opens:.3?})",
        opens[1]
    );

    let storage = SledStorage::open(&path).unwrap();
    let mut replica = Replica::open(storage, county, 1, ReplicaConfig::default()).unwrap();
    println!("RSS after open: {} MiB", status_kib(&me, "VmRSS:") / 1024);
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let mut index = StatsIndex::new();
    for id in replica.documents() {
        replica
            .with_document(&id, |doc| index.apply_document(&id, doc).unwrap())
            .unwrap();
    }
    let figures = index.station_month(
        &StationId::parse("xh").unwrap(),
        Month::new(2025, 6).unwrap(),
    );
    println!(
        "statistics rebuild over {} documents: {:.2} s wall, {:.2} s CPU; county 2025-06 figures: {figures:?}",
        index.documents(),
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu_before
    );
    println!(
        "RSS after statistics: {} MiB, peak (VmHWM) {} MiB",
        status_kib(&me, "VmRSS:") / 1024,
        status_kib(&me, "VmHWM:") / 1024
    );

    // A service certificate of the county's busiest volunteer: reading
    // every activities document held (what the API did) against reading
    // those the statistics index says the volunteer served in.
    let busiest = {
        let standing = &index.volunteers_in(&StationId::parse("xh").unwrap(), 1)[0];
        civsync_protocol::domain::model::VolunteerId::new(
            standing.home_station.clone(),
            standing.number.clone(),
        )
    };
    let all_activities: Vec<DocumentId> = replica
        .documents()
        .into_iter()
        .filter(|id| {
            matches!(
                id.kind,
                civsync_protocol::identity::document_id::DocumentKind::Activities(_)
            )
        })
        .collect();
    let mut read_records = |documents: Vec<DocumentId>| {
        let started = Instant::now();
        let mut records = 0;
        for id in documents {
            let found = replica
                .with_document(&id, |doc| layout::activities(doc).unwrap())
                .unwrap()
                .unwrap();
            records += found
                .iter()
                .filter(|a| {
                    !a.deleted
                        && a.records
                            .iter()
                            .any(|r| r.volunteer_id(&a.station) == busiest)
                })
                .count();
        }
        (records, started.elapsed().as_secs_f64())
    };
    let serving = index.documents_serving(&busiest);
    let mut by_index = Vec::new();
    let mut by_scan = Vec::new();
    for _ in 0..3 {
        by_index.push(read_records(serving.clone()));
        by_scan.push(read_records(all_activities.clone()));
    }
    assert!(by_index
        .iter()
        .chain(&by_scan)
        .all(|(records, _)| *records == by_index[0].0));
    let median = |runs: &mut Vec<(usize, f64)>| {
        runs.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        runs[1].1
    };
    let (index_s, scan_s) = (median(&mut by_index), median(&mut by_scan));
    println!(
        "certificate of the busiest volunteer ({} activities): reading the {} documents served in {:.4} s, every one of {} activities documents {:.3} s (medians of 3; {:.0}x)",
        by_index[0].0,
        serving.len(),
        index_s,
        all_activities.len(),
        scan_s,
        scan_s / index_s
    );
    drop(replica);

    // An idle village node: its own store, the real binary.
    let village_dir = dir.path().join("village");
    let binary = env!("CARGO_BIN_EXE_civsync");
    let init = std::process::Command::new(binary)
        .args(["init", "--data-dir"])
        .arg(&village_dir)
        .args([
            "--station",
            "xh/t00/v00",
            "--tier",
            "village",
            "--api-listen",
            "127.0.0.1:0",
            "--quic-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let mut child = std::process::Command::new(binary)
        .args(["run", "--data-dir"])
        .arg(&village_dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let pid = child.id().to_string();
    println!(
        "idle village node RSS after 3 s: {} MiB",
        status_kib(&pid, "VmRSS:") / 1024
    );
    let _ = child.kill();
    let _ = child.wait();
}
