//! The replica as a [`SyncHost`]: per-(peer, document) sync states and the
//! all-or-nothing receive path.
//!
//! Receiving a message: decode it, expand every chunk into changes (a chunk
//! may be one change, several, or a whole document), drop the ones already
//! held, check write authority for each remaining change, and only then
//! apply them all in one `apply_changes_batch` (one call per change costs
//! O(document) each). Automerge then sees the message with its change list
//! emptied, to update the sync state without applying anything itself. The
//! schema check follows; the new changes, index entry and sync state are
//! stored in one batch and flushed before `Ok`. Any refusal leaves storage
//! untouched and drops the in-memory copy if it had been touched.
//!
//! Handing automerge an emptied message must not change its bookkeeping:
//! with changes, automerge advances the shared heads past what it applied
//! and never takes the message's heads as "last sent"; with none, it would
//! skip the first and may do the second. [`emptied_receive_bookkeeping`]
//! redoes exactly what automerge 0.12's `receive_sync_message` does for a
//! message with changes, so the sync state ends as if automerge had applied
//! them itself.
//!
//! Sync states live in memory while a peer is connected (bounded LRU) and
//! their encoding (the shared heads) is persisted whenever it changes, so a
//! reconnect resumes with a small Bloom filter instead of the whole history.

use super::bounds::DecodeCost;
use super::chunks;
use super::intake::{self, IntakeRefusal, PeerIntake};
use super::layout::{self, seal, sync_state_key, unseal};
use super::prepare::{self, LoadedWhole};
use super::signatures::{covered_within, Incoming, SignatureTable};
use super::{sorted, IndexEntry, LoadError, Replica, SyncSlot};
use crate::identity::document_id::DocumentId;
use crate::identity::schema;
use crate::identity::station::{StationId, Tier};
use crate::storage::{Storage, WriteBatch};
use crate::sync::authority::{check_document, Side};
use crate::sync::host::{
    HeadsDigest, HostError, MessagePreparer, PreparedMessage, ReceiveError, ReceiveOutcome,
    SyncHost,
};
use crate::sync::signing::{PayloadFormat, SignedSyncMessage};
use automerge::sync::{ChunkList, Message, State, SyncDoc};
use automerge::{AutoCommit, Change, ChangeHash};
use std::collections::BTreeSet;
use std::sync::Arc;

impl<S: Storage> Replica<S> {
    /// The peer's connection closed: forget its in-memory sync states (their
    /// shared heads are persisted; a reconnect starts from those).
    pub fn peer_disconnected(&mut self, peer: &StationId) -> usize {
        self.forget_credentials_sent(peer);
        self.sync_states
            .remove_where(|(state_peer, _)| state_peer == peer)
    }

    /// The sync state for the pair: in memory, else persisted, else new.
    pub(super) fn take_sync_slot(&mut self, peer: &StationId, document: &DocumentId) -> SyncSlot {
        let pair = (peer.clone(), document.clone());
        if let Some(slot) = self.sync_states.remove(&pair) {
            return slot;
        }
        let key = sync_state_key(peer, document);
        let persisted = match self.storage.get(&key) {
            Ok(Some(value)) => match unseal(&key, &value) {
                Ok(payload) => match State::decode(payload) {
                    Ok(state) => {
                        return SyncSlot {
                            state,
                            persisted: payload.to_vec(),
                            whole_sent_at: None,
                        }
                    }
                    Err(error) => format!("sync state does not decode: {error}"),
                },
                Err(problem) => problem.reason,
            },
            Ok(None) => {
                return SyncSlot {
                    state: State::new(),
                    persisted: Vec::new(),
                    whole_sent_at: None,
                }
            }
            Err(error) => error.to_string(),
        };
        // A lost sync state costs one full Bloom filter exchange, nothing
        // else; verify() reports the damaged value.
        tracing::warn!(peer = %peer, document = %document, problem = %persisted, "starting sync from scratch");
        SyncSlot {
            state: State::new(),
            persisted: Vec::new(),
            whole_sent_at: None,
        }
    }

    pub(super) fn keep_sync_slot(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        slot: SyncSlot,
    ) {
        // Evicted states have their shared heads persisted already.
        self.sync_states
            .insert((peer.clone(), document.clone()), slot);
    }

    pub(super) fn storage_refusal(document: &DocumentId, reason: impl ToString) -> ReceiveError {
        ReceiveError::Storage {
            document: document.clone(),
            reason: reason.to_string(),
        }
    }

