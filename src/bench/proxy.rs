//! `pgha bench proxy`: pgbench straight to the primary and through an edge's primary port, alternating in one run
//! on a local one-node cluster, so the proxy's cost is measured on the same machine, data and moment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::stats::{anon_rss_bytes, nearest_rank, peak_rss_bytes, rss_bytes};
use crate::cli::BenchProxyArgs;
use crate::config::{LogFormat, Role};
use crate::harness::local::{Layout, LocalCluster};

const READY: Duration = Duration::from_secs(120);

/// A pgbench workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// `-S -M prepared`: point selects on long-lived connections (the proxy's per-packet cost).
    SelectOnly,
    /// `-S -C`: a new connection per transaction (the proxy's per-connection cost).
    ConnectPerTransaction,
    /// The default TPC-B-like read-write mix.
    TpcbLike,
}

impl Workload {
    fn flags(self) -> &'static [&'static str] {
        match self {
            Workload::SelectOnly => &["-S", "-M", "prepared"],
            Workload::ConnectPerTransaction => &["-S", "-C"],
            Workload::TpcbLike => &[],
        }
    }
}

/// What one pgbench run printed that we keep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PgbenchResult {
    pub tps: f64,
    pub latency_ms: f64,
}

/// Reads tps and average latency from pgbench's report.
pub fn parse_pgbench(out: &str) -> Option<PgbenchResult> {
    let value_after = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some(PgbenchResult {
        tps: value_after("tps = ")?,
        latency_ms: value_after("latency average = ")?,
    })
}

/// Median of a set, nearest rank as in every other bench summary (the lower middle for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    nearest_rank(&v, 0.5)
}

/// One workload's numbers: medians over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyRow {
    pub workload: Workload,
    pub direct: PgbenchResult,
    pub via_edge: PgbenchResult,
    /// Edge throughput over direct throughput.
    pub ratio: f64,
    pub rounds: Vec<(PgbenchResult, PgbenchResult)>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct ProxyReport {
    pub clients: usize,
    pub seconds: u64,
    pub scale: u32,
    pub rows: Vec<ProxyRow>,
    pub edge_rss_bytes: Option<u64>,
    pub edge_peak_rss_bytes: Option<u64>,
    /// Of `edge_rss_bytes`, the anonymous part (heap and stacks; the rest is the binary's code pages).
    pub edge_anon_rss_bytes: Option<u64>,
}

/// Summarizes per-round (direct, edge) results into a row.
pub fn row(workload: Workload, rounds: Vec<(PgbenchResult, PgbenchResult)>) -> ProxyRow {
    let direct = PgbenchResult {
        tps: median(rounds.iter().map(|r| r.0.tps).collect()),
        latency_ms: median(rounds.iter().map(|r| r.0.latency_ms).collect()),
    };
    let via_edge = PgbenchResult {
        tps: median(rounds.iter().map(|r| r.1.tps).collect()),
        latency_ms: median(rounds.iter().map(|r| r.1.latency_ms).collect()),
    };
    let ratio = if direct.tps > 0.0 {
        via_edge.tps / direct.tps
    } else {
        0.0
    };
    ProxyRow {
        workload,
        direct,
        via_edge,
        ratio,
        rounds,
    }
}

struct Pgbench {
    exe: PathBuf,
    password: String,
}

impl Pgbench {
    fn command(&self, port: u16) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .env("PGPASSWORD", &self.password)
            .env("PGSSLMODE", "disable")
            .env("PGDATABASE", "postgres");
        c
    }

    fn run(&self, port: u16, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command(port)
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.exe.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        anyhow::ensure!(out.status.success(), "pgbench {args:?} on port {port} failed:\n{text}");
        Ok(text)
    }

    fn measure(&self, port: u16, w: Workload, args: &BenchProxyArgs) -> anyhow::Result<PgbenchResult> {
        let (c, t) = (args.clients.to_string(), args.seconds.to_string());
        let mut argv = vec!["-n", "-c", c.as_str(), "-j", "2", "-T", t.as_str()];
        argv.extend_from_slice(w.flags());
        let text = self.run(port, &argv)?;
        parse_pgbench(&text).with_context(|| format!("no tps in pgbench's output:\n{text}"))
    }
}

