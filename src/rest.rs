//! Discord's REST API, as far as mjlink needs it: channel history, single messages, channels
//! and threads.
//! Discord's rate limits are honoured (a 429's `retry_after`, and `X-RateLimit-Remaining` /
//! `X-RateLimit-Reset-After` before the next request), server errors and dropped connections
//! are retried with backoff. The token is sent, never logged.

use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::config::{DiscordConfig, Secret};
use mjlink_core::channel::{self, Channel, ThreadList};
use mjlink_core::event::{self, Event};
use mjlink_core::snowflake::Snowflake;

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("Discord refused the token (401 Unauthorized): check discord.token")]
    Unauthorized,
    #[error("the bot has no access to {what} (403 Forbidden): check its permissions (View Channel, Read Message History)")]
    Forbidden { what: String },
    #[error("{what} was not found (404)")]
    NotFound { what: String },
    #[error("Discord answered {status} for {what} (after {attempts} attempts)")]
    Status {
        what: String,
        status: u16,
        attempts: u32,
    },
    #[error("cannot reach Discord at {base} for {what}: {reason}")]
    Transport {
        base: String,
        what: String,
        reason: String,
    },
    #[error("Discord's answer for {what} could not be read: {reason}")]
    Decode { what: String, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// How persistent the client is.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts for one request that meets server errors or transport failures.
    pub attempts: u32,
    /// First backoff; doubled each time, capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// 429 answers honoured in a row before giving up.
    pub max_rate_limited: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_rate_limited: 20,
        }
    }
}

pub struct Rest {
    client: reqwest::Client,
    base: String,
    api: String,
    token: Secret,
    policy: RetryPolicy,
    /// Set when Discord said the bucket is empty: no request before this instant.
    not_before: Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct RateLimited {
    retry_after: f64,
}

impl Rest {
    /// From `[discord]`: its API base and token (needed), with the default retries.
    pub fn from_config(discord: &DiscordConfig) -> Result<Rest, RestError> {
        Rest::new(
            &discord.api_base,
            discord.require_token()?.clone(),
            RetryPolicy::default(),
        )
    }

    pub fn new(api_base: &str, token: Secret, policy: RetryPolicy) -> Result<Rest, RestError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!(
                "DiscordBot (https://github.com/mjlink, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .map_err(|error| RestError::Client(error.to_string()))?;
        Ok(Rest {
            client,
            base: api_base.to_string(),
            api: format!("{api_base}/api/v10"),
            token,
            policy,
            not_before: Mutex::new(None),
        })
    }

    /// Up to `limit` (1..=100) messages of `channel` after `after`, in snowflake order.
    pub async fn history_after(
        &self,
        channel: Snowflake,
        after: Snowflake,
        limit: u8,
    ) -> Result<Vec<Event>, RestError> {
        let limit = limit.clamp(1, 100);
        let what = format!("the history of channel {channel}");
        let body = self
            .get(
                &format!("/channels/{channel}/messages?after={after}&limit={limit}"),
                &what,
            )
            .await?;
        let page = event::from_history_page(&body).map_err(|not_a_page| RestError::Decode {
            what: what.clone(),
            reason: not_a_page.reason.0,
        })?;
        // A message that does not decode is skipped, not fatal: the rest still counts.
        for (index, reason) in page.rejected {
            tracing::warn!(channel_id = %channel, index, %reason, "skipped a message that does not decode");
        }
        Ok(page.events)
    }

