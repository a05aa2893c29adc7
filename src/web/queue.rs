//! The queue page (`/queue`), its API (`/api/queue`), its live updates
//! (`/api/queue/events`, server-sent events) and its controls (add, cancel, pause, resume;
//! writes, so the router's guard asks for `web.token` first).
//!
//! Each item is shown as [`view::item_state`] makes it (the same function for the page, the
//! API and the events): the item, its upscales, its history, and while it renders the stage
//! of Midjourney's progress message (`62%`) with its preview.
//!
//! How the server learns of changes: it polls the database, not the writer. One task (started
//! when the first page subscribes, ended when the last one leaves) asks SQLite every
//! [`POLL`] for `PRAGMA data_version`, which changes only when another connection committed;
//! then it reads the queue again, and sends the items that changed on a
//! [`tokio::sync::broadcast`] channel to every open stream. The same way works whether the
//! bot runs in this process (`demo --serve`) or in another one beside `mjlink serve`, and the
//! writer knows nothing of it: a slow page can never hold it up (a stream that falls behind
//! the channel is sent the whole queue again).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::broadcast;

use super::html::{esc, page};
use super::{Failure, Web};
use crate::queue::runner::{self, Cancelled};
use crate::queue::view::{self, ItemState};
use crate::queue::{Status, Upscales};
use crate::store::{Store, StoreError};

/// The page's script (live updates, the controls), compiled in.
const SCRIPT: &str = include_str!("assets/queue.js");
/// The page's styles, compiled in.
const STYLE: &str = include_str!("assets/queue.css");

/// How often the live task asks the database whether anything changed.
pub const POLL: Duration = Duration::from_millis(250);
/// Updates kept for a stream that is behind; one further behind gets the whole queue again.
const BACKLOG: usize = 256;

/// The whole queue as shown: whether it is paused, and every item in queue order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueueState {
    pub paused: bool,
    pub items: Vec<ItemState>,
}

/// The queue as the database has it now.
pub fn queue_state(store: &Store) -> Result<QueueState, StoreError> {
    let mut items = Vec::new();
    let mut histories = store.queue_histories()?;
    for item in store.queue_items(&[])? {
        let history = histories.remove(&item.id).unwrap_or_default();
        let progress = match &item.nonce {
            Some(nonce) if matches!(item.status, Status::Submitted | Status::Rendering) => {
                store.submission_progress(nonce)?
            }
            _ => None,
        };
        items.push(view::item_state(item, history, progress));
    }
    Ok(QueueState {
        paused: store.queue_paused()?,
        items,
    })
}

/// One live update.
#[derive(Debug, Clone)]
enum Update {
    /// An item is new or changed.
    Item(Arc<ItemState>),
    /// The queue was paused or resumed.
    Paused(bool),
}

impl Update {
    fn event(&self) -> Event {
        let (name, data) = match self {
            Update::Item(state) => ("item", serde_json::to_string(&**state)),
            Update::Paused(paused) => (
                "queue",
                serde_json::to_string(&serde_json::json!({ "paused": paused })),
            ),
        };
        Event::default()
            .event(name)
            .data(data.unwrap_or_else(|_| "{}".to_string()))
    }
}

/// The updates between two states of the queue (every item when there was none before).
fn changes(before: Option<&QueueState>, now: &QueueState) -> Vec<Update> {
    let mut updates = Vec::new();
    if before.is_none_or(|before| before.paused != now.paused) {
        updates.push(Update::Paused(now.paused));
    }
    for state in &now.items {
        let unchanged = before.is_some_and(|before| {
            before
                .items
                .iter()
                .any(|old| old.item.id == state.item.id && old == state)
        });
        if !unchanged {
            updates.push(Update::Item(Arc::new(state.clone())));
        }
    }
    updates
}

/// The live task's channel and the last state it read (for a stream that starts or falls
/// behind). The task runs while a stream listens.
pub(super) struct Live {
    sender: Mutex<Option<broadcast::Sender<Update>>>,
    latest: Mutex<Option<Arc<QueueState>>>,
    /// Set when the server stops: every stream ends (a graceful stop waits for them).
    closed: tokio::sync::watch::Sender<bool>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            sender: Mutex::new(None),
            latest: Mutex::new(None),
            closed: tokio::sync::watch::channel(false).0,
        }
    }
}

impl Live {
    /// Ends every stream, now and from now on.
    pub(super) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// A receiver of the updates, starting the live task when none runs.
    fn subscribe(web: &Web) -> broadcast::Receiver<Update> {
        let mut sender = web.live.sender.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = sender.as_ref() {
            return sender.subscribe();
        }
        let (new, receiver) = broadcast::channel(BACKLOG);
        *sender = Some(new.clone());
        tokio::spawn(watch(Arc::clone(web), new));
        receiver
    }

