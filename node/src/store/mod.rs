//! The node's document store: the protocol's [`Replica`] over sled, owned by
//! one dedicated thread, with group commit.
//!
//! - [`SledStorage`] implements the sans-IO [`Storage`] on one sled tree:
//!   `apply_batch` is atomic within a tree, `flush` makes it durable.
//! - [`Store`] is the handle async code uses. A dedicated OS thread owns the
//!   `Replica<SledStorage>`; callers send closures over a bounded channel and
//!   await a oneshot reply, so Automerge and fsync work never blocks the
//!   tokio runtime. The owner drains every queued command, runs each commit
//!   with `commit_unflushed`, then hands ONE flush for all of them to the
//!   flush thread, which replies to them only after that flush returns: a
//!   write is acknowledged only after a flush that covers it, concurrent
//!   writers share the cost of that flush, and the owner goes on with the
//!   next commits while the disk works (sled's flush covers every write
//!   applied before it starts, from any thread; [`Flusher`] counts applied
//!   batches so that a flush already covered is not repeated).
//! - The store persists the node's incarnation (`node|incarnation`), drawn at
//!   random when the store is created; [`renew_incarnation`] draws a new one
//!   after a backup is restored, so an actor id is never reused. When the
//!   replica reports that a peer sent a change by its own actor that it does
//!   not hold (`Replica::actor_reused`: the store is an old copy), the owner
//!   thread draws and durably stores a new incarnation before it runs the
//!   next job, and counts it (`node|actor-renewals`, shown by `status`).
//!
//! A panic inside a closure is caught on the owner thread; the replica is
//! then reopened from storage (its index is the truth), so a half-finished
//! operation cannot leave memory disagreeing with disk.

//!
//! Layer: may use only the base modules (`clock`). `bulk` builds new
//! documents on worker threads for imports and hands them back to be stored
//! here. Must never use `net`, `context` or `api`.

pub mod backup;
pub mod bulk;

use automerge::AutoCommit;
use civsync_protocol::identity::document_id::DocumentId;
use civsync_protocol::identity::station::StationId;
use civsync_protocol::replica::prepare::WholePreparer;
use civsync_protocol::replica::{
    CommitError, CommitOutcome, OpenError, Replica, ReplicaConfig, Signing,
};
use civsync_protocol::storage::{display_key, Entries, Storage, StorageError, WriteBatch, WriteOp};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};

/// A write probe is reused for this long before the next one runs.
pub const PROBE_EVERY_MS: u64 = 2_000;
/// A write probe not answered within this long counts as not writable.
pub const PROBE_TIMEOUT_MS: u64 = 5_000;
const PROBE_KEY: &[u8] = b"node|probe";

/// Whether the store took a write and made it durable, and how long that
/// round trip through the owner thread and the disk took.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WriteProbe {
    pub writable: bool,
    pub latency_ms: u64,
    /// Why not, when not writable.
    pub error: Option<String>,
}

/// Commands that may wait for the owner thread; senders wait beyond this.
pub const STORE_QUEUE_DEPTH: usize = 1024;
/// Flush requests queued for the flush thread; the owner waits beyond this.
pub const FLUSH_QUEUE_MAX: usize = 64;
/// sled's page cache; the default (1 GiB) is too much for an office PC.
pub const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Background flush interval of sled; acknowledged writes never rely on it.
pub const SLED_FLUSH_EVERY_MS: u64 = 1000;
/// Opening a store whose lock is still held: tries, and the pause between.
pub const SLED_LOCK_TRIES_MAX: u32 = 50;
pub const SLED_LOCK_RETRY_MS: u64 = 40;
const TREE_NAME: &str = "civsync";
/// The store folder inside the data directory.
pub const STORE_DIR: &str = "store";
const INCARNATION_KEY: &[u8] = b"node|incarnation";
const RENEWALS_KEY: &[u8] = b"node|actor-renewals";

/// The times this store took a new incarnation by itself, because a peer
/// sent a change by its own actor that it did not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActorRenewals {
    pub count: u64,
    /// When the last one was taken (Unix ms).
    pub last_at_ms: Option<u64>,
    /// The peer and document that showed the old actor, the last time.
    pub last_peer: Option<String>,
    pub last_document: Option<String>,
}

