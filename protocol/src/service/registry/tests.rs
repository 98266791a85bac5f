//! Registering and renaming stations over a `Replica<MemoryStorage>`:
//! what is written where, what is refused (and that a refusal writes
//! nothing), and how registries held at one node merge.

use super::*;
use crate::storage::MemoryStorage;
use crate::test_support::{all_heads, node, station, sync_document};
use proptest::prelude::*;

fn input(id: &str, name: &str, tier: &str) -> StationInput {
    StationInput {
        id: id.into(),
        name: name.into(),
        tier: tier.into(),
    }
}

pub(super) fn names(read: &RegistryRead) -> Vec<(String, String, String)> {
    read.entries
        .iter()
        .map(|e| {
            (
                e.station.id.to_string(),
                e.station.name.clone(),
                e.registered_in.to_string(),
            )
        })
        .collect()
}

#[test]
fn a_county_registers_townships_and_villages_into_its_own_registry() {
    let mut county = node("xh");
    let t1 = register_station(
        &mut county,
        Tier::County,
        &input("xh/t1", "城关镇所", "township"),
    )
    .unwrap();
    assert!(t1.changed);
    assert_eq!(t1.entry.registered_in, station("xh"));
    register_station(
        &mut county,
        Tier::County,
        &input(" xh/t1/v1 ", "  东村站 ", "village"),
    )
    .unwrap();
    let read = read_registry(&mut county);
    assert_eq!(
        names(&read),
        vec![
            ("xh/t1".into(), "城关镇所".into(), "xh".into()),
            ("xh/t1/v1".into(), "东村站".into(), "xh".into()),
        ],
        "trimmed, in path order"
    );
    assert!(read.unreadable.is_empty());
    assert_eq!(
        county.documents(),
        vec![layout::registry_document(&station("xh"))]
    );
    assert_eq!(read.stations()[1].tier, Tier::Village);
}

#[test]
fn registering_the_same_name_again_writes_nothing() {
    let mut county = node("xh");
    let first = input("xh/t1/v1", "东村站", "village");
    register_station(&mut county, Tier::County, &first).unwrap();
    let before = all_heads(&county);
    let again = register_station(&mut county, Tier::County, &first).unwrap();
    assert!(!again.changed);
    assert_eq!(all_heads(&county), before);
}

#[test]
fn refusals_name_the_field_and_write_nothing() {
    let mut township = node("xh/t1");
    register_station(
        &mut township,
        Tier::Township,
        &input("xh/t1/v1", "东村站", "village"),
    )
    .unwrap();
    let before = all_heads(&township);
    let cases = [
        (input("xh/t1/v2", "西村站", "township"), "tier"),
        (input("xh/t1/v2", "西村站", "hamlet"), "tier"),
        (input("xh/t1/v2", "   ", "village"), "name"),
        (input("xh/t1/v2", &"村".repeat(65), "village"), "name"),
        (input("xh/t1/v2", "西村\u{7}站", "village"), "name"),
        (input("xh/t2/v1", "别村站", "village"), "id"),
        (input("xh", "县中心", "county"), "id"),
        (input("xh/t1/v 2", "西村站", "village"), "id"),
        (input("xh/t1/v2/p1/q1", "深处", "point"), "id"),
    ];
    for (bad, field) in cases {
        let error = register_station(&mut township, Tier::Township, &bad).unwrap_err();
        assert_eq!(error.field(), field, "{bad:?}: {error}");
        assert!(!error.reason().is_empty());
        assert_ne!(error.class(), ErrorClass::Internal, "{error}");
    }
    let outside = register_station(
        &mut township,
        Tier::Township,
        &input("xh/t2/v1", "别村站", "village"),
    )
    .unwrap_err();
    assert_eq!(outside.class(), ErrorClass::Forbidden);
    let wrong_tier = register_station(
        &mut township,
        Tier::Township,
        &input("xh/t1/v2", "西村站", "township"),
    )
    .unwrap_err();
    assert!(
        wrong_tier.reason().contains("its tier is village"),
        "{wrong_tier}"
    );
    assert_eq!(all_heads(&township), before);
    assert_eq!(read_registry(&mut township).entries.len(), 1);
}

