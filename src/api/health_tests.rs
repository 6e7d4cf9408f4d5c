//! Table tests of the Patroni-compatible status codes.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::*;
use crate::cluster::model::{LeaderKey, MemberInfo, PgRole, PgState};
use crate::postgres::{PgStatus, WalReceiver};

fn pg(in_recovery: bool, lsn: u64) -> PgStatus {
    PgStatus {
        in_recovery,
        timeline: 1,
        checkpoint_timeline: 1,
        current_lsn: (!in_recovery).then_some(lsn),
        receive_lsn: in_recovery.then_some(lsn),
        replay_lsn: in_recovery.then_some(lsn),
        system_identifier: 1,
        pending_restart: false,
        synchronous_standby_names: String::new(),
        wal_receiver: in_recovery.then(|| WalReceiver {
            status: "streaming".into(),
            sender_host: None,
            sender_port: None,
            received_tli: Some(1),
            flushed_lsn: Some(lsn),
            slot_name: None,
        }),
        replication: Vec::new(),
    }
}

/// db1 (the leader, at LSN 10000) or db2 (a streaming replica at `lsn`), as the HA loop would publish it.
pub(crate) fn snapshot(primary: bool, lsn: u64, tags: &[(&str, &str)]) -> NodeSnapshot {
    let mut view = ClusterView {
        leader: Some(LeaderKey {
            name: "db1".into(),
            lease: 1,
            mod_revision: 1,
        }),
        ..ClusterView::default()
    };
    view.members.insert(
        "db1".into(),
        MemberInfo {
            name: "db1".into(),
            api_addr: String::new(),
            pg_host: String::new(),
            pg_port: 5432,
            role: PgRole::Primary,
            state: PgState::Running,
            timeline: 1,
            checkpoint_timeline: 1,
            receive_lsn: 10_000,
            replay_lsn: 10_000,
            pending_restart: false,
            nofailover: false,
            failover_priority: 0,
            noloadbalance: false,
            tags: BTreeMap::new(),
            system_identifier: 1,
            paused: false,
            version: String::new(),
            note: None,
            slots: Vec::new(),
            upstream: None,
            upgrade: None,
            clone: None,
        },
    );
    NodeSnapshot {
        name: if primary { "db1" } else { "db2" }.into(),
        taken_at: Instant::now(),
        unix_ms: 0,
        view,
        status: Some(pg(!primary, lsn)),
        holds_leader: primary,
        noloadbalance: false,
        tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn status_code_table() {
    let now = Instant::now();
    let primary = snapshot(true, 10_000, &[]);
    let replica = snapshot(false, 9_000, &[("zone", "a")]);
    let mut noload = snapshot(false, 10_000, &[]);
    noload.noloadbalance = true;
    let with_sync = |mut s: NodeSnapshot| {
        let key = crate::cluster::model::SyncState {
            leader: "db1".into(),
            members: vec!["db2".into()],
            quorum: 1,
        };
        s.view.sync = Some((key, 5));
        s
    };
    let sync_replica = with_sync(snapshot(false, 9_000, &[]));
    let mut nofailover = snapshot(false, 9_000, &[]);
    let mut own = MemberInfo::for_test("db2", PgRole::Replica, PgState::Streaming, 9_000);
    own.nofailover = true;
    nofailover.view.members.insert("db2".into(), own);
    let sync_primary = with_sync(snapshot(true, 10_000, &[]));
    let cases: Vec<(&str, &NodeSnapshot, HashMap<String, String>, u16)> = vec![
        ("/primary", &primary, q(&[]), 200),
        ("/master", &primary, q(&[]), 200),
        ("/read-write", &primary, q(&[]), 200),
        ("/leader", &primary, q(&[]), 200),
        ("/replica", &primary, q(&[]), 503),
        ("/primary", &replica, q(&[]), 503),
        ("/replica", &replica, q(&[]), 200),
        ("/async", &replica, q(&[]), 200),
        ("/sync", &replica, q(&[]), 503),
        ("/sync", &sync_replica, q(&[]), 200),
        ("/async", &sync_replica, q(&[]), 503),
        ("/replica", &sync_replica, q(&[]), 200),
        ("/sync", &sync_primary, q(&[]), 503),
        ("/replica", &replica, q(&[("lag", "1000")]), 200),
        ("/replica", &replica, q(&[("lag", "999")]), 503),
        ("/replica", &replica, q(&[("lag", "1kB")]), 200),
        ("/replica", &replica, q(&[("tag_zone", "a")]), 200),
        ("/replica", &replica, q(&[("tag_zone", "b")]), 503),
        ("/replica", &replica, q(&[("tag_rack", "1")]), 503),
        ("/replica", &replica, q(&[("zone", "b")]), 200),
        ("/replica", &replica, q(&[("tag_zone", "a"), ("lag", "999")]), 503),
        ("/read-only", &replica, q(&[("tag_zone", "b")]), 503),
        ("/health", &replica, q(&[("tag_zone", "a")]), 200),
        ("/async", &replica, q(&[("tag_nofailover", "true")]), 503),
        ("/async", &nofailover, q(&[("tag_nofailover", "true")]), 200),
        ("/primary", &primary, q(&[("tag_zone", "b")]), 200),
        ("/leader", &primary, q(&[("tag_zone", "b")]), 200),
        ("/replica", &noload, q(&[]), 503),
        ("/read-only", &primary, q(&[]), 200),
        ("/read-only", &replica, q(&[]), 200),
        ("/health", &replica, q(&[]), 200),
        ("/readiness", &replica, q(&[]), 200),
        ("/liveness", &replica, q(&[]), 200),
        ("/patroni", &replica, q(&[]), 200),
        ("/nope", &replica, q(&[]), 404),
    ];
    for (path, snap, query, expect) in cases {
        assert_eq!(
            status_code(path, &query, Some(snap), now),
            expect,
            "{path} {query:?} on {}",
            snap.name
        );
    }
}

#[test]
fn stale_or_missing_state_answers_no_role() {
    let mut stale = snapshot(true, 10_000, &[]);
    stale.taken_at = Instant::now() - Duration::from_secs(60);
    let now = Instant::now();
    assert_eq!(
        status_code("/primary", &q(&[]), Some(&stale), now),
        503,
        "a stuck HA loop vouches for nothing"
    );
    assert_eq!(status_code("/liveness", &q(&[]), Some(&stale), now), 503);
    assert_eq!(status_code("/primary", &q(&[]), None, now), 503);
    assert_eq!(status_code("/metrics", &q(&[]), None, now), 200);
    let mut stopped = snapshot(false, 0, &[]);
    stopped.status = None;
    assert_eq!(status_code("/health", &q(&[]), Some(&stopped), now), 503);
}

#[test]
fn lag_units() {
    assert_eq!(parse_lag("100"), Some(100));
    assert_eq!(parse_lag("16MB"), Some(16 << 20));
    assert_eq!(parse_lag("1 kB"), Some(1024));
    assert_eq!(parse_lag("x"), None);
    assert_eq!(parse_lag("5 parsecs"), None);
}
