//! One unit: the replica's tests (commits, compaction, crashes, sync,
//! authority), sharing one set of fixtures.
//!
//! Replica tests over `MemoryStorage`: durability across crashes, rollback,
//! injected faults, compaction, eviction, corruption, and sync between
//! replicas through the `SyncHost` methods.

use super::*;
use crate::identity::actor::actor_for;
use crate::identity::document_id::Month;
use crate::identity::schema;
use crate::storage::MemoryStorage;
use crate::sync::authority::{check_document, AuthorityError};
use crate::sync::host::{ReceiveError, SyncHost};
use crate::sync::signing::PayloadFormat;
use automerge::sync::SyncDoc;
use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc, ScalarValue, Value, ROOT};
use proptest::prelude::*;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn village() -> StationId {
    station("xh/t1/v1")
}

fn month() -> Month {
    Month::new(2026, 11).unwrap()
}

fn activities() -> DocumentId {
    DocumentId::activities(&village(), month())
}

fn open(
    storage: MemoryStorage,
    local: &StationId,
    config: ReplicaConfig,
) -> Replica<MemoryStorage> {
    Replica::open(storage, local.clone(), 7, config).unwrap()
}

fn fresh(local: &StationId) -> Replica<MemoryStorage> {
    open(MemoryStorage::new(), local, ReplicaConfig::default())
}

/// Reopen after a power loss.
fn crash_and_reopen(replica: Replica<MemoryStorage>) -> Replica<MemoryStorage> {
    let config = replica.config().clone();
    let local = replica.local().clone();
    let mut storage = replica.into_storage();
    storage.crash();
    open(storage, &local, config)
}

fn put(
    key: &str,
    value: i64,
) -> impl FnOnce(&mut AutoCommit) -> Result<(), automerge::AutomergeError> + '_ {
    move |doc| doc.put(ROOT, key, value).map(|_| ())
}

fn read(replica: &mut Replica<MemoryStorage>, document: &DocumentId, key: &str) -> Option<i64> {
    replica
        .with_document(document, |doc| match doc.get(ROOT, key).unwrap() {
            Some((Value::Scalar(scalar), _)) => match scalar.as_ref() {
                ScalarValue::Int(n) => Some(*n),
                _ => None,
            },
            _ => None,
        })
        .unwrap()
        .flatten()
}

#[test]
fn new_documents_carry_meta_and_acknowledged_commits_survive_a_crash() {
    let mut replica = fresh(&village());
    let outcome = replica.commit(&activities(), put("a", 1)).unwrap();
    assert!(outcome.created);
    assert_eq!(outcome.changes, 1);
    replica.commit(&activities(), put("b", 2)).unwrap();
    let unacknowledged = replica
        .commit_unflushed(&activities(), put("c", 3))
        .unwrap();
    assert_eq!(unacknowledged.changes, 1);
    assert_eq!(
        read(&mut replica, &activities(), "c"),
        Some(3),
        "reads see unflushed commits"
    );

    let mut replica = crash_and_reopen(replica);
    assert_eq!(read(&mut replica, &activities(), "a"), Some(1));
    assert_eq!(read(&mut replica, &activities(), "b"), Some(2));
    assert_eq!(
        read(&mut replica, &activities(), "c"),
        None,
        "unflushed commit is gone"
    );
    let schema = replica
        .with_document(&activities(), schema::declared_schema)
        .unwrap()
        .flatten();
    assert_eq!(schema, Some(schema::current_schema()));
    assert_eq!(replica.change_count(&activities()), Some(2));
    // The same actor goes on after the lost change without a sequence clash.
    replica.commit(&activities(), put("d", 4)).unwrap();
    let mut replica = crash_and_reopen(replica);
    assert_eq!(read(&mut replica, &activities(), "d"), Some(4));
}

#[test]
fn a_shared_flush_acknowledges_every_pending_commit() {
    let mut replica = fresh(&village());
    let roster = DocumentId::roster(&village());
    replica
        .commit_unflushed(&activities(), put("a", 1))
        .unwrap();
    replica.commit_unflushed(&roster, put("b", 2)).unwrap();
    assert!(replica.has_unflushed_writes());
    replica.flush().unwrap();
    assert!(!replica.has_unflushed_writes());
    let mut replica = crash_and_reopen(replica);
    assert_eq!(read(&mut replica, &activities(), "a"), Some(1));
    assert_eq!(read(&mut replica, &roster, "b"), Some(2));
}

#[test]
fn a_failing_mutation_changes_nothing_in_memory_or_storage() {
    let mut replica = fresh(&village());
    // A document that does not exist stays absent.
    let error = replica
        .commit(&activities(), |doc| {
            doc.put(ROOT, "a", 1)?;
            Err::<(), _>(automerge::AutomergeError::Fail)
        })
        .unwrap_err();
    assert!(matches!(error, CommitError::Mutate(_)));
    assert!(!replica.holds(&activities()));
    assert!(replica
        .storage()
        .keys()
        .iter()
        .all(|key| key.starts_with(b"meta|")));

    replica.commit(&activities(), put("a", 1)).unwrap();
    let keys = replica.storage().keys();
    let heads = replica.heads(&activities()).unwrap().to_vec();
    let error = replica
        .commit(&activities(), |doc| {
            doc.put(ROOT, "a", 99).unwrap();
            doc.put(ROOT, "b", 2).unwrap();
            Err::<(), _>("refused")
        })
        .unwrap_err();
    assert!(matches!(error, CommitError::Mutate("refused")));
    // A mutation that commits on its own and then fails: also nothing.
    let error = replica
        .commit(&activities(), |doc| {
            doc.put(ROOT, "a", 77).unwrap();
            doc.commit();
            Err::<(), _>("late refusal")
        })
        .unwrap_err();
    assert!(matches!(error, CommitError::Mutate("late refusal")));
    assert_eq!(replica.storage().keys(), keys);
    assert_eq!(replica.heads(&activities()).unwrap(), heads.as_slice());
    assert_eq!(read(&mut replica, &activities(), "a"), Some(1));
    assert_eq!(read(&mut replica, &activities(), "b"), None);
    assert!(
        replica.take_changed_documents() == vec![activities()],
        "only the successful commit moved heads"
    );
}

#[test]
fn injected_storage_faults_leave_no_half_write() {
    let mut replica = fresh(&village());
    replica.commit(&activities(), put("a", 1)).unwrap();
    let heads = replica.heads(&activities()).unwrap().to_vec();

    let mut storage = replica.into_storage();
    storage.fail_next_applies(1);
    let mut replica = open(storage, &village(), ReplicaConfig::default());
    let error = replica.commit(&activities(), put("b", 2)).unwrap_err();
    assert!(matches!(error, CommitError::Storage { .. }), "{error}");
    assert_eq!(replica.heads(&activities()).unwrap(), heads.as_slice());
    assert_eq!(
        read(&mut replica, &activities(), "b"),
        None,
        "memory was rolled back too"
    );

    // A failed flush: the commit is not acknowledged and a crash loses it.
    let mut storage = replica.into_storage();
    storage.fail_next_flushes(1);
    let mut replica = open(storage, &village(), ReplicaConfig::default());
    assert!(matches!(
        replica.commit(&activities(), put("c", 3)),
        Err(CommitError::Storage { .. })
    ));
    let mut replica = crash_and_reopen(replica);
    assert_eq!(read(&mut replica, &activities(), "c"), None);
    assert_eq!(replica.heads(&activities()).unwrap(), heads.as_slice());
    assert!(replica.verify().is_empty());
    // And the store goes on working.
    replica.commit(&activities(), put("d", 4)).unwrap();
    assert_eq!(
        read(&mut crash_and_reopen(replica), &activities(), "d"),
        Some(4)
    );
}

