//! Certificate revocation: the county CA's signed list of node
//! certificates no node may accept any more (a stolen or broken office PC).
//!
//! The county technician runs `civsync pki revoke` next to the CA key: it
//! adds an entry to the CA folder's list (`revocations.json`), raises its
//! version, signs it with the CA key and writes it whole. The signed file is
//! then given to the running county node (`civsync pki publish-revocations`,
//! `POST /api/v1/revocations`), which stores it in its reference document
//! `reference:<county>:revocations`; from there it flows down the whole
//! county like a menu does.
//!
//! Every node follows that document (`follow_revocation_document`, every
//! [`REVOCATION_POLL_MS`]) and accepts a list only if
//! - the county CA certificate in its own PKI folder verifies the signature
//!   (ECDSA P-256 over [`SIGNATURE_LABEL`] followed by the list's exact
//!   text, so there is no canonical form to get wrong: the bytes signed are
//!   the bytes carried);
//! - it names that CA's county, its entries are within bounds;
//! - its version is newer than the one it holds (a replayed older list never
//!   brings a revoked certificate back).
//!
//! The accepted list lives in a [`RevocationSet`] shared by both TLS
//! verifiers (a revoked certificate is refused at the handshake, naming the
//! reason) and the peer manager (which closes live links with a revoked
//! peer as soon as the set changes).
//!
//! An entry revokes one certificate (by its SHA-256) or, without one, every
//! certificate of its station issued up to the moment of revocation — so a
//! certificate issued afterwards (`pki renew` / `pki issue` for the
//! replacement PC) is not revoked by it. A certificate's issue time is its
//! `not_before` plus the backdate every certificate is issued with.

use crate::net::pki::{
    load_ca_certificate, load_ca_signing_key, read_certificate_identity, CertificateIdentity,
    PkiError, NOT_BEFORE_BACKDATE_S,
};
use crate::store::Store;
use civsync_protocol::service::revocations::{held_revocation_list, SIGNED_LIST_BYTES_MAX};
use civsync_protocol::StationId;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// The county's current signed list, in the CA folder.
pub const REVOCATION_LIST_FILE: &str = "revocations.json";
/// Most entries one list holds.
pub const REVOKED_CERTIFICATES_MAX: usize = 1_000;
/// Longest reason, in characters.
pub const REASON_CHARS_MAX: usize = 200;
/// How often a node reads the revocation document again: a list that
/// arrived is in force (and live links with a revoked peer closed) within
/// this time, well inside a minute.
pub const REVOCATION_POLL_MS: u64 = 5_000;
/// Prefixed to the list's text before signing: a signature made for
/// anything else with the CA key is never a valid list signature.
pub const SIGNATURE_LABEL: &[u8] = b"civsync/revocation-list/v1\n";

/// One revoked certificate, or every certificate of a station issued up to
/// `revoked_at_unix_s`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedCertificate {
    pub station: StationId,
    /// SHA-256 of the certificate (DER), lowercase hex; absent: every
    /// certificate of the station issued up to the revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_sha256: Option<String>,
    pub reason: String,
    pub revoked_at_unix_s: i64,
}

impl RevokedCertificate {
    /// Does this entry revoke `certificate` (whose identity is `identity`)?
    pub fn covers(&self, identity: &CertificateIdentity, certificate: &[u8]) -> bool {
        if self.station != identity.station {
            return false;
        }
        match &self.certificate_sha256 {
            Some(fingerprint) => *fingerprint == certificate_sha256(certificate),
            None => {
                identity
                    .not_before_unix_s
                    .saturating_add(NOT_BEFORE_BACKDATE_S)
                    <= self.revoked_at_unix_s
            }
        }
    }
}

/// The county's revocation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    pub county: StationId,
    /// 1 for the first list; every new list one more.
    pub version: u64,
    pub issued_at_unix_s: i64,
    pub entries: Vec<RevokedCertificate>,
}

impl RevocationList {
    /// The entry revoking `certificate`, if any.
    pub fn revoking(&self, certificate: &[u8]) -> Option<&RevokedCertificate> {
        let identity = read_certificate_identity(certificate).ok()?;
        self.revoking_read(&identity, certificate)
    }

    /// [`RevocationList::revoking`] of a certificate whose identity the
    /// caller has read already.
    pub fn revoking_read(
        &self,
        identity: &CertificateIdentity,
        certificate: &[u8],
    ) -> Option<&RevokedCertificate> {
        self.entries
            .iter()
            .find(|entry| entry.covers(identity, certificate))
    }

