//! Configuration: one typed struct, built from defaults, then `bot.toml`, then `MJLINK_*`
//! environment variables, then command-line flags; validated before anything runs.
//! Secrets (the Discord token) are never printed: [`Config`]'s `Debug` redacts them.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::parse::BotIds;
use crate::pipeline::{PipelineConfig, DEFAULT_WINDOW_MS};
use crate::snowflake::Snowflake;

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

/// The effective configuration.
#[derive(Clone)]
pub struct Config {
    pub database_path: PathBuf,
    pub bot_ids: BotIds,
    pub window_ms: i64,
    pub log_filter: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_path", &self.database_path)
            .field("bot_ids", &self.bot_ids)
            .field("window_ms", &self.window_ms)
            .field("log_filter", &self.log_filter)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_path: PathBuf::from("mjlink.db"),
            bot_ids: BotIds::default(),
            window_ms: DEFAULT_WINDOW_MS,
            log_filter: "info".to_string(),
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

fn parse_bot_ids<'a>(key: &str, ids: impl Iterator<Item = &'a str>) -> Result<BotIds, ConfigError> {
    let mut set = BTreeSet::new();
    for id in ids {
        let id = id.trim();
        let parsed = Snowflake::parse(id).ok_or_else(|| ConfigError::Invalid {
            key: key.to_string(),
            message: format!("{id:?} is not a Discord id (digits only)"),
        })?;
        set.insert(parsed);
    }
    if set.is_empty() {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "at least one Midjourney bot id is needed".to_string(),
        });
    }
    Ok(BotIds(set))
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
