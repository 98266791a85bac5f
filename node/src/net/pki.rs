//! The county PKI: one certificate authority per county, one certificate per node.
//!
//! A county center creates its CA once (`init_county_ca`) and issues a
//! certificate to every station of its subtree (`issue_node_certificate`).
//! Nodes authenticate each other with these certificates (mutual TLS, see
//! `transport`), so the CA key is the root of trust for the whole county.
//!
//! What a certificate says about its holder is carried in two URI subject
//! alternative names, which survive every X.509 tool and are read back with
//! an exact parser (`read_certificate_identity`):
//! `civsync://station/<station path>` and `civsync://tier/<tier>`. The CA
//! certificate carries the county's own station and the tier `county`.
//! Station paths contain '/', so DNS names are never used for identity.
//!
//! Invariants:
//! - A node certificate is only issued for the CA's county or a station below
//!   it, at the tier its depth implies (county, township, village, point).
//! - A key file is created with mode 0600 from the start (never chmod-ed
//!   afterwards) and is never overwritten: issuing into a directory that
//!   already holds a key or certificate is refused.
//! - Every file is written to a temporary name, synced, and then linked to its
//!   final name, so a crash leaves either the whole file or none of it.
//! - Loading a key file whose mode lets group or others read it is REFUSED
//!   (`PkiError::KeyFileTooOpen`): a readable CA or node key lets anyone on
//!   the office PC impersonate the station, and `chmod 600` is the whole fix.

use civsync_protocol::{StationId, StationIdError, Tier};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    Ia5String, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The county CA certificate (PEM). Copied next to every node certificate.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The county CA private key (PEM, PKCS#8). Never leaves the county center.
pub const CA_KEY_FILE: &str = "ca.key";
/// The node certificate (PEM): the leaf only, the CA is the trust anchor.
pub const NODE_CERT_FILE: &str = "node.crt";
/// The node private key (PEM, PKCS#8).
pub const NODE_KEY_FILE: &str = "node.key";

/// Mode of every key file we create.
pub const KEY_FILE_MODE: u32 = 0o600;
/// Mode of certificate files: public, but only the owner writes them.
pub const CERT_FILE_MODE: u32 = 0o644;
/// Permission bits that must be clear on a key file we load.
const KEY_FILE_FORBIDDEN_MODE_BITS: u32 = 0o077;

/// Longest validity we issue, for the CA and for nodes alike (30 years).
pub const VALIDITY_DAYS_MAX: u32 = 30 * 365;
/// Certificates start this long before the moment they are issued, so that a
/// node whose clock runs somewhat behind the county's still accepts them.
pub const NOT_BEFORE_BACKDATE_S: i64 = 24 * 3600;
/// A PEM file larger than this is not one of ours; refuse to read it whole.
pub const PEM_FILE_BYTES_MAX: u64 = 64 * 1024;
/// Most certificates we accept in one PEM file (node.crt holds one).
pub const CERTS_PER_FILE_MAX: usize = 4;

const STATION_URI_PREFIX: &str = "civsync://station/";
const TIER_URI_PREFIX: &str = "civsync://tier/";
const SECONDS_PER_DAY: i64 = 24 * 3600;

/// What a certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity {
    pub station: StationId,
    pub tier: Tier,
    pub is_ca: bool,
    pub not_before_unix_s: i64,
    pub not_after_unix_s: i64,
}

/// Why a certificate's identity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("not a parsable X.509 certificate: {reason}")]
    NotX509 { reason: String },
    #[error("certificate has no subject alternative names")]
    NoAlternativeNames,
    #[error("certificate names no station (no {STATION_URI_PREFIX}... URI)")]
    NoStation,
    #[error("certificate names more than one station")]
    ManyStations,
    #[error("certificate's station is malformed: {0}")]
    BadStation(StationIdError),
    #[error("certificate names no tier (no {TIER_URI_PREFIX}... URI)")]
    NoTier,
    #[error("certificate names more than one tier")]
    ManyTiers,
    #[error("certificate's tier {text:?} is unknown")]
    BadTier { text: String },
}