    /// Refuse a message (or a bundle's document) over the configured size
    /// before anything decodes it.
    pub(super) fn check_message_bytes(
        &self,
        document: &DocumentId,
        bytes: usize,
    ) -> Result<(), ReceiveError> {
        prepare::check_message_bytes(self.config.sync_message_bytes_max, document, bytes)
    }

    pub(super) fn malformed(document: &DocumentId, reason: impl ToString) -> ReceiveError {
        prepare::malformed(document, reason)
    }

    /// See [`prepare::check_decode_cost`], with this replica's limits.
    fn check_decode_cost(
        &self,
        document: &DocumentId,
        decoded: &Message,
    ) -> Result<DecodeCost, ReceiveError> {
        prepare::check_decode_cost(&self.config.decode_limits, document, decoded)
    }

    /// A whole document sent to us while we hold none of it (a cold
    /// sync), possibly followed by changes made since its snapshot (a peer
    /// sending it as stored): loaded once, the changes after it applied in
    /// one batch, every change's author checked from the change metadata,
    /// and the received bytes stored as the snapshot and one increment —
    /// instead of splitting it into changes, re-applying them to an empty
    /// document and encoding them again. Same guarantees as the general
    /// path: nothing is stored unless every change passes the authority
    /// check. `prepared`: the same document loaded from this message off
    /// this thread (see `prepare`), used instead of loading it again.
    #[allow(clippy::too_many_arguments)]
    fn receive_whole_document(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        decoded: Message,
        whole: &[u8],
        after: &[u8],
        table: &SignatureTable,
        prepared: Option<LoadedWhole>,
    ) -> Result<ReceiveOutcome, ReceiveError> {
        debug_assert!(!self.holds(document));
        let loaded = match prepared {
            Some(LoadedWhole { doc, .. }) => doc,
            None => {
                prepare::load_whole(self.config.sync_message_changes_max, document, whole, after)?
            }
        };
        let mut doc = loaded.with_actor(self.actor.clone());
        let authors: Vec<Incoming> = doc
            .get_changes_meta(&[])
            .into_iter()
            .map(|meta| Incoming {
                hash: meta.hash,
                actor: meta.actor.into_owned(),
                deps: meta.deps,
            })
            .collect();
        if authors.len() > self.config.sync_message_changes_max {
            return Err(Self::malformed(
                document,
                format!("more than {} changes", self.config.sync_message_changes_max),
            ));
        }
        // A whole document carries every dependency of its changes.
        let vouching = self.judge_incoming(document, &authors, peer, table, &mut |_| true)?;
        // We hold nothing of this document, so a change by our own actor in
        // it is one our store lost: it is an old copy.
        if let Some(seq) = doc
            .get_changes_meta(&[])
            .into_iter()
            .find(|meta| *meta.actor == self.actor)
            .map(|meta| meta.seq)
        {
            self.note_own_actor(peer, document, seq);
        }
        if let Err(found) = schema::check_supported(&doc) {
            return Err(ReceiveError::SchemaTooNew {
                document: document.clone(),
                found,
                supported: schema::current_schema(),
            });
        }
        let slot = self.advance_sync_state(peer, document, &mut doc, decoded, &[])?;
        let added = authors.len();
        // An empty document (a peer that holds none either) is not stored:
        // only the sync state moves, as on the general path.
        let planned = (added > 0).then(|| {
            let (mut batch, entry) =
                self.plan_received_snapshot(document, &mut doc, whole, after, added);
            let covering: Vec<Incoming> = authors
                .iter()
                .filter(|change| vouching.contains(&change.hash))
                .cloned()
                .collect();
            batch.extend(Self::received_signatures(
                document,
                authors.iter().map(|change| change.hash),
                table,
                &covered_within(&covering),
            ));
            (batch, entry, added)
        });
        let heads_changed = planned.is_some();
        let changes_applied =
            self.store_received(peer, document, slot, doc, planned, WriteBatch::new(), false)?;
        Ok(ReceiveOutcome {
            changes_applied,
            heads_changed,
        })
    }

    /// Let Automerge's sync state see the message (its changes are already
    /// applied or adopted, so it sees them emptied, with our bookkeeping).
    fn advance_sync_state(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        doc: &mut AutoCommit,
        mut decoded: Message,
        heads_before: &[ChangeHash],
    ) -> Result<SyncSlot, ReceiveError> {
        let mut slot = self.take_sync_slot(peer, document);
        let bookkeeping =
            emptied_receive_bookkeeping(&mut slot.state, &decoded, heads_before, &doc.get_heads());
        decoded.changes = ChunkList::empty();
        doc.sync()
            .receive_sync_message(&mut slot.state, decoded)
            .map_err(|error| Self::malformed(document, error))?;
        bookkeeping.finish(&mut slot.state);
        Ok(slot)
    }

