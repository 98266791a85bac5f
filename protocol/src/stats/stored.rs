//! The statistics index kept next to the documents, so a node does not
//! re-read every document at each start.
//!
//! Every document's [`Contribution`] is stored under `stats|<document id>`
//! (see [`crate::replica::layout`]) in the replica's own [`Storage`], tagged
//! with the heads digest of the document it was computed from and with
//! [`CONTRIBUTION_FORMAT`]. Going through the `Storage` trait keeps this
//! sans-IO: the node stores it in sled next to the documents, the simulator
//! and the tests in `MemoryStorage`, by the same code.
//!
//! Invariants:
//!
//! - **An entry is trusted only if its digest equals the document's heads
//!   digest now** and its format is the current one. Equal digests mean
//!   equal heads, hence equal content, hence an equal contribution: a
//!   document changed while the node was stopped (a sync, a restored
//!   backup, a write the stats never saw) is read again, never served from
//!   its old entry.
//! - **A bad entry is rebuilt, not trusted.** Entries are framed with a
//!   checksum ([`seal`]); a flipped byte, a truncation, an undecodable body,
//!   an id that is not a document or a contribution for another document
//!   are reported in [`StatsOpenReport::corrupt`] and the document is read
//!   again. If the entries cannot be scanned at all, everything is rebuilt.
//! - **Entries are a cache.** They are written without a flush of their
//!   own: a crash may lose the newest ones, which only costs re-reading
//!   those documents at the next start. Nothing else depends on them.
//! - Opening and refreshing visit documents in id order: the resulting index
//!   is the same whatever was persisted (the property test in `tests.rs`
//!   holds it to a rebuild from scratch).

use super::contribution::Contribution;
use super::delta;
use super::index::StatsIndex;
use crate::identity::document_id::{DocumentId, DocumentKind};
use crate::replica::freshness::Freshness;
use crate::replica::layout::{document_of_key, seal, unseal, STATS_PREFIX};
use crate::replica::{CorruptValue, LoadError, Replica};
use crate::storage::{Storage, StorageError, WriteBatch};
use crate::sync::host::HeadsDigest;
use automerge::ChangeHash;
use std::collections::{BTreeMap, BTreeSet};

/// Version of what [`Contribution::of`] computes and how it is encoded.
/// Bump it whenever either changes (a new figure, a different reading of
/// the documents such as the union of concurrent collection maps): entries
/// of another format are recomputed at the next start.
/// 2: an activities contribution keys volunteers by home station and
/// number (1 keyed them by number alone).
pub const CONTRIBUTION_FORMAT: u32 = 2;
/// A stored entry larger than this is corrupt: a contribution lists at most
/// one roster's volunteers or one station-month's volunteers.
pub const STATS_ENTRY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Entries written per storage batch, so a full rebuild of a county does not
/// hold every encoded entry in memory at once.
pub const STATS_BATCH_ENTRIES_MAX: usize = 512;

/// The one entry that is not a document's: the index's [`Freshness`],
/// which documents alone cannot rebuild (it also records when each station
/// was last heard from).
pub const FRESHNESS_KEY: &[u8] = b"stats|~freshness";

const FORMAT_BYTES: usize = 4;
const DIGEST_BYTES: usize = 16;

/// The storage key of a document's entry.
pub fn stats_key(document: &DocumentId) -> Vec<u8> {
    [STATS_PREFIX, document.to_string().as_bytes()].concat()
}

/// Frame a contribution computed at `digest` for storage.
pub fn encode_entry(digest: &HeadsDigest, contribution: &Contribution) -> Vec<u8> {
    let mut payload = Vec::with_capacity(256);
    payload.extend_from_slice(&CONTRIBUTION_FORMAT.to_be_bytes());
    payload.extend_from_slice(digest);
    // Serialising plain data into a Vec cannot fail.
    let payload = postcard::to_extend(contribution, payload)
        .expect("a contribution serialises into a vector");
    seal(&payload)
}