/// Everything that can go wrong creating, issuing or loading PKI files.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: file is missing")]
    Missing { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: is {len} bytes; a PEM file of ours is at most {max}")]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    #[error("{path}: not a valid PEM {expected}: {reason}")]
    BadPem {
        path: PathBuf,
        expected: &'static str,
        reason: String,
    },
    #[error("{path}: holds {count} certificates; expected 1 to {max}")]
    CertificateCount {
        path: PathBuf,
        count: usize,
        max: usize,
    },
    #[error("{path}: key file mode is {mode:o}; group and others must not read it (run: chmod 600 {path})")]
    KeyFileTooOpen { path: PathBuf, mode: u32 },
    #[error("{path}: {source}")]
    BadCertificate {
        path: PathBuf,
        source: IdentityError,
    },
    #[error("{path}: is not a CA certificate")]
    NotCa { path: PathBuf },
    #[error("{key_path}: key does not belong to the certificate in {cert_path}")]
    KeyMismatch {
        key_path: PathBuf,
        cert_path: PathBuf,
    },
    #[error("{path}: not issued by the county CA in {ca_path}: {reason}")]
    NotIssuedByCa {
        path: PathBuf,
        ca_path: PathBuf,
        reason: String,
    },
    #[error("{path}: already exists; refusing to overwrite it (move it away first)")]
    AlreadyExists { path: PathBuf },
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("station {station} is outside county {county}, the subtree of this CA")]
    OutsideCounty {
        station: StationId,
        county: StationId,
    },
    #[error("station {station} lies {levels} levels below county {county}, where no tier exists")]
    TooDeep {
        station: StationId,
        county: StationId,
        levels: usize,
    },
    #[error("station {station} is a {expected} under county {county}, not a {requested}")]
    TierMismatch {
        station: StationId,
        county: StationId,
        expected: Tier,
        requested: Tier,
    },
    #[error("validity of {days} days is outside 1..={max}")]
    BadValidityDays { days: u32, max: u32 },
    #[error("validity period ends ({not_after_unix_s}) before it begins ({not_before_unix_s})")]
    EmptyValidity {
        not_before_unix_s: i64,
        not_after_unix_s: i64,
    },
    #[error("certificate would end at {not_after_unix_s}, after the CA in {ca_path} ends at {ca_not_after_unix_s}")]
    OutlivesCa {
        ca_path: PathBuf,
        not_after_unix_s: i64,
        ca_not_after_unix_s: i64,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// When a certificate is valid, in Unix seconds (inclusive bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidityPeriod {
    pub not_before_unix_s: i64,
    pub not_after_unix_s: i64,
}

impl ValidityPeriod {
    /// `days` days from `now_unix_s`, starting `NOT_BEFORE_BACKDATE_S` early.
    pub fn days_from(now_unix_s: i64, days: u32) -> Result<ValidityPeriod, PkiError> {
        if days == 0 || days > VALIDITY_DAYS_MAX {
            return Err(PkiError::BadValidityDays {
                days,
                max: VALIDITY_DAYS_MAX,
            });
        }
        Ok(ValidityPeriod {
            not_before_unix_s: now_unix_s - NOT_BEFORE_BACKDATE_S,
            not_after_unix_s: now_unix_s + i64::from(days) * SECONDS_PER_DAY,
        })
    }

    fn check(self) -> Result<(), PkiError> {
        if self.not_after_unix_s <= self.not_before_unix_s {
            return Err(PkiError::EmptyValidity {
                not_before_unix_s: self.not_before_unix_s,
                not_after_unix_s: self.not_after_unix_s,
            });
        }
        Ok(())
    }
}

/// What was written by `init_county_ca` or `issue_node_certificate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub station: StationId,
    pub tier: Tier,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub validity: ValidityPeriod,
}

