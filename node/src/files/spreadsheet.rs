//! Reading an office's spreadsheet (CSV or the first sheet of an XLSX) into
//! a table of text cells, for the roster and activity-ledger imports.
//!
//! Cells come back as the clerk sees them: whole numbers without `.0`, Excel
//! dates as `YYYY-MM-DD`. What the columns mean is each import's business.
//!
//! An uploaded file is hostile until bounded. A few kilobytes of XLSX can
//! claim a billion-cell grid, unpack to gigabytes, or hold a date no
//! calendar can show, so every size is checked before the bytes behind it
//! are decoded:
//!
//! 1. the archive's directory (entry count, declared sizes) is checked
//!    before anything is unpacked;
//! 2. every entry is unpacked once through a counting reader that stops at
//!    its limit, because declared sizes can lie; while unpacking, the parts
//!    the parser will read (the fixed ones and whichever entries the
//!    workbook names as sheets) are scanned for the shapes that make it
//!    spend memory or time out of proportion to their size;
//! 3. only then does the workbook parser open the archive, and the sheet
//!    is read cell by cell, refusing as soon as the table outgrows its
//!    limits; the grid is laid out only once its size is known to be
//!    bounded.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Cursor, Read};

use calamine::{DataRef, ExcelDateTime, ExcelDateTimeType, Reader, Xlsx, XlsxError};
use quick_xml::events::{BytesStart, Event};

/// Columns in one table, counted from the first used one. An office sheet
/// has tens of columns; anything wider is a mistake or an attack.
pub const COLUMNS_MAX: usize = 256;

/// Cells in one table, blank ones inside the used area included: each costs
/// a string header (24 bytes) however empty. A 200,000-person roster of 12
/// columns is 2.4 million.
pub const CELLS_MAX: usize = 4_000_000;

/// Characters in one cell: the most Excel itself lets a cell hold.
pub const CELL_CHARS_MAX: usize = 32_767;

/// Bytes of cell text in one table. Shared strings let one stored text
/// appear in many cells, so an XLSX table can hold far more text than the
/// file does. A 200,000-person roster is about 50 MB of text.
pub const TABLE_TEXT_BYTES_MAX: usize = 128 * 1024 * 1024;

/// Entries (files) in an XLSX archive. A workbook has a few per sheet.
pub const XLSX_ENTRIES_MAX: usize = 1024;

/// Bytes one archive entry may unpack to. The sheet of a 200,000-person
/// roster of 12 columns is 90 to 120 MB of XML, depending on the program
/// that wrote it, so the limit sits above that.
pub const XLSX_ENTRY_INFLATED_BYTES_MAX: u64 = 192 * 1024 * 1024;

/// Bytes the whole archive may unpack to: that roster's sheet and shared
/// texts with room to spare.
pub const XLSX_INFLATED_BYTES_MAX: u64 = 320 * 1024 * 1024;

/// Bytes of one XML tag or text run in the parts the parser reads. The
/// parser gathers each whole before looking at it; the longest an honest
/// workbook has is one cell's text, at most [`CELL_CHARS_MAX`] characters.
pub const XLSX_XML_EVENT_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Sheets listed in the workbook. The parser copies a sheet's path for each
/// listing, so this times [`XLSX_ATTRIBUTE_BYTES_MAX`] bounds that copying.
pub const XLSX_SHEETS_MAX: usize = 256;

/// Elements in the workbook part and its relationships: each becomes an
/// owned entry (a name, a relationship) when the workbook is opened, about
/// ten times the bytes of its tag.
pub const XLSX_WORKBOOK_ELEMENTS_MAX: usize = 100_000;

/// Number formats and cell styles in the style part. Each style is matched
/// against its number format when the workbook is opened, so this times
/// [`XLSX_ATTRIBUTE_BYTES_MAX`] bounds that work. Excel allows 64,000 styles.
pub const XLSX_STYLES_MAX: usize = 100_000;

/// Entries in the shared-text table, all held in memory while the sheet is
/// read: each costs a string header however short its text.
pub const XLSX_SHARED_STRINGS_MAX: usize = 2_000_000;

