//! What each member is doing while long work runs (`pgha demo`, `ctl switchover|failover`, `ctl reinit --wait`):
//! successive cluster views are diffed (pure) into one line per change, printed with the elapsed time.

use std::io::Write;
use std::time::Instant;

use crate::cluster::model::{ClusterView, MemberInfo, PgRole, PgState};

/// What a member is doing, in words (pure).
fn doing(m: &MemberInfo, leader: Option<&str>) -> String {
    let is_leader = leader == Some(m.name.as_str());
    let what = match (m.state, m.role) {
        (PgState::Initializing, _) => "initializing a new cluster (initdb)".to_string(),
        (PgState::CreatingReplica, _) => format!(
            "creating replica ({})",
            m.clone.as_ref().map_or("basebackup", |c| c.method.as_str())
        ),
        (PgState::Starting, _) => "starting PostgreSQL".to_string(),
        (PgState::Running, PgRole::Primary) if is_leader => "running as primary".to_string(),
        (PgState::Running, PgRole::Primary) => "running as primary without the leader key".to_string(),
        (PgState::Running | PgState::Streaming, _) if is_leader => "holds the leader key, promoting".to_string(),
        (PgState::Running, _) => "running as replica, not streaming yet".to_string(),
        (PgState::Streaming, _) => match m.upstream.as_deref().or(leader) {
            Some(up) => format!("streaming from {up}"),
            None => "streaming".to_string(),
        },
        (PgState::Stopped, _) => "stopped".to_string(),
        (PgState::StartFailed, _) => "start failed".to_string(),
        (PgState::Crashed, _) => "crashed".to_string(),
        (PgState::NeedsReinit, _) => "needs reinit".to_string(),
    };
    match &m.note {
        Some(note) if !note.is_empty() => format!("{what} ({note})"),
        _ => what,
    }
}

/// What a change is judged on: the member's published state and whether it holds the leader key.
fn activity<'a>(m: &'a MemberInfo, leader: Option<&str>) -> (PgState, PgRole, Option<&'a str>, Option<&'a str>, bool) {
    (
        m.state,
        m.role,
        m.upstream.as_deref(),
        m.note.as_deref(),
        leader == Some(m.name.as_str()),
    )
}

/// The changes from `old` to `new`, one line each (pure): the leader key, each member's activity and timeline,
/// members appearing and vanishing, a switchover request recorded or cleared.
pub fn changes(old: &ClusterView, new: &ClusterView) -> Vec<String> {
    let mut lines = Vec::new();
    if old.initialize.is_none() && new.initialize.is_some() {
        lines.push("cluster initialized".to_string());
    }
    let (old_leader, new_leader) = (
        old.leader.as_ref().map(|l| l.name.as_str()),
        new.leader.as_ref().map(|l| l.name.as_str()),
    );
    match (old_leader, new_leader) {
        (None, Some(n)) => lines.push(format!("{n}: holds the leader key")),
        (Some(o), None) => lines.push(format!("{o}: released the leader key")),
        (Some(o), Some(n)) if o != n => lines.push(format!("leader key: {o} -> {n}")),
        _ => {}
    }
    match (&old.switchover, &new.switchover) {
        (None, Some(s)) => lines.push(format!(
            "switchover requested: {} -> {}",
            s.leader.as_deref().unwrap_or("(no leader)"),
            s.candidate
        )),
        (Some(_), None) => lines.push("switchover request cleared".to_string()),
        _ => {}
    }
    for (name, m) in &new.members {
        let now = doing(m, new_leader);
        match old.members.get(name) {
            None => lines.push(format!("{name}: {now}")),
            Some(before) => {
                // Compared on what the member publishes, not on the words: a replica without a published upstream
                // is not "changed" because the leader key moved.
                if activity(before, old_leader) != activity(m, new_leader) {
                    lines.push(format!("{name}: {now}"));
                }
                if before.timeline != m.timeline && before.timeline != 0 && m.timeline != 0 {
                    lines.push(format!("{name}: timeline {} -> {}", before.timeline, m.timeline));
                }
            }
        }
    }
    for name in old.members.keys().filter(|n| !new.members.contains_key(*n)) {
        lines.push(format!(
            "{name}: no longer publishes its status (pgha stopped or restarting)"
        ));
    }
    lines
}

/// Where progress lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// `pgha demo`: its whole story is on stdout.
    Stdout,
    /// ctl: stdout stays the command's result (JSON with `-o json`).
    Stderr,
}

/// Prints the changes of each new view, `  +3.2s db2: creating replica (basebackup)`.
pub struct Progress {
    started: Instant,
    /// None until the first view when that one is only the baseline.
    last: Option<ClusterView>,
    sink: Sink,
}

