//! The queue's shell: each tick reads the unfinished items and what the database has seen of
//! their jobs, lets [`machine::advance`] decide, presses the upscale buttons it asks for,
//! stores every change with its transition, then submits what the limits allow.
//!
//! The database is the only memory: a restart resumes from it, and an item that was
//! submitted before the stop is looked for (by its nonce, its job UUID, its grid) in what the
//! start's catch-up brought in before any timeout can send it again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::bind::{self, Binding};
use super::machine::{self, Limits, Policy, Seen};
use super::submit::{new_nonce, Button, SubmitError, Submitter};
use super::{Item, Status, Transition};
use crate::store::{Store, StoreError};
use mjlink_core::snowflake::Snowflake;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Submit(#[from] SubmitError),
}

/// How the runner paces and where it looks.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    pub policy: Policy,
    pub limits: Limits,
    /// Least time between two submissions.
    pub spacing_ms: i64,
    /// Up to this much is added to each spacing (spread deterministically by a counter).
    pub jitter_ms: i64,
    /// The channel jobs are submitted in and the user account that submits them: together
    /// they allow the last-resort match of a grid by its exact prompt.
    pub channel_id: Option<Snowflake>,
    pub user_id: Option<Snowflake>,
    /// The server of `channel_id` (for the jump link of a notification).
    pub guild_id: Option<Snowflake>,
    /// Where a finished item is told (`[[notify]]`).
    pub notify: crate::notify::Routes,
}

impl RunnerOptions {
    /// From `[queue]`: the machine's timeouts and limits, the pacing, where to look.
    pub fn from_config(config: &crate::config::Config) -> RunnerOptions {
        let queue = &config.queue;
        RunnerOptions {
            policy: Policy {
                wait_timeout_ms: queue.wait_timeout_ms,
                render_timeout_ms: queue.render_timeout_ms,
                upscale_timeout_ms: queue.upscale_timeout_ms,
                max_attempts: queue.max_attempts,
                retry_backoff_ms: queue.retry_wait_ms,
                queue_full_backoff_ms: queue.queue_full_wait_ms,
                ..Default::default()
            },
            limits: Limits {
                max_in_flight: queue.max_in_flight,
                max_waiting: queue.max_waiting,
                daily_cap: queue.daily_cap,
            },
            spacing_ms: queue.spacing_ms,
            jitter_ms: queue.spacing_ms / 2,
            channel_id: queue.channel_id,
            user_id: queue.user_id,
            guild_id: queue.guild_id,
            notify: crate::notify::routes(config),
        }
    }
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            policy: Policy::default(),
            limits: Limits::default(),
            spacing_ms: 3_000,
            jitter_ms: 2_000,
            channel_id: None,
            user_id: None,
            guild_id: None,
            notify: Default::default(),
        }
    }
}

/// What one tick did.
#[derive(Debug, Default, Clone)]
pub struct TickReport {
    /// (item id, from, to, note)
    pub transitions: Vec<(String, Status, Status, String)>,
    pub submitted: usize,
    pub pressed: usize,
    /// Items not finished after the tick.
    pub active: usize,
    /// The unfinished items by status.
    pub active_by_status: Vec<(Status, usize)>,
}

pub struct Runner<S> {
    store: Store,
    submitter: S,
    options: RunnerOptions,
    next_submit_ms: i64,
    counter: u64,
    /// The time of this runner's first tick: a submission made since then was watched (its
    /// start message, with the nonce, comes through the gateway); one made before may have
    /// been answered while nobody watched.
    watched_since_ms: Option<i64>,
}

/// The start of the UTC day of `ms`.
fn day_start(ms: i64) -> i64 {
    ms - ms.rem_euclid(86_400_000)
}

