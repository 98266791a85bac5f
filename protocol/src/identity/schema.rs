//! Schema versioning of documents.
//!
//! Every document's root holds a map `meta` with `schema` ("MAJOR.MINOR"),
//! `id`, `owner` and `kind`. A minor bump only adds optional fields, which
//! older nodes ignore; a major bump changes meaning, so a node refuses (with
//! a clear error, never a guess) a document whose major version is newer than
//! it understands.

use automerge::{ReadDoc, ScalarValue, Value, ROOT};

pub const SCHEMA_MAJOR: u64 = 1;
pub const SCHEMA_MINOR: u64 = 0;
pub const META_KEY: &str = "meta";
pub const SCHEMA_KEY: &str = "schema";

/// The schema string written into new documents.
pub fn current_schema() -> String {
    format!("{SCHEMA_MAJOR}.{SCHEMA_MINOR}")
}

/// The schema string a document declares, if any (an empty document, e.g.
/// one not yet synced, declares none).
pub fn declared_schema<D: ReadDoc>(doc: &D) -> Option<String> {
    let (_, meta) = doc.get(ROOT, META_KEY).ok()??;
    let (value, _) = doc.get(&meta, SCHEMA_KEY).ok()??;
    match value {
        Value::Scalar(scalar) => match scalar.as_ref() {
            ScalarValue::Str(text) => Some(text.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// `Err(found)` when the document declares a major version newer than ours,
/// or a schema string that does not parse.
pub fn check_supported<D: ReadDoc>(doc: &D) -> Result<(), String> {
    match declared_schema(doc) {
        None => Ok(()),
        Some(found) => {
            let major = found.split('.').next().and_then(|m| m.parse::<u64>().ok());
            match major {
                Some(major) if major <= SCHEMA_MAJOR => Ok(()),
                _ => Err(found),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ObjType};

    fn doc_with_schema(schema: &str) -> AutoCommit {
        let mut doc = AutoCommit::new();
        let meta = doc.put_object(ROOT, META_KEY, ObjType::Map).unwrap();
        doc.put(&meta, SCHEMA_KEY, schema).unwrap();
        doc
    }

    #[test]
    fn newer_major_is_refused_older_and_minor_are_fine() {
        assert_eq!(check_supported(&doc_with_schema("1.0")), Ok(()));
        assert_eq!(check_supported(&doc_with_schema("1.7")), Ok(()));
        assert_eq!(check_supported(&doc_with_schema("0.9")), Ok(()));
        assert_eq!(
            check_supported(&doc_with_schema("2.0")),
            Err("2.0".to_string())
        );
        assert_eq!(
            check_supported(&doc_with_schema("garbage")),
            Err("garbage".to_string())
        );
        assert_eq!(check_supported(&AutoCommit::new()), Ok(()));
    }
}
