//! The HA brain: a pure function from (cluster view, local state) to the one next action and its reason.
//!
//! One action per loop keeps every transition visible in the log; the loop runs again at once after an action.
//! Safety rules encoded here: a primary without a valid leader lease demotes; only the holder of the leader key
//! promotes; a data directory of another cluster is never touched; nothing races or demotes while paused (except a
//! primary whose own lease ran out, which always steps down: invariant 1 outranks maintenance mode).
//! Liveness (invariant 7): a standby that does not stream from the leader is re-pointed at once (even before it
//! accepts connections), rewound after [`STALL_TTLS`] x ttl, and re-cloned (or reported as needing it) after as long
//! again; operator commands are decisions too, so none can make a node writable without its lease.

use super::cascade::{self, Source};
use crate::cluster::model::{ClusterView, Initialize, NodeCommand};

/// A standby that has not streamed from a serving leader for this many TTLs is rewound; as long again after a rewind,
/// re-cloned (`rewind_fallback_reinit`) or reported as needing a reinit.
pub const STALL_TTLS: u64 = 5;

/// What the local data directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalData {
    Missing,
    Present { system_identifier: u64, standby: bool },
}

/// What the local PostgreSQL is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalPg {
    Stopped,
    Running {
        in_recovery: bool,
        following: Option<(String, u16)>,
    },
    /// The postmaster runs but accepts no connections yet (crash recovery, or a standby not consistent yet); `for_ms`
    /// since it was noticed.
    Starting {
        following: Option<(String, u16)>,
        for_ms: u64,
    },
    /// It was running under this pgha and died; `for_ms` since it was noticed.
    Crashed {
        for_ms: u64,
    },
}

/// Everything the decision needs about this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalState {
    pub name: String,
    pub data: LocalData,
    pub pg: LocalPg,
    /// Our session lease (member key and leader key are bound to it), when we have one.
    pub lease: Option<i64>,
    /// Our lease is still valid by our own clock (last successful keepalive send + ttl - margin).
    pub lease_valid: bool,
    pub nofailover: bool,
    /// Wall clock (milliseconds since the epoch), for scheduled switchovers.
    pub now_unix_ms: u64,
    /// We have held a DCS session for a TTL: members holding data have had time to publish themselves.
    pub settled: bool,
    /// This standby was a primary until it started without a leader to follow: its history may have diverged from
    /// whoever leads next, so it must be rewound from that leader, not merely re-pointed.
    pub rewind_pending: bool,
    /// How long this standby has not streamed while a serving leader exists (0: streaming, or not applicable).
    pub stalled_ms: u64,
    /// A rewind was already tried during this stall.
    pub stall_rewound: bool,
    /// `postgresql.rewind_fallback_reinit`: a standby that cannot rejoin may be wiped and re-cloned.
    pub allow_reinit: bool,
    /// Our `replicatefrom` tag: the member to stream from instead of the leader while it can serve (`cascade.rs`).
    pub replicatefrom: Option<String>,
    /// Our `pre_promote` vetoed a promotion a moment ago (`hooks::VETO_HOLD_TTLS`): no race, no takeover, and a
    /// leader key that still names us is released, so another member is promoted.
    pub promotion_held: bool,
    /// Some `create_replica` method has `no_leader`: without data and without a leader, we may restore (`no_leader.rs`).
    pub restore_without_leader: bool,
    /// The standby cluster setting our PostgreSQL was last configured to follow (we were its standby leader), if any.
    pub standby_of: Option<crate::cluster::standby::StandbyCluster>,
}

