//! Configuration: one typed struct, built from defaults, then `bot.toml`, then `MJLINK_*`
//! environment variables, then command-line flags; validated before anything runs.
//! Secrets (the Discord token) are never printed: [`Config`]'s `Debug` redacts them.
//!
//! This module holds data only: every key is one row of the table in `keys.rs` (its name in
//! the file, from which its environment variable is derived, and its parser). Each
//! subsystem builds its own options from its section (`PipelineConfig::from_config`,
//! `RunnerOptions::from_config`, `Rest::from_config`...), next to the type it builds; this
//! module depends on nothing of the `mjlink` crate.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use mjlink_core::parse::BotIds;
use mjlink_core::snowflake::Snowflake;

mod keys;
mod notify;
mod values;

pub use keys::{check_environment, env_var};
pub use notify::{NotifyKind, NotifyTarget};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// `at`: where, as ` (line L, column C)` or empty.
    #[error("the config file {path} is not valid TOML{at}: {message}")]
    Syntax {
        path: PathBuf,
        at: String,
        message: String,
    },
    /// A bad value from the environment (`key` is the variable), or a missing one.
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
    /// A bad value, or an unknown key, in the config file; `at` says where (` (line L,
    /// column C)`, or empty when the file does not say).
    #[error("config key `{key}` in {path}{at}: {message}")]
    InFile {
        path: PathBuf,
        key: String,
        at: String,
        message: String,
    },
    /// An `MJLINK_*` variable that names no key (a misspelling would be ignored).
    #[error("the environment variable {name} is not a setting of mjlink{hint}")]
    UnknownVariable { name: String, hint: String },
}

impl ConfigError {
    /// The one-line reason a value needed by a command is missing, naming the key and its
    /// environment variable.
    pub fn missing(key: &str, message: &str) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            message: format!("{message} (set it in bot.toml or {})", env_var(key)),
        }
    }
}

/// Default fallback window (`linking.window_hours`): a parent must be posted at most this
/// long before its child.
pub const DEFAULT_WINDOW_MS: i64 = 6 * 3_600_000;

/// Default `drift.keep_samples`: unknown Midjourney messages kept to become fixtures.
pub const DEFAULT_DRIFT_SAMPLES: usize = 200;

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
    /// A bot that has not connected within this many seconds of its start gives up with the
    /// reason (`discord.connect_timeout_secs`); once connected, outages are retried forever.
    pub connect_timeout_secs: u64,
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
            connect_timeout_secs: 120,
        }
    }
}

impl DiscordConfig {
    /// Whether a message in `channel` of `guild` is watched (a thread's own id is a channel
    /// here; the live bot also watches a thread whose parent is watched).
    pub fn watches(&self, guild: Option<Snowflake>, channel: Snowflake) -> bool {
        self.watches_guild(guild) && (self.channels.is_empty() || self.channels.contains(&channel))
    }

    /// Whether messages of `guild` (`None`: direct messages) may be watched at all.
    pub fn watches_guild(&self, guild: Option<Snowflake>) -> bool {
        match guild {
            None => self.direct_messages,
            Some(guild) => self.guilds.is_empty() || self.guilds.contains(&guild),
        }
    }

    /// The token, or the one-line reason there is none.
    pub fn require_token(&self) -> Result<&Secret, ConfigError> {
        self.token
            .as_ref()
            .ok_or_else(|| ConfigError::missing("discord.token", "a bot token is needed"))
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
    /// Where archived files are kept: `dir` itself, or an S3-compatible bucket (then `dir`
    /// is only the local working folder: staging, the pass lock, thumbnails).
    pub backend: Backend,
    pub s3: S3Config,
}

/// `archive.backend`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// The folder `archive.dir`.
    #[default]
    Fs,
    /// An S3-compatible bucket (`archive.s3_*`).
    S3,
}

/// The bucket of `archive.backend = "s3"`. The keys are secrets: `Debug` never shows them.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    /// `https://...` of an S3-compatible store (R2, MinIO, Garage...); none: AWS.
    pub endpoint: Option<String>,
    pub region: String,
    /// Prepended to every key: empty, or folders ending in `/`.
    pub prefix: String,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    /// `https://bucket.host/key` instead of `https://host/bucket/key`.
    pub virtual_hosted: bool,
    /// Files larger than this go up in parts of this size (multipart upload).
    pub part_bytes: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            endpoint: None,
            region: "us-east-1".to_string(),
            prefix: String::new(),
            access_key_id: None,
            secret_access_key: None,
            virtual_hosted: false,
            part_bytes: 8 << 20,
        }
    }
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
            backend: Backend::Fs,
            s3: S3Config::default(),
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

