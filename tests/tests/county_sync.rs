//! A county syncing over real QUIC on 127.0.0.1: every node a `civsync run`
//! process with a certificate from a county CA made for the test.
//!
//! What must hold, whatever the links do:
//! - every record a village acknowledged reaches the county, whether the
//!   village's township was down or its link cut while it recorded, or the
//!   township was SIGKILLed in the middle of relaying it;
//! - afterwards every replica of every document has the same heads;
//! - a village holds only its own documents and its ancestors' (never a
//!   neighbour's roster or activities);
//! - a node certified by another CA gets nothing in, and says why;
//! - a certified village that forges writes to documents it may not write is
//!   refused, and nothing of the forgery is applied anywhere.

use civsync_node::net::relay::Relay;
use civsync_tests::{
    certified, civsync, describe_nodes, pki_init, replicas_agree, wait_until, TestNode,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// A fixed past month, so no record is ever "in the future".
const MONTH: &str = "2025-06";
/// Longest wait for records to reach the county and replicas to agree.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

type Keys = civsync_tests::ActivityKeys;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime for the relay")
}

/// Record `count` activities at `village` with ids `<prefix>-<n>`; every one
/// must be acknowledged. Returns their (station, id) keys.
fn record(village: &TestNode, prefix: &str, count: usize, volunteers: &[String]) -> Keys {
    (0..count)
        .map(|n| {
            let id = format!("{prefix}-{n}");
            let date = format!("{MONTH}-{:02}", 1 + n % 28);
            village
                .record_activity(&id, &date, volunteers)
                .unwrap_or_else(|e| panic!("{e}"));
            (village.station.clone(), id)
        })
        .collect()
}

/// Wait until `node` lists every key of `expected` for the month.
fn wait_for_records(
    node: &TestNode,
    expected: &Keys,
    what: &str,
    everyone: &[&TestNode],
) -> Duration {
    civsync_tests::wait_for_records(node, MONTH, expected, CONVERGE_TIMEOUT, what, everyone)
}

