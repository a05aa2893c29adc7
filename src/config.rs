//! Configuration: one typed struct, built from defaults, then `bot.toml`, then `MJLINK_*`
//! environment variables, then command-line flags; validated before anything runs.
//! Secrets (the Discord token) are never printed: [`Config`]'s `Debug` redacts them.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ingest::pipeline::{PipelineConfig, DEFAULT_WINDOW_MS};
use mjlink_core::parse::BotIds;
use mjlink_core::snowflake::Snowflake;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// The file's shape. Every section and key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    midjourney: FileMidjourney,
    #[serde(default)]
    linking: FileLinking,
    #[serde(default)]
    log: FileLog,
    #[serde(default)]
    discord: FileDiscord,
    #[serde(default)]
    archive: FileArchive,
    #[serde(default)]
    queue: FileQueue,
    #[serde(default)]
    commands: FileCommands,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCommands {
    enabled: Option<bool>,
    global: Option<bool>,
    read_roles: Option<Vec<String>>,
    read_users: Option<Vec<String>>,
    queue_roles: Option<Vec<String>>,
    queue_users: Option<Vec<String>>,
    per_user_per_minute: Option<u32>,
    defer_after_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQueue {
    enabled: Option<bool>,
    user_token: Option<String>,
    user_id: Option<String>,
    guild_id: Option<String>,
    channel_id: Option<String>,
    application_id: Option<String>,
    command_id: Option<String>,
    command_version: Option<String>,
    session_id: Option<String>,
    max_in_flight: Option<usize>,
    max_waiting: Option<usize>,
    daily_cap: Option<u32>,
    spacing_seconds: Option<f64>,
    wait_timeout_minutes: Option<f64>,
    render_timeout_minutes: Option<f64>,
    upscale_timeout_minutes: Option<f64>,
    max_attempts: Option<i64>,
    retry_wait_seconds: Option<f64>,
    queue_full_wait_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileArchive {
    enabled: Option<bool>,
    dir: Option<PathBuf>,
    concurrency: Option<usize>,
    max_mib: Option<u64>,
    hosts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDiscord {
    token: Option<String>,
    api_base: Option<String>,
    guilds: Option<Vec<String>>,
    channels: Option<Vec<String>>,
    direct_messages: Option<bool>,
    backfill_on_start: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMidjourney {
    bot_ids: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLinking {
    window_hours: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    filter: Option<String>,
}

pub use mjlink_core::secret::Secret;

/// Discord's real API; `api_base` points elsewhere for a proxy or a test double.
pub const DISCORD_API_BASE: &str = "https://discord.com";

/// Where and what the live bot watches.
#[derive(Clone, Debug)]
pub struct DiscordConfig {
    pub token: Option<Secret>,
    /// Scheme and host (and port) that REST and gateway traffic go to, without a path.
    pub api_base: String,
    /// Watch only these guilds (empty: every guild the bot is in).
    pub guilds: BTreeSet<Snowflake>,
    /// Watch only these channels (empty: every channel the bot can see).
    pub channels: BTreeSet<Snowflake>,
    pub direct_messages: bool,
    /// Fetch what was missed while offline at start and after every non-resumed reconnect.
    pub backfill_on_start: bool,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        DiscordConfig {
            token: None,
            api_base: DISCORD_API_BASE.to_string(),
            guilds: BTreeSet::new(),
            channels: BTreeSet::new(),
            direct_messages: false,
            backfill_on_start: true,
        }
    }
}

impl DiscordConfig {
    /// Whether a message in `channel` of `guild` is watched.
    pub fn watches(&self, guild: Option<Snowflake>, channel: Snowflake) -> bool {
        match guild {
            None => self.direct_messages && (self.channels.is_empty() || self.channels.contains(&channel)),
            Some(guild) => {
                (self.guilds.is_empty() || self.guilds.contains(&guild))
                    && (self.channels.is_empty() || self.channels.contains(&channel))
            }
        }
    }

    /// The token, or the one-line reason there is none.
    pub fn require_token(&self) -> Result<&Secret, ConfigError> {
        self.token.as_ref().ok_or_else(|| ConfigError::Invalid {
            key: "discord.token".to_string(),
            message: "a bot token is needed (set it in bot.toml or MJLINK_DISCORD_TOKEN)".to_string(),
        })
    }
}

/// Where images are archived and how they are fetched.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    /// Download images while `run` is running and right after `backfill`.
    pub enabled: bool,
    pub dir: PathBuf,
    pub concurrency: usize,
    pub max_bytes: u64,
    /// Hosts images may be downloaded from (redirects included).
    pub hosts: Vec<String>,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            enabled: true,
            dir: PathBuf::from("archive"),
            concurrency: 4,
            max_bytes: 64 * 1024 * 1024,
            hosts: vec![
                "cdn.discordapp.com".to_string(),
                "media.discordapp.net".to_string(),
            ],
        }
    }
}

/// The prompt queue: where and as whom jobs are submitted, and how fast.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// `mjlink run` drives the queue too. Submitting needs a user token: automating a user
    /// account breaks Discord's terms of service and risks a Midjourney ban.
    pub enabled: bool,
    pub user_token: Option<Secret>,
    /// The user account's id (Midjourney mentions it in every result).
    pub user_id: Option<Snowflake>,
    pub guild_id: Option<Snowflake>,
    pub channel_id: Option<Snowflake>,
    pub application_id: Snowflake,
    pub command_id: Snowflake,
    pub command_version: Snowflake,
    pub session_id: String,
    pub max_in_flight: usize,
    pub max_waiting: usize,
    pub daily_cap: Option<u32>,
    pub spacing_ms: i64,
    pub wait_timeout_ms: i64,
    pub render_timeout_ms: i64,
    pub upscale_timeout_ms: i64,
    pub max_attempts: i64,
    /// The wait before a timed-out job is sent again (doubled for each earlier attempt).
    pub retry_wait_ms: i64,
    /// The wait after Midjourney's `Queue full`.
    pub queue_full_wait_ms: i64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: false,
            user_token: None,
            user_id: None,
            guild_id: None,
            channel_id: None,
            application_id: Snowflake(936_929_561_302_675_456),
            // Midjourney's `/imagine` command as Discord lists it (proxies use the same).
            command_id: Snowflake(938_956_540_159_881_230),
            command_version: Snowflake(1_237_876_415_471_554_623),
            session_id: "0b0d5a1e6f3c4d2b9a8e7f6a5b4c3d2e".to_string(),
            max_in_flight: 3,
            max_waiting: 10,
            daily_cap: None,
            spacing_ms: 3_000,
            wait_timeout_ms: 15 * 60_000,
            render_timeout_ms: 10 * 60_000,
            upscale_timeout_ms: 10 * 60_000,
            max_attempts: 3,
            retry_wait_ms: 30_000,
            queue_full_wait_ms: 60_000,
        }
    }
}

