//! Menus and themes through the real router and a sled store, in process.

use crate::api::test_api::TestApi;
use civsync_protocol::Tier;
use serde_json::{json, Value};

fn names(listing: &Value) -> Vec<(String, String, bool)> {
    listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["id"].as_str().unwrap().to_string(),
                item["name"].as_str().unwrap().to_string(),
                item["withdrawn"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_county_publishes_a_menu_changes_it_and_withdraws_an_item() {
    let county = TestApi::start("xh", Tier::County).await;
    let (status, body) = county
        .post(
            "menu",
            json!({"id": "M1", "name": "义诊", "category": "health", "provider": "县医院志愿服务队"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["owner"], "xh");
    // The same again writes nothing.
    let (status, _) = county
        .post(
            "menu",
            json!({"id": "M1", "name": "义诊", "category": "health", "provider": "县医院志愿服务队"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, drawn) = county
        .post("menu", json!({"name": "政策宣讲", "category": "theory"}))
        .await;
    assert_eq!(status, 201, "{drawn}");
    let drawn_id = drawn["id"].as_str().unwrap().to_string();
    let (status, _) = county
        .post(
            "menu",
            json!({"id": "M1", "name": "义诊", "category": "health", "withdrawn": true}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, listing) = county.get("menu").await;
    assert_eq!(status, 200, "{listing}");
    let mut expected = vec![
        ("M1".to_string(), "义诊".to_string(), true),
        (drawn_id, "政策宣讲".to_string(), false),
    ];
    expected.sort();
    assert_eq!(names(&listing), expected);
    assert_eq!(listing["unreadable"], json!([]));
}

#[tokio::test]
async fn refusals_name_the_field_and_change_nothing() {
    let county = TestApi::start("xh", Tier::County).await;
    let before = county.heads().await;
    for (body, field) in [
        (json!({"name": "", "category": "health"}), "name"),
        (json!({"name": "义诊", "category": "fortune"}), "category"),
        (
            json!({"name": "义诊", "category": "health", "colour": 1}),
            "colour",
        ),
        (json!({"month": "2026-13", "title": "学雷锋"}), "month"),
    ] {
        let path = if body.get("month").is_some() {
            "themes"
        } else {
            "menu"
        };
        let (status, answer) = county.post(path, body.clone()).await;
        assert!((400..500).contains(&status), "{body}: {status} {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = county.get("themes?month=november").await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["field"], "month");
    assert_eq!(county.heads().await, before, "a refusal wrote something");
}

#[tokio::test]
async fn themes_are_set_corrected_and_read_by_month() {
    let county = TestApi::start("xh", Tier::County).await;
    for (month, title) in [
        ("2026-03", "学雷锋"),
        ("2026-11", "移风易俗"),
        ("2026-11", "移风易俗 树新风"),
    ] {
        let (status, body) = county
            .post("themes", json!({"month": month, "title": title}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, all) = county.get("themes").await;
    assert_eq!(status, 200);
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");
    let (_, november) = county.get("themes?month=2026-11").await;
    let items = november["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{november}");
    assert_eq!(items[0]["title"], "移风易俗 树新风");
    assert_eq!(
        items[0]["month"], "2026-11",
        "a month reads as clerks write it"
    );
    assert_eq!(items[0]["owner"], "xh");
}