/// Wait until every replica agrees and `county` holds every document any
/// node holds (all are in the county's scope).
fn wait_converged(county: &TestNode, nodes: &[&TestNode]) -> Duration {
    wait_until(CONVERGE_TIMEOUT, || {
        replicas_agree(nodes)?;
        let at_county: BTreeSet<String> = county
            .documents()
            .map_err(|e| e.to_string())?
            .into_keys()
            .collect();
        for node in nodes {
            let held = node.documents().map_err(|e| e.to_string())?;
            let missing: Vec<_> = held.keys().filter(|id| !at_county.contains(*id)).collect();
            if !missing.is_empty() {
                return Err(format!(
                    "the county lacks {missing:?} held by {}",
                    node.station
                ));
            }
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("replicas did not converge: {e}\n{}", describe_nodes(nodes)))
}

/// The owner station of a document id (`kind:owner[:rest]`).
fn owner_of(document: &str) -> &str {
    document
        .split(':')
        .nth(1)
        .expect("document ids have an owner")
}

fn is_ancestor_or_self(ancestor: &str, station: &str) -> bool {
    station == ancestor || station.starts_with(&format!("{ancestor}/"))
}

/// A village holds its own documents and its ancestors' documents that flow
/// down (reference data) — never a sibling's or a cousin's.
fn assert_village_scope(village: &TestNode) {
    let documents = village.documents().expect("documents of a village");
    assert!(
        documents.keys().any(|d| owner_of(d) == village.station),
        "{} holds none of its own documents: {documents:?}",
        village.station
    );
    for document in documents.keys() {
        let owner = owner_of(document);
        let own = owner == village.station;
        let ancestors_reference =
            document.starts_with("reference:") && is_ancestor_or_self(owner, &village.station);
        assert!(
            own || ancestors_reference,
            "{} holds {document}, which is neither its own nor an ancestor's reference document",
            village.station
        );
    }
}

/// Ports tried for the relay before the test gives up.
const RELAY_PORT_TRIES: usize = 5;

/// (a) + (b): townships down and links cut while villages record; every
/// acknowledged record reaches the county, every replica converges, and no
/// village holds anything outside its scope.
#[test]
fn county_receives_every_record_through_outage_and_cut() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("county-ca");
    pki_init(&ca, "xh").unwrap();
    let rt = runtime();

    let mut county = certified(dir.path(), &ca, "xh", "county", None);
    let mut t1 = certified(dir.path(), &ca, "xh/t1", "township", Some(county.quic));
    let mut t2 = certified(dir.path(), &ca, "xh/t2", "township", Some(county.quic));
    // A harness port: one bound to 0 here could take the port of a node
    // initialised but not started yet. A port found free can still be taken
    // by another process before the relay binds it (seen once in CI), so a
    // taken one is given up for the next, a bounded number of times.
    let relay = (0..RELAY_PORT_TRIES)
        .find_map(|_| {
            rt.block_on(Relay::start(civsync_tests::free_udp_addr(), t2.quic))
                .map_err(|error| eprintln!("relay port taken, trying another: {error}"))
                .ok()
        })
        .expect("start the relay in front of xh/t2");
    let mut v1 = certified(dir.path(), &ca, "xh/t1/v1", "village", Some(t1.quic));
    let mut v2 = certified(dir.path(), &ca, "xh/t1/v2", "village", Some(t1.quic));
    let mut v3 = certified(dir.path(), &ca, "xh/t2/v3", "village", Some(t2.quic));
    // v4 reaches its township only through the relay, which the test cuts.
    let mut v4 = certified(dir.path(), &ca, "xh/t2/v4", "village", Some(relay.listen));
    for node in [
        &mut county,
        &mut t1,
        &mut t2,
        &mut v1,
        &mut v2,
        &mut v3,
        &mut v4,
    ] {
        node.start().unwrap();
    }

    // Everyone connected: each village registers two volunteers and records.
    let mut acknowledged = Keys::new();
    let mut volunteers = BTreeMap::new();
    for (index, village) in [&v1, &v2, &v3, &v4].into_iter().enumerate() {
        let numbers: Vec<String> = (0..2)
            .map(|n| village.register_volunteer(index as u64 * 100 + n).unwrap())
            .collect();
        acknowledged.extend(record(village, &format!("on{index}"), 3, &numbers));
        volunteers.insert(village.station.clone(), numbers);
    }
    let took = wait_for_records(
        &county,
        &acknowledged,
        "records made while connected",
        &[&county, &t1, &t2, &v1, &v2, &v3, &v4],
    );
    println!(
        "connected: {} records at the county in {:.1} s",
        acknowledged.len(),
        took.as_secs_f64()
    );

    // xh/t1 is stopped: v1 records with its parent gone. v4's link is cut:
    // it records with its parent up but unreachable.
    t1.stop().unwrap();
    relay.set_cut(true);
    let offline_v1 = record(&v1, "parent-down", 4, &volunteers["xh/t1/v1"]);
    let offline_v4 = record(&v4, "cut", 4, &volunteers["xh/t2/v4"]);
    v1.register_volunteer(7).unwrap();
    v4.register_volunteer(307).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let at_county = county.activity_keys(MONTH, true).unwrap();
    assert!(
        offline_v1.is_disjoint(&at_county) && offline_v4.is_disjoint(&at_county),
        "the county saw records made offline before the links came back: the outage did not hold"
    );
    acknowledged.extend(offline_v1);
    acknowledged.extend(offline_v4);

    // Heal: the township comes back, the cable is mended.
    t1.start().unwrap();
    relay.set_cut(false);
    let took = wait_for_records(
        &county,
        &acknowledged,
        "records made offline",
        &[&county, &t1, &t2, &v1, &v2, &v3, &v4],
    );
    println!(
        "healed: all {} records at the county {:.1} s after the heal",
        acknowledged.len(),
        took.as_secs_f64()
    );
    let present = county.activity_keys(MONTH, true).unwrap();
    assert_eq!(
        present, acknowledged,
        "the county lists records nobody acknowledged"
    );
    for (township, villages) in [
        (&t1, ["xh/t1/v1", "xh/t1/v2"]),
        (&t2, ["xh/t2/v3", "xh/t2/v4"]),
    ] {
        let expected: Keys = acknowledged
            .iter()
            .filter(|(s, _)| villages.contains(&s.as_str()))
            .cloned()
            .collect();
        wait_for_records(
            township,
            &expected,
            "township subtree",
            &[&county, &t1, &t2, &v1, &v2, &v3, &v4],
        );
    }
    let nodes = [&county, &t1, &t2, &v1, &v2, &v3, &v4];
    let took = wait_converged(&county, &nodes);
    println!(
        "converged: every replica equal {:.1} s later",
        took.as_secs_f64()
    );

    // Volunteers registered offline reached the county too.
    for (village, count) in [("xh/t1/v1", 3), ("xh/t2/v4", 3), ("xh/t1/v2", 2)] {
        let listed = county
            .get(&format!("volunteers?station={village}"))
            .unwrap();
        assert_eq!(
            listed.as_array().map(Vec::len),
            Some(count),
            "volunteers of {village} at the county: {listed}"
        );
    }

    // The township approves v1's month; the decision syncs up to the county,
    // which also sees how fresh each village is. A village may not decide.
    let (status, decision) = t1
        .post(
            "approvals",
            &serde_json::json!({"station": "xh/t1/v1", "month": MONTH, "decision": "approve"}),
        )
        .unwrap();
    assert_eq!(status, 201, "{decision}");
    let (status, refused) = v1
        .post(
            "approvals",
            &serde_json::json!({"station": "xh/t1", "month": MONTH, "decision": "approve"}),
        )
        .unwrap();
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (403, Some("station"))
    );
    let took = wait_until(CONVERGE_TIMEOUT, || {
        let listed = county
            .get(&format!("approvals?station=xh/t1/v1&month={MONTH}"))
            .map_err(|e| e.to_string())?;
        let v1_line = &listed[0];
        if v1_line["state"] == "approved" && v1_line["decision"]["by"] == "xh/t1" {
            Ok(())
        } else {
            Err(format!("county sees {v1_line}"))
        }
    })
    .unwrap_or_else(|e| panic!("the approval never reached the county: {e}"));
    println!(
        "approval at the county {:.1} s after it was made",
        took.as_secs_f64()
    );
    let freshness = county.get("freshness").unwrap();
    let village_line = freshness["stations"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["station"] == "xh/t1/v1").cloned())
        .unwrap_or_else(|| panic!("xh/t1/v1 missing from {freshness}"));
    assert_eq!(village_line["quiet"], false, "{village_line}");
    assert!(
        village_line["newest_change_ms"].as_i64().unwrap_or(0) > 1_700_000_000_000,
        "the village's change times reached the county: {village_line}"
    );
    // The clerk's view of both, through the CLI.
    let api = format!("http://{}", county.api);
    let county_dir = county.dir.to_string_lossy().into_owned();
    let table = civsync(&[
        "approvals",
        "--api",
        &api,
        "--data-dir",
        &county_dir,
        "--station",
        "xh/t1",
        "--month",
        MONTH,
    ])
    .unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("xh/t1/v1 ") && l.contains("approved") && l.contains("xh/t1 ")),
        "{table}"
    );
    let table = civsync(&["freshness", "--api", &api, "--data-dir", &county_dir]).unwrap();
    assert!(table.starts_with("as of "), "{table}");
    assert!(table.lines().any(|l| l.starts_with("xh/t2/v4 ")), "{table}");

    // (b) scope: villages hold only their own and their ancestors' reference data.
    for village in [&v1, &v2, &v3, &v4] {
        assert_village_scope(village);
    }
    relay.stop();
    for node in [
        &mut v4,
        &mut v3,
        &mut v2,
        &mut v1,
        &mut t2,
        &mut t1,
        &mut county,
    ] {
        node.stop().unwrap();
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}