fn sled_reason(error: sled::Error) -> String {
    error.to_string()
}

/// [`Storage`] on one sled tree.
pub struct SledStorage {
    db: sled::Db,
    tree: sled::Tree,
    /// Batches applied so far (owner thread only).
    applied: u64,
    /// Batches known durable: every batch numbered up to this one was
    /// applied before a flush that returned `Ok` started. Shared with the
    /// [`Flusher`], which flushes while the owner goes on committing.
    durable: Arc<AtomicU64>,
}

/// Flushes a [`SledStorage`] from another thread. sled makes durable every
/// write applied before `flush` is called, whichever thread applied it.
#[derive(Clone)]
pub struct Flusher {
    db: sled::Db,
    durable: Arc<AtomicU64>,
}

impl Flusher {
    /// Make every batch numbered up to `applied` durable; returns at once
    /// if an earlier flush already covered them.
    pub fn flush_through(&self, applied: u64) -> Result<(), StorageError> {
        if self.durable.load(Ordering::Acquire) >= applied {
            return Ok(());
        }
        self.db.flush().map_err(|error| StorageError::Flush {
            reason: sled_reason(error),
        })?;
        self.durable.fetch_max(applied, Ordering::AcqRel);
        Ok(())
    }
}

/// sled reports a held lock as `ErrorKind::Other` with the OS error only
/// in its message ("could not acquire lock on …: … WouldBlock …"), so the
/// kind alone never matches: read the message too.
fn is_lock_held(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::WouldBlock
        || error.to_string().contains("could not acquire lock")
}

impl SledStorage {
    pub fn open(path: &Path) -> Result<SledStorage, StorageError> {
        let unavailable = |error: sled::Error| StorageError::Unavailable {
            reason: format!("opening sled at {}: {}", path.display(), sled_reason(error)),
        };
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(SLED_CACHE_BYTES)
            .flush_every_ms(Some(SLED_FLUSH_EVERY_MS));
        // A store closed a moment ago in this process (a restart, a test)
        // may still be locked while sled's background threads let go of it:
        // try again for a bounded time. Another process holding the store
        // is still refused, after the last try.
        let mut tries_left = SLED_LOCK_TRIES_MAX;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(error)) if is_lock_held(&error) && tries_left > 1 => {
                    tries_left -= 1;
                    std::thread::sleep(std::time::Duration::from_millis(SLED_LOCK_RETRY_MS));
                }
                Err(error) => return Err(unavailable(error)),
            }
        };
        let tree = db.open_tree(TREE_NAME).map_err(unavailable)?;
        Ok(SledStorage {
            db,
            tree,
            applied: 0,
            durable: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The sled database, for node-local trees that never sync (accounts,
    /// the audit log): sled trees are safe to use from any thread.
    pub fn db(&self) -> sled::Db {
        self.db.clone()
    }

    /// Is every batch up to `batch` (a number of [`SledStorage::applied`])
    /// durable?
    pub fn durable_through(&self, batch: u64) -> bool {
        debug_assert!(batch <= self.applied, "a batch not applied yet");
        self.durable.load(Ordering::Acquire) >= batch
    }

    /// A handle that flushes this storage from another thread.
    pub fn flusher(&self) -> Flusher {
        Flusher {
            db: self.db.clone(),
            durable: self.durable.clone(),
        }
    }

    /// Batches applied so far: [`Flusher::flush_through`] of this number
    /// makes all of them durable.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Put node-local records (the incarnation, the renewals) beside the
    /// documents in one batch and flush: durable when this returns.
    fn put_node_records(&self, records: &[(&[u8], Vec<u8>)]) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for (key, value) in records {
            batch.insert(*key, value.clone());
        }
        self.tree
            .apply_batch(batch)
            .map_err(|error| StorageError::Write {
                first_key: display_key(records.first().map(|r| r.0).unwrap_or_default()),
                operations: records.len(),
                reason: sled_reason(error),
            })?;
        self.db.flush().map_err(|error| StorageError::Flush {
            reason: sled_reason(error),
        })?;
        Ok(())
    }

    /// The renewals recorded in this store (none if never).
    pub fn actor_renewals(&self) -> ActorRenewals {
        self.get(RENEWALS_KEY)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Bytes sled occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.db
            .size_on_disk()
            .map_err(|error| StorageError::Unavailable {
                reason: sled_reason(error),
            })
    }
}

impl SledStorage {
    fn apply_to_tree(&mut self, batch: WriteBatch) -> Result<(), StorageError> {
        let first_key = batch.first_key();
        let operations = batch.len();
        let mut sled_batch = sled::Batch::default();
        for operation in batch.into_operations() {
            match operation {
                WriteOp::Put { key, value } => sled_batch.insert(key, value),
                WriteOp::Delete { key } => sled_batch.remove(key),
            }
        }
        self.tree
            .apply_batch(sled_batch)
            .map_err(|error| StorageError::Write {
                first_key,
                operations,
                reason: sled_reason(error),
            })
    }
}

impl Storage for SledStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.tree
            .get(key)
            .map(|value| value.map(|value| value.to_vec()))
            .map_err(|error| StorageError::Read {
                key: display_key(key),
                reason: sled_reason(error),
            })
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StorageError> {
        let mut entries = Vec::new();
        for item in self.tree.scan_prefix(prefix) {
            let (key, value) = item.map_err(|error| StorageError::Read {
                key: display_key(prefix),
                reason: sled_reason(error),
            })?;
            entries.push((key.to_vec(), value.to_vec()));
        }
        Ok(entries)
    }

    fn apply(&mut self, batch: WriteBatch) -> Result<(), StorageError> {
        self.apply_to_tree(batch)?;
        self.applied += 1;
        Ok(())
    }

    /// Not counted in `applied`: a sync session's answer waits for the
    /// batches counted there to be durable (`peers::step`), and a sync
    /// state or intake count need not be. A cold township's county wrote a
    /// sync state for every document it served, and so held every document
    /// for a flush. Any later flush makes it durable (sled flushes all it
    /// holds), and at the latest sled's own every `SLED_FLUSH_EVERY_MS`.
    fn apply_cache(&mut self, batch: WriteBatch) -> Result<(), StorageError> {
        self.apply_to_tree(batch)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        self.flusher().flush_through(self.applied)
    }
}

