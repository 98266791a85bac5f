//! A hostile but certified village against a county of real `civsync run`
//! processes over QUIC on 127.0.0.1: county xh, township xh/t1 and an honest
//! village xh/t1/v2. The rogue holds xh/t1/v1's valid certificate (issued
//! by `civsync pki`) and speaks the real wire format to the township:
//! (a) a compressed change that inflates to 4 GiB;
//! (b) a change of 10^8 run-length-encoded ops;
//! (c) documents for 10,000 invented stations below it;
//! (d) a bucket listing flood;
//! (e) garbage after a valid hello.
//! After each: the township and the county are still up, their memory grew
//! by less than `RSS_GROWTH_MAX_BYTES`, the honest village's new activity
//! reaches the county within `HONEST_DELIVERY_TIMEOUT`, and the township's
//! status names the rogue and the reason.

use automerge::transaction::Transactable;
use civsync_node::net::pki::NodeIdentity;
use civsync_node::net::transport::{NodeEndpoint, PeerLink};
use civsync_protocol::replica::bounds::attack::{deflate_bomb_change, run_length_ops_change};
use civsync_protocol::sync::digest::{bucket_of, DIGEST_BUCKETS};
use civsync_protocol::sync::wire::{
    encode_frame, FrameDecoder, Message, VersionRange, BUCKET_ENTRIES_PER_FRAME_MAX,
    SYNC_CHUNK_BYTES_MAX,
};
use civsync_protocol::{DocumentId, Month, StationId};
use civsync_tests::{certified, civsync, describe_nodes, pki_init, wait_until, TestNode};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// A fixed past month, so no record is ever "in the future".
const MONTH: &str = "2025-06";
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The promise: an honest village's records still reach the county this
/// fast after each attack.
const HONEST_DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How much a node's resident memory may grow over all the attacks.
const RSS_GROWTH_MAX_BYTES: u64 = 200 << 20;
/// How long the rogue waits for the township's answers to one attack.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
const INVENTED_STATIONS: usize = 10_000;
/// Past `BUCKET_ENTRIES_BUFFERED_MAX` (262,144) listed entries.
const FLOOD_ENTRIES: usize = 280_000;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

/// Resident memory of a running node, from /proc.
fn rss_bytes(node: &TestNode) -> u64 {
    let pid = node
        .pid()
        .unwrap_or_else(|| panic!("{} is not running", node.station));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("{} (pid {pid}) is gone: {e}", node.station));
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"));
    kib * 1024
}

/// The process runs and its API answers as itself.
fn alive(node: &TestNode) -> Result<(), String> {
    let pid = node
        .pid()
        .ok_or_else(|| format!("{} has no process", node.station))?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(format!(
            "{} (pid {pid}) exited:\n{}",
            node.station,
            node.log()
        ));
    }
    let answer = node
        .get("node")
        .map_err(|e| format!("{} does not answer: {e}", node.station))?;
    if answer["station"].as_str() != Some(node.station.as_str()) {
        return Err(format!("{} answers as {answer}", node.station));
    }
    Ok(())
}

/// What the township said to the rogue on one link.
#[derive(Debug, Default)]
struct Answers {
    refusals: Vec<(DocumentId, String)>,
    goodbye: Option<String>,
}

