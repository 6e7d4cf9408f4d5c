//! Table-driven tests of `decide`: one row per situation of DESIGN.md section 4/6.

use std::collections::BTreeMap;

use super::*;
use crate::cluster::model::{DynamicConfig, LeaderKey, MemberInfo, PgRole, PgState};

const SYSID: u64 = 7_000_000_000_000_000_001;

fn member(name: &str, role: PgRole) -> MemberInfo {
    MemberInfo {
        name: name.into(),
        api_addr: format!("{name}:7400"),
        pg_host: format!("{name}-host"),
        pg_port: 5432,
        role,
        state: PgState::Running,
        timeline: 1,
        checkpoint_timeline: 1,
        receive_lsn: 100,
        replay_lsn: 100,
        pending_restart: false,
        nofailover: false,
        failover_priority: 0,
        noloadbalance: false,
        tags: BTreeMap::new(),
        system_identifier: SYSID,
        paused: false,
        version: String::new(),
        note: None,
        slots: Vec::new(),
        upstream: None,
        upgrade: None,
        clone: None,
    }
}

/// A view where `leader` (if any) holds the key with lease 7 and publishes itself as primary.
fn view(leader: Option<&str>) -> ClusterView {
    let mut members = BTreeMap::new();
    if let Some(l) = leader {
        members.insert(l.to_string(), member(l, PgRole::Primary));
    }
    ClusterView {
        initialize: Some(Initialize::System(SYSID)),
        leader: leader.map(|l| LeaderKey {
            name: l.into(),
            lease: 7,
            mod_revision: 42,
        }),
        members,
        config: DynamicConfig::default(),
        switchover: None,
        history: Vec::new(),
        commands: BTreeMap::new(),
        sync: None,
        upgrade: None,
        revision: 50,
    }
}

fn local(pg: LocalPg) -> LocalState {
    LocalState {
        name: "db1".into(),
        data: LocalData::Present {
            system_identifier: SYSID,
            standby: true,
        },
        pg,
        lease: Some(9),
        lease_valid: true,
        nofailover: false,
        now_unix_ms: 1_000_000,
        settled: true,
        rewind_pending: false,
        stalled_ms: 0,
        stall_rewound: false,
        allow_reinit: false,
        replicatefrom: None,
        promotion_held: false,
        standby_of: None,
        restore_without_leader: false,
    }
}

fn primary() -> LocalPg {
    LocalPg::Running {
        in_recovery: false,
        following: None,
    }
}

fn replica_of(host: Option<&str>) -> LocalPg {
    LocalPg::Running {
        in_recovery: true,
        following: host.map(|h| (h.to_string(), 5432)),
    }
}

fn clone_to(host: &str) -> Action {
    Action::Clone {
        host: host.into(),
        port: 5432,
    }
}