/// The incarnation stored in `storage`, drawing and durably storing a new
/// random one if there is none yet.
pub fn load_or_draw_incarnation(storage: &mut SledStorage) -> Result<u64, StorageError> {
    if let Some(bytes) = storage.get(INCARNATION_KEY)? {
        let raw: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StorageError::Read {
                key: display_key(INCARNATION_KEY),
                reason: format!("{} bytes, expected 8", bytes.len()),
            })?;
        return Ok(u64::from_be_bytes(raw));
    }
    store_new_incarnation(storage)
}

fn store_new_incarnation(storage: &mut SledStorage) -> Result<u64, StorageError> {
    let incarnation: u64 = rand::random();
    let mut batch = WriteBatch::new();
    batch.put(INCARNATION_KEY.to_vec(), incarnation.to_be_bytes().to_vec());
    storage.apply(batch)?;
    storage.flush()?;
    Ok(incarnation)
}

/// Give the store at `path` a new incarnation: call after restoring a
/// backup, before the node writes anything, so its actor is new.
pub fn renew_incarnation(path: &Path) -> Result<u64, StorageError> {
    let mut storage = SledStorage::open(path)?;
    store_new_incarnation(&mut storage)
}

/// The replica saw its own actor in a change it did not hold: draw a new
/// incarnation, store it with the renewal count durably, and only then let
/// the replica write as it. On failure the replica goes on refusing writes.
fn renew_after_reuse(
    replica: &mut Replica<SledStorage>,
    incarnation: &AtomicU64,
    renewals: &Mutex<ActorRenewals>,
) {
    let Some(reuse) = replica.actor_reused().cloned() else {
        return;
    };
    let old = incarnation.load(Ordering::Acquire);
    let mut new: u64 = rand::random();
    while new == old {
        new = rand::random();
    }
    let mut counted = replica.storage().actor_renewals();
    counted.count += 1;
    counted.last_at_ms = Some(crate::clock::now_ms());
    counted.last_peer = Some(reuse.peer.to_string());
    counted.last_document = Some(reuse.document.to_string());
    let encoded = serde_json::to_vec(&counted).unwrap_or_default();
    let stored = replica.storage().put_node_records(&[
        (INCARNATION_KEY, new.to_be_bytes().to_vec()),
        (RENEWALS_KEY, encoded),
    ]);
    match stored {
        Ok(()) => {
            replica.renew_actor(new);
            incarnation.store(new, Ordering::Release);
            tracing::warn!(
                peer = %reuse.peer,
                document = %reuse.document,
                seq = reuse.seq,
                old = format!("{old:016x}"),
                new = format!("{new:016x}"),
                "a peer sent a change by this node's own actor that its store did not hold: the store is an old copy; took a new incarnation before writing anything else"
            );
            *renewals.lock().unwrap_or_else(|e| e.into_inner()) = counted;
        }
        Err(error) => tracing::error!(
            %error,
            "this node's actor is reused but a new incarnation could not be stored; writes stay refused"
        ),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreOpenError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Replica(#[from] OpenError),
    #[error("could not start the store thread: {reason}")]
    Thread { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the store is closed")]
pub struct StoreClosed;

/// Why the store was not given the node's signing key.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("the store closed while it was given the node's signing key")]
    Closed,
    #[error("cannot keep the node's certificate beside the store: {0}")]
    Storage(StorageError),
}

/// Why a durable call could not be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreUnavailable {
    #[error("the store is closed")]
    Closed,
    #[error("the store could not make the write durable: {reason}")]
    FlushFailed { reason: String },
}

impl From<StoreClosed> for StorageError {
    fn from(_: StoreClosed) -> StorageError {
        StorageError::Unavailable {
            reason: "the store is closed".to_string(),
        }
    }
}

/// Called with the result of the flush that covers a commit.
/// What [`Store::call_with_durable`] hands back for a batch not yet
/// durable: resolves once the flush covering it ran.
pub struct Durable(oneshot::Receiver<Result<(), StorageError>>);

impl Durable {
    /// A ticket and the sender that resolves it, as the flush would.
    #[cfg(test)]
    pub(crate) fn pending() -> (oneshot::Sender<Result<(), StorageError>>, Durable) {
        let (flushed, durable) = oneshot::channel();
        (flushed, Durable(durable))
    }

    /// The flush's outcome; an error if it failed or the store closed first.
    pub async fn flushed(self) -> Result<(), String> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("cannot flush the store: {error}")),
            Err(_) => Err("the store closed before the flush".to_string()),
        }
    }
}

