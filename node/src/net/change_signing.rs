//! The node's side of signed changes: its changes signed with its
//! certificate key (ECDSA P-256, fixed 64-byte signatures), and its peers'
//! changes checked under the writer's certificate — issued by this
//! county's CA, not revoked by the list in force. The certificate is the
//! credential that travels with the signatures (`sync::signing`).

use crate::net::pki::{self, NodeIdentity};
use crate::net::revocation::RevocationSet;
use automerge::ChangeHash;
use civsync_protocol::sync::signing::{ChangeSigner, ChangeVerifier, VerifiedWriter};
use civsync_protocol::StationId;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What a change signature covers besides the change hash, so a change
/// signature is never mistaken for any other signature of the node key.
const CHANGE_SIGNATURE_LABEL: &[u8] = b"civsync change signature v1\0";
/// Most writers' certificates kept checked (a county has ~700 offices).
const CREDENTIALS_CACHED_MAX: usize = 4096;

fn signed_bytes(change: &ChangeHash) -> Vec<u8> {
    let mut message = CHANGE_SIGNATURE_LABEL.to_vec();
    message.extend_from_slice(&change.0);
    message
}

/// Signs this node's changes with its certificate key.
pub struct NodeChangeSigner {
    credential: Vec<u8>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl NodeChangeSigner {
    pub fn new(identity: &NodeIdentity) -> Result<NodeChangeSigner, String> {
        let PrivateKeyDer::Pkcs8(key) = &identity.key else {
            return Err("the node key is not PKCS#8".to_string());
        };
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            key.secret_pkcs8_der(),
            &rng,
        )
        .map_err(|error| format!("the node key is not a P-256 key: {error}"))?;
        let leaf = identity
            .cert_chain
            .first()
            .ok_or("the node certificate chain is empty")?;
        Ok(NodeChangeSigner {
            credential: leaf.as_ref().to_vec(),
            key,
            rng,
        })
    }
}

impl ChangeSigner for NodeChangeSigner {
    fn credential(&self) -> &[u8] {
        &self.credential
    }

    fn sign(&self, change: &ChangeHash) -> Vec<u8> {
        // ring fails only when the system's randomness does; a node that
        // cannot draw randomness cannot do TLS either.
        self.key
            .sign(&self.rng, &signed_bytes(change))
            .map(|signature| signature.as_ref().to_vec())
            .expect("signing with the node key")
    }
}

/// Checks writers' certificates and signatures against this county.
pub struct NodeChangeVerifier {
    ca: CertificateDer<'static>,
    county: StationId,
    revocations: RevocationSet,
    /// Certificates already checked against the CA and the county, by
    /// their bytes: what they say and their public key. Revocation is asked
    /// again every time. That check is the same at every later moment: a
    /// signed change's certificate is judged within its own validity, and
    /// the CA, a trust anchor, has no validity checked. A cold county asked
    /// it for every one of 2,600 documents, three parses and a signature
    /// check each.
    checked: Mutex<BTreeMap<Vec<u8>, CheckedCredential>>,
}

struct CheckedCredential {
    identity: pki::CertificateIdentity,
    public_key: Vec<u8>,
}

impl NodeChangeVerifier {
    pub fn new(
        ca: CertificateDer<'static>,
        county: StationId,
        revocations: RevocationSet,
    ) -> NodeChangeVerifier {
        NodeChangeVerifier {
            ca,
            county,
            revocations,
            checked: Mutex::new(BTreeMap::new()),
        }
    }

    fn public_key(&self, credential: &[u8]) -> Option<Vec<u8>> {
        if let Some(checked) = self.checked.lock().ok()?.get(credential) {
            return Some(checked.public_key.clone());
        }
        let (_, parsed) = x509_parser::parse_x509_certificate(credential).ok()?;
        Some(parsed.public_key().subject_public_key.data.to_vec())
    }

    /// What a certificate checked before says, if it is cached.
    fn checked_before(&self, credential: &[u8]) -> Option<pki::CertificateIdentity> {
        let checked = self.checked.lock().ok()?;
        checked.get(credential).map(|c| c.identity.clone())
    }

    fn remember(&self, credential: &[u8], identity: &pki::CertificateIdentity) {
        let Ok(mut checked) = self.checked.lock() else {
            return;
        };
        if checked.len() >= CREDENTIALS_CACHED_MAX {
            return;
        }
        if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(credential) {
            checked.insert(
                credential.to_vec(),
                CheckedCredential {
                    identity: identity.clone(),
                    public_key: parsed.public_key().subject_public_key.data.to_vec(),
                },
            );
        }
    }
}

