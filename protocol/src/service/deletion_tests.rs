//! A correction never brings back a deleted record: each correction path
//! (activity, volunteer, team, order) refuses a deleted id, naming it, and a
//! correction made apart from the delete converges to deleted everywhere.

use super::order_flow::{advance_order, OrderStep};
use super::*;
use crate::domain::input::{HoursInput, ServiceRecordInput};
use crate::storage::MemoryStorage;
use crate::test_support::{all_heads, node, sealer, station, sync_document};
use time::macros::date;

const TODAY: Date = date!(2026 - 11 - 23);
const MONTH: Month = Month {
    year: 2026,
    month: 11,
};

fn person(number: &str) -> VolunteerInput {
    VolunteerInput {
        number: Some(number.into()),
        name: "赵敏".into(),
        sex: "女".into(),
        id_number: "11010519491231002X".into(),
        ..VolunteerInput::default()
    }
}

fn lecture(id: &str, name: &str) -> ActivityInput {
    ActivityInput {
        id: Some(id.into()),
        name: name.into(),
        date: "2026-11-20".into(),
        form: "lecture".into(),
        category: "theory".into(),
        beneficiaries: 30,
        records: vec![ServiceRecordInput {
            volunteer: "001".into(),
            hours: HoursInput::Number(2.0),
        }],
        ..ActivityInput::default()
    }
}

/// A village node with volunteer 001 and activity A1 of 2026-11.
fn village_with_activity() -> Replica<MemoryStorage> {
    let mut village = node("xh/t1/v1");
    let here = station("xh/t1/v1");
    register_volunteer(&mut village, &here, &person("001"), &sealer(), TODAY, 1).unwrap();
    record_activity(&mut village, &here, &lecture("A1", "理论宣讲"), TODAY, 2).unwrap();
    village
}

fn assert_refused_as_deleted(error: ServiceError, kind: &str, id: &str, how: &str) {
    assert_eq!(error.field(), "id");
    assert_eq!(error.class(), ErrorClass::Conflict);
    let reason = error.reason();
    assert!(
        reason.contains(&format!("{kind} {id} was {how}")),
        "the refusal names the record and that it was {how}: {reason}"
    );
}

fn held_activity(replica: &mut Replica<MemoryStorage>, id: &str) -> Activity {
    let document = DocumentId::activities(&station("xh/t1/v1"), MONTH);
    let id = RecordId::parse("id", id).unwrap();
    replica
        .with_document(&document, |doc| layout::activity(doc, &id))
        .unwrap()
        .unwrap()
        .unwrap()
        .unwrap()
}

#[test]
fn a_correction_of_a_deleted_activity_is_refused_and_writes_nothing() {
    let mut village = village_with_activity();
    let here = station("xh/t1/v1");
    let id = RecordId::parse("id", "A1").unwrap();
    delete_activity(&mut village, &here, MONTH, &id).unwrap();
    let before = all_heads(&village);
    let error =
        record_activity(&mut village, &here, &lecture("A1", "改过的"), TODAY, 3).unwrap_err();
    assert_refused_as_deleted(error, "activity", "A1", "deleted");
    assert_eq!(all_heads(&village), before, "a refusal writes nothing");
    assert!(held_activity(&mut village, "A1").deleted);
    assert!(activities(&mut village, &here, MONTH, false)
        .unwrap()
        .is_empty());
    // Negative space: a live activity is still corrected.
    record_activity(&mut village, &here, &lecture("A2", "义诊"), TODAY, 4).unwrap();
    let corrected = record_activity(&mut village, &here, &lecture("A2", "义诊二"), TODAY, 5);
    assert_eq!(corrected.unwrap().name, "义诊二");
}

