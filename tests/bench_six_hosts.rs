//! `pgha bench failover` end to end in the six-host topology (root + PostgreSQL 15): one primary crash and one
//! edge crash in synchronous mode; the JSON has a measured write gap, no lost acknowledged write and never two
//! writable primaries; `--report` writes an index and a page per run with a marker for each phase that happened.

mod common;

use std::time::Duration;

#[test]
fn bench_failover_six_hosts_primary_and_edge_crash() {
    if !pgha::netns::is_root() {
        eprintln!("skipped: bench_failover_six_hosts_primary_and_edge_crash needs root (network namespaces)");
        return;
    }
    let test = "bench_failover_six_hosts_primary_and_edge_crash";
    if !common::installed_or_skip("/usr/lib/postgresql/15/bin/postgres", test, "PostgreSQL 15") {
        return;
    }
    let pages = tempfile::tempdir().expect("tempdir");
    let pages_arg = pages.path().to_string_lossy().to_string();
    let (report, text) = common::bench_report(
        &[
            "bench",
            "failover",
            "--report",
            pages_arg.as_str(),
            "--runs",
            "1",
            "--scenario",
            "primary-crash",
            "--scenario",
            "edge-crash",
            "--sync",
            "quorum",
            // Debug binaries beside other tests: a VIP lease at the production default could move on a scheduling
            // stall during the primary crash (`bench soak` checks the default on a release build).
            "--vip-ttl-ms",
            "1000",
        ],
        Duration::from_secs(600),
    );
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{text}");
    for run in runs {
        let scenario = run["scenario"].as_str().expect("scenario");
        assert!(
            run["write_gap_ms"].as_f64().is_some_and(|g| g > 0.0),
            "{scenario}: gap measured\n{text}"
        );
        assert_eq!(
            run["lost_acknowledged"], 0,
            "{scenario}: nothing acknowledged is lost in sync mode\n{text}"
        );
        assert!(
            run["max_writable"].as_u64().is_some_and(|w| w <= 1),
            "{scenario}: never two writable\n{text}"
        );
        assert!(
            run["acknowledged"].as_u64().is_some_and(|a| a >= 50),
            "{scenario}: the writer wrote\n{text}"
        );
    }
    assert_eq!(runs[0]["scenario"], "primary-crash");
    assert_ne!(runs[0]["old_leader"], runs[0]["new_leader"], "a new leader\n{text}");
    assert!(runs[0]["new_leader_ms"].as_f64().is_some(), "{text}");
    // The phases come from the hosts' logs: the lease expired, then the new leader took the key, promoted, and an
    // edge routed to it, in that order.
    let phase = |run: &serde_json::Value, p: &str| run["phases"][p].as_f64();
    let crash: Vec<Option<f64>> = ["detect_ms", "elect_ms", "promote_ms", "route_ms"]
        .iter()
        .map(|p| phase(&runs[0], p))
        .collect();
    assert!(
        crash.iter().all(Option::is_some),
        "every failover phase logged: {crash:?}\n{text}"
    );
    assert!(
        crash.windows(2).all(|w| w[0] <= w[1]),
        "phases in order: {crash:?}\n{text}"
    );
    assert_eq!(runs[1]["scenario"], "edge-crash");
    assert_ne!(
        runs[1]["old_vip_holder"], runs[1]["new_vip_holder"],
        "the VIP moved\n{text}"
    );
    assert!(runs[1]["vip_move_ms"].as_f64().is_some(), "{text}");
    assert!(phase(&runs[1], "vip_ms").is_some(), "the VIP take logged\n{text}");
    // The report: an index linking both runs, and on each run's page a marker for the fault and for every phase
    // the JSON has (the marker's position is table-tested in src/bench/report_svg_tests.rs).
    let index = std::fs::read_to_string(pages.path().join("index.html")).expect("index.html");
    for (run, page) in runs.iter().zip(["run-01-primary-crash.html", "run-02-edge-crash.html"]) {
        assert!(index.contains(&format!("href=\"{page}\"")), "{page} linked\n{index}");
        let html = std::fs::read_to_string(pages.path().join(page)).expect("a run page");
        assert!(html.contains("<svg") && html.contains("</svg>") && !html.contains("<script"));
        assert!(html.contains("data-marker=\"fault\""), "{page}");
        for (p, marker) in [
            ("detect_ms", "detect"),
            ("elect_ms", "elect"),
            ("promote_ms", "promote"),
            ("route_ms", "route"),
            ("vip_ms", "VIP"),
        ] {
            assert_eq!(
                html.contains(&format!("data-marker=\"{marker}\"")),
                phase(run, p).is_some(),
                "{page}: a {marker} marker exactly when the phase happened"
            );
        }
    }
    eprintln!("{text}");
}