/// The next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Race for the `initialize` key; the winner runs initdb and becomes the first primary.
    Initialize,
    /// Clone the leader with pg_basebackup.
    Clone { host: String, port: u16 },
    /// No leader and no data: create the data directory with the `no_leader` methods, then start as a replica.
    RestoreWithoutLeader,
    /// Refuse to touch a data directory that belongs to another cluster.
    RefuseForeignData { expected: u64, found: u64 },
    /// Start PostgreSQL as a standby (following `upstream` when known).
    StartReplica { upstream: Option<(String, u16)> },
    /// Start PostgreSQL as the primary (we hold the leader key).
    StartPrimary,
    /// Re-point a running replica at the leader (or at the member its `replicatefrom` tag names).
    Follow { host: String, port: u16 },
    /// A former primary rejoins: pg_rewind from the leader, then start as its replica.
    Rewind { host: String, port: u16 },
    /// No leader: ask the peers for their WAL positions and take the key if we are the best candidate.
    Race,
    /// A running primary without a leader key (e.g. pgha restarted): take the key.
    TakeLeader,
    /// Keep leading: renew the lease, manage slots.
    Lead,
    /// Planned switchover: checkpoint, stop cleanly (replicas receive everything), release the key to the candidate.
    HandOver { candidate: String },
    /// We are the switchover/failover candidate and the key is free: take it and promote, without a race.
    TakeOver,
    /// We hold the leader key while PostgreSQL is a standby: promote it.
    Promote,
    /// Stop being writable at once, then rejoin as a replica.
    Demote,
    /// Our lease ran out by our own clock: fast shutdown (the standbys receive every WAL record), immediate at the
    /// fence instant, then rejoin as a replica.
    StepDown,
    /// A standby that cannot rejoin: wipe it and clone the leader again.
    Reclone { host: String, port: u16 },
    /// A standby that cannot rejoin and may not be wiped (`rewind_fallback_reinit` off): published, operator's call.
    NeedsReinit,
    /// Carry out an operator command (`commands/<name>`), then delete it.
    RunCommand { command: NodeCommand, mod_revision: i64 },
    /// Delete an operator command that does not apply in this state, logging why.
    DropCommand { mod_revision: i64, why: String },
    /// `ctl upgrade`: a replica stops (fast) and stays stopped while the leader's data is upgraded.
    UpgradeStop,
    /// `ctl upgrade`: a replica's data is of the old system: set it aside and switch to the new binaries; it is
    /// then created again from the upgraded leader.
    UpgradeSetAside { bin_dir: std::path::PathBuf },
    /// Give up the leader key so another member can be promoted now.
    ReleaseLeader,
    /// The leader key names us but belongs to a previous session of ours: delete it (CAS on its revision).
    DeleteStaleLeader { mod_revision: i64 },
    /// The leader key names us from a previous session and our data is the primary's: rebind it to our current
    /// lease in one CAS, so no one can promote in between.
    ReclaimLeader { mod_revision: i64 },
    /// Standby cluster: configure (and start, or reload) our PostgreSQL to follow the remote primary.
    FollowRemote {
        remote: crate::cluster::standby::StandbyCluster,
    },
    /// Standby cluster: keep leading as the standby leader (read-only, no fence; our replicas' slots).
    LeadStandby,
    /// The standby setting appeared while we lead a primary: stop it at once (fenced like a demotion), pg_rewind it
    /// from the remote, follow the remote; we keep the leader key.
    DemoteToStandby,
    /// The standby setting is gone while we follow a remote: promote (`ctl promote-cluster`).
    PromoteCluster,
    /// Nothing to do now.
    Wait,
}

/// An action with the reason that will be logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub reason: String,
}

fn d(action: Action, reason: impl Into<String>) -> Decision {
    Decision {
        action,
        reason: reason.into(),
    }
}

/// Decides the next action: the HA state first, then a pending operator command when the HA state leaves room.
pub fn decide(view: &ClusterView, local: &LocalState) -> Decision {
    let decision = decide_state(view, local);
    let Some(pending) = view.commands.get(&local.name) else {
        return decision;
    };
    if !matches!(decision.action, Action::Wait | Action::Lead) {
        return decision; // the HA step first (a demotion, a start, a re-point); the command waits one more loop
    }
    let mod_revision = pending.mod_revision;
    let ours = view
        .leader
        .as_ref()
        .is_some_and(|l| l.name == local.name && Some(l.lease) == local.lease);
    let drop = |why: &str| {
        d(
            Action::DropCommand {
                mod_revision,
                why: why.into(),
            },
            why.to_string(),
        )
    };
    let run = |what: &str| {
        d(
            Action::RunCommand {
                command: pending.command.clone(),
                mod_revision,
            },
            format!("operator command: {what}"),
        )
    };
    let running = matches!(local.pg, LocalPg::Running { .. });
    match (&pending.command, &local.pg) {
        (NodeCommand::Reload, _) if running => run("reload"),
        (NodeCommand::Reload, _) => drop("reload: PostgreSQL is not running, nothing to reload"),
        (NodeCommand::Restart { .. }, LocalPg::Running { in_recovery: false, .. }) if !(ours && local.lease_valid) => {
            drop("restart refused: a primary restarts only while it holds a valid leader lease")
        }
        (NodeCommand::Restart { .. }, _) if running => run("restart"),
        (NodeCommand::Restart { .. }, _) => drop("restart: PostgreSQL is not running; the HA loop starts it"),
        (NodeCommand::Reinit, _) if ours => drop("reinit refused on the leader"),
        (NodeCommand::Reinit, _) if view.leader_member().is_none() => drop("reinit refused: no leader to clone from"),
        (NodeCommand::Reinit, _) => run("reinit"),
        (NodeCommand::UpgradeCheck { .. }, _) => run("upgrade check"),
        (NodeCommand::Upgrade { .. }, LocalPg::Running { in_recovery: false, .. }) if ours && local.lease_valid => {
            run("upgrade")
        }
        (NodeCommand::Upgrade { .. }, _) => drop("upgrade refused: only the leader, running as primary, upgrades"),
    }
}