/// A node's own credentials, loaded from its certificate directory.
pub struct NodeIdentity {
    pub station: StationId,
    pub tier: Tier,
    /// The county of the CA that issued this node's certificate.
    pub county: StationId,
    pub not_after_unix_s: i64,
    /// Leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The county CA certificate: the only trust anchor of this node.
    pub ca_cert: CertificateDer<'static>,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        NodeIdentity {
            station: self.station.clone(),
            tier: self.tier,
            county: self.county.clone(),
            not_after_unix_s: self.not_after_unix_s,
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            ca_cert: self.ca_cert.clone(),
        }
    }
}

impl std::fmt::Debug for NodeIdentity {
    // The private key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("station", &self.station)
            .field("tier", &self.tier)
            .field("county", &self.county)
            .field("not_after_unix_s", &self.not_after_unix_s)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// The station this node's certificate names (same as the field).
    pub fn station(&self) -> &StationId {
        &self.station
    }

    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Loads `node.crt`, `node.key` and `ca.crt` from `dir` and checks that
    /// they belong together: the key matches the certificate, the certificate
    /// was issued by the CA, names a station inside the CA's county, and is
    /// valid now.
    pub fn load(dir: &Path) -> Result<NodeIdentity, PkiError> {
        NodeIdentity::load_at(dir, now_unix_s())
    }

    /// As `load`, judging validity at `now_unix_s`.
    pub fn load_at(dir: &Path, now_unix_s: i64) -> Result<NodeIdentity, PkiError> {
        let cert_path = dir.join(NODE_CERT_FILE);
        let key_path = dir.join(NODE_KEY_FILE);
        let ca_path = dir.join(CA_CERT_FILE);

        let (ca_cert, ca_identity) = load_ca_certificate(&ca_path)?;
        let cert_chain = read_certificates(&cert_path)?;
        let leaf = &cert_chain[0];
        let identity =
            read_certificate_identity(leaf).map_err(|source| PkiError::BadCertificate {
                path: cert_path.clone(),
                source,
            })?;
        let key_pem = read_key_file(&key_path)?;
        let key_pair = KeyPair::from_pem(&key_pem).map_err(|error| PkiError::BadPem {
            path: key_path.clone(),
            expected: "private key",
            reason: error.to_string(),
        })?;
        check_key_matches(&key_pair, leaf, &key_path, &cert_path)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|error| {
            PkiError::BadPem {
                path: key_path.clone(),
                expected: "private key",
                reason: error.to_string(),
            }
        })?;

        if !ca_identity
            .station
            .is_ancestor_or_self_of(&identity.station)
        {
            return Err(PkiError::OutsideCounty {
                station: identity.station,
                county: ca_identity.station,
            });
        }
        verify_issued_by(&cert_chain, &ca_cert, now_unix_s).map_err(|reason| {
            PkiError::NotIssuedByCa {
                path: cert_path.clone(),
                ca_path: ca_path.clone(),
                reason,
            }
        })?;

        Ok(NodeIdentity {
            station: identity.station,
            tier: identity.tier,
            county: ca_identity.station,
            not_after_unix_s: identity.not_after_unix_s,
            cert_chain,
            key,
            ca_cert,
        })
    }
}

/// Creates the county CA in `dir` (created if missing): `ca.crt` and `ca.key`
/// (mode 0600). Refuses if either file already exists.
pub fn init_county_ca(
    dir: &Path,
    county: &StationId,
    validity_days: u32,
) -> Result<IssuedCertificate, PkiError> {
    let validity = ValidityPeriod::days_from(now_unix_s(), validity_days)?;
    init_county_ca_for_period(dir, county, validity)
}

