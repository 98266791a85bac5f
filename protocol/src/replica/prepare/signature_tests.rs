//! Signatures checked ahead: by the preparer, once, and never trusted for
//! a signature other than the one it checked.

use super::LoadedWhole;
use crate::identity::document_id::{DocumentId, Month};
use crate::replica::{Replica, ReplicaConfig, Signing};
use crate::storage::MemoryStorage;
use crate::sync::host::{PreparedMessage, SyncHost};
use crate::sync::signing::keyed_hash::{KeyedHashSigner, KeyedHashVerifier};
use crate::sync::signing::{
    ChangeVerifier, CredentialEntry, PayloadFormat, SignedSyncMessage, VerifiedWriter,
};
use crate::test_support::{signed_node_with, station, SIGNING_ROOT_SECRET};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ROOT};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const FORMAT: PayloadFormat = PayloadFormat::Signed;

/// The stand-in verifier, counting the signatures it is asked to check.
struct CountingVerifier {
    inner: KeyedHashVerifier,
    signatures_checked: AtomicUsize,
}

impl ChangeVerifier for CountingVerifier {
    fn check_credential(&self, credential: &[u8], now_ms: i64) -> Result<VerifiedWriter, String> {
        self.inner.check_credential(credential, now_ms)
    }

    fn signature_matches(&self, credential: &[u8], change: &ChangeHash, signature: &[u8]) -> bool {
        self.signatures_checked.fetch_add(1, Ordering::SeqCst);
        self.inner.signature_matches(credential, change, signature)
    }
}

/// A signing township whose verifier counts what it checks.
fn counted_township() -> (Replica<MemoryStorage>, Arc<CountingVerifier>) {
    let at = station("xh/t1");
    let mut township = Replica::open(
        MemoryStorage::new(),
        at.clone(),
        1,
        ReplicaConfig::default(),
    )
    .unwrap();
    let verifier = Arc::new(CountingVerifier {
        inner: KeyedHashVerifier::new(SIGNING_ROOT_SECRET),
        signatures_checked: AtomicUsize::new(0),
    });
    let tier = township.config().tier_of(&at);
    township
        .set_signing(Signing {
            signer: Some(Arc::new(KeyedHashSigner::new(
                SIGNING_ROOT_SECRET,
                &at,
                tier,
            ))),
            verifier: verifier.clone(),
        })
        .unwrap();
    (township, verifier)
}

fn activities() -> DocumentId {
    DocumentId::activities(&station("xh/t1/v1"), Month::new(2026, 11).unwrap())
}

fn roster() -> DocumentId {
    DocumentId::roster(&station("xh/t1/v1"))
}

/// A signing village that wrote two changes to each of `documents`: sent
/// whole, each document carries one signature, the second change's (it
/// vouches for the first).
fn village_with(documents: &[DocumentId]) -> Replica<MemoryStorage> {
    let mut village = signed_node_with("xh/t1/v1", 1, ReplicaConfig::default());
    for document in documents {
        for key in ["first", "second"] {
            village
                .commit(document, |doc: &mut AutoCommit| {
                    doc.put(ROOT, key, 1).map(|_| ())
                })
                .unwrap();
        }
    }
    village
}

/// The message with which `village` sends `document` whole to `township`,
/// which holds nothing of it (the township's opening is taken in by the
/// village; the township is left waiting for the answer).
fn whole_message(
    village: &mut Replica<MemoryStorage>,
    township: &mut Replica<MemoryStorage>,
    document: &DocumentId,
) -> Vec<u8> {
    let (v, t) = (station("xh/t1/v1"), station("xh/t1"));
    let opening = township
        .generate_sync_message(&v, document, FORMAT)
        .unwrap()
        .expect("a township opens the exchange");
    village.evict_all();
    village
        .receive_sync_message(&t, document, &opening, FORMAT)
        .unwrap();
    village
        .generate_sync_message(&t, document, FORMAT)
        .unwrap()
        .expect("the village answers with the document")
}

