//! Signed changes: every change carries its writer's signature, so a
//! receiver trusts the writer, not the peer that carried it.
//!
//! A node signs the hash of each change it makes with its node key; the
//! signature lives beside the change in a side table keyed by change hash
//! (the hash covers the change's message field, so it cannot live inside),
//! and travels in the same sync message, in a [`SignedSyncMessage`]
//! envelope around Automerge's own message (wire version 4 on). The writer's
//! credential — its certificate, issued by the county CA, naming its
//! station and tier — travels once per link and is kept by every receiver,
//! so it can be handed on with the signatures it vouches for.
//!
//! What a signature and a credential are is the host's business: the node
//! uses X.509 certificates and ECDSA P-256 (`ChangeSigner`,
//! `ChangeVerifier`), the simulator a keyed hash. Here live the envelope,
//! its limits, and the traits. A signature binds a change to a station
//! only if the credential's station is the station in the change's actor
//! id; the authority rules then judge that station (`authority.rs`).

use crate::identity::station::{StationId, Tier};
use automerge::ChangeHash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod keyed_hash;

/// Most bytes of one signature (ECDSA P-256 fixed: 64).
pub const SIGNATURE_BYTES_MAX: usize = 128;
/// Most bytes of one credential (a node certificate is ~500 bytes of DER).
pub const CREDENTIAL_BYTES_MAX: usize = 4096;
/// Most credentials named in one message: one per writer of the document's
/// changes sent, a handful in practice.
pub const CREDENTIALS_PER_MESSAGE_MAX: usize = 256;

/// A credential's fingerprint: SHA-256 of its bytes.
pub type CredentialId = [u8; 32];

pub fn credential_id(credential: &[u8]) -> CredentialId {
    Sha256::digest(credential).into()
}

/// What a checked credential certifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWriter {
    pub station: StationId,
    pub tier: Tier,
}

/// Signs this node's changes. The node's key never leaves it.
pub trait ChangeSigner: Send + Sync {
    /// The credential that proves this signer's station (sent to peers).
    fn credential(&self) -> &[u8];
    /// The signature of one change hash.
    fn sign(&self, change: &ChangeHash) -> Vec<u8>;
}

/// Checks credentials and signatures received from peers.
pub trait ChangeVerifier: Send + Sync {
    /// Is this credential issued by our county CA, unrevoked, and valid at
    /// `now_ms` (Unix ms, passed in)? Whose is it? The reason when not.
    fn check_credential(&self, credential: &[u8], now_ms: i64) -> Result<VerifiedWriter, String>;
    /// Does `signature` sign `change` under the credential's key?
    fn signature_matches(&self, credential: &[u8], change: &ChangeHash, signature: &[u8]) -> bool;
}

/// How a session's sync payloads are framed, from the agreed wire version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// Automerge's sync message as it is (wire version 3: a node of an
    /// older release, which neither sends nor reads signatures).
    Plain,
    /// A [`SignedSyncMessage`] (wire version 4 on).
    Signed,
}

/// First wire version whose sync payloads are signed envelopes.
pub const SIGNED_FROM_VERSION: u16 = 4;

impl PayloadFormat {
    pub fn for_version(version: u16) -> PayloadFormat {
        if version >= SIGNED_FROM_VERSION {
            PayloadFormat::Signed
        } else {
            PayloadFormat::Plain
        }
    }
}

/// A credential in a message: whole the first time on a link, then by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialEntry {
    Whole(Vec<u8>),
    Known(CredentialId),
}

/// One change's signature, naming its credential by index in the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureEntry {
    pub change: [u8; 32],
    pub credential: u16,
    pub signature: Vec<u8>,
}

/// Automerge's sync message with the signatures of the changes it carries.
/// A change without an entry is unsigned (written before signing began).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSyncMessage {
    pub automerge: Vec<u8>,
    pub credentials: Vec<CredentialEntry>,
    pub signatures: Vec<SignatureEntry>,
}