impl QueueConfig {
    /// What submitting needs, or the one-line reason it cannot start.
    pub fn target(&self, api_base: &str) -> Result<crate::queue::submit::DiscordTarget, ConfigError> {
        let missing = |key: &str, env: &str| ConfigError::Invalid {
            key: format!("queue.{key}"),
            message: format!("needed to submit prompts (set it in bot.toml or {env})"),
        };
        Ok(crate::queue::submit::DiscordTarget {
            api_base: api_base.to_string(),
            user_token: self
                .user_token
                .clone()
                .ok_or_else(|| missing("user_token", "MJLINK_QUEUE_USER_TOKEN"))?,
            application_id: self.application_id,
            guild_id: self
                .guild_id
                .ok_or_else(|| missing("guild_id", "MJLINK_QUEUE_GUILD_ID"))?,
            channel_id: self
                .channel_id
                .ok_or_else(|| missing("channel_id", "MJLINK_QUEUE_CHANNEL_ID"))?,
            command_id: self.command_id,
            command_version: self.command_version,
            session_id: self.session_id.clone(),
        })
    }

    pub fn runner_options(&self) -> crate::queue::runner::RunnerOptions {
        crate::queue::runner::RunnerOptions {
            policy: mjlink_core::queue::machine::Policy {
                wait_timeout_ms: self.wait_timeout_ms,
                render_timeout_ms: self.render_timeout_ms,
                upscale_timeout_ms: self.upscale_timeout_ms,
                max_attempts: self.max_attempts,
                retry_backoff_ms: self.retry_wait_ms,
                queue_full_backoff_ms: self.queue_full_wait_ms,
                ..Default::default()
            },
            limits: mjlink_core::queue::machine::Limits {
                max_in_flight: self.max_in_flight,
                max_waiting: self.max_waiting,
                daily_cap: self.daily_cap,
            },
            spacing_ms: self.spacing_ms,
            jitter_ms: self.spacing_ms / 2,
            channel_id: self.channel_id,
            user_id: self.user_id,
        }
    }

