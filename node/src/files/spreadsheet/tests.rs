use super::*;
use std::io::Write;
use std::sync::OnceLock;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// Bytes allocated and not yet freed by the current thread, at most,
/// while a closure runs: shows a refusal came before any grid was built.
mod allocations {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn track(delta: isize) {
        // `try_with`: the allocator also runs while thread-locals are
        // torn down.
        let _ = LIVE.try_with(|live| {
            let now = live.get() + delta;
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    struct Counting;

    // SAFETY: every call is passed on unchanged to the system allocator;
    // the bookkeeping touches only const-initialised thread-locals,
    // which never allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            track(layout.size() as isize);
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            track(layout.size() as isize);
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            track(-(layout.size() as isize));
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            track(new_size as isize - layout.size() as isize);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    pub fn peak_during<T>(work: impl FnOnce() -> T) -> (T, usize) {
        let start = LIVE.with(Cell::get);
        PEAK.with(|peak| peak.set(start));
        let out = work();
        let peak = PEAK.with(Cell::get) - start;
        (out, peak.max(0) as usize)
    }
}

const MIB: usize = 1024 * 1024;
/// Far below any grid a bomb asks for, far above what reading a small
/// file needs.
const SMALL_PEAK_BYTES: usize = 16 * MIB;

pub(crate) const MAIN_NS: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const REL_NS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

/// The parts of a minimal workbook around one sheet. Style 1 is a date.
fn book_parts(sheet_data: &str, date1904: bool) -> Vec<(String, Vec<u8>)> {
    let content_types = concat!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
        r#"<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">"#,
        r#"<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>"#,
        r#"<Default Extension="xml" ContentType="application/xml"/>"#,
        r#"<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>"#,
        r#"<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#,
        r#"</Types>"#
    );
    let workbook = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><workbookPr date1904="{}"/><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
        u8::from(date1904)
    );
    let relationships = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{REL_NS}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{REL_NS}/styles" Target="styles.xml"/></Relationships>"#
    );
    let styles = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><styleSheet xmlns="{MAIN_NS}"><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14"/></cellXfs></styleSheet>"#
    );
    vec![
        ("[Content_Types].xml".into(), content_types.into()),
        ("xl/workbook.xml".into(), workbook.into_bytes()),
        (
            "xl/_rels/workbook.xml.rels".into(),
            relationships.into_bytes(),
        ),
        ("xl/styles.xml".into(), styles.into_bytes()),
        (
            "xl/worksheets/sheet1.xml".into(),
            sheet_xml(sheet_data).into_bytes(),
        ),
    ]
}

fn sheet_xml(sheet_data: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}">{sheet_data}</worksheet>"#
    )
}

/// A part written in pieces, so that a huge one is never held whole.
pub(crate) struct Streamed {
    pub(crate) name: &'static str,
    pub(crate) head: Vec<u8>,
    /// Written `times` times over.
    pub(crate) repeated: Vec<u8>,
    pub(crate) times: usize,
    pub(crate) tail: Vec<u8>,
}

