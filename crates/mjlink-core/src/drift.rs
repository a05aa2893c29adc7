//! Format drift: Midjourney changes its message formats without notice, and a parser that
//! silently stops recognizing them is the worst way to find out. These are the rules the
//! shell counts, stores and warns by: which message is "unknown", what a payload the wire
//! decoder rejected still says about itself, and when a day's count "jumps".
//!
//! **The decision ("jumps"):** a UTC day jumps when at least [`JumpRule::at_least`] (10)
//! Midjourney messages of that day are unknown or undecodable *and* that is more than
//! [`JumpRule::factor`] (3) times the day before's count. The floor keeps a quiet channel's
//! odd announcement from alarming; the ratio lets a steady background (announcements, notices
//! mjlink does not model) pass, while a format change, which turns most of a day's results
//! unknown at once, does not. The shell warns once: when a day's count *crosses* into a jump
//! ([`JumpRule::crossed`]), that is, at the one message that makes it jump.

use serde::Deserialize;

use crate::parse::{BotIds, Kind};
use crate::snowflake::Snowflake;
use crate::text::{day_of, parse_time};

/// Whether a parsed message is from Midjourney but of no kind mjlink knows
/// ([`Kind::Other`]). Messages of other authors are [`Kind::NotMidjourney`], never unknown.
pub fn is_unknown(kind: &Kind) -> bool {
    matches!(kind, Kind::Other)
}

/// The stored kind name of an unknown message (`other`).
pub fn unknown_name() -> &'static str {
    Kind::Other.as_str()
}

/// Whether a stored kind name is that of an unknown message.
pub fn is_unknown_name(name: &str) -> bool {
    name == unknown_name()
}

/// Why a message was kept as a drift sample; `as_str` is the stored name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Decoded, from Midjourney, but parsed to [`Kind::Other`].
    Unknown,
    /// From Midjourney, but the wire decoder rejected the payload.
    Undecodable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unknown => "unknown",
            Reason::Undecodable => "undecodable",
        }
    }
}

/// When a day's count of unknown messages is an alarm (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JumpRule {
    /// The fewest unknown messages in a day that can jump.
    pub at_least: u64,
    /// A jump is more than this many times the day before's count.
    pub factor: u64,
}

impl Default for JumpRule {
    fn default() -> Self {
        JumpRule {
            at_least: 10,
            factor: 3,
        }
    }
}

impl JumpRule {
    /// Whether a day with `day` unknown messages, after a day with `previous_day`, jumped.
    pub fn jumped(self, previous_day: u64, day: u64) -> bool {
        day >= self.at_least && day > previous_day.saturating_mul(self.factor)
    }

    /// Whether the day's count going from `before` to `after` makes it jump now (it had not
    /// before): the one moment to warn.
    pub fn crossed(self, previous_day: u64, before: u64, after: u64) -> bool {
        self.jumped(previous_day, after) && !self.jumped(previous_day, before)
    }
}

/// What a message payload the wire decoder rejected still says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecodable {
    pub message_id: Snowflake,
    pub author_id: Snowflake,
    /// Its `timestamp`, else the time inside its id.
    pub posted_ms: i64,
}

impl Undecodable {
    /// Whether it was written by Midjourney (only those are format drift).
    pub fn is_from(&self, bots: &BotIds) -> bool {
        bots.0.contains(&self.author_id)
    }

    /// Its UTC day.
    pub fn day(&self) -> i64 {
        day_of(self.posted_ms)
    }
}

/// Reads, as loosely as JSON allows, the id, author and time of a message payload that the
/// wire decoder rejected: a recorded dispatch line (`MESSAGE_CREATE` / `MESSAGE_UPDATE`) or a
/// bare message object. `None` when even that is not there (not JSON, another event, no id
/// or no author): then nothing says the message is Midjourney's.
pub fn undecodable(bytes: &[u8]) -> Option<Undecodable> {
    #[derive(Deserialize)]
    struct Loose {
        t: Option<serde_json::Value>,
        d: Option<serde_json::Value>,
        id: Option<serde_json::Value>,
        author: Option<serde_json::Value>,
        timestamp: Option<serde_json::Value>,
    }
    let loose: Loose = serde_json::from_slice(bytes).ok()?;
    let (id, author, timestamp) = match (&loose.t, &loose.d) {
        (Some(event_type), Some(payload)) => {
            let event_type = event_type.as_str()?;
            if event_type != "MESSAGE_CREATE" && event_type != "MESSAGE_UPDATE" {
                return None;
            }
            (
                payload.get("id")?,
                payload.get("author")?,
                payload.get("timestamp"),
            )
        }
        (None, None) => (
            loose.id.as_ref()?,
            loose.author.as_ref()?,
            loose.timestamp.as_ref(),
        ),
        _ => return None,
    };
    let message_id = loose_id(id)?;
    let author_id = loose_id(author.get("id")?)?;
    let posted_ms = timestamp
        .and_then(serde_json::Value::as_str)
        .and_then(parse_time)
        .unwrap_or_else(|| message_id.timestamp_ms());
    Some(Undecodable {
        message_id,
        author_id,
        posted_ms,
    })
}

