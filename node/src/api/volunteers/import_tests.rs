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

/// Spreadsheets built to exhaust the node — a grid of 1.7×10¹⁰ cells, a
/// sheet and a shared-text table inflating to a gigabyte — are refused as
/// too large (413), a date no calendar holds as unreadable naming its cell
/// (422); the node answers the next request and nothing was imported.
#[tokio::test(flavor = "multi_thread")]
async fn spreadsheet_bombs_are_refused_with_the_reason_and_the_node_stays_up() {
    use crate::files::spreadsheet::tests::{
        book, gigabyte_sheet, with_shared_strings, Streamed, FAR_CORNERS, MAIN_NS,
    };
    let api = TestApi::start("xh/t1/v1", Tier::Village).await;
    let shared_text_bomb = with_shared_strings(
        r#"<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row></sheetData>"#,
        Streamed {
            name: "xl/sharedStrings.xml",
            head: format!(r#"<sst xmlns="{MAIN_NS}"><si><t>"#).into_bytes(),
            repeated: vec![b'A'; 4096],
            times: 256 * 256,
            tail: b"</t></si></sst>".to_vec(),
        },
    );
    let bombs: [(&str, Vec<u8>); 3] = [
        ("cells at A1 and XFD1048576", book(FAR_CORNERS)),
        ("a sheet inflating to 1 GiB", gigabyte_sheet().to_vec()),
        ("shared texts inflating to 256 MiB", shared_text_bomb),
    ];
    for (what, bytes) in bombs {
        for endpoint in ["import/volunteers", "import/activities"] {
            let url = api.url(&format!("{endpoint}?format=xlsx"));
            let (status, body) = answer(api.http.post(url).body(bytes.clone())).await;
            assert_eq!(status, 413, "{what} to {endpoint}: {body}");
            assert_eq!(body["error"]["field"], "file", "{what}: {body}");
            let reason = body["error"]["reason"].as_str().unwrap();
            assert!(
                reason.starts_with("the sheet is too large: ")
                    || reason.starts_with("the file has more than "),
                "{what}: {body}"
            );
        }
    }
    let impossible_date = book(
        r#"<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>活动名称</t></is></c><c r="B1" t="inlineStr"><is><t>活动日期</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>义诊</t></is></c><c r="B2" s="1"><v>1e15</v></c></row></sheetData>"#,
    );
    let url = api.url("import/activities?format=xlsx");
    let (status, body) = answer(api.http.post(url).body(impossible_date)).await;
    assert_eq!(status, 422, "{body}");
    let reason = body["error"]["reason"].as_str().unwrap();
    assert!(reason.contains("cell B2 "), "{reason}");

    let (status, _) = api.get("volunteers").await;
    assert_eq!(status, 200, "the node still answers");
    assert!(api.numbers("xh/t1/v1").await.is_empty(), "nothing imported");
}
