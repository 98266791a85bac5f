//! A moved document's contribution from its new changes alone.
//!
//! A county reads again every roster and activities document that moved
//! since its last look, and most moves add or correct one record of the
//! hundreds a document holds. The new changes name the records they touch:
//! every operation's object hangs under one record of one collection (or
//! outside the collections the figures read, such as points entries). Each
//! touched record is read as it was at the heads the contribution was
//! computed at and as it is now, and the contribution moves by the
//! difference of the two shares. That is a few map look-ups per touched
//! record against a pass over every operation of the document.
//!
//! Invariants:
//!
//! - **The result equals a whole read** ([`Contribution::of`]) of the
//!   document now. A record is read as the scan reads it (`read_record`),
//!   and its share is the whole fold over that record alone; the figures
//!   are sums over records, so replacing shares is exact. The property test
//!   below holds it to whole reads over random edits from two offices.
//! - **Whatever the scan would not read on its own falls back** to a whole
//!   read (`None`): a collection created or replaced, several values where
//!   a record, its nested map or a nested record belongs (concurrent
//!   creations, read by the layout as a union), a share that does not read
//!   or was never counted, more operations than [`DELTA_OPERATIONS_MAX`]
//!   or more objects already held written into than
//!   [`DELTA_PATH_LOOKUPS_MAX`].
//!   The whole read then also words any error.
//! - Orders documents and documents without figures are always read whole
//!   (small, or nothing to read).

use super::contribution::{
    activity_share, team_share, volunteer_share, Contribution, ACTIVITIES_SHAPE, ROSTER_SHAPE,
};
use super::scan::{read_record, CollectionShape, ScannedRecord};
use crate::identity::document_id::{DocumentId, DocumentKind};
use automerge::{legacy, ActorId, Change, ChangeHash, ObjId, ObjType, Prop, ReadDoc, Value, ROOT};
use std::collections::{BTreeSet, HashMap};

/// New operations above which a moved document is read whole: a cold sync
/// or a bulk import rewrites most records, and decoding that many changes
/// costs more than one pass over the document.
pub const DELTA_OPERATIONS_MAX: usize = 2_000;

/// Objects already held that the new changes write into, above which a
/// moved document is read whole: each costs Automerge a walk to the root
/// (about 9 µs), so a correction of every service record of a month is
/// cheaper read in one pass.
pub const DELTA_PATH_LOOKUPS_MAX: usize = 128;

/// Where an object met in the new changes hangs.
#[derive(Clone)]
enum Place {
    /// Outside every collection the figures read.
    Elsewhere,
    /// The collection map itself: an operation's key names the record.
    Collection(usize),
    /// Under one record of a collection.
    InRecord(usize, String),
}

/// `old` (computed at `read_at`) moved by `changes`, the document's changes
/// since `read_at`; `doc` holds them. `None`: read the document whole.
pub fn contribution_after<D: ReadDoc>(
    id: &DocumentId,
    doc: &D,
    old: &Contribution,
    read_at: &[ChangeHash],
    changes: &[Change],
) -> Option<Contribution> {
    let shapes: &[CollectionShape] = match (&id.kind, old) {
        (DocumentKind::Activities(_), Contribution::Activities(_)) => &ACTIVITIES_SHAPE,
        (DocumentKind::Roster, Contribution::Roster(_)) => &ROSTER_SHAPE,
        _ => return None,
    };
    let touched = touched_records(doc, shapes, changes)?;
    if touched.is_empty() {
        return Some(old.clone());
    }
    // Only collections holding a touched record are looked at, at both heads.
    let mut collections: Vec<Option<ObjId>> = vec![None; shapes.len()];
    for c in touched.iter().map(|(c, _)| *c).collect::<BTreeSet<usize>>() {
        collections[c] = collection_kept(doc, shapes[c].name, read_at)?;
    }
    let mut before = Vec::with_capacity(touched.len());
    let mut after = Vec::with_capacity(touched.len());
    for (c, key) in &touched {
        // A collection absent now holds no touched record: one was created
        // or replaced, which `touched_records` already refused.
        let collection = collections[*c].as_ref()?;
        let shape = &shapes[*c];
        before.push((*c, read_record(doc, collection, key, shape, Some(read_at))?));
        after.push((*c, read_record(doc, collection, key, shape, None)?));
    }
    match old {
        Contribution::Activities(old) => {
            let shares = |records: Vec<(usize, Option<ScannedRecord>)>| {
                records
                    .into_iter()
                    .filter_map(|(_, record)| record)
                    .map(|record| activity_share(&old.station, old.month, record).ok())
                    .collect::<Option<Vec<_>>>()
            };
            let moved = old.moved(&shares(before)?, &shares(after)?)?;
            Some(Contribution::Activities(moved))
        }
        Contribution::Roster(old) => {
            let shares = |records: Vec<(usize, Option<ScannedRecord>)>| {
                records
                    .into_iter()
                    .filter_map(|(c, record)| record.map(|record| (c, record)))
                    .map(|(c, record)| {
                        let share = if c == 0 {
                            volunteer_share(&old.station, record)
                        } else {
                            team_share(&old.station, record)
                        };
                        share.ok()
                    })
                    .collect::<Option<Vec<_>>>()
            };
            let moved = old.moved(&shares(before)?, &shares(after)?)?;
            Some(Contribution::Roster(moved))
        }
        _ => None,
    }
}