#[test]
fn the_tier_follows_the_depth_below_the_node() {
    let county = station("xh");
    assert_eq!(
        tier_below(&county, Tier::County, &county),
        Some(Tier::County)
    );
    assert_eq!(
        tier_below(&county, Tier::County, &station("xh/t1")),
        Some(Tier::Township)
    );
    assert_eq!(
        tier_below(&county, Tier::County, &station("xh/t1/v1/p1")),
        Some(Tier::Point)
    );
    assert_eq!(
        tier_below(&county, Tier::County, &station("xh/t1/v1/p1/x")),
        None
    );
    let province = station("hn");
    assert_eq!(
        tier_below(&province, Tier::Province, &station("hn/zk/xh")),
        Some(Tier::County),
        "a prefecture adds a segment on top"
    );
}

#[test]
fn a_blank_tier_is_the_depth_s_and_a_written_one_must_match_it() {
    let county = station("xh");
    let blank = validate_station(&input("xh/t1/v1", "东村站", " "), &county, Tier::County).unwrap();
    assert_eq!(blank.tier, Tier::Village);
    let wrong =
        validate_station(&input("xh/t1/v1", "东村站", "所"), &county, Tier::County).unwrap_err();
    assert_eq!(wrong.field(), "tier");
    let below_the_lowest =
        validate_station(&input("xh/t1/v1/p1/x", "村", ""), &county, Tier::County).unwrap_err();
    assert_eq!(below_the_lowest.field(), "id");
}

#[test]
fn the_closest_registry_wins_and_a_rename_is_written_where_it_is_read() {
    let mut county = node("xh");
    register_station(
        &mut county,
        Tier::County,
        &input("xh/t1/v1", "东村", "village"),
    )
    .unwrap();
    register_station(
        &mut county,
        Tier::County,
        &input("xh/t1/v2", "西村", "village"),
    )
    .unwrap();
    // The township's own registry (written here as its ancestor may; at
    // the township it is written by the township and synced up).
    let township_registry = layout::registry_document(&station("xh/t1"));
    county
        .commit(&township_registry, |doc| {
            layout::put_registry_entry(
                doc,
                &Station {
                    id: station("xh/t1/v1"),
                    name: "东村新时代文明实践站".into(),
                    tier: Tier::Village,
                },
            )
        })
        .unwrap();
    assert_eq!(
        names(&read_registry(&mut county)),
        vec![
            (
                "xh/t1/v1".into(),
                "东村新时代文明实践站".into(),
                "xh/t1".into()
            ),
            ("xh/t1/v2".into(), "西村".into(), "xh".into()),
        ]
    );

    // The county renames v1: written into the township's registry, which
    // readers look at first; v2 stays in the county's.
    let renamed = register_station(
        &mut county,
        Tier::County,
        &input("xh/t1/v1", "东村实践站", "village"),
    )
    .unwrap();
    assert_eq!(renamed.entry.registered_in, station("xh/t1"));
    let renamed_v2 = register_station(
        &mut county,
        Tier::County,
        &input("xh/t1/v2", "西村实践站", "village"),
    )
    .unwrap();
    assert_eq!(renamed_v2.entry.registered_in, station("xh"));
    assert_eq!(
        names(&read_registry(&mut county)),
        vec![
            ("xh/t1/v1".into(), "东村实践站".into(), "xh/t1".into()),
            ("xh/t1/v2".into(), "西村实践站".into(), "xh".into()),
        ]
    );
}

#[test]
fn a_damaged_entry_is_reported_and_the_rest_still_read() {
    let mut county = node("xh");
    register_station(
        &mut county,
        Tier::County,
        &input("xh/t1/v1", "东村", "village"),
    )
    .unwrap();
    let registry = layout::registry_document(&station("xh"));
    county
        .commit(&registry, |doc| {
            use automerge::transaction::Transactable;
            let items = layout::root_maps(doc, layout::ITEMS)?;
            let bad = doc.put_object(&items[0], "xh/t1/v2", automerge::ObjType::Map)?;
            doc.put(&bad, "tier", 7_u64)?;
            Ok::<_, layout::LayoutError>(())
        })
        .unwrap();
    let read = read_registry(&mut county);
    assert_eq!(read.entries.len(), 1);
    assert_eq!(read.unreadable.len(), 1);
    assert_eq!(read.unreadable[0].key.as_deref(), Some("xh/t1/v2"));
    assert_eq!(read.unreadable[0].document, registry);
}

