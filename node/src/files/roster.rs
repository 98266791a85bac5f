//! Bulk import of a volunteer roster from CSV or XLSX.
//!
//! Offices keep rosters in spreadsheets with Chinese headers; we accept the
//! Chinese or the English column names in any order. Each row becomes a
//! [`VolunteerInput`] or a refusal naming the row, the field and the reason;
//! the valid rows go in, the refused ones come back in the report for the
//! clerk to fix and re-import (re-importing a row that did go in is harmless:
//! the same ID number maps to the same volunteer). Committing the rows is
//! `civsync_protocol::service::import_volunteers`; this module only reads files.

use crate::files::spreadsheet::{csv_table, xlsx_table, SheetError, SheetRefusal};
use civsync_protocol::domain::input::VolunteerInput;
use civsync_protocol::domain::model::FieldError;

/// Largest roster file we read.
pub const IMPORT_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most rows in one import (a whole county's volunteers fit).
pub const IMPORT_ROWS_MAX: usize = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is {len} bytes; at most {max} are accepted")]
    TooLarge { len: usize, max: usize },
    #[error("the file has more than {max} rows")]
    TooManyRows { max: usize },
    #[error("the header row has no column for {missing}; expected e.g. {expected}")]
    MissingColumn {
        missing: &'static str,
        /// Example headers of this kind of file.
        expected: &'static str,
    },
    /// The sheet is larger than an office's file can be (columns, cells,
    /// inflated bytes): refused before it is laid out in memory.
    #[error("the sheet is too large: {reason}")]
    SheetTooLarge { reason: String },
    #[error("the file cannot be read as {format}: {reason}")]
    Unreadable {
        format: &'static str,
        reason: String,
    },
}

impl ImportError {
    /// The file is refused for its size (HTTP 413), not its content (422).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            ImportError::TooLarge { .. }
                | ImportError::TooManyRows { .. }
                | ImportError::SheetTooLarge { .. }
        )
    }
}

/// Known columns: (field, accepted header names).
const COLUMNS: &[(&str, &[&str])] = &[
    (
        "number",
        &["number", "编号", "志愿者编号", "统一志愿者编号"],
    ),
    ("name", &["name", "姓名"]),
    ("sex", &["sex", "性别"]),
    ("birth_date", &["birth_date", "出生日期"]),
    (
        "residence_area",
        &["residence_area", "居住地", "居住区域", "住址"],
    ),
    ("phone", &["phone", "电话", "联系电话", "手机"]),
    ("id_number", &["id_number", "身份证号", "身份证号码"]),
    ("skills", &["skills", "技能", "特长"]),
    ("categories", &["categories", "服务类别", "服务类型"]),
    ("consent", &["consent", "同意公开", "同意"]),
    ("party_member", &["party_member", "党员"]),
    ("registered_on", &["registered_on", "注册日期"]),
];
const REQUIRED: &[&str] = &["name", "sex", "id_number"];
const EXPECTED_HEADERS: &str = "姓名/name, 性别/sex, 身份证号/id_number";

