//! A canonical rendering of a document's materialised state.
//!
//! Convergence needs "equal heads give identical state". `save()` bytes
//! depend on the order changes arrived in, so we compare a rendering that
//! does not: every map with its keys sorted, and at every key *all*
//! concurrent values (sorted), not only the winner, so two replicas that
//! agree on the winner but not on the losing values are still told apart.

use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, Value, ROOT};

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
            let mut keys: Vec<String> = doc.keys(obj).collect();
            keys.sort();
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).unwrap_or_default());
                out.push(':');
                let values = doc.get_all(obj, key.as_str()).unwrap_or_default();
                render_values(doc, values, depth, out);
            }
            out.push('}');
        }
        ObjType::List | ObjType::Text => {
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
