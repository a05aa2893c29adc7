//! Simulations for tests, benchmarks and `mjlink demo`: a fake Discord on 127.0.0.1
//! ([`discord`]), a simulated Midjourney that answers interactions on it ([`midjourney`]),
//! the real PNG files it serves as generated images ([`png`]), and a generator of realistic
//! gateway traffic with its ground truth ([`tracegen`]).
//!
//! Test doubles: nothing here talks to the real Discord or Midjourney.
//!
//! **Architecture Invariant:** this crate depends on no mjlink crate. Its model of
//! Midjourney's formats comes from `shared/docs/midjourney-on-discord.md`, never from the
//! parser, so tests that check mjlink against what it produces are independent of the code
//! under test (the compiler enforces the absence of the dependency).

pub mod discord;
pub mod midjourney;
pub mod png;
pub mod snowflake;
pub mod tracegen;

pub use snowflake::Snowflake;