type FlushWaiter = Box<dyn FnOnce(Result<(), StorageError>) + Send>;
/// Work for the owner thread; returns a waiter when it needs the next flush.
type Job = Box<dyn FnOnce(&mut Replica<SledStorage>) -> Option<FlushWaiter> + Send>;

enum Command {
    Run(Job),
    Stop(oneshot::Sender<()>),
}

/// Handle to the store; cheap to clone, usable from any task.
#[derive(Clone)]
pub struct Store {
    sender: mpsc::Sender<Command>,
    local: StationId,
    /// The owner thread replaces it when it renews the actor by itself.
    incarnation: Arc<AtomicU64>,
    renewals: Arc<Mutex<ActorRenewals>>,
    /// The last write probe and when it ran (health asks at most every
    /// `PROBE_EVERY_MS`, so anonymous health checks cannot load the disk).
    probe: Arc<Mutex<Option<(std::time::Instant, WriteProbe)>>>,
    owner: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// For node-local trees; let go of at close, so that the store can be
    /// opened again in this process (a tree handed out keeps the database
    /// open until it is dropped too).
    db: Arc<Mutex<Option<sled::Db>>>,
    /// Loads whole documents received from peers before the owner thread
    /// takes them in (see `net::peers::step`), under the replica's limits,
    /// and checks their signatures once the replica has a verifier.
    preparer: Arc<Mutex<WholePreparer>>,
    /// Woken by the owner thread after a job that left documents changed
    /// (`Replica::has_changed_documents`): the live push's change feed.
    changes_waiting: Arc<tokio::sync::Notify>,
}

