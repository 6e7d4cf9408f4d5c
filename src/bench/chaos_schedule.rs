//! The chaos schedule (pure): a seed and the lease TTL give the same steps on every machine (own SplitMix64, so no
//! dependency on a rand version), each step one or two faults, and each step's timeline of fault and heal events.

use std::fmt;
use std::time::Duration;

/// Which host a fault hits, resolved when the step starts (the seed cannot know who leads then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The db host leading when the step starts.
    Primary,
    /// One of the two other db hosts (0 or 1, in name order).
    Replica(u8),
    /// The edge holding the VIP.
    Holder,
    /// One of the two edges not holding it (0 or 1, in name order).
    Standby(u8),
}

impl Target {
    /// A db host (else an edge).
    pub fn is_db(self) -> bool {
        matches!(self, Target::Primary | Target::Replica(_))
    }

    /// The kind of host, for the report's rows.
    pub fn label(self) -> &'static str {
        match self {
            Target::Primary => "primary",
            Target::Replica(_) => "replica",
            Target::Holder => "VIP holder",
            Target::Standby(_) => "standby edge",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Replica(i) | Target::Standby(i) => write!(f, "{}#{i}", self.label()),
            _ => f.write_str(self.label()),
        }
    }
}

/// What is done to a host; healed at the end of the step's hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL every process of the host (an edge also loses its link, like a power-off); restarted with the same
    /// argv after the hold.
    Kill,
    /// SIGKILL pgha only (PostgreSQL, the fencers keep running); restarted after the hold.
    KillPgha,
    /// SIGSTOP pgha only for the hold (1 to 10 x ttl), then SIGCONT.
    Freeze,
    /// The host's link off the bridge for the hold.
    Partition,
    /// The link down for `down_ms` and up for `up_ms`, `cycles` times.
    Flap { cycles: u8, down_ms: u16, up_ms: u16 },
    /// PostgreSQL's filesystem filled to the last byte for the hold (db hosts only).
    DiskFull,
}

impl Action {
    /// The action's name, for the report's rows.
    pub fn label(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::KillPgha => "kill pgha",
            Action::Freeze => "freeze",
            Action::Partition => "partition",
            Action::Flap { .. } => "flap",
            Action::DiskFull => "disk full",
        }
    }

    /// How long the flapping lasts (zero for other actions).
    pub fn flap_span(self) -> Duration {
        match self {
            Action::Flap { cycles, down_ms, up_ms } => {
                Duration::from_millis(u64::from(cycles) * (u64::from(down_ms) + u64::from(up_ms)))
            }
            _ => Duration::ZERO,
        }
    }
}

/// One fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    On(Action, Target),
    /// `pgha ctl switchover --force` to the default candidate.
    Switchover,
}

impl Fault {
    /// The row of the report this fault counts in: action and kind of host.
    pub fn kind(self) -> String {
        match self {
            Fault::On(a, t) => format!("{} {}", a.label(), t.label()),
            Fault::Switchover => "switchover".into(),
        }
    }

    /// Whether it touches a db host.
    pub fn is_db(self) -> bool {
        match self {
            Fault::On(_, t) => t.is_db(),
            Fault::Switchover => true,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::On(Action::Flap { cycles, down_ms, up_ms }, t) => {
                write!(f, "flap {t} ({cycles} x {down_ms} ms down / {up_ms} ms up)")
            }
            Fault::On(a, t) => write!(f, "{} {t}", a.label()),
            Fault::Switchover => f.write_str("switchover"),
        }
    }
}

/// One step: faults applied together, held, healed; then the invariants are checked once settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub faults: Vec<Fault>,
    /// How long the faults last before the heal.
    pub hold: Duration,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.faults.iter().map(Fault::to_string).collect();
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

    fn below_u8(&mut self, n: u8) -> u8 {
        (self.next() % u64::from(n)) as u8
    }

    fn below_u16(&mut self, n: u16) -> u16 {
        (self.next() % u64::from(n)) as u16
    }
}

