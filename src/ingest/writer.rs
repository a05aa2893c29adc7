//! The single writer, the one entry every source feeds: one thread owns the [`Pipeline`] and
//! applies events in the order they reach it. The live path takes the gateway's frames in
//! one task, catch-up and backfill run beside it, replay reads files on its own thread;
//! all of them only send here, so nothing else ever writes the lineage, and every source's
//! events are counted the same way ([`WriterStats`]).

use std::collections::BTreeMap;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::ingest::pipeline::{Applied, Event, Pipeline};
use crate::ingest::prepare::{prepare, Prepared, Spent};
use crate::store::StoreError;
use mjlink_core::parse::BotIds;
use mjlink_core::snowflake::Snowflake;

enum Input {
    Event {
        event: Box<Event>,
        /// What the sender prepared of it (`ingest::prepare`).
        prepared: Option<Box<Prepared>>,
        received_ms: i64,
    },
    /// A payload the decoder rejected that says it is a message (format drift).
    Undecodable {
        found: mjlink_core::drift::Undecodable,
        raw: String,
    },
    /// Commit what is applied and answer with each channel's newest stored message id.
    Cursors(oneshot::Sender<BTreeMap<Snowflake, Snowflake>>),
    /// Commit, then answer.
    Flush(oneshot::Sender<()>),
    /// Apply everything queued before this, commit, and stop. Later sends fail.
    Close,
}

/// What the writer did with the events it was sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    pub applied: u64,
    pub duplicates: u64,
    pub unchanged: u64,
    pub ignored: u64,
    /// Parents referenced by an exact signal but never seen, reported to the fetcher
    /// (`WriterHooks::missing`; replay has none: it works offline).
    pub missing_parents: u64,
}

impl WriterStats {
    fn count(&mut self, applied: Applied) {
        match applied {
            Applied::Applied => self.applied += 1,
            Applied::Duplicate => self.duplicates += 1,
            Applied::Unchanged => self.unchanged += 1,
            Applied::Ignored => self.ignored += 1,
        }
    }
}

/// When the writer commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPolicy {
    /// Whenever its queue drains (live sources: nothing waits in an open transaction when
    /// things are quiet), and every `batch_size` events.
    WhenIdle,
    /// Every `batch_size` events and at the end (replay: a crash loses at most the open
    /// batch, which the same replay redoes).
    Batches,
}

/// A parent the pipeline has a link to but no copy of: to be fetched over REST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingParent {
    pub channel_id: Snowflake,
    pub message_id: Snowflake,
}

/// Who hears from the writer besides the senders.
#[derive(Default)]
pub struct WriterHooks {
    /// Parents that are referenced but unknown, reported after the event that revealed them
    /// is committed (to be fetched over REST).
    pub missing: Option<mpsc::UnboundedSender<MissingParent>>,
    /// Notified after a commit that stored something new (the archiver and the queue wake
    /// up on it).
    pub committed: Vec<Arc<Notify>>,
}

/// Applied events handed back to be freed on a sender's thread: the thread that allocated
/// an event frees it much faster (its own allocator arena: freeing on the writer meant taking
/// the lock of the reader's arena while the reader allocated in it). Replay's reader takes
/// them back as it sends. Bounded: the writer hands a batch over only when the last one was
/// taken, and frees the events itself otherwise (live senders never take them back).
#[derive(Default)]
struct Returned(std::sync::Mutex<Leftovers>);

/// A batch of applied events, and what the pipeline is done with of their prepared saves.
#[derive(Default)]
#[allow(clippy::vec_box)] // the events arrive boxed: unboxing would free the boxes here
struct Leftovers {
    events: Vec<Box<Event>>,
    spent: Vec<Spent>,
}

impl Leftovers {
    fn empty() -> Leftovers {
        Leftovers {
            events: Vec::with_capacity(RETURNED_BATCH),
            spent: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.spent.is_empty()
    }
}

const RETURNED_BATCH: usize = 256;

impl Returned {
    /// Hands `applied` over if the last batch was taken, else frees it here.
    fn hand_over(&self, applied: &mut Leftovers) {
        if let Ok(mut slot) = self.0.try_lock() {
            if slot.is_empty() {
                std::mem::swap(&mut *slot, applied);
                *applied = Leftovers::empty();
                return;
            }
        }
        applied.events.clear();
        applied.spent.clear();
    }