fn decide_state(view: &ClusterView, local: &LocalState) -> Decision {
    let leader = view.leader.as_ref();
    let ours = leader.is_some_and(|l| l.name == local.name && Some(l.lease) == local.lease);
    if let Some(decision) = upgrade_gate(view, local).filter(|_| !ours) {
        return decision;
    }
    let standby = match data_gate(view, local) {
        Ok(standby) => standby,
        Err(decision) => return decision,
    };
    if let Some(stale) = leader.filter(|l| l.name == local.name && Some(l.lease) != local.lease) {
        return stale_key(local, stale.mod_revision, standby);
    }
    if let Some(decision) = super::standby_cluster::decide(view, local, ours) {
        return decision;
    }
    let c = Ctx {
        view,
        local,
        leader,
        ours,
        paused: view.config.paused,
        leader_pg: view
            .leader_member()
            .filter(|_| !ours)
            .map(|m| (m.pg_host.clone(), m.pg_port)),
        rewind_wait: rewind_wait(view),
        // Becoming writable needs the lease valid by our own clock, not just a view naming us: the view may have
        // been read before a freeze (SIGSTOP, long pause), and only a valid lease proves the key is still ours now.
        may_write: local.lease_valid,
        standby,
    };
    match &local.pg {
        LocalPg::Running { in_recovery: false, .. } => running_primary(c),
        LocalPg::Running {
            in_recovery: true,
            following,
        } => running_standby(c, following),
        LocalPg::Starting { following, .. } if standby => starting_standby(c, following),
        LocalPg::Starting { for_ms, .. } => starting_primary(c, *for_ms),
        LocalPg::Crashed { .. } | LocalPg::Stopped => stopped(c),
    }
}

/// What `decide_state` knows once the data directory and the leader key are sorted out.
struct Ctx<'a> {
    view: &'a ClusterView,
    local: &'a LocalState,
    leader: Option<&'a crate::cluster::model::LeaderKey>,
    /// The leader key names us with our current lease.
    ours: bool,
    paused: bool,
    /// The leader's PostgreSQL address (not ours).
    leader_pg: Option<(String, u16)>,
    /// Why pg_rewind must wait, if it must (see [`rewind_wait`]).
    rewind_wait: Option<Decision>,
    may_write: bool,
    /// The data directory is a standby's.
    standby: bool,
}

/// pg_rewind takes the source's timeline from its last checkpoint: right after a promotion that is still the old
/// timeline and pg_rewind would find nothing to rewind, so a former primary waits for that first checkpoint.
/// pg_rewind needs its source up: against a leader that is starting, stopping or crashed it fails, and a failure
/// must not be mistaken for a history that cannot be rewound (that one is re-cloned).
fn rewind_wait(view: &ClusterView) -> Option<Decision> {
    if super::standby_cluster::leader_serves(view) {
        return super::standby_cluster::rewind_wait(view);
    }
    view.leader_member().and_then(|m| {
        if m.role != crate::cluster::model::PgRole::Primary || m.state != crate::cluster::model::PgState::Running {
            return Some(d(
                Action::Wait,
                format!("waiting for {}'s PostgreSQL to run as primary before pg_rewind", m.name),
            ));
        }
        (m.checkpoint_timeline != 0 && m.checkpoint_timeline < m.timeline).then(|| {
            d(
                Action::Wait,
                format!(
                    "waiting for {}'s first checkpoint on timeline {} before pg_rewind",
                    m.name, m.timeline
                ),
            )
        })
    })
}

