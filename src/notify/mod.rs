//! Notifications through a durable outbox.
//!
//! Whoever makes a change worth telling (the archiver marking a file archived, the queue
//! runner finishing an item, the pipeline's format-drift alarm) enqueues a row in
//! `notify_outbox` in the same transaction ([`crate::store::Store::notify_enqueue`], with the
//! [`Routes`] of the config and a notice built by `mjlink_core::notify`). The delivery worker
//! ([`keep_delivering`], inside `run` and `queue run`) reads the due rows on its own
//! connection, sends each (`deliver`, within the target's deadline), and records the verdict
//! of `mjlink_core::notify::after_attempt`: delivered, pending until its next try, or dead.
//! A row is marked delivered only after a 2xx answer, so delivery is at least once; the
//! idempotency key is the same for every attempt, so a receiver can drop repeats.

pub mod deliver;
pub mod sign;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use mjlink_core::notify::{after_attempt, DeliveryPolicy, Next, Route};

use crate::config::{Config, NotifyTarget};
use crate::store::{Store, StoreError};

/// Which target wants which event: what the places that enqueue need (no address, no
/// secret). Empty when no target is configured: nothing is enqueued.
pub type Routes = Arc<[Route]>;

/// The routes of `[[notify]]`.
pub fn routes(config: &Config) -> Routes {
    config
        .notify
        .iter()
        .map(|target| Route {
            target: target.name.clone(),
            events: target.events.clone(),
        })
        .collect()
}

/// The delivery worker's options.
#[derive(Debug, Clone)]
pub struct NotifyOptions {
    pub targets: Vec<NotifyTarget>,
    /// Where archived files are (attached to Discord messages).
    pub archive: crate::archive::backend::Backend,
    /// The first wait and the longest; each target's give-up time replaces the policy's.
    pub policy: DeliveryPolicy,
    /// How often the outbox is looked at when nothing is due sooner.
    pub poll: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl NotifyOptions {
    pub fn from_config(config: &Config) -> Result<NotifyOptions, crate::config::ConfigError> {
        Ok(NotifyOptions {
            targets: config.notify.clone(),
            archive: crate::archive::backend::Backend::from_config(&config.archive)?,
            policy: DeliveryPolicy::default(),
            poll: Duration::from_secs(1),
            concurrency: 4,
        })
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub delivered: u64,
    pub retry_later: u64,
    pub dead: u64,
}

/// Sends every notification due at `now()`, `concurrency` at a time, and records each
/// verdict as it comes. A row whose target is no longer configured is given up.
pub async fn deliver_due(
    store: &mut Store,
    client: &reqwest::Client,
    options: &NotifyOptions,
    now: impl Fn() -> i64,
    jitter: impl Fn() -> u32,
) -> Result<PassReport, StoreError> {
    let mut report = PassReport::default();
    let due = store.notify_due(now(), 256)?;
    let sends = futures_util::stream::iter(due.into_iter().map(|row| {
        let target = options.targets.iter().find(|target| target.name == row.target);
        let now = &now;
        async move {
            let started = now();
            let delivery = match target {
                Some(target) => Some(deliver::send(client, target, &row, &options.archive, started).await),
                None => None,
            };
            (row, target, started, delivery)
        }
    }))
    .buffer_unordered(options.concurrency.max(1));
    tokio::pin!(sends);
    while let Some((row, target, started, delivery)) = sends.next().await {
        let at = now();
        let first_try = row.first_try_ms.unwrap_or(started);
        let (next, error) = match (target, delivery) {
            (Some(target), Some(delivery)) => {
                let policy = DeliveryPolicy {
                    give_up_after_ms: target.give_up_after_ms,
                    ..options.policy
                };
                let next = after_attempt(
                    delivery.attempt,
                    row.attempts + 1,
                    first_try,
                    at,
                    jitter(),
                    &policy,
                );
                (next, delivery.error)
            }
            _ => (
                Next::Dead,
                Some(format!("no [[notify]] target is named {:?}", row.target)),
            ),
        };
        store.notify_record(row.id, first_try, at, next, error.as_deref())?;
        let error = error.unwrap_or_default();
        match next {
            Next::Delivered => {
                report.delivered += 1;
                tracing::debug!(target_name = %row.target, event = %row.event, key = %row.key, "notification delivered");
            }
            Next::RetryAt(when) => {
                report.retry_later += 1;
                tracing::warn!(
                    target_name = %row.target,
                    event = %row.event,
                    key = %row.key,
                    attempt = row.attempts + 1,
                    next_try_in_ms = when - at,
                    %error,
                    "a notification was not delivered; it is tried again later"
                );
            }
            Next::Dead => {
                report.dead += 1;
                tracing::error!(
                    target_name = %row.target,
                    event = %row.event,
                    key = %row.key,
                    attempts = row.attempts + 1,
                    %error,
                    "a notification was given up (dead letter; `mjlink doctor` lists them)"
                );
            }
        }
    }
    Ok(report)
}

/// The delivery worker: a pass whenever something is due (looked at every `poll`), until
/// `stop` completes. A stop cuts short the requests in flight: their rows stay pending and
/// are sent again by the next start (at least once; same idempotency key).
pub async fn keep_delivering(mut store: Store, options: NotifyOptions, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    // No overall timeout here: each request has its target's deadline.
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(error = %crate::causes::of(&error), "notifications cannot be sent");
            return;
        }
    };
    loop {
        let pass = deliver_due(
            &mut store,
            &client,
            &options,
            crate::clock::now_ms,
            crate::clock::jitter_bits,
        );
        let failed = tokio::select! {
            result = pass => match result {
                Ok(_) => false,
                Err(error) => {
                    tracing::error!(%error, "the notification pass stopped; trying again later");
                    true
                }
            },
            () = &mut stop => return,
        };
        // The next due row, looked at again within `poll` (rows enqueued meanwhile by other
        // connections are found then); after a failed pass, a whole `poll`.
        let wait = match store.notify_next_due() {
            Ok(Some(at)) if !failed => Duration::from_millis(
                (at - crate::clock::now_ms()).clamp(0, options.poll.as_millis() as i64) as u64,
            ),
            _ => options.poll,
        };
        tokio::select! {
            () = tokio::time::sleep(wait.max(Duration::from_millis(20))) => {}
            () = &mut stop => return,
        }
    }
}
