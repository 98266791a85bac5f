//! One unit: the session's tests, driving two sessions against each other
//! through the shared test hosts.
//!
//! Two sessions wired back to back over in-memory hosts.

use super::test_host::{DigestHost, MemoryHost};
use super::*;
use crate::identity::actor::actor_for;
use crate::identity::document_id::Month;
use crate::sync::wire::{decode_payload, FRAME_BYTES_MAX};
use proptest::prelude::*;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn tier_of(station: &StationId) -> Tier {
    match station.depth() {
        1 => Tier::County,
        2 => Tier::Township,
        _ => Tier::Village,
    }
}

struct Node<H: SyncHost> {
    session: Session,
    host: H,
    events: Vec<SessionEvent>,
}

impl<H: SyncHost> Node<H> {
    fn new(host: H, peer: &str, config: SessionConfig) -> Node<H> {
        let tier = tier_of(host.local_station());
        Node::configured_as(host, peer, tier, config)
    }

    /// A node whose configured tier is `local_tier`, whatever its
    /// certificate says; the peer is certified with the tier of its depth.
    fn configured_as(host: H, peer: &str, local_tier: Tier, config: SessionConfig) -> Node<H> {
        let local = host.local_station().clone();
        let peer = CertifiedPeer {
            tier: tier_of(&station(peer)),
            station: station(peer),
        };
        Node {
            session: Session::new(local, peer, local_tier, 0, config),
            host,
            events: Vec::new(),
        }
    }

    /// Everything the session wants to send now.
    fn drain(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(bytes) = self.session.poll_transmit(&mut self.host) {
            assert!(!bytes.is_empty());
            out.extend(bytes);
        }
        self.collect_events();
        out
    }

    fn deliver(&mut self, bytes: &[u8], chunk: usize, now_ms: u64) {
        for piece in bytes.chunks(chunk.max(1)) {
            self.session.handle_bytes(piece, now_ms, &mut self.host);
        }
        self.collect_events();
    }

    fn collect_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            self.events.push(event);
        }
    }

    fn closed_reason(&self) -> Option<&CloseReason> {
        self.events.iter().find_map(|event| match event {
            SessionEvent::Closed { reason } => Some(reason),
            _ => None,
        })
    }
}

/// Bytes each way and flights, from one pump.
#[derive(Debug, Default)]
struct Traffic {
    round_trips: usize,
    a_to_b_bytes: usize,
    b_to_a_bytes: usize,
}

const ROUND_TRIPS_MAX: usize = 10_000;

/// Exchange flights until both sides are silent. `chunk` gives the size of
/// each delivery piece.
fn pump<A: SyncHost, B: SyncHost>(
    a: &mut Node<A>,
    b: &mut Node<B>,
    mut chunk: impl FnMut() -> usize,
) -> Traffic {
    let mut traffic = Traffic::default();
    loop {
        let a_out = a.drain();
        let b_out = b.drain();
        if a_out.is_empty() && b_out.is_empty() {
            return traffic;
        }
        traffic.round_trips += 1;
        traffic.a_to_b_bytes += a_out.len();
        traffic.b_to_a_bytes += b_out.len();
        b.deliver(&a_out, chunk(), 0);
        a.deliver(&b_out, chunk(), 0);
        // In-flight bound: our own exchanges plus those the peer started.
        for node_status in [a.session.status(), b.session.status()] {
            assert!(
                node_status.documents_in_flight <= 2 * DOCUMENTS_IN_FLIGHT_MAX,
                "{node_status:?}"
            );
        }
        assert!(
            traffic.round_trips < ROUND_TRIPS_MAX,
            "sessions never went quiet"
        );
    }
}

fn memory_pair(a: &str, b: &str) -> (Node<MemoryHost>, Node<MemoryHost>) {
    (
        Node::new(MemoryHost::new(a), b, SessionConfig::default()),
        Node::new(MemoryHost::new(b), a, SessionConfig::default()),
    )
}

fn assert_converged(a: &mut Node<MemoryHost>, b: &mut Node<MemoryHost>, documents: &[DocumentId]) {
    for document in documents {
        let digest_a = a.host.heads_digest(document);
        assert!(digest_a.is_some(), "{document} missing at {}", a.host.local);
        assert_eq!(
            digest_a,
            b.host.heads_digest(document),
            "{document} differs"
        );
    }
    for node in [&a.session, &b.session] {
        let status = node.status();
        assert!(status.up_to_date, "{status:?}");
        assert_eq!(status.state, SessionState::UpToDate);
        assert_eq!(status.last_error, None);
    }
}

fn november() -> Month {
    Month::new(2026, 11).unwrap()
}

#[test]
fn divergent_replicas_converge_both_ways() {
    let (mut village, mut township) = memory_pair("xh/t1/v1", "xh/t1");
    let roster = DocumentId::roster(&station("xh/t1/v1"));
    let activities = DocumentId::activities(&station("xh/t1/v1"), november());
    let menu = DocumentId::reference(&station("xh/t1"), "menu").unwrap();
    let other_village = DocumentId::roster(&station("xh/t1/v2"));
    // Both sides edited the village roster while apart.
    village.host.edit(&roster, "v-1", "Wang Fang");
    let mut base = village.host.documents[&roster].clone();
    township.host.documents.insert(
        roster.clone(),
        base.fork().with_actor(township.host.actor.clone()),
    );
    village.host.edit(&roster, "v-2", "Li Wei");
    township.host.edit(&roster, "note", "checked by township");
    village.host.edit(&activities, "a-1", "lecture");
    township.host.edit(&menu, "m-1", "health check");
    township.host.edit(&other_village, "v-9", "not for v1");

    let traffic = pump(&mut village, &mut township, || usize::MAX);
    assert_converged(
        &mut village,
        &mut township,
        &[roster.clone(), activities.clone(), menu.clone()],
    );
    assert_eq!(
        village.host.value(&roster, "note").as_deref(),
        Some("checked by township")
    );
    assert_eq!(
        township.host.value(&roster, "v-2").as_deref(),
        Some("Li Wei")
    );
    assert_eq!(
        township.host.value(&activities, "a-1").as_deref(),
        Some("lecture")
    );
    assert_eq!(
        village.host.value(&menu, "m-1").as_deref(),
        Some("health check")
    );
    assert!(
        !village.host.documents.contains_key(&other_village),
        "a sibling's roster never flows sideways"
    );
    assert!(
        traffic.round_trips >= 4,
        "digest descent then sync: {traffic:?}"
    );
    let status = township.session.status();
    assert!(status.changes_applied >= 2, "{status:?}");
    assert!(township.events.iter().any(|event| matches!(event,
        SessionEvent::DocumentUpdated { document, .. } if *document == activities)));
    assert!(village
        .events
        .iter()
        .any(|event| matches!(event, SessionEvent::UpToDate { .. })));
}