/// As `init_county_ca`, with an explicit validity period.
pub fn init_county_ca_for_period(
    dir: &Path,
    county: &StationId,
    validity: ValidityPeriod,
) -> Result<IssuedCertificate, PkiError> {
    validity.check()?;
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    create_dir(dir)?;
    refuse_existing(&[&cert_path, &key_path])?;

    let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&format!("civsync county CA {county}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.subject_alt_names = identity_names(county, Tier::County)?;
    params.serial_number = Some(random_serial_number());
    set_validity(&mut params, validity)?;
    let certificate = params.self_signed(&key_pair)?;

    // Key first: a crash in between leaves a key without a certificate, which
    // the next attempt refuses loudly instead of silently replacing the CA.
    write_new_file(
        &key_path,
        key_pair.serialize_pem().as_bytes(),
        KEY_FILE_MODE,
    )?;
    write_new_file(&cert_path, certificate.pem().as_bytes(), CERT_FILE_MODE)?;
    Ok(IssuedCertificate {
        station: county.clone(),
        tier: Tier::County,
        cert_path,
        key_path,
        validity,
    })
}

/// Issues a node certificate for `station` from the CA in `ca_dir`, writing
/// `node.crt`, `node.key` (mode 0600) and a copy of `ca.crt` into `out_dir`.
pub fn issue_node_certificate(
    ca_dir: &Path,
    station: &StationId,
    tier: Tier,
    out_dir: &Path,
    validity_days: u32,
) -> Result<IssuedCertificate, PkiError> {
    let validity = ValidityPeriod::days_from(now_unix_s(), validity_days)?;
    issue_node_certificate_for_period(ca_dir, station, tier, out_dir, validity)
}

/// As `issue_node_certificate`, with an explicit validity period (which may
/// lie in the past: tests use that to make expired certificates).
pub fn issue_node_certificate_for_period(
    ca_dir: &Path,
    station: &StationId,
    tier: Tier,
    out_dir: &Path,
    validity: ValidityPeriod,
) -> Result<IssuedCertificate, PkiError> {
    let ca = CountyCa::load(ca_dir)?;
    ca.check_issue(station, tier, validity)?;

    let cert_path = out_dir.join(NODE_CERT_FILE);
    let key_path = out_dir.join(NODE_KEY_FILE);
    let ca_copy_path = out_dir.join(CA_CERT_FILE);
    create_dir(out_dir)?;
    refuse_existing(&[&cert_path, &key_path])?;
    // The CA copy may already be there (issuing into the CA's own directory,
    // or re-issuing after moving the old node files away) if it is the same.
    let ca_copy_needed = match fs::read(&ca_copy_path) {
        Ok(existing) if existing == ca.cert_pem.as_bytes() => false,
        Ok(_) => return Err(PkiError::AlreadyExists { path: ca_copy_path }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => true,
        Err(source) => {
            return Err(PkiError::Read {
                path: ca_copy_path,
                source,
            })
        }
    };

    let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let certificate_pem = ca.sign_node(station, tier, &key_pair, validity)?;

    write_new_file(
        &key_path,
        key_pair.serialize_pem().as_bytes(),
        KEY_FILE_MODE,
    )?;
    write_new_file(&cert_path, certificate_pem.as_bytes(), CERT_FILE_MODE)?;
    if ca_copy_needed {
        write_new_file(&ca_copy_path, ca.cert_pem.as_bytes(), CERT_FILE_MODE)?;
    }
    Ok(IssuedCertificate {
        station: station.clone(),
        tier,
        cert_path,
        key_path,
        validity,
    })
}

/// The county CA's certificate, what it says, and its key (PKCS#8 DER),
/// for signing a revocation list.
pub fn load_ca_signing_key(
    dir: &Path,
) -> Result<(CertificateDer<'static>, CertificateIdentity, Vec<u8>), PkiError> {
    let ca = CountyCa::load(dir)?;
    Ok((ca.cert_der, ca.identity, ca.key_pair.serialize_der()))
}

/// The tier a station has by its depth below the county: the county itself,
/// then township, village, point.
pub fn tier_below_county(county: &StationId, station: &StationId) -> Result<Tier, PkiError> {
    debug_assert!(county.is_ancestor_or_self_of(station));
    const BELOW_COUNTY: [Tier; 4] = [Tier::County, Tier::Township, Tier::Village, Tier::Point];
    let levels = station.depth().saturating_sub(county.depth());
    BELOW_COUNTY
        .get(levels)
        .copied()
        .ok_or_else(|| PkiError::TooDeep {
            station: station.clone(),
            county: county.clone(),
            levels,
        })
}

/// Reads the station and tier a certificate names, and its validity.
pub fn read_certificate_identity(der: &[u8]) -> Result<CertificateIdentity, IdentityError> {
    let (_, certificate) =
        x509_parser::parse_x509_certificate(der).map_err(|error| IdentityError::NotX509 {
            reason: error.to_string(),
        })?;
    let names = certificate
        .subject_alternative_name()
        .map_err(|error| IdentityError::NotX509 {
            reason: error.to_string(),
        })?
        .ok_or(IdentityError::NoAlternativeNames)?;
    let mut station = None;
    let mut tier = None;
    for name in &names.value.general_names {
        let x509_parser::extensions::GeneralName::URI(uri) = name else {
            continue;
        };
        if let Some(path) = uri.strip_prefix(STATION_URI_PREFIX) {
            if station.is_some() {
                return Err(IdentityError::ManyStations);
            }
            station = Some(StationId::parse(path).map_err(IdentityError::BadStation)?);
        } else if let Some(text) = uri.strip_prefix(TIER_URI_PREFIX) {
            if tier.is_some() {
                return Err(IdentityError::ManyTiers);
            }
            tier = Some(Tier::parse(text).ok_or_else(|| IdentityError::BadTier {
                text: text.to_string(),
            })?);
        }
    }
    let validity = certificate.validity();
    Ok(CertificateIdentity {
        station: station.ok_or(IdentityError::NoStation)?,
        tier: tier.ok_or(IdentityError::NoTier)?,
        is_ca: certificate.is_ca(),
        not_before_unix_s: validity.not_before.timestamp(),
        not_after_unix_s: validity.not_after.timestamp(),
    })
}

/// Loads and checks `ca.crt` (a CA certificate naming its county).
pub fn load_ca_certificate(
    path: &Path,
) -> Result<(CertificateDer<'static>, CertificateIdentity), PkiError> {
    let mut certificates = read_certificates(path)?;
    if certificates.len() != 1 {
        return Err(PkiError::CertificateCount {
            path: path.to_path_buf(),
            count: certificates.len(),
            max: 1,
        });
    }
    let certificate = certificates.remove(0);
    let identity =
        read_certificate_identity(&certificate).map_err(|source| PkiError::BadCertificate {
            path: path.to_path_buf(),
            source,
        })?;
    if !identity.is_ca {
        return Err(PkiError::NotCa {
            path: path.to_path_buf(),
        });
    }
    Ok((certificate, identity))
}

/// Seconds since the Unix epoch by the system clock (0 if it is before 1970).
pub fn now_unix_s() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A CA ready to sign: its certificate, key, and an rcgen issuer built from them.
struct CountyCa {
    cert_path: PathBuf,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    identity: CertificateIdentity,
    key_pair: KeyPair,
    issuer: rcgen::Certificate,
}

impl CountyCa {
    fn load(dir: &Path) -> Result<CountyCa, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let (certificate, identity) = load_ca_certificate(&cert_path)?;
        let cert_pem = read_small_file(&cert_path)?;
        let key_pem = read_key_file(&key_path)?;
        let key_pair = KeyPair::from_pem(&key_pem).map_err(|error| PkiError::BadPem {
            path: key_path.clone(),
            expected: "private key",
            reason: error.to_string(),
        })?;
        check_key_matches(&key_pair, &certificate, &key_path, &cert_path)?;
        // rcgen signs with an issuer `Certificate`; rebuilding one from the
        // stored CA keeps its subject name and key identifier byte-identical,
        // which is all a leaf's issuer fields and signature depend on.
        let params = CertificateParams::from_ca_cert_der(&certificate).map_err(|error| {
            PkiError::BadCertificate {
                path: cert_path.clone(),
                source: IdentityError::NotX509 {
                    reason: error.to_string(),
                },
            }
        })?;
        let issuer = params.self_signed(&key_pair)?;
        Ok(CountyCa {
            cert_path,
            cert_der: certificate,
            cert_pem,
            identity,
            key_pair,
            issuer,
        })
    }

    /// May this CA issue `station` a certificate at `tier` for `validity`?
    fn check_issue(
        &self,
        station: &StationId,
        tier: Tier,
        validity: ValidityPeriod,
    ) -> Result<(), PkiError> {
        validity.check()?;
        let county = &self.identity.station;
        if !county.is_ancestor_or_self_of(station) {
            return Err(PkiError::OutsideCounty {
                station: station.clone(),
                county: county.clone(),
            });
        }
        let expected = tier_below_county(county, station)?;
        if expected != tier {
            return Err(PkiError::TierMismatch {
                station: station.clone(),
                county: county.clone(),
                expected,
                requested: tier,
            });
        }
        if validity.not_after_unix_s > self.identity.not_after_unix_s {
            return Err(PkiError::OutlivesCa {
                ca_path: self.cert_path.clone(),
                not_after_unix_s: validity.not_after_unix_s,
                ca_not_after_unix_s: self.identity.not_after_unix_s,
            });
        }
        Ok(())
    }

    /// A node certificate (PEM) for `key_pair`, signed by this CA.
    fn sign_node(
        &self,
        station: &StationId,
        tier: Tier,
        key_pair: &KeyPair,
        validity: ValidityPeriod,
    ) -> Result<String, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(station.as_str());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Every node is both a TLS client (towards its parent) and a server
        // (for its children), so the certificate serves both ends.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.subject_alt_names = identity_names(station, tier)?;
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial_number());
        set_validity(&mut params, validity)?;
        Ok(params
            .signed_by(key_pair, &self.issuer, &self.key_pair)?
            .pem())
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "civsync");
    name.push(DnType::CommonName, common_name);
    name
}

