//! A bundle file (`sync::bundle`) as it goes on a USB stick: sealed to the
//! recipient's certificate key and signed by the sender's, so a lost stick
//! gives nothing away and a changed byte is noticed before anything is
//! decoded.
//!
//! ```text
//! magic "civsync-bundle\n" (15) ‖ format (1)
//! ‖ header length (u32 LE) ‖ header (postcard: from, to, created_ms,
//!   sender certificate DER, HPKE encapsulated key)
//! ‖ ciphertext length (u64 LE) ‖ ciphertext (HPKE base mode,
//!   DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305; the
//!   associated data is everything before it)
//! ‖ signature length (u16 LE) ‖ ECDSA P-256 (fixed) signature by the
//!   sender's node key over a label and everything before it
//! ```
//!
//! The node key both signs (ECDSA) and opens bundles (ECDH inside HPKE):
//! one key per office, certified once by the county, so any office can seal
//! to any other whose certificate it holds. The two uses are kept apart by
//! their labels; no known attack combines ECDSA and ECDH on one P-256 key.
//!
//! Opening checks, in order, each refusal naming what failed: size, magic
//! and format, the header's bounds, that the bundle is for this station,
//! the sender's certificate (this county's CA, valid now, not revoked, of
//! the station the header names), the signature, then decryption and the
//! contents' own bounds (`BundleContents::decode`).

use crate::net::change_signing::{check_node_certificate, CertificateTime};
use crate::net::pki::NodeIdentity;
use crate::net::revocation::RevocationSet;
use civsync_protocol::sync::bundle::{BundleContents, CheckedBundle, BUNDLE_BYTES_MAX};
use civsync_protocol::StationId;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use rustls::pki_types::PrivateKeyDer;
use serde::{Deserialize, Serialize};

type BundleKem = hpke::kem::DhP256HkdfSha256;
type BundleKdf = hpke::kdf::HkdfSha256;
type BundleAead = hpke::aead::ChaCha20Poly1305;

const MAGIC: &[u8; 15] = b"civsync-bundle\n";
const FILE_FORMAT: u8 = 1;
/// What the HPKE context is bound to.
const HPKE_INFO: &[u8] = b"civsync bundle v1";
/// What the sender's signature covers besides the file, so it is never
/// mistaken for a change signature of the same key.
const SIGNATURE_LABEL: &[u8] = b"civsync bundle signature v1\0";
/// Most bytes of the header (a certificate is ~600 bytes).
const HEADER_BYTES_MAX: usize = 16 * 1024;
/// Most bytes of the sender's signature (fixed P-256: 64).
const SIGNATURE_BYTES_MAX: usize = 128;
/// AEAD tag and the framing around the contents.
const SEALING_OVERHEAD_BYTES_MAX: usize = HEADER_BYTES_MAX + SIGNATURE_BYTES_MAX + 64;
/// Most bytes of a bundle file this node reads.
pub const BUNDLE_FILE_BYTES_MAX: usize = BUNDLE_BYTES_MAX + SEALING_OVERHEAD_BYTES_MAX;
/// What a bundle file's name ends with.
pub const BUNDLE_FILE_SUFFIX: &str = ".civsync-bundle";

#[derive(Debug, Serialize, Deserialize)]
struct SealedHeader {
    from: String,
    to: String,
    created_ms: i64,
    sender_certificate: Vec<u8>,
    encapsulated_key: Vec<u8>,
}

/// The header of a bundle file, readable without the recipient's key (to
/// tell a clerk whose bundle it is and for whom).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleAddress {
    pub from: String,
    pub to: String,
    pub created_ms: i64,
}

/// The node's keys as bundles need them.
pub struct BundleKeys {
    identity: NodeIdentity,
    revocations: RevocationSet,
}

/// A file split into its parts, bounds checked.
struct Parts<'a> {
    header: SealedHeader,
    /// Everything the HPKE associated data covers (magic to header).
    associated: &'a [u8],
    ciphertext: &'a [u8],
    /// Everything the signature covers.
    signed: &'a [u8],
    signature: &'a [u8],
}

fn take<'a>(bytes: &mut &'a [u8], count: usize, what: &str) -> Result<&'a [u8], String> {
    if bytes.len() < count {
        return Err(format!("the file ends inside the {what}"));
    }
    let (head, rest) = bytes.split_at(count);
    *bytes = rest;
    Ok(head)
}

