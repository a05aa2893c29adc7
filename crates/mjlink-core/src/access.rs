//! Who may use which command, and how often: pure, with the time passed in.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::snowflake::Snowflake;

/// The `[commands]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// Register and answer the slash commands while the bot runs.
    pub enabled: bool,
    /// Register the commands globally instead of per guild.
    pub global: bool,
    /// May read (`/lineage`, `/search`, `/stats`, `/export`); both empty: everyone.
    pub read_roles: BTreeSet<Snowflake>,
    pub read_users: BTreeSet<Snowflake>,
    /// May drive the queue (`/queue`); both empty: nobody.
    pub queue_roles: BTreeSet<Snowflake>,
    pub queue_users: BTreeSet<Snowflake>,
    /// Commands per user per minute.
    pub per_user_per_minute: u32,
    /// Answers that take longer than this are deferred ("thinking...", then the answer):
    /// Discord allows 3 s for the first reply. 0: always defer.
    pub defer_after_ms: u64,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            enabled: true,
            global: false,
            read_roles: BTreeSet::new(),
            read_users: BTreeSet::new(),
            queue_roles: BTreeSet::new(),
            queue_users: BTreeSet::new(),
            per_user_per_minute: 10,
            defer_after_ms: 1500,
        }
    }
}

/// What a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    QueueControl,
}

/// Whether `user` with `roles` may do `need`; `Err` is the one sentence to answer.
pub fn allowed(
    config: &AccessConfig,
    need: Need,
    user: Snowflake,
    roles: &[Snowflake],
) -> Result<(), String> {
    let member_of = |allowed_roles: &BTreeSet<Snowflake>, allowed_users: &BTreeSet<Snowflake>| {
        allowed_users.contains(&user) || roles.iter().any(|role| allowed_roles.contains(role))
    };
    match need {
        Need::Read => {
            if config.read_roles.is_empty() && config.read_users.is_empty()
                || member_of(&config.read_roles, &config.read_users)
            {
                Ok(())
            } else {
                Err("You are not allowed to use mjlink's commands here (ask for a role in commands.read_roles).".to_string())
            }
        }
        Need::QueueControl => {
            if member_of(&config.queue_roles, &config.queue_users) {
                Ok(())
            } else {
                Err("Only the roles or users in commands.queue_roles / commands.queue_users may drive the queue.".to_string())
            }
        }
    }
}

/// A sliding window of the last minute per user.
#[derive(Debug, Default)]
pub struct RateLimiter {
    hits: HashMap<Snowflake, VecDeque<i64>>,
}

impl RateLimiter {
    /// Counts a command of `user` at `now_ms`; `Err` says how long to wait.
    pub fn check(&mut self, user: Snowflake, now_ms: i64, per_minute: u32) -> Result<(), String> {
        let hits = self.hits.entry(user).or_default();
        while hits.front().is_some_and(|at| now_ms - at >= 60_000) {
            hits.pop_front();
        }
        if hits.len() >= per_minute as usize {
            let wait_s = hits
                .front()
                .map_or(60, |first| (60_000 - (now_ms - first)).max(1000) / 1000);
            return Err(format!(
                "You are going too fast: {per_minute} commands a minute at most. Try again in {wait_s} s."
            ));
        }
        hits.push_back(now_ms);
        // Forget users who have been quiet, so the map does not grow without bound.
        if self.hits.len() > 10_000 {
            self.hits
                .retain(|_, hits| hits.back().is_some_and(|at| now_ms - at < 60_000));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_is_open_by_default_and_queue_control_closed() {
        let config = AccessConfig::default();
        assert!(allowed(&config, Need::Read, Snowflake(1), &[]).is_ok());
        assert!(allowed(&config, Need::QueueControl, Snowflake(1), &[]).is_err());
        let config = AccessConfig {
            read_roles: [Snowflake(7)].into(),
            queue_users: [Snowflake(2)].into(),
            queue_roles: [Snowflake(9)].into(),
            ..AccessConfig::default()
        };
        assert!(allowed(&config, Need::Read, Snowflake(1), &[]).is_err());
        assert!(allowed(&config, Need::Read, Snowflake(1), &[Snowflake(7)]).is_ok());
        assert!(allowed(&config, Need::QueueControl, Snowflake(2), &[]).is_ok());
        assert!(allowed(&config, Need::QueueControl, Snowflake(3), &[Snowflake(9)]).is_ok());
        assert!(allowed(&config, Need::QueueControl, Snowflake(3), &[Snowflake(7)]).is_err());
    }

    #[test]
    fn the_rate_limit_slides() {
        let mut limiter = RateLimiter::default();
        for n in 0..3 {
            assert!(limiter.check(Snowflake(1), n * 1000, 3).is_ok());
        }
        let refused = limiter.check(Snowflake(1), 3000, 3).unwrap_err();
        assert!(refused.contains("Try again in 57 s"), "{refused}");
        assert!(limiter.check(Snowflake(2), 3000, 3).is_ok(), "per user");
        assert!(
            limiter.check(Snowflake(1), 60_000, 3).is_ok(),
            "the first hit left the window"
        );
    }
}
