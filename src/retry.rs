//! Pacing and logging of loops that can fail over and over (invariant 7): a failure waits at least the loop's period,
//! doubling up to a cap, and a repeated failure is logged once when it starts or changes, then once when it clears
//! (with the count), never once per attempt.

use std::time::Duration;

/// The delay before the next attempt of a loop after failures: `base` after a success, `base * 2^(n-1)` (capped)
/// after `n` failures in a row.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff that never waits less than `base` nor more than `cap` (a cap below `base` counts as `base`).
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// The loop's period changed (dynamic configuration); the failure count is kept.
    pub fn set_base(&mut self, base: Duration, cap: Duration) {
        self.base = base;
        self.cap = cap.max(base);
    }

    /// One more failure in a row.
    pub fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// A success: the next delay is `base` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How long to wait before the next attempt.
    pub fn delay(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }
}

/// What a [`FailureLog`] says should be logged now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogNow {
    /// A new failure (first, or of another kind than the one before): log it.
    Failing { message: String, repeats_before: u64 },
    /// The failure cleared after `count` attempts in a row: log that once.
    Recovered { last: String, count: u64 },
    /// Nothing to log (a repeat, or a success after a success).
    Quiet,
}

/// Remembers the failure a loop is in, so each state change is logged once.
#[derive(Debug, Default, Clone)]
pub struct FailureLog {
    kind: Option<String>,
    message: String,
    count: u64,
}

impl FailureLog {
    /// A failure of `kind` (stable text: what failed, without changing numbers) described by `message`.
    pub fn failed(&mut self, kind: &str, message: &str) -> LogNow {
        if self.kind.as_deref() == Some(kind) {
            self.count += 1;
            self.message = message.to_string();
            return LogNow::Quiet;
        }
        let repeats_before = std::mem::replace(&mut self.count, 1);
        self.kind = Some(kind.to_string());
        self.message = message.to_string();
        LogNow::Failing {
            message: message.to_string(),
            repeats_before,
        }
    }

    /// A success: reports the end of a failure once.
    pub fn succeeded(&mut self) -> LogNow {
        match self.kind.take() {
            Some(_) => LogNow::Recovered {
                last: std::mem::take(&mut self.message),
                count: std::mem::take(&mut self.count),
            },
            None => LogNow::Quiet,
        }
    }

    /// Whether the loop is currently failing.
    pub fn failing(&self) -> bool {
        self.kind.is_some()
    }
}

/// Logs what a [`FailureLog`] decided, at warn level, under `what` (e.g. "HA loop").
pub fn log_transition(what: &str, now: LogNow) {
    match now {
        LogNow::Failing {
            message,
            repeats_before,
        } if repeats_before > 1 => {
            tracing::warn!(
                event = "failing",
                repeats_before,
                "{what}: {message} (the previous failure repeated {repeats_before} times; repeats are not logged)"
            )
        }
        LogNow::Failing { message, .. } => {
            tracing::warn!(
                event = "failing",
                "{what}: {message} (repeats are not logged until it changes)"
            )
        }
        LogNow::Recovered { last, count } => {
            tracing::info!(
                event = "recovered",
                count,
                "{what}: working again after {count} failed attempts (last: {last})"
            )
        }
        LogNow::Quiet => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_base_to_cap() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(250), ms(2000));
        let mut seen = vec![b.delay()];
        for _ in 0..6 {
            b.failed();
            seen.push(b.delay());
        }
        assert_eq!(seen, [250, 250, 500, 1000, 2000, 2000, 2000].map(ms));
        b.succeeded();
        assert_eq!(b.delay(), ms(250));
        assert_eq!(
            Backoff::new(ms(300), ms(100)).delay(),
            ms(300),
            "a cap below base is base"
        );
        for _ in 0..100 {
            b.failed();
        }
        assert_eq!(b.delay(), ms(2000), "no overflow after many failures");
    }

    #[test]
    fn failure_log_reports_each_change_once() {
        let mut l = FailureLog::default();
        assert_eq!(l.succeeded(), LogNow::Quiet);
        assert_eq!(
            l.failed("dcs", "dcs: timeout 1"),
            LogNow::Failing {
                message: "dcs: timeout 1".into(),
                repeats_before: 0
            }
        );
        for i in 2..=5 {
            assert_eq!(l.failed("dcs", &format!("dcs: timeout {i}")), LogNow::Quiet);
        }
        assert!(l.failing());
        assert_eq!(
            l.failed("pg", "pg: refused"),
            LogNow::Failing {
                message: "pg: refused".into(),
                repeats_before: 5
            }
        );
        l.failed("pg", "pg: refused");
        assert_eq!(
            l.succeeded(),
            LogNow::Recovered {
                last: "pg: refused".into(),
                count: 2
            }
        );
        assert_eq!(l.succeeded(), LogNow::Quiet);
        assert!(!l.failing());
    }
}
