//! Standings through the real router and a sled store: hours, star levels
//! and points of a subtree's volunteers, names from their rosters, bounds.

use super::points;
use crate::api::test_api::{id_number, TestApi};
use civsync_protocol::Tier;
use serde_json::{json, Value};

const VILLAGE: &str = "xh/t1/v1";

async fn county_with_service() -> TestApi {
    let county = TestApi::start("xh", Tier::County).await;
    let (status, body) = county
        .post("points/rate", json!({"points_per_hour": 10}))
        .await;
    assert_eq!(status, 201, "{body}");
    for (serial, name) in [(1, "赵敏"), (2, "王伟"), (3, "李娜")] {
        let volunteer = json!({
            "number": format!("V{serial}"), "name": name, "sex": "女",
            "id_number": id_number(serial),
        });
        let (status, body) = county
            .post(&format!("volunteers?station={VILLAGE}"), volunteer)
            .await;
        assert_eq!(status, 201, "{body}");
    }
    for (id, date, records) in [
        (
            "A1",
            "2026-10-03",
            json!([{"volunteer": "V1", "hours": 2.5}, {"volunteer": "V2", "hours": 1}]),
        ),
        ("A2", "2026-10-04", json!([{"volunteer": "V1", "hours": 8}])),
    ] {
        let activity = json!({
            "id": id, "name": "健康义诊", "date": date, "place": "村卫生室",
            "content": "义诊", "form": "help", "category": "health",
            "person_in_charge": "李明", "beneficiaries": 20, "records": records
        });
        let (status, body) = county
            .post(&format!("activities?station={VILLAGE}"), activity)
            .await;
        assert_eq!(status, 201, "{body}");
    }
    county
}

fn rows(answer: &Value) -> Vec<(String, String, f64, u64, u64)> {
    answer["volunteers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["number"].as_str().unwrap().to_string(),
                row["name"].as_str().unwrap_or("").to_string(),
                row["hours"].as_f64().unwrap(),
                row["service_records"].as_u64().unwrap(),
                row["points"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn most_hours_first_with_names_points_and_star_levels() {
    let county = county_with_service().await;
    let (status, answer) = county.get("standings").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["points_per_hour"], 10);
    let listed = rows(&answer);
    assert_eq!(
        listed[..2],
        [
            ("V1".to_string(), "赵敏".to_string(), 10.5, 2, 105),
            ("V2".to_string(), "王伟".to_string(), 1.0, 1, 10),
        ]
    );
    // Everyone homed here is at star level 0 with so few hours.
    let levels: Vec<u64> = answer["star_levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(levels[1..], [0, 0, 0, 0, 0]);
    assert_eq!(levels[0], listed.len() as u64);
    // The village's subtree holds the same volunteers; another township none.
    let (_, village) = county.get(&format!("standings?station={VILLAGE}")).await;
    assert_eq!(rows(&village), listed);
    let (_, elsewhere) = county.get("standings?station=xh/t2").await;
    assert_eq!(rows(&elsewhere), vec![]);
}

#[tokio::test]
async fn the_limit_cuts_the_list_and_is_bounded() {
    let county = county_with_service().await;
    let (status, one) = county.get("standings?limit=1").await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(rows(&one).len(), 1);
    assert_eq!(rows(&one)[0].0, "V1");
    for limit in ["0", "1001", "many"] {
        let (status, answer) = county.get(&format!("standings?limit={limit}")).await;
        assert_eq!(status, 400, "{limit}: {answer}");
        let field = answer["error"]["field"].as_str().unwrap();
        assert!(field == "limit" || field == "query", "{limit}: {answer}");
    }
}

#[test]
fn points_are_whole_and_earned_once_the_time_is_served() {
    assert_eq!(points(1_050, 10), 105);
    assert_eq!(points(99, 10), 9);
    assert_eq!(points(100, 10), 10);
    assert_eq!(points(1_050, 0), 0);
    assert_eq!(points(u64::MAX, 1_000), u64::MAX / 100);
}

/// The certificate reads only the months the statistics index says the
/// volunteer served in; it must still list every live record, and only
/// the volunteer's own.
#[tokio::test]
async fn a_certificate_lists_every_activity_the_volunteer_served_in_and_no_other() {
    let county = county_with_service().await;
    let certificate = |number: &'static str| {
        let county = &county;
        async move {
            let (status, body) = county
                .get(&format!("certificates/{number}?station={VILLAGE}"))
                .await;
            assert_eq!(status, 200, "{body}");
            let ids: Vec<String> = body["activities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    a["name"].as_str().unwrap().to_string() + "@" + a["date"].as_str().unwrap()
                })
                .collect();
            (ids, body["total_hours_centi"].as_u64().unwrap())
        }
    };
    assert_eq!(
        certificate("V1").await,
        (
            vec![
                "健康义诊@2026-10-03".to_string(),
                "健康义诊@2026-10-04".to_string()
            ],
            1_050
        )
    );
    assert_eq!(
        certificate("V2").await,
        (vec!["健康义诊@2026-10-03".to_string()], 100)
    );
    let (status, _) = county
        .http
        .delete(county.url(&format!("activities/2026-10/A2?station={VILLAGE}")))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 204);
    assert_eq!(
        certificate("V1").await,
        (vec!["健康义诊@2026-10-03".to_string()], 250)
    );
}

