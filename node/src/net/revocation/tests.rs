use super::*;
use crate::net::pki::{
    init_county_ca, issue_node_certificate, issue_node_certificate_for_period, now_unix_s,
    ValidityPeriod, CA_CERT_FILE, NODE_CERT_FILE,
};
use civsync_protocol::Tier;

fn id(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

struct County {
    _root: tempfile::TempDir,
    ca_dir: PathBuf,
    ca_cert: CertificateDer<'static>,
    node_dirs: PathBuf,
}

fn county() -> County {
    let root = tempfile::tempdir().unwrap();
    let ca_dir = root.path().join("ca");
    init_county_ca(&ca_dir, &id("xh"), 3650).unwrap();
    let (ca_cert, _) = load_ca_certificate(&ca_dir.join(CA_CERT_FILE)).unwrap();
    County {
        ca_dir,
        ca_cert,
        node_dirs: root.path().to_path_buf(),
        _root: root,
    }
}

impl County {
    fn issue(&self, station: &str, tier: Tier) -> Vec<u8> {
        let dir = self.node_dirs.join(station.replace('/', "-"));
        issue_node_certificate(&self.ca_dir, &id(station), tier, &dir, 365).unwrap();
        read_certificate_file(&dir.join(NODE_CERT_FILE)).unwrap()
    }

    fn signed_text(&self) -> String {
        fs::read_to_string(self.ca_dir.join(REVOCATION_LIST_FILE)).unwrap()
    }
}

#[test]
fn a_genuine_list_verifies_and_revokes_the_station_issued_before_it() {
    let county = county();
    let stolen = county.issue("xh/t1/v2", Tier::Village);
    let other = county.issue("xh/t1/v1", Tier::Village);
    let revoked = revoke_at_county(
        &county.ca_dir,
        &id("xh/t1/v2"),
        None,
        "office PC stolen",
        now_unix_s() + 1,
    )
    .unwrap();
    assert_eq!(revoked.list.version, 1);
    let list = verify_revocation_list(&county.signed_text(), &county.ca_cert).unwrap();
    assert_eq!(list, revoked.list);
    let entry = list.revoking(&stolen).expect("the stolen PC's certificate");
    assert_eq!(entry.reason, "office PC stolen");
    assert!(list.revoking(&other).is_none());

    // The next revocation raises the version and keeps the first entry.
    let second = revoke_at_county(
        &county.ca_dir,
        &id("xh/t1/v1"),
        None,
        "broken",
        now_unix_s() + 1,
    )
    .unwrap();
    assert_eq!(second.list.version, 2);
    assert_eq!(second.list.entries.len(), 2);
}

#[test]
fn a_certificate_issued_after_the_revocation_is_not_revoked() {
    let county = county();
    let now = now_unix_s();
    revoke_at_county(&county.ca_dir, &id("xh/t1/v2"), None, "stolen", now - 10).unwrap();
    let list = verify_revocation_list(&county.signed_text(), &county.ca_cert).unwrap();
    let replacement = county.issue("xh/t1/v2", Tier::Village);
    assert!(list.revoking(&replacement).is_none());
    // One issued before it (backdated like every certificate) is.
    let dir = county.node_dirs.join("old");
    let period = ValidityPeriod::days_from(now - 3600, 365).unwrap();
    issue_node_certificate_for_period(&county.ca_dir, &id("xh/t1/v2"), Tier::Village, &dir, period)
        .unwrap();
    let old = read_certificate_file(&dir.join(NODE_CERT_FILE)).unwrap();
    assert!(list.revoking(&old).is_some());
}

#[test]
fn one_certificate_can_be_revoked_by_its_fingerprint() {
    let county = county();
    let first = county.issue("xh/t1/v2", Tier::Village);
    let first_path = county.node_dirs.join("xh-t1-v2").join(NODE_CERT_FILE);
    let second_dir = county.node_dirs.join("second");
    issue_node_certificate(
        &county.ca_dir,
        &id("xh/t1/v2"),
        Tier::Village,
        &second_dir,
        365,
    )
    .unwrap();
    let second = read_certificate_file(&second_dir.join(NODE_CERT_FILE)).unwrap();
    revoke_at_county(
        &county.ca_dir,
        &id("xh/t1/v2"),
        Some(&first_path),
        "key copied",
        now_unix_s(),
    )
    .unwrap();
    let list = verify_revocation_list(&county.signed_text(), &county.ca_cert).unwrap();
    assert!(list.revoking(&first).is_some());
    assert!(list.revoking(&second).is_none());
}

#[test]
fn a_tampered_list_is_refused() {
    let county = county();
    county.issue("xh/t1/v2", Tier::Village);
    revoke_at_county(
        &county.ca_dir,
        &id("xh/t1/v2"),
        None,
        "stolen",
        now_unix_s(),
    )
    .unwrap();
    let mut signed: SignedRevocationList = serde_json::from_str(&county.signed_text()).unwrap();
    signed.list = signed.list.replace("xh/t1/v2", "xh/t1/v1");
    let error = verify_revocation_list(&signed.to_text(), &county.ca_cert).unwrap_err();
    assert!(matches!(error, RevocationError::BadSignature), "{error}");
    assert_eq!(error.field(), "signature");
    // A signature that is not even hex, and a file that is no list.
    signed.signature = "zz".to_string();
    assert!(matches!(
        verify_revocation_list(&signed.to_text(), &county.ca_cert),
        Err(RevocationError::BadSignature)
    ));
    assert!(matches!(
        verify_revocation_list("{}", &county.ca_cert),
        Err(RevocationError::Malformed { .. })
    ));
}

#[test]
fn a_list_signed_by_another_ca_is_refused() {
    let county = county();
    let other = self::county();
    revoke_at_county(&other.ca_dir, &id("xh/t1/v2"), None, "stolen", now_unix_s()).unwrap();
    let error = verify_revocation_list(&other.signed_text(), &county.ca_cert).unwrap_err();
    assert!(matches!(error, RevocationError::BadSignature), "{error}");
}

#[test]
fn an_older_or_equal_version_is_not_put_in_force() {
    let county = county();
    let stolen = county.issue("xh/t1/v2", Tier::Village);
    revoke_at_county(
        &county.ca_dir,
        &id("xh/t1/v2"),
        None,
        "stolen",
        now_unix_s() + 1,
    )
    .unwrap();
    let first = county.signed_text();
    revoke_at_county(
        &county.ca_dir,
        &id("xh/t1/v3"),
        None,
        "broken",
        now_unix_s() + 1,
    )
    .unwrap();
    let second = county.signed_text();

    let set = RevocationSet::default();
    assert_eq!(set.version(), 0);
    assert!(set.revoking(&stolen).is_none());
    set.accept_signed(&second, &county.ca_cert).unwrap();
    assert_eq!(set.version(), 2);
    for stale in [&first, &second] {
        let error = set.accept_signed(stale, &county.ca_cert).unwrap_err();
        assert!(
            matches!(error, RevocationError::NotNewer { held: 2, .. }),
            "{error}"
        );
    }
    assert_eq!(set.version(), 2);
    assert!(set.revoking(&stolen).is_some());
}

#[test]
fn a_bad_list_changes_nothing_in_force() {
    let county = county();
    let stolen = county.issue("xh/t1/v2", Tier::Village);
    revoke_at_county(
        &county.ca_dir,
        &id("xh/t1/v2"),
        None,
        "stolen",
        now_unix_s() + 1,
    )
    .unwrap();
    let set = RevocationSet::default();
    set.accept_signed(&county.signed_text(), &county.ca_cert)
        .unwrap();
    // Version 9 with everything un-revoked, but not signed by the CA.
    let mut signed: SignedRevocationList = serde_json::from_str(&county.signed_text()).unwrap();
    let mut list: RevocationList = serde_json::from_str(&signed.list).unwrap();
    list.version = 9;
    list.entries.clear();
    signed.list = serde_json::to_string(&list).unwrap();
    assert!(set
        .accept_signed(&signed.to_text(), &county.ca_cert)
        .is_err());
    assert_eq!(set.version(), 1);
    assert!(set.revoking(&stolen).is_some());
}

#[test]
fn entries_are_checked_when_revoking() {
    let county = county();
    let error = revoke_at_county(&county.ca_dir, &id("zz/t1"), None, "x", 1).unwrap_err();
    assert_eq!(error.field(), "station");
    let error = revoke_at_county(&county.ca_dir, &id("xh/t1"), None, "  ", 1).unwrap_err();
    assert_eq!(error.field(), "reason");
    let long = "x".repeat(REASON_CHARS_MAX + 1);
    let error = revoke_at_county(&county.ca_dir, &id("xh/t1"), None, &long, 1).unwrap_err();
    assert_eq!(error.field(), "reason");
    assert!(!county.ca_dir.join(REVOCATION_LIST_FILE).exists());
}
