//! A keyed-hash stand-in for node certificates, for the simulator and
//! tests: deterministic, cheap, and — unlike the node's X.509 and ECDSA —
//! **not a public-key scheme**: the verifier holds the root secret every
//! station's key derives from. It keeps the property the protocol relies
//! on inside one simulated county: a node that holds only its own key
//! cannot sign as another station. Never used by a node.

use super::{ChangeSigner, ChangeVerifier, VerifiedWriter};
use crate::identity::station::{StationId, Tier};
use automerge::ChangeHash;
use sha2::{Digest, Sha256};

const CREDENTIAL_LABEL: &[u8] = b"civsync keyed-hash credential v1\0";

fn station_key(root_secret: &[u8], station: &StationId) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"civsync keyed-hash station key\0");
    hasher.update(root_secret);
    hasher.update(station.to_string().as_bytes());
    hasher.finalize().into()
}

fn keyed(key: &[u8; 32], change: &ChangeHash) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(key);
    hasher.update(change.0);
    hasher.finalize().to_vec()
}

/// One station's signer: its key derived from the root secret.
pub struct KeyedHashSigner {
    credential: Vec<u8>,
    key: [u8; 32],
}

impl KeyedHashSigner {
    pub fn new(root_secret: &[u8], station: &StationId, tier: Tier) -> KeyedHashSigner {
        let mut credential = CREDENTIAL_LABEL.to_vec();
        credential.extend_from_slice(tier.as_str().as_bytes());
        credential.push(0);
        credential.extend_from_slice(station.to_string().as_bytes());
        KeyedHashSigner {
            credential,
            key: station_key(root_secret, station),
        }
    }
}

impl ChangeSigner for KeyedHashSigner {
    fn credential(&self) -> &[u8] {
        &self.credential
    }

    fn sign(&self, change: &ChangeHash) -> Vec<u8> {
        keyed(&self.key, change)
    }
}

/// Checks every station's signatures (it holds the root secret).
pub struct KeyedHashVerifier {
    root_secret: Vec<u8>,
}

impl KeyedHashVerifier {
    pub fn new(root_secret: &[u8]) -> KeyedHashVerifier {
        KeyedHashVerifier {
            root_secret: root_secret.to_vec(),
        }
    }

    fn parse(credential: &[u8]) -> Result<VerifiedWriter, String> {
        let rest = credential
            .strip_prefix(CREDENTIAL_LABEL)
            .ok_or("not a keyed-hash credential")?;
        let text = std::str::from_utf8(rest).map_err(|_| "credential is not text")?;
        let (tier, station) = text.split_once('\0').ok_or("credential has no station")?;
        Ok(VerifiedWriter {
            station: StationId::parse(station).map_err(|error| error.to_string())?,
            tier: Tier::parse(tier).ok_or("credential has no known tier")?,
        })
    }
}

impl ChangeVerifier for KeyedHashVerifier {
    fn check_credential(&self, credential: &[u8], _now_ms: i64) -> Result<VerifiedWriter, String> {
        KeyedHashVerifier::parse(credential)
    }

    fn signature_matches(&self, credential: &[u8], change: &ChangeHash, signature: &[u8]) -> bool {
        match KeyedHashVerifier::parse(credential) {
            Ok(writer) => {
                keyed(&station_key(&self.root_secret, &writer.station), change) == signature
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_under_its_own_stations_credential() {
        let root = b"county secret";
        let (village, township) = (
            StationId::parse("xh/t1/v1").unwrap(),
            StationId::parse("xh/t1").unwrap(),
        );
        let signer = KeyedHashSigner::new(root, &village, Tier::Village);
        let forger = KeyedHashSigner::new(root, &township, Tier::Township);
        let verifier = KeyedHashVerifier::new(root);
        let change = ChangeHash([5; 32]);
        let signature = signer.sign(&change);
        assert_eq!(
            verifier.check_credential(signer.credential(), 0),
            Ok(VerifiedWriter {
                station: village,
                tier: Tier::Village
            })
        );
        assert!(verifier.signature_matches(signer.credential(), &change, &signature));
        // The township signs with its own key under the village's credential.
        assert!(!verifier.signature_matches(signer.credential(), &change, &forger.sign(&change)));
        assert!(!verifier.signature_matches(signer.credential(), &ChangeHash([6; 32]), &signature));
        assert!(verifier.check_credential(b"anything else", 0).is_err());
    }
}
