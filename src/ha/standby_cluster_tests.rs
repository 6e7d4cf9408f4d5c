//! Table rows of the standby cluster rules (`standby_cluster.rs`), through `decide` as the loop calls it.

use super::*;
use crate::cluster::standby::StandbyCluster;

fn remote(host: &str) -> StandbyCluster {
    StandbyCluster {
        host: Some(host.into()),
        port: Some(5432),
        ..StandbyCluster::default()
    }
}

/// A standby cluster (following `dr-primary`) whose leader `leader` publishes itself as a streaming standby.
fn standby_view(leader: Option<&str>) -> ClusterView {
    let mut v = view(leader);
    v.config.standby_cluster = Some(remote("dr-primary"));
    for m in v.members.values_mut() {
        m.role = PgRole::Replica;
        m.state = PgState::Streaming;
    }
    v
}

/// `local` as the holder of the leader key (lease 7 in `view`).
fn leading(pg: LocalPg, standby_data: bool, standby_of: Option<StandbyCluster>) -> LocalState {
    let mut l = local(pg);
    l.lease = Some(7);
    l.data = LocalData::Present {
        system_identifier: SYSID,
        standby: standby_data,
    };
    l.standby_of = standby_of;
    l
}

fn follow_remote(host: &str) -> Action {
    Action::FollowRemote { remote: remote(host) }
}

#[test]
fn standby_cluster_table() {
    let normal = view(Some("db1"));
    let mut other_remote = standby_view(Some("db1"));
    other_remote.config.standby_cluster = Some(remote("new-site"));
    let mut lapsed = leading(primary(), false, None);
    lapsed.lease_valid = false;
    let mut follower_diverged = local(LocalPg::Stopped);
    follower_diverged.data = LocalData::Present {
        system_identifier: SYSID,
        standby: false,
    };
    let mut restartpoint_pending = standby_view(Some("db2"));
    if let Some(m) = restartpoint_pending.members.get_mut("db2") {
        m.timeline = 2;
        m.checkpoint_timeline = 1;
    }
    let no_data = LocalState {
        data: LocalData::Missing,
        ..local(LocalPg::Stopped)
    };
    let cases: Vec<(&str, ClusterView, LocalState, Action)> = vec![
        (
            "standby leader not configured for the remote yet: follows it",
            standby_view(Some("db1")),
            leading(replica_of(None), true, None),
            follow_remote("dr-primary"),
        ),
        (
            "standby leader following the remote: keeps leading",
            standby_view(Some("db1")),
            leading(replica_of(Some("dr-primary")), true, Some(remote("dr-primary"))),
            Action::LeadStandby,
        ),
        (
            "the remote changed (edit-config): re-pointed",
            other_remote,
            leading(replica_of(Some("dr-primary")), true, Some(remote("dr-primary"))),
            follow_remote("new-site"),
        ),
        (
            "stopped standby leader: started following the remote",
            standby_view(Some("db1")),
            leading(LocalPg::Stopped, true, None),
            follow_remote("dr-primary"),
        ),
        (
            "standby leader starting: configured for the remote first",
            standby_view(Some("db1")),
            leading(
                LocalPg::Starting {
                    following: None,
                    for_ms: 0,
                },
                true,
                None,
            ),
            follow_remote("dr-primary"),
        ),
        (
            "demote-cluster: the primary leader is demoted into a standby leader",
            standby_view(Some("db1")),
            leading(primary(), false, None),
            Action::DemoteToStandby,
        ),
        (
            "demote-cluster interrupted after the stop: rewound, then follows",
            standby_view(Some("db1")),
            leading(LocalPg::Stopped, false, None),
            Action::DemoteToStandby,
        ),
        (
            "promote-cluster: the setting is gone, the standby leader promotes",
            normal.clone(),
            leading(replica_of(Some("dr-primary")), true, Some(remote("dr-primary"))),
            Action::PromoteCluster,
        ),
        (
            "a normal primary leader is left alone",
            normal,
            leading(primary(), false, None),
            Action::Lead,
        ),
        (
            "a leader whose lease lapsed steps down first (invariant 1), standby setting or not",
            standby_view(Some("db1")),
            lapsed,
            Action::StepDown,
        ),
        (
            "failover inside the standby cluster: no leader, a streaming standby races",
            standby_view(None),
            local(replica_of(Some("db2-host"))),
            Action::Race,
        ),
        (
            "a replica of the standby cluster follows the standby leader",
            standby_view(Some("db2")),
            local(replica_of(None)),
            Action::Follow {
                host: "db2-host".into(),
                port: 5432,
            },
        ),
        (
            "a new member clones the standby leader",
            standby_view(Some("db2")),
            no_data,
            clone_to("db2-host"),
        ),
        (
            "a diverged replica is rewound from the standby leader",
            standby_view(Some("db2")),
            follower_diverged.clone(),
            Action::Rewind {
                host: "db2-host".into(),
                port: 5432,
            },
        ),
        (
            "... once the standby leader's restartpoint is on the remote's new timeline",
            restartpoint_pending,
            follower_diverged,
            Action::Wait,
        ),
    ];
    for (name, view, local, expect) in cases {
        let got = decide(&view, &local);
        assert_eq!(got.action, expect, "{name}: {}", got.reason);
    }
}

#[test]
fn a_standby_leader_serves_only_in_a_standby_cluster() {
    assert!(crate::ha::standby_cluster::leader_serves(&standby_view(Some("db2"))));
    assert!(!crate::ha::standby_cluster::leader_serves(&view(Some("db2"))));
    assert!(!crate::ha::standby_cluster::leader_serves(&standby_view(None)));
}
