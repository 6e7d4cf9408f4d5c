//! `pgha bench soak`: the six-host topology under a CPU-saturating pgbench load through the VIP, with no fault at
//! all: every Raft leader change, HA leader change and VIP move seen meanwhile is spurious. It proves that the
//! timing defaults (or the `--ttl-ms` / `--vip-ttl-ms` asked for) hold on a busy machine; exits non-zero on any.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::six_hosts::{SixHosts, SixHostsOptions, CLIENT, PG_PORT};
use crate::cli::BenchSoakArgs;

const READY: Duration = Duration::from_secs(180);
/// How often the leaders and the VIP holder are sampled.
const SAMPLE: Duration = Duration::from_millis(250);
const PGBENCH: &str = "/usr/lib/postgresql/15/bin/pgbench";

/// What a soak saw.
#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub profile: String,
    pub seconds: u64,
    pub clients: usize,
    /// pgbench's throughput through the VIP (None when its report could not be read).
    pub tps: Option<f64>,
    pub samples: usize,
    pub raft_leader_changes: usize,
    pub ha_leader_changes: usize,
    pub vip_moves: usize,
    /// Samples in which no edge, or more than one, held the VIP address.
    pub vip_not_single: usize,
}

impl SoakReport {
    /// Nothing moved: the run passed.
    pub fn quiet(&self) -> bool {
        self.raft_leader_changes == 0 && self.ha_leader_changes == 0 && self.vip_moves == 0 && self.vip_not_single == 0
    }
}

/// Changes between consecutive known values (unknown samples, e.g. during a slow read, are skipped).
pub fn count_changes(samples: &[Option<String>]) -> usize {
    let known: Vec<&String> = samples.iter().flatten().collect();
    known.windows(2).filter(|w| w[0] != w[1]).count()
}

/// Every sampled series of a run.
#[derive(Default)]
struct Series {
    raft: Vec<Option<String>>,
    ha: Vec<Option<String>>,
    vip: Vec<Option<String>>,
    vip_not_single: usize,
}

async fn raft_leader(six: &SixHosts) -> Option<String> {
    for addr in six.dcs().endpoints() {
        if let Ok(s) = six.dcs().status_of(addr, Duration::from_millis(500)).await {
            if s.state == "Leader" {
                return Some(s.name);
            }
        }
    }
    None
}

async fn sample(six: &SixHosts, series: &mut Series) {
    series.raft.push(raft_leader(six).await);
    series
        .ha
        .push(six.view().await.ok().and_then(|v| v.leader.map(|l| l.name)));
    let holders = six.vip_holders();
    if holders.len() != 1 {
        series.vip_not_single += 1;
    }
    series.vip.push((holders.len() == 1).then(|| holders[0].clone()));
}

/// Runs pgbench inside the client host through the VIP's primary port.
fn pgbench(six: &SixHosts, args: &[String]) -> anyhow::Result<std::process::Child> {
    let vip = six.vip().to_string();
    let port = PG_PORT.to_string();
    let mut cmd = six.topo.command(CLIENT, PGBENCH)?;
    cmd.args(["-h", vip.as_str(), "-p", port.as_str(), "-U", "postgres"])
        .args(args)
        .arg("postgres")
        .env("PGPASSWORD", &six.password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().context("starting pgbench in the client host")
}

/// Measures; the caller prints.
pub async fn measure(args: &BenchSoakArgs) -> anyhow::Result<SoakReport> {
    anyhow::ensure!(
        crate::netns::is_root(),
        "pgha bench soak builds network namespaces and needs root"
    );
    anyhow::ensure!(
        std::path::Path::new(PGBENCH).exists(),
        "pgha bench soak needs pgbench at {PGBENCH} (PostgreSQL 15)"
    );
    let opts = SixHostsOptions {
        exe: std::env::current_exe().context("locating the pgha binary")?,
        dir: args.dir.clone(),
        ha_lines: args.ha_lines(),
        vip_lines: args.vip_lines(),
        pg_disk_mib: None,
    };
    let six = SixHosts::start(&opts)?;
    six.wait_ready(READY)
        .await
        .with_context(|| format!("starting the six-host topology\n{}", six.log_tails(8)))?;
    let init = pgbench(&six, &["-i".into(), "-q".into(), "-s".into(), args.scale.to_string()])?
        .wait_with_output()
        .context("pgbench -i")?;
    anyhow::ensure!(
        init.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let seconds = args.seconds.unwrap_or(args.minutes * 60);
    let load = pgbench(
        &six,
        &[
            "-n".into(),
            "-c".into(),
            args.clients.to_string(),
            "-j".into(),
            "2".into(),
            "-T".into(),
            seconds.to_string(),
        ],
    )?;
    let mut series = Series::default();
    let end = Instant::now() + Duration::from_secs(seconds);
    let max_samples = seconds * 1000 / SAMPLE.as_millis() as u64 + 2;
    for _ in 0..max_samples {
        if Instant::now() >= end {
            break;
        }
        let next = Instant::now() + SAMPLE;
        sample(&six, &mut series).await;
        tokio::time::sleep_until(next.into()).await;
    }
    let out = tokio::task::spawn_blocking(move || load.wait_with_output())
        .await
        .context("waiting for pgbench")?
        .context("pgbench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(SoakReport {
        profile: args.profile(),
        seconds,
        clients: args.clients,
        tps: super::proxy::parse_pgbench(&text).map(|r| r.tps),
        samples: series.raft.len(),
        raft_leader_changes: count_changes(&series.raft),
        ha_leader_changes: count_changes(&series.ha),
        vip_moves: count_changes(&series.vip),
        vip_not_single: series.vip_not_single,
    })
}

/// `pgha bench soak`.
pub async fn run(args: BenchSoakArgs) -> anyhow::Result<()> {
    let report = measure(&args).await?;
    super::write_json(args.json.as_deref(), &report)?;
    println!(
        "six hosts under pgbench -c {} for {} s ({}): {} tps through the VIP",
        report.clients,
        report.seconds,
        report.profile,
        report.tps.map_or("?".to_string(), |t| format!("{t:.0}"))
    );
    println!(
        "spurious changes in {} samples: Raft leader {}, HA leader {}, VIP moves {}, samples without a single VIP holder {}",
        report.samples, report.raft_leader_changes, report.ha_leader_changes, report.vip_moves, report.vip_not_single
    );
    anyhow::ensure!(
        report.quiet(),
        "the soak was not quiet: something moved without a fault"
    );
    println!("quiet: nothing moved");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_between_known_samples() {
        let s = |v: &[Option<&str>]| v.iter().map(|x| x.map(str::to_string)).collect::<Vec<_>>();
        let cases: &[(&[Option<&str>], usize)] = &[
            (&[], 0),
            (&[Some("a")], 0),
            (&[Some("a"), Some("a"), None, Some("a")], 0),
            (&[Some("a"), None, Some("b")], 1),
            (&[Some("a"), Some("b"), Some("a")], 2),
            (&[None, None], 0),
        ];
        for (samples, want) in cases {
            assert_eq!(count_changes(&s(samples)), *want, "{samples:?}");
        }
    }
}
