//! Writing links and messages out for people and scripts: an aligned table, JSON lines, or
//! CSV. The CSV rules and the table's cell text are here once, for both; [`messages`] has
//! the rows of `mjlink messages`.
//!
//! **Spreadsheet-safe CSV, the same columns as JSON lines.** A CSV file starts with a UTF-8
//! byte order mark (so spreadsheets read prompts in any script as UTF-8; CSV readers of
//! scripts skip it: Python's `utf-8-sig`, pandas, R); its header is the JSON lines' keys, in
//! their order; every id and text cell is quoted (a quoted cell is text: LibreOffice's
//! "format quoted field as text", Python's `QUOTE_NONNUMERIC` reader), numbers are bare, an
//! absent value is empty. Ids keep their exact digits in the file, never changed into
//! something else (`="123"` or a leading tab would corrupt them for scripts); a spreadsheet
//! that converts even quoted digits into a number on a double click (Excel) reads them as
//! text through its import dialog. A cell that a spreadsheet would run as a formula (it
//! starts with `=`, `+`, `-`, `@`, a tab or a carriage return) starts with `'` instead.

pub mod messages;

use std::io::Write;

use serde::Serialize;

use crate::store::LinkExport;
use mjlink_core::snowflake::Snowflake;
use mjlink_core::text::format_time;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Jsonl,
    Csv,
}

/// One exported link. Ids are strings (JavaScript cannot hold a snowflake in a number).
#[derive(Debug, Serialize)]
pub struct LinkRecord {
    pub child_id: Snowflake,
    pub parent_id: Option<Snowflake>,
    pub action: &'static str,
    pub index: Option<u8>,
    pub signal: Option<&'static str>,
    pub status: &'static str,
    pub candidates: Vec<Snowflake>,
    pub prompt: Option<String>,
    pub channel_id: Option<Snowflake>,
    pub created_at: Option<String>,
}

impl From<LinkExport> for LinkRecord {
    fn from(export: LinkExport) -> Self {
        let link = export.link;
        LinkRecord {
            child_id: link.child_id,
            parent_id: link.decision.parent,
            action: link.action.as_str(),
            index: link.tile,
            signal: link.decision.signal.map(|signal| signal.as_str()),
            status: link.decision.status.as_str(),
            candidates: link.decision.candidates,
            prompt: export.prompt,
            channel_id: export.channel_id,
            created_at: export.posted_at.and_then(format_time),
        }
    }
}

/// Streams records in `format` to `out`.
pub struct LinkWriter<W: Write> {
    out: W,
    format: Format,
    wrote_header: bool,
}

const COLUMNS: [&str; 10] = [
    "child_id",
    "parent_id",
    "action",
    "index",
    "signal",
    "status",
    "candidates",
    "prompt",
    "channel_id",
    "created_at",
];

impl<W: Write> LinkWriter<W> {
    pub fn new(out: W, format: Format) -> Self {
        LinkWriter {
            out,
            format,
            wrote_header: false,
        }
    }

    pub fn write(&mut self, record: &LinkRecord) -> std::io::Result<()> {
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, record)?;
                self.out.write_all(b"\n")
            }
            Format::Csv => {
                if !self.wrote_header {
                    write_csv_header(&mut self.out, &COLUMNS)?;
                    self.wrote_header = true;
                }
                write_csv_row(&mut self.out, &fields(record))
            }
            Format::Table => {
                if !self.wrote_header {
                    writeln!(
                        self.out,
                        "{:<20} {:<20} {:<16} {:>5} {:<11} {:<10} prompt",
                        "child", "parent", "action", "index", "signal", "status"
                    )?;
                    self.wrote_header = true;
                }
                let parent = match (&record.parent_id, record.candidates.is_empty()) {
                    (Some(parent), _) => parent.to_string(),
                    (None, false) => format!("{} candidates", record.candidates.len()),
                    (None, true) => "-".to_string(),
                };
                let prompt = table_cell(record.prompt.as_deref().unwrap_or(""), 60);
                writeln!(
                    self.out,
                    "{:<20} {:<20} {:<16} {:>5} {:<11} {:<10} {}",
                    record.child_id.to_string(),
                    parent,
                    record.action,
                    record.index.map_or("-".to_string(), |index| index.to_string()),
                    record.signal.unwrap_or("-"),
                    record.status,
                    prompt
                )
            }
        }
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The cells of a record, in [`COLUMNS`]' order (that of the JSON lines' keys: a test checks).
fn fields(record: &LinkRecord) -> [Cell; 10] {
    [
        Cell::id(Some(record.child_id)),
        Cell::id(record.parent_id),
        Cell::text(Some(record.action)),
        Cell::number(record.index),
        Cell::text(record.signal),
        Cell::text(Some(record.status)),
        Cell::text(Some(
            record
                .candidates
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ))
        .or_empty(record.candidates.is_empty()),
        Cell::text(record.prompt.as_deref()),
        Cell::id(record.channel_id),
        Cell::text(record.created_at.as_deref()),
    ]
}

/// One CSV cell: an id or text (quoted), a number (bare), or absent (empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    Number(String),
    Empty,
}

impl Cell {
    pub fn text(value: Option<impl Into<String>>) -> Cell {
        value.map_or(Cell::Empty, |value| Cell::Text(value.into()))
    }