/// The longest freeze, in lease TTLs.
pub const MAX_FREEZE_TTLS: u32 = 10;

fn action(rng: &mut Rng, db: bool) -> Action {
    match rng.below(if db { 6 } else { 5 }) {
        0 => Action::Kill,
        1 => Action::KillPgha,
        2 => Action::Freeze,
        3 => Action::Partition,
        4 => Action::Flap {
            cycles: 3 + rng.below_u8(4),
            down_ms: 150 * (1 + rng.below_u16(6)),
            up_ms: 150 * (1 + rng.below_u16(4)),
        },
        _ => Action::DiskFull,
    }
}

fn db_fault(rng: &mut Rng) -> Fault {
    let target = match rng.below(2) {
        0 => Target::Primary,
        _ => Target::Replica(rng.below_u8(2)),
    };
    // One in seven db faults is a switchover.
    match rng.below(7) {
        0 => Fault::Switchover,
        _ => Fault::On(action(rng, true), target),
    }
}

fn edge_fault(rng: &mut Rng) -> Fault {
    let target = match rng.below(2) {
        0 => Target::Holder,
        _ => Target::Standby(rng.below_u8(2)),
    };
    Fault::On(action(rng, false), target)
}

/// How long `fault` lasts with lease TTL `ttl`: a freeze 1 to 10 x ttl, a full disk 5 to 8 x ttl (PostgreSQL only
/// notices when it needs a block: a new heap page every ~226 probe rows, a WAL segment, a checkpoint), a flap its own
/// span, a switchover nothing, the rest 2 to 3 x ttl (a db fault forces a failover).
fn hold_of(fault: Fault, ttl: Duration, rng: &mut Rng) -> Duration {
    match fault {
        Fault::Switchover => Duration::ZERO,
        Fault::On(Action::Freeze, _) => ttl * (1 + rng.below(u64::from(MAX_FREEZE_TTLS)) as u32),
        Fault::On(Action::DiskFull, _) => ttl * 5 + ttl / 2 * rng.below(7) as u32,
        Fault::On(a @ Action::Flap { .. }, _) => a.flap_span(),
        Fault::On(..) => ttl * 2 + ttl / 4 * rng.below(5) as u32,
    }
}

/// `steps` steps for `seed` with lease TTL `ttl`: 60% one db fault, 20% one edge fault, 20% both at once. At most
/// one db host is faulted at a time (a DCS majority and a promotable replica stay) and one edge (two stay).
pub fn schedule(seed: u64, steps: usize, ttl: Duration) -> Vec<Step> {
    let mut rng = Rng(seed);
    (0..steps)
        .map(|_| {
            let shape = rng.below(10);
            let mut faults = Vec::new();
            if !(6..8).contains(&shape) {
                faults.push(db_fault(&mut rng));
            }
            if shape >= 6 {
                faults.push(edge_fault(&mut rng));
            }
            let hold = faults
                .iter()
                .map(|f| hold_of(*f, ttl, &mut rng))
                .max()
                .unwrap_or_default();
            Step { faults, hold }
        })
        .collect()
}

