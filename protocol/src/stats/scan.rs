//! One unit with `contribution.rs`: the one-pass read of a document into
//! the `Fields` a contribution is computed from.
//!
//! One sequential pass over a whole document, collecting the fields the
//! contributions need: the fast path of a statistics rebuild.
//!
//! Reading record by record (`map_range` on each record map) makes
//! Automerge seek each object's operations anew; a county rebuild reads
//! ~300,000 record maps, and those seeks were most of its cost. The
//! document iterator (`ReadDoc::iter`) decodes every operation once, in
//! object creation order — a parent before its children — so a record's
//! map is known (from the parent's entry) before its own fields arrive.
//!
//! The scan only handles documents where every collection, record and
//! nested map is a single Automerge object. Where concurrent creations left
//! several objects under one key (a conflict on a map entry), the layout
//! reads their union in a priority order; rather than repeat that here the
//! scan gives up (`None`) and the caller reads the document the record-by-
//! record way, which follows the layout. Fields are converted as
//! `read_fields` does, so both paths give equal records.

use super::contribution::{Field, Fields};
use automerge::iter::DocItem;
use automerge::{ChangeHash, ObjId, ObjType, ReadDoc, ScalarValueRef, Value, ValueRef, ROOT};
use std::collections::HashMap;
use std::sync::Arc;