    /// Store what a received message changed — the planned document write,
    /// if any, the signatures of changes still queued for a dependency, and
    /// the sync state — in one atomic batch, flushed before the document is
    /// installed. Returns the number of changes applied.
    #[allow(clippy::too_many_arguments)]
    fn store_received(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        slot: SyncSlot,
        doc: AutoCommit,
        planned: Option<(WriteBatch, IndexEntry, usize)>,
        queued_signatures: WriteBatch,
        held: bool,
    ) -> Result<usize, ReceiveError> {
        let (mut batch, planned) = match planned {
            Some((batch, entry, added)) => (batch, Some((entry, added))),
            None => (WriteBatch::new(), None),
        };
        batch.extend(queued_signatures);
        self.store_with_sync_state(peer, document, slot, batch)?;
        match planned {
            Some((entry, added)) => {
                self.install(document, doc, entry);
                if !self.flush_deferred {
                    self.flush()
                        .map_err(|error| Self::storage_refusal(document, error))?;
                }
                Ok(added)
            }
            None => {
                if held {
                    self.keep_document(document, doc);
                }
                Ok(0)
            }
        }
    }

    /// Apply `batch` with `slot`'s encoding (the shared heads) if it moved,
    /// in one atomic write, and keep `slot`. Not flushed here.
    fn store_with_sync_state(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        mut slot: SyncSlot,
        mut batch: WriteBatch,
    ) -> Result<(), ReceiveError> {
        let encoded = slot.state.encode();
        // Nothing received: only the sync state moved, which a crash may
        // lose at no cost but an exchange (automerge recovers from stale
        // states).
        let sync_state_only = batch.is_empty();
        if encoded != slot.persisted {
            batch.put(sync_state_key(peer, document), seal(&encoded));
        }
        if !batch.is_empty() {
            let applied = if sync_state_only {
                self.storage.apply_cache(batch)
            } else {
                self.storage.apply(batch)
            };
            applied.map_err(|error| Self::storage_refusal(document, error))?;
            self.unflushed = true;
            slot.persisted = encoded;
        }
        self.keep_sync_slot(peer, document, slot);
        Ok(())
    }

    /// Every change in the message, decoded, before anything is touched.
    fn changes_of(
        &self,
        document: &DocumentId,
        message: &Message,
    ) -> Result<Vec<Change>, ReceiveError> {
        let mut changes = Vec::new();
        for chunk in message.changes.iter() {
            let budget = self
                .config
                .sync_message_changes_max
                .saturating_sub(changes.len());
            changes.extend(
                chunks::changes_in(chunk, budget)
                    .map_err(|reason| Self::malformed(document, reason))?,
            );
        }
        Ok(changes)
    }
}

impl<S: Storage> Replica<S> {
    /// What each peer brought in today, by station (the status page).
    pub fn peer_intake(&self) -> Vec<(StationId, PeerIntake)> {
        self.intake
            .peers()
            .map(|(peer, counts)| (peer.clone(), counts.clone()))
            .collect()
    }

    /// What `peer` brought in today, if it brought or was refused anything.
    pub fn peer_intake_of(&self, peer: &StationId) -> Option<PeerIntake> {
        self.intake.peer(peer).cloned()
    }

    /// Is `document` new here, from `peer`'s subtree, for a station below
    /// the peer that must be registered first and that no registry held
    /// lists?
    fn unregistered_below(&mut self, peer: &StationId, document: &DocumentId) -> bool {
        !self.holds(document)
            && intake::registration_required(
                self.intake.quotas(),
                &self.local,
                self.tier,
                peer,
                &document.owner,
            )
            && !self.registered(&document.owner)
    }

    /// Does a registry held here list `station`? A registry lists only
    /// stations of its owner's subtree, so only those of `station` and its
    /// ancestors are read. An unreadable registry lists nothing.
    fn registered(&mut self, station: &StationId) -> bool {
        let mut owner = Some(station.clone());
        while let Some(at) = owner {
            let registry = crate::layout::registry_document(&at);
            if let Ok(Some(doc)) = self.cached_document(&registry) {
                if crate::layout::registry_lists(doc, station).unwrap_or(false) {
                    return true;
                }
            }
            owner = at.parent();
        }
        false
    }