/// What a member that does not lead does because of a running (or finished) major upgrade (see
/// `cluster::upgrade::member_rule`); None: the usual HA loop.
fn upgrade_gate(view: &ClusterView, local: &LocalState) -> Option<Decision> {
    use crate::cluster::upgrade::{member_rule, MemberRule};
    let data_system = match &local.data {
        LocalData::Present { system_identifier, .. } => Some(*system_identifier),
        LocalData::Missing => None,
    };
    match member_rule(view.upgrade.as_ref().map(|(s, _)| s), &local.name, data_system) {
        MemberRule::Normal => None,
        MemberRule::HoldStopped => Some(match local.pg {
            LocalPg::Stopped | LocalPg::Crashed { .. } => d(
                Action::Wait,
                "upgrade: this replica stays stopped while the leader's data is upgraded",
            ),
            _ => d(
                Action::UpgradeStop,
                "upgrade: stopping this replica while the leader's data is upgraded",
            ),
        }),
        MemberRule::SetAside { bin_dir } => Some(d(
            Action::UpgradeSetAside { bin_dir },
            "upgrade: this replica's data is of the old system: setting it aside to create it again from the \
             upgraded leader",
        )),
    }
}

/// The data directory against the cluster: Ok(whether it is a standby's) to go on, or the decision when there is no
/// data, an unfinished bootstrap, data to adopt, or a foreign system.
fn data_gate(view: &ClusterView, local: &LocalState) -> Result<bool, Decision> {
    let bootstrapping = view.initialize.as_ref().is_some_and(|i| i.pending_by(&local.name));
    match &local.data {
        LocalData::Missing => Err(decide_without_data(view, local)),
        LocalData::Present { .. } if bootstrapping && local.lease.is_none() => Err(d(
            Action::Wait,
            "our bootstrap is unfinished: waiting for a DCS session to resume it",
        )),
        LocalData::Present { .. } if bootstrapping => {
            Err(d(Action::Initialize, "our bootstrap is unfinished: resuming it"))
        }
        LocalData::Present {
            system_identifier,
            standby,
        } if view.initialize.is_none() => {
            // No cluster in the DCS yet, and data here: adopt it (Patroni's "convert an existing cluster") rather
            // than initdb a new one beside it.
            Err(match () {
                _ if *standby => d(
                    Action::Wait,
                    "no cluster in the DCS yet, and standby data cannot start one: waiting for a primary to be adopted",
                ),
                _ if local.nofailover => d(
                    Action::Wait,
                    "no cluster in the DCS yet, and a nofailover member never starts one",
                ),
                _ if local.lease.is_none() => d(Action::Wait, "no cluster yet: waiting for a DCS session"),
                _ => d(
                    Action::Initialize,
                    format!(
                        "no cluster in the DCS yet: adopting the existing data directory (system {system_identifier})"
                    ),
                ),
            })
        }
        LocalData::Present {
            system_identifier,
            standby,
        } => {
            if let Some(expected) = view.system_identifier() {
                if expected != *system_identifier {
                    let reason = format!(
                        "data directory belongs to system {system_identifier}, the cluster is system {expected}"
                    );
                    return Err(d(
                        Action::RefuseForeignData {
                            expected,
                            found: *system_identifier,
                        },
                        reason,
                    ));
                }
            }
            Ok(*standby)
        }
    }
}

/// The leader key names us from an earlier session.
fn stale_key(local: &LocalState, mod_revision: i64, standby: bool) -> Decision {
    if local.lease.is_none() {
        return d(
            Action::Wait,
            "the leader key is ours from a previous session: waiting for a DCS session",
        );
    }
    let primary_data = match &local.pg {
        LocalPg::Running { in_recovery, .. } => !in_recovery,
        LocalPg::Stopped | LocalPg::Crashed { .. } | LocalPg::Starting { .. } => !standby,
    };
    if primary_data {
        d(
            Action::ReclaimLeader { mod_revision },
            "the leader key is ours from a previous session: reclaiming it",
        )
    } else {
        d(
            Action::DeleteStaleLeader { mod_revision },
            "stale leader key of ours on a standby: releasing it",
        )
    }
}

