//! `pgha bench chaos`: a long seeded fault schedule ([`super::chaos_schedule`]) in the six-host topology, with a
//! writer through the VIP and writability pollers inside every db host; after every step the invariants of
//! DESIGN.md section 6 are checked ([`super::chaos_checks`]) and the rejoin and write gap timed. The fault suite
//! (tests/fault_suite.rs) runs this same harness for a few steps.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::chaos_checks::{warnings, Checks, GIVE_UP, REJOIN, VIP_MOVE};
use super::chaos_faults::{apply, Applied, Resolved};
use super::chaos_report::{render, summarize_kinds, ChaosReport, StepRecord};
use super::chaos_schedule::{schedule, timeline, violation, Step};
use super::measure::{gap_after, opt_ms};
use crate::cli::BenchChaosArgs;
use crate::harness::ns_probe::{NsProbe, Writability};
use crate::harness::six_hosts::{SixHosts, SixHostsOptions, CLIENT, DBS, EDGES, PG_PORT};
use crate::harness::topology::Topology;

const READY: Duration = Duration::from_secs(180);
const TABLE: &str = "pgha_chaos_probe";
/// The most each db host's PostgreSQL filesystem may hold (memory is used only for what it holds). pg_wal grows by a
/// 16 MB segment per new timeline until 256 MB of WAL (wal_keep_size) have passed: 53 failovers in 25 minutes filled
/// 1 GiB.
const DISK_MIB: u64 = 4096;

/// One chaos run.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// The `pgha` binary every host runs.
    pub exe: PathBuf,
    pub seed: u64,
    pub steps: usize,
    /// Quorum synchronous replication (else asynchronous: lost acknowledged writes are counted, not violations).
    pub quorum: bool,
    /// Keep configs, data and logs here (default: a temporary directory).
    pub dir: Option<PathBuf>,
    /// Start no step after this long (a soak run).
    pub duration: Option<Duration>,
    /// Keep the hosts' logs also when nothing failed.
    pub keep_logs: bool,
    /// The VIP's TTL (None: pgha's default).
    pub vip_ttl_ms: Option<u64>,
}

/// What the steps share.
struct Chaos<'a> {
    six: &'a mut SixHosts,
    opts: &'a ChaosOptions,
    probe: NsProbe,
    pollers: Writability,
    checks: Checks,
}

/// Runs the schedule; the topology is gone when this returns. The logs are kept on a violation or an error.
pub async fn run_chaos(opts: &ChaosOptions) -> anyhow::Result<ChaosReport> {
    anyhow::ensure!(
        crate::netns::is_root(),
        "pgha bench chaos builds network namespaces and needs root"
    );
    let ha_lines = if opts.quorum {
        "synchronous_mode = \"quorum\"\n".to_string()
    } else {
        String::new()
    };
    let mut six = SixHosts::start(&SixHostsOptions {
        exe: opts.exe.clone(),
        dir: opts.dir.clone(),
        ha_lines,
        vip_lines: super::profile::vip_lines(opts.vip_ttl_ms),
        pg_disk_mib: Some(DISK_MIB),
    })?;
    let result = drive(&mut six, opts).await;
    let failed = !matches!(&result, Ok(r) if r.violations.is_empty());
    let logs = (failed || opts.keep_logs).then(|| keep_logs(&six, opts));
    match result {
        Ok(mut report) => {
            report.logs = logs;
            Ok(report)
        }
        Err(e) => Err(e.context(format!(
            "seed {}; hosts' logs kept in {}",
            opts.seed,
            logs.unwrap_or_default()
        ))),
    }
}

/// Copies the hosts' logs (pgha's and PostgreSQL's) out of the temporary directory (or names `--dir`, which stays
/// except for the PostgreSQL logs, copied beside).
fn keep_logs(six: &SixHosts, opts: &ChaosOptions) -> String {
    let keep = match &opts.dir {
        Some(_) => six.dir.clone(),
        None => std::env::temp_dir().join(format!("pgha-chaos-logs-{}-{}", opts.seed, std::process::id())),
    };
    let _ = std::fs::create_dir_all(&keep);
    if opts.dir.is_none() {
        for h in six.log_hosts() {
            let _ = std::fs::copy(six.log_path(h), keep.join(format!("{h}.log")));
        }
    }
    // PostgreSQL's own logs live on the db hosts' tmpfs, gone with the topology.
    for d in DBS {
        let _ = std::fs::copy(six.pg_log_path(d), keep.join(format!("{d}-postgresql.log")));
    }
    keep.display().to_string()
}

