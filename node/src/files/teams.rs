//! Bulk import of a station's volunteer teams (志愿服务队) from CSV or XLSX.
//!
//! A team file has one row a team: its name and service category, and
//! optionally its number, parent team, leader and members (volunteer
//! numbers, separated by `、` `;` `,` or `|`). Each row becomes a
//! [`TeamInput`] or a refusal naming the row, the field and the reason.
//! Committing the rows is `civsync_protocol::service::import_teams`; this
//! module only reads files. Re-importing a file is harmless: a row with a
//! team number replaces that team, as `POST teams` with that id does.

use crate::files::roster::{check_size, list, rows_of, sheet_error, ImportError, IMPORT_ROWS_MAX};
use crate::files::spreadsheet::{csv_table, xlsx_table};
use civsync_protocol::domain::input::TeamInput;

/// Known columns: (field, accepted header names).
const COLUMNS: &[(&str, &[&str])] = &[
    ("id", &["id", "队伍编号", "编号"]),
    ("name", &["name", "队伍名称", "队名", "名称"]),
    ("category", &["category", "服务类别", "类别"]),
    ("parent", &["parent", "上级队伍"]),
    ("leader", &["leader", "队长编号", "队长"]),
    ("members", &["members", "队员编号", "队员", "成员"]),
];
const REQUIRED: &[&str] = &["name", "category"];
const EXPECTED_HEADERS: &str = "队伍名称/name, 服务类别/category, 队员编号/members";

/// Every column a team file may have: (field, header names accepted,
/// required), as the reference documentation lists them.
pub fn accepted_columns() -> Vec<(&'static str, &'static [&'static str], bool)> {
    COLUMNS
        .iter()
        .map(|(field, names)| (*field, *names, REQUIRED.contains(field)))
        .collect()
}

/// Rows of a team file: (spreadsheet row number, what it asks). Every
/// field is checked when the rows are written (`TeamInput::validate`).
pub type TeamRows = Vec<(usize, TeamInput)>;

fn row_input(fields: &[Option<&'static str>], cells: &[String]) -> TeamInput {
    let mut input = TeamInput::default();
    for (field, cell) in fields.iter().zip(cells) {
        let Some(field) = field else { continue };
        let text = cell.trim().to_string();
        let optional = || (!text.is_empty()).then(|| text.clone());
        match *field {
            "id" => input.id = optional(),
            "name" => input.name = text,
            "category" => input.category = text,
            "parent" => input.parent = optional(),
            "leader" => input.leader = optional(),
            "members" => input.members = list(&text),
            other => unreachable!("column {other} is in COLUMNS but not read"),
        }
    }
    input
}

fn rows_from_table(table: Vec<Vec<String>>) -> Result<TeamRows, ImportError> {
    rows_of(table, COLUMNS, REQUIRED, EXPECTED_HEADERS, row_input)
}

/// Parse by file name: `.xlsx` as a workbook (its first sheet), anything
/// else as CSV (UTF-8, header row first).
pub fn parse_file_bytes(name: &str, bytes: &[u8]) -> Result<TeamRows, ImportError> {
    check_size(bytes)?;
    let table = if name.to_ascii_lowercase().ends_with(".xlsx") {
        xlsx_table(bytes, IMPORT_ROWS_MAX + 1)
            .map_err(sheet_error)?
            .1
    } else {
        csv_table(bytes, IMPORT_ROWS_MAX + 1).map_err(sheet_error)?
    };
    rows_from_table(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_headers_with_members_listed_in_one_cell() {
        let csv = "队伍编号,队伍名称,服务类别,队长编号,队员编号\n\
                   T1,健康服务队,health,V1,V1、V2；V3\n\
                   ,,,,\n\
                   ,文艺队,culture,,\n";
        let rows = parse_file_bytes("teams.csv", csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2, "the empty row is skipped");
        let first = &rows[0].1;
        assert_eq!(first.id.as_deref(), Some("T1"));
        assert_eq!(first.name, "健康服务队");
        assert_eq!(first.leader.as_deref(), Some("V1"));
        assert_eq!(first.members, vec!["V1", "V2", "V3"]);
        assert_eq!(
            rows[1].0, 4,
            "row numbers count the header and the empty row"
        );
        let second = &rows[1].1;
        assert_eq!((second.id.clone(), second.members.len()), (None, 0));
    }

    #[test]
    fn a_missing_required_column_is_named_with_the_team_headers() {
        let error = parse_file_bytes("t.csv", "队伍名称,队员\n队,V1\n".as_bytes()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("category") && text.contains("队伍名称"),
            "{text}"
        );
    }
}