#[test]
fn seen_stations_complete_the_registry_with_their_tier_from_depth() {
    let registry = vec![Station {
        id: station("xh/t1/v1"),
        name: "东村站".into(),
        tier: Tier::Village,
    }];
    let seen = ["xh/t1/v1", "xh/t1", "xh/t2/v5", "yy/t1", "xh/t1/v1/p1/x"].map(station);
    let completed = with_unregistered(&registry, seen, &station("xh"), Tier::County);
    let got: Vec<(String, String, Tier)> = completed
        .iter()
        .map(|s| (s.id.to_string(), s.name.clone(), s.tier))
        .collect();
    assert_eq!(
        got,
        vec![
            ("xh/t1".into(), "xh/t1".into(), Tier::Township),
            ("xh/t1/v1".into(), "东村站".into(), Tier::Village),
            ("xh/t2/v5".into(), "xh/t2/v5".into(), Tier::Village),
        ],
        "the registered name kept; other counties and impossible depths left out"
    );
}

fn tier_index(tier: Tier) -> usize {
    Tier::ALL.iter().position(|t| *t == tier).unwrap()
}

proptest! {
    #[test]
    fn a_tier_is_accepted_exactly_when_it_matches_the_depth(
        below in proptest::collection::vec("[a-z0-9]{1,4}", 0..6),
        tier in 0usize..6,
        local_tier in 0usize..6,
    ) {
        let local = station("xh");
        let id = if below.is_empty() { "xh".to_string() } else { format!("xh/{}", below.join("/")) };
        let submitted = input(&id, "站", Tier::ALL[tier].as_str());
        let outcome = validate_station(&submitted, &local, Tier::ALL[local_tier]);
        let expected = local_tier + below.len();
        match outcome {
            Ok(station) => {
                prop_assert_eq!(tier, expected);
                prop_assert_eq!(tier_index(station.tier), expected);
            }
            Err(error) => {
                prop_assert!(tier != expected || expected >= Tier::ALL.len(), "{}", error);
                prop_assert!(error.field() == "tier" || error.field() == "id");
            }
        }
    }

    #[test]
    fn the_merge_takes_the_deepest_owner_whatever_the_order(
        listings in proptest::collection::vec(
            (0usize..3, proptest::collection::vec((0usize..4, "[a-z]{1,3}"), 0..6)),
            0..6,
        ),
        reversed in any::<bool>(),
    ) {
        // Owners along one path: xh, xh/t1, xh/t1/v1; stations among a
        // few paths under and beside them.
        let owners = [station("xh"), station("xh/t1"), station("xh/t1/v1")];
        let targets = [station("xh/t1"), station("xh/t1/v1"), station("xh/t1/v1/p1"), station("xh/t2")];
        let mut by_owner: BTreeMap<usize, Vec<Station>> = BTreeMap::new();
        for (owner, stations) in &listings {
            let list = by_owner.entry(*owner).or_default();
            for (target, name) in stations {
                let id = targets[*target].clone();
                // One entry per station within one document.
                if list.iter().all(|s| s.id != id) {
                    list.push(Station { id, name: name.clone(), tier: Tier::Village });
                }
            }
        }
        let mut registries: Vec<(&StationId, &[Station])> = by_owner
            .iter()
            .map(|(owner, stations)| (&owners[*owner], stations.as_slice()))
            .collect();
        if reversed {
            registries.reverse();
        }
        let merged = merge_registries(registries.iter().copied());
        prop_assert!(merged.windows(2).all(|w| w[0].station.id < w[1].station.id));
        for target in &targets {
            let listing: Vec<(&StationId, &Station)> = registries
                .iter()
                .filter(|(owner, _)| owner.is_ancestor_or_self_of(target))
                .flat_map(|(owner, stations)| {
                    stations.iter().filter(|s| &s.id == target).map(move |s| (*owner, s))
                })
                .collect();
            let found = merged.iter().find(|e| &e.station.id == target);
            match listing.iter().max_by_key(|(owner, _)| owner.depth()) {
                None => prop_assert!(found.is_none()),
                Some((owner, station)) => {
                    let found = found.expect("listed stations are merged");
                    prop_assert_eq!(&found.registered_in, *owner);
                    prop_assert_eq!(&found.station, *station);
                }
            }
        }
    }
}

