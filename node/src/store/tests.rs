//! SledStorage and Store tests on temporary directories, including a child
//! process killed with SIGKILL while it writes.

use super::*;
use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use civsync_protocol::identity::document_id::Month;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn village_document(village: usize) -> DocumentId {
    DocumentId::activities(
        &station(&format!("xh/t1/v{village}")),
        Month::new(2026, 11).unwrap(),
    )
}

fn put_pair(storage: &mut SledStorage, key: &str, value: &str) {
    let mut batch = WriteBatch::new();
    batch.put(key.as_bytes().to_vec(), value.as_bytes().to_vec());
    storage.apply(batch).unwrap();
}

#[test]
fn sled_storage_keeps_flushed_writes_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut storage = SledStorage::open(dir.path()).unwrap();
        put_pair(&mut storage, "p|b", "2");
        put_pair(&mut storage, "p|a", "1");
        put_pair(&mut storage, "q|a", "x");
        let mut batch = WriteBatch::new();
        batch.delete(b"q|a".to_vec());
        batch.put(b"p|c".to_vec(), b"3".to_vec());
        storage.apply(batch).unwrap();
        storage.flush().unwrap();
    }
    let storage = SledStorage::open(dir.path()).unwrap();
    let found = storage.scan_prefix(b"p|").unwrap();
    let keys: Vec<&[u8]> = found.iter().map(|(key, _)| key.as_slice()).collect();
    assert_eq!(keys, vec![b"p|a".as_slice(), b"p|b", b"p|c"]);
    assert_eq!(storage.get(b"q|a").unwrap(), None);
    assert_eq!(storage.get(b"p|c").unwrap(), Some(b"3".to_vec()));
}

#[test]
fn a_cache_write_is_waited_for_by_nothing_and_kept_by_the_next_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut storage = SledStorage::open(dir.path()).unwrap();
        put_pair(&mut storage, "data", "1");
        storage.flush().unwrap();
        let durable = storage.applied();
        assert!(storage.durable_through(durable));
        let mut batch = WriteBatch::new();
        batch.put(b"sync|state".to_vec(), b"heads".to_vec());
        storage.apply_cache(batch).unwrap();
        // Not a batch anyone's answer waits for: still durable through it.
        assert_eq!(storage.applied(), durable);
        assert!(storage.durable_through(storage.applied()));
        assert_eq!(storage.get(b"sync|state").unwrap(), Some(b"heads".to_vec()));
        // A data write and its flush carry the cache write along.
        put_pair(&mut storage, "data", "2");
        assert_eq!(storage.applied(), durable + 1);
        storage.flush().unwrap();
    }
    let storage = SledStorage::open(dir.path()).unwrap();
    assert_eq!(storage.get(b"sync|state").unwrap(), Some(b"heads".to_vec()));
}

#[test]
fn a_store_released_a_moment_later_in_this_process_opens_after_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let held = SledStorage::open(dir.path()).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    let started = Instant::now();
    let reopened = SledStorage::open(dir.path());
    release.join().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    let reopened = reopened.unwrap();
    // Held for longer than every try: refused, naming the lock.
    let refused = SledStorage::open(dir.path())
        .err()
        .expect("a held store is refused");
    assert!(refused.to_string().contains("lock"), "{refused}");
    drop(reopened);
}