    /// Sets `field` (a key of `[queue]`) from text; errors name `key` (as the user wrote it).
    fn set(&mut self, field: &str, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |message: &str| ConfigError::Invalid {
            key: key.to_string(),
            message: message.to_string(),
        };
        let id =
            || Snowflake::parse(value.trim()).ok_or_else(|| invalid("expected a Discord id (digits only)"));
        let minutes = || {
            value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|m| m.is_finite() && *m > 0.0 && *m <= 24.0 * 60.0)
                .map(|m| (m * 60_000.0) as i64)
                .ok_or_else(|| invalid("expected minutes, more than 0 and at most a day"))
        };
        let seconds = || {
            value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && (0.0..=3600.0).contains(s))
                .map(|s| (s * 1000.0) as i64)
                .ok_or_else(|| invalid("expected seconds from 0 to 3600"))
        };
        let count = |low: usize, high: usize| {
            value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (low..=high).contains(n))
                .ok_or_else(|| invalid(&format!("expected a whole number from {low} to {high}")))
        };
        match field {
            "enabled" => self.enabled = parse_bool(key, value)?,
            "user_token" => self.user_token = Some(token_from(key, value)?),
            "user_id" => self.user_id = Some(id()?),
            "guild_id" => self.guild_id = Some(id()?),
            "channel_id" => self.channel_id = Some(id()?),
            "application_id" => self.application_id = id()?,
            "command_id" => self.command_id = id()?,
            "command_version" => self.command_version = id()?,
            "session_id" => {
                let session = value.trim();
                if session.is_empty() || !session.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(invalid("expected letters and digits"));
                }
                self.session_id = session.to_string();
            }
            "max_in_flight" => self.max_in_flight = count(1, 12)?,
            "max_waiting" => self.max_waiting = count(0, 100)?,
            "daily_cap" => self.daily_cap = Some(count(0, 100_000)? as u32).filter(|cap| *cap > 0),
            "spacing_seconds" => self.spacing_ms = seconds()?,
            "retry_wait_seconds" => self.retry_wait_ms = seconds()?,
            "queue_full_wait_seconds" => self.queue_full_wait_ms = seconds()?,
            "wait_timeout_minutes" => self.wait_timeout_ms = minutes()?,
            "render_timeout_minutes" => self.render_timeout_ms = minutes()?,
            "upscale_timeout_minutes" => self.upscale_timeout_ms = minutes()?,
            "max_attempts" => self.max_attempts = count(1, 20)? as i64,
            _ => return Err(invalid("unknown key")),
        }
        Ok(())
    }
}

/// The `[queue]` keys, as (key, environment variable).
const QUEUE_KEYS: &[(&str, &str)] = &[
    ("enabled", "MJLINK_QUEUE_ENABLED"),
    ("user_token", "MJLINK_QUEUE_USER_TOKEN"),
    ("user_id", "MJLINK_QUEUE_USER_ID"),
    ("guild_id", "MJLINK_QUEUE_GUILD_ID"),
    ("channel_id", "MJLINK_QUEUE_CHANNEL_ID"),
    ("application_id", "MJLINK_QUEUE_APPLICATION_ID"),
    ("command_id", "MJLINK_QUEUE_COMMAND_ID"),
    ("command_version", "MJLINK_QUEUE_COMMAND_VERSION"),
    ("session_id", "MJLINK_QUEUE_SESSION_ID"),
    ("max_in_flight", "MJLINK_QUEUE_MAX_IN_FLIGHT"),
    ("max_waiting", "MJLINK_QUEUE_MAX_WAITING"),
    ("daily_cap", "MJLINK_QUEUE_DAILY_CAP"),
    ("spacing_seconds", "MJLINK_QUEUE_SPACING_SECONDS"),
    ("wait_timeout_minutes", "MJLINK_QUEUE_WAIT_TIMEOUT_MINUTES"),
    ("render_timeout_minutes", "MJLINK_QUEUE_RENDER_TIMEOUT_MINUTES"),
    ("upscale_timeout_minutes", "MJLINK_QUEUE_UPSCALE_TIMEOUT_MINUTES"),
    ("max_attempts", "MJLINK_QUEUE_MAX_ATTEMPTS"),
    ("retry_wait_seconds", "MJLINK_QUEUE_RETRY_WAIT_SECONDS"),
    ("queue_full_wait_seconds", "MJLINK_QUEUE_QUEUE_FULL_WAIT_SECONDS"),
];