#[test]
fn an_empty_node_gets_everything_on_cold_sync() {
    let (mut township, mut county) = memory_pair("xh/t1", "xh");
    let mut documents = Vec::new();
    for village in 0..30 {
        let roster = DocumentId::roster(&station(&format!("xh/t1/v{village}")));
        township
            .host
            .edit(&roster, "v-1", &format!("volunteer of village {village}"));
        documents.push(roster);
    }
    pump(&mut township, &mut county, || usize::MAX);
    assert_converged(&mut township, &mut county, &documents);
    assert_eq!(county.session.status().changes_applied, 30);
    assert_eq!(
        county.session.status().documents_shared,
        0,
        "the county started empty"
    );
}

#[test]
fn a_cold_sync_counts_the_documents_received_against_the_peers_announced_count() {
    let (mut township, mut county) = memory_pair("xh/t1", "xh");
    let mut documents = Vec::new();
    for village in 0..12 {
        let roster = DocumentId::roster(&station(&format!("xh/t1/v{village}")));
        township.host.edit(&roster, "v-1", "someone");
        documents.push(roster);
    }
    assert_eq!(
        county.session.status().peer_documents,
        None,
        "not heard yet"
    );
    pump(&mut township, &mut county, || usize::MAX);
    assert_converged(&mut township, &mut county, &documents);
    let status = county.session.status();
    assert_eq!(status.peer_documents, Some(12));
    assert_eq!(status.documents_received, 12);
    assert!(status.bytes_received > 0);
    // The township got nothing new: it counts none received.
    let status = township.session.status();
    assert_eq!(
        (status.peer_documents, status.documents_received),
        (Some(0), 0)
    );
}

#[test]
fn reconnect_after_sync_is_one_round_trip() {
    let (mut village, mut township) = memory_pair("xh/t1/v1", "xh/t1");
    let roster = DocumentId::roster(&station("xh/t1/v1"));
    village.host.edit(&roster, "v-1", "Wang Fang");
    pump(&mut village, &mut township, || usize::MAX);
    village.host.peer_disconnected(&station("xh/t1"));
    township.host.peer_disconnected(&station("xh/t1/v1"));

    let (v_host, t_host) = (village.host, township.host);
    let mut village = Node::new(v_host, "xh/t1", SessionConfig::default());
    let mut township = Node::new(t_host, "xh/t1/v1", SessionConfig::default());
    let calls_before = village.host.calls;
    let traffic = pump(&mut village, &mut township, || usize::MAX);
    assert_eq!(traffic.round_trips, 1, "{traffic:?}");
    assert_eq!(
        village.host.calls.generate, calls_before.generate,
        "no document was synced"
    );
    assert_converged(&mut village, &mut township, &[roster]);
}

/// Pseudo-random text (xorshift), so compression cannot shrink it.
fn noise(bytes: usize, seed: u64) -> String {
    let mut state = seed | 1;
    (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (b'a' + (state % 26) as u8) as char
        })
        .collect()
}

#[test]
fn a_document_of_several_megabytes_is_fragmented_and_reassembled() {
    let (mut village, mut township) = memory_pair("xh/t1/v1", "xh/t1");
    let roster = DocumentId::roster(&station("xh/t1/v1"));
    for part in 0..6 {
        village.host.edit(
            &roster,
            &format!("photo-{part}"),
            &noise(512 * 1024, part + 1),
        );
    }
    let traffic = pump(&mut village, &mut township, || 100_000);
    assert!(traffic.a_to_b_bytes > 3 * FRAME_BYTES_MAX, "{traffic:?}");
    assert_converged(&mut village, &mut township, std::slice::from_ref(&roster));
    assert_eq!(
        township.host.value(&roster, "photo-5"),
        village.host.value(&roster, "photo-5")
    );
    assert!(township.session.status().frames_received > 3);
}

#[test]
fn a_local_commit_is_pushed_live_after_up_to_date() {
    let (mut village, mut township) = memory_pair("xh/t1/v1", "xh/t1");
    let activities = DocumentId::activities(&station("xh/t1/v1"), november());
    village.host.edit(&activities, "a-1", "lecture");
    pump(&mut village, &mut township, || usize::MAX);
    assert!(village.session.status().up_to_date);

    village.host.edit(&activities, "a-2", "film night");
    village
        .session
        .document_changed(&activities, &mut village.host);
    assert!(!village.session.status().up_to_date);
    assert_eq!(village.session.status().state, SessionState::Syncing);
    township.events.clear();
    let traffic = pump(&mut village, &mut township, || usize::MAX);
    assert!(traffic.round_trips <= 3, "{traffic:?}");
    assert_eq!(
        township.host.value(&activities, "a-2").as_deref(),
        Some("film night")
    );
    assert_converged(&mut village, &mut township, &[activities]);

    // A document outside the peer's scope is not pushed.
    let sibling = DocumentId::roster(&station("xh/t2/v5"));
    village
        .session
        .document_changed(&sibling, &mut village.host);
    assert!(village.session.status().up_to_date);
    assert_eq!(village.session.poll_transmit(&mut village.host), None);
}

#[test]
fn the_first_flight_carries_hello_and_root_before_any_input() {
    let (mut village, _) = memory_pair("xh/t1/v1", "xh/t1");
    let bytes = village.session.poll_transmit(&mut village.host).unwrap();
    let mut decoder = FrameDecoder::new();
    decoder.push(&bytes);
    assert!(matches!(decoder.pop(), Ok(Some(Message::Hello { .. }))));
    assert!(matches!(
        decoder.pop(),
        Ok(Some(Message::ScopeRoot { documents: 0, .. }))
    ));
    assert_eq!(decoder.pop(), Ok(None));
}

#[test]
fn an_unauthorised_change_is_refused_nothing_applied_and_the_peer_told() {
    let (mut village, mut township) = memory_pair("xh/t1/v1", "xh/t1");
    let roster = DocumentId::roster(&station("xh/t1/v1"));
    let activities = DocumentId::activities(&station("xh/t1/v1"), november());
    village.host.edit(&roster, "v-1", "Wang Fang");
    // The village carries a change signed as its neighbour: refused.
    village
        .host
        .edit_as(&roster, actor_for(&station("xh/t1/v2"), 3), "v-2", "forged");
    village.host.edit(&activities, "a-1", "lecture");

    pump(&mut village, &mut township, || usize::MAX);
    assert!(
        !township.host.documents.contains_key(&roster),
        "nothing of the roster applied"
    );
    assert_eq!(
        township.host.value(&activities, "a-1").as_deref(),
        Some("lecture"),
        "other documents still sync"
    );
    assert!(township.events.iter().any(|event| matches!(event,
        SessionEvent::RefusedByUs { document, reason } if *document == roster && reason.contains("xh/t1/v2"))));
    assert!(village.events.iter().any(|event| matches!(event,
        SessionEvent::RefusedByPeer { document, .. } if *document == roster)));
    let village_status = village.session.status();
    assert!(village_status
        .last_error
        .as_deref()
        .unwrap()
        .contains("refused document roster:xh/t1/v1"));
    assert_eq!(village_status.documents_refused, 1);
    assert!(township.host.calls.reset >= 1 && village.host.calls.reset >= 1);
    assert!(!village.session.is_closed() && !township.session.is_closed());

    // Not retried in this session, even when the village changes it again.
    let receives = township.host.calls.receive;
    village.host.edit(&roster, "v-3", "Zhang San");
    village.session.document_changed(&roster, &mut village.host);
    pump(&mut village, &mut township, || usize::MAX);
    assert_eq!(township.host.calls.receive, receives);
}

