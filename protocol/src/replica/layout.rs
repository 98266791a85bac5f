//! Storage keys of a replica and the framing of every stored value.
//!
//! Keys are ASCII text with `|` as separator; `|` never occurs in station
//! paths or document ids, so a prefix scan of one document never reaches
//! another (`roster:xh/t1` and `roster:xh/t1/chg` stay apart).
//!
//! | key                              | value                                    |
//! |----------------------------------|------------------------------------------|
//! | `meta|layout`                    | layout version, u32 big-endian           |
//! | `idx|<document id>`              | [`IndexEntry`]: heads, counts, sizes     |
//! | `snap|<document id>`             | compacted document (`save()`)            |
//! | `chg|<document id>|<seq u64 BE>` | changes since the snapshot (`save_after`)|
//! | `sync|<peer station>|<doc id>`   | `sync::State::encode()` for that pair    |
//! | `node|...`                       | reserved for the node (its incarnation)  |
//! | `stats|<document id>`            | the statistics index's entry for it      |
//! | `intake|<peer station>`          | `intake::PeerIntake`, the peer's day      |
//!
//! Every value except `meta|layout` is framed as
//! `version (1 byte) ‖ first 8 bytes of SHA-256(payload) ‖ payload`, so a
//! flipped or truncated value is reported with its key instead of being
//! loaded as something else (automerge would silently skip a change whose
//! hash no longer matches a dependency).

use crate::identity::document_id::DocumentId;
use crate::identity::station::StationId;
use crate::storage::display_key;
use crate::sync::host::{heads_digest, HeadsDigest};
use automerge::ChangeHash;
use sha2::{Digest, Sha256};

/// Version of this key layout. A store written by a newer layout is refused.
pub const LAYOUT_VERSION: u32 = 1;
pub const LAYOUT_KEY: &[u8] = b"meta|layout";
pub const INDEX_PREFIX: &[u8] = b"idx|";
pub const SNAPSHOT_PREFIX: &[u8] = b"snap|";
pub const INCREMENT_PREFIX: &[u8] = b"chg|";
pub const SYNC_STATE_PREFIX: &[u8] = b"sync|";
/// Keys under this prefix belong to the node, never to the replica.
pub const NODE_PREFIX: &[u8] = b"node|";
/// Keys under this prefix hold the persisted statistics index
/// (`crate::stats::StoredStats`): a cache, rebuildable from the documents.
pub const STATS_PREFIX: &[u8] = b"stats|";

/// Keys under this prefix hold each peer's intake counts of its day.
pub const INTAKE_PREFIX: &[u8] = b"intake|";

const FRAME_VERSION: u8 = 1;
const FRAME_CHECKSUM_BYTES: usize = 8;
const FRAME_HEADER_BYTES: usize = 1 + FRAME_CHECKSUM_BYTES;
const INDEX_ENTRY_VERSION: u8 = 1;
/// More heads than this in one index entry means corruption: heads are the
/// concurrent tips of a document, a handful in practice.
pub const INDEX_HEADS_MAX: usize = 4096;

/// A stored value that cannot be what its key says it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored value at {key} is corrupt: {reason}")]
pub struct CorruptValue {
    pub key: String,
    pub reason: String,
}

impl CorruptValue {
    pub fn new(key: &[u8], reason: impl Into<String>) -> CorruptValue {
        CorruptValue {
            key: display_key(key),
            reason: reason.into(),
        }
    }
}

pub fn intake_key(peer: &StationId) -> Vec<u8> {
    [INTAKE_PREFIX, peer.to_string().as_bytes()].concat()
}

pub fn index_key(document: &DocumentId) -> Vec<u8> {
    [INDEX_PREFIX, document.to_string().as_bytes()].concat()
}

pub fn snapshot_key(document: &DocumentId) -> Vec<u8> {
    [SNAPSHOT_PREFIX, document.to_string().as_bytes()].concat()
}

pub fn increments_prefix(document: &DocumentId) -> Vec<u8> {
    [INCREMENT_PREFIX, document.to_string().as_bytes(), b"|"].concat()
}

pub fn increment_key(document: &DocumentId, seq: u64) -> Vec<u8> {
    [increments_prefix(document).as_slice(), &seq.to_be_bytes()].concat()
}

