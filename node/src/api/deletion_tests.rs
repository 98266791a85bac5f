//! Deleting a volunteer or a team through the real router and a sled store:
//! the record is kept marked deleted and no longer listed, deleting again
//! writes nothing, an unknown one is a 404 naming it, and a correction of
//! a deleted one is refused.

use crate::api::test_api::{answer, id_number, TestApi};
use civsync_protocol::Tier;
use serde_json::json;

const VILLAGE: &str = "xh/t1/v1";

impl TestApi {
    async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        answer(self.http.delete(self.url(path))).await
    }
}

#[tokio::test]
async fn a_deleted_volunteer_is_no_longer_listed_and_cannot_be_corrected() {
    let api = TestApi::start(VILLAGE, Tier::Village).await;
    for (number, serial) in [("V1", 1), ("V2", 2)] {
        let volunteer =
            json!({"number": number, "name": "赵敏", "sex": "女", "id_number": id_number(serial)});
        let (status, body) = api.post("volunteers", volunteer).await;
        assert_eq!(status, 201, "{body}");
    }

    let (status, body) = api.delete("volunteers/V1").await;
    assert_eq!(status, 204, "{body}");
    let (status, list) = api.get("volunteers").await;
    assert_eq!(status, 200, "{list}");
    let numbers: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["V2"], "V1 is no longer listed: {list}");

    let before = api.heads().await;
    let (status, _) = api.delete("volunteers/V1").await;
    assert_eq!(status, 204, "deleting again is answered the same");
    assert_eq!(api.heads().await, before, "and writes nothing");

    let (status, body) = api.delete("volunteers/V9").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["field"], "number", "{body}");
    assert!(
        body["error"]["reason"].as_str().unwrap().contains("V9"),
        "{body}"
    );

    let correction =
        json!({"number": "V1", "name": "赵敏敏", "sex": "女", "id_number": id_number(1)});
    let (status, body) = answer(api.http.put(api.url("volunteers")).json(&correction)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(api.heads().await, before, "the refusals wrote nothing");
    api.stop().await;
}

#[tokio::test]
async fn a_deleted_team_is_no_longer_listed_and_cannot_be_corrected() {
    let api = TestApi::start(VILLAGE, Tier::Village).await;
    let volunteer = json!({"number": "V1", "name": "赵敏", "sex": "女", "id_number": id_number(1)});
    let (status, body) = api.post("volunteers", volunteer).await;
    assert_eq!(status, 201, "{body}");
    let team =
        |name: &str| json!({"id": "T1", "name": name, "category": "culture", "members": ["V1"]});
    let (status, body) = api.post("teams", team("文艺队")).await;
    assert_eq!(status, 201, "{body}");

    let (status, body) = api.delete("teams/T1").await;
    assert_eq!(status, 204, "{body}");
    let (status, list) = api.get("teams").await;
    assert_eq!((status, list.clone()), (200, json!([])), "{list}");

    let before = api.heads().await;
    let (status, body) = api.delete("teams/T9").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["field"], "id", "{body}");
    assert!(
        body["error"]["reason"].as_str().unwrap().contains("T9"),
        "{body}"
    );

    let (status, body) = api.post("teams", team("文艺二队")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(api.heads().await, before, "the refusals wrote nothing");
    let (status, list) = api.get("volunteers").await;
    assert_eq!(status, 200);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "its member stays: {list}"
    );
    api.stop().await;
}
