//! The one way from bytes to an [`Event`], whatever the source: a recorded dispatch line, a
//! raw gateway payload, a history page (a JSON array of messages), a single message, and a
//! message of a DiscordChatExporter JSON export ([`dce`]).
//!
//! **Architecture Invariant:** every source (replay, the live gateway, backfill, parent
//! fetches) makes its events here, so the same bytes give the same event and the same digest
//! for the processed set, whichever way they arrived. Every function is total: bad input is a
//! value ([`Line::Malformed`], [`Rejected`]), never a panic.

use serde_json::value::RawValue;

pub mod dce;

use crate::digest::digest;
use crate::snowflake::Snowflake;
use crate::wire::{Delete, Dispatch, Message};

/// A message event, decoded.
#[derive(Debug, Clone)]
pub enum Event {
    /// MESSAGE_CREATE, or a message from channel history.
    Create { message: Message, digest: u64 },
    /// MESSAGE_UPDATE (often partial).
    Update { message: Message, digest: u64 },
    /// MESSAGE_DELETE / MESSAGE_DELETE_BULK.
    Delete {
        ids: Vec<Snowflake>,
        channel_id: Option<Snowflake>,
    },
}

impl Event {
    /// The message a create or an update carries.
    pub fn message(&self) -> Option<&Message> {
        match self {
            Event::Create { message, .. } | Event::Update { message, .. } => Some(message),
            Event::Delete { .. } => None,
        }
    }

    /// The time the event says it happened (an edit's time, else the post time); deletions
    /// carry none.
    pub fn time_ms(&self) -> Option<i64> {
        match self {
            Event::Create { message, .. } | Event::Update { message, .. } => {
                Some(message.edited_ms().unwrap_or_else(|| message.posted_ms()))
            }
            Event::Delete { .. } => None,
        }
    }
}

/// What one line of a recording (or one gateway dispatch) is.
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

/// Why bytes did not make an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest event-type name a [`Line::Skipped`] carries (longer ones are cut): the input
/// decides these names, and they are kept and counted.
pub const MAX_TYPE_NAME: usize = 64;

/// The name a skipped dispatch is counted under: its type, cut to [`MAX_TYPE_NAME`].
fn type_name(event_type: &str) -> String {
    crate::text::cut(event_type, MAX_TYPE_NAME)
}

const MESSAGE_EVENTS: [&str; 4] = [
    "MESSAGE_CREATE",
    "MESSAGE_UPDATE",
    "MESSAGE_DELETE",
    "MESSAGE_DELETE_BULK",
];

/// One recorded gateway frame (`{"op":0,"t":"MESSAGE_CREATE","s":1,"d":{...}}`).
pub fn from_dispatch_line(bytes: &[u8]) -> Line {
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
    match dispatch.d {
        Some(payload) => from_gateway(event_type, payload.get()),
        None if MESSAGE_EVENTS.contains(&event_type) => {
            Line::Malformed(format!("{event_type} without data (\"d\")"))
        }
        None => Line::Skipped(type_name(event_type)),
    }
}

/// A gateway dispatch's type and its raw `d` payload, as the live gateway receives them.
pub fn from_gateway(event_type: &str, payload: &str) -> Line {
    match event_type {
        "MESSAGE_CREATE" | "MESSAGE_UPDATE" => match serde_json::from_str::<Message>(payload) {
            Ok(message) => {
                let digest = digest(payload.as_bytes());
                Line::Event(Box::new(if event_type == "MESSAGE_CREATE" {
                    Event::Create { message, digest }
                } else {
                    Event::Update { message, digest }
                }))
            }
            Err(error) => Line::Malformed(format!("{event_type} is not a message ({error})")),
        },
        "MESSAGE_DELETE" | "MESSAGE_DELETE_BULK" => match serde_json::from_str::<Delete>(payload) {
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
        other => Line::Skipped(type_name(other)),
    }
}

/// One message as the REST API returns it (`GET /channels/{c}/messages/{id}`): a create.
pub fn from_message(bytes: &[u8]) -> Result<Event, Rejected> {
    match serde_json::from_slice::<Message>(bytes) {
        Ok(message) => Ok(Event::Create {
            message,
            digest: digest(bytes),
        }),
        Err(error) => Err(Rejected(format!("not a message ({error})"))),
    }
}

/// A page of channel history (a JSON array of messages, newest first as Discord sends it).
pub struct HistoryPage {
    /// The messages that decoded, as creates, in snowflake order.
    pub events: Vec<Event>,
    /// The elements that did not: (index in the array, reason). The rest still count.
    pub rejected: Vec<(usize, Rejected)>,
}

/// Bytes that are not a JSON array at all, with the line where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAPage {
    pub line: usize,
    pub reason: Rejected,
}

/// A history page; `Err` only when the bytes are not a JSON array at all.
pub fn from_history_page(bytes: &[u8]) -> Result<HistoryPage, NotAPage> {
    let elements: Vec<&RawValue> = serde_json::from_slice(bytes).map_err(|error| NotAPage {
        line: error.line(),
        reason: Rejected(format!("not a JSON array of messages ({error})")),
    })?;
    let mut events = Vec::with_capacity(elements.len());
    let mut rejected = Vec::new();
    for (index, element) in elements.iter().enumerate() {
        match from_message(element.get().as_bytes()) {
            Ok(event) => events.push(event),
            Err(reason) => rejected.push((index, reason)),
        }
    }
    // Every event here is a create.
    events.sort_by_key(|event| event.message().map(|message| message.id));
    Ok(HistoryPage { events, rejected })
}

