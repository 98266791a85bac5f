//! The persisted statistics index on a real sled store: a county node
//! stopped, changed behind its back (a write while its statistics were not
//! running) or with a damaged entry, then started again, serves the same
//! figures as a rebuild from the documents.

use super::*;
use crate::config::NodeConfig;
use crate::store::{SledStorage, Store};
use civsync_protocol::domain::model::{Activity, Category, Form, Hours, RecordId, ServiceRecord};
use civsync_protocol::domain::pii::{CountyOpenKey, IdSealer};
use civsync_protocol::layout::put_activity;
use civsync_protocol::replica::ReplicaConfig;
use civsync_protocol::stats::{recompute_from_scratch, stats_key};
use civsync_protocol::storage::{Storage, WriteBatch};
use civsync_protocol::DocumentId;
use civsync_protocol::Tier;
use std::path::Path;
use time::macros::date;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn november() -> Month {
    Month::new(2026, 11).unwrap()
}

fn start(dir: &Path) -> Arc<NodeContext> {
    let county = station("xh");
    let store = Store::open(&dir.join("store"), county.clone(), ReplicaConfig::default()).unwrap();
    let access = Arc::new(crate::access::Access::open(&store, dir, 0, vec![]).unwrap());
    Arc::new(NodeContext {
        config: NodeConfig::new(county, Tier::County),
        data_dir: dir.to_path_buf(),
        id_sealer: IdSealer::new(CountyOpenKey::generate([9; 32]).seal_key(), [8; 32]),
        county_id_key: Some(CountyOpenKey::generate([9; 32])),
        phone_reader: civsync_protocol::domain::phone_reader::PhoneReader {
            station: station("xh"),
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
    })
}

/// Record activity `id` at `village` with two volunteers serving `centi`.
async fn record(ctx: &NodeContext, village: &str, id: &str, centi: u32) {
    let activity = Activity {
        id: RecordId::parse("id", id).unwrap(),
        name: "理论宣讲".into(),
        date: date!(2026 - 11 - 03),
        station: station(village),
        place: "广场".into(),
        content: "宣讲".into(),
        form: Form::ALL[0],
        category: Category::ALL[0],
        team: None,
        person_in_charge: "李明".into(),
        beneficiaries: 20,
        theme: None,
        recorded_on: date!(2026 - 11 - 03),
        late: false,
        deleted: false,
        records: ["N1", "N2"]
            .iter()
            .map(|v| ServiceRecord {
                volunteer: RecordId::parse("volunteer", v).unwrap(),
                home_station: None,
                hours: Hours { centi },
                recorded_on: date!(2026 - 11 - 03),
                late: false,
                deleted: false,
            })
            .collect(),
    };
    let document = DocumentId::activities(&station(village), november());
    ctx.store
        .commit(document, move |doc| put_activity(doc, &activity))
        .await
        .unwrap();
}

fn county_hours(ctx: &NodeContext) -> u64 {
    let state = ctx.stats.lock().unwrap();
    state
        .index()
        .station_month(&station("xh"), november())
        .counts
        .hours_centi
}

/// The index the node serves equals a recomputation from its documents.
async fn assert_matches_documents(ctx: &NodeContext) {
    let docs = ctx
        .store
        .call(|replica| {
            let mut docs = Vec::new();
            for id in replica.documents() {
                let doc = replica.with_document(&id, |d| d.clone()).unwrap().unwrap();
                docs.push((id, doc));
            }
            docs
        })
        .await
        .unwrap();
    let scratch = recompute_from_scratch(docs.iter().map(|(id, doc)| (id, doc))).unwrap();
    let state = ctx.stats.lock().unwrap();
    assert_eq!(state.index().statistics(), scratch);
}

const VILLAGES: [&str; 3] = ["xh/t1/v1", "xh/t1/v2", "xh/t2/v3"];

#[tokio::test]
async fn a_restart_reads_only_what_changed_while_the_node_was_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = start(dir.path());
    for village in VILLAGES {
        record(&ctx, village, "A1", 150).await;
    }
    assert_eq!(ctx.refresh_stats().await.unwrap(), 3);
    assert_eq!(county_hours(&ctx), 3 * 2 * 150);
    ctx.store.close().await;
    drop(ctx);

    // The store changes while the node's statistics are not running (an
    // import by another tool, a restored backup, a write the stats never
    // refreshed on): one activity corrected, one added.
    let offline = start(dir.path());
    record(&offline, "xh/t1/v2", "A1", 400).await;
    record(&offline, "xh/t2/v3", "A2", 100).await;
    offline.store.close().await;
    drop(offline);

    let ctx = start(dir.path());
    assert_eq!(
        ctx.refresh_stats().await.unwrap(),
        2,
        "only the changed documents"
    );
    assert_eq!(county_hours(&ctx), 2 * 150 + 2 * 400 + 2 * 150 + 2 * 100);
    assert_matches_documents(&ctx).await;
    assert_eq!(ctx.refresh_stats().await.unwrap(), 0);
    ctx.store.close().await;
    drop(ctx);

    let ctx = start(dir.path());
    assert_eq!(ctx.refresh_stats().await.unwrap(), 0, "every entry current");
    assert_matches_documents(&ctx).await;
    ctx.store.close().await;
}

