//! Frozen frames of released wire versions, driven against today's code.
//!
//! `tests/vectors/wire-v3/` holds every frame a version-3 village and its
//! township sent each other in one complete session (see the README there):
//! the village carries a roster and a month of activities, the township starts
//! empty. These tests check that today's node still understands that peer:
//!
//! - every frozen frame decodes to the values it was recorded with, and
//!   encodes back to the same bytes;
//! - the frozen village, replayed frame by frame, syncs its documents into a
//!   live township running today's session;
//! - a hello whose versions do not meet ours is refused naming both;
//! - a newer peer (versions 3 to 4, fields appended to its hello) is spoken
//!   to in version 3 and syncs.
//!
//! The vectors are written only on request, into a folder that must not
//! exist yet (a released version's frames are never regenerated):
//!
//! ```text
//! CIVSYNC_WRITE_VECTORS=1 cargo test -p civsync-protocol --test wire_vectors \
//!     the_wire_version_spoken_has_frozen_vectors
//! ```

use civsync_protocol::domain::model::{
    Activity, Category, Form, Hours, RecordId, ServiceRecord, Sex, Volunteer,
};
use civsync_protocol::replica::{Replica, ReplicaConfig, Signing};
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::sync::digest::EMPTY_BUCKET;
use civsync_protocol::sync::session::{
    CertifiedPeer, CloseReason, Session, SessionConfig, SessionEvent, SessionState,
    KEEPALIVE_INTERVAL_MS,
};
use civsync_protocol::sync::signing::keyed_hash::{KeyedHashSigner, KeyedHashVerifier};
use civsync_protocol::sync::wire::{
    decode_payload, encode_frame, message_type, Message, VersionRange, FRAME_HEADER_BYTES,
    PROTOCOL_VERSION, PROTOCOL_VERSION_MIN,
};
use civsync_protocol::{layout, DocumentId, Month, StationId, Tier};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::macros::date;

type Node = Replica<MemoryStorage>;

const VILLAGE: &str = "xh/t1/v1";
const TOWNSHIP: &str = "xh/t1";
/// The wire versions whose frames the replay tests read. A release that
/// stops speaking one deletes its folder and takes it off this list.
const FROZEN_VERSIONS: [u16; 2] = [3, 4];
/// What every recorded and live node signs with (version 4 on): the
/// protocol's keyed-hash stand-in for certificates, deterministic.
const SIGNING_SECRET: &[u8] = b"wire vectors county";
const VILLAGE_FRAMES: &str = "village-to-township.hex";
const TOWNSHIP_FRAMES: &str = "township-to-village.hex";
const CATALOGUE_FRAMES: &str = "catalogue.hex";
const DOCUMENTS: &str = "documents.txt";
/// Fixed inputs, so that the recorded bytes are the same on every run.
const INCARNATION: u64 = 1;
/// 2026-11-05T08:00:00Z: the time every local change carries.
const CLERK_TIME_MS: i64 = 1_793_865_600_000;
const GOODBYE_REASON: &str = "the village closes for the night";
const FLIGHTS_MAX: u32 = 1_000;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn vectors_dir(version: u16) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors")
        .join(format!("wire-v{version}"))
}

fn replica(at: &str) -> Node {
    let mut node = Replica::open(
        MemoryStorage::new(),
        station(at),
        INCARNATION,
        ReplicaConfig::default(),
    )
    .unwrap();
    let tier = node.config().tier_of(&station(at));
    node.set_signing(Signing {
        signer: Some(Arc::new(KeyedHashSigner::new(
            SIGNING_SECRET,
            &station(at),
            tier,
        ))),
        verifier: Arc::new(KeyedHashVerifier::new(SIGNING_SECRET)),
    })
    .unwrap();
    node.set_now_ms(CLERK_TIME_MS);
    node
}

fn november() -> Month {
    Month::new(2026, 11).unwrap()
}