#[test]
fn a_correction_of_a_deleted_volunteer_is_refused() {
    let mut village = node("xh/t1/v1");
    let here = station("xh/t1/v1");
    let registered =
        register_volunteer(&mut village, &here, &person("001"), &sealer(), TODAY, 1).unwrap();
    delete_volunteer(&mut village, &here, &registered.number).unwrap();
    let before = all_heads(&village);
    let mut corrected = person("001");
    corrected.name = "赵敏敏".into();
    let error = update_volunteer(&mut village, &here, &corrected, &sealer(), TODAY).unwrap_err();
    assert_refused_as_deleted(error, "volunteer", "001", "deleted");
    assert_eq!(all_heads(&village), before);
    assert!(volunteers(&mut village, &here).unwrap().is_empty());
}

#[test]
fn a_correction_of_a_deleted_team_is_refused() {
    let mut village = node("xh/t1/v1");
    let here = station("xh/t1/v1");
    register_volunteer(&mut village, &here, &person("001"), &sealer(), TODAY, 1).unwrap();
    let input = TeamInput {
        id: Some("T1".into()),
        name: "文艺队".into(),
        category: "culture".into(),
        members: vec!["001".into()],
        ..TeamInput::default()
    };
    let team = put_team(&mut village, &here, &input, 2).unwrap();
    delete_team(&mut village, &here, &team.id).unwrap();
    let before = all_heads(&village);
    let renamed = TeamInput {
        name: "文艺二队".into(),
        ..input
    };
    let error = put_team(&mut village, &here, &renamed, 3).unwrap_err();
    assert_refused_as_deleted(error, "team", "T1", "deleted");
    assert_eq!(all_heads(&village), before);
    assert!(teams(&mut village, &here).unwrap().is_empty());
}

#[test]
fn placing_a_cancelled_order_again_is_refused() {
    let mut village = node("xh/t1/v1");
    let here = station("xh/t1/v1");
    let input = OrderInput {
        id: Some("O1".into()),
        menu_item: "理发".into(),
        requester: "张大爷".into(),
        ..OrderInput::default()
    };
    let order = place_order(&mut village, &here, &input, TODAY, 1).unwrap();
    let cancel = OrderStep::Cancel {
        reason: "不需要了".into(),
    };
    advance_order(&mut village, &here, &order.id, &cancel).unwrap();
    let before = all_heads(&village);
    let error = place_order(&mut village, &here, &input, TODAY, 2).unwrap_err();
    assert_refused_as_deleted(error, "order", "O1", "cancelled");
    assert_eq!(all_heads(&village), before);
    let held = orders(&mut village, &here, MONTH).unwrap();
    assert_eq!(held[0].status, OrderStatus::Cancelled);
}

#[test]
fn a_township_correction_after_the_village_delete_synced_is_refused() {
    let mut village = village_with_activity();
    let mut township = node("xh/t1");
    let here = station("xh/t1/v1");
    let document = DocumentId::activities(&here, MONTH);
    sync_document(&mut village, &mut township, &DocumentId::roster(&here));
    sync_document(&mut village, &mut township, &document);
    let id = RecordId::parse("id", "A1").unwrap();
    delete_activity(&mut village, &here, MONTH, &id).unwrap();
    sync_document(&mut village, &mut township, &document);
    // The township's form was left open before the delete arrived.
    let error =
        record_activity(&mut township, &here, &lecture("A1", "改过的"), TODAY, 9).unwrap_err();
    assert_refused_as_deleted(error, "activity", "A1", "deleted");
    assert!(held_activity(&mut township, "A1").deleted);
}

