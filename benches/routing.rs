//! The edge's routing (src/edge/routing.rs, src/edge/proxy.rs, src/edge/cancel.rs): a table from a DCS view, a new
//! table installed in the proxy (route-change lines, sessions to cut), and the per-session lookups.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pgha::edge::cancel::{route, SessionKey};
use pgha::edge::hello::CancelKey;
use pgha::edge::proxy::{Proxy, ProxySettings};
use pgha::edge::routing::{Port, RoutingOpts, RoutingTable};

mod common;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    let opts = RoutingOpts {
        max_lag_bytes: Some(16 * 1024 * 1024),
    };
    for members in [3, 10] {
        let view = common::view(members, Some("db1"));
        g.bench_function(format!("table_from_view_{members}_members"), |b| {
            b.iter(|| black_box(RoutingTable::from_view(black_box(&view), true, &opts)))
        });
    }

    // A failover as the proxy sees it: the primary moves between db1 and db2 and back.
    let proxy = Proxy::new(ProxySettings {
        caps: Port::ALL.iter().map(|p| (*p, 333)).collect::<BTreeMap<_, _>>(),
        primary_wait: Duration::from_secs(1),
        hello_timeout: Duration::from_secs(5),
        session_threads: 0,
    })
    .expect("a proxy without session threads");
    let tables = [
        RoutingTable::from_view(&common::view(3, Some("db1")), true, &opts),
        RoutingTable::from_view(&common::view(3, Some("db2")), true, &opts),
    ];
    let mut n = 0usize;
    g.bench_function("proxy_set_table_leader_moves", |b| {
        b.iter(|| {
            n += 1;
            proxy.set_table(tables[n % 2].clone());
        })
    });

    // A new session's backend: the table in force, then round robin over the replica port.
    g.bench_function("session_pick_replica", |b| {
        b.iter(|| {
            n += 1;
            let table = proxy.table();
            black_box(table.pick(Port::Replica, n).map(|b| b.addr.len()))
        })
    });

    // A CancelRequest among 1000 live sessions whose keys were seen: the last one matches.
    let sessions: Vec<SessionKey> = (0..1000u32)
        .map(|i| SessionKey {
            port: Port::Primary,
            addr: format!("db{}-host:5432", i % 3 + 1),
            key: Some(CancelKey {
                pid: i,
                secret: i.to_be_bytes().to_vec(),
            }),
        })
        .collect();
    let targets = vec!["db1-host:5432".to_string()];
    let wanted = CancelKey {
        pid: 999,
        secret: 999u32.to_be_bytes().to_vec(),
    };
    g.bench_function("cancel_route_1000_sessions", |b| {
        b.iter(|| black_box(route(black_box(&wanted), Port::Primary, &sessions, &targets)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
