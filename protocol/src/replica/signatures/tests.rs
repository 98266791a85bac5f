//! Signed changes between replicas: any carrier, and no forgery.

use super::Signing;
use crate::identity::actor::actor_for;
use crate::identity::document_id::DocumentId;
use crate::identity::station::Tier;
use crate::replica::{Replica, ReplicaConfig};
use crate::storage::MemoryStorage;
use crate::sync::authority::AuthorityError;
use crate::sync::host::{ReceiveError, SyncHost};
use crate::sync::signing::keyed_hash::{KeyedHashSigner, KeyedHashVerifier};
use crate::sync::signing::{PayloadFormat, SignedSyncMessage};
use crate::test_support::{
    signed_node_with, station, sync_document, SIGNING_ROOT_SECRET as ROOT_SECRET,
};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use std::sync::Arc;

pub(super) fn signed_node(at: &str, incarnation: u64) -> Replica<MemoryStorage> {
    signed_node_with(at, incarnation, ReplicaConfig::default())
}

pub(super) fn roster() -> DocumentId {
    DocumentId::roster(&station("xh/t1/v1"))
}

pub(super) fn write(node: &mut Replica<MemoryStorage>, document: &DocumentId, key: &str) {
    node.commit(document, |doc| doc.put(ROOT, key, 1i64))
        .unwrap();
}

#[test]
fn a_county_that_lost_its_store_gets_its_own_writes_back_from_a_township() {
    let mut village = signed_node("xh/t1/v1", 1);
    let mut township = signed_node("xh/t1", 1);
    let mut county = signed_node("xh", 1);
    write(&mut village, &roster(), "clerk");
    sync_document(&mut village, &mut township, &roster());
    sync_document(&mut township, &mut county, &roster());
    // The county loads a correction for the village, as county staff do.
    write(&mut county, &roster(), "county staff");
    sync_document(&mut county, &mut township, &roster());
    assert_eq!(township.heads(&roster()), county.heads(&roster()));

    // Its disk dies; a new store with the same certificate refills from the
    // township: the village's changes and its own, relayed.
    let mut restored = signed_node("xh", 2);
    township.peer_disconnected(&station("xh"));
    sync_document(&mut restored, &mut township, &roster());
    assert_eq!(restored.heads(&roster()), county.heads(&roster()));
    assert_eq!(
        restored.signature_count(&roster()).unwrap(),
        county.signature_count(&roster()).unwrap()
    );
    assert_eq!(restored.signature_count(&roster()).unwrap(), 2);
    // And it hands the signatures on: a second restore from the first.
    let mut again = signed_node("xh", 3);
    sync_document(&mut again, &mut restored, &roster());
    assert_eq!(again.heads(&roster()), county.heads(&roster()));
}

#[test]
fn without_signatures_a_township_cannot_hand_the_county_its_own_writes() {
    // The rule before signing, kept for unsigned changes: the county's own
    // unsigned change, relayed by a township, is refused.
    let mut township = signed_node("xh/t1", 1);
    let mut county = Replica::open(
        MemoryStorage::new(),
        station("xh"),
        1,
        ReplicaConfig::default(),
    )
    .unwrap();
    write(&mut county, &roster(), "unsigned");
    sync_document(&mut county, &mut township, &roster());
    let mut restored = Replica::open(
        MemoryStorage::new(),
        station("xh"),
        2,
        ReplicaConfig::default(),
    )
    .unwrap();
    township.peer_disconnected(&station("xh"));
    let refused = first_refusal(&mut restored, &mut township, &roster());
    assert!(
        matches!(
            refused,
            ReceiveError::Refused(AuthorityError::NotCarriable { .. })
        ),
        "{refused}"
    );
}

/// A township's change made as `as_station`, signed (or
/// not) by the township's own key, wrapped as the township would send it.
fn forged_message(as_station: &str, signed_by_township: bool) -> Vec<u8> {
    let mut doc = AutoCommit::new().with_actor(actor_for(&station(as_station), 66));
    doc.put(ROOT, "forged", 1i64).unwrap();
    doc.commit();
    let change = doc.get_last_local_change().unwrap().clone();
    let message = automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: vec![change.raw_bytes().to_vec()].into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    let change = change.hash();
    let township = KeyedHashSigner::new(ROOT_SECRET, &station("xh/t1"), Tier::Township);
    use crate::sync::signing::{ChangeSigner, CredentialEntry, SignatureEntry};
    let (credentials, signatures) = if signed_by_township {
        (
            vec![CredentialEntry::Whole(township.credential().to_vec())],
            vec![SignatureEntry {
                change: change.0,
                credential: 0,
                signature: township.sign(&change),
            }],
        )
    } else {
        (Vec::new(), Vec::new())
    };
    SignedSyncMessage {
        automerge: message.encode(),
        credentials,
        signatures,
    }
    .encode()
}