/// The village of the recording: a roster of two volunteers and one
/// activity with a service record of each, written by its own clerk.
fn village_with_documents() -> Node {
    let village = station(VILLAGE);
    let mut node = replica(VILLAGE);
    let numbers = [
        RecordId::parse("n", "V001").unwrap(),
        RecordId::parse("n", "V002").unwrap(),
    ];
    node.commit(&DocumentId::roster(&village), |doc| {
        for (n, number) in numbers.iter().enumerate() {
            let volunteer = Volunteer {
                number: number.clone(),
                name: ["王秀英", "李伟"][n].into(),
                sex: [Sex::Female, Sex::Male][n],
                birth_date: date!(1975 - 03 - 08),
                residence_area: "东村三组".into(),
                phone: format!("1380000000{n}"),
                phone_seals: Default::default(),
                id_digest: format!("{n:064x}"),
                id_sealed: String::new(),
                id_masked: "4116**********0001".into(),
                skills: vec!["理发".into()],
                categories: vec![Category::ElderCare],
                home_station: village.clone(),
                registered_on: date!(2026 - 01 - 10),
                consent: true,
                party_member: n == 0,
                deleted: false,
            };
            layout::put_volunteer(doc, &volunteer)?;
        }
        Ok::<_, layout::LayoutError>(())
    })
    .unwrap();
    let activity = Activity {
        id: RecordId::parse("id", "A1").unwrap(),
        name: "关爱留守老人".into(),
        date: date!(2026 - 11 - 04),
        station: village.clone(),
        place: "村文化广场".into(),
        content: "上门探访，打扫卫生，理发".into(),
        form: Form::Help,
        category: Category::ElderCare,
        team: None,
        person_in_charge: "站长".into(),
        beneficiaries: 12,
        theme: None,
        recorded_on: date!(2026 - 11 - 05),
        late: false,
        deleted: false,
        records: numbers
            .iter()
            .map(|number| ServiceRecord {
                volunteer: number.clone(),
                home_station: None,
                hours: Hours { centi: 250 },
                recorded_on: date!(2026 - 11 - 05),
                late: false,
                deleted: false,
            })
            .collect(),
    };
    node.commit(&DocumentId::activities(&village, november()), |doc| {
        layout::put_activity(doc, &activity)
    })
    .unwrap();
    node
}

fn village_session() -> Session {
    Session::new(
        station(VILLAGE),
        CertifiedPeer {
            station: station(TOWNSHIP),
            tier: Tier::Township,
        },
        Tier::Village,
        0,
        SessionConfig::default(),
    )
}

fn township_session() -> Session {
    Session::new(
        station(TOWNSHIP),
        CertifiedPeer {
            station: station(VILLAGE),
            tier: Tier::Village,
        },
        Tier::Township,
        0,
        SessionConfig::default(),
    )
}

/// One frame as sent: the flight (round of the pump) it went out in, and its
/// bytes, length prefix included.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SentFrame {
    flight: u32,
    bytes: Vec<u8>,
}

/// Split what `poll_transmit` returned into whole frames.
fn split_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let length = u32::from_be_bytes(bytes[..FRAME_HEADER_BYTES].try_into().unwrap()) as usize;
        let (frame, rest) = bytes.split_at(FRAME_HEADER_BYTES + length);
        frames.push(frame.to_vec());
        bytes = rest;
    }
    frames
}

fn drain(session: &mut Session, node: &mut Node) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = session.poll_transmit(node) {
        out.extend(bytes);
    }
    out
}

