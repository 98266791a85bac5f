//! A whole document received from a peer, loaded before the replica takes
//! the message in, by whoever holds a [`WholePreparer`]: the node runs it
//! on the link's task, so the store's one thread does not spend a cold
//! county's refill loading 2,600 documents (Automerge's `load` was a third
//! of that thread's time, with the other core half idle).
//!
//! Only what the message alone decides happens here: the size and decode
//! limits, decoding, loading the document chunk and applying the changes
//! after it, and whether each of its changes' signatures matches under the
//! credential it names (an ECDSA check per change, which a cold county's
//! one store thread would otherwise make for all 22,500). Everything that needs the replica — whether it holds
//! the document already, whether a credential is valid and whose it is,
//! the authority of every change, the sync state, storage — stays in
//! `receive_whole_document`, which takes the loaded document instead of
//! loading it and skips only the signatures found matching here. A message
//! this cannot prepare, or prepares wrongly, is taken in as before and
//! refused there with the same error: preparing never decides an outcome,
//! it only moves work.

use super::bounds::{self, DecodeCost, DecodeLimits};
use super::chunks;
use super::config::ReplicaConfig;
use super::signatures::{AcceptedCredentials, MatchedSignatures};
use super::Replica;
use crate::identity::document_id::DocumentId;
use crate::storage::Storage;
use crate::sync::host::{MessagePreparer, PreparedMessage, ReceiveError};
use crate::sync::signing::{
    credential_id, ChangeVerifier, CredentialEntry, PayloadFormat, SignedSyncMessage,
};
use automerge::sync::Message;
use automerge::{AutoCommit, Change, ChangeHash, LoadOptions, OnPartialLoad, VerificationMode};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The limits a replica applies to a message before decoding it, copied
/// out of its configuration so that they travel to another thread, and
/// what it checks signatures with.
#[derive(Clone)]
pub struct WholePreparer {
    message_bytes_max: usize,
    changes_max: usize,
    decode_limits: DecodeLimits,
    signatures: Option<SignatureCheck>,
}

/// The replica's verifier and the credentials it accepted: enough to tell
/// whether a signature matches, not whether its credential is valid.
#[derive(Clone)]
struct SignatureCheck {
    verifier: Arc<dyn ChangeVerifier>,
    accepted: Arc<AcceptedCredentials>,
}

/// A whole-document message's document, loaded with the changes after it
/// applied (the actor is set by the replica that takes it), and which of
/// its changes' signatures were found to match.
pub(super) struct LoadedWhole {
    pub(super) doc: AutoCommit,
    pub(super) matched: MatchedSignatures,
}

impl WholePreparer {
    /// A preparer that loads but checks no signature.
    pub fn new(config: &ReplicaConfig) -> WholePreparer {
        WholePreparer {
            message_bytes_max: config.sync_message_bytes_max,
            changes_max: config.sync_message_changes_max,
            decode_limits: config.decode_limits,
            signatures: None,
        }
    }

    fn checking_signatures(mut self, check: SignatureCheck) -> WholePreparer {
        self.signatures = Some(check);
        self
    }

    /// Does this preparer check signatures ahead of its replica?
    pub fn checks_signatures(&self) -> bool {
        self.signatures.is_some()
    }

    /// The loaded document if `message` is a whole document (alone or with
    /// changes after it) that passes every check made without the replica.
    fn load(
        &self,
        document: &DocumentId,
        message: &[u8],
        format: PayloadFormat,
    ) -> Option<LoadedWhole> {
        check_message_bytes(self.message_bytes_max, document, message.len()).ok()?;
        let envelope = match format {
            PayloadFormat::Plain => None,
            PayloadFormat::Signed => {
                Some(SignedSyncMessage::decode(message, self.changes_max).ok()?)
            }
        };
        let payload = envelope
            .as_ref()
            .map_or(message, |envelope| envelope.automerge.as_slice());
        check_message_bytes(self.message_bytes_max, document, payload.len()).ok()?;
        let decoded = Message::decode(payload).ok()?;
        check_decode_cost(&self.decode_limits, document, &decoded).ok()?;
        if decoded.changes.len() != 1 {
            return None;
        }
        let chunk = decoded.changes.iter().next()?;
        let (whole, after) = chunks::document_then_changes(chunk)?;
        let mut doc = load_whole(self.changes_max, document, whole, after).ok()?;
        let matched = match (&self.signatures, &envelope) {
            (Some(check), Some(envelope)) => check.matched(&mut doc, envelope),
            _ => MatchedSignatures::new(),
        };
        Some(LoadedWhole { doc, matched })
    }
}

