//! Bundles (`sync::bundle`) made from this replica for a station, and taken
//! in from one: a sync session without the link.
//!
//! Export: for every document the recipient may hold (the same scope rule
//! as a session's `shared_documents`), the changes past what the recipient
//! is known to hold — the heads it listed in its last bundle to us, and the
//! heads our last link with it left both sides sharing — or every change
//! with `full`. Signatures and credentials travel with the changes.
//!
//! Import: the sender is the carrier. Each document is judged and applied
//! exactly as a sync message from a linked peer would be (`take_in`:
//! scope, then every change by its writer's signature and authority), and
//! stored all-or-nothing per document; a document refused leaves the
//! others applied and is named in the report. A document whose changes
//! need earlier ones this replica does not hold is refused whole (nothing
//! of it is kept) naming how many: the sender exports again with `full`.
//! Importing the same bundle again applies nothing. The sender's listed
//! heads are stored as what it holds (`ack|<station>|<document>`), which
//! makes the next export to it start there.

use super::chunks;
use super::layout::{seal, unseal};
use super::signatures::SignatureTable;
use super::sync::TakenIn;
use super::Replica;
use crate::identity::document_id::DocumentId;
use crate::identity::station::StationId;
use crate::storage::{Storage, WriteBatch};
use crate::sync::authority::check_document;
use crate::sync::bundle::{
    BundleContents, BundledDocument, CheckedBundle, HeldHeads, BUNDLE_BYTES_MAX,
    BUNDLE_FORMAT_VERSION, HEADS_PER_DOCUMENT_MAX,
};
use crate::sync::host::ReceiveError;
use crate::sync::signing::SignedSyncMessage;
use automerge::ChangeHash;
use std::collections::BTreeSet;

pub const ACKNOWLEDGED_PREFIX: &[u8] = b"ack|";

fn acknowledged_key(station: &StationId, document: &DocumentId) -> Vec<u8> {
    let mut key = ACKNOWLEDGED_PREFIX.to_vec();
    key.extend_from_slice(station.to_string().as_bytes());
    key.push(b'|');
    key.extend_from_slice(document.to_string().as_bytes());
    key
}

/// What importing one bundle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleImport {
    pub from: Option<StationId>,
    /// Documents that took at least one new change.
    pub documents_changed: usize,
    /// Documents whose changes were all held already.
    pub documents_unchanged: usize,
    pub changes_applied: usize,
    /// Documents refused, each with why (nothing of them was kept).
    pub documents_refused: Vec<(DocumentId, String)>,
}

/// What exporting a bundle put in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleExport {
    pub contents: BundleContents,
    pub documents: usize,
    pub changes: usize,
}