#[test]
fn decide_table() {
    struct Case {
        name: &'static str,
        view: ClusterView,
        local: LocalState,
        expect: Action,
    }
    let mut cases = Vec::new();
    let mut c = |name: &'static str, view: ClusterView, local: LocalState, expect: Action| {
        cases.push(Case {
            name,
            view,
            local,
            expect,
        })
    };

    // Bootstrap.
    let empty = ClusterView::default();
    let mut fresh = local(LocalPg::Stopped);
    fresh.data = LocalData::Missing;
    c(
        "empty cluster, no data: race to initialize",
        empty.clone(),
        fresh.clone(),
        Action::Initialize,
    );
    let mut unsettled = fresh.clone();
    unsettled.settled = false;
    c(
        "just started: members holding data may not have published yet",
        empty.clone(),
        unsettled,
        Action::Wait,
    );
    let mut holder_published = empty.clone();
    let mut holder = member("db2", PgRole::Primary);
    holder.system_identifier = SYSID;
    holder_published.members.insert("db2".into(), holder);
    c(
        "another member holds data: it adopts it, we clone later",
        holder_published,
        fresh.clone(),
        Action::Wait,
    );
    let mut adopt = local(LocalPg::Running {
        in_recovery: false,
        following: None,
    });
    adopt.data = LocalData::Present {
        system_identifier: SYSID,
        standby: false,
    };
    c(
        "primary data and no cluster: adopt it",
        empty.clone(),
        adopt.clone(),
        Action::Initialize,
    );
    let mut standby_data = adopt.clone();
    standby_data.data = LocalData::Present {
        system_identifier: SYSID,
        standby: true,
    };
    c(
        "standby data cannot start a cluster",
        empty.clone(),
        standby_data,
        Action::Wait,
    );
    let mut was_primary = local(replica_of(None));
    was_primary.rewind_pending = true;
    c(
        "a former primary started without a leader is rewound, not re-pointed",
        view(Some("db2")),
        was_primary.clone(),
        Action::Rewind {
            host: "db2-host".into(),
            port: 5432,
        },
    );
    let mut promoted_now = view(Some("db2"));
    if let Some(m) = promoted_now.members.get_mut("db2") {
        m.timeline = 3;
        m.checkpoint_timeline = 2;
    }
    let mut stopped_primary = local(LocalPg::Stopped);
    stopped_primary.data = LocalData::Present {
        system_identifier: SYSID,
        standby: false,
    };
    c(
        "a former primary waits for the new leader's first checkpoint on its timeline (running, marked)",
        promoted_now.clone(),
        was_primary.clone(),
        Action::Wait,
    );
    c(
        "a former primary waits for the new leader's first checkpoint on its timeline (stopped)",
        promoted_now,
        stopped_primary,
        Action::Wait,
    );
    let mut me_stale = view(Some("db1"));
    me_stale.leader.as_mut().expect("leader").lease = 9;
    for (case, pg) in [
        (
            "thawed after a freeze, PostgreSQL crashed: no restart as primary",
            LocalPg::Crashed { for_ms: 10 },
        ),
        (
            "lease expired by our clock, PostgreSQL stopped: no start as primary",
            LocalPg::Stopped,
        ),
        ("lease expired by our clock, standby: no promotion", replica_of(None)),
    ] {
        let mut expired = local(pg);
        expired.lease_valid = false;
        if !matches!(expired.pg, LocalPg::Running { .. }) {
            expired.data = LocalData::Present {
                system_identifier: SYSID,
                standby: false,
            };
        }
        c(case, me_stale.clone(), expired, Action::Wait);
    }
    let mut race_expired = local(replica_of(None));
    race_expired.lease_valid = false;
    c(
        "no race with a lease not valid by our clock",
        view(None),
        race_expired,
        Action::Wait,
    );
    let mut fresh_nofailover = fresh.clone();
    fresh_nofailover.nofailover = true;
    c(
        "nofailover member never bootstraps",
        empty.clone(),
        fresh_nofailover,
        Action::Wait,
    );
    let mut no_session = fresh.clone();
    no_session.lease = None;
    c(
        "no session yet: do not start a bootstrap",
        empty.clone(),
        no_session,
        Action::Wait,
    );
    let mut half_done = empty.clone();
    half_done.initialize = Some(Initialize::Pending("db1".into()));
    c(
        "our bootstrap stopped half-way: resume it",
        half_done.clone(),
        local(primary()),
        Action::Initialize,
    );
    c(
        "half-way bootstrap with PostgreSQL stopped: resume",
        half_done,
        local(LocalPg::Stopped),
        Action::Initialize,
    );
    let mut pending_other = empty.clone();
    pending_other.initialize = Some(Initialize::Pending("db2".into()));
    c("someone else bootstraps", pending_other, fresh.clone(), Action::Wait);
    let mut pending_me = empty.clone();
    pending_me.initialize = Some(Initialize::Pending("db1".into()));
    c(
        "resume our own bootstrap",
        pending_me,
        fresh.clone(),
        Action::Initialize,
    );
    c(
        "initialized cluster with a leader: clone",
        view(Some("db2")),
        fresh.clone(),
        clone_to("db2-host"),
    );
    c(
        "initialized cluster without leader: wait",
        view(None),
        fresh.clone(),
        Action::Wait,
    );

    // no_leader methods (no_leader.rs): every member lost its data and the leader is gone.
    let mut restorer = fresh.clone();
    restorer.restore_without_leader = true;
    c(
        "no leader, no data, a no_leader method: restore",
        view(None),
        restorer.clone(),
        Action::RestoreWithoutLeader,
    );
    c(
        "no leader, a no_leader method, but a leader exists: clone it instead",
        view(Some("db2")),
        restorer.clone(),
        clone_to("db2-host"),
    );
    let mut unsettled_restorer = restorer.clone();
    unsettled_restorer.settled = false;
    c(
        "no leader, a no_leader method, just started: members with data may not have published yet",
        view(None),
        unsettled_restorer,
        Action::Wait,
    );
    let mut sessionless = restorer.clone();
    sessionless.lease = None;
    c(
        "no leader, a no_leader method, no DCS session: wait",
        view(None),
        sessionless,
        Action::Wait,
    );
    let mut key_held = view(Some("db2"));
    if let Some(m) = key_held.members.get_mut("db2") {
        m.role = PgRole::Unknown;
        m.state = PgState::Starting;
    }
    c(
        "a leader key whose holder is not serving yet: wait for it, no restore",
        key_held,
        restorer.clone(),
        Action::Wait,
    );
    let mut replica_runs = view(None);
    replica_runs
        .members
        .insert("db3".into(), member("db3", PgRole::Replica));
    c(
        "no leader, but a member runs PostgreSQL: it races, we clone it later",
        replica_runs,
        restorer.clone(),
        Action::Wait,
    );
    let mut empty_peer = view(None);
    let mut restoring = member("db3", PgRole::Unknown);
    restoring.state = PgState::CreatingReplica;
    empty_peer.members.insert("db3".into(), restoring);
    c(
        "no leader, the other members are empty too (or restoring): restore",
        empty_peer,
        restorer.clone(),
        Action::RestoreWithoutLeader,
    );
    let mut bootstrapping = empty.clone();
    bootstrapping.initialize = Some(Initialize::Pending("db2".into()));
    c(
        "a no_leader method never replaces a running bootstrap",
        bootstrapping,
        restorer.clone(),
        Action::Wait,
    );
    c(
        "a no_leader method never bootstraps a new cluster (that is postgresql.bootstrap)",
        empty.clone(),
        restorer.clone(),
        Action::Initialize,
    );

    // Foreign data is never touched.
    let mut foreign = local(LocalPg::Stopped);
    foreign.data = LocalData::Present {
        system_identifier: 1,
        standby: true,
    };
    c(
        "foreign data dir",
        view(Some("db2")),
        foreign,
        Action::RefuseForeignData {
            expected: SYSID,
            found: 1,
        },
    );

    // Primary side (invariant 1).
    let mut me_leader = view(Some("db1"));
    me_leader.leader = Some(LeaderKey {
        name: "db1".into(),
        lease: 9,
        mod_revision: 42,
    });
    c(
        "holding the lease: lead",
        me_leader.clone(),
        local(primary()),
        Action::Lead,
    );
    let mut expired = local(primary());
    expired.lease_valid = false;
    c(
        "lease not renewed in time: step down (drain first)",
        me_leader.clone(),
        expired.clone(),
        Action::StepDown,
    );
    let mut expired_paused = me_leader.clone();
    expired_paused.config.paused = true;
    c(
        "lease expired steps down even when paused",
        expired_paused,
        expired,
        Action::StepDown,
    );
    c(
        "another member holds the key: demote",
        view(Some("db2")),
        local(primary()),
        Action::Demote,
    );
    let mut paused = view(Some("db2"));
    paused.config.paused = true;
    c("paused: no demotion", paused.clone(), local(primary()), Action::Wait);
    c(
        "primary without leader key: take it",
        view(None),
        local(primary()),
        Action::TakeLeader,
    );
    let mut no_session = local(primary());
    no_session.lease = None;
    c("primary without session: wait", view(None), no_session, Action::Wait);
    c(
        "stale key of ours on a running primary: reclaim",
        view(Some("db1")),
        local(primary()),
        Action::ReclaimLeader { mod_revision: 42 },
    );
    let mut stopped_primary_data = local(LocalPg::Stopped);
    stopped_primary_data.data = LocalData::Present {
        system_identifier: SYSID,
        standby: false,
    };
    c(
        "stale key of ours, primary data stopped: reclaim",
        view(Some("db1")),
        stopped_primary_data,
        Action::ReclaimLeader { mod_revision: 42 },
    );
    c(
        "stale key of ours on a replica: delete",
        view(Some("db1")),
        local(replica_of(None)),
        Action::DeleteStaleLeader { mod_revision: 42 },
    );

    // Crash of postgres on the primary.
    c(
        "crashed primary within timeout: restart",
        me_leader.clone(),
        local(LocalPg::Crashed { for_ms: 500 }),
        Action::StartPrimary,
    );
    c(
        "crashed primary beyond timeout: release",
        me_leader.clone(),
        local(LocalPg::Crashed { for_ms: 60_000 }),
        Action::ReleaseLeader,
    );
    c(
        "stopped with the key: start primary",
        me_leader.clone(),
        local(LocalPg::Stopped),
        Action::StartPrimary,
    );

    // Replica side.
    c(
        "replica following the leader: wait",
        view(Some("db2")),
        local(replica_of(Some("db2-host"))),
        Action::Wait,
    );
    c(
        "replica following the wrong node: follow",
        view(Some("db2")),
        local(replica_of(Some("db3-host"))),
        Action::Follow {
            host: "db2-host".into(),
            port: 5432,
        },
    );
    c(
        "no leader: race",
        view(None),
        local(replica_of(Some("db2-host"))),
        Action::Race,
    );
    c(
        "no leader, paused: no race",
        paused_view(),
        local(replica_of(None)),
        Action::Wait,
    );
    let mut nofailover = local(replica_of(None));
    nofailover.nofailover = true;
    c("no leader, nofailover: no race", view(None), nofailover, Action::Wait);
    c(
        "won the key: promote",
        me_leader.clone(),
        local(replica_of(None)),
        Action::Promote,
    );

    // Restarts.
    c(
        "stopped standby data: start as replica",
        view(Some("db2")),
        local(LocalPg::Stopped),
        Action::StartReplica {
            upstream: Some(("db2-host".into(), 5432)),
        },
    );
    let mut old_primary = local(LocalPg::Stopped);
    old_primary.data = LocalData::Present {
        system_identifier: SYSID,
        standby: false,
    };
    c(
        "former primary rejoins: rewind",
        view(Some("db2")),
        old_primary,
        Action::Rewind {
            host: "db2-host".into(),
            port: 5432,
        },
    );
    c(
        "stopped, no leader: start standby to race",
        view(None),
        local(LocalPg::Stopped),
        Action::StartReplica { upstream: None },
    );
    c(
        "crashed replica restarts as replica",
        view(Some("db2")),
        local(LocalPg::Crashed { for_ms: 10 }),
        Action::StartReplica {
            upstream: Some(("db2-host".into(), 5432)),
        },
    );

    // Planned switchover and manual failover.
    let sw = |leader: Option<&str>, candidate: &str, at: Option<u64>| {
        Some(crate::cluster::model::SwitchoverRequest {
            leader: leader.map(String::from),
            candidate: candidate.into(),
            scheduled_unix_ms: at,
            created_unix_ms: 1_000_000,
        })
    };
    let mut switching = me_leader.clone();
    switching.switchover = sw(Some("db1"), "db2", None);
    c(
        "switchover from us: hand over",
        switching.clone(),
        local(primary()),
        Action::HandOver {
            candidate: "db2".into(),
        },
    );
    let mut later = me_leader.clone();
    later.switchover = sw(Some("db1"), "db2", Some(2_000_000));
    c(
        "scheduled switchover not due: lead",
        later,
        local(primary()),
        Action::Lead,
    );
    let mut to_me = view(None);
    to_me.switchover = sw(Some("db2"), "db1", None);
    c(
        "we are the candidate: take over",
        to_me.clone(),
        local(replica_of(None)),
        Action::TakeOver,
    );
    let mut to_other = view(None);
    to_other.switchover = sw(Some("db2"), "db3", None);
    c(
        "key reserved for another candidate: wait",
        to_other.clone(),
        local(replica_of(None)),
        Action::Wait,
    );
    let mut stale_request = to_other.clone();
    let mut late = local(replica_of(None));
    late.now_unix_ms = 1_000_000 + crate::cluster::model::SWITCHOVER_WINDOW_MS + 1;
    stale_request.config.paused = false;
    c("reservation expired: race", stale_request, late, Action::Race);
    let mut from_me = view(None);
    from_me.switchover = sw(Some("db1"), "db2", None);
    c(
        "old leader does not race its own handover",
        from_me,
        local(replica_of(None)),
        Action::Wait,
    );
    let mut failover_paused = view(None);
    failover_paused.config.paused = true;
    failover_paused.switchover = sw(None, "db1", None);
    c(
        "manual failover works while paused",
        failover_paused,
        local(replica_of(None)),
        Action::TakeOver,
    );
    let sync_key = |members: &[&str]| {
        Some((
            crate::cluster::model::SyncState {
                leader: "db9".into(),
                members: members.iter().map(|m| m.to_string()).collect(),
                quorum: 1,
            },
            60,
        ))
    };
    let mut to_async = switching.clone();
    to_async.sync = sync_key(&["db3"]);
    c(
        "sync mode: no switchover to an asynchronous standby",
        to_async,
        local(primary()),
        Action::Lead,
    );
    let mut to_sync = switching.clone();
    to_sync.sync = sync_key(&["db2", "db3"]);
    c(
        "sync mode: switchover to a synchronous standby",
        to_sync,
        local(primary()),
        Action::HandOver {
            candidate: "db2".into(),
        },
    );
    let mut not_sync_candidate = to_me.clone();
    not_sync_candidate.sync = sync_key(&["db3"]);
    c(
        "sync mode: an asynchronous candidate does not take over",
        not_sync_candidate,
        local(replica_of(None)),
        Action::Wait,
    );
    let mut empty_key = to_me.clone();
    empty_key.sync = sync_key(&[]);
    c(
        "an empty sync key restricts nothing",
        empty_key,
        local(replica_of(None)),
        Action::TakeOver,
    );

    for case in cases {
        let got = decide(&case.view, &case.local);
        assert_eq!(got.action, case.expect, "{}: reason was {:?}", case.name, got.reason);
        assert!(!got.reason.is_empty(), "{}: every decision has a reason", case.name);
    }
}

