//! `pgha bench failover`: write gap, leader change and lost acknowledged writes across faults on a local
//! three-node cluster of real pgha + PostgreSQL processes (loopback; the six-host network version is separate).

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use serde::Serialize;

use super::phases::{parse_json_log, phases, LogLine, Outcome, Phases};
use super::report::{phase_cells, run_page, RunPage, PHASE_HEADERS};
use super::report_index::Table;
use super::report_svg::Timeline;
use super::scenario::Scenario;
use super::stats::{rss_bytes, summarize, Summary};
use crate::cli::BenchFailoverArgs;
use crate::config::{LogFormat, Role};
use crate::harness::local::{Layout, LocalCluster};
use crate::harness::probe::{lost, max_gap, Target, Writer};
use crate::harness::six_hosts::read_from;

const READY: Duration = Duration::from_secs(180);
const TABLE: &str = "pgha_bench_probe";

/// One fault and what the writer saw.
#[derive(Debug, Serialize)]
pub struct RunResult {
    pub scenario: Scenario,
    pub write_gap_ms: f64,
    pub old_leader: String,
    pub new_leader: String,
    pub acknowledged: usize,
    pub lost_acknowledged: usize,
    /// Per-phase timings from the nodes' logs (no edges here: no route or VIP phase).
    pub phases: Phases,
}