/// The effective configuration.
#[derive(Clone)]
pub struct Config {
    pub database_path: PathBuf,
    pub bot_ids: BotIds,
    pub window_ms: i64,
    pub log_filter: String,
    pub discord: DiscordConfig,
    pub archive: ArchiveConfig,
    pub queue: QueueConfig,
    pub commands: mjlink_core::access::AccessConfig,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_path", &self.database_path)
            .field("bot_ids", &self.bot_ids)
            .field("window_ms", &self.window_ms)
            .field("log_filter", &self.log_filter)
            .field("discord", &self.discord)
            .field("archive", &self.archive)
            .field("queue", &self.queue)
            .field("commands", &self.commands)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_path: PathBuf::from("mjlink.db"),
            bot_ids: BotIds::default(),
            window_ms: DEFAULT_WINDOW_MS,
            log_filter: "warn,mjlink=info".to_string(),
            discord: DiscordConfig::default(),
            archive: ArchiveConfig::default(),
            queue: QueueConfig::default(),
            commands: Default::default(),
        }
    }
}

/// The default config file, used when it exists and no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "bot.toml";

impl Config {
    /// Loads `path` (or `bot.toml` in the working directory if present), then applies the
    /// environment read through `env` (so tests need not touch the process environment).
    pub fn load(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let file_path = match path {
            Some(path) => Some(path.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|default| default.is_file()),
        };
        if let Some(path) = file_path {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            config.apply_file(&path, &text)?;
        }
        config.apply_env(env)?;
        Ok(config)
    }