#[test]
fn a_township_cannot_forge_a_villages_or_the_countys_change() {
    // Both have been seen signing: the village's roster reached the county,
    // the county's menu reached the village.
    let mut village = signed_node("xh/t1/v1", 1);
    let mut township = signed_node("xh/t1", 1);
    let mut county = signed_node("xh", 1);
    let menu = DocumentId::reference(&station("xh"), "menu").unwrap();
    write(&mut village, &roster(), "clerk");
    write(&mut county, &menu, "item");
    sync_document(&mut village, &mut township, &roster());
    sync_document(&mut township, &mut county, &roster());
    sync_document(&mut county, &mut township, &menu);
    sync_document(&mut township, &mut village, &menu);
    let (county_heads, village_heads) = (
        county.heads(&roster()).map(<[_]>::to_vec),
        village.heads(&menu).map(<[_]>::to_vec),
    );

    let t1 = station("xh/t1");
    for signed in [true, false] {
        let refused = county
            .receive_sync_message(
                &t1,
                &roster(),
                &forged_message("xh/t1/v1", signed),
                PayloadFormat::Signed,
            )
            .unwrap_err();
        let expected = if signed {
            "signed under a certificate of station xh/t1 but written as station xh/t1/v1"
        } else {
            "which signs its changes"
        };
        assert!(refused.to_string().contains(expected), "{refused}");
        let refused = village
            .receive_sync_message(
                &t1,
                &menu,
                &forged_message("xh", signed),
                PayloadFormat::Signed,
            )
            .unwrap_err();
        let expected = if signed {
            "written as station xh:"
        } else {
            "which signs its changes"
        };
        assert!(
            refused.to_string().contains(expected.trim_end_matches(':')),
            "{refused}"
        );
    }
    assert_eq!(county.heads(&roster()).map(<[_]>::to_vec), county_heads);
    assert_eq!(village.heads(&menu).map(<[_]>::to_vec), village_heads);
}

#[test]
fn a_signature_that_does_not_verify_is_refused_naming_the_change() {
    let mut village = signed_node("xh/t1/v1", 1);
    let mut township = signed_node("xh/t1", 1);
    write(&mut village, &roster(), "clerk");
    let (v, t) = (station("xh/t1/v1"), station("xh/t1"));
    let hello = township
        .generate_sync_message(&v, &roster(), PayloadFormat::Signed)
        .unwrap()
        .unwrap();
    let first = village
        .generate_sync_message(&t, &roster(), PayloadFormat::Signed)
        .unwrap()
        .unwrap();
    township
        .receive_sync_message(&v, &roster(), &first, PayloadFormat::Signed)
        .unwrap();
    village
        .receive_sync_message(&t, &roster(), &hello, PayloadFormat::Signed)
        .unwrap();
    let message = village
        .generate_sync_message(&t, &roster(), PayloadFormat::Signed)
        .unwrap()
        .unwrap();
    let mut envelope = SignedSyncMessage::decode(&message, 100).unwrap();
    assert!(!envelope.signatures.is_empty());
    for entry in &mut envelope.signatures {
        entry.signature[0] ^= 1;
    }
    let refused = township
        .receive_sync_message(
            &station("xh/t1/v1"),
            &roster(),
            &envelope.encode(),
            PayloadFormat::Signed,
        )
        .unwrap_err();
    assert!(refused.to_string().contains("does not verify"), "{refused}");
    assert_eq!(township.heads(&roster()), None);
}

