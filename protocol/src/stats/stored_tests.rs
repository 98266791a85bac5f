//! Tests of the persisted statistics index: a restart reuses what is
//! current, reads again what changed while stopped, and never trusts a
//! corrupt, foreign or outdated entry. Every check compares the figures
//! with a recomputation from scratch.

use super::*;
use crate::domain::model::{
    Activity, Category, Form, Hours, RecordId, ServiceRecord, Sex, Volunteer,
};
use crate::identity::station::StationId;
use crate::layout::{delete_activity, put_activity, put_volunteer};
use crate::replica::ReplicaConfig;
use crate::stats::{recompute_from_scratch, Statistics};
use crate::storage::MemoryStorage;
use automerge::AutoCommit;
use proptest::prelude::*;
use time::macros::date;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn rid(text: &str) -> RecordId {
    RecordId::parse("id", text).unwrap()
}

const VILLAGES: [&str; 3] = ["xh/t1/v1", "xh/t1/v2", "xh/t2/v3"];

fn november() -> crate::Month {
    crate::Month::new(2026, 11).unwrap()
}

fn volunteer(number: &str, home: &str) -> Volunteer {
    Volunteer {
        number: rid(number),
        name: "志愿者".into(),
        sex: Sex::Male,
        birth_date: date!(1980 - 01 - 01),
        residence_area: String::new(),
        phone: String::new(),
        phone_seals: Default::default(),
        id_digest: String::new(),
        id_sealed: String::new(),
        id_masked: String::new(),
        skills: vec![],
        categories: vec![],
        home_station: station(home),
        registered_on: date!(2026 - 03 - 01),
        consent: true,
        party_member: false,
        deleted: false,
    }
}

fn activity(id: &str, at: &str, served: &[&str], centi: u32) -> Activity {
    Activity {
        id: rid(id),
        name: "活动".into(),
        date: date!(2026 - 11 - 05),
        station: station(at),
        place: "广场".into(),
        content: "内容".into(),
        form: Form::ALL[id.len() % Form::ALL.len()],
        category: Category::ALL[0],
        team: None,
        person_in_charge: "李明".into(),
        beneficiaries: 10,
        theme: None,
        recorded_on: date!(2026 - 11 - 05),
        late: false,
        deleted: false,
        records: served
            .iter()
            .map(|v| ServiceRecord {
                volunteer: rid(v),
                home_station: None,
                hours: Hours { centi },
                recorded_on: date!(2026 - 11 - 05),
                late: false,
                deleted: false,
            })
            .collect(),
    }
}

fn county() -> Replica<MemoryStorage> {
    Replica::open(
        MemoryStorage::new(),
        station("xh"),
        1,
        ReplicaConfig::default(),
    )
    .unwrap()
}

/// Stop the node (dropping the statistics) and start it again; with
/// `crash`, everything not flushed is lost first.
fn restart(replica: Replica<MemoryStorage>, crash: bool) -> Replica<MemoryStorage> {
    let local = replica.local().clone();
    let config = replica.config().clone();
    let mut storage = replica.into_storage();
    if crash {
        storage.crash();
    }
    Replica::open(storage, local, 1, config).unwrap()
}

fn record(replica: &mut Replica<MemoryStorage>, village: &str, activity_id: &str, centi: u32) {
    try_record(replica, village, activity_id, centi).expect("recorded");
}

