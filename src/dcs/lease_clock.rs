//! Lease deadlines on one member, in its own monotonic time (pure: the caller passes `now`).
//!
//! The rule (proof sketch in ARCHITECTURE.md): a lease's deadline on a member is the instant this member APPLIED the
//! lease's latest grant or keepalive, plus the TTL. An entry is applied only after it was committed, which is after
//! its holder sent it, so no member's deadline is earlier than `holder's send time + TTL`. The leader proposes
//! `LeaseExpire` carrying the refresh index it based its decision on; the state machine ignores it when a newer
//! keepalive was applied first. A new Raft leader therefore needs no reset: it keeps counting from the keepalives it
//! applied as a follower, which lets a lease whose holder died with the old leader expire on time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::types::ExpiredLease;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadline {
    at: Instant,
    refreshed_index: u64,
}

/// Deadlines of the live leases as seen by this member.
#[derive(Debug, Default)]
pub struct LeaseClock {
    deadlines: HashMap<i64, Deadline>,
}

impl LeaseClock {
    /// A grant or keepalive for `id` was applied at log `index` at local time `now`.
    pub fn refreshed(&mut self, id: i64, ttl: Duration, index: u64, now: Instant) {
        self.deadlines.insert(
            id,
            Deadline {
                at: now + ttl,
                refreshed_index: index,
            },
        );
    }

    /// The lease is gone (revoked or expired through the log).
    pub fn removed(&mut self, id: i64) {
        self.deadlines.remove(&id);
    }

    /// Rebuilds the clock after a restart or snapshot install: every lease gets a full TTL from `now`, since this
    /// member cannot know when their last keepalive was applied elsewhere.
    pub fn restart<'a>(&mut self, leases: impl Iterator<Item = (i64, Duration, u64)> + 'a, now: Instant) {
        self.deadlines.clear();
        for (id, ttl, index) in leases {
            self.refreshed(id, ttl, index, now);
        }
    }

    /// Leases whose deadline has passed at `now`, with the refresh index each decision is based on.
    pub fn expired(&self, now: Instant) -> Vec<ExpiredLease> {
        let mut out: Vec<ExpiredLease> = self
            .deadlines
            .iter()
            .filter(|(_, d)| d.at <= now)
            .map(|(id, d)| ExpiredLease {
                id: *id,
                refreshed_index: d.refreshed_index,
            })
            .collect();
        out.sort_by_key(|l| l.id);
        out
    }

    /// Time until the next deadline (None when there is no lease).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().map(|d| d.at).min()
    }

    /// Number of tracked leases.
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    /// True when no lease is tracked.
    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(1000);

    #[test]
    fn expiry_table() {
        let t0 = Instant::now();
        struct Case {
            name: &'static str,
            refreshes: Vec<(u64, u64)>, // (ms after t0, log index)
            at_ms: u64,
            expect: Option<u64>, // refreshed_index reported as expired
        }
        let cases = [
            Case {
                name: "not yet",
                refreshes: vec![(0, 1)],
                at_ms: 999,
                expect: None,
            },
            Case {
                name: "exactly at deadline",
                refreshes: vec![(0, 1)],
                at_ms: 1000,
                expect: Some(1),
            },
            Case {
                name: "keepalive extends",
                refreshes: vec![(0, 1), (600, 5)],
                at_ms: 1500,
                expect: None,
            },
            Case {
                name: "after extended deadline",
                refreshes: vec![(0, 1), (600, 5)],
                at_ms: 1600,
                expect: Some(5),
            },
        ];
        for case in cases {
            let mut clock = LeaseClock::default();
            for (ms, index) in &case.refreshes {
                clock.refreshed(7, TTL, *index, t0 + Duration::from_millis(*ms));
            }
            let expired = clock.expired(t0 + Duration::from_millis(case.at_ms));
            let got = expired.first().map(|e| e.refreshed_index);
            assert_eq!(got, case.expect, "{}", case.name);
        }
    }

    #[test]
    fn removed_lease_never_expires() {
        let t0 = Instant::now();
        let mut clock = LeaseClock::default();
        clock.refreshed(1, TTL, 1, t0);
        clock.removed(1);
        assert!(clock.expired(t0 + TTL * 10).is_empty());
        assert!(clock.is_empty());
    }

    #[test]
    fn restart_gives_every_lease_a_full_ttl() {
        let t0 = Instant::now();
        let mut clock = LeaseClock::default();
        clock.refreshed(1, TTL, 1, t0);
        let later = t0 + Duration::from_millis(900);
        clock.restart([(1, TTL, 1), (2, TTL * 2, 3)].into_iter(), later);
        assert!(clock.expired(t0 + Duration::from_millis(1899)).is_empty());
        assert_eq!(clock.expired(later + TTL).len(), 1);
        assert_eq!(clock.next_deadline(), Some(later + TTL));
        assert_eq!(clock.len(), 2);
    }
}
