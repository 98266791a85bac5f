//! Layer: storage, the lowest beside `identity`. Uses nothing else in this
//! crate; the replica is written against this trait, the node implements it
//! over sled and the simulator over `MemoryStorage`.
//!
//! The storage a replica persists to, without any IO of its own.
//!
//! A [`Storage`] is an ordered key-value store with two guarantees the
//! replica relies on:
//!
//! - [`Storage::apply`] is atomic: a [`WriteBatch`] lands entirely or not at
//!   all, also across a crash;
//! - [`Storage::flush`] makes everything applied so far durable. A write is
//!   acknowledged only after a flush that covers it returned `Ok`.
//!
//! Reads see everything applied, flushed or not. The node implements this on
//! sled; [`MemoryStorage`] implements it in memory with crash semantics (a
//! crash keeps exactly what was flushed) and injectable faults, for tests and
//! the simulator. It is deterministic: ordered maps only.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Storage keys are at most this long; longer ones are a bug in the caller.
pub const STORAGE_KEY_BYTES_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("reading key {key} failed: {reason}")]
    Read { key: String, reason: String },
    #[error("writing a batch of {operations} operations (first key {first_key}) failed: {reason}")]
    Write {
        first_key: String,
        operations: usize,
        reason: String,
    },
    #[error("flush failed: {reason}")]
    Flush { reason: String },
    #[error("storage is not available: {reason}")]
    Unavailable { reason: String },
}

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

impl WriteOp {
    pub fn key(&self) -> &[u8] {
        match self {
            WriteOp::Put { key, .. } | WriteOp::Delete { key } => key,
        }
    }
}

/// Puts and deletes applied atomically, in order (a later operation on the
/// same key wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    operations: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        debug_assert!(
            key.len() <= STORAGE_KEY_BYTES_MAX,
            "key {} too long",
            display_key(&key)
        );
        self.operations.push(WriteOp::Put { key, value });
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        debug_assert!(
            key.len() <= STORAGE_KEY_BYTES_MAX,
            "key {} too long",
            display_key(&key)
        );
        self.operations.push(WriteOp::Delete { key });
    }

    /// Append `other`'s operations after this batch's.
    pub fn extend(&mut self, other: WriteBatch) {
        self.operations.extend(other.operations);
    }

    pub fn len(&self) -> usize {
        self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Total bytes of keys and values: what the batch costs to write.
    pub fn bytes(&self) -> usize {
        self.operations
            .iter()
            .map(|op| match op {
                WriteOp::Put { key, value } => key.len() + value.len(),
                WriteOp::Delete { key } => key.len(),
            })
            .sum()
    }

    pub fn operations(&self) -> &[WriteOp] {
        &self.operations
    }

    pub fn into_operations(self) -> Vec<WriteOp> {
        self.operations
    }

    /// The first key, printable, for error messages.
    pub fn first_key(&self) -> String {
        self.operations
            .first()
            .map(|op| display_key(op.key()))
            .unwrap_or_else(|| "(none)".to_string())
    }
}

/// Key-value pairs in key order, as a prefix scan returns them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Durable, ordered key-value storage. See the module comment for the rules.
pub trait Storage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StorageError>;

    /// Apply all operations of `batch`, or none of them.
    fn apply(&mut self, batch: WriteBatch) -> Result<(), StorageError>;

    /// [`Storage::apply`] of a batch whose loss in a crash costs only work
    /// again — a sync state, a peer's intake counts —, never a change a
    /// peer was told we hold. Durable with the next flush like any batch;
    /// a store that holds its answers to peers until what they acknowledge
    /// is durable need not hold them for this one (the node's sled store
    /// does not count it among the batches a session waits for).
    fn apply_cache(&mut self, batch: WriteBatch) -> Result<(), StorageError> {
        self.apply(batch)
    }

    /// Make everything applied so far durable.
    fn flush(&mut self) -> Result<(), StorageError>;
}

