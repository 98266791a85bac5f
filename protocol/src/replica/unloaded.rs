//! Sync messages of a document that is not in memory, worked out from its
//! index entry and stored bytes where Automerge's own answer is certain
//! without the document.
//!
//! Loading a document is most of what a sync exchange costs a busy office
//! (Automerge rebuilds the change graph to check the heads), and sending a
//! whole document costs a `save` on top. Two exchanges need neither:
//!
//! - **A peer that holds none of the document** (a cold township, a county
//!   refilled from its townships) gets it as stored — the snapshot, then
//!   the changes of the increments since — where Automerge would build the
//!   whole document with `save`: the same heads, from bytes already on disk
//!   (the receiver loads the snapshot and applies the changes after it).
//! - **Messages that only carry heads** — the opening of an exchange, and
//!   the peer's answers once its heads equal ours — are read and answered
//!   from the heads in the index.
//!
//! Each rule below redoes, for the cases it accepts, exactly what Automerge
//! 0.12's `generate_sync_message` / `receive_sync_message` do to the sync
//! state and put in the message, and returns `None` for every other case,
//! where the caller loads the document and asks Automerge. One difference
//! is deliberate: an opening on a state that has never synced sends no
//! Bloom filter (Automerge's would name every change we hold, which needs
//! the change graph). The filter only lets the peer send in its first
//! answer what we lack; without it the peer sends that one round trip
//! later, after our next message (which Automerge builds, with a filter).

use super::layout::{snapshot_key, unseal};
use super::{LoadError, Replica, SyncSlot};
use crate::identity::document_id::DocumentId;
use crate::storage::Storage;
use automerge::sync::{BloomFilter, Have, Message, MessageFlags, MessageVersion, State};
use automerge::ChangeHash;

impl<S: Storage> Replica<S> {
    /// The message Automerge would generate for `document` on `slot`,
    /// without loading it: `Some(None)` when it would say nothing,
    /// `Some(Some(message))`, or `None` when only Automerge can tell (the
    /// document is in memory, or the case is not one of the module's).
    pub(super) fn generate_unloaded(
        &self,
        document: &DocumentId,
        slot: &mut SyncSlot,
    ) -> Result<Option<Option<Message>>, LoadError> {
        if self.documents.contains(document) {
            return Ok(None);
        }
        let Some(entry) = self.index.get(document) else {
            return Ok(None);
        };
        let ours = entry.heads.as_slice();
        let state = &slot.state;
        if ours.is_empty() || !plain_state(state) || !last_sync_known(state, ours) {
            return Ok(None);
        }
        let supports_v2 = supports_v2(state);
        if state.their_heads.as_deref() == Some(&[]) && supports_v2 {
            return self.whole_unloaded(document, slot, ours.to_vec(), entry);
        }
        // Their heads must be ours or older ones of ours: then we need
        // nothing from them (Automerge's `missing_deps_from` is empty).
        if let Some(theirs) = &state.their_heads {
            if !theirs.iter().all(|head| ours.contains(head)) {
                return Ok(None);
            }
        }
        let heads_equal = state.their_heads.as_deref() == Some(ours);
        let nothing_to_send = match (&state.their_have, &state.their_need) {
            (Some(have), Some(need)) => need.is_empty() && (have.is_empty() || heads_equal),
            _ => true,
        };
        if !nothing_to_send {
            return Ok(None);
        }
        // Automerge's filter covers the changes since the shared heads.
        let have = if state.shared_heads.as_slice() == ours {
            vec![Have {
                last_sync: ours.to_vec(),
                bloom: BloomFilter::from_hashes(std::iter::empty::<ChangeHash>()),
            }]
        } else if state.shared_heads.is_empty() && state.their_heads.is_none() {
            Vec::new()
        } else {
            return Ok(None);
        };
        let heads_unchanged = state.last_sent_heads.as_slice() == ours;
        if heads_unchanged && state.have_responded && (heads_equal || state.in_flight) {
            return Ok(Some(None));
        }
        let version = if supports_v2 {
            MessageVersion::V2
        } else {
            MessageVersion::V1
        };
        let message = sent(&mut slot.state, ours.to_vec(), have, Vec::new(), version);
        Ok(Some(Some(message)))
    }

