//! Backups and restores of real `civsync` processes, and a store put back
//! from an old folder without `renew-actor`.
//!
//! - A village is backed up (`civsync backup`) while a writer records
//!   activities; its PC then dies, the backup is restored on a fresh data
//!   directory (`civsync restore`), and the restored node lists every
//!   activity acknowledged before the backup started, under a new actor.
//! - A damaged backup, a backup of a newer format, and a non-empty target
//!   are refused before anything is written; a backup without keys says
//!   what the restore needs.
//! - A village's data folder copied away, the village going on and syncing,
//!   then the old folder put back and started WITHOUT `renew-actor`: on
//!   first contact with its township it takes a new incarnation by itself
//!   (status shows it), records again, and the township ends up with every
//!   record from before and after, with no actor holding two different
//!   changes under one sequence number.
//! - A village's store lost (the folder deleted, certificate and
//!   configuration kept): started again, its clerk records at once, every
//!   document it owned comes back from its township, and records from
//!   before and after the loss end up at both.

use civsync_node::store::Store;
use civsync_protocol::replica::ReplicaConfig;
use civsync_protocol::{StationId, Tier};
use civsync_tests::{
    civsync, pki_init, pki_issue, wait_for_records, wait_until, ActivityKeys, TestNode,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MONTH: &str = "2025-06";
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

fn date(n: usize) -> String {
    format!("{MONTH}-{:02}", 1 + n % 28)
}

fn keys(station: &str, ids: &[String]) -> ActivityKeys {
    ids.iter()
        .map(|id| (station.to_string(), id.clone()))
        .collect()
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A township and a village below it, both certified and started.
fn township_and_village(root: &Path) -> (TestNode, TestNode) {
    let ca = root.join("ca");
    pki_init(&ca, "xh").unwrap();
    let mut township = TestNode::init(&root.join("t1"), "xh/t1", "township", None).unwrap();
    pki_issue(&ca, &township, "township").unwrap();
    let mut village =
        TestNode::init(&root.join("v1"), "xh/t1/v1", "village", Some(township.quic)).unwrap();
    pki_issue(&ca, &village, "village").unwrap();
    township.start().unwrap();
    village.start().unwrap();
    (township, village)
}

#[test]
fn a_backup_taken_while_the_village_records_restores_every_acknowledged_record_on_a_fresh_pc() {
    let root = tempfile::tempdir().unwrap();
    let (mut township, mut village) = township_and_village(root.path());
    let volunteer = village.register_volunteer(1).unwrap();
    let mut before: Vec<String> = Vec::new();
    for n in 0..20 {
        let id = format!("b{n}");
        village
            .record_activity(&id, &date(n), std::slice::from_ref(&volunteer))
            .unwrap();
        before.push(id);
    }
    let old_incarnation = village.get("status").unwrap()["actor"]["incarnation"].clone();

    // A writer goes on recording during the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (api, token) = (village.api, village.token());
        let (stop, acknowledged, volunteer) =
            (stop.clone(), acknowledged.clone(), volunteer.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .no_proxy()
                .build()
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("d{n}");
                let body = civsync_tests::activity_body(
                    &id,
                    &date(n),
                    std::slice::from_ref(&volunteer),
                    1.0,
                );
                let response = http
                    .post(format!("http://{api}/api/v1/activities"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .unwrap();
                assert_eq!(
                    response.status().as_u16(),
                    201,
                    "the API stays up during a backup"
                );
                acknowledged.lock().unwrap().push(id);
                n += 1;
            }
        })
    };
    wait_until(Duration::from_secs(10), || {
        if acknowledged.lock().unwrap().len() >= 5 {
            Ok(())
        } else {
            Err("writer not started".into())
        }
    })
    .unwrap();
    let acknowledged_before_backup = acknowledged.lock().unwrap().clone();
    let file = root.path().join("v1.civsync-backup");
    let said = civsync(&[
        "backup",
        "--to",
        &path_text(&file),
        "--with-keys",
        "-d",
        &path_text(&village.dir),
    ])
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(said.contains("WITH KEYS"), "{said}");
    assert!(said.contains("sha256"), "{said}");
    assert!(
        acknowledged.lock().unwrap().len() > acknowledged_before_backup.len(),
        "the writer recorded during the backup"
    );
    // No temporary file is left in the data directory, and the backup is audited.
    let leftovers: Vec<_> = std::fs::read_dir(&village.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let audit = village.get("audit?action=backup").unwrap();
    let entry = audit
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["action"] == "backup")
        .cloned()
        .unwrap_or_default();
    assert_eq!(entry["target"], "with keys", "{audit}");

    // The village PC dies; the backup goes onto a new one.
    village.kill();
    let fresh = root.path().join("v1-new");
    let said = civsync(&["restore", &path_text(&file), "-d", &path_text(&fresh)]).unwrap();
    assert!(said.contains("new incarnation"), "{said}");
    let mut restored =
        TestNode::init(&root.path().join("unused"), "xh/t1/v1", "village", None).unwrap();
    restored.dir = fresh.clone();
    restored.api = village.api;
    restored.quic = village.quic;
    restored.start().unwrap();
    let mut expected = keys("xh/t1/v1", &before);
    expected.extend(keys("xh/t1/v1", &acknowledged_before_backup));
    let listed = restored.activity_keys(MONTH, false).unwrap();
    let missing: Vec<_> = expected.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup but not restored: {missing:?}"
    );
    let status = restored.get("status").unwrap();
    assert_ne!(
        status["actor"]["incarnation"], old_incarnation,
        "a restored store writes as a new actor"
    );
    // It records and syncs with its township as the village.
    restored
        .record_activity("after", &date(3), &[volunteer])
        .unwrap();
    let mut everything = expected.clone();
    everything.insert(("xh/t1/v1".to_string(), "after".to_string()));
    wait_for_records(
        &township,
        MONTH,
        &everything,
        SYNC_TIMEOUT,
        "restored village to township",
        &[&township, &restored],
    );
    restored.stop().unwrap();
    township.stop().unwrap();
}

