//! A genuine certificate verifies; each forgery is refused with its reason.

use super::*;
use crate::files::report::CertificateActivity;
use crate::net::pki::{
    init_county_ca, issue_node_certificate, issue_node_certificate_for_period, load_ca_certificate,
    now_unix_s, ValidityPeriod, CA_CERT_FILE,
};
use civsync_protocol::Tier;
use std::path::Path;

fn id(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

/// A county CA in `root/<name>-ca`; its certificate and county.
fn county_ca(root: &Path, county: &str) -> (std::path::PathBuf, CertificateDer<'static>) {
    let dir = root.join(format!("{}-ca", county.replace('/', "-")));
    init_county_ca(&dir, &id(county), 3650).unwrap();
    let (ca, _) = load_ca_certificate(&dir.join(CA_CERT_FILE)).unwrap();
    (dir, ca)
}

/// The identity of `station` issued by the CA in `ca_dir`.
fn node(ca_dir: &Path, station: &str, tier: Tier) -> NodeIdentity {
    let dir = ca_dir.with_file_name(format!(
        "{}-{}",
        ca_dir.file_name().unwrap().to_string_lossy(),
        station.replace('/', "-")
    ));
    issue_node_certificate(ca_dir, &id(station), tier, &dir, 365).unwrap();
    NodeIdentity::load(&dir).unwrap()
}

fn certificate(home: &str, recorded_by: &str) -> ServiceCertificate {
    let line = |date: &str, hours_centi| CertificateActivity {
        date: date.to_string(),
        name: "健康义诊".to_string(),
        content: "量血压".to_string(),
        station: id(home),
        hours_centi,
    };
    ServiceCertificate {
        volunteer_name: "王秀英".to_string(),
        id_masked: "4101**********123X".to_string(),
        volunteer_number: "V1".to_string(),
        home_station: id(home),
        total_hours_centi: 450,
        activities: vec![line("2026-11-03", 250), line("2026-11-10", 200)],
        recording_station: id(recorded_by),
        recording_station_name: "东乡所".to_string(),
        issued_on: "2026-11-23".to_string(),
        verification_code: String::new(),
        seal: None,
    }
}

fn sealed(home: &str, by: &NodeIdentity) -> ServiceCertificate {
    let mut certificate = certificate(home, by.station.as_str());
    seal_certificate(&mut certificate, by).unwrap();
    certificate
}

fn fields(verdict: &CertificateVerdict) -> Vec<&str> {
    verdict.problems.iter().map(|p| p.field.as_str()).collect()
}

struct County {
    _root: tempfile::TempDir,
    ca_dir: std::path::PathBuf,
    ca: CertificateDer<'static>,
    township: NodeIdentity,
}

fn county() -> County {
    let root = tempfile::tempdir().unwrap();
    let (ca_dir, ca) = county_ca(root.path(), "xh");
    let township = node(&ca_dir, "xh/t1", Tier::Township);
    County {
        _root: root,
        ca_dir,
        ca,
        township,
    }
}

fn verify(county: &County, certificate: &ServiceCertificate) -> CertificateVerdict {
    verify_certificate(certificate, &county.ca, &id("xh"), now_unix_s())
}

#[test]
fn a_sealed_certificate_verifies_and_survives_its_json() {
    let county = county();
    let certificate = sealed("xh/t1/v1", &county.township);
    let json = serde_json::to_string(&certificate).unwrap();
    let received: ServiceCertificate = serde_json::from_str(&json).unwrap();
    let verdict = verify(&county, &received);
    assert!(verdict.valid, "{verdict:?}");
    assert!(
        verdict.summary.starts_with("valid: 4.50 hours"),
        "{verdict:?}"
    );
    assert_eq!(verdict.issuer_station, Some(id("xh/t1")));
    assert_eq!(certificate.verification_code.len(), 19);
    assert_eq!(verdict.verification_code, certificate.verification_code);
}

#[test]
fn changed_hours_are_named() {
    let county = county();
    let mut forged = sealed("xh/t1/v1", &county.township);
    forged.total_hours_centi = 45_000;
    forged.activities[1].hours_centi = 44_750;
    let verdict = verify(&county, &forged);
    assert!(!verdict.valid);
    assert_eq!(fields(&verdict), ["activities[1]", "total_hours_centi"]);
    assert!(
        verdict.summary.contains(
            "signature does not match the content (fields changed since signing: activities[1], total_hours_centi)"
        ),
        "{verdict:?}"
    );
}

#[test]
fn a_changed_volunteer_is_named() {
    let county = county();
    let mut forged = sealed("xh/t1/v1", &county.township);
    forged.volunteer_name = "李四".to_string();
    forged.volunteer_number = "V9".to_string();
    let verdict = verify(&county, &forged);
    assert!(!verdict.valid);
    assert_eq!(fields(&verdict), ["volunteer_name", "volunteer_number"]);
}

#[test]
fn an_added_or_removed_activity_line_is_named() {
    let county = county();
    let genuine = sealed("xh/t1/v1", &county.township);
    let mut removed = genuine.clone();
    removed.activities.pop();
    removed.total_hours_centi = 250;
    let verdict = verify(&county, &removed);
    assert_eq!(fields(&verdict), ["total_hours_centi", "activities[1]"]);
    assert!(verdict.problems[1]
        .reason
        .starts_with("removed since signing"));
    let mut added = genuine;
    added.activities.push(added.activities[0].clone());
    assert_eq!(fields(&verify(&county, &added)), ["activities[2]"]);
}

#[test]
fn a_field_list_re_digested_after_a_change_breaks_the_signature() {
    let county = county();
    let mut forged = sealed("xh/t1/v1", &county.township);
    forged.total_hours_centi = 45_000;
    let redigested = crate::files::report::certificate_fields(&forged);
    forged.seal.as_mut().unwrap().fields = redigested;
    let verdict = verify(&county, &forged);
    assert_eq!(fields(&verdict), ["seal"]);
    assert!(verdict.problems[0]
        .reason
        .starts_with("the signature does not match the seal's field list"));
}

#[test]
fn a_key_not_certified_by_the_county_ca_is_refused() {
    let county = county();
    // Someone makes their own CA for "xh" and signs as the township.
    let root = tempfile::tempdir().unwrap();
    let (rogue_ca, _) = county_ca(root.path(), "xh");
    let rogue = node(&rogue_ca, "xh/t1", Tier::Township);
    let verdict = verify(&county, &sealed("xh/t1/v1", &rogue));
    assert!(!verdict.valid);
    assert_eq!(fields(&verdict), ["seal.issuer_certificate"]);
    assert!(
        verdict.problems[0]
            .reason
            .starts_with("issuer certificate not signed by this county's CA (xh)"),
        "{verdict:?}"
    );
}

#[test]
fn an_issuer_certificate_of_another_county_is_refused() {
    let county = county();
    let root = tempfile::tempdir().unwrap();
    let (other_ca, _) = county_ca(root.path(), "yc");
    let other = node(&other_ca, "yc/t1", Tier::Township);
    let mut certificate = certificate("yc/t1/v1", "yc/t1");
    seal_certificate(&mut certificate, &other).unwrap();
    let verdict = verify(&county, &certificate);
    assert_eq!(fields(&verdict), ["seal.issuer_certificate"]);
    assert_eq!(
        verdict.problems[0].reason,
        "issuer certificate is of station yc/t1, outside county xh"
    );
}

#[test]
fn an_issuer_not_above_the_home_station_is_refused() {
    let county = county();
    let other_township = node(&county.ca_dir, "xh/t2", Tier::Township);
    let village = node(&county.ca_dir, "xh/t1/v1", Tier::Village);
    let verdict = verify(&county, &sealed("xh/t1/v1", &other_township));
    assert_eq!(fields(&verdict), ["home_station"]);
    assert_eq!(
        verdict.problems[0].reason,
        "issuer station xh/t2 may not certify volunteers of xh/t1/v1"
    );
    // A station certifies its own volunteers, and nobody else's.
    assert!(verify(&county, &sealed("xh/t1/v1", &village)).valid);
    let verdict = verify(&county, &sealed("xh/t1/v2", &village));
    assert_eq!(
        verdict.problems[0].reason,
        "issuer station xh/t1/v1 may not certify volunteers of xh/t1/v2"
    );
}

#[test]
fn a_recording_station_other_than_the_signer_is_named() {
    let county = county();
    let mut certificate = certificate("xh/t1/v1", "xh");
    seal_certificate(&mut certificate, &county.township).unwrap();
    let verdict = verify(&county, &certificate);
    assert_eq!(fields(&verdict), ["recording_station"]);
}

#[test]
fn an_expired_issuer_certificate_is_refused() {
    let county = county();
    let now = now_unix_s();
    let dir = county.ca_dir.with_file_name("expired-t3");
    let past = ValidityPeriod {
        not_before_unix_s: now - 10 * 86_400,
        not_after_unix_s: now - 5 * 86_400,
    };
    issue_node_certificate_for_period(&county.ca_dir, &id("xh/t3"), Tier::Township, &dir, past)
        .unwrap();
    let expired = NodeIdentity::load_at(&dir, now - 6 * 86_400).unwrap();
    let verdict = verify(&county, &sealed("xh/t3/v1", &expired));
    assert_eq!(fields(&verdict), ["seal.issuer_certificate"]);
    assert!(
        verdict.problems[0]
            .reason
            .starts_with("issuer certificate expired on"),
        "{verdict:?}"
    );
}

#[test]
fn a_wrong_printed_code_or_no_seal_is_refused() {
    let county = county();
    let mut certificate = sealed("xh/t1/v1", &county.township);
    certificate.verification_code = "0000-0000-0000-0000".to_string();
    assert_eq!(
        fields(&verify(&county, &certificate)),
        ["verification_code"]
    );
    certificate.seal = None;
    assert_eq!(fields(&verify(&county, &certificate)), ["seal"]);
}