#[test]
fn registries_flow_down_and_up_and_every_node_takes_the_closest() {
    let mut county = node("xh");
    let mut township = node("xh/t1");
    let mut village = node("xh/t1/v1");
    register_station(
        &mut county,
        Tier::County,
        &input("xh/t1", "城关镇所", "township"),
    )
    .unwrap();
    register_station(
        &mut county,
        Tier::County,
        &input("xh/t1/v1", "东村", "village"),
    )
    .unwrap();
    register_station(
        &mut county,
        Tier::County,
        &input("xh/t2/v7", "南村站", "village"),
    )
    .unwrap();
    register_station(
        &mut township,
        Tier::Township,
        &input("xh/t1/v1", "东村新时代文明实践站", "village"),
    )
    .unwrap();
    let county_registry = layout::registry_document(&station("xh"));
    let township_registry = layout::registry_document(&station("xh/t1"));
    sync_document(&mut county, &mut township, &county_registry);
    sync_document(&mut county, &mut township, &township_registry);
    sync_document(&mut township, &mut village, &county_registry);
    sync_document(&mut township, &mut village, &township_registry);

    let expected = vec![
        (
            "xh/t1".to_string(),
            "城关镇所".to_string(),
            "xh".to_string(),
        ),
        (
            "xh/t1/v1".to_string(),
            "东村新时代文明实践站".to_string(),
            "xh/t1".to_string(),
        ),
        (
            "xh/t2/v7".to_string(),
            "南村站".to_string(),
            "xh".to_string(),
        ),
    ];
    for replica in [&mut county, &mut township, &mut village] {
        assert_eq!(
            names(&read_registry(replica)),
            expected,
            "at {}",
            replica.local()
        );
    }
}

#[test]
fn a_full_registry_refuses_a_new_station_but_still_renames() {
    let mut county = node("xh");
    let registry = layout::registry_document(&station("xh"));
    county
        .commit(&registry, |doc| {
            for n in 0..REGISTRY_STATIONS_MAX {
                layout::put_registry_entry(
                    doc,
                    &Station {
                        id: station(&format!("xh/t1/v{n}")),
                        name: "村".into(),
                        tier: Tier::Village,
                    },
                )?;
            }
            Ok::<_, layout::LayoutError>(())
        })
        .unwrap();
    let before = all_heads(&county);
    let full = register_station(
        &mut county,
        Tier::County,
        &input("xh/t2", "新镇所", "township"),
    )
    .unwrap_err();
    assert_eq!((full.field(), full.class()), ("id", ErrorClass::BadInput));
    assert_eq!(all_heads(&county), before);
    let renamed = register_station(
        &mut county,
        Tier::County,
        &input("xh/t1/v5", "五村站", "village"),
    )
    .unwrap();
    assert!(renamed.changed);
}

// ---------------------------------------------------------------- retirement

fn today() -> Date {
    time::macros::date!(2026 - 11 - 23)
}

fn retire(id: &str, on: Option<&str>, merged_into: Option<&str>) -> RetireInput {
    RetireInput {
        id: id.into(),
        retired_on: on.map(str::to_string),
        merged_into: merged_into.map(str::to_string),
    }
}

/// A township with three villages registered in its own registry.
fn township_with_villages() -> Replica<MemoryStorage> {
    let mut township = node("xh/t1");
    for (id, name) in [
        ("xh/t1/v1", "东村站"),
        ("xh/t1/v2", "西村站"),
        ("xh/t1/v3", "北村站"),
    ] {
        register_station(&mut township, Tier::Township, &input(id, name, "village")).unwrap();
    }
    township
}

