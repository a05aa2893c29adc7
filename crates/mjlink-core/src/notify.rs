//! Notifications: which events are told, to which targets, with what body, under which
//! idempotency key; and, after each delivery attempt, when the next one is or whether the
//! notification is given up (dead-lettered).
//!
//! The shell enqueues a [`Notice`] in the same transaction as the state change it tells of
//! (so a crash can neither lose nor invent one), once per target that wants its event
//! ([`targets_for`]), under [`idempotency_key`]: the same event for the same target is the
//! same key, stored once, sent with every retry. [`after_attempt`] decides what a failed
//! attempt means, with the time passed in.

use serde_json::json;

use crate::queue::{Item, Status, Transition};
use crate::snowflake::Snowflake;

/// What happened, as targets subscribe to it (`events = [...]` in `[[notify]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// A family's grid (the four-image message) was archived.
    GridArchived,
    /// A result (an upscale, a variation, a clip...) was archived.
    ResultArchived,
    /// A queue item finished with everything it asked for.
    QueueDone,
    /// A queue item finished with fewer upscales than asked.
    QueuePartial,
    /// A queue item failed.
    QueueFailed,
    /// A day's count of unknown Midjourney messages jumped: its format may have changed.
    FormatDrift,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::GridArchived,
        EventKind::ResultArchived,
        EventKind::QueueDone,
        EventKind::QueuePartial,
        EventKind::QueueFailed,
        EventKind::FormatDrift,
    ];

    /// The name in the config, the body and the stored row.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::GridArchived => "grid_archived",
            EventKind::ResultArchived => "result_archived",
            EventKind::QueueDone => "queue_done",
            EventKind::QueuePartial => "queue_partial",
            EventKind::QueueFailed => "queue_failed",
            EventKind::FormatDrift => "format_drift",
        }
    }

    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// A target's name and the events it wants (empty: all of them). No address and no secret:
/// this is what the places that enqueue need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub target: String,
    pub events: Vec<EventKind>,
}

/// The targets that want `kind`, in the configured order.
pub fn targets_for(routes: &[Route], kind: EventKind) -> impl Iterator<Item = &str> {
    routes
        .iter()
        .filter(move |route| route.events.is_empty() || route.events.contains(&kind))
        .map(|route| route.target.as_str())
}

/// One event to tell, before it is addressed to a target.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub kind: EventKind,
    /// What the event is about, unique per kind: an attachment id, a queue item id, a day.
    pub subject: String,
    /// The JSON body sent to a webhook (and summarized for Discord).
    pub body: serde_json::Value,
    /// The archived file, relative to the archive folder (attached on Discord).
    pub file: Option<String>,
    /// The Discord message the event is about (`https://discord.com/channels/...`).
    pub jump_url: Option<String>,
    /// One line for people (a Discord message's text).
    pub summary: String,
}

/// The key a receiver deduplicates by: the same for every attempt of one notification, and
/// the same whenever the same event is enqueued again for the same target.
pub fn idempotency_key(target: &str, kind: EventKind, subject: &str) -> String {
    format!(
        "mjlink-{}-{subject}-{:016x}",
        kind.as_str(),
        crate::digest::digest(target.as_bytes())
    )
}

/// A Discord message's link (`@me` for a direct message).
pub fn jump_url(guild: Option<Snowflake>, channel: Snowflake, message: Snowflake) -> String {
    let guild = guild.map_or_else(|| "@me".to_string(), |guild| guild.to_string());
    format!("https://discord.com/channels/{guild}/{channel}/{message}")
}

/// What an archived file's notice says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived<'a> {
    /// Its message is a grid (a family's root or any four-image message), not a result.
    pub grid: bool,
    pub message_id: Snowflake,
    pub attachment_id: Snowflake,
    pub guild_id: Option<Snowflake>,
    pub channel_id: Option<Snowflake>,
    pub kind: &'a str,
    pub tile: Option<u8>,
    pub parent_id: Option<Snowflake>,
    pub prompt: Option<&'a str>,
    pub path: &'a str,
    pub sha256: &'a str,
    pub bytes: u64,
}