/// A decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredEntry {
    Current {
        digest: HeadsDigest,
        contribution: Contribution,
    },
    /// Written by another [`CONTRIBUTION_FORMAT`]: to be recomputed.
    OtherFormat { format: u32 },
}

/// Decode the entry stored at `key`; anything malformed is [`CorruptValue`].
pub fn decode_entry(key: &[u8], value: &[u8]) -> Result<StoredEntry, CorruptValue> {
    if value.len() > STATS_ENTRY_BYTES_MAX {
        return Err(CorruptValue::new(
            key,
            format!(
                "{} bytes, more than {STATS_ENTRY_BYTES_MAX} for a statistics entry",
                value.len()
            ),
        ));
    }
    let payload = unseal(key, value)?;
    if payload.len() < FORMAT_BYTES + DIGEST_BYTES {
        return Err(CorruptValue::new(
            key,
            format!("{} bytes, shorter than an entry header", payload.len()),
        ));
    }
    let (format, rest) = payload.split_at(FORMAT_BYTES);
    let format = u32::from_be_bytes(format.try_into().expect("split at FORMAT_BYTES"));
    if format != CONTRIBUTION_FORMAT {
        return Ok(StoredEntry::OtherFormat { format });
    }
    let (digest, body) = rest.split_at(DIGEST_BYTES);
    let digest: HeadsDigest = digest.try_into().expect("split at DIGEST_BYTES");
    let (contribution, left) = postcard::take_from_bytes::<Contribution>(body)
        .map_err(|error| CorruptValue::new(key, format!("contribution: {error}")))?;
    if !left.is_empty() {
        return Err(CorruptValue::new(
            key,
            format!("{} bytes after the contribution", left.len()),
        ));
    }
    Ok(StoredEntry::Current {
        digest,
        contribution,
    })
}

/// One stored entry decoded, ready to fold into the index: what
/// [`StoredStats::open_with`] takes.
pub struct DecodedStored {
    key: Vec<u8>,
    entry: DecodedEntry,
}

enum DecodedEntry {
    Freshness(Result<Freshness, CorruptValue>),
    /// A key that names no document: discarded whatever its value holds.
    BadKey(CorruptValue),
    /// The document the key names, and its decoded entry.
    Document(DocumentId, Result<StoredEntry, CorruptValue>),
}

/// Decode one stored entry (the freshness or a document's): pure, so any
/// thread may run it.
pub fn decode_stored(key: Vec<u8>, value: Vec<u8>) -> DecodedStored {
    let entry = if key == FRESHNESS_KEY {
        DecodedEntry::Freshness(decode_freshness(&key, &value))
    } else {
        match document_of_key(STATS_PREFIX, &key) {
            Ok(document) => DecodedEntry::Document(document, decode_entry(&key, &value)),
            Err(problem) => DecodedEntry::BadKey(problem),
        }
    };
    DecodedStored { key, entry }
}

fn encode_freshness(freshness: &Freshness) -> Vec<u8> {
    let payload = postcard::to_extend(freshness, CONTRIBUTION_FORMAT.to_be_bytes().to_vec())
        .expect("freshness serialises into a vector");
    seal(&payload)
}

/// Freshness of another format is dropped (an empty one is returned): it
/// only ever makes stations look quieter until they are heard from again.
fn decode_freshness(key: &[u8], value: &[u8]) -> Result<Freshness, CorruptValue> {
    let payload = unseal(key, value)?;
    if payload.len() < FORMAT_BYTES {
        return Err(CorruptValue::new(key, "shorter than a format number"));
    }
    let (format, body) = payload.split_at(FORMAT_BYTES);
    if format != CONTRIBUTION_FORMAT.to_be_bytes() {
        return Ok(Freshness::default());
    }
    let (freshness, left) = postcard::take_from_bytes::<Freshness>(body)
        .map_err(|error| CorruptValue::new(key, format!("freshness: {error}")))?;
    if !left.is_empty() {
        return Err(CorruptValue::new(
            key,
            format!("{} bytes after the freshness", left.len()),
        ));
    }
    Ok(freshness)
}