/// PostgreSQL runs as a primary.
fn running_primary(c: Ctx<'_>) -> Decision {
    let Ctx {
        view,
        local,
        leader,
        ours,
        paused,
        ..
    } = c;
    if ours && local.lease_valid {
        if let Some(sw) = view.switchover.as_ref() {
            let from_us = sw.leader.as_deref().is_none_or(|l| l == local.name);
            let not_sync = view.sync_members().is_some_and(|k| !k.members.contains(&sw.candidate));
            if from_us && sw.candidate != local.name && sw.due(local.now_unix_ms) && not_sync {
                return d(
                    Action::Lead,
                    format!("switchover to {} refused: not a synchronous standby", sw.candidate),
                );
            }
            if from_us && sw.candidate != local.name && sw.due(local.now_unix_ms) {
                let candidate = sw.candidate.clone();
                return d(
                    Action::HandOver {
                        candidate: candidate.clone(),
                    },
                    format!("switchover to {candidate}"),
                );
            }
        }
        return d(Action::Lead, "holding the leader lease");
    }
    if ours {
        return d(
            Action::StepDown,
            "leader lease not renewed in time: stepping down before anyone can promote",
        );
    }
    match leader {
        None if local.lease.is_some() => d(Action::TakeLeader, "running primary without a leader key"),
        None => d(Action::Wait, "running primary: waiting for a DCS session"),
        Some(l) if paused => d(
            Action::Wait,
            format!("paused: {} holds the leader key, not demoting", l.name),
        ),
        Some(l) => d(Action::Demote, format!("{} holds the leader key", l.name)),
    }
}

/// PostgreSQL runs as a standby.
fn running_standby(c: Ctx<'_>, following: &Option<(String, u16)>) -> Decision {
    let Ctx {
        view,
        local,
        leader,
        ours,
        paused,
        leader_pg,
        rewind_wait,
        may_write,
        ..
    } = c;
    if ours && !may_write {
        return d(
            Action::Wait,
            "the leader key names us but our lease is not valid by our clock: not promoting",
        );
    }
    if ours && local.promotion_held {
        return d(
            Action::ReleaseLeader,
            "pre_promote vetoed our promotion: releasing the leader key",
        );
    }
    if ours {
        return d(Action::Promote, "won the leader key");
    }
    if leader.is_none() {
        if let Some(sw) = view.switchover.as_ref().filter(|sw| sw.due(local.now_unix_ms)) {
            let not_sync = view.sync_members().is_some_and(|k| !k.members.contains(&local.name));
            if sw.candidate == local.name && local.lease.is_some() && not_sync {
                return d(
                    Action::Wait,
                    "failover candidate, but not a synchronous standby: it may lack acknowledged commits",
                );
            }
            if sw.candidate == local.name && local.promotion_held {
                return d(
                    Action::Wait,
                    "switchover/failover candidate, but pre_promote vetoed our promotion: not taking over",
                );
            }
            if sw.candidate == local.name && local.lease.is_some() && may_write {
                return d(
                    Action::TakeOver,
                    "switchover/failover candidate: taking the free leader key",
                );
            }
            if sw.leader.as_deref() == Some(local.name.as_str()) {
                return d(Action::Wait, format!("handing over to {}: not racing", sw.candidate));
            }
            if sw.reserved(local.now_unix_ms) {
                return d(Action::Wait, format!("the leader key is reserved for {}", sw.candidate));
            }
        }
    }
    match leader {
        None if paused => d(Action::Wait, "paused: no leader, not racing"),
        None if local.nofailover => d(Action::Wait, "no leader, but this member is nofailover"),
        None if local.promotion_held => d(
            Action::Wait,
            "no leader, but pre_promote vetoed our promotion a moment ago: not racing",
        ),
        None if local.lease.is_none() => d(Action::Wait, "no leader: waiting for a DCS session to race"),
        None if !may_write => d(Action::Wait, "no leader, but our lease is not valid by our clock yet"),
        None => d(Action::Race, "no leader"),
        Some(_) => follow_leader(view, local, following, leader_pg, rewind_wait),
    }
}

