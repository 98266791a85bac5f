//! Points through the real router and a sled store: the county's rate,
//! earned points at the home station, a refused overdraft naming where the
//! points are, and the month table.

use crate::api::test_api::{id_number, TestApi};
use civsync_protocol::Tier;
use serde_json::json;

const VILLAGE: &str = "xh/t1/v1";
const VOLUNTEER: &str = "xh/t1/v1:V1";

async fn county_with_service() -> TestApi {
    let county = TestApi::start("xh", Tier::County).await;
    let (status, body) = county
        .post("points/rate", json!({"points_per_hour": 10}))
        .await;
    assert_eq!(status, 201, "{body}");
    let volunteer = json!({
        "number": "V1", "name": "赵敏", "sex": "女", "id_number": id_number(1),
    });
    let (status, body) = county
        .post(&format!("volunteers?station={VILLAGE}"), volunteer)
        .await;
    assert_eq!(status, 201, "{body}");
    let activity = json!({
        "id": "A1", "name": "健康义诊", "date": "2026-10-03", "place": "村卫生室",
        "content": "义诊", "form": "help", "category": "health",
        "person_in_charge": "李明", "beneficiaries": 20,
        "records": [{"volunteer": "V1", "hours": 10.5}]
    });
    let (status, body) = county
        .post(&format!("activities?station={VILLAGE}"), activity)
        .await;
    assert_eq!(status, 201, "{body}");
    county
}

#[tokio::test]
async fn earned_points_sit_at_the_home_station_and_an_overdraft_names_them() {
    let county = county_with_service().await;
    let (status, balance) = county
        .get(&format!("points/balance?volunteer={VOLUNTEER}"))
        .await;
    assert_eq!(status, 200, "{balance}");
    assert_eq!(balance["earned"], 105);
    assert_eq!(balance["here"], 0, "earned points are the home station's");
    assert_eq!(
        balance["allotments"],
        json!([{"station": VILLAGE, "points": 105}])
    );
    let redemption = json!({"volunteer": VOLUNTEER, "points": 5, "item": "大米", "clerk": "王芳"});
    let (status, refusal) = county.post("points/redemptions", redemption).await;
    assert_eq!(status, 409, "{refusal}");
    assert_eq!(refusal["error"]["field"], "points");
    let reason = refusal["error"]["reason"].as_str().unwrap();
    assert!(reason.contains("105 at xh/t1/v1"), "{reason}");
    let (status, months) = county.get("points/months?month=2026-10").await;
    assert_eq!(status, 200, "{months}");
    assert_eq!(
        months["stations"],
        json!([{"station": VILLAGE, "earned": 105, "spent": 0, "transferred_in": 0,
                "transferred_out": 0, "outstanding": 105}])
    );
    let (status, bad) = county
        .post(
            "points/redemptions",
            json!({"volunteer": VOLUNTEER, "points": 0, "item": "米", "clerk": "王"}),
        )
        .await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (422, Some("points"))
    );
}

#[tokio::test]
async fn only_a_county_publishes_the_rate() {
    let township = TestApi::start("xh/t1", Tier::Township).await;
    let (status, refusal) = township
        .post("points/rate", json!({"points_per_hour": 12}))
        .await;
    assert_eq!(status, 422, "{refusal}");
    assert_eq!(refusal["error"]["field"], "points_per_hour");
    let (status, rate) = township.get("points/rate").await;
    assert_eq!((status, rate["rate"].clone()), (200, json!(null)));
}
