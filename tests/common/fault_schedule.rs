//! The fault suite's schedule (pure): a seed gives the same list of steps on every machine (own SplitMix64, so no
//! dependency on a rand version), each step one or two faults that are healed at its end.
#![allow(dead_code)]

use std::fmt;
use std::time::Duration;

/// Which db host a fault hits, resolved when the step runs (the seed cannot know who leads then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbTarget {
    Primary,
    Replica,
}

/// Which edge a fault hits, resolved when the step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeTarget {
    /// The edge holding the VIP.
    Holder,
    /// An edge not holding it.
    Standby,
}

/// What is done to a host; healed at the end of the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL every process of the host, restart pgha after the hold.
    Kill,
    /// SIGSTOP its pgha for the hold, then SIGCONT.
    Freeze,
    /// Its link off the bridge for the hold, then back.
    Partition,
}

/// One fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Db(Action, DbTarget),
    Edge(Action, EdgeTarget),
    /// `pgha ctl switchover --force` to the default candidate.
    Switchover,
}

/// One step: faults applied together, held, healed, then the invariants checked once settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub faults: Vec<Fault>,
    /// How long the faults last before the heal (2 x ttl and more, so a db fault forces a failover).
    pub hold: Duration,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.faults.iter().map(|x| format!("{x:?}")).collect();
        write!(f, "{} for {} ms", names.join(" + "), self.hold.as_millis())
    }
}

/// SplitMix64: tiny, well-mixed, and fixed forever (schedules must not change with a crate upgrade).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const ACTIONS: [Action; 3] = [Action::Kill, Action::Freeze, Action::Partition];

/// `steps` steps for `seed`: mostly db faults (what the invariants are about), edge faults, switchovers, and
/// sometimes a db fault and an edge fault at once. At most one db host is faulted at a time (a DCS majority and a
/// promotable replica stay) and an edge only while another edge is healthy.
pub fn schedule(seed: u64, steps: usize) -> Vec<Step> {
    let mut rng = Rng(seed);
    (0..steps)
        .map(|_| {
            let action = ACTIONS[rng.below(3) as usize];
            let db = if rng.below(2) == 0 {
                DbTarget::Primary
            } else {
                DbTarget::Replica
            };
            let edge = if rng.below(2) == 0 {
                EdgeTarget::Holder
            } else {
                EdgeTarget::Standby
            };
            let faults = match rng.below(10) {
                0..=4 => vec![Fault::Db(action, db)],
                5..=6 => vec![Fault::Edge(action, edge)],
                7 => vec![Fault::Switchover],
                _ => vec![Fault::Db(action, db), Fault::Edge(ACTIONS[rng.below(3) as usize], edge)],
            };
            Step {
                faults,
                hold: Duration::from_millis(4_000 + 500 * rng.below(5)),
            }
        })
        .collect()
}

/// Why a schedule breaks the suite's rules (None when it is fine): `edges` is the number of edge hosts.
pub fn violation(steps: &[Step], edges: usize) -> Option<String> {
    for (i, s) in steps.iter().enumerate() {
        let dbs = s
            .faults
            .iter()
            .filter(|f| matches!(f, Fault::Db(..) | Fault::Switchover))
            .count();
        if dbs > 1 {
            return Some(format!("step {i} ({s}) touches {dbs} db hosts at once"));
        }
        let edge_faults = s.faults.iter().filter(|f| matches!(f, Fault::Edge(..))).count();
        if edge_faults >= edges {
            return Some(format!("step {i} ({s}) leaves no healthy edge"));
        }
        if s.faults.is_empty() {
            return Some(format!("step {i} has no fault"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule_and_rules_hold() {
        assert_eq!(schedule(42, 8), schedule(42, 8));
        assert_ne!(schedule(42, 8), schedule(43, 8), "different seeds differ");
        assert_eq!(
            schedule(7, 3),
            schedule(7, 8)[..3],
            "a longer run extends the same schedule"
        );
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..500 {
            let s = schedule(seed, 8);
            assert_eq!(s.len(), 8);
            assert_eq!(violation(&s, 3), None, "seed {seed}");
            for f in s.iter().flat_map(|x| &x.faults) {
                kinds.insert(format!("{f:?}"));
            }
        }
        // 3 actions x 2 targets x (db, edge) + switchover: every kind shows up.
        assert_eq!(kinds.len(), 13, "{kinds:?}");
    }

    #[test]
    fn violations_are_named() {
        let two_dbs = Step {
            faults: vec![Fault::Switchover, Fault::Db(Action::Kill, DbTarget::Replica)],
            hold: Duration::from_secs(1),
        };
        assert!(violation(&[two_dbs], 3).is_some_and(|v| v.contains("2 db hosts")));
        let all_edges = Step {
            faults: vec![Fault::Edge(Action::Kill, EdgeTarget::Holder); 3],
            hold: Duration::from_secs(1),
        };
        assert!(violation(&[all_edges], 3).is_some_and(|v| v.contains("no healthy edge")));
    }
}
