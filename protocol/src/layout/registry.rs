//! The station registry inside a `reference:<owner>:registry` document.
//!
//! ```text
//! reference:<owner>:registry
//!   items {<station path>: {name, tier, retired_on?, merged_into?}}
//! ```
//!
//! One entry per station, keyed by its full path, holding its human name
//! and its tier as text. `retired_on` (`YYYY-MM-DD`) and `merged_into` (a
//! station path) say the station was closed (撤并) and who took over its
//! work; both follow the layout's defaults-absent convention: an absent or
//! empty field reads as "not retired" / "no successor", so registries
//! written before retirement existed read as every station active, and
//! un-retiring writes the empty text back. A rename writes only `name` and
//! `tier`, a retirement only `retired_on` and `merged_into`: concurrent
//! ones touch different fields and both survive the merge. The registry of a station lists stations of its
//! own subtree only: an entry outside the owner's subtree (which only a
//! hand-made or foreign document could hold, since the service refuses to
//! write one) is reported as unreadable and never merged. An entry that
//! cannot be read is reported with the reason and skipped, so one damaged
//! entry never hides the rest of the registry.

use super::{
    keys_of, maps_at, put_changed, root_maps, root_records, s, upsert_record, view, Fields,
    LayoutResult, ITEMS,
};
use crate::domain::model::date_format;
use crate::identity::document_id::{DocumentId, DocumentKind};
use crate::identity::station::{Station, StationId, Tier};
use automerge::{AutoCommit, ReadDoc, ROOT};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::Date;
use view::{maps_for_write, NewRecord};

/// The reference name of registry documents.
pub const REGISTRY: &str = "registry";

/// Is `document` a station registry?
pub fn is_registry(document: &DocumentId) -> bool {
    matches!(&document.kind, DocumentKind::Reference(name) if name == REGISTRY)
}

/// The registry document kept by `owner`.
pub fn registry_document(owner: &StationId) -> DocumentId {
    DocumentId {
        owner: owner.clone(),
        kind: DocumentKind::Reference(REGISTRY.to_string()),
    }
}

/// Write `station`'s entry (a new one, or its name and tier changed).
/// Only fields whose value differs are written.
pub fn put_registry_entry(doc: &mut AutoCommit, station: &Station) -> LayoutResult<()> {
    let all = maps_for_write(doc, &[ROOT], ITEMS)?;
    let fields = vec![
        ("name", s(station.name.clone())),
        ("tier", s(station.tier.as_str())),
    ];
    upsert_record(doc, &all, station.id.as_str(), NewRecord::new(fields))?;
    Ok(())
}

/// A station closed (撤并) as of `retired_on`, and the station that took
/// over its work, if one was named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    #[serde(with = "date_format")]
    pub retired_on: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<StationId>,
}

/// Write `station`'s retirement (`None`: not retired, i.e. un-retire) into
/// its existing entry; only fields whose value differs are written.
/// Returns false, writing nothing, when the registry has no entry for it:
/// a retirement is never the first thing known of a station.
pub fn put_registry_retirement(
    doc: &mut AutoCommit,
    station: &StationId,
    retirement: Option<&Retirement>,
) -> LayoutResult<bool> {
    // Read first: an empty registry has no `items` map yet, and making one
    // would be a write.
    let items = root_maps(doc, ITEMS)?;
    if maps_at(doc, &items, station.as_str())?.is_empty() {
        return Ok(false);
    }
    let all = maps_for_write(doc, &[ROOT], ITEMS)?;
    let existing = maps_at(doc, &all, station.as_str())?;
    debug_assert!(!existing.is_empty());
    let (retired_on, merged_into) = match retirement {
        Some(r) => (
            date_format::format(r.retired_on),
            r.merged_into
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    put_changed(
        doc,
        &existing,
        vec![
            ("retired_on", s(retired_on)),
            ("merged_into", s(merged_into)),
        ],
    )?;
    Ok(true)
}

/// Does the registry hold an entry (readable or not) under `station`'s
/// path? Looks at that one key, not the whole registry.
pub fn registry_lists<D: ReadDoc>(doc: &D, station: &StationId) -> LayoutResult<bool> {
    let items = root_maps(doc, ITEMS)?;
    Ok(!maps_at(doc, &items, station.as_str())?.is_empty())
}

/// Entries the registry holds, readable or not (its keys only).
pub fn registry_len<D: ReadDoc>(doc: &D) -> LayoutResult<usize> {
    let items = root_maps(doc, ITEMS)?;
    Ok(keys_of(doc, &items).len())
}

/// An entry this code could not take as a station, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableEntry {
    pub key: String,
    pub reason: String,
}

/// What a registry document holds: its readable entries in path order, and
/// those that could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryEntries {
    pub stations: Vec<Station>,
    /// The retirements of entries in `stations` that say they are retired.
    pub retirements: BTreeMap<StationId, Retirement>,
    pub unreadable: Vec<UnreadableEntry>,
}