/// What opening the persisted index found; the node logs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsOpenReport {
    /// Documents held by the replica.
    pub documents: usize,
    /// Entries found in storage.
    pub entries: usize,
    /// Entries used as they were (digest and format current).
    pub reused: usize,
    /// Entries of documents that changed since they were written.
    pub changed: usize,
    /// Entries of an older (or newer) [`CONTRIBUTION_FORMAT`].
    pub other_format: usize,
    /// Held documents without an entry.
    pub missing: usize,
    /// Entries of documents no longer held (deleted).
    pub orphans: usize,
    /// Entries that could not be trusted; their documents were read again.
    pub corrupt: Vec<CorruptValue>,
    /// Set when the entries could not be scanned: everything was rebuilt.
    pub scan_failed: Option<String>,
    /// What reading the documents did.
    pub refresh: StatsRefreshReport,
}

/// What one refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsRefreshReport {
    /// Documents read again whole (their heads moved, or never seen).
    pub reread: usize,
    /// Of those, documents that could not be read (listed by the index).
    pub unreadable: usize,
    /// Documents no longer held, dropped from the index.
    pub removed: usize,
    /// Documents moved by their new changes alone: only the records those
    /// touched were read (none, for a roster's points entries).
    pub from_changes: usize,
    /// Writing entries failed: the figures are right, but the next start
    /// will read these documents again.
    pub write_error: Option<StorageError>,
    /// Moved documents left for the next refresh (`refresh_at_most`).
    pub left: usize,
}

/// The statistics index of one replica and what it has seen of each
/// document, kept in step with the persisted entries.
#[derive(Debug, Default)]
pub struct StoredStats {
    index: StatsIndex,
    /// Heads digest of each document when it was last read (or, for an
    /// entry loaded at open, when its contribution was computed).
    seen: BTreeMap<DocumentId, HeadsDigest>,
    /// Heads each roster and activities document's contribution was
    /// computed at (memory only: an entry reused at open is current, so
    /// its heads are the document's heads then).
    heads_read: BTreeMap<DocumentId, Vec<ChangeHash>>,
    /// The freshness last written, to write it again only when it moved.
    freshness_written: Freshness,
}

/// Apply and empty `batch`; the first failure is kept in the report.
fn write<S: Storage>(
    replica: &mut Replica<S>,
    batch: &mut WriteBatch,
    report: &mut StatsRefreshReport,
) {
    if let Err(error) = replica.apply_stats_batch(std::mem::take(batch)) {
        report.write_error.get_or_insert(error);
    }
}

/// Whether a refresh may move `id`'s contribution by its new changes
/// alone (`delta.rs`), for which it keeps the heads it read it at.
fn moves_by_changes(id: &DocumentId) -> bool {
    matches!(id.kind, DocumentKind::Roster | DocumentKind::Activities(_))
}

/// What opening the persisted index needs of the replica, copied out in
/// one short step on the store's thread: each held document's digest (and
/// a roster's or activities document's heads), and the entries as stored.
pub struct OpenSnapshot {
    held: BTreeMap<DocumentId, HeadsDigest>,
    heads: BTreeMap<DocumentId, Vec<ChangeHash>>,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    scan_failed: Option<String>,
}

/// The persisted index folded from an [`OpenSnapshot`], with the entries
/// to delete; [`FoldedOpen::finish`] writes those and reads again what
/// moved since.
pub struct FoldedOpen {
    stats: StoredStats,
    report: StatsOpenReport,
    discard: WriteBatch,
}