/// The inverse of [`from_dispatch_line`]: one recorded line, a gateway dispatch of
/// `event_type` (`MESSAGE_CREATE`...) carrying `payload`, as `mjlink replay` reads it.
pub fn to_dispatch_line(event_type: &str, payload: &impl serde::Serialize) -> serde_json::Result<String> {
    Ok(format!(
        r#"{{"op":0,"t":{},"d":{}}}"#,
        serde_json::to_string(event_type)?,
        serde_json::to_string(payload)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_bad_lines() {
        assert!(matches!(from_dispatch_line(b"  "), Line::Blank));
        assert!(matches!(
            from_dispatch_line(&[0xff, 0xfe, 0x00]),
            Line::Malformed(_)
        ));
        assert!(
            matches!(from_dispatch_line(b"{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"d\":{\"id\":\"1\""), Line::Malformed(reason) if reason.starts_with("truncated"))
        );
        assert!(matches!(from_dispatch_line(b"{\"op\":11}"), Line::Skipped(_)));
        assert!(
            matches!(from_dispatch_line(b"{\"op\":0,\"t\":\"TYPING_START\",\"d\":{}}"), Line::Skipped(name) if name == "TYPING_START")
        );
        assert!(matches!(
            from_dispatch_line(b"{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"d\":{\"id\":\"abc\"}}"),
            Line::Malformed(_)
        ));
        assert!(matches!(from_dispatch_line(b"[1,2]"), Line::Malformed(_)));
        assert!(matches!(
            from_dispatch_line(b"{\"op\":0,\"t\":\"MESSAGE_DELETE\",\"d\":{\"id\":\"5\",\"channel_id\":\"6\"}}"),
            Line::Event(event) if matches!(*event, Event::Delete { .. })
        ));
        assert!(matches!(
            from_dispatch_line(
                b"{\"op\":0,\"t\":\"MESSAGE_DELETE_BULK\",\"d\":{\"ids\":[],\"channel_id\":\"6\"}}"
            ),
            Line::Malformed(_)
        ));
    }

    #[test]
    fn a_skipped_type_name_is_cut() {
        let long = "X".repeat(100_000);
        let line = format!(r#"{{"op":0,"t":"{long}","d":{{}}}}"#);
        let Line::Skipped(name) = from_dispatch_line(line.as_bytes()) else {
            panic!("a skipped dispatch")
        };
        assert_eq!(name.chars().count(), MAX_TYPE_NAME);
        let Line::Skipped(name) = from_dispatch_line(format!(r#"{{"op":0,"t":"{long}"}}"#).as_bytes()) else {
            panic!("a skipped dispatch")
        };
        assert_eq!(name.chars().count(), MAX_TYPE_NAME);
    }

    #[test]
    fn every_source_gives_the_same_event_and_digest() {
        let payload = r#"{"id":"5","channel_id":"7","content":"**a cat** - <@1> (fast)"}"#;
        let line = format!(r#"{{"op":0,"t":"MESSAGE_CREATE","s":3,"d":{payload}}}"#);
        let digest_of = |event: &Event| match event {
            Event::Create { message, digest } => (message.id, *digest),
            other => panic!("not a create: {other:?}"),
        };
        let Line::Event(from_line) = from_dispatch_line(line.as_bytes()) else {
            panic!("the line did not decode")
        };
        let Line::Event(from_live) = from_gateway("MESSAGE_CREATE", payload) else {
            panic!("the payload did not decode")
        };
        let single = from_message(payload.as_bytes()).unwrap();
        let page = from_history_page(format!("[{payload}]").as_bytes()).unwrap();
        let expected = (Snowflake(5), digest(payload.as_bytes()));
        assert_eq!(digest_of(&from_line), expected);
        assert_eq!(digest_of(&from_live), expected);
        assert_eq!(digest_of(&single), expected);
        assert_eq!(digest_of(&page.events[0]), expected);
    }

    #[test]
    fn a_history_page_keeps_what_decodes_in_snowflake_order() {
        let page = from_history_page(br#"[{"id":"9"},{"id":"x"},{"id":"3"}]"#).unwrap();
        let ids: Vec<Snowflake> = page
            .events
            .iter()
            .map(|event| match event {
                Event::Create { message, .. } => message.id,
                _ => Snowflake(0),
            })
            .collect();
        assert_eq!(ids, vec![Snowflake(3), Snowflake(9)]);
        assert_eq!(page.rejected.len(), 1);
        assert_eq!(page.rejected[0].0, 1);
        assert!(from_history_page(b"{\"id\":\"1\"}").is_err());
        assert!(from_history_page(b"[").is_err());
    }

    #[test]
    fn a_message_written_as_a_dispatch_line_reads_back_the_same() {
        let line = br#"{"op":0,"t":"MESSAGE_CREATE","s":9,"d":{"id":"5","channel_id":"7","content":"**a cat** - <@1> (fast)","components":[{"type":1,"components":[{"type":2,"custom_id":"MJ::JOB::upsample::1::x"}]}]}}"#;
        let Line::Event(event) = from_dispatch_line(line) else {
            panic!("a message create");
        };
        let message = event.message().unwrap();
        let written = to_dispatch_line("MESSAGE_CREATE", message).unwrap();
        let Line::Event(again) = from_dispatch_line(written.as_bytes()) else {
            panic!("{written}");
        };
        assert!(matches!(*again, Event::Create { .. }));
        assert_eq!(again.message(), Some(message));
    }
}
