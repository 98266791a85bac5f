//! Logical maps: what a reader sees where concurrent creations left several
//! Automerge map objects under one key.
//!
//! Two nodes that create the same map while apart — both create the
//! `activities` map of a month's document, or a village and its township
//! register the same volunteer number in the same offline week — each make
//! their own map object under the same key. Automerge keeps both (history
//! loses nothing), but `get` shows only one of them, the winner, and a reader
//! that follows only the winner silently misses whatever was recorded in the
//! other. So every read in the layout goes through a *logical map*: all map
//! objects at that place, in read priority order — parents in their order,
//! and under one parent the winner first, then the others newest first
//! (Automerge's own deterministic order, so every replica reads the same).
//!
//! - a key's value is the first object holding the key;
//! - the keys are the union over the objects;
//! - a write of a value that differs from what the reader sees goes into
//!   every object that holds the key, so it supersedes every value it has
//!   seen, and into the first object when none does;
//! - creating a record that no object holds creates it in the first object
//!   of the parent, in one batch (see [`create_record`]).

use super::{LayoutError, LayoutResult, Scalar};
use automerge::transaction::Transactable;
use automerge::{hydrate, AutoCommit, ObjId, ObjType, ReadDoc, Value, ValueRef, ROOT};
use std::collections::{BTreeSet, HashMap};

/// The map objects at `key` under the logical map `parents`, in read
/// priority order. Empty when none holds a map there. A key holding only
/// non-map values where a map belongs is a damaged or foreign document.
pub(crate) fn maps_at<D: ReadDoc>(
    doc: &D,
    parents: &[ObjId],
    key: &str,
) -> LayoutResult<Vec<ObjId>> {
    let mut maps = Vec::new();
    let mut other_values = 0usize;
    for parent in parents {
        // get_all is ordered by op id and `get` returns its last entry:
        // reversed, the winner comes first.
        for (value, id) in doc.get_all(parent, key)?.into_iter().rev() {
            match value {
                Value::Object(ObjType::Map) => maps.push(id),
                _ => other_values += 1,
            }
        }
    }
    if maps.is_empty() && other_values > 0 {
        return Err(LayoutError::Malformed {
            path: key.to_string(),
            reason: "expected a map".into(),
        });
    }
    Ok(maps)
}

/// The map objects of a top-level collection (`volunteers`, `activities`...).
pub(crate) fn root_maps<D: ReadDoc>(doc: &D, key: &str) -> LayoutResult<Vec<ObjId>> {
    maps_at(doc, &[ROOT], key)
}

/// The keys of a logical map: the union over its objects, sorted.
pub(crate) fn keys_of<D: ReadDoc>(doc: &D, maps: &[ObjId]) -> Vec<String> {
    match maps {
        [] => Vec::new(),
        [only] => doc.keys(only).collect(),
        many => many
            .iter()
            .flat_map(|map| doc.keys(map))
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect(),
    }
}

/// Every record (a key holding a map) of the logical map `parents`, sorted
/// by key, each with its own logical map. Keys holding scalars are skipped:
/// a collection holds only records.
pub(crate) fn records<D: ReadDoc>(
    doc: &D,
    parents: &[ObjId],
) -> LayoutResult<Vec<(String, Vec<ObjId>)>> {
    let mut out = Vec::new();
    if let [only] = parents {
        // One pass; only a key that concurrent creations split (Automerge
        // flags it as a conflict) needs a second look.
        for item in doc.map_range(only, ..) {
            if item.conflict {
                let maps = maps_at(doc, parents, &item.key).unwrap_or_default();
                if !maps.is_empty() {
                    out.push((item.key.to_string(), maps));
                }
            } else if matches!(item.value, ValueRef::Object(ObjType::Map)) {
                out.push((item.key.to_string(), vec![item.id()]));
            }
        }
        return Ok(out);
    }
    for key in keys_of(doc, parents) {
        let mut maps = Vec::new();
        for parent in parents {
            for (value, id) in doc.get_all(parent, key.as_str())?.into_iter().rev() {
                if matches!(value, Value::Object(ObjType::Map)) {
                    maps.push(id);
                }
            }
        }
        if !maps.is_empty() {
            out.push((key, maps));
        }
    }
    Ok(out)
}