/// A standby's PostgreSQL starting, not accepting connections yet.
fn starting_standby(c: Ctx<'_>, following: &Option<(String, u16)>) -> Decision {
    let Ctx {
        view,
        local,
        leader,
        leader_pg,
        rewind_wait,
        ..
    } = c;
    match leader {
        Some(l) if l.name == local.name => d(
            Action::Wait,
            "the leader key names us but PostgreSQL is not ready: waiting for it before promoting",
        ),
        Some(_) => follow_leader(view, local, following, leader_pg, rewind_wait),
        None => d(
            Action::Wait,
            "no leader, and PostgreSQL does not accept connections yet: not racing",
        ),
    }
}

/// Primary data starting (crash recovery).
fn starting_primary(c: Ctx<'_>, for_ms: u64) -> Decision {
    let Ctx {
        view,
        leader,
        ours,
        paused,
        ..
    } = c;
    match leader {
        // Crash recovery of primary data: ours, it is the primary starting in place (the fence is armed).
        Some(_) if ours && for_ms >= view.config.primary_start_timeout_ms => d(
            Action::Demote,
            "PostgreSQL did not become ready within primary_start_timeout: stopping it and handing over",
        ),
        Some(_) if ours => d(Action::Wait, "PostgreSQL is starting as the primary (recovery)"),
        Some(l) if paused => d(
            Action::Wait,
            format!(
                "paused: {} holds the leader key, not stopping our starting primary",
                l.name
            ),
        ),
        Some(l) => d(
            Action::Demote,
            format!(
                "{} holds the leader key: stopping our starting primary before it accepts writes",
                l.name
            ),
        ),
        None => d(Action::Wait, "PostgreSQL is starting (recovery): no leader yet"),
    }
}

/// PostgreSQL stopped or crashed.
fn stopped(c: Ctx<'_>) -> Decision {
    let Ctx {
        view,
        local,
        leader,
        ours,
        leader_pg,
        rewind_wait,
        may_write,
        standby,
        ..
    } = c;
    match &local.pg {
        LocalPg::Crashed { .. } | LocalPg::Stopped if ours && !may_write => d(
            Action::Wait,
            "the leader key names us but our lease is not valid by our clock: not starting as primary",
        ),
        LocalPg::Crashed { for_ms } if ours => {
            if *for_ms < view.config.primary_start_timeout_ms {
                d(
                    Action::StartPrimary,
                    "PostgreSQL crashed on the primary: restarting in place",
                )
            } else {
                d(
                    Action::ReleaseLeader,
                    "PostgreSQL did not restart within primary_start_timeout: handing over",
                )
            }
        }
        _ => {
            if ours {
                return d(Action::StartPrimary, "holding the leader key with PostgreSQL stopped");
            }
            match leader_pg {
                Some((host, port)) if !standby => {
                    rewind_wait.unwrap_or_else(|| d(Action::Rewind { host, port }, "former primary rejoins the leader"))
                }
                Some(leader_addr) => {
                    let (addr, _, why) = upstream(view, local, leader_addr);
                    d(
                        Action::StartReplica { upstream: Some(addr) },
                        format!("starting as replica: {why}"),
                    )
                }
                None if leader.is_some() => d(Action::Wait, "the leader has not published its address yet"),
                None => d(
                    Action::StartReplica { upstream: None },
                    "no leader: starting as a standby to race",
                ),
            }
        }
    }
}