/// Record an activity; the layout refuses more than 24 hours a day for a
/// volunteer, which random sequences of activities may ask for.
fn try_record(
    replica: &mut Replica<MemoryStorage>,
    village: &str,
    activity_id: &str,
    centi: u32,
) -> Result<(), String> {
    let id = DocumentId::activities(&station(village), november());
    let served = ["N1", "N2"];
    let activity = activity(activity_id, village, &served, centi);
    replica
        .commit(&id, |doc| put_activity(doc, &activity))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn register(replica: &mut Replica<MemoryStorage>, village: &str, number: &str) {
    let id = DocumentId::roster(&station(village));
    let volunteer = volunteer(number, village);
    replica
        .commit(&id, |doc| put_volunteer(doc, &volunteer))
        .unwrap();
}

/// A points entry (a redemption's record) in the village's roster: no
/// figure counts it.
fn points(replica: &mut Replica<MemoryStorage>, village: &str, key: u8) {
    let id = DocumentId::roster(&station(village));
    let text = format!("spent {key} at {village}");
    replica
        .commit(&id, |doc| {
            crate::layout::put_points_entry(doc, &format!("p{key}"), &text)
        })
        .unwrap();
}

fn seeded() -> Replica<MemoryStorage> {
    let mut replica = county();
    for (n, village) in VILLAGES.iter().enumerate() {
        register(&mut replica, village, &format!("N{n}"));
        record(&mut replica, village, "A1", 150);
    }
    replica
}

/// The figures the stored index serves equal a recomputation from the
/// documents the replica holds.
fn assert_correct(stats: &StoredStats, replica: &mut Replica<MemoryStorage>) {
    let mut docs: Vec<(DocumentId, AutoCommit)> = Vec::new();
    for id in replica.documents() {
        let doc = replica.with_document(&id, |d| d.clone()).unwrap().unwrap();
        docs.push((id, doc));
    }
    let scratch = recompute_from_scratch(docs.iter().map(|(id, doc)| (id, doc))).unwrap();
    assert_eq!(stats.index().statistics(), scratch);
    assert_eq!(stats.seen().len(), docs.len());
}

fn county_hours(stats: &StoredStats) -> u64 {
    stats
        .index()
        .station_month(&station("xh"), november())
        .counts
        .hours_centi
}

#[test]
fn a_restart_reuses_every_current_entry_and_reads_nothing() {
    let mut replica = seeded();
    let (stats, first) = StoredStats::open(&mut replica);
    assert_eq!(first.missing, 6);
    assert_eq!(first.reused, 0);
    assert_eq!(first.refresh.reread, 6);
    assert_correct(&stats, &mut replica);
    let before = stats.index().statistics();
    drop(stats);

    let mut replica = restart(replica, false);
    let (stats, second) = StoredStats::open(&mut replica);
    assert_eq!(second.entries, 6);
    assert_eq!(second.reused, 6);
    assert_eq!(second.refresh.reread, 0);
    assert!(second.corrupt.is_empty());
    assert_eq!(stats.index().statistics(), before);
    assert_correct(&stats, &mut replica);
}

#[test]
fn a_refresh_in_slices_leaves_the_rest_counted_and_ends_where_one_refresh_would() {
    let mut replica = seeded();
    let (mut stats, _) = StoredStats::open(&mut replica);
    // Three villages record: six documents move (activities and roster).
    for (n, village) in VILLAGES.iter().take(3).enumerate() {
        record(&mut replica, village, "A2", 100);
        register(&mut replica, village, &format!("M{n}"));
    }
    let hours_before = county_hours(&stats);
    let first = stats.refresh_at_most(&mut replica, 4);
    assert_eq!(first.reread + first.from_changes, 4);
    assert_eq!(first.left, 2);
    let hours_between = county_hours(&stats);
    let second = stats.refresh_at_most(&mut replica, 4);
    assert_eq!((second.reread + second.from_changes, second.left), (2, 0));
    assert_correct(&stats, &mut replica);
    // Between the slices the index was behind only by what was left: part
    // of the new hours were counted, not all.
    let hours_after = county_hours(&stats);
    assert!(
        hours_before < hours_between && hours_between < hours_after,
        "{hours_before} < {hours_between} < {hours_after}"
    );
    let idle = stats.refresh_at_most(&mut replica, 4);
    assert_eq!((idle.reread + idle.from_changes, idle.left), (0, 0));
}

#[test]
fn points_entries_alone_keep_a_roster_s_figures_without_reading_it_again() {
    let mut replica = seeded();
    let (mut stats, _) = StoredStats::open(&mut replica);
    points(&mut replica, "xh/t1/v1", 1);
    points(&mut replica, "xh/t1/v2", 2);
    let report = stats.refresh(&mut replica);
    assert_eq!((report.from_changes, report.reread), (2, 0));
    assert_correct(&stats, &mut replica);
    // The entries were rewritten under the new digests: a restart reuses
    // them and reads nothing.
    drop(stats);
    replica = restart(replica, false);
    let (stats, reopened) = StoredStats::open(&mut replica);
    assert_eq!((reopened.reused, reopened.refresh.reread), (6, 0));
    assert_correct(&stats, &mut replica);
}

#[test]
fn a_registration_beside_points_entries_is_counted() {
    let mut replica = seeded();
    let (mut stats, _) = StoredStats::open(&mut replica);
    points(&mut replica, "xh/t1/v1", 1);
    register(&mut replica, "xh/t1/v1", "N9");
    points(&mut replica, "xh/t1/v1", 2);
    let report = stats.refresh(&mut replica);
    // The registration is the one record the changes touch: read alone.
    assert_eq!((report.from_changes, report.reread), (1, 0));
    assert_correct(&stats, &mut replica);
    // Then points alone again: read at the registration's heads, skipped.
    points(&mut replica, "xh/t1/v1", 3);
    let report = stats.refresh(&mut replica);
    assert_eq!((report.from_changes, report.reread), (1, 0));
    assert_correct(&stats, &mut replica);
}

#[test]
fn a_document_changed_while_stopped_is_read_again() {
    let mut replica = seeded();
    let (stats, _) = StoredStats::open(&mut replica);
    assert_eq!(county_hours(&stats), 3 * 2 * 150);
    drop(stats);
    // While the node is stopped (no statistics running), one village's
    // activity is corrected and another added: the entries are now stale.
    record(&mut replica, "xh/t1/v2", "A1", 300);
    record(&mut replica, "xh/t2/v3", "A2", 100);
    let mut replica = restart(replica, false);
    let (stats, report) = StoredStats::open(&mut replica);
    assert_eq!(report.changed, 2);
    assert_eq!(report.reused, 4);
    assert_eq!(report.refresh.reread, 2);
    assert_eq!(county_hours(&stats), 2 * 150 + 2 * 300 + 2 * 150 + 2 * 100);
    assert_correct(&stats, &mut replica);
}

#[test]
fn writes_between_the_snapshot_and_the_finish_of_an_open_are_counted() {
    let mut replica = seeded();
    let (stats, _) = StoredStats::open(&mut replica);
    drop(stats);
    let mut replica = restart(replica, false);
    // The node folds on another thread while the store's thread goes on:
    // a correction in one village and a new activity in another land
    // between the snapshot and the finish.
    let snapshot = OpenSnapshot::take(&replica);
    record(&mut replica, "xh/t1/v2", "A1", 300);
    record(&mut replica, "xh/t2/v3", "A2", 100);
    let folded = snapshot.fold(|entries, fold| {
        fold(
            &mut entries
                .into_iter()
                .map(|(key, value)| decode_stored(key, value)),
        )
    });
    let (stats, report) = folded.finish(&mut replica, usize::MAX);
    // Every entry was current at the snapshot, so all were trusted, and
    // the two documents that moved since were read again at the finish.
    assert_eq!((report.reused, report.changed), (6, 0), "{report:?}");
    assert_eq!(
        report.refresh.reread + report.refresh.from_changes,
        2,
        "{report:?}"
    );
    assert_eq!(county_hours(&stats), 2 * 150 + 2 * 300 + 2 * 150 + 2 * 100);
    assert_correct(&stats, &mut replica);
}

#[test]
fn a_deleted_activity_and_a_crash_losing_entries_still_give_correct_figures() {
    let mut replica = seeded();
    let (mut stats, _) = StoredStats::open(&mut replica);
    let id = DocumentId::activities(&station("xh/t1/v1"), november());
    replica
        .commit(&id, |doc| delete_activity(doc, &rid("A1")))
        .unwrap();
    // The refresh writes entries without a flush; the crash may lose them.
    stats.refresh(&mut replica);
    assert!(replica.storage().has_unflushed_writes());
    drop(stats);
    let mut replica = restart(replica, true);
    let (stats, report) = StoredStats::open(&mut replica);
    assert_eq!(report.changed, 1, "{report:?}");
    assert_eq!(county_hours(&stats), 2 * 2 * 150);
    assert_correct(&stats, &mut replica);
}

/// Open once so every document has an entry, then hand back the storage.
fn persisted() -> (MemoryStorage, Statistics) {
    let mut replica = seeded();
    let (stats, _) = StoredStats::open(&mut replica);
    let figures = stats.index().statistics();
    replica.flush().unwrap();
    (replica.into_storage(), figures)
}

fn reopen(storage: MemoryStorage) -> (Replica<MemoryStorage>, StoredStats, StatsOpenReport) {
    let mut replica = Replica::open(storage, station("xh"), 1, ReplicaConfig::default()).unwrap();
    let (stats, report) = StoredStats::open(&mut replica);
    (replica, stats, report)
}

#[test]
fn a_flipped_byte_is_reported_and_the_document_read_again() {
    let (mut storage, figures) = persisted();
    let key = stats_key(&DocumentId::activities(&station("xh/t1/v1"), november()));
    let mut value = storage.get(&key).unwrap().unwrap();
    let last = value.len() - 1;
    value[last] ^= 0x40;
    storage.corrupt_value(&key, value);
    let (mut replica, stats, report) = reopen(storage);
    assert_eq!(report.corrupt.len(), 1);
    assert!(report.corrupt[0].reason.contains("checksum"), "{report:?}");
    assert_eq!(report.refresh.reread, 1);
    assert_eq!(stats.index().statistics(), figures);
    assert_correct(&stats, &mut replica);
    // The rebuilt entry is trusted at the next start.
    drop(stats);
    let (_, _, report) = reopen(replica.into_storage());
    assert!(report.corrupt.is_empty());
    assert_eq!(report.reused, 6);
}

#[test]
fn a_well_framed_entry_of_another_document_is_not_trusted() {
    let (mut storage, figures) = persisted();
    let v1 = stats_key(&DocumentId::activities(&station("xh/t1/v1"), november()));
    let v2 = stats_key(&DocumentId::activities(&station("xh/t1/v2"), november()));
    // A valid checksum over the wrong content: v1's entry under v2's key.
    let copied = storage.get(&v1).unwrap().unwrap();
    storage.corrupt_value(&v2, copied);
    let (mut replica, stats, report) = reopen(storage);
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!(stats.index().statistics(), figures);
    assert_correct(&stats, &mut replica);
}

#[test]
fn a_tampered_digest_or_an_old_format_is_recomputed() {
    let (mut storage, figures) = persisted();
    let roster = stats_key(&DocumentId::roster(&station("xh/t2/v3")));
    // Same contribution framed as if computed at another digest.
    let Ok(StoredEntry::Current { contribution, .. }) =
        decode_entry(&roster, &storage.get(&roster).unwrap().unwrap())
    else {
        panic!("entry decodes");
    };
    storage.corrupt_value(&roster, encode_entry(&[9; 16], &contribution));
    let activities = stats_key(&DocumentId::activities(&station("xh/t2/v3"), november()));
    let mut old = storage.get(&activities).unwrap().unwrap()[9..].to_vec();
    old[..4].copy_from_slice(&0u32.to_be_bytes());
    storage.corrupt_value(&activities, crate::replica::layout::seal(&old));
    let (mut replica, stats, report) = reopen(storage);
    assert_eq!(report.changed, 1, "{report:?}");
    assert_eq!(report.other_format, 1, "{report:?}");
    assert_eq!(report.refresh.reread, 2);
    assert_eq!(stats.index().statistics(), figures);
    assert_correct(&stats, &mut replica);
}

#[test]
fn garbage_keys_and_entries_of_documents_not_held_are_dropped() {
    let (mut storage, figures) = persisted();
    let gone = stats_key(&DocumentId::activities(&station("xh/t9/v9"), november()));
    let entry = storage
        .get(&stats_key(&DocumentId::activities(
            &station("xh/t1/v1"),
            november(),
        )))
        .unwrap()
        .unwrap();
    storage.corrupt_value(&gone, entry);
    storage.corrupt_value(b"stats|not a document", vec![1, 2, 3]);
    storage.corrupt_value(FRESHNESS_KEY, vec![0; 3]);
    let (mut replica, stats, report) = reopen(storage);
    assert_eq!(report.orphans, 1, "{report:?}");
    assert_eq!(report.corrupt.len(), 2, "{report:?}");
    assert_eq!(report.refresh.reread, 0);
    assert_eq!(stats.index().statistics(), figures);
    assert_correct(&stats, &mut replica);
    let keys = replica.storage().keys();
    assert!(!keys.contains(&gone));
    assert!(!keys.contains(&b"stats|not a document".to_vec()));
}

#[test]
fn entries_emptied_everywhere_rebuild_everything() {
    let mut replica = seeded();
    let (stats, _) = StoredStats::open(&mut replica);
    let figures = stats.index().statistics();
    drop(stats);
    // Every entry gone (a store copied without them, say).
    let mut storage = replica.into_storage();
    for key in storage.keys() {
        if key.starts_with(crate::replica::layout::STATS_PREFIX) {
            storage.corrupt_value(&key, Vec::new());
        }
    }
    let (mut replica, stats, report) = reopen(storage);
    assert_eq!(report.corrupt.len(), 6);
    assert_eq!(report.refresh.reread, 6);
    assert_eq!(stats.index().statistics(), figures);
    assert_correct(&stats, &mut replica);
}

#[test]
fn freshness_survives_a_restart() {
    let mut replica = seeded();
    let (mut stats, _) = StoredStats::open(&mut replica);
    stats
        .index_mut()
        .freshness_mut()
        .record_heard_from(&station("xh/t1/v1"), 1_700_000_000_000);
    stats.refresh(&mut replica);
    let freshness = stats.index().freshness().clone();
    drop(stats);
    let mut replica = restart(replica, false);
    let (stats, _) = StoredStats::open(&mut replica);
    assert_eq!(*stats.index().freshness(), freshness);
}

#[test]
fn statistics_batches_refuse_keys_outside_their_prefix() {
    let mut replica = county();
    let mut batch = WriteBatch::new();
    batch.put(b"idx|roster:xh".to_vec(), vec![]);
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        replica.apply_stats_batch(batch)
    }));
    // Debug builds assert; release builds return the typed error.
    assert!(refused.is_err() || refused.unwrap().is_err());
}

