//! Bundles between replicas that never link: a village's week carried to
//! its township, the receipt carried back, and what a bundle may not do.

use crate::identity::document_id::DocumentId;
use crate::identity::station::Tier;
use crate::replica::{Replica, ReplicaConfig};
use crate::storage::MemoryStorage;
use crate::sync::authority::UnsignedChanges;
use crate::sync::bundle::BundleContents;
use crate::sync::signing::keyed_hash::KeyedHashSigner;
use crate::sync::signing::{ChangeSigner, CredentialEntry, SignatureEntry, SignedSyncMessage};
use crate::test_support::{
    signed_node_with, station, sync_document, SIGNING_ROOT_SECRET as ROOT_SECRET,
};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};

fn signed_node(at: &str, incarnation: u64) -> Replica<MemoryStorage> {
    let config = ReplicaConfig {
        unsigned_changes: UnsignedChanges::FromWriterOnly,
        ..ReplicaConfig::default()
    };
    signed_node_with(at, incarnation, config)
}

fn roster() -> DocumentId {
    DocumentId::roster(&station("xh/t1/v1"))
}

fn write(node: &mut Replica<MemoryStorage>, document: &DocumentId, key: &str) {
    node.commit(document, |doc| doc.put(ROOT, key, 1i64))
        .unwrap();
}

/// Export from `from` for `to`, through bytes, and import at `to`.
fn carry(
    from: &mut Replica<MemoryStorage>,
    to: &mut Replica<MemoryStorage>,
    full: bool,
) -> crate::replica::bundles::BundleImport {
    let export = from.export_bundle(to.local(), full).unwrap();
    let checked = BundleContents::decode(&export.contents.encode()).unwrap();
    to.import_bundle(checked).unwrap()
}

#[test]
fn a_villages_week_reaches_a_township_it_never_linked_to_with_its_signatures() {
    let mut village = signed_node("xh/t1/v1", 1);
    let mut township = signed_node("xh/t1", 1);
    for day in 0..7 {
        write(&mut village, &roster(), &format!("day {day}"));
    }
    let taken = carry(&mut village, &mut township, false);
    assert_eq!(taken.documents_changed, 1, "{taken:?}");
    assert_eq!(taken.changes_applied, 7);
    assert!(taken.documents_refused.is_empty(), "{taken:?}");
    assert_eq!(township.heads(&roster()), village.heads(&roster()));
    assert_eq!(township.signature_count(&roster()).unwrap(), 7);

    // The same bundle again applies nothing.
    let again = carry(&mut village, &mut township, false);
    assert_eq!((again.documents_changed, again.changes_applied), (0, 0));
    assert_eq!(again.documents_unchanged, 1);
    // And the township hands the village's signed changes on to the county.
    let mut county = signed_node("xh", 1);
    sync_document(&mut township, &mut county, &roster());
    assert_eq!(county.heads(&roster()), village.heads(&roster()));
}

#[test]
fn the_receipt_carried_back_makes_the_next_bundle_hold_only_what_is_new() {
    let mut village = signed_node("xh/t1/v1", 1);
    let mut township = signed_node("xh/t1", 1);
    write(&mut village, &roster(), "monday");
    carry(&mut village, &mut township, false);
    // Without a receipt the village cannot know: it sends the change again.
    let before_receipt = village.export_bundle(&station("xh/t1"), false).unwrap();
    assert_eq!(before_receipt.changes, 1);
    // The township's bundle back lists what it holds.
    let receipt = carry(&mut township, &mut village, false);
    assert!(receipt.documents_refused.is_empty(), "{receipt:?}");
    let nothing_new = village.export_bundle(&station("xh/t1"), false).unwrap();
    assert_eq!((nothing_new.documents, nothing_new.changes), (0, 0));
    write(&mut village, &roster(), "tuesday");
    let next = village.export_bundle(&station("xh/t1"), false).unwrap();
    assert_eq!((next.documents, next.changes), (1, 1));
    // What a link left shared counts as held too.
    sync_document(&mut village, &mut township, &roster());
    let after_link = village.export_bundle(&station("xh/t1"), false).unwrap();
    assert_eq!(after_link.changes, 0);
}

#[test]
fn a_bundle_for_another_station_or_from_this_one_is_refused_naming_it() {
    let mut village = signed_node("xh/t1/v1", 1);
    let mut other = signed_node("xh/t2", 1);
    write(&mut village, &roster(), "clerk");
    let export = village.export_bundle(&station("xh/t1"), false).unwrap();
    let checked = BundleContents::decode(&export.contents.encode()).unwrap();
    let refused = other.import_bundle(checked.clone()).unwrap_err();
    assert!(
        refused.contains("the bundle is for xh/t1, not for this station (xh/t2)"),
        "{refused}"
    );
    let mut own = checked;
    own.to = station("xh/t1/v1");
    let refused = village.import_bundle(own).unwrap_err();
    assert!(refused.contains("written by this station"), "{refused}");
    assert!(village.export_bundle(&station("xh/t1/v1"), false).is_err());
}

