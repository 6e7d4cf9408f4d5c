//! `pgha bench failover` in the six-host topology ([`SixHosts`]): a writer in the client host through VIP:5432,
//! writability pollers inside every db host, one fault per run, and the numbers of [`super::measure`].
//!
//! The writer and the pollers are [`crate::harness::ns_probe`]'s threads inside the namespaces.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::measure::{first_write_after_outage, gap_after, max_writable, opt_ms, summarize_runs, NetRun, NetSummary};
use super::phases::{parse_json_log, phases, LogLine, Outcome, Phases};
use super::report::{ms_cell, phase_cells, run_page, RunPage, PHASE_HEADERS};
use super::report_index::Table;
use super::report_svg::Timeline;
use super::scenario::Scenario;
use crate::cli::BenchFailoverArgs;
use crate::ctl::output::table;
use crate::harness::ns_probe::{NsProbe, Writability};
use crate::harness::probe::lost;
use crate::harness::six_hosts::{Ready, SixHosts, SixHostsOptions, CLIENT, EDGES, PG_PORT, REPLICA_PORT};

const READY: Duration = Duration::from_secs(180);
/// Budget of one scenario from the fault to steady writes again.
const DEADLINE: Duration = Duration::from_secs(60);
const TABLE: &str = "pgha_bench_probe";
/// Acknowledged writes that make "writing again" (about half a second).
const STEADY: usize = 25;
/// How long a writable sample counts when the host stops answering.
const HOLD: Duration = Duration::from_millis(300);

/// The whole report.
#[derive(Debug, Serialize)]
pub struct NetReport {
    pub topology: &'static str,
    pub replication: String,
    pub runs: Vec<NetRun>,
    pub summary: Vec<NetSummary>,
}