#[test]
fn a_hello_claiming_another_station_is_refused_on_both_sides() {
    // The township's certificate says xh/t1, but it is configured as xh/t2.
    let mut village = Node::new(
        MemoryHost::new("xh/t1/v1"),
        "xh/t1",
        SessionConfig::default(),
    );
    let mut impostor = Node::new(
        MemoryHost::new("xh/t2"),
        "xh/t1/v1",
        SessionConfig::default(),
    );
    pump(&mut village, &mut impostor, || 7);
    let reason = village.closed_reason().expect("village closed").clone();
    assert!(matches!(reason, CloseReason::HelloRejectedByUs { .. }));
    assert!(reason.to_string().contains("xh/t2") && reason.to_string().contains("certificate"));
    let peer_reason = impostor.closed_reason().expect("impostor told").clone();
    assert!(
        matches!(&peer_reason, CloseReason::HelloRejectedByPeer { reason } if reason.contains("xh/t2"))
    );
    assert!(village.session.status().last_error.is_some());
    assert_eq!(village.session.status().state, SessionState::Closed);
}

#[test]
fn a_hello_claiming_another_tier_than_the_certificate_is_refused_on_both_sides() {
    // The township's certificate says township, but it is configured as a county.
    let mut village = Node::new(
        MemoryHost::new("xh/t1/v1"),
        "xh/t1",
        SessionConfig::default(),
    );
    let mut misconfigured = Node::configured_as(
        MemoryHost::new("xh/t1"),
        "xh/t1/v1",
        Tier::County,
        SessionConfig::default(),
    );
    let roster = DocumentId::roster(&station("xh/t1/v1"));
    village.host.edit(&roster, "name", "v1");
    pump(&mut village, &mut misconfigured, || 5);

    let reason = village.closed_reason().expect("village closed").to_string();
    assert!(
        matches!(
            village.closed_reason(),
            Some(CloseReason::HelloRejectedByUs { .. })
        ),
        "{reason}"
    );
    assert!(
        reason.contains("county node") && reason.contains("certificate is for a township node"),
        "{reason}"
    );
    let told = misconfigured.closed_reason().expect("peer told").clone();
    assert!(
        matches!(&told, CloseReason::HelloRejectedByPeer { reason } if reason.contains("certificate is for a township node")),
        "{told:?}"
    );
    for node in [&village.session, &misconfigured.session] {
        assert_eq!(node.status().state, SessionState::Closed);
        assert!(node.status().last_error.is_some());
    }
    // Nothing was exchanged past the hellos.
    assert_eq!(misconfigured.host.heads_digest(&roster), None);
    assert!(!village
        .events
        .iter()
        .any(|event| matches!(event, SessionEvent::Connected { .. })));
}

fn frame(message: &Message) -> Vec<u8> {
    encode_frame(message).unwrap()
}

fn hello(from: &str) -> Message {
    Message::Hello {
        versions: VersionRange::OURS,
        station: station(from),
        tier: Tier::Township,
    }
}

fn first_frame_sent(node: &mut Node<MemoryHost>) -> Vec<Message> {
    let bytes = node.drain();
    let mut decoder = FrameDecoder::new();
    decoder.push(&bytes);
    let mut out = Vec::new();
    while let Ok(Some(message)) = decoder.pop() {
        out.push(message);
    }
    out
}

#[test]
fn a_hello_of_a_version_we_do_not_speak_is_refused_with_the_versions_named() {
    let mut village = Node::new(
        MemoryHost::new("xh/t1/v1"),
        "xh/t1",
        SessionConfig::default(),
    );
    // What a version-2 node sends first: its one version, then its station.
    let older = crate::sync::wire::PROTOCOL_VERSION_MIN - 1;
    let mut payload = vec![crate::sync::wire::message_type::HELLO];
    payload.extend(postcard::to_allocvec(&older).unwrap());
    payload.extend(postcard::to_allocvec(&"xh/t1").unwrap());
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend(payload);
    village.deliver(&bytes, 3, 5);
    let reason = village.closed_reason().unwrap().to_string();
    assert!(reason.contains(&format!("version {older}")), "{reason}");
    assert!(
        reason.contains(&format!("versions 3 to {PROTOCOL_VERSION}")),
        "{reason}"
    );
    let sent = first_frame_sent(&mut village);
    assert!(
        matches!(sent.last(), Some(Message::HelloRejected { reason, .. }) if reason.contains("release"))
    );
    assert_eq!(village.session.status().protocol_version, None);
}

#[test]
fn a_newer_peer_that_still_speaks_our_version_syncs_at_our_version() {
    let mut village = Node::new(
        MemoryHost::new("xh/t1/v1"),
        "xh/t1",
        SessionConfig::default(),
    );
    let newer = frame(&Message::Hello {
        versions: VersionRange {
            min: PROTOCOL_VERSION,
            max: PROTOCOL_VERSION + 3,
        },
        station: station("xh/t1"),
        tier: Tier::Township,
    });
    village.deliver(&newer, 7, 5);
    assert!(
        village.closed_reason().is_none(),
        "{:?}",
        village.closed_reason()
    );
    let status = village.session.status();
    assert_eq!(status.protocol_version, Some(PROTOCOL_VERSION));
    assert_eq!(status.peer_tier, Some(Tier::Township));
}

#[test]
fn protocol_violations_close_with_a_goodbye_and_a_reason() {
    let roster = DocumentId::roster(&station("xh/t1/v1"));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            frame(&Message::SyncQuiet {
                document: roster.clone(),
            }),
            "before hello",
        ),
        (vec![0xff; 64], "exceeds the limit"),
        (
            [frame(&hello("xh/t1")), vec![0, 0, 0, 1, 99]].concat(),
            "unknown message type 99",
        ),
        (
            [frame(&hello("xh/t1")), frame(&hello("xh/t1"))].concat(),
            "second hello",
        ),
        (
            [
                frame(&hello("xh/t1")),
                frame(&Message::SyncQuiet {
                    document: roster.clone(),
                }),
            ]
            .concat(),
            "never sent",
        ),
        (
            [
                frame(&hello("xh/t1")),
                frame(&Message::BucketHashes {
                    hashes: vec![[0; 16]; 256],
                }),
            ]
            .concat(),
            "not asked for",
        ),
        (
            [
                frame(&hello("xh/t1")),
                frame(&Message::Sync {
                    document: roster.clone(),
                    reply: false,
                    message_bytes: 9,
                    offset: 4,
                    chunk: vec![1],
                }),
            ]
            .concat(),
            "without a start",
        ),
    ];
    for (bytes, expected) in cases {
        let mut village = Node::new(
            MemoryHost::new("xh/t1/v1"),
            "xh/t1",
            SessionConfig::default(),
        );
        village.deliver(&bytes, 5, 1);
        let reason = village
            .closed_reason()
            .unwrap_or_else(|| panic!("not closed for {expected:?}"))
            .to_string();
        assert!(
            reason.contains(expected),
            "{reason:?} should mention {expected:?}"
        );
        assert!(matches!(
            first_frame_sent(&mut village).last(),
            Some(Message::Goodbye { .. })
        ));
        // Closed sessions ignore further input and send nothing more.
        village.deliver(&frame(&Message::Ping { nonce: 1 }), 100, 2);
        assert_eq!(village.session.poll_transmit(&mut village.host), None);
        assert_eq!(village.session.poll_timeout(), None);
    }
}

