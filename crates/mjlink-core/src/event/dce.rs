//! DiscordChatExporter's JSON export (`DiscordChatExporter.Cli export -f Json`), as one more
//! way from bytes to an [`Event`]: each element of the export's `messages` array becomes the
//! create the bot would have received, as near as the export allows.
//!
//! The format, as read from DCE's own writer (`DiscordChatExporter.Core/Exporting/Writers/
//! JsonMessageWriter.cs` at tag 2.37, `DiscordChatExporter.Core/Exporting/JsonMessageWriter.cs`
//! from 2.38 to 2.47, in Tyrrrz/DiscordChatExporter):
//!
//! - the root object is `{"guild":{"id",..},"channel":{"id",..},"dateRange":{..},
//!   "exportedAt" (2.41+), "messages":[..],"messageCount":N}`; the channel and guild are named
//!   once there, never in a message ([`HeadScan`] finds them, [`message_count`] reads the end);
//! - a message is `{"id","type","timestamp","timestampEdited","callEndedTimestamp",
//!   "isPinned","content","author":{"id","name","discriminator","nickname","color","isBot",
//!   "roles" (2.41+),"avatarUrl"},"attachments":[{"id","url","fileName","fileSizeBytes"}],
//!   "embeds":[{"title","url","timestamp","description","color":"#RRGGBB","footer":{"text"},..}],
//!   "stickers","reactions","mentions":[user..],"reference":{"type" (2.47: "Default" |
//!   "Forward"),"messageId","channelId","guildId"},"forwardedMessage" (2.47),
//!   "interaction":{"id","name","user"} (2.38+),"inlineEmojis" (2.44+)}`;
//! - `type` is the name of DCE's `MessageKind` (`Default`, `Reply`, ...), or the number when
//!   DCE has no name for it (an interaction response, 20, is written `"20"`);
//! - buttons (`components`) and `interaction_metadata` are never written: a job's UUID
//!   survives only in its attachment's `fileName` (`{user}_{prompt}_{uuid}.png`), which is
//!   the original name; used-button marks are lost;
//! - `content` goes through `PlainTextMarkdownVisitor` unless `--markdown false`: `<@id>`
//!   becomes `@DisplayName` (2.37: the user name; later: the member's display name, or
//!   `@Unknown`), the id only in `mentions` ([`restore_mentions`] puts it back); `**` stays;
//! - times are .NET `DateTimeOffset`s: UTC (`+00:00`) in 2.37-2.40, the exporter's local
//!   offset from 2.41 (`NormalizeDate`: `ToLocalTime()` unless `--utc`); read as instants;
//! - an attachment's `url` is Discord's signed link, or, with `--media`, the path of the
//!   downloaded file (relative to the export's folder, absolute when the media folder is
//!   outside it; `\` on Windows). The file is named `{stem cut to 42}-{hash}{ext}`, the hash
//!   5 hex digits of the URL's SHA-256 up to 2.46 and 16 of the unsigned URL's from 2.47
//!   (`ExportAssetDownloader.cs`); a download that answered an error was saved all the same
//!   (its body under the image's name);
//! - deleted messages (Midjourney's starts and progress messages) are not in an export.
//!
//! Every function here is total: an element that does not decode is a [`Rejected`].

use serde::Deserialize;

use super::{Event, Rejected};
use crate::digest::digest;
use crate::snowflake::Snowflake;
use crate::wire;