fn revoked_reason(station: &StationId, reason: &str) -> String {
    format!("the certificate of station {station} is revoked: {reason}")
}

/// When a node certificate is judged valid.
#[derive(Debug, Clone, Copy)]
pub enum CertificateTime {
    /// At this Unix time (a bundle being opened now).
    At(i64),
    /// At this Unix time, brought inside the certificate's own validity
    /// (a signed change, which stays signed after its certificate ends).
    WithinItsValidity(i64),
}

/// A node certificate checked against this county: issued by its CA for a
/// station inside it, valid at `time`, not revoked by the list in force.
/// The one check behind change signatures and bundles.
pub fn check_node_certificate(
    ca: &CertificateDer<'static>,
    county: &StationId,
    revocations: &RevocationSet,
    certificate: &[u8],
    time: CertificateTime,
) -> Result<pki::CertificateIdentity, String> {
    let identity = pki::read_certificate_identity(certificate)
        .map_err(|error| format!("not a node certificate: {error}"))?;
    if !county.is_ancestor_or_self_of(&identity.station) {
        return Err(format!(
            "a certificate of station {}, outside county {county}",
            identity.station
        ));
    }
    if let Some(revoked) = revocations.revoking_read(&identity, certificate) {
        return Err(revoked_reason(&identity.station, &revoked.reason));
    }
    let at_unix_s = match time {
        CertificateTime::At(at) => at,
        CertificateTime::WithinItsValidity(at) => {
            at.clamp(identity.not_before_unix_s, identity.not_after_unix_s)
        }
    };
    let chain = [CertificateDer::from(certificate.to_vec())];
    pki::verify_issued_by(&chain, ca, at_unix_s).map_err(|reason| {
        format!(
            "the certificate of station {} is not signed by this county's CA ({county}) or not valid: {reason}",
            identity.station
        )
    })?;
    Ok(identity)
}

impl ChangeVerifier for NodeChangeVerifier {
    fn check_credential(&self, credential: &[u8], now_ms: i64) -> Result<VerifiedWriter, String> {
        let identity = match self.checked_before(credential) {
            Some(identity) => {
                if let Some(revoked) = self.revocations.revoking_read(&identity, credential) {
                    return Err(revoked_reason(&identity.station, &revoked.reason));
                }
                identity
            }
            None => {
                // Judged within the certificate's own validity: a change
                // signed while it was valid stays signed after it ends (its
                // history must keep travelling); what ended it for good is
                // revocation.
                let identity = check_node_certificate(
                    &self.ca,
                    &self.county,
                    &self.revocations,
                    credential,
                    CertificateTime::WithinItsValidity(now_ms.div_euclid(1000)),
                )?;
                self.remember(credential, &identity);
                identity
            }
        };
        Ok(VerifiedWriter {
            station: identity.station,
            tier: identity.tier,
        })
    }

    fn signature_matches(&self, credential: &[u8], change: &ChangeHash, signature: &[u8]) -> bool {
        let Some(key) = self.public_key(credential) else {
            return false;
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key)
            .verify(&signed_bytes(change), signature)
            .is_ok()
    }
}