pub fn sync_state_key(peer: &StationId, document: &DocumentId) -> Vec<u8> {
    [
        SYNC_STATE_PREFIX,
        peer.as_str().as_bytes(),
        b"|",
        document.to_string().as_bytes(),
    ]
    .concat()
}

/// The document id named by a key `<prefix><document id>`.
pub fn document_of_key(prefix: &[u8], key: &[u8]) -> Result<DocumentId, CorruptValue> {
    let rest = key
        .strip_prefix(prefix)
        .ok_or_else(|| CorruptValue::new(key, "unexpected prefix"))?;
    let text = std::str::from_utf8(rest)
        .map_err(|_| CorruptValue::new(key, "document id is not UTF-8"))?;
    DocumentId::parse(text)
        .map_err(|error| CorruptValue::new(key, format!("bad document id: {error}")))
}

/// The sequence number at the end of an increment key of `document`.
pub fn increment_seq(document: &DocumentId, key: &[u8]) -> Result<u64, CorruptValue> {
    let prefix = increments_prefix(document);
    let rest = key
        .strip_prefix(prefix.as_slice())
        .ok_or_else(|| CorruptValue::new(key, "unexpected prefix"))?;
    let bytes: [u8; 8] = rest
        .try_into()
        .map_err(|_| CorruptValue::new(key, "sequence number is not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}

fn checksum(payload: &[u8]) -> [u8; FRAME_CHECKSUM_BYTES] {
    let full = Sha256::digest(payload);
    let mut out = [0u8; FRAME_CHECKSUM_BYTES];
    out.copy_from_slice(&full[..FRAME_CHECKSUM_BYTES]);
    out
}

/// Frame `payload` for storage.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    out.push(FRAME_VERSION);
    out.extend_from_slice(&checksum(payload));
    out.extend_from_slice(payload);
    out
}

/// The payload of a framed value stored at `key`, checked.
pub fn unseal<'a>(key: &[u8], value: &'a [u8]) -> Result<&'a [u8], CorruptValue> {
    if value.len() < FRAME_HEADER_BYTES {
        return Err(CorruptValue::new(
            key,
            format!("{} bytes is shorter than a frame header", value.len()),
        ));
    }
    if value[0] != FRAME_VERSION {
        return Err(CorruptValue::new(
            key,
            format!("unknown frame version {}", value[0]),
        ));
    }
    let payload = &value[FRAME_HEADER_BYTES..];
    if value[1..FRAME_HEADER_BYTES] != checksum(payload) {
        return Err(CorruptValue::new(
            key,
            "checksum mismatch (flipped or truncated bytes)",
        ));
    }
    Ok(payload)
}

/// What the replica knows about a document without loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Sorted.
    pub heads: Vec<ChangeHash>,
    pub digest: HeadsDigest,
    pub change_count: u64,
    /// Framed size of the snapshot, 0 when there is none.
    pub snapshot_bytes: u64,
    /// Framed size of all increments.
    pub increments_bytes: u64,
    /// Increments are stored under `first_increment..next_increment`.
    pub first_increment: u64,
    pub next_increment: u64,
}

impl IndexEntry {
    pub fn empty() -> IndexEntry {
        IndexEntry {
            heads: Vec::new(),
            digest: heads_digest(&[]),
            change_count: 0,
            snapshot_bytes: 0,
            increments_bytes: 0,
            first_increment: 0,
            next_increment: 0,
        }
    }

    pub fn increment_count(&self) -> u64 {
        debug_assert!(self.first_increment <= self.next_increment);
        self.next_increment - self.first_increment
    }

