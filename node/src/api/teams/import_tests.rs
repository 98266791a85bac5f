//! The team import through the real router and a sled store: every valid
//! row of the file lands in the station's roster, each bad row comes back
//! named, and a file refused whole names the missing column.

use crate::api::test_api::{answer, TestApi};
use civsync_protocol::Tier;
use serde_json::Value;

impl TestApi {
    async fn import_file(&self, path: &str, at: &str, file: &str) -> (u16, Value) {
        let url = self.url(&format!("import/{path}?station={at}&format=csv"));
        answer(self.http.post(url).body(file.to_string())).await
    }
}

#[tokio::test]
async fn a_team_file_goes_in_row_by_row_and_its_bad_rows_are_named() {
    let api = TestApi::start("xh/t1", Tier::Township).await;
    let village = "xh/t1/v1";
    let roster = format!(
        "编号,姓名,性别,身份证号\nV1,赵敏,女,{}\nV2,王芳,女,{}\n",
        civsync_protocol::domain::pii::with_check_digit("11010519600101001"),
        civsync_protocol::domain::pii::with_check_digit("11010519600101002"),
    );
    let (status, report) = api.import_file("volunteers", village, &roster).await;
    assert_eq!(
        (status, report["accepted"].as_u64()),
        (200, Some(2)),
        "{report}"
    );

    let teams = "队伍编号,队伍名称,服务类别,队长编号,队员编号\n\
                 T1,健康服务队,医疗健身,V1,V1、V2\n\
                 T2,巡逻队,法律服务,,V9\n\
                 T3,文艺队,文化文艺,,V2\n";
    let (status, report) = api.import_file("teams", village, teams).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["rows"].as_u64(), report["accepted"].as_u64()),
        (Some(3), Some(2))
    );
    let refused = &report["refused"][0];
    assert_eq!(
        (refused["row"].as_u64(), refused["field"].as_str()),
        (Some(3), Some("members"))
    );
    assert!(
        refused["reason"].as_str().unwrap().contains("V9"),
        "{report}"
    );

    let (status, held) = api.get(&format!("teams?station={village}")).await;
    assert_eq!(status, 200, "{held}");
    let mut ids: Vec<&str> = held
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["T1", "T3"]);

    let (status, refusal) = api.import_file("teams", village, "队员编号\nV1\n").await;
    assert_eq!(status, 422, "{refusal}");
    assert_eq!(refusal["error"]["field"], "file");
    assert!(
        refusal["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("name"),
        "{refusal}"
    );
}
