//! The intake over real sessions between two real replicas: a refusal for
//! now is taken back once the registry or the day allows it.

use crate::identity::document_id::{DocumentId, Month};
use crate::identity::station::{Station, StationId, Tier};
use crate::layout;
use crate::replica::intake::{PeerQuotas, DAY_MS};
use crate::replica::{Replica, ReplicaConfig};
use crate::storage::MemoryStorage;
use crate::sync::host::SyncHost;
use crate::sync::session::{
    CertifiedPeer, CloseReason, Session, SessionConfig, SessionEvent, DEFERRED_RECHECK_MS,
};
use crate::sync::signing::PayloadFormat;
use automerge::transaction::Transactable;
use automerge::ROOT;

fn s(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

/// 2026-11-20 at noon, Unix ms.
const NOON_MS: i64 = 1_795_176_000_000;

struct End {
    replica: Replica<MemoryStorage>,
    session: Session,
    events: Vec<SessionEvent>,
}

fn replica(at: &str, tier: Tier, quotas: PeerQuotas) -> Replica<MemoryStorage> {
    let config = ReplicaConfig {
        tier: Some(tier),
        peer_quotas: quotas,
        ..ReplicaConfig::default()
    };
    let mut replica = Replica::open(MemoryStorage::new(), s(at), 3, config).unwrap();
    replica.set_now_ms(NOON_MS);
    replica
}

fn connect(mut a: End, mut b: End, now_ms: u64) -> (End, End) {
    let (a_local, b_local) = (a.replica.local().clone(), b.replica.local().clone());
    let tier = |station: &StationId| {
        if station.depth() == 2 {
            Tier::Township
        } else {
            Tier::Village
        }
    };
    a.session = Session::new(
        a_local.clone(),
        CertifiedPeer {
            station: b_local.clone(),
            tier: tier(&b_local),
        },
        tier(&a_local),
        now_ms,
        SessionConfig::default(),
    );
    b.session = Session::new(
        b_local,
        CertifiedPeer {
            station: a_local.clone(),
            tier: tier(&a_local),
        },
        tier(&a_local.clone()).shifted(1).unwrap(),
        now_ms,
        SessionConfig::default(),
    );
    a.events.clear();
    b.events.clear();
    (a, b)
}

fn end(replica: Replica<MemoryStorage>) -> End {
    let local = replica.local().clone();
    End {
        session: Session::new(
            local.clone(),
            CertifiedPeer {
                station: local,
                tier: Tier::Point,
            },
            Tier::Point,
            0,
            SessionConfig::default(),
        ),
        replica,
        events: Vec::new(),
    }
}

/// Exchange until both sides are silent, telling each session of the
/// documents its own side received (as the node's driver does).
fn pump(a: &mut End, b: &mut End, now_ms: u64) {
    for _ in 0..1_000 {
        let a_out = drain(a);
        let b_out = drain(b);
        if a_out.is_empty() && b_out.is_empty() {
            return;
        }
        b.session.handle_bytes(&a_out, now_ms, &mut b.replica);
        a.session.handle_bytes(&b_out, now_ms, &mut a.replica);
    }
    panic!("the sessions never went quiet");
}

fn drain(end: &mut End) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = end.session.poll_transmit(&mut end.replica) {
        out.extend(bytes);
    }
    while let Some(event) = end.session.poll_event() {
        end.events.push(event);
    }
    out
}

fn roster_of(station: &StationId) -> DocumentId {
    DocumentId::roster(station)
}

fn write(replica: &mut Replica<MemoryStorage>, document: &DocumentId, value: &str) {
    replica
        .commit(document, |doc| doc.put(ROOT, "note", value).map(|_| ()))
        .unwrap();
}

fn register(replica: &mut Replica<MemoryStorage>, owner: &StationId, station: &str) {
    let entry = Station {
        id: s(station),
        name: "实践点".to_string(),
        tier: Tier::Point,
    };
    replica
        .commit(&layout::registry_document(owner), |doc| {
            layout::put_registry_entry(doc, &entry)
        })
        .unwrap();
}

