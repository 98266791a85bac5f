//! The statistics API of an office above the county: it holds no rosters,
//! activities or orders, and answers from the counties' statistics
//! documents — per county its own line, for itself the sum.

use crate::api::test_api::{station, TestApi};
use civsync_protocol::domain::model::{Activity, Category, Form, RecordId};
use civsync_protocol::layout;
use civsync_protocol::replica::{Replica, ReplicaConfig};
use civsync_protocol::service::statistics::StatisticsPublisher;
use civsync_protocol::stats::StatsIndex;
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::sync::host::SyncHost;
use civsync_protocol::sync::signing::PayloadFormat;
use civsync_protocol::{DocumentId, Month, Tier};
use time::macros::date;

fn november() -> Month {
    Month::new(2026, 11).unwrap()
}

/// An activity of `at` on 2026-11-03 without service records.
pub(crate) fn activity(id: &str, at: &str, beneficiaries: u32) -> Activity {
    Activity {
        id: RecordId::parse("id", id).unwrap(),
        name: "活动".into(),
        date: date!(2026 - 11 - 03),
        station: station(at),
        place: "广场".into(),
        content: "内容".into(),
        form: Form::Lecture,
        category: Category::Theory,
        team: None,
        person_in_charge: "李明".into(),
        beneficiaries,
        theme: None,
        recorded_on: date!(2026 - 11 - 03),
        late: false,
        deleted: false,
        records: vec![],
    }
}

/// A county with one activity per village given, which publishes its
/// statistics and hands the November document to the prefecture's store.
async fn county_publishes(prefecture: &TestApi, county: &str, villages: &[(&str, u32)]) {
    let config = ReplicaConfig {
        tier: Some(Tier::County),
        ..ReplicaConfig::default()
    };
    let mut replica = Replica::open(MemoryStorage::new(), station(county), 3, config).unwrap();
    for (n, (village, beneficiaries)) in villages.iter().enumerate() {
        let at = format!("{county}/{village}");
        let recorded = activity(&format!("a{n}"), &at, *beneficiaries);
        replica
            .commit(&DocumentId::activities(&station(&at), november()), |doc| {
                layout::put_activity(doc, &recorded)
            })
            .unwrap();
    }
    let mut index = StatsIndex::new();
    for document in replica.documents() {
        replica
            .with_document(&document, |doc| index.apply_document(&document, doc))
            .unwrap()
            .unwrap()
            .unwrap();
    }
    StatisticsPublisher::new()
        .publish(&mut replica, &index, 0)
        .unwrap();
    let document = DocumentId::statistics(&station(county), november());
    let (here, there) = (station(county), prefecture.ctx.config.station.clone());
    for _ in 0..20 {
        let mut moved = false;
        if let Some(message) = replica
            .generate_sync_message(&there, &document, PayloadFormat::Signed)
            .unwrap()
        {
            let (from, document) = (here.clone(), document.clone());
            prefecture
                .ctx
                .store
                .call(move |store| {
                    store.receive_sync_message(&from, &document, &message, PayloadFormat::Signed)
                })
                .await
                .unwrap()
                .unwrap();
            moved = true;
        }
        let (to, for_store) = (here.clone(), document.clone());
        let answer = prefecture
            .ctx
            .store
            .call(move |store| store.generate_sync_message(&to, &for_store, PayloadFormat::Signed))
            .await
            .unwrap()
            .unwrap();
        if let Some(message) = answer {
            replica
                .receive_sync_message(&there, &document, &message, PayloadFormat::Signed)
                .unwrap();
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("{document} did not reach the prefecture");
}

#[tokio::test]
async fn a_prefecture_answers_each_county_from_its_statistics_and_itself_with_their_sum() {
    let prefecture = TestApi::start("zk", Tier::Prefecture).await;
    county_publishes(&prefecture, "zk/xh", &[("t1/v1", 10), ("t2/v1", 5)]).await;
    county_publishes(&prefecture, "zk/yc", &[("t1/v1", 7)]).await;

    let (status, body) = prefecture.get("stats?month=2026-11").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totals"]["activities"], 3, "{body}");
    assert_eq!(body["totals"]["beneficiaries"], 22);
    let line = |body: &serde_json::Value, at: &str| {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["station"] == at)
            .cloned()
            .unwrap_or_else(|| panic!("no line for {at}: {body}"))
    };
    assert_eq!(line(&body, "zk/xh")["beneficiaries"], 15);
    assert_eq!(line(&body, "zk/yc")["beneficiaries"], 7);
    assert_eq!(line(&body, "zk/xh/t2")["activities"], 1);

    let (status, county) = prefecture.get("stats?month=2026-11&station=zk/xh").await;
    assert_eq!(status, 200, "{county}");
    assert_eq!(county["totals"]["beneficiaries"], 15);
    assert!(county["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|row| row["station"].as_str().unwrap().starts_with("zk/xh")));

    let (status, empty) = prefecture.get("stats?month=2026-10").await;
    assert_eq!(status, 200);
    assert_eq!(empty["totals"]["activities"], 0);

    let (status, quarter) = prefecture.get("reports/quarterly?quarter=2026Q4").await;
    assert_eq!(status, 422, "{quarter}");
    assert_eq!(quarter["error"]["field"], "quarter");
    prefecture.stop().await;
}
