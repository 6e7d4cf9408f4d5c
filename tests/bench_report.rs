//! `pgha bench failover --local --report DIR` end to end (PostgreSQL 15, no root): one switchover on the loopback
//! cluster; its phases come from the nodes' JSON `event` fields, and the report has an index linking the run and a
//! run page whose SVG marks the fault and exactly the phases the JSON has.

mod common;

use std::time::Duration;

#[test]
fn bench_failover_local_writes_a_report() {
    let test = "bench_failover_local_writes_a_report";
    if !common::installed_or_skip("/usr/lib/postgresql/15/bin/postgres", test, "PostgreSQL 15") {
        return;
    }
    let pages = tempfile::tempdir().expect("tempdir");
    let pages_arg = pages.path().to_string_lossy().to_string();
    let (report, text) = common::bench_report(
        &[
            "bench",
            "failover",
            "--local",
            "--runs",
            "1",
            "--scenario",
            "switchover",
            "--report",
            pages_arg.as_str(),
        ],
        Duration::from_secs(420),
    );
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{text}");
    let run = &runs[0];
    assert_ne!(
        run["old_leader"], run["new_leader"],
        "the switchover moved the leader\n{text}"
    );
    // Released, taken, promoted, in that order; no edges on loopback: no route or VIP.
    let phase = |p: &str| run["phases"][p].as_f64();
    let order: Vec<Option<f64>> = ["detect_ms", "elect_ms", "promote_ms"]
        .iter()
        .map(|p| phase(p))
        .collect();
    assert!(
        order.iter().all(Option::is_some),
        "phases from the events: {order:?}\n{text}"
    );
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "in order: {order:?}\n{text}");
    assert_eq!((phase("route_ms"), phase("vip_ms")), (None, None), "{text}");

    let index = std::fs::read_to_string(pages.path().join("index.html")).expect("index.html");
    assert!(index.contains("href=\"run-01-switchover.html\""), "{index}");
    assert!(index.contains("<td>Switchover</td>"), "the summary table\n{index}");
    let html = std::fs::read_to_string(pages.path().join("run-01-switchover.html")).expect("the run page");
    assert!(html.contains("<svg") && html.contains("</svg>") && !html.contains("<script"));
    for marker in ["fault", "detect", "elect", "promote"] {
        assert!(html.contains(&format!("data-marker=\"{marker}\"")), "{marker} marker");
    }
    for marker in ["route", "VIP"] {
        assert!(
            !html.contains(&format!("data-marker=\"{marker}\"")),
            "no {marker} marker"
        );
    }
    assert!(html.contains("class=\"gap\""), "the write gap is shaded");
}