/// Every column a roster may have: (field, header names accepted, required),
/// as the reference documentation lists them.
pub fn accepted_columns() -> Vec<(&'static str, &'static [&'static str], bool)> {
    COLUMNS
        .iter()
        .map(|(field, names)| (*field, *names, REQUIRED.contains(field)))
        .collect()
}

/// Map header cells to field names from `columns`; unknown columns are
/// ignored; a missing `required` one refuses the file, naming it and
/// `expected` (example headers of this kind of file).
pub(super) fn header_fields(
    header: &[String],
    columns: &[(&'static str, &[&str])],
    required: &[&'static str],
    expected: &'static str,
) -> Result<Vec<Option<&'static str>>, ImportError> {
    let fields: Vec<Option<&'static str>> = header
        .iter()
        .map(|cell| {
            let cell = cell.trim().trim_start_matches('\u{feff}');
            columns
                .iter()
                .find(|(_, names)| names.contains(&cell))
                .map(|(field, _)| *field)
        })
        .collect();
    for missing in required {
        if !fields.contains(&Some(missing)) {
            return Err(ImportError::MissingColumn { missing, expected });
        }
    }
    Ok(fields)
}

/// The rows of `table` below its header, each read by `row` with the
/// header's fields; blank rows skipped, numbered as the spreadsheet shows
/// them (header = 1), at most `IMPORT_ROWS_MAX`.
pub(super) fn rows_of<T>(
    table: Vec<Vec<String>>,
    columns: &[(&'static str, &[&str])],
    required: &[&'static str],
    expected: &'static str,
    row: impl Fn(&[Option<&'static str>], &[String]) -> T,
) -> Result<Vec<(usize, T)>, ImportError> {
    let mut rows = table.into_iter();
    let Some(header) = rows.next() else {
        return Err(ImportError::MissingColumn {
            missing: required[0],
            expected,
        });
    };
    let fields = header_fields(&header, columns, required, expected)?;
    let mut out = Vec::new();
    for (index, cells) in rows.enumerate() {
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if out.len() >= IMPORT_ROWS_MAX {
            return Err(ImportError::TooManyRows {
                max: IMPORT_ROWS_MAX,
            });
        }
        out.push((index + 2, row(&fields, &cells)));
    }
    Ok(out)
}

fn truthy(text: &str) -> bool {
    matches!(
        text.trim(),
        "1" | "true" | "yes" | "是" | "Y" | "y" | "TRUE" | "同意"
    )
}

pub(super) fn list(text: &str) -> Vec<String> {
    text.split(['、', ';', '；', ',', '，', '|'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn row_input(
    fields: &[Option<&'static str>],
    cells: &[String],
) -> Result<VolunteerInput, FieldError> {
    let mut input = VolunteerInput::default();
    for (field, cell) in fields.iter().zip(cells) {
        let Some(field) = field else { continue };
        let text = cell.trim().to_string();
        let optional = || (!text.is_empty()).then(|| text.clone());
        match *field {
            "number" => input.number = optional(),
            "name" => input.name = text,
            "sex" => input.sex = text,
            "birth_date" => input.birth_date = optional(),
            "residence_area" => input.residence_area = text,
            "phone" => input.phone = text,
            "id_number" => input.id_number = text,
            "skills" => input.skills = list(&text),
            "categories" => input.categories = list(&text),
            "consent" => input.consent = truthy(&text),
            "party_member" => input.party_member = truthy(&text) || text.contains("党员"),
            "registered_on" => input.registered_on = optional(),
            other => return Err(FieldError::new(other, "unknown column")),
        }
    }
    Ok(input)
}

/// Rows of a roster: (spreadsheet row number, parsed input or refusal).
pub type RosterRows = Vec<(usize, Result<VolunteerInput, FieldError>)>;

fn rows_from_table(table: Vec<Vec<String>>) -> Result<RosterRows, ImportError> {
    rows_of(table, COLUMNS, REQUIRED, EXPECTED_HEADERS, row_input)
}

pub(super) fn check_size(bytes: &[u8]) -> Result<(), ImportError> {
    if bytes.len() > IMPORT_BYTES_MAX {
        return Err(ImportError::TooLarge {
            len: bytes.len(),
            max: IMPORT_BYTES_MAX,
        });
    }
    Ok(())
}

pub(super) fn sheet_error(error: SheetError) -> ImportError {
    match error.refusal() {
        SheetRefusal::TooManyRows => ImportError::TooManyRows {
            max: IMPORT_ROWS_MAX,
        },
        SheetRefusal::TooLarge { reason } => ImportError::SheetTooLarge { reason },
        SheetRefusal::Unreadable { format, reason } => ImportError::Unreadable { format, reason },
    }
}

/// Parse a CSV roster (UTF-8, header row first).
pub fn parse_csv(bytes: &[u8]) -> Result<RosterRows, ImportError> {
    check_size(bytes)?;
    rows_from_table(csv_table(bytes, IMPORT_ROWS_MAX + 1).map_err(sheet_error)?)
}

/// Parse the first sheet of an XLSX roster.
pub fn parse_xlsx(bytes: &[u8]) -> Result<RosterRows, ImportError> {
    check_size(bytes)?;
    let (_, table) = xlsx_table(bytes, IMPORT_ROWS_MAX + 1).map_err(sheet_error)?;
    rows_from_table(table)
}

/// Parse by file name: `.xlsx` as a workbook, anything else as CSV.
pub fn parse_file_bytes(name: &str, bytes: &[u8]) -> Result<RosterRows, ImportError> {
    if name.to_ascii_lowercase().ends_with(".xlsx") {
        parse_xlsx(bytes)
    } else {
        parse_csv(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_headers_and_bad_rows() {
        let csv = "姓名,性别,身份证号,电话,技能,服务类别,党员\n\
                   张伟,男,11010519491231002X,13800000000,剪纸、急救,health;culture,是\n\
                   ,女,11010519491231002X,,,,\n";
        let rows = parse_csv(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        let first = rows[0].1.as_ref().unwrap();
        assert_eq!(first.name, "张伟");
        assert_eq!(first.skills, vec!["剪纸", "急救"]);
        assert_eq!(first.categories, vec!["health", "culture"]);
        assert!(first.party_member);
        assert_eq!(rows[1].0, 3, "row numbers count the header");
    }

    #[test]
    fn a_missing_required_column_is_named() {
        let error = parse_csv("姓名,电话\n张伟,1\n".as_bytes()).unwrap_err();
        assert!(
            matches!(error, ImportError::MissingColumn { missing: "sex", .. }),
            "{error}"
        );
    }

    #[test]
    fn xlsx_rosters_are_read() {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet();
        for (col, header) in ["name", "sex", "id_number", "phone"].iter().enumerate() {
            sheet.write_string(0, col as u16, *header).unwrap();
        }
        sheet.write_string(1, 0, "李娜").unwrap();
        sheet.write_string(1, 1, "女").unwrap();
        sheet.write_string(1, 2, "11010519491231002X").unwrap();
        sheet.write_number(1, 3, 13800000000.0).unwrap();
        let bytes = workbook.save_to_buffer().unwrap();
        let rows = parse_xlsx(&bytes).unwrap();
        let row = rows[0].1.as_ref().unwrap();
        assert_eq!(
            (row.name.as_str(), row.phone.as_str()),
            ("李娜", "13800000000")
        );
    }

    #[test]
    fn garbage_is_refused_not_panicked() {
        assert!(parse_xlsx(b"not a zip").is_err());
        assert!(parse_csv(b"").is_err());
    }
}
