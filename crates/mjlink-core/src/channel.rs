//! Discord channels as far as mjlink needs them: where a dispatch happened (its guild and
//! channel), and threads with their parent channel, learned from the gateway (GUILD_CREATE's
//! `threads`, THREAD_CREATE / THREAD_UPDATE / THREAD_DELETE, THREAD_LIST_SYNC) and from REST
//! (`GET /channels/{id}`, the active and archived thread lists).
//!
//! A thread is a channel of its own (its own id, its own history) whose `parent_id` is the
//! channel it was opened in; the live bot watches a thread when it watches the parent.
//! Every function is total: what does not decode is a value ([`Rejected`], an empty list).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::Rejected;
use crate::snowflake::Snowflake;
use crate::wire::Dispatch;

/// Channel types that are threads: announcement (10), public (11) and private (12) threads.
pub const THREAD_TYPES: [u8; 3] = [10, 11, 12];

/// The dispatches that say something about channels and threads.
pub const CHANNEL_EVENTS: [&str; 7] = [
    "GUILD_CREATE",
    "CHANNEL_CREATE",
    "CHANNEL_UPDATE",
    "THREAD_CREATE",
    "THREAD_UPDATE",
    "THREAD_DELETE",
    "THREAD_LIST_SYNC",
];

/// A channel object, lean: only what tells a thread and its parent apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Channel {
    pub id: Snowflake,
    #[serde(default)]
    pub guild_id: Option<Snowflake>,
    #[serde(default)]
    pub parent_id: Option<Snowflake>,
    #[serde(rename = "type", default)]
    pub kind: Option<u8>,
    #[serde(default)]
    pub thread_metadata: Option<ThreadMetadata>,
}

/// A thread's `thread_metadata`, as far as paging archived threads needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ThreadMetadata {
    #[serde(default)]
    pub archived: Option<bool>,
    /// RFC 3339; the `before` of the next page of archived threads.
    #[serde(default)]
    pub archive_timestamp: Option<String>,
}

impl Channel {
    pub fn is_thread(&self) -> bool {
        self.kind.is_some_and(|kind| THREAD_TYPES.contains(&kind))
    }

    /// The parent of a thread; `None` for any other channel.
    pub fn thread_parent(&self) -> Option<Snowflake> {
        self.parent_id.filter(|_| self.is_thread())
    }

    /// When a thread was archived (or last changed archived state), if it says.
    pub fn archive_timestamp(&self) -> Option<&str> {
        self.thread_metadata.as_ref()?.archive_timestamp.as_deref()
    }
}

/// Where a dispatch happened: `d.guild_id` and `d.channel_id` (`None` when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    pub guild_id: Option<Snowflake>,
    pub channel_id: Option<Snowflake>,
}

/// The place a recorded or live dispatch names; all `None` when the frame does not decode.
/// (A MESSAGE_DELETE's [`crate::event::Event`] carries no guild; the live filter needs it.)
pub fn place_of_dispatch(bytes: &[u8]) -> Place {
    #[derive(Deserialize)]
    struct Ids {
        #[serde(default)]
        guild_id: Option<Snowflake>,
        #[serde(default)]
        channel_id: Option<Snowflake>,
    }
    let Some(payload) = payload_of(bytes).map(|(_, payload)| payload) else {
        return Place::default();
    };
    match serde_json::from_str::<Ids>(payload.get()) {
        Ok(ids) => Place {
            guild_id: ids.guild_id,
            channel_id: ids.channel_id,
        },
        Err(_) => Place::default(),
    }
}