fn events(session: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

/// A session between the village and an empty township, every frame of
/// each side kept in order.
#[derive(Debug, PartialEq, Eq)]
struct Recording {
    village: Vec<SentFrame>,
    township: Vec<SentFrame>,
    /// What the village held, `(document, heads)`, as the township should
    /// hold it in the end.
    documents: Vec<(String, Vec<String>)>,
}

struct Pair {
    village: Node,
    township: Node,
    v: Session,
    t: Session,
    flight: u32,
    now_ms: u64,
    recording: Recording,
}

impl Pair {
    /// Exchange flights until both sides are silent.
    fn pump(&mut self) {
        loop {
            let from_village = drain(&mut self.v, &mut self.village);
            let from_township = drain(&mut self.t, &mut self.township);
            if from_village.is_empty() && from_township.is_empty() {
                return;
            }
            let flight = self.flight;
            for (bytes, kept) in [
                (&from_village, &mut self.recording.village),
                (&from_township, &mut self.recording.township),
            ] {
                kept.extend(
                    split_frames(bytes)
                        .into_iter()
                        .map(|bytes| SentFrame { flight, bytes }),
                );
            }
            self.t
                .handle_bytes(&from_village, self.now_ms, &mut self.township);
            self.v
                .handle_bytes(&from_township, self.now_ms, &mut self.village);
            self.flight += 1;
            assert!(self.flight < FLIGHTS_MAX, "the sessions never went quiet");
        }
    }
}

fn heads_of(node: &Node, document: &DocumentId) -> Vec<String> {
    let mut heads: Vec<String> = node
        .heads(document)
        .unwrap_or_default()
        .iter()
        .map(|head| head.to_string())
        .collect();
    heads.sort();
    heads
}

/// Run the recorded session with today's code: sync to quiet, a keepalive
/// ping from the village and the township's pong, then the village's goodbye.
fn record() -> Recording {
    let village = village_with_documents();
    let documents = village
        .documents()
        .iter()
        .map(|document| (document.to_string(), heads_of(&village, document)))
        .collect();
    let mut pair = Pair {
        village,
        township: replica(TOWNSHIP),
        v: village_session(),
        t: township_session(),
        flight: 0,
        now_ms: 0,
        recording: Recording {
            village: Vec::new(),
            township: Vec::new(),
            documents,
        },
    };
    pair.pump();
    for session in [&pair.v, &pair.t] {
        let status = session.status();
        assert!(status.up_to_date, "{status:?}");
        assert_eq!(status.last_error, None);
    }
    pair.now_ms = KEEPALIVE_INTERVAL_MS;
    pair.v.handle_timeout(pair.now_ms, &mut pair.village);
    pair.pump();
    pair.v.close(GOODBYE_REASON);
    pair.pump();
    assert!(pair.t.is_closed());
    pair.recording
}

/// One of each message type that a plain session does not send, with fixed
/// contents: they are part of version 3 too.
fn catalogue() -> Vec<Message> {
    let roster = DocumentId::roster(&station(VILLAGE));
    vec![
        Message::HelloRejected {
            protocol_version: PROTOCOL_VERSION,
            reason:
                "station xh/t1/v1 speaks sync protocol version 2, station xh/t1 speaks version 3"
                    .into(),
        },
        Message::Refused {
            document: roster.clone(),
            reason: "not authorised".into(),
        },
        Message::Sync {
            document: roster,
            reply: true,
            message_bytes: 10,
            offset: 4,
            chunk: vec![4, 5, 6, 7, 8, 9],
        },
        Message::Ping { nonce: 7 },
        Message::Pong { nonce: 7 },
        Message::Goodbye {
            reason: "closed by the clerk".into(),
        },
    ]
}

// ---- the vector files ----

fn type_name(message: &Message) -> &'static str {
    match message {
        Message::Hello { .. } => "hello",
        Message::HelloRejected { .. } => "hello-rejected",
        Message::ScopeRoot { .. } => "scope-root",
        Message::BucketHashes { .. } => "bucket-hashes",
        Message::BucketContents { .. } => "bucket-contents",
        Message::Sync { .. } => "sync",
        Message::SyncQuiet { .. } => "sync-quiet",
        Message::Refused { .. } => "refused",
        Message::Ping { .. } => "ping",
        Message::Pong { .. } => "pong",
        Message::Goodbye { .. } => "goodbye",
    }
}