fn paused_view() -> ClusterView {
    let mut v = view(None);
    v.config.paused = true;
    v
}

fn starting(following: Option<&str>) -> LocalPg {
    LocalPg::Starting {
        following: following.map(|h| (h.to_string(), 5432)),
        for_ms: 1_000,
    }
}

fn to_db2() -> (String, u16) {
    ("db2-host".into(), 5432)
}

/// Invariant 7: whatever state PostgreSQL is in, a standby is brought to the leader: re-pointed, rewound, re-cloned.
#[test]
fn rejoin_table() {
    let bound = STALL_TTLS * DynamicConfig::default().ttl_ms;
    let stalled = |pg: LocalPg, ms: u64, rewound: bool, reinit: bool| {
        let mut l = local(pg);
        l.stalled_ms = ms;
        l.stall_rewound = rewound;
        l.allow_reinit = reinit;
        l
    };
    let (host, port) = to_db2();
    let mut primary_data_starting = local(starting(None));
    primary_data_starting.data = LocalData::Present {
        system_identifier: SYSID,
        standby: false,
    };
    let mut me_leader = view(Some("db1"));
    me_leader.leader.as_mut().expect("leader").lease = 9;
    let mut me_leader_slow = me_leader.clone();
    me_leader_slow.config.primary_start_timeout_ms = 500;
    let cases: Vec<(&str, ClusterView, LocalState, Action)> = vec![
        (
            "not consistent yet, pointed at a former leader: re-pointed at once",
            view(Some("db2")),
            local(starting(Some("db3-host"))),
            Action::Follow {
                host: host.clone(),
                port,
            },
        ),
        (
            "not consistent yet, after a pgha restart (upstream unknown): re-pointed",
            view(Some("db2")),
            local(starting(None)),
            Action::Follow {
                host: host.clone(),
                port,
            },
        ),
        (
            "not consistent yet, pointed at the leader, within the bound: wait",
            view(Some("db2")),
            stalled(starting(Some("db2-host")), bound - 1, false, false),
            Action::Wait,
        ),
        (
            "not consistent past the bound: rewind",
            view(Some("db2")),
            stalled(starting(Some("db2-host")), bound, false, false),
            Action::Rewind {
                host: host.clone(),
                port,
            },
        ),
        (
            "running replica not streaming past the bound: rewind",
            view(Some("db2")),
            stalled(replica_of(Some("db2-host")), bound, false, false),
            Action::Rewind {
                host: host.clone(),
                port,
            },
        ),
        (
            "still not streaming after a rewind, reinit allowed: re-clone",
            view(Some("db2")),
            stalled(replica_of(Some("db2-host")), bound, true, true),
            Action::Reclone {
                host: host.clone(),
                port,
            },
        ),
        (
            "still not streaming after a rewind, reinit not allowed: needs reinit",
            view(Some("db2")),
            stalled(starting(Some("db2-host")), bound, true, false),
            Action::NeedsReinit,
        ),
        (
            "streaming replica: nothing to do",
            view(Some("db2")),
            local(replica_of(Some("db2-host"))),
            Action::Wait,
        ),
        (
            "not consistent, no leader: no race (it cannot be promoted)",
            view(None),
            local(starting(None)),
            Action::Wait,
        ),
        (
            "primary data starting while another leads: stop it before it accepts writes",
            view(Some("db2")),
            primary_data_starting.clone(),
            Action::Demote,
        ),
        (
            "our primary in crash recovery: wait",
            me_leader.clone(),
            primary_data_starting.clone(),
            Action::Wait,
        ),
        (
            "our primary not ready within primary_start_timeout: stop and hand over",
            me_leader_slow,
            primary_data_starting,
            Action::Demote,
        ),
    ];
    for (name, view, local, expect) in cases {
        let got = decide(&view, &local);
        assert_eq!(got.action, expect, "{name}: reason was {:?}", got.reason);
    }
}