    fn apply_file(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|error| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: error.message().to_string()
                + &error
                    .span()
                    .map(|span| format!(" (at byte {})", span.start))
                    .unwrap_or_default(),
        })?;
        if let Some(db) = file.database.path {
            self.database_path = db;
        }
        if let Some(ids) = file.midjourney.bot_ids {
            self.bot_ids = parse_bot_ids("midjourney.bot_ids", ids.iter().map(String::as_str))?;
        }
        if let Some(hours) = file.linking.window_hours {
            self.window_ms = window_ms("linking.window_hours", hours)?;
        }
        if let Some(filter) = file.log.filter {
            self.log_filter = filter;
        }
        let discord = file.discord;
        if let Some(token) = discord.token {
            self.discord.token = Some(token_from("discord.token", &token)?);
        }
        if let Some(base) = discord.api_base {
            self.discord.api_base = api_base("discord.api_base", &base)?;
        }
        if let Some(guilds) = discord.guilds {
            self.discord.guilds = parse_ids("discord.guilds", guilds.iter().map(String::as_str))?;
        }
        if let Some(channels) = discord.channels {
            self.discord.channels = parse_ids("discord.channels", channels.iter().map(String::as_str))?;
        }
        if let Some(direct) = discord.direct_messages {
            self.discord.direct_messages = direct;
        }
        if let Some(backfill) = discord.backfill_on_start {
            self.discord.backfill_on_start = backfill;
        }
        let archive = file.archive;
        if let Some(enabled) = archive.enabled {
            self.archive.enabled = enabled;
        }
        if let Some(dir) = archive.dir {
            self.archive.dir = dir;
        }
        if let Some(concurrency) = archive.concurrency {
            self.archive.concurrency = concurrency_in("archive.concurrency", concurrency)?;
        }
        if let Some(mib) = archive.max_mib {
            self.archive.max_bytes = max_bytes("archive.max_mib", mib)?;
        }
        if let Some(hosts) = archive.hosts {
            self.archive.hosts = hosts_in("archive.hosts", hosts)?;
        }
        let queue = file.queue;
        let number = |n: Option<f64>| n.map(|n| n.to_string());
        let values = [
            queue.enabled.map(|b| b.to_string()),
            queue.user_token,
            queue.user_id,
            queue.guild_id,
            queue.channel_id,
            queue.application_id,
            queue.command_id,
            queue.command_version,
            queue.session_id,
            queue.max_in_flight.map(|n| n.to_string()),
            queue.max_waiting.map(|n| n.to_string()),
            queue.daily_cap.map(|n| n.to_string()),
            number(queue.spacing_seconds),
            number(queue.wait_timeout_minutes),
            number(queue.render_timeout_minutes),
            number(queue.upscale_timeout_minutes),
            queue.max_attempts.map(|n| n.to_string()),
            number(queue.retry_wait_seconds),
            number(queue.queue_full_wait_seconds),
        ];
        for ((field, _), value) in QUEUE_KEYS.iter().zip(values) {
            if let Some(value) = value {
                self.queue.set(field, &format!("queue.{field}"), &value)?;
            }
        }
        let commands = file.commands;
        if let Some(enabled) = commands.enabled {
            self.commands.enabled = enabled;
        }
        if let Some(global) = commands.global {
            self.commands.global = global;
        }
        let lists = [
            (
                "commands.read_roles",
                commands.read_roles,
                &mut self.commands.read_roles,
            ),
            (
                "commands.read_users",
                commands.read_users,
                &mut self.commands.read_users,
            ),
            (
                "commands.queue_roles",
                commands.queue_roles,
                &mut self.commands.queue_roles,
            ),
            (
                "commands.queue_users",
                commands.queue_users,
                &mut self.commands.queue_users,
            ),
        ];
        for (key, ids, target) in lists {
            if let Some(ids) = ids {
                *target = parse_ids(key, ids.iter().map(String::as_str))?;
            }
        }
        if let Some(rate) = commands.per_user_per_minute {
            self.commands.per_user_per_minute = rate_in("commands.per_user_per_minute", rate)?;
        }
        if let Some(ms) = commands.defer_after_ms {
            self.commands.defer_after_ms = defer_in("commands.defer_after_ms", ms)?;
        }
        Ok(())
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(db) = env("MJLINK_DATABASE_PATH") {
            self.database_path = PathBuf::from(db);
        }
        if let Some(ids) = env("MJLINK_MIDJOURNEY_BOT_IDS") {
            self.bot_ids = parse_bot_ids("MJLINK_MIDJOURNEY_BOT_IDS", ids.split(','))?;
        }
        if let Some(hours) = env("MJLINK_LINKING_WINDOW_HOURS") {
            let value = hours.trim().parse::<f64>().map_err(|_| ConfigError::Invalid {
                key: "MJLINK_LINKING_WINDOW_HOURS".to_string(),
                message: format!("expected a number of hours, got {hours:?}"),
            })?;
            self.window_ms = window_ms("MJLINK_LINKING_WINDOW_HOURS", value)?;
        }
        if let Some(filter) = env("MJLINK_LOG_FILTER") {
            self.log_filter = filter;
        }
        if let Some(token) = env("MJLINK_DISCORD_TOKEN") {
            self.discord.token = Some(token_from("MJLINK_DISCORD_TOKEN", &token)?);
        }
        if let Some(base) = env("MJLINK_DISCORD_API_BASE") {
            self.discord.api_base = api_base("MJLINK_DISCORD_API_BASE", &base)?;
        }
        if let Some(guilds) = env("MJLINK_DISCORD_GUILDS") {
            self.discord.guilds = parse_ids(
                "MJLINK_DISCORD_GUILDS",
                guilds.split(',').filter(|s| !s.trim().is_empty()),
            )?;
        }
        if let Some(channels) = env("MJLINK_DISCORD_CHANNELS") {
            self.discord.channels = parse_ids(
                "MJLINK_DISCORD_CHANNELS",
                channels.split(',').filter(|s| !s.trim().is_empty()),
            )?;
        }
        if let Some(direct) = env("MJLINK_DISCORD_DIRECT_MESSAGES") {
            self.discord.direct_messages = parse_bool("MJLINK_DISCORD_DIRECT_MESSAGES", &direct)?;
        }
        if let Some(backfill) = env("MJLINK_DISCORD_BACKFILL_ON_START") {
            self.discord.backfill_on_start = parse_bool("MJLINK_DISCORD_BACKFILL_ON_START", &backfill)?;
        }
        if let Some(enabled) = env("MJLINK_ARCHIVE_ENABLED") {
            self.archive.enabled = parse_bool("MJLINK_ARCHIVE_ENABLED", &enabled)?;
        }
        if let Some(dir) = env("MJLINK_ARCHIVE_DIR") {
            self.archive.dir = PathBuf::from(dir);
        }
        if let Some(concurrency) = env("MJLINK_ARCHIVE_CONCURRENCY") {
            let value = concurrency.trim().parse::<usize>().unwrap_or(0);
            self.archive.concurrency = concurrency_in("MJLINK_ARCHIVE_CONCURRENCY", value)?;
        }
        if let Some(mib) = env("MJLINK_ARCHIVE_MAX_MIB") {
            let value = mib.trim().parse::<u64>().unwrap_or(0);
            self.archive.max_bytes = max_bytes("MJLINK_ARCHIVE_MAX_MIB", value)?;
        }
        if let Some(hosts) = env("MJLINK_ARCHIVE_HOSTS") {
            let hosts = hosts.split(',').map(str::to_string).collect();
            self.archive.hosts = hosts_in("MJLINK_ARCHIVE_HOSTS", hosts)?;
        }
        for (field, variable) in QUEUE_KEYS {
            if let Some(value) = env(variable) {
                self.queue.set(field, variable, &value)?;
            }
        }
        if let Some(enabled) = env("MJLINK_COMMANDS_ENABLED") {
            self.commands.enabled = parse_bool("MJLINK_COMMANDS_ENABLED", &enabled)?;
        }
        if let Some(global) = env("MJLINK_COMMANDS_GLOBAL") {
            self.commands.global = parse_bool("MJLINK_COMMANDS_GLOBAL", &global)?;
        }
        let lists = [
            ("MJLINK_COMMANDS_READ_ROLES", &mut self.commands.read_roles),
            ("MJLINK_COMMANDS_READ_USERS", &mut self.commands.read_users),
            ("MJLINK_COMMANDS_QUEUE_ROLES", &mut self.commands.queue_roles),
            ("MJLINK_COMMANDS_QUEUE_USERS", &mut self.commands.queue_users),
        ];
        for (variable, target) in lists {
            if let Some(ids) = env(variable) {
                *target = parse_ids(variable, ids.split(',').filter(|s| !s.trim().is_empty()))?;
            }
        }
        if let Some(ms) = env("MJLINK_COMMANDS_DEFER_AFTER_MS") {
            let value = ms.trim().parse::<u64>().unwrap_or(u64::MAX);
            self.commands.defer_after_ms = defer_in("MJLINK_COMMANDS_DEFER_AFTER_MS", value)?;
        }
        if let Some(rate) = env("MJLINK_COMMANDS_PER_USER_PER_MINUTE") {
            let value = rate.trim().parse::<u32>().unwrap_or(0);
            self.commands.per_user_per_minute = rate_in("MJLINK_COMMANDS_PER_USER_PER_MINUTE", value)?;
        }
        Ok(())
    }

    pub fn pipeline(&self) -> PipelineConfig {
        PipelineConfig {
            bots: self.bot_ids.clone(),
            window_ms: self.window_ms,
            ..PipelineConfig::default()
        }
    }
}