    /// The intake's verdict on a message from a peer that is not our
    /// ancestor: a station it may not create yet, or a daily quota used up.
    fn admit(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        new_document: bool,
        bytes: u64,
        day: i64,
    ) -> Result<(), ReceiveError> {
        let deferred = |refusal: IntakeRefusal| ReceiveError::Deferred {
            document: document.clone(),
            reason: refusal.to_string(),
        };
        if self.unregistered_below(peer, document) {
            let refusal = self.intake.refuse_unregistered(peer, day, &document.owner);
            self.store_intake(peer);
            return Err(deferred(refusal));
        }
        let checked = self.intake.check(peer, day, new_document, bytes);
        if checked.is_err() {
            self.store_intake(peer);
        }
        checked.map_err(deferred)
    }

    /// Write `peer`'s intake counts; they ride on the next flush, like the
    /// sync states.
    fn store_intake(&mut self, peer: &StationId) {
        let Some(counts) = self.intake.peer(peer) else {
            return;
        };
        let mut batch = WriteBatch::new();
        batch.put(layout::intake_key(peer), seal(&counts.encode()));
        if let Err(error) = self.storage.apply_cache(batch) {
            tracing::warn!(peer = %peer, %error, "could not store the intake counts");
        } else {
            self.unflushed = true;
        }
    }

    /// [`SyncHost::receive_sync_message`] once the peer's intake admitted
    /// the message.
    fn receive_admitted(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        message: &[u8],
        table: &SignatureTable,
        prepared: Option<LoadedWhole>,
    ) -> Result<ReceiveOutcome, ReceiveError> {
        self.check_message_bytes(document, message.len())?;
        let decoded = Message::decode(message).map_err(|error| Self::malformed(document, error))?;
        self.check_decode_cost(document, &decoded)?;
        if decoded.changes.is_empty() && self.holds(document) && !self.documents.contains(document)
        {
            let mut slot = self.take_sync_slot(peer, document);
            if self.receive_unloaded(document, &mut slot, &decoded) {
                // The sync state rides on the next flush, like every one.
                self.store_with_sync_state(peer, document, slot, WriteBatch::new())?;
                return Ok(ReceiveOutcome {
                    changes_applied: 0,
                    heads_changed: false,
                });
            }
            self.keep_sync_slot(peer, document, slot);
        }
        if !self.holds(document) && decoded.changes.len() == 1 {
            let whole = decoded
                .changes
                .iter()
                .next()
                .and_then(|chunk| chunks::document_then_changes(chunk))
                .map(|(whole, after)| (whole.to_vec(), after.to_vec()));
            if let Some((whole, after)) = whole {
                return self.receive_whole_document(
                    peer, document, decoded, &whole, &after, table, prepared,
                );
            }
        }
        let incoming = self.changes_of(document, &decoded)?;
        let TakenIn {
            mut doc,
            held,
            heads_before,
            fresh_hashes,
            applied_bytes,
            covered,
            signature_moves,
        } = self.take_in(peer, document, incoming, table)?;
        let slot = self.advance_sync_state(peer, document, &mut doc, decoded, &heads_before)?;
        let heads_after = doc.get_heads();
        let heads_changed = heads_after != heads_before;
        let planned = if heads_changed {
            let increment = applied_bytes.unwrap_or_else(|| doc.save_after(&heads_before));
            let added = chunks::chunk_count(&increment)
                .map_err(|reason| Self::malformed(document, reason))?;
            let (mut write, entry) = self.plan_write(document, &mut doc, &increment, added as u64);
            write.extend(Self::received_signatures(
                document,
                fresh_hashes.iter().copied(),
                table,
                &covered,
            ));
            write.extend(signature_moves);
            Some((write, entry, added))
        } else {
            None
        };
        // Heads unchanged with fresh changes: every one of them waits in
        // the document's queue for a dependency. The message that brings
        // it applies them from the queue and signs only what it carries,
        // so their signatures are kept now: else they would be stored
        // unsigned, and refused as unsigned relays by every office above.
        let queued_signatures = match &planned {
            None if held => {
                Self::received_signatures(document, fresh_hashes, table, &BTreeSet::new())
            }
            _ => WriteBatch::new(),
        };
        let changes_applied =
            self.store_received(peer, document, slot, doc, planned, queued_signatures, held)?;
        debug_assert!(
            !heads_changed || self.heads(document) == Some(sorted(heads_after).as_slice())
        );
        Ok(ReceiveOutcome {
            changes_applied,
            heads_changed,
        })
    }
}