/// One link of the rogue: v1's certificate, a valid hello, then `attack`
/// written while the township's answers are read, until `enough` says so,
/// the township closes, or `ANSWER_TIMEOUT`.
async fn rogue_link(
    identity: &NodeIdentity,
    township: SocketAddr,
    attack: Vec<u8>,
    enough: impl Fn(&Answers) -> bool,
) -> Answers {
    let endpoint =
        NodeEndpoint::bind(civsync_tests::free_udp_addr(), identity).expect("bind the rogue");
    let link: PeerLink = endpoint
        .connect(township, Some(&station("xh/t1")))
        .await
        .expect("a certified link to the township");
    let PeerLink {
        mut send,
        mut recv,
        connection,
        ..
    } = link;
    let hello = encode_frame(&Message::Hello {
        versions: VersionRange::OURS,
        station: identity.station().clone(),
        tier: identity.tier(),
    })
    .unwrap();
    let writer = tokio::spawn(async move {
        // The township may close mid-way: that is an answer, not a failure.
        let _ = send.write_all(&hello).await;
        let _ = send.write_all(&attack).await;
        send
    });
    let mut answers = Answers::default();
    let mut decoder = FrameDecoder::new();
    let mut buffer = vec![0_u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    while !enough(&answers) && answers.goodbye.is_none() {
        let read = tokio::time::timeout_at(deadline, recv.read(&mut buffer)).await;
        let Ok(Ok(Some(n))) = read else { break };
        decoder.push(&buffer[..n]);
        while let Ok(Some(message)) = decoder.pop() {
            match message {
                Message::Refused { document, reason } => answers.refusals.push((document, reason)),
                Message::Goodbye { reason } | Message::HelloRejected { reason, .. } => {
                    answers.goodbye = Some(reason)
                }
                _ => {}
            }
        }
    }
    writer.abort();
    connection.close(0u32.into(), b"rogue done");
    endpoint.close();
    answers
}

/// Sync frames carrying `message` for `document`, fragmented as the wire
/// requires, in the unsigned envelope the version spoken (4) expects: the
/// rogue signs nothing, and its bombs must still be refused by the decode
/// limits before anything is judged.
fn sync_frames(document: &DocumentId, message: &[u8]) -> Vec<u8> {
    let message = civsync_protocol::sync::signing::SignedSyncMessage {
        automerge: message.to_vec(),
        credentials: Vec::new(),
        signatures: Vec::new(),
    }
    .encode();
    let message = message.as_slice();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let end = (offset + SYNC_CHUNK_BYTES_MAX).min(message.len());
        out.extend(
            encode_frame(&Message::Sync {
                document: document.clone(),
                reply: false,
                message_bytes: message.len() as u32,
                offset: offset as u32,
                chunk: message[offset..end].to_vec(),
            })
            .unwrap(),
        );
        offset = end;
        if offset >= message.len() {
            return out;
        }
    }
}