/// Operator commands are decisions: none runs ahead of a safety step, none starts a primary without its lease.
#[test]
fn command_table() {
    use crate::cluster::model::{NodeCommand, PendingCommand};
    let with = |mut v: ClusterView, command: NodeCommand| {
        v.commands.insert(
            "db1".into(),
            PendingCommand {
                command,
                mod_revision: 77,
            },
        );
        v
    };
    let restart = NodeCommand::Restart { pending_only: false };
    let run = |command: &NodeCommand| Action::RunCommand {
        command: command.clone(),
        mod_revision: 77,
    };
    let is_drop = |a: &Action| matches!(a, Action::DropCommand { mod_revision: 77, .. });
    let mut me_leader = view(Some("db1"));
    me_leader.leader.as_mut().expect("leader").lease = 9;
    let mut expired = local(primary());
    expired.lease_valid = false;
    let mut former_primary = local(LocalPg::Stopped);
    former_primary.data = LocalData::Present {
        system_identifier: SYSID,
        standby: false,
    };
    let rewind = Action::Rewind {
        host: "db2-host".into(),
        port: 5432,
    };
    // (name, view, local, expected action or None for "the command is dropped")
    let cases: Vec<(&str, ClusterView, LocalState, Option<Action>)> = vec![
        (
            "restart of the leading primary",
            with(me_leader.clone(), restart.clone()),
            local(primary()),
            Some(run(&restart)),
        ),
        (
            "restart of a primary whose lease ran out: the step-down comes first",
            with(me_leader.clone(), restart.clone()),
            expired,
            Some(Action::StepDown),
        ),
        (
            "restart of a stopped former primary: the rewind comes first, never a writable start",
            with(view(Some("db2")), restart.clone()),
            former_primary,
            Some(rewind),
        ),
        (
            "restart of a streaming replica",
            with(view(Some("db2")), restart.clone()),
            local(replica_of(Some("db2-host"))),
            Some(run(&restart)),
        ),
        (
            "restart while stopped by nothing else to do",
            with(view(Some("db2")), restart.clone()),
            local(starting(Some("db2-host"))),
            None,
        ),
        (
            "reload of a replica",
            with(view(Some("db2")), NodeCommand::Reload),
            local(replica_of(Some("db2-host"))),
            Some(run(&NodeCommand::Reload)),
        ),
        (
            "reinit of the leader is refused",
            with(me_leader, NodeCommand::Reinit),
            local(primary()),
            None,
        ),
        (
            "reinit of a replica",
            with(view(Some("db2")), NodeCommand::Reinit),
            local(replica_of(Some("db2-host"))),
            Some(run(&NodeCommand::Reinit)),
        ),
        (
            "reinit without a leader is refused",
            with(view(None), NodeCommand::Reinit),
            local(starting(None)),
            None,
        ),
    ];
    for (name, view, local, expect) in cases {
        let got = decide(&view, &local);
        match expect {
            Some(action) => assert_eq!(got.action, action, "{name}: reason was {:?}", got.reason),
            None => assert!(
                is_drop(&got.action),
                "{name}: expected the command dropped, got {:?}",
                got
            ),
        }
    }
}

