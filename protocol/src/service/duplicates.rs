//! Probable duplicates: the same person registered more than once in the
//! county (two villages, or twice in one), found by the county alone.
//!
//! Offices below the county hold only the ID number sealed to the county's
//! public key, which confirms nothing to them; the county opens every seal
//! held in the subtree asked about, in memory, and groups the volunteers
//! whose numbers share a de-duplication digest (HMAC under a key only the
//! county has). Rosters written before sealing are grouped by their old
//! digest. Groups are reported, never merged: a clerk decides, and service
//! hours stay with each record.

use super::{store_error, ServiceError};
use crate::domain::model::RecordId;
use crate::domain::pii::CountyOpenKey;
use crate::identity::document_id::{DocumentId, DocumentKind};
use crate::identity::station::StationId;
use crate::layout;
use crate::replica::Replica;
use crate::storage::Storage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One registration in a group of probable duplicates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DuplicateMember {
    pub home_station: StationId,
    pub number: RecordId,
    pub name: String,
    pub id_masked: String,
}

/// Registrations that carry the same ID number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateGroup {
    /// `sealed`: the county opened the seals; `old_digest`: equal digests
    /// of rosters written before sealing.
    pub matched_by: String,
    /// Sorted by home station, then number; at least two.
    pub members: Vec<DuplicateMember>,
}

/// A seal the county could not open (another county's key, or altered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnopenedSeal {
    pub home_station: StationId,
    pub number: RecordId,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicatesReport {
    pub volunteers_checked: u64,
    pub groups: Vec<DuplicateGroup>,
    pub unopened: Vec<UnopenedSeal>,
}

