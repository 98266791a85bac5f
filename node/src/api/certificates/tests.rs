//! Certificates through the real router: a genuine one, from the node's own
//! API, verifies at `POST certificates/verify`; each forgery is answered
//! with what is wrong.

use crate::api::test_api::{id_number, station, TestApi};
use crate::context::certificates::seal_certificate;
use crate::files::report::ServiceCertificate;
use crate::net::pki::{init_county_ca, issue_node_certificate, NodeIdentity};
use civsync_protocol::Tier;
use serde_json::{json, Value};
use std::path::Path;

const VILLAGE: &str = "xh/t1/v1";

/// A county node with volunteer V1 of the village, who served 2.5 + 8 hours.
async fn county_with_service() -> TestApi {
    let county = TestApi::start("xh", Tier::County).await;
    let volunteer = json!({
        "number": "V1", "name": "赵敏", "sex": "女", "id_number": id_number(1),
    });
    let (status, body) = county
        .post(&format!("volunteers?station={VILLAGE}"), volunteer)
        .await;
    assert_eq!(status, 201, "{body}");
    for (id, date, hours) in [("A1", "2026-10-03", 2.5), ("A2", "2026-10-04", 8.0)] {
        let activity = json!({
            "id": id, "name": "健康义诊", "date": date, "place": "村卫生室",
            "content": "义诊", "form": "help", "category": "health",
            "person_in_charge": "李明", "beneficiaries": 20,
            "records": [{"volunteer": "V1", "hours": hours}]
        });
        let (status, body) = county
            .post(&format!("activities?station={VILLAGE}"), activity)
            .await;
        assert_eq!(status, 201, "{body}");
    }
    county
}

async fn genuine(county: &TestApi) -> ServiceCertificate {
    let (status, body) = county
        .get(&format!("certificates/V1?station={VILLAGE}"))
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

/// The verdict's status, `valid` and the fields it names.
async fn verify(
    county: &TestApi,
    certificate: &ServiceCertificate,
) -> (u16, bool, Vec<String>, Value) {
    let (status, body) = county
        .post(
            "certificates/verify",
            serde_json::to_value(certificate).unwrap(),
        )
        .await;
    let fields = body["problems"]
        .as_array()
        .map(|problems| {
            problems
                .iter()
                .map(|p| p["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (status, body["valid"] == true, fields, body)
}

/// A node identity for `at` issued by the CA in `ca_dir`.
fn identity(ca_dir: &Path, at: &str, tier: Tier) -> NodeIdentity {
    let out = ca_dir.with_file_name(format!(
        "{}-{}",
        ca_dir.file_name().unwrap().to_string_lossy(),
        at.replace('/', "-")
    ));
    issue_node_certificate(ca_dir, &station(at), tier, &out, 365).unwrap();
    NodeIdentity::load(&out).unwrap()
}

fn resealed(mut certificate: ServiceCertificate, by: &NodeIdentity) -> ServiceCertificate {
    certificate.recording_station = by.station.clone();
    certificate.seal = None;
    seal_certificate(&mut certificate, by).unwrap();
    certificate
}

#[tokio::test]
async fn a_certificate_from_the_api_verifies_and_a_changed_one_names_its_fields() {
    let county = county_with_service().await;
    let certificate = genuine(&county).await;
    assert_eq!(certificate.total_hours_centi, 1_050);
    assert_eq!(certificate.home_station, station(VILLAGE));
    let seal = certificate
        .seal
        .as_ref()
        .expect("the API signs what it issues");
    assert!(seal
        .issuer_certificate
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let (status, valid, fields, body) = verify(&county, &certificate).await;
    assert_eq!((status, valid), (200, true), "{body}");
    assert!(fields.is_empty());
    assert_eq!(body["issuer_station"], "xh");
    assert_eq!(
        body["verification_code"],
        certificate.verification_code.as_str()
    );

    // The printed form carries the same code.
    let text = county
        .http
        .get(county.url(&format!("certificates/V1?station={VILLAGE}&format=text")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("验证码："), "{text}");

    let mut hours = certificate.clone();
    hours.total_hours_centi = 10_500;
    let (status, valid, fields, body) = verify(&county, &hours).await;
    assert_eq!((status, valid), (200, false));
    assert_eq!(fields, ["total_hours_centi"]);
    assert!(
        body["summary"]
            .as_str()
            .unwrap()
            .contains("signature does not match the content (fields changed since signing: total_hours_centi)"),
        "{body}"
    );

    let mut volunteer = certificate;
    volunteer.volunteer_name = "钱多多".to_string();
    let (_, valid, fields, _) = verify(&county, &volunteer).await;
    assert!(!valid);
    assert_eq!(fields, ["volunteer_name"]);
}

#[tokio::test]
async fn a_signature_by_a_key_outside_the_county_ca_is_refused() {
    let county = county_with_service().await;
    let certificate = genuine(&county).await;
    let root = tempfile::tempdir().unwrap();
    // A CA someone made for the same county name, and a key it certified.
    let rogue_ca = root.path().join("rogue-ca");
    init_county_ca(&rogue_ca, &station("xh"), 3650).unwrap();
    let rogue = identity(&rogue_ca, "xh", Tier::County);
    let (_, valid, fields, body) = verify(&county, &resealed(certificate.clone(), &rogue)).await;
    assert!(!valid);
    assert_eq!(fields, ["seal.issuer_certificate"]);
    assert!(
        body["problems"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("issuer certificate not signed by this county's CA (xh)"),
        "{body}"
    );

    // Another county's genuine certificate.
    let other_ca = root.path().join("yc-ca");
    init_county_ca(&other_ca, &station("yc"), 3650).unwrap();
    let other = identity(&other_ca, "yc", Tier::County);
    let (_, valid, fields, body) = verify(&county, &resealed(certificate, &other)).await;
    assert!(!valid);
    assert_eq!(fields, ["seal.issuer_certificate"]);
    assert_eq!(
        body["problems"][0]["reason"],
        "issuer certificate is of station yc, outside county xh"
    );
}

#[tokio::test]
async fn an_issuer_that_is_not_above_the_home_station_is_refused() {
    let county = county_with_service().await;
    let certificate = genuine(&county).await;
    // A township of this very county, but not the village's.
    let ca_dir = county.ctx.data_dir.join("county-ca");
    let township = identity(&ca_dir, "xh/t2", Tier::Township);
    let (_, valid, fields, body) = verify(&county, &resealed(certificate, &township)).await;
    assert!(!valid);
    assert_eq!(fields, ["home_station"]);
    assert_eq!(
        body["problems"][0]["reason"],
        "issuer station xh/t2 may not certify volunteers of xh/t1/v1"
    );
}

#[tokio::test]
async fn a_node_certifies_only_its_subtree_and_refuses_a_body_that_is_no_certificate() {
    let village = TestApi::start(VILLAGE, Tier::Village).await;
    let (status, body) = village.get("certificates/V1?station=xh/t1/v2").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["field"], "station");
    let (status, body) = village
        .post("certificates/verify", json!({"volunteer_name": "x"}))
        .await;
    assert_eq!(status, 400, "{body}");
}