/// Patroni's boolean tags: `clonefrom` chooses the clone source, `nosync` keeps a member out of the synchronous set.
#[test]
fn tag_table() {
    let mut fresh = local(LocalPg::Stopped);
    fresh.data = LocalData::Missing;
    let mut v = view(Some("db2"));
    let mut offering = member("db3", PgRole::Replica);
    offering.state = PgState::Streaming;
    offering.tags.insert("clonefrom".into(), "true".into());
    v.members.insert("db3".into(), offering.clone());
    assert_eq!(
        decide(&v, &fresh).action,
        clone_to("db3-host"),
        "a streaming clonefrom replica is the source"
    );
    offering.state = PgState::Starting;
    v.members.insert("db3".into(), offering);
    assert_eq!(
        decide(&v, &fresh).action,
        clone_to("db2-host"),
        "not streaming: the leader"
    );

    let mut m = member("db4", PgRole::Replica);
    for (value, set) in [
        ("true", true),
        ("YES", true),
        ("1", true),
        ("false", false),
        ("", false),
    ] {
        m.tags.insert("nosync".into(), value.into());
        assert_eq!(m.tag_set("nosync"), set, "{value:?}");
        assert_eq!(m.may_be_synchronous(), !set, "{value:?}");
    }
    m.tags.clear();
    m.nofailover = true;
    assert!(!m.may_be_synchronous(), "nofailover members are never synchronous");
}

