//! `pgha bench failover`: one driver over the harness's [`Topology`], for the six-host topology (a writer in the
//! client host through VIP:5432, writability pollers inside every db host) and the loopback cluster (`--local`: the
//! writer beside it, db scenarios only). One fault per run, the numbers of [`super::measure`], the per-phase
//! timings of [`super::phases`]; the tables are [`super::failover_report`]'s.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use super::failover_report::{page_of, print_report, write_report, FailoverReport};
use super::measure::{first_write_after_outage, gap_after, max_writable, opt_ms, summarize_runs, NetRun};
use super::phases::{parse_json_log, phases, LogLine, Outcome, Phases};
use super::report::RunPage;
use super::report_svg::Timeline;
use super::scenario::Scenario;
use super::stats::rss_bytes;
use super::steps::{self, Hosts, Step};
use crate::cli::BenchFailoverArgs;
use crate::config::{LogFormat, Role};
use crate::harness::local::{Layout, LocalCluster};
use crate::harness::ns_probe::{NsProbe, Writability};
use crate::harness::probe::{lost, Target};
use crate::harness::six_hosts::{SixHosts, SixHostsOptions};
use crate::harness::topology::{read_from, Topology};

const READY: Duration = Duration::from_secs(180);
/// Budget of one scenario from the fault to steady writes again.
const DEADLINE: Duration = Duration::from_secs(60);
const TABLE: &str = "pgha_bench_probe";
/// Acknowledged writes that make "writing again" (about half a second).
const STEADY: usize = 25;
/// How long a writable sample counts when the host stops answering.
const HOLD: Duration = Duration::from_millis(300);

/// The scenarios run when none is named: every one the topology can inject.
fn default_scenarios(network: bool) -> Vec<Scenario> {
    use Scenario::*;
    match network {
        true => vec![
            PrimaryCrash,
            PostgresCrash,
            PrimaryPartition,
            PrimaryFreeze,
            Switchover,
            EdgeCrash,
            EdgePartition,
        ],
        false => vec![PrimaryCrash, Sigterm, Switchover, PostgresCrash],
    }
}

/// True when `s` cuts links or powers hosts off (the six-host topology only).
fn needs_network(s: Scenario) -> bool {
    matches!(
        s,
        Scenario::PrimaryPartition | Scenario::EdgeCrash | Scenario::EdgePartition
    )
}

async fn inject<T: Topology>(site: &mut T, scenario: Scenario, primary: &str, vip: &str) -> anyhow::Result<()> {
    match scenario {
        Scenario::PrimaryCrash => site.kill_member(primary).await?,
        Scenario::PostgresCrash => {
            site.signal_postgres(primary, libc::SIGKILL);
        }
        Scenario::Sigterm => site.signal_member(primary, libc::SIGTERM)?,
        Scenario::PrimaryPartition => site.cut(primary)?,
        Scenario::PrimaryFreeze => site.signal_member(primary, libc::SIGSTOP)?,
        Scenario::Switchover => request_switchover(&**site.dcs_client()?).await?,
        // A power-off: every process dies and the host answers nothing (its address goes with it).
        Scenario::EdgeCrash => site.power_off(vip).await?,
        Scenario::EdgePartition => site.cut(vip)?,
    }
    Ok(())
}

/// Undoes the fault so the next run starts from a full cluster.
fn heal<T: Topology>(site: &mut T, scenario: Scenario, primary: &str, vip: &str) -> anyhow::Result<()> {
    match scenario {
        Scenario::PrimaryCrash | Scenario::Sigterm => site.start_member(primary)?,
        Scenario::PrimaryPartition => site.restore(primary)?,
        Scenario::EdgeCrash => site.power_on(vip)?,
        Scenario::EdgePartition => site.restore(vip)?,
        Scenario::PostgresCrash | Scenario::PrimaryFreeze | Scenario::Switchover => {}
    }
    Ok(())
}