/// Sync `document` from `a` and `b` in turns until `a` refuses; the refusal.
fn first_refusal(
    a: &mut Replica<MemoryStorage>,
    b: &mut Replica<MemoryStorage>,
    document: &DocumentId,
) -> ReceiveError {
    let (a_station, b_station) = (a.local().clone(), b.local().clone());
    for _ in 0..10 {
        if let Some(message) = a
            .generate_sync_message(&b_station, document, PayloadFormat::Signed)
            .unwrap()
        {
            b.receive_sync_message(&a_station, document, &message, PayloadFormat::Signed)
                .unwrap();
        }
        if let Some(message) = b
            .generate_sync_message(&a_station, document, PayloadFormat::Signed)
            .unwrap()
        {
            if let Err(refused) =
                a.receive_sync_message(&b_station, document, &message, PayloadFormat::Signed)
            {
                return refused;
            }
        }
    }
    panic!("nothing was refused");
}

#[test]
fn a_station_that_upgraded_vouches_for_its_unsigned_history_and_only_its_own() {
    // The village wrote before its release signed, then upgraded.
    let mut village = Replica::open(
        MemoryStorage::new(),
        station("xh/t1/v1"),
        1,
        ReplicaConfig::default(),
    )
    .unwrap();
    write(&mut village, &roster(), "before the upgrade");
    village
        .set_signing(Signing {
            signer: Some(Arc::new(KeyedHashSigner::new(
                ROOT_SECRET,
                &station("xh/t1/v1"),
                Tier::Village,
            ))),
            verifier: Arc::new(KeyedHashVerifier::new(ROOT_SECRET)),
        })
        .unwrap();
    write(&mut village, &roster(), "after the upgrade");
    let mut township = signed_node("xh/t1", 1);
    sync_document(&mut village, &mut township, &roster());
    // A county that takes relayed unsigned changes from no one takes the
    // village's unsigned history from the township: the village's signed
    // change depends on it.
    let strict = ReplicaConfig {
        unsigned_changes: crate::sync::authority::UnsignedChanges::FromWriterOnly,
        ..ReplicaConfig::default()
    };
    let mut county = signed_node_with("xh", 1, strict);
    sync_document(&mut county, &mut township, &roster());
    assert_eq!(county.heads(&roster()), village.heads(&roster()));

    // The township's own signed change on top of a forgery does not vouch
    // for the forgery: it is another station's.
    let mut forger = AutoCommit::new().with_actor(actor_for(&station("xh/t1/v1"), 66));
    forger.put(ROOT, "forged", 1i64).unwrap();
    forger.commit();
    let forged = forger.get_last_local_change().unwrap().clone();
    let mut on_top = AutoCommit::new().with_actor(actor_for(&station("xh/t1"), 67));
    on_top.apply_changes([forged.clone()]).unwrap();
    on_top.put(ROOT, "on top", 1i64).unwrap();
    on_top.commit();
    let cover = on_top.get_last_local_change().unwrap().clone();
    let township_key = KeyedHashSigner::new(ROOT_SECRET, &station("xh/t1"), Tier::Township);
    use crate::sync::signing::{ChangeSigner, CredentialEntry, SignatureEntry};
    let message = SignedSyncMessage {
        automerge: automerge::sync::Message {
            heads: Vec::new(),
            need: Vec::new(),
            have: Vec::new(),
            changes: vec![forged.raw_bytes().to_vec(), cover.raw_bytes().to_vec()].into(),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        }
        .encode(),
        credentials: vec![CredentialEntry::Whole(township_key.credential().to_vec())],
        signatures: vec![SignatureEntry {
            change: cover.hash().0,
            credential: 0,
            signature: township_key.sign(&cover.hash()),
        }],
    }
    .encode();
    let refused = county
        .receive_sync_message(
            &station("xh/t1"),
            &roster(),
            &message,
            PayloadFormat::Signed,
        )
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("unsigned changes are taken only from their writer's own link"),
        "{refused}"
    );
}

/// A message of `changes` (raw) from the village, each signed by it.
fn village_message(changes: &[automerge::Change]) -> Vec<u8> {
    village_message_signing(changes, changes)
}