#[test]
fn commits_outside_write_authority_are_refused() {
    let mut replica = fresh(&village());
    let neighbour = DocumentId::roster(&station("xh/t1/v2"));
    assert!(matches!(
        replica.commit(&neighbour, put("a", 1)),
        Err(CommitError::OutOfScope { .. })
    ));
    let township_menu = DocumentId::reference(&station("xh/t1"), "menu").unwrap();
    assert!(matches!(
        replica.commit(&township_menu, put("a", 1)),
        Err(CommitError::NotWritable { .. })
    ));
    assert!(replica.documents().is_empty());
}

fn small_compaction() -> ReplicaConfig {
    ReplicaConfig {
        compaction_increments_max: 4,
        compaction_bytes_min: 1,
        ..ReplicaConfig::default()
    }
}

#[test]
fn compaction_keeps_content_and_heads() {
    let mut replica = open(MemoryStorage::new(), &village(), small_compaction());
    let mut saw_snapshot = false;
    for n in 0..30 {
        replica
            .commit(&activities(), put(&format!("k{n}"), n))
            .unwrap();
        let entry = replica.index_entry(&activities()).unwrap().clone();
        assert!(entry.increment_count() <= 4);
        saw_snapshot |= entry.snapshot_bytes > 0;
        let stored_increments = replica
            .storage()
            .scan_prefix(&increments_prefix(&activities()))
            .unwrap()
            .len();
        assert_eq!(
            stored_increments as u64,
            entry.increment_count(),
            "compaction deleted what it replaced"
        );
    }
    assert!(saw_snapshot);
    assert_eq!(replica.change_count(&activities()), Some(30));
    let heads = replica.heads(&activities()).unwrap().to_vec();
    let before = replica
        .with_document(&activities(), |doc| doc.clone().save())
        .unwrap()
        .unwrap();

    let mut replica = crash_and_reopen(replica);
    assert_eq!(replica.heads(&activities()).unwrap(), heads.as_slice());
    let after = replica
        .with_document(&activities(), |doc| doc.clone().save())
        .unwrap()
        .unwrap();
    assert_eq!(before, after, "reloaded document is byte-identical");
    for n in 0..30 {
        assert_eq!(read(&mut replica, &activities(), &format!("k{n}")), Some(n));
    }
    assert!(replica.verify().is_empty());
}

#[test]
fn documents_are_evicted_and_reload_from_storage() {
    let config = ReplicaConfig {
        documents_cached_max: 2,
        ..ReplicaConfig::default()
    };
    let mut replica = open(MemoryStorage::new(), &village(), config);
    let documents: Vec<DocumentId> = (1..=6)
        .map(|m| DocumentId::activities(&village(), Month::new(2026, m).unwrap()))
        .collect();
    for (n, document) in documents.iter().enumerate() {
        replica.commit(document, put("n", n as i64)).unwrap();
        assert!(replica.cached_documents() <= 2);
    }
    for (n, document) in documents.iter().enumerate() {
        assert_eq!(read(&mut replica, document, "n"), Some(n as i64));
        assert!(replica.cached_documents() <= 2);
    }
    assert_eq!(replica.documents(), documents);
}

#[test]
fn corrupt_values_are_named_by_key() {
    let mut replica = fresh(&village());
    replica.commit(&activities(), put("a", 1)).unwrap();
    replica.commit(&activities(), put("b", 2)).unwrap();
    // The first write is the snapshot; the second is increment 0.
    let increment = increment_key(&activities(), 0);
    let mut storage = replica.into_storage();
    let mut value = storage.get(&increment).unwrap().unwrap();
    value.truncate(value.len() - 3);
    storage.corrupt_value(&increment, value);

    let mut replica = open(storage, &village(), ReplicaConfig::default());
    let error = replica.with_document(&activities(), |_| ()).unwrap_err();
    let expected = crate::storage::display_key(&increment);
    assert!(
        matches!(&error, LoadError::Corrupt(problem) if problem.key == expected),
        "{error}"
    );
    assert!(matches!(
        replica.commit(&activities(), put("c", 3)),
        Err(CommitError::Load { .. })
    ));
    let problems = replica.verify();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, expected);

    // A corrupt index entry stops the store from opening, naming the key.
    let mut storage = replica.into_storage();
    let index = index_key(&activities());
    storage.corrupt_value(&index, b"\x01garbage".to_vec());
    let error = Replica::open(storage, village(), 7, ReplicaConfig::default())
        .err()
        .unwrap();
    assert!(
        matches!(&error, OpenError::Corrupt(problem) if problem.key == "idx|activities:xh/t1/v1:2026-11"),
        "{error}"
    );
}

#[test]
fn a_missing_increment_is_reported_not_skipped() {
    let mut replica = fresh(&village());
    for n in 0..3 {
        replica.commit(&activities(), put("n", n)).unwrap();
    }
    let mut storage = replica.into_storage();
    let mut batch = WriteBatch::new();
    batch.delete(increment_key(&activities(), 1));
    storage.apply(batch).unwrap();
    let mut replica = open(storage, &village(), ReplicaConfig::default());
    assert!(matches!(
        replica.with_document(&activities(), |_| ()),
        Err(LoadError::Corrupt(_))
    ));
}

// ----- sync -----

/// Run the sync loop between two replicas for every document either holds
/// in common scope, until neither has anything to say. Returns the number of
/// messages exchanged and how many carried a whole document.
fn sync_pair(a: &mut Replica<MemoryStorage>, b: &mut Replica<MemoryStorage>) -> (usize, usize) {
    let a_station = a.local().clone();
    let b_station = b.local().clone();
    let mut documents: Vec<DocumentId> = a
        .shared_documents(&b_station)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    documents.extend(b.shared_documents(&a_station).into_iter().map(|(id, _)| id));
    documents.sort();
    documents.dedup();
    let mut messages = 0;
    let mut whole_documents = 0;
    for document in documents {
        for _round in 0..50 {
            let mut quiet = true;
            if let Some(message) = a
                .generate_sync_message(&b_station, &document, PayloadFormat::Signed)
                .unwrap()
            {
                quiet = false;
                messages += 1;
                whole_documents += carries_whole_document(&message) as usize;
                b.receive_sync_message(&a_station, &document, &message, PayloadFormat::Signed)
                    .unwrap();
            }
            if let Some(message) = b
                .generate_sync_message(&a_station, &document, PayloadFormat::Signed)
                .unwrap()
            {
                quiet = false;
                messages += 1;
                whole_documents += carries_whole_document(&message) as usize;
                a.receive_sync_message(&b_station, &document, &message, PayloadFormat::Signed)
                    .unwrap();
            }
            if quiet {
                break;
            }
        }
    }
    (messages, whole_documents)
}