/// The channels and threads a dispatch tells about (GUILD_CREATE's `channels` and
/// `threads`, CHANNEL_CREATE / UPDATE's and THREAD_CREATE / UPDATE / DELETE's channel,
/// THREAD_LIST_SYNC's `threads`), each with its guild; empty for any other dispatch and for
/// what does not decode.
pub fn channels_of_dispatch(bytes: &[u8]) -> Vec<Channel> {
    let Some((event_type, payload)) = payload_of(bytes) else {
        return Vec::new();
    };
    match event_type.as_str() {
        "CHANNEL_CREATE" | "CHANNEL_UPDATE" | "THREAD_CREATE" | "THREAD_UPDATE" | "THREAD_DELETE" => {
            serde_json::from_str::<Channel>(payload.get())
                .map(|channel| vec![channel])
                .unwrap_or_default()
        }
        "GUILD_CREATE" | "THREAD_LIST_SYNC" => {
            #[derive(Deserialize)]
            struct Lists<'a> {
                // GUILD_CREATE names its guild `id`, THREAD_LIST_SYNC `guild_id`.
                #[serde(default)]
                id: Option<Snowflake>,
                #[serde(default)]
                guild_id: Option<Snowflake>,
                #[serde(borrow, default)]
                channels: Option<Vec<&'a RawValue>>,
                #[serde(borrow, default)]
                threads: Option<Vec<&'a RawValue>>,
            }
            match serde_json::from_str::<Lists<'_>>(payload.get()) {
                Ok(lists) => {
                    let guild = if event_type == "GUILD_CREATE" {
                        lists.id
                    } else {
                        lists.guild_id
                    };
                    let channels = lists.channels.unwrap_or_default();
                    each_channel(
                        channels
                            .into_iter()
                            .chain(lists.threads.unwrap_or_default())
                            .collect(),
                    )
                    .into_iter()
                    .map(|mut thread| {
                        thread.guild_id = thread.guild_id.or(guild);
                        thread
                    })
                    .collect()
                }
                Err(_) => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// One channel as `GET /channels/{id}` returns it.
pub fn from_channel(bytes: &[u8]) -> Result<Channel, Rejected> {
    serde_json::from_slice::<Channel>(bytes).map_err(|error| Rejected(format!("not a channel ({error})")))
}

/// A list of threads as `GET /guilds/{g}/threads/active` and
/// `GET /channels/{c}/threads/archived/{public|private}` return it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadList {
    /// The threads that decoded (a thread that does not is left out, the rest still count).
    pub threads: Vec<Channel>,
    /// More archived threads before the last one.
    pub has_more: bool,
}

pub fn from_thread_list(bytes: &[u8]) -> Result<ThreadList, Rejected> {
    #[derive(Deserialize)]
    struct List<'a> {
        #[serde(borrow, default)]
        threads: Vec<&'a RawValue>,
        #[serde(default)]
        has_more: Option<bool>,
    }
    let list: List<'_> = serde_json::from_slice(bytes)
        .map_err(|error| Rejected(format!("not a list of threads ({error})")))?;
    Ok(ThreadList {
        threads: each_channel(list.threads),
        has_more: list.has_more.unwrap_or(false),
    })
}

fn each_channel(elements: Vec<&RawValue>) -> Vec<Channel> {
    elements
        .into_iter()
        .filter_map(|element| serde_json::from_str::<Channel>(element.get()).ok())
        .collect()
}

/// A dispatch's type and its raw `d`; `None` when the bytes are not a dispatch with both.
fn payload_of(bytes: &[u8]) -> Option<(String, &RawValue)> {
    let dispatch: Dispatch<'_> = serde_json::from_slice(bytes).ok()?;
    if dispatch.op.is_some_and(|op| op != 0) {
        return None;
    }
    Some((dispatch.t?, dispatch.d?))
}

/// What is known of a channel id: a thread with its parent, or not a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Thread { parent: Snowflake },
    NotAThread,
}

/// The threads seen so far and their parents, fed by what the gateway and REST say
/// ([`Threads::learn`]). Channels known not to be threads are remembered too, so each
/// unknown id needs to be looked up only once.
#[derive(Debug, Default)]
pub struct Threads {
    known: HashMap<Snowflake, Known>,
}

impl Threads {
    pub fn learn(&mut self, channel: &Channel) {
        let known = match channel.thread_parent() {
            Some(parent) => Known::Thread { parent },
            None => Known::NotAThread,
        };
        self.known.insert(channel.id, known);
    }

    /// Remembers that `id` is not a thread (or cannot be looked up: treated the same).
    pub fn learn_not_a_thread(&mut self, id: Snowflake) {
        self.known.insert(id, Known::NotAThread);
    }