#[test]
fn a_sync_message_for_a_document_outside_the_scope_refuses_just_that_document() {
    let mut township = Node::new(
        MemoryHost::new("xh/t1"),
        "xh/t1/v1",
        SessionConfig::default(),
    );
    let foreign = DocumentId::roster(&station("xh/t2/v1"));
    let bytes = [
        frame(&Message::Hello {
            versions: VersionRange::OURS,
            station: station("xh/t1/v1"),
            tier: Tier::Village,
        }),
        frame(&Message::Sync {
            document: foreign.clone(),
            reply: false,
            message_bytes: 2,
            offset: 0,
            chunk: vec![1, 2],
        }),
    ]
    .concat();
    township.deliver(&bytes, 4, 1);
    assert!(!township.session.is_closed());
    assert_eq!(township.host.calls.receive, 0, "never reaches the store");
    let sent = first_frame_sent(&mut township);
    assert!(sent.iter().any(
        |message| matches!(message, Message::Refused { document, .. } if *document == foreign)
    ));
    assert!(township
        .events
        .iter()
        .any(|event| matches!(event, SessionEvent::RefusedByUs { .. })));
}

#[test]
fn a_peer_listing_a_document_outside_the_scope_gets_it_refused_and_the_rest_goes_on() {
    let mut township = Node::new(
        MemoryHost::new("xh/t1"),
        "xh/t1/v1",
        SessionConfig::default(),
    );
    let foreign = DocumentId::roster(&station("xh/t2/v1"));
    let bucket = crate::sync::digest::bucket_of(&foreign);
    let mut hashes = vec![crate::sync::digest::EMPTY_BUCKET; crate::sync::digest::DIGEST_BUCKETS];
    hashes[bucket as usize] = [1; 16];
    let village = Message::Hello {
        versions: VersionRange::OURS,
        station: station("xh/t1/v1"),
        tier: Tier::Village,
    };
    let bytes = [
        frame(&village),
        frame(&Message::ScopeRoot {
            documents: 1,
            root: [2; 16],
        }),
        frame(&Message::BucketHashes { hashes }),
        frame(&Message::BucketContents {
            bucket,
            entries: vec![(foreign.clone(), [3; 16])],
            last: true,
        }),
    ]
    .concat();
    township.deliver(&bytes, 11, 1);
    let sent = first_frame_sent(&mut township);
    assert!(sent.iter().any(
        |message| matches!(message, Message::Refused { document, .. } if *document == foreign)
    ));
    assert!(!township.session.is_closed());
    let status = township.session.status();
    assert!(status.up_to_date, "{status:?}");
    assert_eq!(
        township.host.calls.generate + township.host.calls.receive,
        0
    );
}

#[test]
fn idle_sessions_time_out_and_pings_keep_them_alive() {
    let (mut village, mut township) = memory_pair("xh/t1/v1", "xh/t1");
    pump(&mut village, &mut township, || usize::MAX);
    // Time passes; both sides keep each other alive with pings.
    let mut now = 0;
    for _ in 0..20 {
        now += 10_000;
        for node in [&mut village, &mut township] {
            let deadline = node.session.poll_timeout().unwrap();
            assert!(
                deadline > now - 10_000,
                "deadline {deadline} already passed at {now}"
            );
            node.session.handle_timeout(now, &mut node.host);
        }
        let v_out = village.drain();
        let t_out = township.drain();
        township.deliver(&v_out, usize::MAX, now);
        village.deliver(&t_out, usize::MAX, now);
        let v_out = village.drain();
        let t_out = township.drain();
        township.deliver(&v_out, usize::MAX, now);
        village.deliver(&t_out, usize::MAX, now);
    }
    assert!(!village.session.is_closed() && !township.session.is_closed());
    // Then the link dies: the idle timeout closes with a reason.
    now += IDLE_TIMEOUT_MS;
    village.session.handle_timeout(now, &mut village.host);
    village.collect_events();
    assert!(matches!(
        village.closed_reason(),
        Some(CloseReason::IdleTimeout { .. })
    ));
    assert!(village
        .session
        .status()
        .last_error
        .unwrap()
        .contains("link"));
}

#[test]
fn a_driver_that_cannot_write_is_not_woken_in_a_loop() {
    let (mut village, mut township) = memory_pair("xh/t1/v1", "xh/t1");
    pump(&mut village, &mut township, || usize::MAX);
    // The driver arms its timer but never polls for bytes (writes blocked).
    let mut now = 0;
    let trickle = frame(&Message::Pong { nonce: 0 });
    for byte in &trickle[..trickle.len() - 1] {
        let deadline = village.session.poll_timeout().unwrap();
        assert!(
            deadline > now,
            "deadline {deadline} not after {now}: the driver would spin"
        );
        now = deadline;
        village.session.handle_timeout(now, &mut village.host);
        // Bytes trickling in keep the link alive even without a whole frame.
        village
            .session
            .handle_bytes(&[*byte], now, &mut village.host);
    }
    assert!(
        now > IDLE_TIMEOUT_MS,
        "the trickle outlasted the idle timeout"
    );
    assert!(!village.session.is_closed());
    let sent = first_frame_sent(&mut village);
    assert_eq!(
        sent.len(),
        1,
        "one ping waits, not one per wake-up: {sent:?}"
    );
}

#[test]
fn close_says_goodbye_and_the_peer_hears_why() {
    let (mut village, mut township) = memory_pair("xh/t1/v1", "xh/t1");
    pump(&mut village, &mut township, || usize::MAX);
    village.session.close("node shutting down");
    pump(&mut village, &mut township, || usize::MAX);
    assert!(
        matches!(township.closed_reason(), Some(CloseReason::PeerGoodbye { reason }) if reason == "node shutting down")
    );
    assert_eq!(
        township.session.status().last_error,
        None,
        "an orderly goodbye is no error"
    );
}

