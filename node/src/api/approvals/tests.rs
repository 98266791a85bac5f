//! Approval and freshness through the real router and a sled store, in
//! process: a township approves a village month, sends one back with a
//! reason, sees an edit after approval flagged; a village trying to approve
//! its township is refused naming the field; a village whose last change is
//! ten days old shows up quiet at the township.

use crate::api::test_api::{station, TestApi};
use civsync_protocol::replica::{Replica, ReplicaConfig};
use civsync_protocol::service;
use civsync_protocol::stats::DAY_MS;
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::sync::host::SyncHost;
use civsync_protocol::sync::signing::PayloadFormat;
use civsync_protocol::{DocumentId, Month, Tier};
use serde_json::{json, Value};

/// A month safely in the past, so activity dates are never "in the future".
const MONTH: &str = "2026-10";

impl TestApi {
    /// Record an activity for `at` reaching `beneficiaries` people.
    async fn record(&self, at: &str, id: &str, beneficiaries: u32) {
        let (status, body) = self
            .post(
                &format!("activities?station={at}"),
                activity(id, beneficiaries),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

fn activity(id: &str, beneficiaries: u32) -> Value {
    json!({
        "id": id, "name": "理论宣讲", "date": format!("{MONTH}-03"), "place": "村文化广场",
        "content": "学习宣讲", "form": "lecture", "category": "theory",
        "person_in_charge": "李明", "beneficiaries": beneficiaries, "records": []
    })
}

fn line<'a>(listing: &'a Value, at: &str) -> &'a Value {
    listing
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["station"] == at)
        .unwrap_or_else(|| panic!("{at} not listed in {listing}"))
}

