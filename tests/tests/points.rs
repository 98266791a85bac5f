//! Points spent offline at two supermarkets (爱心超市) never overdraw.
//!
//! A county, a township and two villages, each a `civsync run` process over
//! QUIC. The county publishes its rate; the volunteer's home village earns
//! points by service and moves some of them through the township to the
//! other village. Then the township goes down, so both villages are
//! offline: each redeems up to its own allotment, and a redemption beyond
//! it is refused naming the balance. Once the township is back, every node
//! shows the same allotments, none below zero, and earned − spent is what
//! they hold.

use civsync_tests::{certified, describe_nodes, pki_init, wait_until, TestNode};
use serde_json::{json, Value};
use std::time::Duration;

const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// The rate the county publishes: not the default 10, so a node using a
/// rate of its own would earn different points.
const RATE: u64 = 20;

fn balance(node: &TestNode, volunteer: &str) -> Value {
    node.get(&format!("points/balance?volunteer={volunteer}"))
        .unwrap_or_else(|e| panic!("balance at {}: {e}", node.station))
}

/// The allotment of `station` in `balance` (0 when not listed).
fn allotment(balance: &Value, station: &str) -> i64 {
    balance["allotments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["station"] == station)
        .and_then(|a| a["points"].as_i64())
        .unwrap_or(0)
}

fn redeem(node: &TestNode, volunteer: &str, points: u64) -> (u16, Value) {
    let body =
        json!({"volunteer": volunteer, "points": points, "item": "大米 5kg", "clerk": "王芳"});
    node.post("points/redemptions", &body)
        .unwrap_or_else(|e| panic!("redeem at {}: {e}", node.station))
}

fn transfer(node: &TestNode, volunteer: &str, points: u64, to: &str) {
    let body = json!({"volunteer": volunteer, "points": points, "to": to});
    let (status, answer) = node
        .post("points/transfers", &body)
        .unwrap_or_else(|e| panic!("transfer at {}: {e}", node.station));
    assert_eq!(status, 201, "transfer at {}: {answer}", node.station);
}

fn wait(what: &str, nodes: &[&TestNode], done: impl FnMut() -> Result<(), String>) {
    wait_until(CONVERGE_TIMEOUT, done)
        .unwrap_or_else(|e| panic!("{what}: {e}\n{}", describe_nodes(nodes)));
}

#[test]
fn two_offline_supermarkets_spend_only_their_allotments() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("county-ca");
    pki_init(&ca, "xh").unwrap();
    let mut county = certified(dir.path(), &ca, "xh", "county", None);
    let mut township = certified(dir.path(), &ca, "xh/t1", "township", Some(county.quic));
    let mut home = certified(dir.path(), &ca, "xh/t1/v1", "village", Some(township.quic));
    let mut market = certified(dir.path(), &ca, "xh/t1/v2", "village", Some(township.quic));
    for node in [&mut county, &mut township, &mut home, &mut market] {
        node.start().unwrap();
    }
    let everyone = [&county, &township, &home, &market];

    // The county's rate reaches the villages.
    let (status, answer) = county
        .post("points/rate", &json!({"points_per_hour": RATE}))
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    let (status, refusal) = home
        .post("points/rate", &json!({"points_per_hour": 99}))
        .unwrap();
    assert_eq!(status, 422, "a village publishes no rate: {refusal}");
    wait("the county's rate at the villages", &everyone, || {
        for village in [&home, &market] {
            let rate = village.get("points/rate").map_err(|e| e.to_string())?;
            if rate["rate"]["points_per_hour"] != RATE || rate["rate"]["set_by"] != "xh" {
                return Err(format!("{} uses {rate}", village.station));
            }
        }
        Ok(())
    });

    // Four activities of 1.5 hours: 6 hours, 120 points at the home village.
    let number = home.register_volunteer(1).unwrap();
    let volunteer = format!("xh/t1/v1:{number}");
    for n in 1..=4 {
        home.record_activity(
            &format!("A{n}"),
            &format!("2025-06-0{n}"),
            std::slice::from_ref(&number),
        )
        .unwrap();
    }
    let earned = balance(&home, &volunteer);
    assert_eq!(
        (earned["earned"].as_i64(), earned["here"].as_i64()),
        (Some(120), Some(120)),
        "{earned}"
    );

    // 50 points go to the other village, through the township.
    transfer(&home, &volunteer, 50, "xh/t1");
    wait("the village's transfer at the township", &everyone, || {
        let seen = allotment(&balance(&township, &volunteer), "xh/t1");
        (seen == 50)
            .then_some(())
            .ok_or(format!("the township holds {seen}"))
    });
    transfer(&township, &volunteer, 50, "xh/t1/v2");
    wait(
        "the township's transfer at the other village",
        &everyone,
        || {
            let here = balance(&market, &volunteer)["here"].as_i64();
            (here == Some(50))
                .then_some(())
                .ok_or(format!("xh/t1/v2 holds {here:?}"))
        },
    );

    // Both villages offline: each spends only what it holds.
    township.stop().unwrap();
    let (status, answer) = redeem(&home, &volunteer, 60);
    assert_eq!(status, 201, "{answer}");
    let (status, refusal) = redeem(&home, &volunteer, 11);
    assert_eq!(status, 409, "{refusal}");
    assert_eq!(refusal["error"]["field"], "points");
    let reason = refusal["error"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("xh/t1/v1 holds 10"), "{reason}");
    let (status, refusal) = redeem(&market, &volunteer, 51);
    assert_eq!(status, 409, "{refusal}");
    assert!(
        refusal["error"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("xh/t1/v2 holds 50"),
        "{refusal}"
    );
    let (status, answer) = redeem(&market, &volunteer, 50);
    assert_eq!(status, 201, "{answer}");
    let (status, refusal) = redeem(&market, &volunteer, 1);
    assert_eq!(status, 409, "{refusal}");

    // Back together: the same allotments everywhere, none below zero.
    township.start().unwrap();
    let everyone = [&county, &township, &home, &market];
    wait("the same balance at every node", &everyone, || {
        let at_county = balance(&county, &volunteer);
        let at_township = balance(&township, &volunteer);
        for (node, seen) in [(&county, &at_county), (&township, &at_township)] {
            let (earned, spent, total) = (
                seen["earned"].as_i64().unwrap_or(-1),
                seen["spent"].as_i64().unwrap_or(-1),
                seen["total"].as_i64().unwrap_or(-1),
            );
            if (earned, spent, total) != (120, 110, 10) {
                return Err(format!("{} shows {seen}", node.station));
            }
        }
        if at_county["allotments"] != at_township["allotments"] {
            return Err(format!(
                "county {at_county} and township {at_township} differ"
            ));
        }
        for village in [&home, &market] {
            let here = balance(village, &volunteer)["here"].as_i64().unwrap_or(-1);
            if here != allotment(&at_county, &village.station) {
                return Err(format!(
                    "{} shows {here}; the county {at_county}",
                    village.station
                ));
            }
        }
        Ok(())
    });
    let at_county = balance(&county, &volunteer);
    for line in at_county["allotments"].as_array().unwrap() {
        assert!(line["points"].as_i64().unwrap() >= 0, "{at_county}");
    }
    assert_eq!(allotment(&at_county, "xh/t1/v1"), 10, "{at_county}");
    let months = county.get("points/months?month=2025-06").unwrap();
    let home_month = months["stations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["station"] == "xh/t1/v1")
        .cloned()
        .unwrap_or_default();
    assert_eq!(home_month["earned"], 120, "{months}");
}