/// What a frame says, field by field, in a wording fixed here (not the
/// types' `Debug`, which may change without the wire changing). Decoding and
/// encoding again cannot notice two fields of the same size swapped; the
/// values this names can.
fn describe(message: &Message) -> String {
    match message {
        Message::Hello {
            versions,
            station,
            tier,
        } => format!(
            "versions={}..={} station={station} tier={tier}",
            versions.min, versions.max
        ),
        Message::HelloRejected {
            protocol_version,
            reason,
        } => format!("protocol_version={protocol_version} reason={reason:?}"),
        Message::ScopeRoot { documents, root } => {
            format!("documents={documents} root={}", to_hex(root))
        }
        Message::BucketHashes { hashes } => {
            let present: Vec<String> = hashes
                .iter()
                .enumerate()
                .filter(|(_, hash)| **hash != EMPTY_BUCKET)
                .map(|(bucket, hash)| format!("{bucket}:{}", to_hex(hash)))
                .collect();
            format!("buckets={}", present.join(","))
        }
        Message::BucketContents {
            bucket,
            entries,
            last,
        } => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(document, digest)| format!("{document}:{}", to_hex(digest)))
                .collect();
            format!("bucket={bucket} last={last} entries={}", entries.join(","))
        }
        Message::Sync {
            document,
            reply,
            message_bytes,
            offset,
            chunk,
        } => format!(
            "document={document} reply={reply} message_bytes={message_bytes} offset={offset} chunk_bytes={}",
            chunk.len()
        ),
        Message::SyncQuiet { document } => format!("document={document}"),
        Message::Refused { document, reason } => format!("document={document} reason={reason:?}"),
        Message::Ping { nonce } | Message::Pong { nonce } => format!("nonce={nonce}"),
        Message::Goodbye { reason } => format!("reason={reason:?}"),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn from_hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd number of hex digits");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// The payload of a whole frame, checking its length prefix.
fn payload(frame: &[u8]) -> &[u8] {
    let (header, payload) = frame.split_at(FRAME_HEADER_BYTES);
    assert_eq!(
        u32::from_be_bytes(header.try_into().unwrap()) as usize,
        payload.len(),
        "length prefix"
    );
    payload
}

/// `flight type hex description` per frame, `#` comments.
fn frames_file(frames: &[SentFrame], what: &str) -> String {
    let mut text = format!(
        "# {what}\n# Wire version {PROTOCOL_VERSION}. One frame a line, in the order sent: flight \
         (round of the exchange), message type, the whole frame in hex (length prefix included), what it \
         says.\n"
    );
    for frame in frames {
        let message = decode_payload(payload(&frame.bytes)).unwrap();
        text.push_str(&format!(
            "{} {} {} {}\n",
            frame.flight,
            type_name(&message),
            to_hex(&frame.bytes),
            describe(&message)
        ));
    }
    text
}

/// A frozen frame: where it is, what the file says it is, its bytes.
struct FrozenFrame {
    file: &'static str,
    index: usize,
    flight: u32,
    type_name: String,
    bytes: Vec<u8>,
    description: String,
}

fn read_frames(version: u16, file: &'static str) -> Vec<FrozenFrame> {
    let path = vectors_dir(version).join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let frames: Vec<FrozenFrame> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            let fields: Vec<&str> = line.splitn(4, ' ').collect();
            assert_eq!(fields.len(), 4, "{file} frame {index}: {line}");
            FrozenFrame {
                file,
                index,
                flight: fields[0].parse().unwrap(),
                type_name: fields[1].to_string(),
                bytes: from_hex(fields[2]),
                description: fields[3].to_string(),
            }
        })
        .collect();
    assert!(!frames.is_empty(), "{file} holds no frames");
    frames
}

fn documents_file(documents: &[(String, Vec<String>)]) -> String {
    let mut text = "# The village's documents and their heads when it was recorded: the township \
                    ends with exactly these.\n"
        .to_string();
    for (document, heads) in documents {
        text.push_str(&format!("{document} {}\n", heads.join(",")));
    }
    text
}

fn read_documents(version: u16) -> BTreeMap<String, Vec<String>> {
    let path = vectors_dir(version).join(DOCUMENTS);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (document, heads) = line.split_once(' ').expect("document and heads");
            (
                document.to_string(),
                heads.split(',').map(str::to_string).collect(),
            )
        })
        .collect()
}