#[test]
fn a_correction_made_apart_from_the_delete_converges_to_deleted_on_both() {
    let mut village = village_with_activity();
    let mut township = node("xh/t1");
    let here = station("xh/t1/v1");
    let document = DocumentId::activities(&here, MONTH);
    sync_document(&mut village, &mut township, &DocumentId::roster(&here));
    sync_document(&mut village, &mut township, &document);
    // Apart: the village deletes A1 while the township corrects it.
    let id = RecordId::parse("id", "A1").unwrap();
    delete_activity(&mut village, &here, MONTH, &id).unwrap();
    let corrected = record_activity(&mut township, &here, &lecture("A1", "改过的"), TODAY, 9);
    assert_eq!(
        corrected.unwrap().name,
        "改过的",
        "the township had not seen it"
    );
    sync_document(&mut village, &mut township, &document);
    assert_eq!(village.heads(&document), township.heads(&document));
    for replica in [&mut village, &mut township] {
        let held = held_activity(replica, "A1");
        assert!(held.deleted, "delete wins at {}", replica.local());
        assert_eq!(
            held.name, "改过的",
            "the correction's other fields are kept"
        );
        assert!(activities(replica, &here, MONTH, false).unwrap().is_empty());
    }
}

fn held_volunteer(replica: &mut Replica<MemoryStorage>, number: &str) -> Volunteer {
    let document = DocumentId::roster(&station("xh/t1/v1"));
    let number = RecordId::parse("number", number).unwrap();
    replica
        .with_document(&document, |doc| layout::volunteer(doc, &number))
        .unwrap()
        .unwrap()
        .unwrap()
        .unwrap()
}

#[test]
fn a_deleted_volunteer_is_kept_reads_deleted_and_is_no_longer_listed() {
    let mut village = node("xh/t1/v1");
    let here = station("xh/t1/v1");
    let registered =
        register_volunteer(&mut village, &here, &person("001"), &sealer(), TODAY, 1).unwrap();
    let answered = delete_volunteer(&mut village, &here, &registered.number).unwrap();
    assert!(answered.deleted);
    let held = held_volunteer(&mut village, "001");
    assert!(held.deleted, "the roster holds the deleted flag");
    assert_eq!(held.name, registered.name, "kept, not removed");
    assert!(volunteers(&mut village, &here).unwrap().is_empty());
    let before = all_heads(&village);
    delete_volunteer(&mut village, &here, &registered.number).unwrap();
    assert_eq!(all_heads(&village), before, "deleting again writes nothing");
}

#[test]
fn deleting_a_volunteer_not_in_the_roster_is_refused_naming_the_number() {
    let mut village = node("xh/t1/v1");
    let here = station("xh/t1/v1");
    register_volunteer(&mut village, &here, &person("001"), &sealer(), TODAY, 1).unwrap();
    let before = all_heads(&village);
    let missing = RecordId::parse("number", "002").unwrap();
    let error = delete_volunteer(&mut village, &here, &missing).unwrap_err();
    assert_eq!(error.field(), "number");
    assert!(error.reason().contains("002"), "{}", error.reason());
    assert_eq!(all_heads(&village), before, "a refusal writes nothing");
}

#[test]
fn a_volunteer_correction_made_apart_from_the_delete_converges_to_deleted_on_both() {
    let mut village = node("xh/t1/v1");
    let mut township = node("xh/t1");
    let here = station("xh/t1/v1");
    let roster = DocumentId::roster(&here);
    let registered =
        register_volunteer(&mut village, &here, &person("001"), &sealer(), TODAY, 1).unwrap();
    sync_document(&mut village, &mut township, &roster);
    // Apart: the village deletes 001 while the township corrects it.
    delete_volunteer(&mut village, &here, &registered.number).unwrap();
    let mut corrected = person("001");
    corrected.name = "赵敏敏".into();
    let taken = update_volunteer(&mut township, &here, &corrected, &sealer(), TODAY);
    assert_eq!(
        taken.unwrap().name,
        "赵敏敏",
        "the township had not seen it"
    );
    sync_document(&mut village, &mut township, &roster);
    assert_eq!(village.heads(&roster), township.heads(&roster));
    for replica in [&mut village, &mut township] {
        let held = held_volunteer(replica, "001");
        assert!(held.deleted, "delete wins at {}", replica.local());
        assert_eq!(
            held.name, "赵敏敏",
            "the correction's other fields are kept"
        );
    }
    // Once the delete has arrived, the township's next correction is refused.
    let error = update_volunteer(&mut township, &here, &corrected, &sealer(), TODAY).unwrap_err();
    assert_refused_as_deleted(error, "volunteer", "001", "deleted");
}

