//! Conflicting fields across many documents, for the clerk's conflict list.
//!
//! [`crate::layout::conflicts`] lists one document's fields that concurrent
//! edits left with several values; this gathers them over every document a
//! node holds, each tagged with its document id so a clerk (or the API) can
//! call [`crate::layout::resolve_conflict`] on the right document. A document
//! that cannot be read is listed as unreadable instead of hiding the others,
//! and the listing is bounded.

use crate::identity::document_id::DocumentId;
use crate::layout::{conflicts, FieldConflict};
use automerge::ReadDoc;
use serde::{Deserialize, Serialize};

/// Most conflicts one listing returns; the rest are counted in `left_out`.
pub const CONFLICTS_LISTED_MAX: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentConflict {
    pub document: DocumentId,
    pub conflict: FieldConflict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableDocument {
    pub document: DocumentId,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictListing {
    /// In document order, then path order.
    pub conflicts: Vec<DocumentConflict>,
    pub unreadable: Vec<UnreadableDocument>,
    /// Conflicts found beyond the limit and not listed.
    pub left_out: usize,
}

/// Conflicts of every document given, at most `limit` of them (capped at
/// [`CONFLICTS_LISTED_MAX`]). Documents are visited in id order so the
/// listing is the same however the caller stores them.
pub fn list_conflicts<'a, D: ReadDoc + 'a>(
    documents: impl IntoIterator<Item = (&'a DocumentId, &'a D)>,
    limit: usize,
) -> ConflictListing {
    let limit = limit.min(CONFLICTS_LISTED_MAX);
    let mut documents: Vec<_> = documents.into_iter().collect();
    documents.sort_by(|a, b| a.0.cmp(b.0));
    let mut listing = ConflictListing::default();
    for (id, doc) in documents {
        match conflicts(doc) {
            Ok(found) => {
                for conflict in found {
                    if listing.conflicts.len() < limit {
                        listing.conflicts.push(DocumentConflict {
                            document: id.clone(),
                            conflict,
                        });
                    } else {
                        listing.left_out += 1;
                    }
                }
            }
            Err(error) => listing.unreadable.push(UnreadableDocument {
                document: id.clone(),
                reason: error.to_string(),
            }),
        }
    }
    debug_assert!(listing.conflicts.len() <= limit);
    listing
}
