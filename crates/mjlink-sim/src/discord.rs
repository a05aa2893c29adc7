//! A fake Discord on 127.0.0.1: a test double and simulation, never a client of the real
//! Discord. It drives serenity's real client in the live tests and feeds `mjlink demo`.
//!
//! Two servers on ephemeral ports:
//! - a small HTTP/1.1 server (one request per connection): the gateway address, channel
//!   history and single messages (the latest state of each, edits applied, deleted ones
//!   gone, as Discord serves them), channels and threads (`GET /channels/{id}`, a guild's
//!   active threads, a channel's archived public threads paged with `before`/`has_more`,
//!   archived private ones answered 403 unless allowed), `attachments/refresh-urls`,
//!   injectable 429/5xx answers for
//!   history pages, binary files served on GET (the CDN of simulated images), extra routes
//!   mounted by other simulations ([`crate::midjourney`] answers `POST /interactions`),
//!   and a log of every request. Malformed requests get 400; nothing a client sends can
//!   panic it.
//! - a WebSocket gateway: HELLO, IDENTIFY -> READY (or close code 4004/4014), heartbeats,
//!   RESUME (with redelivery), dispatches (GUILD_CREATE with the guild's channels and active
//!   threads, THREAD_CREATE / THREAD_UPDATE / THREAD_LIST_SYNC, messages), connections
//!   dropped without a close frame.
//!
//! What it takes for serenity to talk to it is in `shared/docs/fake-discord.md`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::snowflake::Snowflake;

/// The largest request head (request line and headers) the HTTP server reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The largest request body the HTTP server reads.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A canned answer for the next history request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 with this `retry_after` (seconds) in the body and the Retry-After header.
    RateLimit(f64),
    /// 500.
    ServerError,
    /// 200, but with X-RateLimit-Remaining: 0 and X-RateLimit-Reset-After.
    BucketEmpty(f64),
}

/// One HTTP request the fake answered, for tests to inspect.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target, query string included.
    pub path: String,
    /// Whether an Authorization header was sent (its value is never kept).
    pub authorized: bool,
    pub at: Instant,
    pub status: u16,
}

/// An HTTP request as handed to a route mounted with [`FakeDiscord::mount`].
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The query string without the `?` (empty when there is none).
    pub query: String,
    /// The Authorization header's value, empty when absent.
    pub authorization: String,
    pub body: Vec<u8>,
}

