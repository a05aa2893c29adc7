//! Sending jobs to Midjourney. Midjourney acts only on interactions from user accounts, so the
//! Discord implementation sends what Midjourney's own client sends, with a user token:
//! `POST /api/v9/interactions`, type 2 for `/imagine`, type 3 for a button. Automating a user
//! account breaks Discord's terms of service and risks a Midjourney ban: it is off unless the
//! config turns it on (`queue.enabled` with `queue.user_token`).

use std::future::Future;
use std::time::Duration;

use serde_json::json;

use crate::config::{ConfigError, QueueConfig, Secret};
use mjlink_core::snowflake::Snowflake;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The user token was refused: nothing more can be sent.
    #[error(
        "Discord refused the user token (HTTP {status}): check queue.user_token / MJLINK_QUEUE_USER_TOKEN"
    )]
    Unauthorized { status: u16 },
    /// Try again after this long.
    #[error("Discord asked to slow down (retry after {0:?})")]
    RateLimited(Duration),
    #[error("Discord answered HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("cannot reach Discord: {0}")]
    Transport(String),
}

impl SubmitError {
    /// Whether the queue must stop (no later submission can work).
    pub fn is_fatal(&self) -> bool {
        matches!(self, SubmitError::Unauthorized { .. })
    }
}

/// An upscale button of a grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub grid_message_id: Snowflake,
    pub custom_id: String,
}

impl Button {
    /// The grid's `U{tile}` button: `MJ::JOB::upsample::{tile}::{grid job uuid}`.
    pub fn upscale(grid_message_id: Snowflake, grid_job_uuid: &str, tile: u8) -> Button {
        Button {
            grid_message_id,
            custom_id: format!("MJ::JOB::upsample::{tile}::{grid_job_uuid}"),
        }
    }
}

/// Whatever submits jobs: Discord with a user token, or a test double.
pub trait Submitter: Send + Sync {
    /// `/imagine prompt:<prompt>`, tagged with `nonce` (Midjourney's start message carries it).
    fn imagine(&self, prompt: &str, nonce: &str) -> impl Future<Output = Result<(), SubmitError>> + Send;
    /// Presses a button of a message.
    fn press(&self, button: &Button, nonce: &str) -> impl Future<Output = Result<(), SubmitError>> + Send;
}

/// Where and as whom the Discord submitter acts.
#[derive(Debug, Clone)]
pub struct DiscordTarget {
    pub api_base: String,
    pub user_token: Secret,
    pub application_id: Snowflake,
    pub guild_id: Snowflake,
    pub channel_id: Snowflake,
    /// The `/imagine` command's id and version (from Discord's command list).
    pub command_id: Snowflake,
    pub command_version: Snowflake,
    pub session_id: String,
}

impl DiscordTarget {
    /// From `[queue]` (and `discord.api_base`): what submitting needs, or the one-line reason
    /// it cannot start, naming the missing key.
    pub fn from_config(queue: &QueueConfig, api_base: &str) -> Result<DiscordTarget, ConfigError> {
        let missing = |key: &str| ConfigError::missing(key, "needed to submit prompts");
        Ok(DiscordTarget {
            api_base: api_base.to_string(),
            user_token: queue
                .user_token
                .clone()
                .ok_or_else(|| missing("queue.user_token"))?,
            application_id: queue.application_id,
            guild_id: queue.guild_id.ok_or_else(|| missing("queue.guild_id"))?,
            channel_id: queue.channel_id.ok_or_else(|| missing("queue.channel_id"))?,
            command_id: queue.command_id,
            command_version: queue.command_version,
            session_id: queue.session_id.clone(),
        })
    }
}

/// The Discord implementation: `POST {api_base}/api/v9/interactions` with the user token.
pub struct DiscordSubmitter {
    client: reqwest::Client,
    target: DiscordTarget,
}

impl DiscordSubmitter {
    pub fn new(target: DiscordTarget) -> Result<DiscordSubmitter, SubmitError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| SubmitError::Transport(crate::causes::of_request(&error)))?;
        Ok(DiscordSubmitter { client, target })
    }

    /// The body of an `/imagine` (type 2) interaction.
    pub fn imagine_body(target: &DiscordTarget, prompt: &str, nonce: &str) -> serde_json::Value {
        json!({
            "type": 2,
            "application_id": target.application_id.to_string(),
            "guild_id": target.guild_id.to_string(),
            "channel_id": target.channel_id.to_string(),
            "session_id": target.session_id,
            "nonce": nonce,
            "data": {
                "version": target.command_version.to_string(),
                "id": target.command_id.to_string(),
                "name": "imagine",
                "type": 1,
                "options": [{"type": 3, "name": "prompt", "value": prompt}],
                "attachments": []
            }
        })
    }

    /// The body of a button (type 3) interaction.
    pub fn press_body(target: &DiscordTarget, button: &Button, nonce: &str) -> serde_json::Value {
        json!({
            "type": 3,
            "nonce": nonce,
            "guild_id": target.guild_id.to_string(),
            "channel_id": target.channel_id.to_string(),
            "message_flags": 0,
            "message_id": button.grid_message_id.to_string(),
            "application_id": target.application_id.to_string(),
            "session_id": target.session_id,
            "data": {"component_type": 2, "custom_id": button.custom_id}
        })
    }

    async fn send(&self, body: serde_json::Value) -> Result<(), SubmitError> {
        let response = self
            .client
            .post(format!("{}/api/v9/interactions", self.target.api_base))
            .header(reqwest::header::AUTHORIZATION, self.target.user_token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|error| SubmitError::Transport(crate::causes::of_request(&error)))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            401 | 403 => Err(SubmitError::Unauthorized { status }),
            429 => {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let seconds = body["retry_after"]
                    .as_f64()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .unwrap_or(5.0);
                Err(SubmitError::RateLimited(Duration::from_secs_f64(
                    seconds.min(3600.0),
                )))
            }
            _ => {
                let text = response.text().await.unwrap_or_default();
                Err(SubmitError::Rejected {
                    status,
                    message: text.chars().take(200).collect(),
                })
            }
        }
    }
}