impl Store {
    /// Open (or create) the store at `path` for station `local` and start
    /// its owner thread. Blocking: call it before the runtime or in
    /// `spawn_blocking`.
    pub fn open(
        path: &Path,
        local: StationId,
        config: ReplicaConfig,
    ) -> Result<Store, StoreOpenError> {
        let mut storage = SledStorage::open(path)?;
        let incarnation = load_or_draw_incarnation(&mut storage)?;
        let db = storage.db();
        let renewals = Arc::new(Mutex::new(storage.actor_renewals()));
        let preparer = WholePreparer::new(&config);
        let replica = Replica::open(storage, local.clone(), incarnation, config)?;
        let (sender, receiver) = mpsc::channel(STORE_QUEUE_DEPTH);
        let incarnation = Arc::new(AtomicU64::new(incarnation));
        let changes_waiting = Arc::new(tokio::sync::Notify::new());
        let owned = Owned {
            incarnation: incarnation.clone(),
            renewals: renewals.clone(),
            changes_waiting: changes_waiting.clone(),
        };
        let owner = std::thread::Builder::new()
            .name("civsync-store".to_string())
            .spawn(move || owner_loop(replica, receiver, owned))
            .map_err(|error| StoreOpenError::Thread {
                reason: error.to_string(),
            })?;
        Ok(Store {
            sender,
            local,
            incarnation,
            renewals,
            probe: Arc::new(Mutex::new(None)),
            owner: Arc::new(Mutex::new(Some(owner))),
            db: Arc::new(Mutex::new(Some(db))),
            preparer: Arc::new(Mutex::new(preparer)),
            changes_waiting,
        })
    }

