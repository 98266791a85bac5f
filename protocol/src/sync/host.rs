//! The boundary between the sync session and the document store.
//!
//! The session (`session.rs`) decides *what* to exchange with a peer and in
//! which order; the host (the replica over durable storage, in the node and in
//! the simulation alike) owns the Automerge documents and their per-peer sync
//! states. Keeping this a trait lets the session be tested with an in-memory
//! host and driven by the simulator without any IO.

use crate::identity::document_id::DocumentId;
use crate::identity::station::StationId;
use crate::sync::authority::AuthorityError;
use crate::sync::signing::PayloadFormat;
use automerge::ChangeHash;
use sha2::{Digest, Sha256};

/// A short, order-independent fingerprint of a document's heads. Two replicas
/// with equal digests hold the same history.
pub type HeadsDigest = [u8; 16];

/// Fingerprint of `heads` (order does not matter).
pub fn heads_digest(heads: &[ChangeHash]) -> HeadsDigest {
    let mut sorted: Vec<&ChangeHash> = heads.iter().collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    for head in sorted {
        hasher.update(head.0);
    }
    let full = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// What receiving one sync message did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiveOutcome {
    /// Changes newly applied (already durable when this is returned).
    pub changes_applied: usize,
    /// The document's heads moved, so other peers may need to hear of it.
    pub heads_changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    /// A change in the message may not be applied here; nothing was applied.
    #[error("refused: {0}")]
    Refused(#[from] AuthorityError),
    /// The message or a change in it could not be decoded; nothing was applied.
    #[error("malformed sync message for {document}: {reason}")]
    Malformed {
        document: DocumentId,
        reason: String,
    },
    /// The document declares a schema newer than this node understands.
    #[error(
        "document {document} has schema version {found}; this node understands up to {supported}"
    )]
    SchemaTooNew {
        document: DocumentId,
        found: String,
        supported: String,
    },
    /// Not taken in for now (a station the registry does not list yet, a
    /// daily quota used up); nothing was applied. The peer offers it again
    /// in a later session, once [`SyncHost::refusal_lifted`] says so.
    #[error("refused for now: {reason}")]
    Deferred {
        document: DocumentId,
        reason: String,
    },
    /// The local store failed; nothing was acknowledged.
    #[error("storage failed while receiving {document}: {reason}")]
    Storage {
        document: DocumentId,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct HostError {
    pub reason: String,
}

/// Work a host can do on a received sync message before it takes it in,
/// without its documents or its storage: decoding and loading what the
/// message alone decides. A driver with a host on one thread runs it
/// elsewhere, so that thread is busy only with what needs the store
/// (see [`Session::prepare_inbox`](crate::sync::session::Session::prepare_inbox)).
pub trait MessagePreparer: Send + Sync {
    /// `None` when there is nothing to do ahead, or the message is not what
    /// it looked like: the host then takes it in the usual way, and reports
    /// whatever is wrong with it.
    fn prepare(
        &self,
        document: &DocumentId,
        message: &[u8],
        format: PayloadFormat,
    ) -> Option<PreparedMessage>;
}

/// What a [`MessagePreparer`] made of one message, opaque to the session;
/// only the host that made the preparer reads it.
pub struct PreparedMessage(Box<dyn std::any::Any + Send>);

impl PreparedMessage {
    pub fn new<T: std::any::Any + Send>(prepared: T) -> PreparedMessage {
        PreparedMessage(Box::new(prepared))
    }

    /// The prepared value, if it is a `T`.
    pub fn take<T: std::any::Any>(self) -> Option<T> {
        self.0.downcast::<T>().ok().map(|boxed| *boxed)
    }
}

impl std::fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreparedMessage")
    }
}

/// The document store as the sync session sees it.
pub trait SyncHost {
    /// This node's station.
    fn local_station(&self) -> &StationId;

    /// Every document this node holds that is also in `peer`'s scope, sorted
    /// by document id, with the digest of its heads. Must not load documents:
    /// it is called on every (re)connect, over thousands of documents.
    fn shared_documents(&mut self, peer: &StationId) -> Vec<(DocumentId, HeadsDigest)>;

    /// Next Automerge sync message for `document` to `peer`, using and
    /// updating the persisted sync state for that pair. `None` when there is
    /// nothing to say. A document this node does not hold yet (but may hold)
    /// is treated as empty. `format`: from the agreed wire version, whether
    /// the message goes in a signed envelope.
    fn generate_sync_message(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        format: PayloadFormat,
    ) -> Result<Option<Vec<u8>>, HostError>;

    /// Apply one Automerge sync message from `peer`. All changes or none:
    /// authority is checked for every change first; accepted changes are
    /// applied in one batch and are durable before this returns `Ok`.
    fn receive_sync_message(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        message: &[u8],
        format: PayloadFormat,
    ) -> Result<ReceiveOutcome, ReceiveError>;

    /// What this host can do to a message before taking it in, away from
    /// its documents; `None` if nothing.
    fn preparer(&self) -> Option<std::sync::Arc<dyn MessagePreparer>> {
        None
    }

    /// [`receive_sync_message`](Self::receive_sync_message) of a message
    /// this host's [`preparer`](Self::preparer) prepared (`prepared`), with
    /// the same outcome as without it.
    fn receive_prepared_sync_message(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        message: &[u8],
        format: PayloadFormat,
        prepared: Option<PreparedMessage>,
    ) -> Result<ReceiveOutcome, ReceiveError> {
        let _ = prepared;
        self.receive_sync_message(peer, document, message, format)
    }

    /// Forget the sync state of (`peer`, `document`), so the next exchange
    /// starts from scratch (after a refusal, or when the peer asks).
    fn reset_sync_state(&mut self, peer: &StationId, document: &DocumentId);

    /// Would `document`, refused from `peer` as [`ReceiveError::Deferred`],
    /// be taken in now (its station registered since, a new day's quota)?
    /// Asked now and then while such refusals stand; cheap, reads no
    /// document content beyond the registry.
    fn refusal_lifted(&mut self, _peer: &StationId, _document: &DocumentId) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_head_order_but_not_content() {
        let a = ChangeHash([1; 32]);
        let b = ChangeHash([2; 32]);
        assert_eq!(heads_digest(&[a, b]), heads_digest(&[b, a]));
        assert_ne!(heads_digest(&[a]), heads_digest(&[a, b]));
        assert_ne!(heads_digest(&[]), heads_digest(&[a]));
    }
}
