//! The one table model behind every report table: columns, rows of cells and the notes that go
//! with the table (such as the parsers' disagreement line). [`tables`](super::tables) builds
//! the tables from results; [`Table::to_markdown`] renders them for report.md, the terminal
//! summary and `eval compare`, and [`Table::to_html`] for report.html, so the three outputs
//! cannot drift apart.

use std::fmt::Write;

use super::svg::escape;

/// How a column's cells are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: labels, ids, messages.
    Left,
    /// Numbers.
    Right,
}

/// A column: its header, alignment and whether its cells are emphasised (in HTML only, so the
/// text renderings stay plain to read and to search).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub header: String,
    pub align: Align,
    pub strong: bool,
}

/// One cell: its text, and a hint shown on hover in HTML (e.g. a confidence interval).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cell {
    pub text: String,
    pub hint: Option<String>,
}

impl Cell {
    /// A cell with a hover hint.
    pub fn hinted(text: String, hint: String) -> Cell {
        Cell {
            text,
            hint: Some(hint),
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, hint: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_string())
    }
}

/// A line under a table; a warning stands out in HTML.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub text: String,
    pub warning: bool,
}

/// A table with its notes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    pub notes: Vec<Note>,
}

impl Table {
    /// An empty table with these column headers: the first `left` columns are text, the
    /// others numbers.
    pub fn new(headers: &[&str], left: usize) -> Table {
        let columns = headers
            .iter()
            .enumerate()
            .map(|(i, h)| Column {
                header: h.to_string(),
                align: if i < left { Align::Left } else { Align::Right },
                strong: false,
            })
            .collect();
        Table {
            columns,
            ..Table::default()
        }
    }

    /// Adds a row (one cell per column).
    pub fn push_row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len(), "one cell per column");
        self.rows.push(cells);
    }

    /// Adds a note under the table.
    pub fn push_note(&mut self, text: impl Into<String>, warning: bool) {
        self.notes.push(Note {
            text: text.into(),
            warning,
        });
    }

    /// A Markdown table, then each note as its own paragraph.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let headers: Vec<String> = self.columns.iter().map(|c| md_text(&c.header)).collect();
        let _ = writeln!(s, "| {} |", headers.join(" | "));
        let rules: Vec<&str> = self
            .columns
            .iter()
            .map(|c| match c.align {
                Align::Left => "---",
                Align::Right => "---:",
            })
            .collect();
        let _ = writeln!(s, "|{}|", rules.join("|"));
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| md_text(&c.text)).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        for note in &self.notes {
            let _ = writeln!(s, "\n{}", note.text);
        }
        s
    }

    /// An HTML table (text escaped, text columns marked `class="l"`), then each note as a
    /// paragraph (`class="warn"` for warnings, `class="note"` otherwise).
    pub fn to_html(&self) -> String {
        let mut s = String::from("<table><tr>");
        for c in &self.columns {
            let _ = write!(s, "<th{}>{}</th>", class(c), escape(&c.header));
        }
        s.push_str("</tr>\n");
        for row in &self.rows {
            s.push_str("<tr>");
            for (c, cell) in self.columns.iter().zip(row) {
                let hint = cell
                    .hint
                    .as_ref()
                    .map_or_else(String::new, |h| format!(" title=\"{}\"", escape(h)));
                let text = escape(&cell.text);
                let text = if c.strong {
                    format!("<b>{text}</b>")
                } else {
                    text
                };
                let _ = write!(s, "<td{}{hint}>{text}</td>", class(c));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
        for note in &self.notes {
            let kind = if note.warning { "warn" } else { "note" };
            let _ = writeln!(s, "<p class=\"{kind}\">{}</p>", escape(&note.text));
        }
        s
    }
}

/// Cell text safe inside a Markdown table row: `|` escaped, line breaks as spaces.
fn md_text(text: &str) -> String {
    text.replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn class(column: &Column) -> &'static str {
    match column.align {
        Align::Left => " class=\"l\"",
        Align::Right => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["Name", "Score"], 1);
        t.columns[1].strong = true;
        t.push_row(vec![
            "a|b".into(),
            Cell::hinted("1.0".into(), "n = 3".into()),
        ]);
        t.push_note("It's <small>.", true);
        t
    }

    #[test]
    fn markdown_aligns_numbers_right_and_escapes_pipes() {
        assert_eq!(
            sample().to_markdown(),
            "| Name | Score |\n|---|---:|\n| a\\|b | 1.0 |\n\nIt's <small>.\n"
        );
    }

    #[test]
    fn html_escapes_text_and_shows_hints_emphasis_and_warnings() {
        assert_eq!(
            sample().to_html(),
            "<table><tr><th class=\"l\">Name</th><th>Score</th></tr>\n\
             <tr><td class=\"l\">a|b</td><td title=\"n = 3\"><b>1.0</b></td></tr>\n</table>\n\
             <p class=\"warn\">It&#39;s &lt;small&gt;.</p>\n"
        );
    }
}