/// A `pre_promote` veto holds this member out of promotions for a while: no race, no takeover, and a leader key
/// that still names it is released.
#[test]
fn vetoed_promotion_table() {
    let mut held = local(replica_of(None));
    held.promotion_held = true;
    let free = view(None);
    let mut ours = view(Some("db1"));
    ours.members.insert("db1".into(), member("db1", PgRole::Replica));
    ours.leader = Some(LeaderKey {
        name: "db1".into(),
        lease: 9,
        mod_revision: 42,
    });
    let mut candidate = free.clone();
    candidate.switchover = Some(crate::cluster::model::SwitchoverRequest {
        leader: None,
        candidate: "db1".into(),
        scheduled_unix_ms: None,
        created_unix_ms: 1_000_000,
    });
    let cases = [
        ("no leader: not racing", &free, Action::Wait),
        ("the key still names us: released", &ours, Action::ReleaseLeader),
        ("failover candidate: not taking over", &candidate, Action::Wait),
    ];
    let mut free_to_act = local(replica_of(None));
    free_to_act.promotion_held = false;
    for (case, v, expect) in cases {
        let decision = decide(v, &held);
        assert_eq!(decision.action, expect, "{case}: {}", decision.reason);
        assert!(decision.reason.contains("pre_promote"), "{case}: {}", decision.reason);
    }
    assert_eq!(decide(&free, &free_to_act).action, Action::Race, "not held: races");
    assert_eq!(
        decide(&ours, &free_to_act).action,
        Action::Promote,
        "not held: promotes"
    );
    assert_eq!(
        decide(&candidate, &free_to_act).action,
        Action::TakeOver,
        "not held: takes over"
    );
}