fn team_of(members: &[&str]) -> TeamInput {
    TeamInput {
        id: Some("T1".into()),
        name: "文艺队".into(),
        category: "culture".into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        ..TeamInput::default()
    }
}

fn held_team(replica: &mut Replica<MemoryStorage>, id: &str) -> Team {
    let roster = DocumentId::roster(&station("xh/t1/v1"));
    let id = RecordId::parse("id", id).unwrap();
    replica
        .with_document(&roster, |doc| layout::team(doc, &id))
        .unwrap()
        .unwrap()
        .unwrap()
        .unwrap()
}

#[test]
fn a_deleted_team_is_kept_reads_deleted_and_is_no_longer_listed() {
    let mut village = node("xh/t1/v1");
    let here = station("xh/t1/v1");
    register_volunteer(&mut village, &here, &person("001"), &sealer(), TODAY, 1).unwrap();
    let team = put_team(&mut village, &here, &team_of(&["001"]), 2).unwrap();
    let answered = delete_team(&mut village, &here, &team.id).unwrap();
    assert!(answered.deleted);
    let held = held_team(&mut village, "T1");
    assert!(held.deleted, "the roster holds the deleted flag");
    assert_eq!(held.name, "文艺队", "kept, not removed");
    assert_eq!(held.members, team.members, "its members are kept");
    assert!(teams(&mut village, &here).unwrap().is_empty());
    let before = all_heads(&village);
    delete_team(&mut village, &here, &team.id).unwrap();
    assert_eq!(all_heads(&village), before, "deleting again writes nothing");
}

#[test]
fn deleting_a_team_not_in_the_roster_is_refused_naming_the_id() {
    let mut village = node("xh/t1/v1");
    let here = station("xh/t1/v1");
    register_volunteer(&mut village, &here, &person("001"), &sealer(), TODAY, 1).unwrap();
    put_team(&mut village, &here, &team_of(&["001"]), 2).unwrap();
    let before = all_heads(&village);
    let missing = RecordId::parse("id", "T2").unwrap();
    let error = delete_team(&mut village, &here, &missing).unwrap_err();
    assert_eq!(error.field(), "id");
    assert!(error.reason().contains("T2"), "{}", error.reason());
    assert_eq!(all_heads(&village), before, "a refusal writes nothing");
    assert_eq!(teams(&mut village, &here).unwrap().len(), 1);
}

#[test]
fn a_team_renamed_apart_from_its_delete_converges_to_deleted_on_both() {
    let mut village = node("xh/t1/v1");
    let mut township = node("xh/t1");
    let here = station("xh/t1/v1");
    let roster = DocumentId::roster(&here);
    register_volunteer(&mut village, &here, &person("001"), &sealer(), TODAY, 1).unwrap();
    let team = put_team(&mut village, &here, &team_of(&["001"]), 2).unwrap();
    sync_document(&mut village, &mut township, &roster);
    delete_team(&mut village, &here, &team.id).unwrap();
    let renamed = TeamInput {
        name: "文艺二队".into(),
        ..team_of(&["001"])
    };
    let taken = put_team(&mut township, &here, &renamed, 3).unwrap();
    assert_eq!(
        taken.name, "文艺二队",
        "the township had not seen the delete"
    );
    sync_document(&mut village, &mut township, &roster);
    assert_eq!(village.heads(&roster), township.heads(&roster));
    for replica in [&mut village, &mut township] {
        let held = held_team(replica, "T1");
        assert!(held.deleted, "delete wins at {}", replica.local());
        assert_eq!(held.name, "文艺二队", "the rename is kept beside it");
        assert!(teams(replica, &here).unwrap().is_empty());
    }
}
