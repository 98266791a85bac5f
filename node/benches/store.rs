//! Durable commits per second through `Store` (group commit), with 1 and with
//! 16 concurrent writers. Each commit records one activity with 10 service
//! records (through `layout::put_activity`, as the API does) into a
//! per-station-month document, and is acknowledged only after the flush
//! that covers it. Prints the median of several rounds.
//!
//! Also prints commits per CPU-second of the whole process (all threads),
//! which does not depend on how busy the machine is: the owner thread is
//! CPU-bound on Automerge's commit cost once writers share flushes.
//!
//! Run: `cargo bench -p civsync-node --bench store`

use automerge::AutoCommit;
use civsync_node::store::Store;
use civsync_protocol::domain::model::{Activity, Category, Form, Hours, RecordId, ServiceRecord};
use civsync_protocol::identity::document_id::{DocumentId, Month};
use civsync_protocol::identity::station::StationId;
use civsync_protocol::layout::{self, LayoutError};
use civsync_protocol::replica::ReplicaConfig;
use std::time::Instant;
use time::macros::date;

const ROUNDS: usize = 5;
const COMMITS_PER_WRITER_SINGLE: usize = 300;
const COMMITS_PER_WRITER_CONCURRENT: usize = 150;

/// One activity with 10 service records, through the layout the API uses.
fn record_activity(doc: &mut AutoCommit, writer: usize, n: usize) -> Result<(), LayoutError> {
    let station = StationId::parse(&format!("xh/t1/v{writer}")).unwrap();
    let records = (0..10)
        .map(|r| ServiceRecord {
            // A volunteer per record: the daily 24-hour rule stays out of the way.
            volunteer: RecordId::parse("v", &format!("V{writer:02}n{n:04}r{r:02}")).unwrap(),
            home_station: None,
            hours: Hours { centi: 150 },
            recorded_on: date!(2026 - 11 - 15),
            late: false,
            deleted: false,
        })
        .collect();
    let activity = Activity {
        id: RecordId::parse("id", &format!("a-{writer}-{n}")).unwrap(),
        name: "理论宣讲进村入户".into(),
        // Spread over the month: the daily-hours rule reads only one day.
        date: time::Date::from_calendar_date(2026, time::Month::November, 1 + (n % 14) as u8)
            .unwrap(),
        station,
        place: "村文明实践站".into(),
        content: "移风易俗".into(),
        form: Form::Lecture,
        category: Category::Theory,
        team: None,
        person_in_charge: "张三".into(),
        beneficiaries: 80,
        theme: None,
        recorded_on: date!(2026 - 11 - 15),
        late: false,
        deleted: false,
        records,
    };
    layout::put_activity(doc, &activity)
}

fn document_of(writer: usize) -> DocumentId {
    let station = StationId::parse(&format!("xh/t1/v{writer}")).unwrap();
    DocumentId::activities(&station, Month::new(2026, 11).unwrap())
}

/// CPU seconds used by this process so far (Linux `/proc/self/stat`,
/// utime + stime in clock ticks of 1/100 s); `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// One round: a fresh store, `writers` tasks each committing `commits`
/// activities into its own village's month document. Returns commits per
/// wall-clock second and per CPU second.
fn round(runtime: &tokio::runtime::Runtime, writers: usize, commits: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StationId::parse("xh/t1").unwrap(),
        ReplicaConfig::default(),
    )
    .unwrap();
    let cpu_started = process_cpu_seconds().unwrap_or(0.0);
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for writer in 0..writers {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..commits {
                    store
                        .commit(document_of(writer), move |doc| {
                            record_activity(doc, writer, n)
                        })
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let cpu = process_cpu_seconds().unwrap_or(0.0) - cpu_started;
    store.close_blocking();
    let total = (writers * commits) as f64;
    (total / elapsed.as_secs_f64(), total / cpu.max(0.01))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (writers, commits) in [
        (1, COMMITS_PER_WRITER_SINGLE),
        (16, COMMITS_PER_WRITER_CONCURRENT),
    ] {
        let results: Vec<(f64, f64)> = (0..ROUNDS)
            .map(|_| round(&runtime, writers, commits))
            .collect();
        let wall: Vec<f64> = results.iter().map(|(wall, _)| *wall).collect();
        let cpu: Vec<f64> = results.iter().map(|(_, cpu)| *cpu).collect();
        let rounded: Vec<u64> = wall.iter().map(|rate| *rate as u64).collect();
        println!(
            "store durable commits: {writers:>2} writer(s) x {commits} commits: median {:.0} commits/s \
             (rounds: {rounded:?}); median {:.0} commits per CPU-second",
            median(wall),
            median(cpu)
        );
    }
}