#[test]
fn in_flight_exchanges_stay_bounded_on_a_big_cold_sync() {
    let config = SessionConfig {
        documents_in_flight_max: 4,
        ..SessionConfig::default()
    };
    let mut township = Node::new(MemoryHost::new("xh/t1"), "xh", config.clone());
    let mut county = Node::new(MemoryHost::new("xh"), "xh/t1", config);
    let mut documents = Vec::new();
    for village in 0..40 {
        let roster = DocumentId::roster(&station(&format!("xh/t1/v{village}")));
        township.host.edit(&roster, "v-1", "someone");
        documents.push(roster);
    }
    let mut peak = 0;
    loop {
        let a = township.drain();
        let b = county.drain();
        if a.is_empty() && b.is_empty() {
            break;
        }
        county.deliver(&a, usize::MAX, 0);
        township.deliver(&b, usize::MAX, 0);
        peak = peak.max(township.session.status().documents_in_flight);
        peak = peak.max(county.session.status().documents_in_flight);
    }
    assert!(peak <= 8, "peak {peak}");
    assert!(peak >= 2, "exchanges did run in parallel: {peak}");
    assert_converged(&mut township, &mut county, &documents);
}

/// `documents` activity documents of villages under `xh/t1` (so in the scope
/// of the county and the township alike), each with a distinct digest.
fn digest_node(local: &str, peer: &str, documents: usize) -> Node<DigestHost> {
    let shared = (0..documents)
        .map(|i| {
            let (village, month) = (i % 500, i / 500);
            let month = Month::new(2020 + (month / 12) as u16, (month % 12 + 1) as u8).unwrap();
            let id = DocumentId::activities(&station(&format!("xh/t1/v{village}")), month);
            (
                id,
                crate::sync::host::heads_digest(&[automerge::ChangeHash([(i % 256) as u8; 32])]),
            )
        })
        .collect();
    Node::new(
        DigestHost {
            local: station(local),
            shared,
            calls: Default::default(),
        },
        peer,
        SessionConfig::default(),
    )
}

#[test]
fn ten_thousand_unchanged_documents_reconnect_in_one_round_trip_under_4_kib() {
    let mut county = digest_node("xh", "xh/t1", 10_000);
    let mut township = digest_node("xh/t1", "xh", 10_000);
    let traffic = pump(&mut county, &mut township, || usize::MAX);
    assert_eq!(traffic.round_trips, 1, "{traffic:?}");
    assert!(
        traffic.a_to_b_bytes <= 4096 && traffic.b_to_a_bytes <= 4096,
        "{traffic:?}"
    );
    for node in [&county.session, &township.session] {
        let status = node.status();
        assert!(status.up_to_date);
        assert_eq!(status.documents_shared, 10_000);
        assert_eq!(status.frames_sent, 2, "hello and scope root");
    }
    assert_eq!(county.host.calls.generate + county.host.calls.receive, 0);
    assert_eq!(
        township.host.calls.generate + township.host.calls.receive,
        0
    );
}

#[test]
fn one_changed_document_among_ten_thousand_is_found_by_descent() {
    let mut county = digest_node("xh", "xh/t1", 10_000);
    let mut township = digest_node("xh/t1", "xh", 10_000);
    township.host.shared[4321].1 = [0xee; 16];
    let traffic = pump(&mut county, &mut township, || usize::MAX);
    // Root, buckets, one bucket's entries, then the one document's exchange.
    assert!(traffic.round_trips <= 5, "{traffic:?}");
    assert!(traffic.a_to_b_bytes < 16 * 1024, "{traffic:?}");
    assert_eq!(
        county.host.calls.generate, 1,
        "only the changed document is synced"
    );
    assert!(county.session.status().up_to_date && township.session.status().up_to_date);
}

#[test]
fn decoded_frames_from_a_session_are_all_valid() {
    let (mut village, _) = memory_pair("xh/t1/v1", "xh/t1");
    let bytes = village.drain();
    let payload_bytes = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert!(decode_payload(&bytes[4..4 + payload_bytes]).is_ok());
}