/// (c) A village certified by another CA (same county id) is refused by the
/// real township: nothing of it gets in, and it reports why.
#[test]
fn node_of_a_foreign_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, foreign_ca) = (dir.path().join("county-ca"), dir.path().join("foreign-ca"));
    pki_init(&ca, "xh").unwrap();
    pki_init(&foreign_ca, "xh").unwrap();
    let mut t1 = certified(dir.path(), &ca, "xh/t1", "township", None);
    let mut foreign = certified(
        dir.path(),
        &foreign_ca,
        "xh/t1/v9",
        "village",
        Some(t1.quic),
    );
    t1.start().unwrap();
    foreign.start().unwrap();
    let number = foreign.register_volunteer(9).unwrap();
    foreign
        .record_activity("foreign-0", &format!("{MONTH}-03"), &[number])
        .unwrap();
    assert!(
        !foreign.documents().unwrap().is_empty(),
        "the foreign village holds its own records"
    );

    // The foreign village must have failed to connect at least once, with a reason.
    let parent = wait_until(Duration::from_secs(20), || {
        let status = foreign.peer_status("xh/t1").map_err(|e| e.to_string())?;
        match status {
            Some(s)
                if s["connect_failures"].as_u64().unwrap_or(0) >= 2
                    && s["last_error"].is_string() =>
            {
                Ok(())
            }
            other => Err(format!("status of the parent: {other:?}")),
        }
    })
    .and_then(|_| foreign.peer_status("xh/t1").map_err(|e| e.to_string()))
    .unwrap_or_else(|e| panic!("no refusal recorded: {e}\n{}", foreign.log()))
    .expect("parent status");
    assert_eq!(
        parent["connected"], false,
        "the foreign village is connected: {parent}"
    );
    assert_eq!(
        parent["sessions"].as_u64(),
        Some(0),
        "a session was held with a foreign node: {parent}"
    );
    println!("foreign village's view of its parent: {parent}");

    // The township never held anything of the foreign village's.
    let leaked: Vec<String> = t1
        .documents()
        .unwrap()
        .into_keys()
        .filter(|d| owner_of(d).starts_with("xh/t1/v9"))
        .collect();
    assert!(
        leaked.is_empty(),
        "the township took documents from a foreign node: {leaked:?}"
    );
    let township_view = t1.peer_status("xh/t1/v9").unwrap();
    assert!(
        township_view
            .as_ref()
            .is_none_or(|s| s["connected"] == false && s["sessions"].as_u64() == Some(0)),
        "the township holds a session with the foreign node: {township_view:?}"
    );
    foreign.stop().unwrap();
    t1.stop().unwrap();
}

