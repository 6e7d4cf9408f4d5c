//! What `pgha bench failover` prints and writes: the six-host tables (summary and phases) or the loopback one
//! (write gap, leader changes, idle RSS), the JSON report, and each run's page for `--report`.

use std::path::Path;

use serde::Serialize;

use super::measure::{NetRun, NetSummary};
use super::report::{ms_cell, phase_cells, run_page, RunPage, PHASE_HEADERS};
use super::report_index::Table;
use super::report_svg::Timeline;
use super::stats::Summary;
use crate::ctl::output::table;

/// The whole report.
#[derive(Debug, Serialize)]
pub struct FailoverReport {
    pub topology: &'static str,
    /// `async`, or the synchronous mode and timings of the runs.
    pub replication: String,
    pub runs: Vec<NetRun>,
    pub summary: Vec<NetSummary>,
    /// Idle RSS of each db-role pgha (loopback only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub idle_rss_bytes: Vec<u64>,
}

impl FailoverReport {
    /// True for the six-host topology (its VIP, readers and pollers have columns).
    fn network(&self) -> bool {
        self.idle_rss_bytes.is_empty()
    }
}

/// Columns of the runs table of the six-host report.
const NET_RUN_HEADERS: [&str; 13] = [
    "run",
    "write gap ms",
    "first write ms",
    "leader",
    "VIP",
    "lost acked",
    "max writable",
    "read gap ms",
    PHASE_HEADERS[0],
    PHASE_HEADERS[1],
    PHASE_HEADERS[2],
    PHASE_HEADERS[3],
    PHASE_HEADERS[4],
];

/// Columns of the runs table of the loopback report.
const LOCAL_RUN_HEADERS: [&str; 10] = [
    "run",
    "gap ms",
    "leader",
    "acked",
    "lost acked",
    PHASE_HEADERS[0],
    PHASE_HEADERS[1],
    PHASE_HEADERS[2],
    PHASE_HEADERS[3],
    PHASE_HEADERS[4],
];

/// Run `number`'s page (`of_scenario`-th of its scenario); `network`: the six-host columns.
pub fn page_of(network: bool, number: usize, of_scenario: usize, r: &NetRun, timeline: Timeline) -> RunPage {
    let leader = format!("{} -> {}", r.old_leader, r.new_leader);
    let vip = format!("{} -> {}", r.old_vip_holder, r.new_vip_holder);
    let (mut cells, mut facts): (Vec<String>, Vec<(String, String)>) = match network {
        true => (
            vec![
                ms_cell(r.write_gap_ms),
                ms_cell(r.first_write_ms),
                leader.clone(),
                vip.clone(),
                r.lost_acknowledged.to_string(),
                r.max_writable.to_string(),
                ms_cell(r.read_gap_ms),
            ],
            vec![
                ("scenario".into(), r.scenario.name().into()),
                ("write gap ms".into(), ms_cell(r.write_gap_ms)),
                ("first write after the fault ms".into(), ms_cell(r.first_write_ms)),
                ("leader".into(), leader),
                ("new leader seen ms".into(), ms_cell(r.new_leader_ms)),
                ("VIP holder".into(), vip),
                ("VIP move seen ms".into(), ms_cell(r.vip_move_ms)),
                ("acknowledged writes".into(), r.acknowledged.to_string()),
                ("lost acknowledged writes".into(), r.lost_acknowledged.to_string()),
                ("max writable".into(), r.max_writable.to_string()),
                ("read gap ms".into(), ms_cell(r.read_gap_ms)),
            ],
        ),
        false => (
            vec![
                ms_cell(r.write_gap_ms),
                leader.clone(),
                r.acknowledged.to_string(),
                r.lost_acknowledged.to_string(),
            ],
            vec![
                ("scenario".into(), r.scenario.name().into()),
                ("write gap ms".into(), ms_cell(r.write_gap_ms)),
                ("leader".into(), leader),
                ("acknowledged writes".into(), r.acknowledged.to_string()),
                ("lost acknowledged writes".into(), r.lost_acknowledged.to_string()),
            ],
        ),
    };
    cells.extend(phase_cells(&r.phases));
    facts.extend(
        PHASE_HEADERS
            .iter()
            .zip(phase_cells(&r.phases))
            .map(|(h, c)| (h.to_string(), c)),
    );
    run_page(number, r.scenario, of_scenario, timeline, facts, cells)
}

