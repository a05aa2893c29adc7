//! `mjlink doctor`: checks what a first start needs and says what is wrong, one line each.

use std::path::Path;

use crate::config::Config;
use crate::queue::submit::DiscordTarget;
use crate::rest::{Rest, RestError, RetryPolicy};
use crate::store::Store;

/// One check's verdict.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

fn verdict(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok,
        detail: detail.into(),
    }
}

/// The archive folder exists and takes files, or can be created.
fn archive_check(dir: &Path) -> Check {
    if dir.is_dir() {
        let probe = dir.join(".mjlink-doctor");
        return match std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)) {
            Ok(()) => verdict("archive", true, format!("{} is writable", dir.display())),
            Err(error) => verdict(
                "archive",
                false,
                format!("{} is not writable: {error}", dir.display()),
            ),
        };
    }
    if dir.exists() {
        return verdict(
            "archive",
            false,
            format!("{} exists but is not a folder", dir.display()),
        );
    }
    creatable("archive", dir)
}

/// The archive bucket (`archive.backend = "s3"`): set up, reachable with the credentials, and
/// writable (a probe object written and removed), and how many uploads wait to be resumed.
async fn bucket_check(config: &Config) -> Check {
    let backend = match crate::archive::backend::Backend::from_config(&config.archive) {
        Ok(backend) => backend,
        Err(error) => return verdict("bucket", false, error.to_string()),
    };
    let Some(bucket) = backend.bucket() else {
        return verdict("bucket", false, "archive.backend is not s3");
    };
    if let Err(error) = bucket.probe().await {
        return verdict("bucket", false, error);
    }
    let waiting = Store::open_as(&config.database_path, crate::store::OpenMode::ReadOnly)
        .and_then(|store| store.uploads_in_progress())
        .unwrap_or(0);
    let resumed = match waiting {
        0 => String::new(),
        n => format!("; {n} upload(s) cut short resume at the next archive pass"),
    };
    verdict("bucket", true, format!("{} is writable{resumed}", bucket.shown()))
}

/// A file or folder that does not exist yet can be created: its nearest existing ancestor
/// is a folder in which a folder can really be made (tried, then removed).
fn creatable(name: &'static str, path: &Path) -> Check {
    let mut parent = path.parent();
    while let Some(folder) = parent {
        let folder = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        if std::fs::symlink_metadata(folder).is_err() && !folder.exists() {
            parent = folder.parent();
            continue;
        }
        if !folder.is_dir() {
            return verdict(
                name,
                false,
                format!(
                    "{} cannot be created: {} is not a folder",
                    path.display(),
                    folder.display()
                ),
            );
        }
        let probe = folder.join(format!(".mjlink-doctor-{}", std::process::id()));
        return match std::fs::create_dir(&probe).and_then(|()| std::fs::remove_dir(&probe)) {
            Ok(()) => verdict(
                name,
                true,
                format!("{} will be created on first use", path.display()),
            ),
            Err(error) => verdict(
                name,
                false,
                format!(
                    "{} cannot be created: {} does not take new files: {error}",
                    path.display(),
                    folder.display()
                ),
            ),
        };
    }
    verdict(name, false, format!("{} cannot be created", path.display()))
}

/// Format drift: how many Midjourney messages mjlink could not read, by day. Informative
/// (never a failure): the log warns when a day's count jumps.
fn drift_check(store: &Store) -> Check {
    match crate::ingest::drift::describe(store, 3) {
        Ok(line) if line == "0" => verdict("formats", true, "every Midjourney message stored is of a known kind"),
        Ok(line) => verdict(
            "formats",
            true,
            format!("Midjourney messages of no known kind: {line} (samples: mjlink messages --kind unknown --raw)"),
        ),
        Err(error) => verdict("formats", false, error.to_string()),
    }
}

/// Notifications: the targets, and the outbox; a dead letter (a notification given up) is a
/// failure to look at.
fn notify_check(config: &Config, store: Option<&Store>) -> Check {
    let names: Vec<&str> = config.notify.iter().map(|target| target.name.as_str()).collect();
    let targets = match names.is_empty() {
        true => "no [[notify]] targets".to_string(),
        false => format!("targets {}", names.join(", ")),
    };
    let Some(store) = store else {
        return verdict("notify", true, targets);
    };
    match store
        .notify_counts()
        .and_then(|counts| Ok((counts, store.notify_dead_letters(5)?)))
    {
        // Nothing was ever enqueued: nothing to say of the outbox.
        Ok((counts, _)) if counts == crate::store::OutboxCounts::default() => {
            verdict("notify", true, targets)
        }
        Ok((counts, dead)) => {
            let mut detail = format!(
                "{targets}; {}",
                crate::commands::answers::notifications_line(&counts, &dead)
            );
            for letter in &dead {
                detail.push_str(&format!(
                    "; dead letter {} {} {} ({} attempts): {}",
                    letter.target,
                    letter.event,
                    letter.key,
                    letter.attempts,
                    mjlink_core::text::for_terminal(
                        letter.last_error.as_deref().unwrap_or("no reason recorded")
                    )
                ));
            }
            verdict("notify", counts.dead == 0, detail)
        }
        Err(error) => verdict("notify", false, error.to_string()),
    }
}