    /// What sync sessions run on a received message before their turn on
    /// the owner thread.
    pub fn preparer(&self) -> WholePreparer {
        match self.preparer.lock() {
            Ok(preparer) => preparer.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Sign this node's changes and check its peers' from now on
    /// (`Replica::set_signing`); sessions then check signatures with the
    /// same verifier before their turn on the owner thread.
    pub async fn set_signing(&self, signing: Signing) -> Result<(), SigningError> {
        let preparer = self
            .call(move |replica| {
                replica
                    .set_signing(signing)
                    .map(|()| replica.whole_preparer())
            })
            .await
            .map_err(|_| SigningError::Closed)?
            .map_err(SigningError::Storage)?;
        match self.preparer.lock() {
            Ok(mut held) => *held = preparer,
            Err(poisoned) => *poisoned.into_inner() = preparer,
        }
        Ok(())
    }

    pub fn local(&self) -> &StationId {
        &self.local
    }

    /// Resolves once a job has left documents changed (a local commit, or
    /// changes received from a peer) that no one has taken yet; at once if
    /// that happened since the last call returned. It may also resolve with
    /// nothing left to take: the caller takes them and finds out.
    pub async fn documents_changed(&self) {
        self.changes_waiting.notified().await;
    }

    /// A node-local sled tree beside the documents: never synced, never
    /// seen by the replica. For accounts and the audit log.
    pub fn local_tree(&self, name: &str) -> Result<sled::Tree, StorageError> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(db) = db else {
            return Err(StorageError::Unavailable {
                reason: "the store is closed".to_string(),
            });
        };
        db.open_tree(format!("local|{name}"))
            .map_err(|error| StorageError::Unavailable {
                reason: format!("opening the local tree {name}: {}", sled_reason(error)),
            })
    }

    /// The incarnation the store writes as now.
    pub fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::Acquire)
    }

    /// Write a small node-local record and flush it, through the owner
    /// thread (so a stuck owner shows too); at most every `PROBE_EVERY_MS`,
    /// the last answer is reused in between.
    pub async fn probe_write(&self) -> WriteProbe {
        let fresh_enough = std::time::Duration::from_millis(PROBE_EVERY_MS);
        if let Some((at, probe)) = self.probe.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            if at.elapsed() < fresh_enough {
                return probe;
            }
        }
        let started = std::time::Instant::now();
        let work = self.call(|replica| {
            let now = crate::clock::now_ms().to_be_bytes().to_vec();
            replica.storage().put_node_records(&[(PROBE_KEY, now)])
        });
        let timeout = std::time::Duration::from_millis(PROBE_TIMEOUT_MS);
        let error = match tokio::time::timeout(timeout, work).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(error))) => Some(error.to_string()),
            Ok(Err(closed)) => Some(closed.to_string()),
            Err(_) => Some(format!("no answer within {PROBE_TIMEOUT_MS} ms")),
        };
        let probe = WriteProbe {
            writable: error.is_none(),
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error,
        };
        *self.probe.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), probe.clone()));
        probe
    }

    /// Write a backup of every tree (but `skip_trees`) into `file` on the
    /// owner thread, in one pass: no document write interleaves, and every
    /// write acknowledged before this call is in it.
    pub async fn backup(
        &self,
        header: backup::BackupHeader,
        files: Vec<(String, Vec<u8>)>,
        skip_trees: Vec<String>,
        file: std::fs::File,
    ) -> Result<backup::BackupSummary, backup::BackupError> {
        self.call(move |replica| {
            let skip: Vec<&str> = skip_trees.iter().map(String::as_str).collect();
            backup::write_backup(replica.storage(), &header, &files, &skip, file)
        })
        .await
        .map_err(|closed| backup::BackupError::Store(closed.to_string()))?
    }

    /// The times the store took a new incarnation by itself.
    pub fn actor_renewals(&self) -> ActorRenewals {
        self.renewals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Commit one local change; `Ok` means it is durable (group commit).
    pub async fn commit<T, E, F>(
        &self,
        document: DocumentId,
        mutate: F,
    ) -> Result<CommitOutcome<T>, CommitError<E>>
    where
        F: FnOnce(&mut AutoCommit) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let closed_document = document.clone();
        let job: Job = Box::new(
            move |replica| match replica.commit_unflushed(&document, mutate) {
                Ok(outcome) if outcome.changes > 0 => {
                    Some(Box::new(move |flushed: Result<(), StorageError>| {
                        let result = match flushed {
                            Ok(()) => Ok(outcome),
                            Err(source) => Err(CommitError::Storage { document, source }),
                        };
                        let _ = reply.send(result);
                    }))
                }
                other => {
                    let _ = reply.send(other);
                    None
                }
            },
        );
        let closed = || CommitError::Storage {
            document: closed_document.clone(),
            source: StoreClosed.into(),
        };
        self.sender
            .send(Command::Run(job))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Run `work` on the owner thread with the replica (sync sessions drive
    /// the `SyncHost` methods this way). Writes it makes without flushing
    /// are flushed before the next batch of replies.
    pub async fn call<R, W>(&self, work: W) -> Result<R, StoreClosed>
    where
        W: FnOnce(&mut Replica<SledStorage>) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |replica| {
            let _ = reply.send(work(replica));
            None
        });
        self.sender
            .send(Command::Run(job))
            .await
            .map_err(|_| StoreClosed)?;
        answer.await.map_err(|_| StoreClosed)
    }

    /// Run `work` (which may commit through `Replica::commit`) and answer
    /// only after the flush that covers its commits: concurrent callers share
    /// one flush (group commit). A failed flush answers `FlushFailed`:
    /// nothing the work committed is acknowledged.
    pub async fn call_durable<R, W>(&self, work: W) -> Result<R, StoreUnavailable>
    where
        W: FnOnce(&mut Replica<SledStorage>) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (result, flushed) = self
            .call_then_durable(move |replica| {
                replica.set_flush_deferred(true);
                let result = work(replica);
                replica.set_flush_deferred(false);
                (result, replica.storage().applied())
            })
            .await
            .map_err(|_| StoreUnavailable::Closed)?;
        flushed.map_err(|error| StoreUnavailable::FlushFailed {
            reason: error.to_string(),
        })?;
        Ok(result)
    }

    /// Run `work` on the owner thread; it returns its result and the batch
    /// (a number of [`SledStorage::applied`]) that must be durable before
    /// the result may be used. Answers once it is, with the flush's outcome
    /// beside the result. The flush runs on the flush thread, shared with
    /// every other waiter (group commit), while the owner goes on: a sync
    /// session writes the bytes `work` produced only then.
    pub async fn call_then_durable<R, W>(
        &self,
        work: W,
    ) -> Result<(R, Result<(), StorageError>), StoreClosed>
    where
        W: FnOnce(&mut Replica<SledStorage>) -> (R, u64) + Send + 'static,
        R: Send + 'static,
    {
        let (result, durable) = self.call_with_durable(work).await?;
        let flushed = match durable {
            None => Ok(()),
            Some(Durable(flushed)) => flushed.await.map_err(|_| StoreClosed)?,
        };
        Ok((result, flushed))
    }

    /// Run `work` on the owner thread as [`Store::call_then_durable`] does,
    /// but answer as soon as it ran: beside the result comes `None` if the
    /// batch it needs is durable already, else a [`Durable`] that resolves
    /// with the flush's outcome once it is. A sync session hands its bytes
    /// to its writer with that ticket and goes on with its next input while
    /// the flush runs: the bytes still leave only once durable, but a cold
    /// sync no longer waits out one flush per document between documents.
    pub async fn call_with_durable<R, W>(
        &self,
        work: W,
    ) -> Result<(R, Option<Durable>), StoreClosed>
    where
        W: FnOnce(&mut Replica<SledStorage>) -> (R, u64) + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |replica| {
            let (result, needed) = work(replica);
            if replica.storage().durable_through(needed) {
                let _ = reply.send((result, None));
                return None;
            }
            let (flushed, durable) = oneshot::channel();
            let _ = reply.send((result, Some(Durable(durable))));
            Some(Box::new(move |outcome: Result<(), StorageError>| {
                let _ = flushed.send(outcome);
            }))
        });
        self.sender
            .send(Command::Run(job))
            .await
            .map_err(|_| StoreClosed)?;
        answer.await.map_err(|_| StoreClosed)
    }

    /// [`Store::call`] for code outside the async runtime (CLI commands,
    /// tests). Panics if called from within an async context.
    pub fn call_blocking<R, W>(&self, work: W) -> Result<R, StoreClosed>
    where
        W: FnOnce(&mut Replica<SledStorage>) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |replica| {
            let _ = reply.send(work(replica));
            None
        });
        self.sender
            .blocking_send(Command::Run(job))
            .map_err(|_| StoreClosed)?;
        answer.blocking_recv().map_err(|_| StoreClosed)
    }

    /// Flush, stop the owner thread and close sled. Later calls on any
    /// clone fail with [`StoreClosed`].
    pub async fn close(&self) {
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Command::Stop(reply)).await.is_ok() {
            let _ = answer.await;
        }
        self.join_owner();
    }

    /// [`Store::close`] outside the async runtime.
    pub fn close_blocking(&self) {
        let (reply, answer) = oneshot::channel();
        if self.sender.blocking_send(Command::Stop(reply)).is_ok() {
            let _ = answer.blocking_recv();
        }
        self.join_owner();
    }

    fn join_owner(&self) {
        self.db.lock().unwrap_or_else(|e| e.into_inner()).take();
        let owner = self
            .owner
            .lock()
            .map(|mut slot| slot.take())
            .unwrap_or(None);
        if let Some(owner) = owner {
            let _ = owner.join();
        }
    }
}