fn cell(s: Option<Summary>) -> String {
    s.map_or("-".into(), |s| {
        format!("{:.0} / {:.0} / {:.0}", s.p50_ms, s.p95_ms, s.max_ms)
    })
}

/// The six-host summary tables as printed (and in the report's index).
fn net_tables(r: &FailoverReport) -> Vec<Table> {
    let headers = [
        "scenario",
        "runs",
        "write gap ms (p50/p95/max)",
        "new leader ms",
        "first write ms",
        "VIP move ms",
        "read gap ms",
        "lost acked",
        "max writable",
    ];
    let rows = r
        .summary
        .iter()
        .map(|s| {
            vec![
                format!("{:?}", s.scenario),
                s.runs.to_string(),
                cell(s.write_gap),
                cell(s.new_leader),
                cell(s.first_write),
                cell(s.vip_move),
                cell(s.read_gap),
                s.lost_acknowledged.to_string(),
                s.max_writable.to_string(),
            ]
        })
        .collect();
    let phase_headers = [
        "phases from the logs, ms after the fault (p50/p95/max)",
        "detect",
        "elect",
        "promote",
        "route",
        "VIP",
    ];
    let phase_rows = r
        .summary
        .iter()
        .map(|s| {
            vec![
                format!("{:?}", s.scenario),
                cell(s.detect),
                cell(s.elect),
                cell(s.promote),
                cell(s.route),
                cell(s.vip),
            ]
        })
        .collect();
    vec![
        Table::new("summary", &headers, rows),
        Table::new("phases", &phase_headers, phase_rows),
    ]
}

/// The loopback summary table as printed (and in the report's index).
fn local_table(r: &FailoverReport) -> Table {
    let headers = [
        "scenario",
        "runs",
        "gap p50 ms",
        "gap p95 ms",
        "gap max ms",
        "leader changes",
        "lost acked",
    ];
    let rows = r
        .summary
        .iter()
        .filter_map(|s| {
            let gap = s.write_gap?;
            let changes = r
                .runs
                .iter()
                .filter(|run| run.scenario == s.scenario && run.old_leader != run.new_leader)
                .count();
            Some(vec![
                format!("{:?}", s.scenario),
                gap.count.to_string(),
                format!("{:.0}", gap.p50_ms),
                format!("{:.0}", gap.p95_ms),
                format!("{:.0}", gap.max_ms),
                changes.to_string(),
                s.lost_acknowledged.to_string(),
            ])
        })
        .collect();
    Table::new("summary", &headers, rows)
}

fn rss_line(r: &FailoverReport) -> String {
    let mb: Vec<String> = r
        .idle_rss_bytes
        .iter()
        .map(|b| format!("{:.1}", *b as f64 / 1_048_576.0))
        .collect();
    format!("idle RSS of each db-role pgha (MB): {}", mb.join(" / "))
}

/// The tables (and the lines around them) of `r`.
fn tables(r: &FailoverReport) -> (Vec<String>, Vec<Table>) {
    match r.network() {
        true => (
            vec![format!("{}, replication: {}", r.topology, r.replication)],
            net_tables(r),
        ),
        false => (
            vec![format!("{}, replication: {}", r.topology, r.replication), rss_line(r)],
            vec![local_table(r)],
        ),
    }
}

/// Prints the tables as the bench always has.
pub fn print_report(r: &FailoverReport) {
    let (context, tables) = tables(r);
    match r.network() {
        true => println!("{}", context[0]),
        false => println!("replication: {}", r.replication),
    }
    for t in tables {
        let headers: Vec<&str> = t.headers.iter().map(String::as_str).collect();
        println!("{}", table(&headers, &t.rows));
    }
    if !r.network() {
        println!("{}", rss_line(r));
    }
}

/// Writes `index.html` and the run pages into `dir`.
pub fn write_report(dir: &Path, r: &FailoverReport, pages: &[RunPage]) -> anyhow::Result<()> {
    let (context, tables) = tables(r);
    let headers: &[&str] = match r.network() {
        true => &NET_RUN_HEADERS,
        false => &LOCAL_RUN_HEADERS,
    };
    super::report::write(dir, &context, &tables, headers, pages)
}