    /// Frees what was handed back, if anything (on the calling thread).
    fn free(&self) {
        let applied = match self.0.try_lock() {
            Ok(mut slot) if !slot.is_empty() => std::mem::take(&mut *slot),
            _ => return,
        };
        drop(applied);
    }
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Input>,
    /// The pipeline's Midjourney bots, for the prepare stage.
    bots: Arc<BotIds>,
    returned: Arc<Returned>,
    /// Events taken off the channel and applied so far (for progress and benchmarks).
    done: Arc<AtomicU64>,
}

pub struct Writer {
    handle: WriterHandle,
    thread: std::thread::JoinHandle<Result<(WriterStats, Pipeline), StoreError>>,
}

impl Writer {
    /// Starts the writer thread for a live source (commits whenever its queue drains).
    pub fn spawn(pipeline: Pipeline, hooks: WriterHooks) -> Writer {
        Writer::spawn_with(pipeline, hooks, CommitPolicy::WhenIdle)
    }

    /// Starts the writer thread.
    pub fn spawn_with(mut pipeline: Pipeline, hooks: WriterHooks, policy: CommitPolicy) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Input>(4096);
        let done = Arc::new(AtomicU64::new(0));
        let done_in_thread = Arc::clone(&done);
        let bots = Arc::new(pipeline.config().bots.clone());
        let returned = Arc::new(Returned::default());
        let returned_in_thread = Arc::clone(&returned);
        let WriterHooks { missing, committed } = hooks;
        let thread = std::thread::Builder::new()
            .name("mjlink-writer".to_string())
            .spawn(move || {
                let mut stats = WriterStats::default();
                let mut applied_events = Leftovers::empty();
                let mut applied_since_commit = false;
                let commit = |pipeline: &mut Pipeline, applied_since_commit: &mut bool| {
                    pipeline.flush()?;
                    if std::mem::take(applied_since_commit) {
                        for listener in &committed {
                            listener.notify_one();
                        }
                    }
                    Ok::<(), StoreError>(())
                };
                while let Some(input) = rx.blocking_recv() {
                    match input {
                        Input::Event {
                            event,
                            prepared,
                            received_ms,
                        } => {
                            let applied =
                                pipeline.apply_prepared(&event, prepared.map(|p| *p), received_ms)?;
                            applied_since_commit |= applied == Applied::Applied;
                            stats.count(applied);
                            done_in_thread.fetch_add(1, Ordering::Relaxed);
                            if let (Some(missing), Applied::Applied, Event::Create { message, .. }) =
                                (&missing, applied, event.as_ref())
                            {
                                if let Some(parent) = pipeline.unknown_parent(message.id)? {
                                    stats.missing_parents += 1;
                                    let _ = missing.send(MissingParent {
                                        channel_id: message.channel_id.unwrap_or_default(),
                                        message_id: parent,
                                    });
                                }
                            }
                            // Commit as soon as the queue is drained: batches form under load,
                            // and nothing waits in an open transaction when things are quiet.
                            if policy == CommitPolicy::WhenIdle && rx.is_empty() {
                                commit(&mut pipeline, &mut applied_since_commit)?;
                            }
                            applied_events.events.push(event);
                            pipeline.move_spent_into(&mut applied_events.spent);
                            if applied_events.events.len() >= RETURNED_BATCH {
                                returned_in_thread.hand_over(&mut applied_events);
                            }
                        }
                        Input::Undecodable { found, raw } => {
                            pipeline.undecodable(&found, &raw)?;
                            if policy == CommitPolicy::WhenIdle && rx.is_empty() {
                                commit(&mut pipeline, &mut applied_since_commit)?;
                            }
                        }
                        Input::Cursors(reply) => {
                            commit(&mut pipeline, &mut applied_since_commit)?;
                            let _ = reply.send(pipeline.store().channel_cursors()?);
                        }
                        Input::Flush(reply) => {
                            commit(&mut pipeline, &mut applied_since_commit)?;
                            let _ = reply.send(());
                        }
                        Input::Close => break,
                    }
                }
                commit(&mut pipeline, &mut applied_since_commit)?;
                Ok((stats, pipeline))
            })
            .expect("the writer thread starts");
        Writer {
            handle: WriterHandle {
                tx,
                bots,
                returned,
                done,
            },
            thread,
        }
    }

    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Applies everything sent before this call, commits, closes the database and returns.
    /// Handles still held elsewhere (a catch-up that has not finished) fail from then on.
    pub async fn close(self) -> Result<WriterStats, StoreError> {
        let _ = self.handle.tx.send(Input::Close).await;
        drop(self.handle);
        let thread = self.thread;
        let (stats, _pipeline) = tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|_| StoreError::WriterGone)?
            .map_err(|_| StoreError::WriterGone)??;
        Ok(stats)
    }

    /// [`Writer::close`] for a caller outside the async runtime (replay), giving the pipeline
    /// back. When the writer stopped on an error, this is where the error comes out.
    pub fn finish_blocking(self) -> Result<(WriterStats, Pipeline), StoreError> {
        let _ = self.handle.put_blocking(Input::Close);
        drop(self.handle);
        self.thread.join().map_err(|_| StoreError::WriterGone)?
    }
}