/// The wire version this build speaks has its frames frozen. Run with
/// `CIVSYNC_WRITE_VECTORS=1` it writes them instead, only into a folder that
/// does not exist: a released version's frames are frozen. A new wire
/// version bumps `PROTOCOL_VERSION`, so this test fails until its folder is
/// written next to the old ones.
#[test]
fn the_wire_version_spoken_has_frozen_vectors() {
    let dir = vectors_dir(PROTOCOL_VERSION);
    if std::env::var("CIVSYNC_WRITE_VECTORS").as_deref() != Ok("1") {
        assert!(
            dir.join(VILLAGE_FRAMES).exists(),
            "wire version {PROTOCOL_VERSION} has no frozen vectors in {}: write them with \
             CIVSYNC_WRITE_VECTORS=1 cargo test -p civsync-protocol --test wire_vectors",
            dir.display()
        );
        return;
    }
    assert!(
        !dir.join(VILLAGE_FRAMES).exists(),
        "{} already holds frozen vectors; a released version's frames are never regenerated",
        dir.display()
    );
    std::fs::create_dir_all(&dir).unwrap();
    let recording = record();
    let catalogue: Vec<SentFrame> = catalogue()
        .iter()
        .map(|message| SentFrame {
            flight: 0,
            bytes: encode_frame(message).unwrap(),
        })
        .collect();
    for (file, text) in [
        (
            VILLAGE_FRAMES,
            frames_file(
                &recording.village,
                "Sent by village xh/t1/v1 (holding a roster and a month of activities) to township xh/t1.",
            ),
        ),
        (
            TOWNSHIP_FRAMES,
            frames_file(
                &recording.township,
                "Sent by township xh/t1 (holding nothing) to village xh/t1/v1.",
            ),
        ),
        (
            CATALOGUE_FRAMES,
            frames_file(
                &catalogue,
                "Message types a plain session does not send, with fixed contents (flight is always 0).",
            ),
        ),
        (DOCUMENTS, documents_file(&recording.documents)),
    ] {
        std::fs::write(dir.join(file), text).unwrap();
    }
}

#[test]
fn the_recorder_is_deterministic() {
    let first = record();
    assert_eq!(first, record());
    for (side, frames) in [("village", &first.village), ("township", &first.township)] {
        assert!(
            frames.iter().any(|frame| {
                matches!(
                    decode_payload(payload(&frame.bytes)),
                    Ok(Message::Sync { .. })
                )
            }),
            "the {side} sent no sync message"
        );
    }
}

// ---- (a) every frozen frame still decodes to its values and encodes to its bytes ----

#[test]
fn every_frozen_frame_decodes_to_its_values_and_encodes_to_the_same_bytes() {
    for version in FROZEN_VERSIONS {
        frozen_frames_decode_and_encode_back(version);
    }
}

fn frozen_frames_decode_and_encode_back(version: u16) {
    let mut types_seen = std::collections::BTreeSet::new();
    for file in [VILLAGE_FRAMES, TOWNSHIP_FRAMES, CATALOGUE_FRAMES] {
        for frame in read_frames(version, file) {
            let FrozenFrame {
                file,
                index,
                type_name: frozen_type,
                ..
            } = &frame;
            let message = decode_payload(payload(&frame.bytes)).unwrap_or_else(|error| {
                panic!("{file} frame {index} ({frozen_type}) no longer decodes: {error}")
            });
            assert_eq!(
                type_name(&message),
                frozen_type,
                "{file} frame {index} ({frozen_type}) decodes as another message type: {message:?}"
            );
            assert_eq!(
                describe(&message),
                frame.description,
                "{file} frame {index} ({frozen_type}) decodes to other values today"
            );
            let encoded = encode_frame(&message).unwrap_or_else(|error| {
                panic!("{file} frame {index} ({frozen_type}) no longer encodes: {error}")
            });
            assert!(
                encoded == frame.bytes,
                "{file} frame {index} ({frozen_type}) encodes differently today:\n frozen {}\n today  {}",
                to_hex(&frame.bytes),
                to_hex(&encoded)
            );
            types_seen.insert(frame.bytes[FRAME_HEADER_BYTES]);
        }
    }
    // Every type of the version is frozen somewhere.
    use message_type::*;
    for kind in [
        HELLO,
        HELLO_REJECTED,
        SCOPE_ROOT,
        BUCKET_CONTENTS,
        SYNC,
        SYNC_QUIET,
        REFUSED,
        PING,
        PONG,
        GOODBYE,
        BUCKET_HASHES_SPARSE,
    ] {
        assert!(types_seen.contains(&kind), "no frozen frame of type {kind}");
    }
}