    fn check(&self) -> Result<(), RevocationError> {
        if self.entries.len() > REVOKED_CERTIFICATES_MAX {
            return Err(RevocationError::TooManyEntries {
                count: self.entries.len(),
                max: REVOKED_CERTIFICATES_MAX,
            });
        }
        for entry in &self.entries {
            check_entry(&self.county, entry)?;
        }
        Ok(())
    }
}

fn check_entry(county: &StationId, entry: &RevokedCertificate) -> Result<(), RevocationError> {
    if !county.is_ancestor_or_self_of(&entry.station) {
        return Err(RevocationError::OutsideCounty {
            station: entry.station.clone(),
            county: county.clone(),
        });
    }
    let chars = entry.reason.chars().count();
    if entry.reason.trim().is_empty() || chars > REASON_CHARS_MAX {
        return Err(RevocationError::BadReason {
            chars,
            max: REASON_CHARS_MAX,
        });
    }
    if let Some(fingerprint) = &entry.certificate_sha256 {
        if fingerprint.len() != 64
            || !fingerprint
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return Err(RevocationError::Malformed {
                reason: format!(
                    "certificate_sha256 {fingerprint:?} is not 64 lowercase hex digits"
                ),
            });
        }
    }
    Ok(())
}

/// The file `pki revoke` writes and `POST /api/v1/revocations` takes: the
/// list's exact text and the CA's signature over it (DER, hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRevocationList {
    pub list: String,
    pub signature: String,
}

impl SignedRevocationList {
    pub fn to_text(&self) -> String {
        serde_json::to_string_pretty(self).expect("two strings always serialise")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("the signed list is {bytes} bytes; at most {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("not a signed revocation list: {reason}")]
    Malformed { reason: String },
    #[error("the signature does not verify under the county CA certificate")]
    BadSignature,
    #[error("the list is for county {listed}, but the CA is county {county}")]
    WrongCounty {
        listed: StationId,
        county: StationId,
    },
    #[error("the list holds {count} entries; at most {max}")]
    TooManyEntries { count: usize, max: usize },
    #[error("station {station} is outside county {county}")]
    OutsideCounty {
        station: StationId,
        county: StationId,
    },
    #[error("a reason must be given, at most {max} characters (got {chars})")]
    BadReason { chars: usize, max: usize },
    #[error("version {offered} is not newer than the list held (version {held})")]
    NotNewer { offered: u64, held: u64 },
    #[error("cannot sign: {reason}")]
    Sign { reason: String },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: io::Error },
}

impl RevocationError {
    /// The field an API answer names.
    pub fn field(&self) -> &'static str {
        match self {
            RevocationError::TooLarge { .. } | RevocationError::Malformed { .. } => "list",
            RevocationError::BadSignature | RevocationError::Sign { .. } => "signature",
            RevocationError::WrongCounty { .. } => "county",
            RevocationError::TooManyEntries { .. } => "entries",
            RevocationError::OutsideCounty { .. } => "station",
            RevocationError::BadReason { .. } => "reason",
            RevocationError::NotNewer { .. } => "version",
            RevocationError::Pki(_) | RevocationError::Write { .. } => "pki",
        }
    }
}

/// SHA-256 of a certificate's DER, lowercase hex.
pub fn certificate_sha256(certificate: &[u8]) -> String {
    hex(&Sha256::digest(certificate))
}

/// Signs `list` with the CA key (PKCS#8 DER of an ECDSA P-256 key).
pub fn sign_revocation_list(
    list: &RevocationList,
    ca_key_pkcs8: &[u8],
) -> Result<SignedRevocationList, RevocationError> {
    list.check()?;
    let text = serde_json::to_string(list).expect("a list always serialises");
    let key = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        ca_key_pkcs8,
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|error| RevocationError::Sign {
        reason: error.to_string(),
    })?;
    let signature = key
        .sign(&ring::rand::SystemRandom::new(), &signed_bytes(&text))
        .map_err(|error| RevocationError::Sign {
            reason: error.to_string(),
        })?;
    // A key whose public half does not verify its own signature is no CA key.
    debug_assert!(UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        key.public_key().as_ref()
    )
    .verify(&signed_bytes(&text), signature.as_ref())
    .is_ok());
    Ok(SignedRevocationList {
        list: text,
        signature: hex(signature.as_ref()),
    })
}