/// Creates the probe table, retried: in synchronous mode the commit waits for a recorded synchronous standby.
async fn create_table(six: &SixHosts) -> anyhow::Result<()> {
    let target = six.direct()?;
    let sql = format!("CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY)");
    let deadline = Instant::now() + READY;
    for _ in 0..READY.as_secs() * 5 {
        if let Some(c) = target.primary().await {
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), c.execute(&sql, &[])).await {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the probe table could not be created within {READY:?}")
}

async fn drive(six: &mut SixHosts, opts: &ChaosOptions) -> anyhow::Result<ChaosReport> {
    let started = Instant::now();
    let ready = six
        .wait_ready(READY)
        .await
        .with_context(|| format!("starting the six-host topology\n{}", six.log_tails(8)))?;
    let ttl = Duration::from_millis(six.view().await?.config.ttl_ms);
    let plan = schedule(opts.seed, opts.steps, ttl);
    if let Some(v) = violation(&plan, EDGES.len(), ttl) {
        anyhow::bail!("the schedule breaks its rules: {v}");
    }
    create_table(six).await?;
    let pollers = Writability::start(six)?;
    let probe = NsProbe::start(Some(six.ns(CLIENT)?), six.via_vip(PG_PORT), TABLE, 1, None)?;
    Checks::wait_writes(&probe, Duration::from_secs(60))
        .await
        .map_err(anyhow::Error::msg)
        .context("before the first step")?;
    eprintln!(
        "{} chaos: seed {}, {} steps, ttl {} ms, ready after {:.0?}: primary {}, VIP on {}",
        utc_now(),
        opts.seed,
        plan.len(),
        ttl.as_millis(),
        started.elapsed(),
        ready.primary,
        ready.vip_holder
    );
    let mut chaos = Chaos {
        six,
        opts,
        probe,
        pollers,
        checks: Checks::new(TABLE),
    };
    let (mut primary, mut holder) = (ready.primary, ready.vip_holder);
    let (mut steps, mut violations) = (Vec::new(), Vec::new());
    for (i, step) in plan.iter().enumerate() {
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let (record, next) = chaos.step(i + 1, plan.len(), step, &primary, &holder).await?;
        violations.extend(
            record
                .violations
                .iter()
                .map(|v| format!("step {} ({}): {v}", i + 1, record.faults)),
        );
        steps.push(record);
        match next {
            Some(n) => (primary, holder) = n,
            None => {
                violations.push(format!(
                    "the run stopped after step {}: the cluster did not recover",
                    i + 1
                ));
                break;
            }
        }
    }
    let (acknowledged, lost_acknowledged, final_violations) = chaos.finish().await;
    violations.extend(final_violations.into_iter().map(|v| format!("final check: {v}")));
    Ok(ChaosReport {
        topology: "six hosts (network namespaces)",
        replication: if opts.quorum {
            "synchronous_mode = quorum"
        } else {
            "async"
        }
        .into(),
        seed: opts.seed,
        steps_planned: plan.len(),
        ttl_ms: ttl.as_millis() as u64,
        seconds: started.elapsed().as_secs_f64(),
        acknowledged,
        lost_acknowledged,
        summary: summarize_kinds(&steps),
        steps,
        violations,
        logs: None,
    })
}

impl Chaos<'_> {
    /// Runs one step and checks it; the next (primary, VIP holder), or None when the cluster did not recover.
    async fn step(
        &mut self,
        n: usize,
        of: usize,
        step: &Step,
        primary: &str,
        holder: &str,
    ) -> anyhow::Result<(StepRecord, Option<(String, String)>)> {
        let hosts = Resolved::new(primary, holder);
        let mut r = StepRecord {
            step: n,
            faults: step.to_string(),
            kinds: step.faults.iter().map(|f| f.kind()).collect(),
            hosts: step.faults.iter().map(|f| hosts.describe(*f)).collect(),
            primary_before: primary.into(),
            vip_before: holder.into(),
            ..Default::default()
        };
        eprintln!("{} step {n}/{of}: {}; {}", utc_now(), r.faults, r.hosts.join(", "));
        let marks: Vec<(&str, u64)> = DBS.iter().map(|d| (*d, self.six.log_len(d))).collect();
        let start = Instant::now();
        let mut running = Vec::new();
        for ev in timeline(step) {
            tokio::time::sleep_until((start + ev.at).into()).await;
            if let Applied::Running(task) = apply(self.six, &self.opts.exe, &hosts, ev.op).await? {
                running.push(task);
            }
        }
        for task in running {
            r.violations.extend(task.await.context("the switchover task")??);
        }
        let end = Instant::now();
        let rejoin = self.checks.wait_rejoined(self.six, end).await;
        let (leader, back_at) = (rejoin.leader.clone(), rejoin.at);
        let late = back_at - end;
        r.rejoin_ms = leader.as_ref().and_then(|_| opt_ms(Some(late)));
        if leader.is_none() || late > REJOIN {
            let why = match &leader {
                Some(_) => format!("only after {late:.1?} (until then: {})", rejoin.last),
                None => format!("not within {GIVE_UP:?}: {}", rejoin.last),
            };
            let mut v =
                format!("every db member streams from the leader again within {REJOIN:?} of the fault's end: {why}");
            for (d, from) in &marks {
                for w in warnings(self.six, d, *from, 3) {
                    v.push_str(&format!("\n    log: {w}"));
                }
            }
            r.violations.push(v);
        }
        let Some(leader) = leader else {
            eprintln!("{} not rejoined\n  VIOLATED: {}", utc_now(), r.violations.join("\n  "));
            return Ok((r, None));
        };
        r.primary_after = Some(leader.clone());
        match self
            .checks
            .wait_vip(self.six, (end + REJOIN).max(back_at + VIP_MOVE))
            .await
        {
            Ok((h, at)) => {
                r.settle_ms = opt_ms(Some(at - end));
                r.vip_after = Some(h);
            }
            Err(why) => r.violations.push(format!("exactly one VIP holder once settled: {why}")),
        }
        if let Err(why) = Checks::wait_writes(&self.probe, REJOIN).await {
            r.violations.push(why);
        }
        r.write_gap_ms = opt_ms(gap_after(&self.probe.since(start), start));
        r.violations.extend(self.checks.new_two_writable(&self.pollers));
        // The acknowledgements first: every id in them was committed before the primary is read.
        let acked = self.probe.snapshot();
        match self.checks.new_lost(self.six, &acked).await {
            Err(why) => r.violations.push(why),
            Ok((on, lost)) => {
                r.lost_acknowledged = lost.len();
                if self.opts.quorum && !lost.is_empty() {
                    r.violations.push(format!(
                        "no acknowledged write lost: {} of {} missing on {on}: {:?}",
                        lost.len(),
                        acked.len(),
                        &lost[..lost.len().min(20)]
                    ));
                }
            }
        }
        eprintln!(
            "{} rejoined after {} ms, settled after {} ms, write gap {} ms, primary {leader}, VIP on {}{}",
            utc_now(),
            ms(r.rejoin_ms),
            ms(r.settle_ms),
            ms(r.write_gap_ms),
            r.vip_after.as_deref().unwrap_or("?"),
            if r.violations.is_empty() {
                String::new()
            } else {
                format!("\n  VIOLATED: {}", r.violations.join("\n  "))
            }
        );
        let vip = r
            .vip_after
            .clone()
            .or(self.six.vip_key().await)
            .unwrap_or_else(|| holder.into());
        Ok((r, Some((leader, vip))))
    }

    /// Stops the writer; (acknowledged, lost, violations) of the whole run on the final primary.
    async fn finish(self) -> (usize, usize, Vec<String>) {
        let Chaos {
            six,
            opts,
            probe,
            pollers,
            mut checks,
        } = self;
        let (acked, _) = probe.stop();
        let mut violations = checks.new_two_writable(&pollers);
        if acked.len() < 50 {
            violations.push(format!(
                "the writer made progress: only {} acknowledged writes",
                acked.len()
            ));
        }
        if let Err(e) = six.wait_ready(REJOIN).await {
            violations.push(format!("a settled cluster at the end: {e}"));
        }
        match checks.new_lost(six, &acked).await {
            Ok((on, lost)) if opts.quorum && !lost.is_empty() => {
                violations.push(format!("no acknowledged write lost: {lost:?} missing on {on}"))
            }
            Ok(_) => {}
            Err(why) => violations.push(why),
        }
        (acked.len(), checks.lost_so_far(), violations)
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

/// The wall-clock time of day (UTC, ms) for progress lines, to find the moment in the hosts' JSON logs.
fn utc_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let text = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    text.get(11..23).unwrap_or(&text).to_string()
}

/// A seed from the clock when none is given (printed, so the run can be repeated).
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs())
}

