//! One unit: the `Replica` type with the load, commit and index code every
//! submodule (`sync`, `unloaded`, `signatures`, `bundles`) builds on, kept
//! in one file so the invariants below are read against the code that keeps
//! them. With `build.rs`: a document built off the owner's thread is
//! stored by `Replica::store_built` under the checks of a first commit, so
//! the two share the replica's internals (`check_local_write`, the index).
//!
//! Layer: the replica. May use `sync` (it implements `SyncHost` and checks
//! `authority` per change), `layout`, `storage`, `domain`, `identity`,
//! `faults` (one simulator-armed defect in `signatures.rs`). Must
//! never use `stats` or `service` (they are built on it), and reads no clock:
//! the owner passes the time in (`set_now_ms`).
//!
//! The document store: Automerge documents over a [`Storage`], shared by the
//! node (over sled) and the simulator (over [`crate::storage::MemoryStorage`]).
//!
//! Invariants:
//!
//! - **One atomic batch per write.** A local commit or a received sync
//!   message stores its changes and the document's index entry in one
//!   [`WriteBatch`]; compaction writes the snapshot and deletes the
//!   increments it replaces in one batch. A crash never leaves an index entry
//!   that disagrees with the stored changes.
//! - **Memory equals storage.** A cached document always equals what storage
//!   would load (flushed or not). Whenever an operation fails after touching
//!   a cached document, the copy is dropped and reloaded on next use; nothing
//!   half-applied survives in memory.
//! - **Nothing leaves before it is durable.** [`SyncHost::generate_sync_message`]
//!   flushes pending local commits first: a change that a crash could still
//!   erase is never sent, so an actor never reuses a sequence number that a
//!   peer has seen.
//! - **The index is the catalogue.** [`Replica::open`] reads only the index
//!   (doc id → heads and sizes); documents load on first use into an LRU
//!   bounded by count, so a county with 10,000 documents holds a few hundred.
//!
//! The key layout and value framing are in [`layout`].
//!
//! [`SyncHost::generate_sync_message`]: crate::sync::host::SyncHost::generate_sync_message

pub mod bounds;
mod build;
pub mod bundles;
mod chunks;
mod config;
pub mod freshness;
pub mod intake;
pub mod layout;
mod lru;
pub mod prepare;
mod signatures;
mod sync;
#[cfg(test)]
mod tests;
mod unloaded;

use crate::identity::actor::actor_for;
use crate::identity::document_id::DocumentId;
use crate::identity::station::{StationId, Tier};
use crate::storage::{Entries, Storage, StorageError, WriteBatch};
use crate::sync::host::HeadsDigest;
use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit, ChangeHash};
pub use bounds::{BoundError, DecodeCost, DecodeLimits};
pub use build::{BuiltDocument, DocumentBuilder, StoreBuiltError};
use freshness::Freshness;
pub use intake::{IntakeRefusal, PeerIntake, PeerQuotas};
use layout::{
    document_of_key, increment_key, increment_seq, increments_prefix, index_key, seal,
    snapshot_key, unseal, INCREMENT_PREFIX, INDEX_PREFIX, LAYOUT_KEY, LAYOUT_VERSION,
    SNAPSHOT_PREFIX, SYNC_STATE_PREFIX,
};
pub use layout::{CorruptValue, IndexEntry};
use lru::Lru;
pub use signatures::Signing;
use std::collections::{BTreeMap, BTreeSet};

