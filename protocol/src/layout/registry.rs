//! The station registry inside a `reference:<owner>:registry` document.
//!
//! ```text
//! reference:<owner>:registry
//!   items {<station path>: {name, tier}}
//! ```
//!
//! One entry per station, keyed by its full path, holding its human name
//! and its tier as text. The registry of a station lists stations of its
//! own subtree only: an entry outside the owner's subtree (which only a
//! hand-made or foreign document could hold, since the service refuses to
//! write one) is reported as unreadable and never merged. An entry that
//! cannot be read is reported with the reason and skipped, so one damaged
//! entry never hides the rest of the registry.

use super::{
    keys_of, maps_at, root_maps, root_records, s, upsert_record, view, Fields, LayoutResult, ITEMS,
};
use crate::document_id::{DocumentId, DocumentKind};
use crate::station::{Station, StationId, Tier};
use automerge::{AutoCommit, ReadDoc, ROOT};
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
    pub unreadable: Vec<UnreadableEntry>,
}

/// Every entry of the registry document of `owner`.
pub fn registry_entries<D: ReadDoc>(doc: &D, owner: &StationId) -> LayoutResult<RegistryEntries> {
    let mut out = RegistryEntries::default();
    for (key, maps) in root_records(doc, ITEMS)? {
        match read_entry(doc, owner, &key, maps) {
            Ok(station) => out.stations.push(station),
            Err(reason) => out.unreadable.push(UnreadableEntry { key, reason }),
        }
    }
    debug_assert!(out.stations.windows(2).all(|w| w[0].id < w[1].id));
    Ok(out)
}

fn read_entry<D: ReadDoc>(
    doc: &D,
    owner: &StationId,
    key: &str,
    maps: Vec<automerge::ObjId>,
) -> Result<Station, String> {
    let id = StationId::parse(key).map_err(|e| e.to_string())?;
    if !owner.is_ancestor_or_self_of(&id) {
        return Err(format!("{id} is outside the subtree of {owner}"));
    }
    let fields = Fields::new(doc, maps, format!("{ITEMS}.{key}"));
    let name = fields.str("name").map_err(|e| e.to_string())?;
    let tier_text = fields.str("tier").map_err(|e| e.to_string())?;
    let tier = Tier::parse(&tier_text).ok_or_else(|| format!("unknown tier {tier_text:?}"))?;
    Ok(Station { id, name, tier })
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
}
