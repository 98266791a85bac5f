//! `docs/reference.md` lists what the code accepts: every import column
//! with all its header names and whether it is required, and every entry of
//! every vocabulary in both languages. Read from the code here, so an entry
//! added to the code and not to the document fails this test, naming the
//! line to add.

use civsync_protocol::domain::model::vocabularies;
use civsync_protocol::Tier;

const REFERENCE: &str = include_str!("../../../docs/reference.md");

/// The expected lines (or line beginnings) the document lacks.
fn missing(expected: Vec<String>) -> Vec<String> {
    expected
        .into_iter()
        .filter(|wanted| {
            !REFERENCE
                .lines()
                .any(|line| line.starts_with(wanted.as_str()))
        })
        .collect()
}

/// A table row's beginning: `| `field` | `name`, `名称` | yes |`.
fn column_rows(columns: Vec<(&str, &[&str], bool)>) -> Vec<String> {
    columns
        .into_iter()
        .map(|(field, names, required)| {
            let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            let required = if required { "yes" } else { "no" };
            format!("| `{field}` | {} | {required} |", names.join(", "))
        })
        .collect()
}

#[test]
fn the_reference_lists_every_import_column_with_all_its_header_names() {
    let mut expected = column_rows(super::roster::accepted_columns());
    expected.extend(column_rows(super::teams::accepted_columns()));
    expected.extend(column_rows(super::stations::accepted_columns()));
    expected.extend(column_rows(super::ledger::accepted_columns()));
    let missing = missing(expected);
    assert!(
        missing.is_empty(),
        "docs/reference.md lacks these import columns (add the rows, then the format):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_reference_lists_every_vocabulary_entry_in_chinese_and_english() {
    let mut expected = Vec::new();
    for (field, entries) in vocabularies() {
        assert!(
            REFERENCE
                .lines()
                .any(|l| l.starts_with("### ") && l.ends_with(&format!("`{field}`"))),
            "docs/reference.md has no section `### <中文> `{field}``"
        );
        expected.extend(
            entries
                .into_iter()
                .map(|(key, label)| format!("| {label} | `{key}` |")),
        );
    }
    expected.extend(
        Tier::ALL
            .iter()
            .map(|tier| format!("| {} | `{}` |", tier.chinese(), tier.as_str())),
    );
    let missing = missing(expected);
    assert!(
        missing.is_empty(),
        "docs/reference.md lacks these vocabulary entries:\n{}",
        missing.join("\n")
    );
}
