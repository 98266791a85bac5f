//! Reading an activity ledger (活动台账) from CSV or XLSX into
//! [`LedgerRow`]s: one row per service record, Chinese or English headers
//! in any order, unknown columns ignored, blank rows skipped.
//!
//! This module only reads files; grouping, validation and writing are
//! `civsync_protocol::service::ledger_import`. Invariants: the file is bounded
//! ([`LEDGER_BYTES_MAX`], and the protocol's `LEDGER_ROWS_MAX` checked while
//! reading, before the whole table is held); row numbers are those the
//! spreadsheet shows (header = 1, blank rows counted); a file that cannot be
//! read is a [`LedgerFileError`] naming why, never a panic.

use crate::files::spreadsheet::{csv_table, xlsx_table, SheetError, SheetRefusal};
use civsync_protocol::service::ledger_import::{LedgerRow, LEDGER_ROWS_MAX};

/// Largest ledger file we read: a year of a county's village ledgers is a
/// few megabytes of CSV.
pub const LEDGER_BYTES_MAX: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LedgerFileError {
    #[error("the file is {len} bytes; at most {max} are accepted (LEDGER_BYTES_MAX)")]
    TooLarge { len: usize, max: usize },
    #[error("the file has more than {max} rows (LEDGER_ROWS_MAX); split the file")]
    TooManyRows { max: usize },
    #[error("the header row has no column for {missing}; expected e.g. 活动名称/name, 活动日期/date, 活动形式/form, 服务类别/category")]
    MissingColumn { missing: &'static str },
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

impl LedgerFileError {
    /// The file is refused for its size (HTTP 413), not its content (422).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            LedgerFileError::TooLarge { .. }
                | LedgerFileError::TooManyRows { .. }
                | LedgerFileError::SheetTooLarge { .. }
        )
    }
}

/// A ledger column: the field of [`LedgerRow`] it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Id,
    Name,
    Date,
    Place,
    Content,
    Form,
    Category,
    Team,
    PersonInCharge,
    Beneficiaries,
    Theme,
    Volunteer,
    Hours,
}

/// Known columns and the header names offices use for them.
const COLUMNS: &[(Column, &[&str])] = &[
    (Column::Id, &["id", "活动编号", "活动ID"]),
    (Column::Name, &["name", "活动名称", "活动主题名称", "名称"]),
    (Column::Date, &["date", "活动日期", "日期", "活动时间"]),
    (Column::Place, &["place", "活动地点", "地点"]),
    (Column::Content, &["content", "活动内容", "内容"]),
    (Column::Form, &["form", "活动形式", "形式"]),
    (
        Column::Category,
        &["category", "服务类别", "服务类型", "类别"],
    ),
    (Column::Team, &["team", "组织队伍", "服务队伍", "队伍编号"]),
    (
        Column::PersonInCharge,
        &["person_in_charge", "负责人", "活动负责人"],
    ),
    (
        Column::Beneficiaries,
        &["beneficiaries", "受益人数", "受益群众", "受益群众人数"],
    ),
    (Column::Theme, &["theme", "主题", "月度主题"]),
    (
        Column::Volunteer,
        &["volunteer", "志愿者编号", "志愿者", "统一志愿者编号"],
    ),
    (
        Column::Hours,
        &[
            "hours",
            "服务时长",
            "服务时长(小时)",
            "服务时长（小时）",
            "时长",
        ],
    ),
];
const REQUIRED: &[(Column, &str)] = &[
    (Column::Name, "name"),
    (Column::Date, "date"),
    (Column::Form, "form"),
    (Column::Category, "category"),
];

/// Every column a ledger may have: (field, header names accepted,
/// required), as the reference documentation lists them; the field is the
/// English header, listed first.
pub fn accepted_columns() -> Vec<(&'static str, &'static [&'static str], bool)> {
    COLUMNS
        .iter()
        .map(|(column, names)| {
            let required = REQUIRED.iter().any(|(r, _)| r == column);
            (names[0], *names, required)
        })
        .collect()
}

fn header_columns(header: &[String]) -> Result<Vec<Option<Column>>, LedgerFileError> {
    let columns: Vec<Option<Column>> = header
        .iter()
        .map(|cell| {
            let cell = cell.trim().trim_start_matches('\u{feff}').trim();
            COLUMNS
                .iter()
                .find(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(cell)))
                .map(|(column, _)| *column)
        })
        .collect();
    for (required, name) in REQUIRED {
        if !columns.contains(&Some(*required)) {
            return Err(LedgerFileError::MissingColumn { missing: name });
        }
    }
    Ok(columns)
}

