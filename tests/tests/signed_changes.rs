//! Signed changes over real QUIC: an office that lost its store gets its
//! own work back from the offices around it, because a change is trusted
//! by its writer's signature, whoever carries it.

use civsync_tests::{activity_body, certified, pki_init, wait_until, TestNode};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Stop `node`, delete its store (the disk died; certificate and settings
/// were kept or restored), start it again.
fn lose_store(node: &mut TestNode) {
    let incarnation = |node: &TestNode| node.get("status").unwrap()["actor"]["incarnation"].clone();
    let before = incarnation(node);
    node.kill();
    std::fs::remove_dir_all(node.dir.join("store")).unwrap();
    node.start().unwrap();
    // A new store: a new incarnation (documents may already be coming back).
    assert_ne!(incarnation(node), before, "the store was not lost");
}

fn no_refusals(node: &TestNode, peer: &str) -> Result<(), String> {
    let status = node
        .peer_status(peer)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} does not know {peer}", node.station))?;
    if status["documents_refused"] != 0 || status["up_to_date"] != true {
        return Err(format!("{} on {peer}: {status}", node.station));
    }
    Ok(())
}

#[test]
fn a_county_and_then_a_township_that_lost_their_stores_get_every_document_back() {
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("ca");
    pki_init(&ca, "xh").unwrap();
    let mut county = certified(root.path(), &ca, "xh", "county", None);
    let mut township = certified(root.path(), &ca, "xh/t1", "township", Some(county.quic));
    let mut village = certified(root.path(), &ca, "xh/t1/v1", "village", Some(township.quic));
    for node in [&mut county, &mut township, &mut village] {
        node.start().unwrap();
    }
    // County staff load the village's tables for it; the township corrects
    // a record of the village; the village records its own work.
    let (status, body) = county
        .post(
            "volunteers?station=xh/t1/v1",
            &json!({"number": "V1", "name": "赵敏", "sex": "女",
                    "id_number": civsync_tests::id_number(1)}),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, body) = county
        .post(
            "activities?station=xh/t1/v1",
            &activity_body("county-A1", "2026-11-03", &["V1".to_string()], 2.5),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    // The roster reaches the township and the village before they record.
    wait_until(SYNC_TIMEOUT, || {
        let at_county = county.documents().map_err(|e| e.to_string())?;
        let roster: BTreeMap<String, String> = at_county
            .into_iter()
            .filter(|(id, _)| id.starts_with("roster:"))
            .collect();
        township.holds_all_of(&roster)?;
        village.holds_all_of(&roster)
    })
    .unwrap_or_else(|missing| panic!("{missing}"));
    let (status, body) = township
        .post(
            "activities?station=xh/t1/v1",
            &activity_body("township-A2", "2026-11-04", &["V1".to_string()], 1.0),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    village
        .record_activity("village-A3", "2026-11-05", &["V1".to_string()])
        .unwrap();
    wait_until(SYNC_TIMEOUT, || {
        let whole = village.documents().map_err(|e| e.to_string())?;
        county.holds_all_of(&whole)?;
        township.holds_all_of(&whole)
    })
    .unwrap_or_else(|missing| panic!("{missing}"));
    // The village's documents, where the county, the township and the
    // village each wrote (the county rewrites its own reference and
    // statistics documents at start, so those differ by design).
    let village_documents = |node: &TestNode| -> BTreeMap<String, String> {
        node.documents()
            .unwrap()
            .into_iter()
            .filter(|(id, _)| id.contains("xh/t1/v1"))
            .collect()
    };
    let before = village_documents(&county);
    assert!(before.len() >= 2, "{before:?}");

    // The county's disk dies: the township hands back every document,
    // the county's own writes included.
    lose_store(&mut county);
    wait_until(SYNC_TIMEOUT, || {
        county.holds_all_of(&before)?;
        no_refusals(&county, "xh/t1")
    })
    .unwrap_or_else(|missing| panic!("{missing}\ncounty log:\n{}", county.log()));

    // Then the township's: its village and the county hand it back.
    let before = village_documents(&township);
    lose_store(&mut township);
    wait_until(SYNC_TIMEOUT, || {
        township.holds_all_of(&before)?;
        no_refusals(&township, "xh/t1/v1")?;
        no_refusals(&township, "xh")
    })
    .unwrap_or_else(|missing| panic!("{missing}\ntownship log:\n{}", township.log()));
    // And it writes on at once, under a new actor, and the county sees it.
    let (status, body) = township
        .post(
            "activities?station=xh/t1/v1",
            &activity_body("township-A4", "2026-11-06", &["V1".to_string()], 1.0),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    wait_until(SYNC_TIMEOUT, || {
        let keys = county
            .activity_keys("2026-11", true)
            .map_err(|e| e.to_string())?;
        keys.contains(&("xh/t1/v1".to_string(), "township-A4".to_string()))
            .then_some(())
            .ok_or_else(|| format!("county lists {keys:?}"))
    })
    .unwrap_or_else(|missing| panic!("{missing}"));
}