/// What the export's root object says before its messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub guild_id: Option<Snowflake>,
    pub channel_id: Option<Snowflake>,
    pub channel_name: Option<String>,
    /// `exportedAt` (2.41+), as written.
    pub exported_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHead {
    #[serde(default)]
    guild: Option<RawNamed>,
    #[serde(default)]
    channel: Option<RawNamed>,
    #[serde(default)]
    exported_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawNamed {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The longest head (everything before `"messages"`) read: DCE writes a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 1024 * 1024;

/// Reads an export's opening bytes up to the `[` of its `messages` array, as they arrive.
#[derive(Debug, Default)]
pub struct HeadScan {
    head: Vec<u8>,
    depth: u32,
    in_string: bool,
    escaped: bool,
    done: bool,
}

impl HeadScan {
    pub fn new() -> HeadScan {
        HeadScan::default()
    }

    /// Feeds bytes; returns how many were used and, once the `messages` array is reached,
    /// the head (the bytes used stop before its `[`: give the rest to
    /// [`ArrayElements`](crate::recording::ArrayElements)). `Err` when the bytes cannot be a
    /// DCE export.
    pub fn feed(&mut self, bytes: &[u8]) -> (usize, Option<Result<Head, Rejected>>) {
        if self.done {
            return (0, None);
        }
        for (at, &byte) in bytes.iter().enumerate() {
            if self.head.is_empty() && self.depth == 0 && byte.is_ascii_whitespace() {
                continue;
            }
            if self.depth == 0 && byte != b'{' {
                self.done = true;
                return (
                    at,
                    Some(Err(not_an_export("it does not start with a JSON object"))),
                );
            }
            if self.in_string {
                self.head.push(byte);
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
            } else {
                match byte {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => {
                        if byte == b'[' && self.depth == 1 && self.before_messages() {
                            self.done = true;
                            return (at, Some(self.head()));
                        }
                        self.depth += 1;
                    }
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            self.done = true;
                            return (
                                at + 1,
                                Some(Err(not_an_export("its object has no \"messages\" array"))),
                            );
                        }
                    }
                    _ => {}
                }
                self.head.push(byte);
            }
            if self.head.len() > MAX_HEAD_BYTES {
                self.done = true;
                return (
                    at + 1,
                    Some(Err(not_an_export(&format!(
                        "no \"messages\" array within its first {MAX_HEAD_BYTES} bytes"
                    )))),
                );
            }
        }
        (bytes.len(), None)
    }

    /// The input ended before the `messages` array.
    pub fn finish(&mut self) -> Option<Rejected> {
        if self.done {
            return None;
        }
        self.done = true;
        Some(if self.head.is_empty() {
            not_an_export("it is empty")
        } else {
            not_an_export("it ends before its \"messages\" array (cut short?)")
        })
    }

    /// Whether the head read so far ends with `"messages":`.
    fn before_messages(&self) -> bool {
        let trimmed = self.head.trim_ascii_end();
        let Some(key) = trimmed.strip_suffix(b":") else {
            return false;
        };
        key.trim_ascii_end().ends_with(b"\"messages\"")
    }

    fn head(&self) -> Result<Head, Rejected> {
        let trimmed = self.head.trim_ascii_end();
        let without_key = trimmed
            .strip_suffix(b":")
            .map(<[u8]>::trim_ascii_end)
            .and_then(|key| key.strip_suffix(b"\"messages\""))
            .unwrap_or(trimmed)
            .trim_ascii_end();
        let without_comma = without_key.strip_suffix(b",").unwrap_or(without_key);
        let mut object = without_comma.to_vec();
        object.push(b'}');
        let raw: RawHead = serde_json::from_slice(&object)
            .map_err(|error| not_an_export(&format!("its head is not DCE's ({error})")))?;
        let id_of = |named: &Option<RawNamed>| {
            named
                .as_ref()
                .and_then(|named| named.id.as_deref())
                .and_then(Snowflake::parse)
                .filter(|id| id.0 != 0)
        };
        Ok(Head {
            guild_id: id_of(&raw.guild),
            channel_id: id_of(&raw.channel),
            channel_name: raw.channel.and_then(|channel| channel.name),
            exported_at: raw.exported_at,
        })
    }
}

fn not_an_export(why: &str) -> Rejected {
    Rejected(format!("not a DiscordChatExporter JSON export: {why}"))
}

/// The export's `messageCount`, from the bytes after its `messages` array (`,
/// "messageCount": N }`); `None` when they do not say (an export cut short).
pub fn message_count(tail: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Tail {
        message_count: Option<u64>,
    }
    let trimmed = tail.trim_ascii();
    let rest = trimmed.strip_prefix(b",").unwrap_or(trimmed);
    let mut object = b"{".to_vec();
    object.extend_from_slice(rest);
    serde_json::from_slice::<Tail>(&object).ok()?.message_count
}

/// One message of the export, as DCE writes it (every field optional; unknown ones counted).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessage {
    #[serde(default)]
    id: Option<IdText>,
    #[serde(default, rename = "type")]
    kind: Option<IdText>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    timestamp_edited: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    author: Option<RawUser>,
    #[serde(default)]
    attachments: Option<Vec<RawAttachment>>,
    #[serde(default)]
    embeds: Option<Vec<RawEmbed>>,
    #[serde(default)]
    mentions: Option<Vec<RawUser>>,
    #[serde(default)]
    reference: Option<RawReference>,
    #[serde(default)]
    interaction: Option<RawInteraction>,
}

