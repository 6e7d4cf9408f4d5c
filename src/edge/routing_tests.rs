//! Table-driven tests of the routing table and of `sessions_to_close`.

use super::*;
use crate::cluster::model::LeaderKey;

fn member(name: &str, role: PgRole, state: PgState, lsn: u64) -> MemberInfo {
    let mut m = MemberInfo::for_test(name, role, state, lsn);
    m.api_addr = format!("{name}:7400");
    m.pg_host = format!("{name}.db");
    m
}

fn primary(name: &str) -> MemberInfo {
    member(name, PgRole::Primary, PgState::Running, 1000)
}

fn replica(name: &str, lsn: u64) -> MemberInfo {
    member(name, PgRole::Replica, PgState::Streaming, lsn)
}

fn view(leader: Option<&str>, members: Vec<MemberInfo>) -> ClusterView {
    ClusterView {
        leader: leader.map(|n| LeaderKey {
            name: n.into(),
            lease: 1,
            mod_revision: 1,
        }),
        members: members.into_iter().map(|m| (m.name.clone(), m)).collect(),
        ..ClusterView::default()
    }
}

fn names(b: &[Backend]) -> Vec<&str> {
    b.iter().map(|b| b.name.as_str()).collect()
}

struct Case {
    what: &'static str,
    view: ClusterView,
    fresh: bool,
    max_lag: Option<u64>,
    primary: Option<&'static str>,
    replicas: &'static [&'static str],
    any: &'static [&'static str],
}

#[test]
fn routes_from_views() {
    let mut noload = replica("db3", 1000);
    noload.noloadbalance = true;
    let mut starting = primary("db1");
    starting.state = PgState::Starting;
    let mut still_replica = replica("db1", 1000);
    still_replica.state = PgState::Running;
    let cases = vec![
        Case {
            what: "healthy cluster",
            view: view(
                Some("db1"),
                vec![primary("db1"), replica("db2", 1000), replica("db3", 900)],
            ),
            fresh: true,
            max_lag: None,
            primary: Some("db1"),
            replicas: &["db2", "db3"],
            any: &["db1", "db2", "db3"],
        },
        Case {
            what: "stale view: no primary anywhere, replicas kept",
            view: view(Some("db1"), vec![primary("db1"), replica("db2", 1000)]),
            fresh: false,
            max_lag: None,
            primary: None,
            replicas: &["db2"],
            any: &["db2"],
        },
        Case {
            what: "no leader key (failover under way)",
            view: view(None, vec![primary("db1"), replica("db2", 1000)]),
            fresh: true,
            max_lag: None,
            primary: None,
            replicas: &["db2"],
            any: &["db2"],
        },
        Case {
            what: "leader not yet running as primary",
            view: view(Some("db1"), vec![starting, replica("db2", 1000)]),
            fresh: true,
            max_lag: None,
            primary: None,
            replicas: &["db2"],
            any: &["db2"],
        },
        Case {
            what: "new leader still reports replica (promotion in progress)",
            view: view(Some("db1"), vec![still_replica, replica("db2", 1000)]),
            fresh: true,
            max_lag: None,
            primary: None,
            replicas: &["db2"],
            any: &["db2"],
        },
        Case {
            what: "leader key without published status",
            view: view(Some("db9"), vec![replica("db2", 1000)]),
            fresh: true,
            max_lag: None,
            primary: None,
            replicas: &["db2"],
            any: &["db2"],
        },
        Case {
            what: "a primary without the leader key is never routed to",
            view: view(Some("db2"), vec![primary("db1"), primary("db2")]),
            fresh: true,
            max_lag: None,
            primary: Some("db2"),
            replicas: &[],
            any: &["db2"],
        },
        Case {
            what: "noloadbalance skipped on the replica port only",
            view: view(Some("db1"), vec![primary("db1"), replica("db2", 1000), noload]),
            fresh: true,
            max_lag: None,
            primary: Some("db1"),
            replicas: &["db2"],
            any: &["db1", "db2", "db3"],
        },
        Case {
            what: "lag limit",
            view: view(
                Some("db1"),
                vec![primary("db1"), replica("db2", 990), replica("db3", 500)],
            ),
            fresh: true,
            max_lag: Some(100),
            primary: Some("db1"),
            replicas: &["db2"],
            any: &["db1", "db2", "db3"],
        },
        Case {
            what: "lag limit without a primary: against the furthest known position",
            view: view(None, vec![replica("db2", 990), replica("db3", 500)]),
            fresh: true,
            max_lag: Some(100),
            primary: None,
            replicas: &["db2"],
            any: &["db2", "db3"],
        },
        Case {
            what: "a replica not streaming is not routed",
            view: view(
                Some("db1"),
                vec![primary("db1"), member("db2", PgRole::Replica, PgState::Starting, 0)],
            ),
            fresh: true,
            max_lag: None,
            primary: Some("db1"),
            replicas: &[],
            any: &["db1"],
        },
    ];
    for c in cases {
        let opts = RoutingOpts {
            max_lag_bytes: c.max_lag,
        };
        let t = RoutingTable::from_view(&c.view, c.fresh, &opts);
        assert!(t.open, "{}", c.what);
        assert_eq!(t.primary.as_ref().map(|b| b.name.as_str()), c.primary, "{}", c.what);
        assert_eq!(names(&t.replicas), c.replicas, "{}", c.what);
        assert_eq!(names(&t.any), c.any, "{}", c.what);
        assert!(!t.primary_reason.is_empty(), "{}", c.what);
    }
}

