//! A major upgrade (`ctl upgrade`), pure: the `upgrade` key's state, the members' reports, the order of the steps
//! and what each member does at each step.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::model::{ClusterView, PgRole, PgState};

pub use crate::postgres::upgrade::TransferMode;

/// The steps of an upgrade, in order (the `upgrade` key names the current one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// New binaries present and newer on every member; `pg_upgrade --check` against the leader's data.
    Check,
    /// Maintenance mode on: no failover while the leader is down on purpose.
    Pause,
    /// The replicas stop (and stay stopped).
    StopReplicas,
    /// On the leader: clean stop, initdb with the new binaries, `pg_upgrade`, the new system identifier in the
    /// `initialize` key, start on the new version.
    UpgradeLeader,
    /// Each replica sets its old data directory aside and is created again from the new leader.
    RecreateReplicas,
    /// Maintenance mode off.
    Resume,
    /// Finished.
    Done,
}

impl Step {
    /// The step after this one (None after [`Step::Done`]).
    pub fn next(self) -> Option<Step> {
        Some(match self {
            Step::Check => Step::Pause,
            Step::Pause => Step::StopReplicas,
            Step::StopReplicas => Step::UpgradeLeader,
            Step::UpgradeLeader => Step::RecreateReplicas,
            Step::RecreateReplicas => Step::Resume,
            Step::Resume => Step::Done,
            Step::Done => return None,
        })
    }

    /// The stable name (log `step` field, `ctl list`).
    pub fn name(self) -> &'static str {
        match self {
            Step::Check => "check",
            Step::Pause => "pause",
            Step::StopReplicas => "stop_replicas",
            Step::UpgradeLeader => "upgrade_leader",
            Step::RecreateReplicas => "recreate_replicas",
            Step::Resume => "resume",
            Step::Done => "done",
        }
    }
}

/// The `upgrade` key: written only by the operator's `ctl upgrade` (admin), read by every member's HA loop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeState {
    /// Ties the members' reports to this run (milliseconds since the epoch at its start).
    pub id: u64,
    /// The new binaries.
    pub bin_dir: PathBuf,
    pub mode: TransferMode,
    /// The member whose data is upgraded (the leader at the start).
    pub leader: String,
    /// The system identifier before.
    pub from_system: u64,
    /// The system identifier after `pg_upgrade` (known once the leader upgraded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_system: Option<u64>,
    /// The step running (or that failed).
    pub step: Step,
    /// Why the step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// After a failure: the old version runs again (the automatic way back before the new leader's first write).
    #[serde(default)]
    pub rolled_back: bool,
}

impl UpgradeState {
    /// Still running: neither done nor failed.
    pub fn active(&self) -> bool {
        self.step != Step::Done && self.failed.is_none()
    }

    /// One line for `ctl list`.
    pub fn describe(&self) -> String {
        let target = format!("to {}", self.bin_dir.display());
        match (&self.failed, self.step) {
            (Some(why), step) if self.rolled_back => format!(
                "upgrade {target} failed at {}: {why} (rolled back: the old version runs)",
                step.name()
            ),
            (Some(why), step) => format!(
                "upgrade {target} failed at {}: {why} (see docs/operations.md, Major upgrade: the way back)",
                step.name()
            ),
            (None, Step::Done) => format!("upgrade {target} done"),
            (None, step) => format!("upgrade {target} running: {}", step.name()),
        }
    }
}

/// How a member's part of the upgrade ended (or that it runs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Done,
    Failed {
        reason: String,
        /// The member runs its old version again.
        rolled_back: bool,
    },
}

/// A member's report on the upgrade work it was asked to do (published in its member key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeReport {
    /// The [`UpgradeState::id`] of the run.
    pub id: u64,
    /// The step the report is about.
    pub step: Step,
    /// What it does or did, in words.
    pub what: String,
    pub outcome: Outcome,
    /// The leader's new system identifier, once upgraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<u64>,
}

/// What a member does because of the `upgrade` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberRule {
    /// Nothing special: the HA loop as usual.
    Normal,
    /// A replica stays stopped while the leader's data is upgraded.
    HoldStopped,
    /// A replica whose data is of the old system: set it aside (kept for the way back) and switch to the new
    /// binaries; the HA loop then creates it again from the new leader.
    SetAside { bin_dir: PathBuf },
}