/// The prompt queue: off, or on with everything submitting needs.
fn queue_check(config: &Config) -> Check {
    if !config.queue.enabled {
        return verdict(
            "queue",
            true,
            "off (mjlink watches, links and archives; it submits nothing)",
        );
    }
    match DiscordTarget::from_config(&config.queue, &config.discord.api_base) {
        Ok(target) => verdict(
            "queue",
            true,
            format!(
                "on: submits as a user account in channel {} (this breaks Discord's terms; see the README)",
                target.channel_id
            ),
        ),
        Err(error) => verdict("queue", false, error.to_string()),
    }
}

/// Runs every check; never fails itself.
pub async fn check(config: &Config, config_file: Option<&Path>) -> Vec<Check> {
    let mut checks = Vec::new();
    let source = match config_file {
        Some(path) => format!("loaded from {}", path.display()),
        None if Path::new(crate::config::DEFAULT_CONFIG_FILE).is_file() => {
            "loaded from ./bot.toml".to_string()
        }
        None => "defaults and MJLINK_* environment (no bot.toml)".to_string(),
    };
    checks.push(verdict("config", true, source));

    let database = &config.database_path;
    if database.exists() {
        match Store::open(database)
            .and_then(|store| Ok((store.schema_version()?, store.quick_check()?, store)))
        {
            Ok((version, integrity, store)) if integrity == "ok" => {
                checks.push(verdict(
                    "database",
                    true,
                    format!("{} (schema version {version}, integrity ok)", database.display()),
                ));
                checks.push(drift_check(&store));
                checks.push(notify_check(config, Some(&store)));
            }
            Ok((_, integrity, _)) => checks.push(verdict(
                "database",
                false,
                format!("{} fails its integrity check: {integrity}", database.display()),
            )),
            Err(error) => checks.push(verdict("database", false, error.to_string())),
        }
    } else {
        checks.push(creatable("database", database));
        checks.push(notify_check(config, None));
    }

    checks.push(archive_check(&config.archive.dir));
    if config.archive.backend == crate::config::Backend::S3 {
        checks.push(bucket_check(config).await);
    }
    checks.push(queue_check(config));

    let token = match config.discord.require_token() {
        Ok(token) => {
            checks.push(verdict("token", true, "set (not shown)"));
            Some(token.clone())
        }
        Err(error) => {
            checks.push(verdict("token", false, error.to_string()));
            None
        }
    };

    let base = &config.discord.api_base;
    let rest = Rest::new(
        base,
        token
            .clone()
            .unwrap_or_else(|| crate::config::Secret::new("none")),
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        },
    );
    match rest {
        Err(error) => checks.push(verdict("api", false, error.to_string())),
        Ok(rest) => {
            match rest.gateway_url().await {
                Ok(url) => checks.push(verdict("api", true, format!("{base} answers; gateway at {url}"))),
                Err(error) => checks.push(verdict("api", false, error.to_string())),
            }
            if token.is_some() {
                match rest.current_user().await {
                    Ok(name) => checks.push(verdict("login", true, format!("the token belongs to {name}"))),
                    Err(RestError::Unauthorized) => checks.push(verdict(
                        "login",
                        false,
                        "Discord rejects the token: copy it again from the Developer Portal (Bot -> Reset Token)",
                    )),
                    Err(error) => checks.push(verdict("login", false, error.to_string())),
                }
            }
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_check_says_what_is_missing() {
        let mut config = Config::default();
        assert!(queue_check(&config).ok);
        config.queue.enabled = true;
        let check = queue_check(&config);
        assert!(!check.ok);
        assert!(check.detail.contains("queue.user_token"), "{}", check.detail);
        config.queue.user_token = Some(crate::config::Secret::new("user.secret"));
        config.queue.guild_id = Some(mjlink_core::snowflake::Snowflake(5));
        config.queue.channel_id = Some(mjlink_core::snowflake::Snowflake(6));
        let check = queue_check(&config);
        assert!(check.ok && check.detail.contains("channel 6"), "{}", check.detail);
        assert!(!check.detail.contains("user.secret"));
    }

    #[test]
    fn the_formats_check_counts_what_mjlink_could_not_read() {
        let store = Store::open_in_memory().unwrap();
        let check = drift_check(&store);
        assert!(
            check.ok && check.detail.contains("known kind"),
            "{}",
            check.detail
        );
        // 2024-10-04: a Midjourney payload that did not decode.
        store
            .note_undecodable(1, mjlink_core::snowflake::Snowflake(1), 20_000)
            .unwrap();
        let check = drift_check(&store);
        assert!(check.ok, "informative, not a failure");
        assert!(
            check.detail.contains("1 (1 did not decode) by day: 2024-10-04 1"),
            "{}",
            check.detail
        );
    }
}
