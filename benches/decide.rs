//! The HA brain's decision (src/ha/decide.rs), run once per loop on every db node.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pgha::ha::decide::{decide, LocalData, LocalPg, LocalState};

mod common;

fn local(name: &str, pg: LocalPg) -> LocalState {
    LocalState {
        name: name.into(),
        data: LocalData::Present {
            system_identifier: common::SYSID,
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

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    let healthy = common::view(3, Some("db1"));
    let leader = local(
        "db1",
        LocalPg::Running {
            in_recovery: false,
            following: None,
        },
    );
    g.bench_function("leader_keeps_leading", |b| {
        b.iter(|| black_box(decide(black_box(&healthy), black_box(&leader))))
    });
    let replica = local(
        "db2",
        LocalPg::Running {
            in_recovery: true,
            following: Some(("db1-host".into(), 5432)),
        },
    );
    g.bench_function("replica_follows", |b| {
        b.iter(|| black_box(decide(black_box(&healthy), black_box(&replica))))
    });
    // The failover step: no leader key, a streaming replica decides to race.
    let leaderless = common::view(3, None);
    g.bench_function("replica_without_leader", |b| {
        b.iter(|| black_box(decide(black_box(&leaderless), black_box(&replica))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
