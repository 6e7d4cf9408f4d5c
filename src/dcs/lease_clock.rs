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
    ttl: Duration,
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
        // Never earlier than a direct refresh or a membership reset already promised.
        let at = self.deadlines.get(&id).map_or(now + ttl, |d| d.at.max(now + ttl));
        self.deadlines.insert(
            id,
            Deadline {
                at,
                ttl,
                refreshed_index: index,
            },
        );
    }

    /// The holder refreshed `id` on this member directly (not through the log, `lease_quorum.rs`): its deadline is
    /// at least `now + ttl`. Returns the lease's TTL, or None when this member does not know the lease or its
    /// deadline already passed here: this member may have voted it expired, and a `LeaseExpire` based on that vote
    /// may be on its way through the log, which a direct refresh is not ordered with (a logged keepalive is).
    pub fn refreshed_directly(&mut self, id: i64, now: Instant) -> Option<Duration> {
        let d = self.deadlines.get_mut(&id).filter(|d| d.at > now)?;
        d.at = d.at.max(now + d.ttl);
        Some(d.ttl)
    }

    /// This member saw a new membership: every lease gets at least a full TTL from `now` (what makes a quorum of
    /// the new voter sets agree with refreshes counted under the old one, `lease_quorum.rs`).
    pub fn extend_all(&mut self, now: Instant) {
        for d in self.deadlines.values_mut() {
            d.at = d.at.max(now + d.ttl);
        }
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
    fn direct_refresh_and_membership_reset_only_move_deadlines_later() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut clock = LeaseClock::default();
        assert_eq!(clock.refreshed_directly(7, t0), None, "unknown lease");
        clock.refreshed(7, TTL, 1, t0);
        assert_eq!(clock.refreshed_directly(7, ms(500)), Some(TTL));
        assert!(clock.expired(ms(1499)).is_empty());
        assert_eq!(clock.expired(ms(1500)).len(), 1);
        // An older deadline never replaces a later one.
        clock.refreshed_directly(7, ms(100));
        assert!(clock.expired(ms(1499)).is_empty());
        clock.extend_all(ms(800));
        assert!(clock.expired(ms(1799)).is_empty());
        assert_eq!(clock.expired(ms(1800)).first().map(|e| e.refreshed_index), Some(1));
        // A keepalive applied through the log keeps the later deadline too.
        clock.refreshed(7, TTL, 2, ms(200));
        assert!(clock.expired(ms(1799)).is_empty());
        // Once the deadline passed here, a direct refresh no longer revives the lease (an expiry may be under way);
        // only the log can, where the expiry is ordered after it.
        assert_eq!(clock.refreshed_directly(7, ms(1800)), None, "deadline reached");
        assert_eq!(clock.refreshed_directly(7, ms(2500)), None, "deadline passed");
        assert_eq!(clock.expired(ms(2500)).len(), 1);
        clock.refreshed(7, TTL, 3, ms(2500));
        assert_eq!(clock.refreshed_directly(7, ms(2600)), Some(TTL));
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