async fn one_run<T: Topology>(
    site: &mut T,
    pollers: Option<&Writability>,
    scenario: Scenario,
    first: i64,
    reader: bool,
) -> anyhow::Result<(NetRun, Timeline)> {
    let (primary, vip_holder) = site
        .wait_serving(READY)
        .await
        .with_context(|| format!("waiting for the cluster before a run\n{}", site.log_tails(8)))?;
    let vip_holder = vip_holder.unwrap_or_default();
    let ttl = Duration::from_millis(site.view().await?.config.ttl_ms);
    let reader = if reader { site.read_target() } else { None };
    let probe = NsProbe::start(site.client_ns()?, site.write_target()?, TABLE, first, reader)?;
    let start = Instant::now();
    while probe.count() < STEADY {
        anyhow::ensure!(start.elapsed() < DEADLINE, "no writes within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Where each log stands at the fault: the phases are read from there on, not from the start every run.
    let marks: Vec<(String, std::path::PathBuf, u64)> = site
        .logs()
        .into_iter()
        .map(|(name, path)| {
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            (name, path, len)
        })
        .collect();
    let (t0, t0_wall) = (Instant::now(), SystemTime::now());
    inject(site, scenario, &primary, &vip_holder).await?;
    let (mut new_leader_at, mut vip_at, mut thawed) = (None, None, scenario != Scenario::PrimaryFreeze);
    let (mut new_leader, mut new_vip) = (primary.clone(), vip_holder.clone());
    loop {
        let now = Instant::now();
        if !thawed && now >= t0 + 2 * ttl {
            site.signal_member(&primary, libc::SIGCONT)?;
            thawed = true;
        }
        if new_leader_at.is_none() {
            if let Ok(view) = site.view().await {
                if let Some(l) = view.leader_member() {
                    if l.name != primary && l.role == crate::cluster::model::PgRole::Primary {
                        new_leader_at = Some(now - t0);
                        new_leader = l.name.clone();
                    }
                }
            }
        }
        if vip_at.is_none() {
            if let Some(h) = site.vip_holders().into_iter().find(|h| *h != vip_holder) {
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
                site.log_tails(8)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (acked, read) = probe.stop();
    let writable = pollers.map_or(0, |p| max_writable(&p.since(t0 - Duration::from_secs(1)), HOLD));
    heal(site, scenario, &primary, &vip_holder)?;
    let present = present_ids(site).await?;
    let lines: Vec<LogLine> = marks
        .iter()
        .flat_map(|(name, path, from)| parse_json_log(name, &read_from(path, *from)))
        .collect();
    let edges = site.edges();
    let edges: Vec<&str> = edges.iter().map(String::as_str).collect();
    let phases: Phases = phases(
        &lines,
        &Outcome {
            t0: t0_wall,
            new_leader: (new_leader != primary).then_some(new_leader.as_str()),
            edges: &edges,
        },
    );
    let steps = steps::steps(
        &lines,
        t0_wall,
        &Hosts {
            old_leader: &primary,
            new_leader: (new_leader != primary).then_some(new_leader.as_str()),
            edges: &edges,
        },
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
        steps,
    };
    Ok((run, timeline))
}

/// A session on the current primary of `target`, waiting for one within the deadline (a busy machine can miss one
/// connect timeout).
async fn primary_of(target: &Target) -> anyhow::Result<tokio_postgres::Client> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(p) = target.primary().await {
            return Ok(p);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no primary to connect to within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ids present on the current primary (waits for one, within the deadline).
async fn present_ids<T: Topology>(site: &T) -> anyhow::Result<Vec<i64>> {
    let target = site.direct_target()?;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let p = primary_of(&target).await?;
        if let Ok(rows) = p.query(&format!("SELECT id FROM {TABLE} ORDER BY id"), &[]).await {
            return Ok(rows.iter().map(|r| r.get(0)).collect());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no primary to count the writes on within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

/// Every scenario's runs on `site` (serving already); with `--report`, each run's page too.
async fn measure<T: Topology>(
    site: &mut T,
    pollers: Option<&Writability>,
    args: &BenchFailoverArgs,
) -> anyhow::Result<(Vec<Scenario>, Vec<NetRun>, Vec<RunPage>)> {
    let scenarios = match args.scenario.is_empty() {
        true => default_scenarios(site.has_network()),
        false => args.scenario.iter().map(|s| Scenario::from(*s)).collect(),
    };
    if let Some(s) = scenarios.iter().find(|s| needs_network(**s) && !site.has_network()) {
        anyhow::bail!("scenario {s:?} needs the six-host topology (run without --local, as root)");
    }
    let primary = site
        .direct_target()?
        .primary()
        .await
        .context("connecting to the primary")?;
    primary
        .execute(
            &format!("CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY)"),
            &[],
        )
        .await?;
    let (mut runs, mut pages, mut next_id) = (Vec::new(), Vec::new(), 1);
    for scenario in &scenarios {
        for i in 0..args.runs {
            eprintln!("{scenario:?} run {}/{}...", i + 1, args.runs);
            let (r, timeline) = one_run(site, pollers, *scenario, next_id, args.reader).await?;
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
            eprintln!("  steps ms: {}", steps::line(&r.steps));
            if args.report.is_some() {
                pages.push(page_of(site.has_network(), runs.len() + 1, i + 1, &r, timeline));
            }
            runs.push(r);
        }
        let of: Vec<&[Step]> = runs
            .iter()
            .filter(|r| r.scenario == *scenario)
            .map(|r| r.steps.as_slice())
            .collect();
        eprintln!("{scenario:?} step medians ms: {}", steps::line(&steps::medians(&of)));
    }
    Ok((scenarios, runs, pages))
}

/// The six-host topology: built, measured and torn down (on return, error or Ctrl-C of the caller).
async fn on_six_hosts(args: &BenchFailoverArgs, exe: &Path) -> anyhow::Result<(FailoverReport, Vec<RunPage>)> {
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
    let pollers = Writability::start(&six)?;
    let (scenarios, runs, pages) = measure(&mut six, Some(&pollers), args).await?;
    drop(pollers);
    let report = FailoverReport {
        topology: "six hosts (network namespaces)",
        replication: args.profile(),
        summary: summarize_runs(&scenarios, &runs),
        runs,
        idle_rss_bytes: Vec::new(),
    };
    Ok((report, pages))
}

/// The loopback 3-node cluster (`--local`).
async fn on_loopback(args: &BenchFailoverArgs, exe: &Path) -> anyhow::Result<(FailoverReport, Vec<RunPage>)> {
    anyhow::ensure!(
        !args.reader && args.vip_ttl_ms.is_none(),
        "--reader and --vip-ttl-ms need the edges of the six-host topology (run without --local, as root)"
    );
    let layout = Layout {
        ha_lines: args.ha_lines(),
        // JSON logs: the phases are read from their `event` fields.
        extra_toml: "[log]\nformat = \"json\"\n".into(),
        ..Layout::default()
    };
    let mut cluster = LocalCluster::create_with(exe, args.dir.as_deref(), 3, Role::Db, false, layout)?;
    cluster.start_all()?;
    cluster
        .wait_primary_with(2, READY)
        .await
        .context("bootstrapping the cluster")?;
    // Idle footprint, after a few quiet loops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss_bytes = cluster
        .nodes
        .iter()
        .map(|n| n.pid.and_then(rss_bytes).unwrap_or(0))
        .collect();
    let (scenarios, runs, pages) = measure(&mut cluster, None, args).await?;
    cluster.stop_all(Duration::from_secs(10));
    let report = FailoverReport {
        topology: "loopback 3-node cluster",
        replication: args.profile(),
        summary: summarize_runs(&scenarios, &runs),
        runs,
        idle_rss_bytes,
    };
    Ok((report, pages))
}

/// `pgha bench failover`: runs, prints the tables, writes the JSON (and the report); Ctrl-C tears everything down.
pub async fn run(args: BenchFailoverArgs) -> anyhow::Result<()> {
    crate::logging::init(LogFormat::Human, "warn");
    let exe = std::env::current_exe().context("locating the pgha binary")?;
    let measured = async {
        match args.local {
            true => on_loopback(&args, &exe).await,
            false => on_six_hosts(&args, &exe).await,
        }
    };
    // SIGTERM as Ctrl-C: the cluster is torn down either way (dropping it stops every process it started).
    let Some(r) = crate::node::signals::unless_stopped(measured).await? else {
        anyhow::bail!("interrupted; the cluster was torn down");
    };
    let (report, pages) = r?;
    print_report(&report);
    super::write_json(args.json.as_deref(), &report)?;
    if let Some(dir) = &args.report {
        write_report(dir, &report, &pages)?;
    }
    Ok(())
}