#[test]
fn closed_before_the_first_view() {
    let t = RoutingTable::closed();
    assert!(!t.open);
    for port in Port::ALL {
        assert!(t.targets(port).is_empty());
        assert_eq!(t.pick(port, 0), None);
    }
}

#[test]
fn addresses_and_round_robin() {
    let mut v6 = replica("db3", 1000);
    v6.pg_host = "fd00::3".into();
    let t = RoutingTable::from_view(
        &view(Some("db1"), vec![primary("db1"), replica("db2", 1000), v6]),
        true,
        &RoutingOpts::default(),
    );
    assert_eq!(t.primary.as_ref().map(|b| b.addr.as_str()), Some("db1.db:5432"));
    assert_eq!(t.replicas[1].addr, "[fd00::3]:5432");
    let picks: Vec<&str> = (0..4)
        .filter_map(|n| t.pick(Port::Replica, n))
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(picks, ["db2", "db3", "db2", "db3"]);
}

fn table(v: &ClusterView, fresh: bool) -> RoutingTable {
    RoutingTable::from_view(v, fresh, &RoutingOpts::default())
}

#[test]
fn cuts_on_role_changes() {
    let before = table(
        &view(Some("db1"), vec![primary("db1"), replica("db2", 1), replica("db3", 1)]),
        true,
    );
    type Case<'a> = (&'a str, RoutingTable, Vec<(Port, &'a str)>);
    let cases: Vec<Case> = vec![
        ("nothing changed", before.clone(), vec![]),
        (
            "switchover db1 -> db2 completed",
            table(
                &view(Some("db2"), vec![replica("db1", 1), primary("db2"), replica("db3", 1)]),
                true,
            ),
            vec![(Port::Primary, "db1"), (Port::Replica, "db2")],
        ),
        (
            "leader key gone (failover under way)",
            table(
                &view(None, vec![primary("db1"), replica("db2", 1), replica("db3", 1)]),
                true,
            ),
            vec![(Port::Primary, "db1"), (Port::Any, "db1")],
        ),
        (
            "view went stale",
            table(
                &view(Some("db1"), vec![primary("db1"), replica("db2", 1), replica("db3", 1)]),
                false,
            ),
            vec![(Port::Primary, "db1"), (Port::Any, "db1")],
        ),
        (
            "a replica stopped streaming",
            table(
                &view(
                    Some("db1"),
                    vec![
                        primary("db1"),
                        replica("db2", 1),
                        member("db3", PgRole::Replica, PgState::Stopped, 1),
                    ],
                ),
                true,
            ),
            vec![(Port::Replica, "db3"), (Port::Any, "db3")],
        ),
        ("routing closed", RoutingTable::closed(), {
            vec![
                (Port::Primary, "db1"),
                (Port::Replica, "db2"),
                (Port::Replica, "db3"),
                (Port::Any, "db1"),
                (Port::Any, "db2"),
                (Port::Any, "db3"),
            ]
        }),
    ];
    for (what, after, want) in cases {
        let cuts = sessions_to_close(&before, &after);
        let got: Vec<(Port, &str)> = cuts.iter().map(|c| (c.port, c.backend.as_str())).collect();
        assert_eq!(got, want, "{what}");
        assert!(cuts.iter().all(|c| !c.reason.is_empty()), "{what}");
    }
}

#[test]
fn lag_alone_does_not_cut_sessions() {
    let opts = RoutingOpts {
        max_lag_bytes: Some(10),
    };
    let before = RoutingTable::from_view(
        &view(Some("db1"), vec![primary("db1"), replica("db2", 1000)]),
        true,
        &opts,
    );
    let after = RoutingTable::from_view(
        &view(Some("db1"), vec![primary("db1"), replica("db2", 10)]),
        true,
        &opts,
    );
    assert!(after.replicas.is_empty(), "no new sessions to a lagging replica");
    assert_eq!(sessions_to_close(&before, &after), vec![]);
}

#[test]
fn change_lines_name_the_reason() {
    let a = table(&view(Some("db1"), vec![primary("db1"), replica("db2", 1)]), true);
    let b = table(&view(Some("db2"), vec![replica("db1", 1), primary("db2")]), true);
    let lines = describe_changes(&a, &b);
    assert_eq!(lines[0].line, "primary route db1 -> db2: leader key moved");
    assert_eq!((lines[0].port, lines[0].to.as_str()), (Port::Primary, "db2"));
    assert_eq!(
        lines[1].line,
        "replica route [db2] -> [db1]: streaming replicas changed"
    );
    assert_eq!((lines[1].port, lines[1].to.as_str()), (Port::Replica, "[db1]"));
    let gone = table(&view(None, vec![primary("db1"), replica("db2", 1)]), true);
    assert_eq!(
        describe_changes(&a, &gone)[0],
        RouteChange {
            port: Port::Primary,
            to: "none".into(),
            line: "primary route db1 -> none: no leader key".into()
        }
    );
    assert!(describe_changes(&a, &a).is_empty());
    let reasons = sessions_to_close(&a, &b);
    assert_eq!(reasons[0].reason, "leader key moved to db2");
    assert_eq!(reasons[1].reason, "db2 took the leader key");
}

#[test]
fn a_standby_cluster_routes_no_primary_and_its_replicas_only() {
    let mut v = view(
        Some("db1"),
        vec![replica("db1", 100), replica("db2", 100), replica("db3", 100)],
    );
    v.config.standby_cluster = Some(crate::cluster::standby::StandbyCluster {
        host: Some("10.1.0.10".into()),
        port: Some(5432),
        ..Default::default()
    });
    let t = table(&v, true);
    assert!(t.primary.is_none());
    assert_eq!(t.standby_of.as_deref(), Some("10.1.0.10:5432"));
    assert!(
        t.primary_reason.contains("standby cluster following 10.1.0.10:5432"),
        "{}",
        t.primary_reason
    );
    assert_eq!(
        names(&t.replicas),
        ["db2", "db3"],
        "the standby leader is not a replica-port backend"
    );
    let promoted = table(&view(Some("db1"), vec![primary("db1"), replica("db2", 1)]), true);
    assert_eq!(promoted.standby_of, None);
    assert!(promoted.primary.is_some());
}
