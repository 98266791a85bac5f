//! Splitting Automerge byte streams into changes we can inspect.
//!
//! A sync message's change list and our stored increments are sequences of
//! Automerge storage chunks: single changes (plain or deflated), several
//! changes back to back (a v2 message's change list), or one whole compressed
//! document (what v2 sync sends to an empty or far-behind peer), or a
//! bundle of changes (what a USB stick carries, `sync::bundle`). Automerge's
//! own `load_incremental` accepts all of these but hides the changes and
//! silently skips a damaged tail; we need every change in hand to check its
//! author before anything is applied, and an error for anything damaged.
//!
//! Chunk header: magic `85 6f 4a 83`, 4-byte checksum, 1-byte type
//! (0 document, 1 change, 2 deflated change, 3 bundle), ULEB128 length.

use automerge::{Automerge, Change, LoadOptions, OnPartialLoad, VerificationMode};

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const TYPE_DOCUMENT: u8 = 0;
const TYPE_CHANGE: u8 = 1;
const TYPE_CHANGE_DEFLATED: u8 = 2;
const TYPE_BUNDLE: u8 = 3;
const ULEB128_BYTES_MAX: usize = 10;

/// Every change in `bytes`, in stream order; documents are expanded into
/// their full history. Fails on anything damaged, unknown, or when there are
/// more than `changes_max` changes.
pub fn changes_in(bytes: &[u8], changes_max: usize) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (chunk_type, chunk, after) = split_chunk(rest)?;
        match chunk_type {
            TYPE_CHANGE | TYPE_CHANGE_DEFLATED => {
                let change = Change::try_from(chunk)
                    .map_err(|error| format!("bad change chunk: {error}"))?;
                changes.push(change);
            }
            TYPE_DOCUMENT => {
                let options = LoadOptions::new()
                    .on_partial_load(OnPartialLoad::Error)
                    .verification_mode(VerificationMode::Check);
                let document = Automerge::load_with_options(chunk, options)
                    .map_err(|error| format!("bad document chunk: {error}"))?;
                changes.extend(document.get_changes(&[]));
            }
            TYPE_BUNDLE => {
                let bundle = automerge::Bundle::try_from(chunk)
                    .map_err(|error| format!("bad bundle chunk: {error}"))?;
                if bundle.iter_changes().count() > changes_max.saturating_sub(changes.len()) {
                    return Err(format!("more than {changes_max} changes"));
                }
                changes.extend(
                    bundle
                        .to_changes()
                        .map_err(|error| format!("bad bundle chunk: {error}"))?,
                );
            }
            other => return Err(format!("unsupported chunk type {other}")),
        }
        if changes.len() > changes_max {
            return Err(format!("more than {changes_max} changes"));
        }
        rest = after;
    }
    Ok(changes)
}

/// The bytes if they are exactly one whole-document chunk (what v2 sync
/// sends to an empty peer), else `None`. Checks only the framing.
pub fn single_document(bytes: &[u8]) -> Option<&[u8]> {
    match split_chunk(bytes) {
        Ok((TYPE_DOCUMENT, chunk, [])) => Some(chunk),
        _ => None,
    }
}

/// A whole-document chunk and what follows it, if `bytes` start with one
/// and every chunk after it is a change (a document sent from storage as
/// its snapshot and its increments). Checks only the framing.
pub fn document_then_changes(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (TYPE_DOCUMENT, document, after) = split_chunk(bytes).ok()? else {
        return None;
    };
    let mut rest = after;
    while !rest.is_empty() {
        match split_chunk(rest).ok()? {
            (TYPE_CHANGE | TYPE_CHANGE_DEFLATED, _, next) => rest = next,
            _ => return None,
        }
    }
    Some((document, after))
}

/// Number of chunks in `bytes` (for `save_after` output: the number of
/// changes), without decoding them.
pub fn chunk_count(bytes: &[u8]) -> Result<usize, String> {
    let mut count = 0;
    let mut rest = bytes;
    while !rest.is_empty() {
        let (_, _, after) = split_chunk(rest)?;
        count += 1;
        rest = after;
    }
    Ok(count)
}

/// `(type, whole chunk including header, remaining bytes)`.
fn split_chunk(bytes: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    if bytes.len() < MAGIC.len() + 4 + 1 + 1 {
        return Err(format!(
            "{} trailing bytes are too short for a chunk header",
            bytes.len()
        ));
    }
    if bytes[..4] != MAGIC {
        return Err("chunk does not start with the Automerge magic bytes".to_string());
    }
    let chunk_type = bytes[8];
    let mut length: u64 = 0;
    let mut at = 9;
    let mut shift = 0;
    loop {
        let byte = *bytes.get(at).ok_or("truncated chunk length")?;
        at += 1;
        if at - 9 > ULEB128_BYTES_MAX {
            return Err("chunk length is not a valid ULEB128".to_string());
        }
        length |= u64::from(byte & 0x7f)
            .checked_shl(shift)
            .ok_or("chunk length overflows")?;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let end = (at as u64)
        .checked_add(length)
        .ok_or("chunk length overflows")?;
    if end > bytes.len() as u64 {
        return Err(format!(
            "chunk claims {length} bytes but only {} remain",
            bytes.len() - at
        ));
    }
    let end = end as usize;
    Ok((chunk_type, &bytes[..end], &bytes[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};
    use proptest::prelude::*;

    fn three_changes() -> AutoCommit {
        let mut doc = AutoCommit::new();
        for value in 0..3i64 {
            doc.put(ROOT, "n", value).unwrap();
            doc.commit();
        }
        doc
    }

    #[test]
    fn concatenated_changes_and_documents_both_expand() {
        let mut doc = three_changes();
        let increments = doc.save_after(&[]);
        assert_eq!(chunk_count(&increments), Ok(3));
        assert_eq!(changes_in(&increments, 10).unwrap().len(), 3);
        let snapshot = doc.save();
        assert_eq!(changes_in(&snapshot, 10).unwrap().len(), 3);
        let both = [snapshot.as_slice(), increments.as_slice()].concat();
        assert_eq!(changes_in(&both, 10).unwrap().len(), 6);
        assert!(changes_in(&both, 5).is_err(), "limit applies");
    }

    #[test]
    fn damage_is_an_error_not_a_shorter_list() {
        let mut doc = three_changes();
        let increments = doc.save_after(&[]);
        assert!(changes_in(&increments[..increments.len() - 1], 10).is_err());
        let mut flipped = increments.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x55;
        // A flipped byte is either a parse error or a checksum failure; it
        // must never yield three valid changes equal to the originals.
        if let Ok(changes) = changes_in(&flipped, 10) {
            let original = changes_in(&increments, 10).unwrap();
            assert_ne!(
                changes.iter().map(|c| c.hash()).collect::<Vec<_>>(),
                original.iter().map(|c| c.hash()).collect::<Vec<_>>()
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = changes_in(&bytes, 100);
            let _ = chunk_count(&bytes);
            let mut prefixed = MAGIC.to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = changes_in(&prefixed, 100);
        }
    }
}
