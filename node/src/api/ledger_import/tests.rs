//! The ledger import through the real router and a sled store: months the
//! station does not hold are built off the owner thread and stored whole,
//! held months are committed to; a bad row refuses its whole activity and
//! nothing of it is written; a re-import changes nothing; the import gives
//! the same activities as posting them one by one; refusals of the request
//! itself carry `{"error":{"field","reason"}}`.

use crate::api::test_api::{answer, id_number, station, TestApi};
use civsync_protocol::domain::model::date_format;
use civsync_protocol::{DocumentId, Month, Tier};
use serde_json::{json, Value};
use time::Date;

const VILLAGE: &str = "xh/t1/v1";

/// The first day of the month `back` months before today's, as text.
fn day_in_month_before(back: u32, day: u8) -> (String, Month) {
    let today = crate::clock::today();
    let months = i64::from(today.year()) * 12 + i64::from(u8::from(today.month())) - 1;
    let months = months - i64::from(back);
    let (year, month) = ((months / 12) as i32, (months % 12) as u8 + 1);
    let date = Date::from_calendar_date(year, time::Month::try_from(month).unwrap(), day).unwrap();
    (
        date_format::format(date),
        Month::new(year as u16, month).unwrap(),
    )
}

impl TestApi {
    /// A node at the township with volunteers V1..=V3 in the village roster.
    async fn township_with_roster() -> TestApi {
        let api = TestApi::start("xh/t1", Tier::Township).await;
        for serial in 1..=3 {
            let volunteer = json!({
                "number": format!("V{serial}"),
                "name": "赵敏",
                "sex": "女",
                "id_number": id_number(serial),
            });
            let (status, body) = api
                .post(&format!("volunteers?station={VILLAGE}"), volunteer)
                .await;
            assert_eq!(status, 201, "{body}");
        }
        api
    }

    async fn import_ledger(&self, at: &str, format: &str, file: Vec<u8>) -> (u16, Value) {
        let url = self.url(&format!("import/activities?station={at}&format={format}"));
        answer(self.http.post(url).body(file)).await
    }

    async fn activities_of(&self, at: &str, month: Month) -> Value {
        let (status, list) = self
            .get(&format!("activities?station={at}&month={month}"))
            .await;
        assert_eq!(status, 200, "{list}");
        list
    }

    async fn holds_document(&self, document: DocumentId) -> bool {
        self.ctx
            .store
            .call(move |replica| replica.holds(&document))
            .await
            .unwrap()
    }
}

const HEADER: &str =
    "活动编号,活动名称,活动日期,活动地点,活动形式,服务类别,受益人数,志愿者编号,服务时长\n";

/// `(row, field)` of each refusal.
fn refusals(report: &Value) -> Vec<(u64, String)> {
    report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["field"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A year of a village's ledger: two activities a month for twelve months,
/// one with two service records and an id, one without either.
fn year_ledger() -> (String, Vec<Month>) {
    let mut file = String::from(HEADER);
    let mut months = Vec::new();
    for back in 0..12 {
        let (date, month) = day_in_month_before(back, 1);
        months.push(month);
        file.push_str(&format!(
            "A-{back},理论宣讲,{date},文化广场,讲,理论宣讲,40,V1,2\n\
             A-{back},理论宣讲,{date},文化广场,讲,理论宣讲,,V2,1.5\n\
             ,环境整治,{date},村口,帮,生态环保,12,,\n"
        ));
    }
    (file, months)
}

#[tokio::test]
async fn a_year_of_ledgers_is_built_per_month_and_a_re_import_changes_nothing() {
    let api = TestApi::township_with_roster().await;
    let (file, months) = year_ledger();
    for month in &months {
        let document = DocumentId::activities(&station(VILLAGE), *month);
        assert!(!api.holds_document(document).await);
    }
    let (status, report) = api
        .import_ledger(VILLAGE, "csv", file.clone().into_bytes())
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["rows"].clone(), report["accepted"].clone()),
        (36.into(), 36.into())
    );
    assert_eq!(
        report["activities"].as_array().unwrap().len(),
        24,
        "{report}"
    );
    assert!(refusals(&report).is_empty(), "{report}");
    for month in &months {
        let list = api.activities_of(VILLAGE, *month).await;
        assert_eq!(list.as_array().unwrap().len(), 2, "{month}: {list}");
        let document = DocumentId::activities(&station(VILLAGE), *month);
        assert!(api.holds_document(document).await);
    }

    let heads = api.heads().await;
    let (status, again) = api.import_ledger(VILLAGE, "csv", file.into_bytes()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, report, "the same answer, the same ids");
    assert_eq!(api.heads().await, heads, "a re-import writes nothing");
}