#[tokio::test]
async fn a_corrupt_entry_in_sled_is_rebuilt_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = start(dir.path());
    for village in VILLAGES {
        record(&ctx, village, "A1", 150).await;
    }
    ctx.refresh_stats().await.unwrap();
    ctx.store.close().await;
    drop(ctx);

    {
        // Flip one byte inside v1's entry, directly in sled.
        let mut storage = SledStorage::open(&dir.path().join("store")).unwrap();
        let key = stats_key(&DocumentId::activities(&station("xh/t1/v1"), november()));
        let mut value = storage.get(&key).unwrap().expect("entry persisted");
        let middle = value.len() / 2;
        value[middle] ^= 0x10;
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        storage.apply(batch).unwrap();
        storage.flush().unwrap();
    }

    let ctx = start(dir.path());
    assert_eq!(
        ctx.refresh_stats().await.unwrap(),
        1,
        "the damaged entry's document"
    );
    assert_eq!(county_hours(&ctx), 3 * 2 * 150);
    assert_matches_documents(&ctx).await;
    ctx.store.close().await;
}

/// The county's statistics document of `month`, read.
async fn published(ctx: &NodeContext) -> Option<civsync_protocol::layout::MonthCounts> {
    ctx.store
        .call(|replica| {
            replica
                .with_document(
                    &DocumentId::statistics(&station("xh"), november()),
                    civsync_protocol::layout::statistics,
                )
                .unwrap()
                .map(Result::unwrap)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_county_node_publishes_changed_months_only_and_a_restart_rewrites_nothing_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = start(dir.path());
    for village in VILLAGES {
        record(&ctx, village, "A1", 150).await;
    }
    let report = ctx.publish_statistics().await.unwrap().unwrap();
    assert_eq!(report.months_written, vec![november()]);
    let held = published(&ctx).await.expect("the month is published");
    assert_eq!(held[&station("xh")].hours_centi, 3 * 2 * 150);
    assert_eq!(held[&station("xh/t1")].activities, 2);
    let again = ctx.publish_statistics().await.unwrap().unwrap();
    assert!(again.months_written.is_empty(), "nothing changed");
    ctx.store.close().await;
    drop(ctx);

    // A restart remembers nothing it wrote: every month is compared with
    // its document, and an unchanged one makes no change.
    let ctx = start(dir.path());
    let cold = ctx.publish_statistics().await.unwrap().unwrap();
    assert_eq!(cold.months_checked, 1);
    assert!(cold.months_written.is_empty());
    record(&ctx, "xh/t2/v3", "A2", 100).await;
    let changed = ctx.publish_statistics().await.unwrap().unwrap();
    assert_eq!(changed.months_written, vec![november()]);
    let held = published(&ctx).await.unwrap();
    assert_eq!(held[&station("xh")].hours_centi, 3 * 2 * 150 + 2 * 100);
    ctx.store.close().await;
}

#[tokio::test]
async fn a_refresh_of_many_moved_documents_runs_in_jobs_that_let_other_work_in_between() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = start(dir.path());
    // The first refresh opens the (empty) persisted index.
    assert_eq!(ctx.refresh_stats().await.unwrap(), 0);
    let villages = 2 * crate::context::stats::REFRESH_DOCUMENTS_PER_JOB + 5;
    for n in 0..villages {
        record(&ctx, &format!("xh/t1/v{n}"), "A1", 100).await;
    }
    let total = villages as u64 * 2 * 100;

    let refreshing = {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.refresh_stats().await.unwrap() })
    };
    // Each call queues a job behind the refresh's current one: it sees the
    // index as the jobs so far left it.
    let mut seen = Vec::new();
    while !refreshing.is_finished() {
        ctx.store.call(|_| ()).await.unwrap();
        seen.push(county_hours(&ctx));
    }
    assert_eq!(refreshing.await.unwrap(), villages);
    assert_eq!(county_hours(&ctx), total);
    assert!(
        seen.iter().any(|hours| 0 < *hours && *hours < total),
        "no job ran between the refresh's jobs: {seen:?}"
    );
    assert_matches_documents(&ctx).await;
}
