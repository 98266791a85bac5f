//! Scope digest: a two-level hash tree over the documents two nodes share, so
//! that a reconnect costs the same whether 10 or 10,000 unchanged documents
//! are shared.
//!
//! Each (document id, heads digest) entry falls in one of [`DIGEST_BUCKETS`]
//! buckets, chosen by the first byte of SHA-256 of the document id's text form,
//! so both sides bucket identically without agreeing on anything. A bucket's
//! hash covers its entries sorted by document id; the root covers the entry
//! count and every bucket hash. Equal roots: nothing to do. Different roots:
//! the sides swap bucket hashes, then the entries of the differing buckets, and
//! sync exactly the documents whose digest differs or that one side lacks.
//!
//! Invariant: a [`ScopeDigest`] holds each document id at most once, each in
//! the bucket [`bucket_of`] names, sorted by id within the bucket.

use crate::identity::document_id::DocumentId;
use crate::sync::host::HeadsDigest;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;

/// Number of buckets: one per value of a byte.
pub const DIGEST_BUCKETS: usize = 256;
pub type BucketHash = [u8; 16];
pub type RootHash = [u8; 16];
/// Hash of a bucket with no entries.
pub const EMPTY_BUCKET: BucketHash = [0; 16];

/// The bucket a document falls in, on every node.
pub fn bucket_of(document: &DocumentId) -> u8 {
    Sha256::digest(document.to_string().as_bytes())[0]
}