/// Starts a one-node cluster with an edge, runs every workload alternately direct and through the edge.
pub async fn measure(args: &BenchProxyArgs, exe: &Path) -> anyhow::Result<ProxyReport> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let pgbench = crate::postgres::discover_bin_dir(None)
        .context("finding PostgreSQL's binaries (for pgbench)")?
        .join("pgbench");
    anyhow::ensure!(pgbench.exists(), "{} not found", pgbench.display());
    let mut cluster = LocalCluster::create_with(exe, args.dir.as_deref(), 1, Role::Db, false, Layout::default())?;
    cluster.start_all()?;
    cluster
        .wait_pg_cluster(0, READY)
        .await
        .context("bootstrapping the node")?;
    let edge = cluster.add_edge("")?;
    cluster.start_edge(edge)?;
    anyhow::ensure!(
        cluster.wait_edge_healthy(edge, READY).await,
        "the edge did not become healthy within {READY:?}"
    );
    let direct = cluster.nodes[0].pg_port.context("the node has no PostgreSQL port")?;
    let via_edge = cluster.edges[edge].edge.context("the edge has no ports")?.primary;
    let password = std::fs::read_to_string(cluster.dir.join("secrets/superuser"))
        .context("reading the superuser password")?
        .trim()
        .to_string();
    let bench = Pgbench { exe: pgbench, password };
    eprintln!("initializing pgbench tables (scale {})...", args.scale);
    bench.run(direct, &["-i", "-q", "-s", &args.scale.to_string()])?;
    let mut rows = Vec::new();
    for w in [
        Workload::SelectOnly,
        Workload::ConnectPerTransaction,
        Workload::TpcbLike,
    ] {
        let mut rounds = Vec::new();
        for i in 0..args.rounds {
            eprintln!("{w:?} round {}/{}...", i + 1, args.rounds);
            let d = bench.measure(direct, w, args)?;
            let e = bench.measure(via_edge, w, args)?;
            eprintln!(
                "  direct {:.0} tps ({:.3} ms), via edge {:.0} tps ({:.3} ms)",
                d.tps, d.latency_ms, e.tps, e.latency_ms
            );
            rounds.push((d, e));
        }
        rows.push(row(w, rounds));
    }
    let edge_pid = cluster.edges[edge].pid;
    Ok(ProxyReport {
        clients: args.clients,
        seconds: args.seconds,
        scale: args.scale,
        rows,
        edge_rss_bytes: edge_pid.and_then(rss_bytes),
        edge_peak_rss_bytes: edge_pid.and_then(peak_rss_bytes),
        edge_anon_rss_bytes: edge_pid.and_then(anon_rss_bytes),
    })
}

/// `pgha bench proxy`: runs, prints the table, writes the JSON; Ctrl-C tears the cluster down.
pub async fn run(args: BenchProxyArgs) -> anyhow::Result<()> {
    crate::logging::init(LogFormat::Human, "warn");
    let exe = std::env::current_exe().context("locating the pgha binary")?;
    let report = tokio::select! {
        r = measure(&args, &exe) => r?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the cluster was stopped"),
    };
    println!(
        "pgbench, {} clients, {} s per run, scale {}, median of {} rounds",
        report.clients, report.seconds, report.scale, args.rounds
    );
    let headers = [
        "workload",
        "direct tps",
        "edge tps",
        "edge/direct",
        "direct latency ms",
        "edge latency ms",
    ];
    println!(
        "{}",
        crate::ctl::output::table_of(&headers, &report.rows, |r| vec![
            format!("{:?}", r.workload),
            format!("{:.0}", r.direct.tps),
            format!("{:.0}", r.via_edge.tps),
            format!("{:.2}x", r.ratio),
            format!("{:.3}", r.direct.latency_ms),
            format!("{:.3}", r.via_edge.latency_ms),
        ])
    );
    let mb = |b: Option<u64>| b.map_or("-".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6));
    println!(
        "edge RSS after the runs: {} (peak {}), of which anonymous {}",
        mb(report.edge_rss_bytes),
        mb(report.edge_peak_rss_bytes),
        mb(report.edge_anon_rss_bytes)
    );
    super::write_json(args.json.as_deref(), &report)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 201234
number of failed transactions: 0 (0.000%)
latency average = 0.397 ms
initial connection time = 12.345 ms
tps = 20123.456789 (without initial connection time)
";

    #[test]
    fn reads_tps_and_latency() {
        assert_eq!(
            parse_pgbench(REPORT),
            Some(PgbenchResult {
                tps: 20123.456789,
                latency_ms: 0.397
            })
        );
        assert_eq!(parse_pgbench("pgbench: error: connection refused"), None);
    }

    #[test]
    fn medians_and_ratio_over_rounds() {
        let r = |tps, latency_ms| PgbenchResult { tps, latency_ms };
        let row = row(
            Workload::SelectOnly,
            vec![
                (r(1000.0, 1.0), r(900.0, 1.1)),
                (r(1200.0, 0.8), r(1000.0, 1.0)),
                (r(800.0, 1.2), r(700.0, 1.3)),
            ],
        );
        assert_eq!(row.direct, r(1000.0, 1.0));
        assert_eq!(row.via_edge, r(900.0, 1.1));
        assert!((row.ratio - 0.9).abs() < 1e-9);
        // Even count: the lower middle.
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.0);
    }
}