fn identity_names(station: &StationId, tier: Tier) -> Result<Vec<SanType>, PkiError> {
    let station_uri = Ia5String::try_from(format!("{STATION_URI_PREFIX}{station}"))?;
    let tier_uri = Ia5String::try_from(format!("{TIER_URI_PREFIX}{tier}"))?;
    Ok(vec![SanType::URI(station_uri), SanType::URI(tier_uri)])
}

fn set_validity(params: &mut CertificateParams, validity: ValidityPeriod) -> Result<(), PkiError> {
    let convert = |unix_s: i64| {
        time::OffsetDateTime::from_unix_timestamp(unix_s).map_err(|_| PkiError::EmptyValidity {
            not_before_unix_s: validity.not_before_unix_s,
            not_after_unix_s: validity.not_after_unix_s,
        })
    };
    params.not_before = convert(validity.not_before_unix_s)?;
    params.not_after = convert(validity.not_after_unix_s)?;
    Ok(())
}

fn random_serial_number() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // A positive integer that keeps its 16 bytes when DER-encoded.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn check_key_matches(
    key_pair: &KeyPair,
    certificate: &CertificateDer<'_>,
    key_path: &Path,
    cert_path: &Path,
) -> Result<(), PkiError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).map_err(|error| {
        PkiError::BadCertificate {
            path: cert_path.to_path_buf(),
            source: IdentityError::NotX509 {
                reason: error.to_string(),
            },
        }
    })?;
    if parsed.public_key().raw != key_pair.public_key_der().as_slice() {
        return Err(PkiError::KeyMismatch {
            key_path: key_path.to_path_buf(),
            cert_path: cert_path.to_path_buf(),
        });
    }
    Ok(())
}