/// Reads a signed list and returns it only if the county CA certificate
/// `ca_cert` verifies its signature and the list is well formed and names
/// that CA's county. Says nothing about its version (see
/// [`RevocationSet::accept`]).
pub fn verify_revocation_list(
    signed_text: &str,
    ca_cert: &CertificateDer<'_>,
) -> Result<RevocationList, RevocationError> {
    if signed_text.len() > SIGNED_LIST_BYTES_MAX {
        return Err(RevocationError::TooLarge {
            bytes: signed_text.len(),
            max: SIGNED_LIST_BYTES_MAX,
        });
    }
    let signed: SignedRevocationList =
        serde_json::from_str(signed_text).map_err(|error| RevocationError::Malformed {
            reason: error.to_string(),
        })?;
    let ca = read_certificate_identity(ca_cert).map_err(|error| RevocationError::Malformed {
        reason: format!("the CA certificate: {error}"),
    })?;
    let signature_bytes = unhex(&signed.signature).ok_or(RevocationError::BadSignature)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(ca_cert).map_err(|error| {
        RevocationError::Malformed {
            reason: format!("the CA certificate: {error}"),
        }
    })?;
    let public_key = parsed.public_key().subject_public_key.data.as_ref();
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, public_key)
        .verify(&signed_bytes(&signed.list), &signature_bytes)
        .map_err(|_| RevocationError::BadSignature)?;
    // Parsed only once the signature holds: nothing unsigned is read.
    let list: RevocationList =
        serde_json::from_str(&signed.list).map_err(|error| RevocationError::Malformed {
            reason: error.to_string(),
        })?;
    if list.county != ca.station {
        return Err(RevocationError::WrongCounty {
            listed: list.county,
            county: ca.station,
        });
    }
    list.check()?;
    Ok(list)
}

fn signed_bytes(text: &str) -> Vec<u8> {
    let mut bytes = SIGNATURE_LABEL.to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

/// What `pki revoke` did.
#[derive(Debug)]
pub struct Revoked {
    pub list: RevocationList,
    pub path: PathBuf,
}

/// `civsync pki revoke`: adds `station` (one certificate of it, if
/// `certificate` names its file) to the list in the CA folder `ca_dir`,
/// raises the version, signs it with the CA key and replaces the file whole.
pub fn revoke_at_county(
    ca_dir: &Path,
    station: &StationId,
    certificate: Option<&Path>,
    reason: &str,
    now_unix_s: i64,
) -> Result<Revoked, RevocationError> {
    let (ca_cert, ca, key) = load_ca_signing_key(ca_dir)?;
    let path = ca_dir.join(REVOCATION_LIST_FILE);
    let mut list = current_list_at_county(ca_dir, &ca_cert)?.unwrap_or(RevocationList {
        county: ca.station.clone(),
        version: 0,
        issued_at_unix_s: now_unix_s,
        entries: Vec::new(),
    });
    let certificate_sha256 = match certificate {
        None => None,
        Some(file) => {
            let der = read_certificate_file(file)?;
            let identity =
                read_certificate_identity(&der).map_err(|source| PkiError::BadCertificate {
                    path: file.to_path_buf(),
                    source,
                })?;
            if &identity.station != station {
                return Err(RevocationError::Malformed {
                    reason: format!(
                        "{} is a certificate of {}, not of {station}",
                        file.display(),
                        identity.station
                    ),
                });
            }
            Some(certificate_sha256(&der))
        }
    };
    let entry = RevokedCertificate {
        station: station.clone(),
        certificate_sha256,
        reason: reason.trim().to_string(),
        revoked_at_unix_s: now_unix_s,
    };
    check_entry(&ca.station, &entry)?;
    list.entries.push(entry);
    list.version += 1;
    list.issued_at_unix_s = now_unix_s;
    let signed = sign_revocation_list(&list, &key)?;
    replace_file(&path, signed.to_text().as_bytes())?;
    Ok(Revoked { list, path })
}

/// The list in the CA folder, checked against the CA; `None` if none yet.
pub fn current_list_at_county(
    ca_dir: &Path,
    ca_cert: &CertificateDer<'_>,
) -> Result<Option<RevocationList>, RevocationError> {
    let path = ca_dir.join(REVOCATION_LIST_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => verify_revocation_list(&text, ca_cert).map(Some),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Read { path, source }.into()),
    }
}

/// The stations the list in the CA folder revokes wholesale, with the
/// moment: `pki renew` issues nothing they would cover.
pub fn latest_station_revocation(ca_dir: &Path, station: &StationId) -> Option<i64> {
    let (ca_cert, _) = load_ca_certificate(&ca_dir.join(crate::net::pki::CA_CERT_FILE)).ok()?;
    let list = current_list_at_county(ca_dir, &ca_cert).ok()??;
    list.entries
        .iter()
        .filter(|entry| &entry.station == station && entry.certificate_sha256.is_none())
        .map(|entry| entry.revoked_at_unix_s)
        .max()
}