#[test]
fn a_received_message_is_flushed_at_once_unless_the_host_defers_the_flush() {
    let township = station("xh/t1");
    for deferred in [false, true] {
        let mut v = fresh(&village());
        v.commit(&activities(), put("a", 1)).unwrap();
        let mut t = fresh(&township);
        t.set_flush_deferred(deferred);
        sync_pair(&mut v, &mut t);
        assert_eq!(read(&mut t, &activities(), "a"), Some(1));
        assert_eq!(t.has_unflushed_writes(), deferred, "deferred: {deferred}");
        let t = crash_and_reopen(t);
        assert_eq!(
            t.holds(&activities()),
            !deferred,
            "deferred: {deferred}: a crash before the host's flush loses what it received"
        );
    }
    // The host's flush, before its replies leave, makes it durable.
    let mut v = fresh(&village());
    v.commit(&activities(), put("a", 1)).unwrap();
    let mut t = fresh(&township);
    t.set_flush_deferred(true);
    sync_pair(&mut v, &mut t);
    t.flush().unwrap();
    let mut t = crash_and_reopen(t);
    assert_eq!(read(&mut t, &activities(), "a"), Some(1));
}

#[test]
fn serving_a_document_writes_only_cache_batches_and_receiving_it_writes_data() {
    let township = station("xh/t1");
    let mut v = fresh(&village());
    v.commit(&activities(), put("a", 1)).unwrap();
    let mut t = fresh(&township);
    let v_before = v.storage().stats();
    let t_before = t.storage().stats();
    sync_pair(&mut v, &mut t);
    let (v_after, t_after) = (v.storage().stats(), t.storage().stats());
    // The village only served: its writes were sync states, which no
    // answer of its has to wait for.
    assert!(v_after.applies > v_before.applies, "{v_after:?}");
    assert_eq!(
        v_after.applies - v_before.applies,
        v_after.cache_applies - v_before.cache_applies,
        "{v_after:?}"
    );
    // The township received the change: at least one batch is data, which
    // its acknowledgement must wait for.
    assert!(
        t_after.applies - t_before.applies > t_after.cache_applies - t_before.cache_applies,
        "{t_after:?}"
    );
    assert_eq!(read(&mut t, &activities(), "a"), Some(1));
}

/// Every root key with all its conflicting values, as text.
fn state_of(replica: &mut Replica<MemoryStorage>, document: &DocumentId) -> Vec<String> {
    replica
        .with_document(document, |doc| {
            doc.keys(ROOT)
                .map(|key| {
                    let values: Vec<String> = doc
                        .get_all(ROOT, key.as_str())
                        .unwrap()
                        .into_iter()
                        .map(|(value, id)| format!("{value:?}@{id}"))
                        .collect();
                    format!("{key}={values:?}")
                })
                .collect()
        })
        .unwrap()
        .unwrap()
}

/// Automerge's message inside a signed envelope, or the message itself.
fn automerge_message(message: &[u8]) -> automerge::sync::Message {
    match crate::sync::signing::SignedSyncMessage::decode(message, usize::MAX) {
        Ok(envelope) => automerge::sync::Message::decode(&envelope.automerge).unwrap(),
        Err(_) => automerge::sync::Message::decode(message).unwrap(),
    }
}

fn carries_whole_document(message: &[u8]) -> bool {
    let decoded = automerge_message(message);
    let whole = decoded
        .changes
        .iter()
        .any(|chunk| chunk.len() > 8 && chunk[8] == 0);
    whole
}

#[test]
fn two_replicas_converge_through_sync_host() {
    let township = station("xh/t1");
    let mut v = fresh(&village());
    let mut t = fresh(&township);
    for n in 0..10 {
        v.commit(&activities(), put(&format!("v{n}"), n)).unwrap();
    }
    let menu = DocumentId::reference(&township, "menu").unwrap();
    t.commit(&menu, put("tea", 1)).unwrap();
    let township_roster = DocumentId::roster(&township);
    t.commit(&township_roster, put("private", 1)).unwrap();

    let (_, whole_documents) = sync_pair(&mut v, &mut t);
    assert!(
        whole_documents > 0,
        "the first exchange with an empty peer sends a whole document"
    );
    assert_eq!(v.heads(&activities()), t.heads(&activities()));
    assert_eq!(v.heads(&menu), t.heads(&menu), "reference data flows down");
    assert!(
        !v.holds(&township_roster),
        "a township's roster never reaches a village"
    );
    assert_eq!(read(&mut t, &activities(), "v9"), Some(9));

    // Concurrent edits on both sides (the township may write its village's
    // documents) merge, incrementally this time.
    v.commit(&activities(), put("both", 1)).unwrap();
    t.commit(&activities(), put("both", 2)).unwrap();
    t.commit(&activities(), put("t", 3)).unwrap();
    v.take_changed_documents();
    sync_pair(&mut v, &mut t);
    assert_eq!(v.heads(&activities()), t.heads(&activities()));
    assert_eq!(read(&mut v, &activities(), "t"), Some(3));
    assert_eq!(
        read(&mut v, &activities(), "both"),
        read(&mut t, &activities(), "both")
    );
    assert_eq!(v.take_changed_documents(), vec![activities()]);
    // Equal heads give identical state, conflicts included (the saved bytes
    // may differ: automerge's encoding depends on how a replica got there).
    assert_eq!(
        state_of(&mut v, &activities()),
        state_of(&mut t, &activities())
    );

    // What was received is durable: a crash of the township loses nothing.
    let mut t = crash_and_reopen(t);
    assert_eq!(t.heads(&activities()), v.heads(&activities()));
    assert_eq!(read(&mut t, &activities(), "v9"), Some(9));
}

#[test]
fn persisted_sync_state_makes_a_reconnect_cheap() {
    let township = station("xh/t1");
    let mut v = fresh(&village());
    let mut t = fresh(&township);
    for n in 0..200 {
        v.commit(&activities(), put(&format!("v{n}"), n)).unwrap();
    }
    sync_pair(&mut v, &mut t);
    v.commit(&activities(), put("late", 1)).unwrap();
    // Both sides restart (after a clean shutdown): in-memory states are gone.
    v.peer_disconnected(&township);
    t.peer_disconnected(&village());
    let mut v = crash_and_reopen(v);
    let mut t = crash_and_reopen(t);
    let (messages, whole_documents) = sync_pair(&mut v, &mut t);
    assert_eq!(whole_documents, 0, "a resumed state sends only what is new");
    assert!(messages <= 4, "{messages} messages");
    assert_eq!(read(&mut t, &activities(), "late"), Some(1));
    assert_eq!(v.heads(&activities()), t.heads(&activities()));
}

/// Drive a forger's side of Automerge sync against `to` (messages carried
/// by `carrier`) until `to` refuses one: that refusal and the refused
/// message's bytes, or `None` if nothing was refused in ten rounds.
fn drive_forger(
    forged: &mut AutoCommit,
    to: &mut Replica<MemoryStorage>,
    carrier: &StationId,
    document: &DocumentId,
) -> Option<(ReceiveError, Vec<u8>)> {
    let mut state = automerge::sync::State::new();
    for _ in 0..10 {
        let message = forged.sync().generate_sync_message(&mut state)?.encode();
        if let Err(error) =
            to.receive_sync_message(carrier, document, &message, PayloadFormat::Plain)
        {
            return Some((error, message));
        }
        if let Some(reply) = to
            .generate_sync_message(carrier, document, PayloadFormat::Plain)
            .unwrap()
        {
            forged
                .sync()
                .receive_sync_message(&mut state, automerge_message(&reply))
                .unwrap();
        }
    }
    None
}

