//! Cost of the county statistics.
//!
//! 1. Applying one changed activities document to the index (one village
//!    records one more service record), in a small county and a full one:
//!    the cost must not depend on the county's size.
//! 2. Rebuilding the whole index from in-memory documents for a county of
//!    650 villages, ~100k volunteers and ~200k service records (goal ≤ 5 s).
//! 3. A county monthly statistics query in process: the county's figures,
//!    the per-station table with coverage, and the full report (goal ≤ 50 ms).
//! 4. The node: the full county in a sled store, started without and with
//!    the persisted statistics index (store open + first refresh), and the
//!    county's monthly statistics (`GET /api/v1/stats`, every station's
//!    row) through the real router on 127.0.0.1: the first request after
//!    start, then the median after warm-up (goal ≤ 50 ms).
//!
//! Prints medians. `CIVSYNC_BENCH_VILLAGES` overrides the 650 villages.
//!
//! Run: `cargo bench -p civsync-node --bench stats`

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ReadDoc, ScalarValue, ROOT};
use civsync_node::config::NodeConfig;
use civsync_node::context::NodeContext;
use civsync_node::files::report::statistics_report;
use civsync_node::store::{SledStorage, Store};
use civsync_protocol::domain::model::date_format;
use civsync_protocol::domain::model::{
    Activity, Category, Form, Hours, RecordId, ServiceRecord, Sex, Volunteer,
};
use civsync_protocol::domain::pii::{CountyOpenKey, IdSealer};
use civsync_protocol::identity::actor::actor_for;
use civsync_protocol::layout::{self, init_document, put_activity};
use civsync_protocol::replica::layout::STATS_PREFIX;
use civsync_protocol::replica::ReplicaConfig;
use civsync_protocol::stats::{Contribution, Period, StatsIndex};
use civsync_protocol::storage::{Storage, WriteBatch};
use civsync_protocol::{DocumentId, Month, Station, StationId, Tier};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
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
const START_WITHOUT_INDEX_ROUNDS: usize = 2;
const START_WITH_INDEX_ROUNDS: usize = 3;
const API_WARMUP_REQUESTS: usize = 5;
const API_REQUESTS: usize = 21;
/// Documents written per call to the store's owner thread while building.
const BUILD_DOCUMENTS_PER_CALL: usize = 50;

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
        phone_seals: Default::default(),
        id_digest: String::new(),
        id_sealed: String::new(),
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
                home_station: None,
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

/// One document of the bench county and what goes into it.
struct Plan {
    id: DocumentId,
    volunteers: Vec<Volunteer>,
    activities: Vec<Activity>,
}

fn write_plan(doc: &mut AutoCommit, plan: &Plan) {
    for volunteer in &plan.volunteers {
        write_volunteer(doc, volunteer);
    }
    for activity in &plan.activities {
        write_activity(doc, activity);
    }
}

/// The county's documents (a roster and a November activities document per
/// village), its registry and its villages.
fn plan_county(villages: usize) -> (Vec<Plan>, Vec<Station>, Vec<StationId>) {
    let county = StationId::parse("xh").unwrap();
    let mut registry = vec![Station {
        id: county.clone(),
        name: "县中心".into(),
        tier: Tier::County,
    }];
    let mut plans = Vec::new();
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
        plans.push(Plan {
            id: DocumentId::roster(&village),
            volunteers: numbers.iter().map(|n| volunteer(n, &village)).collect(),
            activities: vec![],
        });
        let activities = (0..ACTIVITIES_PER_VILLAGE)
            .map(|a| {
                let served: Vec<String> = (0..RECORDS_PER_ACTIVITY)
                    .map(|k| numbers[(a * RECORDS_PER_ACTIVITY + k) % numbers.len()].clone())
                    .collect();
                activity(&format!("A{a:03}"), &village, a, &served)
            })
            .collect();
        plans.push(Plan {
            id: DocumentId::activities(&village, month()),
            volunteers: vec![],
            activities,
        });
        village_ids.push(village);
    }
    (plans, registry, village_ids)
}

/// The county as in-memory documents written by each village's actor.
fn build_county(villages: usize) -> County {
    let (plans, registry, villages) = plan_county(villages);
    let mut docs = BTreeMap::new();
    for plan in plans {
        let mut doc = AutoCommit::new().with_actor(actor_for(&plan.id.owner, 1));
        init_document(&mut doc, &plan.id).unwrap();
        write_plan(&mut doc, &plan);
        doc.commit();
        docs.insert(plan.id, doc);
    }
    County {
        docs,
        registry,
        villages,
    }
}

fn open_store(path: &Path) -> Store {
    Store::open(
        path,
        StationId::parse("xh").unwrap(),
        ReplicaConfig::default(),
    )
    .unwrap()
}

