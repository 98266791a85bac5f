//! Certificate revocation across a county of real `civsync run` processes
//! over QUIC on 127.0.0.1: county xh, township xh/t1, villages xh/t1/v1 and
//! xh/t1/v2. The county technician revokes v2's certificate (its PC was
//! stolen) with `civsync pki revoke` and publishes the signed list to the
//! county node; then
//! (a) the township closes its live link with v2 within a minute of
//!     putting the list in force, and says why on its status page;
//! (b) v2's next handshake with the township is refused, and v2's status
//!     names the reason;
//! (c) the list reaches v1, two levels below the county;
//! (d) a list with a bad signature (or an old version) is refused by the
//!     county node and changes nothing anywhere.

use civsync_tests::{certified, civsync, describe_nodes, pki_init, wait_until, TestNode};
use serde_json::Value;
use std::time::Duration;

/// Longest wait for links to come up or a list to travel down the county.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The promise: a live link with a revoked peer ends within a minute of the
/// node learning of the revocation.
const CUT_OFF_TIMEOUT: Duration = Duration::from_secs(60);
const REASON: &str = "office PC stolen on 2026-12-01";

fn revocation_version(node: &TestNode) -> Result<u64, String> {
    let answer = node.get("revocations").map_err(|e| e.to_string())?;
    answer["version"]
        .as_u64()
        .ok_or_else(|| format!("no version in {answer}"))
}

fn peer(node: &TestNode, station: &str) -> Result<Value, String> {
    node.peer_status(station)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} does not know {station} yet", node.station))
}

fn connected(node: &TestNode, station: &str) -> Result<(), String> {
    let status = peer(node, station)?;
    if status["connected"].as_bool() == Some(true) {
        Ok(())
    } else {
        Err(format!(
            "{} not connected to {station}: {status}",
            node.station
        ))
    }
}

#[test]
fn a_revoked_village_is_cut_off_refused_and_the_list_reaches_the_county_unforged() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("county-ca");
    pki_init(&ca, "xh").unwrap();
    let mut county = certified(dir.path(), &ca, "xh", "county", None);
    let mut township = certified(dir.path(), &ca, "xh/t1", "township", Some(county.quic));
    let mut v1 = certified(dir.path(), &ca, "xh/t1/v1", "village", Some(township.quic));
    let mut v2 = certified(dir.path(), &ca, "xh/t1/v2", "village", Some(township.quic));
    for node in [&mut county, &mut township, &mut v1, &mut v2] {
        node.start().unwrap();
    }
    let everyone = || describe_nodes(&[&county, &township, &v1, &v2]);
    wait_until(SETTLE_TIMEOUT, || {
        connected(&county, "xh/t1")?;
        connected(&township, "xh/t1/v1")?;
        connected(&township, "xh/t1/v2")
    })
    .unwrap_or_else(|e| panic!("the county did not link up: {e}\n{}", everyone()));
    assert_eq!(revocation_version(&township), Ok(0));

    // The technician revokes v2 at the county and publishes the list.
    let ca_text = ca.to_string_lossy().into_owned();
    let printed = civsync(&[
        "pki",
        "revoke",
        "--ca",
        &ca_text,
        "--station",
        "xh/t1/v2",
        "--reason",
        REASON,
    ])
    .unwrap();
    assert!(printed.contains("version 1"), "{printed}");
    let list_file = ca.join("revocations.json");
    let api = format!("http://{}", county.api);
    let published = civsync(&[
        "pki",
        "publish-revocations",
        "--file",
        &list_file.to_string_lossy(),
        "--api",
        &api,
        "--data-dir",
        &county.dir.to_string_lossy(),
    ])
    .unwrap();
    assert!(published.contains(REASON), "{published}");
    assert_eq!(revocation_version(&county), Ok(1));

    // (a) The township puts the list in force, then cuts v2 off within a
    // minute, naming the reason.
    wait_until(SETTLE_TIMEOUT, || match revocation_version(&township)? {
        1 => Ok(()),
        other => Err(format!("township holds version {other}")),
    })
    .unwrap_or_else(|e| panic!("the list did not reach the township: {e}\n{}", everyone()));
    let cut_off = wait_until(CUT_OFF_TIMEOUT, || {
        let status = peer(&township, "xh/t1/v2")?;
        let error = status["last_error"].as_str().unwrap_or_default();
        if status["connected"].as_bool() == Some(false) && error.contains(REASON) {
            Ok(())
        } else {
            Err(format!("township's status of v2: {status}"))
        }
    })
    .unwrap_or_else(|e| panic!("v2 was not cut off: {e}\n{}", everyone()));
    assert!(cut_off < CUT_OFF_TIMEOUT, "{cut_off:?}");

    // (b) v2 dials again and is refused at the handshake, and says why.
    let failures_before = peer(&v2, "xh/t1").unwrap()["connect_failures"]
        .as_u64()
        .unwrap_or(0);
    wait_until(SETTLE_TIMEOUT, || {
        let status = peer(&v2, "xh/t1")?;
        let failures = status["connect_failures"].as_u64().unwrap_or(0);
        let error = status["last_error"].as_str().unwrap_or_default();
        if failures > failures_before && error.contains("revoked") && error.contains(REASON) {
            Ok(())
        } else {
            Err(format!("v2's status of its parent: {status}"))
        }
    })
    .unwrap_or_else(|e| panic!("v2's handshake was not refused: {e}\n{}", everyone()));
    assert!(connected(&township, "xh/t1/v2").is_err());

    // (c) The list reached v1, two levels below the county, and v1 keeps
    // syncing.
    wait_until(SETTLE_TIMEOUT, || match revocation_version(&v1)? {
        1 => Ok(()),
        other => Err(format!("v1 holds version {other}")),
    })
    .unwrap_or_else(|e| panic!("the list did not reach v1: {e}\n{}", everyone()));
    let at_v1 = v1.get("revocations").unwrap();
    assert_eq!(at_v1["entries"][0]["station"], "xh/t1/v2");
    assert_eq!(at_v1["entries"][0]["reason"], REASON);
    connected(&township, "xh/t1/v1").unwrap();

    // (d) A forged list — v2 un-revoked under a higher version, the old
    // signature kept — is refused, and so is the genuine list replayed.
    let genuine = std::fs::read_to_string(&list_file).unwrap();
    let mut signed: Value = serde_json::from_str(&genuine).unwrap();
    let mut list: Value = serde_json::from_str(signed["list"].as_str().unwrap()).unwrap();
    list["version"] = 2.into();
    list["entries"] = Value::Array(Vec::new());
    signed["list"] = list.to_string().into();
    let documents_before = county.documents().unwrap();
    let (status, answer) = county
        .post_raw("revocations", signed.to_string().into_bytes())
        .unwrap();
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "signature", "{answer}");
    let (status, answer) = county
        .post_raw("revocations", genuine.into_bytes())
        .unwrap();
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["field"], "version", "{answer}");
    assert_eq!(county.documents().unwrap(), documents_before);
    for node in [&county, &township, &v1] {
        assert_eq!(revocation_version(node), Ok(1), "{}", node.station);
    }
    assert_eq!(county.get("status").unwrap()["revocation_list_version"], 1);
    assert!(connected(&township, "xh/t1/v2").is_err());
}