impl<S: Storage> Replica<S> {
    /// The heads `station` is known to hold of `document`: listed in its
    /// last bundle to us, and shared at the end of our last link with it.
    /// Only heads this replica holds (the rest say nothing it could send).
    fn known_to_hold(
        &mut self,
        station: &StationId,
        document: &DocumentId,
    ) -> Result<Vec<ChangeHash>, String> {
        let mut known: BTreeSet<ChangeHash> = BTreeSet::new();
        let key = acknowledged_key(station, document);
        if let Some(value) = self.storage.get(&key).map_err(|error| error.to_string())? {
            match unseal(&key, &value) {
                Ok(payload) if payload.len() % 32 == 0 => {
                    known.extend(
                        payload
                            .chunks_exact(32)
                            .map(|raw| ChangeHash(raw.try_into().expect("chunks of 32 bytes"))),
                    );
                }
                // A damaged acknowledgement costs a larger bundle, nothing
                // else; verify() reports the value.
                _ => {
                    tracing::warn!(station = %station, document = %document, "ignoring a damaged bundle acknowledgement")
                }
            }
        }
        let slot = self.take_sync_slot(station, document);
        known.extend(slot.state.shared_heads.iter().copied());
        self.keep_sync_slot(station, document, slot);
        let doc = self
            .cached_document(document)
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("{document} is not held"))?;
        Ok(known
            .into_iter()
            .filter(|hash| doc.get_change_meta_by_hash(hash).is_some())
            .collect())
    }

    /// A bundle of what `to` is missing (every change with `full`), as of
    /// `now_ms`. Fails naming the limit if it would exceed one.
    pub fn export_bundle(&mut self, to: &StationId, full: bool) -> Result<BundleExport, String> {
        if to == &self.local {
            return Err("a bundle goes to another station".to_string());
        }
        let shared: Vec<DocumentId> = self
            .index
            .keys()
            .filter(|document| {
                check_document(document, self.peer_side(to), self.local_side()).is_ok()
            })
            .cloned()
            .collect();
        let mut documents = Vec::new();
        let mut holds = Vec::new();
        let mut bytes_total = 0usize;
        let mut changes_total = 0usize;
        for document in shared {
            let heads = self.heads(&document).unwrap_or_default().to_vec();
            if heads.len() > HEADS_PER_DOCUMENT_MAX {
                return Err(format!(
                    "{document} has {} heads; a bundle lists at most {HEADS_PER_DOCUMENT_MAX}",
                    heads.len()
                ));
            }
            holds.push(HeldHeads {
                document: document.to_string(),
                heads: heads.iter().map(|hash| hash.0).collect(),
            });
            let since = if full {
                Vec::new()
            } else {
                self.known_to_hold(to, &document)?
            };
            let doc = self
                .cached_document(&document)
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("{document} is not held"))?;
            let missing: Vec<ChangeHash> = doc
                .get_changes_meta(&since)
                .into_iter()
                .map(|meta| meta.hash)
                .collect();
            if missing.is_empty() {
                continue;
            }
            let chunk = doc
                .bundle(missing.iter().copied())
                .map_err(|error| format!("bundling {document}: {error}"))?
                .bytes()
                .to_vec();
            changes_total += missing.len();
            let envelope = self.envelope_of(None, &document, missing, chunk)?;
            bytes_total += envelope.len();
            if bytes_total > BUNDLE_BYTES_MAX {
                return Err(format!(
                    "the bundle would exceed {BUNDLE_BYTES_MAX} bytes; link the two \
                     stations instead, or export again once some has been taken in"
                ));
            }
            documents.push(BundledDocument {
                document: document.to_string(),
                envelope,
            });
        }
        Ok(BundleExport {
            documents: documents.len(),
            changes: changes_total,
            contents: BundleContents {
                version: BUNDLE_FORMAT_VERSION,
                from: self.local.to_string(),
                to: to.to_string(),
                created_ms: self.now_ms,
                documents,
                holds,
            },
        })
    }

    /// Take in a bundle addressed to this station, its sender the carrier.
    /// Refused whole only when it is not for this station; otherwise each
    /// document stands alone (see the module's text).
    pub fn import_bundle(&mut self, bundle: CheckedBundle) -> Result<BundleImport, String> {
        if bundle.to != self.local {
            return Err(format!(
                "the bundle is for {}, not for this station ({})",
                bundle.to, self.local
            ));
        }
        if bundle.from == self.local {
            return Err("the bundle was written by this station".to_string());
        }
        let from = bundle.from;
        let mut report = BundleImport {
            from: Some(from.clone()),
            ..BundleImport::default()
        };
        for (document, envelope) in bundle.documents {
            match self.import_document(&from, &document, &envelope) {
                Ok(0) => report.documents_unchanged += 1,
                Ok(applied) => {
                    report.documents_changed += 1;
                    report.changes_applied += applied;
                }
                Err(refusal) => {
                    tracing::warn!(from = %from, document = %document, %refusal, "bundle document refused");
                    report
                        .documents_refused
                        .push((document, refusal.to_string()));
                }
            }
        }
        let mut acknowledged = WriteBatch::new();
        for (document, heads) in bundle.holds {
            // Only documents the sender may hold count: a listing is no
            // reason to keep keys for anything else.
            if check_document(&document, self.peer_side(&from), self.local_side()).is_ok() {
                let raw: Vec<u8> = heads.iter().flat_map(|hash| hash.0).collect();
                acknowledged.put(acknowledged_key(&from, &document), seal(&raw));
            }
        }
        self.storage
            .apply(acknowledged)
            .map_err(|error| format!("storing what {from} holds: {error}"))?;
        self.unflushed = true;
        self.flush()
            .map_err(|error| format!("flushing the bundle: {error}"))?;
        Ok(report)
    }

    /// One document of a bundle: judged, applied and stored alone. Returns
    /// the number of changes applied.
    fn import_document(
        &mut self,
        from: &StationId,
        document: &DocumentId,
        envelope: &[u8],
    ) -> Result<usize, ReceiveError> {
        check_document(document, self.peer_side(from), self.local_side())?;
        self.check_message_bytes(document, envelope.len())?;
        let envelope = SignedSyncMessage::decode(envelope, self.config.sync_message_changes_max)
            .map_err(|reason| Self::malformed(document, reason))?;
        let table: SignatureTable = self.check_envelope(document, &envelope)?;
        let chunk = envelope.automerge;
        super::bounds::check_chunks(&chunk, &self.config.decode_limits).map_err(|error| {
            Self::malformed(document, format!("over the decode limits: {error}"))
        })?;
        let incoming = chunks::changes_in(&chunk, self.config.sync_message_changes_max)
            .map_err(|reason| Self::malformed(document, reason))?;
        let TakenIn {
            mut doc,
            held,
            heads_before,
            fresh_hashes,
            applied_bytes,
            covered,
            signature_moves,
        } = self.take_in(from, document, incoming, &table)?;
        if fresh_hashes.is_empty() {
            if held {
                self.keep_document(document, doc);
            }
            return Ok(0);
        }
        let waiting = fresh_hashes
            .iter()
            .filter(|hash| doc.get_change_meta_by_hash(hash).is_none())
            .count();
        if waiting > 0 {
            // `doc` holds changes automerge queued: dropped, reloads clean.
            return Err(Self::malformed(
                document,
                format!(
                    "{waiting} of its {} changes build on changes this station does not \
                     hold; {from} must export again with --full",
                    fresh_hashes.len()
                ),
            ));
        }
        let increment = applied_bytes.unwrap_or_else(|| doc.save_after(&heads_before));
        let added =
            chunks::chunk_count(&increment).map_err(|reason| Self::malformed(document, reason))?;
        let (mut batch, entry) = self.plan_write(document, &mut doc, &increment, added as u64);
        batch.extend(Self::received_signatures(
            document,
            fresh_hashes,
            &table,
            &covered,
        ));
        batch.extend(signature_moves);
        self.storage
            .apply(batch)
            .map_err(|error| Self::storage_refusal(document, error))?;
        self.unflushed = true;
        self.install(document, doc, entry);
        Ok(added)
    }
}

#[cfg(test)]
mod tests;