/// The county written into a sled store at `path` (by the county node, an
/// ancestor of every village, so it may write their documents), then read
/// back into memory for the in-process measurements.
fn build_county_in_store(villages: usize, path: &Path) -> County {
    let (plans, registry, villages) = plan_county(villages);
    let store = open_store(path);
    let mut plans = plans.into_iter().peekable();
    while plans.peek().is_some() {
        let chunk: Vec<Plan> = plans.by_ref().take(BUILD_DOCUMENTS_PER_CALL).collect();
        store
            .call_blocking(move |replica| {
                for plan in &chunk {
                    replica
                        .commit_unflushed(&plan.id, |doc| {
                            write_plan(doc, plan);
                            Ok::<(), Infallible>(())
                        })
                        .unwrap();
                }
                replica.flush().unwrap();
            })
            .unwrap();
    }
    let started = Instant::now();
    let docs = store
        .call_blocking(|replica| {
            let mut docs = BTreeMap::new();
            for id in replica.documents() {
                let doc = replica.with_document(&id, |d| d.clone()).unwrap().unwrap();
                docs.insert(id, doc);
            }
            docs
        })
        .unwrap();
    println!(
        "loaded every document of the store into memory in {:?}",
        started.elapsed()
    );
    store.close_blocking();
    County {
        docs,
        registry,
        villages,
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

    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store");
    let mut county = build_county_in_store(full_villages, &store_path);
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
    drop(county);
    drop(index);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(node(&store_path, dir.path(), full_villages));
}

/// The persisted statistics entries of the store at `path`, all deleted:
/// the next start rebuilds from the documents.
fn forget_stats_index(path: &Path) {
    let mut storage = SledStorage::open(path).unwrap();
    let mut batch = WriteBatch::new();
    for (key, _) in storage.scan_prefix(STATS_PREFIX).unwrap() {
        batch.delete(key);
    }
    storage.apply(batch).unwrap();
    storage.flush().unwrap();
}

/// Start a county node's store and statistics as `civsync run` does (open
/// the store, then the first refresh); returns the context and the time.
async fn start(store_path: &Path, data_dir: &Path) -> (Arc<NodeContext>, Duration, usize) {
    let started = Instant::now();
    let path = store_path.to_path_buf();
    let store = tokio::task::spawn_blocking(move || open_store(&path))
        .await
        .unwrap();
    let county = StationId::parse("xh").unwrap();
    let access = Arc::new(civsync_node::access::Access::open(&store, data_dir, 0, vec![]).unwrap());
    let ctx = Arc::new(NodeContext {
        config: NodeConfig::new(county, Tier::County),
        data_dir: data_dir.to_path_buf(),
        id_sealer: IdSealer::new(CountyOpenKey::generate([9; 32]).seal_key(), [8; 32]),
        county_id_key: Some(CountyOpenKey::generate([9; 32])),
        phone_reader: civsync_protocol::domain::phone_reader::PhoneReader {
            station: civsync_protocol::StationId::parse("xh").unwrap(),
            home_key: None,
            county_key: Some(CountyOpenKey::generate([9; 32])),
        },
        store,
        peers: Default::default(),
        stats: Default::default(),
        registry: Default::default(),
        revocations: Default::default(),
        certificate: None,
        access,
        progress: Default::default(),
    });
    let reread = ctx
        .refresh_stats()
        .await
        .map_err(|e| e.to_string())
        .unwrap();
    (ctx, started.elapsed(), reread)
}

async fn get(http: &reqwest::Client, url: &str) -> (Duration, usize) {
    let started = Instant::now();
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let body = response.bytes().await.unwrap();
    (started.elapsed(), body.len())
}

async fn node(store_path: &Path, data_dir: &Path, villages: usize) {
    let documents = 2 * villages;
    let mut without = Vec::new();
    for _ in 0..START_WITHOUT_INDEX_ROUNDS {
        forget_stats_index(store_path);
        let (ctx, took, reread) = start(store_path, data_dir).await;
        assert_eq!(reread, documents);
        without.push(took);
        ctx.store.close().await;
    }
    let mut with = Vec::new();
    for _ in 0..START_WITH_INDEX_ROUNDS {
        let (ctx, took, reread) = start(store_path, data_dir).await;
        assert_eq!(reread, 0, "every persisted entry current");
        with.push(took);
        ctx.store.close().await;
    }
    println!(
        "node start (store open + statistics ready), {documents} documents: without persisted index {:?} {without:?}; \
         with persisted index {:?} {with:?}",
        median(without.clone()),
        median(with.clone())
    );

    let (ctx, _, _) = start(store_path, data_dir).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = civsync_node::api::router(ctx.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/api/v1/stats?station=xh&month={}", month());
    let (first, bytes) = get(&http, &url).await;
    let report: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    let rows = report["rows"].as_array().map_or(0, |rows| rows.len());
    assert!(rows > villages, "every station has its row: {rows}");
    for _ in 0..API_WARMUP_REQUESTS {
        get(&http, &url).await;
    }
    let mut times = Vec::new();
    for _ in 0..API_REQUESTS {
        times.push(get(&http, &url).await.0);
    }
    println!(
        "county monthly statistics through the API (GET /api/v1/stats, {rows} rows, {bytes} bytes): \
         first request after start {first:?}; median of {API_REQUESTS} after warm-up {:?} (goal ≤ 50 ms)",
        median(times)
    );
    ctx.store.close().await;
}
