//! The four orders through the real router and a sled store: a township
//! node places an order for its village, dispatches it to a village team,
//! records the take and the rating; the statistics count each step; steps
//! out of turn and bad values are refused naming the field.

use crate::api::test_api::TestApi;
use civsync_protocol::Tier;
use serde_json::{json, Value};

const VILLAGE: &str = "xh/t1/v1";

async fn township_with_order() -> TestApi {
    let township = TestApi::start("xh/t1", Tier::Township).await;
    let (status, body) = township
        .post(
            &format!("teams?station={VILLAGE}"),
            json!({"id": "T1", "name": "东村志愿服务队", "category": "health"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = township
        .post(
            &format!("orders?station={VILLAGE}"),
            json!({"id": "O1", "menu_item": "健康义诊", "requester": "王大妈", "placed_on": "2026-10-03"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    township
}

/// The township's line of the monthly table: its orders placed, taken,
/// rated and the satisfaction (its village rolled up).
async fn order_counts(api: &TestApi) -> Value {
    let (status, stats) = api.get("stats?month=2026-10").await;
    assert_eq!(status, 200, "{stats}");
    let totals = &stats["totals"];
    json!({
        "placed": totals["orders_placed"], "taken": totals["orders_taken"],
        "rated": totals["orders_rated"], "satisfaction": totals["satisfaction"],
    })
}

#[tokio::test]
async fn an_order_is_dispatched_taken_and_rated_and_each_step_is_counted() {
    let township = township_with_order().await;
    let steps = [
        (
            "dispatch",
            json!({"station": VILLAGE, "order": "O1", "team": "xh/t1/v1:T1"}),
            "dispatched",
        ),
        ("take", json!({"station": VILLAGE, "order": "O1"}), "taken"),
        (
            "rate",
            json!({"station": VILLAGE, "order": "O1", "rating": 4, "comment": "及时"}),
            "rated",
        ),
    ];
    for (step, body, status_after) in steps {
        let (status, order) = township.post(&format!("orders/{step}"), body).await;
        assert_eq!(status, 200, "{step}: {order}");
        assert_eq!(order["status"], status_after, "{order}");
    }
    let counts = order_counts(&township).await;
    assert_eq!(
        counts,
        json!({"placed": 1, "taken": 1, "rated": 1, "satisfaction": 4.0}),
        "{counts}"
    );
}

#[tokio::test]
async fn steps_out_of_turn_and_bad_values_are_refused_and_change_nothing() {
    let township = township_with_order().await;
    let before = township.heads().await;
    for (step, body, field) in [
        ("take", json!({"station": VILLAGE, "order": "O1"}), "status"),
        (
            "rate",
            json!({"station": VILLAGE, "order": "O1", "rating": 5}),
            "status",
        ),
        (
            "dispatch",
            json!({"station": VILLAGE, "order": "O1", "team": "T1"}),
            "team",
        ),
        (
            "dispatch",
            json!({"station": VILLAGE, "order": "O1", "team": "xh/t1/v1:T9"}),
            "team",
        ),
        (
            "dispatch",
            json!({"station": VILLAGE, "order": "O9", "team": "xh/t1/v1:T1"}),
            "order",
        ),
        (
            "dispatch",
            json!({"station": "xh/t2/v1", "order": "O1", "team": "xh/t1/v1:T1"}),
            "station",
        ),
        (
            "cancel",
            json!({"station": VILLAGE, "order": "O1", "reason": ""}),
            "reason",
        ),
        (
            "cancel",
            json!({"station": VILLAGE, "order": "O1"}),
            "body", // a missing field: the body is malformed, the reason names it
        ),
        (
            "take",
            json!({"station": VILLAGE, "order": "O1", "extra": 1}),
            "extra",
        ),
    ] {
        let (status, answer) = township.post(&format!("orders/{step}"), body.clone()).await;
        assert!(
            (400..500).contains(&status),
            "{step} {body}: {status} {answer}"
        );
        assert_eq!(answer["error"]["field"], field, "{step} {body}: {answer}");
    }
    assert_eq!(township.heads().await, before, "a refusal wrote something");
    let (status, order) = township
        .post(
            "orders/cancel",
            json!({"station": VILLAGE, "order": "O1", "reason": "群众已自行解决"}),
        )
        .await;
    assert_eq!(
        (status, order["status"].as_str()),
        (200, Some("cancelled")),
        "{order}"
    );
}
