//! The rows of `mjlink messages`: every stored message, what mjlink made of it, for people
//! (an aligned table) and scripts (JSON lines, CSV).

use std::io::Write;

use serde::Serialize;

use super::{table_cell, write_csv_header, write_csv_row, Cell, Format};
use crate::store::MessageExport;
use mjlink_core::snowflake::Snowflake;
use mjlink_core::text::format_time;

/// One message. Ids are strings (JavaScript cannot hold a snowflake in a number); absent
/// values are `null` in JSON and empty in CSV.
#[derive(Debug, Serialize)]
pub struct MessageRecord {
    pub id: Snowflake,
    pub channel_id: Option<Snowflake>,
    /// The stored kind: `imagine`, `blend`, an action (`upscale`, `variation`...),
    /// `progress`, `error`, `describe`, `other` (from Midjourney, of no known kind)...
    pub kind: String,
    /// Results: the action; start/progress messages: the action under way.
    pub action: Option<String>,
    /// The tile (`Image #N`).
    pub index: Option<u8>,
    pub prompt: Option<String>,
    /// The `--parameters`, name -> value (`{"ar":"16:9"}`).
    pub parameters: Option<serde_json::Value>,
    pub user_id: Option<Snowflake>,
    pub job_uuid: Option<String>,
    /// The link of a result: its parent, by which signal, and how sure.
    pub parent_id: Option<Snowflake>,
    pub signal: Option<String>,
    pub status: Option<String>,
    /// Start/progress messages: `running`, `completed`, `failed` or `unknown`, and the final.
    pub outcome: Option<String>,
    pub final_id: Option<Snowflake>,
    pub posted_at: Option<String>,
    pub deleted_at: Option<String>,
}

impl From<MessageExport> for MessageRecord {
    fn from(message: MessageExport) -> Self {
        MessageRecord {
            id: message.id,
            channel_id: message.channel_id,
            kind: message.kind,
            action: message.action,
            index: message.tile,
            prompt: message.prompt,
            parameters: message
                .params
                .and_then(|params| serde_json::from_str(&params).ok()),
            user_id: message.user_id,
            job_uuid: message.job_uuid,
            parent_id: message.parent_id,
            signal: message.signal,
            status: message.status,
            outcome: message.outcome,
            final_id: message.final_id,
            posted_at: message.posted_at.and_then(format_time),
            deleted_at: message.deleted_at.and_then(format_time),
        }
    }
}

/// The CSV header, in [`MessageRecord`]'s order (JSON lines have the same names).
const COLUMNS: [&str; 16] = [
    "id",
    "channel_id",
    "kind",
    "action",
    "index",
    "prompt",
    "parameters",
    "user_id",
    "job_uuid",
    "parent_id",
    "signal",
    "status",
    "outcome",
    "final_id",
    "posted_at",
    "deleted_at",
];

/// Streams message records in `format` to `out`.
pub struct MessageWriter<W: Write> {
    out: W,
    format: Format,
    wrote_header: bool,
}

impl<W: Write> MessageWriter<W> {
    pub fn new(out: W, format: Format) -> Self {
        MessageWriter {
            out,
            format,
            wrote_header: false,
        }
    }

    pub fn write(&mut self, record: &MessageRecord) -> std::io::Result<()> {
        let first = !std::mem::replace(&mut self.wrote_header, true);
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, record)?;
                self.out.write_all(b"\n")
            }
            Format::Csv => {
                if first {
                    write_csv_header(&mut self.out, &COLUMNS)?;
                }
                write_csv_row(&mut self.out, &fields(record))
            }
            Format::Table => {
                if first {
                    writeln!(
                        self.out,
                        "{:<19} {:<20} {:>5} {:<19} {:<10} prompt",
                        "id", "kind", "index", "parent | final", "status"
                    )?;
                }
                write_table_row(&mut self.out, record)
            }
        }
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One row for people: a result shows its parent and link status; a start/progress message
/// its final and outcome; the action under way next to `progress`.
fn write_table_row(out: &mut impl Write, record: &MessageRecord) -> std::io::Result<()> {
    let id = |value: Option<Snowflake>| value.map_or_else(|| "-".to_string(), |id| id.to_string());
    let kind = match record.action.as_deref() {
        Some(action) if action != record.kind => format!("{} ({action})", record.kind),
        _ => record.kind.clone(),
    };
    let (other, status) = match (&record.outcome, &record.status) {
        (Some(outcome), _) => (id(record.final_id), outcome.as_str()),
        (None, Some(status)) => (id(record.parent_id), status.as_str()),
        (None, None) => ("-".to_string(), "-"),
    };
    writeln!(
        out,
        "{:<19} {:<20} {:>5} {:<19} {:<10} {}",
        record.id.to_string(),
        table_cell(&kind, 20),
        record.index.map_or("-".to_string(), |index| index.to_string()),
        other,
        status,
        table_cell(record.prompt.as_deref().unwrap_or(""), 60)
    )
}

fn fields(record: &MessageRecord) -> [Cell; 16] {
    [
        Cell::id(Some(record.id)),
        Cell::id(record.channel_id),
        Cell::text(Some(record.kind.as_str())),
        Cell::text(record.action.as_deref()),
        Cell::number(record.index),
        Cell::text(record.prompt.as_deref()),
        Cell::text(record.parameters.as_ref().map(ToString::to_string)),
        Cell::id(record.user_id),
        Cell::text(record.job_uuid.as_deref()),
        Cell::id(record.parent_id),
        Cell::text(record.signal.as_deref()),
        Cell::text(record.status.as_deref()),
        Cell::text(record.outcome.as_deref()),
        Cell::id(record.final_id),
        Cell::text(record.posted_at.as_deref()),
        Cell::text(record.deleted_at.as_deref()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_messages_csv_has_the_columns_of_its_json_lines() {
        let record = MessageRecord {
            id: Snowflake(1),
            channel_id: None,
            kind: "imagine".to_string(),
            action: None,
            index: None,
            prompt: None,
            parameters: None,
            user_id: None,
            job_uuid: None,
            parent_id: None,
            signal: None,
            status: None,
            outcome: None,
            final_id: None,
            posted_at: None,
            deleted_at: None,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(crate::export::tests::keys_in_order(&json), COLUMNS);
    }
}
