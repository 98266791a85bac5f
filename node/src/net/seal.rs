//! Signing with the node's certificate key, and checking a signature and
//! its signer's certificate against the county CA: what makes a document
//! this node issues (a volunteer's service certificate) verifiable by
//! anyone holding only the county CA certificate.
//!
//! The signer's certificate travels with the signature as PEM, so the
//! verifier needs no list of node certificates: the county CA is the only
//! trust anchor, as for mutual TLS (`transport`), and the chain is checked
//! with the same code (`pki::verify_issued_by`).

use crate::net::pki::{self, CertificateIdentity, NodeIdentity};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The one signature algorithm we issue and accept: node keys are P-256.
pub const SIGNATURE_ALGORITHM: &str = "ECDSA-P256-SHA256";
/// Most bytes of a signer's certificate PEM we read (one leaf is ~1 KB).
pub const SIGNER_PEM_BYTES_MAX: usize = 16 * 1024;

/// Why this node cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the node key is not a PKCS#8 P-256 key: {reason}")]
    BadKey { reason: String },
    #[error("signing failed")]
    Failed,
}

/// Why a signer's certificate is not trusted here. Each says what a clerk
/// checking a document needs to know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerRefusal {
    #[error("issuer certificate is not a PEM certificate: {reason}")]
    Unreadable { reason: String },
    #[error("issuer certificate is of station {station}, outside county {county}")]
    OtherCounty {
        station: civsync_protocol::StationId,
        county: civsync_protocol::StationId,
    },
    #[error("issuer certificate not signed by this county's CA ({county}): {reason}")]
    NotSignedByCountyCa {
        county: civsync_protocol::StationId,
        reason: String,
    },
    #[error("issuer certificate expired on {not_after} (Unix time {not_after_unix_s})")]
    Expired {
        not_after: String,
        not_after_unix_s: i64,
    },
    #[error("issuer certificate is not valid before {not_before} (Unix time {not_before_unix_s})")]
    NotYetValid {
        not_before: String,
        not_before_unix_s: i64,
    },
}

/// Sign `message` with the node's key; the signature is ASN.1 DER.
pub fn sign(identity: &NodeIdentity, message: &[u8]) -> Result<Vec<u8>, SignError> {
    let PrivateKeyDer::Pkcs8(key) = &identity.key else {
        return Err(SignError::BadKey {
            reason: "not PKCS#8".to_string(),
        });
    };
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        key.secret_pkcs8_der(),
        &rng,
    )
    .map_err(|error| SignError::BadKey {
        reason: error.to_string(),
    })?;
    let signature = pair.sign(&rng, message).map_err(|_| SignError::Failed)?;
    Ok(signature.as_ref().to_vec())
}

/// The node's certificate chain as PEM (leaf first), to travel with a
/// signature.
pub fn signer_pem(identity: &NodeIdentity) -> String {
    identity
        .cert_chain
        .iter()
        .map(|der| pem_of(der.as_ref()))
        .collect()
}

/// Check the signer's certificate (`pem`, leaf first) against the county CA
/// `ca` of `county` at `now_unix_s`; the identity it certifies.
pub fn check_signer(
    pem: &str,
    ca: &CertificateDer<'static>,
    county: &civsync_protocol::StationId,
    now_unix_s: i64,
) -> Result<(CertificateDer<'static>, CertificateIdentity), SignerRefusal> {
    let unreadable = |reason: String| SignerRefusal::Unreadable { reason };
    if pem.len() > SIGNER_PEM_BYTES_MAX {
        return Err(unreadable(format!(
            "{} bytes; at most {SIGNER_PEM_BYTES_MAX}",
            pem.len()
        )));
    }
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .take(pki::CERTS_PER_FILE_MAX + 1)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(error.to_string()))?;
    if chain.is_empty() || chain.len() > pki::CERTS_PER_FILE_MAX {
        return Err(unreadable(format!(
            "holds {} certificates; expected 1 to {}",
            chain.len(),
            pki::CERTS_PER_FILE_MAX
        )));
    }
    let identity =
        pki::read_certificate_identity(&chain[0]).map_err(|error| unreadable(error.to_string()))?;
    if !county.is_ancestor_or_self_of(&identity.station) {
        return Err(SignerRefusal::OtherCounty {
            station: identity.station,
            county: county.clone(),
        });
    }
    // The chain first, judged inside the certificate's own validity: a
    // forgery is named as one even when it has also expired.
    let within = now_unix_s.clamp(identity.not_before_unix_s, identity.not_after_unix_s);
    pki::verify_issued_by(&chain, ca, within).map_err(|reason| {
        SignerRefusal::NotSignedByCountyCa {
            county: county.clone(),
            reason,
        }
    })?;
    if now_unix_s > identity.not_after_unix_s {
        return Err(SignerRefusal::Expired {
            not_after: unix_date(identity.not_after_unix_s),
            not_after_unix_s: identity.not_after_unix_s,
        });
    }
    if now_unix_s < identity.not_before_unix_s {
        return Err(SignerRefusal::NotYetValid {
            not_before: unix_date(identity.not_before_unix_s),
            not_before_unix_s: identity.not_before_unix_s,
        });
    }
    let leaf = chain.into_iter().next().expect("checked non-empty");
    Ok((leaf, identity))
}

/// Does `signature` (ASN.1 DER) sign `message` under the key of `leaf`?
pub fn signature_matches(leaf: &CertificateDer<'_>, message: &[u8], signature: &[u8]) -> bool {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(leaf) else {
        return false;
    };
    let key = &parsed.public_key().subject_public_key.data;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.as_ref())
        .verify(message, signature)
        .is_ok()
}

fn unix_date(unix_s: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| unix_s.to_string())
}

/// PEM of one DER certificate (RFC 7468: base64, 64 characters a line).
fn pem_of(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                encoded.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                encoded.push('=');
            }
        }
    }
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
