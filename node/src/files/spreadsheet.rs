//! Reading an office's spreadsheet (CSV or the first sheet of an XLSX) into
//! a table of text cells, for the roster and activity-ledger imports.
//!
//! Cells come back as the clerk sees them: whole numbers without `.0`, Excel
//! dates as `YYYY-MM-DD`. What the columns mean is each import's business.
//! Row counts are bounded while reading, so a huge file is refused before
//! it is held in memory as a table.

/// Why a spreadsheet could not be read into a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SheetError {
    /// More than the caller's `rows_max` rows (blank ones included).
    TooManyRows,
    Unreadable {
        format: &'static str,
        reason: String,
    },
}

/// The rows of a CSV file (UTF-8), at most `rows_max` of them.
pub fn csv_table(bytes: &[u8], rows_max: usize) -> Result<Vec<Vec<String>>, SheetError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut table = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| SheetError::Unreadable {
            format: "CSV",
            reason: e.to_string(),
        })?;
        if table.len() >= rows_max {
            return Err(SheetError::TooManyRows);
        }
        table.push(record.iter().map(str::to_string).collect());
    }
    Ok(table)
}

/// The used rows of the first sheet of an XLSX workbook, at most
/// `rows_max`, and the spreadsheet index of the first of them (a sheet
/// whose used range starts below row 1 has rows above it).
pub fn xlsx_table(bytes: &[u8], rows_max: usize) -> Result<(usize, Vec<Vec<String>>), SheetError> {
    use calamine::{Data, Reader, Xlsx};
    let unreadable = |reason: String| SheetError::Unreadable {
        format: "XLSX",
        reason,
    };
    let mut workbook: Xlsx<_> =
        Xlsx::new(std::io::Cursor::new(bytes)).map_err(|e| unreadable(e.to_string()))?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| unreadable("the workbook has no sheet".into()))?
        .map_err(|e| unreadable(e.to_string()))?;
    if range.height() > rows_max {
        return Err(SheetError::TooManyRows);
    }
    let first_row = range.start().map_or(0, |(row, _)| row as usize);
    let table = range
        .rows()
        .map(|row| {
            row.iter()
                .map(|cell| match cell {
                    Data::Empty => String::new(),
                    Data::String(s) => s.clone(),
                    Data::Float(f) if f.fract() == 0.0 => format!("{}", *f as i64),
                    Data::DateTime(d) => excel_serial_date(d.as_f64()),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    Ok((first_row, table))
}

/// Excel stores dates as days since 1899-12-30 (counting its phantom
/// 1900-02-29, which this epoch absorbs for every date after March 1900).
fn excel_serial_date(serial: f64) -> String {
    let epoch = time::macros::date!(1899 - 12 - 30);
    match epoch.checked_add(time::Duration::days(serial.floor() as i64)) {
        Some(date) => civsync_protocol::domain::model::date_format::format(date),
        None => serial.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excel_dates_print_as_the_clerk_typed_them() {
        assert_eq!(excel_serial_date(45_963.0), "2025-11-02");
        assert_eq!(
            excel_serial_date(45_963.75),
            "2025-11-02",
            "the time of day is dropped"
        );
    }

    #[test]
    fn a_csv_over_the_row_limit_is_refused_while_reading() {
        let csv = "a\nb\nc\n";
        assert_eq!(csv_table(csv.as_bytes(), 3).unwrap().len(), 3);
        assert_eq!(csv_table(csv.as_bytes(), 2), Err(SheetError::TooManyRows));
        assert!(matches!(
            xlsx_table(b"not a workbook", 10),
            Err(SheetError::Unreadable { format: "XLSX", .. })
        ));
    }
}