/// Received changes applied in memory, not yet stored.
pub(super) struct TakenIn {
    pub(super) doc: AutoCommit,
    /// Did this replica hold the document before?
    pub(super) held: bool,
    pub(super) heads_before: Vec<ChangeHash>,
    /// The changes applied (those not already held).
    pub(super) fresh_hashes: Vec<ChangeHash>,
    /// The applied changes' bytes when they are `fresh_hashes` exactly.
    pub(super) applied_bytes: Option<Vec<u8>>,
    /// Fresh changes whose signatures go under `sigc|`, and the held
    /// changes' signatures moved there (see `covered_signatures`), for
    /// the batch that stores the fresh changes.
    pub(super) covered: BTreeSet<ChangeHash>,
    pub(super) signature_moves: WriteBatch,
}

impl<S: Storage> Replica<S> {
    /// Apply `incoming` — changes `peer` carried, from a link or a bundle —
    /// to this replica's copy of `document` in memory, after every check:
    /// changes already held are dropped, the rest judged by their writers'
    /// authority (`judge_incoming`), applied in one batch, and the schema
    /// checked. Storage is untouched; on an error the in-memory copy is
    /// dropped if it had been touched.
    pub(super) fn take_in(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        incoming: Vec<Change>,
        table: &SignatureTable,
    ) -> Result<TakenIn, ReceiveError> {
        let existing = self.take_document(document).map_err(|error| match error {
            LoadError::Storage(error) => Self::storage_refusal(document, error),
            LoadError::Corrupt(problem) => Self::storage_refusal(document, problem),
        })?;
        let held = existing.is_some();
        let mut doc = existing.unwrap_or_else(|| AutoCommit::new().with_actor(self.actor.clone()));

        // Changes already held are not applied, so they need no authority:
        // a whole-document message also carries the receiver's own history.
        let mut seen: BTreeSet<ChangeHash> = BTreeSet::new();
        let fresh: Vec<Change> = incoming
            .into_iter()
            .filter(|change| seen.insert(change.hash()))
            .filter(|change| {
                doc.document()
                    .get_change_meta_by_hash(&change.hash())
                    .is_none()
            })
            .collect();
        // A change by our own actor that we do not hold: our store is an
        // old copy (noted before applying, which may fail on a reused
        // sequence number).
        if let Some(change) = fresh.iter().find(|change| *change.actor_id() == self.actor) {
            let seq = change.seq();
            self.note_own_actor(peer, document, seq);
        }
        let incoming: Vec<Incoming> = fresh
            .iter()
            .map(|change| Incoming {
                hash: change.hash(),
                actor: change.actor_id().clone(),
                deps: change.deps().to_vec(),
            })
            .collect();
        let fresh_hashes: Vec<ChangeHash> = incoming.iter().map(|change| change.hash).collect();
        let mut holds = |hash: &ChangeHash| doc.document().get_change_meta_by_hash(hash).is_some();
        let vouching = match self.judge_incoming(document, &incoming, peer, table, &mut holds) {
            Ok(vouching) => vouching,
            Err(refusal) => {
                if held {
                    self.keep_document(document, doc);
                }
                return Err(refusal.into());
            }
        };
        let heads_before = doc.get_heads();
        let mut applied_bytes = None;
        if !fresh.is_empty() {
            // Nothing queued before or after: the apply added `fresh` alone (in
            // any order: an increment's readers apply it in one batch).
            let nothing_queued = doc.get_missing_deps(&[]).is_empty();
            let bytes: Vec<u8> = fresh.iter().flat_map(Change::raw_bytes).copied().collect();
            // From here on `doc` may differ from storage: every early return
            // drops it (it reloads from storage on next use).
            doc.apply_changes_batch(fresh)
                .map_err(|error| Self::malformed(document, error))?;
            if nothing_queued && doc.get_missing_deps(&[]).is_empty() {
                applied_bytes = Some(bytes);
            }
            // Drop the patches automerge recorded (see `load_from_storage`).
            doc.reset_diff_cursor();
            if let Err(found) = schema::check_supported(&doc) {
                return Err(ReceiveError::SchemaTooNew {
                    document: document.clone(),
                    found,
                    supported: schema::current_schema(),
                });
            }
        }
        // Only a change applied covers a signature: one still queued may
        // never be, and the signature it would cover is then the tip's.
        let covering: Vec<Incoming> = incoming
            .into_iter()
            .filter(|change| vouching.contains(&change.hash))
            .filter(|change| doc.get_change_meta_by_hash(&change.hash).is_some())
            .collect();
        let (covered, signature_moves) = self
            .covered_signatures(document, &covering, &mut doc)
            .map_err(|error| Self::storage_refusal(document, error))?;
        Ok(TakenIn {
            doc,
            held,
            heads_before,
            fresh_hashes,
            applied_bytes,
            covered,
            signature_moves,
        })
    }
}

