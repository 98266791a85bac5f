//! A county's (or township's) station list from one file: every valid row
//! registered or renamed, one commit per registry document written.
//!
//! Setting up a county is a list of several hundred offices that already
//! exists as a spreadsheet. One `POST stations` a station cost a request, a
//! commit, a flush and a signed change each: 675 of them for one county,
//! and every township then receives the registry as 675 changes with a
//! signature each. Here a file goes in as one change per registry written
//! (normally one: this node's own), under the same rules as
//! [`register_station`](super::register_station): each row is validated
//! alone, and a station already listed in a closer registry is renamed
//! there. A blank tier is the one the station's depth gives, as for one
//! registration. A refused row comes back with its row number, field and reason;
//! the other rows are written.

use super::{
    commit_error, store_error, target_document, validate_station, RegistryError,
    REGISTRY_STATIONS_MAX,
};
use crate::identity::station::{Station, StationId, Tier};
use crate::layout;
use crate::replica::Replica;
use crate::service::{ImportReport, RowRefusal};
use crate::storage::Storage;
use crate::DocumentId;
use std::collections::BTreeMap;

use super::StationInput;

/// Register or rename every valid row of a station file (`(row number,
/// input)`) on this node of `local_tier`. `Err` only when the store fails;
/// what is wrong with a row is that row's refusal.
pub fn import_stations<S: Storage>(
    replica: &mut Replica<S>,
    local_tier: Tier,
    rows: Vec<(usize, StationInput)>,
) -> Result<ImportReport, RegistryError> {
    let local = replica.local().clone();
    let mut report = ImportReport {
        rows: rows.len(),
        accepted: 0,
        refused: Vec::new(),
    };
    let refusal = |row: usize, error: &RegistryError| RowRefusal {
        row,
        field: error.field().to_string(),
        reason: error.reason(),
    };
    // Validation first, and one row per station: a file naming a station
    // twice would otherwise keep whichever name came last, silently.
    let mut first_row_of: BTreeMap<StationId, usize> = BTreeMap::new();
    let mut by_document: BTreeMap<DocumentId, Vec<(usize, Station)>> = BTreeMap::new();
    for (row, input) in rows {
        let station = match validate_station(&input, &local, local_tier) {
            Ok(station) => station,
            Err(error) => {
                report.refused.push(refusal(row, &error));
                continue;
            }
        };
        if let Some(first) = first_row_of.get(&station.id) {
            report.refused.push(RowRefusal {
                row,
                field: "id".into(),
                reason: format!(
                    "station {} is already in this file, at row {first}",
                    station.id
                ),
            });
            continue;
        }
        first_row_of.insert(station.id.clone(), row);
        let document = target_document(replica, &station.id)?;
        debug_assert!(document.owner.is_ancestor_or_self_of(&station.id));
        by_document
            .entry(document)
            .or_default()
            .push((row, station));
    }
    for (document, stations) in by_document {
        let outcome = replica
            .commit(&document, |doc| {
                let mut held = layout::registry_len(doc).map_err(store_error)?;
                let mut accepted = 0;
                let mut refused = Vec::new();
                for (row, station) in &stations {
                    let listed = layout::registry_lists(doc, &station.id).map_err(store_error)?;
                    if !listed && held >= REGISTRY_STATIONS_MAX {
                        refused.push(refusal(
                            *row,
                            &RegistryError::Full {
                                document: document.clone(),
                                max: REGISTRY_STATIONS_MAX,
                            },
                        ));
                        continue;
                    }
                    layout::put_registry_entry(doc, station).map_err(store_error)?;
                    held += usize::from(!listed);
                    accepted += 1;
                }
                Ok::<_, RegistryError>((accepted, refused))
            })
            .map_err(commit_error)?;
        let (accepted, refused) = outcome.value;
        report.accepted += accepted;
        report.refused.extend(refused);
    }
    Ok(report.finished())
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