/// A flush the flusher thread owes: make batches up to `applied` durable,
/// then answer `waiters`.
struct FlushRequest {
    applied: u64,
    waiters: Vec<FlushWaiter>,
}

/// What the owner thread shares with the handles.
struct Owned {
    incarnation: Arc<AtomicU64>,
    renewals: Arc<Mutex<ActorRenewals>>,
    changes_waiting: Arc<tokio::sync::Notify>,
}

fn owner_loop(
    mut replica: Replica<SledStorage>,
    mut receiver: mpsc::Receiver<Command>,
    owned: Owned,
) {
    // The flush runs on its own thread, so the owner goes on with the next
    // commits while the disk works; requests queue in order and a write is
    // still answered only after a flush that covers it.
    let (flush_sender, flush_receiver) = std::sync::mpsc::sync_channel(FLUSH_QUEUE_MAX);
    let flusher = replica.storage().flusher();
    let flush_thread = std::thread::Builder::new()
        .name("civsync-flush".to_string())
        .spawn(move || flush_loop(&flusher, &flush_receiver));
    let flush_thread = match flush_thread {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, "could not start the flush thread; the store flushes inline");
            None
        }
    };
    let mut requested = replica.storage().applied();
    let mut stop_reply = None;
    // A flush for `waiters` (or for writes no one waits on) covering every
    // batch applied so far; on the flush thread, or here without one.
    let request_flush = |replica: &Replica<SledStorage>, waiters: Vec<FlushWaiter>| {
        let request = FlushRequest {
            applied: replica.storage().applied(),
            waiters,
        };
        let unsent = match &flush_thread {
            Some(_) => flush_sender.send(request).err().map(|e| e.0),
            None => Some(request),
        };
        // No flush thread (it could not start, or it is gone): flush here.
        if let Some(request) = unsent {
            answer(request, &replica.storage().flusher());
        }
    };
    while let Some(first) = receiver.blocking_recv() {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            // Every job sees the time it runs at, so every local change
            // carries it (the replica itself reads no clock).
            replica.set_now_ms(i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX));
            let mut waiter = None;
            match command {
                Command::Run(job) => match catch_unwind(AssertUnwindSafe(|| job(&mut replica))) {
                    Ok(found) => waiter = found,
                    Err(_) => {
                        let incarnation = owned.incarnation.load(Ordering::Acquire);
                        replica = reopen_after_panic(replica, incarnation);
                    }
                },
                Command::Stop(reply) => {
                    stop_reply = Some(reply);
                    break;
                }
            }
            // Before the next job can write: a reused actor is renewed now.
            renew_after_reuse(&mut replica, &owned.incarnation, &owned.renewals);
            // The feed takes them at once, not at its next poll: a village's
            // write reaches its township within milliseconds. (A stored
            // permit wakes the feed even if it was not waiting yet.)
            if replica.has_changed_documents() {
                owned.changes_waiting.notify_one();
            }
            // Asked for at once, not after the jobs queued behind it (a
            // statistics refresh's, tens of milliseconds each): the flush
            // thread merges every request queued while it flushes, so
            // commits still share flushes.
            if let Some(waiter) = waiter {
                requested = replica.storage().applied();
                request_flush(&replica, vec![waiter]);
            }
            next = receiver.try_recv().ok();
        }
        if replica.storage().applied() > requested {
            requested = replica.storage().applied();
            request_flush(&replica, Vec::new());
        }
        if stop_reply.is_some() {
            break;
        }
    }
    receiver.close();
    drop(flush_sender);
    if let Some(handle) = flush_thread {
        let _ = handle.join();
    }
    if let Err(error) = replica.flush() {
        tracing::error!(%error, "final store flush failed");
    }
    drop(replica);
    if let Some(reply) = stop_reply {
        let _ = reply.send(());
    }
}