impl<S: Storage> Replica<S> {
    pub(super) fn local_side(&self) -> Side<'_> {
        Side::new(&self.local, self.tier)
    }

    /// The peer's tier, from its depth relative to ours (one tier per level,
    /// as the registry assigns them). The session checks the tier in the
    /// peer's certificate too; here it keeps a replica from handing personal
    /// documents to an office above the county even if asked directly.
    pub(super) fn peer_side<'a>(&self, peer: &'a StationId) -> Side<'a> {
        let levels = peer.depth() as isize - self.local.depth() as isize;
        let tier = self.tier.shifted(levels).unwrap_or(if levels < 0 {
            Tier::Province
        } else {
            Tier::Point
        });
        Side::new(peer, tier)
    }
}

impl<S: Storage> SyncHost for Replica<S> {
    fn local_station(&self) -> &StationId {
        &self.local
    }

    fn shared_documents(&mut self, peer: &StationId) -> Vec<(DocumentId, HeadsDigest)> {
        // A document both sides hold is in the scope of the lower of the
        // two, so its owner is that station, one below it, or one above it
        // (flowing down): the index is read only in those owners' ranges.
        // A county's link to one township then reads that township's
        // documents, not the county's every document at each reconnect.
        let lower = if peer.depth() >= self.local.depth() {
            peer
        } else {
            &self.local
        };
        let (peer_side, local_side) = (self.peer_side(peer), self.local_side());
        let ancestors = lower.ancestors();
        let above = ancestors.iter().flat_map(|owner| {
            self.index
                .range(DocumentId::roster(owner)..)
                .take_while(move |(document, _)| &document.owner == owner)
        });
        // Every owner under `lower` shares its text as a prefix, and text
        // with one prefix sorts together; the few siblings in that run
        // (`t1` before `t10`) are skipped.
        let below = self
            .index
            .range(DocumentId::roster(lower)..)
            .take_while(|(document, _)| document.owner.as_str().starts_with(lower.as_str()))
            .filter(|(document, _)| lower.is_ancestor_or_self_of(&document.owner));
        let out: Vec<(DocumentId, HeadsDigest)> = above
            .chain(below)
            .filter(|(document, _)| check_document(document, peer_side, local_side).is_ok())
            .map(|(document, entry)| (document.clone(), entry.digest))
            .collect();
        debug_assert!(
            out.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "ancestors sort before the subtree, each range in order"
        );
        out
    }

    fn generate_sync_message(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        format: PayloadFormat,
    ) -> Result<Option<Vec<u8>>, HostError> {
        check_document(document, self.peer_side(peer), self.local_side()).map_err(|error| {
            HostError {
                reason: error.to_string(),
            }
        })?;
        // A message must describe only what survives a crash; with the
        // flush deferred the host flushes before the bytes leave.
        if self.unflushed && !self.flush_deferred {
            self.flush().map_err(|error| HostError {
                reason: format!("flushing before sending: {error}"),
            })?;
        }
        let mut slot = self.take_sync_slot(peer, document);
        let unloaded = self.generate_unloaded(document, &mut slot);
        let message = match unloaded {
            Ok(Some(message)) => message,
            Ok(None) => match self.cached_document(document) {
                Ok(Some(doc)) => {
                    let message = doc.sync().generate_sync_message(&mut slot.state);
                    message.map(|message| without_resent_document(&mut slot, doc, message))
                }
                Ok(None) => AutoCommit::new()
                    .sync()
                    .generate_sync_message(&mut slot.state),
                Err(error) => {
                    self.keep_sync_slot(peer, document, slot);
                    return Err(HostError {
                        reason: format!("loading {document}: {error}"),
                    });
                }
            },
            Err(error) => {
                self.keep_sync_slot(peer, document, slot);
                return Err(HostError {
                    reason: format!("reading the stored {document}: {error}"),
                });
            }
        };
        self.keep_sync_slot(peer, document, slot);
        let Some(message) = message else {
            return Ok(None);
        };
        match format {
            PayloadFormat::Plain => Ok(Some(message.encode())),
            PayloadFormat::Signed => self
                .signed_envelope(peer, document, &message)
                .map(Some)
                .map_err(|reason| HostError {
                    reason: format!("signing what goes to {peer} of {document}: {reason}"),
                }),
        }
    }

