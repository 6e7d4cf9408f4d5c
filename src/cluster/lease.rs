//! The leader's own view of its lease (pure): valid until the last successful keepalive's SEND time + TTL, minus
//! margins. pgha steps down at the first deadline; the fencing process, as a backstop, at the second.
//!
//! The DCS never expires the lease before `send + ttl` (ARCHITECTURE.md, "Leases"), and a replica can only promote
//! after that, so a primary that is non-writable by `send + ttl - margin` never overlaps with a new one.

use std::time::{Duration, Instant};

/// Lease validity as computed by its holder.
#[derive(Debug, Clone)]
pub struct LeaseClock {
    ttl: Duration,
    last_ok_send: Option<Instant>,
}

impl LeaseClock {
    /// A clock for a lease of `ttl`; not valid until the first successful keepalive.
    pub fn new(ttl: Duration) -> LeaseClock {
        LeaseClock {
            ttl,
            last_ok_send: None,
        }
    }

    /// The TTL changed (dynamic config); takes effect from the next keepalive.
    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    /// The TTL the clock counts with.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A grant or keepalive SENT at `sent_at` succeeded.
    pub fn renewed(&mut self, sent_at: Instant) {
        if self.last_ok_send.is_none_or(|t| sent_at > t) {
            self.last_ok_send = Some(sent_at);
        }
    }

    /// Forget the lease (revoked, or reported gone by the DCS).
    pub fn reset(&mut self) {
        self.last_ok_send = None;
    }

    /// Safety margin kept before the TTL: a quarter of it, for stopping PostgreSQL and clock-rate drift.
    pub fn margin(&self) -> Duration {
        self.ttl / 4
    }

    /// When pgha itself must have stepped down.
    pub fn step_down_at(&self) -> Option<Instant> {
        self.last_ok_send.map(|t| t + self.ttl - self.margin())
    }

    /// When the fencing process stops PostgreSQL if pgha did not (half the margin later).
    pub fn fence_at(&self) -> Option<Instant> {
        self.last_ok_send.map(|t| t + self.ttl - self.margin() / 2)
    }

    /// True while the lease is safely ours.
    pub fn valid(&self, now: Instant) -> bool {
        self.step_down_at().is_some_and(|d| now < d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_clock_table() {
        let ttl = Duration::from_millis(2000);
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut c = LeaseClock::new(ttl);
        assert!(!c.valid(t0), "never renewed: not valid");
        c.renewed(t0);
        let cases = [(0, true), (1499, true), (1500, false), (2500, false)];
        for (at, valid) in cases {
            assert_eq!(c.valid(ms(at)), valid, "at {at} ms");
        }
        assert_eq!(c.fence_at(), Some(ms(1750)));
        // An older send never moves the deadline back.
        c.renewed(ms(1000));
        c.renewed(ms(500));
        assert_eq!(c.step_down_at(), Some(ms(2500)));
        c.reset();
        assert!(!c.valid(ms(1001)));
    }
}