/// Chain check with the same code the transport uses, so a node refuses to
/// start with credentials its peers would refuse.
pub(crate) fn verify_issued_by(
    chain: &[CertificateDer<'static>],
    ca_cert: &CertificateDer<'static>,
    now_unix_s: i64,
) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca_cert.clone())
        .map_err(|error| error.to_string())?;
    let leaf = rustls::server::ParsedCertificate::try_from(&chain[0])
        .map_err(|error| error.to_string())?;
    let now =
        UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now_unix_s).unwrap_or(0)));
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &leaf,
        &roots,
        &chain[1..],
        now,
        algorithms.all,
    )
    .map_err(|error| error.to_string())
}

fn read_small_file(path: &Path) -> Result<String, PkiError> {
    let metadata = fs::metadata(path).map_err(|source| read_error(path, source))?;
    if metadata.len() > PEM_FILE_BYTES_MAX {
        return Err(PkiError::TooLarge {
            path: path.to_path_buf(),
            len: metadata.len(),
            max: PEM_FILE_BYTES_MAX,
        });
    }
    let bytes = fs::read(path).map_err(|source| read_error(path, source))?;
    String::from_utf8(bytes).map_err(|_| PkiError::BadPem {
        path: path.to_path_buf(),
        expected: "file",
        reason: "not UTF-8 text".to_string(),
    })
}