#[test]
fn damaged_or_newer_backups_and_occupied_folders_are_refused_and_a_keyless_backup_says_what_it_needs(
) {
    let root = tempfile::tempdir().unwrap();
    let mut village = TestNode::init(&root.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    pki_issue_alone(root.path(), &village);
    village.start().unwrap();
    let volunteer = village.register_volunteer(2).unwrap();
    village
        .record_activity("k1", &date(1), &[volunteer])
        .unwrap();
    let file = root.path().join("keyless");
    let said = civsync(&[
        "backup",
        "--to",
        &path_text(&file),
        "-d",
        &path_text(&village.dir),
    ])
    .unwrap();
    assert!(
        said.contains("without keys") && said.contains("certificate folder"),
        "{said}"
    );
    // An existing file is never overwritten.
    let again = civsync(&[
        "backup",
        "--to",
        &path_text(&file),
        "-d",
        &path_text(&village.dir),
    ]);
    assert!(again.unwrap_err().to_string().contains("exists"));
    village.stop().unwrap();

    let bytes = std::fs::read(&file).unwrap();
    // One byte changed in the middle: the checksum refuses it.
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x55;
    let damaged_file = root.path().join("damaged");
    std::fs::write(&damaged_file, &damaged).unwrap();
    let target = root.path().join("target");
    let refused = civsync(&[
        "restore",
        &path_text(&damaged_file),
        "-d",
        &path_text(&target),
    ])
    .unwrap_err();
    assert!(refused.to_string().contains("checksum"), "{refused}");
    assert!(!target.exists(), "nothing written for a damaged backup");
    // A cut-off file too.
    let cut = root.path().join("cut");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let refused = civsync(&["restore", &path_text(&cut), "-d", &path_text(&target)]).unwrap_err();
    assert!(refused.to_string().contains("checksum"), "{refused}");
    assert!(!target.exists());
    // A newer format version: refused before the checksum is even read.
    let mut newer = bytes.clone();
    newer[15..19].copy_from_slice(&99u32.to_be_bytes());
    let newer_file = root.path().join("newer");
    std::fs::write(&newer_file, &newer).unwrap();
    let refused = civsync(&[
        "restore",
        &path_text(&newer_file),
        "-d",
        &path_text(&target),
    ])
    .unwrap_err();
    assert!(refused.to_string().contains("version 99"), "{refused}");
    assert!(!target.exists());
    // A folder that holds anything is never restored into.
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("note.txt"), "keep").unwrap();
    let refused = civsync(&["restore", &path_text(&file), "-d", &path_text(&target)]).unwrap_err();
    assert!(refused.to_string().contains("not empty"), "{refused}");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
    // The keyless backup restores into an empty folder, without keys, and says what to copy.
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let said = civsync(&["restore", &path_text(&file), "-d", &path_text(&empty)]).unwrap();
    assert!(
        said.contains("held no keys") && said.contains("certificate folder"),
        "{said}"
    );
    assert!(!empty.join("pki").exists() && !empty.join("api-token").exists());
    assert!(empty.join("civsync.toml").exists() && empty.join("store").exists());
    // What deploy/README.md says to run on a folder copied back by hand.
    let said = civsync(&["renew-actor", "-d", &path_text(&empty)]).unwrap();
    assert!(said.contains("incarnation"), "{said}");
}

