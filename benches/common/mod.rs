//! Cluster views for the benchmarks of `decide` and the edge's routing (as the table tests in
//! src/ha/decide_tests.rs and src/edge/routing_tests.rs build them).

use std::collections::BTreeMap;

use pgha::cluster::model::{ClusterView, DynamicConfig, Initialize, LeaderKey, MemberInfo, PgRole, PgState};

pub const SYSID: u64 = 7_000_000_000_000_000_001;

/// A running member publishing `role`.
pub fn member(name: &str, role: PgRole, state: PgState) -> MemberInfo {
    MemberInfo {
        name: name.into(),
        api_addr: format!("{name}:7400"),
        pg_host: format!("{name}-host"),
        pg_port: 5432,
        role,
        state,
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

/// `members` db nodes `db1..`: `leader` (when set) holds the key and runs as primary, the others stream.
pub fn view(members: usize, leader: Option<&str>) -> ClusterView {
    let mut all = BTreeMap::new();
    for i in 1..=members {
        let name = format!("db{i}");
        let m = if leader == Some(name.as_str()) {
            member(&name, PgRole::Primary, PgState::Running)
        } else {
            member(&name, PgRole::Replica, PgState::Streaming)
        };
        all.insert(name, m);
    }
    ClusterView {
        initialize: Some(Initialize::System(SYSID)),
        leader: leader.map(|l| LeaderKey {
            name: l.into(),
            lease: 7,
            mod_revision: 42,
        }),
        members: all,
        config: DynamicConfig::default(),
        switchover: None,
        history: Vec::new(),
        commands: BTreeMap::new(),
        sync: None,
        upgrade: None,
        revision: 50,
    }
}
