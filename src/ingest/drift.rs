//! Format drift, as the pipeline meets it: each Midjourney message of no known kind, and each
//! Midjourney payload the decoder rejected, is counted by its UTC day (the count is what the
//! store holds: `other` rows and `undecodable` rows), kept as a sample while fewer than
//! `drift.keep_samples` are, and the log warns once when a day's count jumps (the rule is
//! [`mjlink_core::drift::JumpRule`]'s; the jump is also enqueued as a notification). The pipeline calls [`after_save`] and [`undecodable`]
//! and nothing else of it; they write only the drift tables and the notifications' outbox.

use mjlink_core::digest::digest;
use mjlink_core::drift::{self, JumpRule, Reason, Undecodable};
use mjlink_core::event::to_dispatch_line;
use mjlink_core::merge::Doc;
use mjlink_core::parse::{BotIds, Kind};
use mjlink_core::snowflake::Snowflake;
use mjlink_core::text::day_of;

use crate::store::{DriftDay, Store, StoreError};

/// How many samples to keep, and when a day jumps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftOptions {
    pub keep_samples: usize,
    pub rule: JumpRule,
    /// Where the alarm is told (`[[notify]]`).
    pub notify: crate::notify::Routes,
}

impl DriftOptions {
    /// From `[drift]`.
    pub fn from_config(config: &crate::config::Config) -> DriftOptions {
        DriftOptions {
            keep_samples: config.drift_keep_samples,
            notify: crate::notify::routes(config),
            ..DriftOptions::default()
        }
    }
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            keep_samples: crate::config::DEFAULT_DRIFT_SAMPLES,
            rule: JumpRule::default(),
            notify: Default::default(),
        }
    }
}

/// After a message is saved with `kind`: when it is unknown, keep (or refresh) its sample,
/// and when it just became unknown (`was_unknown` is its stored kind before), see whether
/// its day jumps.
pub fn after_save(
    store: &Store,
    options: &DriftOptions,
    doc: &Doc,
    kind: &Kind,
    was_unknown: bool,
) -> Result<(), StoreError> {
    if !drift::is_unknown(kind) {
        return Ok(());
    }
    let message = &doc.message;
    let day = day_of(message.posted_ms());
    // The message as merged: what the parser read (fields the decoder skips are not in it).
    if let Ok(raw) = to_dispatch_line("MESSAGE_CREATE", message) {
        store.keep_drift_sample(message.id, Reason::Unknown, 0, day, &raw, options.keep_samples)?;
    }
    if !was_unknown {
        warn_if_jumped(store, options, day, message.id)?;
    }
    Ok(())
}

/// A payload the decoder rejected, which `found` says is a message; `raw` is the payload as
/// received (a dispatch line). Counted and kept when Midjourney wrote it; returns whether it
/// did.
pub fn undecodable(
    store: &Store,
    options: &DriftOptions,
    bots: &BotIds,
    found: &Undecodable,
    raw: &str,
) -> Result<bool, StoreError> {
    if !found.is_from(bots) {
        return Ok(false);
    }
    let raw = raw.trim();
    let payload = digest(raw.as_bytes());
    let day = found.day();
    if store.note_undecodable(payload, found.message_id, day)? {
        store.keep_drift_sample(
            found.message_id,
            Reason::Undecodable,
            payload,
            day,
            raw,
            options.keep_samples,
        )?;
        tracing::debug!(message_id = %found.message_id, "a Midjourney message did not decode");
        warn_if_jumped(store, options, day, found.message_id)?;
    }
    Ok(true)
}

/// Warns when the message just counted makes its day jump.
fn warn_if_jumped(
    store: &Store,
    options: &DriftOptions,
    day: i64,
    message_id: Snowflake,
) -> Result<(), StoreError> {
    let count = store.drift_count(day)?;
    let previous_day = store.drift_count(day - 1)?;
    if options.rule.crossed(previous_day, count.saturating_sub(1), count) {
        let date = DriftDay {
            day,
            ..DriftDay::default()
        }
        .date();
        tracing::warn!(
            day = %date,
            unknown = count,
            previous_day,
            message_id = %message_id,
            "Midjourney's message format may have changed: many of its messages on this day are of no kind mjlink knows; `mjlink messages --kind unknown --raw` prints samples to make fixtures of"
        );
        // Told in the pipeline's transaction; its time is the message's, as replay's clock.
        if !options.notify.is_empty() {
            let notice = mjlink_core::notify::format_drift(&date, count, previous_day, message_id);
            store.notify_enqueue(&options.notify, &notice, message_id.timestamp_ms())?;
        }
    }
    Ok(())
}