    fn latest(&self) -> Option<Arc<QueueState>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The live task: polls `data_version`, reads the queue when it moved, sends what changed;
/// ends when no stream listens.
async fn watch(web: Web, sender: broadcast::Sender<Update>) {
    let mut store: Option<Store> = None;
    let mut version: Option<i64> = None;
    let mut warned = false;
    loop {
        {
            let mut current = web.live.sender.lock().unwrap_or_else(|e| e.into_inner());
            if sender.receiver_count() == 0 {
                *current = None;
                return;
            }
        }
        let database = web.database.clone();
        let seen = version;
        let read = tokio::task::spawn_blocking(move || {
            let result = (|| -> Result<(Store, Option<(i64, QueueState)>), StoreError> {
                let store = match store {
                    Some(store) => store,
                    None => Store::open(&database)?,
                };
                let now = store.data_version()?;
                if seen == Some(now) {
                    return Ok((store, None));
                }
                let state = queue_state(&store)?;
                Ok((store, Some((now, state))))
            })();
            match result {
                Ok((store, read)) => (Some(store), Ok(read)),
                Err(error) => (None, Err(error)),
            }
        })
        .await;
        match read {
            Ok((kept, Ok(read))) => {
                store = kept;
                warned = false;
                if let Some((now, state)) = read {
                    version = Some(now);
                    let before = web.live.latest();
                    let updates = changes(before.as_deref(), &state);
                    // The state first: a stream that starts now reads it, and gets the
                    // updates too if it subscribed before they were sent (twice is harmless).
                    *web.live.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(state));
                    for update in updates {
                        let _ = sender.send(update);
                    }
                }
            }
            Ok((kept, Err(error))) => {
                store = kept;
                version = None;
                if !warned {
                    tracing::warn!(%error, "web: the queue could not be read for live updates");
                    warned = true;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "web: the live queue task failed");
                *web.live.sender.lock().unwrap_or_else(|e| e.into_inner()) = None;
                return;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The queue's routes (merged into the router, under its guard).
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/queue", get(queue_page))
        .route("/assets/queue.js", get(script))
        .route("/assets/queue.css", get(style))
        .route("/api/queue", get(queue_json).post(add))
        .route("/api/queue/events", get(events))
        .route("/api/queue/pause", post(pause))
        .route("/api/queue/resume", post(resume))
        .route("/api/queue/{id}", get(item_json))
        .route("/api/queue/{id}/cancel", post(cancel))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn read_state(web: &Web) -> Result<QueueState, Failure> {
    web.read(|store| Ok(queue_state(store)?)).await
}

async fn queue_json(State(web): State<Web>) -> Response {
    match read_state(&web).await {
        Ok(state) => Json(state).into_response(),
        Err(failure) => failure.json(),
    }
}

async fn item_json(State(web): State<Web>, UrlPath(id): UrlPath<String>) -> Response {
    let asked = id.trim().to_string();
    let found = web
        .read(move |store| {
            let Some(item) = store.queue_item(&asked)? else {
                return Err(Failure::NotFound(format!(
                    "No queue item has the id `{asked}` (or the prefix is not unique)."
                )));
            };
            let history = store.queue_history(&item.id)?;
            let progress = match &item.nonce {
                Some(nonce) => store.submission_progress(nonce)?,
                None => None,
            };
            Ok(view::item_state(item, history, progress))
        })
        .await;
    match found {
        Ok(state) => Json(state).into_response(),
        Err(failure) => failure.json(),
    }
}

async fn queue_page(State(web): State<Web>) -> Response {
    match read_state(&web).await {
        Ok(state) => Html(render(&state)).into_response(),
        Err(failure) => failure.page(),
    }
}

/// The live updates: the whole queue first, then each change as it is seen.
async fn events(State(web): State<Web>) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let receiver = Live::subscribe(&web);
    let closed = web.live.closed.subscribe();
    let first = whole(web.live.latest());
    let stream = futures_util::stream::unfold(
        (first, receiver, closed, web),
        |(mut pending, mut receiver, mut closed, web)| async move {
            loop {
                if *closed.borrow() {
                    return None;
                }
                if let Some(update) = pending.pop_front() {
                    return Some((Ok(update.event()), (pending, receiver, closed, web)));
                }
                let received = tokio::select! {
                    received = receiver.recv() => received,
                    _ = closed.changed() => return None,
                };
                match received {
                    Ok(update) => return Some((Ok(update.event()), (pending, receiver, closed, web))),
                    Err(broadcast::error::RecvError::Lagged(_)) => pending = whole(web.live.latest()),
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Every item of `state` as updates (nothing when there is no state yet: the live task's
/// first read sends every item).
fn whole(state: Option<Arc<QueueState>>) -> VecDeque<Update> {
    state
        .map(|state| changes(None, &state).into())
        .unwrap_or_default()
}

/// `POST /api/queue` with `{"prompt": "...", "upscale": "all", "priority": 0}` (upscale and
/// priority optional): queues the prompt.
async fn add(State(web): State<Web>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Add {
        prompt: String,
        upscale: Option<String>,
        priority: Option<i64>,
    }
    let asked: Add = match serde_json::from_slice(&body) {
        Ok(asked) => asked,
        Err(error) => {
            return Failure::BadRequest(format!(
                "the body must be JSON like {{\"prompt\": \"a glass whale --ar 16:9\", \"upscale\": \"all\"}}: {error}"
            ))
            .json()
        }
    };
    let prompt = asked.prompt.trim().to_string();
    if prompt.is_empty() {
        return Failure::BadRequest("Give a prompt to queue.".to_string()).json();
    }
    let upscales = match Upscales::parse(asked.upscale.as_deref().unwrap_or("all")) {
        Ok(upscales) => upscales,
        Err(reason) => return Failure::BadRequest(format!("upscale: {reason}")).json(),
    };
    let priority = asked.priority.unwrap_or(0);
    let added = write(&web, move |store| {
        Ok(runner::add(
            store,
            &[prompt],
            &upscales,
            priority,
            crate::clock::now_ms(),
        )?)
    })
    .await;
    match added {
        Ok(items) => (StatusCode::CREATED, Json(serde_json::json!({ "added": items }))).into_response(),
        Err(failure) => failure.json(),
    }
}

async fn cancel(State(web): State<Web>, UrlPath(id): UrlPath<String>) -> Response {
    let asked = id.trim().to_string();
    let done = write(&web, move |store| {
        Ok(runner::cancel(store, &asked, crate::clock::now_ms())?)
    })
    .await;
    match done {
        Ok(Cancelled::Now(item)) => Json(serde_json::json!({ "cancelled": item })).into_response(),
        Ok(Cancelled::AlreadyFinished(item)) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": format!("{} had already finished: {}", item.id, item.status),
                "item": item,
            })),
        )
            .into_response(),
        Ok(Cancelled::NotFound) => Failure::NotFound(format!(
            "No queue item has the id `{}` (or the prefix is not unique).",
            id.trim()
        ))
        .json(),
        Err(failure) => failure.json(),
    }
}

async fn pause(State(web): State<Web>) -> Response {
    set_paused(&web, true).await
}

async fn resume(State(web): State<Web>) -> Response {
    set_paused(&web, false).await
}

async fn set_paused(web: &Web, paused: bool) -> Response {
    match write(web, move |store| Ok(store.set_queue_paused(paused)?)).await {
        Ok(()) => Json(serde_json::json!({ "paused": paused })).into_response(),
        Err(failure) => failure.json(),
    }
}

/// Runs a write on its own connection, on a blocking thread (writes are rare; the pooled
/// connections only read).
async fn write<T: Send + 'static>(
    web: &Web,
    change: impl FnOnce(&mut Store) -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let database = web.database.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&database)?;
        change(&mut store)
    })
    .await
    .unwrap_or_else(|error| {
        Err(Failure::BadRequest(format!(
            "the request could not be answered: {error}"
        )))
    })
}

/// The queue page: every item with its state, attempts, upscales, rendering and history,
/// rendered here (it works without JavaScript); the script keeps it up to date and sends
/// the controls with the token.
pub fn render(state: &QueueState) -> String {
    let mut body = String::from("<link rel=\"stylesheet\" href=\"/assets/queue.css\"><h1>Queue</h1>");
    let counts: Vec<String> = Status::ALL
        .iter()
        .filter_map(|status| {
            let n = state.items.iter().filter(|s| s.item.status == *status).count();
            (n > 0).then(|| format!("{n} {status}"))
        })
        .collect();
    let _ = write!(
        body,
        "<p class=\"queue-state\"><span id=\"queue-paused\" data-paused=\"{paused}\">{running}</span> · \
         <span id=\"queue-counts\">{n} items{sep}{counts}</span></p>",
        paused = state.paused,
        running = if state.paused { "Paused" } else { "Running" },
        n = state.items.len(),
        sep = if counts.is_empty() { "" } else { ": " },
        counts = esc(&counts.join(", ")),
    );
    body.push_str(
        "<section class=\"controls\" id=\"controls\">\
         <label>Token <input type=\"password\" id=\"queue-token\" autocomplete=\"off\" \
         placeholder=\"web.token\"></label>\
         <form class=\"control\" method=\"post\" action=\"/api/queue\" data-kind=\"add\">\
         <input name=\"prompt\" required placeholder=\"a glass whale --ar 16:9 --v 7\" aria-label=\"Prompt\" size=\"40\"> \
         <label>Upscales <input name=\"upscale\" value=\"all\" size=\"6\"></label> <button>Add</button></form>\
         <form class=\"control\" method=\"post\" action=\"/api/queue/pause\"><button>Pause the queue</button></form>\
         <form class=\"control\" method=\"post\" action=\"/api/queue/resume\"><button>Resume</button></form>\
         <p class=\"meta\" id=\"queue-message\" role=\"status\">Controls need web.token (sent as a bearer \
         token by the page's script); the page itself needs no script.</p></section>",
    );
    if state.items.is_empty() {
        body.push_str("<p class=\"notice\">The queue is empty.</p>");
    }
    body.push_str("<div id=\"queue\">");
    for item in &state.items {
        item_html(&mut body, item);
    }
    body.push_str("</div><script src=\"/assets/queue.js\" defer></script>");
    page("Queue", "", &body)
}

fn item_html(body: &mut String, state: &ItemState) {
    let item = &state.item;
    let id = esc(&item.id);
    let (percent, stage, preview) = match &state.rendering {
        Some(rendering) => (
            rendering.percent.map(|p| p.to_string()).unwrap_or_default(),
            rendering.stage.clone(),
            rendering.preview.as_ref(),
        ),
        None => (String::new(), String::new(), None),
    };
    let _ = write!(
        body,
        "<article class=\"item\" id=\"q-{id}\" data-id=\"{id}\" data-status=\"{status}\">\
         <div class=\"line\"><span class=\"short\">{short}</span> <span class=\"status\">{status}</span> \
         · <span class=\"attempts\">{attempts}</span> tries · upscales <span class=\"upscales\">{upscales}</span>\
         <span class=\"rendering\"{hidden}> · <progress max=\"100\" value=\"{percent}\"></progress> \
         <span class=\"stage\">{stage}</span> <a class=\"preview\" href=\"{href}\"{preview_hidden} \
         rel=\"noreferrer\">preview</a></span> \
         <form class=\"control cancel\" method=\"post\" action=\"/api/queue/{id}/cancel\"{cancel_hidden}>\
         <button>Cancel</button></form></div>\
         <p class=\"prompt\">{prompt}</p><p class=\"meta error\">{error}</p>\
         <details><summary>History</summary><ol class=\"history\">",
        short = esc(&item.id.chars().take(8).collect::<String>()),
        status = esc(item.status.as_str()),
        attempts = item.attempts,
        upscales = esc(&state.upscales),
        hidden = if state.rendering.is_some() { "" } else { " hidden" },
        stage = esc(&stage),
        href = esc(preview.map(|p| p.url.as_str()).unwrap_or("")),
        preview_hidden = if preview.is_some() { "" } else { " hidden" },
        cancel_hidden = if item.status.is_final() { " hidden" } else { "" },
        prompt = esc(&item.prompt),
        error = esc(item.last_error.as_deref().unwrap_or("")),
    );
    for transition in &state.history {
        let _ = write!(
            body,
            "<li>{} {} → {} {}</li>",
            esc(&view::time(transition.at_ms)),
            esc(transition.from.map(Status::as_str).unwrap_or("-")),
            esc(transition.to.as_str()),
            esc(&transition.note)
        );
    }
    body.push_str("</ol></details></article>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Item, Transition};

    fn state(status: Status, prompt: &str) -> ItemState {
        let mut item = Item::new(
            "0f6e1c2a-0000-4000-8000-000000000001".into(),
            prompt.into(),
            Upscales::all(),
            0,
            1_700_000_000_000,
        );
        item.status = status;
        view::item_state(
            item,
            vec![Transition {
                at_ms: 1_700_000_000_000,
                from: None,
                to: Status::Queued,
                note: "added <b>".into(),
            }],
            None,
        )
    }

    #[test]
    fn the_page_escapes_prompts_and_notes() {
        let page = render(&QueueState {
            paused: false,
            items: vec![state(Status::Queued, "<script>alert(1)</script> a fox")],
        });
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt; a fox"),
            "{page}"
        );
        assert!(page.contains("added &lt;b&gt;"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
    }

    #[test]
    fn only_what_changed_is_sent() {
        let before = QueueState {
            paused: false,
            items: vec![state(Status::Queued, "a")],
        };
        assert_eq!(changes(None, &before).len(), 2, "the pause state and the item");
        assert!(changes(Some(&before), &before).is_empty());
        let mut now = before.clone();
        now.items[0].item.status = Status::Submitted;
        let updates = changes(Some(&before), &now);
        assert!(
            matches!(updates.as_slice(), [Update::Item(state)] if state.item.status == Status::Submitted),
            "{updates:?}"
        );
        now.paused = true;
        assert_eq!(changes(Some(&before), &now).len(), 2);
    }
}
