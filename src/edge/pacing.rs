//! Retry pacing of the edge's DCS loops (pure): how soon a loop that failed tries again, from the cluster's timing.
//! A failed attempt waits at least the cluster's `loop_wait` (never below [`MIN_RETRY`]), doubling up to the leader
//! TTL: the edge must notice a returning DCS within about a TTL, and must not hammer one that is gone.

use std::time::Duration;

use crate::cluster::model::DynamicConfig;
use crate::retry::Backoff;

/// No loop of the edge asks the same thing again sooner than this after a failure.
pub const MIN_RETRY: Duration = Duration::from_millis(100);

/// (base, cap) of the retry delay for the cluster timing `config`.
pub fn retry_bounds(config: &DynamicConfig) -> (Duration, Duration) {
    let base = Duration::from_millis(config.loop_wait_ms).max(MIN_RETRY);
    let cap = Duration::from_millis(config.ttl_ms).max(base);
    (base, cap)
}

/// A backoff paced by `config` (the default configuration until the edge has read the cluster's).
pub fn backoff(config: &DynamicConfig) -> Backoff {
    let (base, cap) = retry_bounds(config);
    Backoff::new(base, cap)
}

/// Follows a configuration change (keeps the failure count).
pub fn retune(backoff: &mut Backoff, config: &DynamicConfig) {
    let (base, cap) = retry_bounds(config);
    backoff.set_base(base, cap);
}

/// How the follower goes on after a watch session ended (compaction, lag behind the cluster, or the watch gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Re-read at once: the session had proven the view current, so this is a new problem, and a quick re-read
    /// keeps the view fresh.
    AtOnce,
    /// Re-read after the backoff delay: the session never proved anything, so re-reading at once could loop.
    AfterDelay,
}

/// The follower's rule after a session (pure).
pub fn resume_after_session(confirmed_in_session: bool) -> Resume {
    if confirmed_in_session {
        Resume::AtOnce
    } else {
        Resume::AfterDelay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(loop_wait_ms: u64, ttl_ms: u64) -> DynamicConfig {
        DynamicConfig {
            loop_wait_ms,
            ttl_ms,
            ..DynamicConfig::default()
        }
    }

    #[test]
    fn bounds_follow_the_cluster_timing() {
        let ms = Duration::from_millis;
        let cases = [
            ("defaults", config(250, 2000), (ms(250), ms(2000))),
            (
                "short loop_wait is raised to the minimum",
                config(50, 400),
                (ms(100), ms(400)),
            ),
            ("a ttl below the base is the base", config(250, 100), (ms(250), ms(250))),
            ("slow cluster", config(1000, 10_000), (ms(1000), ms(10_000))),
        ];
        for (what, c, want) in cases {
            assert_eq!(retry_bounds(&c), want, "{what}");
        }
    }

    #[test]
    fn backoff_doubles_from_loop_wait_to_ttl() {
        let ms = Duration::from_millis;
        let mut b = backoff(&config(250, 2000));
        let mut seen = Vec::new();
        for _ in 0..5 {
            b.failed();
            seen.push(b.delay());
        }
        assert_eq!(seen, [250, 500, 1000, 2000, 2000].map(ms));
        retune(&mut b, &config(100, 400));
        assert_eq!(b.delay(), ms(400), "the failure count survives a config change");
    }

    #[test]
    fn only_a_session_that_proved_nothing_is_delayed() {
        assert_eq!(resume_after_session(true), Resume::AtOnce);
        assert_eq!(resume_after_session(false), Resume::AfterDelay);
    }
}
