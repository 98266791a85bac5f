//! A bundle: the changes one station holds and another is missing, for a
//! link that is a USB stick carried to the township on market day.
//!
//! A bundle is what a sync session would have sent, without the session:
//! for each document the recipient may hold, the changes past the heads the
//! recipient last acknowledged (an Automerge bundle chunk, type 3, several
//! changes compressed together) in a [`SignedSyncMessage`] envelope with
//! their writers' signatures and credentials, so the receiver judges every
//! change by its writer exactly as on a link; and the heads the sender
//! holds of every document the two share, which is the receipt: importing
//! a bundle from S tells this node what S holds, so its next bundle for S
//! starts there.
//!
//! This is the plain contents. Sealing it to the recipient (encryption to
//! its certificate key, the sender's signature over the file) is the
//! node's: it owns the keys. Every bound is checked on decode; the caller
//! bounds the bytes first ([`BUNDLE_BYTES_MAX`]), which bounds what
//! decoding allocates.

use crate::identity::document_id::DocumentId;
use crate::identity::station::StationId;
use serde::{Deserialize, Serialize};

/// The format of the contents; a reader refuses any other.
pub const BUNDLE_FORMAT_VERSION: u16 = 1;
/// Most bytes of a bundle's contents (a county's whole subtree for one
/// township is ~30 MB; a village's week is tens of KB).
pub const BUNDLE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Most documents one bundle carries or lists heads of (a township holds
/// ~100, a county ~3,000).
pub const DOCUMENTS_PER_BUNDLE_MAX: usize = 100_000;
/// Most heads listed for one document (concurrent writers; a handful).
pub const HEADS_PER_DOCUMENT_MAX: usize = 1024;

/// One document's changes: `envelope` is a [`SignedSyncMessage`] whose
/// payload is an Automerge bundle chunk rather than a sync message.
///
/// [`SignedSyncMessage`]: crate::sync::signing::SignedSyncMessage
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundledDocument {
    pub document: String,
    pub envelope: Vec<u8>,
}

/// The heads the sender holds of one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldHeads {
    pub document: String,
    pub heads: Vec<[u8; 32]>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleContents {
    pub version: u16,
    pub from: String,
    pub to: String,
    /// When the sender wrote it (Unix ms, the sender's clock).
    pub created_ms: i64,
    pub documents: Vec<BundledDocument>,
    pub holds: Vec<HeldHeads>,
}

/// A bundle's contents as checked: stations and document ids parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedBundle {
    pub from: StationId,
    pub to: StationId,
    pub created_ms: i64,
    pub documents: Vec<(DocumentId, Vec<u8>)>,
    pub holds: Vec<(DocumentId, Vec<automerge::ChangeHash>)>,
}

impl BundleContents {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("bundle contents always encode")
    }

    /// Decode and check every bound, naming what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<CheckedBundle, String> {
        if bytes.len() > BUNDLE_BYTES_MAX {
            return Err(format!(
                "the bundle is {} bytes; at most {BUNDLE_BYTES_MAX}",
                bytes.len()
            ));
        }
        let (contents, rest): (BundleContents, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|error| format!("the bundle does not decode: {error}"))?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the bundle", rest.len()));
        }
        if contents.version != BUNDLE_FORMAT_VERSION {
            return Err(format!(
                "bundle format {} (this node reads format {BUNDLE_FORMAT_VERSION})",
                contents.version
            ));
        }
        for (count, what) in [
            (contents.documents.len(), "documents"),
            (contents.holds.len(), "listed heads"),
        ] {
            if count > DOCUMENTS_PER_BUNDLE_MAX {
                return Err(format!(
                    "{count} {what}; at most {DOCUMENTS_PER_BUNDLE_MAX}"
                ));
            }
        }
        let station = |text: &str, role: &str| {
            StationId::parse(text).map_err(|error| format!("the bundle's {role} {text:?}: {error}"))
        };
        let document = |text: &str| {
            DocumentId::parse(text).map_err(|error| format!("document {text:?}: {error}"))
        };
        let mut documents = Vec::with_capacity(contents.documents.len());
        for entry in contents.documents {
            documents.push((document(&entry.document)?, entry.envelope));
        }
        let mut holds = Vec::with_capacity(contents.holds.len());
        for entry in contents.holds {
            if entry.heads.len() > HEADS_PER_DOCUMENT_MAX {
                return Err(format!(
                    "{} heads of {}; at most {HEADS_PER_DOCUMENT_MAX}",
                    entry.heads.len(),
                    entry.document
                ));
            }
            let heads = entry.heads.into_iter().map(automerge::ChangeHash).collect();
            holds.push((document(&entry.document)?, heads));
        }
        Ok(CheckedBundle {
            from: station(&contents.from, "sender")?,
            to: station(&contents.to, "recipient")?,
            created_ms: contents.created_ms,
            documents,
            holds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents() -> BundleContents {
        BundleContents {
            version: BUNDLE_FORMAT_VERSION,
            from: "xh/t01/v01".into(),
            to: "xh/t01".into(),
            created_ms: 1_764_000_000_000,
            documents: vec![BundledDocument {
                document: "roster:xh/t01/v01".into(),
                envelope: vec![1, 2, 3],
            }],
            holds: vec![HeldHeads {
                document: "roster:xh/t01/v01".into(),
                heads: vec![[7; 32]],
            }],
        }
    }

    #[test]
    fn contents_round_trip_with_stations_and_documents_parsed() {
        let checked = BundleContents::decode(&contents().encode()).expect("decodes");
        assert_eq!(checked.from.to_string(), "xh/t01/v01");
        assert_eq!(checked.to.to_string(), "xh/t01");
        assert_eq!(checked.documents[0].0.to_string(), "roster:xh/t01/v01");
        assert_eq!(checked.documents[0].1, vec![1, 2, 3]);
        assert_eq!(checked.holds[0].1, vec![automerge::ChangeHash([7; 32])]);
    }

    #[test]
    fn a_bundle_of_another_format_or_with_trailing_bytes_is_refused_naming_why() {
        let mut other = contents();
        other.version = 2;
        let error = BundleContents::decode(&other.encode()).unwrap_err();
        assert!(error.contains("bundle format 2"), "{error}");
        let mut trailing = contents().encode();
        trailing.push(0);
        let error = BundleContents::decode(&trailing).unwrap_err();
        assert!(error.contains("1 bytes after"), "{error}");
    }

    #[test]
    fn too_many_heads_or_a_bad_document_id_is_refused_naming_it() {
        let mut wide = contents();
        wide.holds[0].heads = vec![[1; 32]; HEADS_PER_DOCUMENT_MAX + 1];
        let error = BundleContents::decode(&wide.encode()).unwrap_err();
        assert!(error.contains("heads of roster:xh/t01/v01"), "{error}");
        let mut bad = contents();
        bad.documents[0].document = "nonsense".into();
        let error = BundleContents::decode(&bad.encode()).unwrap_err();
        assert!(error.contains("\"nonsense\""), "{error}");
    }

    #[test]
    fn truncated_contents_are_an_error_never_a_panic() {
        let bytes = contents().encode();
        for cut in 0..bytes.len() {
            assert!(
                BundleContents::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