/// The notice of a file archived (a grid's or a result's).
pub fn archived(file: &Archived<'_>) -> Notice {
    let kind = if file.grid {
        EventKind::GridArchived
    } else {
        EventKind::ResultArchived
    };
    let jump = file
        .channel_id
        .map(|channel| jump_url(file.guild_id, channel, file.message_id));
    let what = if file.grid { "Grid" } else { "Result" };
    let prompt = file.prompt.map(|prompt| crate::text::cut(prompt, 300));
    Notice {
        kind,
        subject: file.attachment_id.to_string(),
        body: json!({
            "event": kind.as_str(),
            "message_id": file.message_id.to_string(),
            "attachment_id": file.attachment_id.to_string(),
            "guild_id": file.guild_id.map(|id| id.to_string()),
            "channel_id": file.channel_id.map(|id| id.to_string()),
            "kind": file.kind,
            "tile": file.tile,
            "parent_id": file.parent_id.map(|id| id.to_string()),
            "prompt": file.prompt,
            "path": file.path,
            "sha256": file.sha256,
            "bytes": file.bytes,
            "jump_url": jump,
        }),
        file: Some(file.path.to_string()),
        summary: match &prompt {
            Some(prompt) => format!("{what} archived ({}): {prompt}", file.kind),
            None => format!("{what} archived ({})", file.kind),
        },
        jump_url: jump,
    }
}

/// The notice of a queue item that just finished (`done`, `partial`, `failed`; nothing for
/// a cancelled item or a step that is not an end), with the reason and the missing tiles.
pub fn queue_finished(
    item: &Item,
    transition: &Transition,
    guild: Option<Snowflake>,
    channel: Option<Snowflake>,
) -> Option<Notice> {
    let kind = match transition.to {
        Status::Done => EventKind::QueueDone,
        Status::Partial => EventKind::QueuePartial,
        Status::Failed => EventKind::QueueFailed,
        _ => return None,
    };
    if transition.from == Some(transition.to) {
        return None;
    }
    let missing: Vec<u8> = item
        .upscales
        .tiles()
        .iter()
        .copied()
        .filter(|tile| !item.results.contains_key(tile))
        .collect();
    let reason = match kind {
        EventKind::QueueDone => None,
        _ => Some(item.last_error.clone().unwrap_or_else(|| transition.note.clone())),
    };
    let jump = item
        .grid_message_id
        .zip(channel)
        .map(|(grid, channel)| jump_url(guild, channel, grid));
    let status = transition.to.as_str();
    let prompt = crate::text::cut(&item.prompt, 300);
    let summary = match (&reason, missing.is_empty() || kind == EventKind::QueueDone) {
        (None, _) => format!("Queue item {status}: {prompt}"),
        (Some(reason), true) => format!("Queue item {status} ({reason}): {prompt}"),
        (Some(reason), false) => {
            let tiles: Vec<String> = missing.iter().map(u8::to_string).collect();
            format!(
                "Queue item {status} ({reason}; missing U{}): {prompt}",
                tiles.join(", U")
            )
        }
    };
    Some(Notice {
        kind,
        subject: item.id.clone(),
        body: json!({
            "event": kind.as_str(),
            "item_id": item.id,
            "status": status,
            "prompt": item.prompt,
            "reason": reason,
            "missing_tiles": if kind == EventKind::QueueDone { Vec::new() } else { missing },
            "attempts": item.attempts,
            "grid_message_id": item.grid_message_id.map(|id| id.to_string()),
            "results": item.results.iter().map(|(tile, id)| (tile.to_string(), id.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
            "at_ms": transition.at_ms,
            "jump_url": jump,
        }),
        file: None,
        jump_url: jump,
        summary,
    })
}

/// The notice of the format-drift alarm: `unknown` Midjourney messages of no known kind on
/// `date` (`YYYY-MM-DD`), against `previous_day` the day before.
pub fn format_drift(date: &str, unknown: u64, previous_day: u64, message_id: Snowflake) -> Notice {
    Notice {
        kind: EventKind::FormatDrift,
        subject: date.to_string(),
        body: json!({
            "event": EventKind::FormatDrift.as_str(),
            "day": date,
            "unknown": unknown,
            "previous_day": previous_day,
            "message_id": message_id.to_string(),
        }),
        file: None,
        jump_url: None,
        summary: format!(
            "Midjourney's message format may have changed: {unknown} messages of no known kind on {date} (the day before: {previous_day})"
        ),
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx answer.
    Delivered,
    /// 429, with its `Retry-After` in milliseconds when it gave one.
    RateLimited { retry_after_ms: Option<i64> },
    /// Anything else: another status, a connection error, the deadline passed.
    Failed,
}

/// How long failed deliveries wait, and when they are given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// The wait after the first failure; doubled after each further one.
    pub first_wait_ms: i64,
    /// The longest wait between tries (before jitter).
    pub max_wait_ms: i64,
    /// Given up (dead-lettered) once this long has passed since the first attempt.
    pub give_up_after_ms: i64,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            first_wait_ms: 5_000,
            max_wait_ms: 15 * 60_000,
            give_up_after_ms: 24 * 3_600_000,
        }
    }
}

/// What becomes of a notification after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Tried again at this time (Unix milliseconds).
    RetryAt(i64),
    /// Given up: into the dead-letter list.
    Dead,
}