/// The signing of a node with a certificate in `pki_dir`: its signer, and a
/// verifier under its county CA and the revocation list in force. `None`
/// without a certificate (a node that does not sync signs nothing).
pub fn node_signing(
    pki_dir: &std::path::Path,
    revocations: &RevocationSet,
) -> Result<Option<civsync_protocol::replica::Signing>, String> {
    if !pki_dir.join("node.crt").exists() {
        return Ok(None);
    }
    let identity = NodeIdentity::load(pki_dir).map_err(|error| error.to_string())?;
    let signer = NodeChangeSigner::new(&identity)?;
    let verifier = NodeChangeVerifier::new(
        identity.ca_cert.clone(),
        identity.county.clone(),
        revocations.clone(),
    );
    Ok(Some(civsync_protocol::replica::Signing {
        signer: Some(std::sync::Arc::new(signer)),
        verifier: std::sync::Arc::new(verifier),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use civsync_protocol::Tier;

    /// A certificate of `station` from the CA in `ca_dir`, kept in `dir`.
    fn issued(
        dir: &std::path::Path,
        ca_dir: &std::path::Path,
        station: &str,
        tier: Tier,
    ) -> NodeIdentity {
        let at = dir.join(station.replace('/', "-"));
        pki::issue_node_certificate(ca_dir, &StationId::parse(station).unwrap(), tier, &at, 825)
            .unwrap();
        NodeIdentity::load(&at).unwrap()
    }

    #[test]
    fn a_change_signed_by_a_node_verifies_under_its_certificate_only() {
        let dir = tempfile::tempdir().unwrap();
        let county = StationId::parse("xh").unwrap();
        let ca_dir = dir.path().join("ca");
        pki::init_county_ca(&ca_dir, &county, 3650).unwrap();
        let issued = |station: &str, tier: Tier| issued(dir.path(), &ca_dir, station, tier);
        let village = issued("xh/t1/v1", Tier::Village);
        let township = issued("xh/t1", Tier::Township);
        let signer = NodeChangeSigner::new(&village).unwrap();
        let verifier = NodeChangeVerifier::new(
            village.ca_cert.clone(),
            village.county.clone(),
            RevocationSet::default(),
        );
        let change = ChangeHash([7; 32]);
        let signature = signer.sign(&change);
        assert_eq!(signature.len(), 64);
        let writer = verifier
            .check_credential(signer.credential(), crate::clock::now_ms() as i64)
            .unwrap();
        assert_eq!(writer.station.to_string(), "xh/t1/v1");
        assert!(verifier.signature_matches(signer.credential(), &change, &signature));
        assert!(!verifier.signature_matches(signer.credential(), &ChangeHash([8; 32]), &signature));
        // The township's key does not sign for the village's certificate.
        let forged = NodeChangeSigner::new(&township).unwrap().sign(&change);
        assert!(!verifier.signature_matches(signer.credential(), &change, &forged));
        // A certificate of another county's CA is refused, naming why.
        let other_ca = dir.path().join("other-ca");
        pki::init_county_ca(&other_ca, &county, 3650).unwrap();
        let at = dir.path().join("other");
        pki::issue_node_certificate(
            &other_ca,
            &StationId::parse("xh/t1/v1").unwrap(),
            Tier::Village,
            &at,
            825,
        )
        .unwrap();
        let foreign = NodeChangeSigner::new(&NodeIdentity::load(&at).unwrap()).unwrap();
        let refused = verifier
            .check_credential(foreign.credential(), crate::clock::now_ms() as i64)
            .unwrap_err();
        assert!(
            refused.contains("not signed by this county's CA"),
            "{refused}"
        );
    }

    #[test]
    fn a_certificate_checked_before_is_refused_once_the_county_revokes_it() {
        use crate::net::revocation::{revoke_at_county, verify_revocation_list};
        let dir = tempfile::tempdir().unwrap();
        let county = StationId::parse("xh").unwrap();
        let ca_dir = dir.path().join("ca");
        pki::init_county_ca(&ca_dir, &county, 3650).unwrap();
        let village = issued(dir.path(), &ca_dir, "xh/t1/v1", Tier::Village);
        let signer = NodeChangeSigner::new(&village).unwrap();
        let revocations = RevocationSet::default();
        let verifier =
            NodeChangeVerifier::new(village.ca_cert.clone(), county.clone(), revocations.clone());
        let now_ms = crate::clock::now_ms() as i64;
        // Checked twice: the second answer comes from what the first kept.
        for _ in 0..2 {
            let writer = verifier
                .check_credential(signer.credential(), now_ms)
                .unwrap();
            assert_eq!(writer.station.to_string(), "xh/t1/v1");
        }
        revoke_at_county(
            &ca_dir,
            &StationId::parse("xh/t1/v1").unwrap(),
            None,
            "the office PC was stolen",
            pki::now_unix_s(),
        )
        .unwrap();
        let signed =
            std::fs::read_to_string(ca_dir.join(crate::net::revocation::REVOCATION_LIST_FILE))
                .unwrap();
        revocations
            .accept(verify_revocation_list(&signed, &village.ca_cert).unwrap())
            .unwrap();
        let refused = verifier
            .check_credential(signer.credential(), now_ms)
            .unwrap_err();
        assert!(
            refused.contains("revoked: the office PC was stolen"),
            "{refused}"
        );
    }
}
