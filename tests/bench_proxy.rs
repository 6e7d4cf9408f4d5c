//! `pgha bench proxy` end to end (PostgreSQL 15 with pgbench): every workload runs straight to the primary and
//! through the edge, and the JSON report carries both throughputs and the edge's memory.

mod common;

use std::process::Command;

#[test]
fn bench_proxy_measures_direct_and_edge() {
    if !std::path::Path::new("/usr/lib/postgresql/15/bin/pgbench").exists() {
        eprintln!("skipped: bench_proxy_measures_direct_and_edge needs PostgreSQL 15's pgbench");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("proxy.json");
    let out = Command::new(common::exe())
        .args([
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
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running pgha bench proxy");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "bench failed:\n{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report")).expect("valid JSON");
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
    assert!(report["edge_rss_bytes"].as_u64().is_some_and(|b| b > 0), "{text}");
    assert!(text.contains("edge/direct"), "the table is printed\n{text}");
}