/// The rule for member `me`, whose data holds `data_system` (None: no data).
pub fn member_rule(state: Option<&UpgradeState>, me: &str, data_system: Option<u64>) -> MemberRule {
    let Some(s) = state else {
        return MemberRule::Normal;
    };
    if s.leader == me || s.rolled_back {
        return MemberRule::Normal;
    }
    // A replica of the new system streams; one still on the old system is set aside once the new one exists.
    let stale = matches!((s.to_system, data_system), (Some(to), Some(have)) if have != to);
    match s.step {
        _ if stale => MemberRule::SetAside {
            bin_dir: s.bin_dir.clone(),
        },
        Step::Check | Step::Pause => MemberRule::Normal,
        Step::StopReplicas | Step::UpgradeLeader => MemberRule::HoldStopped,
        // Failed after the leader's upgrade without a new system recorded: keep the replicas (the way back) down.
        Step::RecreateReplicas | Step::Resume | Step::Done if s.to_system.is_none() => MemberRule::HoldStopped,
        Step::RecreateReplicas | Step::Resume | Step::Done => MemberRule::Normal,
    }
}

/// Why the cluster cannot be upgraded now (pure), or the leader and its system identifier.
pub fn preflight(view: &ClusterView) -> Result<(String, u64), String> {
    if let Some((state, _)) = &view.upgrade {
        if state.active() {
            return Err(format!(
                "an upgrade is already running ({}); see `pgha ctl list`",
                state.describe()
            ));
        }
    }
    let Some(leader) = view.leader_member() else {
        return Err("the cluster has no leader".into());
    };
    if leader.role != PgRole::Primary || leader.state != PgState::Running {
        return Err(format!("the leader {} is not running as primary", leader.name));
    }
    let system = view
        .system_identifier()
        .ok_or("the cluster's system identifier is not known yet")?;
    let lagging: Vec<&str> = view
        .members
        .values()
        .filter(|m| m.name != leader.name && m.state != PgState::Streaming)
        .map(|m| m.name.as_str())
        .collect();
    if !lagging.is_empty() {
        return Err(format!(
            "every replica must stream before an upgrade; not streaming: {}",
            lagging.join(", ")
        ));
    }
    Ok((leader.name.clone(), system))
}

