//! In-memory [`SyncHost`] over real Automerge documents, for the session
//! tests. It enforces write authority like the real replica: every new change
//! in a message is checked with `authority::check_change` before any is
//! applied, on a scratch copy that Automerge's own receive applied the
//! message to; the scratch copy replaces the document only if all pass.

use crate::identity::actor::actor_for;
use crate::identity::document_id::DocumentId;
use crate::identity::station::StationId;
use crate::identity::station::Tier;
use crate::sync::authority::{check_change, check_document, Side};
use crate::sync::host::{
    heads_digest, HeadsDigest, HostError, ReceiveError, ReceiveOutcome, SyncHost,
};
use crate::sync::signing::PayloadFormat;
use automerge::sync::{Message, State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ReadDoc, ROOT};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HostCalls {
    pub shared_documents: u64,
    pub generate: u64,
    pub receive: u64,
    pub reset: u64,
}

pub struct MemoryHost {
    pub local: StationId,
    pub actor: ActorId,
    pub documents: BTreeMap<DocumentId, AutoCommit>,
    pub states: BTreeMap<(StationId, DocumentId), State>,
    pub calls: HostCalls,
}

impl MemoryHost {
    pub fn new(local: &str) -> MemoryHost {
        let local = StationId::parse(local).unwrap();
        let actor = actor_for(&local, 1);
        MemoryHost {
            local,
            actor,
            documents: BTreeMap::new(),
            states: BTreeMap::new(),
            calls: HostCalls::default(),
        }
    }

    /// Commit `key = value` in `document` with this node's actor.
    pub fn edit(&mut self, document: &DocumentId, key: &str, value: &str) {
        let actor = self.actor.clone();
        self.edit_as(document, actor, key, value);
    }

    /// Commit with any actor: how a test forges a change.
    pub fn edit_as(&mut self, document: &DocumentId, actor: ActorId, key: &str, value: &str) {
        let doc = self.documents.entry(document.clone()).or_default();
        doc.set_actor(actor);
        doc.put(ROOT, key, value).unwrap();
        doc.commit();
    }

    pub fn value(&mut self, document: &DocumentId, key: &str) -> Option<String> {
        let doc = self.documents.get(document)?;
        let (value, _) = doc.get(ROOT, key).ok()??;
        value.into_scalar().ok()?.into_string().ok()
    }

    pub fn heads_digest(&mut self, document: &DocumentId) -> Option<HeadsDigest> {
        self.documents
            .get_mut(document)
            .map(|doc| heads_digest(&doc.get_heads()))
    }

    /// What a real node does when a connection ends: keep only what
    /// `State::encode` persists.
    pub fn peer_disconnected(&mut self, peer: &StationId) {
        for ((state_peer, _), state) in self.states.iter_mut() {
            if state_peer == peer {
                *state = State::decode(&state.encode()).unwrap();
            }
        }
    }
}

/// The memory host's sessions are all within a county, where every tier
/// holds the personal documents below it.
fn side(station: &StationId) -> Side<'_> {
    Side::new(station, Tier::County)
}

impl SyncHost for MemoryHost {
    fn local_station(&self) -> &StationId {
        &self.local
    }

    fn shared_documents(&mut self, peer: &StationId) -> Vec<(DocumentId, HeadsDigest)> {
        self.calls.shared_documents += 1;
        let local = self.local.clone();
        self.documents
            .iter_mut()
            .filter(|(document, _)| check_document(document, side(peer), side(&local)).is_ok())
            .map(|(document, doc)| (document.clone(), heads_digest(&doc.get_heads())))
            .collect()
    }

    fn generate_sync_message(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        _: PayloadFormat,
    ) -> Result<Option<Vec<u8>>, HostError> {
        self.calls.generate += 1;
        check_document(document, side(peer), side(&self.local)).map_err(|error| HostError {
            reason: error.to_string(),
        })?;
        let state = self
            .states
            .entry((peer.clone(), document.clone()))
            .or_default();
        let message = match self.documents.get_mut(document) {
            Some(doc) => doc.sync().generate_sync_message(state),
            None => AutoCommit::new().sync().generate_sync_message(state),
        };
        Ok(message.map(Message::encode))
    }

    fn receive_sync_message(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        message: &[u8],
        _: PayloadFormat,
    ) -> Result<ReceiveOutcome, ReceiveError> {
        self.calls.receive += 1;
        check_document(document, side(peer), side(&self.local))?;
        let malformed = |reason: String| ReceiveError::Malformed {
            document: document.clone(),
            reason,
        };
        let decoded = Message::decode(message).map_err(|error| malformed(error.to_string()))?;
        let held = self.documents.contains_key(document);
        let mut doc = self
            .documents
            .get(document)
            .cloned()
            .unwrap_or_else(AutoCommit::new);
        let mut state = self
            .states
            .get(&(peer.clone(), document.clone()))
            .cloned()
            .unwrap_or_default();
        let heads_before = doc.get_heads();

        // Expand the message's chunks into changes on a scratch copy.
        let mut scratch = doc.clone();
        let mut scratch_state = state.clone();
        scratch
            .sync()
            .receive_sync_message(&mut scratch_state, decoded.clone())
            .map_err(|error| malformed(error.to_string()))?;
        let fresh = scratch.get_changes(&heads_before);
        for change in &fresh {
            check_change(document, change.actor_id(), side(peer), side(&self.local))?;
        }
        let changes_applied = fresh.len();
        // Commit what Automerge's own receive made of the message: it keeps
        // the sync state's bookkeeping and any change still waiting for its
        // dependencies, which a copy of only the applied changes would drop.
        doc = scratch;
        state = scratch_state;
        let heads_changed = doc.get_heads() != heads_before;
        if held || changes_applied > 0 {
            self.documents.insert(document.clone(), doc);
        }
        self.states.insert((peer.clone(), document.clone()), state);
        Ok(ReceiveOutcome {
            changes_applied,
            heads_changed,
        })
    }

    fn reset_sync_state(&mut self, peer: &StationId, document: &DocumentId) {
        self.calls.reset += 1;
        self.states.remove(&(peer.clone(), document.clone()));
    }
}

/// A host that only knows digests: for scale tests where no document needs
/// to sync. Any sync call is counted, so a test can assert there were none.
pub struct DigestHost {
    pub local: StationId,
    pub shared: Vec<(DocumentId, HeadsDigest)>,
    pub calls: HostCalls,
}

impl SyncHost for DigestHost {
    fn local_station(&self) -> &StationId {
        &self.local
    }
    fn shared_documents(&mut self, _peer: &StationId) -> Vec<(DocumentId, HeadsDigest)> {
        self.calls.shared_documents += 1;
        self.shared.clone()
    }
    fn generate_sync_message(
        &mut self,
        _: &StationId,
        _: &DocumentId,
        _: PayloadFormat,
    ) -> Result<Option<Vec<u8>>, HostError> {
        self.calls.generate += 1;
        Ok(None)
    }
    fn receive_sync_message(
        &mut self,
        _: &StationId,
        _: &DocumentId,
        _: &[u8],
        _: PayloadFormat,
    ) -> Result<ReceiveOutcome, ReceiveError> {
        self.calls.receive += 1;
        Ok(ReceiveOutcome::default())
    }
    fn reset_sync_state(&mut self, _: &StationId, _: &DocumentId) {
        self.calls.reset += 1;
    }
}
