//! A canonical rendering of a document's materialised state.
//!
//! Convergence needs "equal heads give identical state". `save()` bytes
//! depend on the order changes arrived in, so we compare a rendering that
//! does not: every map with its keys sorted, and at every key *all*
//! concurrent values (sorted), not only the winner, so two replicas that
//! agree on the winner but not on the losing values are still told apart.
//!
//! Maps and lists are read in one pass each (`map_range`, `list_range`),
//! which says of every key whether its value is in conflict; only those
//! keys are read again for all their values. Looking every key up on its
//! own (`get_all`) seeks through the object each time, and the convergence
//! checker renders every copy of every document in the county.

use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, Value, ValueRef, ROOT};

/// Deepest nesting we render; our layout nests four levels.
const DEPTH_MAX: usize = 16;

pub fn render(doc: &AutoCommit) -> String {
    let mut out = String::new();
    render_object(doc, &ROOT, ObjType::Map, 0, &mut out);
    out
}

fn render_object(doc: &AutoCommit, obj: &ObjId, kind: ObjType, depth: usize, out: &mut String) {
    if depth > DEPTH_MAX {
        out.push_str("\"…\"");
        return;
    }
    match kind {
        ObjType::Map | ObjType::Table => {
            out.push('{');
            let mut entries: Vec<(String, Option<(Value<'static>, ObjId)>)> = doc
                .map_range(obj, ..)
                .map(|item| {
                    // A key in conflict is read again for all its values.
                    let id = object_id(&item.value, || item.id());
                    let single = (!item.conflict).then(|| (item.value.into_value(), id));
                    (item.key.into_owned(), single)
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (i, (key, single)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(&key).unwrap_or_default());
                out.push(':');
                let values = match single {
                    Some(value) => vec![value],
                    None => doc.get_all(obj, key.as_str()).unwrap_or_default(),
                };
                render_values(doc, values, depth, out);
            }
            out.push('}');
        }
        ObjType::List => {
            out.push('[');
            let items: Vec<(usize, Option<(Value<'static>, ObjId)>)> = doc
                .list_range(obj, ..)
                .map(|item| {
                    let id = object_id(&item.value, || item.id());
                    let single = (!item.conflict).then(|| (item.value.into_value(), id));
                    (item.index, single)
                })
                .collect();
            for (i, (index, single)) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let values = match single {
                    Some(value) => vec![value],
                    None => doc.get_all(obj, index).unwrap_or_default(),
                };
                render_values(doc, values, depth, out);
            }
            out.push(']');
        }
        ObjType::Text => {
            out.push('[');
            for index in 0..doc.length(obj) {
                if index > 0 {
                    out.push(',');
                }
                let values = doc.get_all(obj, index).unwrap_or_default();
                render_values(doc, values, depth, out);
            }
            out.push(']');
        }
    }
}

/// The id of the object a value is (a scalar's id is never read, so none
/// is made for it).
fn object_id(value: &ValueRef<'_>, id: impl FnOnce() -> ObjId) -> ObjId {
    match value {
        ValueRef::Object(_) => id(),
        ValueRef::Scalar(_) => ROOT,
    }
}

fn render_values(
    doc: &AutoCommit,
    values: Vec<(Value<'_>, ObjId)>,
    depth: usize,
    out: &mut String,
) {
    let mut rendered: Vec<String> = values
        .into_iter()
        .map(|(value, id)| {
            let mut one = String::new();
            match value {
                Value::Object(kind) => render_object(doc, &id, kind, depth + 1, &mut one),
                Value::Scalar(scalar) => {
                    one.push_str(&serde_json::to_string(&scalar.to_string()).unwrap_or_default())
                }
            }
            one
        })
        .collect();
    rendered.sort();
    if rendered.len() == 1 {
        out.push_str(&rendered[0]);
    } else {
        out.push_str("{\"conflict\":[");
        out.push_str(&rendered.join(","));
        out.push_str("]}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    /// The rendering as it was first written: every key looked up on its
    /// own. The one-pass rendering must say exactly the same.
    fn render_by_lookup(doc: &AutoCommit) -> String {
        fn object(doc: &AutoCommit, obj: &ObjId, kind: ObjType, depth: usize, out: &mut String) {
            if depth > DEPTH_MAX {
                out.push_str("\"…\"");
                return;
            }
            match kind {
                ObjType::Map | ObjType::Table => {
                    out.push('{');
                    let mut keys: Vec<String> = doc.keys(obj).collect();
                    keys.sort();
                    for (i, key) in keys.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&serde_json::to_string(key).unwrap_or_default());
                        out.push(':');
                        values(doc, doc.get_all(obj, key.as_str()).unwrap(), depth, out);
                    }
                    out.push('}');
                }
                ObjType::List | ObjType::Text => {
                    out.push('[');
                    for index in 0..doc.length(obj) {
                        if index > 0 {
                            out.push(',');
                        }
                        values(doc, doc.get_all(obj, index).unwrap(), depth, out);
                    }
                    out.push(']');
                }
            }
        }
        fn values(doc: &AutoCommit, all: Vec<(Value<'_>, ObjId)>, depth: usize, out: &mut String) {
            let mut rendered: Vec<String> = all
                .into_iter()
                .map(|(value, id)| {
                    let mut one = String::new();
                    match value {
                        Value::Object(kind) => object(doc, &id, kind, depth + 1, &mut one),
                        Value::Scalar(s) => {
                            one.push_str(&serde_json::to_string(&s.to_string()).unwrap())
                        }
                    }
                    one
                })
                .collect();
            rendered.sort();
            if rendered.len() == 1 {
                out.push_str(&rendered[0]);
            } else {
                out.push_str("{\"conflict\":[");
                out.push_str(&rendered.join(","));
                out.push_str("]}");
            }
        }
        let mut out = String::new();
        object(doc, &ROOT, ObjType::Map, 0, &mut out);
        out
    }

    proptest::proptest! {
        /// Three replicas write scalars, maps and lists under a few shared
        /// keys and merge in any order: conflicts at every level, nested
        /// objects created concurrently, deletions. Both renderings agree.
        #[test]
        fn one_pass_rendering_equals_looking_every_key_up(
            steps in proptest::collection::vec((0usize..3, 0u8..6, 0usize..4, 0i64..5), 1..60)
        ) {
            use automerge::ObjType as Kind;
            let mut first = AutoCommit::new();
            let docs_forked = [first.fork(), first.fork()];
            let mut docs = vec![first];
            docs.extend(docs_forked);
            let keys = ["a", "b", "c", "d"];
            for (at, action, key, value) in steps {
                let key = keys[key];
                match action {
                    0 => { docs[at].put(ROOT, key, value).unwrap(); }
                    1 => {
                        let map = docs[at].put_object(ROOT, key, Kind::Map).unwrap();
                        docs[at].put(&map, "x", value).unwrap();
                    }
                    2 => {
                        let list = docs[at].put_object(ROOT, key, Kind::List).unwrap();
                        docs[at].insert(&list, 0, value).unwrap();
                        docs[at].insert(&list, 1, format!("v{value}")).unwrap();
                    }
                    3 => {
                        // Write into whatever object the key holds here.
                        match docs[at].get(ROOT, key).unwrap() {
                            Some((Value::Object(Kind::Map), map)) => {
                                docs[at].put(&map, "y", value).unwrap();
                            }
                            Some((Value::Object(Kind::List), list)) => {
                                let len = docs[at].length(&list);
                                docs[at].put(&list, len.saturating_sub(1), value).unwrap_or(());
                            }
                            _ => { docs[at].delete(ROOT, key).unwrap_or(()); }
                        }
                    }
                    _ => {
                        let other = (at + 1 + action as usize % 2) % 3;
                        let mut from = docs[other].clone();
                        docs[at].merge(&mut from).unwrap();
                    }
                }
                docs[at].commit();
                let doc = &docs[at];
                proptest::prop_assert_eq!(render(doc), render_by_lookup(doc));
            }
            for doc in &docs {
                proptest::prop_assert_eq!(render(doc), render_by_lookup(doc));
            }
        }
    }

    #[test]
    fn order_of_arrival_does_not_matter_but_content_does() {
        let mut a = AutoCommit::new();
        a.put(ROOT, "x", "1").unwrap();
        let mut b = a.fork();
        a.put(ROOT, "y", "a").unwrap();
        b.put(ROOT, "y", "b").unwrap();
        let mut ab = a.clone();
        ab.merge(&mut b).unwrap();
        let mut ba = b.clone();
        ba.merge(&mut a).unwrap();
        assert_eq!(render(&ab), render(&ba));
        assert!(render(&ab).contains("conflict"));
        assert_ne!(render(&a), render(&ab));
    }
}