/// An automerge sync message whose changes are `chunks`.
fn sync_message(chunks: Vec<Vec<u8>>) -> Vec<u8> {
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

/// A real, small change by v1's actor, valid for any document.
fn honest_looking_change() -> Vec<u8> {
    let actor = civsync_protocol::identity::actor::actor_for(&station("xh/t1/v1"), 99);
    let mut doc = automerge::AutoCommit::new().with_actor(actor);
    doc.put(automerge::ROOT, "note", "a station that does not exist")
        .unwrap();
    doc.commit();
    doc.save()
}

fn invented_station_attack() -> Vec<u8> {
    let message = sync_message(vec![honest_looking_change()]);
    let mut out = Vec::new();
    for n in 0..INVENTED_STATIONS {
        let document = DocumentId::roster(&station(&format!("xh/t1/v1/s{n}")));
        out.extend(sync_frames(&document, &message));
    }
    out
}

fn bucket_flood_attack() -> Vec<u8> {
    let mut buckets: Vec<Vec<(DocumentId, [u8; 16])>> = vec![Vec::new(); DIGEST_BUCKETS];
    for n in 0..FLOOD_ENTRIES {
        let document = DocumentId::roster(&station(&format!("xh/t1/v1/f{n}")));
        buckets[bucket_of(&document) as usize].push((document, [7; 16]));
    }
    let mut out = encode_frame(&Message::ScopeRoot {
        documents: FLOOD_ENTRIES as u64,
        root: [9; 16],
    })
    .unwrap();
    out.extend(
        encode_frame(&Message::BucketHashes {
            hashes: vec![[9; 16]; DIGEST_BUCKETS],
        })
        .unwrap(),
    );
    for (bucket, entries) in buckets.iter().enumerate() {
        for frame in entries.chunks(BUCKET_ENTRIES_PER_FRAME_MAX) {
            out.extend(
                encode_frame(&Message::BucketContents {
                    bucket: bucket as u8,
                    entries: frame.to_vec(),
                    last: false,
                })
                .unwrap(),
            );
        }
    }
    out
}

fn garbage_attack() -> Vec<u8> {
    (0..256 * 1024_u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The township's status entry for the rogue once its link is down.
fn rogue_status_after(township: &TestNode) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until(SETTLE_TIMEOUT, || {
        last = township
            .peer_status("xh/t1/v1")
            .map_err(|e| e.to_string())?
            .ok_or("the township does not list the rogue")?;
        if last["connected"].as_bool() == Some(false) {
            Ok(())
        } else {
            Err(format!("the rogue's link is still up: {last}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    last
}

#[test]
fn a_certified_rogue_village_cannot_crash_bloat_or_stall_its_township_and_county() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("county-ca");
    pki_init(&ca, "xh").unwrap();
    let mut county = certified(dir.path(), &ca, "xh", "county", None);
    let mut township = certified(dir.path(), &ca, "xh/t1", "township", Some(county.quic));
    let mut honest = certified(dir.path(), &ca, "xh/t1/v2", "village", Some(township.quic));
    // v1 never runs: the rogue holds its certificate.
    let v1 = certified(dir.path(), &ca, "xh/t1/v1", "village", Some(township.quic));
    let rogue = NodeIdentity::load(&v1.dir.join("pki")).expect("v1's certificate");
    // Built while the nodes start: the bomb takes a few seconds to deflate.
    let bomb = std::thread::spawn(|| sync_message(vec![deflate_bomb_change(4 << 30)]));
    for node in [&mut county, &mut township, &mut honest] {
        node.start().unwrap();
    }
    let everyone = || describe_nodes(&[&county, &township, &honest]);
    let volunteer = honest.register_volunteer(1).unwrap();
    let mut recorded = 0;
    let mut honest_activity_reaches_the_county = |after: &str| {
        recorded += 1;
        let id = format!("after-{recorded}");
        honest
            .record_activity(
                &id,
                &format!("{MONTH}-{:02}", recorded),
                std::slice::from_ref(&volunteer),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let key = ("xh/t1/v2".to_string(), id);
        wait_until(HONEST_DELIVERY_TIMEOUT, || {
            let held = county
                .activity_keys(MONTH, true)
                .map_err(|e| e.to_string())?;
            if held.contains(&key) {
                Ok(())
            } else {
                Err(format!("the county lacks {key:?}"))
            }
        })
        .unwrap_or_else(|e| {
            panic!(
                "after {after}: the honest village's activity: {e}\n{}",
                everyone()
            )
        });
    };
    // Links up and a first record through, before measuring.
    wait_until(SETTLE_TIMEOUT, || {
        let at = township
            .peer_status("xh/t1/v2")
            .map_err(|e| e.to_string())?;
        let up = at.is_some_and(|s| s["connected"].as_bool() == Some(true));
        if up {
            Ok(())
        } else {
            Err("the honest village is not linked yet".into())
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", everyone()));
    honest_activity_reaches_the_county("start");
    let rss_before = [rss_bytes(&township), rss_bytes(&county)];
    let bomb = bomb.join().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let month_doc =
        |m: u8| DocumentId::activities(&station("xh/t1/v1"), Month::new(2025, m).unwrap());

    let attacks: Vec<(&str, Vec<u8>, usize, &str)> = vec![
        (
            "(a) a change inflating to 4 GiB",
            sync_frames(&month_doc(7), &bomb),
            1,
            "over the decode limits",
        ),
        (
            "(b) 10^8 run-length ops",
            sync_frames(
                &month_doc(8),
                &sync_message(vec![run_length_ops_change(100_000_000)]),
            ),
            1,
            "over the decode limits",
        ),
        (
            "(c) documents for 10,000 invented stations",
            invented_station_attack(),
            INVENTED_STATIONS,
            "is not in the station registry",
        ),
        (
            "(d) a bucket listing flood",
            bucket_flood_attack(),
            usize::MAX,
            "bucket entries",
        ),
        (
            "(e) garbage after a valid hello",
            garbage_attack(),
            usize::MAX,
            "broke the sync protocol",
        ),
    ];
    drop(bomb);
    for (attack, bytes, refusals_expected, reason) in attacks {
        let wire_bytes = bytes.len();
        let answers = runtime.block_on(rogue_link(&rogue, township.quic, bytes, |answers| {
            answers.refusals.len() >= refusals_expected
        }));
        if refusals_expected != usize::MAX {
            assert_eq!(
                answers.refusals.len(),
                refusals_expected,
                "{attack}: every document refused, the rogue told ({wire_bytes} bytes sent; closed: {:?})",
                answers.goodbye
            );
            assert!(
                answers.refusals.iter().all(|(_, why)| why.contains(reason)),
                "{attack}: refused for another reason: {:?}",
                answers
                    .refusals
                    .iter()
                    .find(|(_, why)| !why.contains(reason))
            );
        } else {
            assert!(
                answers.goodbye.is_some(),
                "{attack}: the township closes the link and says why"
            );
        }
        eprintln!(
            "{attack}: {wire_bytes} bytes sent, {} refusals, closed: {:?}",
            answers.refusals.len(),
            answers.goodbye
        );
        for node in [&township, &county] {
            alive(node).unwrap_or_else(|e| panic!("{attack}: {e}"));
        }
        let status = rogue_status_after(&township);
        // A refused document is kept as the last refusal; a closed session
        // as the last error.
        let field = if refusals_expected == usize::MAX {
            "last_error"
        } else {
            "last_refused"
        };
        let said = status[field].as_str().unwrap_or_default();
        assert!(
            said.contains(reason),
            "{attack}: the township's status says {status}"
        );
        honest_activity_reaches_the_county(attack);
        for (node, before) in [&township, &county].into_iter().zip(rss_before) {
            let grown = rss_bytes(node).saturating_sub(before);
            eprintln!("{attack}: {} grew by {} KiB", node.station, grown >> 10);
            assert!(
                grown < RSS_GROWTH_MAX_BYTES,
                "{attack}: {} grew by {} MiB",
                node.station,
                grown >> 20
            );
        }
        if attack.starts_with("(c)") {
            for node in [&township, &county] {
                let invented: Vec<String> = node
                    .documents()
                    .unwrap()
                    .into_keys()
                    .filter(|id| id.contains("xh/t1/v1/s"))
                    .collect();
                assert!(
                    invented.is_empty(),
                    "{attack}: {} holds {invented:?}",
                    node.station
                );
            }
            let intake = &status["intake"];
            assert_eq!(
                intake["refused_unregistered"].as_u64(),
                Some(INVENTED_STATIONS as u64),
                "{attack}: counted on the status page: {status}"
            );
        }
    }

    // The county technician's view at the township names the rogue and why.
    let table = civsync(&[
        "status",
        "--api",
        &format!("http://{}", township.api),
        "--data-dir",
        &township.dir.to_string_lossy(),
    ])
    .unwrap();
    assert!(table.lines().any(|l| l.starts_with("xh/t1/v1 ")), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("xh/t1/v1: today")
            && l.contains(&format!("{INVENTED_STATIONS} for unregistered stations"))
            && l.contains("not in the station registry")),
        "{table}"
    );
    assert!(
        table.lines().any(
            |l| l.starts_with("xh/t1/v1: last error:") && l.contains("broke the sync protocol")
        ),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("xh/t1/v1: last refused:") && l.contains("xh/t1/v1/s")),
        "{table}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
}
