//! The escrow rules: a county rate, earned points at the home station,
//! redemptions within the local allotment, transfers through the township,
//! and a property test of partitioned stations merging in random orders.

use super::*;
use crate::storage::MemoryStorage;
use crate::test_support::{node, station, sync_document};
use proptest::prelude::*;
use time::macros::date;

const COUNTY: &str = "xh";
const TOWNSHIP: &str = "xh/t1";
const HOME: &str = "xh/t1/v1";
const MARKET: &str = "xh/t1/v2";
const TODAY: Date = date!(2026 - 12 - 05);

type Node = Replica<MemoryStorage>;

fn volunteer() -> VolunteerId {
    VolunteerId::try_from(format!("{HOME}:V1")).unwrap()
}

fn month(m: u8) -> Month {
    Month::new(2026, m).unwrap()
}

/// County, township, the volunteer's home village and a second village,
/// with the county's rate of 10 points an hour held everywhere.
fn county() -> Vec<Node> {
    let mut nodes: Vec<Node> = [COUNTY, TOWNSHIP, HOME, MARKET]
        .iter()
        .map(|at| {
            let mut replica = node(at);
            replica.set_now_ms(1_800_000_000_000);
            replica
        })
        .collect();
    publish_rate(&mut nodes[0], Tier::County, 10).unwrap();
    sync_all(&mut nodes);
    nodes
}

/// Neighbouring pairs (parent, child) of [`county`].
const EDGES: [(usize, usize); 3] = [(0, 1), (1, 2), (1, 3)];

fn pair(nodes: &mut [Node], a: usize, b: usize) -> (&mut Node, &mut Node) {
    assert!(a < b);
    let (left, right) = nodes.split_at_mut(b);
    (&mut left[a], &mut right[0])
}

/// Sync every document both ends keep.
fn sync_edge(nodes: &mut [Node], (a, b): (usize, usize)) {
    let (a, b) = pair(nodes, a, b);
    let mut documents = a.documents();
    documents.extend(b.documents());
    documents.sort();
    documents.dedup();
    for document in documents {
        if document.in_scope_of(a.local(), Tier::County)
            && document.in_scope_of(b.local(), Tier::County)
        {
            sync_document(a, b, &document);
        }
    }
}

fn sync_all(nodes: &mut [Node]) {
    for _ in 0..2 {
        for edge in EDGES {
            sync_edge(nodes, edge);
        }
    }
}

fn here(replica: &mut Node) -> i64 {
    balance(replica, &volunteer()).unwrap().here
}

fn redemption(points: u64) -> RedemptionInput {
    RedemptionInput {
        volunteer: volunteer().to_string(),
        points,
        item: "大米 5kg".into(),
        clerk: "王芳".into(),
    }
}

fn transfer_to(to: &str, points: u64) -> TransferInput {
    TransferInput {
        volunteer: volunteer().to_string(),
        points,
        to: to.into(),
    }
}

#[test]
fn only_the_county_publishes_a_rate_and_every_station_uses_it() {
    let mut nodes = county();
    for replica in nodes.iter_mut() {
        let at = replica.local().clone();
        let rate = rate_at(replica, &at).unwrap();
        assert_eq!((rate.set_by.as_str(), rate.points_per_hour), (COUNTY, 10));
    }
    let error = publish_rate(&mut nodes[1], Tier::Township, 20).unwrap_err();
    assert_eq!(error.field(), "points_per_hour");
    assert!(error.reason().contains("only the county"), "{error}");
    let error = publish_rate(&mut nodes[0], Tier::County, 1_001).unwrap_err();
    assert_eq!(error.field(), "points_per_hour");
    assert!(!publish_rate(&mut nodes[0], Tier::County, 10).unwrap());
}

#[test]
fn earned_points_are_credited_to_the_home_station_and_never_lowered() {
    let mut nodes = county();
    let raised = credit_earned(&mut nodes[2], &volunteer(), &[(month(11), 1_050)]).unwrap();
    assert_eq!(raised, vec![(month(11), 105)]);
    assert_eq!(here(&mut nodes[2]), 105);
    // Fewer hours seen later (a deleted activity) take nothing back.
    assert!(
        credit_earned(&mut nodes[2], &volunteer(), &[(month(11), 500)])
            .unwrap()
            .is_empty()
    );
    assert_eq!(here(&mut nodes[2]), 105);
    // The township sees more hours of the month: the larger register counts,
    // once, at the home station.
    sync_all(&mut nodes);
    credit_earned(&mut nodes[1], &volunteer(), &[(month(11), 1_200)]).unwrap();
    sync_all(&mut nodes);
    assert_eq!(here(&mut nodes[2]), 120);
    let township_view = balance(&mut nodes[1], &volunteer()).unwrap();
    assert_eq!((township_view.earned, township_view.total), (120, 120));
    // A sibling village holds no home roster and credits nothing.
    let error = credit_earned(&mut nodes[3], &volunteer(), &[(month(11), 100)]).unwrap_err();
    assert_eq!(error.field(), "volunteer");
}

