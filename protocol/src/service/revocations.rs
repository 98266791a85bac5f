//! The county's certificate revocation list, carried as a reference
//! document so that it flows down the whole county like a menu does.
//!
//! ```text
//! reference:<county>:revocations   items {list: {version, signed}}
//! ```
//!
//! The document holds one item: the newest signed list the county stored,
//! as the exact text the county CA signed (`signed`) and its version. This
//! layer never judges the signature — that needs the CA certificate and
//! crypto, which the node has — it only keeps the rules of the document:
//! - only the owner writes it (like every reference document), and a node
//!   stores a list only after checking its signature (the caller's duty);
//! - versions only go up: a list not newer than the one held is refused
//!   (`NotNewer`), so a replayed old list cannot bring a revoked certificate
//!   back;
//! - the signed text is bounded ([`SIGNED_LIST_BYTES_MAX`]).

use crate::identity::document_id::{DocumentId, DocumentKind};
use crate::identity::station::StationId;
use crate::layout;
use crate::replica::{CommitError, Replica};
use crate::service::ErrorClass;
use crate::storage::Storage;

/// The reference name of the revocation list document.
pub const REVOCATIONS: &str = "revocations";
/// The key of the one item the document holds.
const LIST_KEY: &str = "list";
/// Largest signed list stored (about 1,000 revoked certificates).
pub const SIGNED_LIST_BYTES_MAX: usize = 256 * 1024;

/// The revocation list document kept by `county`.
pub fn revocations_document(county: &StationId) -> DocumentId {
    DocumentId {
        owner: county.clone(),
        kind: DocumentKind::Reference(REVOCATIONS.to_string()),
    }
}

/// The list a revocation document holds: its version and the signed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRevocationList {
    pub version: u64,
    pub signed: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationStoreError {
    #[error("version {offered} is not newer than the list held (version {held})")]
    NotNewer { offered: u64, held: u64 },
    #[error("the signed list is {bytes} bytes; at most {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("the store failed: {reason}")]
    Store { reason: String },
}

impl RevocationStoreError {
    pub fn field(&self) -> &str {
        match self {
            RevocationStoreError::NotNewer { .. } => "version",
            RevocationStoreError::TooLarge { .. } => "signed",
            RevocationStoreError::Store { .. } => "store",
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            RevocationStoreError::NotNewer { .. } => ErrorClass::Conflict,
            RevocationStoreError::TooLarge { .. } => ErrorClass::BadInput,
            RevocationStoreError::Store { .. } => ErrorClass::Internal,
        }
    }
}

/// The list held in `county`'s revocation document, if any. A document
/// whose item cannot be read counts as holding none (the caller keeps what
/// it already accepted).
pub fn held_revocation_list<S: Storage>(
    replica: &mut Replica<S>,
    county: &StationId,
) -> Option<HeldRevocationList> {
    let document = revocations_document(county);
    let items = match replica.with_document(&document, layout::reference_items) {
        Ok(Some(Ok(items))) => items,
        _ => return None,
    };
    let (_, fields) = items.into_iter().find(|(key, _)| key == LIST_KEY)?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.clone())
    };
    Some(HeldRevocationList {
        version: field("version")?.parse().ok()?,
        signed: field("signed")?,
    })
}

/// Stores a signed list (already verified by the caller) in this node's own
/// revocation document, if its version is newer than the one held. One
/// commit or none.
pub fn put_revocation_list<S: Storage>(
    replica: &mut Replica<S>,
    version: u64,
    signed: &str,
) -> Result<(), RevocationStoreError> {
    if signed.len() > SIGNED_LIST_BYTES_MAX {
        return Err(RevocationStoreError::TooLarge {
            bytes: signed.len(),
            max: SIGNED_LIST_BYTES_MAX,
        });
    }
    let owner = replica.local().clone();
    if let Some(held) = held_revocation_list(replica, &owner) {
        if version <= held.version {
            return Err(RevocationStoreError::NotNewer {
                offered: version,
                held: held.version,
            });
        }
    }
    let fields = [
        ("version", version.to_string()),
        ("signed", signed.to_string()),
    ];
    let document = revocations_document(&owner);
    replica
        .commit(&document, |doc| {
            layout::put_reference_item(doc, LIST_KEY, &fields).map_err(|error| {
                RevocationStoreError::Store {
                    reason: error.to_string(),
                }
            })
        })
        .map_err(|error| match error {
            CommitError::Mutate(e) => e,
            other => RevocationStoreError::Store {
                reason: other.to_string(),
            },
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;
    use crate::test_support::node;

    fn county() -> Replica<MemoryStorage> {
        let mut replica = node("xh");
        replica.set_now_ms(1_800_000_000_000);
        replica
    }

    #[test]
    fn a_stored_list_reads_back_and_only_a_newer_version_replaces_it() {
        let mut replica = county();
        let xh = StationId::parse("xh").unwrap();
        assert_eq!(held_revocation_list(&mut replica, &xh), None);
        put_revocation_list(&mut replica, 2, "two").unwrap();
        let held = held_revocation_list(&mut replica, &xh).unwrap();
        assert_eq!((held.version, held.signed.as_str()), (2, "two"));
        for stale in [1, 2] {
            let error = put_revocation_list(&mut replica, stale, "old").unwrap_err();
            assert_eq!(error.field(), "version");
        }
        assert_eq!(
            held_revocation_list(&mut replica, &xh).unwrap().signed,
            "two"
        );
        put_revocation_list(&mut replica, 3, "three").unwrap();
        assert_eq!(held_revocation_list(&mut replica, &xh).unwrap().version, 3);
    }

    #[test]
    fn an_oversized_list_is_refused_naming_the_limit() {
        let mut replica = county();
        let big = "x".repeat(SIGNED_LIST_BYTES_MAX + 1);
        let error = put_revocation_list(&mut replica, 1, &big).unwrap_err();
        assert!(matches!(error, RevocationStoreError::TooLarge { .. }));
        assert_eq!(error.field(), "signed");
    }
}
