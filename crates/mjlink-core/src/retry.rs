//! What a failed archive download means for its image: tried again later (and when), or
//! given up as `failed`.
//!
//! Transient failures are never permanent. A cause on this side (the disk is full, permission
//! denied, the archive folder cannot be made) or a temporary one (429, 5xx, a timeout, a stall,
//! a slow or cut body, a link that could not be refreshed yet) keeps the image pending, with a
//! next-try time that grows with its attempts (a `Retry-After` is honoured). Only a permanent
//! answer about the image itself (gone after its link was refreshed, not an image, over the
//! size cap, a host outside the allowlist, a refused request) makes it `failed`, and
//! `mjlink archive --retry-failed` puts those back on request.

/// Why a download failed, as far as the decision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Writing on this side failed: disk full, permission denied, a folder that cannot be made.
    Local,
    /// 429; with the server's `Retry-After` in milliseconds when it gave one.
    RateLimited { retry_after_ms: Option<i64> },
    /// A 5xx or 408, a connection error, a timeout, a stall, a body too slow or cut short.
    Temporary,
    /// 403/404/410 and no fresh link could be had (no token, or the refresh failed).
    LinkExpired,
    /// 403/404/410 from a freshly refreshed link, or the message no longer has the attachment.
    Gone,
    /// The bytes are not an image or video.
    NotAnImage,
    /// Larger than the size cap.
    TooLarge,
    /// The link (or a redirect) points outside the allowed hosts, or is not a URL.
    BadLink,
    /// Another 4xx answer about this file.
    Refused,
}

impl Failure {
    /// A permanent answer about the image itself: trying again unasked cannot help.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            Failure::Gone | Failure::NotAnImage | Failure::TooLarge | Failure::BadLink | Failure::Refused
        )
    }
}

/// What becomes of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Given up (`failed`) until asked to retry.
    Failed,
    /// Still pending; not tried again before this time (Unix milliseconds).
    RetryAt(i64),
}

/// How long transient failures wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; doubled after each further one.
    pub first_wait_ms: i64,
    /// The longest wait between tries (a `Retry-After` may ask for more, up to `max_retry_after_ms`).
    pub max_wait_ms: i64,
    /// The longest `Retry-After` honoured.
    pub max_retry_after_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_wait_ms: 60_000,
            max_wait_ms: 6 * 3_600_000,
            max_retry_after_ms: 24 * 3_600_000,
        }
    }
}

/// The wait before try number `attempts + 1`, after `attempts` failed ones (at least 1).
pub fn backoff_ms(attempts: i64, policy: &RetryPolicy) -> i64 {
    let doublings = attempts.saturating_sub(1).clamp(0, 40) as u32;
    policy
        .first_wait_ms
        .max(0)
        .saturating_mul(1i64 << doublings.min(62))
        .min(policy.max_wait_ms.max(0))
}

/// The verdict on an image whose download just failed with `failure`, `attempts` being its
/// failed attempts including this one, at `now_ms`.
pub fn after_failure(failure: Failure, attempts: i64, now_ms: i64, policy: &RetryPolicy) -> Verdict {
    if failure.is_permanent() {
        return Verdict::Failed;
    }
    let wait = match failure {
        Failure::RateLimited {
            retry_after_ms: Some(asked),
        } => asked.clamp(0, policy.max_retry_after_ms.max(0)),
        _ => backoff_ms(attempts, policy),
    };
    Verdict::RetryAt(now_ms.saturating_add(wait))
}

/// How long the live bot's relay waits before its next attempt to reach the gateway, after
/// `failures` attempts in a row failed: 1 s, doubling, at most 10 s (serenity restarts a shard
/// that has no HELLO within 15 s; its shard queue adds about 5 s between attempts). No wait
/// before the first attempt or after a success.
pub fn reconnect_wait_secs(failures: u32) -> u64 {
    match failures {
        0 => 0,
        n => (1u64 << (n - 1).min(4)).min(10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn local_and_temporary_failures_stay_pending_whatever_the_attempts() {
        let policy = RetryPolicy::default();
        for failure in [
            Failure::Local,
            Failure::Temporary,
            Failure::LinkExpired,
            Failure::RateLimited { retry_after_ms: None },
        ] {
            for attempts in [1, 5, 50, i64::MAX] {
                assert!(
                    matches!(after_failure(failure, attempts, NOW, &policy), Verdict::RetryAt(at) if at > NOW),
                    "{failure:?} after {attempts}"
                );
            }
        }
    }

    #[test]
    fn permanent_answers_about_the_image_fail() {
        let policy = RetryPolicy::default();
        for failure in [
            Failure::Gone,
            Failure::NotAnImage,
            Failure::TooLarge,
            Failure::BadLink,
            Failure::Refused,
        ] {
            assert_eq!(
                after_failure(failure, 1, NOW, &policy),
                Verdict::Failed,
                "{failure:?}"
            );
        }
    }

    #[test]
    fn the_wait_doubles_up_to_its_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(backoff_ms(1, &policy), 60_000);
        assert_eq!(backoff_ms(2, &policy), 120_000);
        assert_eq!(backoff_ms(3, &policy), 240_000);
        assert_eq!(backoff_ms(30, &policy), policy.max_wait_ms);
        assert_eq!(backoff_ms(i64::MAX, &policy), policy.max_wait_ms);
        assert_eq!(backoff_ms(0, &policy), 60_000);
        assert_eq!(
            after_failure(Failure::Local, 2, NOW, &policy),
            Verdict::RetryAt(NOW + 120_000)
        );
    }

    #[test]
    fn retry_after_is_honoured_and_bounded() {
        let policy = RetryPolicy::default();
        let limited = |ms| Failure::RateLimited {
            retry_after_ms: Some(ms),
        };
        assert_eq!(
            after_failure(limited(3_600_000), 1, NOW, &policy),
            Verdict::RetryAt(NOW + 3_600_000)
        );
        // Short waits are the server's to ask for; absurd ones are capped.
        assert_eq!(
            after_failure(limited(5_000), 1, NOW, &policy),
            Verdict::RetryAt(NOW + 5_000)
        );
        assert_eq!(
            after_failure(limited(i64::MAX), 1, NOW, &policy),
            Verdict::RetryAt(NOW + policy.max_retry_after_ms)
        );
        assert_eq!(after_failure(limited(-5), 1, NOW, &policy), Verdict::RetryAt(NOW));
        assert_eq!(
            after_failure(Failure::Temporary, 1, i64::MAX, &policy),
            Verdict::RetryAt(i64::MAX)
        );
    }

    #[test]
    fn the_relay_waits_longer_after_each_failure_in_a_row_up_to_ten_seconds() {
        let waits: Vec<u64> = (0..8).map(reconnect_wait_secs).collect();
        assert_eq!(waits, vec![0, 1, 2, 4, 8, 10, 10, 10]);
        assert_eq!(reconnect_wait_secs(u32::MAX), 10);
    }
}