/// (d) SIGKILL of a township while it relays a stream of records upward
/// loses nothing: after restarts the county holds all of them.
#[test]
fn township_killed_mid_sync_loses_nothing() {
    const ACTIVITIES: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("county-ca");
    pki_init(&ca, "xh").unwrap();
    let mut county = certified(dir.path(), &ca, "xh", "county", None);
    let mut t1 = certified(dir.path(), &ca, "xh/t1", "township", Some(county.quic));
    let mut v1 = certified(dir.path(), &ca, "xh/t1/v1", "village", Some(t1.quic));
    for node in [&mut county, &mut t1, &mut v1] {
        node.start().unwrap();
    }
    let number = v1.register_volunteer(1).unwrap();
    wait_until(CONVERGE_TIMEOUT, || {
        match county.get("volunteers?station=xh/t1/v1") {
            Ok(v) if v.as_array().is_some_and(|a| a.len() == 1) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .expect("the first volunteer reaches the county");

    // Record while the township relays; SIGKILL it twice along the way.
    let mut acknowledged = Keys::new();
    let mut at_county_when_killed = Vec::new();
    for n in 0..ACTIVITIES {
        let id = format!("k-{n}");
        v1.record_activity(
            &id,
            &format!("{MONTH}-{:02}", 1 + n % 28),
            std::slice::from_ref(&number),
        )
        .unwrap();
        acknowledged.insert((v1.station.clone(), id));
        if n == ACTIVITIES / 3 || n == 2 * ACTIVITIES / 3 {
            t1.kill();
            let at_county = county.activity_keys(MONTH, true).unwrap().len();
            at_county_when_killed.push((at_county, acknowledged.len()));
            t1.start().unwrap();
        }
    }
    println!("(county held, village acknowledged) at the kills: {at_county_when_killed:?}");
    assert!(
        at_county_when_killed
            .iter()
            .any(|&(held, acked)| held < acked),
        "the kills came after everything was relayed; they tested nothing"
    );
    let took = wait_for_records(
        &county,
        &acknowledged,
        "records relayed through a killed township",
        &[&county, &t1, &v1],
    );
    println!(
        "all {ACTIVITIES} records at the county {:.1} s after the last write",
        took.as_secs_f64()
    );
    assert_eq!(county.activity_keys(MONTH, true).unwrap(), acknowledged);
    wait_converged(&county, &[&county, &t1, &v1]);
    for node in [&mut v1, &mut t1, &mut county] {
        node.stop().unwrap();
    }
}

/// A forged Automerge sync message for `document` holding one change made
/// under `writer`'s actor: the message a peer sends once it knows the
/// receiver lacks the change (found by syncing with an empty stand-in).
fn forged_sync_message(writer: &str) -> Vec<u8> {
    use automerge::sync::{State, SyncDoc};
    use automerge::transaction::Transactable;
    let writer = civsync_protocol::StationId::parse(writer).unwrap();
    let mut forged = automerge::AutoCommit::new()
        .with_actor(civsync_protocol::identity::actor::actor_for(&writer, 1));
    forged
        .put(automerge::ROOT, "forged_by", writer.as_str())
        .unwrap();
    let mut empty = automerge::AutoCommit::new();
    let (mut forged_state, mut empty_state) = (State::new(), State::new());
    for _ in 0..8 {
        if let Some(message) = forged.sync().generate_sync_message(&mut forged_state) {
            if message.changes != Vec::<Vec<u8>>::new().into() {
                return message.encode();
            }
            empty
                .sync()
                .receive_sync_message(&mut empty_state, message)
                .unwrap();
        }
        if let Some(message) = empty.sync().generate_sync_message(&mut empty_state) {
            forged
                .sync()
                .receive_sync_message(&mut forged_state, message)
                .unwrap();
        }
    }
    panic!("automerge never offered the forged change");
}

/// Connect to `township` with v1's real certificate, say hello, send a
/// forged sync message for each document, and collect the township's
/// refusals (document → reason) until every document was refused or
/// `timeout` passes.
async fn rogue_session(
    v1_pki: &Path,
    township: std::net::SocketAddr,
    forgeries: &[(civsync_protocol::DocumentId, &str)],
    timeout: Duration,
) -> (
    BTreeMap<String, String>,
    civsync_node::net::transport::PeerLink,
    civsync_node::net::transport::NodeEndpoint,
) {
    use civsync_protocol::sync::wire::{encode_frame, FrameDecoder, Message, VersionRange};
    let identity = civsync_node::net::pki::NodeIdentity::load(v1_pki).expect("v1's certificate");
    let endpoint =
        civsync_node::net::transport::NodeEndpoint::bind(civsync_tests::free_udp_addr(), &identity)
            .expect("bind");
    let expected = civsync_protocol::StationId::parse("xh/t1").unwrap();
    let mut link = endpoint
        .connect(township, Some(&expected))
        .await
        .expect("a certified link to the township");
    let mut out = encode_frame(&Message::Hello {
        versions: VersionRange::OURS,
        station: identity.station().clone(),
        tier: identity.tier(),
    })
    .unwrap();
    for (document, writer) in forgeries {
        let bytes = forged_sync_message(writer);
        out.extend(
            encode_frame(&Message::Sync {
                document: document.clone(),
                reply: false,
                message_bytes: bytes.len() as u32,
                offset: 0,
                chunk: bytes,
            })
            .unwrap(),
        );
    }
    link.send.write_all(&out).await.expect("send the forgeries");
    let mut refusals = BTreeMap::new();
    let mut decoder = FrameDecoder::new();
    let mut buffer = vec![0_u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + timeout;
    while refusals.len() < forgeries.len() {
        let read = tokio::time::timeout_at(deadline, link.recv.read(&mut buffer)).await;
        let Ok(Ok(Some(n))) = read else { break };
        decoder.push(&buffer[..n]);
        while let Ok(Some(message)) = decoder.pop() {
            match message {
                Message::Refused { document, reason } => {
                    refusals.insert(document.to_string(), reason);
                }
                Message::Goodbye { reason } | Message::HelloRejected { reason, .. } => {
                    refusals.insert("(closed)".into(), reason);
                }
                _ => {}
            }
        }
    }
    // The link stays open: the township's status is checked while it is.
    (refusals, link, endpoint)
}

/// (e) A certified village forging writes — to its neighbour's roster, to
/// its own roster under the neighbour's actor, and to the county's reference
/// data under the county's actor — is refused each time, and nothing of the
/// forgery is applied at the township or the county.
#[test]
fn forged_writes_of_a_village_are_refused_and_applied_nowhere() {
    use civsync_protocol::{DocumentId, StationId};
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("county-ca");
    pki_init(&ca, "xh").unwrap();
    let mut county = certified(dir.path(), &ca, "xh", "county", None);
    let mut t1 = certified(dir.path(), &ca, "xh/t1", "township", Some(county.quic));
    let mut v2 = certified(dir.path(), &ca, "xh/t1/v2", "village", Some(t1.quic));
    // v1 never runs: the rogue uses its certificate.
    let v1 = certified(dir.path(), &ca, "xh/t1/v1", "village", Some(t1.quic));
    for node in [&mut county, &mut t1, &mut v2] {
        node.start().unwrap();
    }
    v2.register_volunteer(2).unwrap();
    let neighbour_roster = "roster:xh/t1/v2".to_string();
    wait_until(CONVERGE_TIMEOUT, || {
        let at_v2 = v2.documents().map_err(|e| e.to_string())?;
        for node in [&t1, &county] {
            let held = node.documents().map_err(|e| e.to_string())?;
            if held.get(&neighbour_roster) != at_v2.get(&neighbour_roster) {
                return Err(format!("{} does not hold v2's roster yet", node.station));
            }
        }
        Ok(())
    })
    .expect("v2's roster reaches the township and the county");
    let (t1_before, county_before) = (t1.documents().unwrap(), county.documents().unwrap());

    let xh = StationId::parse("xh").unwrap();
    let forgeries = [
        (
            DocumentId::roster(&StationId::parse("xh/t1/v2").unwrap()),
            "xh/t1/v1",
        ),
        (
            DocumentId::roster(&StationId::parse("xh/t1/v1").unwrap()),
            "xh/t1/v2",
        ),
        (DocumentId::reference(&xh, "menu").unwrap(), "xh"),
    ];
    let rt = runtime();
    let (refusals, link, endpoint) = rt.block_on(rogue_session(
        &v1.dir.join("pki"),
        t1.quic,
        &forgeries,
        Duration::from_secs(15),
    ));
    println!("refusals: {refusals:#?}");
    for (document, _) in &forgeries {
        assert!(
            refusals.contains_key(&document.to_string()),
            "the township did not refuse the forged {document}: {refusals:?}\n{}",
            t1.log()
        );
    }

    // Give any wrongly applied change time to travel up, then compare.
    std::thread::sleep(Duration::from_secs(2));
    let (t1_after, county_after) = (t1.documents().unwrap(), county.documents().unwrap());
    for (document, _) in &forgeries {
        let id = document.to_string();
        assert_eq!(
            t1_after.get(&id),
            t1_before.get(&id),
            "the township's {id} changed"
        );
        assert_eq!(
            county_after.get(&id),
            county_before.get(&id),
            "the county's {id} changed"
        );
    }
    assert_eq!(
        t1_after.get(&neighbour_roster),
        v2.documents().unwrap().get(&neighbour_roster)
    );
    // Read while the rogue is still connected: a disconnect overwrites the
    // peer's last_error with "connection lost".
    let recorded = t1
        .peer_status("xh/t1/v1")
        .unwrap()
        .expect("the township lists the rogue peer");
    link.connection.close(0u32.into(), b"done");
    endpoint.close();
    let last_error = recorded["last_error"].as_str().unwrap_or_default();
    assert!(
        forgeries
            .iter()
            .any(|(d, _)| last_error.contains(&d.to_string())),
        "the township's status does not record the refusal: {recorded}"
    );
    for node in [&mut v2, &mut t1, &mut county] {
        node.stop().unwrap();
    }
}