/// A certificate for a node that has no parent (so it runs alone).
fn pki_issue_alone(root: &Path, node: &TestNode) {
    let ca = root.join("ca");
    pki_init(&ca, "xh").unwrap();
    pki_issue(&ca, node, "village").unwrap();
}

/// (document, actor hex, seq) → change hashes, over every document of a
/// stopped node's store (automerge numbers an actor's changes per document).
fn changes_by_actor_and_seq(
    dir: &Path,
    station: &str,
    tier: Tier,
) -> BTreeMap<(String, String, u64), Vec<String>> {
    let store = Store::open(
        &dir.join("store"),
        StationId::parse(station).unwrap(),
        ReplicaConfig {
            tier: Some(tier),
            ..ReplicaConfig::default()
        },
    )
    .unwrap();
    let seen = store
        .call_blocking(|replica| {
            let mut seen: BTreeMap<(String, String, u64), Vec<String>> = BTreeMap::new();
            for document in replica.documents() {
                let changes = replica
                    .with_document(&document, |doc| {
                        let mut doc = doc.clone();
                        doc.get_changes_meta(&[])
                            .into_iter()
                            .map(|meta| {
                                (meta.actor.to_hex_string(), meta.seq, meta.hash.to_string())
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap()
                    .unwrap_or_default();
                for (actor, seq, hash) in changes {
                    let hashes = seen.entry((document.to_string(), actor, seq)).or_default();
                    if !hashes.contains(&hash) {
                        hashes.push(hash);
                    }
                }
            }
            seen
        })
        .unwrap();
    store.close_blocking();
    seen
}

#[test]
fn an_old_folder_put_back_without_renew_actor_renews_by_itself_and_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (mut township, mut village) = township_and_village(root.path());
    let volunteer = village.register_volunteer(3).unwrap();
    let first: Vec<String> = (0..5).map(|n| format!("r1-{n}")).collect();
    for (n, id) in first.iter().enumerate() {
        village
            .record_activity(id, &date(n), std::slice::from_ref(&volunteer))
            .unwrap();
    }
    wait_for_records(
        &township,
        MONTH,
        &keys("xh/t1/v1", &first),
        SYNC_TIMEOUT,
        "first records",
        &[&township, &village],
    );
    let old_incarnation = village.get("status").unwrap()["actor"]["incarnation"].clone();

    // The office copies its folder away (the node stopped), then goes on.
    village.stop().unwrap();
    let old_copy = root.path().join("v1-old-copy");
    let copied = std::process::Command::new("cp")
        .args(["-a", &path_text(&village.dir), &path_text(&old_copy)])
        .status()
        .unwrap();
    assert!(copied.success());
    village.start().unwrap();
    let second: Vec<String> = (0..5).map(|n| format!("r2-{n}")).collect();
    for (n, id) in second.iter().enumerate() {
        village
            .record_activity(id, &date(n + 5), std::slice::from_ref(&volunteer))
            .unwrap();
    }
    let mut so_far = keys("xh/t1/v1", &first);
    so_far.extend(keys("xh/t1/v1", &second));
    wait_for_records(
        &township,
        MONTH,
        &so_far,
        SYNC_TIMEOUT,
        "second records",
        &[&township, &village],
    );

    // The PC's disk dies; someone puts the old folder back, no renew-actor.
    village.kill();
    std::fs::rename(&village.dir, root.path().join("v1-dead")).unwrap();
    std::fs::rename(&old_copy, &village.dir).unwrap();
    village.start().unwrap();
    let renewed = wait_until(SYNC_TIMEOUT, || {
        let status = village.get("status").map_err(|e| e.to_string())?;
        match status["actor"]["renewals"].as_u64() {
            Some(count) if count >= 1 => Ok(()),
            _ => Err(format!("no renewal yet: {}", status["actor"])),
        }
    });
    if let Err(error) = renewed {
        panic!(
            "{error}\n{}",
            civsync_tests::describe_nodes(&[&township, &village])
        );
    }
    let status = village.get("status").unwrap();
    assert_ne!(status["actor"]["incarnation"], old_incarnation);
    assert_eq!(
        status["actor"]["renewal_peer"], "xh/t1",
        "{}",
        status["actor"]
    );
    assert!(
        village.log().contains("took a new incarnation"),
        "the renewal is logged"
    );
    let shown = civsync(&["status", "-d", &path_text(&village.dir)]).unwrap();
    assert!(shown.contains("renewed by itself 1 time"), "{shown}");

    let third: Vec<String> = (0..5).map(|n| format!("r3-{n}")).collect();
    for (n, id) in third.iter().enumerate() {
        village
            .record_activity(id, &date(n + 10), std::slice::from_ref(&volunteer))
            .unwrap();
    }
    let mut everything = so_far.clone();
    everything.extend(keys("xh/t1/v1", &third));
    wait_for_records(
        &township,
        MONTH,
        &everything,
        SYNC_TIMEOUT,
        "every record",
        &[&township, &village],
    );
    wait_until(SYNC_TIMEOUT, || {
        civsync_tests::replicas_agree(&[&township, &village])
    })
    .unwrap();
    village.stop().unwrap();
    township.stop().unwrap();

    for (node, tier) in [(&township, Tier::Township), (&village, Tier::Village)] {
        let seen = changes_by_actor_and_seq(&node.dir, &node.station, tier);
        let reused: Vec<_> = seen.iter().filter(|(_, hashes)| hashes.len() > 1).collect();
        assert!(
            reused.is_empty(),
            "{}: an actor numbered two changes alike: {reused:?}",
            node.station
        );
        let village_actors: std::collections::BTreeSet<&String> = seen
            .keys()
            .map(|(_, actor, _)| actor)
            .filter(|actor| actor.starts_with(&hex_of("xh/t1/v1\0")))
            .collect();
        assert_eq!(
            village_actors.len(),
            2,
            "{}: the village wrote as two incarnations: {village_actors:?}",
            node.station
        );
    }
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_village_whose_store_is_lost_gets_its_documents_back_from_its_township_and_records_on_at_once()
{
    let root = tempfile::tempdir().unwrap();
    let (township, mut village) = township_and_village(root.path());
    let volunteer = village.register_volunteer(5).unwrap();
    let first: Vec<String> = (0..5).map(|n| format!("l1-{n}")).collect();
    for (n, id) in first.iter().enumerate() {
        village
            .record_activity(id, &date(n), std::slice::from_ref(&volunteer))
            .unwrap();
    }
    wait_for_records(
        &township,
        MONTH,
        &keys("xh/t1/v1", &first),
        SYNC_TIMEOUT,
        "records before the loss",
        &[&township, &village],
    );
    let before = village.documents().unwrap();

    // The disk dies: the store is gone; the certificate and the
    // configuration were reinstalled. The clerk records at once.
    village.kill();
    std::fs::remove_dir_all(village.dir.join(civsync_node::store::STORE_DIR)).unwrap();
    village.start().unwrap();
    village.record_activity("l2-0", &date(10), &[]).unwrap();

    // Every document the village owned comes back from its township.
    let refilled = wait_until(SYNC_TIMEOUT, || {
        let now = village.documents().map_err(|e| e.to_string())?;
        let missing: Vec<&String> = before.keys().filter(|d| !now.contains_key(*d)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("not back yet: {missing:?}"))
        }
    });
    if let Err(error) = refilled {
        panic!(
            "{error}\n{}",
            civsync_tests::describe_nodes(&[&township, &village])
        );
    }
    let volunteers = village.get("volunteers").unwrap();
    assert!(
        volunteers
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["number"] == volunteer.as_str()),
        "the roster is back: {volunteers}"
    );

    // And it goes on recording, on a new actor, with its old volunteers.
    let second: Vec<String> = (1..5).map(|n| format!("l2-{n}")).collect();
    for (n, id) in second.iter().enumerate() {
        village
            .record_activity(id, &date(n + 11), std::slice::from_ref(&volunteer))
            .unwrap();
    }
    let mut all = keys("xh/t1/v1", &first);
    all.extend(keys("xh/t1/v1", &second));
    all.extend(keys("xh/t1/v1", &["l2-0".to_string()]));
    for node in [&township, &village] {
        wait_for_records(
            node,
            MONTH,
            &all,
            SYNC_TIMEOUT,
            "every record, before and after the loss",
            &[&township, &village],
        );
    }
    wait_until(SYNC_TIMEOUT, || {
        civsync_tests::replicas_agree(&[&township, &village])
    })
    .unwrap();
}