fn parts(file: &[u8]) -> Result<Parts<'_>, String> {
    if file.len() > BUNDLE_FILE_BYTES_MAX {
        return Err(format!(
            "the file is {} bytes; a bundle is at most {BUNDLE_FILE_BYTES_MAX}",
            file.len()
        ));
    }
    let mut rest = file;
    if take(&mut rest, MAGIC.len(), "magic")? != MAGIC {
        return Err("not a civsync bundle (the file does not start as one)".to_string());
    }
    let format = take(&mut rest, 1, "format")?[0];
    if format != FILE_FORMAT {
        return Err(format!(
            "bundle file format {format} (this node reads format {FILE_FORMAT})"
        ));
    }
    let length = u32::from_le_bytes(take(&mut rest, 4, "header length")?.try_into().unwrap());
    let length = length as usize;
    if length > HEADER_BYTES_MAX {
        return Err(format!(
            "a header of {length} bytes; at most {HEADER_BYTES_MAX}"
        ));
    }
    let header_bytes = take(&mut rest, length, "header")?;
    let header: SealedHeader = postcard::from_bytes(header_bytes)
        .map_err(|error| format!("the header does not decode: {error}"))?;
    let associated = &file[..file.len() - rest.len()];
    let length = u64::from_le_bytes(take(&mut rest, 8, "ciphertext length")?.try_into().unwrap());
    let length = usize::try_from(length).unwrap_or(usize::MAX);
    let ciphertext = take(&mut rest, length, "ciphertext")?;
    let signed = &file[..file.len() - rest.len()];
    let length = u16::from_le_bytes(take(&mut rest, 2, "signature length")?.try_into().unwrap());
    let length = usize::from(length);
    if length > SIGNATURE_BYTES_MAX {
        return Err(format!(
            "a signature of {length} bytes; at most {SIGNATURE_BYTES_MAX}"
        ));
    }
    let signature = take(&mut rest, length, "signature")?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the signature", rest.len()));
    }
    Ok(Parts {
        header,
        associated,
        ciphertext,
        signed,
        signature,
    })
}

/// Whose bundle a file is and for whom, without opening it.
pub fn address(file: &[u8]) -> Result<BundleAddress, String> {
    let parts = parts(file)?;
    Ok(BundleAddress {
        from: parts.header.from,
        to: parts.header.to,
        created_ms: parts.header.created_ms,
    })
}

fn signed_message(signed: &[u8]) -> Vec<u8> {
    let mut message = SIGNATURE_LABEL.to_vec();
    message.extend_from_slice(signed);
    message
}

/// The P-256 public key (SEC1, uncompressed) of a certificate.
fn public_key_of(certificate: &[u8]) -> Result<Vec<u8>, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|error| format!("not a certificate: {error}"))?;
    Ok(parsed.public_key().subject_public_key.data.to_vec())
}

impl BundleKeys {
    pub fn new(identity: NodeIdentity, revocations: RevocationSet) -> BundleKeys {
        BundleKeys {
            identity,
            revocations,
        }
    }

    pub fn station(&self) -> &StationId {
        &self.identity.station
    }

    /// The station a certificate proves, if this county's CA issued it, it
    /// is valid at `now_unix_s` and not revoked; else why not.
    pub fn check_certificate(
        &self,
        certificate: &[u8],
        now_unix_s: i64,
    ) -> Result<StationId, String> {
        check_node_certificate(
            &self.identity.ca_cert,
            &self.identity.county,
            &self.revocations,
            certificate,
            CertificateTime::At(now_unix_s),
        )
        .map(|identity| identity.station)
    }