    fn receive_sync_message(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        message: &[u8],
        format: PayloadFormat,
    ) -> Result<ReceiveOutcome, ReceiveError> {
        self.receive_prepared_sync_message(peer, document, message, format, None)
    }

    fn preparer(&self) -> Option<Arc<dyn MessagePreparer>> {
        Some(Arc::new(self.whole_preparer()))
    }

    fn receive_prepared_sync_message(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        message: &[u8],
        format: PayloadFormat,
        prepared: Option<PreparedMessage>,
    ) -> Result<ReceiveOutcome, ReceiveError> {
        // Only a whole document is prepared, and only one this replica
        // lacks is taken from it.
        let prepared = prepared.and_then(PreparedMessage::take::<LoadedWhole>);
        check_document(document, self.peer_side(peer), self.local_side())?;
        // Credentials next, whatever becomes of the changes: the peer
        // names them by id in its next messages.
        let (payload, table) = match format {
            PayloadFormat::Plain => (None, SignatureTable::default()),
            PayloadFormat::Signed => {
                self.check_message_bytes(document, message.len())?;
                let envelope =
                    SignedSyncMessage::decode(message, self.config.sync_message_changes_max)
                        .map_err(|reason| Self::malformed(document, reason))?;
                let mut table = self.check_envelope(document, &envelope)?;
                if let Some(prepared) = &prepared {
                    table.note_matched(&prepared.matched);
                }
                (Some(envelope.automerge), table)
            }
        };
        // What a parent sends comes from above, which the county controls.
        let metered = !peer.is_strict_ancestor_of(&self.local);
        let new_document = !self.holds(document);
        let day = intake::day_of(self.now_ms);
        let bytes = message.len() as u64;
        if metered {
            self.admit(peer, document, new_document, bytes, day)?;
        }
        let automerge_message = payload.as_deref().unwrap_or(message);
        let outcome = self.receive_admitted(peer, document, automerge_message, &table, prepared)?;
        if metered {
            let created = new_document && self.holds(document);
            self.intake.accept(peer, day, created, bytes);
            self.store_intake(peer);
        }
        Ok(outcome)
    }

    fn reset_sync_state(&mut self, peer: &StationId, document: &DocumentId) {
        self.sync_states.remove(&(peer.clone(), document.clone()));
        self.forget_credentials_sent(peer);
        let mut batch = WriteBatch::new();
        batch.delete(sync_state_key(peer, document));
        // Not flushed: a sync state that comes back after a crash is merely
        // stale, and automerge recovers from stale states.
        if let Err(error) = self.storage.apply_cache(batch) {
            tracing::warn!(peer = %peer, document = %document, %error, "could not delete a sync state");
        } else {
            self.unflushed = true;
        }
    }

    fn refusal_lifted(&mut self, peer: &StationId, document: &DocumentId) -> bool {
        let day = intake::day_of(self.now_ms);
        !self.intake.over_quota_today(peer, day) && !self.unregistered_below(peer, document)
    }
}

/// `message` as it should go to a peer we may already have sent the whole
/// document on this link.
///
/// Automerge sends the whole document whenever the peer's last message said
/// it holds nothing, and forgets what it sent on such a message. On a link
/// both ends start an exchange at once, so an empty peer's first message
/// and its answer to ours both say "nothing", and each would bring the whole
/// document again — sent two or three times per document depending on how
/// the messages crossed. The stream is ordered and reliable, and a refusal
/// or a lost link drops the slot, so while the slot lives the peer holds, or
/// is about to hold, everything up to the heads we sent it whole: of a
/// second whole document only the changes made since then go.
pub(super) fn without_resent_document(
    slot: &mut SyncSlot,
    doc: &mut AutoCommit,
    mut message: Message,
) -> Message {
    let whole = message.changes.len() == 1
        && message
            .changes
            .iter()
            .next()
            .and_then(chunks::single_document)
            .is_some();
    if !whole {
        return message;
    }
    if let Some(sent_at) = slot.whole_sent_at.as_deref() {
        let since: Vec<Vec<u8>> = doc
            .document()
            .get_changes(sent_at)
            .into_iter()
            .map(|change| change.raw_bytes().to_vec())
            .collect();
        message.changes = ChunkList::from(since);
    }
    slot.whole_sent_at = Some(doc.document().get_heads());
    message
}