pub use config::*;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Corrupt(#[from] CorruptValue),
    #[error("store layout version {found} is newer than this node understands ({supported})")]
    LayoutTooNew { found: u32, supported: u32 },
    #[error("replica configuration is unusable: {reason}")]
    BadConfig { reason: String },
    #[error("the store holds document {document}, which station {station} may not hold: is this the right store?")]
    ForeignDocument {
        document: DocumentId,
        station: StationId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Corrupt(#[from] CorruptValue),
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError<E> {
    #[error("station {writer} may not write document {document}")]
    NotWritable {
        document: DocumentId,
        writer: StationId,
    },
    #[error("document {document} is outside the scope of station {station}")]
    OutOfScope {
        document: DocumentId,
        station: StationId,
    },
    #[error("the mutation refused: {0}")]
    Mutate(E),
    #[error("loading {document} failed: {source}")]
    Load {
        document: DocumentId,
        source: LoadError,
    },
    #[error("storage failed while committing {document}: {source}")]
    Storage {
        document: DocumentId,
        source: StorageError,
    },
    #[error("automerge failed on {document}: {reason}")]
    Automerge {
        document: DocumentId,
        reason: String,
    },
    #[error("the mutation of {document} produced a change by actor {actor}, not this node's")]
    ForeignActor { document: DocumentId, actor: String },
    /// A peer sent a change by this node's own actor that it did not hold:
    /// its store is an old copy, so a local change now could reuse a
    /// sequence number. Nothing is written until the owner gives the replica
    /// a new incarnation ([`Replica::renew_actor`]).
    #[error("this node's actor was seen in a change it does not hold (its store is an old copy); it writes nothing until it takes a new incarnation")]
    ActorReused { document: DocumentId },
}

/// What a successful commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOutcome<T> {
    /// What the mutation returned.
    pub value: T,
    /// Heads after the commit, sorted.
    pub heads: Vec<ChangeHash>,
    /// Changes written: 1 normally, 0 when the mutation changed nothing.
    pub changes: usize,
    /// The document did not exist before.
    pub created: bool,
}

/// Sync state of one (peer, document) pair and its last persisted encoding.
struct SyncSlot {
    state: automerge::sync::State,
    persisted: Vec<u8>,
    /// Our heads when we last sent the peer the whole document, while this
    /// slot lives (one link; dropped with the link or on a refusal, never
    /// persisted). See `sync::without_resent_document`.
    whole_sent_at: Option<Vec<automerge::ChangeHash>>,
}

pub struct Replica<S: Storage> {
    storage: S,
    local: StationId,
    actor: ActorId,
    config: ReplicaConfig,
    /// `config.tier_of(local)`, once.
    tier: Tier,
    index: BTreeMap<DocumentId, IndexEntry>,
    /// Boxed: an `AutoCommit` is about 4 KiB by value, and the map's nodes
    /// shift their values on every insert and remove (a take and a keep per
    /// write and per received message).
    documents: Lru<DocumentId, Box<AutoCommit>>,
    /// Documents read back from storage (cache misses), since opening.
    documents_loaded: u64,
    sync_states: Lru<(StationId, DocumentId), SyncSlot>,
    changed: BTreeSet<DocumentId>,
    /// Batches were applied since the last successful flush.
    unflushed: bool,
    /// While set, `commit` leaves the flush to the caller, who must flush
    /// before acknowledging (group commit: the node's store owner thread).
    flush_deferred: bool,
    /// The owner's clock (Unix ms), stamped on every local change; see
    /// [`Replica::set_now_ms`].
    now_ms: i64,
    /// What each peer brought in today (counts live in memory: a restart
    /// starts the day's quotas again).
    intake: intake::Intake,
    /// A peer sent a change by our own actor that we did not hold (see
    /// [`Replica::actor_reused`]); local writes are refused until renewed.
    actor_reused: Option<ActorReuse>,
    /// Signing this replica's changes and checking its peers' (`signatures`).
    signatures: signatures::SignatureBook,
}

/// Evidence that this replica's actor was used before: a peer holds a
/// change by it that this store does not (the store was copied back from an
/// older folder, or restored without a new incarnation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorReuse {
    /// The peer that sent it.
    pub peer: StationId,
    /// The document it was in.
    pub document: DocumentId,
    /// Its sequence number under our actor.
    pub seq: u64,
}

impl<S: Storage> Replica<S> {
    /// Open the store, reading only its index. `incarnation` names this
    /// store's life: the node draws a new one when it initialises a store or
    /// restores a backup, so an actor is never reused.
    pub fn open(
        mut storage: S,
        local: StationId,
        incarnation: u64,
        config: ReplicaConfig,
    ) -> Result<Replica<S>, OpenError> {
        if config.documents_cached_max == 0 || config.sync_states_cached_max == 0 {
            return Err(OpenError::BadConfig {
                reason: "documents_cached_max and sync_states_cached_max must be at least 1"
                    .to_string(),
            });
        }
        let index_entries = storage.scan_prefix(INDEX_PREFIX)?;
        match storage.get(LAYOUT_KEY)? {
            Some(bytes) => {
                let raw: [u8; 4] = bytes.as_slice().try_into().map_err(|_| {
                    CorruptValue::new(LAYOUT_KEY, format!("{} bytes, expected 4", bytes.len()))
                })?;
                let found = u32::from_be_bytes(raw);
                if found > LAYOUT_VERSION {
                    return Err(OpenError::LayoutTooNew {
                        found,
                        supported: LAYOUT_VERSION,
                    });
                }
            }
            None if !index_entries.is_empty() => {
                return Err(CorruptValue::new(
                    LAYOUT_KEY,
                    "missing, but the store holds documents",
                )
                .into());
            }
            None => {
                let mut batch = WriteBatch::new();
                batch.put(LAYOUT_KEY.to_vec(), LAYOUT_VERSION.to_be_bytes().to_vec());
                storage.apply(batch)?;
                storage.flush()?;
            }
        }
        let mut index = BTreeMap::new();
        for (key, value) in index_entries {
            let document = document_of_key(INDEX_PREFIX, &key)?;
            let entry = IndexEntry::decode(&key, unseal(&key, &value)?)?;
            if !document.in_scope_of(&local, config.tier_of(&local)) {
                return Err(OpenError::ForeignDocument {
                    document,
                    station: local,
                });
            }
            index.insert(document, entry);
        }
        let tier = config.tier_of(&local);
        let mut intake = intake::Intake::new(config.peer_quotas);
        for (key, value) in storage.scan_prefix(layout::INTAKE_PREFIX)? {
            // Damaged counts cost a peer at most one fresh day of quota;
            // they never keep the store from opening.
            let peer = std::str::from_utf8(&key[layout::INTAKE_PREFIX.len()..])
                .ok()
                .and_then(|text| StationId::parse(text).ok());
            let counts = unseal(&key, &value)
                .map_err(|problem| problem.to_string())
                .and_then(PeerIntake::decode);
            match (peer, counts) {
                (Some(peer), Ok(counts)) => intake.restore(peer, counts),
                (_, counts) => tracing::warn!(
                    key = %crate::storage::display_key(&key),
                    problem = ?counts.err(),
                    "stored intake counts are unreadable; that peer's day starts afresh"
                ),
            }
        }
        Ok(Replica {
            storage,
            actor: actor_for(&local, incarnation),
            local,
            documents: Lru::new(config.documents_cached_max),
            documents_loaded: 0,
            sync_states: Lru::new(config.sync_states_cached_max),
            tier,
            config,
            index,
            changed: BTreeSet::new(),
            unflushed: false,
            flush_deferred: false,
            now_ms: 0,
            intake,
            actor_reused: None,
            signatures: signatures::SignatureBook::default(),
        })
    }

    /// Tell the replica what time it is (Unix ms, the owner's clock): every
    /// local change committed from now on carries it, and that change time
    /// is what the county's freshness view reports for this station. The
    /// replica reads no clock itself; the node's store owner thread sets it
    /// before every job and the simulator before every clerk action, so no
    /// write path can forget it. Until set, changes carry time 0, which
    /// automerge and [`Freshness`] read as "unknown".
    pub fn set_now_ms(&mut self, now_ms: i64) {
        debug_assert!(now_ms >= 0, "a clock before 1970 is a broken clock");
        self.now_ms = now_ms.max(0);
    }

    /// The time the next local change will carry (Unix ms).
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    pub fn local(&self) -> &StationId {
        &self.local
    }

    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// Whether a peer has sent a change by this replica's own actor that it
    /// did not hold, and which. While set, every local write is refused
    /// (`ActorReused`): the owner must draw a new incarnation, store it
    /// durably, and call [`Replica::renew_actor`] before anything else. The
    /// replica draws no randomness and stores no incarnation itself.
    pub fn actor_reused(&self) -> Option<&ActorReuse> {
        self.actor_reused.as_ref()
    }

    /// Write from now on as `incarnation` (the owner has stored it durably)
    /// and clear [`Replica::actor_reused`]. Loaded documents are dropped so
    /// that each reloads with the new actor.
    pub fn renew_actor(&mut self, incarnation: u64) {
        let actor = actor_for(&self.local, incarnation);
        debug_assert_ne!(actor, self.actor, "a renewal draws a new incarnation");
        self.actor = actor;
        self.actor_reused = None;
        self.documents.clear();
    }

    /// Note a change received from `peer` by our own actor that we did not
    /// hold: the first such change is kept as the evidence.
    fn note_own_actor(&mut self, peer: &StationId, document: &DocumentId, seq: u64) {
        if self.actor_reused.is_none() {
            self.actor_reused = Some(ActorReuse {
                peer: peer.clone(),
                document: document.clone(),
                seq,
            });
        }
    }

    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Give the storage back (the simulator crashes it and reopens).
    pub fn into_storage(self) -> S {
        self.storage
    }

    // ----- reads -----

    /// Every document held, in id order.
    pub fn documents(&self) -> Vec<DocumentId> {
        self.index.keys().cloned().collect()
    }

    /// Documents held whose id satisfies `keep`, in id order.
    pub fn documents_where(&self, mut keep: impl FnMut(&DocumentId) -> bool) -> Vec<DocumentId> {
        self.index.keys().filter(|id| keep(id)).cloned().collect()
    }

    /// Documents owned by `station` or below it.
    pub fn documents_owned_within(&self, station: &StationId) -> Vec<DocumentId> {
        self.documents_where(|id| station.is_ancestor_or_self_of(&id.owner))
    }

    pub fn holds(&self, document: &DocumentId) -> bool {
        self.index.contains_key(document)
    }

    /// Sorted heads, from the index (no loading).
    pub fn heads(&self, document: &DocumentId) -> Option<&[ChangeHash]> {
        self.index.get(document).map(|entry| entry.heads.as_slice())
    }

    pub fn heads_digest(&self, document: &DocumentId) -> Option<HeadsDigest> {
        self.index.get(document).map(|entry| entry.digest)
    }

    /// Changes stored for the document (local and received).
    pub fn change_count(&self, document: &DocumentId) -> Option<u64> {
        self.index.get(document).map(|entry| entry.change_count)
    }

    pub fn index_entry(&self, document: &DocumentId) -> Option<&IndexEntry> {
        self.index.get(document)
    }

    /// Documents currently loaded in memory.
    pub fn cached_documents(&self) -> usize {
        self.documents.len()
    }

    /// Documents read back from storage since the replica opened: every
    /// miss of the in-memory cache, each a snapshot load and a replay of
    /// the increments after it.
    pub fn documents_loaded(&self) -> u64 {
        self.documents_loaded
    }

    /// Run `read` on the document; `None` when it is not held.
    pub fn with_document<T>(
        &mut self,
        document: &DocumentId,
        read: impl FnOnce(&AutoCommit) -> T,
    ) -> Result<Option<T>, LoadError> {
        Ok(self.cached_document(document)?.map(|doc| read(doc)))
    }

    /// Run `read` on the document and its changes that `since` (heads it
    /// was seen at) does not cover, decoded by Automerge from what is held.
    /// `Ok(None)` when the document is not held, or when `since` names a
    /// change it does not hold (a restored older disk): then nothing can be
    /// said about what changed, and the caller reads the document whole.
    pub fn with_changes_since<T>(
        &mut self,
        document: &DocumentId,
        since: &[ChangeHash],
        read: impl FnOnce(&AutoCommit, &[automerge::Change]) -> T,
    ) -> Result<Option<T>, LoadError> {
        let Some(doc) = self.cached_document(document)? else {
            return Ok(None);
        };
        if !doc.get_missing_deps(since).is_empty() {
            return Ok(None);
        }
        let changes = doc.get_changes(since);
        Ok(Some(read(doc, &changes)))
    }

    /// Fold the change times of `document` into `freshness`: every change
    /// not covered by `since` (its heads when last observed; `&[]` for all).
    /// Reads change metadata only, never operations. `Ok(false)` when the
    /// document is not held.
    pub fn observe_change_times(
        &mut self,
        document: &DocumentId,
        since: &[ChangeHash],
        freshness: &mut Freshness,
    ) -> Result<bool, LoadError> {
        match self.cached_document(document)? {
            Some(doc) => {
                freshness.observe_document(doc, since);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether a document's heads moved since `take_changed_documents` was
    /// last called (what a host checks after each job to wake its feed).
    pub fn has_changed_documents(&self) -> bool {
        !self.changed.is_empty()
    }

    /// Documents whose heads moved (by a local commit or a sync) since the
    /// last call, in id order.
    pub fn take_changed_documents(&mut self) -> Vec<DocumentId> {
        std::mem::take(&mut self.changed).into_iter().collect()
    }

    /// Drop every loaded document (they are all in storage already).
    pub fn evict_all(&mut self) {
        self.documents.clear();
    }

    // ----- writes -----

    /// Commit one local change and make it durable. `Ok` means acknowledged.
    /// A `Storage` error from the flush means *not acknowledged*: the change
    /// stays applied (reads see it) and may still become durable with a
    /// later flush, or be lost by a crash before one.
    pub fn commit<T, E>(
        &mut self,
        document: &DocumentId,
        mutate: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<CommitOutcome<T>, CommitError<E>> {
        let outcome = self.commit_unflushed(document, mutate)?;
        if outcome.changes > 0 && !self.flush_deferred {
            self.flush().map_err(|source| CommitError::Storage {
                document: document.clone(),
                source,
            })?;
        }
        Ok(outcome)
    }

    /// Commit one local change into storage without flushing: the write is
    /// acknowledged only once a later [`Replica::flush`] returns `Ok`. Lets
    /// the node share one flush among many writers (group commit).
    pub fn commit_unflushed<T, E>(
        &mut self,
        document: &DocumentId,
        mutate: impl FnOnce(&mut AutoCommit) -> Result<T, E>,
    ) -> Result<CommitOutcome<T>, CommitError<E>> {
        check_local_write(&self.local, self.tier, document)?;
        if self.actor_reused.is_some() {
            return Err(CommitError::ActorReused {
                document: document.clone(),
            });
        }
        let existing = self
            .take_document(document)
            .map_err(|source| CommitError::Load {
                document: document.clone(),
                source,
            })?;
        let created = existing.is_none();
        let mut doc = existing.unwrap_or_else(|| AutoCommit::new().with_actor(self.actor.clone()));
        debug_assert_eq!(doc.get_actor(), &self.actor);
        let heads_before = doc.get_heads();
        if created {
            crate::layout::init_document(&mut doc, document).map_err(|error| {
                CommitError::Automerge {
                    document: document.clone(),
                    reason: error.to_string(),
                }
            })?;
        }
        let value = match mutate(&mut doc) {
            Ok(value) => value,
            Err(error) => {
                doc.rollback();
                // A mutation that committed on its own cannot be rolled back:
                // then the copy differs from storage and is dropped instead.
                if !created && doc.get_heads() == heads_before {
                    self.keep_document(document, doc);
                }
                return Err(CommitError::Mutate(error));
            }
        };
        // Automerge's change time is Unix *seconds* (its `CommitOptions`
        // docs and the JS library agree); `Freshness` converts back to ms.
        doc.commit_with(CommitOptions::default().with_time(self.now_ms / 1000));
        let heads_after = doc.get_heads();
        if heads_after == heads_before {
            debug_assert!(!created, "a new document always gets its meta change");
            self.keep_document(document, doc);
            return Ok(CommitOutcome {
                value,
                heads: sorted(heads_after),
                changes: 0,
                created: false,
            });
        }
        // Metadata only: decoding the change again would cost about as
        // much as making it.
        let metas = doc.get_changes_meta(&heads_before);
        let made: Vec<signatures::Incoming> = metas
            .into_iter()
            .map(|meta| signatures::Incoming {
                hash: meta.hash,
                actor: meta.actor.into_owned(),
                deps: meta.deps,
            })
            .collect();
        if let Some(foreign) = made.iter().find(|change| change.actor != self.actor) {
            return Err(CommitError::ForeignActor {
                document: document.clone(),
                actor: foreign.actor.to_hex_string(),
            });
        }
        let changes = made.len();
        let (mut batch, entry) = if created {
            // A new document's first write is stored as its snapshot: one
            // encoding (`save`) instead of the raw changes and then, for a
            // large first write such as an import, a compaction on top.
            self.plan_first_write(document, &mut doc, changes as u64)
        } else {
            let increment = increment_since(&mut doc, &heads_before, changes);
            debug_assert_eq!(chunks::chunk_count(&increment), Ok(changes));
            self.plan_write(document, &mut doc, &increment, changes as u64)
        };
        batch.extend(
            self.commit_signatures(document, &made, &mut doc)
                .map_err(|source| CommitError::Storage {
                    document: document.clone(),
                    source,
                })?,
        );
        self.storage
            .apply(batch)
            .map_err(|source| CommitError::Storage {
                document: document.clone(),
                source,
            })?;
        self.unflushed = true;
        self.install(document, doc, entry);
        Ok(CommitOutcome {
            value,
            heads: sorted(heads_after),
            changes,
            created,
        })
    }

    /// Make every applied write durable.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.storage.flush()?;
        self.unflushed = false;
        Ok(())
    }

    /// Make `commit`, a received sync message and a generated one skip
    /// their flush until set back. Whoever sets it owns the
    /// acknowledgement: nothing written meanwhile is durable, and so may be
    /// reported to a user or answered to a peer, before a later flush
    /// returns. A node sets it around its sync sessions' work and writes
    /// their bytes only after the flush that covers them, which one flush
    /// serves for every peer at once (group commit).
    pub fn set_flush_deferred(&mut self, deferred: bool) {
        self.flush_deferred = deferred;
    }

    pub fn has_unflushed_writes(&self) -> bool {
        self.unflushed
    }

    /// Every held document with its heads digest, in id order (no loading,
    /// no cloning: a refresh compares these against what it has seen).
    pub fn digests(&self) -> impl Iterator<Item = (&DocumentId, HeadsDigest)> {
        self.index.iter().map(|(id, entry)| (id, entry.digest))
    }

    /// Apply a batch of the statistics index's own entries (keys under
    /// [`layout::STATS_PREFIX`] only). Not flushed and not counted as an
    /// unflushed write: the entries are a cache that a crash may lose at the
    /// cost of a recompute, so they ride on the next flush of documents.
    pub fn apply_stats_batch(&mut self, batch: WriteBatch) -> Result<(), StorageError> {
        if let Some(foreign) = batch
            .operations()
            .iter()
            .find(|op| !op.key().starts_with(layout::STATS_PREFIX))
        {
            debug_assert!(false, "statistics batch touches a foreign key");
            return Err(StorageError::Write {
                first_key: crate::storage::display_key(foreign.key()),
                operations: batch.len(),
                reason: "a statistics batch may only write keys under stats|".to_string(),
            });
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.storage.apply(batch)
    }

    // ----- integrity -----

    /// Load every document from storage (bypassing the cache) and check every
    /// stored value; returns every problem found, in key order. Slow: meant
    /// for an explicit check, not for every start.
    pub fn verify(&mut self) -> Vec<CorruptValue> {
        let mut problems = Vec::new();
        let entries: Vec<(DocumentId, IndexEntry)> = self
            .index
            .iter()
            .map(|(id, entry)| (id.clone(), entry.clone()))
            .collect();
        for (document, entry) in &entries {
            match self.load_from_storage(document, entry) {
                Ok(_) => {}
                Err(LoadError::Corrupt(problem)) => problems.push(problem),
                Err(LoadError::Storage(error)) => {
                    problems.push(CorruptValue::new(&index_key(document), error.to_string()))
                }
            }
        }
        let scan = |prefix: &[u8]| -> Result<Entries, CorruptValue> {
            self.storage
                .scan_prefix(prefix)
                .map_err(|error| CorruptValue::new(prefix, error.to_string()))
        };
        let orphan_check =
            |problems: &mut Vec<CorruptValue>, key: &[u8], id: Result<DocumentId, CorruptValue>| {
                match id {
                    Ok(id) if !self.index.contains_key(&id) => problems.push(CorruptValue::new(
                        key,
                        format!("belongs to {id}, which the index does not hold"),
                    )),
                    Ok(_) => {}
                    Err(problem) => problems.push(problem),
                }
            };
        match scan(SNAPSHOT_PREFIX) {
            Ok(found) => {
                for (key, _) in found {
                    orphan_check(&mut problems, &key, document_of_key(SNAPSHOT_PREFIX, &key));
                }
            }
            Err(problem) => problems.push(problem),
        }
        match scan(INCREMENT_PREFIX) {
            Ok(found) => {
                for (key, _) in found {
                    let id = increment_document(&key);
                    orphan_check(&mut problems, &key, id);
                }
            }
            Err(problem) => problems.push(problem),
        }
        match scan(SYNC_STATE_PREFIX) {
            Ok(found) => {
                for (key, value) in found {
                    let decoded = unseal(&key, &value).and_then(|payload| {
                        automerge::sync::State::decode(payload)
                            .map(|_| ())
                            .map_err(|error| {
                                CorruptValue::new(&key, format!("sync state: {error}"))
                            })
                    });
                    if let Err(problem) = decoded {
                        problems.push(problem);
                    }
                }
            }
            Err(problem) => problems.push(problem),
        }
        problems.sort_by(|a, b| a.key.cmp(&b.key));
        problems.dedup();
        problems
    }

    // ----- internals -----

    /// The document, loaded into the cache if needed; `None` when not held.
    fn cached_document(
        &mut self,
        document: &DocumentId,
    ) -> Result<Option<&mut AutoCommit>, LoadError> {
        if !self.documents.contains(document) {
            let Some(entry) = self.index.get(document) else {
                return Ok(None);
            };
            let loaded = self.load_from_storage(document, entry)?;
            self.documents_loaded += 1;
            // Evicted documents equal storage already: dropping them is safe.
            self.documents.insert(document.clone(), Box::new(loaded));
        }
        Ok(self.documents.get_mut(document).map(|doc| &mut **doc))
    }

    /// Take the document out of the cache (loading it if needed) to change
    /// it; hand it back with [`Replica::keep_document`] or
    /// [`Replica::install`] only if it still equals storage.
    fn take_document(&mut self, document: &DocumentId) -> Result<Option<AutoCommit>, LoadError> {
        if let Some(doc) = self.documents.remove(document) {
            return Ok(Some(*doc));
        }
        match self.index.get(document) {
            None => Ok(None),
            Some(entry) => {
                let loaded = self.load_from_storage(document, entry)?;
                self.documents_loaded += 1;
                Ok(Some(loaded))
            }
        }
    }

    fn keep_document(&mut self, document: &DocumentId, doc: AutoCommit) {
        debug_assert!(
            self.index.contains_key(document),
            "only held documents are cached"
        );
        self.documents.insert(document.clone(), Box::new(doc));
    }

    /// Record a successful write of `doc`.
    fn install(&mut self, document: &DocumentId, doc: AutoCommit, entry: IndexEntry) {
        self.index.insert(document.clone(), entry);
        self.changed.insert(document.clone());
        self.keep_document(document, doc);
    }

    fn load_from_storage(
        &self,
        document: &DocumentId,
        entry: &IndexEntry,
    ) -> Result<AutoCommit, LoadError> {
        let snapshot_key = snapshot_key(document);
        let mut doc = match self.storage.get(&snapshot_key)? {
            Some(value) => {
                let payload = unseal(&snapshot_key, &value)?;
                AutoCommit::load(payload).map_err(|error| {
                    CorruptValue::new(&snapshot_key, format!("snapshot does not load: {error}"))
                })?
            }
            None if entry.snapshot_bytes > 0 => {
                return Err(CorruptValue::new(
                    &snapshot_key,
                    "missing, but the index records a snapshot",
                )
                .into());
            }
            None => AutoCommit::new(),
        };
        let mut changes = Vec::new();
        for (key, value) in self.stored_increments(document, entry)? {
            let payload = unseal(&key, &value)?;
            changes.extend(
                chunks::changes_in(payload, usize::MAX)
                    .map_err(|reason| CorruptValue::new(&key, reason))?,
            );
        }
        doc.apply_changes_batch(changes).map_err(|error| {
            CorruptValue::new(
                &increments_prefix(document),
                format!("increments do not apply: {error}"),
            )
        })?;
        // Automerge 0.12 records every applied change's patches even with
        // no diff ever asked for, and keeps them for the document's life (a
        // third of a county's heap); nothing here reads diffs.
        doc.reset_diff_cursor();
        let heads = sorted(doc.get_heads());
        if heads != entry.heads {
            return Err(CorruptValue::new(
                &index_key(document),
                format!(
                    "stored changes have {} heads that differ from the index's {}",
                    heads.len(),
                    entry.heads.len()
                ),
            )
            .into());
        }
        Ok(doc.with_actor(self.actor.clone()))
    }

    /// `document`'s stored increments (key, sealed value), in order, each
    /// one the index entry's range names and none missing.
    fn stored_increments(
        &self,
        document: &DocumentId,
        entry: &IndexEntry,
    ) -> Result<Entries, LoadError> {
        let increments = self.storage.scan_prefix(&increments_prefix(document))?;
        let mut expected = entry.first_increment;
        for (key, _) in &increments {
            let seq = increment_seq(document, key)?;
            if seq != expected || seq >= entry.next_increment {
                return Err(CorruptValue::new(
                    key,
                    format!(
                        "increment {seq} found where {expected} was expected (index holds {}..{})",
                        entry.first_increment, entry.next_increment
                    ),
                )
                .into());
            }
            expected += 1;
        }
        if expected != entry.next_increment {
            return Err(
                CorruptValue::new(&increment_key(document, expected), "missing increment").into(),
            );
        }
        Ok(increments)
    }

    /// The batch that stores what `doc` holds beyond the indexed state
    /// (`increment`, from `save_after`), compacting when due, and the index
    /// entry it leaves behind.
    /// The batch that stores a document this replica has never held, as a
    /// snapshot with no increments (the state a compaction leaves).
    fn plan_first_write(
        &self,
        document: &DocumentId,
        doc: &mut AutoCommit,
        changes: u64,
    ) -> (WriteBatch, IndexEntry) {
        debug_assert!(!self.index.contains_key(document), "first write only");
        let mut entry = IndexEntry::empty();
        let snapshot = seal(&doc.save());
        entry.snapshot_bytes = snapshot.len() as u64;
        entry.change_count = changes;
        entry.set_heads(doc.get_heads());
        let mut batch = WriteBatch::new();
        batch.put(snapshot_key(document), snapshot);
        batch.put(index_key(document), seal(&entry.encode()));
        (batch, entry)
    }

    /// The batch that stores a document received whole while this replica
    /// held none of it: the received bytes, already a saved document, are
    /// the snapshot.
    fn plan_received_snapshot(
        &self,
        document: &DocumentId,
        doc: &mut AutoCommit,
        whole: &[u8],
        after: &[u8],
        changes: usize,
    ) -> (WriteBatch, IndexEntry) {
        debug_assert!(!self.index.contains_key(document), "first write only");
        let mut entry = IndexEntry::empty();
        let snapshot = seal(whole);
        entry.snapshot_bytes = snapshot.len() as u64;
        entry.change_count = changes as u64;
        entry.set_heads(doc.get_heads());
        let mut batch = WriteBatch::new();
        batch.put(snapshot_key(document), snapshot);
        // The changes that came after the snapshot stay one increment, as
        // they came; the next compaction folds them in.
        if !after.is_empty() {
            let increment = seal(after);
            entry.increments_bytes = increment.len() as u64;
            batch.put(increment_key(document, entry.next_increment), increment);
            entry.next_increment += 1;
        }
        batch.put(index_key(document), seal(&entry.encode()));
        (batch, entry)
    }

    fn plan_write(
        &self,
        document: &DocumentId,
        doc: &mut AutoCommit,
        increment: &[u8],
        changes_added: u64,
    ) -> (WriteBatch, IndexEntry) {
        debug_assert!(!increment.is_empty());
        let mut entry = self
            .index
            .get(document)
            .cloned()
            .unwrap_or_else(IndexEntry::empty);
        let mut batch = WriteBatch::new();
        let sealed = seal(increment);
        let increments_bytes = entry.increments_bytes + sealed.len() as u64;
        let compaction_due = entry.increment_count() + 1 > self.config.compaction_increments_max
            || increments_bytes >= entry.snapshot_bytes.max(self.config.compaction_bytes_min);
        if compaction_due {
            let snapshot = seal(&doc.save());
            for seq in entry.first_increment..entry.next_increment {
                batch.delete(increment_key(document, seq));
            }
            entry.snapshot_bytes = snapshot.len() as u64;
            entry.increments_bytes = 0;
            entry.first_increment = entry.next_increment;
            batch.put(snapshot_key(document), snapshot);
        } else {
            batch.put(increment_key(document, entry.next_increment), sealed);
            entry.next_increment += 1;
            entry.increments_bytes = increments_bytes;
        }
        entry.change_count += changes_added;
        entry.set_heads(doc.get_heads());
        batch.put(index_key(document), seal(&entry.encode()));
        (batch, entry)
    }
}

/// May station `local` write `document` here? The same answer for a commit
/// and for a document built away from the replica.
fn check_local_write<E>(
    local: &StationId,
    tier: Tier,
    document: &DocumentId,
) -> Result<(), CommitError<E>> {
    if !document.in_scope_of(local, tier) {
        return Err(CommitError::OutOfScope {
            document: document.clone(),
            station: local.clone(),
        });
    }
    if !document.writable_by(local) {
        return Err(CommitError::NotWritable {
            document: document.clone(),
            writer: local.clone(),
        });
    }
    Ok(())
}

/// The changes a local commit added since `heads_before`, encoded as
/// `save_after` would. A commit makes one change, which is this actor's
/// last: fetching it by hash skips `save_after`'s walk of the history.
fn increment_since(doc: &mut AutoCommit, heads_before: &[ChangeHash], changes: usize) -> Vec<u8> {
    if changes == 1 {
        if let Some(change) = doc.get_last_local_change() {
            if change.deps() == sorted(heads_before.to_vec()).as_slice() {
                let bytes = change.raw_bytes().to_vec();
                debug_assert_eq!(bytes, doc.save_after(heads_before));
                return bytes;
            }
        }
    }
    doc.save_after(heads_before)
}

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

/// The document id inside an increment key `chg|<id>|<8 bytes>`.
fn increment_document(key: &[u8]) -> Result<DocumentId, CorruptValue> {
    if key.len() < INCREMENT_PREFIX.len() + 9 || key[key.len() - 9] != b'|' {
        return Err(CorruptValue::new(key, "malformed increment key"));
    }
    document_of_key(INCREMENT_PREFIX, &key[..key.len() - 9])
}