#[test]
fn a_township_retires_a_village_and_can_undo_it_and_nothing_is_hidden() {
    let mut township = township_with_villages();
    let retired = retire_station(
        &mut township,
        &retire("xh/t1/v1", Some("2026-11-15"), Some("xh/t1/v2")),
        today(),
    )
    .unwrap();
    assert!(retired.changed);
    assert_eq!(retired.entry.registered_in, station("xh/t1"));
    let read = read_registry(&mut township);
    assert_eq!(read.entries.len(), 3, "a retired station stays registered");
    let entry = read.entry(&station("xh/t1/v1")).unwrap();
    let retirement = entry.retired.as_ref().unwrap();
    assert_eq!(retirement.retired_on, time::macros::date!(2026 - 11 - 15));
    assert_eq!(retirement.merged_into, Some(station("xh/t1/v2")));
    assert_eq!(
        read.retired().retired_on(&station("xh/t1/v1/p1")),
        Some(retirement.retired_on),
        "its subtree is retired with it"
    );
    assert!(read.entry(&station("xh/t1/v2")).unwrap().retired.is_none());

    let again = retire_station(
        &mut township,
        &retire("xh/t1/v1", Some("2026-11-15"), Some("xh/t1/v2")),
        today(),
    )
    .unwrap();
    assert!(!again.changed, "the same retirement writes nothing");

    // A rename keeps the retirement (different fields).
    register_station(
        &mut township,
        Tier::Township,
        &input("xh/t1/v1", "东村站（已撤并）", "village"),
    )
    .unwrap();
    let read = read_registry(&mut township);
    let entry = read.entry(&station("xh/t1/v1")).unwrap();
    assert_eq!(entry.station.name, "东村站（已撤并）");
    assert!(entry.retired.is_some());

    let undone = retire_station(&mut township, &retire("xh/t1/v1", None, None), today()).unwrap();
    assert!(undone.changed);
    assert!(undone.entry.retired.is_none());
    let read = read_registry(&mut township);
    assert!(read.retired().is_empty(), "a clerk's mistake is undone");
    assert_eq!(read.entries.len(), 3);
}

#[test]
fn retirement_refusals_name_the_field_and_write_nothing() {
    let mut township = township_with_villages();
    retire_station(
        &mut township,
        &retire("xh/t1/v3", Some("2026-10-01"), None),
        today(),
    )
    .unwrap();
    let before = all_heads(&township);
    let cases = [
        (retire("xh/t1/v1", Some("2026-13-01"), None), "retired_on"),
        (retire("xh/t1/v1", Some("2028-01-01"), None), "retired_on"),
        (retire("xh/t1/v1", None, Some("xh/t1/v2")), "merged_into"),
        (
            retire("xh/t1/v1", Some("2026-11-15"), Some("xh/t1/v1")),
            "merged_into",
        ),
        (
            retire("xh/t1/v1", Some("2026-11-15"), Some("xh/t1/v1/p1")),
            "merged_into",
        ),
        (
            retire("xh/t1/v1", Some("2026-11-15"), Some("xh/t2/v1")),
            "merged_into",
        ),
        (
            retire("xh/t1/v1", Some("2026-11-15"), Some("xh/t1/v9")),
            "merged_into",
        ),
        (
            retire("xh/t1/v1", Some("2026-11-15"), Some("xh/t1/v3")),
            "merged_into",
        ),
        (
            retire("xh/t1/v1", Some("2026-11-15"), Some("not a path!")),
            "merged_into",
        ),
        (retire("xh/t1/v9", Some("2026-11-15"), None), "id"),
        (retire("xh/t1", Some("2026-11-15"), None), "id"),
        (retire("xh/t2/v1", Some("2026-11-15"), None), "id"),
        (retire("", Some("2026-11-15"), None), "id"),
    ];
    for (input, field) in cases {
        let error = retire_station(&mut township, &input, today()).unwrap_err();
        assert_eq!(error.field(), field, "{input:?}: {error}");
    }
    assert!(matches!(
        retire_station(
            &mut township,
            &retire("xh/t1", Some("2026-11-15"), None),
            today()
        ),
        Err(RegistryError::OutsideSubtree { .. })
    ));
    assert_eq!(all_heads(&township), before, "no refusal wrote anything");
    // A county retiring a village into another township's village: only
    // the same-parent rule refuses it (both are registered and open).
    let mut county = node("xh");
    for (id, name) in [("xh/t1/v1", "东村站"), ("xh/t2/v3", "南村站")] {
        register_station(&mut county, Tier::County, &input(id, name, "village")).unwrap();
    }
    let county_before = all_heads(&county);
    let error = retire_station(
        &mut county,
        &retire("xh/t1/v1", Some("2026-11-15"), Some("xh/t2/v3")),
        today(),
    )
    .unwrap_err();
    assert_eq!(error.field(), "merged_into", "{error}");
    assert!(error.reason().contains("same parent"), "{error}");
    assert_eq!(all_heads(&county), county_before);
    // The parent itself may take the work over.
    retire_station(
        &mut township,
        &retire("xh/t1/v1", Some("2026-11-15"), Some("xh/t1")),
        today(),
    )
    .unwrap();
}