impl Submitter for DiscordSubmitter {
    async fn imagine(&self, prompt: &str, nonce: &str) -> Result<(), SubmitError> {
        self.send(Self::imagine_body(&self.target, prompt, nonce)).await
    }

    async fn press(&self, button: &Button, nonce: &str) -> Result<(), SubmitError> {
        self.send(Self::press_body(&self.target, button, nonce)).await
    }
}

/// A nonce like Discord's clients make: a snowflake of now.
pub fn new_nonce(now_ms: i64, counter: u64) -> String {
    Snowflake(Snowflake::from_timestamp_ms(now_ms).0 | (counter & 0x3f_ffff)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> DiscordTarget {
        DiscordTarget {
            api_base: "http://127.0.0.1:9".into(),
            user_token: Secret::new("user.token"),
            application_id: Snowflake(936_929_561_302_675_456),
            guild_id: Snowflake(5),
            channel_id: Snowflake(6),
            command_id: Snowflake(938_956_540_159_881_230),
            command_version: Snowflake(1_237_876_415_471_554_623),
            session_id: "abc123".into(),
        }
    }

    #[test]
    fn the_target_comes_from_the_queue_section_or_names_what_is_missing() {
        let mut queue = QueueConfig {
            user_token: Some(Secret::new("user.secret")),
            guild_id: Some(Snowflake(5)),
            channel_id: Some(Snowflake(6)),
            ..QueueConfig::default()
        };
        let target = DiscordTarget::from_config(&queue, "http://127.0.0.1:9").unwrap();
        assert_eq!((target.guild_id, target.channel_id), (Snowflake(5), Snowflake(6)));
        assert_eq!(target.api_base, "http://127.0.0.1:9");
        queue.user_token = None;
        let error = DiscordTarget::from_config(&queue, "http://x")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("queue.user_token") && error.contains("MJLINK_QUEUE_USER_TOKEN"),
            "{error}"
        );
    }

    #[test]
    fn the_bodies_are_what_midjourneys_client_sends() {
        let imagine = DiscordSubmitter::imagine_body(&target(), "a cat --ar 2:3", "1234");
        assert_eq!(imagine["type"], 2);
        assert_eq!(imagine["application_id"], "936929561302675456");
        assert_eq!(
            (imagine["guild_id"].as_str(), imagine["channel_id"].as_str()),
            (Some("5"), Some("6"))
        );
        assert_eq!(imagine["session_id"], "abc123");
        assert_eq!(imagine["nonce"], "1234");
        assert_eq!(imagine["data"]["name"], "imagine");
        assert_eq!(imagine["data"]["id"], "938956540159881230");
        assert_eq!(imagine["data"]["version"], "1237876415471554623");
        assert_eq!(imagine["data"]["options"][0]["name"], "prompt");
        assert_eq!(imagine["data"]["options"][0]["value"], "a cat --ar 2:3");

        let button = Button::upscale(Snowflake(77), "c09a2935-0000-4000-8000-000000000000", 3);
        assert_eq!(
            button.custom_id,
            "MJ::JOB::upsample::3::c09a2935-0000-4000-8000-000000000000"
        );
        let press = DiscordSubmitter::press_body(&target(), &button, "99");
        assert_eq!(press["type"], 3);
        assert_eq!(press["message_id"], "77");
        assert_eq!(press["data"]["component_type"], 2);
        assert_eq!(press["data"]["custom_id"], button.custom_id);
        // The token is never part of a body.
        assert!(!imagine.to_string().contains("user.token"));
        assert!(!press.to_string().contains("user.token"));
    }

    #[test]
    fn nonces_are_snowflakes_of_now_and_differ() {
        let a = new_nonce(1_767_225_600_000, 1);
        let b = new_nonce(1_767_225_600_000, 2);
        assert_ne!(a, b);
        let parsed = Snowflake::parse(&a).unwrap();
        assert_eq!(parsed.timestamp_ms(), 1_767_225_600_000);
    }
}