/// The value a reader sees at `key`: the first object holding the key wins.
pub(crate) fn value_at<'a, D: ReadDoc>(
    doc: &'a D,
    maps: &[ObjId],
    key: &str,
) -> LayoutResult<Option<(Value<'a>, ObjId)>> {
    for map in maps {
        if let Some(found) = doc.get(map, key)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The scalar a reader sees at `key` (an object there reads as absent).
pub(crate) fn scalar_at<D: ReadDoc>(
    doc: &D,
    maps: &[ObjId],
    key: &str,
) -> LayoutResult<Option<Scalar>> {
    Ok(value_at(doc, maps, key)?.and_then(|(value, _)| Scalar::from_value(&value)))
}

/// Every value held at `key` over the logical map, the one readers see
/// first, each with the id of the op that wrote it.
pub(crate) fn all_values_at<'a, D: ReadDoc>(
    doc: &'a D,
    maps: &[ObjId],
    key: &str,
) -> LayoutResult<Vec<(Value<'a>, ObjId)>> {
    let mut out = Vec::new();
    for map in maps {
        out.extend(doc.get_all(map, key)?.into_iter().rev());
    }
    Ok(out)
}

/// The logical map at `parents[key]` for writing: the existing objects, or
/// a new empty map in the first parent.
pub(crate) fn maps_for_write(
    doc: &mut AutoCommit,
    parents: &[ObjId],
    key: &str,
) -> LayoutResult<Vec<ObjId>> {
    let existing = maps_at(doc, parents, key)?;
    if !existing.is_empty() {
        return Ok(existing);
    }
    let first = parents.first().ok_or_else(|| LayoutError::Malformed {
        path: key.to_string(),
        reason: "no map to write into".into(),
    })?;
    Ok(vec![doc.put_object(first, key, ObjType::Map)?])
}

/// Write `value` at `key` unless readers already see exactly it. The write
/// goes into every object holding the key, so it supersedes every value it
/// has seen (concurrent ones it has not seen stay visible as conflicts).
pub(crate) fn put_field(
    doc: &mut AutoCommit,
    maps: &[ObjId],
    key: &str,
    value: &Scalar,
) -> LayoutResult<()> {
    debug_assert!(!maps.is_empty(), "a logical map to write has an object");
    match scalar_at(doc, maps, key)? {
        Some(seen) if seen == *value => return Ok(()),
        // An absent field reads as its default (see `NewRecord`).
        None if value.is_default() => return Ok(()),
        _ => {}
    }
    let mut written = false;
    for map in maps {
        if doc.get(map, key)?.is_some() {
            doc.put(map, key, value.clone().into_automerge())?;
            written = true;
        }
    }
    if !written {
        if let Some(first) = maps.first() {
            doc.put(first, key, value.clone().into_automerge())?;
        }
    }
    Ok(())
}

/// A record to create: its scalar fields and nested maps of records.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewRecord {
    pub fields: Vec<(&'static str, Scalar)>,
    pub children: Vec<(&'static str, Vec<(String, NewRecord)>)>,
    /// Plain scalar entries of a nested map keyed by data (team members).
    pub flags: Vec<(&'static str, Vec<(String, Scalar)>)>,
    /// Entries of the record itself keyed by data (an index map's ids).
    pub entries: Vec<(String, Scalar)>,
}

impl NewRecord {
    pub fn new(fields: Vec<(&'static str, Scalar)>) -> NewRecord {
        NewRecord {
            fields,
            ..NewRecord::default()
        }
    }

    fn into_hydrate(self) -> hydrate::Value {
        let mut map: HashMap<String, hydrate::Value> = HashMap::new();
        // A default value (empty text, 0, false) is left out: readers take
        // an absent field as its default, and most records carry several
        // (`deleted`, `late`, an empty team...). Fewer operations make the
        // write, the stored change and the sync message smaller.
        for (key, value) in self.fields {
            if !value.is_default() {
                map.insert(
                    key.to_string(),
                    hydrate::Value::Scalar(value.into_automerge()),
                );
            }
        }
        for (key, entries) in self.children {
            let nested = entries
                .into_iter()
                .map(|(k, record)| (k, record.into_hydrate()))
                .collect();
            map.insert(key.to_string(), hydrate_map(nested));
        }
        // Flags are data keyed by name (team members): all kept, even
        // false ones, since the key itself is the information.
        for (key, entries) in self.flags {
            let nested = entries
                .into_iter()
                .map(|(k, v)| (k, hydrate::Value::Scalar(v.into_automerge())))
                .collect();
            map.insert(key.to_string(), hydrate_map(nested));
        }
        for (key, value) in self.entries {
            map.insert(key, hydrate::Value::Scalar(value.into_automerge()));
        }
        hydrate_map(map)
    }
}

fn hydrate_map(entries: HashMap<String, hydrate::Value>) -> hydrate::Value {
    hydrate::Value::Map(hydrate::Map::from(entries))
}

/// Create a record that no object of `parents` holds, with all its fields
/// and nested maps, in one batch: Automerge then splices its op columns
/// once instead of once per field, which is most of a write's cost.
pub(crate) fn create_record(
    doc: &mut AutoCommit,
    parents: &[ObjId],
    key: &str,
    record: NewRecord,
) -> LayoutResult<ObjId> {
    let first = parents.first().ok_or_else(|| LayoutError::Malformed {
        path: key.to_string(),
        reason: "no map to create the record in".into(),
    })?;
    Ok(doc.batch_create_object(first, key, &record.into_hydrate(), false)?)
}

/// Create a whole collection of new records at `ROOT[key]` in one batch.
/// Only for a collection no object holds yet (a new document's first
/// import): otherwise records go in one by one through [`create_record`].
pub(crate) fn create_collection(
    doc: &mut AutoCommit,
    key: &str,
    records: Vec<(String, NewRecord)>,
) -> LayoutResult<ObjId> {
    debug_assert!(root_maps(doc, key).map(|m| m.is_empty()).unwrap_or(false));
    let map = records
        .into_iter()
        .map(|(k, record)| (k, record.into_hydrate()))
        .collect();
    Ok(doc.batch_create_object(ROOT, key, &hydrate_map(map), false)?)
}

/// Create a map of plain scalar entries at `ROOT[key]` in one batch (the
/// ID digest index of a new roster).
pub(crate) fn create_scalar_map(
    doc: &mut AutoCommit,
    key: &str,
    entries: Vec<(String, Scalar)>,
) -> LayoutResult<ObjId> {
    let map = entries
        .into_iter()
        .map(|(k, v)| (k, hydrate::Value::Scalar(v.into_automerge())))
        .collect();
    Ok(doc.batch_create_object(ROOT, key, &hydrate_map(map), false)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ActorId;

    fn doc(actor: u8) -> AutoCommit {
        AutoCommit::new().with_actor(ActorId::from(vec![actor; 4]))
    }

    /// Two documents that each created `ROOT.things` (and `things.k`).
    fn split() -> AutoCommit {
        let mut a = doc(1);
        let mut b = doc(2);
        for (d, value) in [(&mut a, "from a"), (&mut b, "from b")] {
            let things = maps_for_write(d, &[ROOT], "things").unwrap();
            let k = maps_for_write(d, &things, "k").unwrap();
            put_field(d, &k, "field", &Scalar::Str(value.into())).unwrap();
            let only = maps_for_write(d, &things, value).unwrap();
            put_field(d, &only, "x", &Scalar::Uint(1)).unwrap();
        }
        a.merge(&mut b).unwrap();
        a
    }

    #[test]
    fn concurrently_created_maps_read_as_their_union() {
        let d = split();
        let things = root_maps(&d, "things").unwrap();
        assert_eq!(things.len(), 2, "both objects survive the merge");
        assert_eq!(d.get_all(ROOT, "things").unwrap().len(), 2);
        let keys: Vec<String> = records(&d, &things)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["from a", "from b", "k"]);
        // `k` exists in both: the winner's value reads, both are listed.
        let k = maps_at(&d, &things, "k").unwrap();
        assert_eq!(k.len(), 2);
        let (winner, _) = d.get(ROOT, "things").unwrap().unwrap();
        assert!(matches!(winner, Value::Object(ObjType::Map)));
        let seen = scalar_at(&d, &k, "field").unwrap().unwrap();
        assert_eq!(all_values_at(&d, &k, "field").unwrap().len(), 2);
        assert!(matches!(&seen, Scalar::Str(s) if s == "from b" || s == "from a"));
    }

    #[test]
    fn a_write_supersedes_every_value_it_has_seen() {
        let mut d = split();
        let things = root_maps(&d, "things").unwrap();
        let k = maps_at(&d, &things, "k").unwrap();
        put_field(&mut d, &k, "field", &Scalar::Str("picked".into())).unwrap();
        let values = all_values_at(&d, &k, "field").unwrap();
        assert_eq!(values.len(), 2, "one per object");
        assert!(values
            .iter()
            .all(|(v, _)| Scalar::from_value(v) == Some(Scalar::Str("picked".into()))));
        // Writing what readers already see changes nothing.
        let heads = d.get_heads();
        put_field(&mut d, &k, "field", &Scalar::Str("picked".into())).unwrap();
        d.commit();
        assert_eq!(d.get_heads(), heads);
    }

    #[test]
    fn a_scalar_where_a_map_belongs_is_malformed() {
        let mut d = doc(1);
        d.put(ROOT, "things", "oops").unwrap();
        assert!(matches!(
            root_maps(&d, "things"),
            Err(LayoutError::Malformed { .. })
        ));
    }

    #[test]
    fn batch_created_records_read_like_field_by_field_ones() {
        let mut batch = doc(1);
        let mut single = doc(1);
        let fields = || {
            vec![
                ("name", Scalar::Str("王".into())),
                ("n", Scalar::Uint(7)),
                ("ok", Scalar::Bool(true)),
                ("deleted", Scalar::Bool(false)),
                ("empty", Scalar::Str(String::new())),
            ]
        };
        let mut record = NewRecord::new(fields());
        record.children = vec![("sub", vec![("s1".into(), NewRecord::new(fields()))])];
        record.flags = vec![("members", vec![("m1".into(), Scalar::Bool(true))])];
        let coll = maps_for_write(&mut batch, &[ROOT], "c").unwrap();
        create_record(&mut batch, &coll, "r", record).unwrap();

        let coll = maps_for_write(&mut single, &[ROOT], "c").unwrap();
        let r = maps_for_write(&mut single, &coll, "r").unwrap();
        let sub = maps_for_write(&mut single, &r, "sub").unwrap();
        let s1 = maps_for_write(&mut single, &sub, "s1").unwrap();
        let members = maps_for_write(&mut single, &r, "members").unwrap();
        put_field(&mut single, &members, "m1", &Scalar::Bool(true)).unwrap();
        for (key, value) in fields() {
            put_field(&mut single, &r, key, &value).unwrap();
            put_field(&mut single, &s1, key, &value).unwrap();
        }
        assert_eq!(
            batch.hydrate(ROOT, None).unwrap(),
            single.hydrate(ROOT, None).unwrap()
        );
        // Negative space: a different value is told apart.
        put_field(&mut single, &s1, "n", &Scalar::Uint(8)).unwrap();
        assert_ne!(
            batch.hydrate(ROOT, None).unwrap(),
            single.hydrate(ROOT, None).unwrap()
        );
    }
}
