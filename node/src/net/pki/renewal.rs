//! Renewing a node certificate in place (`civsync pki renew`) and the
//! expiry warning a node shows about its own certificate. A child of `pki`:
//! it signs with the same county CA (`CountyCa`) as `issue`.

use super::*;

/// What `renew_node_certificate` did besides writing the new certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    pub issued: IssuedCertificate,
    /// A new key pair was made (asked for, or the folder held none).
    pub new_key: bool,
    /// Where the replaced certificate (and key, with a new key) were kept.
    pub previous: Vec<PathBuf>,
}

/// Suffix of the files a renewal replaced (kept for the technician).
pub const PREVIOUS_SUFFIX: &str = "previous";
/// Suffix of a renewal's files before they take their final names.
const NEXT_SUFFIX: &str = "next";

/// `civsync pki renew`: a fresh certificate for `station` (tier from its
/// depth below the county) in `out_dir`, for the key already there unless
/// `new_key` (or the folder holds no key: then it is `issue`). Replaced
/// files are kept as `node.crt.previous` / `node.key.previous`. The new files
/// are written whole under a temporary name first and then renamed into
/// place, key before certificate.
pub fn renew_node_certificate(
    ca_dir: &Path,
    station: &StationId,
    out_dir: &Path,
    validity_days: u32,
    new_key: bool,
) -> Result<Renewed, PkiError> {
    let validity = ValidityPeriod::days_from(now_unix_s(), validity_days)?;
    let ca = CountyCa::load(ca_dir)?;
    let county = &ca.identity.station;
    if !county.is_ancestor_or_self_of(station) {
        return Err(PkiError::OutsideCounty {
            station: station.clone(),
            county: county.clone(),
        });
    }
    let tier = tier_below_county(county, station)?;
    let cert_path = out_dir.join(NODE_CERT_FILE);
    let key_path = out_dir.join(NODE_KEY_FILE);
    let key_held = fs::symlink_metadata(&key_path).is_ok();
    if !key_held && fs::symlink_metadata(&cert_path).is_err() {
        let issued = issue_node_certificate_for_period(ca_dir, station, tier, out_dir, validity)?;
        return Ok(Renewed {
            issued,
            new_key: true,
            previous: Vec::new(),
        });
    }
    ca.check_issue(station, tier, validity)?;
    let ca_copy_path = out_dir.join(CA_CERT_FILE);
    match fs::read(&ca_copy_path) {
        Ok(existing) if existing == ca.cert_pem.as_bytes() => {}
        Ok(_) => return Err(PkiError::AlreadyExists { path: ca_copy_path }),
        Err(source) => return Err(read_error(&ca_copy_path, source)),
    }
    let make_key = new_key || !key_held;
    let key_pair = if make_key {
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?
    } else {
        let pem = read_key_file(&key_path)?;
        KeyPair::from_pem(&pem).map_err(|error| PkiError::BadPem {
            path: key_path.clone(),
            expected: "private key",
            reason: error.to_string(),
        })?
    };
    let certificate_pem = ca.sign_node(station, tier, &key_pair, validity)?;

    let with_suffix = |path: &Path, suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{suffix}"));
        PathBuf::from(name)
    };
    let mut replaced = vec![(
        cert_path.clone(),
        certificate_pem.into_bytes(),
        CERT_FILE_MODE,
    )];
    if make_key {
        replaced.insert(
            0,
            (
                key_path.clone(),
                key_pair.serialize_pem().into_bytes(),
                KEY_FILE_MODE,
            ),
        );
    }
    // Every new file whole on disk before any old one moves.
    for (path, bytes, mode) in &replaced {
        let next = with_suffix(path, NEXT_SUFFIX);
        let _ = fs::remove_file(&next);
        write_new_file(&next, bytes, *mode)?;
    }
    let mut previous = Vec::new();
    for (path, _, _) in &replaced {
        let kept = with_suffix(path, PREVIOUS_SUFFIX);
        let rename = |from: &Path, to: &Path| {
            fs::rename(from, to).map_err(|source| PkiError::Write {
                path: to.to_path_buf(),
                source,
            })
        };
        if fs::symlink_metadata(path).is_ok() {
            rename(path, &kept)?;
            previous.push(kept);
        }
        rename(&with_suffix(path, NEXT_SUFFIX), path)?;
    }
    if let Ok(directory) = fs::File::open(out_dir) {
        directory.sync_all().map_err(|source| PkiError::Write {
            path: out_dir.to_path_buf(),
            source,
        })?;
    }
    Ok(Renewed {
        issued: IssuedCertificate {
            station: station.clone(),
            tier,
            cert_path,
            key_path,
            validity,
        },
        new_key: make_key,
        previous,
    })
}

/// A node's own certificate is flagged this many days before it expires.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Whole days left until `not_after_unix_s` (negative once expired), and a
/// warning when it ends within [`EXPIRY_WARNING_DAYS`]. Pure.
pub fn certificate_expiry(now_unix_s: i64, not_after_unix_s: i64) -> (i64, Option<String>) {
    let remaining_s = not_after_unix_s.saturating_sub(now_unix_s);
    let days = remaining_s.div_euclid(SECONDS_PER_DAY);
    let warning = if remaining_s <= 0 {
        Some("this node's certificate has expired: no peer accepts it; ask the county for a new one (civsync pki renew)".to_string())
    } else if remaining_s <= EXPIRY_WARNING_DAYS * SECONDS_PER_DAY {
        Some(format!(
            "this node's certificate expires in {days} days; ask the county to renew it (civsync pki renew) before then"
        ))
    } else {
        None
    };
    (days, warning)
}