/// Group the live volunteers of every roster held under `root` by ID
/// number. Reads only; costs one seal opening per volunteer.
pub fn find_duplicates<S: Storage>(
    replica: &mut Replica<S>,
    opener: &CountyOpenKey,
    root: &StationId,
) -> Result<DuplicatesReport, ServiceError> {
    let rosters: Vec<DocumentId> = replica
        .documents()
        .into_iter()
        .filter(|d| d.kind == DocumentKind::Roster && root.is_ancestor_or_self_of(&d.owner))
        .collect();
    let mut report = DuplicatesReport::default();
    let mut by_key: BTreeMap<(&'static str, String), Vec<DuplicateMember>> = BTreeMap::new();
    for roster in rosters {
        let volunteers = replica
            .with_document(&roster, layout::volunteers)
            .map_err(store_error)?
            .transpose()?
            .unwrap_or_default();
        for volunteer in volunteers.into_iter().filter(|v| !v.deleted) {
            report.volunteers_checked += 1;
            let member = DuplicateMember {
                home_station: volunteer.home_station.clone(),
                number: volunteer.number.clone(),
                name: volunteer.name.clone(),
                id_masked: volunteer.id_masked.clone(),
            };
            let key = if !volunteer.id_sealed.is_empty() {
                match opener.open(&volunteer.id_sealed) {
                    Ok(id_number) => ("sealed", opener.dedup_digest(&id_number)),
                    Err(error) => {
                        report.unopened.push(UnopenedSeal {
                            home_station: member.home_station,
                            number: member.number,
                            reason: error.to_string(),
                        });
                        continue;
                    }
                }
            } else if !volunteer.id_digest.is_empty() {
                ("old_digest", volunteer.id_digest.clone())
            } else {
                continue;
            };
            by_key.entry(key).or_default().push(member);
        }
    }
    report.groups = by_key
        .into_iter()
        .filter(|(_, members)| members.len() > 1)
        .map(|((matched_by, _), mut members)| {
            members.sort();
            DuplicateGroup {
                matched_by: matched_by.to_string(),
                members,
            }
        })
        .collect();
    report.groups.sort_by(|a, b| a.members.cmp(&b.members));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::input::VolunteerInput;
    use crate::domain::pii::{with_check_digit, CountyOpenKey};
    use crate::service::register_volunteer;
    use crate::test_support::{county_key, node, sealer, station, sync_document};
    use time::macros::date;

    fn person(number: &str, id_number: &str) -> VolunteerInput {
        VolunteerInput {
            number: Some(number.into()),
            name: format!("志愿者{number}"),
            sex: "female".into(),
            residence_area: "村".into(),
            phone: "13800000000".into(),
            id_number: id_number.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_county_finds_one_person_registered_in_two_villages_and_merges_nothing() {
        let (mut v1, mut v2, mut t1, mut county) = (
            node("xh/t1/v1"),
            node("xh/t1/v2"),
            node("xh/t1"),
            node("xh"),
        );
        let today = date!(2026 - 11 - 23);
        let same = with_check_digit("41010519900101002");
        let other = with_check_digit("41010519900101004");
        let key = sealer();
        register_volunteer(
            &mut v1,
            &station("xh/t1/v1"),
            &person("001", &same),
            &key,
            today,
            1,
        )
        .unwrap();
        register_volunteer(
            &mut v2,
            &station("xh/t1/v2"),
            &person("001", &same),
            &key,
            today,
            2,
        )
        .unwrap();
        register_volunteer(
            &mut v2,
            &station("xh/t1/v2"),
            &person("002", &other),
            &key,
            today,
            3,
        )
        .unwrap();
        for (village, at) in [(&mut v1, "xh/t1/v1"), (&mut v2, "xh/t1/v2")] {
            let roster = DocumentId::roster(&station(at));
            sync_document(village, &mut t1, &roster);
            sync_document(&mut t1, &mut county, &roster);
        }
        let report = find_duplicates(&mut county, &county_key(), &station("xh")).unwrap();
        assert_eq!(report.volunteers_checked, 3);
        assert_eq!(report.groups.len(), 1, "{report:?}");
        let members: Vec<(String, String)> = report.groups[0]
            .members
            .iter()
            .map(|m| (m.home_station.to_string(), m.number.to_string()))
            .collect();
        assert_eq!(
            members,
            [
                ("xh/t1/v1".into(), "001".into()),
                ("xh/t1/v2".into(), "001".into())
            ]
        );
        assert_eq!(report.groups[0].matched_by, "sealed");
        // Another county's key opens nothing: every seal is reported.
        let foreign = find_duplicates(
            &mut county,
            &CountyOpenKey::generate([9; 32]),
            &station("xh"),
        )
        .unwrap();
        assert!(foreign.groups.is_empty());
        assert_eq!(foreign.unopened.len(), 3);
    }

    #[test]
    fn rosters_written_before_sealing_stay_readable_and_match_by_old_digest() {
        // Written by the county into two villages' rosters, as an old
        // release wrote them: a digest under the old key, no seal.
        let mut county = node("xh");
        let today = date!(2026 - 11 - 23);
        let mut old = person("001", &with_check_digit("41010519900101002"))
            .validate(&sealer(), &station("xh/t1/v1"), today, 1)
            .unwrap();
        old.id_sealed = String::new();
        old.id_digest = "ab".repeat(32);
        old.id_masked = "4101**********0021".into();
        let mut twin = old.clone();
        twin.home_station = station("xh/t1/v2");
        for volunteer in [&old, &twin] {
            let roster = DocumentId::roster(&volunteer.home_station);
            county
                .commit(&roster, |doc| crate::layout::put_volunteer(doc, volunteer))
                .unwrap();
        }
        let new = register_volunteer(
            &mut county,
            &station("xh/t1/v1"),
            &person("003", &with_check_digit("41010519900101004")),
            &sealer(),
            today,
            2,
        )
        .unwrap();
        assert!(
            new.id_digest.is_empty()
                && new.id_sealed.starts_with(crate::domain::pii::SEALED_PREFIX)
        );
        let read = crate::service::volunteers(&mut county, &station("xh/t1/v1")).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(
            read[0].id_digest, old.id_digest,
            "the old digest stays readable"
        );
        assert_eq!(read[0].id_masked, "4101**********0021");
        let report = find_duplicates(&mut county, &county_key(), &station("xh")).unwrap();
        assert_eq!(report.volunteers_checked, 3);
        assert_eq!(report.groups.len(), 1);
        assert_eq!(report.groups[0].matched_by, "old_digest");
        assert_eq!(report.groups[0].members.len(), 2);
    }
}