/// Bytes of one attribute value in the workbook, relationship and style
/// parts (sheet paths, number formats). Excel's own limit on a number
/// format is 255 characters.
pub const XLSX_ATTRIBUTE_BYTES_MAX: usize = 1024;

/// Attributes on one XML element. The parser looks attributes up by
/// scanning them and checks each for duplicates against the ones before,
/// so an element with many attributes costs time quadratic in their count.
pub const XLSX_ELEMENT_ATTRIBUTES_MAX: usize = 64;

/// Rows and columns of Excel's grid (1,048,576 × XFD); cell references
/// beyond them only come from damaged or hostile files.
const GRID_ROWS: u32 = 1_048_576;
const GRID_COLUMNS: u32 = 16_384;

/// Why a spreadsheet could not be read into a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SheetError {
    /// More than the caller's `rows_max` rows (blank ones included).
    TooManyRows,
    /// More than [`COLUMNS_MAX`] columns (blank ones included).
    TooManyColumns,
    /// Some part of the file is over one of this module's limits: more
    /// than `limit` of `what`.
    TooLarge { what: &'static str, limit: u64 },
    /// One cell cannot be shown as text. `row` counts from 1 and `column`
    /// is in letters, as the spreadsheet shows them.
    BadCell {
        row: u64,
        column: String,
        reason: String,
    },
    Unreadable {
        format: &'static str,
        reason: String,
    },
}

/// What an import tells its clerk about a [`SheetError`], in three kinds:
/// over its own row limit (the import names the limit), too large in some
/// other way (413), or unreadable (422, a bad cell named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SheetRefusal {
    TooManyRows,
    TooLarge {
        reason: String,
    },
    Unreadable {
        format: &'static str,
        reason: String,
    },
}

impl SheetError {
    pub fn refusal(self) -> SheetRefusal {
        match self {
            SheetError::TooManyRows => SheetRefusal::TooManyRows,
            SheetError::Unreadable { format, reason } => {
                SheetRefusal::Unreadable { format, reason }
            }
            too_large @ (SheetError::TooManyColumns | SheetError::TooLarge { .. }) => {
                SheetRefusal::TooLarge {
                    reason: too_large.to_string(),
                }
            }
            bad_cell @ SheetError::BadCell { .. } => SheetRefusal::Unreadable {
                format: "XLSX",
                reason: bad_cell.to_string(),
            },
        }
    }
}

impl fmt::Display for SheetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SheetError::TooManyRows => write!(f, "the sheet has more rows than can be imported"),
            SheetError::TooManyColumns => {
                write!(f, "the sheet has more than {COLUMNS_MAX} columns")
            }
            SheetError::TooLarge { what, limit } => {
                write!(f, "the file is too large: it has more than {limit} {what}")
            }
            SheetError::BadCell {
                row,
                column,
                reason,
            } => write!(f, "cell {column}{row} {reason}"),
            SheetError::Unreadable { format, reason } => {
                write!(f, "the file cannot be read as {format}: {reason}")
            }
        }
    }
}

impl std::error::Error for SheetError {}

/// The rows of a CSV file (UTF-8), at most `rows_max` of them, each of at
/// most [`COLUMNS_MAX`] cells of at most [`CELL_CHARS_MAX`] characters, and
/// at most [`CELLS_MAX`] cells in all.
pub fn csv_table(bytes: &[u8], rows_max: usize) -> Result<Vec<Vec<String>>, SheetError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut table: Vec<Vec<String>> = Vec::new();
    // A line of commas is a row of empty cells, each costing far more than
    // its one byte; cells are counted as well as rows.
    let mut cells = 0usize;
    for record in reader.records() {
        let record = record.map_err(|e| SheetError::Unreadable {
            format: "CSV",
            reason: e.to_string(),
        })?;
        if table.len() >= rows_max {
            return Err(SheetError::TooManyRows);
        }
        if record.len() > COLUMNS_MAX {
            return Err(SheetError::TooManyColumns);
        }
        cells += record.len();
        if cells > CELLS_MAX {
            return Err(too_large(CELLS, CELLS_MAX as u64));
        }
        let row = table.len() as u64;
        let mut cells_of_row = Vec::with_capacity(record.len());
        for (column, field) in record.iter().enumerate() {
            check_cell_text(field, row, column as u64)?;
            cells_of_row.push(field.to_string());
        }
        table.push(cells_of_row);
    }
    Ok(table)
}