/// An HTTP answer: status, content type, extra headers, body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "application/json".to_string(),
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        }
    }

    /// An answer without a body (204 No Content and the like).
    pub fn empty(status: u16) -> HttpResponse {
        HttpResponse {
            status,
            content_type: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Discord's error shape: `{"message": .., "code": ..}`.
    pub fn error(status: u16, message: &str, code: u32) -> HttpResponse {
        HttpResponse::json(status, &json!({"message": message, "code": code}))
    }

    fn with_header(mut self, name: &str, value: String) -> HttpResponse {
        self.headers.push((name.to_string(), value));
        self
    }
}

/// A route mounted on the fake's HTTP server. It gets the fake itself (to post messages,
/// spawn work) and the request, and answers synchronously; it runs without the fake's lock.
pub type RouteHandler = Arc<dyn Fn(&FakeDiscord, &HttpRequest) -> HttpResponse + Send + Sync>;

enum Command {
    Dispatch(String),
    Drop,
}

/// A file served on GET, for simulated CDN links.
struct ServedFile {
    content_type: String,
    bytes: Arc<Vec<u8>>,
}

struct State {
    token: String,
    disallow_intents: bool,
    allow_resume: bool,
    channels: BTreeMap<u64, BTreeMap<u64, Value>>,
    requests: Vec<Request>,
    faults: VecDeque<Fault>,
    connection: Option<mpsc::UnboundedSender<Command>>,
    seq: u64,
    /// Dispatches of the current session, for RESUME.
    sent: Vec<(u64, String)>,
    readies: u32,
    resumes: u32,
    identify_tokens: Vec<String>,
    /// IDENTIFY's `d` without its token, in order.
    identifies: Vec<Value>,
    /// Channel objects (text channels and threads) by id.
    channel_objects: BTreeMap<u64, Value>,
    /// Whether archived private threads may be listed (the bot has Manage Threads).
    allow_private_threads: bool,
    /// An outage: every new connection (HTTP and gateway) is closed at once.
    down: bool,
    /// At most this many archived threads per page, whatever `limit` asks (tests paging).
    thread_page_size: usize,
    /// Mounted routes by (method, path).
    routes: HashMap<(String, String), RouteHandler>,
    /// Files served on GET by path.
    files: HashMap<String, ServedFile>,
    /// The last id [`FakeDiscord::next_snowflake`] minted.
    last_snowflake: u64,
}

/// The fake Discord. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct FakeDiscord {
    pub http: SocketAddr,
    pub gateway: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeDiscord {
    /// Starts both servers on ephemeral ports of 127.0.0.1. `token` is the one bot token
    /// accepted (REST `Bot <token>`, and IDENTIFY). Fails only when a port cannot be bound.
    pub async fn start(token: &str) -> std::io::Result<FakeDiscord> {
        let http_listener = TcpListener::bind("127.0.0.1:0").await?;
        let gateway_listener = TcpListener::bind("127.0.0.1:0").await?;
        let fake = FakeDiscord {
            http: http_listener.local_addr()?,
            gateway: gateway_listener.local_addr()?,
            state: Arc::new(Mutex::new(State {
                token: token.to_string(),
                disallow_intents: false,
                allow_resume: false,
                channels: BTreeMap::new(),
                requests: Vec::new(),
                faults: VecDeque::new(),
                connection: None,
                seq: 0,
                sent: Vec::new(),
                readies: 0,
                resumes: 0,
                identify_tokens: Vec::new(),
                identifies: Vec::new(),
                channel_objects: BTreeMap::new(),
                allow_private_threads: false,
                down: false,
                thread_page_size: 100,
                routes: HashMap::new(),
                files: HashMap::new(),
                last_snowflake: 0,
            })),
        };
        let http = fake.clone();
        tokio::spawn(async move {
            loop {
                match http_listener.accept().await {
                    Ok((stream, _)) => {
                        let fake = http.clone();
                        tokio::spawn(async move { fake.serve_http(stream).await });
                    }
                    Err(error) => tracing::debug!(%error, "fake discord: accept failed"),
                }
            }
        });
        let gateway = fake.clone();
        tokio::spawn(async move {
            loop {
                match gateway_listener.accept().await {
                    Ok((stream, _)) => {
                        let fake = gateway.clone();
                        tokio::spawn(async move { fake.serve_gateway(stream).await });
                    }
                    Err(error) => tracing::debug!(%error, "fake discord gateway: accept failed"),
                }
            }
        });
        Ok(fake)
    }

    /// The base URL to configure as `api_base` (`http://127.0.0.1:PORT`).
    pub fn api_base(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The state, even after a panic elsewhere poisoned the lock (the state stays usable:
    /// every change to it is a single assignment or push).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// IDENTIFY is answered with close code 4014 (disallowed intents) from now on.
    pub fn disallow_intents(&self) {
        self.lock().disallow_intents = true;
    }

    /// Whether RESUME is accepted (else answered with op 9, invalid session).
    pub fn allow_resume(&self, allow: bool) {
        self.lock().allow_resume = allow;
    }

    /// Queues a canned answer for a coming history request.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Every HTTP request answered so far.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    pub fn readies(&self) -> u32 {
        self.lock().readies
    }

    pub fn resumes(&self) -> u32 {
        self.lock().resumes
    }

    /// The tokens IDENTIFY carried, in order (tests check what the bot sends).
    pub fn identify_tokens(&self) -> Vec<String> {
        self.lock().identify_tokens.clone()
    }

    /// IDENTIFY's `d` as the bot sent it, without the token (tests check `compress`,
    /// `intents`).
    pub fn identifies(&self) -> Vec<Value> {
        self.lock().identifies.clone()
    }

    /// Whether `GET /channels/{id}/threads/archived/private` is answered (else 403, as for
    /// a bot without Manage Threads).
    pub fn allow_private_threads(&self, allow: bool) {
        self.lock().allow_private_threads = allow;
    }

    /// Serves at most `size` archived threads per page (at least 1), so a few threads need
    /// several pages.
    pub fn set_thread_page_size(&self, size: usize) {
        self.lock().thread_page_size = size.max(1);
    }

    /// Stores a channel or thread object (see [`text_channel`], [`thread_channel`]) without
    /// dispatching anything; `GET /channels/{id}` and the thread lists serve it.
    pub fn add_channel(&self, channel: &Value) {
        let Some(id) = id_field(channel, "id") else {
            tracing::warn!("fake discord: a channel without a readable id is not stored");
            return;
        };
        self.lock().channel_objects.insert(id, channel.clone());
    }

    /// The stored channel or thread object.
    pub fn channel_object(&self, id: u64) -> Option<Value> {
        self.lock().channel_objects.get(&id).cloned()
    }

    /// Opens a thread: stored, and THREAD_CREATE dispatched with `newly_created: true` (the
    /// extra field Discord adds when the thread was just created).
    pub fn create_thread(&self, thread: &Value) {
        self.add_channel(thread);
        let mut data = thread.clone();
        data["newly_created"] = Value::Bool(true);
        self.dispatch("THREAD_CREATE", data);
    }

    /// Changes a thread (archives it, renames it): the fields of `fields` (which carries
    /// `id`) replace the stored ones, and THREAD_UPDATE carries the whole thread.
    pub fn update_thread(&self, fields: &Value) {
        let Some(id) = id_field(fields, "id") else {
            return;
        };
        let merged = {
            let mut state = self.lock();
            let stored = state.channel_objects.entry(id).or_insert_with(|| json!({}));
            if let (Some(stored), Some(fields)) = (stored.as_object_mut(), fields.as_object()) {
                for (name, value) in fields {
                    stored.insert(name.clone(), value.clone());
                }
            }
            stored.clone()
        };
        self.dispatch("THREAD_UPDATE", merged);
    }

    /// Dispatches GUILD_CREATE for `guild_id`: a whole guild object as Discord documents it,
    /// with the guild's stored channels and its active threads (the extra fields of the
    /// gateway event).
    pub fn guild_create(&self, guild_id: u64) {
        let (channels, threads) = self.guild_channels(guild_id);
        // The guild object, then the extra fields of the gateway event.
        let mut data = json!({
            "id": guild_id.to_string(), "name": format!("guild {guild_id}"), "icon": null, "icon_hash": null,
            "splash": null, "discovery_splash": null, "owner_id": "4242", "afk_channel_id": null, "afk_timeout": 300,
            "widget_enabled": false, "widget_channel_id": null, "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0, "roles": [], "emojis": [],
            "features": [], "mfa_level": 0, "application_id": null, "system_channel_id": null,
            "system_channel_flags": 0, "rules_channel_id": null, "max_presences": null, "max_members": 500000,
            "vanity_url_code": null, "description": null, "banner": null, "premium_tier": 0,
            "premium_subscription_count": 0, "preferred_locale": "en-US", "public_updates_channel_id": null,
            "max_video_channel_users": 25, "max_stage_video_channel_users": 50, "nsfw_level": 0, "stickers": [],
            "premium_progress_bar_enabled": false, "safety_alerts_channel_id": null, "incidents_data": null
        });
        let extra = json!({
            "joined_at": rfc3339_of_ms(chrono::Utc::now().timestamp_millis()), "large": false,
            "unavailable": false, "member_count": 2, "voice_states": [], "members": [], "channels": channels,
            "threads": threads, "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": []
        });
        if let (Some(fields), Value::Object(extra)) = (data.as_object_mut(), extra) {
            fields.extend(extra);
        }
        self.dispatch("GUILD_CREATE", data);
    }

    /// Dispatches THREAD_LIST_SYNC for `guild_id` with its active threads (as Discord does
    /// when the bot gains access to channels).
    pub fn thread_list_sync(&self, guild_id: u64) {
        let (_, threads) = self.guild_channels(guild_id);
        self.dispatch(
            "THREAD_LIST_SYNC",
            json!({"guild_id": guild_id.to_string(), "threads": threads, "members": []}),
        );
    }

    /// A guild's stored channels (without `guild_id`, as GUILD_CREATE lists them) and its
    /// active threads.
    fn guild_channels(&self, guild_id: u64) -> (Vec<Value>, Vec<Value>) {
        let state = self.lock();
        let in_guild = state
            .channel_objects
            .values()
            .filter(|channel| id_field(channel, "guild_id") == Some(guild_id));
        let mut channels = Vec::new();
        let mut threads = Vec::new();
        for channel in in_guild {
            if is_thread(channel) {
                if !is_archived(channel) {
                    threads.push(channel.clone());
                }
            } else {
                let mut listed = channel.clone();
                if let Some(fields) = listed.as_object_mut() {
                    fields.remove("guild_id");
                }
                channels.push(listed);
            }
        }
        (channels, threads)
    }

    /// The dispatches sent in the current session, exactly as sent.
    pub fn sent_payloads(&self) -> Vec<String> {
        self.lock()
            .sent
            .iter()
            .map(|(_, payload)| payload.clone())
            .collect()
    }

    /// Whether a client has identified and is connected.
    pub fn connected(&self) -> bool {
        self.lock().connection.is_some()
    }

    /// Mounts `handler` for `method path` (exact path, query ignored). Mounted routes are
    /// answered before the bot-token check: the handler does its own authorization.
    pub fn mount(
        &self,
        method: &str,
        path: &str,
        handler: impl Fn(&FakeDiscord, &HttpRequest) -> HttpResponse + Send + Sync + 'static,
    ) {
        self.lock()
            .routes
            .insert((method.to_string(), path.to_string()), Arc::new(handler));
    }

    /// Serves `bytes` on `GET {api_base}{path}` (any query string), without authorization,
    /// as Discord's CDN serves attachments. A later call for the same path replaces it.
    pub fn serve_file(&self, path: &str, bytes: Vec<u8>, content_type: &str) {
        self.lock().files.insert(
            path.to_string(),
            ServedFile {
                content_type: content_type.to_string(),
                bytes: Arc::new(bytes),
            },
        );
    }

    /// A new snowflake minted from the wall clock, greater than every one minted before
    /// (ids minted in the same millisecond differ in their increment bits).
    pub fn next_snowflake(&self) -> Snowflake {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let from_clock = Snowflake::from_timestamp_ms(now_ms).0;
        let mut state = self.lock();
        let id = from_clock.max(state.last_snowflake + 1);
        state.last_snowflake = id;
        Snowflake(id)
    }

    /// Stores a message in its channel's history (as Discord would) without dispatching it.
    /// A message without a readable `id` and `channel_id` is not stored (logged).
    pub fn store(&self, message: &Value) {
        let (Some(channel), Some(id)) = (id_field(message, "channel_id"), id_field(message, "id")) else {
            tracing::warn!("fake discord: a message without a readable id or channel_id is not stored");
            return;
        };
        self.lock()
            .channels
            .entry(channel)
            .or_default()
            .insert(id, message.clone());
    }

    /// Posts a message: stored in history and dispatched as MESSAGE_CREATE if connected.
    pub fn post(&self, message: &Value) {
        self.store(message);
        self.dispatch("MESSAGE_CREATE", message.clone());
    }

    /// Edits a message as Discord does: the fields of `message` (which must carry `id` and
    /// `channel_id`) replace those of the stored message, and MESSAGE_UPDATE carries the
    /// whole merged message. A message the fake does not hold is not stored; its update is
    /// dispatched as given (an edit Discord delivers for a message the client never saw).
    pub fn update(&self, message: &Value) {
        let (Some(channel), Some(id)) = (id_field(message, "channel_id"), id_field(message, "id")) else {
            tracing::warn!("fake discord: an update without a readable id or channel_id is ignored");
            return;
        };
        let Some(fields) = message.as_object() else {
            return;
        };
        let merged = {
            let mut state = self.lock();
            match state
                .channels
                .get_mut(&channel)
                .and_then(|messages| messages.get_mut(&id))
            {
                Some(Value::Object(stored)) => {
                    for (name, value) in fields {
                        stored.insert(name.clone(), value.clone());
                    }
                    Value::Object(stored.clone())
                }
                _ => message.clone(),
            }
        };
        self.dispatch("MESSAGE_UPDATE", merged);
    }

    /// Deletes a message: gone from history, MESSAGE_DELETE `{id, channel_id, guild_id}`
    /// dispatched (`guild_id` from the stored message, when it had one).
    pub fn delete(&self, channel_id: u64, message_id: u64) {
        let removed = self
            .lock()
            .channels
            .get_mut(&channel_id)
            .and_then(|messages| messages.remove(&message_id));
        let mut data = json!({"id": message_id.to_string(), "channel_id": channel_id.to_string()});
        if let Some(guild) = removed.as_ref().and_then(|message| message.get("guild_id")) {
            if !guild.is_null() {
                data["guild_id"] = guild.clone();
            }
        }
        self.dispatch("MESSAGE_DELETE", data);
    }

    /// The current state of one message, as `GET /channels/{c}/messages/{m}` answers it.
    pub fn message(&self, channel_id: u64, message_id: u64) -> Option<Value> {
        self.lock()
            .channels
            .get(&channel_id)
            .and_then(|messages| messages.get(&message_id))
            .cloned()
    }

    /// A channel's history, oldest first.
    pub fn history(&self, channel_id: u64) -> Vec<Value> {
        self.lock()
            .channels
            .get(&channel_id)
            .map(|messages| messages.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Sends a dispatch to the connected bot (dropped when none is connected).
    pub fn dispatch(&self, event: &str, data: Value) {
        let mut state = self.lock();
        if state.connection.is_none() {
            return;
        }
        state.seq += 1;
        let seq = state.seq;
        let payload = json!({"op": 0, "t": event, "s": seq, "d": data}).to_string();
        state.sent.push((seq, payload.clone()));
        if let Some(connection) = &state.connection {
            let _ = connection.send(Command::Dispatch(payload));
        }
    }

    /// An outage (`true`): the current connection is cut and every new one is closed at once,
    /// until it ends (`false`).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
        if down {
            self.drop_connection();
        }
    }

    /// Cuts the connection without a close frame, as a network failure would.
    pub fn drop_connection(&self) {
        let connection = self.lock().connection.take();
        if let Some(connection) = connection {
            let _ = connection.send(Command::Drop);
        }
    }

    /// Waits until `condition` holds, polling every 20 ms (tokio time).
    ///
    /// # Panics
    /// With `what` in the message when `timeout` (wall clock) passes first: this is a test
    /// helper, and a timeout is the test's failure.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&FakeDiscord) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !condition(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn serve_http(&self, mut stream: TcpStream) {
        if self.lock().down {
            return;
        }
        let request = match read_request(&mut stream).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(reason) => {
                tracing::debug!(reason, "fake discord: bad request");
                self.log_request("", "", false, 400);
                let response = HttpResponse::error(400, reason, 0);
                let _ = write_response(&mut stream, &response).await;
                return;
            }
        };
        let response = self.route(&request);
        let target = if request.query.is_empty() {
            request.path.clone()
        } else {
            format!("{}?{}", request.path, request.query)
        };
        self.log_request(
            &request.method,
            &target,
            !request.authorization.is_empty(),
            response.status,
        );
        let _ = write_response(&mut stream, &response).await;
    }

    fn log_request(&self, method: &str, target: &str, authorized: bool, status: u16) {
        self.lock().requests.push(Request {
            method: method.to_string(),
            path: target.to_string(),
            authorized,
            at: Instant::now(),
            status,
        });
    }

    fn route(&self, request: &HttpRequest) -> HttpResponse {
        let mounted = self
            .lock()
            .routes
            .get(&(request.method.clone(), request.path.clone()))
            .cloned();
        if let Some(handler) = mounted {
            // Without the lock: the handler posts messages through the fake.
            return handler(self, request);
        }
        let method = request.method.as_str();
        let path = request.path.as_str();
        let mut state = self.lock();
        if method == "GET" {
            if let Some(file) = state.files.get(path) {
                return HttpResponse {
                    status: 200,
                    content_type: file.content_type.clone(),
                    headers: Vec::new(),
                    body: file.bytes.as_ref().clone(),
                };
            }
        }
        if path == "/api/v10/gateway" || path == "/api/v10/gateway/bot" {
            let url = format!("ws://{}", self.gateway);
            return HttpResponse::json(
                200,
                &json!({"url": url, "shards": 1, "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}}),
            );
        }
        if request.authorization != format!("Bot {}", state.token) {
            return HttpResponse::error(401, "401: Unauthorized", 0);
        }
        if method == "POST" && path == "/api/v10/attachments/refresh-urls" {
            // Fresh links: "/old/" becomes "/fresh/"; URLs containing "norefresh" are left out.
            let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                return HttpResponse::error(400, "The request body contains invalid JSON.", 50109);
            };
            let refreshed: Vec<Value> = body["attachment_urls"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|url| url.as_str().map(str::to_string))
                .filter(|url| !url.contains("norefresh"))
                .map(|url| {
                    let fresh = url.split('?').next().unwrap_or("").replace("/old/", "/fresh/");
                    json!({"original": url, "refreshed": fresh})
                })
                .collect();
            return HttpResponse::json(200, &json!({"refreshed_urls": refreshed}));
        }
        if path == "/api/v10/users/@me" {
            return HttpResponse::json(
                200,
                &json!({"id": "1000", "username": "mjlink-test", "discriminator": "0", "avatar": null, "bot": true}),
            );
        }
        let segments: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["channels", channel, "messages"]) => {
                let mut headers = Vec::new();
                match state.faults.pop_front() {
                    Some(Fault::RateLimit(retry_after)) => {
                        return HttpResponse::json(
                            429,
                            &json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false}),
                        )
                        .with_header("Retry-After", format!("{}", retry_after.ceil() as u64));
                    }
                    Some(Fault::ServerError) => return HttpResponse::json(500, &json!({"message": "oops"})),
                    Some(Fault::BucketEmpty(reset_after)) => {
                        headers.push(("X-RateLimit-Remaining".to_string(), "0".to_string()));
                        headers.push(("X-RateLimit-Reset-After".to_string(), format!("{reset_after}")));
                    }
                    None => {}
                }
                let params: BTreeMap<&str, &str> = request
                    .query
                    .split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .collect();
                let after: u64 = params.get("after").and_then(|v| v.parse().ok()).unwrap_or(0);
                let limit: usize = params
                    .get("limit")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(50)
                    .clamp(1, 100);
                let channel: u64 = channel.parse().unwrap_or(0);
                let mut page: Vec<Value> = state
                    .channels
                    .get(&channel)
                    .map(|messages| {
                        messages
                            .range(after.saturating_add(1)..)
                            .take(limit)
                            .map(|(_, m)| m.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                page.reverse(); // Discord answers newest first
                let mut response = HttpResponse::json(200, &Value::Array(page));
                response.headers = headers;
                response
            }
            ("GET", ["channels", id]) => {
                match id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| state.channel_objects.get(&id))
                {
                    Some(channel) => HttpResponse::json(200, channel),
                    None => HttpResponse::error(404, "Unknown Channel", 10003),
                }
            }
            ("GET", ["guilds", guild, "threads", "active"]) => {
                let guild: u64 = guild.parse().unwrap_or(0);
                let threads: Vec<Value> = state
                    .channel_objects
                    .values()
                    .filter(|channel| {
                        is_thread(channel)
                            && !is_archived(channel)
                            && id_field(channel, "guild_id") == Some(guild)
                    })
                    .cloned()
                    .collect();
                HttpResponse::json(200, &json!({"threads": threads, "members": []}))
            }
            ("GET", ["channels", parent, "threads", "archived", which @ ("public" | "private")]) => {
                let private = *which == "private";
                if private && !state.allow_private_threads {
                    return HttpResponse::error(403, "Missing Permissions", 50013);
                }
                let params: BTreeMap<&str, &str> = request
                    .query
                    .split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .collect();
                let before = params
                    .get("before")
                    .map(|value| percent_decoded(value))
                    .and_then(|value| time_ms(&value))
                    .unwrap_or(i64::MAX);
                let limit: usize = params
                    .get("limit")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(50)
                    .clamp(1, 100)
                    .min(state.thread_page_size);
                let parent: u64 = parent.parse().unwrap_or(0);
                let wanted_type = if private { 12 } else { 11 };
                let mut archived: Vec<(i64, Value)> = state
                    .channel_objects
                    .values()
                    .filter(|channel| {
                        is_archived(channel)
                            && id_field(channel, "parent_id") == Some(parent)
                            && channel["type"].as_u64() == Some(wanted_type)
                    })
                    .filter_map(|channel| {
                        let at = channel["thread_metadata"]["archive_timestamp"]
                            .as_str()
                            .and_then(time_ms)?;
                        (at < before).then(|| (at, channel.clone()))
                    })
                    .collect();
                // Most recently archived first.
                archived.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
                let has_more = archived.len() > limit;
                let threads: Vec<Value> = archived
                    .into_iter()
                    .take(limit)
                    .map(|(_, thread)| thread)
                    .collect();
                HttpResponse::json(
                    200,
                    &json!({"threads": threads, "members": [], "has_more": has_more}),
                )
            }
            ("GET", ["channels", channel, "messages", id]) => {
                let channel: u64 = channel.parse().unwrap_or(0);
                let id: u64 = id.parse().unwrap_or(0);
                match state
                    .channels
                    .get(&channel)
                    .and_then(|messages| messages.get(&id))
                {
                    Some(message) => HttpResponse::json(200, message),
                    None => HttpResponse::error(404, "Unknown Message", 10008),
                }
            }
            _ => HttpResponse::error(404, "404: Not Found", 0),
        }
    }

    async fn serve_gateway(&self, stream: TcpStream) {
        if self.lock().down {
            return;
        }
        let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
        let hello = json!({"op": 10, "d": {"heartbeat_interval": 41250}}).to_string();
        if socket.send(WsMessage::Text(hello)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                command = rx.recv() => match command {
                    Some(Command::Dispatch(payload)) => {
                        if socket.send(WsMessage::Text(payload)).await.is_err() {
                            return;
                        }
                    }
                    Some(Command::Drop) | None => return, // dropping the socket: no close frame
                },
                frame = socket.next() => {
                    let Some(Ok(frame)) = frame else {
                        let mut state = self.lock();
                        if state.connection.as_ref().is_some_and(|c| c.same_channel(&tx)) {
                            state.connection = None;
                        }
                        return;
                    };
                    let text = match frame {
                        WsMessage::Text(text) => text,
                        WsMessage::Close(_) => return,
                        _ => continue,
                    };
                    let Ok(payload) = serde_json::from_str::<Value>(&text) else { continue };
                    match payload["op"].as_u64() {
                        Some(1) => {
                            let _ = socket.send(WsMessage::Text(json!({"op": 11}).to_string())).await;
                        }
                        Some(2) => {
                            let token = payload["d"]["token"].as_str().unwrap_or_default().to_string();
                            let (valid, disallowed) = {
                                let mut state = self.lock();
                                state.identify_tokens.push(token.clone());
                                let mut identify = payload["d"].clone();
                                if let Some(fields) = identify.as_object_mut() {
                                    fields.remove("token");
                                }
                                state.identifies.push(identify);
                                (token == format!("Bot {}", state.token) || token == state.token, state.disallow_intents)
                            };
                            if !valid || disallowed {
                                let code = if valid { 4014 } else { 4004 };
                                let _ = socket
                                    .send(WsMessage::Close(Some(CloseFrame {
                                        code: CloseCode::from(code),
                                        reason: if valid { "Disallowed intent(s)." } else { "Authentication failed." }.into(),
                                    })))
                                    .await;
                                return;
                            }
                            let ready = {
                                let mut state = self.lock();
                                state.readies += 1;
                                state.seq = 1;
                                state.sent.clear();
                                state.connection = Some(tx.clone());
                                json!({"op": 0, "s": 1, "t": "READY", "d": {
                                    "v": 10,
                                    "user": {"id": "1000", "username": "mjlink-test", "discriminator": "0", "avatar": null, "bot": true},
                                    "guilds": [],
                                    "session_id": format!("session-{}", state.readies),
                                    "resume_gateway_url": format!("ws://{}", self.gateway),
                                    "application": {"id": "2000", "flags": 0}
                                }})
                                .to_string()
                            };
                            if socket.send(WsMessage::Text(ready)).await.is_err() {
                                return;
                            }
                        }
                        Some(6) => {
                            let last_seq = payload["d"]["seq"].as_u64().unwrap_or(0);
                            let replay = {
                                let mut state = self.lock();
                                if state.allow_resume {
                                    state.resumes += 1;
                                    state.connection = Some(tx.clone());
                                    // Redeliver from one before the bot's last seq: RESUME can
                                    // send again what the bot already has.
                                    let replay: Vec<String> = state
                                        .sent
                                        .iter()
                                        .filter(|(seq, _)| *seq + 1 >= last_seq)
                                        .map(|(_, payload)| payload.clone())
                                        .collect();
                                    state.seq += 1;
                                    let seq = state.seq;
                                    Some((replay, json!({"op": 0, "s": seq, "t": "RESUMED", "d": {}}).to_string()))
                                } else {
                                    None
                                }
                            };
                            match replay {
                                Some((replay, resumed)) => {
                                    for payload in replay {
                                        let _ = socket.send(WsMessage::Text(payload)).await;
                                    }
                                    let _ = socket.send(WsMessage::Text(resumed)).await;
                                }
                                None => {
                                    let _ = socket.send(WsMessage::Text(json!({"op": 9, "d": false}).to_string())).await;
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// An id field as Discord sends it: a decimal string, or sometimes a number.
fn id_field(message: &Value, name: &str) -> Option<u64> {
    match message.get(name)? {
        Value::String(text) => Snowflake::parse(text).map(|id| id.0),
        Value::Number(number) => number.as_u64(),
        _ => None,
    }
}

fn is_thread(channel: &Value) -> bool {
    matches!(channel["type"].as_u64(), Some(10..=12))
}

fn is_archived(channel: &Value) -> bool {
    channel["thread_metadata"]["archived"].as_bool() == Some(true)
}

/// Unix milliseconds of an RFC 3339 time.
fn time_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.timestamp_millis())
}

/// A query value with its `%XX` escapes decoded (`+` stays `+`: Discord's clients escape it).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one HTTP/1.1 request: `Ok(None)` when the client closed before sending one,
/// `Err(reason)` for anything malformed (answered 400).
async fn read_request(stream: &mut TcpStream) -> Result<Option<HttpRequest>, &'static str> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position + 4;
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err("request head too large");
        }
        match stream.read(&mut chunk).await {
            Ok(0) if buffer.is_empty() => return Ok(None),
            Ok(0) => return Err("connection closed inside the request head"),
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            Err(_) => return Ok(None),
        }
    };
    let head = std::str::from_utf8(&buffer[..header_end]).map_err(|_| "request head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return Err("malformed method");
    }
    if !target.starts_with('/') {
        return Err("request target must be a path");
    }
    if !version.starts_with("HTTP/1.") {
        return Err("unsupported HTTP version");
    }
    let mut authorization = String::new();
    let mut content_length = 0usize;
    for line in lines.take_while(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err("malformed header line");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("authorization") {
            authorization = value.to_string();
        } else if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().map_err(|_| "malformed Content-Length")?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") && !value.eq_ignore_ascii_case("identity") {
            return Err("chunked request bodies are not supported");
        }
    }
    if content_length > MAX_BODY_BYTES {
        return Err("request body too large");
    }
    let mut body = buffer[header_end..].to_vec();
    while body.len() < content_length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err("connection closed inside the request body"),
            Ok(read) => body.extend_from_slice(&chunk[..read]),
        }
    }
    body.truncate(content_length);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(HttpRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        authorization,
        body,
    }))
}