fn zip_of(
    parts: &[(String, Vec<u8>)],
    streamed: &[Streamed],
    method: CompressionMethod,
) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in parts {
        writer.start_file(name.as_str(), options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    for part in streamed {
        writer.start_file(part.name, options).unwrap();
        writer.write_all(&part.head).unwrap();
        let per_chunk = (MIB / part.repeated.len()).max(1);
        let chunk = part.repeated.repeat(per_chunk);
        let mut left = part.times;
        while left > 0 {
            let now = left.min(per_chunk);
            writer
                .write_all(&chunk[..now * part.repeated.len()])
                .unwrap();
            left -= now;
        }
        writer.write_all(&part.tail).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

pub(crate) fn book(sheet_data: &str) -> Vec<u8> {
    zip_of(
        &book_parts(sheet_data, false),
        &[],
        CompressionMethod::Deflated,
    )
}

/// Rewrites the sizes an archive declares for entry `name` (both in its
/// directory and in the entry's own header), leaving the data alone.
fn understate_size(archive: &mut [u8], name: &str, size: u32) {
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    let u32_at =
        |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
    let end = (0..=archive.len() - 22)
        .rev()
        .find(|&at| archive[at..at + 4] == [0x50, 0x4b, 0x05, 0x06])
        .expect("end of central directory");
    let count = u16_at(archive, end + 10);
    let mut at = u32_at(archive, end + 16);
    for _ in 0..count {
        let name_len = u16_at(archive, at + 28);
        let extra_len = u16_at(archive, at + 30);
        let comment_len = u16_at(archive, at + 32);
        if &archive[at + 46..at + 46 + name_len] == name.as_bytes() {
            archive[at + 24..at + 28].copy_from_slice(&size.to_le_bytes());
            let local = u32_at(archive, at + 42);
            archive[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
            return;
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    panic!("no entry {name}");
}

fn is_bad_cell<T>(result: &Result<T, SheetError>, row: u64, column: &str) -> bool {
    matches!(result, Err(SheetError::BadCell { row: r, column: c, .. }) if *r == row && c == column)
}

fn table(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|row| row.iter().map(|cell| cell.to_string()).collect())
        .collect()
}

#[test]
fn excel_dates_print_as_the_clerk_typed_them() {
    assert_eq!(excel_serial_date(45_963.0).unwrap(), "2025-11-02");
    assert_eq!(
        excel_serial_date(45_963.75).unwrap(),
        "2025-11-02",
        "the time of day is dropped"
    );
    assert_eq!(excel_serial_date(1.0).unwrap(), "1900-01-01");
    assert_eq!(excel_serial_date(59.0).unwrap(), "1900-02-28");
    assert_eq!(excel_serial_date(61.0).unwrap(), "1900-03-01");
    assert_eq!(excel_serial_date(2_958_465.0).unwrap(), "9999-12-31");
    assert_eq!(excel_serial_date(0.5).unwrap(), "1899-12-30");
}

#[test]
fn impossible_excel_dates_are_refused_not_guessed() {
    for serial in [
        1e15,
        -1e15,
        -1.0,
        60.0,
        2_958_466.0,
        f64::MAX,
        f64::MIN,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        assert!(excel_serial_date(serial).is_err(), "{serial}");
    }
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

#[test]
fn a_csv_reads_as_written_and_is_bounded_across_and_within_cells() {
    let csv = "姓名,电话\n张三,13800000000\n李四,\n";
    assert_eq!(
        csv_table(csv.as_bytes(), 10).unwrap(),
        table(&[&["姓名", "电话"], &["张三", "13800000000"], &["李四", ""]])
    );
    let wide = ",".repeat(COLUMNS_MAX);
    assert_eq!(
        csv_table(wide.as_bytes(), 10),
        Err(SheetError::TooManyColumns)
    );
    assert_eq!(
        csv_table(",".repeat(COLUMNS_MAX - 1).as_bytes(), 10).unwrap()[0].len(),
        COLUMNS_MAX
    );
    let long = format!("a,b\nc,{}\n", "字".repeat(CELL_CHARS_MAX + 1));
    assert!(matches!(
        csv_table(long.as_bytes(), 10),
        Err(SheetError::BadCell { row: 2, ref column, .. }) if column == "B"
    ));
    let at_limit = "字".repeat(CELL_CHARS_MAX);
    assert_eq!(csv_table(at_limit.as_bytes(), 10).unwrap()[0][0], at_limit);
}

#[test]
fn an_honest_workbook_reads_as_the_clerk_sees_it() {
    use rust_xlsxwriter::{ExcelDateTime as Date, Format, Workbook};
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    // Starts at B2: the row above and the column to the left are unused.
    for (column, header) in ["姓名", "出生日期", "户数", "面积"].iter().enumerate() {
        sheet.write_string(1, column as u16 + 1, *header).unwrap();
    }
    sheet.write_string(2, 1, "张三").unwrap();
    sheet
        .write_datetime_with_format(2, 2, Date::from_ymd(1960, 3, 1).unwrap(), &date)
        .unwrap();
    sheet.write_number(2, 3, 3.0).unwrap();
    sheet.write_number(2, 4, 12.5).unwrap();
    sheet.write_string(3, 1, "李四").unwrap();
    sheet
        .write_datetime_with_format(3, 2, Date::from_ymd(2025, 11, 2).unwrap(), &date)
        .unwrap();
    sheet.write_number(3, 3, 0.0).unwrap();
    sheet.write_number(3, 4, -7.25).unwrap();
    sheet.write_boolean(5, 4, true).unwrap();
    sheet.write_string(5, 1, "备注：无").unwrap();
    let bytes = workbook.save_to_buffer().unwrap();

    let expected = table(&[
        &["姓名", "出生日期", "户数", "面积"],
        &["张三", "1960-03-01", "3", "12.5"],
        &["李四", "2025-11-02", "0", "-7.25"],
        &["", "", "", ""],
        &["备注：无", "", "", "true"],
    ]);
    assert_eq!(xlsx_table(&bytes, 5), Ok((1, expected)));
    assert_eq!(xlsx_table(&bytes, 4), Err(SheetError::TooManyRows));
}

#[test]
fn a_workbook_of_the_1904_date_system_reads_the_same_dates() {
    let cells = r#"<sheetData><row r="1"><c r="A1" s="1"><v>0</v></c><c r="B1" s="1"><v>44501</v></c></row></sheetData>"#;
    let bytes = zip_of(&book_parts(cells, true), &[], CompressionMethod::Deflated);
    assert_eq!(
        xlsx_table(&bytes, 10),
        Ok((0, table(&[&["1904-01-01", "2025-11-02"]])))
    );
}

#[test]
fn a_date_no_calendar_holds_is_refused_naming_its_cell() {
    for value in ["1e15", "-1e15", "1e308", "NaN", "inf", "-1"] {
        let cells = format!(
            r#"<sheetData><row r="4"><c r="B4" s="1"><v>45963</v></c><c r="C4" s="1"><v>{value}</v></c></row></sheetData>"#
        );
        let result = xlsx_table(&book(&cells), 10);
        assert!(is_bad_cell(&result, 4, "C"), "{value}: {result:?}");
        let message = result.unwrap_err().to_string();
        assert!(message.starts_with("cell C4 "), "{message}");
    }
}

#[test]
fn huge_whole_numbers_are_not_saturated() {
    let cells = r#"<sheetData><row r="1"><c r="A1"><v>1e20</v></c><c r="B1"><v>-3</v></c><c r="C1"><v>-0</v></c></row></sheetData>"#;
    assert_eq!(
        xlsx_table(&book(cells), 10),
        Ok((0, table(&[&["100000000000000000000", "-3", "0"]])))
    );
}

pub(crate) const FAR_CORNERS: &str = r#"<sheetData><row r="1"><c r="A1"><v>1</v></c></row><row r="1048576"><c r="XFD1048576"><v>2</v></c></row></sheetData>"#;

#[test]
fn cells_at_opposite_corners_are_refused_without_building_the_grid() {
    let bytes = book(FAR_CORNERS);
    let (result, peak) = allocations::peak_during(|| xlsx_table(&bytes, 10));
    assert_eq!(result, Err(SheetError::TooManyRows));
    assert!(peak < SMALL_PEAK_BYTES, "{peak} bytes");
    let (result, peak) = allocations::peak_during(|| xlsx_table(&bytes, usize::MAX));
    assert_eq!(result, Err(SheetError::TooManyColumns));
    assert!(peak < SMALL_PEAK_BYTES, "{peak} bytes");
}

#[test]
fn a_lying_dimension_does_not_let_a_far_cell_through() {
    let bytes = book(&format!(r#"<dimension ref="A1:A1"/>{FAR_CORNERS}"#));
    let (result, peak) = allocations::peak_during(|| xlsx_table(&bytes, 2_000_000));
    assert_eq!(result, Err(SheetError::TooManyColumns));
    assert!(peak < SMALL_PEAK_BYTES, "{peak} bytes");
}

#[test]
fn a_table_wide_and_tall_but_sparse_is_refused_by_its_cell_count() {
    // 100,000 rows × 200 columns: within the row and column limits, but
    // laid out it would be 20 million cells.
    let cells = r#"<sheetData><row r="1"><c r="A1"><v>1</v></c></row><row r="100000"><c r="GR100000"><v>2</v></c></row></sheetData>"#;
    assert_eq!(
        xlsx_table(&book(cells), 200_000),
        Err(SheetError::TooLarge {
            what: CELLS,
            limit: CELLS_MAX as u64
        })
    );
}

#[test]
fn references_outside_the_grid_are_refused_not_overflowed() {
    for sheet_data in [
        r#"<sheetData><row r="1"><c r="A99999999999"><v>1</v></c></row></sheetData>"#,
        r#"<sheetData><row r="1"><c r="A1048577"><v>1</v></c></row></sheetData>"#,
        r#"<sheetData><row r="1"><c r="XFE1"><v>1</v></c></row></sheetData>"#,
        r#"<sheetData><row r="4294967296"><c><v>1</v></c></row></sheetData>"#,
        r#"<sheetData><row r="0"><c><v>1</v></c></row></sheetData>"#,
        r#"<dimension ref="B2:A1"/><sheetData></sheetData>"#,
        r#"<sheetData><row r="1048576"></row><row><c><v>1</v></c></row></sheetData>"#,
        r#"<sheetData><row r="1"><c r="XFD1"/><c><v>1</v></c></row></sheetData>"#,
    ] {
        let result = xlsx_table(&book(sheet_data), 10);
        assert!(
            matches!(&result, Err(SheetError::Unreadable { reason, .. }) if reason.contains("grid")),
            "{sheet_data}: {result:?}"
        );
    }
}

#[test]
fn an_element_with_thousands_of_attributes_is_refused() {
    let attributes: String = (0..10_000).map(|i| format!(r#" a{i}="""#)).collect();
    let cells =
        format!(r#"<sheetData><row r="1"><c{attributes} r="A1"><v>1</v></c></row></sheetData>"#);
    assert_eq!(
        xlsx_table(&book(&cells), 10),
        Err(SheetError::TooLarge {
            what: "attributes on one element of the workbook",
            limit: XLSX_ELEMENT_ATTRIBUTES_MAX as u64
        })
    );
}

/// Parts of 1 GiB of one repeated byte: about a megabyte packed.
fn gigabyte_part(name: &'static str, head: String, byte: u8, tail: &str) -> Vec<u8> {
    let mut parts = book_parts("", false);
    parts.retain(|(part, _)| part != name);
    let bomb = Streamed {
        name,
        head: head.into_bytes(),
        repeated: vec![byte; 4096],
        times: 256 * 1024,
        tail: tail.as_bytes().to_vec(),
    };
    zip_of(&parts, &[bomb], CompressionMethod::Deflated)
}

pub(crate) fn gigabyte_sheet() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        gigabyte_part(
            "xl/worksheets/sheet1.xml",
            format!(r#"<worksheet xmlns="{MAIN_NS}"><sheetData>"#),
            b' ',
            "</sheetData></worksheet>",
        )
    })
}

const ENTRY_TOO_LARGE: SheetError = SheetError::TooLarge {
    what: INFLATED_ENTRY,
    limit: XLSX_ENTRY_INFLATED_BYTES_MAX,
};
const ARCHIVE_TOO_LARGE: SheetError = SheetError::TooLarge {
    what: INFLATED_ARCHIVE,
    limit: XLSX_INFLATED_BYTES_MAX,
};
const EVENT_TOO_LARGE: SheetError = SheetError::TooLarge {
    what: XML_EVENT,
    limit: XLSX_XML_EVENT_BYTES_MAX as u64,
};

#[test]
fn a_sheet_declaring_a_gigabyte_is_refused_before_unpacking() {
    let bytes = gigabyte_sheet();
    assert!(bytes.len() < 8 * MIB, "{} bytes packed", bytes.len());
    let (result, peak) = allocations::peak_during(|| xlsx_table(bytes, 10));
    assert_eq!(result, Err(ENTRY_TOO_LARGE));
    assert!(peak < SMALL_PEAK_BYTES, "{peak} bytes");
}

#[test]
fn a_sheet_lying_about_its_size_is_refused_while_unpacking() {
    let mut bytes = gigabyte_sheet().to_vec();
    understate_size(&mut bytes, "xl/worksheets/sheet1.xml", 1000);
    let (result, peak) = allocations::peak_during(|| xlsx_table(&bytes, 10));
    // The run of spaces is one text to the XML parser: refused as that,
    // long before the part's own limit.
    assert_eq!(result, Err(EVENT_TOO_LARGE));
    assert!(peak < SMALL_PEAK_BYTES, "{peak} bytes");
}

#[test]
fn a_sheet_of_small_tags_lying_about_its_size_is_refused_while_unpacking() {
    let mut parts = book_parts("", false);
    parts.retain(|(part, _)| part != "xl/worksheets/sheet1.xml");
    let rows = Streamed {
        name: "xl/worksheets/sheet1.xml",
        head: format!(r#"<worksheet xmlns="{MAIN_NS}"><sheetData>"#).into_bytes(),
        repeated: b"<row></row>".to_vec(),
        times: (XLSX_ENTRY_INFLATED_BYTES_MAX as usize / 11) + 1,
        tail: b"</sheetData></worksheet>".to_vec(),
    };
    let mut bytes = zip_of(&parts, &[rows], CompressionMethod::Deflated);
    assert_eq!(xlsx_table(&bytes, 10), Err(ENTRY_TOO_LARGE));
    understate_size(&mut bytes, "xl/worksheets/sheet1.xml", 1000);
    let (result, peak) = allocations::peak_during(|| xlsx_table(&bytes, 10));
    assert_eq!(result, Err(ENTRY_TOO_LARGE));
    assert!(peak < SMALL_PEAK_BYTES, "{peak} bytes");
}

#[test]
fn a_picture_lying_about_its_size_is_refused_while_unpacking() {
    // Never parsed, but unpacked all the same: counted, not trusted.
    let mut bytes = gigabyte_part("xl/media/image1.png", String::new(), 0, "");
    understate_size(&mut bytes, "xl/media/image1.png", 1000);
    let (result, peak) = allocations::peak_during(|| xlsx_table(&bytes, 10));
    assert_eq!(result, Err(ENTRY_TOO_LARGE));
    assert!(peak < SMALL_PEAK_BYTES, "{peak} bytes");
}

#[test]
fn entries_within_their_limit_but_too_large_together_are_refused() {
    let filler = |name| Streamed {
        name,
        head: Vec::new(),
        repeated: vec![0; 4096],
        times: 150 * 256,
        tail: Vec::new(),
    };
    let names = ["xl/media/a.bin", "xl/media/b.bin", "xl/media/c.bin"];
    let mut bytes = zip_of(
        &book_parts(FAR_CORNERS, false),
        &names.map(filler),
        CompressionMethod::Deflated,
    );
    assert_eq!(xlsx_table(&bytes, 10), Err(ARCHIVE_TOO_LARGE));
    for name in names {
        understate_size(&mut bytes, name, 10);
    }
    let (result, peak) = allocations::peak_during(|| xlsx_table(&bytes, 10));
    assert_eq!(result, Err(ARCHIVE_TOO_LARGE));
    assert!(peak < SMALL_PEAK_BYTES, "{peak} bytes");
}

#[test]
fn an_archive_of_too_many_entries_is_refused() {
    let mut parts = book_parts(FAR_CORNERS, false);
    for i in 0..XLSX_ENTRIES_MAX {
        parts.push((format!("xl/media/{i}.bin"), Vec::new()));
    }
    assert_eq!(
        xlsx_table(&zip_of(&parts, &[], CompressionMethod::Stored), 10),
        Err(SheetError::TooLarge {
            what: "files inside the workbook",
            limit: XLSX_ENTRIES_MAX as u64
        })
    );
}

pub(crate) fn with_shared_strings(sheet_data: &str, shared: Streamed) -> Vec<u8> {
    zip_of(
        &book_parts(sheet_data, false),
        &[shared],
        CompressionMethod::Deflated,
    )
}

#[test]
fn a_shared_text_table_unpacking_to_hundreds_of_megabytes_is_refused() {
    let cells = r#"<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row></sheetData>"#;
    let bomb = Streamed {
        name: "xl/sharedStrings.xml",
        head: format!(r#"<sst xmlns="{MAIN_NS}"><si><t>"#).into_bytes(),
        repeated: vec![b'A'; 4096],
        times: 256 * 256,
        tail: b"</t></si></sst>".to_vec(),
    };
    let mut bytes = with_shared_strings(cells, bomb);
    assert_eq!(xlsx_table(&bytes, 10), Err(ENTRY_TOO_LARGE));
    understate_size(&mut bytes, "xl/sharedStrings.xml", 100);
    let (result, peak) = allocations::peak_during(|| xlsx_table(&bytes, 10));
    assert_eq!(result, Err(EVENT_TOO_LARGE));
    assert!(peak < SMALL_PEAK_BYTES, "{peak} bytes");
}

#[test]
fn a_shared_text_table_of_millions_of_tiny_texts_is_refused() {
    // 3 million entries in 48 MiB: under the size limit, but each would
    // cost a string header in memory.
    let bomb = Streamed {
        name: "xl/sharedStrings.xml",
        head: format!(r#"<sst xmlns="{MAIN_NS}">"#).into_bytes(),
        repeated: b"<si><t>a</t></si>".to_vec(),
        times: 3_000_000,
        tail: b"</sst>".to_vec(),
    };
    assert_eq!(
        xlsx_table(&with_shared_strings("<sheetData/>", bomb), 10),
        Err(SheetError::TooLarge {
            what: "shared texts in the workbook",
            limit: XLSX_SHARED_STRINGS_MAX as u64
        })
    );
}

#[test]
fn one_shared_text_repeated_in_many_cells_is_bounded() {
    let shared = |text: String| Streamed {
        name: "xl/sharedStrings.xml",
        head: format!(r#"<sst xmlns="{MAIN_NS}"><si><t>"#).into_bytes(),
        repeated: text.into_bytes(),
        times: 1,
        tail: b"</t></si></sst>".to_vec(),
    };
    // 5,000 cells of 30,000 characters each: 150 MB of text from a file
    // of a few kilobytes.
    let cells: String = (1..=5000)
        .map(|row| format!(r#"<row r="{row}"><c r="A{row}" t="s"><v>0</v></c></row>"#))
        .collect();
    let cells = format!("<sheetData>{cells}</sheetData>");
    let result = xlsx_table(
        &with_shared_strings(&cells, shared("x".repeat(30_000))),
        10_000,
    );
    assert!(
        result
            == Err(SheetError::TooLarge {
                what: "bytes of text in the table's cells",
                limit: TABLE_TEXT_BYTES_MAX as u64
            }),
        "{:?}",
        result.map(|(first, rows)| (first, rows.len()))
    );
    let one_cell = r#"<sheetData><row r="2"><c r="D2" t="s"><v>0</v></c></row></sheetData>"#;
    let result = xlsx_table(
        &with_shared_strings(one_cell, shared("长".repeat(CELL_CHARS_MAX + 1))),
        10,
    );
    assert!(is_bad_cell(&result, 2, "D"), "{:?}", result.err());
}

#[test]
fn a_sheet_filed_under_another_name_is_checked_all_the_same() {
    // The relationship part decides which entry is the sheet; the checks
    // follow it, whatever the entry is called.
    let bad_sheet =
        sheet_xml(r#"<sheetData><row r="1"><c r="A99999999999"><v>1</v></c></row></sheetData>"#);
    for (target, entry) in [
        ("media/image9.png", "xl/media/image9.png"),
        ("/xl/Media/Image9.PNG", "xl/media/image9.png"),
        ("../docProps/app.xml", "xl/../docProps/app.xml"),
    ] {
        let mut parts = book_parts("", false);
        parts.retain(|(name, _)| name != "xl/worksheets/sheet1.xml");
        for (name, bytes) in &mut parts {
            if name == "xl/_rels/workbook.xml.rels" {
                *bytes = String::from_utf8(bytes.clone())
                    .unwrap()
                    .replace("worksheets/sheet1.xml", target)
                    .into_bytes();
            }
        }
        parts.push((entry.to_string(), bad_sheet.clone().into_bytes()));
        let result = xlsx_table(&zip_of(&parts, &[], CompressionMethod::Deflated), 10);
        assert!(
            matches!(&result, Err(SheetError::Unreadable { reason, .. }) if reason.contains("grid")),
            "{target}: {result:?}"
        );
    }
}

#[test]
fn the_largest_roster_the_import_takes_still_reads() {
    use rust_xlsxwriter::{ExcelDateTime as Date, Format, Workbook};
    const PEOPLE: u32 = 200_000;
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let headers = [
        "编号",
        "姓名",
        "性别",
        "出生日期",
        "住址",
        "电话",
        "身份证号",
        "技能",
        "服务类别",
        "同意公开",
        "党员",
        "注册日期",
    ];
    for (column, header) in headers.iter().enumerate() {
        sheet.write_string(0, column as u16, *header).unwrap();
    }
    let born = Date::from_ymd(1970, 1, 1).unwrap();
    let joined = Date::from_ymd(2025, 11, 2).unwrap();
    for person in 1..=PEOPLE {
        sheet.write_number(person, 0, f64::from(person)).unwrap();
        sheet
            .write_string(person, 1, format!("张{person}"))
            .unwrap();
        sheet.write_string(person, 2, "女").unwrap();
        sheet
            .write_datetime_with_format(person, 3, &born, &date)
            .unwrap();
        sheet
            .write_string(
                person,
                4,
                format!("某某省某某县某某镇某某村{}组", person % 50),
            )
            .unwrap();
        sheet
            .write_string(person, 5, format!("138{person:08}"))
            .unwrap();
        sheet
            .write_string(person, 6, format!("110101197001{person:06}"))
            .unwrap();
        sheet.write_string(person, 7, "医疗救护；心理疏导").unwrap();
        sheet.write_string(person, 8, "助老").unwrap();
        sheet.write_string(person, 9, "是").unwrap();
        sheet.write_string(person, 10, "否").unwrap();
        sheet
            .write_datetime_with_format(person, 11, &joined, &date)
            .unwrap();
    }
    let bytes = workbook.save_to_buffer().unwrap();
    let (result, peak) = allocations::peak_during(|| xlsx_table(&bytes, PEOPLE as usize + 1));
    // About 260 MB measured: the shared texts, the cells as read and the
    // table laid out. A guard against the reading growing, not a budget.
    assert!(peak < 512 * MIB, "{peak} bytes");
    let (first, rows) = result.unwrap();
    assert_eq!(first, 0);
    assert_eq!(rows.len(), PEOPLE as usize + 1);
    assert_eq!(rows[0], headers);
    assert_eq!(
        rows[PEOPLE as usize],
        [
            "200000",
            "张200000",
            "女",
            "1970-01-01",
            "某某省某某县某某镇某某村0组",
            "13800200000",
            "110101197001200000",
            "医疗救护；心理疏导",
            "助老",
            "是",
            "否",
            "2025-11-02"
        ]
    );
}

#[test]
fn an_encrypted_workbook_is_refused_before_parsing() {
    let mut bytes = COMPOUND_FILE_SIGNATURE.to_vec();
    bytes.extend_from_slice(&book(FAR_CORNERS));
    assert!(matches!(
        xlsx_table(&bytes, 10),
        Err(SheetError::Unreadable { reason, .. }) if reason.contains("password")
    ));
}

#[test]
fn every_refusal_reads_as_plain_words() {
    let errors = [
        SheetError::TooManyRows,
        SheetError::TooManyColumns,
        ENTRY_TOO_LARGE,
        SheetError::BadCell {
            row: 4,
            column: "C".into(),
            reason: "holds a date outside the years 1900 to 9999 (serial number 1e15)".into(),
        },
        SheetError::Unreadable {
            format: "XLSX",
            reason: "invalid Zip archive".into(),
        },
    ];
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "the sheet has more rows than can be imported",
            "the sheet has more than 256 columns",
            "the file is too large: it has more than 201326592 bytes in one unpacked part of the workbook",
            "cell C4 holds a date outside the years 1900 to 9999 (serial number 1e15)",
            "the file cannot be read as XLSX: invalid Zip archive",
        ]
    );
    assert_eq!(column_letters(0), "A");
    assert_eq!(column_letters(25), "Z");
    assert_eq!(column_letters(26), "AA");
    assert_eq!(column_letters(16_383), "XFD");
}

fn honest_workbook() -> &'static [u8] {
    static BOOK: OnceLock<Vec<u8>> = OnceLock::new();
    BOOK.get_or_init(|| {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.write_string(0, 0, "姓名").unwrap();
        sheet.write_number(0, 1, 42.0).unwrap();
        sheet.write_string(1, 0, "李四").unwrap();
        sheet.write_number(1, 1, 0.5).unwrap();
        workbook.save_to_buffer().unwrap()
    })
}

/// Uncompressed, so that flipped bytes land in the XML itself.
fn stored_workbook() -> &'static [u8] {
    static BOOK: OnceLock<Vec<u8>> = OnceLock::new();
    BOOK.get_or_init(|| {
        let cells = r#"<dimension ref="A1:C2"/><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" s="1"><v>45963</v></c><c r="C1" t="inlineStr"><is><t>户</t></is></c></row><row r="2"><c r="A2"><v>2.5</v></c><c r="B2" t="b"><v>1</v></c><c r="C2" t="e"><v>#N/A</v></c></row></sheetData>"#;
        let mut parts = book_parts(cells, false);
        parts.push((
            "xl/sharedStrings.xml".into(),
            format!(r#"<sst xmlns="{MAIN_NS}"><si><t>张三</t></si></sst>"#).into_bytes(),
        ));
        zip_of(&parts, &[], CompressionMethod::Stored)
    })
}

#[test]
fn the_fuzzing_bases_read_cleanly() {
    assert_eq!(
        xlsx_table(honest_workbook(), 10),
        Ok((0, table(&[&["姓名", "42"], &["李四", "0.5"]])))
    );
    assert_eq!(
        xlsx_table(stored_workbook(), 10),
        Ok((
            0,
            table(&[&["张三", "2025-11-02", "户"], &["2.5", "true", "#N/A"]])
        ))
    );
}

fn flipped(base: &[u8], flips: &[(usize, u8)]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for &(at, byte) in flips {
        let at = at % bytes.len();
        bytes[at] ^= byte;
    }
    bytes
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
        let _ = xlsx_table(&bytes, 100);
        let _ = csv_table(&bytes, 100);
        let mut zip_like = b"PK\x03\x04".to_vec();
        zip_like.extend_from_slice(&bytes);
        let _ = xlsx_table(&zip_like, 100);
    }

    #[test]
    fn flipped_workbooks_never_panic(
        flips in proptest::collection::vec((proptest::num::usize::ANY, 1..=255u8), 1..8)
    ) {
        let _ = xlsx_table(&flipped(honest_workbook(), &flips), 100);
        let _ = xlsx_table(&flipped(stored_workbook(), &flips), 100);
    }
}

#[test]
fn a_stored_workbook_survives_every_single_byte_flip() {
    // Exhaustive over positions, one flip pattern: each byte of each part
    // and of the archive's own records.
    let base = stored_workbook();
    for at in 0..base.len() {
        let _ = xlsx_table(&flipped(base, &[(at, 0x5a)]), 100);
    }
}