/// The collection map at `name`, the same object now and at `read_at`
/// (absent at both is `None` inside); `None` when it was replaced or is
/// split by concurrent creations.
fn collection_kept<D: ReadDoc>(
    doc: &D,
    name: &str,
    read_at: &[ChangeHash],
) -> Option<Option<ObjId>> {
    let now = doc.get_all(ROOT, name).ok()?;
    let then = doc.get_all_at(ROOT, name, read_at).ok()?;
    match (now.as_slice(), then.as_slice()) {
        ([], []) => Some(None),
        ([(Value::Object(ObjType::Map), now)], [])
        | ([(Value::Object(ObjType::Map), now)], [(Value::Object(ObjType::Map), _)]) => {
            match then.first() {
                Some((_, then)) if then != now => None,
                _ => Some(Some(now.clone())),
            }
        }
        _ => None,
    }
}

/// The records `changes` write into, by collection and key; `None` when a
/// change writes a collection itself at the root, or too much.
fn touched_records<D: ReadDoc>(
    doc: &D,
    shapes: &[CollectionShape],
    changes: &[Change],
) -> Option<BTreeSet<(usize, String)>> {
    let operations: usize = changes.iter().map(Change::len).sum();
    if operations > DELTA_OPERATIONS_MAX {
        return None;
    }
    let mut touched = BTreeSet::new();
    let mut places: HashMap<(u64, ActorId), Place> = HashMap::new();
    // Objects the changes made, placed without a look-up.
    let mut made = 0usize;
    for change in changes {
        let change = change.decode();
        for (n, op) in change.operations.iter().enumerate() {
            let place = match &op.obj {
                legacy::ObjectId::Root => {
                    let writes_a_collection = matches!(
                        &op.key,
                        legacy::Key::Map(key) if shapes.iter().any(|s| s.name == key.as_str())
                    );
                    if writes_a_collection {
                        return None;
                    }
                    Place::Elsewhere
                }
                legacy::ObjectId::Id(legacy::OpId(counter, actor)) => {
                    match places.get(&(*counter, actor.clone())) {
                        Some(place) => place.clone(),
                        None => {
                            if places.len() >= DELTA_PATH_LOOKUPS_MAX + made {
                                return None;
                            }
                            let place = place_of(doc, shapes, *counter, actor)?;
                            places.insert((*counter, actor.clone()), place.clone());
                            place
                        }
                    }
                }
            };
            let record = match place {
                Place::Elsewhere => None,
                Place::Collection(c) => match &op.key {
                    legacy::Key::Map(key) => Some((c, key.to_string())),
                    legacy::Key::Seq(_) => return None,
                },
                Place::InRecord(c, key) => Some((c, key)),
            };
            // An object made here hangs where its operation wrote: known
            // without asking the document for its path (a new activity's
            // record, service records and their maps are one change).
            if let legacy::OpType::Make(_) = op.action {
                let made_here = (change.start_op.get() + n as u64, change.actor_id.clone());
                let place = match &record {
                    Some((c, key)) => Place::InRecord(*c, key.clone()),
                    None => Place::Elsewhere,
                };
                places.insert(made_here, place);
                made += 1;
            }
            if let Some(record) = record {
                touched.insert(record);
            }
        }
    }
    Some(touched)
}

/// Where the object made by operation `counter@actor` hangs, from its path
/// to the root (fixed when the object was made, whatever won since).
fn place_of<D: ReadDoc>(
    doc: &D,
    shapes: &[CollectionShape],
    counter: u64,
    actor: &ActorId,
) -> Option<Place> {
    // The actor's index in this document is not known here; Automerge looks
    // the actor up when the index given does not match.
    let object = ObjId::Id(counter, actor.clone(), usize::MAX);
    let path = doc.parents(&object).ok()?.path();
    let Some((_, Prop::Map(top))) = path.first() else {
        return Some(Place::Elsewhere);
    };
    let Some(c) = shapes.iter().position(|shape| shape.name == top.as_str()) else {
        return Some(Place::Elsewhere);
    };
    match path.get(1) {
        None => Some(Place::Collection(c)),
        Some((_, Prop::Map(key))) => Some(Place::InRecord(c, key.clone())),
        Some((_, Prop::Seq(_))) => None,
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
