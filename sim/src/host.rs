//! The simulator's wrapper around a replica, as the sync session's host.
//!
//! An honest node's wrapper passes every call straight to the real replica.
//! The wrapper is where the simulator plays its two deliberate roles:
//!
//! - a misbehaving node serves forged documents — changes made with another
//!   station's actor (`actor::actor_for`) — in place of its own copies, so
//!   the *real* receive path of its honest peers must refuse them;
//! - the injected bug `skip-document-sync` hides one document from the
//!   session, as a buggy host would, so the convergence checker must notice.
//!
//! Production code carries no switch for either.

use automerge::sync::{self, SyncDoc};
use automerge::AutoCommit;
use civsync_protocol::replica::Replica;
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::sync::host::{
    heads_digest, HeadsDigest, HostError, MessagePreparer, PreparedMessage, ReceiveError,
    ReceiveOutcome, SyncHost,
};
use civsync_protocol::sync::signing::{PayloadFormat, SignedSyncMessage};
use civsync_protocol::{DocumentId, StationId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Documents a misbehaving node forged, with its sync states for them.
#[derive(Default)]
pub struct Forgery {
    pub documents: BTreeMap<DocumentId, AutoCommit>,
    states: BTreeMap<(StationId, DocumentId), sync::State>,
    /// Messages about forged documents that peers sent back (counted only).
    pub replies_received: u64,
}

impl Forgery {
    pub fn peer_disconnected(&mut self, peer: &StationId) {
        self.states.retain(|(p, _), _| p != peer);
    }
}

pub struct SimHost<'a> {
    pub replica: &'a mut Replica<MemoryStorage>,
    pub hidden: Option<&'a DocumentId>,
    pub forgery: Option<&'a mut Forgery>,
}

impl SimHost<'_> {
    fn forged(&mut self, document: &DocumentId) -> Option<&mut AutoCommit> {
        self.forgery
            .as_mut()
            .and_then(|f| f.documents.get_mut(document))
    }
}

impl SyncHost for SimHost<'_> {
    fn local_station(&self) -> &StationId {
        self.replica.local()
    }

    fn shared_documents(&mut self, peer: &StationId) -> Vec<(DocumentId, HeadsDigest)> {
        let mut shared = self.replica.shared_documents(peer);
        if let Some(hidden) = self.hidden {
            shared.retain(|(document, _)| document != hidden);
        }
        if let Some(forgery) = self.forgery.as_mut() {
            // Forged copies replace the real ones; the session is told the
            // forged heads, as a lying node would.
            shared.retain(|(document, _)| !forgery.documents.contains_key(document));
            for (document, doc) in forgery.documents.iter_mut() {
                shared.push((document.clone(), heads_digest(&doc.get_heads())));
            }
            shared.sort_by(|a, b| a.0.cmp(&b.0));
        }
        shared
    }

    fn generate_sync_message(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        format: PayloadFormat,
    ) -> Result<Option<Vec<u8>>, HostError> {
        if self.hidden == Some(document) {
            return Ok(None);
        }
        if self.forged(document).is_some() {
            let forgery = self.forgery.as_mut().expect("checked above");
            let doc = forgery.documents.get_mut(document).expect("checked above");
            let state = forgery
                .states
                .entry((peer.clone(), document.clone()))
                .or_default();
            // A liar signs nothing it forges: its changes go unsigned.
            return Ok(doc
                .sync()
                .generate_sync_message(state)
                .map(|m| unsigned_payload(m.encode(), format)));
        }
        self.replica.generate_sync_message(peer, document, format)
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

    /// The replica's own, so the simulation takes whole documents in the
    /// way the node does (loaded before the replica's turn).
    fn preparer(&self) -> Option<Arc<dyn MessagePreparer>> {
        self.replica.preparer()
    }

    fn receive_prepared_sync_message(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        message: &[u8],
        format: PayloadFormat,
        prepared: Option<PreparedMessage>,
    ) -> Result<ReceiveOutcome, ReceiveError> {
        if self.hidden == Some(document) {
            // The buggy host drops what it hides, in both directions.
            return Ok(ReceiveOutcome::default());
        }
        if self.forged(document).is_some() {
            let forgery = self.forgery.as_mut().expect("checked above");
            forgery.replies_received += 1;
            let doc = forgery.documents.get_mut(document).expect("checked above");
            let state = forgery
                .states
                .entry((peer.clone(), document.clone()))
                .or_default();
            let message = match format {
                PayloadFormat::Plain => message.to_vec(),
                PayloadFormat::Signed => SignedSyncMessage::decode(message, usize::MAX)
                    .map(|envelope| envelope.automerge)
                    .map_err(|reason| ReceiveError::Malformed {
                        document: document.clone(),
                        reason,
                    })?,
            };
            let decoded = sync::Message::decode(&message).map_err(|e| ReceiveError::Malformed {
                document: document.clone(),
                reason: e.to_string(),
            })?;
            // The liar does not care what it is told; it only keeps its state.
            let _ = doc.sync().receive_sync_message(state, decoded);
            return Ok(ReceiveOutcome::default());
        }
        self.replica
            .receive_prepared_sync_message(peer, document, message, format, prepared)
    }

    fn reset_sync_state(&mut self, peer: &StationId, document: &DocumentId) {
        if let Some(forgery) = self.forgery.as_mut() {
            forgery.states.remove(&(peer.clone(), document.clone()));
        }
        self.replica.reset_sync_state(peer, document)
    }
}

/// Automerge's message as the session expects it in `format`, unsigned.
fn unsigned_payload(automerge: Vec<u8>, format: PayloadFormat) -> Vec<u8> {
    match format {
        PayloadFormat::Plain => automerge,
        PayloadFormat::Signed => SignedSyncMessage {
            automerge,
            credentials: Vec::new(),
            signatures: Vec::new(),
        }
        .encode(),
    }
}