// ---- (b) the frozen village syncs with a live township ----

/// A live township fed the frozen village's frames, flight by flight.
struct Replay {
    township: Node,
    session: Session,
    events: Vec<SessionEvent>,
    /// Status just before the village's goodbye arrived.
    before_goodbye: Option<civsync_protocol::sync::session::SessionStatus>,
}

/// Why replaying one side works, and which side: the session is symmetric
/// (both ends send a hello and a scope root at once, then whatever the
/// other's frames call for), so a frozen side can only be replayed against a
/// live side whose frames call for the same ones: the same buckets, the
/// same number of sync messages per document, each marked as an answer or
/// not the same way. The automerge bytes inside may differ. The live side
/// that gives such answers whatever its release is the empty one: a node
/// holding nothing can only say so, and the frozen side answers that with
/// every change it holds. So the frozen side is the village that carries the
/// documents, and the live side the empty township; it is asserted on what it
/// applied (the heads of every document, which name every change). The
/// reverse (frozen empty township, live village) would check nothing a
/// township ends up holding.
fn replay(frames: &[FrozenFrame]) -> Replay {
    let mut replay = Replay {
        township: replica(TOWNSHIP),
        session: township_session(),
        events: Vec::new(),
        before_goodbye: None,
    };
    let flights = frames.iter().map(|frame| frame.flight).max().unwrap_or(0);
    for flight in 0..=flights {
        // What the township says is not checked against the frozen township:
        // it went to a village that no longer listens.
        drain(&mut replay.session, &mut replay.township);
        for frame in frames.iter().filter(|frame| frame.flight == flight) {
            if frame.bytes[FRAME_HEADER_BYTES] == message_type::GOODBYE {
                replay.before_goodbye = Some(replay.session.status());
            }
            replay
                .session
                .handle_bytes(&frame.bytes, 0, &mut replay.township);
            replay.events.extend(events(&mut replay.session));
        }
    }
    drain(&mut replay.session, &mut replay.township);
    replay.events.extend(events(&mut replay.session));
    replay
}

fn assert_township_synced_with_frozen_village(replay: &Replay, version: u16) {
    let status = replay
        .before_goodbye
        .clone()
        .expect("the frozen village says goodbye at the end");
    assert_eq!(status.last_error, None, "{status:?}");
    assert_eq!(status.state, SessionState::UpToDate, "{status:?}");
    assert!(status.up_to_date, "{status:?}");
    assert_eq!(status.protocol_version, Some(version));
    assert_eq!(status.peer_tier, Some(Tier::Village));
    assert!(replay.events.contains(&SessionEvent::Connected {
        peer: station(VILLAGE),
        peer_tier: Tier::Village,
    }));
    assert!(replay
        .events
        .iter()
        .any(|event| matches!(event, SessionEvent::UpToDate { .. })));
    // The township holds what the village held, change for change.
    let expected = read_documents(version);
    assert!(!expected.is_empty());
    let held: BTreeMap<String, Vec<String>> = replay
        .township
        .documents()
        .iter()
        .map(|document| (document.to_string(), heads_of(&replay.township, document)))
        .collect();
    assert_eq!(held, expected);
    for document in expected.keys() {
        let document: DocumentId = document.parse().unwrap();
        assert!(
            replay.events.iter().any(|event| matches!(
                event,
                SessionEvent::DocumentUpdated { document: updated, changes_applied, .. }
                    if *updated == document && *changes_applied > 0
            )),
            "no changes of {document} applied: {:?}",
            replay.events
        );
    }
    // The village's goodbye ended the session as an orderly close.
    assert!(replay.events.contains(&SessionEvent::Closed {
        reason: CloseReason::PeerGoodbye {
            reason: GOODBYE_REASON.into()
        }
    }));
}