#[test]
fn a_township_retires_a_village_only_the_county_registered_into_its_own_registry() {
    let mut county = node("xh");
    let mut township = node("xh/t1");
    register_station(
        &mut county,
        Tier::County,
        &input("xh/t1/v1", "东村站", "village"),
    )
    .unwrap();
    let county_registry = layout::registry_document(&station("xh"));
    sync_document(&mut county, &mut township, &county_registry);
    retire_station(
        &mut township,
        &retire("xh/t1/v1", Some("2026-11-15"), None),
        today(),
    )
    .unwrap();
    let read = read_registry(&mut township);
    let entry = read.entry(&station("xh/t1/v1")).unwrap();
    assert_eq!(entry.registered_in, station("xh/t1"));
    assert_eq!(entry.station.name, "东村站");
    assert!(entry.retired.is_some());
    let township_registry = layout::registry_document(&station("xh/t1"));
    sync_document(&mut county, &mut township, &township_registry);
    assert_eq!(
        read_registry(&mut county).entries,
        read.entries,
        "the county agrees"
    );
}

#[test]
fn a_rename_and_a_retirement_made_apart_both_survive_the_sync() {
    let mut county = node("xh");
    let mut township = node("xh/t1");
    let township_registry = layout::registry_document(&station("xh/t1"));
    register_station(
        &mut township,
        Tier::Township,
        &input("xh/t1/v1", "东村站", "village"),
    )
    .unwrap();
    sync_document(&mut county, &mut township, &township_registry);
    // Apart: the township renames, the county retires (into the township's
    // registry, the closest that lists the village).
    register_station(
        &mut township,
        Tier::Township,
        &input("xh/t1/v1", "东村新时代文明实践站", "village"),
    )
    .unwrap();
    let retired = retire_station(
        &mut county,
        &retire("xh/t1/v1", Some("2026-11-15"), None),
        today(),
    )
    .unwrap();
    assert_eq!(retired.entry.registered_in, station("xh/t1"));
    sync_document(&mut county, &mut township, &township_registry);
    for replica in [&mut county, &mut township] {
        let read = read_registry(replica);
        let entry = read.entry(&station("xh/t1/v1")).unwrap();
        assert_eq!(
            entry.station.name,
            "东村新时代文明实践站",
            "at {}",
            replica.local()
        );
        assert_eq!(
            entry.retired.as_ref().map(|r| r.retired_on),
            Some(time::macros::date!(2026 - 11 - 15)),
            "at {}",
            replica.local()
        );
    }
}