    /// One message; `None` when it no longer exists.
    pub async fn message(&self, channel: Snowflake, id: Snowflake) -> Result<Option<Event>, RestError> {
        let what = format!("message {id} in channel {channel}");
        let body = match self
            .get(&format!("/channels/{channel}/messages/{id}"), &what)
            .await
        {
            Ok(body) => body,
            Err(RestError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let event = event::from_message(&body).map_err(|reason| RestError::Decode {
            what,
            reason: reason.0,
        })?;
        Ok(Some(event))
    }

    /// One channel (`GET /channels/{id}`); `None` when it does not exist.
    pub async fn channel(&self, id: Snowflake) -> Result<Option<Channel>, RestError> {
        let what = format!("channel {id}");
        let body = match self.get(&format!("/channels/{id}"), &what).await {
            Ok(body) => body,
            Err(RestError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        channel::from_channel(&body)
            .map(Some)
            .map_err(|reason| RestError::Decode {
                what,
                reason: reason.0,
            })
    }

    /// A guild's active threads (`GET /guilds/{guild}/threads/active`), of every channel.
    pub async fn active_threads(&self, guild: Snowflake) -> Result<ThreadList, RestError> {
        let what = format!("the active threads of guild {guild}");
        let body = self
            .get(&format!("/guilds/{guild}/threads/active"), &what)
            .await?;
        channel::from_thread_list(&body).map_err(|reason| RestError::Decode {
            what,
            reason: reason.0,
        })
    }

    /// One page (up to 100, most recently archived first) of a channel's archived threads,
    /// public or private, archived before `before` (an RFC 3339 time) when given.
    pub async fn archived_threads(
        &self,
        parent: Snowflake,
        private: bool,
        before: Option<&str>,
    ) -> Result<ThreadList, RestError> {
        let which = if private { "private" } else { "public" };
        let what = format!("the archived {which} threads of channel {parent}");
        let mut path = format!("/channels/{parent}/threads/archived/{which}?limit=100");
        if let Some(before) = before {
            path.push_str("&before=");
            path.push_str(&query_value(before));
        }
        let body = self.get(&path, &what).await?;
        channel::from_thread_list(&body).map_err(|reason| RestError::Decode {
            what,
            reason: reason.0,
        })
    }

    /// The bot's name (`GET /users/@me`): proves the token works.
    pub async fn current_user(&self) -> Result<String, RestError> {
        #[derive(Deserialize)]
        struct User {
            username: String,
        }
        let what = "the bot user".to_string();
        let body = self.get("/users/@me", &what).await?;
        serde_json::from_slice::<User>(&body)
            .map(|user| user.username)
            .map_err(|error| RestError::Decode {
                what,
                reason: error.to_string(),
            })
    }

    /// Checks that the API base answers (for `mjlink doctor`): `GET /gateway`.
    pub async fn gateway_url(&self) -> Result<String, RestError> {
        #[derive(Deserialize)]
        struct Gateway {
            url: String,
        }
        let what = "the gateway address".to_string();
        let body = self.get("/gateway", &what).await?;
        serde_json::from_slice::<Gateway>(&body)
            .map(|gateway| gateway.url)
            .map_err(|error| RestError::Decode {
                what,
                reason: error.to_string(),
            })
    }

    async fn wait_for_bucket(&self) {
        let until = *self
            .not_before
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    fn note_bucket(&self, headers: &reqwest::header::HeaderMap) {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<f64>().ok())
        };
        let mut not_before = self
            .not_before
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *not_before = match (header("x-ratelimit-remaining"), header("x-ratelimit-reset-after")) {
            (Some(remaining), Some(reset_after)) if remaining < 1.0 => {
                Some(Instant::now() + seconds(reset_after))
            }
            _ => None,
        };
    }

    /// Fresh links for expired attachment URLs (`POST /attachments/refresh-urls`, at most 50
    /// at a time): original URL -> refreshed URL, for those Discord refreshed.
    pub async fn refresh_urls(
        &self,
        urls: &[String],
    ) -> Result<std::collections::HashMap<String, String>, RestError> {
        #[derive(Deserialize)]
        struct Refreshed {
            original: String,
            refreshed: String,
        }
        #[derive(Deserialize)]
        struct Answer {
            refreshed_urls: Vec<Refreshed>,
        }
        let mut out = std::collections::HashMap::new();
        for batch in urls.chunks(50) {
            let what = format!("fresh links for {} attachments", batch.len());
            let body = serde_json::json!({ "attachment_urls": batch });
            let answer = self.send("/attachments/refresh-urls", Some(&body), &what).await?;
            let answer: Answer = serde_json::from_slice(&answer).map_err(|error| RestError::Decode {
                what: what.clone(),
                reason: error.to_string(),
            })?;
            out.extend(
                answer
                    .refreshed_urls
                    .into_iter()
                    .map(|r| (r.original, r.refreshed)),
            );
        }
        Ok(out)
    }

    async fn get(&self, path: &str, what: &str) -> Result<Vec<u8>, RestError> {
        self.send(path, None, what).await
    }

    /// GET, or POST with a JSON body, with the rate limits and retries described above.
    async fn send(
        &self,
        path: &str,
        json: Option<&serde_json::Value>,
        what: &str,
    ) -> Result<Vec<u8>, RestError> {
        let url = format!("{}{path}", self.api);
        let mut failures = 0u32;
        let mut rate_limited = 0u32;
        let mut backoff = self.policy.backoff;
        loop {
            self.wait_for_bucket().await;
            let request = match json {
                Some(body) => self.client.post(&url).json(body),
                None => self.client.get(&url),
            };
            let sent = request
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!("Bot {}", self.token.expose()),
                )
                .send()
                .await;
            let retry_reason = match sent {
                Err(error) => format!("transport: {}", without_url(&error)),
                Ok(response) => {
                    let status = response.status();
                    self.note_bucket(response.headers());
                    match status.as_u16() {
                        200..=299 => match response.bytes().await {
                            Ok(body) => return Ok(body.to_vec()),
                            Err(error) => format!("body: {}", without_url(&error)),
                        },
                        429 => {
                            rate_limited += 1;
                            if rate_limited > self.policy.max_rate_limited {
                                return Err(RestError::Status {
                                    what: what.to_string(),
                                    status: 429,
                                    attempts: rate_limited,
                                });
                            }
                            let header_wait = response
                                .headers()
                                .get(reqwest::header::RETRY_AFTER)
                                .and_then(|value| value.to_str().ok())
                                .and_then(|value| value.parse::<f64>().ok());
                            let body_wait = response
                                .bytes()
                                .await
                                .ok()
                                .and_then(|body| serde_json::from_slice::<RateLimited>(&body).ok())
                                .map(|limited| limited.retry_after);
                            let wait = seconds(body_wait.or(header_wait).unwrap_or(1.0));
                            tracing::warn!(
                                what,
                                wait_ms = wait.as_millis() as u64,
                                "rate limited by Discord; waiting"
                            );
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        401 => return Err(RestError::Unauthorized),
                        403 => {
                            return Err(RestError::Forbidden {
                                what: what.to_string(),
                            })
                        }
                        404 => {
                            return Err(RestError::NotFound {
                                what: what.to_string(),
                            })
                        }
                        500..=599 => format!("status {status}"),
                        other => {
                            return Err(RestError::Status {
                                what: what.to_string(),
                                status: other,
                                attempts: failures + 1,
                            })
                        }
                    }
                }
            };
            failures += 1;
            if failures >= self.policy.attempts {
                return Err(match retry_reason.strip_prefix("status ") {
                    Some(status) => RestError::Status {
                        what: what.to_string(),
                        status: status
                            .split_whitespace()
                            .next()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(500),
                        attempts: failures,
                    },
                    None => RestError::Transport {
                        base: self.base.clone(),
                        what: what.to_string(),
                        reason: retry_reason,
                    },
                });
            }
            tracing::warn!(what, attempt = failures, reason = %retry_reason, backoff_ms = backoff.as_millis() as u64, "retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }
}

/// A value for a query string: everything but unreserved characters percent-encoded (an RFC
/// 3339 time's `+` would otherwise read as a space).
fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A non-negative, finite number of seconds (Discord's fields are floats), capped at an hour.
fn seconds(value: f64) -> Duration {
    if value.is_finite() && value > 0.0 {
        Duration::from_secs_f64(value.min(3600.0))
    } else {
        Duration::ZERO
    }
}

/// reqwest's error text with its causes (`connection refused`, `dns error`...), without the
/// URL (which carries nothing secret, but is long).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = crate::causes::of(error);
    if let Some(url) = error.url() {
        text = text
            .replace(&format!(" ({url})"), "")
            .replace(url.as_str(), "<url>");
    }
    text
}
