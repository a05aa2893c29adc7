//! Discord ids as the simulation mints them. Deliberately its own small type, not mjlink's:
//! this crate depends on no mjlink crate, so what it produces is independent of the code
//! under test.

use std::fmt;

/// Milliseconds between the Unix epoch and Discord's epoch (2015-01-01T00:00:00Z).
pub const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

/// A Discord id minted by the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Snowflake(pub u64);

impl Snowflake {
    /// Unix milliseconds at which the id was minted.
    pub fn timestamp_ms(self) -> i64 {
        ((self.0 >> 22) as i64).saturating_add(DISCORD_EPOCH_MS)
    }

    /// The smallest id minted at `unix_ms`.
    pub fn from_timestamp_ms(unix_ms: i64) -> Self {
        let since_epoch = unix_ms.saturating_sub(DISCORD_EPOCH_MS).max(0) as u64;
        Snowflake(since_epoch << 22)
    }

    /// A decimal id; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse::<u64>().ok().map(Snowflake)
    }
}

impl fmt::Display for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