impl WriterHandle {
    /// Queues an event received now. Fails only when the writer has stopped.
    pub async fn send(&self, event: Event) -> Result<(), StoreError> {
        self.send_at(event, crate::clock::now_ms()).await
    }

    pub async fn send_at(&self, event: Event, received_ms: i64) -> Result<(), StoreError> {
        self.tx
            .send(Input::Event {
                prepared: prepare(&event, &self.bots).map(Box::new),
                event: Box::new(event),
                received_ms,
            })
            .await
            .map_err(|_| StoreError::WriterGone)
    }

    /// [`WriterHandle::send_at`] for synchronous code (replay's reader), which may itself run
    /// on an async runtime's thread (where tokio's `blocking_send` would panic): waits for
    /// room by pausing the calling thread.
    pub fn send_blocking(&self, event: Event, received_ms: i64) -> Result<(), StoreError> {
        self.returned.free();
        self.put_blocking(Input::Event {
            prepared: prepare(&event, &self.bots).map(Box::new),
            event: Box::new(event),
            received_ms,
        })
    }

    /// Sends a payload the decoder rejected but [`mjlink_core::drift::undecodable`] could
    /// read (`raw`, as received): counted and kept if Midjourney wrote it. For synchronous
    /// code, like [`WriterHandle::send_blocking`].
    pub fn send_undecodable_blocking(
        &self,
        found: mjlink_core::drift::Undecodable,
        raw: String,
    ) -> Result<(), StoreError> {
        self.put_blocking(Input::Undecodable { found, raw })
    }

    fn put_blocking(&self, mut input: Input) -> Result<(), StoreError> {
        loop {
            match self.tx.try_send(input) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(StoreError::WriterGone),
                Err(mpsc::error::TrySendError::Full(back)) => {
                    input = back;
                    // The writer is behind: let it work off half of its queue before coming
                    // back, rather than waking up for each place it frees (a wake-up per
                    // event cost the sender more than its own work).
                    let half = self.tx.max_capacity() / 2;
                    while self.tx.capacity() < half && !self.tx.is_closed() {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                }
            }
        }
    }

    /// Whether the writer still takes events (it stops on `close` or on a database error).
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// How many events the writer has applied so far.
    pub fn events_done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// A counter of the events applied, readable from anywhere (progress, benchmarks).
    pub fn events_done_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.done)
    }

    /// Each channel's newest stored message id, after committing what was sent before.
    pub async fn cursors(&self) -> Result<BTreeMap<Snowflake, Snowflake>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Input::Cursors(reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)
    }

    /// Waits until everything sent before is applied and committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Input::Flush(reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)
    }
}