fn arbitrary_message() -> impl Strategy<Value = Message> {
    let document = prop_oneof![
        Just(DocumentId::roster(&station("xh/t1/v1"))),
        Just(DocumentId::roster(&station("xh/t2/v1"))),
        Just(DocumentId::reference(&station("xh"), "menu").unwrap()),
    ];
    prop_oneof![
        Just(hello("xh/t1")),
        Just(hello("xh/t9")),
        any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Message::Pong { nonce }),
        (any::<u64>(), any::<[u8; 16]>())
            .prop_map(|(documents, root)| Message::ScopeRoot { documents, root }),
        any::<u8>().prop_map(|byte| Message::BucketHashes {
            hashes: vec![[byte; 16]; 256]
        }),
        (any::<u8>(), document.clone(), any::<bool>()).prop_map(|(bucket, document, last)| {
            Message::BucketContents {
                bucket,
                entries: vec![(document, [1; 16])],
                last,
            }
        }),
        (
            document.clone(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 1..40),
            0u32..3
        )
            .prop_map(|(document, reply, chunk, extra)| Message::Sync {
                document,
                reply,
                message_bytes: chunk.len() as u32 + extra,
                offset: 0,
                chunk
            }),
        document
            .clone()
            .prop_map(|document| Message::SyncQuiet { document }),
        document.prop_map(|document| Message::Refused {
            document,
            reason: "no".into()
        }),
        Just(Message::Goodbye {
            reason: "bye".into()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sessions_never_panic_on_arbitrary_frame_sequences(
        messages in proptest::collection::vec(arbitrary_message(), 0..12),
        garbage in proptest::collection::vec(any::<u8>(), 0..16),
        chunk in 1usize..50,
        times in proptest::collection::vec(0u64..200_000, 0..4),
    ) {
        let mut township = Node::new(MemoryHost::new("xh/t1"), "xh/t1/v1", SessionConfig::default());
        township.host.edit(&DocumentId::roster(&station("xh/t1/v1")), "v-1", "x");
        let mut village = Node::new(MemoryHost::new("xh/t1/v1"), "xh/t1", SessionConfig::default());
        let mut stream = Vec::new();
        for message in &messages {
            stream.extend(encode_frame(message).unwrap());
        }
        stream.extend(garbage);
        village.deliver(&stream, chunk, 1);
        for now in times {
            village.session.handle_timeout(now, &mut village.host);
        }
        let _ = village.drain();
        // Invariants hold whatever came in.
        let status = village.session.status();
        prop_assert!(status.documents_in_flight <= 2 * DOCUMENTS_IN_FLIGHT_MAX);
        if village.session.is_closed() {
            prop_assert!(village.closed_reason().is_some());
            prop_assert!(!status.up_to_date);
        }
        // And a real peer talking to a fresh village still converges.
        let mut fresh = Node::new(MemoryHost::new("xh/t1/v1"), "xh/t1", SessionConfig::default());
        pump(&mut fresh, &mut township, || 13);
    }

    #[test]
    fn sessions_converge_whatever_the_chunking(
        village_edits in proptest::collection::vec((0usize..3, "[a-z]{1,4}", "[a-z]{0,12}"), 0..8),
        township_edits in proptest::collection::vec((0usize..3, "[a-z]{1,4}", "[a-z]{0,12}"), 0..8),
        chunks in proptest::collection::vec(1usize..300, 1..20),
        pushes in proptest::collection::vec((0usize..3, "[a-z]{1,4}"), 0..4),
    ) {
        let documents = [
            DocumentId::roster(&station("xh/t1/v1")),
            DocumentId::activities(&station("xh/t1/v1"), november()),
            DocumentId::reference(&station("xh/t1"), "menu").unwrap(),
        ];
        let (mut village, mut township) = memory_pair("xh/t1/v1", "xh/t1");
        for (doc, key, value) in &village_edits {
            // Villages cannot write the township's menu.
            if *doc < 2 {
                village.host.edit(&documents[*doc], key, value);
            }
        }
        for (doc, key, value) in &township_edits {
            township.host.edit(&documents[*doc], key, value);
        }
        let mut next = 0;
        let mut chunk = || { next += 1; chunks[next % chunks.len()] };
        pump(&mut village, &mut township, &mut chunk);
        for (doc, key) in &pushes {
            township.host.edit(&documents[*doc], key, "pushed");
            township.session.document_changed(&documents[*doc], &mut township.host);
        }
        pump(&mut village, &mut township, &mut chunk);
        let held: Vec<DocumentId> =
            documents.iter().filter(|doc| township.host.documents.contains_key(*doc)).cloned().collect();
        assert_converged(&mut village, &mut township, &held);
    }
}

/// Same inputs, same bytes: the session has no hidden clock or randomness.
#[test]
fn identical_inputs_give_identical_transcripts() {
    let transcript = || {
        let mut county = digest_node("xh", "xh/t1", 2_000);
        let mut township = digest_node("xh/t1", "xh", 2_000);
        township.host.shared[77].1 = [0xee; 16];
        township.host.shared.truncate(1_990);
        let mut bytes = Vec::new();
        for _ in 0..10 {
            let down = county.drain();
            let up = township.drain();
            bytes.extend_from_slice(&down);
            bytes.extend_from_slice(&up);
            township.deliver(&down, 333, 5);
            county.deliver(&up, 333, 5);
        }
        (bytes, county.events, township.events)
    };
    let first = transcript();
    assert!(first.0.len() > 1000);
    assert_eq!(first, transcript());
}

/// Found by the interleaving proptest: both sides commit to a document
/// neither had while their hellos are still in transit.
#[test]
fn concurrent_live_pushes_during_the_handshake_converge() {
    let steps = [
        (0, 1, 0),
        (0, 1, 0),
        (0, 1, 0),
        (1, 1, 0),
        (5, 1, 2),
        (2, 16, 0),
        (3, 13, 0),
        (0, 1, 0),
        (4, 1, 0),
        (1, 1, 0),
        (2, 94, 0),
        (1, 1, 0),
    ];
    run_interleaving(&steps, &[]);
}

const CROSSING_EDITS: [(u8, usize, usize); 61] = [
    (0, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (1, 1, 0),
    (4, 1, 0),
    (2, 16, 0),
    (0, 1, 0),
    (1, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (3, 7, 0),
    (0, 1, 0),
    (5, 1, 0),
    (3, 100, 0),
    (0, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (0, 1, 0),
    (5, 1, 2),
    (2, 64, 0),
    (0, 1, 0),
    (2, 191, 0),
    (0, 1, 0),
    (0, 1, 0),
    (1, 1, 0),
    (0, 1, 0),
    (5, 1, 2),
    (5, 1, 0),
    (0, 1, 0),
    (0, 30, 0),
    (3, 219, 0),
    (3, 268, 0),
    (4, 46, 2),
    (2, 5, 0),
    (4, 161, 0),
    (1, 232, 2),
    (2, 90, 0),
    (1, 258, 2),
    (4, 261, 0),
    (5, 63, 2),
    (3, 321, 1),
    (5, 138, 2),
    (1, 201, 1),
    (4, 89, 0),
    (1, 229, 1),
    (2, 388, 0),
    (2, 144, 1),
    (1, 82, 1),
    (4, 262, 1),
    (1, 300, 2),
    (0, 298, 1),
    (2, 49, 1),
    (5, 389, 2),
    (5, 214, 0),
];

/// Found by the interleaving proptest: concurrent live edits on both sides
/// while exchanges cross. Changes can then arrive before their dependencies;
/// a host that drops such changes instead of keeping them in Automerge's
/// queue makes the two sides ping-pong heads-only messages forever.
#[test]
fn crossing_live_edits_converge() {
    run_interleaving(&CROSSING_EDITS, &[]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Polls, partial deliveries and local commits in any order on both
    /// sides; once the link drains, both sides hold the same documents.
    #[test]
    fn sessions_converge_under_arbitrary_interleavings(
        steps in proptest::collection::vec((0u8..6, 1usize..400, 0usize..3), 0..80),
        village_edits in proptest::collection::vec((0usize..2, "[a-z]{1,3}"), 0..4),
    ) {
        run_interleaving(&steps, &village_edits);
    }
}

fn interleaving_documents() -> [DocumentId; 3] {
    [
        DocumentId::roster(&station("xh/t1/v1")),
        DocumentId::activities(&station("xh/t1/v1"), november()),
        DocumentId::reference(&station("xh/t1"), "menu").unwrap(),
    ]
}

/// Polls, partial deliveries and live commits on both sides in the given
/// order; then the link drains.
fn interleave(
    steps: &[(u8, usize, usize)],
    village_edits: &[(usize, String)],
) -> (Node<MemoryHost>, Node<MemoryHost>) {
    let (village, township) = memory_pair("xh/t1/v1", "xh/t1");
    interleave_with(village, township, steps, village_edits)
}

/// A host a test can commit to.
trait Editable {
    fn edit(&mut self, document: &DocumentId, key: &str, value: &str);
}

impl Editable for MemoryHost {
    fn edit(&mut self, document: &DocumentId, key: &str, value: &str) {
        MemoryHost::edit(self, document, key, value)
    }
}

fn interleave_with<H: SyncHost + Editable>(
    mut village: Node<H>,
    mut township: Node<H>,
    steps: &[(u8, usize, usize)],
    village_edits: &[(usize, String)],
) -> (Node<H>, Node<H>) {
    let documents = interleaving_documents();
    for (doc, key) in village_edits {
        village.host.edit(&documents[*doc], key, "before");
    }
    let (mut up, mut down) = (Vec::<u8>::new(), Vec::<u8>::new());
    for (edit_count, &(action, size, doc)) in steps.iter().enumerate() {
        match action {
            0 => up.extend(
                village
                    .session
                    .poll_transmit(&mut village.host)
                    .unwrap_or_default(),
            ),
            1 => down.extend(
                township
                    .session
                    .poll_transmit(&mut township.host)
                    .unwrap_or_default(),
            ),
            2 => {
                let piece: Vec<u8> = up.drain(..size.min(up.len())).collect();
                township.deliver(&piece, size, 1);
            }
            3 => {
                let piece: Vec<u8> = down.drain(..size.min(down.len())).collect();
                village.deliver(&piece, size, 1);
            }
            4 => {
                township
                    .host
                    .edit(&documents[doc], &format!("t{edit_count}"), "live");
                township
                    .session
                    .document_changed(&documents[doc], &mut township.host);
            }
            _ => {
                let doc = doc % 2;
                village
                    .host
                    .edit(&documents[doc], &format!("v{edit_count}"), "live");
                village
                    .session
                    .document_changed(&documents[doc], &mut village.host);
            }
        }
    }
    township.deliver(&up, 97, 2);
    village.deliver(&down, 97, 2);
    pump(&mut village, &mut township, || 61);
    assert!(!village.session.is_closed() && !township.session.is_closed());
    (village, township)
}

/// Interleave, then both sides must hold the same documents, error-free.
fn run_interleaving(steps: &[(u8, usize, usize)], village_edits: &[(usize, String)]) {
    let (mut village, mut township) = interleave(steps, village_edits);
    let held: Vec<DocumentId> = interleaving_documents()
        .into_iter()
        .filter(|doc| {
            village.host.documents.contains_key(doc) || township.host.documents.contains_key(doc)
        })
        .collect();
    assert_converged(&mut village, &mut township, &held);
}

mod with_the_replica {
    //! The same session over the real store, to check the two agree on the
    //! `SyncHost` contract (sync state lifetimes, batches, refusals).
    use super::*;
    use crate::replica::{Replica, ReplicaConfig};
    use crate::storage::MemoryStorage;
    use crate::sync::host::{HeadsDigest, HostError, ReceiveOutcome};
    use crate::sync::signing::SignedSyncMessage;
    use automerge::transaction::Transactable;

    fn replica(local: &str, config: ReplicaConfig) -> Replica<MemoryStorage> {
        Replica::open(MemoryStorage::new(), station(local), 7, config).unwrap()
    }

    fn commit(replica: &mut Replica<MemoryStorage>, document: &DocumentId, key: &str, value: &str) {
        replica
            .commit(document, |doc| {
                doc.put(automerge::ROOT, key, value).map(|_| ())
            })
            .unwrap();
    }

    fn pair(config: ReplicaConfig) -> (Node<Replica<MemoryStorage>>, Node<Replica<MemoryStorage>>) {
        (
            Node::new(
                replica("xh/t1/v1", config.clone()),
                "xh/t1",
                SessionConfig::default(),
            ),
            Node::new(
                replica("xh/t1", config),
                "xh/t1/v1",
                SessionConfig::default(),
            ),
        )
    }

    fn assert_same(
        a: &Node<Replica<MemoryStorage>>,
        b: &Node<Replica<MemoryStorage>>,
        documents: &[DocumentId],
    ) {
        for document in documents {
            assert!(
                a.host.holds(document) && b.host.holds(document),
                "{document} held on both"
            );
            assert_eq!(
                a.host.heads_digest(document),
                b.host.heads_digest(document),
                "{document}"
            );
        }
        assert!(a.session.status().up_to_date && b.session.status().up_to_date);
    }

    impl Editable for Replica<MemoryStorage> {
        fn edit(&mut self, document: &DocumentId, key: &str, value: &str) {
            commit(self, document, key, value)
        }
    }

    /// The crossing live edits found by the interleaving proptest, over the
    /// real store.
    #[test]
    fn replicas_settle_crossing_live_edits() {
        let (village, township) = pair(ReplicaConfig::default());
        let (village, township) = interleave_with(village, township, &CROSSING_EDITS, &[]);
        for node in [&village, &township] {
            let status = node.session.status();
            assert_eq!(status.last_error, None, "{status:?}");
        }
        let documents: Vec<DocumentId> = interleaving_documents()
            .into_iter()
            .filter(|doc| village.host.holds(doc))
            .collect();
        assert_same(&village, &township, &documents);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn replicas_converge_under_arbitrary_interleavings(
            steps in proptest::collection::vec((0u8..6, 1usize..400, 0usize..3), 0..80),
        ) {
            let (village, township) = pair(ReplicaConfig::default());
            let (village, township) = interleave_with(village, township, &steps, &[]);
            for node in [&village, &township] {
                let status = node.session.status();
                prop_assert_eq!(status.last_error, None);
            }
            let documents: Vec<DocumentId> =
                interleaving_documents().into_iter().filter(|doc| village.host.holds(doc)).collect();
            assert_same(&village, &township, &documents);
        }
    }

    #[test]
    fn replicas_converge_reconnect_in_one_round_trip_and_push_live() {
        let (mut village, mut township) = pair(ReplicaConfig::default());
        let roster = DocumentId::roster(&station("xh/t1/v1"));
        let activities = DocumentId::activities(&station("xh/t1/v1"), november());
        commit(&mut village.host, &roster, "v-1", "Wang Fang");
        commit(&mut village.host, &activities, "a-1", "lecture");
        commit(&mut township.host, &roster, "note", "township was here");
        pump(&mut village, &mut township, || 1000);
        assert_same(&village, &township, &[roster.clone(), activities.clone()]);

        village.host.peer_disconnected(&station("xh/t1"));
        township.host.peer_disconnected(&station("xh/t1/v1"));
        let mut village = Node::new(village.host, "xh/t1", SessionConfig::default());
        let mut township = Node::new(township.host, "xh/t1/v1", SessionConfig::default());
        assert_eq!(
            pump(&mut village, &mut township, || usize::MAX).round_trips,
            1
        );

        commit(&mut village.host, &activities, "a-2", "film night");
        village
            .session
            .document_changed(&activities, &mut village.host);
        pump(&mut village, &mut township, || usize::MAX);
        assert_same(&village, &township, &[activities]);
    }

    fn cold_sync(
        replica_config: ReplicaConfig,
        session_config: SessionConfig,
        villages: usize,
    ) -> (
        Node<Replica<MemoryStorage>>,
        Node<Replica<MemoryStorage>>,
        Vec<DocumentId>,
    ) {
        let mut township = Node::new(
            replica("xh/t1", replica_config.clone()),
            "xh",
            session_config.clone(),
        );
        let mut county = Node::new(
            Replica::open(MemoryStorage::new(), station("xh"), 9, replica_config).unwrap(),
            "xh/t1",
            session_config,
        );
        let mut documents = Vec::new();
        for village in 0..villages {
            let roster = DocumentId::roster(&station(&format!("xh/t1/v{village}")));
            commit(
                &mut township.host,
                &roster,
                "v-1",
                &format!("volunteer {village}"),
            );
            documents.push(roster);
        }
        pump(&mut township, &mut county, || usize::MAX);
        (township, county, documents)
    }

    /// The replica, counting every change it is sent, per document.
    struct Counting {
        replica: Replica<MemoryStorage>,
        received: BTreeMap<(DocumentId, automerge::ChangeHash), usize>,
    }

    impl Counting {
        fn count(&mut self, document: &DocumentId, message: &[u8], format: PayloadFormat) {
            let automerge_bytes = match format {
                PayloadFormat::Plain => message.to_vec(),
                PayloadFormat::Signed => {
                    SignedSyncMessage::decode(message, usize::MAX)
                        .unwrap()
                        .automerge
                }
            };
            let decoded = automerge::sync::Message::decode(&automerge_bytes).unwrap();
            for chunk in decoded.changes.iter() {
                let doc = automerge::Automerge::load(chunk).unwrap();
                for meta in doc.get_changes_meta(&[]) {
                    *self
                        .received
                        .entry((document.clone(), meta.hash))
                        .or_default() += 1;
                }
            }
        }

        fn sent_more_than_once(&self) -> Vec<(DocumentId, usize)> {
            let mut repeated: BTreeMap<DocumentId, usize> = BTreeMap::new();
            for ((document, _), times) in &self.received {
                if *times > 1 {
                    *repeated.entry(document.clone()).or_default() += 1;
                }
            }
            repeated.into_iter().collect()
        }
    }

    impl SyncHost for Counting {
        fn local_station(&self) -> &StationId {
            self.replica.local_station()
        }

        fn shared_documents(&mut self, peer: &StationId) -> Vec<(DocumentId, HeadsDigest)> {
            self.replica.shared_documents(peer)
        }

        fn generate_sync_message(
            &mut self,
            peer: &StationId,
            document: &DocumentId,
            format: PayloadFormat,
        ) -> Result<Option<Vec<u8>>, HostError> {
            self.replica.generate_sync_message(peer, document, format)
        }

        fn receive_sync_message(
            &mut self,
            peer: &StationId,
            document: &DocumentId,
            message: &[u8],
            format: PayloadFormat,
        ) -> Result<ReceiveOutcome, ReceiveError> {
            self.count(document, message, format);
            self.replica
                .receive_sync_message(peer, document, message, format)
        }

        fn reset_sync_state(&mut self, peer: &StationId, document: &DocumentId) {
            self.replica.reset_sync_state(peer, document)
        }
    }

    fn counting(local: &str, peer: &str) -> Node<Counting> {
        Node::new(
            Counting {
                replica: replica(local, ReplicaConfig::default()),
                received: BTreeMap::new(),
            },
            peer,
            SessionConfig::default(),
        )
    }

    /// Documents of a township's villages, each written in many commits.
    fn village_documents(holder: &mut Replica<MemoryStorage>) -> Vec<DocumentId> {
        let mut documents = Vec::new();
        for village in 0..6 {
            let roster = DocumentId::roster(&station(&format!("xh/t1/v{village}")));
            for volunteer in 0..30 {
                commit(
                    holder,
                    &roster,
                    &format!("v-{volunteer}"),
                    &format!("volunteer {volunteer} of village {village}"),
                );
            }
            documents.push(roster);
        }
        documents
    }

    /// Both ends send at once, as on a real link: each side starts an
    /// exchange for every differing document, and their first messages
    /// cross. The empty side's messages all say "I have nothing" until the
    /// document arrives; every one of them must not make the holder send
    /// the whole document again.
    #[test]
    fn a_cold_sync_with_crossing_messages_sends_no_change_twice() {
        for (empty, full) in [("xh", "xh/t1"), ("xh/t1", "xh")] {
            let mut receiver = counting(empty, full);
            let mut holder = counting(full, empty);
            let documents = village_documents(&mut holder.host.replica);
            pump(&mut receiver, &mut holder, || usize::MAX);
            for document in &documents {
                assert_eq!(
                    receiver.host.replica.heads_digest(document),
                    holder.host.replica.heads_digest(document),
                    "{document}"
                );
            }
            assert!(receiver.session.status().up_to_date && holder.session.status().up_to_date);
            assert_eq!(
                receiver.host.received.len(),
                documents.len() * 30,
                "every change of every document arrived"
            );
            assert_eq!(
                receiver.host.sent_more_than_once(),
                Vec::new(),
                "changes sent to {empty} more than once, per document"
            );
        }
    }

    /// The contract between the two: the host keeps the sync state of every
    /// open exchange in memory, and a session has at most twice its in-flight
    /// bound open per peer (its own and the peer's).
    #[test]
    fn a_sync_state_cache_of_twice_the_in_flight_bound_suffices() {
        let replica_config = ReplicaConfig {
            sync_states_cached_max: 8,
            documents_cached_max: 4,
            ..ReplicaConfig::default()
        };
        let session_config = SessionConfig {
            documents_in_flight_max: 4,
            ..SessionConfig::default()
        };
        let (township, county, documents) = cold_sync(replica_config, session_config, 60);
        assert_same(&township, &county, &documents);
        assert_eq!(county.session.status().last_error, None);
    }

    /// Break the contract: sync states forgotten between calls make
    /// Automerge repeat itself forever. The loop guard turns that into a
    /// refusal the clerk can read, instead of a session that spins.
    #[test]
    fn a_host_that_forgets_sync_states_is_caught_by_the_loop_guard() {
        let replica_config = ReplicaConfig {
            sync_states_cached_max: 1,
            documents_cached_max: 4,
            ..ReplicaConfig::default()
        };
        let (_township, county, _) = cold_sync(replica_config, SessionConfig::default(), 3);
        let status = county.session.status();
        assert_eq!(status.documents_refused, 3, "{status:?}");
        assert!(status.last_error.unwrap().contains("did not settle"));
        assert!(
            status.up_to_date,
            "given up, so nothing left to do this session"
        );
    }
}

#[test]
fn a_peer_listing_more_bucket_entries_than_the_session_buffers_is_closed() {
    use crate::sync::digest::{bucket_of, DIGEST_BUCKETS};
    let mut township = Node::new(
        MemoryHost::new("xh/t1"),
        "xh/t1/v1",
        SessionConfig::default(),
    );
    // Documents the village may hold (invented stations below it), spread
    // over every bucket, none bucket finished: every entry stays buffered.
    let mut buckets: Vec<Vec<(DocumentId, HeadsDigest)>> = vec![Vec::new(); DIGEST_BUCKETS];
    let listed = BUCKET_ENTRIES_BUFFERED_MAX + DIGEST_BUCKETS * 8;
    for n in 0..listed {
        let document = DocumentId::roster(&station(&format!("xh/t1/v1/p{n}")));
        buckets[usize::from(bucket_of(&document))].push((document, [3; 16]));
    }
    assert!(buckets.iter().all(|b| b.len() < BUCKET_ENTRIES_MAX));
    let mut bytes = [
        frame(&Message::Hello {
            versions: VersionRange::OURS,
            station: station("xh/t1/v1"),
            tier: Tier::Village,
        }),
        frame(&Message::ScopeRoot {
            documents: listed as u64,
            root: [2; 16],
        }),
        frame(&Message::BucketHashes {
            hashes: vec![[1; 16]; DIGEST_BUCKETS],
        }),
    ]
    .concat();
    for (bucket, entries) in buckets.into_iter().enumerate() {
        for part in entries.chunks(BUCKET_ENTRIES_PER_FRAME_MAX) {
            bytes.extend(frame(&Message::BucketContents {
                bucket: bucket as u8,
                entries: part.to_vec(),
                last: false,
            }));
        }
    }
    township.deliver(&bytes, usize::MAX, 1);
    let reason = township
        .closed_reason()
        .expect("the flooding peer's session is closed")
        .to_string();
    assert!(
        reason.contains(&format!(
            "more than {BUCKET_ENTRIES_BUFFERED_MAX} bucket entries"
        )),
        "{reason}"
    );
}
