//! Finer hand-off steps than the phases (pure): when the old leader checkpointed, stopped and released the key, the
//! new one took it, PostgreSQL left recovery, the new primary named its synchronous standbys and an edge routed to
//! it, each from one stable `event` of the hosts' JSON logs, in ms after the fault.

use serde::Serialize;

use super::phases::LogLine;

/// Whose log line counts for a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Whose {
    /// The primary before the fault.
    OldLeader,
    /// The primary after it.
    NewLeader,
    /// Any host (the DCS's Raft leader expires leases, wherever it runs).
    Any,
    /// An edge routing the primary port to the new leader.
    EdgeToNewLeader,
}

/// Each step's name, the `event` that marks it and whose line counts, in the order they happen. The events are set
/// in src/ha/actions.rs, src/ha/sync_leader.rs, src/postgres/control.rs, src/dcs/lease_expiry.rs and
/// src/edge/proxy.rs; renaming one means changing this table in the same commit.
const STEPS: &[(&str, &str, Whose)] = &[
    ("hand_over", "hand_over", Whose::OldLeader),
    ("checkpointed", "hand_over_checkpointed", Whose::OldLeader),
    ("stopped", "hand_over_stopped", Whose::OldLeader),
    ("released", "leader_key_released", Whose::OldLeader),
    ("expired", "leases_expired", Whose::Any),
    ("raced", "race_won", Whose::NewLeader),
    ("taken", "leader_key_taken", Whose::NewLeader),
    ("pre_named", "promotion_standbys_named", Whose::NewLeader),
    ("promote_sent", "promote_requested", Whose::NewLeader),
    ("pg_promoted", "pg_promoted", Whose::NewLeader),
    ("published", "promote", Whose::NewLeader),
    ("sync_named", "sync_standbys_named", Whose::NewLeader),
    ("routed", "edge_route_changed", Whose::EdgeToNewLeader),
];

/// One step of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub ms: f64,
}

/// Who led before and after the fault, and the edges.
pub struct Hosts<'a> {
    pub old_leader: &'a str,
    /// None when the leader did not change.
    pub new_leader: Option<&'a str>,
    pub edges: &'a [&'a str],
}

/// The steps seen in `lines` (from the fault on: the caller's lines start there), each at its first line,
/// ordered by time.
pub fn steps(lines: &[LogLine], t0: std::time::SystemTime, hosts: &Hosts) -> Vec<Step> {
    let counts = |l: &LogLine, whose: Whose| match whose {
        Whose::OldLeader => l.host == hosts.old_leader,
        Whose::NewLeader => hosts.new_leader == Some(l.host.as_str()),
        Whose::Any => true,
        Whose::EdgeToNewLeader => {
            hosts.edges.contains(&l.host.as_str())
                && l.field("port") == Some("primary")
                && hosts.new_leader.is_some_and(|n| l.field("to") == Some(n))
        }
    };
    let mut out: Vec<Step> = STEPS
        .iter()
        .filter_map(|(name, event, whose)| {
            lines
                .iter()
                .filter(|l| l.at >= t0 && l.event == *event && counts(l, *whose))
                .filter_map(|l| l.at.duration_since(t0).ok())
                .min()
                .map(|d| Step {
                    name,
                    ms: d.as_secs_f64() * 1000.0,
                })
        })
        .collect();
    out.sort_by(|a, b| a.ms.total_cmp(&b.ms));
    out
}

/// `name ms, name ms, ...` for a run's line.
pub fn line(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| format!("{} {:.0}", s.name, s.ms))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The median of each step over `runs`, in the order of [`STEPS`] (steps no run saw are left out).
pub fn medians(runs: &[&[Step]]) -> Vec<Step> {
    STEPS
        .iter()
        .filter_map(|(name, _, _)| {
            let mut v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.iter().find(|s| s.name == *name).map(|s| s.ms))
                .collect();
            v.sort_by(f64::total_cmp);
            // The lower median, like the summaries' p50.
            v.get(v.len().saturating_sub(1) / 2).map(|ms| Step { name, ms: *ms })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    fn line_at(host: &str, ms: u64, event: &str, fields: &[(&str, &str)]) -> LogLine {
        let fields: BTreeMap<String, String> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        LogLine {
            host: host.into(),
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
            event: event.into(),
            fields,
        }
    }

    #[test]
    fn a_switchover_step_by_step() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_millis(1000);
        let lines = vec![
            line_at("db1", 900, "hand_over", &[]),
            line_at("db1", 1010, "hand_over", &[]),
            line_at("db1", 1060, "hand_over_checkpointed", &[]),
            line_at("db1", 1120, "hand_over_stopped", &[]),
            line_at("db1", 1125, "leader_key_released", &[]),
            // Another member's key taking does not count.
            line_at("db3", 1128, "leader_key_taken", &[]),
            line_at("db2", 1130, "leader_key_taken", &[]),
            line_at("db2", 1140, "promote_requested", &[]),
            line_at("db2", 1230, "pg_promoted", &[]),
            line_at("db2", 1235, "promote", &[]),
            line_at(
                "edge1",
                1240,
                "edge_route_changed",
                &[("port", "primary"), ("to", "none")],
            ),
            line_at(
                "edge1",
                1250,
                "edge_route_changed",
                &[("port", "primary"), ("to", "db2")],
            ),
            line_at(
                "edge2",
                1245,
                "edge_route_changed",
                &[("port", "replica"), ("to", "db2")],
            ),
            line_at("db2", 1300, "sync_standbys_named", &[]),
        ];
        let hosts = Hosts {
            old_leader: "db1",
            new_leader: Some("db2"),
            edges: &["edge1", "edge2"],
        };
        let got = steps(&lines, t0, &hosts);
        let names: Vec<(&str, f64)> = got.iter().map(|s| (s.name, s.ms)).collect();
        assert_eq!(
            names,
            vec![
                ("hand_over", 10.0),
                ("checkpointed", 60.0),
                ("stopped", 120.0),
                ("released", 125.0),
                ("taken", 130.0),
                ("promote_sent", 140.0),
                ("pg_promoted", 230.0),
                ("published", 235.0),
                ("routed", 250.0),
                ("sync_named", 300.0),
            ]
        );
        assert_eq!(line(&got[..2]), "hand_over 10, checkpointed 60");
        // No new leader: only the old leader's and anybody's steps.
        let hosts = Hosts {
            new_leader: None,
            ..hosts
        };
        assert_eq!(steps(&lines, t0, &hosts).len(), 4);
    }

    #[test]
    fn medians_per_step() {
        let s = |name, ms| Step { name, ms };
        let a = vec![s("expired", 1000.0), s("taken", 1010.0)];
        let b = vec![s("expired", 1200.0)];
        let c = vec![s("expired", 1100.0), s("taken", 1030.0)];
        let m = medians(&[&a, &b, &c]);
        assert_eq!(m, vec![s("expired", 1100.0), s("taken", 1010.0)]);
        assert!(medians(&[]).is_empty());
    }
}
