//! Activities through the real router and a sled store: a correction of a
//! deleted activity is refused with a 4xx naming it, and the activity stays
//! deleted.

use crate::api::test_api::{answer, id_number, TestApi};
use civsync_protocol::Tier;
use serde_json::json;

const VILLAGE: &str = "xh/t1/v1";

#[tokio::test]
async fn a_correction_of_a_deleted_activity_is_refused_and_it_stays_deleted() {
    let api = TestApi::start(VILLAGE, Tier::Village).await;
    let volunteer = json!({"number": "V1", "name": "赵敏", "sex": "女", "id_number": id_number(1)});
    let (status, body) = api.post("volunteers", volunteer).await;
    assert_eq!(status, 201, "{body}");
    let today = crate::clock::today();
    let activity = |name: &str| {
        json!({
            "id": "A1",
            "name": name,
            "date": civsync_protocol::domain::model::date_format::format(today),
            "form": "lecture",
            "category": "theory",
            "records": [{"volunteer": "V1", "hours": 2}],
        })
    };
    let (status, body) = api.post("activities", activity("理论宣讲")).await;
    assert_eq!(status, 201, "{body}");
    let month = crate::clock::this_month();
    let (status, _) = answer(api.http.delete(api.url(&format!("activities/{month}/A1")))).await;
    assert_eq!(status, 204);
    let before = api.heads().await;

    // A form left open: the same id, corrected.
    let (status, body) = api.post("activities", activity("改过的")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["field"], "id", "{body}");
    let reason = body["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("activity A1 was deleted"),
        "names the record and that it was deleted: {reason}"
    );
    assert_eq!(api.heads().await, before, "the refusal wrote nothing");
    let (status, list) = api.get(&format!("activities?month={month}")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list, json!([]), "A1 stays deleted");
    api.stop().await;
}