fn ledger_row(row: usize, columns: &[Option<Column>], cells: &[String]) -> LedgerRow {
    let mut out = LedgerRow {
        row,
        ..LedgerRow::default()
    };
    for (column, cell) in columns.iter().zip(cells) {
        let Some(column) = column else { continue };
        let text = cell.trim().to_string();
        let slot = match column {
            Column::Id => &mut out.id,
            Column::Name => &mut out.name,
            Column::Date => &mut out.date,
            Column::Place => &mut out.place,
            Column::Content => &mut out.content,
            Column::Form => &mut out.form,
            Column::Category => &mut out.category,
            Column::Team => &mut out.team,
            Column::PersonInCharge => &mut out.person_in_charge,
            Column::Beneficiaries => &mut out.beneficiaries,
            Column::Theme => &mut out.theme,
            Column::Volunteer => &mut out.volunteer,
            Column::Hours => &mut out.hours,
        };
        // A repeated column keeps its first non-empty cell.
        if slot.is_empty() {
            *slot = text;
        }
    }
    out
}

/// Rows of a table whose first row is the header.
fn rows_from_table(
    table: impl Iterator<Item = Vec<String>>,
) -> Result<Vec<LedgerRow>, LedgerFileError> {
    let mut table = table;
    let header = table
        .next()
        .ok_or(LedgerFileError::MissingColumn { missing: "name" })?;
    let columns = header_columns(&header)?;
    let mut rows = Vec::new();
    for (index, cells) in table.enumerate() {
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if rows.len() >= LEDGER_ROWS_MAX {
            return Err(LedgerFileError::TooManyRows {
                max: LEDGER_ROWS_MAX,
            });
        }
        rows.push(ledger_row(index + 2, &columns, &cells));
    }
    Ok(rows)
}

fn check_size(bytes: &[u8]) -> Result<(), LedgerFileError> {
    if bytes.len() > LEDGER_BYTES_MAX {
        return Err(LedgerFileError::TooLarge {
            len: bytes.len(),
            max: LEDGER_BYTES_MAX,
        });
    }
    Ok(())
}

fn sheet_error(error: SheetError) -> LedgerFileError {
    match error.refusal() {
        SheetRefusal::TooManyRows => LedgerFileError::TooManyRows {
            max: LEDGER_ROWS_MAX,
        },
        SheetRefusal::TooLarge { reason } => LedgerFileError::SheetTooLarge { reason },
        SheetRefusal::Unreadable { format, reason } => {
            LedgerFileError::Unreadable { format, reason }
        }
    }
}

/// Header plus blank rows may exceed the row limit by a little; the rows
/// proper are counted in `rows_from_table`.
const LEDGER_TABLE_ROWS_MAX: usize = 2 * LEDGER_ROWS_MAX;

/// Parse a CSV ledger (UTF-8, header row first).
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<LedgerRow>, LedgerFileError> {
    check_size(bytes)?;
    let table = csv_table(bytes, LEDGER_TABLE_ROWS_MAX).map_err(sheet_error)?;
    rows_from_table(table.into_iter())
}

/// Parse the first sheet of an XLSX ledger.
pub fn parse_xlsx(bytes: &[u8]) -> Result<Vec<LedgerRow>, LedgerFileError> {
    check_size(bytes)?;
    let (first_row, used) = xlsx_table(bytes, LEDGER_TABLE_ROWS_MAX).map_err(sheet_error)?;
    // A sheet whose used range starts below row 1 still numbers rows as
    // the spreadsheet shows them: pad with the empty rows above.
    let mut table: Vec<Vec<String>> = Vec::with_capacity(used.len() + first_row);
    table.extend(std::iter::repeat_n(Vec::new(), first_row));
    table.extend(used);
    // The header is the first non-blank row.
    let header_at = table
        .iter()
        .position(|r| r.iter().any(|c| !c.trim().is_empty()))
        .unwrap_or(0);
    let mut rows = rows_from_table(table.into_iter().skip(header_at))?;
    for row in &mut rows {
        row.row += header_at;
    }
    Ok(rows)
}