/// `pgha bench chaos`: runs, prints the table, writes the JSON; an error (exit code 1) on any violation. Ctrl-C tears
/// everything down.
pub async fn run(args: BenchChaosArgs) -> anyhow::Result<()> {
    crate::logging::init(crate::config::LogFormat::Human, "warn");
    let opts = ChaosOptions {
        exe: std::env::current_exe().context("locating the pgha binary")?,
        seed: args.seed.unwrap_or_else(clock_seed),
        steps: args.steps,
        quorum: args.sync == "quorum",
        dir: args.dir.clone(),
        duration: None,
        keep_logs: std::env::var_os("PGHA_FAULT_KEEP_LOGS").is_some(),
        vip_ttl_ms: args.vip_ttl_ms,
    };
    // SIGTERM as Ctrl-C: the cluster is torn down either way (dropping it stops every process it started).
    let Some(r) = crate::node::signals::unless_stopped(run_chaos(&opts)).await? else {
        anyhow::bail!("interrupted; the topology was torn down");
    };
    let report = r?;
    print!("{}", render(&report));
    super::write_json(args.json.as_deref(), &report)?;
    anyhow::ensure!(
        report.violations.is_empty(),
        "{} invariant violations (seed {}, --sync {})",
        report.violations.len(),
        report.seed,
        args.sync
    );
    Ok(())
}
