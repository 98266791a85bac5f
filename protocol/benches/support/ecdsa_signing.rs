//! Signing for the in-process benchmarks at the node's real cost: ECDSA
//! P-256 with fixed 64-byte signatures (ring), as the node signs changes;
//! a credential is the station, its tier and public key, signed by a
//! bench CA, so checking one costs a signature verification, as checking a
//! certificate's chain does. (The node parses X.509 besides; its
//! `change_signing` bench measures that: 57 µs against ~80 µs here.)

use automerge::ChangeHash;
use civsync_protocol::replica::Signing;
use civsync_protocol::sync::signing::{ChangeSigner, ChangeVerifier, VerifiedWriter};
use civsync_protocol::{StationId, Tier};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use std::sync::{Arc, OnceLock};

const PUBLIC_KEY_BYTES: usize = 65;
const SIGNATURE_BYTES: usize = 64;

fn key_pair(rng: &SystemRandom) -> EcdsaKeyPair {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng).unwrap()
}

/// The bench CA's key, made once per process.
fn ca() -> &'static EcdsaKeyPair {
    static CA: OnceLock<EcdsaKeyPair> = OnceLock::new();
    CA.get_or_init(|| key_pair(&SystemRandom::new()))
}

struct Signer {
    credential: Vec<u8>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl ChangeSigner for Signer {
    fn credential(&self) -> &[u8] {
        &self.credential
    }

    fn sign(&self, change: &ChangeHash) -> Vec<u8> {
        self.key
            .sign(&self.rng, &change.0)
            .unwrap()
            .as_ref()
            .to_vec()
    }
}

/// Credential: tier (1) ‖ public key (65) ‖ station ‖ CA signature (64).
struct Verifier;

fn parts(credential: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let body_len = credential.len().checked_sub(SIGNATURE_BYTES)?;
    let (body, ca_signature) = credential.split_at(body_len);
    let public_key = body.get(1..1 + PUBLIC_KEY_BYTES)?;
    Some((body, public_key, ca_signature))
}

impl ChangeVerifier for Verifier {
    fn check_credential(&self, credential: &[u8], _now_ms: i64) -> Result<VerifiedWriter, String> {
        let (body, _, ca_signature) = parts(credential).ok_or("short credential")?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, ca().public_key().as_ref())
            .verify(body, ca_signature)
            .map_err(|_| "not signed by the bench CA".to_string())?;
        let tier = Tier::ALL
            .get(usize::from(body[0]))
            .copied()
            .ok_or("bad tier")?;
        let station =
            std::str::from_utf8(&body[1 + PUBLIC_KEY_BYTES..]).map_err(|_| "bad station")?;
        Ok(VerifiedWriter {
            station: StationId::parse(station).map_err(|error| error.to_string())?,
            tier,
        })
    }

    fn signature_matches(&self, credential: &[u8], change: &ChangeHash, signature: &[u8]) -> bool {
        parts(credential).is_some_and(|(_, public_key, _)| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
                .verify(&change.0, signature)
                .is_ok()
        })
    }
}

/// A station's signing: its own key, certified by the bench CA.
pub fn signing(station: &StationId, tier: Tier) -> Signing {
    let rng = SystemRandom::new();
    let key = key_pair(&rng);
    let mut body = vec![Tier::ALL.iter().position(|t| *t == tier).unwrap() as u8];
    body.extend_from_slice(key.public_key().as_ref());
    body.extend_from_slice(station.to_string().as_bytes());
    let ca_signature = ca().sign(&rng, &body).unwrap();
    body.extend_from_slice(ca_signature.as_ref());
    Signing {
        signer: Some(Arc::new(Signer {
            credential: body,
            key,
            rng,
        })),
        verifier: Arc::new(Verifier),
    }
}