fn truncate(full: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Hash of one bucket's entries, which must be sorted by document id.
pub fn bucket_hash(entries: &[(DocumentId, HeadsDigest)]) -> BucketHash {
    debug_assert!(
        entries.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "bucket entries sorted and unique"
    );
    if entries.is_empty() {
        return EMPTY_BUCKET;
    }
    let mut hasher = Sha256::new();
    for (document, digest) in entries {
        let id = document.to_string();
        // Length-prefixed so that no two entry lists hash the same bytes.
        hasher.update((id.len() as u32).to_be_bytes());
        hasher.update(id.as_bytes());
        hasher.update(digest);
    }
    truncate(&hasher.finalize())
}

/// The hash tree of one node's view of the documents it shares with a peer.
#[derive(Debug, Clone)]
pub struct ScopeDigest {
    buckets: Vec<Vec<(DocumentId, HeadsDigest)>>,
    bucket_hashes: Vec<BucketHash>,
    root: RootHash,
    documents: usize,
}

impl ScopeDigest {
    /// Build from the host's shared documents. Duplicated ids keep their first
    /// entry (a host bug, but not one worth a panic in production).
    pub fn new(entries: Vec<(DocumentId, HeadsDigest)>) -> ScopeDigest {
        let mut buckets: Vec<Vec<(DocumentId, HeadsDigest)>> = vec![Vec::new(); DIGEST_BUCKETS];
        for (document, digest) in entries {
            buckets[bucket_of(&document) as usize].push((document, digest));
        }
        let mut documents = 0;
        for bucket in &mut buckets {
            bucket.sort_by(|a, b| a.0.cmp(&b.0));
            bucket.dedup_by(|a, b| a.0 == b.0);
            documents += bucket.len();
        }
        let bucket_hashes: Vec<BucketHash> =
            buckets.iter().map(|bucket| bucket_hash(bucket)).collect();
        let mut hasher = Sha256::new();
        hasher.update((documents as u64).to_be_bytes());
        for hash in &bucket_hashes {
            hasher.update(hash);
        }
        let root = truncate(&hasher.finalize());
        debug_assert_eq!(bucket_hashes.len(), DIGEST_BUCKETS);
        ScopeDigest {
            buckets,
            bucket_hashes,
            root,
            documents,
        }
    }

    pub fn root(&self) -> RootHash {
        self.root
    }

    pub fn documents(&self) -> usize {
        self.documents
    }

    pub fn bucket_hashes(&self) -> &[BucketHash] {
        &self.bucket_hashes
    }

    pub fn bucket(&self, bucket: u8) -> &[(DocumentId, HeadsDigest)] {
        &self.buckets[bucket as usize]
    }

    /// Buckets whose hash differs from the peer's. `peer` must hold
    /// [`DIGEST_BUCKETS`] hashes (the wire decoder checks it).
    pub fn differing_buckets(&self, peer: &[BucketHash]) -> Vec<u8> {
        debug_assert_eq!(peer.len(), DIGEST_BUCKETS);
        (0..DIGEST_BUCKETS)
            .filter(|&bucket| peer.get(bucket) != Some(&self.bucket_hashes[bucket]))
            .map(|bucket| bucket as u8)
            .collect()
    }
}

/// Documents to sync within one bucket: those whose digest differs and those
/// only one side holds. Both lists sorted by id; the result is sorted too.
pub fn differing_documents(
    ours: &[(DocumentId, HeadsDigest)],
    theirs: &[(DocumentId, HeadsDigest)],
) -> Vec<DocumentId> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < ours.len() || j < theirs.len() {
        let order = match (ours.get(i), theirs.get(j)) {
            (Some(a), Some(b)) => a.0.cmp(&b.0),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                out.push(ours[i].0.clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(theirs[j].0.clone());
                j += 1;
            }
            Ordering::Equal => {
                if ours[i].1 != theirs[j].1 {
                    out.push(ours[i].0.clone());
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::station::StationId;
    use proptest::prelude::*;

    fn roster(i: usize) -> DocumentId {
        DocumentId::roster(&StationId::parse(&format!("xh/t{}/v{}", i % 20, i)).unwrap())
    }

    fn entries(count: usize) -> Vec<(DocumentId, HeadsDigest)> {
        (0..count)
            .map(|i| (roster(i), [(i % 251) as u8; 16]))
            .collect()
    }

    #[test]
    fn equal_scopes_have_equal_roots_whatever_the_input_order() {
        let mut shuffled = entries(500);
        shuffled.reverse();
        let a = ScopeDigest::new(entries(500));
        let b = ScopeDigest::new(shuffled);
        assert_eq!(a.root(), b.root());
        assert_eq!(a.documents(), 500);
        assert!(a.differing_buckets(b.bucket_hashes()).is_empty());
    }

    #[test]
    fn one_changed_document_shows_in_one_bucket_and_is_found() {
        let a = ScopeDigest::new(entries(500));
        let mut changed = entries(500);
        changed[123].1 = [0xff; 16];
        let b = ScopeDigest::new(changed);
        assert_ne!(a.root(), b.root());
        let buckets = a.differing_buckets(b.bucket_hashes());
        assert_eq!(buckets, vec![bucket_of(&roster(123))]);
        let bucket = buckets[0];
        assert_eq!(
            differing_documents(a.bucket(bucket), b.bucket(bucket)),
            vec![roster(123)]
        );
    }

    #[test]
    fn missing_documents_are_found_on_either_side() {
        let a = ScopeDigest::new(entries(10));
        let b = ScopeDigest::new(entries(0));
        assert_ne!(a.root(), b.root());
        let mut found = Vec::new();
        for bucket in a.differing_buckets(b.bucket_hashes()) {
            found.extend(differing_documents(a.bucket(bucket), b.bucket(bucket)));
            found.extend(differing_documents(b.bucket(bucket), a.bucket(bucket)));
        }
        found.sort();
        found.dedup();
        let mut expected: Vec<DocumentId> = (0..10).map(roster).collect();
        expected.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn the_empty_scope_has_empty_buckets() {
        let empty = ScopeDigest::new(Vec::new());
        assert!(empty
            .bucket_hashes()
            .iter()
            .all(|hash| *hash == EMPTY_BUCKET));
        assert_eq!(empty.root(), ScopeDigest::new(Vec::new()).root());
    }

    proptest! {
        #[test]
        fn differing_documents_is_exactly_the_symmetric_difference(
            ours in proptest::collection::btree_map(0usize..60, 0u8..3, 0..40),
            theirs in proptest::collection::btree_map(0usize..60, 0u8..3, 0..40),
        ) {
            let side = |map: &std::collections::BTreeMap<usize, u8>| {
                let mut list: Vec<(DocumentId, HeadsDigest)> =
                    map.iter().map(|(i, d)| (roster(*i), [*d; 16])).collect();
                list.sort();
                list
            };
            let (a, b) = (side(&ours), side(&theirs));
            let found = differing_documents(&a, &b);
            let mut expected: Vec<DocumentId> = (0..60)
                .filter(|i| ours.get(i) != theirs.get(i))
                .map(roster)
                .collect();
            expected.sort();
            prop_assert_eq!(found, expected);
            prop_assert_eq!(ScopeDigest::new(a.clone()).root() == ScopeDigest::new(b.clone()).root(), a == b);
        }
    }
}