/// A cold sync takes a whole document in one piece (it is stored as the
/// snapshot it already is); a forged change inside it still refuses all.
#[test]
fn a_whole_document_into_an_empty_replica_is_checked_change_by_change() {
    let township = station("xh/t1");
    let mut v = fresh(&village());
    for n in 0..5 {
        v.commit(&activities(), put(&format!("v{n}"), n)).unwrap();
    }
    let mut forged = v
        .with_document(&activities(), |doc| doc.clone())
        .unwrap()
        .unwrap();
    forged.set_actor(actor_for(&station("xh/t1/v2"), 1));
    forged.put(ROOT, "a", 666).unwrap();
    forged.commit();

    let mut t = fresh(&township);
    let (error, message) = drive_forger(&mut forged, &mut t, &village(), &activities()).unwrap();
    assert!(
        matches!(&error, ReceiveError::Refused(AuthorityError::NotWritable { writer, .. }) if *writer == station("xh/t1/v2")),
        "{error}"
    );
    assert!(carries_whole_document(&message));
    assert!(
        !t.holds(&activities()),
        "nothing of the forged document kept"
    );

    // The honest document goes in whole, survives a crash, and reads back.
    let (_, whole_documents) = sync_pair(&mut v, &mut t);
    assert!(whole_documents > 0);
    assert_eq!(t.heads(&activities()), v.heads(&activities()));
    let mut t = crash_and_reopen(t);
    assert_eq!(t.heads(&activities()), v.heads(&activities()));
    assert_eq!(read(&mut t, &activities(), "v4"), Some(4));
    assert_eq!(t.change_count(&activities()), v.change_count(&activities()));
    assert!(t.verify().is_empty());
}

#[test]
fn unauthorised_changes_are_refused_with_nothing_applied() {
    let township = station("xh/t1");
    let mut v = fresh(&village());
    let mut t = fresh(&township);
    v.commit(&activities(), put("a", 1)).unwrap();
    sync_pair(&mut v, &mut t);

    // The village's document, edited by a neighbouring village's actor, and
    // carried by our village.
    let mut forged = v
        .with_document(&activities(), |doc| doc.clone())
        .unwrap()
        .unwrap();
    forged.set_actor(actor_for(&station("xh/t1/v2"), 1));
    forged.put(ROOT, "a", 666).unwrap();
    forged.commit();
    let keys_before = t.storage().keys();
    let applies_before = t.storage().stats().applies;
    let heads_before = t.heads(&activities()).unwrap().to_vec();
    let (error, _) = drive_forger(&mut forged, &mut t, &village(), &activities()).unwrap();
    assert!(
        matches!(&error, ReceiveError::Refused(AuthorityError::NotWritable { writer, .. }) if *writer == station("xh/t1/v2")),
        "{error}"
    );
    assert_eq!(t.heads(&activities()).unwrap(), heads_before.as_slice());
    assert_eq!(read(&mut t, &activities(), "a"), Some(1));
    assert_eq!(t.storage().keys(), keys_before);
    assert!(
        t.storage().stats().applies - applies_before <= 1,
        "at most a sync-state write, no change"
    );
    assert!(t.verify().is_empty());

    // A change to a township document carried up by a village is refused too.
    let menu = DocumentId::reference(&township, "menu").unwrap();
    let mut fake_menu = AutoCommit::new().with_actor(actor_for(&township, 9));
    fake_menu.put(ROOT, "x", 1).unwrap();
    fake_menu.commit();
    let message = fake_menu
        .sync()
        .generate_sync_message(&mut automerge::sync::State::new())
        .unwrap();
    assert!(
        t.receive_sync_message(&village(), &menu, &message.encode(), PayloadFormat::Plain)
            .is_ok(),
        "no changes in a first message"
    );
    let mut state = automerge::sync::State::new();
    state.their_heads = Some(Vec::new());
    state.their_need = Some(Vec::new());
    state.their_have = Some(vec![automerge::sync::Have::default()]);
    let message = fake_menu.sync().generate_sync_message(&mut state).unwrap();
    assert!(!message.changes.is_empty());
    let error = t
        .receive_sync_message(&village(), &menu, &message.encode(), PayloadFormat::Plain)
        .unwrap_err();
    assert!(
        matches!(
            error,
            ReceiveError::Refused(AuthorityError::NotCarriable { .. })
        ),
        "{error}"
    );
    assert!(!t.holds(&menu));
}

#[test]
fn a_newer_schema_is_refused_and_nothing_is_stored() {
    let township = station("xh/t1");
    let mut t = fresh(&township);
    let mut future = AutoCommit::new().with_actor(actor_for(&village(), 3));
    let meta = future
        .put_object(ROOT, schema::META_KEY, ObjType::Map)
        .unwrap();
    future.put(&meta, schema::SCHEMA_KEY, "2.0").unwrap();
    future.commit();
    let mut state = automerge::sync::State::new();
    state.their_heads = Some(Vec::new());
    state.their_need = Some(Vec::new());
    state.their_have = Some(vec![automerge::sync::Have::default()]);
    let message = future.sync().generate_sync_message(&mut state).unwrap();
    let keys_before = t.storage().keys();
    let error = t
        .receive_sync_message(
            &village(),
            &activities(),
            &message.encode(),
            PayloadFormat::Plain,
        )
        .unwrap_err();
    assert!(
        matches!(error, ReceiveError::SchemaTooNew { ref found, .. } if found == "2.0"),
        "{error}"
    );
    assert!(!t.holds(&activities()));
    assert_eq!(t.storage().keys(), keys_before);
}

#[test]
fn garbage_messages_are_malformed_not_panics() {
    let mut t = fresh(&station("xh/t1"));
    for message in [
        &b""[..],
        b"\x42",
        b"\x43\x00\x00\x00\x01\x05hello",
        &[0xff; 40],
    ] {
        let error = t
            .receive_sync_message(&village(), &activities(), message, PayloadFormat::Plain)
            .unwrap_err();
        assert!(matches!(error, ReceiveError::Malformed { .. }), "{error}");
    }
    let error = t
        .receive_sync_message(
            &station("xh/t2/v1"),
            &activities(),
            b"",
            PayloadFormat::Plain,
        )
        .unwrap_err();
    assert!(matches!(
        error,
        ReceiveError::Refused(AuthorityError::OutOfScope { .. })
    ));
}

#[test]
fn shared_documents_read_only_the_index() {
    let township = station("xh/t1");
    let mut t = open(
        MemoryStorage::new(),
        &township,
        ReplicaConfig {
            documents_cached_max: 1,
            ..Default::default()
        },
    );
    t.commit(&activities(), put("a", 1)).unwrap();
    t.commit(&DocumentId::roster(&station("xh/t1/v2")), put("a", 1))
        .unwrap();
    t.commit(
        &DocumentId::reference(&township, "menu").unwrap(),
        put("a", 1),
    )
    .unwrap();
    t.evict_all();
    let shared: Vec<String> = t
        .shared_documents(&village())
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    // Sorted by `DocumentId`'s order (owner first), as the digest expects.
    assert_eq!(
        shared,
        vec!["reference:xh/t1:menu", "activities:xh/t1/v1:2026-11"]
    );
    assert_eq!(t.cached_documents(), 0);
    let digest = t.shared_documents(&village())[1].1;
    assert_eq!(Some(digest), t.heads_digest(&activities()));
}