#[test]
fn the_incarnation_is_kept_until_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let mut storage = SledStorage::open(dir.path()).unwrap();
        load_or_draw_incarnation(&mut storage).unwrap()
    };
    let again = {
        let mut storage = SledStorage::open(dir.path()).unwrap();
        load_or_draw_incarnation(&mut storage).unwrap()
    };
    assert_eq!(first, again);
    let renewed = renew_incarnation(dir.path()).unwrap();
    assert_ne!(renewed, first);
    let store = Store::open(dir.path(), station("xh/t1"), ReplicaConfig::default()).unwrap();
    assert_eq!(store.incarnation(), renewed);
    store.close_blocking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_are_durable_and_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), station("xh/t1"), ReplicaConfig::default()).unwrap();
    let mut writers = Vec::new();
    for writer in 0..8usize {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..25i64 {
                store
                    .commit(village_document(writer), move |doc| {
                        doc.put(ROOT, format!("k{n}"), n)
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    // A refused mutation comes back typed, through the channel.
    let refused = store
        .commit(village_document(0), |_doc| Err::<(), _>("no"))
        .await
        .unwrap_err();
    assert!(matches!(refused, CommitError::Mutate("no")));
    let counts = store
        .call(|replica| {
            (0..8)
                .map(|v| replica.change_count(&village_document(v)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
    assert!(counts.iter().all(|count| *count == Some(25)), "{counts:?}");
    store.close().await;
    assert!(
        store
            .call(|replica| replica.documents().len())
            .await
            .is_err(),
        "closed"
    );

    let store = Store::open(dir.path(), station("xh/t1"), ReplicaConfig::default()).unwrap();
    let values = store
        .call(|replica| {
            replica
                .with_document(&village_document(7), |doc| {
                    doc.get(ROOT, "k24").unwrap().map(|(v, _)| v.to_string())
                })
                .unwrap()
        })
        .await
        .unwrap();
    assert_eq!(values, Some(Some("24".to_string())));
    assert!(store
        .call(|replica| replica.verify())
        .await
        .unwrap()
        .is_empty());
    store.close().await;
}

#[tokio::test]
async fn a_panicking_closure_does_not_break_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), station("xh/t1"), ReplicaConfig::default()).unwrap();
    store
        .commit(village_document(1), |doc| doc.put(ROOT, "a", 1))
        .await
        .unwrap();
    let panicked = store
        .commit(
            village_document(1),
            |doc| -> Result<(), automerge::AutomergeError> {
                doc.put(ROOT, "b", 2)?;
                panic!("bug in a mutation")
            },
        )
        .await;
    assert!(matches!(panicked, Err(CommitError::Storage { .. })));
    let keys = store
        .call(|replica| {
            replica
                .with_document(&village_document(1), |doc| {
                    doc.keys(ROOT).collect::<Vec<_>>()
                })
                .unwrap()
        })
        .await
        .unwrap()
        .unwrap();
    assert!(
        keys.contains(&"a".to_string()) && !keys.contains(&"b".to_string()),
        "{keys:?}"
    );
    store
        .commit(village_document(1), |doc| doc.put(ROOT, "c", 3))
        .await
        .unwrap();
    store.close().await;
}

const CHILD_DIRECTORY_VARIABLE: &str = "CIVSYNC_STORE_KILL_CHILD_DIR";
const CHILD_WRITERS: usize = 4;

/// Child side of the SIGKILL test: write forever through a `Store`, printing
/// each acknowledged commit. Does nothing unless started by the parent.
#[test]
fn sigkill_child_writer() {
    let Ok(directory) = std::env::var(CHILD_DIRECTORY_VARIABLE) else {
        return;
    };
    let store = Store::open(
        Path::new(&directory),
        station("xh/t1"),
        ReplicaConfig::default(),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut writers = Vec::new();
        for writer in 0..CHILD_WRITERS {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for n in 0u64.. {
                    let key = format!("{}-{n}", std::process::id());
                    let field = key.clone();
                    store
                        .commit(village_document(writer), move |doc| doc.put(ROOT, field, n))
                        .await
                        .unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "acked {writer} {key}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

/// Kill a writing child with SIGKILL three times over the same store; every
/// commit it reported as acknowledged must be there afterwards.
#[test]
fn flushed_writes_survive_sigkill() {
    if std::env::var(CHILD_DIRECTORY_VARIABLE).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: Vec<(usize, String)> = Vec::new();
    for round in 0..3 {
        // Test names are module paths without the crate name.
        let module = module_path!()
            .split_once("::")
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let child_test = format!("{module}::sigkill_child_writer");
        let mut child = Process::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                child_test.as_str(),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIRECTORY_VARIABLE, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = Instant::now();
        let target = 150 + 50 * round;
        let mut this_round = 0;
        while this_round < target && started.elapsed() < Duration::from_secs(60) {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(rest) = line.strip_prefix("acked ") {
                let (writer, key) = rest.split_once(' ').unwrap();
                acknowledged.push((writer.parse().unwrap(), key.to_string()));
                this_round += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        // Acknowledgements already in the pipe were acknowledged before the kill.
        for line in lines.map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("acked ") {
                let (writer, key) = rest.split_once(' ').unwrap();
                acknowledged.push((writer.parse().unwrap(), key.to_string()));
            }
        }
        assert!(
            this_round > 0,
            "round {round}: the child acknowledged nothing"
        );
    }

    let mut storage = SledStorage::open(dir.path()).unwrap();
    let incarnation = load_or_draw_incarnation(&mut storage).unwrap();
    let mut replica = Replica::open(
        storage,
        station("xh/t1"),
        incarnation,
        ReplicaConfig::default(),
    )
    .unwrap();
    let mut missing = Vec::new();
    for (writer, key) in &acknowledged {
        let present = replica
            .with_document(&village_document(*writer), |doc| {
                doc.get(ROOT, key.as_str()).unwrap().is_some()
            })
            .unwrap();
        if present != Some(true) {
            missing.push(key.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged commits lost: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
    assert!(replica.verify().is_empty());
    eprintln!(
        "sigkill: {} acknowledged commits over 3 kills, all present",
        acknowledged.len()
    );
}

#[test]
fn every_change_committed_through_the_store_carries_the_node_clock() {
    use civsync_protocol::stats::Freshness;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), station("xh/t1/v1"), ReplicaConfig::default()).unwrap();
    let before_ms = i64::try_from(crate::clock::now_ms()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(store.commit(village_document(1), |doc| doc.put(ROOT, "a", 1)))
        .unwrap();
    let after_ms = i64::try_from(crate::clock::now_ms()).unwrap();
    let newest = store
        .call_blocking(|replica| {
            let mut freshness = Freshness::default();
            replica
                .observe_change_times(&village_document(1), &[], &mut freshness)
                .unwrap();
            freshness.of(&station("xh/t1/v1")).newest_change_ms
        })
        .unwrap()
        .expect("the change carries a time");
    // Automerge keeps whole seconds.
    assert!(
        newest > before_ms - 1_000 && newest <= after_ms,
        "{before_ms} ≤ {newest} ≤ {after_ms}"
    );
    store.close_blocking();
}

#[test]
fn the_flusher_counts_applied_batches_and_skips_covered_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = SledStorage::open(dir.path()).unwrap();
    let flusher = storage.flusher();
    assert_eq!(storage.applied(), 0);
    flusher.flush_through(0).unwrap();
    assert_eq!(
        flusher.durable.load(Ordering::Acquire),
        0,
        "nothing to cover"
    );
    put_pair(&mut storage, "p|a", "1");
    put_pair(&mut storage, "p|b", "2");
    assert_eq!(storage.applied(), 2);
    // From another thread, as the store's flush thread does.
    let remote = flusher.clone();
    std::thread::spawn(move || remote.flush_through(2).unwrap())
        .join()
        .unwrap();
    assert_eq!(flusher.durable.load(Ordering::Acquire), 2);
    put_pair(&mut storage, "p|c", "3");
    // An older target never lowers what is known durable.
    flusher.flush_through(1).unwrap();
    assert_eq!(flusher.durable.load(Ordering::Acquire), 2);
    storage.flush().unwrap();
    assert_eq!(flusher.durable.load(Ordering::Acquire), 3);
    drop((storage, flusher));
    let reopened = SledStorage::open(dir.path()).unwrap();
    assert_eq!(reopened.get(b"p|c").unwrap(), Some(b"3".to_vec()));
}

#[test]
fn group_commits_are_answered_after_the_flush_thread_covers_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), station("xh/t1/v1"), ReplicaConfig::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let answers = runtime.block_on(async {
        // The flush thread's view of what is durable, shared with the store.
        let flusher = store
            .call(|replica| replica.storage().flusher())
            .await
            .unwrap();
        let commits: Vec<_> = (0..32)
            .map(|n| {
                let (store, flusher) = (store.clone(), flusher.clone());
                tokio::spawn(async move {
                    // Commit, and note how many batches storage had applied
                    // right after this one; the answer comes after the flush.
                    let applied = store
                        .call_durable(move |replica| {
                            replica
                                .commit(&village_document(1), |doc| {
                                    doc.put(ROOT, format!("k{n}"), n as i64)
                                })
                                .unwrap();
                            replica.storage().applied()
                        })
                        .await
                        .unwrap();
                    let durable = flusher.durable.load(Ordering::Acquire);
                    assert!(
                        durable >= applied,
                        "answered with batch {applied} applied but only {durable} durable"
                    );
                    1
                })
            })
            .collect();
        let mut answers = Vec::new();
        for commit in commits {
            answers.push(commit.await.unwrap());
        }
        drop(flusher);
        store.close().await;
        answers
    });
    assert_eq!(answers, vec![1; 32]);
    let reopened = Store::open(dir.path(), station("xh/t1/v1"), ReplicaConfig::default()).unwrap();
    let keys = reopened
        .call_blocking(|replica| {
            replica
                .with_document(&village_document(1), |doc| doc.keys(ROOT).count())
                .unwrap()
                .unwrap()
        })
        .unwrap();
    assert!(keys >= 32, "{keys}");
    reopened.close_blocking();
}

#[tokio::test]
async fn a_store_given_the_signing_key_has_its_sessions_check_signatures_ahead() {
    use civsync_protocol::sync::signing::keyed_hash::{KeyedHashSigner, KeyedHashVerifier};
    use civsync_protocol::Tier;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), station("xh/t1"), ReplicaConfig::default()).unwrap();
    assert!(!store.preparer().checks_signatures());
    store
        .set_signing(Signing {
            signer: Some(Arc::new(KeyedHashSigner::new(
                b"county",
                &station("xh/t1"),
                Tier::Township,
            ))),
            verifier: Arc::new(KeyedHashVerifier::new(b"county")),
        })
        .await
        .unwrap();
    assert!(store.preparer().checks_signatures());
    assert!(store.call(|replica| replica.signs()).await.unwrap());
    store.close().await;
}