    /// Automerge's answer to a peer that said it holds nothing: the whole
    /// document, or (sent whole on this link already at these heads) only
    /// our heads, as `sync::without_resent_document` trims it.
    fn whole_unloaded(
        &self,
        document: &DocumentId,
        slot: &mut SyncSlot,
        ours: Vec<ChangeHash>,
        entry: &super::IndexEntry,
    ) -> Result<Option<Option<Message>>, LoadError> {
        let changes = match slot.whole_sent_at.as_deref() {
            Some(sent_at) if sent_at == ours.as_slice() => Vec::new(),
            Some(_) => return Ok(None),
            None => match self.stored_whole(document, entry)? {
                Some(whole) => vec![whole],
                None => return Ok(None),
            },
        };
        let state = &slot.state;
        // Automerge's builder holds every hash here, so it is never empty.
        if state.last_sent_heads == ours && state.have_responded && state.in_flight {
            return Ok(Some(None));
        }
        slot.whole_sent_at = Some(ours.clone());
        // No filter: the peer holds nothing, and a filter only tells it what
        // we hold so it can send what we lack. Automerge would also put every
        // hash in `sent_hashes`, which only keeps it from sending a change
        // twice; on this link the trim above does that for the whole.
        let message = sent(
            &mut slot.state,
            ours,
            Vec::new(),
            changes,
            MessageVersion::V2,
        );
        Ok(Some(Some(message)))
    }

    /// The document as stored: its snapshot followed by its increments'
    /// changes, one Automerge byte stream that loads to the indexed heads.
    /// `None` without a snapshot; damage is reported as a load reports it.
    fn stored_whole(
        &self,
        document: &DocumentId,
        entry: &super::IndexEntry,
    ) -> Result<Option<Vec<u8>>, LoadError> {
        if entry.snapshot_bytes == 0 {
            return Ok(None);
        }
        let key = snapshot_key(document);
        let Some(value) = self.storage.get(&key)? else {
            return Ok(None);
        };
        let mut whole = unseal(&key, &value)?.to_vec();
        for (key, value) in self.stored_increments(document, entry)? {
            whole.extend_from_slice(unseal(&key, &value)?);
        }
        Ok(Some(whole))
    }

    /// Automerge's `receive_sync_message` for a message that carries no
    /// changes, when its effect on `slot` is certain from our heads alone:
    /// every head the peer names is one of ours. `false` when only
    /// Automerge can tell; `slot` is then untouched.
    pub(super) fn receive_unloaded(
        &self,
        document: &DocumentId,
        slot: &mut SyncSlot,
        message: &Message,
    ) -> bool {
        debug_assert!(message.changes.is_empty());
        if self.documents.contains(document) {
            return false;
        }
        let Some(entry) = self.index.get(document) else {
            return false;
        };
        let ours = entry.heads.as_slice();
        let theirs = message.heads.as_slice();
        if ours.is_empty() || !theirs.iter().all(|head| ours.contains(head)) {
            return false;
        }
        // Automerge drops from `sent_hashes` every ancestor of their heads:
        // with their heads ours, all; with none, nothing; in between it
        // would need the change graph.
        let state = &mut slot.state;
        let flags_reset = message
            .flags
            .is_some_and(|flags| flags.contains(MessageFlags::SYNC_RESET));
        if !(flags_reset || state.sent_hashes.is_empty() || theirs.is_empty() || theirs == ours) {
            return false;
        }
        state.in_flight = false;
        if let Some(flags) = message.flags {
            let mut capabilities = vec![automerge::sync::Capability::MessageV2];
            if flags.contains(MessageFlags::SUPPORTS_SYNC_RESET) {
                capabilities.push(automerge::sync::Capability::SyncReset);
            }
            state.their_capabilities = Some(capabilities);
            if flags_reset {
                state.sent_hashes.clear();
            }
            state.peer_read_only = flags.contains(MessageFlags::READ_ONLY);
        }
        if theirs == ours {
            state.sent_hashes.clear();
            state.last_sent_heads = theirs.to_vec();
        }
        state.shared_heads = theirs.to_vec();
        if theirs.is_empty() {
            // The peer lost everything (or never had it): start over.
            state.last_sent_heads = Vec::new();
            state.sent_hashes.clear();
        }
        state.their_have = Some(message.have.clone());
        state.their_heads = Some(theirs.to_vec());
        state.their_need = Some(message.need.clone());
        true
    }
}

