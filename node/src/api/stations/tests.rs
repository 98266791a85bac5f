//! The station registry through the real router and a sled store, in
//! process: a county registers its villages; one village syncs, one never
//! does — the silent one is flagged quiet (never seen) in freshness and
//! counted as not reporting in coverage, with its name in the statistics.
//! Refusals (bad tier, outside the subtree, empty name) are 4xx naming the
//! field and change nothing.

use crate::api::test_api::{station, TestApi};
use civsync_protocol::replica::{Replica, ReplicaConfig};
use civsync_protocol::service;
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::sync::host::SyncHost;
use civsync_protocol::sync::signing::PayloadFormat;
use civsync_protocol::{DocumentId, Month, Tier};
use serde_json::{json, Value};

/// A month safely in the past, so activity dates are never "in the future".
const MONTH: &str = "2026-10";

impl TestApi {
    async fn register(&self, id: &str, name: &str, tier: &str) {
        let (status, body) = self
            .post("stations", json!({"id": id, "name": name, "tier": tier}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

fn activity(id: &str) -> Value {
    json!({
        "id": id, "name": "理论宣讲", "date": format!("{MONTH}-03"), "place": "村文化广场",
        "content": "学习宣讲", "form": "lecture", "category": "theory",
        "person_in_charge": "李明", "beneficiaries": 12, "records": []
    })
}

fn row<'a>(rows: &'a Value, key: &str, at: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r[key] == at)
        .unwrap_or_else(|| panic!("{at} missing from {rows}"))
}

/// Village `at` records an activity on its own node now, and syncs that
/// month to the county.
async fn village_reports(county: &TestApi, at: &str) {
    let village_station = station(at);
    let mut village = Replica::open(
        MemoryStorage::new(),
        village_station.clone(),
        5,
        ReplicaConfig::default(),
    )
    .unwrap();
    village.set_now_ms(i64::try_from(crate::clock::now_ms()).unwrap());
    let input = serde_json::from_value(activity("B1")).unwrap();
    service::record_activity(
        &mut village,
        &village_station,
        &input,
        crate::clock::today(),
        1,
    )
    .unwrap();
    let document = DocumentId::activities(&village_station, Month::parse(MONTH).unwrap());
    for _ in 0..10 {
        let Some(message) = village
            .generate_sync_message(&station("xh"), &document, PayloadFormat::Signed)
            .unwrap()
        else {
            break;
        };
        let (at_county, from) = (document.clone(), village_station.clone());
        let reply = county
            .ctx
            .store
            .call(move |replica| {
                replica
                    .receive_sync_message(&from, &at_county, &message, PayloadFormat::Signed)
                    .unwrap();
                replica
                    .generate_sync_message(&from, &at_county, PayloadFormat::Signed)
                    .unwrap()
            })
            .await
            .unwrap();
        if let Some(reply) = reply {
            village
                .receive_sync_message(&station("xh"), &document, &reply, PayloadFormat::Signed)
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_registered_village_that_never_synced_is_quiet_and_not_reporting() {
    let county = TestApi::start("xh", Tier::County).await;
    county.register("xh/t1", "城关镇所", "township").await;
    county.register("xh/t1/v1", "东村站", "village").await;
    county.register("xh/t1/v2", "西村站", "village").await;
    village_reports(&county, "xh/t1/v1").await;
    // A village nobody registered, recorded for by the county: it still
    // counts in coverage once a registry exists.
    let (status, body) = county
        .post("activities?station=xh/t2/v9", activity("C1"))
        .await;
    assert_eq!(status, 201, "{body}");

    let (status, freshness) = county.get("freshness").await;
    assert_eq!(status, 200, "{freshness}");
    let rows = &freshness["stations"];
    let v2 = row(rows, "station", "xh/t1/v2");
    assert_eq!(v2["quiet"], true, "{v2}");
    assert_eq!(v2["silent_days"], Value::Null, "never seen");
    assert_eq!(v2["name"], "西村站");
    let v1 = row(rows, "station", "xh/t1/v1");
    assert_eq!(v1["quiet"], false, "{v1}");
    assert_eq!(v1["name"], "东村站");

    let (status, stats) = county.get(&format!("stats?month={MONTH}")).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (
            stats["villages"].as_u64(),
            stats["villages_active"].as_u64()
        ),
        (Some(3), Some(2)),
        "v1 and v9 reported, v2 did not: {stats}"
    );
    assert_eq!(
        (
            stats["townships"].as_u64(),
            stats["townships_active"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let rows = &stats["rows"];
    assert_eq!(row(rows, "station", "xh/t1/v2")["name"], "西村站");
    assert_eq!(row(rows, "station", "xh/t1/v2")["activities"], 0);
    assert_eq!(row(rows, "station", "xh/t1")["name"], "城关镇所");
    assert_eq!(row(rows, "station", "xh/t1/v1")["name"], "东村站");
    assert_eq!(row(rows, "station", "xh/t2/v9")["name"], "xh/t2/v9");
    county.stop().await;
}

#[tokio::test]
async fn refusals_are_4xx_naming_the_field_and_change_nothing() {
    let township = TestApi::start("xh/t1", Tier::Township).await;
    township.register("xh/t1/v1", "东村站", "village").await;
    let before = township.heads().await;
    let cases = [
        (
            json!({"id": "xh/t1/v2", "name": "西村站", "tier": "township"}),
            422,
            "tier",
        ),
        (
            json!({"id": "xh/t2/v1", "name": "别村站", "tier": "village"}),
            403,
            "id",
        ),
        (
            json!({"id": "xh/t1/v2", "name": " ", "tier": "village"}),
            422,
            "name",
        ),
        (
            json!({"id": "xh/t1/v 2", "name": "西村站", "tier": "village"}),
            422,
            "id",
        ),
        (
            json!({"id": "xh/t1/v2", "name": "西村站", "tier": "village", "phone": "1"}),
            400,
            "phone",
        ),
        (json!({"id": "xh/t1/v2", "tier": "village"}), 400, "body"),
    ];
    for (body, status, field) in cases {
        let (got, answer) = township.post("stations", body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        assert!(
            !answer["error"]["reason"].as_str().unwrap().is_empty(),
            "{answer}"
        );
    }
    assert_eq!(township.heads().await, before, "nothing written");
    let (status, list) = township.get("stations").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["stations"].as_array().unwrap().len(), 1, "{list}");
    township.stop().await;
}

#[tokio::test]
async fn a_rename_is_listed_and_the_list_keeps_to_the_subtree_asked() {
    let county = TestApi::start("xh", Tier::County).await;
    county.register("xh/t1/v1", "东村", "village").await;
    county.register("xh/t2/v1", "南村站", "village").await;
    let (status, renamed) = county
        .post(
            "stations",
            json!({"id": "xh/t1/v1", "name": "东村站", "tier": "village"}),
        )
        .await;
    assert_eq!(status, 201, "{renamed}");
    assert_eq!(renamed["registered_in"], "xh");
    let (status, same) = county
        .post(
            "stations",
            json!({"id": "xh/t1/v1", "name": "东村站", "tier": "village"}),
        )
        .await;
    assert_eq!((status, &same["changed"]), (200, &json!(false)), "{same}");

    let (status, list) = county.get("stations?under=xh/t1").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["under"], "xh/t1");
    let stations = list["stations"].as_array().unwrap();
    assert_eq!(stations.len(), 1, "{list}");
    assert_eq!(
        (
            &stations[0]["id"],
            &stations[0]["name"],
            &stations[0]["tier"]
        ),
        (&json!("xh/t1/v1"), &json!("东村站"), &json!("village"))
    );
    let (status, all) = county.get("stations").await;
    assert_eq!(status, 200);
    assert_eq!(all["stations"].as_array().unwrap().len(), 2, "{all}");
    let (status, bad) = county.get("stations?under=x%20y").await;
    assert_eq!((status, &bad["error"]["field"]), (400, &json!("under")));
    county.stop().await;
}

/// County counts for one month: (villages, villages active).
async fn coverage(county: &TestApi, month: &str) -> (u64, u64) {
    let (status, stats) = county.get(&format!("stats?month={month}")).await;
    assert_eq!(status, 200, "{stats}");
    (
        stats["villages"].as_u64().unwrap(),
        stats["villages_active"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn a_retired_village_keeps_its_history_is_not_quiet_and_is_not_expected_after() {
    let county = TestApi::start("xh", Tier::County).await;
    county.register("xh/t1", "城关镇所", "township").await;
    county.register("xh/t1/v1", "东村站", "village").await;
    county.register("xh/t1/v2", "西村站", "village").await;
    county.register("xh/t1/v3", "北村站", "village").await;
    village_reports(&county, "xh/t1/v1").await;
    let (_, october_before) = county.get(&format!("stats?month={MONTH}")).await;
    assert_eq!(coverage(&county, MONTH).await, (3, 1));
    assert_eq!(coverage(&county, "2026-11").await, (3, 0));

    // v2 never reported and closed on 11-01, merged into v3; v1 closed on
    // the same day but its node had not heard and its changes are newer.
    for id in ["xh/t1/v1", "xh/t1/v2"] {
        let (status, answer) = county
            .post(
                "stations/retire",
                json!({"id": id, "retired_on": "2026-11-01", "merged_into": "xh/t1/v3"}),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["retired"]["retired_on"], "2026-11-01", "{answer}");
        assert_eq!(answer["retired"]["merged_into"], "xh/t1/v3", "{answer}");
    }
    let (status, again) = county
        .post(
            "stations/retire",
            json!({"id": "xh/t1/v2", "retired_on": "2026-11-01", "merged_into": "xh/t1/v3"}),
        )
        .await;
    assert_eq!(
        status, 200,
        "the same retirement again writes nothing: {again}"
    );

    let (_, october_after) = county.get(&format!("stats?month={MONTH}")).await;
    assert_eq!(october_after, october_before, "a month before is unchanged");
    assert_eq!(
        coverage(&county, "2026-11").await,
        (1, 0),
        "only v3 expected"
    );

    let (status, freshness) = county.get("freshness").await;
    assert_eq!(status, 200, "{freshness}");
    let rows = &freshness["stations"];
    let v2 = row(rows, "station", "xh/t1/v2");
    assert_eq!(v2["retired_on"], "2026-11-01", "{v2}");
    assert_eq!(v2["quiet"], false, "a closed village is not phoned: {v2}");
    assert_eq!(v2.get("still_recording"), None, "{v2}");
    let v1 = row(rows, "station", "xh/t1/v1");
    assert_eq!(v1["still_recording"], true, "{v1}");
    assert_eq!(row(rows, "station", "xh/t1/v3")["quiet"], true);
    assert_eq!(freshness["retired"], 2, "{freshness}");

    let (_, list) = county.get("stations").await;
    let listed = row(&list["stations"], "id", "xh/t1/v2");
    assert_eq!(listed["retired"]["retired_on"], "2026-11-01", "{list}");
    assert_eq!(
        list["stations"].as_array().unwrap().len(),
        4,
        "nothing hidden"
    );

    // A clerk's mistake undone: v2 is expected again.
    let (status, undone) = county
        .post(
            "stations/retire",
            json!({"id": "xh/t1/v2", "retired_on": null}),
        )
        .await;
    assert_eq!(status, 201, "{undone}");
    assert_eq!(undone.get("retired"), None, "{undone}");
    assert_eq!(coverage(&county, "2026-11").await, (2, 0));
    let (_, freshness) = county.get("freshness").await;
    assert_eq!(
        row(&freshness["stations"], "station", "xh/t1/v2")["quiet"],
        true
    );
    county.stop().await;
}

#[tokio::test]
async fn retirement_refusals_are_4xx_naming_the_field_and_change_nothing() {
    let township = TestApi::start("xh/t1", Tier::Township).await;
    township.register("xh/t1/v1", "东村站", "village").await;
    township.register("xh/t1/v2", "西村站", "village").await;
    let before = township.heads().await;
    let cases = [
        (
            json!({"id": "xh/t1/v1", "retired_on": "2026-02-30"}),
            422,
            "retired_on",
        ),
        (
            json!({"id": "xh/t1/v1", "retired_on": "2099-01-01"}),
            422,
            "retired_on",
        ),
        (
            json!({"id": "xh/t1/v9", "retired_on": "2026-11-01"}),
            422,
            "id",
        ),
        (
            json!({"id": "xh/t1", "retired_on": "2026-11-01"}),
            403,
            "id",
        ),
        (
            json!({"id": "xh/t2/v1", "retired_on": "2026-11-01"}),
            403,
            "id",
        ),
        (
            json!({"id": "xh/t1/v1", "retired_on": "2026-11-01", "merged_into": "xh/t2/v1"}),
            422,
            "merged_into",
        ),
        (
            json!({"id": "xh/t1/v1", "retired_on": "2026-11-01", "merged_into": "xh/t1/v8"}),
            422,
            "merged_into",
        ),
        (
            json!({"id": "xh/t1/v1", "merged_into": "xh/t1/v2"}),
            422,
            "merged_into",
        ),
        (json!({"id": "xh/t1/v1", "on": "2026-11-01"}), 400, "on"),
    ];
    for (body, status, field) in cases {
        let (got, answer) = township.post("stations/retire", body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    assert_eq!(township.heads().await, before, "nothing written");
    township.stop().await;
}

#[tokio::test]
async fn a_station_list_file_registers_its_rows_and_names_each_bad_row() {
    let api = TestApi::start("xh", Tier::County).await;
    let post_file = |query: &str, file: &str| {
        let url = api.url(&format!("import/stations{query}"));
        crate::api::test_api::answer(api.http.post(url).body(file.to_string()))
    };
    let file = "站点编码,站点名称,层级\n\
                xh/t1,城关镇新时代文明实践所,所\n\
                xh/t1/v1,东村新时代文明实践站,\n\
                xh/t1/v2,西村新时代文明实践站,所\n\
                hd/t1,邻县镇所,所\n";
    let (status, report) = post_file("?format=csv", file).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["rows"].as_u64(), report["accepted"].as_u64()),
        (Some(4), Some(2)),
        "{report}"
    );
    let refused: Vec<(u64, &str)> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["row"].as_u64().unwrap(), r["field"].as_str().unwrap()))
        .collect();
    assert_eq!(refused, vec![(4, "tier"), (5, "id")], "{report}");

    let (status, listed) = api.get("stations").await;
    assert_eq!(status, 200, "{listed}");
    let village = row(&listed["stations"], "id", "xh/t1/v1");
    assert_eq!(
        (village["name"].as_str(), village["tier"].as_str()),
        (Some("东村新时代文明实践站"), Some("village"))
    );
    // A file without the code column is refused whole, naming it.
    let (status, refusal) = post_file("", "名称\n东村站\n").await;
    assert_eq!(status, 422, "{refusal}");
    assert_eq!(refusal["error"]["field"], "file");
    assert!(
        refusal["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("站点编码"),
        "{refusal}"
    );
    // The rows name their stations; a station to import into is refused.
    let (status, refusal) = post_file("?station=xh/t1", file).await;
    assert_eq!(
        (status, refusal["error"]["field"].as_str()),
        (400, Some("station"))
    );
    api.stop().await;
}