/// The flush thread: take every queued request, flush once for all of
/// them, answer them all; until the owner hangs up.
fn flush_loop(flusher: &Flusher, requests: &std::sync::mpsc::Receiver<FlushRequest>) {
    while let Ok(mut request) = requests.recv() {
        while let Ok(more) = requests.try_recv() {
            debug_assert!(more.applied >= request.applied, "requests come in order");
            request.applied = request.applied.max(more.applied);
            request.waiters.extend(more.waiters);
        }
        answer(request, flusher);
    }
}

fn answer(request: FlushRequest, flusher: &Flusher) {
    let flushed = flusher.flush_through(request.applied);
    if let Err(error) = &flushed {
        tracing::error!(%error, commits = request.waiters.len(), "store flush failed; commits not acknowledged");
    }
    for waiter in request.waiters {
        waiter(flushed.clone());
    }
}

/// After a panic mid-operation, rebuild the replica from what storage holds.
fn reopen_after_panic(replica: Replica<SledStorage>, incarnation: u64) -> Replica<SledStorage> {
    tracing::error!("a store operation panicked; reopening the replica from storage");
    let local = replica.local().clone();
    let config = replica.config().clone();
    let storage = replica.into_storage();
    match Replica::open(storage, local, incarnation, config) {
        Ok(replica) => replica,
        // The index was readable a moment ago; if it no longer is, the disk
        // is failing and continuing would risk acknowledging lost writes.
        Err(error) => panic!("store cannot reopen after a panic: {error}"),
    }
}

#[cfg(test)]
mod tests;
