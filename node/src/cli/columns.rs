//! Aligned plain-text columns for a terminal: a header of Chinese names
//! over the English keys of the API's JSON (what `--json` prints and a
//! technician searches for), one line per row, a 合计 line under a rule,
//! and footer sentences (counts).
//!
//! Widths are terminal columns (`unicode-width`): a Chinese character takes
//! two, `★` or `·` one, a combining mark none; counting characters or bytes
//! would push every column after a name out of line.

use unicode_width::UnicodeWidthStr;

/// Where a cell sits in its column: text left, figures right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A column: its Chinese header, the JSON key it shows, its alignment.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub chinese: &'static str,
    pub key: &'static str,
    pub align: Align,
}

/// A left-aligned column.
pub const fn text(chinese: &'static str, key: &'static str) -> Column {
    Column {
        chinese,
        key,
        align: Align::Left,
    }
}

/// A right-aligned column (counts, hours).
pub const fn figure(chinese: &'static str, key: &'static str) -> Column {
    Column {
        chinese,
        key,
        align: Align::Right,
    }
}

#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
    total: Option<Vec<String>>,
    notes: Vec<String>,
}

/// Terminal columns `text` takes.
pub fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` followed by spaces up to `columns` terminal columns.
pub fn pad(text: &str, columns: usize) -> String {
    format!("{text}{}", " ".repeat(columns.saturating_sub(width(text))))
}

/// A cell on one line: a line break or tab in a name would break the
/// table, so control characters print as spaces.
fn one_line(cell: &str) -> String {
    cell.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Table {
    pub fn new(columns: &[Column]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
            total: None,
            notes: Vec::new(),
        }
    }

    /// A row; missing cells print empty, extra ones are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The 合计 line, printed under a rule after the rows.
    pub fn total(&mut self, cells: Vec<String>) {
        self.total = Some(cells);
    }

    /// A sentence printed after the table (counts, what is missing).
    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    pub fn render(&self) -> String {
        let cell = |cells: &[String], at: usize| one_line(cells.get(at).map_or("", String::as_str));
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(at, column)| {
                self.rows
                    .iter()
                    .chain(self.total.iter())
                    .map(|cells| width(&cell(cells, at)))
                    .chain([width(column.chinese), width(column.key)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<String>| -> String {
            let shown: Vec<String> = cells
                .iter()
                .zip(&self.columns)
                .zip(&widths)
                .map(|((text, column), &columns)| match column.align {
                    Align::Left => pad(text, columns),
                    Align::Right => {
                        format!("{}{text}", " ".repeat(columns.saturating_sub(width(text))))
                    }
                })
                .collect();
            let mut line = shown.join("  ").trim_end().to_string();
            line.push('\n');
            line
        };
        let mut out = String::new();
        out += &line(self.columns.iter().map(|c| c.chinese.to_string()).collect());
        out += &line(self.columns.iter().map(|c| c.key.to_string()).collect());
        let rule = line(widths.iter().map(|&w| "-".repeat(w)).collect());
        out += &rule;
        for cells in &self.rows {
            out += &line((0..self.columns.len()).map(|at| cell(cells, at)).collect());
        }
        if let Some(total) = &self.total {
            out += &rule;
            out += &line((0..self.columns.len()).map(|at| cell(total, at)).collect());
        }
        for note in &self.notes {
            out += &one_line(note);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Terminal column at which `needle` starts in `line`.
    fn column_of(line: &str, needle: &str) -> usize {
        width(
            &line[..line
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} in {line}"))],
        )
    }

    #[test]
    fn chinese_cells_take_two_columns_and_every_column_lines_up() {
        let mut table = Table::new(&[
            text("姓名", "name"),
            figure("时长", "hours"),
            text("站点", "station"),
        ]);
        table.row(vec!["欧阳娜娜".into(), "2.50".into(), "xh/t1/v1".into()]);
        table.row(vec!["Li".into(), "120.00".into(), "xh/t1/v2".into()]);
        table.row(vec!["★·é".into(), "1.00".into(), "xh/t2/v3".into()]);
        let out = table.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "姓名        时长  站点", "{out}");
        assert_eq!(lines[1], "name       hours  station", "{out}");
        // 欧阳娜娜 is 8 columns wide: the widest name sets the column.
        assert_eq!(lines[2], "--------  ------  --------", "{out}");
        assert_eq!(lines[3], "欧阳娜娜    2.50  xh/t1/v1", "{out}");
        let station = column_of(lines[3], "xh/t1/v1");
        assert_eq!(column_of(lines[4], "xh/t1/v2"), station, "{out}");
        assert_eq!(column_of(lines[5], "xh/t2/v3"), station, "{out}");
        assert_eq!(column_of(lines[1], "station"), station, "{out}");
        // Figures are right-aligned: they end in the same column.
        let end = |line: &str, figure: &str| column_of(line, figure) + width(figure);
        assert_eq!(end(lines[3], "2.50"), end(lines[4], "120.00"), "{out}");
        assert_eq!(end(lines[5], "1.00"), end(lines[4], "120.00"), "{out}");
    }

    #[test]
    fn the_total_line_sits_under_a_rule_and_notes_follow_the_table() {
        let mut table = Table::new(&[text("站点", "station"), figure("活动", "activities")]);
        table.row(vec!["xh/t1".into(), "3".into()]);
        table.row(vec!["xh/t2".into()]);
        table.total(vec!["合计".into(), "3".into()]);
        table.note("共 2 个站点 (2 stations)");
        let out = table.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 8, "{out}");
        assert_eq!(lines[4], "xh/t2", "a missing cell prints empty: {out}");
        assert_eq!(
            lines[5], lines[2],
            "the rule repeats above the total: {out}"
        );
        assert_eq!(lines[6], "合计              3", "{out}");
        assert_eq!(lines[7], "共 2 个站点 (2 stations)");
    }

    #[test]
    fn a_line_break_in_a_cell_cannot_break_the_table() {
        let mut table = Table::new(&[text("名称", "name"), text("站点", "station")]);
        table.row(vec!["东村\n站".into(), "xh/t1/v1".into()]);
        let out = table.render();
        assert_eq!(out.lines().count(), 4, "{out}");
        assert!(out.lines().nth(3).unwrap().starts_with("东村 站"), "{out}");
    }
}