/// Why a schedule breaks the rules (None when it is fine): `edges` is the number of edge hosts.
pub fn violation(steps: &[Step], edges: usize, ttl: Duration) -> Option<String> {
    for (i, s) in steps.iter().enumerate() {
        let dbs = s.faults.iter().filter(|f| f.is_db()).count();
        let edge_faults = s.faults.len() - dbs;
        let why = if s.faults.is_empty() {
            Some("has no fault".to_string())
        } else if dbs > 1 {
            Some(format!("touches {dbs} db hosts at once"))
        } else if edge_faults >= edges {
            Some("leaves no healthy edge".into())
        } else if s
            .faults
            .iter()
            .any(|f| matches!(f, Fault::On(Action::DiskFull, t) if !t.is_db()))
        {
            Some("fills an edge's disk (edges have no PostgreSQL)".into())
        } else if s.faults.iter().any(|f| matches!(f, Fault::On(Action::Freeze, _))) && s.hold > ttl * MAX_FREEZE_TTLS {
            Some(format!("freezes longer than {MAX_FREEZE_TTLS} x ttl"))
        } else if s
            .faults
            .iter()
            .any(|f| matches!(f, Fault::On(a, _) if a.flap_span() > s.hold))
        {
            Some("flaps past its hold".into())
        } else {
            None
        };
        if let Some(why) = why {
            return Some(format!("step {} ({s}) {why}", i + 1));
        }
    }
    None
}

/// Something the runner does to a host (or the cluster) at one instant of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Switchover,
    Kill(Target),
    Restart(Target),
    KillPgha(Target),
    RestartPgha(Target),
    Stop(Target),
    Cont(Target),
    Cut(Target),
    Restore(Target),
    Fill(Target),
    Free(Target),
}

/// `op` at `at` after the step's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub at: Duration,
    pub op: Op,
}

