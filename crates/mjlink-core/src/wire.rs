//! Discord's wire format, kept lean: only the fields mjlink reads.
//!
//! Everything that enters the pipeline (gateway dispatches, recorded fixtures, REST history,
//! serenity's own `Message` re-serialized) is decoded into these types, so there is one
//! decoder for Discord JSON. Unknown fields are skipped; every field is optional so that
//! partial MESSAGE_UPDATE payloads decode too.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::snowflake::Snowflake;

/// One gateway payload (`{"op":0,"t":"MESSAGE_CREATE","s":1,"d":{...}}`); `d` is decoded
/// later, and only for the event types the pipeline handles.
#[derive(Debug, Deserialize)]
pub struct Dispatch<'a> {
    #[serde(default)]
    pub op: Option<u8>,
    #[serde(default)]
    pub t: Option<String>,
    #[serde(default)]
    pub s: Option<u64>,
    #[serde(borrow, default)]
    pub d: Option<&'a RawValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Snowflake,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: Snowflake,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Embed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<u32>,
}

/// Buttons and action rows, flattened on decode to what identifies a job: the custom ids
/// and link-button URLs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Components(pub Vec<String>);

impl<'de> Deserialize<'de> for Components {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        deserializer.deserialize_seq(NodesVisitor(&mut out))?;
        Ok(Components(out))
    }
}

/// Walks `[node, ...]` where a node is either a component object (its `custom_id` and `url`
/// are kept, its `components` walked) or a string (the flattened form mjlink stores).
struct NodesVisitor<'a>(&'a mut Vec<String>);

impl<'de> Visitor<'de> for NodesVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of message components")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NodeSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct NodeSeed<'a>(&'a mut Vec<String>);

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message component")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.0.push(text.to_string());
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "custom_id" | "url" => {
                    if let Some(text) = map.next_value::<Option<String>>()? {
                        self.0.push(text);
                    }
                }
                "components" => map.next_value_seed(NodesSeed(&mut *self.0))?,
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct NodesSeed<'a>(&'a mut Vec<String>);

impl<'de> DeserializeSeed<'de> for NodesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(NullOrNodes(self.0))
    }
}

/// `components: null` is tolerated as empty.
struct NullOrNodes<'a>(&'a mut Vec<String>);

impl<'de> Visitor<'de> for NullOrNodes<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of message components or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        NodesVisitor(self.0).visit_seq(seq)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Snowflake>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<Snowflake>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interaction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractionMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interacted_message_id: Option<Snowflake>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggering_interaction_metadata: Option<Box<InteractionMetadata>>,
}

/// A message as far as mjlink cares. `None` means "not in this payload" (MESSAGE_UPDATE
/// sends partial objects); see [`crate::merge`] for how snapshots combine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: Snowflake,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<Snowflake>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<User>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeds: Option<Vec<Embed>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Components>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mentions: Option<Vec<User>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_reference: Option<MessageReference>,
    /// Only one level deep: Discord does not nest it further, and mjlink drops any nesting.
    #[serde(default, skip_serializing)]
    pub referenced_message: Option<Box<Message>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction: Option<Interaction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_metadata: Option<InteractionMetadata>,
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<Snowflake>,
}

/// MESSAGE_DELETE and MESSAGE_DELETE_BULK payloads.
#[derive(Debug, Clone, Deserialize)]
pub struct Delete {
    #[serde(default)]
    pub id: Option<Snowflake>,
    #[serde(default)]
    pub ids: Option<Vec<Snowflake>>,
    #[serde(default)]
    pub channel_id: Option<Snowflake>,
}

fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Nonce {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(
        Option::<Nonce>::deserialize(deserializer)?.map(|nonce| match nonce {
            Nonce::Text(text) => text,
            Nonce::Number(number) => number.to_string(),
        }),
    )
}

/// RFC 3339 timestamp to Unix milliseconds; `None` when absent or unreadable.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.timestamp_millis())
}

impl Message {
    /// When the message was posted: its timestamp, else the time inside its id.
    pub fn posted_ms(&self) -> i64 {
        self.timestamp
            .as_deref()
            .and_then(parse_time_ms)
            .unwrap_or_else(|| self.id.timestamp_ms())
    }

    pub fn edited_ms(&self) -> Option<i64> {
        self.edited_timestamp.as_deref().and_then(parse_time_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_partial_update_and_flattens_components() {
        let json = r#"{"id":"5","channel_id":"7","content":"x","components":[{"type":1,"components":[
            {"type":2,"custom_id":"MJ::JOB::upsample::1::abc"},{"type":2,"style":5,"url":"https://www.midjourney.com/jobs/abc"}]}],
            "nonce": 123, "unknown_field": {"deep": [1,2,3]}}"#;
        let message: Message = serde_json::from_str(json).unwrap();
        assert_eq!(message.id, Snowflake(5));
        assert_eq!(message.author, None);
        assert_eq!(message.nonce.as_deref(), Some("123"));
        let components = message.components.clone().unwrap();
        assert_eq!(components.0.len(), 2);
        // The stored (flattened) form decodes back to the same value.
        let stored = serde_json::to_string(&message).unwrap();
        let again: Message = serde_json::from_str(&stored).unwrap();
        assert_eq!(again, message);
    }
}
