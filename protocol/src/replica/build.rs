//! One unit with `mod.rs`: the first commit of a new document, built on any
//! thread and stored by `Replica::store_built` with the same checks.
//!
//! New documents built away from the replica, then stored by it.
//!
//! A bulk import creates thousands of documents that share nothing: their
//! Automerge work (creating the records, committing, encoding the snapshot)
//! is most of an import's CPU and needs no storage. A [`DocumentBuilder`]
//! carries what that work needs — the local station, the actor and the
//! clock — so the caller can run it on as many threads as it has; the
//! replica then stores each [`BuiltDocument`] with one batch, exactly as a
//! first [`Replica::commit`] of it would have been stored (a snapshot and
//! its index entry).
//!
//! Invariants:
//!
//! - **Same checks as a commit.** A builder refuses what `commit` refuses
//!   (out of scope, not writable, a foreign actor), with the same errors.
//! - **Only new documents.** [`Replica::store_built`] refuses a document it
//!   already holds: a built document was made from nothing, and storing it
//!   over existing history would lose that history. The caller commits to
//!   held documents the ordinary way.
//! - **No threads here.** The protocol stays deterministic; how builds are
//!   spread over cores is the caller's business.

use super::layout::{index_key, seal, snapshot_key};
use super::{CommitError, IndexEntry, Replica};
use crate::identity::document_id::DocumentId;
use crate::identity::station::{StationId, Tier};
use crate::storage::{Storage, StorageError, WriteBatch};
use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit, ChangeHash};

/// What building a new document needs from the replica; cheap to clone and
/// `Send`, so builds can run on other threads.
#[derive(Debug, Clone)]
pub struct DocumentBuilder {
    local: StationId,
    tier: Tier,
    actor: ActorId,
    now_ms: i64,
}

/// A new document, encoded and sealed, ready for [`Replica::store_built`].
#[derive(Debug)]
pub struct BuiltDocument {
    document: DocumentId,
    sealed_snapshot: Vec<u8>,
    heads: Vec<ChangeHash>,
    changes: u64,
    /// Every change's hash, signed when the document is stored.
    change_hashes: Vec<ChangeHash>,
    /// Every change's author: the builder's actor.
    actor: ActorId,
    /// The document itself, cached when stored: an import's next step (a
    /// team file after its roster, a ledger's plan reading the roster)
    /// reads it at once, and loading it back from the snapshot just
    /// written was a third of a team import's time on the store's thread.
    loaded: Box<AutoCommit>,
}

/// Why [`Replica::store_built`] refused a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreBuiltError {
    #[error("document {document} is already held; commit to it instead of storing a new one")]
    AlreadyHeld { document: DocumentId },
    #[error("document {document} was built by actor {actor}, not by this replica's")]
    OtherActor { document: DocumentId, actor: String },
    #[error("this node's actor was seen in a change it does not hold; {document} is not stored until it takes a new incarnation")]
    ActorReused { document: DocumentId },
    #[error("storage failed while storing {document}: {source}")]
    Storage {
        document: DocumentId,
        source: StorageError,
    },
}

impl DocumentBuilder {
    /// Build `document` from nothing: its meta, then `mutate`, as one change
    /// stamped with the builder's clock. Returns the document and what
    /// `mutate` returned; nothing is stored.
    pub fn build<T, E>(
        &self,
        document: &DocumentId,
        mutate: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<(BuiltDocument, T), CommitError<E>> {
        super::check_local_write(&self.local, self.tier, document)?;
        let mut doc = AutoCommit::new().with_actor(self.actor.clone());
        crate::layout::init_document(&mut doc, document).map_err(|error| {
            CommitError::Automerge {
                document: document.clone(),
                reason: error.to_string(),
            }
        })?;
        let value = mutate(&mut doc).map_err(CommitError::Mutate)?;
        // Automerge's change time is in seconds, as in `Replica::commit`.
        doc.commit_with(CommitOptions::default().with_time(self.now_ms / 1000));
        let metas = doc.get_changes_meta(&[]);
        let change_hashes: Vec<ChangeHash> = metas.iter().map(|meta| meta.hash).collect();
        let actors: Vec<ActorId> = metas
            .into_iter()
            .map(|meta| meta.actor.into_owned())
            .collect();
        debug_assert!(!actors.is_empty(), "a new document always gets its meta");
        if let Some(foreign) = actors.iter().find(|actor| **actor != self.actor) {
            return Err(CommitError::ForeignActor {
                document: document.clone(),
                actor: foreign.to_hex_string(),
            });
        }
        let sealed_snapshot = seal(&doc.save());
        // As after a load: nothing here reads diffs, so none are kept.
        doc.reset_diff_cursor();
        let built = BuiltDocument {
            document: document.clone(),
            sealed_snapshot,
            heads: doc.get_heads(),
            changes: actors.len() as u64,
            change_hashes,
            actor: self.actor.clone(),
            loaded: Box::new(doc),
        };
        Ok((built, value))
    }

    pub fn local(&self) -> &StationId {
        &self.local
    }
}

impl<S: Storage> Replica<S> {
    /// A builder for new documents of this replica, stamped with its clock
    /// as it is now.
    pub fn document_builder(&self) -> DocumentBuilder {
        DocumentBuilder {
            local: self.local.clone(),
            tier: self.tier,
            actor: self.actor.clone(),
            now_ms: self.now_ms,
        }
    }

    /// Store a document built by [`DocumentBuilder::build`], unflushed: as
    /// with [`Replica::commit_unflushed`], it is acknowledged only once a
    /// later [`Replica::flush`] returns `Ok`. The document goes into the
    /// cache as built, so its first read does not load it back.
    pub fn store_built(&mut self, built: BuiltDocument) -> Result<(), StoreBuiltError> {
        let BuiltDocument {
            document,
            sealed_snapshot,
            heads,
            changes,
            change_hashes,
            actor,
            loaded,
        } = built;
        // A builder of another replica (another station, or an earlier
        // incarnation of this one) would store changes this node did not
        // author under its name.
        if actor != self.actor {
            return Err(StoreBuiltError::OtherActor {
                document,
                actor: actor.to_hex_string(),
            });
        }
        if self.actor_reused.is_some() {
            return Err(StoreBuiltError::ActorReused { document });
        }
        if self.index.contains_key(&document) {
            return Err(StoreBuiltError::AlreadyHeld { document });
        }
        debug_assert!(!heads.is_empty(), "a built document has its meta change");
        let mut entry = IndexEntry::empty();
        entry.snapshot_bytes = sealed_snapshot.len() as u64;
        entry.change_count = changes;
        entry.set_heads(heads);
        let mut batch = WriteBatch::new();
        batch.put(snapshot_key(&document), sealed_snapshot);
        batch.put(index_key(&document), seal(&entry.encode()));
        batch.extend(self.sign_local(&document, &change_hashes, &Default::default()));
        if let Err(source) = self.storage.apply(batch) {
            return Err(StoreBuiltError::Storage { document, source });
        }
        self.unflushed = true;
        self.index.insert(document.clone(), entry);
        self.documents.insert(document.clone(), loaded);
        self.changed.insert(document);
        Ok(())
    }
}