impl<S: Submitter> Runner<S> {
    pub fn new(store: Store, submitter: S, options: RunnerOptions) -> Runner<S> {
        Runner {
            store,
            submitter,
            options,
            next_submit_ms: i64::MIN,
            counter: 0,
            watched_since_ms: None,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What the database shows of `item`'s current job.
    fn seen(&self, item: &Item, now_ms: i64) -> Result<Seen, StoreError> {
        let mut seen = Seen::default();
        if let Some(nonce) = &item.nonce {
            seen.by_nonce = self.store.messages_with_nonce(nonce)?;
        }
        let grid_id = match item.grid_message_id {
            Some(grid) => Some(grid),
            None if matches!(item.status, Status::Submitted | Status::Rendering) => {
                self.find_grid(item, &seen, now_ms)?
            }
            None => None,
        };
        if let Some(grid) = grid_id {
            seen.grid = self.store.grid_facts(grid)?;
            seen.upscales = machine::upscales_by_tile(self.store.upscales_of(grid)?);
        }
        Ok(seen)
    }

    /// The grid of a submitted job, by the core's rule ([`bind`]): exact signals (a root
    /// carrying its nonce, the final the pipeline settled for its start, the one grid with its
    /// job UUID) whenever one exists; the prompt only for a submission no runner watched, in
    /// its own window, when exactly one grid fits that no other item can claim.
    fn find_grid(&self, item: &Item, seen: &Seen, now_ms: i64) -> Result<Option<Snowflake>, StoreError> {
        let mut exact = bind::Exact::default();
        for message in seen.by_nonce.iter().filter(|message| message.kind == "progress") {
            if let Some(grid) = self.store.final_of(message.id)? {
                exact.start_final = Some(grid);
                break;
            }
        }
        if let Some(uuid) = bind::job_uuid(item, &seen.by_nonce) {
            exact.by_job = self
                .store
                .grids_with_job(&uuid, item.submitted_ms.unwrap_or(now_ms))?;
        }
        let watched_since = self.watched_since_ms.unwrap_or(now_ms);
        let binding = match bind::bind(item, &seen.by_nonce, &exact, watched_since) {
            Binding::ByPrompt => self.by_prompt(item, now_ms)?,
            binding => binding,
        };
        Ok(match binding {
            Binding::Grid(grid, signal) => {
                tracing::debug!(item = %item.id, %grid, ?signal, "found the item's grid");
                Some(grid)
            }
            Binding::Wait(reason) => {
                tracing::trace!(item = %item.id, reason, "no grid yet");
                None
            }
            Binding::ByPrompt => None,
        })
    }

    /// The facts for [`bind::by_prompt`]: the grids with the item's exact prompt since its
    /// submission, and the other unfinished items with that prompt and no grid.
    fn by_prompt(&self, item: &Item, now_ms: i64) -> Result<Binding, StoreError> {
        let (Some(channel), Some(user), Some(submitted)) =
            (self.options.channel_id, self.options.user_id, item.submitted_ms)
        else {
            return Ok(Binding::Wait("no channel and user to match a prompt in"));
        };
        let prompt = mjlink_core::prompt::split(&item.prompt).normalized();
        let candidates = self
            .store
            .queue_grid_candidates(channel, user, &prompt, submitted, now_ms, &item.id)?;
        if candidates.is_empty() {
            return Ok(Binding::Wait("no grid with its prompt since its submission"));
        }
        let rivals: Vec<bind::Rival> = self
            .store
            .queue_active()?
            .into_iter()
            .filter(|other| {
                other.id != item.id
                    && matches!(other.status, Status::Submitted | Status::Rendering)
                    && other.grid_message_id.is_none()
                    && mjlink_core::prompt::split(&other.prompt).normalized() == prompt
            })
            .filter_map(|other| {
                Some(bind::Rival {
                    submitted_ms: other.submitted_ms?,
                    job_uuid: other.job_uuid,
                })
            })
            .collect();
        Ok(bind::by_prompt(item, &candidates, &rivals, now_ms))
    }

    fn save(
        &mut self,
        item: &Item,
        read_at: i64,
        from: Status,
        note: Option<String>,
        now_ms: i64,
        report: &mut TickReport,
    ) -> Result<bool, StoreError> {
        let transition = (item.status != from).then(|| Transition {
            at_ms: now_ms,
            from: Some(from),
            to: item.status,
            note: note.clone().unwrap_or_default(),
        });
        // A finished item's notification is enqueued with its change, or neither is stored.
        let notice = transition.as_ref().and_then(|transition| {
            mjlink_core::notify::queue_finished(
                item,
                transition,
                self.options.guild_id,
                self.options.channel_id,
            )
        });
        let stored = match notice.filter(|_| !self.options.notify.is_empty()) {
            Some(notice) => {
                self.store.begin()?;
                let saved = self
                    .store
                    .queue_save(item, Some(read_at), transition.as_ref())
                    .and_then(|stored| {
                        if stored {
                            self.store.notify_enqueue(&self.options.notify, &notice, now_ms)?;
                        }
                        Ok(stored)
                    });
                match saved {
                    Ok(stored) => {
                        self.store.commit()?;
                        stored
                    }
                    Err(error) => {
                        self.store.rollback()?;
                        return Err(error);
                    }
                }
            }
            None => self.store.queue_save(item, Some(read_at), transition.as_ref())?,
        };
        if stored && item.status != from {
            tracing::info!(item = %item.id, from = %from, to = %item.status, note = note.as_deref().unwrap_or(""), "queue item");
            report
                .transitions
                .push((item.id.clone(), from, item.status, note.unwrap_or_default()));
        }
        Ok(stored)
    }

    /// One pass: follow every unfinished item, then submit what the limits allow.
    pub async fn tick(&mut self, now_ms: i64) -> Result<TickReport, QueueError> {
        let mut report = TickReport::default();
        self.watched_since_ms.get_or_insert(now_ms);
        let mut items = self.store.queue_active()?;
        for item in &mut items {
            if item.status == Status::Queued {
                continue;
            }
            let seen = self.seen(item, now_ms)?;
            let step = machine::advance(item, &seen, now_ms, &self.options.policy);
            if step.item == *item {
                continue;
            }
            let from = item.status;
            let mut next = step.item;
            if !self.save(&next, item.updated_ms, from, step.note, now_ms, &mut report)? {
                continue;
            }
            if !step.press.is_empty() {
                let read_at = next.updated_ms;
                let unpressed = self.press(&mut next, &step.press, now_ms, &mut report).await?;
                if unpressed {
                    next.updated_ms = now_ms + 1;
                    self.save(&next, read_at, next.status, None, now_ms, &mut report)?;
                }
            }
            *item = next;
        }
        self.submit(&mut items, now_ms, &mut report).await?;
        report.active = items.iter().filter(|item| !item.status.is_final()).count();
        report.active_by_status = Status::ALL
            .into_iter()
            .filter(|status| !status.is_final())
            .map(|status| (status, items.iter().filter(|item| item.status == status).count()))
            .filter(|(_, n)| *n > 0)
            .collect();
        Ok(report)
    }

    /// Presses the grid's upscale buttons; a press that could not be sent is un-marked (and
    /// tried again next tick). Returns whether any was un-marked.
    async fn press(
        &mut self,
        item: &mut Item,
        tiles: &[u8],
        now_ms: i64,
        report: &mut TickReport,
    ) -> Result<bool, QueueError> {
        let (Some(grid), Some(uuid)) = (item.grid_message_id, item.job_uuid.clone()) else {
            for tile in tiles {
                item.pressed.remove(tile);
            }
            item.last_error = Some("the grid's job UUID is unknown: cannot press its buttons".to_string());
            return Ok(true);
        };
        let mut unpressed = false;
        for tile in tiles {
            self.counter += 1;
            let nonce = new_nonce(now_ms, self.counter);
            match self
                .submitter
                .press(&Button::upscale(grid, &uuid, *tile), &nonce)
                .await
            {
                Ok(()) => report.pressed += 1,
                Err(error) if error.is_fatal() => return Err(error.into()),
                Err(error) => {
                    tracing::warn!(item = %item.id, tile, %error, "could not press an upscale button");
                    item.pressed.remove(tile);
                    item.last_error = Some(format!("could not press U{tile}: {error}"));
                    unpressed = true;
                }
            }
        }
        Ok(unpressed)
    }

    async fn submit(
        &mut self,
        items: &mut [Item],
        now_ms: i64,
        report: &mut TickReport,
    ) -> Result<(), QueueError> {
        // Paused (`/queue pause`): jobs already sent are still followed; nothing new goes out.
        if self.store.queue_paused()? {
            return Ok(());
        }
        while now_ms >= self.next_submit_ms {
            let submitted_today = self.store.queue_submissions_since(day_start(now_ms))?;
            let Some(index) = machine::next_to_submit(items, now_ms, &self.options.limits, submitted_today)
                .and_then(|chosen| items.iter().position(|item| item.id == chosen.id))
            else {
                break;
            };
            let read_at = items[index].updated_ms;
            let mut item = items[index].clone();
            self.counter += 1;
            let nonce = new_nonce(now_ms, self.counter);
            item.status = Status::Submitted;
            item.attempts += 1;
            item.nonce = Some(nonce.clone());
            item.submitted_ms = Some(now_ms);
            item.progress_ms = None;
            item.not_before_ms = None;
            item.waiting_at_midjourney = false;
            item.updated_ms = now_ms;
            // Stored before it is sent: a crash in between leaves a submission that finds
            // nothing and times out, never one sent twice.
            let note = format!("attempt {}", item.attempts);
            if !self.save(&item, read_at, Status::Queued, Some(note), now_ms, report)? {
                items[index].status = Status::Cancelled;
                continue;
            }
            let jitter = if self.options.jitter_ms > 0 {
                (mjlink_core::digest::digest(&self.counter.to_le_bytes()) % self.options.jitter_ms as u64)
                    as i64
            } else {
                0
            };
            self.next_submit_ms = now_ms + self.options.spacing_ms + jitter;
            match self.submitter.imagine(&item.prompt, &nonce).await {
                Ok(()) => report.submitted += 1,
                Err(error) if error.is_fatal() => return Err(error.into()),
                Err(error) => {
                    tracing::warn!(item = %item.id, %error, "could not submit");
                    let read_at = item.updated_ms;
                    let wait = match &error {
                        SubmitError::RateLimited(wait) => wait.as_millis() as i64,
                        _ => self.options.policy.retry_backoff_ms,
                    };
                    item.status = Status::Queued;
                    item.attempts -= 1;
                    item.nonce = None;
                    item.submitted_ms = None;
                    item.not_before_ms = Some(now_ms + wait);
                    item.last_error = Some(format!("could not submit: {error}"));
                    item.updated_ms = now_ms + 1;
                    let note = item.last_error.clone();
                    self.save(&item, read_at, Status::Submitted, note, now_ms, report)?;
                }
            }
            items[index] = item;
        }
        Ok(())
    }

    /// Ticks until `stop` completes (or the token is refused): after `ready` (the start's
    /// catch-up), on every `wake` (a commit of new messages), and at least every second.
    /// `clock` gives the time in Unix milliseconds; `on_tick` sees each report.
    pub async fn run(
        mut self,
        ready: impl Future<Output = ()>,
        wake: Arc<Notify>,
        stop: impl Future<Output = ()>,
        clock: impl Fn() -> i64,
        mut on_tick: impl FnMut(&TickReport),
    ) -> Result<(), QueueError> {
        tokio::pin!(stop);
        tokio::select! {
            () = ready => {}
            () = &mut stop => return Ok(()),
        }
        loop {
            let report = self.tick(clock()).await?;
            on_tick(&report);
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = &mut stop => return Ok(()),
            }
        }
    }
}

/// Adds prompts to the queue (one transaction); returns the new items.
pub fn add(
    store: &mut Store,
    prompts: &[String],
    upscales: &super::Upscales,
    priority: i64,
    now_ms: i64,
) -> Result<Vec<Item>, StoreError> {
    store.begin()?;
    let mut added = Vec::with_capacity(prompts.len());
    for prompt in prompts {
        let item = Item::new(
            uuid::Uuid::new_v4().to_string(),
            prompt.clone(),
            upscales.clone(),
            priority,
            now_ms,
        );
        store.queue_save(
            &item,
            None,
            Some(&Transition {
                at_ms: now_ms,
                from: None,
                to: Status::Queued,
                note: "added".to_string(),
            }),
        )?;
        added.push(item);
    }
    store.commit()?;
    Ok(added)
}

/// What `cancel` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// Cancelled now.
    Now(Item),
    /// It had already finished (as it shows).
    AlreadyFinished(Item),
    /// No item has that id (or the prefix is not unique).
    NotFound,
}

/// Cancels an unfinished item.
pub fn cancel(store: &mut Store, id_or_prefix: &str, now_ms: i64) -> Result<Cancelled, StoreError> {
    let Some(mut item) = store.queue_item(id_or_prefix)? else {
        return Ok(Cancelled::NotFound);
    };
    if item.status.is_final() {
        return Ok(Cancelled::AlreadyFinished(item));
    }
    let from = item.status;
    let read_at = item.updated_ms;
    item.status = Status::Cancelled;
    item.updated_ms = now_ms.max(read_at + 1);
    let stored = store.queue_save(
        &item,
        Some(read_at),
        Some(&Transition {
            at_ms: now_ms,
            from: Some(from),
            to: Status::Cancelled,
            note: "cancelled by the user".to_string(),
        }),
    )?;
    if !stored {
        // The runner changed it meanwhile: look again.
        return cancel(store, &item.id, now_ms);
    }
    Ok(Cancelled::Now(item))
}
