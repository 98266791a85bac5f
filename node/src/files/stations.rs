//! A station list (站点名录) from CSV or XLSX: one row a station, its full
//! code (path), its name and, optionally, its tier. Each row becomes a
//! [`StationInput`]; committing the rows is the protocol's
//! `service::registry::import::import_stations`, which checks every field.
//! Re-importing a file is harmless: a listed station is renamed, an
//! unchanged one writes nothing.

use crate::files::roster::{check_size, rows_of, sheet_error, ImportError};
use crate::files::spreadsheet::{csv_table, xlsx_table, SheetError};
use civsync_protocol::service::registry::{StationInput, REGISTRY_STATIONS_MAX};

/// Known columns: (field, accepted header names).
const COLUMNS: &[(&str, &[&str])] = &[
    ("id", &["id", "站点编码", "编码", "代码"]),
    ("name", &["name", "站点名称", "名称"]),
    ("tier", &["tier", "层级", "级别"]),
];
const REQUIRED: &[&str] = &["id", "name"];
const EXPECTED_HEADERS: &str = "站点编码/id, 站点名称/name, 层级/tier";

/// Rows a station file may have: a registry holds at most this many.
pub const STATION_ROWS_MAX: usize = REGISTRY_STATIONS_MAX;

/// Every column a station file may have: (field, header names accepted,
/// required), as the reference documentation lists them.
pub fn accepted_columns() -> Vec<(&'static str, &'static [&'static str], bool)> {
    COLUMNS
        .iter()
        .map(|(field, names)| (*field, *names, REQUIRED.contains(field)))
        .collect()
}

/// Rows of a station file: (spreadsheet row number, what it asks).
pub type StationRows = Vec<(usize, StationInput)>;

fn row_input(fields: &[Option<&'static str>], cells: &[String]) -> StationInput {
    let mut input = StationInput::default();
    for (field, cell) in fields.iter().zip(cells) {
        let Some(field) = field else { continue };
        let text = cell.trim().to_string();
        match *field {
            "id" => input.id = text,
            "name" => input.name = text,
            "tier" => input.tier = text,
            other => unreachable!("column {other} is in COLUMNS but not read"),
        }
    }
    input
}

/// A sheet's refusal, with this file's own row bound named.
fn station_sheet_error(error: SheetError) -> ImportError {
    match error {
        SheetError::TooManyRows => ImportError::TooManyRows {
            max: STATION_ROWS_MAX,
        },
        other => sheet_error(other),
    }
}

/// Parse by file name: `.xlsx` as a workbook (its first sheet), anything
/// else as CSV (UTF-8, header row first).
pub fn parse_file_bytes(name: &str, bytes: &[u8]) -> Result<StationRows, ImportError> {
    check_size(bytes)?;
    let table = if name.to_ascii_lowercase().ends_with(".xlsx") {
        xlsx_table(bytes, STATION_ROWS_MAX + 1)
            .map_err(station_sheet_error)?
            .1
    } else {
        csv_table(bytes, STATION_ROWS_MAX + 1).map_err(station_sheet_error)?
    };
    rows_of(table, COLUMNS, REQUIRED, EXPECTED_HEADERS, row_input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_headers_in_any_order_and_a_blank_tier_kept_blank() {
        let csv = "\u{feff}站点名称,层级,站点编码\n\
                   城关镇新时代文明实践所,所,xh/t1\n\
                   ,,\n\
                   东村新时代文明实践站,,xh/t1/v1\n";
        let rows = parse_file_bytes("stations.csv", csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2, "the empty row is skipped");
        assert_eq!(
            rows[0].1,
            StationInput {
                id: "xh/t1".into(),
                name: "城关镇新时代文明实践所".into(),
                tier: "所".into(),
            }
        );
        assert_eq!((rows[1].0, rows[1].1.tier.as_str()), (4, ""));
    }

    #[test]
    fn a_missing_code_column_is_named_with_the_station_headers() {
        let error = parse_file_bytes("s.csv", "名称,层级\n东村站,站\n".as_bytes()).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("id") && text.contains("站点编码"), "{text}");
    }

    #[test]
    fn a_file_longer_than_a_registry_is_refused_before_its_rows_are_read() {
        let mut csv = String::from("id,name\n");
        for n in 0..=STATION_ROWS_MAX {
            csv.push_str(&format!("xh/t1/v{n},村{n}\n"));
        }
        let error = parse_file_bytes("s.csv", csv.as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("the file has more than {STATION_ROWS_MAX} rows")
        );
    }
}