/// `replicatefrom`: db1 streams from the member its tag names while that one streams (or leads), else from the leader;
/// a loop of tags falls back to the leader; a rewind or a re-clone is always from the leader.
#[test]
fn replicatefrom_table() {
    let follow = |host: &str| Action::Follow {
        host: host.into(),
        port: 5432,
    };
    let start = |host: &str| Action::StartReplica {
        upstream: Some((host.into(), 5432)),
    };
    // Leader db2; db3 a replica in `db3_state`, tagged replicatefrom = db1 when `db3_tag`.
    let cluster = |db3_state: Option<PgState>, db3_tag: Option<&str>| {
        let mut v = view(Some("db2"));
        if let Some(state) = db3_state {
            let mut m = member("db3", PgRole::Replica);
            m.state = state;
            if let Some(t) = db3_tag {
                m.tags.insert("replicatefrom".into(), t.into());
            }
            v.members.insert("db3".into(), m);
        }
        v
    };
    let tagged = |pg: LocalPg, tag: &str| {
        let mut l = local(pg);
        l.replicatefrom = Some(tag.into());
        l
    };
    let streaming = Some(PgState::Streaming);
    let cases = [
        // (case, view, local, action)
        (
            "untagged: the leader",
            cluster(streaming, None),
            local(replica_of(Some("db2-host"))),
            Action::Wait,
        ),
        (
            "tagged, following the leader: re-pointed at db3",
            cluster(streaming, None),
            tagged(replica_of(Some("db2-host")), "db3"),
            follow("db3-host"),
        ),
        (
            "tagged, following db3: stays",
            cluster(streaming, None),
            tagged(replica_of(Some("db3-host")), "db3"),
            Action::Wait,
        ),
        (
            "db3's key is gone: back to the leader",
            cluster(None, None),
            tagged(replica_of(Some("db3-host")), "db3"),
            follow("db2-host"),
        ),
        (
            "db3 does not stream: back to the leader",
            cluster(Some(PgState::Stopped), None),
            tagged(replica_of(Some("db3-host")), "db3"),
            follow("db2-host"),
        ),
        (
            "db3 crashed: back to the leader",
            cluster(Some(PgState::Crashed), None),
            tagged(replica_of(Some("db3-host")), "db3"),
            follow("db2-host"),
        ),
        (
            "db3 streams again: to db3",
            cluster(streaming, None),
            tagged(replica_of(Some("db2-host")), "db3"),
            follow("db3-host"),
        ),
        (
            "the tag names the leader: the leader",
            cluster(streaming, None),
            tagged(replica_of(Some("db2-host")), "db2"),
            Action::Wait,
        ),
        (
            "the tag names us: the leader",
            cluster(streaming, None),
            tagged(replica_of(Some("db2-host")), "db1"),
            Action::Wait,
        ),
        (
            "loop (db1 from db3, db3 from db1): the leader",
            cluster(streaming, Some("db1")),
            tagged(replica_of(Some("db3-host")), "db3"),
            follow("db2-host"),
        ),
        (
            "a standby still starting is pointed at db3 too",
            cluster(streaming, None),
            tagged(
                LocalPg::Starting {
                    following: Some(("db2-host".into(), 5432)),
                    for_ms: 0,
                },
                "db3",
            ),
            follow("db3-host"),
        ),
        (
            "stopped standby: started streaming from db3",
            cluster(streaming, None),
            tagged(LocalPg::Stopped, "db3"),
            start("db3-host"),
        ),
        (
            "stopped standby, db3 away: started from the leader",
            cluster(Some(PgState::Starting), None),
            tagged(LocalPg::Stopped, "db3"),
            start("db2-host"),
        ),
    ];
    for (case, v, l, want) in cases {
        assert_eq!(decide(&v, &l).action, want, "{case}");
    }

    // Stalled while cascading: the rewind's source is the leader, never the upstream.
    let mut stalled = tagged(replica_of(Some("db3-host")), "db3");
    stalled.stalled_ms = STALL_TTLS * DynamicConfig::default().ttl_ms;
    assert_eq!(
        decide(&cluster(streaming, None), &stalled).action,
        Action::Rewind {
            host: "db2-host".into(),
            port: 5432
        }
    );
    // The reason says why the tag's member was not used.
    let why = decide(
        &cluster(Some(PgState::Stopped), None),
        &tagged(replica_of(Some("db3-host")), "db3"),
    )
    .reason;
    assert!(
        why.contains("db3 (replicatefrom) is not a streaming replica (stopped)"),
        "{why}"
    );
}