/// The used rows of the first sheet of an XLSX workbook, at most
/// `rows_max`, and the spreadsheet index of the first of them (a sheet
/// whose used range starts below row 1 has rows above it).
///
/// As before, the table spans the used cells only: rows above the first
/// used one and columns left of the first used one are not in it.
pub fn xlsx_table(bytes: &[u8], rows_max: usize) -> Result<(usize, Vec<Vec<String>>), SheetError> {
    check_archive(bytes)?;
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(xlsx_unreadable)?;
    let name = workbook
        .sheet_names()
        .into_iter()
        .next()
        .ok_or_else(|| unreadable("the workbook has no sheet".into()))?;
    let mut cells = match workbook.worksheet_cells_reader(&name) {
        Ok(cells) => cells,
        // A chart sheet first: the table is empty, as it always was.
        Err(XlsxError::NotAWorksheet(_)) => return Ok((0, Vec::new())),
        Err(e) => return Err(xlsx_unreadable(e)),
    };
    // The sheet's declared `<dimension>` is not consulted: it may claim A1:A1
    // over a sheet reaching XFD1048576, or claim far more than is used (styled
    // blank cells), so only the cells themselves count.
    let mut table = SparseTable::new(rows_max);
    while let Some(cell) = cells.next_cell().map_err(xlsx_unreadable)? {
        let (row, column) = cell.get_position();
        // Blank cells do not widen the table; reading skipped them before too.
        if matches!(cell.get_value(), DataRef::Empty) {
            continue;
        }
        // Rows and cells without a reference are numbered by counting on
        // from the last one, which can run past the grid: the caller pads
        // the table with the rows above it, so this is refused too.
        if row >= GRID_ROWS || column >= GRID_COLUMNS {
            return Err(unreadable(format!(
                "a cell lies outside a spreadsheet's grid, at row {} column {}",
                u64::from(row) + 1,
                column_letters(column.into())
            )));
        }
        table.widen_to(row, column)?;
        let text = cell_text(cell.get_value(), row.into(), column.into())?;
        table.put(row, column, text)?;
    }
    Ok(table.into_dense())
}

/// Cells as they come, checked against the limits as each arrives; laid
/// out as rows only at the end, once the grid's size is known.
struct SparseTable {
    rows_max: usize,
    /// First and last used row and column so far.
    bounds: Option<(u32, u32, u32, u32)>,
    /// In document order: a later cell at the same place replaces an
    /// earlier one, as the previous reader did.
    cells: Vec<(u32, u32, String)>,
    text_bytes: usize,
}

impl SparseTable {
    fn new(rows_max: usize) -> Self {
        SparseTable {
            rows_max,
            bounds: None,
            cells: Vec::new(),
            text_bytes: 0,
        }
    }

    /// Grows the used area to take in a cell, refusing before the area is
    /// too large. Called before the cell's value is rendered, so a cell far
    /// away is refused without copying its text.
    fn widen_to(&mut self, row: u32, column: u32) -> Result<(), SheetError> {
        let (top, bottom, left, right) = match self.bounds {
            None => (row, row, column, column),
            Some((top, bottom, left, right)) => (
                top.min(row),
                bottom.max(row),
                left.min(column),
                right.max(column),
            ),
        };
        // Spans only grow, so refusing now cannot refuse a sheet that would
        // have fitted once fully read.
        let height = u64::from(bottom - top) + 1;
        let width = u64::from(right - left) + 1;
        if height > self.rows_max as u64 {
            return Err(SheetError::TooManyRows);
        }
        if width > COLUMNS_MAX as u64 {
            return Err(SheetError::TooManyColumns);
        }
        if height * width > CELLS_MAX as u64 {
            return Err(too_large(CELLS, CELLS_MAX as u64));
        }
        self.bounds = Some((top, bottom, left, right));
        Ok(())
    }

