//! A station file over a `Replica<MemoryStorage>`: one change per registry
//! written, each bad row named, the same rules as one registration.

use super::*;
use crate::service::registry::{read_registry, register_station};
use crate::test_support::{all_heads, node, station};
use automerge::ReadDoc;

fn row(n: usize, id: &str, name: &str, tier: &str) -> (usize, StationInput) {
    (
        n,
        StationInput {
            id: id.into(),
            name: name.into(),
            tier: tier.into(),
        },
    )
}

fn listed(replica: &mut Replica<crate::storage::MemoryStorage>) -> Vec<(String, String, String)> {
    crate::service::registry::tests::names(&read_registry(replica))
}

#[test]
fn a_station_file_goes_into_the_county_registry_as_one_change_and_each_bad_row_is_named() {
    let mut county = node("xh");
    // One station already there, so the registry has heads to build on.
    register_station(
        &mut county,
        Tier::County,
        &StationInput {
            id: "xh/t9".into(),
            name: "旧镇所".into(),
            tier: "township".into(),
        },
    )
    .unwrap();
    let registry = layout::registry_document(&station("xh"));
    let before = county.heads(&registry).unwrap().to_vec();
    let report = import_stations(
        &mut county,
        Tier::County,
        vec![
            row(2, "xh/t1", "城关镇新时代文明实践所", "所"),
            row(3, "xh/t1/v1", " 东村站 ", "village"),
            row(4, "xh/t1/v2", "西村站", "township"),
            row(5, "hd/t1", "邻县镇所", "township"),
            row(6, "xh/t1/v3", "", "village"),
            row(7, "xh/t1/v1", "东村新时代文明实践站", "village"),
            // No tier given: the depth gives it.
            row(8, "xh/t1/v4", "北村站", " "),
            row(9, "xh/t1/v5", "南村站", "村"),
        ],
    )
    .unwrap();
    assert_eq!((report.rows, report.accepted), (8, 3));
    let refused: Vec<(usize, &str)> = report
        .refused
        .iter()
        .map(|r| (r.row, r.field.as_str()))
        .collect();
    assert_eq!(
        refused,
        vec![(4, "tier"), (5, "id"), (6, "name"), (7, "id"), (9, "tier")],
        "{report:?}"
    );
    assert!(report.refused[3].reason.contains("row 3"), "{report:?}");
    assert_eq!(
        listed(&mut county),
        vec![
            ("xh/t1".into(), "城关镇新时代文明实践所".into(), "xh".into()),
            ("xh/t1/v1".into(), "东村站".into(), "xh".into()),
            ("xh/t1/v4".into(), "北村站".into(), "xh".into()),
            ("xh/t9".into(), "旧镇所".into(), "xh".into()),
        ]
    );
    // One change for the whole file, right on the heads before.
    let after = county.heads(&registry).unwrap().to_vec();
    assert_eq!(after.len(), 1);
    let deps = county
        .with_document(&registry, |doc| {
            doc.get_change_by_hash(&after[0]).map(|c| c.deps().to_vec())
        })
        .unwrap()
        .expect("the registry is held")
        .expect("the head is a change of the document");
    assert_eq!(deps, before);
}

#[test]
fn a_station_listed_in_a_closer_registry_is_renamed_there_as_one_registration_would() {
    let mut county = node("xh");
    let township_registry = layout::registry_document(&station("xh/t1"));
    county
        .commit(&township_registry, |doc| {
            layout::put_registry_entry(
                doc,
                &Station {
                    id: station("xh/t1/v1"),
                    name: "东村".into(),
                    tier: Tier::Village,
                },
            )
        })
        .unwrap();
    let report = import_stations(
        &mut county,
        Tier::County,
        vec![
            row(2, "xh/t1/v1", "东村实践站", "village"),
            row(3, "xh/t1/v2", "西村实践站", "village"),
        ],
    )
    .unwrap();
    assert_eq!((report.accepted, report.refused.len()), (2, 0));
    assert_eq!(
        listed(&mut county),
        vec![
            ("xh/t1/v1".into(), "东村实践站".into(), "xh/t1".into()),
            ("xh/t1/v2".into(), "西村实践站".into(), "xh".into()),
        ]
    );
}

#[test]
fn importing_the_same_file_again_writes_nothing() {
    let mut township = node("xh/t1");
    let rows = vec![
        row(2, "xh/t1/v1", "东村站", "village"),
        row(3, "xh/t1/v2", "西村站", "village"),
    ];
    let first = import_stations(&mut township, Tier::Township, rows.clone()).unwrap();
    assert_eq!(first.accepted, 2);
    let before = all_heads(&township);
    let again = import_stations(&mut township, Tier::Township, rows).unwrap();
    assert_eq!((again.accepted, again.refused.len()), (2, 0));
    assert_eq!(all_heads(&township), before);
}

#[test]
fn a_file_of_only_refused_rows_writes_nothing() {
    let mut township = node("xh/t1");
    let before = all_heads(&township);
    let report = import_stations(
        &mut township,
        Tier::Township,
        vec![row(2, "xh/t2/v1", "别镇的村", "village")],
    )
    .unwrap();
    assert_eq!(
        (report.accepted, report.refused[0].field.as_str()),
        (0, "id")
    );
    assert_eq!(all_heads(&township), before);
    assert!(township.documents().is_empty());
}