async fn write_response(stream: &mut TcpStream, response: &HttpResponse) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Error",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\nConnection: close\r\n", response.status);
    if response.status != 204 {
        head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
        if !response.content_type.is_empty() {
            head.push_str(&format!("Content-Type: {}\r\n", response.content_type));
        }
    }
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if response.status != 204 {
        stream.write_all(&response.body).await?;
    }
    stream.shutdown().await
}

/// A Midjourney message in Discord's JSON, for posting through the fake: Midjourney Bot as
/// author, guild `900`, the timestamp of `id`, one image attachment named `filename` (on
/// cdn.discordapp.com, never fetched by tests), a type-19 reply to `reply_to` when given.
pub fn mj_message(
    id: u64,
    channel: u64,
    content: &str,
    filename: Option<&str>,
    reply_to: Option<&Value>,
) -> Value {
    let timestamp = rfc3339_of(Snowflake(id));
    let attachments = match filename {
        Some(name) => {
            json!([{"id": (id + 1).to_string(), "filename": name, "size": 1000, "url": format!("https://cdn.discordapp.com/attachments/{channel}/{}/{name}", id + 1), "proxy_url": "", "width": 1024, "height": 1024, "content_type": "image/png"}])
        }
        None => json!([]),
    };
    let mut message = json!({
        "id": id.to_string(), "channel_id": channel.to_string(), "guild_id": "900",
        "author": {"id": "936929561302675456", "username": "Midjourney Bot", "discriminator": "9282", "avatar": null, "bot": true},
        "content": content, "timestamp": timestamp, "edited_timestamp": null, "tts": false,
        "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": attachments,
        "embeds": [], "pinned": false, "type": if reply_to.is_some() { 19 } else { 0 }, "flags": 0, "components": []
    });
    if let Some(parent) = reply_to {
        message["message_reference"] =
            json!({"channel_id": channel.to_string(), "message_id": parent["id"], "guild_id": "900"});
        message["referenced_message"] = parent.clone();
    }
    message
}