    fn put(&mut self, row: u32, column: u32, text: String) -> Result<(), SheetError> {
        // Counted as read, replaced cells included: a sheet that writes one
        // place over and over still costs the work of copying each value.
        if self.cells.len() >= CELLS_MAX {
            return Err(too_large(CELLS, CELLS_MAX as u64));
        }
        self.text_bytes += text.len();
        if self.text_bytes > TABLE_TEXT_BYTES_MAX {
            return Err(too_large(
                "bytes of text in the table's cells",
                TABLE_TEXT_BYTES_MAX as u64,
            ));
        }
        self.cells.push((row, column, text));
        Ok(())
    }

    fn into_dense(self) -> (usize, Vec<Vec<String>>) {
        let Some((top, bottom, left, right)) = self.bounds else {
            return (0, Vec::new());
        };
        // Bounded by `widen_to`: at most CELLS_MAX cells in all.
        let height = (bottom - top) as usize + 1;
        let width = (right - left) as usize + 1;
        let mut rows = vec![vec![String::new(); width]; height];
        for (row, column, text) in self.cells {
            rows[(row - top) as usize][(column - left) as usize] = text;
        }
        (top as usize, rows)
    }
}

const CELLS: &str = "cells in the table";

/// A cell's value as the clerk sees it.
fn cell_text(value: &DataRef<'_>, row: u64, column: u64) -> Result<String, SheetError> {
    let text = match value {
        DataRef::Empty => String::new(),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => {
            check_cell_text(s, row, column)?;
            s.clone()
        }
        DataRef::SharedString(s) => {
            check_cell_text(s, row, column)?;
            (*s).to_string()
        }
        DataRef::Float(f) => number_text(*f),
        DataRef::Int(i) => i.to_string(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::Error(e) => e.to_string(),
        DataRef::DateTime(d) => excel_date(d).map_err(|reason| bad_cell(row, column, reason))?,
    };
    Ok(text)
}

/// Whole numbers without `.0`. Below 2^63 the integer conversion is exact;
/// beyond it, it would saturate to a wrong number, so the float's own
/// (exact, exponent-free) rendering is used instead.
fn number_text(f: f64) -> String {
    const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && f.abs() < I64_BOUND {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

fn check_cell_text(text: &str, row: u64, column: u64) -> Result<(), SheetError> {
    // Counting characters costs a pass; bytes bound characters from above.
    if text.len() > CELL_CHARS_MAX && text.chars().count() > CELL_CHARS_MAX {
        return Err(bad_cell(
            row,
            column,
            format!("holds more than {CELL_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

/// Excel's serial for 9999-12-31 plus one: Excel shows no later date.
const EXCEL_SERIAL_END: f64 = 2_958_466.0;
/// Days between the 1900 and 1904 date systems' day zero.
const EXCEL_1904_OFFSET_DAYS: f64 = 1_462.0;

/// The date of an Excel date cell, or why it has none.
fn excel_date(date: &ExcelDateTime) -> Result<String, String> {
    // The date system is the workbook's, recorded in the value but not
    // exposed; comparing with the 1904 form of the same value recovers it.
    let kind = if date.is_duration() {
        ExcelDateTimeType::TimeDelta
    } else {
        ExcelDateTimeType::DateTime
    };
    let is_1904 = *date == ExcelDateTime::new(date.as_f64(), kind, true);
    let serial = if is_1904 {
        date.as_f64() + EXCEL_1904_OFFSET_DAYS
    } else {
        date.as_f64()
    };
    excel_serial_date(serial)
}

/// Excel stores dates as days since 1899-12-30 (counting its phantom
/// 1900-02-29, which this epoch absorbs for every date after March 1900).
///
/// Serials outside what Excel itself can show (before day 0, after
/// 9999-12-31, not a number) are refused rather than guessed at: a date
/// there is a damaged or hostile cell, and the date arithmetic must never
/// see it.
fn excel_serial_date(serial: f64) -> Result<String, String> {
    // Also false for NaN.
    if !(0.0..EXCEL_SERIAL_END).contains(&serial) {
        return Err(format!(
            "holds a date outside the years 1900 to 9999 (serial number {serial})"
        ));
    }
    // In range, so the conversion is exact.
    let days = serial.floor() as i64;
    let date = match days {
        // Day 0 holds time-only values; shown on the epoch, as before.
        0 => time::macros::date!(1899 - 12 - 30),
        // Before the phantom leap day, Excel counts from 1900-01-01 = 1.
        1..=59 => time::macros::date!(1899 - 12 - 31) + time::Duration::days(days),
        60 => return Err("holds 1900-02-29, a day that never existed".into()),
        _ => time::macros::date!(1899 - 12 - 30) + time::Duration::days(days),
    };
    Ok(civsync_protocol::domain::model::date_format::format(date))
}

/// Column letters as the spreadsheet shows them: 0 is `A`, 26 is `AA`.
fn column_letters(column: u64) -> String {
    let mut letters = Vec::new();
    let mut rest = column + 1;
    while rest > 0 {
        rest -= 1;
        letters.push(b'A' + (rest % 26) as u8);
        rest /= 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

fn bad_cell(row: u64, column: u64, reason: String) -> SheetError {
    SheetError::BadCell {
        row: row + 1,
        column: column_letters(column),
        reason,
    }
}

fn too_large(what: &'static str, limit: u64) -> SheetError {
    SheetError::TooLarge { what, limit }
}

fn unreadable(reason: String) -> SheetError {
    SheetError::Unreadable {
        format: "XLSX",
        reason,
    }
}

fn xlsx_unreadable(e: XlsxError) -> SheetError {
    unreadable(e.to_string())
}

/// An encrypted workbook is a Compound File, not a zip. The parser probes
/// every file for that format first, trusting the sizes in the file's own
/// header; a file that starts like a Compound File is refused before that
/// probe (an honest one could not be read as a workbook anyway).
const COMPOUND_FILE_SIGNATURE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Checks the archive before the workbook parser opens it, which unpacks
/// and keeps the whole shared-text table, the styles and the sheet list
/// at once.
///
/// Every entry is unpacked once here, through a reader that stops at the
/// entry's limit, and the bytes are discarded. Checking declared sizes
/// alone is not enough: they are the sender's claim, and the unpacker
/// does not hold an entry to them. Rebuilding a trimmed archive for the
/// parser would cost a copy in memory; the cost of this way is one extra
/// unpacking pass over at most [`XLSX_INFLATED_BYTES_MAX`] bytes, and
/// unpacking the same bytes again gives the same output, so the parser's
/// own pass is bounded by this one.
fn check_archive(bytes: &[u8]) -> Result<(), SheetError> {
    if bytes.starts_with(&COMPOUND_FILE_SIGNATURE) {
        return Err(unreadable(
            "the workbook is password-protected or in the old .xls format".into(),
        ));
    }
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| unreadable(e.to_string()))?;
    if archive.len() > XLSX_ENTRIES_MAX {
        return Err(too_large(
            "files inside the workbook",
            XLSX_ENTRIES_MAX as u64,
        ));
    }
    // Declared sizes first: a cheap refusal of honest-but-huge archives
    // before anything is unpacked.
    let mut names = Vec::with_capacity(archive.len());
    let mut declared = 0u64;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| unreadable(e.to_string()))?;
        declared = declared.saturating_add(entry.size());
        check_inflated(entry.size(), declared)?;
        names.push(entry.name().to_string());
    }
    let mut parts: Vec<Part> = names.iter().map(|name| Part::named(name)).collect();
    let mut by_path: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, name) in names.iter().enumerate() {
        by_path.entry(part_key(name)).or_default().push(index);
    }

    let mut inflated = 0u64;
    // The relationship part first: it names the entries the parser will
    // read as sheets, which are then scanned like the fixed parts. Marked,
    // not listed: many links to one name must not cost a list entry each.
    let mut is_sheet = vec![false; parts.len()];
    for (index, part) in parts.iter().enumerate() {
        if *part != Part::Relationships {
            continue;
        }
        unpack(&mut archive, index, *part, &mut inflated, &mut |target| {
            for path in sheet_paths(target) {
                for &sheet in by_path.get(&part_key(&path)).into_iter().flatten() {
                    is_sheet[sheet] = true;
                }
            }
        })?;
    }
    for (part, is_sheet) in parts.iter_mut().zip(is_sheet) {
        if is_sheet && *part == Part::Other {
            *part = Part::Sheet;
        }
    }
    for (index, part) in parts.into_iter().enumerate() {
        if part != Part::Relationships {
            unpack(&mut archive, index, part, &mut inflated, &mut |_| {})?;
        }
    }
    Ok(())
}

/// Where the parser looks for a sheet the relationship part points at: the
/// target under `xl/` unless it already starts there. The target as
/// written is included too, in case the two rules ever differ.
fn sheet_paths(target: &str) -> [String; 3] {
    let under_xl = if let Some(rest) = target.strip_prefix("/xl/") {
        format!("xl/{rest}")
    } else if target.starts_with("xl/") {
        target.to_string()
    } else {
        format!("xl/{target}")
    };
    [
        under_xl,
        target.to_string(),
        target.trim_start_matches('/').to_string(),
    ]
}

/// An entry name as the parser matches it: either slash, any ASCII case.
fn part_key(name: &str) -> String {
    name.replace('\\', "/").to_ascii_lowercase()
}

/// Unpacks one entry through the caps, scanning it if the parser will read
/// it as XML, and adds its unpacked size to `inflated`.
fn unpack(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    index: usize,
    part: Part,
    inflated: &mut u64,
    on_target: &mut dyn FnMut(&str),
) -> Result<(), SheetError> {
    let entry = archive
        .by_index(index)
        .map_err(|e| unreadable(e.to_string()))?;
    let entry_cap = XLSX_ENTRY_INFLATED_BYTES_MAX;
    let archive_cap = XLSX_INFLATED_BYTES_MAX - *inflated;
    let over = || {
        if entry_cap <= archive_cap {
            too_large(INFLATED_ENTRY, entry_cap)
        } else {
            too_large(INFLATED_ARCHIVE, XLSX_INFLATED_BYTES_MAX)
        }
    };
    let mut capped = Capped::new(entry, entry_cap.min(archive_cap));
    if part != Part::Other {
        let scanned = scan_part(BufReader::new(&mut capped), part, on_target);
        if capped.over {
            return Err(over());
        }
        scanned?;
    }
    // What the scan did not read (all of it, if not scanned; the rest after
    // malformed XML) is still unpacked, to count it.
    let drained = io::copy(&mut capped, &mut io::sink());
    if capped.over {
        return Err(over());
    }
    drained.map_err(|e| unreadable(format!("the workbook is damaged: {e}")))?;
    *inflated += capped.read;
    Ok(())
}

const INFLATED_ENTRY: &str = "bytes in one unpacked part of the workbook";
const INFLATED_ARCHIVE: &str = "bytes in the unpacked workbook";
const XML_EVENT: &str = "bytes in one XML tag or text of the workbook";

fn check_inflated(entry: u64, archive: u64) -> Result<(), SheetError> {
    if entry > XLSX_ENTRY_INFLATED_BYTES_MAX {
        return Err(too_large(INFLATED_ENTRY, XLSX_ENTRY_INFLATED_BYTES_MAX));
    }
    if archive > XLSX_INFLATED_BYTES_MAX {
        return Err(too_large(INFLATED_ARCHIVE, XLSX_INFLATED_BYTES_MAX));
    }
    Ok(())
}

/// A reader that fails, and remembers failing, once more than `left`
/// bytes come out of it.
struct Capped<R> {
    inner: R,
    left: u64,
    read: u64,
    over: bool,
}

impl<R> Capped<R> {
    fn new(inner: R, cap: u64) -> Self {
        Capped {
            inner,
            left: cap,
            read: 0,
            over: false,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.over {
            return Err(io::Error::other("unpacking limit reached"));
        }
        // One byte past the cap is asked for, to tell "exactly at the cap"
        // from "beyond it".
        let room = usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX);
        let len = buf.len().min(room);
        let n = self.inner.read(&mut buf[..len])?;
        if n as u64 > self.left {
            self.over = true;
            return Err(io::Error::other("unpacking limit reached"));
        }
        self.left -= n as u64;
        self.read += n as u64;
        Ok(n)
    }
}

/// A buffered reader that fails once one XML event has taken more than
/// [`XLSX_XML_EVENT_BYTES_MAX`] bytes. The XML parser gathers a whole tag
/// or text run in memory before handing it over, so without this one run
/// of a part could cost as much memory as the part.
struct EventBounded<R> {
    inner: R,
    taken: usize,
    over: bool,
}

impl<R: BufRead> Read for EventBounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(buf.len());
            buf[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for EventBounded<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.taken > XLSX_XML_EVENT_BYTES_MAX {
            self.over = true;
            return Err(io::Error::other("XML event limit reached"));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.taken += amount;
        self.inner.consume(amount);
    }
}

/// What an entry is to the workbook parser. The fixed parts are found by
/// the parser's own rule (case-insensitive, either slash); sheets are
/// whatever the relationship part points at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Workbook,
    Relationships,
    Styles,
    SharedStrings,
    Sheet,
    /// Never parsed (pictures, printer settings, other XML): only counted.
    Other,
}

impl Part {
    fn named(name: &str) -> Part {
        match part_key(name).as_str() {
            "xl/workbook.xml" => Part::Workbook,
            "xl/_rels/workbook.xml.rels" => Part::Relationships,
            "xl/styles.xml" => Part::Styles,
            "xl/sharedstrings.xml" => Part::SharedStrings,
            _ => Part::Other,
        }
    }

    fn is_metadata(self) -> bool {
        matches!(self, Part::Workbook | Part::Relationships | Part::Styles)
    }
}

/// Scans one unpacked entry as the workbook parser will read it (same
/// parser, same settings), refusing what would make that parser spend
/// memory or time out of proportion to the bytes. Calls `on_target` with
/// each relationship's target, decoded as the parser decodes it.
///
/// Where the scan meets malformed XML it stops: the parser stops at the
/// same place, so nothing after it is ever read.
fn scan_part<R: BufRead>(
    input: R,
    part: Part,
    on_target: &mut dyn FnMut(&str),
) -> Result<(), SheetError> {
    let mut xml = quick_xml::Reader::from_reader(EventBounded {
        inner: input,
        taken: 0,
        over: false,
    });
    let config = xml.config_mut();
    config.check_end_names = false;
    config.trim_text(false);
    config.check_comments = false;
    config.expand_empty_elements = true;
    let mut buf = Vec::new();
    let mut counted = 0usize;
    let mut sheets = 0usize;
    loop {
        buf.clear();
        xml.get_mut().taken = 0;
        let element = match xml.read_event_into(&mut buf) {
            Ok(Event::Start(element) | Event::Empty(element)) => element,
            Ok(Event::Eof) => return Ok(()),
            Err(_) if xml.get_ref().over => {
                return Err(too_large(XML_EVENT, XLSX_XML_EVENT_BYTES_MAX as u64))
            }
            Err(_) => return Ok(()),
            Ok(_) => continue,
        };
        check_attributes(&element, part)?;
        let local = element.local_name();
        let (counts, limit, what) = match part {
            Part::Workbook | Part::Relationships => (
                true,
                XLSX_WORKBOOK_ELEMENTS_MAX,
                "entries in the workbook's sheet list or its links",
            ),
            Part::Styles => (
                matches!(local.as_ref(), b"xf" | b"numFmt"),
                XLSX_STYLES_MAX,
                "styles in the workbook",
            ),
            Part::SharedStrings => (
                local.as_ref() == b"si",
                XLSX_SHARED_STRINGS_MAX,
                "shared texts in the workbook",
            ),
            Part::Sheet | Part::Other => (false, 0, ""),
        };
        if counts {
            counted += 1;
            if counted > limit {
                return Err(too_large(what, limit as u64));
            }
        }
        match (part, local.as_ref()) {
            (Part::Workbook, b"sheet") => {
                // The parser copies a sheet's path for each listing.
                sheets += 1;
                if sheets > XLSX_SHEETS_MAX {
                    return Err(too_large("sheets in the workbook", XLSX_SHEETS_MAX as u64));
                }
            }
            (Part::Relationships, b"Relationship") => {
                for attribute in element.attributes().with_checks(false).flatten() {
                    if attribute.key.as_ref() == b"Target" {
                        if let Ok(target) = xml.decoder().decode(&attribute.value) {
                            on_target(&target);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn check_attributes(element: &BytesStart<'_>, part: Part) -> Result<(), SheetError> {
    let local = element.local_name();
    // Checked in every scanned part, not only sheets: any of them could be
    // pointed at as a sheet.
    let reference = match local.as_ref() {
        b"c" | b"row" => Some(&b"r"[..]),
        b"dimension" => Some(&b"ref"[..]),
        _ => None,
    };
    let mut count = 0usize;
    // Without the duplicate check, which is the quadratic cost guarded here.
    for attribute in element.attributes().with_checks(false) {
        let Ok(attribute) = attribute else {
            // The parser stops at the same malformed attribute.
            break;
        };
        count += 1;
        if count > XLSX_ELEMENT_ATTRIBUTES_MAX {
            return Err(too_large(
                "attributes on one element of the workbook",
                XLSX_ELEMENT_ATTRIBUTES_MAX as u64,
            ));
        }
        if part.is_metadata() && attribute.value.len() > XLSX_ATTRIBUTE_BYTES_MAX {
            return Err(too_large(
                "bytes in one setting of the workbook",
                XLSX_ATTRIBUTE_BYTES_MAX as u64,
            ));
        }
        if Some(attribute.key.as_ref()) == reference && !reference_in_grid(&attribute.value) {
            // The parser's reference arithmetic assumes Excel's grid; out of
            // it, a reference would overflow rather than be refused.
            return Err(unreadable(format!(
                "the cell reference {:?} is outside a spreadsheet's grid",
                String::from_utf8_lossy(&attribute.value)
            )));
        }
    }
    Ok(())
}

/// `A1`, `XFD1048576`, a row number alone, or a range of two of them, all
/// inside Excel's grid and with the range's corners in order.
fn reference_in_grid(reference: &[u8]) -> bool {
    let mut corners = reference.split(|b| *b == b':');
    let Some(first) = corners.next().and_then(grid_position) else {
        return false;
    };
    match (corners.next(), corners.next()) {
        (None, _) => true,
        (Some(second), None) => grid_position(second).is_some_and(|(row, column)| {
            row >= first.0 && column.unwrap_or(0) >= first.1.unwrap_or(0)
        }),
        (Some(_), Some(_)) => false,
    }
}

/// Row (from 1) and column (from 1, if any) of one cell reference.
fn grid_position(reference: &[u8]) -> Option<(u32, Option<u32>)> {
    let letters = reference
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    let (column, row) = reference.split_at(letters);
    if letters > 3 || row.is_empty() || row.len() > 7 || !row.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let row = row
        .iter()
        .fold(0u32, |n, digit| n * 10 + u32::from(digit - b'0'));
    let column = column.iter().fold(0u32, |n, letter| {
        n * 26 + u32::from(letter.to_ascii_uppercase() - b'A') + 1
    });
    let in_grid = (1..=GRID_ROWS).contains(&row) && column <= GRID_COLUMNS;
    in_grid.then_some((row, (letters > 0).then_some(column)))
}

#[cfg(test)]
pub(crate) mod tests;
