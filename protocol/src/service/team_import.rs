//! A station's teams from one file, in one commit.
//!
//! `POST teams` writes one team and flushes; a county loading its offices'
//! teams made thousands of such requests (2,900 for one county, 2 ms
//! each). Here every valid row of a file goes into the station's roster
//! in one change and one flush, and every refused row comes back with its
//! row number and reason — the same rules as `POST teams`: a member or
//! leader must be a volunteer of the station, a deleted team stays
//! deleted, and a row with an existing team number replaces that team.

use super::{check_station, refuse_if_deleted, ImportReport, RowRefusal, ServiceError};
use crate::domain::input::TeamInput;
use crate::domain::model::{RecordId, Team};
use crate::layout;
use crate::replica::Replica;
use crate::storage::Storage;
use crate::{DocumentId, StationId};
use std::collections::BTreeMap;

/// Write the valid rows of a team file (`(row number, input)`) into
/// `station`'s roster in one commit; `next_nonce` numbers teams without a
/// number of their own.
pub fn import_teams<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    rows: Vec<(usize, TeamInput)>,
    mut next_nonce: impl FnMut() -> u64,
) -> Result<ImportReport, ServiceError> {
    check_station(replica, station)?;
    let mut report = ImportReport {
        rows: rows.len(),
        accepted: 0,
        refused: Vec::new(),
    };
    let refusal = |row: usize, error: &ServiceError| RowRefusal {
        row,
        field: error.field().to_string(),
        reason: error.reason(),
    };
    // Validation first, and one row per team number: a file naming a team
    // twice would otherwise keep whichever row came last, silently.
    let mut first_row_of: BTreeMap<RecordId, usize> = BTreeMap::new();
    let mut valid: Vec<(usize, Team)> = Vec::with_capacity(rows.len());
    for (row, input) in rows {
        match input.validate(station, next_nonce()) {
            Err(error) => report
                .refused
                .push(refusal(row, &ServiceError::from(error))),
            Ok(team) => match first_row_of.get(&team.id) {
                Some(first) => report.refused.push(RowRefusal {
                    row,
                    field: "id".into(),
                    reason: format!("team {} is already in this file, at row {first}", team.id),
                }),
                None => {
                    first_row_of.insert(team.id.clone(), row);
                    valid.push((row, team));
                }
            },
        }
    }
    if valid.is_empty() {
        return Ok(report.finished());
    }
    let outcome = replica.commit(&DocumentId::roster(station), |doc| {
        let mut accepted = 0;
        let mut refused = Vec::new();
        for (row, team) in &valid {
            match team_refusal(doc, team)? {
                Some(error) => refused.push(refusal(*row, &error)),
                None => {
                    layout::put_team(doc, team)?;
                    accepted += 1;
                }
            }
        }
        Ok::<_, ServiceError>((accepted, refused))
    })?;
    let (accepted, refused) = outcome.value;
    report.accepted = accepted;
    report.refused.extend(refused);
    Ok(report.finished())
}