impl<S: Storage> Replica<S> {
    /// What sync sessions run on a received message before taking it in:
    /// with this replica's verifier, if it checks signatures, and the
    /// credentials it accepted.
    pub fn whole_preparer(&self) -> WholePreparer {
        let preparer = WholePreparer::new(&self.config);
        match &self.signatures.signing {
            Some(signing) => preparer.checking_signatures(SignatureCheck {
                verifier: signing.verifier.clone(),
                accepted: self.signatures.accepted.clone(),
            }),
            None => preparer,
        }
    }
}

impl SignatureCheck {
    /// The signatures of `envelope` over changes of `doc` that match under
    /// the credential they name. A credential named by an id this replica
    /// has not accepted is skipped: the replica resolves it, or refuses it.
    fn matched(&self, doc: &mut AutoCommit, envelope: &SignedSyncMessage) -> MatchedSignatures {
        let changes: BTreeSet<ChangeHash> = doc
            .get_changes_meta(&[])
            .into_iter()
            .map(|meta| meta.hash)
            .collect();
        let credentials: Vec<Option<(Arc<Vec<u8>>, _)>> = envelope
            .credentials
            .iter()
            .map(|entry| match entry {
                CredentialEntry::Whole(bytes) => {
                    Some((Arc::new(bytes.clone()), credential_id(bytes)))
                }
                CredentialEntry::Known(id) => self.accepted.get(id).map(|bytes| (bytes, *id)),
            })
            .collect();
        let mut matched = MatchedSignatures::new();
        for entry in &envelope.signatures {
            let change = ChangeHash(entry.change);
            let Some(Some((credential, id))) = credentials.get(usize::from(entry.credential))
            else {
                continue;
            };
            if changes.contains(&change)
                && self
                    .verifier
                    .signature_matches(credential, &change, &entry.signature)
            {
                matched.insert(change, (*id, entry.signature.clone()));
            }
        }
        matched
    }
}

impl MessagePreparer for WholePreparer {
    fn prepare(
        &self,
        document: &DocumentId,
        message: &[u8],
        format: PayloadFormat,
    ) -> Option<PreparedMessage> {
        self.load(document, message, format)
            .map(PreparedMessage::new)
    }
}

pub(super) fn malformed(document: &DocumentId, reason: impl ToString) -> ReceiveError {
    ReceiveError::Malformed {
        document: document.clone(),
        reason: reason.to_string(),
    }
}

/// Refuse a message (or a bundle's document) over `max` bytes before
/// anything decodes it.
pub(super) fn check_message_bytes(
    max: usize,
    document: &DocumentId,
    bytes: usize,
) -> Result<(), ReceiveError> {
    if bytes > max {
        return Err(malformed(
            document,
            format!("{bytes} bytes exceeds the limit of {max}"),
        ));
    }
    Ok(())
}

/// Refuse a message whose changes would cost more than `limits` once
/// inflated and expanded, before automerge decodes any of them: automerge
/// inflates and expands run-length columns without a limit, so a few KB
/// from a peer could stand for gigabytes. The stream totals apply across
/// every chunk of the message.
pub(super) fn check_decode_cost(
    limits: &DecodeLimits,
    document: &DocumentId,
    decoded: &Message,
) -> Result<DecodeCost, ReceiveError> {
    let mut total = DecodeCost::default();
    for chunk in decoded.changes.iter() {
        let left = DecodeLimits {
            chunks_max: limits
                .chunks_max
                .saturating_sub(usize::try_from(total.chunks).unwrap_or(usize::MAX)),
            inflated_bytes_total_max: limits
                .inflated_bytes_total_max
                .saturating_sub(total.inflated_bytes),
            ops_total_max: limits.ops_total_max.saturating_sub(total.ops),
            ..*limits
        };
        let cost = bounds::check_chunks(chunk, &left)
            .map_err(|error| malformed(document, format!("over the decode limits: {error}")))?;
        total.chunks += cost.chunks;
        total.inflated_bytes += cost.inflated_bytes;
        total.ops += cost.ops;
        total.changes += cost.changes;
    }
    Ok(total)
}