#[tokio::test]
async fn a_bad_row_refuses_its_whole_activity_and_nothing_of_it_is_written() {
    let api = TestApi::township_with_roster().await;
    let (this, month) = day_in_month_before(0, 1);
    let (last, last_month) = day_in_month_before(1, 1);
    let file = format!(
        "{HEADER}\
         A-1,理论宣讲,{this},文化广场,讲,理论宣讲,40,V1,2\n\
         A-1,理论宣讲,{this},文化广场,讲,理论宣讲,,V9,1\n\
         A-2,义诊,{this},卫生室,帮,医疗健身,20,V2,3\n\
         A-3,敬老,{last},敬老院,帮,扶老助残,10,V3,30\n"
    );
    let (status, report) = api.import_ledger(VILLAGE, "csv", file.into_bytes()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 1, "{report}");
    assert_eq!(report["activities_refused"], 2, "{report}");
    assert_eq!(
        refusals(&report),
        [
            (2, "activity".to_string()),
            (3, "volunteer".to_string()),
            (5, "hours".to_string())
        ]
    );
    let reasons: Vec<&str> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("row 3"), "{report}");
    assert!(reasons[1].contains("V9"), "{report}");
    let list = api.activities_of(VILLAGE, month).await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["A-2"], "A-1 is not half-imported");
    let document = DocumentId::activities(&station(VILLAGE), last_month);
    assert!(
        !api.holds_document(document).await,
        "a month with nothing accepted is not created"
    );
}

#[tokio::test]
async fn the_import_equals_posting_the_activities_one_by_one() {
    let imported = TestApi::township_with_roster().await;
    let posted = TestApi::township_with_roster().await;
    let (this, month) = day_in_month_before(0, 1);
    let activities = [
        ("A-1", "理论宣讲", vec![("V1", "2"), ("V2", "1.5")]),
        ("A-2", "义诊", vec![("V1", "20")]),
        // V1 would have 2 + 20 + 3 = 25 hours: refused both ways.
        ("A-3", "敬老", vec![("V3", "1"), ("V1", "3")]),
        ("A-4", "放映", vec![]),
    ];
    let mut file = String::from(HEADER);
    for (id, name, records) in &activities {
        let body = json!({
            "id": id, "name": name, "date": this, "place": "广场",
            "form": "乐", "category": "culture",
            "records": records.iter()
                .map(|(v, h)| json!({"volunteer": v, "hours": h}))
                .collect::<Vec<_>>(),
        });
        let _ = posted
            .post(&format!("activities?station={VILLAGE}"), body)
            .await;
        if records.is_empty() {
            file.push_str(&format!("{id},{name},{this},广场,乐,culture,,,\n"));
        }
        for (volunteer, hours) in records {
            file.push_str(&format!(
                "{id},{name},{this},广场,乐,culture,,{volunteer},{hours}\n"
            ));
        }
    }
    let (status, report) = imported
        .import_ledger(VILLAGE, "csv", file.into_bytes())
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["activities_refused"], 1, "{report}");
    let mut one = imported.activities_of(VILLAGE, month).await;
    let mut other = posted.activities_of(VILLAGE, month).await;
    assert_eq!(one.as_array().unwrap().len(), 3);
    // Read back in the same order both ways; compare everything.
    for list in [&mut one, &mut other] {
        list.as_array_mut()
            .unwrap()
            .sort_by_key(|a| a["id"].as_str().unwrap().to_string());
    }
    assert_eq!(one, other);
}

#[tokio::test]
async fn an_xlsx_ledger_is_imported() {
    let api = TestApi::township_with_roster().await;
    let (this, month) = day_in_month_before(0, 1);
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    let header = ["name", "date", "form", "category", "volunteer", "hours"];
    for (col, text) in header.iter().enumerate() {
        sheet.write_string(0, col as u16, *text).unwrap();
    }
    for (col, text) in ["读书会", this.as_str(), "lecture", "education", "V2"]
        .iter()
        .enumerate()
    {
        sheet.write_string(1, col as u16, *text).unwrap();
    }
    sheet.write_number(1, 5, 2.5).unwrap();
    let bytes = workbook.save_to_buffer().unwrap();
    let (status, report) = api.import_ledger(VILLAGE, "xlsx", bytes).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 1, "{report}");
    let list = api.activities_of(VILLAGE, month).await;
    assert_eq!(list[0]["records"][0]["hours"], 2.5, "{list}");
}

#[tokio::test]
async fn refusals_of_the_request_name_the_field_and_write_nothing() {
    let api = TestApi::township_with_roster().await;
    let (this, month) = day_in_month_before(0, 1);
    let good = format!("{HEADER}A-1,讲座,{this},广场,讲,theory,,V1,1\n").into_bytes();

    let (status, body) = api.import_ledger("xh/t2/v1", "csv", good.clone()).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (403, Some("station")),
        "{body}"
    );

    let (status, body) = api.import_ledger(VILLAGE, "ods", good).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("format")),
        "{body}"
    );

    let missing = "name,date\n讲座,2026-11-02\n".as_bytes().to_vec();
    let (status, body) = api.import_ledger(VILLAGE, "csv", missing).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("file")),
        "{body}"
    );
    assert!(
        body["error"]["reason"].as_str().unwrap().contains("form"),
        "{body}"
    );

    let too_large = vec![b' '; crate::files::ledger::LEDGER_BYTES_MAX + 1];
    let (status, body) = api.import_ledger(VILLAGE, "csv", too_large).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (413, Some("body")),
        "{body}"
    );
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("LEDGER_BYTES_MAX"),
        "{body}"
    );

    let url = api.url(&format!("import/activities?station={VILLAGE}&colour=red"));
    let (status, body) = answer(api.http.post(url).body("x")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("query")),
        "{body}"
    );

    let document = DocumentId::activities(&station(VILLAGE), month);
    assert!(!api.holds_document(document).await);
}