    pub fn get(&self, id: Snowflake) -> Option<Known> {
        self.known.get(&id).copied()
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(channels: &[Channel]) -> Vec<(u64, Option<u64>, Option<u64>)> {
        channels
            .iter()
            .map(|channel| {
                (
                    channel.id.0,
                    channel.parent_id.map(|id| id.0),
                    channel.guild_id.map(|id| id.0),
                )
            })
            .collect()
    }

    #[test]
    fn guild_create_channels_and_threads_get_their_guild() {
        let frame = br#"{"op":0,"t":"GUILD_CREATE","s":2,"d":{"id":"900","name":"g",
            "channels":[{"id":"10","type":0,"name":"general"}],
            "threads":[{"id":"11","type":11,"parent_id":"10","name":"t"},{"id":"bad"},
                       {"id":"12","type":12,"parent_id":"10","guild_id":"900"}]}}"#;
        assert_eq!(
            ids(&channels_of_dispatch(frame)),
            vec![
                (10, None, Some(900)),
                (11, Some(10), Some(900)),
                (12, Some(10), Some(900))
            ]
        );
    }

    #[test]
    fn channel_and_thread_dispatches_and_list_sync_name_channels() {
        for event_type in [
            "CHANNEL_CREATE",
            "CHANNEL_UPDATE",
            "THREAD_CREATE",
            "THREAD_UPDATE",
            "THREAD_DELETE",
        ] {
            let frame = format!(
                r#"{{"op":0,"t":"{event_type}","s":3,"d":{{"id":"21","type":11,"parent_id":"20","guild_id":"900","newly_created":true}}}}"#
            );
            assert_eq!(
                ids(&channels_of_dispatch(frame.as_bytes())),
                vec![(21, Some(20), Some(900))],
                "{event_type}"
            );
        }
        let sync = br#"{"op":0,"t":"THREAD_LIST_SYNC","s":4,"d":{"guild_id":"900","channel_ids":["20"],
            "threads":[{"id":"22","type":11,"parent_id":"20"}],"members":[]}}"#;
        assert_eq!(ids(&channels_of_dispatch(sync)), vec![(22, Some(20), Some(900))]);
    }

    #[test]
    fn other_dispatches_and_bad_bytes_name_no_channel() {
        for frame in [
            &br#"{"op":0,"t":"MESSAGE_CREATE","s":1,"d":{"id":"1","channel_id":"2"}}"#[..],
            br#"{"op":0,"t":"THREAD_CREATE","s":1,"d":"x"}"#,
            br#"{"op":0,"t":"GUILD_CREATE","s":1,"d":{"id":"x"}}"#,
            br#"{"op":11}"#,
            b"not json",
            &[0xff, 0xfe],
        ] {
            assert!(channels_of_dispatch(frame).is_empty());
        }
    }

    #[test]
    fn the_place_of_a_deletion() {
        let frame = br#"{"op":0,"t":"MESSAGE_DELETE","s":5,"d":{"id":"1","channel_id":"2","guild_id":"3"}}"#;
        assert_eq!(
            place_of_dispatch(frame),
            Place {
                guild_id: Some(Snowflake(3)),
                channel_id: Some(Snowflake(2))
            }
        );
        assert_eq!(place_of_dispatch(b"{"), Place::default());
    }

    #[test]
    fn rest_channels_and_thread_lists() {
        let thread = from_channel(
            br#"{"id":"5","type":11,"parent_id":"4","guild_id":"900",
            "thread_metadata":{"archived":true,"archive_timestamp":"2026-06-01T10:00:00.000000+00:00"}}"#,
        )
        .unwrap();
        assert_eq!(thread.thread_parent(), Some(Snowflake(4)));
        assert_eq!(
            thread.archive_timestamp(),
            Some("2026-06-01T10:00:00.000000+00:00")
        );
        let text = from_channel(br#"{"id":"4","type":0,"parent_id":"3"}"#).unwrap();
        assert_eq!(
            text.thread_parent(),
            None,
            "a category is a parent, not a thread's"
        );
        assert!(from_channel(b"[]").is_err());

        let list = from_thread_list(
            br#"{"threads":[{"id":"5","type":11,"parent_id":"4"},{"id":""}],"members":[],"has_more":true}"#,
        )
        .unwrap();
        assert_eq!(list.threads.len(), 1);
        assert!(list.has_more);
        assert!(!from_thread_list(br#"{"threads":[]}"#).unwrap().has_more);
        assert!(from_thread_list(b"null").is_err());
    }

    #[test]
    fn threads_remember_parents_and_non_threads() {
        let mut threads = Threads::default();
        threads.learn(&Channel {
            id: Snowflake(5),
            parent_id: Some(Snowflake(4)),
            kind: Some(11),
            ..Channel::default()
        });
        threads.learn(&Channel {
            id: Snowflake(4),
            kind: Some(0),
            ..Channel::default()
        });
        threads.learn_not_a_thread(Snowflake(6));
        assert_eq!(
            threads.get(Snowflake(5)),
            Some(Known::Thread { parent: Snowflake(4) })
        );
        assert_eq!(threads.get(Snowflake(4)), Some(Known::NotAThread));
        assert_eq!(threads.get(Snowflake(6)), Some(Known::NotAThread));
        assert_eq!(threads.get(Snowflake(7)), None);
        assert_eq!(threads.len(), 3);
    }
}