/// Volunteer numbers are unique only per station: two villages that both
/// register "001" have two people, each with their own hours, at the county
/// — in the standings and in each one's certificate.
#[tokio::test]
async fn two_villages_volunteer_001_are_two_people_at_the_county() {
    let county = TestApi::start("xh", Tier::County).await;
    for (serial, village, name, hours) in
        [(1, "xh/t1/v1", "赵敏", 3.0), (2, "xh/t2/v3", "王伟", 5.5)]
    {
        let volunteer = json!({
            "number": "001", "name": name, "sex": "女", "id_number": id_number(serial),
        });
        let (status, body) = county
            .post(&format!("volunteers?station={village}"), volunteer)
            .await;
        assert_eq!(status, 201, "{body}");
        let activity = json!({
            "name": "健康义诊", "date": "2026-10-03", "place": "村卫生室",
            "content": "义诊", "form": "help", "category": "health",
            "person_in_charge": "李明", "beneficiaries": 20,
            "records": [{"volunteer": "001", "hours": hours}]
        });
        let (status, body) = county
            .post(&format!("activities?station={village}"), activity)
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, answer) = county.get("standings").await;
    assert_eq!(status, 200, "{answer}");
    let listed: Vec<(String, String, String, f64)> = answer["volunteers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["home_station"].as_str().unwrap().to_string(),
                row["number"].as_str().unwrap().to_string(),
                row["name"].as_str().unwrap().to_string(),
                row["hours"].as_f64().unwrap(),
            )
        })
        .collect();
    let row = |home: &str, name: &str, hours| {
        (home.to_string(), "001".to_string(), name.to_string(), hours)
    };
    assert_eq!(
        listed,
        vec![row("xh/t2/v3", "王伟", 5.5), row("xh/t1/v1", "赵敏", 3.0)]
    );

    // A bare number two stations use is refused, naming both.
    let (status, body) = county.get("certificates/001").await;
    assert_eq!(status, 409, "{body}");
    let reason = body["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("xh/t1/v1:001") && reason.contains("xh/t2/v3:001"),
        "{reason}"
    );
    for (asked, name, hours_centi) in [
        ("001?station=xh/t1/v1", "赵敏", 300),
        ("xh%2Ft2%2Fv3:001", "王伟", 550),
    ] {
        let (status, body) = county.get(&format!("certificates/{asked}")).await;
        assert_eq!(status, 200, "{asked}: {body}");
        assert_eq!(body["volunteer_name"], name, "{asked}");
        assert_eq!(body["total_hours_centi"], hours_centi, "{asked}");
    }
}