/// Every entry of the registry document of `owner`.
pub fn registry_entries<D: ReadDoc>(doc: &D, owner: &StationId) -> LayoutResult<RegistryEntries> {
    let mut out = RegistryEntries::default();
    for (key, maps) in root_records(doc, ITEMS)? {
        match read_entry(doc, owner, &key, maps) {
            Ok((station, retirement)) => {
                if let Some(retirement) = retirement {
                    out.retirements.insert(station.id.clone(), retirement);
                }
                out.stations.push(station);
            }
            Err(reason) => out.unreadable.push(UnreadableEntry { key, reason }),
        }
    }
    debug_assert!(out.stations.windows(2).all(|w| w[0].id < w[1].id));
    debug_assert!(out
        .retirements
        .keys()
        .all(|id| out.stations.binary_search_by(|s| s.id.cmp(id)).is_ok()));
    Ok(out)
}

fn read_entry<D: ReadDoc>(
    doc: &D,
    owner: &StationId,
    key: &str,
    maps: Vec<automerge::ObjId>,
) -> Result<(Station, Option<Retirement>), String> {
    let id = StationId::parse(key).map_err(|e| e.to_string())?;
    if !owner.is_ancestor_or_self_of(&id) {
        return Err(format!("{id} is outside the subtree of {owner}"));
    }
    let fields = Fields::new(doc, maps, format!("{ITEMS}.{key}"));
    let name = fields.str("name").map_err(|e| e.to_string())?;
    let tier_text = fields.str("tier").map_err(|e| e.to_string())?;
    let tier = Tier::parse(&tier_text).ok_or_else(|| format!("unknown tier {tier_text:?}"))?;
    let retirement = match fields.opt_str("retired_on").map_err(|e| e.to_string())? {
        None => None,
        Some(text) => {
            let retired_on = date_format::parse("retired_on", &text)
                .map_err(|e| format!("{ITEMS}.{key}.retired_on: {}", e.reason))?;
            let merged_into = fields
                .opt_str("merged_into")
                .map_err(|e| e.to_string())?
                .map(|text| {
                    StationId::parse(&text).map_err(|e| format!("{ITEMS}.{key}.merged_into: {e}"))
                })
                .transpose()?;
            Some(Retirement {
                retired_on,
                merged_into,
            })
        }
    };
    Ok((Station { id, name, tier }, retirement))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::init_document;
    use automerge::transaction::Transactable;

    fn station(id: &str, name: &str, tier: Tier) -> Station {
        Station {
            id: StationId::parse(id).unwrap(),
            name: name.into(),
            tier,
        }
    }

    fn new_registry(owner: &str) -> (AutoCommit, StationId) {
        let owner = StationId::parse(owner).unwrap();
        let mut doc = AutoCommit::new();
        init_document(&mut doc, &registry_document(&owner)).unwrap();
        (doc, owner)
    }

    #[test]
    fn entries_read_back_in_path_order_and_a_rename_changes_only_the_name() {
        let (mut doc, owner) = new_registry("xh");
        let v2 = station("xh/t1/v2", "西村站", Tier::Village);
        let t1 = station("xh/t1", "城关镇所", Tier::Township);
        put_registry_entry(&mut doc, &v2).unwrap();
        put_registry_entry(&mut doc, &t1).unwrap();
        let read = registry_entries(&doc, &owner).unwrap();
        assert_eq!(read.stations, vec![t1.clone(), v2.clone()]);
        assert!(read.unreadable.is_empty());
        assert_eq!(registry_len(&doc).unwrap(), 2);
        assert!(registry_lists(&doc, &v2.id).unwrap());
        assert!(!registry_lists(&doc, &StationId::parse("xh/t1/v3").unwrap()).unwrap());

        doc.commit();
        let before = doc.get_heads();
        let renamed = station("xh/t1/v2", "西村新时代文明实践站", Tier::Village);
        put_registry_entry(&mut doc, &renamed).unwrap();
        doc.commit();
        let change = doc.get_changes(&before);
        assert_eq!(change.len(), 1);
        assert_eq!(change[0].len(), 1, "one field written: the name");
        assert_eq!(
            registry_entries(&doc, &owner).unwrap().stations,
            vec![t1, renamed]
        );
    }

    #[test]
    fn entries_outside_the_owner_or_unreadable_are_reported_not_merged() {
        let (mut doc, owner) = new_registry("xh/t1");
        put_registry_entry(&mut doc, &station("xh/t1/v1", "东村站", Tier::Village)).unwrap();
        // What a foreign or hand-made document could hold.
        put_registry_entry(&mut doc, &station("xh/t2/v9", "别村站", Tier::Village)).unwrap();
        let items = crate::layout::root_maps(&doc, ITEMS).unwrap();
        let bad = doc
            .put_object(&items[0], "xh/t1/v3", automerge::ObjType::Map)
            .unwrap();
        doc.put(&bad, "tier", "hamlet").unwrap();
        let read = registry_entries(&doc, &owner).unwrap();
        assert_eq!(
            read.stations,
            vec![station("xh/t1/v1", "东村站", Tier::Village)]
        );
        let keys: Vec<&str> = read.unreadable.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, vec!["xh/t1/v3", "xh/t2/v9"]);
        assert!(read.unreadable[0].reason.contains("hamlet"));
    }

    #[test]
    fn only_reference_documents_named_registry_are_registries() {
        let owner = StationId::parse("xh").unwrap();
        assert!(is_registry(&registry_document(&owner)));
        assert_eq!(
            registry_document(&owner).to_string(),
            "reference:xh:registry"
        );
        assert!(!is_registry(
            &DocumentId::reference(&owner, "menu").unwrap()
        ));
        assert!(!is_registry(&DocumentId::roster(&owner)));
    }

    fn retirement(on: &str, merged_into: Option<&str>) -> Retirement {
        Retirement {
            retired_on: date_format::parse("retired_on", on).unwrap(),
            merged_into: merged_into.map(|m| StationId::parse(m).unwrap()),
        }
    }

    #[test]
    fn a_retirement_reads_back_an_absent_one_reads_as_active_and_it_can_be_undone() {
        let (mut doc, owner) = new_registry("xh/t1");
        let v1 = station("xh/t1/v1", "东村站", Tier::Village);
        let v2 = station("xh/t1/v2", "西村站", Tier::Village);
        put_registry_entry(&mut doc, &v1).unwrap();
        put_registry_entry(&mut doc, &v2).unwrap();
        // Written before retirement existed: no such fields at all.
        assert!(registry_entries(&doc, &owner)
            .unwrap()
            .retirements
            .is_empty());

        let closed = retirement("2026-11-15", Some("xh/t1/v2"));
        assert!(put_registry_retirement(&mut doc, &v1.id, Some(&closed)).unwrap());
        let read = registry_entries(&doc, &owner).unwrap();
        assert_eq!(
            read.stations,
            vec![v1.clone(), v2.clone()],
            "nothing hidden"
        );
        assert_eq!(read.retirements.get(&v1.id), Some(&closed));
        assert_eq!(read.retirements.len(), 1);

        assert!(put_registry_retirement(&mut doc, &v1.id, None).unwrap());
        let read = registry_entries(&doc, &owner).unwrap();
        assert!(read.retirements.is_empty(), "un-retired");
        assert_eq!(read.stations, vec![v1, v2]);
    }

    #[test]
    fn a_retirement_of_a_station_not_listed_writes_nothing() {
        let (mut doc, owner) = new_registry("xh/t1");
        doc.commit();
        let before = doc.get_heads();
        let v9 = StationId::parse("xh/t1/v9").unwrap();
        let closed = retirement("2026-11-15", None);
        assert!(!put_registry_retirement(&mut doc, &v9, Some(&closed)).unwrap());
        doc.commit();
        assert_eq!(doc.get_heads(), before, "nothing written");
        assert_eq!(registry_len(&doc).unwrap(), 0);
        assert!(registry_entries(&doc, &owner).unwrap().stations.is_empty());
    }

    #[test]
    fn concurrent_rename_and_retirement_both_survive_the_merge() {
        let (mut doc, owner) = new_registry("xh/t1");
        put_registry_entry(&mut doc, &station("xh/t1/v1", "东村站", Tier::Village)).unwrap();
        doc.commit();
        let mut county = doc.fork();
        let renamed = station("xh/t1/v1", "东村新时代文明实践站", Tier::Village);
        put_registry_entry(&mut doc, &renamed).unwrap();
        doc.commit();
        let closed = retirement("2026-11-15", None);
        assert!(put_registry_retirement(&mut county, &renamed.id, Some(&closed)).unwrap());
        county.commit();
        doc.merge(&mut county).unwrap();
        county.merge(&mut doc.clone()).unwrap();
        for merged in [&doc, &county] {
            let read = registry_entries(merged, &owner).unwrap();
            assert_eq!(read.stations, vec![renamed.clone()]);
            assert_eq!(read.retirements.get(&renamed.id), Some(&closed));
        }
    }

    #[test]
    fn a_malformed_retirement_makes_the_entry_unreadable_not_active() {
        let (mut doc, owner) = new_registry("xh/t1");
        put_registry_entry(&mut doc, &station("xh/t1/v1", "东村站", Tier::Village)).unwrap();
        let items = crate::layout::root_maps(&doc, ITEMS).unwrap();
        let entry = crate::layout::maps_at(&doc, &items, "xh/t1/v1").unwrap();
        doc.put(&entry[0], "retired_on", "last autumn").unwrap();
        let read = registry_entries(&doc, &owner).unwrap();
        assert!(read.stations.is_empty());
        assert_eq!(read.unreadable.len(), 1);
        assert!(read.unreadable[0].reason.contains("retired_on"));
    }
}
