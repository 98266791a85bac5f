//! Menus and themes over `Replica<MemoryStorage>`: what is written where,
//! what is refused (writing nothing), what a station is offered once the
//! documents have flowed down, and what cannot be read.

use super::*;
use crate::storage::MemoryStorage;
use crate::test_support::{all_heads, node, station, sync_document};
use proptest::prelude::*;

fn item(id: &str, name: &str, category: &str) -> MenuItemInput {
    MenuItemInput {
        id: Some(id.into()),
        name: name.into(),
        category: category.into(),
        ..MenuItemInput::default()
    }
}

fn theme(month: &str, title: &str) -> ThemeInput {
    ThemeInput {
        month: month.into(),
        title: title.into(),
        description: String::new(),
    }
}

fn offered(replica: &mut Replica<MemoryStorage>, at: &str) -> Vec<(String, String, String)> {
    let read = menu_offered_at(replica, &station(at));
    assert!(read.unreadable.is_empty(), "{:?}", read.unreadable);
    read.items
        .iter()
        .map(|i| (i.owner.to_string(), i.id.to_string(), i.name.clone()))
        .collect()
}

#[test]
fn a_county_menu_and_a_township_menu_are_both_offered_at_a_village() {
    let (mut county, mut township, mut village) = (node("xh"), node("xh/t1"), node("xh/t1/v1"));
    put_menu_item(&mut county, &item("M1", "义诊", "health"), 1).unwrap();
    put_menu_item(&mut county, &item("M2", "政策宣讲", "theory"), 2).unwrap();
    // The township's own item, with the same id as a county one: both stay.
    put_menu_item(&mut township, &item("M1", "助农直播", "poverty_relief"), 3).unwrap();
    // Reference documents flow up as well as down: the county holds the
    // township's menu too.
    for owner in ["xh", "xh/t1"] {
        sync_document(&mut county, &mut township, &menu_document(&station(owner)));
    }
    assert!(county
        .documents()
        .contains(&menu_document(&station("xh/t1"))));
    for owner in ["xh", "xh/t1"] {
        sync_document(&mut township, &mut village, &menu_document(&station(owner)));
    }
    let expected = vec![
        ("xh".to_string(), "M1".to_string(), "义诊".to_string()),
        ("xh".into(), "M2".into(), "政策宣讲".into()),
        ("xh/t1".into(), "M1".into(), "助农直播".into()),
    ];
    assert_eq!(offered(&mut village, "xh/t1/v1"), expected);
    assert_eq!(offered(&mut township, "xh/t1"), expected);
    // The county is offered its own menu only: the township's is not its.
    assert_eq!(offered(&mut county, "xh"), expected[..2].to_vec());
    // The village writes nothing of anyone else's.
    assert!(village
        .documents()
        .iter()
        .all(|d| d.owner != station("xh/t1/v1")));
}

#[test]
fn an_item_changed_or_withdrawn_is_read_as_changed_and_writes_only_when_it_differs() {
    let mut county = node("xh");
    let first = put_menu_item(&mut county, &item("M1", "义诊", "health"), 1).unwrap();
    assert!(first.changed);
    let same = put_menu_item(&mut county, &item("M1", "义诊", "health"), 1).unwrap();
    assert!(!same.changed, "an identical write changed the document");
    let withdrawn = MenuItemInput {
        withdrawn: true,
        provider: "县卫健志愿服务队".into(),
        ..item("M1", "义诊", "health")
    };
    assert!(put_menu_item(&mut county, &withdrawn, 1).unwrap().changed);
    let read = menu_offered_at(&mut county, &station("xh"));
    assert_eq!(read.items.len(), 1);
    let got = &read.items[0];
    assert!(got.withdrawn);
    assert_eq!(got.provider, "县卫健志愿服务队");
    // Offered again.
    put_menu_item(&mut county, &item("M1", "义诊", "health"), 1).unwrap();
    assert!(!menu_offered_at(&mut county, &station("xh")).items[0].withdrawn);
}

#[test]
fn an_item_without_an_id_gets_a_drawn_one() {
    let mut county = node("xh");
    let input = MenuItemInput {
        id: None,
        ..item("", "理发", "elder_care")
    };
    let a = put_menu_item(&mut county, &input, 11).unwrap().item;
    let b = put_menu_item(&mut county, &input, 12).unwrap().item;
    assert_ne!(a.id, b.id);
    assert_eq!(menu_offered_at(&mut county, &station("xh")).items.len(), 2);
}

#[test]
fn refusals_name_the_field_and_write_nothing() {
    let mut county = node("xh");
    put_menu_item(&mut county, &item("M1", "义诊", "health"), 1).unwrap();
    let before = all_heads(&county);
    let long = "长".repeat(TITLE_CHARS_MAX + 1);
    let cases: Vec<(MenuItemInput, &str)> = vec![
        (item("M2", "  ", "health"), "name"),
        (item("M2", &long, "health"), "name"),
        (item("M2", "义诊", "astrology"), "category"),
        (item("M 2", "义诊", "health"), "id"),
        (
            MenuItemInput {
                description: "长".repeat(DESCRIPTION_CHARS_MAX + 1),
                ..item("M2", "义诊", "health")
            },
            "description",
        ),
        (
            MenuItemInput {
                provider: "队\u{7}".into(),
                ..item("M2", "义诊", "health")
            },
            "provider",
        ),
    ];
    for (input, field) in cases {
        let error = put_menu_item(&mut county, &input, 2).unwrap_err();
        assert_eq!(error.field(), field, "{input:?}: {error}");
        assert_eq!(error.class(), ErrorClass::BadInput);
    }
    for (input, field) in [
        (theme("2026-13", "学雷锋"), "month"),
        (theme("11/2026", "学雷锋"), "month"),
        (theme("2026-03", ""), "title"),
        (theme("2026-03", &long), "title"),
    ] {
        let error = set_theme(&mut county, &input).unwrap_err();
        assert_eq!(error.field(), field, "{input:?}: {error}");
    }
    assert_eq!(all_heads(&county), before, "a refusal wrote something");
}