#[path = "standby_cluster_tests.rs"]
mod standby_cluster;
/// `ctl upgrade`: replicas are held stopped while the leader upgrades, then their old data is set aside; the leader
/// is never held, and only a leading primary runs the upgrade command.
#[test]
fn upgrade_table() {
    use crate::cluster::model::{NodeCommand, PendingCommand};
    use crate::cluster::upgrade::{Step, TransferMode, UpgradeState};
    let upgrading = |leader: &str, step: Step, to: Option<u64>| {
        let mut v = view(Some(leader));
        v.upgrade = Some((
            UpgradeState {
                id: 1,
                bin_dir: "/new/bin".into(),
                mode: TransferMode::Link,
                leader: leader.into(),
                from_system: SYSID,
                to_system: to,
                step,
                failed: None,
                rolled_back: false,
            },
            3,
        ));
        v
    };
    let mut me_leader = upgrading("db1", Step::UpgradeLeader, None);
    me_leader.leader.as_mut().expect("leader").lease = 9;
    let upgrade = NodeCommand::Upgrade {
        id: 1,
        bin_dir: "/new/bin".into(),
        mode: TransferMode::Link,
    };
    let mut commanded = me_leader.clone();
    commanded.commands.insert(
        "db1".into(),
        PendingCommand {
            command: upgrade.clone(),
            mod_revision: 5,
        },
    );
    let mut replica_commanded = upgrading("db2", Step::UpgradeLeader, None);
    replica_commanded.commands.insert(
        "db1".into(),
        PendingCommand {
            command: upgrade.clone(),
            mod_revision: 5,
        },
    );
    let cases: Vec<(&str, ClusterView, LocalState, Action)> = vec![
        (
            "a streaming replica stops",
            upgrading("db2", Step::StopReplicas, None),
            local(replica_of(Some("db2-host"))),
            Action::UpgradeStop,
        ),
        (
            "a stopped replica stays stopped",
            upgrading("db2", Step::UpgradeLeader, None),
            local(LocalPg::Stopped),
            Action::Wait,
        ),
        (
            "old data is set aside once the leader runs the new system",
            upgrading("db2", Step::RecreateReplicas, Some(SYSID + 1)),
            local(LocalPg::Stopped),
            Action::UpgradeSetAside {
                bin_dir: "/new/bin".into(),
            },
        ),
        ("the leader is never held", me_leader, local(primary()), Action::Lead),
        (
            "the leader runs the upgrade command",
            commanded,
            local(primary()),
            Action::RunCommand {
                command: upgrade,
                mod_revision: 5,
            },
        ),
    ];
    for (name, view, local, expect) in cases {
        assert_eq!(decide(&view, &local).action, expect, "{name}");
    }
    let mut stray = local(replica_of(Some("db2-host")));
    stray.name = "db1".into();
    let got = decide(&replica_commanded, &stray);
    assert!(
        matches!(got.action, Action::UpgradeStop | Action::DropCommand { .. }),
        "a replica never runs the upgrade: {got:?}"
    );
}