/// An id as Discord writes it (a decimal string) or as some exports do (a number).
fn loose_id(value: &serde_json::Value) -> Option<Snowflake> {
    match value {
        serde_json::Value::String(text) => Snowflake::parse(text),
        serde_json::Value::Number(number) => number.as_u64().map(Snowflake),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Action, Origin, Stage};

    const MJ: u64 = 936_929_561_302_675_456;

    #[test]
    fn only_other_is_unknown() {
        assert!(is_unknown(&Kind::Other));
        for known in [
            Kind::NotMidjourney,
            Kind::Grid(Origin::Imagine),
            Kind::Result(Action::Upscale),
            Kind::Progress {
                stage: Stage::Waiting,
                action: None,
            },
            Kind::Describe,
            Kind::Error("Invalid parameter".to_string()),
        ] {
            assert!(!is_unknown(&known), "{known:?}");
        }
        assert!(is_unknown_name("other"));
        for name in ["not_midjourney", "imagine", "progress", "pending", "unknown", ""] {
            assert!(!is_unknown_name(name), "{name}");
        }
    }

    #[test]
    fn a_jump_needs_the_floor_and_the_ratio() {
        let rule = JumpRule::default();
        // Below the floor, even from nothing: a quiet channel's odd message.
        assert!(!rule.jumped(0, 9));
        assert!(rule.jumped(0, 10));
        // A steady background does not jump; more than three times it does.
        assert!(!rule.jumped(10, 12));
        assert!(!rule.jumped(10, 30));
        assert!(rule.jumped(10, 31));
        // Huge counts do not overflow.
        assert!(!rule.jumped(u64::MAX, u64::MAX));
    }

    #[test]
    fn a_day_crosses_into_a_jump_once() {
        let rule = JumpRule::default();
        let warnings = (0..50u64)
            .filter(|count| rule.crossed(2, *count, count + 1))
            .collect::<Vec<_>>();
        // 2 the day before: the tenth unknown message of the day is the first that jumps.
        assert_eq!(warnings, [9]);
        // An update that does not change the count never warns.
        assert!(!rule.crossed(0, 12, 12));
    }

    #[test]
    fn undecodable_dispatch_still_names_its_author_and_day() {
        // `attachments` is an object, which the wire decoder rejects.
        let line = format!(
            r#"{{"op":0,"t":"MESSAGE_CREATE","s":3,"d":{{"id":"1118196484063858728","author":{{"id":"{MJ}"}},"timestamp":"2023-06-13T10:00:00.000000+00:00","attachments":{{"0":1}}}}}}"#
        );
        let found = undecodable(line.as_bytes()).expect("readable enough");
        assert_eq!(found.message_id, Snowflake(1_118_196_484_063_858_728));
        assert_eq!(found.author_id, Snowflake(MJ));
        assert_eq!(found.posted_ms, 1_686_650_400_000);
        assert_eq!(found.day(), 19_521); // 2023-06-13
        assert!(found.is_from(&BotIds::default()));
        assert!(!Undecodable {
            author_id: Snowflake(5),
            ..found
        }
        .is_from(&BotIds::default()));
    }

    #[test]
    fn undecodable_without_a_time_takes_the_ids() {
        // A bare message (a history element), ids as numbers, no timestamp.
        let found = undecodable(br#"{"id": 1118196484063858728, "author": {"id": 5}, "content": 7}"#)
            .expect("readable enough");
        assert_eq!(found.author_id, Snowflake(5));
        assert_eq!(
            found.posted_ms,
            Snowflake(1_118_196_484_063_858_728).timestamp_ms()
        );
    }

    #[test]
    fn nothing_is_read_from_what_does_not_say_who_wrote_it() {
        for bytes in [
            &b"not json"[..],
            b"",
            b"[1,2]",
            br#"{"op":0,"t":"TYPING_START","d":{"id":"1","author":{"id":"2"}}}"#,
            br#"{"op":0,"t":"MESSAGE_CREATE","d":{"id":"1"}}"#,
            br#"{"op":0,"t":"MESSAGE_CREATE","d":{"author":{"id":"2"}}}"#,
            br#"{"op":0,"t":"MESSAGE_CREATE","d":{"id":"-1","author":{"id":"2"}}}"#,
            br#"{"op":0,"t":7,"d":{"id":"1","author":{"id":"2"}}}"#,
            br#"{"id":"1","author":"someone"}"#,
        ] {
            assert_eq!(undecodable(bytes), None, "{}", String::from_utf8_lossy(bytes));
        }
    }
}