fn parse_ids<'a>(key: &str, ids: impl Iterator<Item = &'a str>) -> Result<BTreeSet<Snowflake>, ConfigError> {
    let mut set = BTreeSet::new();
    for id in ids {
        let id = id.trim();
        let parsed = Snowflake::parse(id).ok_or_else(|| ConfigError::Invalid {
            key: key.to_string(),
            message: format!("{id:?} is not a Discord id (digits only)"),
        })?;
        set.insert(parsed);
    }
    Ok(set)
}

fn parse_bot_ids<'a>(key: &str, ids: impl Iterator<Item = &'a str>) -> Result<BotIds, ConfigError> {
    let set = parse_ids(key, ids)?;
    if set.is_empty() {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "at least one Midjourney bot id is needed".to_string(),
        });
    }
    Ok(BotIds(set))
}

fn concurrency_in(key: &str, value: usize) -> Result<usize, ConfigError> {
    if (1..=64).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "expected a number of parallel downloads from 1 to 64".to_string(),
        })
    }
}

fn defer_in(key: &str, ms: u64) -> Result<u64, ConfigError> {
    if ms <= 2500 {
        Ok(ms)
    } else {
        Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "expected milliseconds from 0 to 2500 (Discord allows 3 s for the first reply)"
                .to_string(),
        })
    }
}