/// No read-only mode on either side and no reset pending: the only states
/// this replica makes, and the only ones the rules above follow.
fn plain_state(state: &State) -> bool {
    !state.read_only && !state.peer_read_only && !state.needs_reset
}

fn supports_v2(state: &State) -> bool {
    state
        .their_capabilities
        .as_ref()
        .is_some_and(|capabilities| capabilities.contains(&automerge::sync::Capability::MessageV2))
}

/// Automerge answers a reset when the peer's filter starts from heads we
/// do not hold; we can tell only for heads among ours.
fn last_sync_known(state: &State, ours: &[ChangeHash]) -> bool {
    state.their_have.as_ref().is_none_or(|have| {
        have.first()
            .is_none_or(|first| first.last_sync.iter().all(|hash| ours.contains(hash)))
    })
}

/// What Automerge does to the state as it sends a message with our heads,
/// and the message.
fn sent(
    state: &mut State,
    ours: Vec<ChangeHash>,
    have: Vec<Have>,
    changes: Vec<Vec<u8>>,
    version: MessageVersion,
) -> Message {
    state.have_responded = true;
    state.last_sent_heads.clone_from(&ours);
    state.in_flight = true;
    let mut flags = MessageFlags::new();
    flags.set(MessageFlags::SUPPORTS_SYNC_RESET);
    Message {
        heads: ours,
        need: Vec::new(),
        have,
        changes: changes.into(),
        flags: Some(flags),
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::super::sync::without_resent_document;
    use super::super::{Replica, ReplicaConfig, SyncSlot};
    use crate::identity::document_id::{DocumentId, Month};
    use crate::identity::station::StationId;
    use crate::storage::MemoryStorage;
    use crate::sync::host::SyncHost;
    use crate::sync::signing::{PayloadFormat, SignedSyncMessage};
    use automerge::sync::{Message, State, SyncDoc};
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, Automerge, ROOT};
    use proptest::prelude::*;

    fn station(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    fn document() -> DocumentId {
        DocumentId::activities(&station("xh/t1/v1"), Month::new(2026, 11).unwrap())
    }

    fn config() -> ReplicaConfig {
        // Compaction after a few commits, so that the sender is sometimes
        // a snapshot alone and sometimes a snapshot with increments.
        ReplicaConfig {
            compaction_increments_max: 3,
            compaction_bytes_min: 1,
            ..ReplicaConfig::default()
        }
    }

    fn fresh(local: &str) -> Replica<MemoryStorage> {
        Replica::open(MemoryStorage::new(), station(local), 7, config()).unwrap()
    }

    fn crash_and_reopen(replica: Replica<MemoryStorage>) -> Replica<MemoryStorage> {
        let local = replica.local().clone();
        let mut storage = replica.into_storage();
        storage.crash();
        Replica::open(storage, local, 7, config()).unwrap()
    }

    fn commit(replica: &mut Replica<MemoryStorage>, key: &str) {
        replica
            .commit(&document(), |doc: &mut AutoCommit| {
                doc.put(ROOT, key, 1).map(|_| ())
            })
            .unwrap();
    }

    fn twin(slot: &SyncSlot) -> SyncSlot {
        SyncSlot {
            state: slot.state.clone(),
            persisted: slot.persisted.clone(),
            whole_sent_at: slot.whole_sent_at.clone(),
        }
    }

    /// Everything of a state that either side acts on; `sent_hashes` only
    /// keeps a change from going twice, and the module leaves it short.
    fn same_state(ours: &State, automerges: &State) -> Result<(), TestCaseError> {
        prop_assert_eq!(&ours.shared_heads, &automerges.shared_heads, "shared heads");
        prop_assert_eq!(
            &ours.last_sent_heads,
            &automerges.last_sent_heads,
            "last sent"
        );
        prop_assert_eq!(&ours.their_heads, &automerges.their_heads, "their heads");
        prop_assert_eq!(&ours.their_need, &automerges.their_need, "their need");
        prop_assert_eq!(&ours.their_have, &automerges.their_have, "their have");
        prop_assert_eq!(ours.in_flight, automerges.in_flight, "in flight");
        prop_assert_eq!(ours.have_responded, automerges.have_responded, "responded");
        prop_assert_eq!(&ours.their_capabilities, &automerges.their_capabilities);
        prop_assert_eq!(ours.peer_read_only, automerges.peer_read_only);
        prop_assert!(ours.sent_hashes.is_subset(&automerges.sent_hashes));
        Ok(())
    }

    fn heads_of_changes(message: &Message) -> Vec<automerge::ChangeHash> {
        let bytes: Vec<u8> = message.changes.iter().flatten().copied().collect();
        Automerge::load(&bytes).unwrap().get_heads()
    }

    /// The message the module worked out, against Automerge's on a twin of
    /// the same state with the document loaded. Returns whether the module
    /// answered.
    fn generate_matches(
        replica: &mut Replica<MemoryStorage>,
        peer: &StationId,
    ) -> Result<bool, TestCaseError> {
        let document = document();
        let slot = replica.take_sync_slot(peer, &document);
        let (mut ours, mut automerges) = (twin(&slot), twin(&slot));
        let fresh_before = slot.state.shared_heads.is_empty();
        replica.keep_sync_slot(peer, &document, slot);
        let Some(worked_out) = replica.generate_unloaded(&document, &mut ours).unwrap() else {
            return Ok(false);
        };
        let doc = replica.cached_document(&document).unwrap().unwrap();
        let generated = doc.sync().generate_sync_message(&mut automerges.state);
        let expected =
            generated.map(|message| without_resent_document(&mut automerges, doc, message));
        replica.evict_all();
        same_state(&ours.state, &automerges.state)?;
        prop_assert_eq!(&ours.whole_sent_at, &automerges.whole_sent_at);
        match (worked_out, expected) {
            (None, None) => {}
            (Some(ours), Some(expected)) => {
                prop_assert_eq!(&ours.heads, &expected.heads);
                prop_assert_eq!(&ours.need, &expected.need);
                prop_assert_eq!(ours.flags, expected.flags);
                prop_assert_eq!(&ours.version, &expected.version);
                prop_assert_eq!(ours.changes.is_empty(), expected.changes.is_empty());
                if !ours.changes.is_empty() {
                    prop_assert_eq!(heads_of_changes(&ours), heads_of_changes(&expected));
                }
                // The one deliberate difference: no filter to a peer that
                // holds nothing or on a state that never synced.
                let whole = !expected.changes.is_empty()
                    || automerges.state.their_heads.as_deref() == Some(&[]);
                if ours.have != expected.have {
                    prop_assert!(ours.have.is_empty() && (whole || fresh_before));
                }
            }
            (ours, expected) => {
                prop_assert!(false, "worked out {ours:?}, automerge {expected:?}");
            }
        }
        Ok(true)
    }

    /// The state the module left after a message without changes, against
    /// Automerge's. Returns whether the module took the message.
    fn receive_matches(
        replica: &mut Replica<MemoryStorage>,
        peer: &StationId,
        signed: &[u8],
    ) -> Result<bool, TestCaseError> {
        let document = document();
        let envelope = SignedSyncMessage::decode(signed, usize::MAX).unwrap();
        let message = Message::decode(&envelope.automerge).unwrap();
        if !message.changes.is_empty() {
            return Ok(false);
        }
        let slot = replica.take_sync_slot(peer, &document);
        let (mut ours, mut automerges) = (twin(&slot), twin(&slot));
        replica.keep_sync_slot(peer, &document, slot);
        if !replica.receive_unloaded(&document, &mut ours, &message) {
            return Ok(false);
        }
        let doc = replica.cached_document(&document).unwrap().unwrap();
        doc.sync()
            .receive_sync_message(&mut automerges.state, message)
            .unwrap();
        replica.evict_all();
        same_state(&ours.state, &automerges.state)?;
        Ok(true)
    }

    #[derive(Debug, Clone)]
    enum Step {
        VillageCommit,
        TownshipCommit,
        /// One message from the village and one back; either side keeps
        /// the document in memory or not.
        Exchange {
            village_evicts: bool,
            township_evicts: bool,
        },
        CrashVillage,
        CrashTownship,
        /// The township's disk is replaced: it holds nothing again.
        TownshipReplaced,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => Just(Step::VillageCommit),
            1 => Just(Step::TownshipCommit),
            5 => (any::<bool>(), any::<bool>()).prop_map(|(village_evicts, township_evicts)| {
                Step::Exchange { village_evicts, township_evicts }
            }),
            1 => Just(Step::CrashVillage),
            1 => Just(Step::CrashTownship),
            1 => Just(Step::TownshipReplaced),
        ]
    }

    #[derive(Default)]
    struct Taken {
        generated: usize,
        received: usize,
    }

    /// One message from `from` to `to`, each side first checked against
    /// Automerge when the module answers for it.
    fn deliver(
        from: &mut Replica<MemoryStorage>,
        to: &mut Replica<MemoryStorage>,
        from_evicts: bool,
        taken: &mut Taken,
    ) -> Result<(), TestCaseError> {
        let (from_station, to_station) = (from.local().clone(), to.local().clone());
        if from_evicts {
            from.evict_all();
            taken.generated += generate_matches(from, &to_station)? as usize;
        }
        let message = from
            .generate_sync_message(&to_station, &document(), PayloadFormat::Signed)
            .unwrap();
        if let Some(message) = message {
            if to.holds(&document()) && !to.documents.contains(&document()) {
                taken.received += receive_matches(to, &from_station, &message)? as usize;
            }
            to.receive_sync_message(&from_station, &document(), &message, PayloadFormat::Signed)
                .unwrap();
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Wherever the module answers for a document out of memory, its
        /// message and the sync state it leaves are Automerge's own (but
        /// for the documented missing filter), through commits on both
        /// sides, crashes and a township that lost its disk; and the two
        /// replicas still converge.
        #[test]
        fn a_document_out_of_memory_is_answered_as_automerge_would(
            steps in proptest::collection::vec(step(), 1..40)
        ) {
            let mut village = fresh("xh/t1/v1");
            let mut township = fresh("xh/t1");
            let mut taken = Taken::default();
            let mut keys = 0;
            let mut replaced = false;
            let mut township_wrote = false;
            for step in steps {
                match step {
                    Step::VillageCommit => {
                        keys += 1;
                        commit(&mut village, &format!("v{keys}"));
                    }
                    // A replaced township would reuse its actor's sequence
                    // numbers, which the village refuses by design.
                    Step::TownshipCommit if township.holds(&document()) && !replaced => {
                        township_wrote = true;
                        keys += 1;
                        commit(&mut township, &format!("t{keys}"));
                    }
                    Step::TownshipCommit => {}
                    Step::Exchange { village_evicts, township_evicts } => {
                        deliver(&mut village, &mut township, village_evicts, &mut taken)?;
                        deliver(&mut township, &mut village, township_evicts, &mut taken)?;
                    }
                    Step::CrashVillage => {
                        village = crash_and_reopen(village);
                        township.peer_disconnected(&station("xh/t1/v1"));
                    }
                    Step::CrashTownship => {
                        township = crash_and_reopen(township);
                        village.peer_disconnected(&station("xh/t1"));
                    }
                    // Its own changes would come back from the village,
                    // which may not carry a township's writes (by design).
                    Step::TownshipReplaced if township_wrote => {}
                    Step::TownshipReplaced => {
                        replaced = true;
                        township = fresh("xh/t1");
                        village.peer_disconnected(&station("xh/t1"));
                    }
                }
            }
            village.peer_disconnected(&station("xh/t1"));
            township.peer_disconnected(&station("xh/t1/v1"));
            for _ in 0..20 {
                deliver(&mut village, &mut township, true, &mut taken)?;
                deliver(&mut township, &mut village, true, &mut taken)?;
            }
            prop_assert_eq!(village.heads(&document()), township.heads(&document()));
            prop_assert!(village.verify().is_empty());
            prop_assert!(township.verify().is_empty());
        }
    }

    /// A cold township: the village sends its stored snapshot and answers
    /// the township's heads from its index, reading no document back.
    #[test]
    fn a_peer_holding_nothing_gets_the_stored_snapshot_and_nothing_is_loaded() {
        let mut village = fresh("xh/t1/v1");
        commit(&mut village, "first");
        village.evict_all();
        let loads_before = village.documents_loaded();
        let mut township = fresh("xh/t1");
        let messages = sync_until_quiet(&mut village, &mut township);
        assert_eq!(township.heads(&document()), village.heads(&document()));
        assert!(messages <= 4, "{messages} messages for one cold document");
        assert_eq!(
            village.documents_loaded(),
            loads_before,
            "the village read the document back to send it whole"
        );
        assert_eq!(village.cached_documents(), 0);
    }

    fn sync_until_quiet(
        village: &mut Replica<MemoryStorage>,
        township: &mut Replica<MemoryStorage>,
    ) -> usize {
        let (v, t) = (station("xh/t1/v1"), station("xh/t1"));
        let mut messages = 0;
        for _ in 0..10 {
            let mut quiet = true;
            for from_village in [false, true] {
                let (from, to, to_station, from_station) = if from_village {
                    (&mut *village, &mut *township, &t, &v)
                } else {
                    (&mut *township, &mut *village, &v, &t)
                };
                if let Some(message) = from
                    .generate_sync_message(to_station, &document(), PayloadFormat::Signed)
                    .unwrap()
                {
                    quiet = false;
                    messages += 1;
                    to.receive_sync_message(
                        from_station,
                        &document(),
                        &message,
                        PayloadFormat::Signed,
                    )
                    .unwrap();
                }
            }
            if quiet {
                break;
            }
        }
        messages
    }

    /// The snapshot and an increment go as stored; the cold township keeps
    /// them as a snapshot and one increment, and loads them after a crash.
    #[test]
    fn a_document_with_increments_goes_as_stored_and_is_kept_as_it_came() {
        let mut village = fresh("xh/t1/v1");
        commit(&mut village, "first");
        commit(&mut village, "second");
        let entry = village.index.get(&document()).unwrap().clone();
        assert_eq!(entry.increment_count(), 1, "a snapshot and one increment");
        village.evict_all();
        let loads_before = village.documents_loaded();
        let mut township = fresh("xh/t1");
        sync_until_quiet(&mut village, &mut township);
        assert_eq!(township.heads(&document()), village.heads(&document()));
        assert_eq!(village.documents_loaded(), loads_before);
        let kept = township.index.get(&document()).unwrap().clone();
        assert_eq!(kept.increment_count(), 1);
        let mut township = crash_and_reopen(township);
        assert!(township.verify().is_empty());
        assert_eq!(township.heads(&document()), village.heads(&document()));
        township.evict_all();
        assert!(township.cached_document(&document()).unwrap().is_some());
    }

    /// A change after the document whose dependency is missing would be
    /// stored but never reach the heads: the message is refused whole.
    #[test]
    fn a_change_after_a_document_without_its_dependency_is_refused_and_nothing_is_stored() {
        let actor = crate::identity::actor::actor_for(&station("xh/t1/v1"), 7);
        let mut first = AutoCommit::new().with_actor(actor);
        first.put(ROOT, "a", 1).unwrap();
        let snapshot = first.save();
        first.put(ROOT, "b", 2).unwrap();
        first.commit();
        first.put(ROOT, "c", 3).unwrap();
        first.commit();
        let last = first.get_last_local_change().unwrap().raw_bytes().to_vec();
        let mut whole = snapshot;
        whole.extend_from_slice(&last);
        let message = Message {
            heads: first.get_heads(),
            need: Vec::new(),
            have: Vec::new(),
            changes: vec![whole].into(),
            flags: None,
            version: automerge::sync::MessageVersion::V2,
        };
        let mut township = fresh("xh/t1");
        let refused = township.receive_sync_message(
            &station("xh/t1/v1"),
            &document(),
            &message.encode(),
            PayloadFormat::Plain,
        );
        let reason = format!("{refused:?}");
        assert!(reason.contains("depends on a change it lacks"), "{reason}");
        assert!(!township.holds(&document()));
        assert!(township.verify().is_empty());
    }
}
