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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<EmbedFooter>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedFooter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One button, as far as mjlink cares: its custom id (or a link button's URL) and whether
/// Midjourney marked it used (a pressed U/V button turns `style: 1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Button {
    pub id: String,
    pub used: bool,
}

/// Buttons and action rows, flattened on decode to what identifies a job: the custom ids
/// and link-button URLs, in order, each with its used mark. Stored as a list of strings, a
/// used button as `{"custom_id": .., "style": 1}` (which decodes back the same way).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Components(pub Vec<Button>);

impl Components {
    /// The custom ids and URLs, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|button| button.id.as_str())
    }
}

impl Serialize for Components {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Used<'a>(&'a str);
        impl Serialize for Used<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("custom_id", self.0)?;
                map.serialize_entry("style", &1)?;
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for button in &self.0 {
            if button.used {
                seq.serialize_element(&Used(&button.id))?;
            } else {
                seq.serialize_element(&button.id)?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Components {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        deserializer.deserialize_seq(NodesVisitor(&mut out))?;
        Ok(Components(out))
    }
}

/// Walks `[node, ...]` where a node is either a component object (its `custom_id` and `url`
/// are kept with its `style`, its `components` walked) or a string (the flattened form
/// mjlink stores).
struct NodesVisitor<'a>(&'a mut Vec<Button>);

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

struct NodeSeed<'a>(&'a mut Vec<Button>);

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
        self.0.push(Button {
            id: text.to_string(),
            used: false,
        });
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut ids = Vec::new();
        let mut style = None;
        // Children are walked into a list of their own so that this node's id comes first
        // whatever the key order.
        let mut children = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "custom_id" | "url" => {
                    if let Some(text) = map.next_value::<Option<String>>()? {
                        ids.push(text);
                    }
                }
                "style" => style = map.next_value::<serde_json::Value>()?.as_u64(),
                "components" => map.next_value_seed(NodesSeed(&mut children))?,
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let used = style == Some(1);
        self.0.extend(ids.into_iter().map(|id| Button { id, used }));
        self.0.append(&mut children);
        Ok(())
    }
}

struct NodesSeed<'a>(&'a mut Vec<Button>);

impl<'de> DeserializeSeed<'de> for NodesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(NullOrNodes(self.0))
    }
}

/// `components: null` is tolerated as empty.
struct NullOrNodes<'a>(&'a mut Vec<Button>);

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

/// The buttons Midjourney marked used on a message (`style: 1`), as short keys without the
/// job UUID (`upsample::2 variation::1`), for the store's `used_buttons` column. `None` when
/// the message has no buttons known.
pub fn used_buttons(components: Option<&Components>) -> Option<String> {
    let components = components?;
    if components.0.is_empty() {
        return None;
    }
    let keys: Vec<&str> = components
        .0
        .iter()
        .filter(|button| button.used)
        .filter_map(|button| button_key(&button.id))
        .collect();
    Some(keys.join(" "))
}

/// `MJ::JOB::upsample::2::{uuid}` -> `upsample::2`; `MJ::Outpaint::50::1::{uuid}::SOLO` ->
/// `Outpaint::50::1`. `None` for ids that are not Midjourney's buttons.
pub(crate) fn button_key(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("MJ::")?;
    let rest = rest.strip_prefix("JOB::").unwrap_or(rest);
    // Cut before the job UUID (36 characters with dashes at 8, 13, 18, 23).
    let mut end = rest.len();
    for (index, _) in rest.match_indices("::") {
        let tail = &rest[index + 2..];
        if tail.len() >= 36 && tail.as_bytes()[8] == b'-' && tail.as_bytes()[13] == b'-' {
            end = index;
            break;
        }
    }
    let key = &rest[..end];
    (!key.is_empty() && !key.contains(char::is_whitespace)).then_some(key)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReference {
    /// `0` (or absent) a reply, `1` a forward (whose content is in `message_snapshots`).
    #[serde(
        rename = "type",
        default,
        deserialize_with = "small_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub kind: Option<u8>,
    #[serde(default, deserialize_with = "opt_id", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Snowflake>,
    #[serde(default, deserialize_with = "opt_id", skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<Snowflake>,
    #[serde(default, deserialize_with = "opt_id", skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
}

/// `message_reference.type` of a forward: never a parent link.
pub const REFERENCE_FORWARD: u8 = 1;

impl MessageReference {
    /// The message this one replies to; `None` for a forward.
    pub fn reply_to(&self) -> Option<Snowflake> {
        if self.kind == Some(REFERENCE_FORWARD) {
            return None;
        }
        self.message_id
    }
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
    #[serde(default, deserialize_with = "opt_id", skip_serializing_if = "Option::is_none")]
    pub interacted_message_id: Option<Snowflake>,
    /// For a job submitted through a pop-up form (Remix, Vary (Region), Custom Zoom...): the
    /// interaction that opened the form, whose `interacted_message_id` is the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggering_interaction_metadata: Option<Box<InteractionMetadata>>,
}

/// A message as far as mjlink cares. `None` means "not in this payload" (MESSAGE_UPDATE
/// sends partial objects); see [`crate::merge`] for how snapshots combine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: Snowflake,
    #[serde(default, deserialize_with = "opt_id", skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<Snowflake>,
    #[serde(default, deserialize_with = "opt_id", skip_serializing_if = "Option::is_none")]
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
    #[serde(default, deserialize_with = "opt_id", skip_serializing_if = "Option::is_none")]
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

/// An optional id where other libraries' exports write `""` for "none" (discordgo writes
/// `"webhook_id": ""`): read as absent rather than rejecting the message.
fn opt_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Snowflake>, D::Error> {
    struct OptId;
    impl<'de> Visitor<'de> for OptId {
        type Value = Option<Snowflake>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a Discord id, an empty string or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Snowflake(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(|v| Some(Snowflake(v)))
                .map_err(|_| E::custom("negative id"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.is_empty() {
                return Ok(None);
            }
            Snowflake::parse(v)
                .map(Some)
                .ok_or_else(|| E::custom(format!("not a Discord id: {v:.40}")))
        }
    }
    deserializer.deserialize_option(OptId)
}

/// A small number (an enum tag such as `message_reference.type`); anything else reads as
/// absent rather than rejecting the message.
fn small_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u8>, D::Error> {
    Ok(serde_json::Value::deserialize(deserializer)?
        .as_u64()
        .and_then(|n| u8::try_from(n).ok()))
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
