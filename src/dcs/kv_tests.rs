//! Table-driven tests of the KV state machine.

use super::*;
use crate::dcs::types::ExpiredLease;

fn put(key: &str, value: &str, lease: i64) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
        lease,
    }
}

fn txn(ops: Vec<Op>) -> Command {
    Command::Txn(Txn {
        compares: vec![],
        success: ops,
        failure: vec![],
    })
}

fn cas(key: &str, target: CompareTarget, then: Vec<Op>, otherwise: Vec<Op>) -> Command {
    Command::Txn(Txn {
        compares: vec![Compare {
            key: key.into(),
            target,
        }],
        success: then,
        failure: otherwise,
    })
}

fn value(state: &KvState, key: &str) -> Option<String> {
    state
        .range(key.as_bytes(), false)
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

fn grant(state: &mut KvState, index: u64, ttl_ms: i64) -> i64 {
    match state.apply(index, &Command::LeaseGrant { ttl_ms }).0 {
        CommandResult::Lease { id, .. } => id,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn revisions_versions_and_create_revision() {
    let mut s = KvState::default();
    s.apply(1, &txn(vec![put("a", "1", 0)]));
    s.apply(2, &txn(vec![put("a", "2", 0), put("b", "x", 0)]));
    let a = &s.range(b"a", false)[0];
    assert_eq!((a.create_revision, a.mod_revision, a.version), (1, 2, 2));
    assert_eq!(s.revision, 2);
    // A delete of nothing does not bump the revision.
    s.apply(
        3,
        &txn(vec![Op::Delete {
            key: b"zz".to_vec(),
            prefix: false,
        }]),
    );
    assert_eq!(s.revision, 2);
}

#[test]
fn compare_and_swap_table() {
    struct Case {
        name: &'static str,
        target: CompareTarget,
        expect_success: bool,
    }
    let cases = [
        Case {
            name: "absent on existing key",
            target: CompareTarget::Absent,
            expect_success: false,
        },
        Case {
            name: "mod_revision matches",
            target: CompareTarget::ModRevision(1),
            expect_success: true,
        },
        Case {
            name: "mod_revision stale",
            target: CompareTarget::ModRevision(7),
            expect_success: false,
        },
        Case {
            name: "value matches",
            target: CompareTarget::Value(b"db1".to_vec()),
            expect_success: true,
        },
        Case {
            name: "value differs",
            target: CompareTarget::Value(b"db2".to_vec()),
            expect_success: false,
        },
    ];
    for case in cases {
        let mut s = KvState::default();
        s.apply(1, &txn(vec![put("leader", "db1", 0)]));
        let (result, _) = s.apply(2, &cas("leader", case.target, vec![put("leader", "new", 0)], vec![]));
        let CommandResult::Txn { succeeded, .. } = result else {
            panic!("{}", case.name)
        };
        assert_eq!(succeeded, case.expect_success, "{}", case.name);
        let expected = if case.expect_success { "new" } else { "db1" };
        assert_eq!(value(&s, "leader").as_deref(), Some(expected), "{}", case.name);
    }
}

#[test]
fn absent_compare_on_missing_key_runs_success_branch() {
    let mut s = KvState::default();
    let (r, _) = s.apply(
        1,
        &cas("init", CompareTarget::Absent, vec![put("init", "sys1", 0)], vec![]),
    );
    assert!(matches!(r, CommandResult::Txn { succeeded: true, .. }));
    let (r, _) = s.apply(
        2,
        &cas("init", CompareTarget::Absent, vec![put("init", "sys2", 0)], vec![]),
    );
    assert!(matches!(r, CommandResult::Txn { succeeded: false, .. }));
    assert_eq!(value(&s, "init").as_deref(), Some("sys1"));
}

#[test]
fn prefix_range_and_delete() {
    let mut s = KvState::default();
    s.apply(
        1,
        &txn(vec![put("/m/a", "1", 0), put("/m/b", "2", 0), put("/n", "3", 0)]),
    );
    assert_eq!(s.range(b"/m/", true).len(), 2);
    let (r, events) = s.apply(
        2,
        &txn(vec![Op::Delete {
            key: b"/m/".to_vec(),
            prefix: true,
        }]),
    );
    assert!(matches!(r, CommandResult::Txn { deleted: 2, .. }));
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.kind == EventKind::Delete && e.revision() == 2));
    assert_eq!(s.key_count(), 1);
}

#[test]
fn put_with_unknown_lease_is_rejected_atomically() {
    let mut s = KvState::default();
    let (r, events) = s.apply(1, &txn(vec![put("a", "1", 0), put("b", "2", 42)]));
    assert!(matches!(r, CommandResult::Rejected(_)));
    assert!(events.is_empty());
    assert_eq!(s.key_count(), 0);
}

#[test]
fn lease_revoke_deletes_bound_keys_in_one_revision() {
    let mut s = KvState::default();
    let id = grant(&mut s, 1, 1000);
    s.apply(
        2,
        &txn(vec![
            put("leader", "db1", id),
            put("member", "x", id),
            put("plain", "y", 0),
        ]),
    );
    let (r, events) = s.apply(3, &Command::LeaseRevoke { id });
    assert!(matches!(r, CommandResult::Lease { found: true, .. }));
    assert_eq!(events.len(), 2);
    assert_eq!(s.revision, 2, "grant does not bump the revision; put = 1, revoke = 2");
    assert_eq!(s.key_count(), 1);
    let (r, _) = s.apply(4, &Command::LeaseRevoke { id });
    assert!(matches!(r, CommandResult::Lease { found: false, .. }));
}

#[test]
fn expire_is_skipped_when_a_keepalive_came_in_between() {
    let mut s = KvState::default();
    let id = grant(&mut s, 1, 1000);
    s.apply(2, &txn(vec![put("leader", "db1", id)]));
    // The leader decided at refreshed_index 1, but a keepalive was applied at index 3 first.
    s.apply(3, &Command::LeaseKeepAlive { id });
    let stale = Command::LeaseExpire {
        leases: vec![ExpiredLease { id, refreshed_index: 1 }],
    };
    let (r, _) = s.apply(4, &stale);
    assert_eq!(r, CommandResult::Expired { expired: vec![] });
    assert_eq!(value(&s, "leader").as_deref(), Some("db1"));
    let current = Command::LeaseExpire {
        leases: vec![ExpiredLease { id, refreshed_index: 3 }],
    };
    let (r, _) = s.apply(5, &current);
    assert_eq!(r, CommandResult::Expired { expired: vec![id] });
    assert_eq!(value(&s, "leader"), None);
}

#[test]
fn rebinding_a_key_to_another_lease_unbinds_it_from_the_first() {
    let mut s = KvState::default();
    let a = grant(&mut s, 1, 1000);
    let b = grant(&mut s, 2, 1000);
    s.apply(3, &txn(vec![put("k", "1", a)]));
    s.apply(4, &txn(vec![put("k", "2", b)]));
    s.apply(5, &Command::LeaseRevoke { id: a });
    assert_eq!(value(&s, "k").as_deref(), Some("2"));
}

#[test]
fn lease_ttl_is_clamped() {
    let mut s = KvState::default();
    let (r, _) = s.apply(1, &Command::LeaseGrant { ttl_ms: 1 });
    assert!(matches!(r, CommandResult::Lease { ttl_ms: MIN_TTL_MS, .. }));
}

#[test]
fn history_serves_watchers_and_reports_compaction() {
    let mut s = KvState::default();
    for i in 0..(HISTORY_EVENTS as u64 + 10) {
        s.apply(i + 1, &txn(vec![put("k", &i.to_string(), 0)]));
    }
    let err = s.events_since(1).expect_err("old revisions are compacted");
    assert!(err.compacted >= 10);
    let recent = s.events_since(s.revision - 4).expect("recent revisions are retained");
    assert_eq!(recent.len(), 5);
    assert!(recent.windows(2).all(|w| w[0].revision() < w[1].revision()));
}

#[test]
fn snapshot_roundtrip_resets_history() {
    let mut s = KvState::default();
    let id = grant(&mut s, 1, 500);
    s.apply(2, &txn(vec![put("a", "1", id)]));
    let bytes = serde_json::to_vec(&s).expect("serialize");
    let mut restored: KvState = serde_json::from_slice(&bytes).expect("deserialize");
    restored.reset_history();
    assert_eq!(restored.revision, s.revision);
    assert_eq!(value(&restored, "a").as_deref(), Some("1"));
    assert!(restored.events_since(restored.revision).is_err());
    assert!(restored.events_since(restored.revision + 1).is_ok());
    // The lease id counter survives, so ids are never reused.
    assert_eq!(grant(&mut restored, 3, 500), id + 1);
}