/// Per-scenario summary.
#[derive(Debug, Serialize)]
pub struct ScenarioSummary {
    pub scenario: Scenario,
    pub write_gap: Summary,
    pub lost_acknowledged: usize,
    pub leader_changes: usize,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct FailoverReport {
    /// `async`, or the synchronous mode of the runs.
    pub replication: String,
    pub runs: Vec<RunResult>,
    pub summary: Vec<ScenarioSummary>,
    pub idle_rss_bytes: Vec<u64>,
}

fn index_of(cluster: &LocalCluster, name: &str) -> usize {
    cluster.nodes.iter().position(|n| n.name == name).unwrap_or(0)
}

async fn wait_writes(writer: &Writer, at_least: usize, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while writer.count() < at_least {
        anyhow::ensure!(Instant::now() < deadline, "no {what} within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn one_run(
    cluster: &mut LocalCluster,
    target: &Target,
    scenario: Scenario,
    first_id: i64,
) -> anyhow::Result<(RunResult, Timeline)> {
    let old_leader = cluster.wait_pg_cluster(2, READY).await?;
    let li = index_of(cluster, &old_leader);
    let writer = Writer::start(target.clone(), TABLE, first_id);
    wait_writes(&writer, 25, "writes before the fault").await?;
    // Where each node's log stands at the fault: the phases are read from there on.
    let marks: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|n| std::fs::metadata(&n.log).map_or(0, |m| m.len()))
        .collect();
    let (t0, t0_wall) = (Instant::now(), SystemTime::now());
    match scenario {
        Scenario::PrimaryCrash => {
            cluster.kill(li);
            cluster.signal_postgres(li, libc::SIGKILL);
        }
        Scenario::PostgresCrash => {
            cluster.signal_postgres(li, libc::SIGKILL);
        }
        Scenario::Sigterm => cluster.signal(li, libc::SIGTERM),
        Scenario::Switchover => request_switchover(&cluster.client(Duration::from_secs(5))?).await?,
        other => anyhow::bail!("scenario {other:?} needs the six-host topology (run without --local, as root)"),
    }
    let before = writer.count();
    wait_writes(&writer, before + 25, "writes after the fault").await?;
    let acked = writer.stop().await;
    let new_leader = cluster.wait_pg_cluster(0, READY).await?;
    let primary = target.primary().await.context("connecting to the new primary")?;
    let rows = primary
        .query(&format!("SELECT id FROM {TABLE} ORDER BY id"), &[])
        .await?;
    let present: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    // Bring the faulted node back for the next run.
    match scenario {
        Scenario::PrimaryCrash => {
            cluster.stop_postgres(li);
            cluster.start(li)?;
        }
        Scenario::Sigterm => {
            cluster.stop(li, Duration::from_secs(30));
            cluster.start(li)?;
        }
        _ => {}
    }
    let lines: Vec<LogLine> = cluster
        .nodes
        .iter()
        .zip(&marks)
        .flat_map(|(n, from)| parse_json_log(&n.name, &read_from(&n.log, *from)))
        .collect();
    let phases = phases(
        &lines,
        &Outcome {
            t0: t0_wall,
            new_leader: (new_leader != old_leader).then_some(new_leader.as_str()),
            edges: &[],
        },
    );
    let timeline = super::report::timeline(String::new(), &acked, t0, phases);
    let result = RunResult {
        scenario,
        write_gap_ms: max_gap(&acked).as_secs_f64() * 1000.0,
        old_leader,
        new_leader,
        acknowledged: acked.len(),
        lost_acknowledged: lost(&acked, &present).len(),
        phases,
    };
    Ok((result, timeline))
}

/// Asks for a switchover to the best streaming replica, as `pgha ctl switchover --force` does.
pub async fn request_switchover(dcs: &crate::dcs::client::DcsClient) -> anyhow::Result<()> {
    let keys = crate::cluster::keys::Keys::new("demo");
    let store = crate::cluster::store::Store { dcs, keys: &keys };
    let view = store.view().await?;
    let candidate = crate::ctl::switchover::best_candidate(&view).context("no streaming replica to switch to")?;
    let request = crate::cluster::model::SwitchoverRequest {
        leader: view.leader.as_ref().map(|l| l.name.clone()),
        candidate: candidate.name.clone(),
        scheduled_unix_ms: None,
        created_unix_ms: crate::cluster::store::unix_ms(),
    };
    anyhow::ensure!(
        store.request_switchover(&request).await?,
        "a switchover is already pending"
    );
    Ok(())
}

/// Runs the loopback benchmark (`--local`) and prints a table (and JSON when asked).
pub async fn run(args: BenchFailoverArgs) -> anyhow::Result<()> {
    crate::logging::init(LogFormat::Human, "warn");
    anyhow::ensure!(
        !args.reader && args.vip_ttl_ms.is_none(),
        "--reader and --vip-ttl-ms need the edges of the six-host topology (run without --local, as root)"
    );
    let exe = std::env::current_exe().context("locating the pgha binary")?;
    let layout = Layout {
        ha_lines: args.ha_lines(),
        // JSON logs: the phases are read from their `event` fields.
        extra_toml: "[log]\nformat = \"json\"\n".into(),
        ..Layout::default()
    };
    let mut cluster = LocalCluster::create_with(&exe, args.dir.as_deref(), 3, Role::Db, false, layout)?;
    cluster.start_all()?;
    cluster
        .wait_pg_cluster(2, READY)
        .await
        .context("bootstrapping the cluster")?;
    let password = std::fs::read_to_string(cluster.dir.join("secrets/superuser"))?
        .trim()
        .to_string();
    let nodes = cluster
        .nodes
        .iter()
        .filter_map(|n| n.pg_port.map(|p| ("127.0.0.1".to_string(), p)))
        .collect();
    let target = Target {
        nodes,
        user: "postgres".into(),
        password,
    };
    let primary = target.primary().await.context("connecting to the primary")?;
    primary
        .execute(
            &format!("CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY)"),
            &[],
        )
        .await?;
    // Idle footprint, after a few quiet loops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss_bytes = cluster
        .nodes
        .iter()
        .map(|n| n.pid.and_then(rss_bytes).unwrap_or(0))
        .collect();

    let scenarios = if args.scenario.is_empty() {
        vec![
            Scenario::PrimaryCrash,
            Scenario::Sigterm,
            Scenario::Switchover,
            Scenario::PostgresCrash,
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
            let (result, timeline) = one_run(&mut cluster, &target, *scenario, next_id).await?;
            next_id += 1_000_000;
            let p = &result.phases;
            eprintln!(
                "  gap {:.0} ms, {} -> {}, lost {}; phases ms: detect {:?}, elect {:?}, promote {:?}",
                result.write_gap_ms,
                result.old_leader,
                result.new_leader,
                result.lost_acknowledged,
                p.detect_ms.map(f64::round),
                p.elect_ms.map(f64::round),
                p.promote_ms.map(f64::round)
            );
            if args.report.is_some() {
                pages.push(page_of(runs.len() + 1, i + 1, &result, timeline));
            }
            runs.push(result);
        }
    }
    let summary = scenarios
        .iter()
        .filter_map(|s| {
            let of: Vec<&RunResult> = runs.iter().filter(|r| r.scenario == *s).collect();
            let gaps: Vec<Duration> = of
                .iter()
                .map(|r| Duration::from_secs_f64(r.write_gap_ms / 1000.0))
                .collect();
            Some(ScenarioSummary {
                scenario: *s,
                write_gap: summarize(&gaps)?,
                lost_acknowledged: of.iter().map(|r| r.lost_acknowledged).sum(),
                leader_changes: of.iter().filter(|r| r.old_leader != r.new_leader).count(),
            })
        })
        .collect();
    let report = FailoverReport {
        replication: args.profile(),
        runs,
        summary,
        idle_rss_bytes,
    };
    print_report(&report);
    super::write_json(args.json.as_deref(), &report)?;
    if let Some(dir) = &args.report {
        let context = vec![
            format!("loopback 3-node cluster, replication: {}", report.replication),
            rss_line(&report),
        ];
        super::report::write(dir, &context, &[summary_table(&report)], &RUN_HEADERS, &pages)?;
    }
    cluster.stop_all(Duration::from_secs(10));
    Ok(())
}

/// Columns of the report's runs table.
const RUN_HEADERS: [&str; 10] = [
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

fn page_of(number: usize, of_scenario: usize, r: &RunResult, timeline: Timeline) -> RunPage {
    let leader = format!("{} -> {}", r.old_leader, r.new_leader);
    let mut cells = vec![
        format!("{:.0}", r.write_gap_ms),
        leader.clone(),
        r.acknowledged.to_string(),
        r.lost_acknowledged.to_string(),
    ];
    cells.extend(phase_cells(&r.phases));
    let mut facts: Vec<(String, String)> = vec![
        ("scenario".into(), super::report::scenario_name(r.scenario)),
        ("write gap ms".into(), format!("{:.0}", r.write_gap_ms)),
        ("leader".into(), leader),
        ("acknowledged writes".into(), r.acknowledged.to_string()),
        ("lost acknowledged writes".into(), r.lost_acknowledged.to_string()),
    ];
    facts.extend(
        PHASE_HEADERS
            .iter()
            .zip(phase_cells(&r.phases))
            .map(|(h, c)| (h.to_string(), c)),
    );
    run_page(number, r.scenario, of_scenario, timeline, facts, cells)
}

/// The summary as printed (and in the report's index).
fn summary_table(r: &FailoverReport) -> Table {
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
        .map(|s| {
            vec![
                format!("{:?}", s.scenario),
                s.write_gap.count.to_string(),
                format!("{:.0}", s.write_gap.p50_ms),
                format!("{:.0}", s.write_gap.p95_ms),
                format!("{:.0}", s.write_gap.max_ms),
                s.leader_changes.to_string(),
                s.lost_acknowledged.to_string(),
            ]
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

fn print_report(r: &FailoverReport) {
    println!("replication: {}", r.replication);
    let t = summary_table(r);
    let headers: Vec<&str> = t.headers.iter().map(String::as_str).collect();
    println!("{}", crate::ctl::output::table(&headers, &t.rows));
    println!("{}", rss_line(r));
}