#[tokio::test]
async fn a_township_approves_sends_back_and_sees_an_edit_after_approval() {
    let township = TestApi::start("xh/t1", Tier::Township).await;
    township.record("xh/t1/v1", "A1", 20).await;
    township.record("xh/t1/v2", "A2", 30).await;

    let (status, decision) = township
        .post(
            "approvals",
            json!({"station": "xh/t1/v1", "month": MONTH, "decision": "approve"}),
        )
        .await;
    assert_eq!(status, 201, "{decision}");
    assert_eq!(decision["state"], "approved");
    assert_eq!(decision["by"], "xh/t1");
    assert_eq!(decision["figures"]["counts"]["beneficiaries"], 20);
    let at_ms = decision["at_ms"].as_i64().unwrap();
    assert!(
        at_ms > 1_700_000_000_000,
        "stamped with the node's clock: {at_ms}"
    );

    let (status, body) = township
        .post(
            "approvals",
            json!({"station": "xh/t1/v2", "month": MONTH, "decision": "send_back", "reason": "请补充签到表"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = township
        .post(
            "approvals",
            json!({"station": "xh/t1/v2", "month": MONTH, "decision": "send_back"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("reason")),
        "{body}"
    );

    // The village corrects its month after the approval: kept, flagged,
    // and not in the approved figures.
    township.record("xh/t1/v1", "A3", 5).await;
    let (status, listing) = township
        .get(&format!("approvals?station=xh/t1&month={MONTH}"))
        .await;
    assert_eq!(status, 200, "{listing}");
    let v1 = line(&listing, "xh/t1/v1");
    assert_eq!(v1["state"], "approved");
    assert_eq!(v1["edited_after_approval"], true);
    assert_eq!(v1["approved"]["counts"]["beneficiaries"], 20);
    assert_eq!(v1["current"]["counts"]["beneficiaries"], 25);
    let v2 = line(&listing, "xh/t1/v2");
    assert_eq!(v2["state"], "sent_back");
    assert_eq!(v2["decision"]["reason"], "请补充签到表");
    assert_eq!(v2["approved"], Value::Null);
    assert_eq!(line(&listing, "xh/t1")["state"], "unapproved");

    // The monthly table carries the approval per station.
    let (status, report) = township
        .get(&format!("reports/monthly?month={MONTH}"))
        .await;
    assert_eq!(status, 200, "{report}");
    let rows = report["rows"].as_array().unwrap();
    let row = |at: &str| rows.iter().find(|r| r["station"] == at).unwrap().clone();
    assert_eq!(
        row("xh/t1/v1")["approval"],
        json!({"state": "approved", "edited_after_approval": true})
    );
    assert_eq!(row("xh/t1/v2")["approval"]["state"], "sent_back");
    // Every change here was written by the township's node (for its
    // villages), so the township's row is "as of" its newest change and the
    // villages, which wrote nothing themselves, have no time.
    assert!(
        row("xh/t1")["as_of_ms"].as_i64().unwrap() >= at_ms - 1_000,
        "as of the newest change held: {report}"
    );
    assert_eq!(row("xh/t1/v1")["as_of_ms"], Value::Null);

    // Unknown decisions and months are named.
    let (status, body) = township
        .post(
            "approvals",
            json!({"station": "xh/t1/v1", "month": MONTH, "decision": "maybe"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("decision"))
    );
    let (status, body) = township
        .post(
            "approvals",
            json!({"station": "xh/t1/v1", "month": "2026-13", "decision": "approve"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("month"))
    );
    township.stop().await;
}

#[tokio::test]
async fn a_village_cannot_approve_its_township_nor_itself() {
    let village = TestApi::start("xh/t1/v1", Tier::Village).await;
    village.record("xh/t1/v1", "A1", 20).await;
    for target in ["xh/t1", "xh/t1/v1"] {
        let (status, body) = village
            .post(
                "approvals",
                json!({"station": target, "month": MONTH, "decision": "approve"}),
            )
            .await;
        assert_eq!(status, 403, "{target}: {body}");
        assert_eq!(body["error"]["field"], "station");
        assert!(
            body["error"]["reason"]
                .as_str()
                .unwrap()
                .contains("only a higher level"),
            "{body}"
        );
    }
    let (status, listing) = village.get(&format!("approvals?month={MONTH}")).await;
    assert_eq!(status, 200);
    assert_eq!(line(&listing, "xh/t1/v1")["state"], "unapproved");
    let (status, body) = village
        .get(&format!("approvals?station=xh/t1&month={MONTH}"))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (403, Some("station"))
    );
    village.stop().await;
}

#[tokio::test]
async fn a_village_silent_for_ten_days_is_quiet_at_its_township() {
    let township = TestApi::start("xh/t1", Tier::Township).await;
    township.record("xh/t1/v2", "A1", 20).await;

    // Village v1 recorded ten days ago on its own node; the township
    // receives that change now, and it keeps the village's time.
    let now_ms = i64::try_from(crate::clock::now_ms()).unwrap();
    let mut village = Replica::open(
        MemoryStorage::new(),
        station("xh/t1/v1"),
        5,
        ReplicaConfig::default(),
    )
    .unwrap();
    village.set_now_ms(now_ms - 10 * DAY_MS);
    let input = serde_json::from_value(activity("B1", 7)).unwrap();
    service::record_activity(
        &mut village,
        &station("xh/t1/v1"),
        &input,
        crate::clock::today(),
        1,
    )
    .unwrap();
    let document = DocumentId::activities(&station("xh/t1/v1"), Month::parse(MONTH).unwrap());
    for _ in 0..10 {
        let Some(message) = village
            .generate_sync_message(&station("xh/t1"), &document, PayloadFormat::Signed)
            .unwrap()
        else {
            break;
        };
        let at_township = document.clone();
        let reply = township
            .ctx
            .store
            .call(move |replica| {
                replica
                    .receive_sync_message(
                        &station("xh/t1/v1"),
                        &at_township,
                        &message,
                        PayloadFormat::Signed,
                    )
                    .unwrap();
                replica
                    .generate_sync_message(
                        &station("xh/t1/v1"),
                        &at_township,
                        PayloadFormat::Signed,
                    )
                    .unwrap()
            })
            .await
            .unwrap();
        if let Some(reply) = reply {
            village
                .receive_sync_message(&station("xh/t1"), &document, &reply, PayloadFormat::Signed)
                .unwrap();
        }
    }

    let (status, answer) = township.get("freshness").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["quiet_days_max"], 7);
    assert!(answer["as_of_ms"].as_i64().unwrap() >= now_ms);
    let rows = answer["stations"].as_array().unwrap();
    let row = |at: &str| {
        rows.iter()
            .find(|r| r["station"] == at)
            .unwrap_or_else(|| panic!("{at} missing from {answer}"))
    };
    let v1 = row("xh/t1/v1");
    assert_eq!(v1["quiet"], true, "{v1}");
    assert_eq!(v1["silent_days"], 10);
    let written = v1["newest_change_ms"].as_i64().unwrap();
    assert!(
        (now_ms - 10 * DAY_MS - written).abs() < 1_000,
        "the village's own time, to the second: {written}"
    );
    // Changes the township wrote for v2 carry the township's clock: v2's
    // own station wrote nothing, so only the township is fresh.
    assert_eq!(row("xh/t1")["quiet"], false);
    assert_eq!(answer["quiet"], 2, "v1 silent, v2 never heard of itself");
    assert_eq!(row("xh/t1/v2")["silent_days"], Value::Null);

    let (status, body) = township.get("freshness?station=xh/t2").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (403, Some("station"))
    );
    township.stop().await;
}
