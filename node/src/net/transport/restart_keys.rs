//! The keys that let a restarted node recognise its predecessor's QUIC
//! connections: derived from the node's private key, never stored.

use crate::net::pki::NodeIdentity;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Key of the connection ids this node issues, which it checks before
/// answering a packet of an unknown connection with a stateless reset: the
/// same after a restart, so the predecessor's ids are recognised.
pub(super) fn connection_id_key(identity: &NodeIdentity) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(b"civsync/quic-connection-id-key/v1");
    hasher.update(identity.key.secret_der());
    let digest = hasher.finalize();
    let mut key = [0_u8; 8];
    key.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(key)
}

/// HMAC-SHA256 key of this node's stateless reset tokens: derived from its
/// private key, so a restarted node resets its predecessor's connections.
pub(super) struct StatelessResetKey {
    key: [u8; 32],
}

impl StatelessResetKey {
    /// Domain-separated from every other use of the private key.
    const LABEL: &'static [u8] = b"civsync/quic-stateless-reset-key/v1";

    pub(super) fn of(identity: &NodeIdentity) -> StatelessResetKey {
        let mut hasher = Sha256::new();
        hasher.update(Self::LABEL);
        hasher.update(identity.key.secret_der());
        StatelessResetKey {
            key: hasher.finalize().into(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length")
    }
}

impl quinn::crypto::HmacKey for StatelessResetKey {
    fn sign(&self, data: &[u8], signature_out: &mut [u8]) {
        let mut mac = self.mac();
        mac.update(data);
        signature_out.copy_from_slice(&mac.finalize().into_bytes());
    }

    fn signature_len(&self) -> usize {
        32
    }

    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), quinn::crypto::CryptoError> {
        let mut mac = self.mac();
        mac.update(data);
        mac.verify_slice(signature)
            .map_err(|_| quinn::crypto::CryptoError)
    }
}
