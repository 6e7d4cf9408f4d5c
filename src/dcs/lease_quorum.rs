//! Leases that survive a Raft leader change (pure): refreshing a lease on a majority of voters directly, and
//! expiring one only when a majority of voters agrees that its deadline passed on their own clocks.
//!
//! Why it is safe (proof in ARCHITECTURE.md, "Leases across leader changes"): a holder counts its lease from the
//! send time `s` of a refresh answered `found` by a set A that is a majority of every voter set of one membership M.
//! A `LeaseExpire` is proposed only after a set B, a majority of every voter set of the leader's membership L,
//! said the deadline passed, each voter reporting L as its own membership. If L = M, A and B share a voter, whose
//! deadline is at least its receive time + ttl > s + ttl. If L != M, every voter resets its leases to a full TTL
//! when it sees a new membership, and Raft's joint consensus makes that reset fall after `s` for a majority of L.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One voter's answer to a direct refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshAck {
    pub node_id: u64,
    pub found: bool,
    pub ttl: Duration,
    /// The voter's effective membership log id (the same text on every voter that has it).
    pub membership: String,
    pub voters: Vec<BTreeSet<u64>>,
}

/// True when `agreeing` holds a strict majority of every voter set (a joint membership has two; an empty list of
/// sets is never a quorum).
pub fn is_quorum(voters: &[BTreeSet<u64>], agreeing: &BTreeSet<u64>) -> bool {
    !voters.is_empty()
        && voters.iter().all(|set| {
            let yes = set.iter().filter(|id| agreeing.contains(id)).count();
            !set.is_empty() && yes * 2 > set.len()
        })
}

/// The TTL a direct refresh round earned the holder: `Some` when the voters that found the lease, all reporting the
/// same membership, form a quorum of it. Answers from voters of another membership never count toward it.
pub fn refresh_quorum(acks: &[RefreshAck]) -> Option<Duration> {
    let mut by_membership: BTreeMap<&str, Vec<&RefreshAck>> = BTreeMap::new();
    for ack in acks.iter().filter(|a| a.found) {
        by_membership.entry(ack.membership.as_str()).or_default().push(ack);
    }
    by_membership.values().find_map(|group| {
        let voters = &group[0].voters;
        // Voters naming the same membership log id hold the same membership; a disagreement means a bug or a
        // forged answer, and counts as no quorum.
        if group.iter().any(|a| &a.voters != voters) {
            return None;
        }
        let agreeing: BTreeSet<u64> = group.iter().map(|a| a.node_id).collect();
        let ttl = group.iter().map(|a| a.ttl).min()?;
        is_quorum(voters, &agreeing).then_some(ttl)
    })
}

/// The leases a leader may expire: those every member of a quorum of its membership voted expired. `votes` maps a
/// voter to the leases it found expired (the leader includes its own).
pub fn expiry_quorum(voters: &[BTreeSet<u64>], votes: &BTreeMap<u64, BTreeSet<i64>>, candidates: &[i64]) -> Vec<i64> {
    candidates
        .iter()
        .copied()
        .filter(|id| {
            let agreeing: BTreeSet<u64> = votes
                .iter()
                .filter(|(_, expired)| expired.contains(id))
                .map(|(node, _)| *node)
                .collect();
            is_quorum(voters, &agreeing)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    fn ack(node_id: u64, found: bool, membership: &str, voters: &[&[u64]]) -> RefreshAck {
        RefreshAck {
            node_id,
            found,
            ttl: Duration::from_millis(400),
            membership: membership.into(),
            voters: voters.iter().map(|v| set(v)).collect(),
        }
    }

    #[test]
    fn quorum_needs_a_majority_of_every_set() {
        let three: &[&[u64]] = &[&[1, 2, 3]];
        let joint: &[&[u64]] = &[&[1, 2, 3], &[3, 4, 5]];
        type Case<'a> = (&'a [&'a [u64]], &'a [u64], bool);
        let cases: &[Case] = &[
            (three, &[1, 2], true),
            (three, &[1], false),
            (three, &[1, 2, 3], true),
            (three, &[4, 5], false),
            (joint, &[1, 2, 4], false),
            (joint, &[1, 3, 4], true),
            (joint, &[1, 2, 4, 5], true),
            (&[], &[1], false),
            (&[&[]], &[1], false),
            (&[&[1, 2, 3, 4]], &[1, 2], false),
        ];
        for (voters, agreeing, want) in cases {
            let voters: Vec<BTreeSet<u64>> = voters.iter().map(|v| set(v)).collect();
            assert_eq!(is_quorum(&voters, &set(agreeing)), *want, "{voters:?} {agreeing:?}");
        }
    }

    #[test]
    fn refresh_counts_only_found_answers_of_one_membership() {
        let m: &[&[u64]] = &[&[1, 2, 3]];
        let new: &[&[u64]] = &[&[1, 2, 3], &[1, 2, 3, 4, 5]];
        let ttl = Some(Duration::from_millis(400));
        let cases: Vec<(&str, Vec<RefreshAck>, Option<Duration>)> = vec![
            ("majority found", vec![ack(1, true, "a", m), ack(2, true, "a", m)], ttl),
            (
                "all found",
                vec![ack(1, true, "a", m), ack(2, true, "a", m), ack(3, true, "a", m)],
                ttl,
            ),
            ("one found", vec![ack(1, true, "a", m), ack(2, false, "a", m)], None),
            ("nobody", vec![], None),
            (
                "split between memberships",
                vec![ack(1, true, "a", m), ack(2, true, "b", new)],
                None,
            ),
            (
                "joint: majority of the old set only",
                vec![ack(1, true, "b", new), ack(2, true, "b", new)],
                None,
            ),
            (
                "joint: majority of both",
                vec![ack(1, true, "b", new), ack(2, true, "b", new), ack(4, true, "b", new)],
                ttl,
            ),
            (
                "same id, different sets: no trust",
                vec![ack(1, true, "a", m), ack(2, true, "a", new)],
                None,
            ),
        ];
        for (what, acks, want) in cases {
            assert_eq!(refresh_quorum(&acks), want, "{what}");
        }
    }

    #[test]
    fn refresh_earns_the_smallest_ttl_answered() {
        let m: &[&[u64]] = &[&[1, 2, 3]];
        let mut short = ack(2, true, "a", m);
        short.ttl = Duration::from_millis(300);
        assert_eq!(
            refresh_quorum(&[ack(1, true, "a", m), short]),
            Some(Duration::from_millis(300))
        );
    }

    #[test]
    fn expiry_needs_a_quorum_per_lease() {
        let voters = vec![set(&[1, 2, 3])];
        let votes: BTreeMap<u64, BTreeSet<i64>> = [(1, [7, 8].into()), (2, [7].into()), (3, [].into())].into();
        assert_eq!(expiry_quorum(&voters, &votes, &[7, 8]), vec![7]);
        let alone: BTreeMap<u64, BTreeSet<i64>> = [(1, [7, 8].into())].into();
        assert!(expiry_quorum(&voters, &alone, &[7, 8]).is_empty());
    }
}