impl OpenSnapshot {
    pub fn take<S: Storage>(replica: &Replica<S>) -> OpenSnapshot {
        let mut held = BTreeMap::new();
        let mut heads = BTreeMap::new();
        for (id, digest) in replica.digests() {
            held.insert(id.clone(), digest);
            if moves_by_changes(id) {
                if let Some(entry) = replica.index_entry(id) {
                    heads.insert(id.clone(), entry.heads.clone());
                }
            }
        }
        let (entries, scan_failed) = match replica.storage().scan_prefix(STATS_PREFIX) {
            Ok(entries) => (entries, None),
            Err(error) => (Vec::new(), Some(error.to_string())),
        };
        OpenSnapshot {
            held,
            heads,
            entries,
            scan_failed,
        }
    }

    /// Fold the entries into an index, trusting those whose digest is the
    /// snapshot's. Needs no replica: any thread may run it. `decode` is
    /// handed the entries as stored and must call `fold` once with every
    /// one of them passed through [`decode_stored`], in the order given
    /// (decoding needs nothing but the entry, so a node decodes on one
    /// more thread while this one folds).
    pub fn fold<D>(self, decode: D) -> FoldedOpen
    where
        D: FnOnce(Vec<(Vec<u8>, Vec<u8>)>, &mut dyn FnMut(&mut dyn Iterator<Item = DecodedStored>)),
    {
        let OpenSnapshot {
            held,
            mut heads,
            entries,
            scan_failed,
        } = self;
        let mut stats = StoredStats::default();
        let mut report = StatsOpenReport {
            documents: held.len(),
            scan_failed,
            entries: entries.len(),
            ..Default::default()
        };
        let scanned = entries.len();
        let mut discard = WriteBatch::new();
        let mut with_entry: BTreeSet<DocumentId> = BTreeSet::new();
        let mut folded = 0usize;
        decode(entries, &mut |decoded| {
            for DecodedStored { key, entry } in decoded {
                folded += 1;
                let (document, entry) = match entry {
                    DecodedEntry::Freshness(Ok(freshness)) => {
                        report.entries -= 1;
                        stats.freshness_written = freshness.clone();
                        *stats.index.freshness_mut() = freshness;
                        continue;
                    }
                    DecodedEntry::Freshness(Err(problem)) => {
                        report.entries -= 1;
                        report.corrupt.push(problem);
                        discard.delete(key);
                        continue;
                    }
                    DecodedEntry::BadKey(problem) => {
                        report.corrupt.push(problem);
                        discard.delete(key);
                        continue;
                    }
                    DecodedEntry::Document(document, entry) => (document, entry),
                };
                let Some(digest_now) = held.get(&document) else {
                    report.orphans += 1;
                    discard.delete(key);
                    continue;
                };
                with_entry.insert(document.clone());
                match entry {
                    Err(problem) => {
                        report.corrupt.push(problem);
                        discard.delete(key);
                    }
                    Ok(StoredEntry::OtherFormat { .. }) => report.other_format += 1,
                    Ok(StoredEntry::Current {
                        digest,
                        contribution,
                    }) => {
                        // A stale entry is applied too: if the document can no
                        // longer be read, its last good figures stay (listed as
                        // unreadable), as they would have in a running node.
                        if let Err(error) = stats.index.apply(&document, contribution) {
                            report
                                .corrupt
                                .push(CorruptValue::new(&key, error.to_string()));
                            discard.delete(key);
                            continue;
                        }
                        if digest == *digest_now {
                            if let Some(read) = heads.remove(&document) {
                                stats.heads_read.insert(document.clone(), read);
                            }
                            stats.seen.insert(document, digest);
                            report.reused += 1;
                        } else {
                            report.changed += 1;
                        }
                    }
                }
            }
        });
        // An entry the decoder left out only costs reading its document
        // again (it counts as missing below); still a defect of the caller.
        debug_assert_eq!(folded, scanned, "the decoder folds every stored entry");
        report.missing = held.len() - with_entry.len();
        FoldedOpen {
            stats,
            report,
            discard,
        }
    }
}