/// The effective configuration.
#[derive(Clone)]
pub struct Config {
    pub database_path: PathBuf,
    pub bot_ids: BotIds,
    pub window_ms: i64,
    pub log_filter: String,
    /// Format drift: how many unknown Midjourney messages are kept as samples.
    pub drift_keep_samples: usize,
    pub discord: DiscordConfig,
    pub archive: ArchiveConfig,
    pub queue: QueueConfig,
    pub commands: mjlink_core::access::AccessConfig,
    pub web: WebConfig,
    /// `[[notify]]`: where notifications go (none by default).
    pub notify: Vec<NotifyTarget>,
}

/// The web gallery (`mjlink serve`).
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// `mjlink run` serves the web gallery too (`mjlink serve` always does).
    pub enabled: bool,
    /// The address and port to listen on (`127.0.0.1:8080`).
    pub bind: String,
    /// Required for writes, and to listen on anything but a loopback address.
    pub token: Option<Secret>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: false,
            bind: "127.0.0.1:8080".to_string(),
            token: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_path", &self.database_path)
            .field("bot_ids", &self.bot_ids)
            .field("window_ms", &self.window_ms)
            .field("log_filter", &self.log_filter)
            .field("drift_keep_samples", &self.drift_keep_samples)
            .field("discord", &self.discord)
            .field("archive", &self.archive)
            .field("queue", &self.queue)
            .field("commands", &self.commands)
            .field("web", &self.web)
            .field("notify", &self.notify)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_path: PathBuf::from("mjlink.db"),
            bot_ids: BotIds::default(),
            window_ms: DEFAULT_WINDOW_MS,
            log_filter: "warn,serenity=error,mjlink=info".to_string(),
            drift_keep_samples: DEFAULT_DRIFT_SAMPLES,
            discord: DiscordConfig::default(),
            archive: ArchiveConfig::default(),
            queue: QueueConfig::default(),
            commands: Default::default(),
            web: WebConfig::default(),
            notify: Vec::new(),
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
            keys::apply_file(&mut config, &path, &text)?;
            // Relative paths (set in the file or left at their defaults) are read from the
            // file's folder, whatever the working directory; the environment and flags are
            // read from the working directory.
            if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
                for relative in [&mut config.database_path, &mut config.archive.dir] {
                    if relative.is_relative() {
                        *relative = folder.join(&*relative);
                    }
                }
            }
        }
        keys::apply_env(&mut config, &env)?;
        notify::apply_env(&mut config.notify, &env)?;
        notify::check(&config.notify)?;
        Ok(config)
    }
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
        // Relative to the file's folder.
        assert_eq!(config.database_path, dir.path().join("x.db"));
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
        let mut defaults = Config::default();
        // Relative paths are read from the file's folder.
        defaults.archive.dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(&defaults.archive.dir);
        assert_eq!(
            config.database_path,
            Path::new(env!("CARGO_MANIFEST_DIR")).join("mjlink.db")
        );
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
        assert_eq!(
            (config.queue.guild_id, config.queue.channel_id),
            (Some(Snowflake(5)), Some(Snowflake(6)))
        );
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

        // A wrong type names the key, with its line and column.
        std::fs::write(&path, "# bot\n[archive]\nenabled = true\ndir = 5\n").unwrap();
        let error = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(error.contains("`archive.dir`"), "{error}");
        assert!(error.contains("line 4, column 7"), "{error}");
        std::fs::write(&path, "[archive]\ndri = \"x\"\n").unwrap();
        let error = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(error.contains("line 2, column 1"), "{error}");
        std::fs::write(&path, "[database]\npath = \n").unwrap();
        let error = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(
            error.contains("line 2, column 8") && !error.contains("byte"),
            "{error}"
        );

        std::fs::write(&path, "").unwrap();
        let error = Config::load(Some(&path), |key| {
            (key == "MJLINK_LINKING_WINDOW_HOURS").then(|| "soon".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("MJLINK_LINKING_WINDOW_HOURS"), "{error}");
    }

    #[test]
    fn an_unknown_mjlink_variable_is_refused_with_the_nearest_name() {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect::<Vec<_>>();
        assert!(check_environment(names(&["PATH", "MJLINK_DATABASE_PATH", "MJLINK_LOG_FILTER"])).is_ok());
        let error = check_environment(names(&["MJLINK_DATABSE_PATH"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("MJLINK_DATABSE_PATH"), "{error}");
        assert!(error.contains("did you mean MJLINK_DATABASE_PATH?"), "{error}");
        let error = check_environment(names(&["MJLINK_FROBNICATE"]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("MJLINK_FROBNICATE") && !error.contains("did you mean"),
            "{error}"
        );
    }
}
