//! Replay: recorded gateway dispatches (one JSON object per line) and REST history dumps
//! (a JSON array of messages) fed through the [`Pipeline`]. Bad input is counted and
//! reported, never fatal.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Serialize;

use crate::digest::digest;
use crate::pipeline::{Applied, Event, Pipeline};
use crate::store::StoreError;
use crate::wire::{Delete, Dispatch, Message};

/// Lines longer than this are skipped as malformed without being held in memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// How many malformed lines the summary describes (all are counted).
const MALFORMED_SHOWN: usize = 5;

/// What one line of a recording is.
#[derive(Debug)]
pub enum Line {
    Event(Box<Event>),
    /// Nothing there (white space).
    Blank,
    /// A dispatch of a type the pipeline does not use (TYPING_START, READY...), or a
    /// non-dispatch gateway opcode (op 11 heartbeat ACK...).
    Skipped(String),
    Malformed(String),
}

/// Decodes one recorded line.
pub fn decode_line(bytes: &[u8]) -> Line {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Line::Malformed("not UTF-8 text (binary data?)".to_string());
    };
    let text = text.trim();
    if text.is_empty() {
        return Line::Blank;
    }
    let dispatch: Dispatch<'_> = match serde_json::from_str(text) {
        Ok(dispatch) => dispatch,
        Err(error) if error.is_eof() => return Line::Malformed(format!("truncated JSON ({error})")),
        Err(error) => return Line::Malformed(format!("not a JSON object ({error})")),
    };
    if dispatch.op.is_some_and(|op| op != 0) {
        return Line::Skipped(format!("op {}", dispatch.op.unwrap_or_default()));
    }
    let Some(event_type) = dispatch.t.as_deref() else {
        return Line::Malformed("no event type (\"t\") in the dispatch".to_string());
    };
    let Some(payload) = dispatch.d else {
        return match event_type {
            "MESSAGE_CREATE" | "MESSAGE_UPDATE" | "MESSAGE_DELETE" | "MESSAGE_DELETE_BULK" => {
                Line::Malformed(format!("{event_type} without data (\"d\")"))
            }
            other => Line::Skipped(other.to_string()),
        };
    };
    let raw = payload.get();
    match event_type {
        "MESSAGE_CREATE" | "MESSAGE_UPDATE" => match serde_json::from_str::<Message>(raw) {
            Ok(message) => {
                let digest = digest(raw.as_bytes());
                Line::Event(Box::new(if event_type == "MESSAGE_CREATE" {
                    Event::Create { message, digest }
                } else {
                    Event::Update { message, digest }
                }))
            }
            Err(error) => Line::Malformed(format!("{event_type} is not a message ({error})")),
        },
        "MESSAGE_DELETE" | "MESSAGE_DELETE_BULK" => match serde_json::from_str::<Delete>(raw) {
            Ok(delete) => {
                let ids: Vec<_> = delete
                    .id
                    .into_iter()
                    .chain(delete.ids.unwrap_or_default())
                    .collect();
                if ids.is_empty() {
                    Line::Malformed(format!("{event_type} names no message id"))
                } else {
                    Line::Event(Box::new(Event::Delete {
                        ids,
                        channel_id: delete.channel_id,
                    }))
                }
            }
            Err(error) => Line::Malformed(format!("{event_type} is not a deletion ({error})")),
        },
        other => Line::Skipped(other.to_string()),
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    pub lines: u64,
    pub applied: u64,
    pub duplicates: u64,
    /// New events that changed nothing (an edit already known from a reply's copy).
    pub unchanged: u64,
    /// Messages not from Midjourney.
    pub ignored: u64,
    /// Other event types and opcodes, by name.
    pub skipped: BTreeMap<String, u64>,
    pub malformed: u64,
    /// The first few malformed lines: (file, line number, reason).
    pub malformed_examples: Vec<(String, u64, String)>,
}

impl ReplaySummary {
    fn malformed(&mut self, source: &str, line: u64, reason: String) {
        self.malformed += 1;
        if self.malformed_examples.len() < MALFORMED_SHOWN {
            self.malformed_examples.push((source.to_string(), line, reason));
        }
    }

    fn count(&mut self, applied: Applied) {
        match applied {
            Applied::Applied => self.applied += 1,
            Applied::Duplicate => self.duplicates += 1,
            Applied::Unchanged => self.unchanged += 1,
            Applied::Ignored => self.ignored += 1,
        }
    }
}

/// The replay's clock: the newest message time read so far. Deletions carry no time, so
/// they are stamped with it; it depends only on the input, never on the wall clock.
#[derive(Debug, Default)]
pub struct Clock(i64);

impl Clock {
    fn observe(&mut self, event: &Event) -> i64 {
        if let Event::Create { message, .. } | Event::Update { message, .. } = event {
            let seen = message.edited_ms().unwrap_or_else(|| message.posted_ms());
            self.0 = self.0.max(seen);
        }
        self.0
    }
}