impl FoldedOpen {
    /// Delete the entries not trusted, then read again at most
    /// `documents_max` documents that moved (since their entry was written,
    /// or since the snapshot); the rest are `report.refresh.left`.
    pub fn finish<S: Storage>(
        self,
        replica: &mut Replica<S>,
        documents_max: usize,
    ) -> (StoredStats, StatsOpenReport) {
        let FoldedOpen {
            mut stats,
            mut report,
            discard,
        } = self;
        // Deletions first: a recomputed entry written below replaces a
        // corrupt one and must not be deleted after it.
        let discarded = replica.apply_stats_batch(discard).err();
        report.refresh = stats.refresh_at_most(replica, documents_max);
        if report.refresh.write_error.is_none() {
            report.refresh.write_error = discarded;
        }
        (stats, report)
    }
}

impl StoredStats {
    /// Load the persisted entries of `replica`, trust those whose digest is
    /// current, and read every other document again (writing new entries).
    pub fn open<S: Storage>(replica: &mut Replica<S>) -> (StoredStats, StatsOpenReport) {
        StoredStats::open_with(replica, |entries, fold| {
            fold(
                &mut entries
                    .into_iter()
                    .map(|(key, value)| decode_stored(key, value)),
            )
        })
    }

    /// [`open`](Self::open), with the decoding of the entries left to
    /// `decode` (see [`OpenSnapshot::fold`]). The three steps it runs in
    /// line — [`OpenSnapshot::take`], [`OpenSnapshot::fold`] and
    /// [`FoldedOpen::finish`] — a node runs apart, the fold on a thread of
    /// its own, so that sync and requests go on on the store's thread
    /// meanwhile; the index is the same either way.
    pub fn open_with<S, D>(replica: &mut Replica<S>, decode: D) -> (StoredStats, StatsOpenReport)
    where
        S: Storage,
        D: FnOnce(Vec<(Vec<u8>, Vec<u8>)>, &mut dyn FnMut(&mut dyn Iterator<Item = DecodedStored>)),
    {
        OpenSnapshot::take(replica)
            .fold(decode)
            .finish(replica, usize::MAX)
    }

    /// Read again every document whose heads moved since it was last read,
    /// drop documents no longer held, and persist the new entries. Costs the
    /// changed documents, not the county.
    pub fn refresh<S: Storage>(&mut self, replica: &mut Replica<S>) -> StatsRefreshReport {
        self.refresh_at_most(replica, usize::MAX)
    }