/// Parse by file name: `.xlsx` as a workbook, anything else as CSV.
pub fn parse_file_bytes(name: &str, bytes: &[u8]) -> Result<Vec<LedgerRow>, LedgerFileError> {
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
    fn chinese_and_english_headers_in_any_order_unknown_ignored() {
        let csv = "\u{feff}服务时长,志愿者编号,备注,活动名称,活动日期,活动形式,服务类别,受益人数\n\
                   2,V1,x,理论宣讲,2026-11-02,讲,理论宣讲,30\n\
                   ,,,,,,,\n\
                   1.5,V2,,理论宣讲,2026-11-02,讲,理论宣讲,\n";
        let rows = parse_csv(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].row, 2);
        assert_eq!(rows[1].row, 4, "a blank row keeps its number");
        assert_eq!(
            (rows[0].volunteer.as_str(), rows[0].hours.as_str()),
            ("V1", "2")
        );
        assert_eq!(rows[0].name, "理论宣讲");
        assert_eq!(rows[0].beneficiaries, "30");
        assert_eq!(rows[1].hours, "1.5");

        let english = "name,date,form,category,volunteer,hours,Place\n讲座,2026-11-02,lecture,theory,V1,2,广场\n";
        let rows = parse_csv(english.as_bytes()).unwrap();
        assert_eq!(rows[0].place, "广场", "headers are matched case-blind");
    }

    #[test]
    fn a_missing_required_column_is_named() {
        let error =
            parse_csv("活动名称,活动日期,活动形式\n讲座,2026-11-02,讲\n".as_bytes()).unwrap_err();
        assert!(
            matches!(
                error,
                LedgerFileError::MissingColumn {
                    missing: "category"
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn xlsx_ledgers_are_read_with_dates_and_numbers() {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet();
        for (col, header) in [
            "活动名称",
            "活动日期",
            "活动形式",
            "服务类别",
            "志愿者编号",
            "服务时长",
        ]
        .iter()
        .enumerate()
        {
            sheet.write_string(0, col as u16, *header).unwrap();
        }
        let date = rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 11, 2).unwrap();
        let format = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
        sheet.write_string(1, 0, "义诊").unwrap();
        sheet
            .write_datetime_with_format(1, 1, &date, &format)
            .unwrap();
        sheet.write_string(1, 2, "帮").unwrap();
        sheet.write_string(1, 3, "health").unwrap();
        sheet.write_string(1, 4, "V1").unwrap();
        sheet.write_number(1, 5, 2.5).unwrap();
        sheet.write_number(2, 5, 3.0).unwrap();
        let bytes = workbook.save_to_buffer().unwrap();
        let rows = parse_xlsx(&bytes).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].date, "2026-11-02");
        assert_eq!(rows[0].hours, "2.5");
        assert_eq!((rows[1].row, rows[1].hours.as_str()), (3, "3"));
    }

    #[test]
    fn limits_and_garbage_are_refused_not_panicked() {
        assert!(matches!(
            parse_xlsx(b"not a zip"),
            Err(LedgerFileError::Unreadable { .. })
        ));
        assert!(matches!(
            parse_csv(b""),
            Err(LedgerFileError::MissingColumn { .. })
        ));
        let too_large = vec![b' '; LEDGER_BYTES_MAX + 1];
        assert!(matches!(
            parse_csv(&too_large),
            Err(LedgerFileError::TooLarge { .. })
        ));
        let mut many = String::from("name,date,form,category\n");
        for _ in 0..=LEDGER_ROWS_MAX {
            many.push_str("讲座,2026-11-02,讲,theory\n");
        }
        let error = parse_csv(many.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("LEDGER_ROWS_MAX"), "{error}");
    }
}