/// `0`, or `12 by day: 2026-06-14 9, 2026-06-13 3` (with how many did not decode): the
/// line of the replay summary, `/stats` and `doctor`.
pub fn line(total: &DriftDay, days: &[DriftDay]) -> String {
    if total.total() == 0 {
        return "0".to_string();
    }
    let mut line = total.total().to_string();
    if total.undecodable > 0 {
        line.push_str(&format!(" ({} did not decode)", total.undecodable));
    }
    let days: Vec<String> = days
        .iter()
        .map(|day| format!("{} {}", day.date(), day.total()))
        .collect();
    if !days.is_empty() {
        line.push_str(&format!(" by day: {}", days.join(", ")));
    }
    line
}

/// [`line`] for the whole database, its newest `days` days listed.
pub fn describe(store: &Store, days: usize) -> Result<String, StoreError> {
    let (total, _) = store.drift_totals()?;
    Ok(line(&total, &store.drift_days(days)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::pipeline::{Event, Pipeline, PipelineConfig};

    const MJ: &str = "936929561302675456";
    /// 2024-05-01T00:00:00Z in Discord's epoch.
    const DAY_START: u64 = 1_714_521_600_000 - 1_420_070_400_000;

    fn create(id: u64, author: &str, content: &str) -> (Event, i64) {
        let ms = Snowflake(id).timestamp_ms();
        let value = serde_json::json!({
            "id": id.to_string(), "channel_id": "10",
            "author": {"id": author}, "content": content,
            "timestamp": chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339(),
        });
        let text = value.to_string();
        let event = mjlink_core::event::from_message(text.as_bytes()).unwrap();
        (event, ms)
    }

    fn apply(pipeline: &mut Pipeline, id: u64, author: &str, content: &str) {
        let (event, ms) = create(id, author, content);
        pipeline.apply(&event, ms).unwrap();
    }

    /// Messages of one day, from Midjourney but of no known shape (a plain announcement has
    /// no `**prompt** - <@user>` form), are counted by day and kept up to the limit; other
    /// authors' messages and known kinds are not.
    #[test]
    fn unknown_midjourney_messages_are_counted_by_day_and_kept_up_to_the_limit() {
        let config = PipelineConfig {
            drift: DriftOptions {
                keep_samples: 2,
                ..DriftOptions::default()
            },
            ..PipelineConfig::default()
        };
        let mut pipeline = Pipeline::new(Store::open_in_memory().unwrap(), config);
        let id = |n: u64| ((DAY_START + n * 1000) << 22) + n;
        for n in 1..=3 {
            apply(
                &mut pipeline,
                id(n),
                MJ,
                &format!("Announcement number {n}: new servers"),
            );
        }
        apply(&mut pipeline, id(4), "5", "a human says hello");
        apply(&mut pipeline, id(5), MJ, "**a cat** - <@5> (Waiting to start)");
        // The same unknown message again, edited: counted once, its sample refreshed.
        let edited = serde_json::json!({
            "id": id(1).to_string(), "channel_id": "10", "content": "Announcement number 1, edited",
            "edited_timestamp": "2024-05-01T12:00:00+00:00",
        });
        let mjlink_core::event::Line::Event(update) =
            mjlink_core::event::from_gateway("MESSAGE_UPDATE", &edited.to_string())
        else {
            panic!("an update");
        };
        pipeline.apply(&update, 0).unwrap();
        let store = pipeline.into_store().unwrap();
        let day = day_of(Snowflake(id(1)).timestamp_ms());
        assert_eq!(store.drift_count(day).unwrap(), 3);
        let kept = store.drift_samples();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(kept[0].0, id(1));
        assert!(
            kept[0].1.contains("Announcement number 1, edited"),
            "{}",
            kept[0].1
        );
        assert_eq!(kept[1].0, id(2));
        // Each sample is a dispatch line that replay reads back as the same unknown message.
        let line = mjlink_core::event::from_dispatch_line(kept[1].1.as_bytes());
        let mjlink_core::event::Line::Event(event) = line else {
            panic!("{}", kept[1].1);
        };
        let parsed = mjlink_core::parse::parse(event.message().unwrap(), &BotIds::default());
        assert!(drift::is_unknown(&parsed.kind));
    }

    #[test]
    fn undecodable_payloads_of_midjourney_only_are_counted_once() {
        let store = Store::open_in_memory().unwrap();
        let options = DriftOptions::default();
        let line = format!(
            r#"{{"op":0,"t":"MESSAGE_CREATE","d":{{"id":"{}","author":{{"id":"{MJ}"}},"attachments":{{}}}}}}"#,
            (DAY_START << 22) + 1
        );
        let found = drift::undecodable(line.as_bytes()).unwrap();
        let bots = BotIds::default();
        assert!(undecodable(&store, &options, &bots, &found, &line).unwrap());
        assert!(undecodable(&store, &options, &bots, &found, &line).unwrap());
        assert_eq!(store.drift_count(found.day()).unwrap(), 1);
        assert_eq!(store.drift_samples(), [((DAY_START << 22) + 1, line.clone())]);
        let human = Undecodable {
            author_id: Snowflake(5),
            ..found
        };
        assert!(!undecodable(&store, &options, &bots, &human, &line).unwrap());
    }

    /// A log that tests can read.
    #[derive(Clone, Default)]
    struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Two unknown messages one day, then thirty the next: the next day jumps (at least 10,
    /// more than 3 x 2) and the log says so once, at its tenth, with the day and the counts.
    #[test]
    fn a_jump_is_warned_once() {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        let mut pipeline = Pipeline::new(Store::open_in_memory().unwrap(), PipelineConfig::default());
        tracing::subscriber::with_default(subscriber, || {
            let day_ms = 86_400_000u64;
            let mut n = 0;
            for (day, count) in [(0u64, 2), (1, 30)] {
                for _ in 0..count {
                    n += 1;
                    let id = ((DAY_START + day * day_ms + n * 1000) << 22) + n;
                    apply(&mut pipeline, id, MJ, "A message of a shape never seen");
                }
            }
        });
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let warnings: Vec<&str> = text.lines().filter(|line| line.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{text}");
        assert!(warnings[0].contains("day=2024-05-02"), "{}", warnings[0]);
        assert!(
            warnings[0].contains("unknown=10") && warnings[0].contains("previous_day=2"),
            "{}",
            warnings[0]
        );
    }

    /// The same jump with a `[[notify]]` target: one notification, enqueued by the pipeline
    /// with the day and the counts, dated by the message (replay's clock).
    #[test]
    fn a_jump_is_enqueued_once_as_a_notification() {
        let config = PipelineConfig {
            drift: DriftOptions {
                notify: vec![mjlink_core::notify::Route {
                    target: "ops".into(),
                    events: vec![],
                }]
                .into(),
                ..DriftOptions::default()
            },
            ..PipelineConfig::default()
        };
        let mut pipeline = Pipeline::new(Store::open_in_memory().unwrap(), config);
        let day_ms = 86_400_000u64;
        let mut n = 0;
        for (day, count) in [(0u64, 2), (1, 30)] {
            for _ in 0..count {
                n += 1;
                let id = ((DAY_START + day * day_ms + n * 1000) << 22) + n;
                apply(&mut pipeline, id, MJ, "A message of a shape never seen");
            }
        }
        let store = pipeline.into_store().unwrap();
        let due = store.notify_due(i64::MAX, 10).unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].event, "format_drift");
        assert_eq!(due[0].target, "ops");
        let body: serde_json::Value = serde_json::from_str(&due[0].body).unwrap();
        assert_eq!(body["day"], "2024-05-02");
        assert_eq!(
            (body["unknown"].as_u64(), body["previous_day"].as_u64()),
            (Some(10), Some(2))
        );
    }
}