/// What [`emptied_receive_bookkeeping`] must restore after automerge saw the
/// emptied message.
struct Bookkeeping {
    last_sent_heads: Option<Vec<ChangeHash>>,
}

impl Bookkeeping {
    fn finish(self, state: &mut State) {
        if let Some(last_sent_heads) = self.last_sent_heads {
            state.last_sent_heads = last_sent_heads;
        }
    }
}

/// Before automerge receives `message` with its changes removed (they were
/// applied already, moving the heads from `heads_before` to `heads_now`),
/// do what its receive would have done with the changes: advance the shared
/// heads; and remember `last_sent_heads` where the emptied message would
/// wrongly overwrite it.
fn emptied_receive_bookkeeping(
    state: &mut State,
    message: &Message,
    heads_before: &[ChangeHash],
    heads_now: &[ChangeHash],
) -> Bookkeeping {
    if message.changes.is_empty() || state.read_only {
        return Bookkeeping {
            last_sent_heads: None,
        };
    }
    let before: BTreeSet<&ChangeHash> = heads_before.iter().collect();
    let now: BTreeSet<&ChangeHash> = heads_now.iter().collect();
    let mut advanced: BTreeSet<ChangeHash> = heads_now
        .iter()
        .filter(|head| !before.contains(head))
        .copied()
        .collect();
    advanced.extend(
        state
            .shared_heads
            .iter()
            .filter(|head| now.contains(head))
            .copied(),
    );
    state.shared_heads = advanced.into_iter().collect();
    // Automerge takes the message heads as last sent only for a message
    // without changes whose heads equal ours; an empty heads list is reset
    // later in the same receive either way.
    let overwritten = message.heads.as_slice() == heads_now && !message.heads.is_empty();
    Bookkeeping {
        last_sent_heads: overwritten.then(|| state.last_sent_heads.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::ROOT;
    use proptest::prelude::*;

    /// Our way of receiving (batch, bookkeeping, emptied message).
    fn receive_our_way(doc: &mut AutoCommit, state: &mut State, message: Message) {
        let heads_before = doc.get_heads();
        let changes: Vec<Change> = message
            .changes
            .iter()
            .flat_map(|chunk| chunks::changes_in(chunk, usize::MAX).unwrap())
            .collect();
        doc.apply_changes_batch(changes).unwrap();
        let mut emptied = message;
        let bookkeeping =
            emptied_receive_bookkeeping(state, &emptied, &heads_before, &doc.get_heads());
        emptied.changes = ChunkList::empty();
        doc.sync().receive_sync_message(state, emptied).unwrap();
        bookkeeping.finish(state);
    }

    proptest! {
        /// Two peers edit concurrently and exchange messages in any order;
        /// at every receive, our way leaves exactly the document and sync
        /// state that automerge's own receive leaves.
        #[test]
        fn our_receive_keeps_automerges_bookkeeping(steps in proptest::collection::vec(0u8..6, 1..40)) {
            let mut a = AutoCommit::new();
            let mut b = AutoCommit::new();
            let (mut state_a, mut state_b) = (State::new(), State::new());
            let (mut to_a, mut to_b): (Vec<Message>, Vec<Message>) = (Vec::new(), Vec::new());
            for (n, step) in steps.into_iter().enumerate() {
                match step {
                    0 => { a.put(ROOT, format!("a{n}"), n as i64).unwrap(); a.commit(); }
                    1 => { b.put(ROOT, format!("b{n}"), n as i64).unwrap(); b.commit(); }
                    2 => to_b.extend(a.sync().generate_sync_message(&mut state_a)),
                    3 => to_a.extend(b.sync().generate_sync_message(&mut state_b)),
                    4 | 5 => {
                        let (doc, state, queue) = if step == 4 {
                            (&mut a, &mut state_a, &mut to_a)
                        } else {
                            (&mut b, &mut state_b, &mut to_b)
                        };
                        if queue.is_empty() {
                            continue;
                        }
                        let message = queue.remove(0);
                        let mut their_doc = doc.clone();
                        let mut their_state = state.clone();
                        their_doc.sync().receive_sync_message(&mut their_state, message.clone()).unwrap();
                        receive_our_way(doc, state, message);
                        prop_assert_eq!(doc.get_heads(), their_doc.get_heads());
                        prop_assert_eq!(&*state, &their_state);
                    }
                    _ => unreachable!(),
                }
            }
        }
    }
}