// ----- crash model -----

#[derive(Debug, Clone)]
enum Step {
    Commit { document: u8, acknowledged: bool },
    Flush,
    Crash,
    Evict,
    FailNextApply,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..3, any::<bool>()).prop_map(|(document, acknowledged)| Step::Commit { document, acknowledged }),
        1 => Just(Step::Flush),
        1 => Just(Step::Crash),
        1 => Just(Step::Evict),
        1 => Just(Step::FailNextApply),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// After any interleaving of commits, flushes, crashes, evictions and
    /// failed writes: every acknowledged commit is present, every present
    /// value was written, and the store always opens and loads cleanly.
    #[test]
    fn acknowledged_commits_survive_any_crash(steps in proptest::collection::vec(step(), 1..40)) {
        let documents: Vec<DocumentId> = (1..=3)
            .map(|m| DocumentId::activities(&village(), Month::new(2026, m).unwrap()))
            .collect();
        let config = ReplicaConfig { documents_cached_max: 2, compaction_increments_max: 3, compaction_bytes_min: 1,
            ..ReplicaConfig::default() };
        let mut replica = open(MemoryStorage::new(), &village(), config.clone());
        let mut acknowledged: Vec<(usize, String)> = Vec::new();
        let mut pending: Vec<(usize, String)> = Vec::new();
        let mut written: BTreeSet<String> = BTreeSet::new();
        let mut fail_next = false;
        for (n, step) in steps.into_iter().enumerate() {
            match step {
                Step::Commit { document, acknowledged: wait } => {
                    let key = format!("k{n}");
                    let document_index = document as usize;
                    let result = if wait {
                        replica.commit(&documents[document_index], put(&key, n as i64)).map(|_| ())
                    } else {
                        replica.commit_unflushed(&documents[document_index], put(&key, n as i64)).map(|_| ())
                    };
                    written.insert(key.clone());
                    match (result, fail_next) {
                        (Ok(()), false) if wait => {
                            acknowledged.append(&mut pending);
                            acknowledged.push((document_index, key));
                        }
                        (Ok(()), false) => pending.push((document_index, key)),
                        (Err(CommitError::Storage { .. }), true) => {}
                        (other, _) => prop_assert!(false, "unexpected {:?}", other.err().map(|e| e.to_string())),
                    }
                    fail_next = false;
                }
                Step::Flush => {
                    replica.flush().unwrap();
                    acknowledged.append(&mut pending);
                }
                Step::Crash => {
                    replica = crash_and_reopen(replica);
                    pending.clear();
                    fail_next = false;
                }
                Step::Evict => replica.evict_all(),
                Step::FailNextApply => {
                    let mut storage = replica.into_storage();
                    storage.fail_next_applies(1);
                    replica = open(storage, &village(), config.clone());
                    fail_next = true;
                }
            }
        }
        let mut replica = crash_and_reopen(replica);
        for (document_index, key) in &acknowledged {
            prop_assert!(read(&mut replica, &documents[*document_index], key).is_some(), "lost {}", key);
        }
        for document in &documents {
            let present: Vec<String> = replica
                .with_document(document, |doc| doc.keys(ROOT).collect::<Vec<_>>())
                .unwrap()
                .unwrap_or_default();
            for key in present.into_iter().filter(|key| key != schema::META_KEY) {
                prop_assert!(written.contains(&key), "{} was never written", key);
            }
        }
        prop_assert!(replica.verify().is_empty());
    }
}

#[derive(Debug, Clone)]
enum SyncStep {
    VillageCommit(u8),
    TownshipCommit(u8),
    /// Deliver one message each way, optionally twice.
    Exchange {
        duplicate: bool,
    },
    CrashVillage,
    CrashTownship,
}

fn sync_step() -> impl Strategy<Value = SyncStep> {
    prop_oneof![
        3 => (0u8..4).prop_map(SyncStep::VillageCommit),
        2 => (0u8..4).prop_map(SyncStep::TownshipCommit),
        4 => any::<bool>().prop_map(|duplicate| SyncStep::Exchange { duplicate }),
        1 => Just(SyncStep::CrashVillage),
        1 => Just(SyncStep::CrashTownship),
    ]
}