/// A key in printable form: ASCII as is, other bytes as `\xNN`.
pub fn display_key(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for &byte in key {
        if byte.is_ascii_graphic() || byte == b' ' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// An applied batch, each value the one `live` holds (`None`: a delete).
type SharedBatch = Vec<(Vec<u8>, Option<Arc<[u8]>>)>;

/// In-memory storage with crash semantics and fault injection.
///
/// `live` is what reads see; `durable` is what survives [`MemoryStorage::crash`].
/// Values are shared between the two maps, so a flushed store costs one copy.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    live: BTreeMap<Vec<u8>, Arc<[u8]>>,
    durable: BTreeMap<Vec<u8>, Arc<[u8]>>,
    /// Batches applied since the last successful flush, oldest first.
    pending: Vec<SharedBatch>,
    applies_to_fail: u64,
    flushes_to_fail: u64,
    stats: MemoryStorageStats,
}

/// Counters, for tests and the simulator's cost model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStorageStats {
    pub applies: u64,
    /// Of `applies`, those made through [`Storage::apply_cache`].
    pub cache_applies: u64,
    pub flushes: u64,
    pub bytes_applied: u64,
    pub crashes: u64,
    pub faults_injected: u64,
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStorage")
            .field("live_keys", &self.live.len())
            .field("durable_keys", &self.durable.len())
            .field("pending_batches", &self.pending.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl MemoryStorage {
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Lose power: everything applied since the last successful flush is gone.
    pub fn crash(&mut self) {
        self.live = self.durable.clone();
        self.pending.clear();
        self.applies_to_fail = 0;
        self.flushes_to_fail = 0;
        self.stats.crashes += 1;
    }

    /// What a restart after a crash right now would find, leaving `self` as is.
    pub fn crashed_copy(&self) -> MemoryStorage {
        let mut copy = self.clone();
        copy.crash();
        copy
    }

    /// The next `count` calls to [`Storage::apply`] fail and change nothing.
    pub fn fail_next_applies(&mut self, count: u64) {
        self.applies_to_fail = count;
    }

    /// The next `count` calls to [`Storage::flush`] fail and make nothing
    /// newly durable (applied batches stay applied but at risk).
    pub fn fail_next_flushes(&mut self, count: u64) {
        self.flushes_to_fail = count;
    }

    /// Overwrite a value directly, durably, bypassing batches: to simulate
    /// disk corruption in tests.
    pub fn corrupt_value(&mut self, key: &[u8], value: Vec<u8>) {
        let value: Arc<[u8]> = value.into();
        self.live.insert(key.to_vec(), value.clone());
        self.durable.insert(key.to_vec(), value);
    }

    pub fn stats(&self) -> MemoryStorageStats {
        self.stats
    }

    /// Keys currently visible, for tests.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.live.keys().cloned().collect()
    }

    pub fn has_unflushed_writes(&self) -> bool {
        !self.pending.is_empty()
    }

    fn apply_to(map: &mut BTreeMap<Vec<u8>, Arc<[u8]>>, key: Vec<u8>, value: Option<Arc<[u8]>>) {
        match value {
            Some(value) => {
                map.insert(key, value);
            }
            None => {
                map.remove(&key);
            }
        }
    }
}

impl Storage for MemoryStorage {
    /// As `apply` (a crash loses it unless flushed), counted apart.
    fn apply_cache(&mut self, batch: WriteBatch) -> Result<(), StorageError> {
        self.apply(batch)?;
        self.stats.cache_applies += 1;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.live.get(key).map(|value| value.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StorageError> {
        Ok(self
            .live
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.to_vec()))
            .collect())
    }

    fn apply(&mut self, batch: WriteBatch) -> Result<(), StorageError> {
        if self.applies_to_fail > 0 {
            self.applies_to_fail -= 1;
            self.stats.faults_injected += 1;
            return Err(StorageError::Write {
                first_key: batch.first_key(),
                operations: batch.len(),
                reason: "injected fault".to_string(),
            });
        }
        self.stats.applies += 1;
        self.stats.bytes_applied += batch.bytes() as u64;
        // One copy of each value, shared by `live` now and by `durable`
        // after the flush: two copies doubled the simulator's storage.
        let shared: SharedBatch = batch
            .into_operations()
            .into_iter()
            .map(|op| match op {
                WriteOp::Put { key, value } => (key, Some(Arc::from(value))),
                WriteOp::Delete { key } => (key, None),
            })
            .collect();
        for (key, value) in &shared {
            MemoryStorage::apply_to(&mut self.live, key.clone(), value.clone());
        }
        self.pending.push(shared);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        if self.flushes_to_fail > 0 {
            self.flushes_to_fail -= 1;
            self.stats.faults_injected += 1;
            return Err(StorageError::Flush {
                reason: "injected fault".to_string(),
            });
        }
        self.stats.flushes += 1;
        for batch in std::mem::take(&mut self.pending) {
            for (key, value) in batch {
                MemoryStorage::apply_to(&mut self.durable, key, value);
            }
        }
        debug_assert_eq!(
            self.live.len(),
            self.durable.len(),
            "after a flush live and durable agree"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn put(storage: &mut MemoryStorage, pairs: &[(&str, &str)]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::new();
        for (key, value) in pairs {
            batch.put(key.as_bytes().to_vec(), value.as_bytes().to_vec());
        }
        storage.apply(batch)
    }

    #[test]
    fn crash_keeps_exactly_what_was_flushed() {
        let mut storage = MemoryStorage::new();
        put(&mut storage, &[("a", "1"), ("b", "1")]).unwrap();
        storage.flush().unwrap();
        put(&mut storage, &[("a", "2"), ("c", "2")]).unwrap();
        let mut batch = WriteBatch::new();
        batch.delete(b"b".to_vec());
        storage.apply(batch).unwrap();
        assert_eq!(
            storage.get(b"a").unwrap(),
            Some(b"2".to_vec()),
            "reads see unflushed writes"
        );
        assert_eq!(storage.get(b"b").unwrap(), None);

        let copy = storage.crashed_copy();
        storage.crash();
        for crashed in [&storage, &copy] {
            assert_eq!(crashed.get(b"a").unwrap(), Some(b"1".to_vec()));
            assert_eq!(crashed.get(b"b").unwrap(), Some(b"1".to_vec()));
            assert_eq!(crashed.get(b"c").unwrap(), None);
        }
    }

    #[test]
    fn injected_faults_change_nothing() {
        let mut storage = MemoryStorage::new();
        storage.fail_next_applies(1);
        let error = put(&mut storage, &[("a", "1"), ("b", "1")]).unwrap_err();
        assert!(
            matches!(error, StorageError::Write { operations: 2, .. }),
            "{error}"
        );
        assert!(storage.keys().is_empty());

        put(&mut storage, &[("a", "1")]).unwrap();
        storage.fail_next_flushes(1);
        assert!(storage.flush().is_err());
        assert_eq!(
            storage.crashed_copy().get(b"a").unwrap(),
            None,
            "a failed flush made nothing durable"
        );
        storage.flush().unwrap();
        assert_eq!(
            storage.crashed_copy().get(b"a").unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(storage.stats().faults_injected, 2);
    }

    #[test]
    fn scan_prefix_is_ordered_and_bounded() {
        let mut storage = MemoryStorage::new();
        put(
            &mut storage,
            &[("p|b", "2"), ("p|a", "1"), ("q|a", "x"), ("p", "0")],
        )
        .unwrap();
        let found = storage.scan_prefix(b"p|").unwrap();
        let keys: Vec<&[u8]> = found.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, vec![b"p|a".as_slice(), b"p|b".as_slice()]);
    }

    #[test]
    fn keys_print_readably() {
        assert_eq!(
            display_key(b"chg|roster:xh|\x00\x01"),
            "chg|roster:xh|\\x00\\x01"
        );
    }

    proptest! {
        /// Whatever the interleaving of applies, flushes and crashes, storage
        /// equals a model that keeps whole batches up to the last flush.
        #[test]
        fn crash_model(steps in proptest::collection::vec((0u8..4, 0u8..4, 0u8..3), 1..60)) {
            let mut storage = MemoryStorage::new();
            let mut durable_model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut live_model = durable_model.clone();
            for (index, (action, key, value)) in steps.into_iter().enumerate() {
                match action {
                    0 | 1 => {
                        let mut batch = WriteBatch::new();
                        let key = vec![key];
                        let second = vec![key[0] + 10];
                        if value == 0 {
                            batch.delete(key.clone());
                            live_model.remove(&key);
                        } else {
                            let v = vec![value, index as u8];
                            batch.put(key.clone(), v.clone());
                            live_model.insert(key, v.clone());
                        }
                        batch.put(second.clone(), vec![index as u8]);
                        live_model.insert(second, vec![index as u8]);
                        storage.apply(batch).unwrap();
                    }
                    2 => {
                        storage.flush().unwrap();
                        durable_model = live_model.clone();
                    }
                    _ => {
                        storage.crash();
                        live_model = durable_model.clone();
                    }
                }
                let seen: BTreeMap<Vec<u8>, Vec<u8>> = storage.scan_prefix(b"").unwrap().into_iter().collect();
                prop_assert_eq!(&seen, &live_model);
            }
        }
    }
}