/// What to read of one collection at the document's root.
pub(crate) struct CollectionShape {
    pub name: &'static str,
    pub fields: &'static [&'static str],
    /// A map field of each record holding records of its own (an
    /// activity's service records), and the fields read from those.
    pub nested: Option<(&'static str, &'static [&'static str])>,
}

/// One record's wanted fields and, with a nested shape, its nested records.
#[derive(Default)]
pub(crate) struct ScannedRecord {
    pub fields: Fields,
    pub nested: Vec<Fields>,
}

/// Where a map object met by the scan hangs.
#[derive(Clone, Copy)]
enum Place {
    Root,
    Collection(usize),
    Record(usize, usize),
    Nested(usize, usize),
    NestedRecord(usize, usize, usize),
}

/// The records of each collection in `shapes` (in scan order, not key
/// order), or `None` when the document has a conflict on a map entry where
/// a map belongs, or a non-map there: the caller then reads it the slow way,
/// which also words any error.
pub(crate) fn scan<D: ReadDoc>(
    doc: &D,
    shapes: &[CollectionShape],
) -> Option<Vec<Vec<ScannedRecord>>> {
    let mut out: Vec<Vec<ScannedRecord>> = shapes.iter().map(|_| Vec::new()).collect();
    let mut places: HashMap<ObjId, Place> = HashMap::new();
    let mut current: Option<(Arc<ObjId>, Option<Place>)> = None;
    for item in doc.iter() {
        let DocItem::Map(entry) = item.item else {
            continue;
        };
        let place = match &current {
            Some((obj, place)) if Arc::ptr_eq(obj, &item.obj) => *place,
            _ => {
                let place = if *item.obj == ROOT {
                    Some(Place::Root)
                } else {
                    places.get(&*item.obj).copied()
                };
                current = Some((item.obj.clone(), place));
                place
            }
        };
        // Objects nothing here reads (meta, digests, team members), or no
        // longer reachable from the root.
        let Some(place) = place else { continue };
        let is_map = matches!(entry.value, ValueRef::Object(ObjType::Map));
        match place {
            Place::Root => {
                if let Some(c) = shapes.iter().position(|s| s.name == entry.key) {
                    if entry.conflict || !is_map {
                        return None;
                    }
                    places.insert(entry.id(), Place::Collection(c));
                }
            }
            Place::Collection(c) => {
                if entry.conflict {
                    return None;
                }
                // As `record_maps`: entries that are not maps are not records.
                if is_map {
                    places.insert(entry.id(), Place::Record(c, out[c].len()));
                    out[c].push(ScannedRecord::default());
                }
            }
            Place::Record(c, r) => {
                let shape = &shapes[c];
                if let Some((nested_name, _)) = shape.nested {
                    if entry.key == nested_name {
                        if entry.conflict || !is_map {
                            return None;
                        }
                        places.insert(entry.id(), Place::Nested(c, r));
                        out[c][r]
                            .fields
                            .push((nested_name, Field::Map(vec![entry.id()])));
                        continue;
                    }
                }
                if let Some(name) = shape.fields.iter().find(|f| **f == entry.key) {
                    if let Some(field) = field_of(&entry.value, &entry) {
                        out[c][r].fields.push((name, field));
                    }
                }
            }
            Place::Nested(c, r) => {
                if entry.conflict {
                    return None;
                }
                if is_map {
                    let nested = &mut out[c][r].nested;
                    places.insert(entry.id(), Place::NestedRecord(c, r, nested.len()));
                    nested.push(Vec::new());
                }
            }
            Place::NestedRecord(c, r, n) => {
                let wanted = shapes[c].nested.map_or(&[][..], |(_, fields)| fields);
                if let Some(name) = wanted.iter().find(|f| **f == entry.key) {
                    if let Some(field) = field_of(&entry.value, &entry) {
                        out[c][r].nested[n].push((name, field));
                    }
                }
            }
        }
    }
    Some(out)
}

/// The record at `key` of `collection`, read as [`scan`] reads it: now, or
/// as it was at `heads`. `Some(None)` where no record is (no entry, or not
/// a map), `None` where the scan would give up: several values at the key,
/// or at the record's nested map or at one of its nested records.
pub(crate) fn read_record<D: ReadDoc>(
    doc: &D,
    collection: &ObjId,
    key: &str,
    shape: &CollectionShape,
    heads: Option<&[ChangeHash]>,
) -> Option<Option<ScannedRecord>> {
    let entries = match heads {
        None => doc.get_all(collection, key),
        Some(heads) => doc.get_all_at(collection, key, heads),
    }
    .ok()?;
    let record = match entries.as_slice() {
        [] => return Some(None),
        [(Value::Object(ObjType::Map), id)] => id.clone(),
        [_] => return Some(None),
        _ => return None,
    };
    let range = |obj: &ObjId| match heads {
        None => doc.map_range(obj, ..),
        Some(heads) => doc.map_range_at(obj, .., heads),
    };
    let mut read = ScannedRecord::default();
    for entry in range(&record) {
        let is_map = matches!(entry.value, ValueRef::Object(ObjType::Map));
        if let Some((nested_name, wanted)) = shape.nested {
            if entry.key == nested_name {
                if entry.conflict || !is_map {
                    return None;
                }
                let nested = entry.id();
                read.fields
                    .push((nested_name, Field::Map(vec![nested.clone()])));
                for item in range(&nested) {
                    if item.conflict {
                        return None;
                    }
                    if !matches!(item.value, ValueRef::Object(ObjType::Map)) {
                        continue;
                    }
                    let mut fields = Vec::new();
                    for field in range(&item.id()) {
                        if let Some(name) = wanted.iter().find(|f| **f == field.key) {
                            if let Some(value) = field_of(&field.value, &field) {
                                fields.push((*name, value));
                            }
                        }
                    }
                    read.nested.push(fields);
                }
                continue;
            }
        }
        if let Some(name) = shape.fields.iter().find(|f| **f == entry.key) {
            if let Some(value) = field_of(&entry.value, &entry) {
                read.fields.push((*name, value));
            }
        }
    }
    Some(Some(read))
}

/// A field's value as `read_fields` converts it; `None` reads as absent.
fn field_of(value: &ValueRef<'_>, entry: &automerge::iter::MapRangeItem<'_>) -> Option<Field> {
    Some(match value {
        ValueRef::Scalar(ScalarValueRef::Str(text)) => Field::Text(text.to_string()),
        ValueRef::Scalar(ScalarValueRef::Uint(n)) => Field::Count(*n),
        ValueRef::Scalar(ScalarValueRef::Int(n)) if *n >= 0 => Field::Count(*n as u64),
        ValueRef::Scalar(ScalarValueRef::Boolean(b)) => Field::Flag(*b),
        ValueRef::Object(ObjType::Map) => Field::Map(vec![entry.id()]),
        ValueRef::Scalar(_) => return None,
        _ => Field::Other,
    })
}

#[cfg(test)]
mod tests {
    //! The scan against the record-by-record reader: equal contributions on
    //! plain documents, and a fallback wherever concurrent creations split
    //! a map (the union the layout reads).

    use super::super::contribution::{
        activities_by_record, activities_scanned, roster_by_record, roster_scanned,
    };
    use super::super::{recompute_from_scratch, StatsIndex};
    use crate::domain::model::{
        Activity, Category, Form, Hours, RecordId, ServiceRecord, Sex, Team, Volunteer,
    };
    use crate::identity::actor::actor_for;
    use crate::identity::document_id::{DocumentId, Month};
    use crate::identity::station::StationId;
    use crate::layout::{delete_activity, init_document, put_activity, put_team, put_volunteer};
    use automerge::AutoCommit;
    use time::macros::date;

    fn station(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    fn rid(text: &str) -> RecordId {
        RecordId::parse("id", text).unwrap()
    }

    fn november() -> Month {
        Month::new(2026, 11).unwrap()
    }

    fn activity(id: &str, served: &[(&str, u32)]) -> Activity {
        Activity {
            id: rid(id),
            name: "活动".into(),
            date: date!(2026 - 11 - 05),
            station: station("xh/t1/v1"),
            place: "广场".into(),
            content: "内容".into(),
            form: Form::ALL[id.len() % Form::ALL.len()],
            category: Category::ALL[served.len() % Category::ALL.len()],
            team: None,
            person_in_charge: "李明".into(),
            beneficiaries: 12,
            theme: None,
            recorded_on: date!(2026 - 11 - 05),
            late: false,
            deleted: false,
            records: served
                .iter()
                .map(|(v, centi)| ServiceRecord {
                    volunteer: rid(v),
                    home_station: None,
                    hours: Hours { centi: *centi },
                    recorded_on: date!(2026 - 11 - 05),
                    late: false,
                    deleted: false,
                })
                .collect(),
        }
    }

    fn volunteer(number: &str) -> Volunteer {
        Volunteer {
            number: rid(number),
            name: "志愿者".into(),
            sex: Sex::Female,
            birth_date: date!(1985 - 02 - 03),
            residence_area: String::new(),
            phone: String::new(),
            phone_seals: Default::default(),
            id_digest: String::new(),
            id_sealed: String::new(),
            id_masked: String::new(),
            skills: vec![],
            categories: vec![],
            home_station: station("xh/t1/v1"),
            registered_on: date!(2026 - 04 - 01),
            consent: true,
            party_member: false,
            deleted: false,
        }
    }

    fn doc(id: &DocumentId, writer: &str, incarnation: u64) -> AutoCommit {
        let mut doc = AutoCommit::new().with_actor(actor_for(&station(writer), incarnation));
        init_document(&mut doc, id).unwrap();
        doc
    }

    #[test]
    fn a_plain_document_is_scanned_and_read_alike() {
        let id = DocumentId::activities(&station("xh/t1/v1"), november());
        let mut d = doc(&id, "xh/t1/v1", 1);
        put_activity(&mut d, &activity("A1", &[("N1", 150), ("N2", 200)])).unwrap();
        put_activity(&mut d, &activity("A22", &[("N1", 50)])).unwrap();
        put_activity(&mut d, &activity("A3", &[("N3", 100)])).unwrap();
        delete_activity(&mut d, &rid("A3")).unwrap();
        d.commit();
        let v1 = station("xh/t1/v1");
        let fast = activities_scanned(&v1, november(), &d).expect("no split maps");
        assert_eq!(
            fast.unwrap(),
            activities_by_record(&v1, november(), &d).unwrap()
        );

        let roster_id = DocumentId::roster(&v1);
        let mut r = doc(&roster_id, "xh/t1/v1", 1);
        put_volunteer(&mut r, &volunteer("N1")).unwrap();
        put_volunteer(&mut r, &volunteer("N2")).unwrap();
        let team = Team {
            id: rid("T1"),
            name: "队".into(),
            category: Category::ALL[0],
            station: v1.clone(),
            parent: None,
            leader: None,
            members: vec![rid("N1")],
            deleted: false,
        };
        put_team(&mut r, &team).unwrap();
        r.commit();
        let fast = roster_scanned(&v1, &r).expect("no split maps").unwrap();
        assert_eq!(fast, roster_by_record(&v1, &r).unwrap());
        assert_eq!((fast.volunteers.len(), fast.teams), (2, 1));
    }

    #[test]
    fn a_collection_created_twice_while_apart_is_read_as_the_union() {
        let v1 = station("xh/t1/v1");
        let id = DocumentId::activities(&v1, november());
        // The village and its township each record the month's first
        // activity while apart: two `activities` maps under one key.
        let mut village = doc(&id, "xh/t1/v1", 1);
        put_activity(&mut village, &activity("A1", &[("N1", 150)])).unwrap();
        village.commit();
        let mut township = doc(&id, "xh/t1", 1);
        put_activity(&mut township, &activity("B1", &[("N2", 250)])).unwrap();
        township.commit();
        village.merge(&mut township).unwrap();
        assert!(
            activities_scanned(&v1, november(), &village).is_none(),
            "the scan leaves split maps to the layout's reader"
        );
        let index = StatsIndex::from_documents([(&id, &village)]);
        assert!(index.unreadable().is_empty());
        let figures = index.station_month(&v1, november());
        assert_eq!(figures.counts.activities, 2, "both activities count");
        assert_eq!(figures.counts.hours_centi, 400);
        assert_eq!(
            index.statistics(),
            recompute_from_scratch([(&id, &village)]).unwrap()
        );
    }

    #[test]
    fn a_malformed_record_is_named_by_the_record_by_record_reader() {
        use automerge::transaction::Transactable;
        use automerge::{ReadDoc, ROOT};
        let v1 = station("xh/t1/v1");
        let id = DocumentId::activities(&v1, november());
        let mut d = doc(&id, "xh/t1/v1", 1);
        put_activity(&mut d, &activity("A1", &[("N1", 150)])).unwrap();
        let (_, all) = d.get(ROOT, crate::layout::ACTIVITIES).unwrap().unwrap();
        let (_, a1) = d.get(&all, "A1").unwrap().unwrap();
        d.put(&a1, "category", "no such category").unwrap();
        d.commit();
        let error = super::super::Contribution::of(&id, &d).unwrap_err();
        assert!(
            error.to_string().contains("activities.A1.category"),
            "{error}"
        );
    }
}