/// Load a whole document and apply the changes after it in one batch.
/// Refused if one of those changes lacks its dependency: it would be
/// stored but never reach the heads the index records.
pub(super) fn load_whole(
    changes_max: usize,
    document: &DocumentId,
    whole: &[u8],
    after: &[u8],
) -> Result<AutoCommit, ReceiveError> {
    let options = LoadOptions::new()
        .on_partial_load(OnPartialLoad::Error)
        .verification_mode(VerificationMode::Check);
    let mut doc = AutoCommit::load_with_options(whole, options)
        .map_err(|error| malformed(document, format!("bad document chunk: {error}")))?;
    if !after.is_empty() {
        let changes =
            chunks::changes_in(after, changes_max).map_err(|reason| malformed(document, reason))?;
        let hashes: Vec<ChangeHash> = changes.iter().map(Change::hash).collect();
        doc.apply_changes_batch(changes)
            .map_err(|error| malformed(document, error))?;
        doc.reset_diff_cursor();
        if let Some(hash) = hashes
            .iter()
            .find(|hash| doc.document().get_change_meta_by_hash(hash).is_none())
        {
            return Err(malformed(
                document,
                format!("change {hash} after the document depends on a change it lacks"),
            ));
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod signature_tests;

#[cfg(test)]
mod tests {
    use super::super::{Replica, ReplicaConfig};
    use super::{LoadedWhole, WholePreparer};
    use crate::identity::document_id::{DocumentId, Month};
    use crate::storage::MemoryStorage;
    use crate::sync::host::{MessagePreparer, SyncHost};
    use crate::sync::signing::PayloadFormat;
    use crate::test_support::station;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    fn document() -> DocumentId {
        DocumentId::activities(&station("xh/t1/v1"), Month::new(2026, 11).unwrap())
    }

    fn fresh(local: &str) -> Replica<MemoryStorage> {
        Replica::open(
            MemoryStorage::new(),
            station(local),
            7,
            ReplicaConfig::default(),
        )
        .unwrap()
    }

    fn commit(replica: &mut Replica<MemoryStorage>, key: &str) {
        replica
            .commit(&document(), |doc: &mut AutoCommit| {
                doc.put(ROOT, key, 1).map(|_| ())
            })
            .unwrap();
    }

    /// A village holding the document, and the message with which it sends
    /// the document whole to a township that holds nothing of it: as
    /// stored, a snapshot and the change of one increment after it.
    fn whole_message(format: PayloadFormat) -> (Replica<MemoryStorage>, Vec<u8>) {
        let mut village = fresh("xh/t1/v1");
        commit(&mut village, "first");
        commit(&mut village, "second");
        let mut township = fresh("xh/t1");
        let (v, t) = (station("xh/t1/v1"), station("xh/t1"));
        let opening = township
            .generate_sync_message(&v, &document(), format)
            .unwrap()
            .expect("a township opens the exchange");
        village.evict_all();
        village
            .receive_sync_message(&t, &document(), &opening, format)
            .unwrap();
        let whole = village
            .generate_sync_message(&t, &document(), format)
            .unwrap()
            .expect("the village answers with the document");
        (village, whole)
    }

    /// The township takes `message` in, prepared or not, after the same
    /// opening the village answered: what it holds and stores.
    fn taken_in(message: &[u8], format: PayloadFormat, prepare: bool) -> Replica<MemoryStorage> {
        let mut township = fresh("xh/t1");
        let v = station("xh/t1/v1");
        township
            .generate_sync_message(&v, &document(), format)
            .unwrap();
        let prepared = if prepare {
            let preparer = township.preparer().expect("a replica prepares");
            let prepared = preparer.prepare(&document(), message, format);
            assert!(prepared.is_some(), "a whole document is prepared");
            prepared
        } else {
            None
        };
        let outcome = township
            .receive_prepared_sync_message(&v, &document(), message, format, prepared)
            .unwrap();
        assert_eq!(outcome.changes_applied, 2);
        township
    }

    #[test]
    fn a_prepared_whole_document_is_taken_in_as_if_loaded_by_the_replica() {
        for format in [PayloadFormat::Plain, PayloadFormat::Signed] {
            let (village, message) = whole_message(format);
            let mut without = taken_in(&message, format, false);
            let mut with = taken_in(&message, format, true);
            assert_eq!(with.heads(&document()), village.heads(&document()));
            assert_eq!(with.heads(&document()), without.heads(&document()));
            assert_eq!(
                with.index.get(&document()),
                without.index.get(&document()),
                "{format:?}: the same index entry"
            );
            assert_eq!(
                with.storage().keys(),
                without.storage().keys(),
                "{format:?}: the same keys stored"
            );
            assert!(with.verify().is_empty());
            // What was stored loads back to the same document.
            with.evict_all();
            without.evict_all();
            let reloaded = with.cached_document(&document()).unwrap().unwrap().save();
            assert_eq!(
                reloaded,
                without
                    .cached_document(&document())
                    .unwrap()
                    .unwrap()
                    .save()
            );
        }
    }

    /// The replica uses the document it is handed: one with a change the
    /// message lacks shows in the heads. (Only a preparer of the replica's
    /// own kind ever hands one over, from the very message it came with.)
    #[test]
    fn the_replica_takes_the_prepared_document_instead_of_loading_the_message_again() {
        let format = PayloadFormat::Plain;
        let (_, message) = whole_message(format);
        let mut township = fresh("xh/t1");
        let v = station("xh/t1/v1");
        township
            .generate_sync_message(&v, &document(), format)
            .unwrap();
        let mut marked = WholePreparer::new(&ReplicaConfig::default())
            .load(&document(), &message, format)
            .expect("a whole document")
            .doc
            .with_actor(crate::identity::actor::actor_for(&station("xh/t1/v1"), 7));
        marked.put(ROOT, "marked", 1).unwrap();
        marked.commit();
        let marked_heads = marked.get_heads();
        township
            .receive_prepared_sync_message(
                &v,
                &document(),
                &message,
                format,
                Some(crate::sync::host::PreparedMessage::new(LoadedWhole {
                    doc: marked,
                    matched: Default::default(),
                })),
            )
            .unwrap();
        assert_eq!(
            township.heads(&document()),
            Some(marked_heads.as_slice()),
            "the replica loaded the message itself"
        );
    }

    #[test]
    fn only_a_whole_document_within_the_limits_is_prepared() {
        let format = PayloadFormat::Signed;
        let (mut village, whole) = whole_message(format);
        let preparer = WholePreparer::new(&ReplicaConfig::default());
        assert!(preparer.prepare(&document(), &whole, format).is_some());
        // A message of changes, not a whole document.
        commit(&mut village, "third");
        let t = station("xh/t1");
        let changes = village
            .generate_sync_message(&t, &document(), format)
            .unwrap()
            .expect("the new change goes");
        assert!(preparer.prepare(&document(), &changes, format).is_none());
        // Over the size limit, garbage, the wrong format.
        let small = WholePreparer::new(&ReplicaConfig {
            sync_message_bytes_max: whole.len() - 1,
            ..ReplicaConfig::default()
        });
        assert!(small.prepare(&document(), &whole, format).is_none());
        assert!(preparer
            .prepare(&document(), b"not a message", format)
            .is_none());
        assert!(preparer
            .prepare(&document(), &whole, PayloadFormat::Plain)
            .is_none());
        // Over the decode limits: the replica refuses what it was not
        // handed prepared, naming the limit.
        let tight = ReplicaConfig {
            decode_limits: crate::replica::DecodeLimits {
                ops_total_max: 1,
                ..ReplicaConfig::default().decode_limits
            },
            ..ReplicaConfig::default()
        };
        assert!(WholePreparer::new(&tight)
            .prepare(&document(), &whole, format)
            .is_none());
    }
}