proptest! {
    /// With retirements, the merge still takes per station the closest
    /// owner's entry (name, tier and retirement together) whatever the
    /// order the registries come in.
    #[test]
    fn the_merge_with_retirements_is_independent_of_order(
        listings in proptest::collection::vec(
            (0usize..3, proptest::collection::vec((0usize..4, "[a-z]{1,3}", proptest::option::of(1u8..28)), 0..6)),
            0..5,
        ),
        order in proptest::collection::vec(any::<u32>(), 5),
    ) {
        let owners = [station("xh"), station("xh/t1"), station("xh/t1/v1")];
        let targets = [station("xh/t1"), station("xh/t1/v1"), station("xh/t1/v1/p1"), station("xh/t2")];
        let mut by_owner: BTreeMap<usize, (Vec<Station>, BTreeMap<StationId, Retirement>)> =
            BTreeMap::new();
        for (owner, stations) in &listings {
            let (list, retirements) = by_owner.entry(*owner).or_default();
            for (target, name, day) in stations {
                let id = targets[*target].clone();
                if list.iter().all(|s| s.id != id) {
                    if let Some(day) = day {
                        let retired_on = Date::from_calendar_date(2026, time::Month::March, *day).unwrap();
                        retirements.insert(id.clone(), Retirement { retired_on, merged_into: None });
                    }
                    list.push(Station { id, name: name.clone(), tier: Tier::Village });
                }
            }
        }
        let registries: Vec<(&StationId, &[Station], &BTreeMap<StationId, Retirement>)> = by_owner
            .iter()
            .map(|(owner, (stations, retirements))| (&owners[*owner], stations.as_slice(), retirements))
            .collect();
        let mut shuffled = registries.clone();
        // A permutation from the random keys.
        let mut keyed: Vec<(u32, usize)> =
            (0..shuffled.len()).map(|i| (order[i % order.len()], i)).collect();
        keyed.sort();
        shuffled = keyed.iter().map(|(_, i)| registries[*i]).collect();
        let merged = merge_registries_retiring(registries.iter().copied());
        prop_assert_eq!(&merge_registries_retiring(shuffled.iter().copied()), &merged);
        for entry in &merged {
            let (_, stations, retirements) = registries
                .iter()
                .find(|(owner, _, _)| *owner == &entry.registered_in)
                .expect("from a registry given");
            prop_assert!(stations.contains(&entry.station));
            prop_assert_eq!(entry.retired.as_ref(), retirements.get(&entry.station.id));
            let deepest = registries
                .iter()
                .filter(|(owner, stations, _)| {
                    owner.is_ancestor_or_self_of(&entry.station.id)
                        && stations.iter().any(|s| s.id == entry.station.id)
                })
                .map(|(owner, _, _)| owner.depth())
                .max();
            prop_assert_eq!(deepest, Some(entry.registered_in.depth()));
        }
    }
}

#[test]
fn the_cached_registry_is_read_again_exactly_when_a_registry_changed() {
    let mut county = node("xh");
    let mut township = township_with_villages();
    let mut cache = RegistryCache::default();
    let check = |replica: &mut Replica<MemoryStorage>, cache: &mut RegistryCache, reads: u64| {
        let cached = read_registry_cached(replica, cache);
        assert_eq!(
            cached,
            read_registry(replica),
            "the cache served a stale registry"
        );
        assert_eq!(cache.reads, reads);
    };
    check(&mut township, &mut cache, 1);
    check(&mut township, &mut cache, 1);
    // A rename, a retirement, an entry received from above: each is seen.
    register_station(
        &mut township,
        Tier::Township,
        &input("xh/t1/v1", "东村新站", "village"),
    )
    .unwrap();
    check(&mut township, &mut cache, 2);
    retire_station(
        &mut township,
        &retire("xh/t1/v3", Some("2026-11-15"), None),
        today(),
    )
    .unwrap();
    check(&mut township, &mut cache, 3);
    check(&mut township, &mut cache, 3);
    register_station(
        &mut county,
        Tier::County,
        &input("xh/t1", "城关镇所", "township"),
    )
    .unwrap();
    sync_document(
        &mut county,
        &mut township,
        &layout::registry_document(&station("xh")),
    );
    check(&mut township, &mut cache, 4);
    // A write that changed nothing leaves the cache as it is.
    register_station(
        &mut township,
        Tier::Township,
        &input("xh/t1/v1", "东村新站", "village"),
    )
    .unwrap();
    check(&mut township, &mut cache, 4);
}