#[derive(Debug, Clone)]
enum Op {
    Record {
        village: usize,
        activity: u8,
        centi: u32,
    },
    Register {
        village: usize,
        number: u8,
    },
    Delete {
        village: usize,
        activity: u8,
    },
    Points {
        village: usize,
        key: u8,
    },
    Query,
    Restart {
        crash: bool,
    },
    Flip {
        entry: usize,
        byte: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..4u8, 1..600u32)
            .prop_map(|(village, activity, centi)| Op::Record { village, activity, centi }),
        2 => (0..3usize, 0..4u8).prop_map(|(village, number)| Op::Register { village, number }),
        1 => (0..3usize, 0..4u8).prop_map(|(village, activity)| Op::Delete { village, activity }),
        2 => (0..3usize, 0..4u8).prop_map(|(village, key)| Op::Points { village, key }),
        2 => Just(Op::Query),
        2 => any::<bool>().prop_map(|crash| Op::Restart { crash }),
        1 => (0..16usize, 0..4096usize).prop_map(|(entry, byte)| Op::Flip { entry, byte }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever happened while the node was stopped, crashed or its entries
    /// damaged, the figures after each start and each query equal a
    /// recomputation from scratch.
    #[test]
    fn stored_index_equals_from_scratch_across_restarts(ops in proptest::collection::vec(op(), 1..30)) {
        let mut replica = county();
        let (mut stats, _) = StoredStats::open(&mut replica);
        for op in ops {
            match op {
                Op::Record { village, activity, centi } => {
                    // A refusal (too many hours that day) commits nothing.
                    let _ = try_record(&mut replica, VILLAGES[village], &format!("A{activity}"), centi);
                }
                Op::Register { village, number } => {
                    register(&mut replica, VILLAGES[village], &format!("N{number}"))
                }
                Op::Delete { village, activity } => {
                    let id = DocumentId::activities(&station(VILLAGES[village]), november());
                    if replica.holds(&id) {
                        // Deleting an activity never recorded is refused: fine.
                        let _ = replica.commit(&id, |doc| delete_activity(doc, &rid(&format!("A{activity}"))));
                    }
                }
                Op::Points { village, key } => points(&mut replica, VILLAGES[village], key),
                Op::Query => {
                    stats.refresh(&mut replica);
                    assert_correct(&stats, &mut replica);
                }
                Op::Restart { crash } => {
                    drop(stats);
                    replica = restart(replica, crash);
                    let (reopened, _) = StoredStats::open(&mut replica);
                    stats = reopened;
                    assert_correct(&stats, &mut replica);
                }
                Op::Flip { entry, byte } => {
                    drop(stats);
                    let mut storage = replica.into_storage();
                    let keys: Vec<Vec<u8>> = storage
                        .keys()
                        .into_iter()
                        .filter(|k| k.starts_with(crate::replica::layout::STATS_PREFIX))
                        .collect();
                    if !keys.is_empty() {
                        let key = &keys[entry % keys.len()];
                        let mut value = storage.get(key).unwrap().unwrap();
                        let at = byte % value.len().max(1);
                        if let Some(b) = value.get_mut(at) {
                            *b ^= 0x5a;
                        }
                        storage.corrupt_value(key, value);
                    }
                    replica = Replica::open(storage, station("xh"), 1, ReplicaConfig::default()).unwrap();
                    let (reopened, report) = StoredStats::open(&mut replica);
                    prop_assert!(keys.is_empty() || report.corrupt.len() == 1, "{:?}", report);
                    stats = reopened;
                    assert_correct(&stats, &mut replica);
                }
            }
        }
        stats.refresh(&mut replica);
        assert_correct(&stats, &mut replica);
    }
}
