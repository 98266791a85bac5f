//! Rolling upgrades, the document side: a document written by a newer
//! release travels to today's node over real sessions between real
//! replicas. A newer MINOR schema only adds optional fields and is taken in;
//! a newer MAJOR one is refused, and the refusal both sides see names the
//! document's schema and the one this node understands.
//!
//! (The checks one level down: `identity/schema.rs` for the version rule,
//! `replica/tests.rs` for a refused major leaving the store untouched.)

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ReadDoc, ROOT};
use civsync_protocol::identity::schema::{current_schema, META_KEY, SCHEMA_KEY};
use civsync_protocol::replica::{Replica, ReplicaConfig};
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::sync::session::{CertifiedPeer, Session, SessionConfig, SessionEvent};
use civsync_protocol::{DocumentId, Month, StationId, Tier};

type Node = Replica<MemoryStorage>;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn replica(at: &str) -> Node {
    let mut node = Replica::open(
        MemoryStorage::new(),
        station(at),
        1,
        ReplicaConfig::default(),
    )
    .unwrap();
    node.set_now_ms(1_793_865_600_000);
    node
}

/// What a newer release writes: its schema in `meta`, and a field today's
/// release does not know.
fn write_as_release(node: &mut Node, document: &DocumentId, schema: &str) {
    node.commit(document, |doc: &mut AutoCommit| {
        let (_, meta) = doc.get(ROOT, META_KEY)?.expect("meta of a new document");
        doc.put(&meta, SCHEMA_KEY, schema)?;
        doc.put(ROOT, "field_of_a_newer_release", "optional")
    })
    .unwrap();
}

fn session(local: &str, peer: &str, local_tier: Tier, peer_tier: Tier) -> Session {
    Session::new(
        station(local),
        CertifiedPeer {
            station: station(peer),
            tier: peer_tier,
        },
        local_tier,
        0,
        SessionConfig::default(),
    )
}

fn drain(session: &mut Session, node: &mut Node, events: &mut Vec<SessionEvent>) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = session.poll_transmit(node) {
        out.extend(bytes);
    }
    events.extend(std::iter::from_fn(|| session.poll_event()));
    out
}

#[test]
fn a_newer_minor_schema_is_taken_in_and_a_newer_major_is_refused_naming_both() {
    let (village_at, township_at) = ("xh/t1/v1", "xh/t1");
    let newer_minor = DocumentId::roster(&station(village_at));
    let newer_major = DocumentId::activities(&station(village_at), Month::new(2026, 11).unwrap());
    let mut village = replica(village_at);
    write_as_release(&mut village, &newer_minor, "1.9");
    write_as_release(&mut village, &newer_major, "2.0");
    let mut township = replica(township_at);
    let mut v = session(village_at, township_at, Tier::Village, Tier::Township);
    let mut t = session(township_at, village_at, Tier::Township, Tier::Village);
    let (mut village_events, mut township_events) = (Vec::new(), Vec::new());
    for round in 0.. {
        assert!(round < 1_000, "the sessions never went quiet");
        let up = drain(&mut v, &mut village, &mut village_events);
        let down = drain(&mut t, &mut township, &mut township_events);
        if up.is_empty() && down.is_empty() {
            break;
        }
        t.handle_bytes(&up, 0, &mut township);
        v.handle_bytes(&down, 0, &mut village);
    }
    assert!(!v.is_closed() && !t.is_closed());

    // The newer minor arrived whole, the field today's release ignores too.
    assert_eq!(
        township.heads(&newer_minor),
        village.heads(&newer_minor),
        "the newer minor was not taken in whole: {township_events:?}"
    );
    let field = township
        .with_document(&newer_minor, |doc| {
            let (value, _) = doc.get(ROOT, "field_of_a_newer_release").ok()??;
            value.as_str().map(str::to_string)
        })
        .unwrap()
        .flatten();
    assert_eq!(field.as_deref(), Some("optional"));

    // The newer major was refused and not stored; both ends read why.
    assert!(!township.holds(&newer_major));
    let ours = current_schema();
    assert_ne!(ours, "2.0");
    let refused_by_township = township_events.iter().find_map(|event| match event {
        SessionEvent::RefusedByUs { document, reason } if *document == newer_major => {
            Some(reason.clone())
        }
        _ => None,
    });
    let told_to_village = village_events.iter().find_map(|event| match event {
        SessionEvent::RefusedByPeer { document, reason } if *document == newer_major => {
            Some(reason.clone())
        }
        _ => None,
    });
    for reason in [refused_by_township, told_to_village] {
        let reason = reason.expect("the newer major is refused, and the village is told");
        assert!(
            reason.contains("schema version 2.0"),
            "the document's schema is not named: {reason}"
        );
        assert!(
            reason.contains(&format!("up to {ours}")),
            "our schema ({ours}) is not named: {reason}"
        );
    }
    // Only the newer major was refused.
    assert!(!township_events.iter().any(|event| matches!(
        event,
        SessionEvent::RefusedByUs { document, .. } if *document == newer_minor
    )));
}