    /// An id: text, so that its digits are kept.
    pub fn id(value: Option<Snowflake>) -> Cell {
        Cell::text(value.map(|id| id.to_string()))
    }

    pub fn number(value: Option<impl ToString>) -> Cell {
        value.map_or(Cell::Empty, |value| Cell::Number(value.to_string()))
    }

    /// [`Cell::Empty`] when `empty`.
    fn or_empty(self, empty: bool) -> Cell {
        if empty {
            Cell::Empty
        } else {
            self
        }
    }
}

/// The byte order mark and the header of a CSV file (the JSON lines' keys, in order).
pub fn write_csv_header(out: &mut impl Write, columns: &[&str]) -> std::io::Result<()> {
    out.write_all(mjlink_core::recording::BOM)?;
    out.write_all(columns.join(",").as_bytes())?;
    out.write_all(b"\n")
}

/// One CSV record (RFC 4180: fields separated by commas, quotes doubled inside quoted
/// fields); records end with `\n` (RFC 4180 says CRLF; spreadsheets and CSV readers take
/// either). See the module's rules.
pub fn write_csv_row(out: &mut impl Write, cells: &[Cell]) -> std::io::Result<()> {
    for (index, cell) in cells.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        out.write_all(csv_cell(cell).as_bytes())?;
    }
    out.write_all(b"\n")
}

/// Text for one cell of an aligned table: on one line, at most `max` characters, shown
/// through [`for_terminal`](mjlink_core::text::for_terminal) (never obeyed).
pub fn table_cell(text: &str, max: usize) -> String {
    let line: String = text.replace(['\n', '\r', '\t'], " ").chars().take(max).collect();
    mjlink_core::text::for_terminal(&line).into_owned()
}

/// A cell as written: text quoted (quotes doubled), a leading formula character defused
/// with `'`; a number bare (a number with anything else in it is text).
fn csv_cell(cell: &Cell) -> String {
    let text = match cell {
        Cell::Empty => return String::new(),
        Cell::Number(number) if number.bytes().all(|b| b.is_ascii_digit()) && !number.is_empty() => {
            return number.clone()
        }
        Cell::Number(text) | Cell::Text(text) => text,
    };
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        "'"
    } else {
        ""
    };
    format!("\"{defused}{}\"", text.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> Cell {
        Cell::Text(value.to_string())
    }

    #[test]
    fn csv_quotes_text_and_defuses_formulas() {
        assert_eq!(csv_cell(&text("a,b")), "\"a,b\"");
        assert_eq!(csv_cell(&text("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell(&text("=cmd()")), "\"'=cmd()\"");
        assert_eq!(csv_cell(&text("plain")), "\"plain\"");
        assert_eq!(csv_cell(&text("-- ar 2:3")), "\"'-- ar 2:3\"");
        assert_eq!(csv_cell(&text("two\nlines")), "\"two\nlines\"");
    }

    #[test]
    fn csv_defuses_a_leading_tab_or_carriage_return() {
        assert_eq!(csv_cell(&text("\t=1+1")), "\"'\t=1+1\"");
        assert_eq!(csv_cell(&text("\r=1+1")), "\"'\r=1+1\"");
    }

    #[test]
    fn csv_keeps_ids_as_quoted_text_and_numbers_bare() {
        assert_eq!(
            csv_cell(&Cell::id(Some(Snowflake(1235020000000000000)))),
            "\"1235020000000000000\""
        );
        assert_eq!(csv_cell(&Cell::number(Some(4u8))), "4");
        assert_eq!(csv_cell(&Cell::number(Some("-1"))), "\"'-1\"");
        assert_eq!(csv_cell(&Cell::Empty), "");
    }

    #[test]
    fn a_csv_row_is_its_fields_joined() {
        let mut out = Vec::new();
        write_csv_row(&mut out, &[text("a"), text("b,c"), Cell::Empty, text("@x")]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\"a\",\"b,c\",,\"'@x\"\n");
    }

    /// The keys of `json` (one object), in the order written.
    pub(crate) fn keys_in_order(json: &str) -> Vec<String> {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let mut keys: Vec<(usize, String)> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|key| (json.find(&format!("\"{key}\":")).unwrap(), key.clone()))
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, key)| key).collect()
    }

    #[test]
    fn a_links_csv_has_the_columns_of_its_json_lines() {
        let record = LinkRecord {
            child_id: Snowflake(1),
            parent_id: None,
            action: "upscale",
            index: Some(1),
            signal: None,
            status: "unresolved",
            candidates: vec![],
            prompt: None,
            channel_id: None,
            created_at: None,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(keys_in_order(&json), COLUMNS);
        let mut out = Vec::new();
        let mut writer = LinkWriter::new(&mut out, Format::Csv);
        writer.write(&record).unwrap();
        writer.finish().unwrap();
        let csv = String::from_utf8(out).unwrap();
        assert!(csv.starts_with('\u{feff}'), "{csv:?}");
        assert_eq!(
            csv.lines().next().unwrap().trim_start_matches('\u{feff}'),
            COLUMNS.join(",")
        );
        assert_eq!(
            csv.lines().nth(1).unwrap(),
            "\"1\",,\"upscale\",1,,\"unresolved\",,,,"
        );
    }
}
