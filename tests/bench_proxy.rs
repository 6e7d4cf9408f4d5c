//! `pgha bench proxy` end to end (PostgreSQL 15 with pgbench): every workload runs straight to the primary and
//! through the edge (and through HAProxy with `--haproxy`), and the JSON report carries the throughputs and the
//! proxies' memory.

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
    assert!(
        rows.iter().all(|r| r["via_haproxy"].is_null()),
        "no HAProxy column without --haproxy\n{text}"
    );
}

#[test]
fn bench_proxy_with_haproxy_measures_three_routes() {
    let test = "bench_proxy_with_haproxy_measures_three_routes";
    if !common::installed_or_skip("/usr/lib/postgresql/15/bin/pgbench", test, "PostgreSQL 15's pgbench")
        || !common::installed_or_skip("/usr/sbin/haproxy", test, "haproxy (Debian package)")
    {
        return;
    }
    let (report, text) = common::bench_report(
        &[
            "bench",
            "proxy",
            "--haproxy",
            "--seconds",
            "1",
            "--rounds",
            "2",
            "--scale",
            "1",
            "--clients",
            "2",
        ],
        Duration::from_secs(300),
    );
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{text}");
    for row in rows {
        for side in ["direct", "via_haproxy", "via_edge"] {
            assert!(
                row[side]["tps"].as_f64().is_some_and(|t| t > 0.0),
                "{side} throughput measured\n{text}"
            );
        }
        for ratio in ["ratio", "haproxy_ratio", "edge_over_haproxy"] {
            assert!(row[ratio].as_f64().is_some_and(|r| r > 0.0), "{ratio}\n{text}");
        }
        let rounds = row["rounds"].as_array().expect("rounds");
        assert_eq!(rounds.len(), 2, "{text}");
        assert!(rounds.iter().all(|r| !r["haproxy"].is_null()), "{text}");
    }
    assert!(report["haproxy_rss_bytes"].as_u64().is_some_and(|b| b > 0), "{text}");
    assert!(report["haproxy_skipped"].is_null(), "{text}");
    assert!(
        text.contains("edge/haproxy"),
        "the table has the HAProxy columns\n{text}"
    );
    // The bench stopped its HAProxy (by its PID): no process runs with its configuration any more.
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("pgha-bench-haproxy"))
        .collect();
    assert!(left.is_empty(), "HAProxy outlived the bench: {left:?}");
}