/// The verdict after `attempt`, the `attempts`-th (this one included), made at `now_ms`, the
/// first having been made at `first_try_ms`. The wait doubles from `first_wait_ms` up to
/// `max_wait_ms`, and `jitter` (any bits: the shell's random or clock bits) spreads it over
/// its upper half, so many receivers recovering at once are not hit together. A 429's
/// `Retry-After` is honoured as given (no earlier try). Past `give_up_after_ms` since the
/// first attempt, or when the next try would come after that, the notification is dead.
pub fn after_attempt(
    attempt: Attempt,
    attempts: i64,
    first_try_ms: i64,
    now_ms: i64,
    jitter: u32,
    policy: &DeliveryPolicy,
) -> Next {
    if attempt == Attempt::Delivered {
        return Next::Delivered;
    }
    let give_up_at = first_try_ms.saturating_add(policy.give_up_after_ms.max(0));
    if now_ms >= give_up_at {
        return Next::Dead;
    }
    let doublings = attempts.saturating_sub(1).clamp(0, 40) as u32;
    let backoff = policy
        .first_wait_ms
        .max(1)
        .saturating_mul(1i64 << doublings.min(62))
        .min(policy.max_wait_ms.max(1));
    // Half fixed, half jittered: the wait stays within [backoff/2, backoff].
    let half = backoff / 2;
    let jittered = half + i64::from(jitter) % (backoff - half + 1);
    let at = match attempt {
        Attempt::RateLimited {
            retry_after_ms: Some(asked),
        } => {
            let at = now_ms.saturating_add(asked.max(0));
            if at > give_up_at {
                return Next::Dead;
            }
            return Next::RetryAt(at);
        }
        _ => now_ms.saturating_add(jittered),
    };
    // The last try is made at the give-up time, not skipped.
    Next::RetryAt(at.min(give_up_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Upscales;

    const NOW: i64 = 1_700_000_000_000;

    fn policy() -> DeliveryPolicy {
        DeliveryPolicy {
            first_wait_ms: 1_000,
            max_wait_ms: 60_000,
            give_up_after_ms: 3_600_000,
        }
    }

    #[test]
    fn after_attempt_a_success_is_delivered_whatever_the_time() {
        assert_eq!(
            after_attempt(Attempt::Delivered, 9, NOW - 10 * 3_600_000, NOW, 0, &policy()),
            Next::Delivered
        );
    }

    #[test]
    fn after_attempt_the_wait_doubles_within_jitter_bounds_and_is_capped() {
        for jitter in [0u32, 1, 499, 500, 777, u32::MAX] {
            for (attempts, full) in [(1, 1_000), (2, 2_000), (3, 4_000), (7, 60_000), (40, 60_000)] {
                let Next::RetryAt(at) = after_attempt(Attempt::Failed, attempts, NOW, NOW, jitter, &policy())
                else {
                    panic!("retried");
                };
                let wait = at - NOW;
                assert!(
                    wait >= full / 2 && wait <= full,
                    "attempt {attempts}, jitter {jitter}: {wait}"
                );
            }
        }
        // Different jitter bits give different waits.
        let a = after_attempt(Attempt::Failed, 5, NOW, NOW, 3, &policy());
        let b = after_attempt(Attempt::Failed, 5, NOW, NOW, 4_001, &policy());
        assert_ne!(a, b);
    }

    #[test]
    fn after_attempt_honours_retry_after_exactly() {
        let next = after_attempt(
            Attempt::RateLimited {
                retry_after_ms: Some(7_500),
            },
            1,
            NOW,
            NOW,
            0,
            &policy(),
        );
        assert_eq!(next, Next::RetryAt(NOW + 7_500));
        // A 429 without Retry-After backs off like any failure.
        let Next::RetryAt(at) = after_attempt(
            Attempt::RateLimited { retry_after_ms: None },
            1,
            NOW,
            NOW,
            0,
            &policy(),
        ) else {
            panic!("retried")
        };
        assert!((NOW + 500..=NOW + 1_000).contains(&at));
    }

    #[test]
    fn after_attempt_gives_up_after_the_configured_time_since_the_first_try() {
        let first = NOW - 3_600_000;
        assert_eq!(
            after_attempt(Attempt::Failed, 30, first, NOW, 0, &policy()),
            Next::Dead
        );
        // Just before: the next try is clamped to the give-up time, not skipped.
        let next = after_attempt(Attempt::Failed, 30, first + 1_000, NOW, 0, &policy());
        assert_eq!(next, Next::RetryAt(first + 1_000 + 3_600_000));
        // A Retry-After beyond the give-up time: given up now.
        let next = after_attempt(
            Attempt::RateLimited {
                retry_after_ms: Some(2 * 3_600_000),
            },
            1,
            NOW,
            NOW,
            0,
            &policy(),
        );
        assert_eq!(next, Next::Dead);
    }

    #[test]
    fn after_attempt_is_total_on_odd_input() {
        let odd = DeliveryPolicy {
            first_wait_ms: -5,
            max_wait_ms: 0,
            give_up_after_ms: -1,
        };
        assert_eq!(
            after_attempt(Attempt::Failed, i64::MIN, NOW, NOW, u32::MAX, &odd),
            Next::Dead
        );
        let next = after_attempt(Attempt::Failed, i64::MAX, i64::MIN, i64::MAX, u32::MAX, &policy());
        assert_eq!(next, Next::Dead);
        let next = after_attempt(Attempt::Failed, i64::MAX, NOW, NOW, u32::MAX, &policy());
        assert!(matches!(next, Next::RetryAt(_)));
    }

    #[test]
    fn targets_for_follows_each_routes_events() {
        let routes = vec![
            Route {
                target: "all".into(),
                events: vec![],
            },
            Route {
                target: "queue".into(),
                events: vec![EventKind::QueueFailed, EventKind::QueuePartial],
            },
        ];
        let names: Vec<&str> = targets_for(&routes, EventKind::QueueFailed).collect();
        assert_eq!(names, ["all", "queue"]);
        let names: Vec<&str> = targets_for(&routes, EventKind::GridArchived).collect();
        assert_eq!(names, ["all"]);
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn idempotency_key_is_stable_per_target_event_and_subject() {
        let key = idempotency_key("hook", EventKind::QueueDone, "abc");
        assert_eq!(key, idempotency_key("hook", EventKind::QueueDone, "abc"));
        assert_ne!(key, idempotency_key("other", EventKind::QueueDone, "abc"));
        assert_ne!(key, idempotency_key("hook", EventKind::QueueFailed, "abc"));
        assert_ne!(key, idempotency_key("hook", EventKind::QueueDone, "abd"));
    }

    fn item(status: Status) -> Item {
        let mut item = Item::new(
            "item-1".into(),
            "a cat --ar 3:2".into(),
            Upscales(vec![1, 3]),
            0,
            NOW,
        );
        item.status = status;
        item.grid_message_id = Some(Snowflake(42));
        item.results.insert(1, Snowflake(43));
        item.last_error = Some("upscale timed out".into());
        item
    }

    #[test]
    fn queue_finished_tells_the_end_with_reason_and_missing_tiles() {
        let transition = Transition {
            at_ms: NOW,
            from: Some(Status::Upscaling),
            to: Status::Partial,
            note: "timed out".into(),
        };
        let notice = queue_finished(
            &item(Status::Partial),
            &transition,
            Some(Snowflake(1)),
            Some(Snowflake(2)),
        )
        .unwrap();
        assert_eq!(notice.kind, EventKind::QueuePartial);
        assert_eq!(notice.body["missing_tiles"], json!([3]));
        assert_eq!(notice.body["reason"], json!("upscale timed out"));
        assert_eq!(
            notice.jump_url.as_deref(),
            Some("https://discord.com/channels/1/2/42")
        );
        assert!(notice.summary.contains("missing U3"), "{}", notice.summary);

        let done = Transition {
            to: Status::Done,
            ..transition.clone()
        };
        let notice = queue_finished(&item(Status::Done), &done, None, None).unwrap();
        assert_eq!(notice.kind, EventKind::QueueDone);
        assert_eq!(notice.body["reason"], json!(null));
        for to in [Status::Cancelled, Status::Upscaling, Status::Queued] {
            let other = Transition {
                to,
                ..transition.clone()
            };
            assert_eq!(queue_finished(&item(to), &other, None, None), None);
        }
    }

    #[test]
    fn archived_names_grid_or_result_and_links_the_message() {
        let file = Archived {
            grid: true,
            message_id: Snowflake(10),
            attachment_id: Snowflake(11),
            guild_id: None,
            channel_id: Some(Snowflake(12)),
            kind: "imagine",
            tile: None,
            parent_id: None,
            prompt: Some("a cat"),
            path: "2026/01/x/grid_10.png",
            sha256: "ab",
            bytes: 3,
        };
        let notice = archived(&file);
        assert_eq!(notice.kind, EventKind::GridArchived);
        assert_eq!(notice.subject, "11");
        assert_eq!(
            notice.jump_url.as_deref(),
            Some("https://discord.com/channels/@me/12/10")
        );
        assert_eq!(notice.file.as_deref(), Some("2026/01/x/grid_10.png"));
        let result = archived(&Archived { grid: false, ..file });
        assert_eq!(result.kind, EventKind::ResultArchived);
    }
}