/// A guild text channel (type 0) as `GET /channels/{id}` returns it.
pub fn text_channel(id: u64, guild: u64, name: &str) -> Value {
    json!({
        "id": id.to_string(), "type": 0, "guild_id": guild.to_string(), "name": name, "position": 0,
        "permission_overwrites": [], "nsfw": false, "parent_id": null, "topic": null, "last_message_id": null,
        "rate_limit_per_user": 0, "flags": 0
    })
}

/// A public thread (type 11) of `parent` as Discord documents it: its own channel id, the
/// parent's id in `parent_id`, `thread_metadata` archived at `archived_at_ms` when given.
pub fn thread_channel(id: u64, guild: u64, parent: u64, name: &str, archived_at_ms: Option<i64>) -> Value {
    let created = rfc3339_of(Snowflake(id));
    json!({
        "id": id.to_string(), "type": 11, "guild_id": guild.to_string(), "parent_id": parent.to_string(),
        "owner_id": "4242", "name": name, "last_message_id": null, "rate_limit_per_user": 0,
        "message_count": 0, "member_count": 1, "total_message_sent": 0, "flags": 0,
        "thread_metadata": {
            "archived": archived_at_ms.is_some(), "auto_archive_duration": 1440,
            "archive_timestamp": archived_at_ms.map(rfc3339_of_ms).unwrap_or_else(|| created.clone()),
            "locked": false, "create_timestamp": created
        }
    })
}

/// Discord's RFC 3339 form (microseconds, `+00:00`) of the time inside `id`.
pub fn rfc3339_of(id: Snowflake) -> String {
    rfc3339_of_ms(id.timestamp_ms())
}

/// Discord's RFC 3339 form (microseconds, `+00:00`) of Unix milliseconds.
pub fn rfc3339_of_ms(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}
