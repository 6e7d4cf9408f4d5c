//! The DCS state machine's apply (src/dcs/kv.rs): what every member does for every committed Raft entry.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pgha::dcs::kv::KvState;
use pgha::dcs::types::{Command, Compare, CompareTarget, Op, Txn};

fn put(key: &[u8], value: &[u8], lease: i64) -> Op {
    Op::Put {
        key: key.to_vec(),
        value: value.to_vec(),
        lease,
    }
}

fn txn(compares: Vec<Compare>, success: Vec<Op>) -> Command {
    Command::Txn(Txn {
        compares,
        success,
        failure: vec![],
    })
}

/// A state like a busy cluster's: 1000 keys of ~300 bytes (member status documents), one lease.
fn populated() -> (KvState, i64, u64) {
    let mut s = KvState::default();
    let mut index = 1;
    let lease = match s.apply(index, &Command::LeaseGrant { ttl_ms: 2000 }).0 {
        pgha::dcs::types::CommandResult::Lease { id, .. } => id,
        _ => 0,
    };
    for i in 0..1000 {
        index += 1;
        let key = format!("/pgha/demo/members/db{i}");
        s.apply(index, &txn(vec![], vec![put(key.as_bytes(), &[b'x'; 300], lease)]));
    }
    (s, lease, index)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("kv_apply");
    let (mut s, lease, mut index) = populated();
    let member = b"/pgha/demo/members/db1".to_vec();
    // A member's status refresh: one put of a ~300-byte value under its lease.
    g.bench_function("put_member_status", |b| {
        b.iter(|| {
            index += 1;
            black_box(s.apply(index, &txn(vec![], vec![put(&member, &[b'y'; 300], lease)])))
        })
    });
    // The leader key's renewal shape: a compare on the key's value, then a put.
    let leader = b"/pgha/demo/leader".to_vec();
    s.apply(index + 1, &txn(vec![], vec![put(&leader, b"db1", lease)]));
    index += 1;
    g.bench_function("cas_leader_key", |b| {
        b.iter(|| {
            index += 1;
            let cmp = Compare {
                key: leader.clone(),
                target: CompareTarget::Value(b"db1".to_vec()),
            };
            black_box(s.apply(index, &txn(vec![cmp], vec![put(&leader, b"db1", lease)])))
        })
    });
    g.bench_function("lease_keepalive", |b| {
        b.iter(|| {
            index += 1;
            black_box(s.apply(index, &Command::LeaseKeepAlive { id: lease }))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