fn rate_in(key: &str, value: u32) -> Result<u32, ConfigError> {
    if (1..=600).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "expected commands per minute from 1 to 600".to_string(),
        })
    }
}

fn max_bytes(key: &str, mib: u64) -> Result<u64, ConfigError> {
    if (1..=4096).contains(&mib) {
        Ok(mib * 1024 * 1024)
    } else {
        Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "expected a size in MiB from 1 to 4096".to_string(),
        })
    }
}

fn hosts_in(key: &str, hosts: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let hosts: Vec<String> = hosts
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() || hosts.iter().any(|h| h.contains(['/', ':', ' '])) {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "expected host names like cdn.discordapp.com".to_string(),
        });
    }
    Ok(hosts)
}

fn parse_bool(key: &str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(ConfigError::Invalid {
            key: key.to_string(),
            message: format!("expected true or false, got {other:?}"),
        }),
    }
}

/// A token as pasted: surrounding white space and a leading "Bot " are tolerated; anything
/// else that cannot be a token is refused without echoing it.
fn token_from(key: &str, text: &str) -> Result<Secret, ConfigError> {
    let token = text.trim();
    let token = token.strip_prefix("Bot ").unwrap_or(token).trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "the token is empty or contains spaces (it is not shown here)".to_string(),
        });
    }
    Ok(Secret::new(token))
}

/// `https://discord.com`, `http://127.0.0.1:8080`: scheme and authority, no path.
fn api_base(key: &str, text: &str) -> Result<String, ConfigError> {
    let base = text.trim().trim_end_matches('/');
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .ok_or_else(|| ConfigError::Invalid {
            key: key.to_string(),
            message: format!("expected an http:// or https:// URL, got {base:?}"),
        })?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            message: format!("expected scheme and host only, like https://discord.com, got {base:?}"),
        });
    }
    Ok(base.to_string())
}

