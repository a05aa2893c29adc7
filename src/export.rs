//! Writing links and messages out for people and scripts: an aligned table, JSON lines, or
//! CSV. The CSV rules (RFC 4180 quoting, formulas defused) and the table's cell text are here
//! once, for both; [`messages`] has the rows of `mjlink messages`.

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
    "channel_id",
    "created_at",
    "prompt",
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
                    write_csv_row(&mut self.out, &COLUMNS)?;
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

fn fields(record: &LinkRecord) -> [String; 10] {
    let id = |value: &Option<Snowflake>| value.map(|id| id.to_string()).unwrap_or_default();
    [
        record.child_id.to_string(),
        id(&record.parent_id),
        record.action.to_string(),
        record.index.map(|index| index.to_string()).unwrap_or_default(),
        record.signal.unwrap_or("").to_string(),
        record.status.to_string(),
        record
            .candidates
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        id(&record.channel_id),
        record.created_at.clone().unwrap_or_default(),
        record.prompt.clone().unwrap_or_default(),
    ]
}

/// One CSV record: RFC 4180 quoting (a field holding a comma, a quote or a line break is
/// quoted, its quotes doubled), each field defused ([`csv_field`]); records end with `\n`
/// (RFC 4180 says CRLF; spreadsheets and CSV readers take either).
pub fn write_csv_row(out: &mut impl Write, fields: &[impl AsRef<str>]) -> std::io::Result<()> {
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        out.write_all(csv_field(field.as_ref()).as_bytes())?;
    }
    out.write_all(b"\n")
}

/// Text for one cell of an aligned table: on one line, at most `max` characters.
pub fn table_cell(text: &str, max: usize) -> String {
    text.replace(['\n', '\r', '\t'], " ").chars().take(max).collect()
}

/// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is prefixed with `'` so spreadsheets do
/// not run a prompt as a formula.
fn csv_field(field: &str) -> String {
    let field = if field.starts_with(['=', '+', '-', '@']) {
        format!("'{field}")
    } else {
        field.to_string()
    };
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("-- ar 2:3"), "'-- ar 2:3");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn a_csv_row_is_its_fields_joined() {
        let mut out = Vec::new();
        write_csv_row(&mut out, &["a", "b,c", "", "@x"]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a,\"b,c\",,'@x\n");
    }
}