#[test]
fn a_tampered_signature_or_a_forged_writer_in_a_bundle_is_refused_and_nothing_kept() {
    let mut village = signed_node("xh/t1/v1", 1);
    let mut township = signed_node("xh/t1", 1);
    let mut county = signed_node("xh", 1);
    write(&mut village, &roster(), "clerk");
    // The county has seen the village sign.
    carry(&mut village, &mut county, false);
    let export = village.export_bundle(&station("xh/t1"), false).unwrap();
    let mut checked = BundleContents::decode(&export.contents.encode()).unwrap();
    let mut envelope = SignedSyncMessage::decode(&checked.documents[0].1, usize::MAX).unwrap();
    envelope.signatures[0].signature[0] ^= 1;
    checked.documents[0].1 = envelope.encode();
    let taken = township.import_bundle(checked).unwrap();
    assert_eq!(taken.changes_applied, 0);
    assert_eq!(taken.documents_refused.len(), 1, "{taken:?}");
    assert!(
        taken.documents_refused[0].1.contains("does not verify"),
        "{taken:?}"
    );
    assert!(!township.holds(&roster()));

    // A township's bundle to the county carrying a change it made as the
    // village, signed with its own key or not at all.
    let mut forged =
        AutoCommit::new().with_actor(crate::identity::actor::actor_for(&station("xh/t1/v1"), 66));
    forged.put(ROOT, "forged", 1i64).unwrap();
    forged.commit();
    let change = forged.get_last_local_change().unwrap().clone();
    let signer = KeyedHashSigner::new(ROOT_SECRET, &station("xh/t1"), Tier::Township);
    for signed in [true, false] {
        let (credentials, signatures) = if signed {
            (
                vec![CredentialEntry::Whole(signer.credential().to_vec())],
                vec![SignatureEntry {
                    change: change.hash().0,
                    credential: 0,
                    signature: signer.sign(&change.hash()),
                }],
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let envelope = SignedSyncMessage {
            automerge: change.raw_bytes().to_vec(),
            credentials,
            signatures,
        };
        let bundle = crate::sync::bundle::CheckedBundle {
            from: station("xh/t1"),
            to: station("xh"),
            created_ms: 0,
            documents: vec![(roster(), envelope.encode())],
            holds: Vec::new(),
        };
        let heads = county.heads(&roster()).map(<[_]>::to_vec);
        let taken = county.import_bundle(bundle).unwrap();
        assert_eq!(taken.changes_applied, 0, "signed: {signed}");
        assert_eq!(taken.documents_refused.len(), 1, "signed: {signed}");
        let expected = if signed {
            "signed under a certificate of station xh/t1 but written as station xh/t1/v1"
        } else {
            "relayed"
        };
        assert!(
            taken.documents_refused[0].1.contains(expected),
            "signed: {signed}: {taken:?}"
        );
        assert_eq!(county.heads(&roster()).map(<[_]>::to_vec), heads);
    }
}

#[test]
fn a_bundle_built_on_changes_the_recipient_lacks_is_refused_whole_until_sent_full() {
    let mut village = signed_node("xh/t1/v1", 1);
    let mut township = signed_node("xh/t1", 1);
    write(&mut village, &roster(), "monday");
    carry(&mut village, &mut township, false);
    carry(&mut township, &mut village, false);
    // The township loses its store; the village still believes it holds
    // Monday.
    let mut township = signed_node("xh/t1", 2);
    write(&mut village, &roster(), "tuesday");
    let taken = carry(&mut village, &mut township, false);
    assert_eq!(taken.documents_refused.len(), 1, "{taken:?}");
    assert!(
        taken.documents_refused[0]
            .1
            .contains("xh/t1/v1 must export again with --full"),
        "{taken:?}"
    );
    assert!(!township.holds(&roster()));
    let full = carry(&mut village, &mut township, true);
    assert_eq!(full.changes_applied, 2, "{full:?}");
    assert_eq!(township.heads(&roster()), village.heads(&roster()));
}

#[test]
fn the_changes_travel_as_one_bundle_chunk() {
    let mut village = signed_node("xh/t1/v1", 1);
    for day in 0..3 {
        write(&mut village, &roster(), &format!("day {day}"));
    }
    let export = village.export_bundle(&station("xh/t1"), false).unwrap();
    let envelope =
        SignedSyncMessage::decode(&export.contents.documents[0].envelope, usize::MAX).unwrap();
    // Chunk header: 4 magic bytes, 4 checksum bytes, then the type.
    assert_eq!(
        envelope.automerge[8], 3,
        "chunk type 3, an Automerge bundle"
    );
    assert_eq!(envelope.signatures.len(), 3);
}