fn window_ms(key: &str, hours: f64) -> Result<i64, ConfigError> {
    if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 365.0) {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            message: format!("expected hours between 0 and 8760, got {hours}"),
        });
    }
    Ok((hours * 3_600_000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bot.toml");
        std::fs::write(
            &path,
            "[database]\npath = \"x.db\"\n[linking]\nwindow_hours = 2\n[midjourney]\nbot_ids = [\"5\"]\n",
        )
        .unwrap();
        let config = Config::load(Some(&path), no_env).unwrap();
        assert_eq!(config.database_path, PathBuf::from("x.db"));
        assert_eq!(config.window_ms, 2 * 3_600_000);
        assert!(config.bot_ids.0.contains(&Snowflake(5)));

        let config = Config::load(Some(&path), |key| {
            (key == "MJLINK_DATABASE_PATH").then(|| "y.db".to_string())
        })
        .unwrap();
        assert_eq!(config.database_path, PathBuf::from("y.db"));

        std::fs::write(&path, "[archive]\nenabled = false\n").unwrap();
        assert!(!Config::load(Some(&path), no_env).unwrap().archive.enabled);
        let config = Config::load(Some(&path), |key| {
            (key == "MJLINK_ARCHIVE_ENABLED").then(|| "true".to_string())
        })
        .unwrap();
        assert!(config.archive.enabled);
    }

    #[test]
    fn discord_section_and_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bot.toml");
        std::fs::write(
            &path,
            "[discord]\ntoken = \"abc.def\"\napi_base = \"http://127.0.0.1:9/\"\nchannels = [\"7\"]\n",
        )
        .unwrap();
        let config = Config::load(Some(&path), no_env).unwrap();
        assert_eq!(config.discord.api_base, "http://127.0.0.1:9");
        assert_eq!(config.discord.token.as_ref().unwrap().expose(), "abc.def");
        assert!(config.discord.watches(Some(Snowflake(1)), Snowflake(7)));
        assert!(!config.discord.watches(Some(Snowflake(1)), Snowflake(8)));
        assert!(!config.discord.watches(None, Snowflake(7)));
        let shown = format!("{config:?}");
        assert!(!shown.contains("abc.def"), "{shown}");

        let from_env = Config::load(Some(&path), |key| {
            (key == "MJLINK_DISCORD_TOKEN").then(|| "Bot zzz".to_string())
        })
        .unwrap();
        assert_eq!(from_env.discord.token.unwrap().expose(), "zzz");

        std::fs::write(&path, "[discord]\napi_base = \"discord.com\"\n").unwrap();
        let error = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(error.contains("discord.api_base"), "{error}");
        std::fs::write(&path, "[discord]\ntoken = \"has space secret\"\n").unwrap();
        let error = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(
            error.contains("discord.token") && !error.contains("secret"),
            "{error}"
        );
    }

    #[test]
    fn the_example_file_loads_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bot.toml.example");
        let config = Config::load(Some(&path), no_env).unwrap();
        let defaults = Config::default();
        assert_eq!(format!("{:?}", config.queue), format!("{:?}", defaults.queue));
        assert_eq!(format!("{:?}", config.archive), format!("{:?}", defaults.archive));
        assert_eq!(config.commands, defaults.commands);
        assert_eq!(config.log_filter, defaults.log_filter);
    }

    #[test]
    fn queue_section_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bot.toml");
        std::fs::write(
            &path,
            "[queue]\nenabled = true\nuser_token = \"user.secret\"\nguild_id = \"5\"\nchannel_id = \"6\"\nmax_in_flight = 2\nspacing_seconds = 1.5\nrender_timeout_minutes = 4\n",
        )
        .unwrap();
        let config = Config::load(Some(&path), no_env).unwrap();
        assert!(config.queue.enabled);
        assert_eq!(config.queue.max_in_flight, 2);
        assert_eq!(config.queue.spacing_ms, 1500);
        assert_eq!(config.queue.render_timeout_ms, 240_000);
        let target = config.queue.target("http://127.0.0.1:9").unwrap();
        assert_eq!((target.guild_id, target.channel_id), (Snowflake(5), Snowflake(6)));
        assert!(!format!("{config:?}").contains("user.secret"));

        let config = Config::load(Some(&path), |key| {
            (key == "MJLINK_QUEUE_MAX_ATTEMPTS").then(|| "5".to_string())
        })
        .unwrap();
        assert_eq!(config.queue.max_attempts, 5);
        let error = Config::load(Some(&path), |key| {
            (key == "MJLINK_QUEUE_MAX_IN_FLIGHT").then(|| "lots".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("MJLINK_QUEUE_MAX_IN_FLIGHT"), "{error}");
        std::fs::write(&path, "[queue]\nenabled = true\n").unwrap();
        let error = Config::load(Some(&path), no_env)
            .unwrap()
            .queue
            .target("http://x")
            .unwrap_err()
            .to_string();
        assert!(error.contains("queue.user_token"), "{error}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bot.toml");
        std::fs::write(&path, "[linking]\nwindow_hours = -1\n").unwrap();
        let error = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(error.contains("linking.window_hours"), "{error}");

        std::fs::write(&path, "[midjourney]\nbot_ids = [\"abc\"]\n").unwrap();
        let error = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(error.contains("midjourney.bot_ids"), "{error}");

        std::fs::write(&path, "[databse]\npath = 1\n").unwrap();
        let error = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(error.contains("databse"), "{error}");

        std::fs::write(&path, "").unwrap();
        let error = Config::load(Some(&path), |key| {
            (key == "MJLINK_LINKING_WINDOW_HOURS").then(|| "soon".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("MJLINK_LINKING_WINDOW_HOURS"), "{error}");
    }
}
