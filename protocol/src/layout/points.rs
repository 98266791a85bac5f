//! Points (积分) entries inside a station's roster document.
//!
//! ```text
//! roster:<station>
//!   points {<key>: <entry text>}
//! ```
//!
//! Each key is written by one station only (its key starts with that
//! station, see `service/points.rs`), and each value is one atomic string:
//! an entry is never edited field by field, so no merge can mix two
//! writers' fields. A reader gets every value held at every key (concurrent
//! ones too), each with the station whose actor wrote it, and the service
//! decides which to believe — a value whose author is not the station its
//! key names is never counted.

use super::view::{all_values_at, keys_of, maps_for_write, root_maps};
use super::{LayoutResult, Scalar};
use crate::identity::actor::station_of;
use crate::identity::station::StationId;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ReadDoc, ROOT};

/// The top-level map of a roster document that holds points entries.
pub const POINTS: &str = "points";

/// One value held at one key of the `points` map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointsValue {
    pub key: String,
    pub text: String,
    /// The station of the actor that wrote it (`None`: not a civsync actor).
    pub written_by: Option<StationId>,
}

/// Write `text` at `key`, superseding every value of the key this replica
/// has seen. Writes nothing when readers already see exactly it.
pub fn put_points_entry(doc: &mut AutoCommit, key: &str, text: &str) -> LayoutResult<()> {
    let maps = maps_for_write(doc, &[ROOT], POINTS)?;
    let current = points_value(doc, &maps, key)?;
    if current.as_deref() == Some(text) {
        return Ok(());
    }
    let holding: Vec<ObjId> = maps
        .iter()
        .filter(|map| matches!(doc.get(*map, key), Ok(Some(_))))
        .cloned()
        .collect();
    let targets = if holding.is_empty() {
        vec![maps[0].clone()]
    } else {
        holding
    };
    for map in targets {
        doc.put(&map, key, text)?;
    }
    Ok(())
}

fn points_value<D: ReadDoc>(doc: &D, maps: &[ObjId], key: &str) -> LayoutResult<Option<String>> {
    Ok(all_values_at(doc, maps, key)?
        .into_iter()
        .find_map(|(value, _)| Scalar::from_value(&value).map(|s| s.display())))
}

/// Every value held at every key of the document's `points` map, by key.
pub fn points_values<D: ReadDoc>(doc: &D) -> LayoutResult<Vec<PointsValue>> {
    let maps = root_maps(doc, POINTS)?;
    let mut out = Vec::new();
    for key in keys_of(doc, &maps) {
        for (value, id) in all_values_at(doc, &maps, &key)? {
            let written_by = match &id {
                ObjId::Id(_, actor, _) => station_of(actor),
                ObjId::Root => None,
            };
            let text = Scalar::from_value(&value)
                .map(|s| s.display())
                .unwrap_or_default();
            out.push(PointsValue {
                key: key.clone(),
                text,
                written_by,
            });
        }
    }
    Ok(out)
}