/// What ctl waits for at a step (pure): None when every member is where the step needs it, else who is not.
pub fn waiting_for(view: &ClusterView, state: &UpgradeState) -> Option<String> {
    let replicas = view.members.values().filter(|m| m.name != state.leader);
    let not: Vec<String> = match state.step {
        Step::StopReplicas => replicas
            .filter(|m| m.state != PgState::Stopped)
            .map(|m| format!("{} ({})", m.name, m.state.label()))
            .collect(),
        Step::RecreateReplicas => replicas
            .filter(|m| m.state != PgState::Streaming || state.to_system.is_some_and(|to| m.system_identifier != to))
            .map(|m| format!("{} ({})", m.name, m.state.label()))
            .collect(),
        _ => Vec::new(),
    };
    (!not.is_empty()).then(|| not.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::{Initialize, LeaderKey, MemberInfo};

    fn state(step: Step, to: Option<u64>, failed: bool, rolled_back: bool) -> UpgradeState {
        UpgradeState {
            id: 1,
            bin_dir: "/new/bin".into(),
            mode: TransferMode::Link,
            leader: "db1".into(),
            from_system: 10,
            to_system: to,
            step,
            failed: failed.then(|| "boom".into()),
            rolled_back,
        }
    }

    #[test]
    fn steps_in_order() {
        let mut step = Step::Check;
        let mut seen = vec![step.name()];
        while let Some(next) = step.next() {
            assert!(next > step, "{next:?} after {step:?}");
            step = next;
            seen.push(step.name());
        }
        assert_eq!(
            seen,
            [
                "check",
                "pause",
                "stop_replicas",
                "upgrade_leader",
                "recreate_replicas",
                "resume",
                "done"
            ]
        );
    }

    /// (case, state, member, its data's system, rule)
    type Row<'a> = (&'a str, Option<UpgradeState>, &'a str, Option<u64>, MemberRule);

    #[test]
    fn member_rules() {
        let aside = MemberRule::SetAside {
            bin_dir: "/new/bin".into(),
        };
        let table: Vec<Row> = vec![
            ("no upgrade", None, "db2", Some(10), MemberRule::Normal),
            (
                "check",
                Some(state(Step::Check, None, false, false)),
                "db2",
                Some(10),
                MemberRule::Normal,
            ),
            (
                "pause",
                Some(state(Step::Pause, None, false, false)),
                "db2",
                Some(10),
                MemberRule::Normal,
            ),
            (
                "replicas stop",
                Some(state(Step::StopReplicas, None, false, false)),
                "db2",
                Some(10),
                MemberRule::HoldStopped,
            ),
            (
                "the leader is never held",
                Some(state(Step::UpgradeLeader, None, false, false)),
                "db1",
                Some(10),
                MemberRule::Normal,
            ),
            (
                "held while the leader upgrades",
                Some(state(Step::UpgradeLeader, None, false, false)),
                "db2",
                Some(10),
                MemberRule::HoldStopped,
            ),
            (
                "old data once the new system exists",
                Some(state(Step::RecreateReplicas, Some(20), false, false)),
                "db2",
                Some(10),
                aside.clone(),
            ),
            (
                "already re-created",
                Some(state(Step::RecreateReplicas, Some(20), false, false)),
                "db2",
                Some(20),
                MemberRule::Normal,
            ),
            (
                "no data: cloned as usual",
                Some(state(Step::RecreateReplicas, Some(20), false, false)),
                "db2",
                None,
                MemberRule::Normal,
            ),
            (
                "a member back after the upgrade is re-created",
                Some(state(Step::Done, Some(20), false, false)),
                "db3",
                Some(10),
                aside.clone(),
            ),
            (
                "rolled back: the old version runs everywhere",
                Some(state(Step::UpgradeLeader, None, true, true)),
                "db2",
                Some(10),
                MemberRule::Normal,
            ),
            (
                "failed, not rolled back: replicas stay down (the way back)",
                Some(state(Step::UpgradeLeader, None, true, false)),
                "db2",
                Some(10),
                MemberRule::HoldStopped,
            ),
            (
                "failed at the check: nothing was stopped",
                Some(state(Step::Check, None, true, false)),
                "db2",
                Some(10),
                MemberRule::Normal,
            ),
        ];
        for (case, s, me, data, want) in table {
            assert_eq!(member_rule(s.as_ref(), me, data), want, "{case}");
        }
    }

    fn view(replica_state: PgState, upgrade: Option<UpgradeState>) -> ClusterView {
        let mut v = ClusterView {
            initialize: Some(Initialize::System(10)),
            leader: Some(LeaderKey {
                name: "db1".into(),
                lease: 1,
                mod_revision: 1,
            }),
            upgrade: upgrade.map(|u| (u, 1)),
            ..ClusterView::default()
        };
        v.members.insert(
            "db1".into(),
            MemberInfo::for_test("db1", PgRole::Primary, PgState::Running, 5),
        );
        v.members.insert(
            "db2".into(),
            MemberInfo::for_test("db2", PgRole::Replica, replica_state, 5),
        );
        v
    }

    #[test]
    fn preflight_table() {
        let ok = preflight(&view(PgState::Streaming, None));
        assert_eq!(ok, Ok(("db1".to_string(), 10)));
        let lagging = preflight(&view(PgState::Running, None)).expect_err("a replica not streaming");
        assert!(lagging.contains("db2"), "{lagging}");
        let running = preflight(&view(
            PgState::Streaming,
            Some(state(Step::StopReplicas, None, false, false)),
        ))
        .expect_err("an upgrade runs");
        assert!(running.contains("already running"), "{running}");
        let after_done = preflight(&view(
            PgState::Streaming,
            Some(state(Step::Done, Some(20), false, false)),
        ));
        assert!(after_done.is_ok(), "a finished upgrade does not block the next");
        let mut no_leader = view(PgState::Streaming, None);
        no_leader.leader = None;
        assert!(preflight(&no_leader).is_err());
    }

    #[test]
    fn waiting() {
        let s = state(Step::StopReplicas, None, false, false);
        assert_eq!(
            waiting_for(&view(PgState::Streaming, None), &s).as_deref(),
            Some("db2 (streaming)")
        );
        assert_eq!(waiting_for(&view(PgState::Stopped, None), &s), None);
        let r = state(Step::RecreateReplicas, Some(20), false, false);
        let mut v = view(PgState::Streaming, None);
        assert!(waiting_for(&v, &r).is_some(), "streaming, but still the old system");
        if let Some(m) = v.members.get_mut("db2") {
            m.system_identifier = 20;
        }
        assert_eq!(waiting_for(&v, &r), None);
    }

    #[test]
    fn describe_says_what_happened() {
        let failed = state(Step::UpgradeLeader, None, true, true).describe();
        assert!(
            failed.contains("failed at upgrade_leader: boom") && failed.contains("rolled back"),
            "{failed}"
        );
        assert!(state(Step::Done, Some(2), false, false).describe().ends_with("done"));
    }
}