/// Why `team` cannot go into the roster `doc`, as `put_team` would refuse
/// it; `Err` only when the document cannot be read.
fn team_refusal(
    doc: &automerge::AutoCommit,
    team: &Team,
) -> Result<Option<ServiceError>, ServiceError> {
    for member in team.members.iter().chain(team.leader.iter()) {
        if layout::volunteer(doc, member)?.is_none() {
            let field = if team.leader.as_ref() == Some(member) && !team.members.contains(member) {
                "leader"
            } else {
                "members"
            };
            return Ok(Some(ServiceError::NotFound {
                field: field.into(),
                kind: "volunteer",
                id: member.to_string(),
            }));
        }
    }
    if let Some(held) = layout::team(doc, &team.id)? {
        if let Err(error) = refuse_if_deleted(held.deleted, "team", &held.id, "deleted") {
            return Ok(Some(error));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::input::VolunteerInput;
    use crate::replica::ReplicaConfig;
    use crate::service::{register_volunteer, teams};
    use crate::storage::MemoryStorage;
    use time::macros::date;

    fn team(id: Option<&str>, name: &str, members: &[&str]) -> TeamInput {
        TeamInput {
            id: id.map(str::to_string),
            name: name.into(),
            category: "health".into(),
            members: members.iter().map(|m| m.to_string()).collect(),
            ..TeamInput::default()
        }
    }

    #[test]
    fn a_file_of_teams_goes_in_as_one_change_and_each_bad_row_is_named() {
        let village = StationId::parse("xh/t1/v1").unwrap();
        let mut replica = Replica::open(
            MemoryStorage::new(),
            village.clone(),
            1,
            ReplicaConfig::default(),
        )
        .unwrap();
        for (number, first_17) in [("V1", "11010519491231002"), ("V2", "11010519491231003")] {
            let input = VolunteerInput {
                number: Some(number.into()),
                name: "赵敏".into(),
                sex: "女".into(),
                id_number: crate::domain::pii::with_check_digit(first_17),
                ..VolunteerInput::default()
            };
            let key = crate::test_support::sealer();
            register_volunteer(
                &mut replica,
                &village,
                &input,
                &key,
                date!(2026 - 11 - 23),
                1,
            )
            .unwrap();
        }
        let roster = DocumentId::roster(&village);
        let before = replica.heads(&roster).unwrap().to_vec();
        let mut nonce = 0;
        let report = import_teams(
            &mut replica,
            &village,
            vec![
                (2, team(Some("T1"), "健康服务队", &["V1", "V2"])),
                (3, team(None, "文艺队", &["V2"])),
                (4, team(Some("T3"), "", &[])),
                (5, team(Some("T4"), "巡逻队", &["V9"])),
                (6, team(Some("T1"), "健康服务队二", &[])),
            ],
            || {
                nonce += 1;
                nonce
            },
        )
        .unwrap();
        assert_eq!((report.rows, report.accepted), (5, 2));
        let refused: Vec<(usize, &str)> = report
            .refused
            .iter()
            .map(|r| (r.row, r.field.as_str()))
            .collect();
        assert_eq!(refused, vec![(4, "name"), (5, "members"), (6, "id")]);
        assert!(report.refused[1].reason.contains("V9"), "{report:?}");
        assert!(report.refused[2].reason.contains("row 2"), "{report:?}");
        let held = teams(&mut replica, &village).unwrap();
        assert_eq!(held.len(), 2);
        assert!(held
            .iter()
            .any(|t| t.name == "健康服务队" && t.members.len() == 2));
        // One change for the whole file: the only new head stands right on
        // the heads before.
        let after = replica.heads(&roster).unwrap().to_vec();
        assert_eq!(after.len(), 1);
        let mut deps = replica
            .with_document(&roster, |doc| {
                automerge::ReadDoc::get_change_by_hash(doc, &after[0]).map(|c| c.deps().to_vec())
            })
            .unwrap()
            .unwrap()
            .unwrap();
        let mut before = before;
        deps.sort();
        before.sort();
        assert_eq!(deps, before, "one change for the whole file");
    }

    #[test]
    fn a_deleted_team_in_a_file_stays_deleted() {
        let village = StationId::parse("xh/t1/v1").unwrap();
        let mut replica = Replica::open(
            MemoryStorage::new(),
            village.clone(),
            1,
            ReplicaConfig::default(),
        )
        .unwrap();
        let t1 = || vec![(2, team(Some("T1"), "健康服务队", &[]))];
        assert_eq!(
            import_teams(&mut replica, &village, t1(), || 1)
                .unwrap()
                .accepted,
            1
        );
        let roster = DocumentId::roster(&village);
        replica
            .commit(&roster, |doc| {
                let id = RecordId::parse("id", "T1").unwrap();
                let mut held = layout::team(doc, &id)?.unwrap();
                held.deleted = true;
                layout::put_team(doc, &held).map_err(ServiceError::from)
            })
            .unwrap();
        let report = import_teams(&mut replica, &village, t1(), || 2).unwrap();
        assert_eq!(report.accepted, 0);
        assert_eq!(report.refused[0].field, "id");
        assert!(teams(&mut replica, &village).unwrap().is_empty());
    }
}
