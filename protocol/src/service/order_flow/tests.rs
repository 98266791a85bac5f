//! The four orders across tiers over `Replica<MemoryStorage>`: a village
//! places, the county dispatches, the township records the take, the
//! village rates; every step out of turn or out of place is refused and
//! writes nothing; concurrent dispatches are both kept as a conflict.

use super::*;
use crate::domain::input::OrderInput;
use crate::service;
use crate::storage::MemoryStorage;
use crate::test_support::{all_heads, node, station, sync_document};
use proptest::prelude::*;
use time::macros::date;

const VILLAGE: &str = "xh/t1/v1";

fn order_id() -> RecordId {
    RecordId::parse("order", "O1").unwrap()
}

/// A village with order O1 placed on 2026-10-03.
fn village_with_order() -> Replica<MemoryStorage> {
    let mut village = node(VILLAGE);
    let input = OrderInput {
        id: Some("O1".into()),
        menu_item: "健康义诊".into(),
        requester: "王大妈".into(),
        placed_on: Some("2026-10-03".into()),
    };
    service::place_order(
        &mut village,
        &station(VILLAGE),
        &input,
        date!(2026 - 11 - 24),
        1,
    )
    .unwrap();
    village
}

fn orders_document() -> DocumentId {
    DocumentId::orders(
        &station(VILLAGE),
        crate::identity::document_id::Month::new(2026, 10).unwrap(),
    )
}

fn status_at(replica: &mut Replica<MemoryStorage>) -> Order {
    let orders = service::orders(
        replica,
        &station(VILLAGE),
        crate::identity::document_id::Month::new(2026, 10).unwrap(),
    )
    .unwrap();
    orders.into_iter().find(|o| o.id == order_id()).unwrap()
}

fn dispatch(team: &str) -> OrderStep {
    OrderStep::Dispatch { team: team.into() }
}

#[test]
fn placed_in_a_village_dispatched_by_the_county_taken_and_rated() {
    let mut village = village_with_order();
    let (mut township, mut county) = (node("xh/t1"), node("xh"));
    let document = orders_document();
    sync_document(&mut village, &mut township, &document);
    sync_document(&mut township, &mut county, &document);

    let dispatched = advance_order(
        &mut county,
        &station(VILLAGE),
        &order_id(),
        &dispatch("xh:T1"),
    )
    .unwrap();
    assert_eq!(dispatched.status, OrderStatus::Dispatched);
    assert_eq!(dispatched.dispatched_by, Some(station("xh")));
    assert_eq!(dispatched.team.as_deref(), Some("xh:T1"));
    // Down to the village through its township.
    sync_document(&mut county, &mut township, &document);
    sync_document(&mut township, &mut village, &document);
    assert_eq!(status_at(&mut village), dispatched);

    // The county team answered the township by phone: it records the take.
    advance_order(
        &mut township,
        &station(VILLAGE),
        &order_id(),
        &OrderStep::Take,
    )
    .unwrap();
    sync_document(&mut township, &mut village, &document);
    let rate = OrderStep::Rate {
        rating: 5,
        comment: "医生很耐心".into(),
    };
    let rated = advance_order(&mut village, &station(VILLAGE), &order_id(), &rate).unwrap();
    assert_eq!((rated.status, rated.rating), (OrderStatus::Rated, Some(5)));
    assert_eq!(rated.comment, "医生很耐心");
    sync_document(&mut village, &mut township, &document);
    sync_document(&mut township, &mut county, &document);
    assert_eq!(status_at(&mut county), rated);
    assert_eq!(status_at(&mut county).dispatched_by, Some(station("xh")));
}

#[test]
fn steps_out_of_turn_or_out_of_place_are_refused_naming_the_field_and_write_nothing() {
    let mut village = village_with_order();
    let team = crate::domain::input::TeamInput {
        id: Some("T1".into()),
        name: "东村志愿服务队".into(),
        category: "health".into(),
        ..Default::default()
    };
    service::put_team(&mut village, &station(VILLAGE), &team, 2).unwrap();
    let mut other = node("xh/t1/v2");
    let before = all_heads(&village);
    let refused = |replica: &mut Replica<MemoryStorage>, at: &str, step: OrderStep| {
        advance_order(replica, &station(at), &order_id(), &step).unwrap_err()
    };
    // Not yet dispatched: no take, no rating.
    let error = refused(&mut village, VILLAGE, OrderStep::Take);
    assert_eq!(error.field(), "status", "{error}");
    assert!(
        error.to_string().contains("dispatch it to a team first"),
        "{error}"
    );
    let error = refused(
        &mut village,
        VILLAGE,
        OrderStep::Rate {
            rating: 4,
            comment: String::new(),
        },
    );
    assert_eq!(error.field(), "status", "{error}");
    // Bad values.
    for (team, field) in [
        ("T1", "team"),
        ("", "team"),
        ("xh//t1:T1", "team"),
        ("xh/t1:T 1", "team"),
    ] {
        let error = refused(&mut village, VILLAGE, dispatch(team));
        assert_eq!(error.field(), field, "{team:?}: {error}");
    }
    let error = refused(
        &mut village,
        VILLAGE,
        OrderStep::Cancel { reason: " ".into() },
    );
    assert_eq!(error.field(), "reason", "{error}");
    // A team of a roster held here must be in it.
    let error = refused(&mut village, VILLAGE, dispatch("xh/t1/v1:T9"));
    assert_eq!(
        (error.field(), error.class()),
        ("team", crate::service::ErrorClass::NotFound),
        "{error}"
    );
    // Unknown order; another village's orders.
    let error = advance_order(
        &mut village,
        &station(VILLAGE),
        &RecordId::parse("o", "O9").unwrap(),
        &OrderStep::Take,
    )
    .unwrap_err();
    assert_eq!(
        (error.field(), error.class()),
        ("order", crate::service::ErrorClass::NotFound),
        "{error}"
    );
    let error = refused(&mut other, VILLAGE, dispatch("xh:T1"));
    assert_eq!(
        error.class(),
        crate::service::ErrorClass::Forbidden,
        "{error}"
    );
    assert_eq!(all_heads(&village), before, "a refusal wrote something");

    // Rated, then nothing more; cancelled, then nothing more.
    advance_order(
        &mut village,
        &station(VILLAGE),
        &order_id(),
        &dispatch("xh:T1"),
    )
    .unwrap();
    advance_order(
        &mut village,
        &station(VILLAGE),
        &order_id(),
        &OrderStep::Take,
    )
    .unwrap();
    for rating in [0, 6] {
        let error = refused(
            &mut village,
            VILLAGE,
            OrderStep::Rate {
                rating,
                comment: String::new(),
            },
        );
        assert_eq!(error.field(), "rating", "{error}");
    }
    let error = refused(
        &mut village,
        VILLAGE,
        OrderStep::Cancel {
            reason: "不需要了".into(),
        },
    );
    assert!(error.to_string().contains("is taken"), "{error}");
    advance_order(
        &mut village,
        &station(VILLAGE),
        &order_id(),
        &OrderStep::Rate {
            rating: 3,
            comment: String::new(),
        },
    )
    .unwrap();
    let closed = all_heads(&village);
    let error = refused(&mut village, VILLAGE, dispatch("xh:T2"));
    assert!(error.to_string().contains("it is closed"), "{error}");
    assert_eq!(all_heads(&village), closed);
}