/// Feeds a recording (dispatch lines, or a JSON array of messages) to the pipeline.
/// `on_bytes` is told how many bytes were consumed, for progress bars.
pub fn replay_reader(
    source: &str,
    mut reader: impl BufRead,
    pipeline: &mut Pipeline,
    summary: &mut ReplaySummary,
    clock: &mut Clock,
    mut on_bytes: impl FnMut(u64),
) -> Result<(), StoreError> {
    // Peek at the first non-blank byte: '[' means a REST history array.
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(error) => {
                summary.malformed(source, 0, format!("cannot read: {error}"));
                return Ok(());
            }
        };
        if buffer.is_empty() {
            return Ok(());
        }
        let blanks = buffer.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if blanks == buffer.len() {
            let consumed = buffer.len();
            reader.consume(consumed);
            continue;
        }
        if buffer[blanks] == b'[' {
            return replay_array(source, reader, pipeline, summary, clock, on_bytes);
        }
        break;
    }

    let mut line = Vec::new();
    let mut line_number = 0u64;
    loop {
        line.clear();
        let (consumed, too_long) = match read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES) {
            Ok(read) => read,
            Err(error) => {
                summary.malformed(source, line_number + 1, format!("cannot read: {error}"));
                break;
            }
        };
        if consumed == 0 {
            break;
        }
        on_bytes(consumed as u64);
        line_number += 1;
        summary.lines += 1;
        if too_long {
            summary.malformed(
                source,
                line_number,
                format!("line longer than {MAX_LINE_BYTES} bytes"),
            );
            continue;
        }
        match decode_line(&line) {
            Line::Event(event) => {
                let now = clock.observe(&event);
                let applied = pipeline.apply(&event, now)?;
                summary.count(applied);
            }
            Line::Blank => {}
            Line::Skipped(name) => *summary.skipped.entry(name).or_default() += 1,
            Line::Malformed(reason) => {
                tracing::debug!(file = source, line = line_number, reason = %reason, "malformed line skipped");
                summary.malformed(source, line_number, reason);
            }
        }
    }
    Ok(())
}

/// Reads up to and including the next b'\n'. Returns (bytes consumed, whether the line was
/// longer than `cap`, in which case only its first `cap` bytes are kept in `line`).
fn read_capped_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if buffer.is_empty() {
            return Ok((consumed, too_long));
        }
        let (chunk, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (&buffer[..=end], true),
            None => (buffer, false),
        };
        let room = cap.saturating_sub(line.len());
        if chunk.len() > room {
            too_long = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        consumed += used;
        if done {
            return Ok((consumed, too_long));
        }
    }
}

fn replay_array(
    source: &str,
    mut reader: impl BufRead,
    pipeline: &mut Pipeline,
    summary: &mut ReplaySummary,
    clock: &mut Clock,
    mut on_bytes: impl FnMut(u64),
) -> Result<(), StoreError> {
    let mut text = String::new();
    let read = reader.read_to_string(&mut text);
    on_bytes(text.len() as u64);
    summary.lines += 1;
    if let Err(error) = read {
        summary.malformed(source, 1, format!("cannot read the JSON array: {error}"));
        return Ok(());
    }
    let elements: Vec<&serde_json::value::RawValue> = match serde_json::from_str(&text) {
        Ok(elements) => elements,
        Err(error) => {
            summary.malformed(
                source,
                error.line() as u64,
                format!("not a JSON array of messages ({error})"),
            );
            return Ok(());
        }
    };
    // History pages come newest first; the pipeline gets them in snowflake order.
    let mut messages = Vec::with_capacity(elements.len());
    for (index, element) in elements.iter().enumerate() {
        match serde_json::from_str::<Message>(element.get()) {
            Ok(message) => messages.push((message, digest(element.get().as_bytes()))),
            Err(error) => summary.malformed(source, 1, format!("element {index} is not a message ({error})")),
        }
    }
    messages.sort_by_key(|(message, _)| message.id);
    for (message, digest) in messages {
        let event = Event::Create { message, digest };
        let now = clock.observe(&event);
        let applied = pipeline.apply(&event, now)?;
        summary.count(applied);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_bad_lines() {
        assert!(matches!(decode_line(b"  "), Line::Blank));
        assert!(matches!(decode_line(&[0xff, 0xfe, 0x00]), Line::Malformed(_)));
        assert!(
            matches!(decode_line(b"{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"d\":{\"id\":\"1\""), Line::Malformed(reason) if reason.starts_with("truncated"))
        );
        assert!(matches!(decode_line(b"{\"op\":11}"), Line::Skipped(_)));
        assert!(
            matches!(decode_line(b"{\"op\":0,\"t\":\"TYPING_START\",\"d\":{}}"), Line::Skipped(name) if name == "TYPING_START")
        );
        assert!(matches!(
            decode_line(b"{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"d\":{\"id\":\"abc\"}}"),
            Line::Malformed(_)
        ));
        assert!(matches!(decode_line(b"[1,2]"), Line::Malformed(_)));
        assert!(matches!(
            decode_line(b"{\"op\":0,\"t\":\"MESSAGE_DELETE\",\"d\":{\"id\":\"5\",\"channel_id\":\"6\"}}"),
            Line::Event(event) if matches!(*event, Event::Delete { .. })
        ));
    }

    #[test]
    fn caps_long_lines_without_losing_the_next() {
        let input = format!("{}\nnext\n", "x".repeat(100));
        let mut reader = std::io::BufReader::with_capacity(8, input.as_bytes());
        let mut line = Vec::new();
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), (101, true));
        assert_eq!(line.len(), 10);
        line.clear();
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), (5, false));
        assert_eq!(line, b"next\n");
    }
}