    /// [`refresh`](Self::refresh) of at most `documents_max` moved
    /// documents, the rest counted in `left` for the next call. A node
    /// refreshes on the store's one thread: after a cold sync or a large
    /// import thousands of documents moved, and reading them all in one go
    /// held every sync session and request for seconds. Each call leaves
    /// the index consistent (a document's contribution is replaced whole),
    /// only behind by the documents left.
    pub fn refresh_at_most<S: Storage>(
        &mut self,
        replica: &mut Replica<S>,
        documents_max: usize,
    ) -> StatsRefreshReport {
        assert!(
            documents_max > 0,
            "a refresh looks at one document at least"
        );
        let mut report = StatsRefreshReport::default();
        let mut held = 0usize;
        // Only the documents this call reads are copied out; the rest are
        // counted.
        let mut moved: Vec<(DocumentId, HeadsDigest)> = Vec::new();
        for (id, digest) in replica.digests() {
            held += 1;
            if self.seen.get(id) == Some(&digest) {
                continue;
            }
            if moved.len() < documents_max {
                moved.push((id.clone(), digest));
            } else {
                report.left += 1;
            }
        }
        let mut batch = WriteBatch::new();
        for (id, digest) in moved {
            let by_changes = self.moved_by_changes(replica, &id);
            let from_changes = by_changes.is_some();
            let read = match by_changes {
                Some(contribution) => Ok(Some(Ok(contribution))),
                None => {
                    let read = replica.with_document(&id, |doc| Contribution::of(&id, doc));
                    // Change times (metadata only) of a document read again:
                    // the freshness persisted below then covers every entry
                    // written.
                    let _ = replica.observe_change_times(&id, &[], self.index.freshness_mut());
                    read
                }
            };
            let outcome = match read {
                Ok(Some(Ok(contribution))) => {
                    let value = encode_entry(&digest, &contribution);
                    match self.index.apply(&id, contribution) {
                        Ok(()) => {
                            batch.put(stats_key(&id), value);
                            Ok(())
                        }
                        Err(error) => Err(error.to_string()),
                    }
                }
                Ok(Some(Err(error))) => Err(error.to_string()),
                Err(LoadError::Corrupt(problem)) => Err(problem.to_string()),
                Err(LoadError::Storage(error)) => Err(error.to_string()),
                // Listed by the index a moment ago, gone now: nothing to add.
                Ok(None) => continue,
            };
            match outcome {
                Ok(()) => self.note_heads_read(replica, &id),
                Err(reason) => {
                    self.heads_read.remove(&id);
                    self.index.mark_unreadable(&id, reason);
                    report.unreadable += 1;
                }
            }
            if from_changes {
                report.from_changes += 1;
            } else {
                report.reread += 1;
            }
            self.seen.insert(id, digest);
            if batch.len() >= STATS_BATCH_ENTRIES_MAX {
                write(replica, &mut batch, &mut report);
            }
        }
        // Every held document is in `seen` now (when none was left);
        // anything more is gone.
        if report.left == 0 && self.seen.len() > held {
            let gone: Vec<DocumentId> = self
                .seen
                .keys()
                .filter(|id| !replica.holds(id))
                .cloned()
                .collect();
            for id in gone {
                self.heads_read.remove(&id);
                self.index.remove(&id);
                self.seen.remove(&id);
                batch.delete(stats_key(&id));
                report.removed += 1;
            }
        }
        debug_assert!(
            report.left > 0 || self.seen.len() == held,
            "seen follows the replica once nothing is left"
        );
        if *self.index.freshness() != self.freshness_written {
            batch.put(
                FRESHNESS_KEY.to_vec(),
                encode_freshness(self.index.freshness()),
            );
            self.freshness_written = self.index.freshness().clone();
        }
        write(replica, &mut batch, &mut report);
        report
    }

    /// A document read before moves by its new changes alone when it can
    /// (`delta`): the changes are decoded and the records they touch are
    /// read at both heads (about 14 µs for a change of one record), instead
    /// of the whole document read again (about 0.3 ms for a roster of 150
    /// volunteers, more for a month of activities). Freshness still sees
    /// the new changes' times.
    fn moved_by_changes<S: Storage>(
        &mut self,
        replica: &mut Replica<S>,
        id: &DocumentId,
    ) -> Option<Contribution> {
        let read_at = self.heads_read.get(id)?;
        if self.index.unreadable().contains_key(id) {
            return None;
        }
        let old = self.index.contribution(id)?;
        let moved = replica
            .with_changes_since(id, read_at, |doc, changes| {
                delta::contribution_after(id, doc, old, read_at, changes)
            })
            .ok()???;
        let _ = replica.observe_change_times(id, read_at, self.index.freshness_mut());
        Some(moved)
    }

    /// Remember the heads a contribution now in the index was computed at,
    /// for the documents [`delta`] can move.
    fn note_heads_read<S: Storage>(&mut self, replica: &Replica<S>, id: &DocumentId) {
        if !moves_by_changes(id) {
            return;
        }
        if let Some(entry) = replica.index_entry(id) {
            self.heads_read.insert(id.clone(), entry.heads.clone());
        }
    }

    pub fn index(&self) -> &StatsIndex {
        &self.index
    }

    /// For what the index keeps besides contributions (freshness, which
    /// the next refresh persists).
    pub fn index_mut(&mut self) -> &mut StatsIndex {
        &mut self.index
    }

    /// Documents the index has seen, with the digest it saw.
    pub fn seen(&self) -> &BTreeMap<DocumentId, HeadsDigest> {
        &self.seen
    }
}

#[cfg(test)]
#[path = "stored_tests.rs"]
mod tests;