/// A message of `changes` (raw) with the village's signatures of `signed`.
pub(super) fn village_message_signing(
    changes: &[automerge::Change],
    signed: &[automerge::Change],
) -> Vec<u8> {
    use crate::sync::signing::{ChangeSigner, CredentialEntry, SignatureEntry};
    let village = KeyedHashSigner::new(ROOT_SECRET, &station("xh/t1/v1"), Tier::Village);
    let message = automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: changes
            .iter()
            .map(|change| change.raw_bytes().to_vec())
            .collect::<Vec<_>>()
            .into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    SignedSyncMessage {
        automerge: message.encode(),
        credentials: vec![CredentialEntry::Whole(village.credential().to_vec())],
        signatures: signed
            .iter()
            .map(|change| SignatureEntry {
                change: change.hash().0,
                credential: 0,
                signature: village.sign(&change.hash()),
            })
            .collect(),
    }
    .encode()
}

/// A village, township and `county` that all hold the village's first
/// change, and the village's next two, not sent yet.
pub(super) struct TwoChangesOnTheirWay {
    pub(super) village: Replica<MemoryStorage>,
    pub(super) township: Replica<MemoryStorage>,
    pub(super) county: Replica<MemoryStorage>,
    /// The heads all three hold.
    pub(super) held: Vec<automerge::ChangeHash>,
    pub(super) second: automerge::Change,
    pub(super) third: automerge::Change,
}

pub(super) fn two_changes_on_their_way(mut county: Replica<MemoryStorage>) -> TwoChangesOnTheirWay {
    let mut village = signed_node("xh/t1/v1", 1);
    let mut township = signed_node("xh/t1", 1);
    write(&mut village, &roster(), "first");
    sync_document(&mut village, &mut township, &roster());
    sync_document(&mut township, &mut county, &roster());
    write(&mut village, &roster(), "second");
    write(&mut village, &roster(), "third");
    let held = township.heads(&roster()).unwrap().to_vec();
    let (second, third) = village
        .with_document(&roster(), |doc| {
            let changes: Vec<automerge::Change> = doc.clone().get_changes(&held);
            (changes[0].clone(), changes[1].clone())
        })
        .unwrap()
        .unwrap();
    TwoChangesOnTheirWay {
        village,
        township,
        county,
        held,
        second,
        third,
    }
}

#[test]
fn a_change_that_waited_for_its_dependency_keeps_its_signature_and_relays_signed() {
    let TwoChangesOnTheirWay {
        village,
        mut township,
        mut county,
        held,
        second,
        third,
    } = two_changes_on_their_way(signed_node("xh", 1));
    let from = station("xh/t1/v1");
    // The third change arrives before the second it depends on (a lost
    // flight, a reordered chunk): it waits in the document's queue.
    township
        .receive_sync_message(
            &from,
            &roster(),
            &village_message(&[third]),
            PayloadFormat::Signed,
        )
        .unwrap();
    assert_eq!(township.heads(&roster()).unwrap(), held.as_slice());
    township
        .receive_sync_message(
            &from,
            &roster(),
            &village_message(&[second]),
            PayloadFormat::Signed,
        )
        .unwrap();
    assert_eq!(township.heads(&roster()), village.heads(&roster()));
    assert_eq!(
        township.signature_count(&roster()).unwrap(),
        3,
        "the change applied from the queue keeps the signature it came with"
    );
    // Relayed, every change is signed: the county takes them all.
    sync_document(&mut township, &mut county, &roster());
    assert_eq!(county.heads(&roster()), village.heads(&roster()));
}

#[test]
fn a_start_with_the_credential_already_kept_writes_and_flushes_nothing() {
    let signing = || Signing {
        signer: Some(Arc::new(KeyedHashSigner::new(
            ROOT_SECRET,
            &station("xh/t1/v1"),
            Tier::Village,
        ))),
        verifier: Arc::new(KeyedHashVerifier::new(ROOT_SECRET)),
    };
    let open =
        |storage| Replica::open(storage, station("xh/t1/v1"), 1, ReplicaConfig::default()).unwrap();
    let mut first = open(MemoryStorage::new());
    let opened = first.storage().stats();
    first.set_signing(signing()).unwrap();
    let kept = first.storage().stats();
    assert_eq!(
        (kept.applies - opened.applies, kept.flushes - opened.flushes),
        (1, 1),
        "the first start keeps it"
    );
    // The next start: the same certificate, already kept.
    let mut again = open(first.into_storage());
    let before = again.storage().stats();
    again.set_signing(signing()).unwrap();
    let after = again.storage().stats();
    assert_eq!(
        (after.applies, after.flushes),
        (before.applies, before.flushes),
        "a start with its credential kept waits for no flush"
    );
    assert!(again.signs());
}