impl Progress {
    /// Starts the clock; the first view is shown in full (`pgha demo`: every member's state from the start).
    pub fn new(sink: Sink) -> Progress {
        Progress {
            started: Instant::now(),
            last: Some(ClusterView::default()),
            sink,
        }
    }

    /// Starts the clock; the first view is the baseline and only later changes are shown (ctl: what the command
    /// causes, not the whole cluster again).
    pub fn changes_only(sink: Sink) -> Progress {
        Progress {
            last: None,
            ..Progress::new(sink)
        }
    }

    /// Prints what changed since the last view.
    pub fn observe(&mut self, view: &ClusterView) {
        let Some(last) = self.last.replace(view.clone()) else {
            return;
        };
        let elapsed = self.started.elapsed().as_secs_f64();
        for line in changes(&last, view) {
            let text = format!("  +{elapsed:.1}s {line}\n");
            // A closed pipe must not end the wait: progress is informative only.
            let _ = match self.sink {
                Sink::Stdout => std::io::stdout().write_all(text.as_bytes()),
                Sink::Stderr => std::io::stderr().write_all(text.as_bytes()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::{LeaderKey, SwitchoverRequest};

    fn view(leader: Option<&str>, members: &[(&str, PgRole, PgState, u32)]) -> ClusterView {
        let mut v = ClusterView {
            leader: leader.map(|n| LeaderKey {
                name: n.into(),
                lease: 1,
                mod_revision: 1,
            }),
            ..ClusterView::default()
        };
        for (name, role, state, timeline) in members {
            let mut m = MemberInfo::for_test(name, *role, *state, 0);
            m.timeline = *timeline;
            v.members.insert(name.to_string(), m);
        }
        v
    }

    #[test]
    fn changes_table() {
        use PgRole::{Primary, Replica, Unknown};
        use PgState::{CreatingReplica, Running, Stopped, Streaming};
        let before = view(
            Some("db1"),
            &[("db1", Primary, Running, 1), ("db2", Replica, Streaming, 1)],
        );
        let mut requested = before.clone();
        requested.switchover = Some(SwitchoverRequest {
            leader: Some("db1".into()),
            candidate: "db2".into(),
            scheduled_unix_ms: None,
            created_unix_ms: 0,
        });
        let handed_over = view(None, &[("db1", Unknown, Stopped, 1), ("db2", Replica, Streaming, 1)]);
        let taking = view(
            Some("db2"),
            &[("db1", Unknown, Stopped, 1), ("db2", Replica, Streaming, 1)],
        );
        let promoted = view(
            Some("db2"),
            &[("db1", Unknown, Stopped, 1), ("db2", Primary, Running, 2)],
        );
        let rejoined = view(
            Some("db2"),
            &[("db1", Replica, Streaming, 2), ("db2", Primary, Running, 2)],
        );
        let cloning = view(
            Some("db1"),
            &[("db1", Primary, Running, 1), ("db2", Unknown, CreatingReplica, 0)],
        );
        let empty = ClusterView::default();
        let alone = view(Some("db1"), &[("db1", Primary, Running, 1)]);
        let cases: Vec<(&str, &ClusterView, &ClusterView, Vec<&str>)> = vec![
            ("nothing changed", &before, &before, vec![]),
            (
                "first view in full",
                &empty,
                &before,
                vec![
                    "db1: holds the leader key",
                    "db1: running as primary",
                    "db2: streaming from db1",
                ],
            ),
            (
                "request recorded",
                &before,
                &requested,
                vec!["switchover requested: db1 -> db2"],
            ),
            (
                "handover",
                &requested,
                &handed_over,
                vec![
                    "db1: released the leader key",
                    "switchover request cleared",
                    "db1: stopped",
                ],
            ),
            (
                "key taken before the promotion",
                &handed_over,
                &taking,
                vec!["db2: holds the leader key", "db2: holds the leader key, promoting"],
            ),
            (
                "promotion",
                &handed_over,
                &promoted,
                vec![
                    "db2: holds the leader key",
                    "db2: running as primary",
                    "db2: timeline 1 -> 2",
                ],
            ),
            (
                "rejoin",
                &promoted,
                &rejoined,
                vec!["db1: streaming from db2", "db1: timeline 1 -> 2"],
            ),
            (
                "leader change in one step",
                &before,
                &rejoined,
                vec![
                    "leader key: db1 -> db2",
                    "db1: streaming from db2",
                    "db1: timeline 1 -> 2",
                    "db2: running as primary",
                    "db2: timeline 1 -> 2",
                ],
            ),
            ("clone", &alone, &cloning, vec!["db2: creating replica (basebackup)"]),
            (
                "vanished",
                &cloning,
                &alone,
                vec!["db2: no longer publishes its status (pgha stopped or restarting)"],
            ),
        ];
        for (what, old, new, want) in cases {
            assert_eq!(changes(old, new), want, "{what}");
        }
    }
}
