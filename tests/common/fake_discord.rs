//! A fake Discord on 127.0.0.1 for driving serenity's real client: a small HTTP/1.1 REST
//! server (gateway address, channel history, single messages, with injectable 429/5xx and a
//! log of every request) and a WebSocket gateway (HELLO, IDENTIFY -> READY or a close code,
//! heartbeats, RESUME, dispatches, dropped connections). See shared/docs/fake-discord.md.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

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

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub authorized: bool,
    pub at: Instant,
    pub status: u16,
}

enum Command {
    Dispatch(String),
    Drop,
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
}

#[derive(Clone)]
pub struct FakeDiscord {
    pub http: SocketAddr,
    pub gateway: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeDiscord {
    /// Starts both servers on ephemeral ports. `token` is the one bot token accepted.
    pub async fn start(token: &str) -> FakeDiscord {
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeDiscord {
            http: http_listener.local_addr().unwrap(),
            gateway: gateway_listener.local_addr().unwrap(),
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
            })),
        };
        let http = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = http_listener.accept().await {
                let fake = http.clone();
                tokio::spawn(async move { fake.serve_http(stream).await });
            }
        });
        let gateway = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = gateway_listener.accept().await {
                let fake = gateway.clone();
                tokio::spawn(async move { fake.serve_gateway(stream).await });
            }
        });
        fake
    }

    pub fn api_base(&self) -> String {
        format!("http://{}", self.http)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn disallow_intents(&self) {
        self.lock().disallow_intents = true;
    }

    pub fn allow_resume(&self, allow: bool) {
        self.lock().allow_resume = allow;
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    pub fn readies(&self) -> u32 {
        self.lock().readies
    }

    pub fn resumes(&self) -> u32 {
        self.lock().resumes
    }

    pub fn identify_tokens(&self) -> Vec<String> {
        self.lock().identify_tokens.clone()
    }

    /// The dispatches sent in the current session, exactly as sent.
    pub fn sent_payloads(&self) -> Vec<String> {
        self.lock()
            .sent
            .iter()
            .map(|(_, payload)| payload.clone())
            .collect()
    }

    pub fn connected(&self) -> bool {
        self.lock().connection.is_some()
    }

    /// Stores a message in its channel's history (as Discord would) without dispatching it.
    pub fn store(&self, message: &Value) {
        let channel: u64 = message["channel_id"].as_str().unwrap().parse().unwrap();
        let id: u64 = message["id"].as_str().unwrap().parse().unwrap();
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

    /// Cuts the connection without a close frame, as a network failure would.
    pub fn drop_connection(&self) {
        let connection = self.lock().connection.take();
        if let Some(connection) = connection {
            let _ = connection.send(Command::Drop);
        }
    }

    /// Waits until `condition` holds, polling; panics with `what` after `timeout`.
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
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let Ok(read) = stream.read(&mut chunk).await else {
                return;
            };
            if read == 0 {
                return;
            }
            buffer.extend_from_slice(&chunk[..read]);
            if buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        // The body, when there is one (Content-Length).
        let header_end = buffer.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
        let head_text = String::from_utf8_lossy(&buffer[..header_end]).to_string();
        let length: usize = head_text
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buffer.len() < header_end + length {
            let Ok(read) = stream.read(&mut chunk).await else {
                return;
            };
            if read == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        let body = buffer.get(header_end..).unwrap_or_default().to_vec();
        let text = head_text;
        let mut lines = text.lines();
        let request_line = lines.next().unwrap_or_default().to_string();
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let authorization = lines
            .take_while(|line| !line.is_empty())
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("authorization")
                    .then(|| value.trim().to_string())
            })
            .unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        let (status, headers, body) = self.route(&method, path, query, &authorization, &body);
        self.lock().requests.push(Request {
            method,
            path: target.clone(),
            authorized: !authorization.is_empty(),
            at: Instant::now(),
            status,
        });
        let reason = match status {
            200 => "OK",
            401 => "Unauthorized",
            404 => "Not Found",
            429 => "Too Many Requests",
            _ => "Error",
        };
        let mut response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&body);
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    fn route(
        &self,
        method: &str,
        path: &str,
        query: &str,
        authorization: &str,
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, String) {
        let mut state = self.lock();
        if path == "/api/v10/gateway" || path == "/api/v10/gateway/bot" {
            let url = format!("ws://{}", self.gateway);
            return (200, vec![], json!({"url": url, "shards": 1, "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}}).to_string());
        }
        if authorization != format!("Bot {}", state.token) {
            return (
                401,
                vec![],
                json!({"message": "401: Unauthorized", "code": 0}).to_string(),
            );
        }
        if method == "POST" && path == "/api/v10/attachments/refresh-urls" {
            // Fresh links: "/old/" becomes "/fresh/"; URLs containing "norefresh" are left out.
            let request: Value = serde_json::from_slice(body).unwrap_or_default();
            let refreshed: Vec<Value> = request["attachment_urls"]
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
            return (200, vec![], json!({"refreshed_urls": refreshed}).to_string());
        }
        if path == "/api/v10/users/@me" {
            return (200, vec![], json!({"id": "1000", "username": "mjlink-test", "discriminator": "0", "avatar": null, "bot": true}).to_string());
        }
        let segments: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["channels", channel, "messages"]) => {
                let mut headers = Vec::new();
                match state.faults.pop_front() {
                    Some(Fault::RateLimit(retry_after)) => {
                        return (
                            429,
                            vec![("Retry-After".to_string(), format!("{}", retry_after.ceil() as u64))],
                            json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false}).to_string(),
                        )
                    }
                    Some(Fault::ServerError) => return (500, vec![], json!({"message": "oops"}).to_string()),
                    Some(Fault::BucketEmpty(reset_after)) => {
                        headers.push(("X-RateLimit-Remaining".to_string(), "0".to_string()));
                        headers.push(("X-RateLimit-Reset-After".to_string(), format!("{reset_after}")));
                    }
                    None => {}
                }
                let params: BTreeMap<&str, &str> =
                    query.split('&').filter_map(|pair| pair.split_once('=')).collect();
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
                            .range(after + 1..)
                            .take(limit)
                            .map(|(_, m)| m.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                page.reverse(); // Discord answers newest first
                (200, headers, Value::Array(page).to_string())
            }
            ("GET", ["channels", channel, "messages", id]) => {
                let channel: u64 = channel.parse().unwrap_or(0);
                let id: u64 = id.parse().unwrap_or(0);
                match state
                    .channels
                    .get(&channel)
                    .and_then(|messages| messages.get(&id))
                {
                    Some(message) => (200, vec![], message.to_string()),
                    None => (
                        404,
                        vec![],
                        json!({"message": "Unknown Message", "code": 10008}).to_string(),
                    ),
                }
            }
            _ => (
                404,
                vec![],
                json!({"message": "404: Not Found", "code": 0}).to_string(),
            ),
        }
    }

    async fn serve_gateway(&self, stream: TcpStream) {
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

/// A Midjourney message in Discord's JSON, for posting through the fake.
pub fn mj_message(
    id: u64,
    channel: u64,
    content: &str,
    filename: Option<&str>,
    reply_to: Option<&Value>,
) -> Value {
    let ms = ((id >> 22) as i64) + 1_420_070_400_000;
    let timestamp = chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
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
