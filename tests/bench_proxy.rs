//! `pgha bench proxy` end to end (PostgreSQL 15 with pgbench): every workload runs straight to the primary and
//! through the edge, and the JSON report carries both throughputs and the edge's memory.

mod common;

use std::time::Duration;

#[test]
fn bench_proxy_measures_direct_and_edge() {
    let test = "bench_proxy_measures_direct_and_edge";
    if !common::installed_or_skip("/usr/lib/postgresql/15/bin/pgbench", test, "PostgreSQL 15's pgbench") {
        return;
    }
    let (report, text) = common::bench_report(
        &[
            "bench",
            "proxy",
            "--seconds",
            "1",
            "--rounds",
            "1",
            "--scale",
            "1",
            "--clients",
            "2",
        ],
        Duration::from_secs(300),
    );
    let rows = report["rows"].as_array().expect("rows");
    let workloads: Vec<&str> = rows.iter().filter_map(|r| r["workload"].as_str()).collect();
    assert_eq!(
        workloads,
        ["select-only", "connect-per-transaction", "tpcb-like"],
        "{text}"
    );
    for row in rows {
        for side in ["direct", "via_edge"] {
            assert!(
                row[side]["tps"].as_f64().is_some_and(|t| t > 0.0),
                "{side} throughput measured\n{text}"
            );
        }
        assert!(row["ratio"].as_f64().is_some_and(|r| r > 0.0), "{text}");
    }
    let rss = report["edge_rss_bytes"].as_u64().unwrap_or(0);
    let anon = report["edge_anon_rss_bytes"].as_u64().unwrap_or(0);
    assert!(rss > 0 && anon > 0 && anon < rss, "RSS {rss}, anonymous {anon}\n{text}");
    assert!(text.contains("edge/direct"), "the table is printed\n{text}");
}