fn read_certificate_file(path: &Path) -> Result<Vec<u8>, RevocationError> {
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_file(path).map_err(|error| PkiError::BadPem {
        path: path.to_path_buf(),
        expected: "certificate",
        reason: error.to_string(),
    })?;
    Ok(der.to_vec())
}

/// Writes `bytes` to `path` whole: a synced temporary file renamed over it.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), RevocationError> {
    let error = |source| RevocationError::Write {
        path: path.to_path_buf(),
        source,
    };
    let temporary = path.with_extension(format!("{}.partial", std::process::id()));
    let written = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&temporary);
        return Err(error(source));
    }
    if let Some(parent) = path.parent() {
        if let Ok(directory) = fs::File::open(parent) {
            directory.sync_all().map_err(error)?;
        }
    }
    Ok(())
}

/// The revocation list a node has accepted, shared by its TLS verifiers,
/// its peer manager and its API. Starts empty (version 0).
#[derive(Debug, Clone)]
pub struct RevocationSet {
    current: Arc<RwLock<Option<Arc<RevocationList>>>>,
    version: Arc<watch::Sender<u64>>,
    last_refusal: Arc<Mutex<Option<String>>>,
}

impl Default for RevocationSet {
    fn default() -> Self {
        RevocationSet {
            current: Arc::default(),
            version: Arc::new(watch::channel(0).0),
            last_refusal: Arc::default(),
        }
    }
}

impl RevocationSet {
    /// The version of the list in force; 0 before any.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    pub fn list(&self) -> Option<Arc<RevocationList>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Puts a verified list in force if it is newer than the one in force.
    pub fn accept(&self, list: RevocationList) -> Result<(), RevocationError> {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let held = current.as_ref().map_or(0, |list| list.version);
        if list.version <= held {
            return Err(RevocationError::NotNewer {
                offered: list.version,
                held,
            });
        }
        let version = list.version;
        *current = Some(Arc::new(list));
        drop(current);
        self.version.send_replace(version);
        Ok(())
    }

    /// Verifies `signed_text` under `ca_cert` and puts it in force if newer.
    pub fn accept_signed(
        &self,
        signed_text: &str,
        ca_cert: &CertificateDer<'_>,
    ) -> Result<RevocationList, RevocationError> {
        let list = verify_revocation_list(signed_text, ca_cert)?;
        self.accept(list.clone())?;
        Ok(list)
    }

    /// The entry revoking `certificate` in the list in force, if any.
    pub fn revoking(&self, certificate: &[u8]) -> Option<RevokedCertificate> {
        self.list()?.revoking(certificate).cloned()
    }

    /// [`RevocationSet::revoking`] of a certificate whose identity the
    /// caller has read already.
    pub fn revoking_read(
        &self,
        identity: &CertificateIdentity,
        certificate: &[u8],
    ) -> Option<RevokedCertificate> {
        self.list()?.revoking_read(identity, certificate).cloned()
    }

    /// Wakes whenever a newer list is put in force.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Why the last list found in the document was not put in force.
    pub fn last_refusal(&self) -> Option<String> {
        self.last_refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn note_refusal(&self, refusal: String) {
        *self
            .last_refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(refusal);
    }
}

/// Reads the county's revocation document every [`REVOCATION_POLL_MS`] and
/// puts a newer, validly signed list in force; a list that fails is logged
/// once, noted on the set, and changes nothing. Returns when `stop` turns
/// true or the store closes.
pub async fn follow_revocation_document(
    store: Store,
    set: RevocationSet,
    ca_cert: CertificateDer<'static>,
    county: StationId,
    mut stop: watch::Receiver<bool>,
) {
    let mut refused_version = 0;
    loop {
        let held = {
            let county = county.clone();
            store
                .call(move |replica| held_revocation_list(replica, &county))
                .await
        };
        let Ok(held) = held else { return };
        if let Some(held) = held {
            if held.version > set.version() && held.version != refused_version {
                let checked = verify_revocation_list(&held.signed, &ca_cert).and_then(|list| {
                    if list.version == held.version {
                        Ok(list)
                    } else {
                        Err(RevocationError::Malformed {
                            reason: format!(
                                "the document says version {} but the signed list is version {}",
                                held.version, list.version
                            ),
                        })
                    }
                });
                match checked.and_then(|list| set.accept(list)) {
                    Ok(()) => {
                        info!(version = held.version, %county, "revocation list in force")
                    }
                    Err(error) => {
                        refused_version = held.version;
                        warn!(version = held.version, %error, "revocation list refused");
                        set.note_refusal(format!("version {}: {error}", held.version));
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(REVOCATION_POLL_MS)) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok()
}

#[cfg(test)]
mod tests;