fn refused_for_now(end: &End) -> Vec<String> {
    end.events
        .iter()
        .filter_map(|event| match event {
            SessionEvent::RefusedByUs { document, reason }
                if reason.contains("refused for now") =>
            {
                Some(format!("{document}: {reason}"))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_document_for_a_station_registered_later_arrives_after_the_registry() {
    let (village, point) = (s("xh/t1/v1"), s("xh/t1/v1/p1"));
    let township = end(replica("xh/t1", Tier::Township, PeerQuotas::DEFAULT));
    let mut v = end(replica("xh/t1/v1", Tier::Village, PeerQuotas::DEFAULT));
    write(&mut v.replica, &roster_of(&village), "the village's own");
    write(
        &mut v.replica,
        &roster_of(&point),
        "a point not yet registered",
    );
    let now = NOON_MS as u64;
    let (mut t, mut v) = connect(township, v, now);
    pump(&mut t, &mut v, now);

    // The village's own document is in; the point's is refused for now,
    // named, counted, and stored nowhere.
    assert!(t.replica.holds(&roster_of(&village)));
    assert!(!t.replica.holds(&roster_of(&point)));
    let refused = refused_for_now(&t);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains("xh/t1/v1/p1 is not in the station registry"),
        "{refused:?}"
    );
    let intake = t.replica.peer_intake();
    assert_eq!(intake.len(), 1);
    assert_eq!(intake[0].0, village);
    assert_eq!(intake[0].1.refused_unregistered, 1);
    assert_eq!(intake[0].1.documents_accepted, 1);

    // Nothing lifts the refusal yet: the session stays.
    t.session
        .handle_timeout(now + DEFERRED_RECHECK_MS, &mut t.replica);
    assert!(!t.session.is_closed());

    // The village registers its point; the registry travels up live.
    register(&mut v.replica, &village, "xh/t1/v1/p1");
    v.session
        .document_changed(&layout::registry_document(&village), &mut v.replica);
    pump(&mut t, &mut v, now);
    assert!(t.replica.holds(&layout::registry_document(&village)));

    // The township notices and reconnects, and the village offers the
    // point's document again.
    let later = now + 2 * DEFERRED_RECHECK_MS;
    t.session.handle_timeout(later, &mut t.replica);
    pump(&mut t, &mut v, later);
    assert!(t.session.is_closed());
    assert!(matches!(
        t.events.iter().find_map(|e| match e { SessionEvent::Closed { reason } => Some(reason), _ => None }),
        Some(CloseReason::Local { reason }) if reason.contains("xh/t1/v1/p1")
    ));
    let (mut t, mut v) = connect(t, v, later);
    pump(&mut t, &mut v, later);
    assert!(t.replica.holds(&roster_of(&point)));
    assert!(refused_for_now(&t).is_empty());
}

#[test]
fn a_document_for_a_registered_station_is_taken_at_once() {
    let (village, point) = (s("xh/t1/v1"), s("xh/t1/v1/p1"));
    let township = end(replica("xh/t1", Tier::Township, PeerQuotas::DEFAULT));
    let mut v = end(replica("xh/t1/v1", Tier::Village, PeerQuotas::DEFAULT));
    register(&mut v.replica, &village, "xh/t1/v1/p1");
    let now = NOON_MS as u64;
    let (mut t, mut v) = connect(township, v, now);
    pump(&mut t, &mut v, now);
    assert!(t.replica.holds(&layout::registry_document(&village)));
    write(&mut v.replica, &roster_of(&point), "a registered point");
    v.session
        .document_changed(&roster_of(&point), &mut v.replica);
    pump(&mut t, &mut v, now);
    assert!(t.replica.holds(&roster_of(&point)));
    assert!(refused_for_now(&t).is_empty());
    assert_eq!(t.replica.peer_intake()[0].1.refused_unregistered, 0);
}

#[test]
fn documents_over_the_daily_quota_arrive_the_next_day() {
    let quotas = PeerQuotas {
        documents_per_day_max: 2,
        ..PeerQuotas::DEFAULT
    };
    let township = end(replica("xh/t1", Tier::Township, quotas));
    let mut v = end(replica("xh/t1/v1", Tier::Village, quotas));
    let village = s("xh/t1/v1");
    let months: Vec<DocumentId> = (1..=3)
        .map(|m| DocumentId::activities(&village, Month::new(2026, m).unwrap()))
        .collect();
    for document in &months {
        write(&mut v.replica, document, "a month");
    }
    let now = NOON_MS as u64;
    let (mut t, mut v) = connect(township, v, now);
    pump(&mut t, &mut v, now);
    let held = months.iter().filter(|d| t.replica.holds(d)).count();
    assert_eq!(held, 2);
    let refused = refused_for_now(&t);
    assert!(
        refused[0].contains("over the quota of 2 new documents a day"),
        "{refused:?}"
    );
    assert_eq!(t.replica.peer_intake()[0].1.refused_over_quota, 1);

    // Later the same day: still refused, the session stays.
    t.session
        .handle_timeout(now + DEFERRED_RECHECK_MS, &mut t.replica);
    assert!(!t.session.is_closed());

    // The next day, by the time passed in: reconnect, and the third arrives.
    let tomorrow = now + DAY_MS as u64;
    t.replica.set_now_ms(NOON_MS + DAY_MS);
    t.session.handle_timeout(tomorrow, &mut t.replica);
    pump(&mut t, &mut v, tomorrow);
    assert!(t.session.is_closed());
    let (mut t, mut v) = connect(t, v, tomorrow);
    pump(&mut t, &mut v, tomorrow);
    assert!(months.iter().all(|d| t.replica.holds(d)));
    assert_eq!(t.replica.peer_intake()[0].1.documents_accepted, 1);
}

#[test]
fn a_parent_is_not_metered() {
    let quotas = PeerQuotas {
        documents_per_day_max: 0,
        ..PeerQuotas::DEFAULT
    };
    let mut t = replica("xh/t1", Tier::Township, quotas);
    let mut v = replica("xh/t1/v1", Tier::Village, quotas);
    // The township's own reference document flows down to the village.
    let menu = DocumentId::reference(&s("xh/t1"), "menu").unwrap();
    write(&mut t, &menu, "a menu");
    crate::test_support::sync_document(&mut t, &mut v, &menu);
    assert!(v.holds(&menu));
    assert!(v.peer_intake().is_empty());
    // The other way, the village is metered: no new document at all today.
    let roster = roster_of(&s("xh/t1/v1"));
    write(&mut v, &roster, "a roster");
    let message = v
        .generate_sync_message(&s("xh/t1"), &roster, PayloadFormat::Signed)
        .unwrap()
        .unwrap();
    let refused = t.receive_sync_message(&s("xh/t1/v1"), &roster, &message, PayloadFormat::Signed);
    assert!(
        matches!(
            refused,
            Err(crate::sync::host::ReceiveError::Deferred { .. })
        ),
        "{refused:?}"
    );
    assert!(!t.holds(&roster));
}

#[test]
fn a_township_restarted_the_same_day_keeps_counting_a_peers_quota() {
    let quotas = PeerQuotas {
        documents_per_day_max: 2,
        ..PeerQuotas::DEFAULT
    };
    let township = end(replica("xh/t1", Tier::Township, quotas));
    let mut v = end(replica("xh/t1/v1", Tier::Village, quotas));
    let village = s("xh/t1/v1");
    let months: Vec<DocumentId> = (1..=3)
        .map(|m| DocumentId::activities(&village, Month::new(2026, m).unwrap()))
        .collect();
    write(&mut v.replica, &months[0], "a month");
    write(&mut v.replica, &months[1], "a month");
    let now = NOON_MS as u64;
    let (mut t, mut v) = connect(township, v, now);
    pump(&mut t, &mut v, now);
    assert_eq!(t.replica.peer_intake()[0].1.documents_accepted, 2);
    t.replica.flush().unwrap();

    // The township's node restarts (a crash keeps what was flushed); the
    // village then brings a third new document the same day.
    let storage = t.replica.into_storage().crashed_copy();
    let config = ReplicaConfig {
        tier: Some(Tier::Township),
        peer_quotas: quotas,
        ..ReplicaConfig::default()
    };
    let mut reopened = Replica::open(storage, s("xh/t1"), 3, config).unwrap();
    reopened.set_now_ms(NOON_MS);
    let counted = reopened.peer_intake();
    assert_eq!(counted.len(), 1, "the counts are read back: {counted:?}");
    assert_eq!(counted[0].1.documents_accepted, 2);
    write(&mut v.replica, &months[2], "a month");
    let (mut t, mut v) = connect(end(reopened), v, now);
    pump(&mut t, &mut v, now);
    assert!(!t.replica.holds(&months[2]), "the quota was not reset");
    let refused = refused_for_now(&t);
    assert!(
        refused
            .iter()
            .any(|r| r.contains("over the quota of 2 new documents a day")),
        "{refused:?}"
    );
}