impl SignedSyncMessage {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a signed sync message always encodes")
    }

    /// Decode and check every bound; the caller bounds the whole message's
    /// bytes first, which bounds what decoding allocates. `signatures_max`
    /// is the changes a message may carry.
    pub fn decode(bytes: &[u8], signatures_max: usize) -> Result<SignedSyncMessage, String> {
        let (message, rest): (SignedSyncMessage, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|error| format!("signed sync message does not decode: {error}"))?;
        if !rest.is_empty() {
            return Err(format!(
                "{} bytes after the signed sync message",
                rest.len()
            ));
        }
        if message.credentials.len() > CREDENTIALS_PER_MESSAGE_MAX {
            return Err(format!(
                "{} credentials; at most {CREDENTIALS_PER_MESSAGE_MAX}",
                message.credentials.len()
            ));
        }
        if message.signatures.len() > signatures_max {
            return Err(format!(
                "{} signatures; at most {signatures_max}",
                message.signatures.len()
            ));
        }
        for entry in &message.credentials {
            if let CredentialEntry::Whole(bytes) = entry {
                if bytes.is_empty() || bytes.len() > CREDENTIAL_BYTES_MAX {
                    return Err(format!(
                        "a credential of {} bytes; 1 to {CREDENTIAL_BYTES_MAX}",
                        bytes.len()
                    ));
                }
            }
        }
        for entry in &message.signatures {
            if entry.signature.is_empty() || entry.signature.len() > SIGNATURE_BYTES_MAX {
                return Err(format!(
                    "a signature of {} bytes; 1 to {SIGNATURE_BYTES_MAX}",
                    entry.signature.len()
                ));
            }
            if usize::from(entry.credential) >= message.credentials.len() {
                return Err(format!(
                    "a signature names credential {} of {}",
                    entry.credential,
                    message.credentials.len()
                ));
            }
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> SignedSyncMessage {
        SignedSyncMessage {
            automerge: vec![0x42, 1, 2, 3],
            credentials: vec![
                CredentialEntry::Whole(b"certificate of xh/t1".to_vec()),
                CredentialEntry::Known([7; 32]),
            ],
            signatures: vec![
                SignatureEntry {
                    change: [1; 32],
                    credential: 0,
                    signature: vec![9; 64],
                },
                SignatureEntry {
                    change: [2; 32],
                    credential: 1,
                    signature: vec![8; 64],
                },
            ],
        }
    }

    #[test]
    fn an_envelope_round_trips() {
        let message = sample();
        assert_eq!(
            SignedSyncMessage::decode(&message.encode(), 10),
            Ok(message)
        );
    }

    #[test]
    fn every_bound_is_checked_and_named() {
        let mut message = sample();
        message.signatures[1].credential = 2;
        let refused = SignedSyncMessage::decode(&message.encode(), 10).unwrap_err();
        assert!(refused.contains("names credential 2 of 2"), "{refused}");

        let mut message = sample();
        message.signatures[0].signature = vec![0; SIGNATURE_BYTES_MAX + 1];
        let refused = SignedSyncMessage::decode(&message.encode(), 10).unwrap_err();
        assert!(refused.contains("a signature of 129 bytes"), "{refused}");

        let refused = SignedSyncMessage::decode(&sample().encode(), 1).unwrap_err();
        assert!(refused.contains("2 signatures; at most 1"), "{refused}");

        let mut message = sample();
        message.credentials[0] = CredentialEntry::Whole(vec![0; CREDENTIAL_BYTES_MAX + 1]);
        let refused = SignedSyncMessage::decode(&message.encode(), 10).unwrap_err();
        assert!(refused.contains("a credential of 4097 bytes"), "{refused}");

        let mut bytes = sample().encode();
        bytes.push(0);
        let refused = SignedSyncMessage::decode(&bytes, 10).unwrap_err();
        assert!(refused.contains("1 bytes after"), "{refused}");
    }

    #[test]
    fn the_format_follows_the_agreed_version() {
        assert_eq!(PayloadFormat::for_version(3), PayloadFormat::Plain);
        assert_eq!(PayloadFormat::for_version(4), PayloadFormat::Signed);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SignedSyncMessage::decode(&bytes, 100);
        }
    }
}