#[test]
fn a_full_menu_refuses_new_items_but_takes_changes_to_held_ones() {
    let mut county = node("xh");
    for n in 0..MENU_ITEMS_MAX {
        let id = format!("M{n}");
        put_menu_item(&mut county, &item(&id, "义诊", "health"), 0).unwrap();
    }
    let before = all_heads(&county);
    let error = put_menu_item(&mut county, &item("M-extra", "义诊", "health"), 0).unwrap_err();
    assert!(
        matches!(error, CatalogError::Full { max, .. } if max == MENU_ITEMS_MAX),
        "{error}"
    );
    assert_eq!(all_heads(&county), before);
    let change = MenuItemInput {
        withdrawn: true,
        ..item("M0", "义诊", "health")
    };
    assert!(put_menu_item(&mut county, &change, 0).unwrap().changed);
}

#[test]
fn themes_are_keyed_by_month_and_read_with_the_ancestors() {
    let (mut county, mut township) = (node("xh"), node("xh/t1"));
    set_theme(&mut county, &theme("2026-03", "学雷锋")).unwrap();
    set_theme(&mut county, &theme("2026-11", "移风易俗")).unwrap();
    // Corrected: the same month again replaces the title.
    let corrected = set_theme(&mut county, &theme("2026-11", "移风易俗 树文明新风")).unwrap();
    assert!(corrected.changed);
    set_theme(&mut township, &theme("2026-11", "秋收互助")).unwrap();
    sync_document(&mut county, &mut township, &themes_document(&station("xh")));
    let read = themes_for(&mut township, &station("xh/t1"), None);
    let got: Vec<(String, String, String)> = read
        .items
        .iter()
        .map(|t| (t.owner.to_string(), t.month.to_string(), t.title.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "xh".to_string(),
                "2026-03".to_string(),
                "学雷锋".to_string()
            ),
            ("xh".into(), "2026-11".into(), "移风易俗 树文明新风".into()),
            ("xh/t1".into(), "2026-11".into(), "秋收互助".into()),
        ]
    );
    let november = themes_for(&mut township, &station("xh/t1"), Month::new(2026, 11));
    assert_eq!(november.items.len(), 2);
    assert!(november
        .items
        .iter()
        .all(|t| t.month == Month::new(2026, 11).unwrap()));
}

#[test]
fn an_item_another_program_wrote_badly_is_reported_and_hides_nothing() {
    let mut county = node("xh");
    put_menu_item(&mut county, &item("M1", "义诊", "health"), 1).unwrap();
    county
        .commit(&menu_document(&station("xh")), |doc| {
            layout::put_reference_item(
                doc,
                "M9",
                &[("name", "占卜".into()), ("category", "astrology".into())],
            )
        })
        .unwrap();
    let read = menu_offered_at(&mut county, &station("xh"));
    assert_eq!(read.items.len(), 1);
    assert_eq!(read.unreadable.len(), 1);
    let bad = &read.unreadable[0];
    assert_eq!(bad.key.as_deref(), Some("M9"));
    assert!(bad.reason.contains("category"), "{}", bad.reason);
}

#[test]
fn themes_written_the_way_the_simulation_writes_them_are_read() {
    // The simulated county publishes themes as `theme` + `month` only.
    let mut county = node("xh");
    county
        .commit(&themes_document(&station("xh")), |doc| {
            layout::put_reference_item(
                doc,
                "2026-12",
                &[("theme", "冬季送温暖".into()), ("month", "2026-12".into())],
            )
        })
        .unwrap();
    let read = themes_for(&mut county, &station("xh"), None);
    assert!(read.unreadable.is_empty(), "{:?}", read.unreadable);
    assert_eq!(read.items[0].title, "冬季送温暖");
    assert_eq!(read.items[0].description, "");
}

proptest! {
    /// Whatever a clerk submits, a write either is refused and changes
    /// nothing, or reads back as exactly what was validated.
    #[test]
    fn an_accepted_item_reads_back_as_validated(
        name in "[a-z义诊 ]{0,70}",
        category in prop::sample::select(vec!["health", "theory", "nonsense", ""]),
        description in "[a-z。 ]{0,20}",
        withdrawn in any::<bool>(),
    ) {
        let mut county = node("xh");
        let input = MenuItemInput { id: Some("M1".into()), name, category: category.into(), description, provider: String::new(), withdrawn };
        match put_menu_item(&mut county, &input, 0) {
            Ok(written) => {
                let read = menu_offered_at(&mut county, &station("xh"));
                prop_assert!(read.unreadable.is_empty());
                prop_assert_eq!(read.items, vec![written.item]);
            }
            Err(_) => prop_assert!(county.documents().is_empty()),
        }
    }
}

#[test]
fn a_theme_travels_in_json_with_its_month_as_clerks_write_it() {
    let theme = ThemeInput {
        month: "2026-03".into(),
        title: "学雷锋".into(),
        description: String::new(),
    }
    .validate(&station("xh"))
    .unwrap();
    let json = serde_json::to_value(&theme).unwrap();
    assert_eq!(json["month"], "2026-03");
    assert_eq!(serde_json::from_value::<Theme>(json).unwrap(), theme);
    let bad = serde_json::json!({"owner": "xh", "month": "March", "title": "t", "description": ""});
    assert!(serde_json::from_value::<Theme>(bad).is_err());
}