/// The fields DCE's writer puts in a message (2.37 to 2.47): any other is counted as unknown.
pub const KNOWN_FIELDS: [&str; 18] = [
    "id",
    "type",
    "timestamp",
    "timestampEdited",
    "callEndedTimestamp",
    "isPinned",
    "content",
    "author",
    "attachments",
    "embeds",
    "stickers",
    "reactions",
    "mentions",
    "reference",
    "forwardedMessage",
    "interaction",
    "inlineEmojis",
    // Not DCE's: mjlink's own tests never write it, but a hand-edited export may.
    "channelId",
];

/// An id or enum written as a string (DCE) or, by hand-made files, as a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum IdText {
    Text(String),
    Number(u64),
    Other(serde::de::IgnoredAny),
}

impl IdText {
    fn text(&self) -> Option<String> {
        match self {
            IdText::Text(text) => Some(text.clone()),
            IdText::Number(number) => Some(number.to_string()),
            IdText::Other(_) => None,
        }
    }

    fn id(&self) -> Option<Snowflake> {
        self.text().as_deref().and_then(Snowflake::parse)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUser {
    #[serde(default)]
    id: Option<IdText>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    is_bot: Option<bool>,
}

impl RawUser {
    fn to_wire(&self) -> Option<wire::User> {
        Some(wire::User {
            id: self.id.as_ref()?.id()?,
            username: self.name.clone(),
            bot: self.is_bot,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAttachment {
    #[serde(default)]
    id: Option<IdText>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    file_size_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct RawEmbed {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    color: Option<String>,
    #[serde(default)]
    footer: Option<RawFooter>,
}

#[derive(Debug, Default, Deserialize)]
struct RawFooter {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawReference {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message_id: Option<IdText>,
    #[serde(default)]
    channel_id: Option<IdText>,
    #[serde(default)]
    guild_id: Option<IdText>,
}

#[derive(Debug, Default, Deserialize)]
struct RawInteraction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    user: Option<RawUser>,
}

/// Where an attachment's file is, as the export's `url` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// A link (`http(s)://`): the media was not downloaded by this export (or its download
    /// failed); a media folder may still hold it under DCE's name for the link.
    Remote { url: String },
    /// A downloaded file. `relative`: its path's folders and name when the path is relative
    /// and stays inside the export's folder (no `..`, no root, no drive); `None` otherwise (an
    /// absolute path, or one that leaves: only a `--media-dir` can find it, by `file_name`).
    Local {
        relative: Option<Vec<String>>,
        file_name: String,
    },
    /// A path no file of the export can have (empty, `..` as its name, a NUL byte).
    Unusable(String),
}

/// What an export's `url` says of an attachment's file. Pure: nothing is opened.
pub fn media_of(url: &str) -> Media {
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Media::Remote {
            url: url.trim().to_string(),
        };
    }
    if url.contains('\0') {
        return Media::Unusable("a NUL byte in the path".to_string());
    }
    let bytes = url.as_bytes();
    let has_drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    let absolute = url.starts_with('/') || url.starts_with('\\') || has_drive;
    let parts: Vec<&str> = url
        .split(['/', '\\'])
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    let Some(&file_name) = parts.last() else {
        return Media::Unusable("an empty path".to_string());
    };
    if file_name == ".." || file_name.contains(':') {
        return Media::Unusable(format!("{file_name:?} is not a file name"));
    }
    let leaves = parts.iter().any(|part| *part == ".." || part.contains(':'));
    Media::Local {
        relative: (!absolute && !leaves).then(|| parts.iter().map(|part| part.to_string()).collect()),
        file_name: file_name.to_string(),
    }
}

/// One message of an export, decoded.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The create the pipeline applies (its digest is that of the element's bytes).
    pub event: Event,
    /// Each attachment's file as the export names it, by attachment id.
    pub media: Vec<(Snowflake, Media)>,
    /// Fields of the message DCE's writer does not write (skipped), by name.
    pub unknown_fields: Vec<String>,
    /// `@Name` mentions put back as `<@id>` from `mentions`.
    pub mentions_restored: usize,
    /// Mentioned users whose `@Name` was not found in the text (the user then comes from
    /// nowhere else: the export lost it).
    pub mentions_unmatched: usize,
}

/// One element of the export's `messages` array, with what the export's head says.
pub fn from_message(bytes: &[u8], head: &Head) -> Result<Decoded, Rejected> {
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|error| Rejected(format!("not a message object ({error})")))?;
    let unknown_fields = fields
        .keys()
        .filter(|key| !KNOWN_FIELDS.contains(&key.as_str()))
        .map(|key| crate::text::cut(key, super::MAX_TYPE_NAME))
        .collect();
    let raw: RawMessage = serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|error| Rejected(format!("not a DCE message ({error})")))?;
    let id = raw
        .id
        .as_ref()
        .and_then(IdText::id)
        .ok_or_else(|| Rejected("a message without an id".to_string()))?;

    let mentions: Vec<&RawUser> = raw.mentions.iter().flatten().collect();
    let mut restored = Restored::default();
    let content = raw
        .content
        .as_deref()
        .map(|text| restore_mentions(text, &mentions, &mut restored));
    let embeds = raw.embeds.as_ref().map(|embeds| {
        embeds
            .iter()
            .map(|embed| wire::Embed {
                title: embed
                    .title
                    .as_deref()
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
                description: embed
                    .description
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .map(|text| restore_mentions(text, &mentions, &mut Restored::default())),
                color: embed.color.as_deref().and_then(hex_color),
                footer: embed.footer.as_ref().map(|footer| wire::EmbedFooter {
                    text: footer.text.clone(),
                }),
            })
            .collect()
    });
    let mut media = Vec::new();
    let attachments = raw.attachments.as_ref().map(|attachments| {
        attachments
            .iter()
            .filter_map(|attachment| {
                let attachment_id = attachment.id.as_ref()?.id()?;
                let filename = attachment.file_name.clone().unwrap_or_default();
                let given = attachment.url.clone().unwrap_or_default();
                let place = media_of(&given);
                let url = match (&place, head.channel_id) {
                    (Media::Remote { .. }, _) => given,
                    // The link Discord served it at (signed links expired long ago anyway;
                    // `mjlink archive` refreshes it with a token).
                    (_, Some(channel)) if !filename.is_empty() => {
                        format!("https://cdn.discordapp.com/attachments/{channel}/{attachment_id}/{filename}")
                    }
                    _ => String::new(),
                };
                media.push((attachment_id, place));
                Some(wire::Attachment {
                    id: attachment_id,
                    filename,
                    url,
                    size: attachment.file_size_bytes,
                    ..Default::default()
                })
            })
            .collect()
    });
    let message_reference = raw.reference.as_ref().map(|reference| wire::MessageReference {
        kind: match reference.kind.as_deref() {
            Some("Forward") => Some(wire::REFERENCE_FORWARD),
            Some("Default") => Some(0),
            Some(other) => other.parse::<u8>().ok(),
            None => None,
        },
        message_id: reference.message_id.as_ref().and_then(IdText::id),
        channel_id: reference.channel_id.as_ref().and_then(IdText::id),
        guild_id: reference.guild_id.as_ref().and_then(IdText::id),
    });
    let message = wire::Message {
        id,
        channel_id: head.channel_id,
        guild_id: head.guild_id,
        author: raw.author.as_ref().and_then(RawUser::to_wire),
        kind: raw
            .kind
            .as_ref()
            .and_then(IdText::text)
            .as_deref()
            .and_then(message_kind),
        content,
        timestamp: raw.timestamp.as_deref().map(utc_time),
        edited_timestamp: raw.timestamp_edited.as_deref().map(utc_time),
        attachments,
        embeds,
        components: None,
        mentions: raw
            .mentions
            .as_ref()
            .map(|users| users.iter().filter_map(RawUser::to_wire).collect()),
        message_reference,
        referenced_message: None,
        interaction: raw.interaction.as_ref().map(|interaction| wire::Interaction {
            name: interaction.name.clone(),
            user: interaction.user.as_ref().and_then(RawUser::to_wire),
        }),
        interaction_metadata: None,
        nonce: None,
        webhook_id: None,
    };
    Ok(Decoded {
        event: Event::Create {
            message,
            digest: digest(bytes),
        },
        media,
        unknown_fields,
        mentions_restored: restored.restored,
        mentions_unmatched: restored.unmatched,
    })
}

/// DCE's `MessageKind` names (`Discord/Data/MessageKind.cs`), or a number it had no name for.
fn message_kind(name: &str) -> Option<u8> {
    Some(match name {
        "Default" => 0,
        "RecipientAdd" => 1,
        "RecipientRemove" => 2,
        "Call" => 3,
        "ChannelNameChange" => 4,
        "ChannelIconChange" => 5,
        "ChannelPinnedMessage" => 6,
        "GuildMemberJoin" => 7,
        "ThreadCreated" => 18,
        "Reply" => 19,
        other => return other.parse().ok(),
    })
}

/// `#RRGGBB` -> the number Discord sends.
fn hex_color(text: &str) -> Option<u32> {
    let digits = text.strip_prefix('#')?;
    (digits.len() == 6).then(|| u32::from_str_radix(digits, 16).ok())?
}

/// A DCE time (any offset) as the UTC time Discord sends; kept as written when unreadable.
fn utc_time(text: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(time) => time
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        Err(_) => text.to_string(),
    }
}

#[derive(Debug, Default)]
struct Restored {
    restored: usize,
    unmatched: usize,
}

/// `@Name` back to `<@id>` for each mentioned user, by the names DCE may have written
/// (`nickname`, the display name, then `name`; the longest first, so that `@Cam Cooke` is not
/// taken for `@Cam`), and `@Unknown` when exactly one user is mentioned and no name matched.
/// A name counts only where it ends (not followed by a letter, digit or `_`).
fn restore_mentions(text: &str, mentions: &[&RawUser], restored: &mut Restored) -> String {
    let mut names: Vec<(String, Snowflake)> = Vec::new();
    for user in mentions {
        let Some(id) = user.id.as_ref().and_then(IdText::id) else {
            continue;
        };
        for name in [&user.nickname, &user.name].into_iter().flatten() {
            if !name.is_empty() && !names.iter().any(|(known, _)| known == name) {
                names.push((name.clone(), id));
            }
        }
    }
    names.sort_by_key(|(name, _)| std::cmp::Reverse(name.chars().count()));
    let mut out = String::with_capacity(text.len() + 24);
    let mut found: Vec<Snowflake> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let hit = names.iter().find(|(name, _)| {
            after.starts_with(name.as_str())
                && after[name.len()..]
                    .chars()
                    .next()
                    .is_none_or(|next| !(next.is_alphanumeric() || next == '_'))
        });
        match hit {
            Some((name, id)) => {
                out.push_str(&format!("<@{id}>"));
                found.push(*id);
                rest = &after[name.len()..];
            }
            None => {
                out.push('@');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    let ids: Vec<Snowflake> = mentions
        .iter()
        .filter_map(|user| user.id.as_ref().and_then(IdText::id))
        .collect();
    if found.is_empty() && ids.len() == 1 && out.contains("@Unknown") {
        out = out.replacen("@Unknown", &format!("<@{}>", ids[0]), 1);
        found.push(ids[0]);
    }
    restored.restored += found.len();
    // A user already written `<@id>` (`--markdown false`) needs nothing.
    restored.unmatched += ids
        .iter()
        .filter(|id| !found.contains(id) && !text.contains(&format!("<@{id}>")))
        .count();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{self, BotIds};

    fn head() -> Head {
        Head {
            guild_id: Some(Snowflake(7)),
            channel_id: Some(Snowflake(8)),
            ..Default::default()
        }
    }

    fn scan(text: &str) -> (usize, Option<Result<Head, Rejected>>) {
        HeadScan::new().feed(text.as_bytes())
    }

    #[test]
    fn the_head_ends_at_the_messages_array_whatever_comes_before() {
        let text = r#"{ "guild": {"id": "7", "name": "g [x]"}, "channel": {"id": "8", "name": "mj", "topic": "\"messages\": ["}, "dateRange": {"after": null}, "exportedAt": "2024-05-01T12:00:00+02:00", "messages": [ {"id":"1"} ], "messageCount": 1 }"#;
        let (used, head) = scan(text);
        let head = head.unwrap().unwrap();
        assert_eq!(&text[used..used + 1], "[");
        assert_eq!(head.channel_id, Some(Snowflake(8)));
        assert_eq!(head.guild_id, Some(Snowflake(7)));
        assert_eq!(head.exported_at.as_deref(), Some("2024-05-01T12:00:00+02:00"));
        assert_eq!(message_count(br#", "messageCount": 1 }"#), Some(1));
        assert_eq!(message_count(b""), None);
    }

    #[test]
    fn the_head_fed_byte_by_byte_is_the_same() {
        let text = r#"{"guild":{"id":"0","name":"Direct Messages"},"channel":{"id":"8"},"messages":[]}"#;
        let mut scan = HeadScan::new();
        let mut at = 0;
        let head = loop {
            let (used, head) = scan.feed(&text.as_bytes()[at..at + 1]);
            at += used;
            if let Some(head) = head {
                break head.unwrap();
            }
        };
        assert_eq!(&text[at..at + 1], "[");
        // A direct message's guild is id 0: no guild.
        assert_eq!(head.guild_id, None);
    }

    #[test]
    fn what_is_not_an_export_is_said_once() {
        assert!(matches!(scan("[{\"id\":\"1\"}]").1, Some(Err(_))));
        assert!(matches!(scan("{\"guild\":{}}").1, Some(Err(_))));
        let mut cut = HeadScan::new();
        assert!(cut.feed(b"{\"guild\":{\"id\":").1.is_none());
        assert!(cut.finish().is_some());
        assert!(HeadScan::new().finish().is_some());
    }

    #[test]
    fn media_paths_never_leave_the_export() {
        assert!(matches!(
            media_of("https://cdn.discordapp.com/attachments/1/2/a.png"),
            Media::Remote { .. }
        ));
        assert_eq!(
            media_of("export.json_Files/a-1f2e3.png"),
            Media::Local {
                relative: Some(vec!["export.json_Files".into(), "a-1f2e3.png".into()]),
                file_name: "a-1f2e3.png".into()
            }
        );
        assert_eq!(
            media_of("export.json_Files\\a-1f2e3.png"),
            Media::Local {
                relative: Some(vec!["export.json_Files".into(), "a-1f2e3.png".into()]),
                file_name: "a-1f2e3.png".into()
            }
        );
        for hostile in [
            "../../etc/passwd",
            "/etc/passwd",
            "C:\\Users\\x\\a.png",
            "a/../../b.png",
        ] {
            let Media::Local { relative, .. } = media_of(hostile) else {
                panic!("{hostile}")
            };
            assert_eq!(relative, None, "{hostile}");
        }
        assert!(matches!(media_of("a/.."), Media::Unusable(_)));
        assert!(matches!(media_of(""), Media::Unusable(_)));
        assert!(matches!(media_of("a\0b.png"), Media::Unusable(_)));
    }

    #[test]
    fn a_rewritten_mention_is_put_back_and_the_message_parses_as_the_bot_would() {
        let element = br#"{"id":"1128641343909007401","type":"Reply","timestamp":"2023-07-12T12:57:45.53+02:00",
            "content":"**a cat** - Image #4 @Space Pilot","author":{"id":"936929561302675456","name":"Midjourney Bot","isBot":true},
            "attachments":[{"id":"11","url":"export.json_Files/space_pilot_a_cat_c0817eea-4c46-4284--3a7f2.png","fileName":"space_pilot_a_cat_c0817eea-4c46-4284-a64a-e36158d72cfe.png","fileSizeBytes":5}],
            "embeds":[],"mentions":[{"id":"1012268717368946718","name":"spacepilot","nickname":"Space Pilot","isBot":false}],
            "reference":{"messageId":"1128599623762714675","channelId":"8","guildId":"7"},"inlineEmojis":[],"somethingNew":1}"#;
        let decoded = from_message(element, &head()).unwrap();
        assert_eq!(decoded.mentions_restored, 1);
        assert_eq!(decoded.mentions_unmatched, 0);
        assert_eq!(decoded.unknown_fields, vec!["somethingNew".to_string()]);
        let message = decoded.event.message().unwrap();
        assert_eq!(
            message.content.as_deref(),
            Some("**a cat** - Image #4 <@1012268717368946718>")
        );
        assert_eq!(message.kind, Some(19));
        assert_eq!(message.channel_id, Some(Snowflake(8)));
        // The local offset is read as the instant it is.
        assert_eq!(message.timestamp.as_deref(), Some("2023-07-12T10:57:45.530Z"));
        let attachment = &message.attachments.as_ref().unwrap()[0];
        assert_eq!(
            attachment.url,
            "https://cdn.discordapp.com/attachments/8/11/space_pilot_a_cat_c0817eea-4c46-4284-a64a-e36158d72cfe.png"
        );
        let parsed = parse::parse(message, &BotIds::default());
        assert_eq!(parsed.kind.as_str(), "upscale");
        assert_eq!(parsed.tile, Some(4));
        assert_eq!(parsed.user_id, Some(Snowflake(1012268717368946718)));
        assert_eq!(parsed.reply_to, Some(Snowflake(1128599623762714675)));
        assert_eq!(
            parsed.job_uuid.as_deref(),
            Some("c0817eea-4c46-4284-a64a-e36158d72cfe")
        );
    }

    #[test]
    fn longer_names_win_and_a_name_must_end() {
        let users = [
            RawUser {
                id: Some(IdText::Text("1".into())),
                nickname: Some("Cam".into()),
                ..Default::default()
            },
            RawUser {
                id: Some(IdText::Text("2".into())),
                nickname: Some("Cam Cooke".into()),
                ..Default::default()
            },
        ];
        let refs: Vec<&RawUser> = users.iter().collect();
        let mut restored = Restored::default();
        assert_eq!(
            restore_mentions("@Cam Cooke and @Cam, not @Camera", &refs, &mut restored),
            "<@2> and <@1>, not @Camera"
        );
        assert_eq!(restored.restored, 2);
        let one = [RawUser {
            id: Some(IdText::Text("3".into())),
            name: Some("gone".into()),
            ..Default::default()
        }];
        let refs: Vec<&RawUser> = one.iter().collect();
        let mut restored = Restored::default();
        assert_eq!(
            restore_mentions("**x** - @Unknown (fast)", &refs, &mut restored),
            "**x** - <@3> (fast)"
        );
        let mut restored = Restored::default();
        assert_eq!(
            restore_mentions("**x** - @someone (fast)", &refs, &mut restored),
            "**x** - @someone (fast)"
        );
        assert_eq!(restored.unmatched, 1);
    }

    proptest::proptest! {
        /// Any bytes: a value, never a panic (the head, a message, the tail, a media path).
        #[test]
        fn any_bytes_decode_to_a_value(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = from_message(&bytes, &head());
            let mut scan = HeadScan::new();
            let _ = scan.feed(&bytes);
            let _ = scan.finish();
            let _ = message_count(&bytes);
            let _ = media_of(&String::from_utf8_lossy(&bytes));
        }

        /// Any text where DCE writes text: decoded, mentions put back or left, never a panic.
        #[test]
        fn any_text_in_a_message_is_a_value(content in ".{0,80}", name in ".{0,12}", url in ".{0,40}") {
            let element = serde_json::json!({
                "id": "5", "content": content, "mentions": [{"id": "9", "name": name, "nickname": name}],
                "attachments": [{"id": "6", "url": url, "fileName": name}],
                "embeds": [{"description": content, "color": name}],
            });
            let decoded = from_message(element.to_string().as_bytes(), &head());
            proptest::prop_assert!(decoded.is_ok());
        }
    }

    #[test]
    fn a_bad_element_is_rejected_never_a_panic() {
        for bad in [
            &b"[1]"[..],
            b"{\"id\":\"x\"}",
            b"{}",
            b"{\"id\":",
            b"\xff",
            b"{\"id\":\"1\",\"attachments\":7}",
        ] {
            assert!(
                from_message(bad, &head()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Odd but readable values are kept as far as they go.
        let odd = br#"{"id":5,"type":"UnheardOf","timestamp":"yesterday","embeds":[{"color":"red"}],"reference":{"type":"Forward","messageId":"9"}}"#;
        let decoded = from_message(odd, &head()).unwrap();
        let message = decoded.event.message().unwrap();
        assert_eq!(message.kind, None);
        assert_eq!(message.timestamp.as_deref(), Some("yesterday"));
        assert_eq!(message.message_reference.as_ref().unwrap().reply_to(), None);
    }
}