/// A standby (running, or starting and not consistent yet) with a leader: rewind a former primary, re-point at the
/// leader, and when it still does not stream after [`STALL_TTLS`] x ttl, rewind it, then re-clone it.
fn follow_leader(
    view: &ClusterView,
    local: &LocalState,
    following: &Option<(String, u16)>,
    leader_pg: Option<(String, u16)>,
    rewind_wait: Option<Decision>,
) -> Decision {
    let leader_name = view.leader.as_ref().map(|l| l.name.as_str()).unwrap_or("?");
    let Some((host, port)) = leader_pg else {
        return d(
            Action::Wait,
            format!("{leader_name} holds the leader key but has not published its address"),
        );
    };
    if local.rewind_pending {
        return rewind_wait.unwrap_or_else(|| {
            d(
                Action::Rewind { host, port },
                format!("{leader_name} is the leader and we were a primary: rewinding before following it"),
            )
        });
    }
    let ((up_host, up_port), source, why) = upstream(view, local, (host.clone(), port));
    if following.as_ref() != Some(&(up_host.clone(), up_port)) {
        return d(
            Action::Follow {
                host: up_host,
                port: up_port,
            },
            why,
        );
    }
    let bound = STALL_TTLS.saturating_mul(view.config.ttl_ms);
    if local.stalled_ms < bound {
        return d(Action::Wait, format!("replicating from {source}"));
    }
    let secs = local.stalled_ms / 1000;
    match () {
        _ if !local.stall_rewound => rewind_wait.unwrap_or_else(|| {
            d(
                Action::Rewind { host, port },
                format!("not streaming from {source} for {secs} s: rewinding from the leader {leader_name}"),
            )
        }),
        _ if local.allow_reinit => d(
            Action::Reclone { host, port },
            format!("still not streaming from {leader_name} after a rewind: re-cloning (rewind_fallback_reinit)"),
        ),
        _ => d(
            Action::NeedsReinit,
            format!(
                "still not streaming from {leader_name} after a rewind: needs `pgha ctl reinit` \
                 (or postgresql.rewind_fallback_reinit = true)"
            ),
        ),
    }
}

/// Where a standby streams from: the leader at `leader_addr`, or the member its `replicatefrom` tag names while that
/// one can serve. Returns the address, the source as the log names it, and why.
fn upstream(view: &ClusterView, local: &LocalState, leader_addr: (String, u16)) -> ((String, u16), String, String) {
    let leader_name = view.leader.as_ref().map(|l| l.name.as_str()).unwrap_or("?");
    match cascade::source(view, &local.name, local.replicatefrom.as_deref()) {
        Source::Leader => (
            leader_addr,
            leader_name.to_string(),
            format!("{leader_name} is the leader"),
        ),
        Source::Member(m) => (
            (m.pg_host.clone(), m.pg_port),
            format!("{} (replicatefrom)", m.name),
            format!("cascading from {} (replicatefrom); {leader_name} is the leader", m.name),
        ),
        Source::Fallback(why) => (
            leader_addr,
            leader_name.to_string(),
            format!("{why}: following the leader {leader_name}"),
        ),
    }
}

fn decide_without_data(view: &ClusterView, local: &LocalState) -> Decision {
    match &view.initialize {
        None if local.nofailover => d(
            Action::Wait,
            "no cluster yet, and a nofailover member never bootstraps it",
        ),
        None if local.lease.is_none() => d(Action::Wait, "no cluster yet: waiting for a DCS session to race for it"),
        None => match view
            .members
            .values()
            .find(|m| m.name != local.name && m.system_identifier != 0)
        {
            Some(m) => d(
                Action::Wait,
                format!(
                    "no cluster yet, but {} holds data: it starts the cluster, we clone it",
                    m.name
                ),
            ),
            None if !local.settled => d(
                Action::Wait,
                "no cluster yet: giving members that hold data a moment to publish before racing to initialize",
            ),
            None => d(Action::Initialize, "no cluster yet: racing to initialize it"),
        },
        Some(Initialize::Pending(name)) if *name == local.name => d(Action::Initialize, "resuming our bootstrap"),
        Some(Initialize::Pending(name)) => d(Action::Wait, format!("{name} is bootstrapping the cluster")),
        Some(_) => match view.leader_member() {
            Some(m)
                if m.name != local.name
                    && (m.role == crate::cluster::model::PgRole::Primary
                        || super::standby_cluster::leader_serves(view)) =>
            {
                // Patroni's `clonefrom` tag: a streaming replica that offers itself, so new members load it, not the
                // primary.
                let source = view
                    .members
                    .values()
                    .find(|r| {
                        r.name != local.name
                            && r.tag_set("clonefrom")
                            && r.state == crate::cluster::model::PgState::Streaming
                    })
                    .unwrap_or(m);
                d(
                    Action::Clone {
                        host: source.pg_host.clone(),
                        port: source.pg_port,
                    },
                    match source.name == m.name {
                        true => format!("cloning the leader {}", m.name),
                        false => format!("cloning {} (tagged clonefrom)", source.name),
                    },
                )
            }
            _ => super::no_leader::restore(view, local)
                .unwrap_or_else(|| d(Action::Wait, "no running leader to clone from")),
        },
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