/// Deliver one message from `from` to `to` for `document`, twice if asked.
/// Duplicates may be refused as stale but must never corrupt anything.
fn deliver(
    from: &mut Replica<MemoryStorage>,
    to: &mut Replica<MemoryStorage>,
    document: &DocumentId,
    duplicate: bool,
) {
    let to_station = to.local().clone();
    let from_station = from.local().clone();
    if let Some(message) = from
        .generate_sync_message(&to_station, document, PayloadFormat::Signed)
        .unwrap()
    {
        to.receive_sync_message(&from_station, document, &message, PayloadFormat::Signed)
            .unwrap();
        if duplicate {
            to.receive_sync_message(&from_station, document, &message, PayloadFormat::Signed)
                .unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Concurrent edits, partial exchanges, duplicated messages and crashes
    /// on either side: a final sync always converges to the same state, and
    /// nothing either side acknowledged is lost.
    #[test]
    fn sync_converges_through_crashes_and_duplicates(steps in proptest::collection::vec(sync_step(), 1..30)) {
        let township = station("xh/t1");
        let mut v = fresh(&village());
        let mut t = fresh(&township);
        let document = activities();
        let mut acknowledged = Vec::new();
        for (n, step) in steps.into_iter().enumerate() {
            match step {
                SyncStep::VillageCommit(field) => {
                    let key = format!("v{field}-{n}");
                    v.commit(&document, put(&key, n as i64)).unwrap();
                    acknowledged.push(key);
                }
                SyncStep::TownshipCommit(field) => {
                    let key = format!("t{field}-{n}");
                    t.commit(&document, put(&key, n as i64)).unwrap();
                    acknowledged.push(key);
                }
                SyncStep::Exchange { duplicate } => {
                    deliver(&mut v, &mut t, &document, duplicate);
                    deliver(&mut t, &mut v, &document, duplicate);
                }
                SyncStep::CrashVillage => {
                    v = crash_and_reopen(v);
                    t.peer_disconnected(&village());
                }
                SyncStep::CrashTownship => {
                    t = crash_and_reopen(t);
                    v.peer_disconnected(&township);
                }
            }
        }
        // A new session after all faults: both drop their in-memory states.
        v.peer_disconnected(&township);
        t.peer_disconnected(&village());
        sync_pair(&mut v, &mut t);
        prop_assert_eq!(v.heads(&document), t.heads(&document));
        if v.holds(&document) {
            prop_assert_eq!(state_of(&mut v, &document), state_of(&mut t, &document));
            for key in &acknowledged {
                prop_assert!(read(&mut v, &document, key).is_some(), "lost {}", key);
            }
        } else {
            prop_assert!(acknowledged.is_empty());
        }
        prop_assert!(v.verify().is_empty());
        prop_assert!(t.verify().is_empty());
    }
}

#[test]
fn an_unusable_config_is_a_typed_error() {
    let config = ReplicaConfig {
        documents_cached_max: 0,
        ..ReplicaConfig::default()
    };
    let error = Replica::open(MemoryStorage::new(), village(), 1, config)
        .err()
        .unwrap();
    assert!(matches!(error, OpenError::BadConfig { .. }), "{error}");
}

#[test]
fn a_store_from_a_newer_layout_is_refused() {
    let mut storage = MemoryStorage::new();
    let mut batch = WriteBatch::new();
    batch.put(
        LAYOUT_KEY.to_vec(),
        (LAYOUT_VERSION + 1).to_be_bytes().to_vec(),
    );
    storage.apply(batch).unwrap();
    let error = Replica::open(storage, village(), 1, ReplicaConfig::default())
        .err()
        .unwrap();
    assert!(matches!(error, OpenError::LayoutTooNew { .. }), "{error}");
}

#[test]
fn a_store_of_another_station_is_refused() {
    let mut replica = fresh(&village());
    replica.commit(&activities(), put("a", 1)).unwrap();
    let storage = replica.into_storage();
    let error = Replica::open(storage, station("xh/t1/v2"), 1, ReplicaConfig::default())
        .err()
        .unwrap();
    assert!(
        matches!(error, OpenError::ForeignDocument { .. }),
        "{error}"
    );
}

/// Both sides generate before either receives (messages cross on the
/// wire), with local edits landing between rounds. Returns the rounds
/// needed to go quiet, or `None` when the sides never stop talking.
fn crossing_rounds(edits: &[(bool, usize)], rounds_max: usize) -> Option<usize> {
    let township = station("xh/t1");
    let mut v = fresh(&village());
    let mut t = fresh(&township);
    let document = activities();
    v.commit(&document, put("seed", 0)).unwrap();
    for round in 0..rounds_max {
        for (index, (village_side, at_round)) in edits.iter().enumerate() {
            if *at_round == round {
                let side = if *village_side { &mut v } else { &mut t };
                side.commit(&document, put(&format!("e{index}"), index as i64))
                    .unwrap();
            }
        }
        let from_village = v
            .generate_sync_message(&township, &document, PayloadFormat::Signed)
            .unwrap();
        let from_township = t
            .generate_sync_message(&village(), &document, PayloadFormat::Signed)
            .unwrap();
        let last_edit = edits.iter().map(|(_, at)| *at).max().unwrap_or(0);
        if from_village.is_none() && from_township.is_none() && round > last_edit {
            assert_eq!(v.heads(&document), t.heads(&document));
            assert_eq!(state_of(&mut v, &document), state_of(&mut t, &document));
            return Some(round);
        }
        if let Some(message) = from_village {
            t.receive_sync_message(&village(), &document, &message, PayloadFormat::Signed)
                .unwrap();
        }
        if let Some(message) = from_township {
            v.receive_sync_message(&township, &document, &message, PayloadFormat::Signed)
                .unwrap();
        }
    }
    None
}

#[test]
fn crossing_messages_with_live_edits_go_quiet() {
    for edits in [
        vec![(true, 1), (false, 1)],
        vec![(true, 1), (false, 2), (true, 3), (false, 3)],
        vec![(false, 0), (true, 2), (false, 2), (true, 5)],
    ] {
        let rounds = crossing_rounds(&edits, 60);
        assert!(
            rounds.is_some_and(|rounds| rounds < 20),
            "{edits:?}: {rounds:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn crossing_messages_always_go_quiet(edits in proptest::collection::vec((any::<bool>(), 0usize..8), 0..8)) {
        let rounds = crossing_rounds(&edits, 80);
        prop_assert!(rounds.is_some(), "{:?} never went quiet", edits);
    }
}

// ----- change times -----

#[test]
fn local_changes_carry_the_owner_clock_and_received_changes_keep_theirs() {
    use crate::stats::{Freshness, DAY_MS};
    // 2026-11-02 08:00 Beijing, whole seconds: automerge keeps seconds.
    let written_ms: i64 = 1_793_577_600_000;
    let township = station("xh/t1");
    let mut v = fresh(&village());
    let mut t = fresh(&township);
    v.set_now_ms(written_ms + 999);
    assert_eq!(v.now_ms(), written_ms + 999);
    v.commit(&activities(), put("a", 1)).unwrap();

    let mut at_village = Freshness::default();
    assert!(v
        .observe_change_times(&activities(), &[], &mut at_village)
        .unwrap());
    assert_eq!(
        at_village.of(&village()).newest_change_ms,
        Some(written_ms),
        "the change carries the village clock, to the second"
    );

    // Five days later the township receives it: the origin time stays.
    t.set_now_ms(written_ms + 5 * DAY_MS);
    sync_pair(&mut v, &mut t);
    let mut at_township = Freshness::default();
    t.observe_change_times(&activities(), &[], &mut at_township)
        .unwrap();
    assert_eq!(
        at_township.of(&village()).newest_change_ms,
        Some(written_ms)
    );
    assert_eq!(at_township.of(&township).newest_change_ms, None);

    // The township's own edit carries the township clock; observing only
    // what is new since the heads seen before reads just that change.
    let seen = t.heads(&activities()).unwrap().to_vec();
    t.commit(&activities(), put("b", 2)).unwrap();
    let mut only_new = Freshness::default();
    t.observe_change_times(&activities(), &seen, &mut only_new)
        .unwrap();
    assert_eq!(
        only_new.of(&township).newest_change_ms,
        Some(written_ms + 5 * DAY_MS)
    );
    assert_eq!(only_new.of(&village()).newest_change_ms, None);

    // A replica whose clock was never set writes "no time", which is not
    // read as a station silent since 1970.
    let mut unset = fresh(&village());
    unset.commit(&activities(), put("c", 3)).unwrap();
    let mut unknown = Freshness::default();
    unset
        .observe_change_times(&activities(), &[], &mut unknown)
        .unwrap();
    assert_eq!(unknown.of(&village()).newest_change_ms, None);
    assert!(!unset
        .observe_change_times(&DocumentId::roster(&village()), &[], &mut unknown)
        .unwrap());
}

// ----- documents built away from the replica -----

#[test]
fn a_built_document_is_stored_as_its_first_commit_would_be() {
    let mut committed = fresh(&village());
    committed.set_now_ms(1_700_000_000_000);
    committed.commit(&activities(), put("a", 1)).unwrap();

    let mut replica = fresh(&village());
    replica.set_now_ms(1_700_000_000_000);
    let builder = replica.document_builder();
    let (built, value) = builder
        .build(&activities(), |doc| put("a", 1)(doc).map(|()| 42))
        .unwrap();
    assert_eq!(value, 42);
    assert!(!replica.holds(&activities()), "building stores nothing");
    replica.store_built(built).unwrap();
    assert!(replica.has_unflushed_writes());
    replica.flush().unwrap();
    assert_eq!(replica.take_changed_documents(), vec![activities()]);

    // Same author, same time, same operations: the very same change.
    assert_eq!(replica.heads(&activities()), committed.heads(&activities()));
    assert_eq!(replica.change_count(&activities()), Some(1));
    let mut replica = crash_and_reopen(replica);
    assert_eq!(read(&mut replica, &activities(), "a"), Some(1));
    assert!(replica.verify().is_empty());
    // And it takes later commits like any other document.
    replica.commit(&activities(), put("b", 2)).unwrap();
    let mut replica = crash_and_reopen(replica);
    assert_eq!(read(&mut replica, &activities(), "b"), Some(2));
    assert_eq!(replica.change_count(&activities()), Some(2));
}

#[test]
fn a_stored_built_document_is_read_from_the_cache_as_storage_holds_it() {
    let mut replica = fresh(&village());
    let builder = replica.document_builder();
    let (built, ()) = builder.build(&activities(), put("a", 1)).unwrap();
    replica.store_built(built).unwrap();
    replica.flush().unwrap();
    assert_eq!(replica.cached_documents(), 1);
    let loads = replica.documents_loaded();
    assert_eq!(read(&mut replica, &activities(), "a"), Some(1));
    replica.commit(&activities(), put("b", 2)).unwrap();
    assert_eq!(
        replica.documents_loaded(),
        loads,
        "neither the read nor the next commit loads it back"
    );
    // What the cache held is what storage holds: the commit on top of it
    // reloads to the same heads.
    let heads = replica.heads(&activities()).unwrap().to_vec();
    let mut replica = crash_and_reopen(replica);
    assert_eq!(replica.heads(&activities()).unwrap(), &heads[..]);
    assert_eq!(read(&mut replica, &activities(), "b"), Some(2));
    assert!(replica.verify().is_empty());
}

#[test]
fn a_built_document_never_replaces_a_held_one() {
    let mut replica = fresh(&village());
    let builder = replica.document_builder();
    replica.commit(&activities(), put("a", 1)).unwrap();
    let heads = replica.heads(&activities()).unwrap().to_vec();
    let (built, ()) = builder.build(&activities(), put("z", 9)).unwrap();
    assert!(matches!(
        replica.store_built(built),
        Err(StoreBuiltError::AlreadyHeld { .. })
    ));
    let mut replica = crash_and_reopen(replica);
    assert_eq!(replica.heads(&activities()).unwrap(), heads.as_slice());
    assert_eq!(read(&mut replica, &activities(), "a"), Some(1));
    assert_eq!(read(&mut replica, &activities(), "z"), None);
}

#[test]
fn a_builder_refuses_what_a_commit_refuses_and_another_actor_is_refused() {
    let replica = fresh(&village());
    let builder = replica.document_builder();
    let neighbour = DocumentId::roster(&station("xh/t1/v2"));
    assert!(matches!(
        builder.build(&neighbour, put("a", 1)),
        Err(CommitError::OutOfScope { .. })
    ));
    let township_menu = DocumentId::reference(&station("xh/t1"), "menu").unwrap();
    assert!(matches!(
        builder.build(&township_menu, put("a", 1)),
        Err(CommitError::NotWritable { .. })
    ));
    let refused: Result<(BuiltDocument, ()), _> =
        builder.build(&activities(), |_| Err("no such volunteer"));
    assert!(matches!(
        refused,
        Err(CommitError::Mutate("no such volunteer"))
    ));

    // A builder from an earlier incarnation of the same station carries an
    // actor this replica must not write under.
    let earlier = Replica::open(MemoryStorage::new(), village(), 6, ReplicaConfig::default())
        .unwrap()
        .document_builder();
    let (built, ()) = earlier.build(&activities(), put("a", 1)).unwrap();
    let mut replica = replica;
    assert!(matches!(
        replica.store_built(built),
        Err(StoreBuiltError::OtherActor { .. })
    ));
    assert!(replica.documents().is_empty());
    assert!(!replica.has_unflushed_writes());
}

#[test]
fn a_failed_store_of_a_built_document_leaves_nothing() {
    let replica = fresh(&village());
    let builder = replica.document_builder();
    let (built, ()) = builder.build(&activities(), put("a", 1)).unwrap();
    let mut storage = replica.into_storage();
    storage.fail_next_applies(1);
    let mut replica = open(storage, &village(), ReplicaConfig::default());
    assert!(matches!(
        replica.store_built(built),
        Err(StoreBuiltError::Storage { .. })
    ));
    assert!(!replica.holds(&activities()));
    let replica = crash_and_reopen(replica);
    assert!(replica.documents().is_empty());
}

/// A sync message from `village()` for its activities carrying `chunks` as
/// its changes, as a hostile but certified peer would send it.
fn hostile_message(chunks: Vec<Vec<u8>>) -> Vec<u8> {
    automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: chunks.into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode()
}

#[test]
fn changes_that_would_inflate_or_expand_past_the_limits_are_refused_before_decoding() {
    use crate::replica::bounds::attack::{deflate_bomb_change, run_length_ops_change};
    let mut t = fresh(&station("xh/t1"));
    let attacks = [
        (
            "a change inflating to 4 GiB",
            vec![deflate_bomb_change(4 << 30)],
        ),
        (
            "10^8 run-length ops",
            vec![run_length_ops_change(100_000_000)],
        ),
        (
            "many small changes over the total",
            vec![run_length_ops_change(900_000); 10],
        ),
    ];
    for (attack, chunks) in attacks {
        let wire_bytes: usize = chunks.iter().map(Vec::len).sum();
        assert!(
            wire_bytes < 8 << 20,
            "{attack}: {wire_bytes} bytes on the wire"
        );
        let keys_before = t.storage().keys();
        let error = t
            .receive_sync_message(
                &village(),
                &activities(),
                &hostile_message(chunks),
                PayloadFormat::Plain,
            )
            .unwrap_err();
        match &error {
            ReceiveError::Malformed { reason, .. } => assert!(
                reason.starts_with("over the decode limits: "),
                "{attack}: {reason}"
            ),
            other => panic!("{attack}: refused for another reason: {other}"),
        }
        assert!(!t.holds(&activities()), "{attack}: nothing stored");
        assert_eq!(t.storage().keys(), keys_before, "{attack}: nothing written");
    }
    // An honest message of the same shape still passes.
    let mut v = fresh(&village());
    v.commit(&activities(), put("a", 1)).unwrap();
    sync_pair(&mut v, &mut t);
    assert_eq!(read(&mut t, &activities(), "a"), Some(1));
}

/// The hashes of the changes kept in `document`'s stored increments, in
/// the order stored.
fn stored_increment_hashes(
    replica: &Replica<MemoryStorage>,
    document: &DocumentId,
) -> Vec<ChangeHash> {
    let increments = replica
        .storage()
        .scan_prefix(&layout::increments_prefix(document))
        .unwrap();
    increments
        .iter()
        .flat_map(|(key, value)| {
            chunks::changes_in(layout::unseal(key, value).unwrap(), 100).unwrap()
        })
        .map(|change| change.hash())
        .collect()
}

#[test]
fn a_receive_stores_the_changes_it_applied_and_none_still_waiting() {
    let mut v = fresh(&village());
    for n in 0..4 {
        v.commit(&activities(), put(&format!("k{n}"), n)).unwrap();
    }
    let changes = v
        .with_document(&activities(), |doc| doc.clone().get_changes(&[]))
        .unwrap()
        .unwrap();
    let n = changes.len();
    assert!(n >= 4, "one change a commit");
    let (hashes, raw): (Vec<ChangeHash>, Vec<Vec<u8>>) = changes
        .iter()
        .map(|change| (change.hash(), change.raw_bytes().to_vec()))
        .unzip();
    let mut t = fresh(&station("xh/t1"));
    let mut receive = |chunks: Vec<Vec<u8>>| {
        t.receive_sync_message(
            &village(),
            &activities(),
            &hostile_message(chunks),
            PayloadFormat::Plain,
        )
        .unwrap();
        stored_increment_hashes(&t, &activities())
    };
    let sorted = |mut hashes: Vec<ChangeHash>| {
        hashes.sort();
        hashes
    };
    // A chain of changes, all but the last three, given backwards: applied
    // in one batch and stored as given (a load applies them in one batch).
    let stored = receive(raw[..n - 3].iter().rev().cloned().collect());
    assert_eq!(sorted(stored), sorted(hashes[..n - 3].to_vec()));
    // The next one, and the last one, which waits in Automerge's queue for
    // the one between: only the applied one is stored.
    let stored = receive(vec![raw[n - 1].clone(), raw[n - 3].clone()]);
    assert_eq!(
        sorted(stored),
        sorted(hashes[..n - 2].to_vec()),
        "the waiting change is not stored"
    );
    // The one between: it and the waiting one are applied, and stored once.
    let stored = receive(vec![raw[n - 2].clone()]);
    assert_eq!(
        sorted(stored),
        sorted(hashes.clone()),
        "every change stored once"
    );
    let mut t = crash_and_reopen(t);
    assert_eq!(t.heads(&activities()), v.heads(&activities()));
    assert!(t.verify().is_empty());
}

/// Every (actor, seq) of a document's history maps to one change.
fn no_actor_reuses_a_sequence_number(replica: &mut Replica<MemoryStorage>, document: &DocumentId) {
    let changes: Vec<(ActorId, u64, ChangeHash)> = replica
        .with_document(document, |doc| {
            let mut doc = doc.clone();
            doc.get_changes_meta(&[])
                .into_iter()
                .map(|meta| (meta.actor.into_owned(), meta.seq, meta.hash))
                .collect::<Vec<_>>()
        })
        .unwrap()
        .unwrap();
    let mut seen: BTreeMap<(ActorId, u64), ChangeHash> = BTreeMap::new();
    for (actor, seq, hash) in changes {
        if let Some(other) = seen.insert((actor.clone(), seq), hash) {
            assert_eq!(other, hash, "actor {actor} has two changes numbered {seq}");
        }
    }
}

#[test]
fn a_store_copied_back_from_an_old_folder_notices_its_own_actor_and_writes_nothing_until_renewed() {
    let township = station("xh/t1");
    let mut village_replica = fresh(&village());
    let mut township_replica = fresh(&township);
    village_replica.commit(&activities(), put("a", 1)).unwrap();
    sync_pair(&mut village_replica, &mut township_replica);
    // The office copies its folder away, writes on, and the township gets it.
    let old_copy = village_replica.storage().clone();
    village_replica.commit(&activities(), put("b", 2)).unwrap();
    sync_pair(&mut village_replica, &mut township_replica);
    assert!(township_replica.actor_reused().is_none());

    // The old folder is put back, with the same incarnation (7).
    let mut restored = open(old_copy, &village(), ReplicaConfig::default());
    assert!(restored.actor_reused().is_none());
    sync_pair(&mut restored, &mut township_replica);
    let reuse = restored.actor_reused().cloned().expect("own actor noticed");
    assert_eq!(reuse.peer, township);
    assert_eq!(reuse.document, activities());
    assert_eq!(
        reuse.seq, 2,
        "the first commit (meta and a), then b: b is the one the copy lacked"
    );
    // Nothing is written under the old actor once it is known to be reused.
    let refused = restored.commit(&activities(), put("c", 3)).unwrap_err();
    assert!(
        matches!(refused, CommitError::ActorReused { .. }),
        "{refused}"
    );

    restored.renew_actor(8);
    assert!(restored.actor_reused().is_none());
    assert_eq!(restored.actor(), &actor_for(&village(), 8));
    restored.commit(&activities(), put("c", 3)).unwrap();
    sync_pair(&mut restored, &mut township_replica);
    assert_eq!(read(&mut township_replica, &activities(), "b"), Some(2));
    assert_eq!(read(&mut township_replica, &activities(), "c"), Some(3));
    no_actor_reuses_a_sequence_number(&mut township_replica, &activities());
    no_actor_reuses_a_sequence_number(&mut restored, &activities());
    // Its own changes coming back under the new actor are held: no alarm.
    sync_pair(&mut restored, &mut township_replica);
    assert!(restored.actor_reused().is_none());
}

#[test]
fn a_whole_document_carrying_our_own_actor_into_an_empty_store_is_noticed() {
    let township = station("xh/t1");
    let mut village_replica = fresh(&village());
    let mut township_replica = fresh(&township);
    village_replica.commit(&activities(), put("a", 1)).unwrap();
    sync_pair(&mut village_replica, &mut township_replica);
    // A new, empty store given the old incarnation (a folder copied without
    // its documents, or a restore that kept the incarnation).
    let mut emptied = fresh(&village());
    assert_eq!(emptied.actor(), village_replica.actor());
    let (_, whole_documents) = sync_pair(&mut emptied, &mut township_replica);
    assert!(whole_documents > 0, "the cold path was taken");
    assert_eq!(emptied.actor_reused().map(|reuse| reuse.seq), Some(1));
    // A replica that never wrote as that actor sees nothing wrong.
    let mut other = open(MemoryStorage::new(), &village(), ReplicaConfig::default());
    other.renew_actor(9);
    sync_pair(&mut other, &mut township_replica);
    assert!(other.actor_reused().is_none());
}

/// What `shared_documents` must equal: every held document both sides may
/// hold, found by testing each one.
fn shared_by_full_scan(
    replica: &Replica<MemoryStorage>,
    peer: &StationId,
) -> Vec<(DocumentId, HeadsDigest)> {
    replica
        .index
        .iter()
        .filter(|(document, _)| {
            check_document(document, replica.peer_side(peer), replica.local_side()).is_ok()
        })
        .map(|(document, entry)| (document.clone(), entry.digest))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Reading only the owners around the lower side finds exactly what a
    /// test of every held document finds, for peers above, below, beside and
    /// far from the replica, and owners whose names share a prefix (`t1`,
    /// `t10`, `t1-a`).
    #[test]
    fn shared_documents_equal_a_scan_of_every_document(
        local_is_township in any::<bool>(),
        held in proptest::collection::vec(any::<bool>(), 40),
        peer in 0usize..9,
    ) {
        let stations = [
            "xh", "xh/t1", "xh/t10", "xh/t1-a", "xh/t1/v1", "xh/t1/v10", "xh/t10/v1", "xh/t2",
            "xh/t2/v1",
        ];
        let local = station(if local_is_township { "xh/t1" } else { "xh" });
        let mut replica = fresh(&local);
        let mut candidates = Vec::new();
        for owner in stations.iter().map(|text| station(text)) {
            candidates.push(DocumentId::roster(&owner));
            candidates.push(DocumentId::activities(&owner, month()));
            candidates.push(DocumentId::reference(&owner, "menu").unwrap());
            if owner.depth() > 1 {
                candidates.push(DocumentId::approval(&owner, month()));
            }
        }
        for (document, wanted) in candidates.iter().zip(held.iter().cycle()) {
            if *wanted && document.writable_by(&local) {
                replica.commit(document, put("a", 1)).unwrap();
            }
        }
        let peer = station(stations[peer]);
        prop_assume!(peer != local);
        let scanned = shared_by_full_scan(&replica, &peer);
        prop_assert_eq!(replica.shared_documents(&peer), scanned);
    }
}