    /// Seal `contents` to the holder of `recipient_certificate` (checked
    /// first: it must be the certificate of the station the contents are
    /// for).
    pub fn seal(
        &self,
        contents: &BundleContents,
        recipient_certificate: &[u8],
        now_unix_s: i64,
    ) -> Result<Vec<u8>, String> {
        let recipient = self.check_certificate(recipient_certificate, now_unix_s)?;
        if recipient.to_string() != contents.to {
            return Err(format!(
                "the certificate given is of station {recipient}, not of {}",
                contents.to
            ));
        }
        let public =
            <BundleKem as hpke::Kem>::PublicKey::from_bytes(&public_key_of(recipient_certificate)?)
                .map_err(|error| format!("the recipient's key is not a P-256 key: {error}"))?;
        let sender_certificate = self
            .identity
            .cert_chain
            .first()
            .ok_or("this node's certificate chain is empty")?
            .as_ref()
            .to_vec();
        let plaintext = contents.encode();
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| "the system's randomness failed")?;
        let mut rng = <seal_rng::ChaCha20Rng as seal_rng::rand_core::SeedableRng>::from_seed(seed);
        // The header holds the encapsulated key and is the associated data
        // of the seal: set the context up first, then seal.
        let (encapsulated, mut context) =
            hpke::setup_sender::<BundleAead, BundleKdf, BundleKem, _>(
                &OpModeS::Base,
                &public,
                HPKE_INFO,
                &mut rng,
            )
            .map_err(|error| format!("sealing: {error}"))?;
        let header = SealedHeader {
            from: contents.from.clone(),
            to: contents.to.clone(),
            created_ms: contents.created_ms,
            sender_certificate,
            encapsulated_key: encapsulated.to_bytes().to_vec(),
        };
        let header_bytes = postcard::to_stdvec(&header).map_err(|error| error.to_string())?;
        let mut file = Vec::with_capacity(plaintext.len() + SEALING_OVERHEAD_BYTES_MAX);
        file.extend_from_slice(MAGIC);
        file.push(FILE_FORMAT);
        file.extend_from_slice(&(header_bytes.len() as u32).to_le_bytes());
        file.extend_from_slice(&header_bytes);
        let ciphertext = context
            .seal(&plaintext, &file)
            .map_err(|error| format!("sealing: {error}"))?;
        file.extend_from_slice(&(ciphertext.len() as u64).to_le_bytes());
        file.extend_from_slice(&ciphertext);
        let signature = self.sign(&file)?;
        file.extend_from_slice(&(signature.len() as u16).to_le_bytes());
        file.extend_from_slice(&signature);
        debug_assert!(file.len() <= BUNDLE_FILE_BYTES_MAX || plaintext.len() > BUNDLE_BYTES_MAX);
        Ok(file)
    }

    fn sign(&self, signed: &[u8]) -> Result<Vec<u8>, String> {
        let PrivateKeyDer::Pkcs8(key) = &self.identity.key else {
            return Err("the node key is not PKCS#8".to_string());
        };
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            key.secret_pkcs8_der(),
            &rng,
        )
        .map_err(|error| format!("the node key is not a P-256 key: {error}"))?;
        pair.sign(&rng, &signed_message(signed))
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| "signing the bundle failed".to_string())
    }

    /// The private key as HPKE needs it: the scalar inside the PKCS#8 file.
    fn opening_key(&self) -> Result<<BundleKem as hpke::Kem>::PrivateKey, String> {
        use p256::pkcs8::DecodePrivateKey;
        let PrivateKeyDer::Pkcs8(key) = &self.identity.key else {
            return Err("the node key is not PKCS#8".to_string());
        };
        let secret = p256::SecretKey::from_pkcs8_der(key.secret_pkcs8_der())
            .map_err(|error| format!("the node key is not a P-256 key: {error}"))?;
        <BundleKem as hpke::Kem>::PrivateKey::from_bytes(&secret.to_bytes())
            .map_err(|error| format!("the node key is not a P-256 key: {error}"))
    }

    /// Open a bundle file addressed to this station: every check in the
    /// module's order, then the contents. The sender's certificate is
    /// returned with them (kept, so bundles can be sealed back to it).
    pub fn open(&self, file: &[u8], now_unix_s: i64) -> Result<(CheckedBundle, Vec<u8>), String> {
        let parts = parts(file)?;
        let header = &parts.header;
        if header.to != self.identity.station.to_string() {
            return Err(format!(
                "this bundle is for station {}, not for this office ({})",
                header.to, self.identity.station
            ));
        }
        let sender = self.check_certificate(&header.sender_certificate, now_unix_s)?;
        if sender.to_string() != header.from {
            return Err(format!(
                "the bundle says it is from {} but is signed under the certificate of {sender}",
                header.from
            ));
        }
        let key = public_key_of(&header.sender_certificate)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key)
            .verify(&signed_message(parts.signed), parts.signature)
            .map_err(|_| {
                format!(
                    "the bundle was changed after {} signed it (the signature does not verify)",
                    header.from
                )
            })?;
        let encapsulated =
            <BundleKem as hpke::Kem>::EncappedKey::from_bytes(&header.encapsulated_key)
                .map_err(|error| format!("the bundle's sealing key is damaged: {error}"))?;
        let plaintext = hpke::single_shot_open::<BundleAead, BundleKdf, BundleKem>(
            &OpModeR::Base,
            &self.opening_key()?,
            &encapsulated,
            HPKE_INFO,
            parts.ciphertext,
            parts.associated,
        )
        .map_err(|_| {
            "the bundle does not open with this office's key (sealed to another certificate of this station?)"
                .to_string()
        })?;
        let checked = BundleContents::decode(&plaintext)?;
        if checked.from.to_string() != header.from || checked.to.to_string() != header.to {
            return Err(format!(
                "the sealed contents are from {} to {}, the header says {} to {}",
                checked.from, checked.to, header.from, header.to
            ));
        }
        Ok((checked, header.sender_certificate.clone()))
    }
}

/// The file name of a bundle: who, for whom, when (UTC).
pub fn file_name(from: &StationId, to: &StationId, created_ms: i64) -> String {
    let when = time::OffsetDateTime::from_unix_timestamp(created_ms.div_euclid(1000))
        .ok()
        .and_then(|at| {
            at.format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| created_ms.to_string());
    let path = |station: &StationId| station.to_string().replace('/', "_");
    format!("{}-to-{}-{when}{BUNDLE_FILE_SUFFIX}", path(from), path(to))
}

#[cfg(test)]
mod tests;