fn read_key_file(path: &Path) -> Result<String, PkiError> {
    let metadata = fs::metadata(path).map_err(|source| read_error(path, source))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & KEY_FILE_FORBIDDEN_MODE_BITS != 0 {
        return Err(PkiError::KeyFileTooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    read_small_file(path)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let text = read_small_file(path)?;
    let mut certificates = Vec::new();
    for item in CertificateDer::pem_slice_iter(text.as_bytes()) {
        let certificate = item.map_err(|error| PkiError::BadPem {
            path: path.to_path_buf(),
            expected: "certificate",
            reason: error.to_string(),
        })?;
        certificates.push(certificate);
        if certificates.len() > CERTS_PER_FILE_MAX {
            break;
        }
    }
    if certificates.is_empty() || certificates.len() > CERTS_PER_FILE_MAX {
        return Err(PkiError::CertificateCount {
            path: path.to_path_buf(),
            count: certificates.len(),
            max: CERTS_PER_FILE_MAX,
        });
    }
    Ok(certificates)
}

fn read_error(path: &Path, source: io::Error) -> PkiError {
    if source.kind() == io::ErrorKind::NotFound {
        PkiError::Missing {
            path: path.to_path_buf(),
        }
    } else {
        PkiError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

fn refuse_existing(paths: &[&Path]) -> Result<(), PkiError> {
    for path in paths {
        if fs::symlink_metadata(path).is_ok() {
            return Err(PkiError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Writes `bytes` to a new file at `path` with `mode`, all or nothing: the
/// data goes to a temporary file created with `mode`, is synced, and is then
/// hard-linked to `path`, which fails rather than replace an existing file.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let write_error = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.{}.partial", std::process::id()));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    let linked = written.and_then(|()| fs::hard_link(&temporary, path));
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            return Err(PkiError::AlreadyExists {
                path: path.to_path_buf(),
            })
        }
        Err(source) => return Err(write_error(source)),
    }
    if let Some(parent) = path.parent() {
        // The new name must survive a power cut too.
        if let Ok(directory) = fs::File::open(parent) {
            directory.sync_all().map_err(write_error)?;
        }
    }
    Ok(())
}

mod renewal;
pub use renewal::{
    certificate_expiry, renew_node_certificate, Renewed, EXPIRY_WARNING_DAYS, PREVIOUS_SUFFIX,
};

#[cfg(test)]
mod tests;