#[test]
fn a_frozen_village_of_every_version_syncs_its_documents_into_a_live_township() {
    for version in FROZEN_VERSIONS {
        let frames = read_frames(version, VILLAGE_FRAMES);
        let replay = replay(&frames);
        assert_township_synced_with_frozen_village(&replay, version);
    }
}

// ---- (c) no version in common: refused, naming both ----

/// A township fed one hello: the reason it gives locally and the reason its
/// `HelloRejected` tells the peer.
fn refuse_hello(hello_frame: &[u8]) -> (String, String) {
    let mut township = replica(TOWNSHIP);
    let mut session = township_session();
    drain(&mut session, &mut township);
    session.handle_bytes(hello_frame, 0, &mut township);
    let events = events(&mut session);
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, SessionEvent::Connected { .. })),
        "{events:?}"
    );
    let local = events
        .iter()
        .find_map(|event| match event {
            SessionEvent::Closed {
                reason: reason @ CloseReason::HelloRejectedByUs { .. },
            } => Some(reason.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("hello not refused: {events:?}"));
    let sent = split_frames(&drain(&mut session, &mut township));
    let told = match sent
        .iter()
        .map(|frame| decode_payload(payload(frame)).unwrap())
        .next_back()
    {
        Some(Message::HelloRejected {
            protocol_version,
            reason,
        }) => {
            assert_eq!(protocol_version, PROTOCOL_VERSION);
            reason
        }
        other => panic!("no HelloRejected sent: {other:?}"),
    };
    assert_eq!(session.status().protocol_version, None);
    (local, told)
}

fn frame_of(payload: Vec<u8>) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend(payload);
    frame
}

#[test]
fn a_hello_with_no_version_in_common_is_refused_naming_both_versions() {
    let ours = VersionRange::OURS.to_string();
    // What a version-2 village sends first: its one version, its station.
    let mut version_2 = vec![message_type::HELLO];
    version_2.extend(postcard::to_allocvec(&2_u16).unwrap());
    version_2.extend(postcard::to_allocvec(&VILLAGE).unwrap());
    // A village of a far future release that no longer speaks ours.
    let future = encode_frame(&Message::Hello {
        versions: VersionRange::exactly(99),
        station: station(VILLAGE),
        tier: Tier::Village,
    })
    .unwrap();
    for (hello, theirs) in [(frame_of(version_2), "version 2"), (future, "version 99")] {
        let (local, told) = refuse_hello(&hello);
        for reason in [&local, &told] {
            assert!(
                reason.contains(&format!("speaks sync protocol {theirs}")),
                "the peer's version ({theirs}) is not named: {reason}"
            );
            assert!(
                reason.contains(&format!("{TOWNSHIP} speaks {ours}")),
                "our version ({ours}) is not named: {reason}"
            );
        }
    }
}

// ---- (d) a newer peer that still speaks version 3 ----

#[test]
fn a_newer_peer_with_appended_hello_fields_is_spoken_to_in_our_version_and_syncs() {
    let mut frames = read_frames(PROTOCOL_VERSION, VILLAGE_FRAMES);
    assert_eq!(frames[0].type_name, "hello");
    // Versions 3 to 4, and whatever fields version 4 appends to its hello.
    let mut newer = encode_frame(&Message::Hello {
        versions: VersionRange {
            min: PROTOCOL_VERSION_MIN,
            max: PROTOCOL_VERSION + 1,
        },
        station: station(VILLAGE),
        tier: Tier::Village,
    })
    .unwrap()
    .split_off(FRAME_HEADER_BYTES);
    newer.extend([0x04, 0xde, 0xad, 0xbe, 0xef, 0x01]);
    frames[0].bytes = frame_of(newer);
    let replay = replay(&frames);
    assert_township_synced_with_frozen_village(&replay, PROTOCOL_VERSION);
}