#[test]
fn a_redemption_beyond_the_local_allotment_is_refused_naming_where_the_rest_is() {
    let mut nodes = county();
    credit_earned(&mut nodes[2], &volunteer(), &[(month(11), 1_000)]).unwrap();
    transfer(&mut nodes[2], &transfer_to(TOWNSHIP, 40), TODAY, 1).unwrap();
    sync_all(&mut nodes);
    redeem(&mut nodes[2], &redemption(60), TODAY, 2).unwrap();
    let error = redeem(&mut nodes[2], &redemption(1), TODAY, 3).unwrap_err();
    assert_eq!(error.field(), "points");
    assert!(
        error.reason().contains(&format!("{HOME} holds 0")),
        "{error}"
    );
    // The township sees where the rest is.
    let error = redeem(&mut nodes[1], &redemption(41), TODAY, 4).unwrap_err();
    assert!(error.reason().contains("holds 40"), "{error}");
    let mut nodes_after = nodes;
    redeem(&mut nodes_after[1], &redemption(40), TODAY, 5).unwrap();
    assert_eq!(here(&mut nodes_after[1]), 0);
}

#[test]
fn points_reach_a_sibling_village_through_the_township() {
    let mut nodes = county();
    credit_earned(&mut nodes[2], &volunteer(), &[(month(11), 1_000)]).unwrap();
    let error = transfer(&mut nodes[2], &transfer_to(MARKET, 10), TODAY, 1).unwrap_err();
    assert_eq!(
        error.field(),
        "to",
        "a village never credits its sibling directly"
    );
    transfer(&mut nodes[2], &transfer_to(TOWNSHIP, 30), TODAY, 2).unwrap();
    // Until the township has the village's debit, it has nothing to move.
    assert!(matches!(
        transfer(&mut nodes[1], &transfer_to(MARKET, 30), TODAY, 3),
        Err(PointsError::Overdraft { .. })
    ));
    sync_all(&mut nodes);
    transfer(&mut nodes[1], &transfer_to(MARKET, 30), TODAY, 4).unwrap();
    assert_eq!(here(&mut nodes[3]), 0, "not synced yet");
    sync_all(&mut nodes);
    assert_eq!(here(&mut nodes[3]), 30);
    redeem(&mut nodes[3], &redemption(30), TODAY, 5).unwrap();
    sync_all(&mut nodes);
    let county_view = balance(&mut nodes[0], &volunteer()).unwrap();
    assert_eq!(
        (county_view.earned, county_view.spent, county_view.total),
        (100, 30, 70)
    );
    let history = history(&mut nodes[0], &volunteer()).unwrap();
    assert_eq!(history.len(), 4, "{history:?}");
    let months = station_months(&mut nodes[0], &station(COUNTY), month(12)).unwrap();
    let market = months
        .iter()
        .find(|m| m.station.as_str() == MARKET)
        .unwrap();
    assert_eq!(
        (market.spent, market.transferred_in, market.outstanding),
        (30, 30, 0)
    );
    let home = months.iter().find(|m| m.station.as_str() == HOME).unwrap();
    assert_eq!(
        (home.earned, home.outstanding),
        (0, 70),
        "earned in November"
    );
}

#[test]
fn an_entry_written_by_another_station_under_a_stations_key_is_disowned() {
    let mut nodes = county();
    credit_earned(&mut nodes[2], &volunteer(), &[(month(11), 100)]).unwrap();
    sync_all(&mut nodes);
    // The township writes, into the village's roster, a transfer "from the
    // village" to itself: it would take the village's points.
    let forged = PointsEntry {
        volunteer: volunteer(),
        points: 10,
        month: month(12),
        movement: Movement::Transfer {
            from: station(HOME),
            to: station(TOWNSHIP),
            date: TODAY,
        },
    };
    let text = entry_text(&forged);
    let key = format!("{HOME}|00000000000000ff");
    nodes[1]
        .commit(&DocumentId::roster(&station(HOME)), |doc| {
            layout::put_points_entry(doc, &key, &text)
        })
        .unwrap();
    let ledger = read_ledger(&mut nodes[1], Some(&volunteer())).unwrap();
    assert_eq!(ledger.disowned.len(), 1, "{ledger:?}");
    assert!(ledger.disowned[0].reason.contains("not by"));
    sync_all(&mut nodes);
    assert_eq!(here(&mut nodes[2]), 10, "the village keeps its points");
}