#[test]
fn a_dispatched_order_may_go_to_another_team_or_be_cancelled_with_a_reason() {
    let mut village = village_with_order();
    advance_order(
        &mut village,
        &station(VILLAGE),
        &order_id(),
        &dispatch("xh:T1"),
    )
    .unwrap();
    let again = advance_order(
        &mut village,
        &station(VILLAGE),
        &order_id(),
        &dispatch(" xh/t1 : T2 "),
    )
    .unwrap();
    assert_eq!(again.team.as_deref(), Some("xh/t1:T2"));
    let cancelled = advance_order(
        &mut village,
        &station(VILLAGE),
        &order_id(),
        &OrderStep::Cancel {
            reason: "群众已自行解决".into(),
        },
    )
    .unwrap();
    assert_eq!(
        (cancelled.status, cancelled.comment.as_str()),
        (OrderStatus::Cancelled, "群众已自行解决")
    );
}

#[test]
fn dispatches_made_apart_at_the_township_and_the_county_are_both_kept_as_a_conflict() {
    let mut village = village_with_order();
    let (mut township, mut county) = (node("xh/t1"), node("xh"));
    let document = orders_document();
    sync_document(&mut village, &mut township, &document);
    sync_document(&mut township, &mut county, &document);
    advance_order(
        &mut township,
        &station(VILLAGE),
        &order_id(),
        &dispatch("xh/t1:T1"),
    )
    .unwrap();
    advance_order(
        &mut county,
        &station(VILLAGE),
        &order_id(),
        &dispatch("xh:T7"),
    )
    .unwrap();
    sync_document(&mut township, &mut county, &document);
    let conflicts = service::conflicts(&mut county, &station("xh"), None).unwrap();
    let on_team: Vec<_> = conflicts
        .iter()
        .filter(|c| c.conflict.path.ends_with(".team"))
        .collect();
    assert_eq!(on_team.len(), 1, "{conflicts:?}");
    let values: Vec<String> = on_team[0]
        .conflict
        .values
        .iter()
        .map(|v| v.value.clone())
        .collect();
    assert!(
        values.contains(&"xh/t1:T1".to_string()) && values.contains(&"xh:T7".to_string()),
        "{values:?}"
    );
}

fn step() -> impl Strategy<Value = OrderStep> {
    prop_oneof![
        prop::sample::select(vec!["xh:T1", "xh/t1:T2", "bad"]).prop_map(dispatch),
        Just(OrderStep::Take),
        (0u8..7).prop_map(|rating| OrderStep::Rate {
            rating,
            comment: String::new()
        }),
        prop::sample::select(vec!["", "不需要了"])
            .prop_map(|r| OrderStep::Cancel { reason: r.into() }),
    ]
}

proptest! {
    /// Whatever steps are tried in whatever order, the order only ever
    /// moves along the allowed transitions, a refused step changes nothing,
    /// and once rated or cancelled it stays so.
    #[test]
    fn any_sequence_of_steps_moves_only_along_the_allowed_transitions(steps in proptest::collection::vec(step(), 1..12)) {
        let mut village = village_with_order();
        let mut state = status_at(&mut village);
        for step in steps {
            let before = all_heads(&village);
            match advance_order(&mut village, &station(VILLAGE), &order_id(), &step) {
                Ok(next) => {
                    let allowed = matches!(
                        (state.status, next.status),
                        (OrderStatus::Placed | OrderStatus::Dispatched, OrderStatus::Dispatched)
                            | (OrderStatus::Dispatched, OrderStatus::Taken)
                            | (OrderStatus::Taken, OrderStatus::Rated)
                            | (OrderStatus::Placed | OrderStatus::Dispatched, OrderStatus::Cancelled)
                    );
                    prop_assert!(allowed, "{:?} -> {:?} by {:?}", state.status, next.status, step);
                    prop_assert_eq!(&status_at(&mut village), &next);
                    state = next;
                }
                Err(_) => {
                    prop_assert_eq!(all_heads(&village), before);
                    prop_assert_eq!(&status_at(&mut village), &state);
                }
            }
        }
    }
}