async fn one_run(
    six: &mut SixHosts,
    exe: &Path,
    pollers: &Writability,
    scenario: Scenario,
    first: i64,
    reader: bool,
) -> anyhow::Result<(NetRun, Timeline)> {
    let Ready { primary, vip_holder } = six
        .wait_ready(READY)
        .await
        .with_context(|| format!("waiting for the cluster before a run\n{}", six.log_tails(8)))?;
    let ttl = Duration::from_millis(six.view().await?.config.ttl_ms);
    let reader = reader.then(|| six.via_vip(REPLICA_PORT));
    let probe = NsProbe::start(six.ns(CLIENT)?, six.via_vip(PG_PORT), TABLE, first, reader)?;
    let start = Instant::now();
    while probe.snapshot().len() < STEADY {
        anyhow::ensure!(
            start.elapsed() < DEADLINE,
            "no writes through the VIP within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Where each host's log stands at the fault: the phases are read from there on, not from the start every run.
    let marks: Vec<(String, u64)> = six.log_hosts().map(|h| (h.to_string(), six.log_len(h))).collect();
    let t0 = Instant::now();
    let t0_wall = std::time::SystemTime::now();
    match scenario {
        Scenario::PrimaryCrash => six.kill_host(&primary).await,
        Scenario::PostgresCrash => {
            six.signal_postgres(&primary, libc::SIGKILL);
        }
        Scenario::Sigterm => six.signal_pgha(&primary, libc::SIGTERM)?,
        Scenario::PrimaryPartition => six.cut(&primary)?,
        Scenario::PrimaryFreeze => six.signal_pgha(&primary, libc::SIGSTOP)?,
        Scenario::Switchover => super::failover::request_switchover(six.dcs()).await?,
        // A power-off: every process dies and the host answers nothing (its address goes with it).
        Scenario::EdgeCrash => six.power_off(&vip_holder).await?,
        Scenario::EdgePartition => six.cut(&vip_holder)?,
    }
    let (mut new_leader_at, mut vip_at, mut thawed) = (None, None, scenario != Scenario::PrimaryFreeze);
    let (mut new_leader, mut new_vip) = (primary.clone(), vip_holder.clone());
    loop {
        let now = Instant::now();
        if !thawed && now >= t0 + 2 * ttl {
            six.signal_pgha(&primary, libc::SIGCONT)?;
            thawed = true;
        }
        if new_leader_at.is_none() {
            if let Ok(view) = six.view().await {
                if let Some(l) = view.leader_member() {
                    if l.name != primary && l.role == crate::cluster::model::PgRole::Primary {
                        new_leader_at = Some(now - t0);
                        new_leader = l.name.clone();
                    }
                }
            }
        }
        if vip_at.is_none() {
            if let Some(h) = six.vip_holders().into_iter().find(|h| *h != vip_holder) {
                vip_at = Some(now - t0);
                new_vip = h;
            }
        }
        let events_done = thawed
            && (!scenario.changes_leader() || new_leader_at.is_some())
            && (!scenario.moves_vip() || vip_at.is_some());
        let acked = probe.snapshot();
        // Writing again: STEADY acknowledgements after the end of the longest pause since the fault.
        let steady = first_write_after_outage(&acked, t0)
            .is_some_and(|f| acked.iter().filter(|(_, t)| *t >= t0 + f).count() >= STEADY);
        if events_done && steady {
            break;
        }
        if now - t0 > DEADLINE {
            anyhow::bail!(
                "{scenario:?}: not writing steadily again within {DEADLINE:?} (new leader {new_leader_at:?}, VIP \
                 move {vip_at:?})\n{}",
                six.log_tails(8)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (acked, read) = probe.stop();
    let writable = max_writable(&pollers.since(t0 - Duration::from_secs(1)), HOLD);
    // Undo the fault so the next run starts from a full cluster.
    match scenario {
        Scenario::PrimaryCrash | Scenario::Sigterm => six.start_pgha(&primary, exe)?,
        Scenario::PrimaryPartition => six.restore(&primary)?,
        Scenario::EdgeCrash => six.power_on(&vip_holder, exe)?,
        Scenario::EdgePartition => six.restore(&vip_holder)?,
        Scenario::PostgresCrash | Scenario::PrimaryFreeze | Scenario::Switchover => {}
    }
    let present = present_ids(six).await?;
    let phases = run_phases(
        six,
        &marks,
        t0_wall,
        (new_leader != primary).then_some(new_leader.as_str()),
    );
    let timeline = super::report::timeline(String::new(), &acked, t0, phases);
    let run = NetRun {
        scenario,
        write_gap_ms: opt_ms(gap_after(&acked, t0)),
        read_gap_ms: read.and_then(|r| opt_ms(gap_after(&r, t0))),
        first_write_ms: opt_ms(first_write_after_outage(&acked, t0)),
        new_leader_ms: opt_ms(new_leader_at),
        vip_move_ms: opt_ms(vip_at),
        old_leader: primary,
        new_leader,
        old_vip_holder: vip_holder,
        new_vip_holder: new_vip,
        acknowledged: acked.len(),
        lost_acknowledged: lost(&acked, &present).len(),
        max_writable: writable,
        phases,
    };
    Ok((run, timeline))
}

/// Per-phase timings of the run that started at `t0`, from every host's log past its mark.
fn run_phases(six: &SixHosts, marks: &[(String, u64)], t0: std::time::SystemTime, new_leader: Option<&str>) -> Phases {
    let lines: Vec<LogLine> = marks
        .iter()
        .flat_map(|(h, from)| parse_json_log(h, &six.log_since(h, *from)))
        .collect();
    let edges: Vec<&str> = EDGES.iter().map(|(e, _)| *e).collect();
    phases(
        &lines,
        &Outcome {
            t0,
            new_leader,
            edges: &edges,
        },
    )
}

/// Ids present on the current primary (waits for one, within the deadline).
async fn present_ids(six: &SixHosts) -> anyhow::Result<Vec<i64>> {
    let target = six.direct()?;
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(p) = target.primary().await {
            if let Ok(rows) = p.query(&format!("SELECT id FROM {TABLE} ORDER BY id"), &[]).await {
                return Ok(rows.iter().map(|r| r.get(0)).collect());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no primary to count the writes on within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs every scenario in a fresh six-host topology; the topology is gone when this returns. With `--report`, each
/// run's page too.
pub async fn measure(args: &BenchFailoverArgs, exe: &Path) -> anyhow::Result<(NetReport, Vec<RunPage>)> {
    anyhow::ensure!(
        crate::netns::is_root(),
        "pgha bench failover builds network namespaces and needs root; use --local for the loopback cluster"
    );
    let opts = SixHostsOptions {
        exe: exe.to_path_buf(),
        dir: args.dir.clone(),
        ha_lines: args.ha_lines(),
        vip_lines: args.vip_lines(),
        pg_disk_mib: None,
    };
    let mut six = SixHosts::start(&opts)?;
    six.wait_ready(READY)
        .await
        .with_context(|| format!("starting the six-host topology\n{}", six.log_tails(8)))?;
    let primary = six.direct()?.primary().await.context("connecting to the primary")?;
    primary
        .execute(
            &format!("CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY)"),
            &[],
        )
        .await?;
    let pollers = Writability::start(&six)?;
    let scenarios = if args.scenario.is_empty() {
        vec![
            Scenario::PrimaryCrash,
            Scenario::PostgresCrash,
            Scenario::PrimaryPartition,
            Scenario::PrimaryFreeze,
            Scenario::Switchover,
            Scenario::EdgeCrash,
            Scenario::EdgePartition,
        ]
    } else {
        args.scenario.iter().map(|s| Scenario::from(*s)).collect()
    };
    let mut runs = Vec::new();
    let mut pages = Vec::new();
    let mut next_id = 1;
    for scenario in &scenarios {
        for i in 0..args.runs {
            eprintln!("{scenario:?} run {}/{}...", i + 1, args.runs);
            let (r, timeline) = one_run(&mut six, exe, &pollers, *scenario, next_id, args.reader).await?;
            next_id += 1_000_000;
            eprintln!(
                "  gap {:?} ms, leader {} -> {} after {:?} ms, VIP {} -> {} after {:?} ms, lost {}, max writable {}",
                r.write_gap_ms.map(|v| v.round()),
                r.old_leader,
                r.new_leader,
                r.new_leader_ms.map(|v| v.round()),
                r.old_vip_holder,
                r.new_vip_holder,
                r.vip_move_ms.map(|v| v.round()),
                r.lost_acknowledged,
                r.max_writable
            );
            let p = &r.phases;
            eprintln!(
                "  phases ms: detect {:?}, elect {:?}, promote {:?}, route {:?}, VIP {:?}",
                p.detect_ms.map(f64::round),
                p.elect_ms.map(f64::round),
                p.promote_ms.map(f64::round),
                p.route_ms.map(f64::round),
                p.vip_ms.map(f64::round)
            );
            if args.report.is_some() {
                pages.push(page_of(runs.len() + 1, i + 1, &r, timeline));
            }
            runs.push(r);
        }
    }
    drop(pollers);
    let report = NetReport {
        topology: "six hosts (network namespaces)",
        replication: args.profile(),
        summary: summarize_runs(&scenarios, &runs),
        runs,
    };
    Ok((report, pages))
}

/// Columns of the report's runs table.
const RUN_HEADERS: [&str; 13] = [
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

fn page_of(number: usize, of_scenario: usize, r: &NetRun, timeline: Timeline) -> RunPage {
    let leader = format!("{} -> {}", r.old_leader, r.new_leader);
    let vip = format!("{} -> {}", r.old_vip_holder, r.new_vip_holder);
    let mut cells = vec![
        ms_cell(r.write_gap_ms),
        ms_cell(r.first_write_ms),
        leader.clone(),
        vip.clone(),
        r.lost_acknowledged.to_string(),
        r.max_writable.to_string(),
        ms_cell(r.read_gap_ms),
    ];
    cells.extend(phase_cells(&r.phases));
    let mut facts: Vec<(String, String)> = vec![
        ("scenario".into(), super::report::scenario_name(r.scenario)),
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
    ];
    facts.extend(
        PHASE_HEADERS
            .iter()
            .zip(phase_cells(&r.phases))
            .map(|(h, c)| (h.to_string(), c)),
    );
    run_page(number, r.scenario, of_scenario, timeline, facts, cells)
}

/// `pgha bench failover` (six-host mode): runs, prints the table, writes the JSON; Ctrl-C tears everything down.
pub async fn run(args: BenchFailoverArgs) -> anyhow::Result<()> {
    crate::logging::init(crate::config::LogFormat::Human, "warn");
    let exe = std::env::current_exe().context("locating the pgha binary")?;
    let (report, pages) = tokio::select! {
        r = measure(&args, &exe) => r?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the topology was torn down"),
    };
    print_report(&report);
    super::write_json(args.json.as_deref(), &report)?;
    if let Some(dir) = &args.report {
        let context = vec![format!("{}, replication: {}", report.topology, report.replication)];
        super::report::write(dir, &context, &summary_tables(&report), &RUN_HEADERS, &pages)?;
    }
    Ok(())
}

fn cell(s: Option<super::stats::Summary>) -> String {
    s.map_or("-".into(), |s| {
        format!("{:.0} / {:.0} / {:.0}", s.p50_ms, s.p95_ms, s.max_ms)
    })
}

/// The two summary tables as printed (and in the report's index).
fn summary_tables(r: &NetReport) -> [Table; 2] {
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
    [
        Table::new("summary", &headers, rows),
        Table::new("phases", &phase_headers, phase_rows),
    ]
}

fn print_report(r: &NetReport) {
    println!("{}, replication: {}", r.topology, r.replication);
    for t in summary_tables(r) {
        let headers: Vec<&str> = t.headers.iter().map(String::as_str).collect();
        println!("{}", table(&headers, &t.rows));
    }
}