#[test]
fn inputs_are_bounded_and_refusals_name_the_field() {
    let mut nodes = county();
    credit_earned(&mut nodes[2], &volunteer(), &[(month(11), 1_000)]).unwrap();
    let cases: Vec<(RedemptionInput, &str)> = vec![
        (redemption(0), "points"),
        (redemption(POINTS_PER_ENTRY_MAX + 1), "points"),
        (
            RedemptionInput {
                item: "米".repeat(ITEM_CHARS_MAX + 1),
                ..redemption(1)
            },
            "item",
        ),
        (
            RedemptionInput {
                clerk: " ".into(),
                ..redemption(1)
            },
            "clerk",
        ),
        (
            RedemptionInput {
                volunteer: "V1".into(),
                ..redemption(1)
            },
            "volunteer",
        ),
    ];
    for (input, field) in cases {
        let error = redeem(&mut nodes[2], &input, TODAY, 9).unwrap_err();
        assert_eq!(error.field(), field, "{error}");
    }
    assert_eq!(here(&mut nodes[2]), 100, "no refusal wrote anything");
}

#[derive(Debug, Clone)]
enum Step {
    Earn {
        at: usize,
        month: u8,
        hours_centi: u64,
    },
    Redeem {
        at: usize,
        points: u64,
    },
    Transfer {
        at: usize,
        to: usize,
        points: u64,
    },
    Sync {
        edge: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3usize, 10..12u8, 0..3_000u64).prop_map(|(at, month, hours_centi)| Step::Earn {
            at,
            month,
            hours_centi
        }),
        (0..4usize, 1..80u64).prop_map(|(at, points)| Step::Redeem { at, points }),
        (0..4usize, 0..4usize, 1..80u64).prop_map(|(at, to, points)| Step::Transfer {
            at,
            to,
            points
        }),
        (0..3usize).prop_map(|edge| Step::Sync { edge }),
        (0..3usize).prop_map(|edge| Step::Sync { edge }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Stations earn, redeem and transfer while apart, and sync pairwise in
    /// any order: no station ever sees its own allotment below zero; after
    /// a full sync no allotment anywhere is below zero, earned − spent is
    /// what the allotments hold, and every station's own allotment reads
    /// the same at the county.
    #[test]
    fn partitioned_stations_never_overdraw(steps in proptest::collection::vec(step(), 1..40)) {
        let mut nodes = county();
        let stations = [COUNTY, TOWNSHIP, HOME, MARKET];
        for (n, step) in steps.iter().enumerate() {
            let nonce = n as u64;
            match step.clone() {
                Step::Earn { at, month: m, hours_centi } => {
                    credit_earned(&mut nodes[at], &volunteer(), &[(month(m), hours_centi)]).unwrap();
                }
                Step::Redeem { at, points } => {
                    match redeem(&mut nodes[at], &redemption(points), TODAY, nonce) {
                        Ok(_) | Err(PointsError::Overdraft { .. }) => {}
                        Err(other) => prop_assert!(false, "{other}"),
                    }
                }
                Step::Transfer { at, to, points } => {
                    match transfer(&mut nodes[at], &transfer_to(stations[to], points), TODAY, nonce) {
                        Ok(_) | Err(PointsError::Overdraft { .. }) => {}
                        Err(PointsError::Invalid(e)) if e.field == "to" => {}
                        Err(other) => prop_assert!(false, "{other}"),
                    }
                }
                Step::Sync { edge } => sync_edge(&mut nodes, EDGES[edge]),
            }
            for replica in nodes.iter_mut() {
                let own = here(replica);
                prop_assert!(own >= 0, "{} sees its own allotment at {own}", replica.local());
            }
        }
        sync_all(&mut nodes);
        let ledger = read_ledger(&mut nodes[0], Some(&volunteer())).unwrap();
        prop_assert!(ledger.disowned.is_empty(), "{:?}", ledger.disowned);
        let allotments = ledger.allotments(&volunteer());
        for (station, points) in &allotments {
            prop_assert!(*points >= 0, "{station} holds {points}");
        }
        let (earned, spent) = ledger.earned_and_spent(&volunteer());
        let outstanding: i64 = allotments.values().sum();
        prop_assert_eq!(earned as i64 - spent as i64, outstanding);
        for replica in nodes.iter_mut() {
            let at = replica.local().clone();
            prop_assert_eq!(here(replica), allotments.get(&at).copied().unwrap_or(0));
        }
    }
}
