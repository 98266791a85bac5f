//! The roster import through the real router and a sled store: a first file
//! into a station without a roster is built off the store's owner thread and
//! stored whole; a second file into the same station commits to the held
//! roster. Both answer duplicates by row, naming the volunteer who already
//! holds the ID number, and the roster ends with exactly the accepted rows.

use crate::api::test_api::{answer, station, TestApi};
use civsync_protocol::{DocumentId, Tier};
use serde_json::Value;

/// A valid resident ID number born in `1960 + serial / 1000`.
fn id_number(serial: u32) -> String {
    civsync_protocol::domain::pii::with_check_digit(&format!(
        "110105{}0101{:03}",
        1960 + serial / 1000,
        serial % 1000
    ))
}

/// A roster file: header, then one row per `(number, id serial)`.
fn csv(rows: &[(&str, u32)]) -> String {
    let mut text = String::from("编号,姓名,性别,身份证号\n");
    for (number, serial) in rows {
        text.push_str(&format!("{number},赵敏,女,{}\n", id_number(*serial)));
    }
    text
}

impl TestApi {
    async fn import(&self, at: &str, file: String) -> (u16, Value) {
        let url = self.url(&format!("import/volunteers?station={at}&format=csv"));
        answer(self.http.post(url).body(file)).await
    }

    async fn numbers(&self, at: &str) -> Vec<String> {
        let (status, list) = self.get(&format!("volunteers?station={at}")).await;
        assert_eq!(status, 200, "{list}");
        let mut numbers: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["number"].as_str().unwrap().to_string())
            .collect();
        numbers.sort();
        numbers
    }

    async fn holds(&self, document: DocumentId) -> bool {
        self.ctx
            .store
            .call(move |replica| replica.holds(&document))
            .await
            .unwrap()
    }
}

/// `(row, field, reason)` of each refusal.
fn refusals(report: &Value) -> Vec<(u64, String, String)> {
    report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["field"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_new_roster_is_built_and_a_held_one_is_committed_to() {
    let api = TestApi::start("xh/t1", Tier::Township).await;
    let village = "xh/t1/v1";
    let roster = DocumentId::roster(&station(village));
    assert!(!api.holds(roster.clone()).await);

    // Row 4 repeats row 2's ID number under another volunteer number: the
    // office cannot tell (the number is sealed to the county), so it is
    // taken, and the county reports the pair (GET duplicates).
    let first = csv(&[("V101", 1), ("V102", 2), ("V103", 1), ("V104", 4)]);
    let (status, report) = api.import(village, first).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["rows"], 4);
    assert_eq!(report["accepted"], 4);
    assert!(refusals(&report).is_empty(), "{report}");
    assert!(api.holds(roster).await);
    assert_eq!(api.numbers(village).await, ["V101", "V102", "V103", "V104"]);

    // Into the held roster: a bad row is refused, the rest taken.
    let second = "编号,姓名,性别,身份证号\nV201,赵敏,女,123\n".to_string()
        + &csv(&[("V202", 7)])
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n");
    let (status, report) = api.import(village, second).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["rows"], 2);
    assert_eq!(report["accepted"], 1);
    let refused = refusals(&report);
    assert_eq!(refused.len(), 1, "{report}");
    assert_eq!((refused[0].0, refused[0].1.as_str()), (2, "id_number"));
    assert_eq!(
        api.numbers(village).await,
        ["V101", "V102", "V103", "V104", "V202"]
    );
}

#[tokio::test]
async fn an_import_outside_the_subtree_is_forbidden_and_builds_nothing() {
    let api = TestApi::start("xh/t1", Tier::Township).await;
    let (status, report) = api.import("xh/t2/v1", csv(&[("V101", 1)])).await;
    assert_eq!(status, 403, "{report}");
    assert_eq!(report["error"]["field"], "station");
    assert!(!api.holds(DocumentId::roster(&station("xh/t2/v1"))).await);
}

#[tokio::test]
async fn a_file_without_a_valid_row_creates_no_roster() {
    let api = TestApi::start("xh/t1", Tier::Township).await;
    let village = "xh/t1/v1";
    let file = "编号,姓名,性别,身份证号\nV101,赵敏,女,123\n".to_string();
    let (status, report) = api.import(village, file).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["rows"].clone(), report["accepted"].clone()),
        (1.into(), 0.into())
    );
    assert_eq!(refusals(&report)[0].1, "id_number");
    assert!(!api.holds(DocumentId::roster(&station(village))).await);
}