/// A counting township waiting for a village's activities, and the
/// message that brings them whole.
fn activities_on_their_way() -> (Replica<MemoryStorage>, Arc<CountingVerifier>, Vec<u8>) {
    let mut village = village_with(&[activities()]);
    let (mut township, verifier) = counted_township();
    let message = whole_message(&mut village, &mut township, &activities());
    (township, verifier, message)
}

fn prepare(
    township: &Replica<MemoryStorage>,
    document: &DocumentId,
    message: &[u8],
) -> PreparedMessage {
    township
        .preparer()
        .expect("a replica prepares")
        .prepare(document, message, FORMAT)
        .expect("a whole document is prepared")
}

#[test]
fn a_whole_documents_signatures_are_checked_by_the_preparer_and_not_again() {
    let v = station("xh/t1/v1");
    let (mut township, verifier, message) = activities_on_their_way();
    let prepared = prepare(&township, &activities(), &message);
    assert_eq!(verifier.signatures_checked.load(Ordering::SeqCst), 1);
    let outcome = township
        .receive_prepared_sync_message(&v, &activities(), &message, FORMAT, Some(prepared))
        .unwrap();
    assert_eq!(outcome.changes_applied, 2);
    assert_eq!(
        verifier.signatures_checked.load(Ordering::SeqCst),
        1,
        "the replica checked again what the preparer checked"
    );
    assert_eq!(township.signature_count(&activities()).unwrap(), 1);

    // Not prepared, the replica checks them itself.
    let (mut township, verifier, message) = activities_on_their_way();
    township
        .receive_prepared_sync_message(&v, &activities(), &message, FORMAT, None)
        .unwrap();
    assert_eq!(verifier.signatures_checked.load(Ordering::SeqCst), 1);
}

#[test]
fn a_signature_other_than_the_one_the_preparer_checked_is_checked_and_refused() {
    let v = station("xh/t1/v1");
    let (mut township, verifier, message) = activities_on_their_way();
    let prepared = prepare(&township, &activities(), &message);
    // The same document with its signatures forged, handed over with what
    // the preparer made of the genuine message.
    let mut forged = SignedSyncMessage::decode(&message, 100).unwrap();
    for entry in &mut forged.signatures {
        entry.signature[0] ^= 1;
    }
    let refused = township
        .receive_prepared_sync_message(&v, &activities(), &forged.encode(), FORMAT, Some(prepared))
        .unwrap_err();
    assert!(refused.to_string().contains("does not verify"), "{refused}");
    assert_eq!(township.heads(&activities()), None);
    assert!(verifier.signatures_checked.load(Ordering::SeqCst) > 1);
}

#[test]
fn signatures_under_a_credential_named_by_id_are_checked_ahead_once_it_was_accepted() {
    let v = station("xh/t1/v1");
    let mut village = village_with(&[activities(), roster()]);
    let (mut township, verifier) = counted_township();
    // The first document carries the village's credential whole.
    let first = whole_message(&mut village, &mut township, &activities());
    township
        .receive_sync_message(&v, &activities(), &first, FORMAT)
        .unwrap();
    // The second names it by id.
    let second = whole_message(&mut village, &mut township, &roster());
    let envelope = SignedSyncMessage::decode(&second, 100).unwrap();
    assert!(matches!(
        envelope.credentials.as_slice(),
        [CredentialEntry::Known(_)]
    ));
    let checked_before = verifier.signatures_checked.load(Ordering::SeqCst);
    let loaded = prepare(&township, &roster(), &second)
        .take::<LoadedWhole>()
        .unwrap();
    assert_eq!(loaded.matched.len(), 1);
    assert_eq!(
        verifier.signatures_checked.load(Ordering::SeqCst),
        checked_before + 1
    );

    // A replica that never accepted the credential leaves them to itself.
    let (mut stranger, _) = counted_township();
    stranger
        .generate_sync_message(&v, &roster(), FORMAT)
        .unwrap();
    let loaded = prepare(&stranger, &roster(), &second)
        .take::<LoadedWhole>()
        .unwrap();
    assert!(loaded.matched.is_empty());
}