/// The step's events in time order: every fault at the start (a flap's cuts spread over its span), every heal at the
/// end of the hold.
pub fn timeline(step: &Step) -> Vec<Event> {
    let end = step.hold;
    let mut events = Vec::new();
    let mut at = |at, op| events.push(Event { at, op });
    for fault in &step.faults {
        let (action, t) = match *fault {
            Fault::Switchover => {
                at(Duration::ZERO, Op::Switchover);
                continue;
            }
            Fault::On(a, t) => (a, t),
        };
        let (start, heal) = match action {
            Action::Kill => (Op::Kill(t), Op::Restart(t)),
            Action::KillPgha => (Op::KillPgha(t), Op::RestartPgha(t)),
            Action::Freeze => (Op::Stop(t), Op::Cont(t)),
            Action::Partition => (Op::Cut(t), Op::Restore(t)),
            Action::DiskFull => (Op::Fill(t), Op::Free(t)),
            Action::Flap { cycles, down_ms, up_ms } => {
                let mut now = Duration::ZERO;
                for _ in 0..cycles {
                    at(now, Op::Cut(t));
                    now += Duration::from_millis(down_ms.into());
                    at(now, Op::Restore(t));
                    now += Duration::from_millis(up_ms.into());
                }
                continue;
            }
        };
        at(Duration::ZERO, start);
        at(end, heal);
    }
    // Stable: at one instant, events keep the faults' order.
    events.sort_by_key(|e| e.at);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(2);

    #[test]
    fn same_seed_same_schedule_and_rules_hold() {
        assert_eq!(schedule(42, 8, TTL), schedule(42, 8, TTL));
        assert_ne!(schedule(42, 8, TTL), schedule(43, 8, TTL), "different seeds differ");
        assert_eq!(
            schedule(7, 3, TTL),
            schedule(7, 8, TTL)[..3],
            "a longer run extends the same schedule"
        );
        let mut kinds = std::collections::BTreeSet::new();
        let mut longest_freeze = Duration::ZERO;
        for seed in 0..500 {
            let s = schedule(seed, 8, TTL);
            assert_eq!(s.len(), 8);
            assert_eq!(violation(&s, 3, TTL), None, "seed {seed}");
            for step in &s {
                for f in &step.faults {
                    kinds.insert(f.kind());
                    if matches!(f, Fault::On(Action::Freeze, _)) {
                        longest_freeze = longest_freeze.max(step.hold);
                    }
                }
            }
        }
        // 6 actions x 2 db targets + 5 x 2 edge targets + switchover: every kind shows up.
        assert_eq!(kinds.len(), 23, "{kinds:?}");
        assert_eq!(longest_freeze, TTL * MAX_FREEZE_TTLS);
    }

    #[test]
    fn violations_are_named() {
        let step = |faults: Vec<Fault>| Step {
            faults,
            hold: Duration::from_secs(4),
        };
        let two_dbs = step(vec![Fault::Switchover, Fault::On(Action::Kill, Target::Replica(0))]);
        assert!(violation(&[two_dbs], 3, TTL).is_some_and(|v| v.contains("2 db hosts")));
        let all_edges = step(vec![
            Fault::On(Action::Kill, Target::Holder),
            Fault::On(Action::Kill, Target::Standby(0)),
            Fault::On(Action::Kill, Target::Standby(1)),
        ]);
        assert!(violation(&[all_edges], 3, TTL).is_some_and(|v| v.contains("no healthy edge")));
        let full_edge = step(vec![Fault::On(Action::DiskFull, Target::Standby(1))]);
        assert!(violation(&[full_edge], 3, TTL).is_some_and(|v| v.contains("edge's disk")));
        let long_freeze = Step {
            faults: vec![Fault::On(Action::Freeze, Target::Primary)],
            hold: TTL * 11,
        };
        assert!(violation(&[long_freeze], 3, TTL).is_some_and(|v| v.contains("10 x ttl")));
        let flap = Fault::On(
            Action::Flap {
                cycles: 5,
                down_ms: 900,
                up_ms: 600,
            },
            Target::Primary,
        );
        assert!(violation(&[step(vec![flap])], 3, TTL).is_some_and(|v| v.contains("flaps past")));
        assert!(violation(&[step(vec![])], 3, TTL).is_some_and(|v| v.contains("no fault")));
    }

    #[test]
    fn timelines_heal_everything_at_the_end() {
        let step = Step {
            faults: vec![
                Fault::On(Action::Freeze, Target::Primary),
                Fault::On(
                    Action::Flap {
                        cycles: 3,
                        down_ms: 300,
                        up_ms: 150,
                    },
                    Target::Holder,
                ),
            ],
            hold: Duration::from_secs(4),
        };
        let ms = Duration::from_millis;
        let t = timeline(&step);
        assert_eq!(
            t,
            vec![
                Event {
                    at: ms(0),
                    op: Op::Stop(Target::Primary)
                },
                Event {
                    at: ms(0),
                    op: Op::Cut(Target::Holder)
                },
                Event {
                    at: ms(300),
                    op: Op::Restore(Target::Holder)
                },
                Event {
                    at: ms(450),
                    op: Op::Cut(Target::Holder)
                },
                Event {
                    at: ms(750),
                    op: Op::Restore(Target::Holder)
                },
                Event {
                    at: ms(900),
                    op: Op::Cut(Target::Holder)
                },
                Event {
                    at: ms(1200),
                    op: Op::Restore(Target::Holder)
                },
                Event {
                    at: ms(4000),
                    op: Op::Cont(Target::Primary)
                },
            ]
        );
        let switchover = Step {
            faults: vec![Fault::Switchover],
            hold: Duration::ZERO,
        };
        assert_eq!(
            timeline(&switchover),
            vec![Event {
                at: ms(0),
                op: Op::Switchover
            }]
        );
        // Every generated step ends with its link up and every fault healed.
        for step in schedule(3, 200, TTL) {
            let t = timeline(&step);
            let starts = t
                .iter()
                .filter(|e| {
                    matches!(
                        e.op,
                        Op::Kill(_) | Op::KillPgha(_) | Op::Stop(_) | Op::Fill(_) | Op::Cut(_)
                    )
                })
                .count();
            let heals = t
                .iter()
                .filter(|e| {
                    matches!(
                        e.op,
                        Op::Restart(_) | Op::RestartPgha(_) | Op::Cont(_) | Op::Free(_) | Op::Restore(_)
                    )
                })
                .count();
            assert_eq!(starts, heals, "{step}");
            assert!(t.iter().all(|e| e.at <= step.hold), "{step}");
        }
    }
}