    pub fn set_heads(&mut self, mut heads: Vec<ChangeHash>) {
        heads.sort();
        self.digest = heads_digest(&heads);
        self.heads = heads;
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 4 + 32 * self.heads.len() + 5 * 8);
        out.push(INDEX_ENTRY_VERSION);
        out.extend_from_slice(&(self.heads.len() as u32).to_be_bytes());
        for head in &self.heads {
            out.extend_from_slice(&head.0);
        }
        for number in [
            self.change_count,
            self.snapshot_bytes,
            self.increments_bytes,
            self.first_increment,
            self.next_increment,
        ] {
            out.extend_from_slice(&number.to_be_bytes());
        }
        out
    }

    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<IndexEntry, CorruptValue> {
        let corrupt = |reason: &str| CorruptValue::new(key, format!("index entry: {reason}"));
        let mut reader = Reader { bytes };
        if reader.take(1).ok_or_else(|| corrupt("empty"))?[0] != INDEX_ENTRY_VERSION {
            return Err(corrupt("unknown version"));
        }
        let count = reader
            .u32()
            .ok_or_else(|| corrupt("truncated head count"))? as usize;
        if count > INDEX_HEADS_MAX {
            return Err(corrupt(&format!(
                "{count} heads is more than {INDEX_HEADS_MAX}"
            )));
        }
        let mut heads = Vec::with_capacity(count);
        for _ in 0..count {
            let raw: [u8; 32] = reader
                .take(32)
                .ok_or_else(|| corrupt("truncated heads"))?
                .try_into()
                .unwrap();
            heads.push(ChangeHash(raw));
        }
        let mut numbers = [0u64; 5];
        for number in &mut numbers {
            *number = reader.u64().ok_or_else(|| corrupt("truncated counters"))?;
        }
        if !reader.bytes.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        let [change_count, snapshot_bytes, increments_bytes, first_increment, next_increment] =
            numbers;
        if first_increment > next_increment {
            return Err(corrupt("increment range runs backwards"));
        }
        if heads.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(corrupt("heads are not sorted and unique"));
        }
        let digest = heads_digest(&heads);
        Ok(IndexEntry {
            heads,
            digest,
            change_count,
            snapshot_bytes,
            increments_bytes,
            first_increment,
            next_increment,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < count {
            return None;
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc(text: &str) -> DocumentId {
        DocumentId::parse(text).unwrap()
    }

    #[test]
    fn increment_prefixes_of_different_documents_never_overlap() {
        let parent = increments_prefix(&doc("roster:xh/t1"));
        let lookalike = increment_key(&doc("roster:xh/t1/chg"), 0);
        assert!(!lookalike.starts_with(&parent));
        let key = increment_key(&doc("roster:xh/t1"), 7);
        assert!(key.starts_with(&parent));
        assert_eq!(increment_seq(&doc("roster:xh/t1"), &key), Ok(7));
    }

    #[test]
    fn document_ids_round_trip_through_keys() {
        let id = doc("activities:xh/t03/v12:2026-11");
        assert_eq!(
            document_of_key(INDEX_PREFIX, &index_key(&id)),
            Ok(id.clone())
        );
        assert!(document_of_key(INDEX_PREFIX, b"idx|nonsense").is_err());
    }

    #[test]
    fn damaged_frames_are_caught() {
        let sealed = seal(b"hello");
        assert_eq!(unseal(b"k", &sealed), Ok(b"hello".as_slice()));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(unseal(b"k", &flipped).is_err());
        assert!(unseal(b"k", &sealed[..sealed.len() - 1]).is_err());
        assert!(unseal(b"k", &sealed[..3]).is_err());
        let error = unseal(b"idx|x", &[]).unwrap_err();
        assert_eq!(error.key, "idx|x");
    }

    proptest! {
        #[test]
        fn index_entries_round_trip(
            mut heads in proptest::collection::vec(any::<[u8; 32]>(), 0..5),
            counters in any::<[u64; 3]>(),
            first in 0u64..1000, extra in 0u64..1000,
        ) {
            heads.sort();
            heads.dedup();
            let mut entry = IndexEntry::empty();
            entry.set_heads(heads.into_iter().map(ChangeHash).collect());
            entry.change_count = counters[0];
            entry.snapshot_bytes = counters[1];
            entry.increments_bytes = counters[2];
            entry.first_increment = first;
            entry.next_increment = first + extra;
            let encoded = entry.encode();
            prop_assert_eq!(IndexEntry::decode(b"k", &encoded), Ok(entry));
            for cut in 0..encoded.len() {
                prop_assert!(IndexEntry::decode(b"k", &encoded[..cut]).is_err());
            }
        }

        #[test]
        fn unseal_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = unseal(b"k", &bytes);
            let _ = IndexEntry::decode(b"k", &bytes);
        }
    }
}
