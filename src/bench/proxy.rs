//! `pgha bench proxy`: pgbench straight to the primary, through HAProxy (`--haproxy`) and through an edge's primary
//! port, alternating in one run on a local one-node cluster, so each proxy's cost is measured on the same machine,
//! data and moment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::haproxy::{self, Haproxy, HaproxySettings};
use super::stats::{anon_rss_bytes, nearest_rank, peak_rss_bytes, rss_bytes};
use crate::cli::{BenchProxyArgs, ProxyWorkload};
use crate::config::{LogFormat, Role};
use crate::harness::local::{Layout, LocalCluster};
use crate::harness::topology::Topology;

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

impl From<ProxyWorkload> for Workload {
    fn from(w: ProxyWorkload) -> Self {
        match w {
            ProxyWorkload::SelectOnly => Workload::SelectOnly,
            ProxyWorkload::ConnectPerTransaction => Workload::ConnectPerTransaction,
            ProxyWorkload::TpcbLike => Workload::TpcbLike,
        }
    }
}

/// The workloads asked for, in order (all three when none was named).
pub fn workloads(asked: &[ProxyWorkload]) -> Vec<Workload> {
    if asked.is_empty() {
        return vec![
            Workload::SelectOnly,
            Workload::ConnectPerTransaction,
            Workload::TpcbLike,
        ];
    }
    asked.iter().map(|w| Workload::from(*w)).collect()
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

/// Where pgbench connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// Straight to the primary.
    Direct,
    /// Through HAProxy in TCP mode.
    Haproxy,
    /// Through the edge's primary port.
    Edge,
}

/// The routes of round `round` (0-based): rotated each round so that none always runs first, right after the tables
/// were touched by the previous workload, or last.
pub fn round_order(routes: &[Route], round: usize) -> Vec<Route> {
    let mut order = routes.to_vec();
    if !order.is_empty() {
        let k = round % order.len();
        order.rotate_left(k);
    }
    order
}

/// One round of a workload: each route's result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Round {
    pub direct: PgbenchResult,
    pub haproxy: Option<PgbenchResult>,
    pub edge: PgbenchResult,
}

/// One workload's numbers: medians over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyRow {
    pub workload: Workload,
    pub direct: PgbenchResult,
    /// None without `--haproxy` (or without HAProxy installed).
    pub via_haproxy: Option<PgbenchResult>,
    pub via_edge: PgbenchResult,
    /// Edge throughput over direct throughput.
    pub ratio: f64,
    /// HAProxy throughput over direct throughput.
    pub haproxy_ratio: Option<f64>,
    /// Edge throughput over HAProxy throughput.
    pub edge_over_haproxy: Option<f64>,
    pub rounds: Vec<Round>,
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
    /// HAProxy's threads, when it ran.
    pub haproxy_threads: Option<usize>,
    pub haproxy_rss_bytes: Option<u64>,
    pub haproxy_anon_rss_bytes: Option<u64>,
    /// Why the HAProxy column is missing though `--haproxy` asked for it.
    pub haproxy_skipped: Option<String>,
}

fn ratio(over: f64, under: f64) -> f64 {
    if under > 0.0 {
        over / under
    } else {
        0.0
    }
}

/// Medians of each route's tps and latency (separately) over `results`.
fn medians(results: &[PgbenchResult]) -> PgbenchResult {
    PgbenchResult {
        tps: median(results.iter().map(|r| r.tps).collect()),
        latency_ms: median(results.iter().map(|r| r.latency_ms).collect()),
    }
}

/// Summarizes per-round results into a row; the HAProxy column only when every round has it.
pub fn row(workload: Workload, rounds: Vec<Round>) -> ProxyRow {
    let direct = medians(&rounds.iter().map(|r| r.direct).collect::<Vec<_>>());
    let via_edge = medians(&rounds.iter().map(|r| r.edge).collect::<Vec<_>>());
    let haproxy: Option<Vec<PgbenchResult>> = rounds.iter().map(|r| r.haproxy).collect();
    let via_haproxy = haproxy.filter(|h| !h.is_empty()).map(|h| medians(&h));
    ProxyRow {
        workload,
        direct,
        via_haproxy,
        via_edge,
        ratio: ratio(via_edge.tps, direct.tps),
        haproxy_ratio: via_haproxy.map(|h| ratio(h.tps, direct.tps)),
        edge_over_haproxy: via_haproxy.map(|h| ratio(via_edge.tps, h.tps)),
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

/// HAProxy in front of the primary when `--haproxy` asked for it and it is installed; else why not.
async fn start_haproxy(args: &BenchProxyArgs, primary: u16) -> anyhow::Result<Result<(Haproxy, usize), String>> {
    if !args.haproxy {
        return Ok(Err("not asked for (--haproxy)".into()));
    }
    let Some(exe) = haproxy::find() else {
        return Ok(Err("haproxy is not installed".into()));
    };
    let port = crate::ports::free_ports(1).context("a port for HAProxy")?[0];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let settings = HaproxySettings {
        listen_port: port,
        backend: format!("127.0.0.1:{primary}"),
        threads,
        maxconn: 1000,
    };
    Ok(Ok((Haproxy::start(&exe, &settings).await?, threads)))
}

/// Starts a one-node cluster with an edge (and HAProxy with `--haproxy`), runs every workload on each route in
/// rotating order per round.
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
    let haproxy = start_haproxy(args, direct).await?;
    let (haproxy, haproxy_threads, haproxy_skipped) = match haproxy {
        Ok((h, threads)) => (Some(h), Some(threads), None),
        Err(why) => (None, None, args.haproxy.then_some(why)),
    };
    if let Some(why) = &haproxy_skipped {
        eprintln!("{why}: the HAProxy column is skipped");
    }
    let password = std::fs::read_to_string(cluster.dir.join("secrets/superuser"))
        .context("reading the superuser password")?
        .trim()
        .to_string();
    let bench = Pgbench { exe: pgbench, password };
    eprintln!("initializing pgbench tables (scale {})...", args.scale);
    bench.run(direct, &["-i", "-q", "-s", &args.scale.to_string()])?;
    let routes: Vec<Route> = match haproxy {
        Some(_) => vec![Route::Direct, Route::Haproxy, Route::Edge],
        None => vec![Route::Direct, Route::Edge],
    };
    let port_of = |r: Route| match (r, &haproxy) {
        (Route::Direct, _) => Some(direct),
        (Route::Haproxy, Some(h)) => Some(h.port()),
        (Route::Haproxy, None) => None,
        (Route::Edge, _) => Some(via_edge),
    };
    let mut rows = Vec::new();
    for w in workloads(&args.workloads) {
        let mut rounds = Vec::new();
        for i in 0..args.rounds {
            eprintln!("{w:?} round {}/{}...", i + 1, args.rounds);
            let mut got: Vec<(Route, PgbenchResult)> = Vec::new();
            for r in round_order(&routes, i) {
                let Some(port) = port_of(r) else { continue };
                let result = bench
                    .measure(port, w, args)
                    .with_context(|| format!("{r:?} route; the cluster's logs:\n{}", cluster.log_tails(40)))?;
                got.push((r, result));
            }
            let of = |r: Route| got.iter().find(|(x, _)| *x == r).map(|(_, res)| *res);
            let round = Round {
                direct: of(Route::Direct).context("no direct result")?,
                haproxy: of(Route::Haproxy),
                edge: of(Route::Edge).context("no edge result")?,
            };
            let line: Vec<String> = got
                .iter()
                .map(|(r, res)| format!("{r:?} {:.0} tps ({:.3} ms)", res.tps, res.latency_ms))
                .collect();
            eprintln!("  {}", line.join(", "));
            rounds.push(round);
        }
        rows.push(row(w, rounds));
    }
    // Idle: the last pgbench has exited; give the edge a moment to close its sessions (bounded poll).
    settle_idle(&cluster, edge).await;
    let edge_pid = cluster.edges[edge].pid;
    let haproxy_pid = haproxy.as_ref().map(Haproxy::pid);
    Ok(ProxyReport {
        clients: args.clients,
        seconds: args.seconds,
        scale: args.scale,
        rows,
        edge_rss_bytes: edge_pid.and_then(rss_bytes),
        edge_peak_rss_bytes: edge_pid.and_then(peak_rss_bytes),
        edge_anon_rss_bytes: edge_pid.and_then(anon_rss_bytes),
        haproxy_threads,
        haproxy_rss_bytes: haproxy_pid.and_then(rss_bytes),
        haproxy_anon_rss_bytes: haproxy_pid.and_then(anon_rss_bytes),
        haproxy_skipped,
    })
}

/// How long the edge has been without a session when its idle RSS is read: what it keeps while idle (its DCS
/// follower, publisher and timers fault some code back after the give-back at the last session's end).
const IDLE_FOR: Duration = Duration::from_secs(3);

/// Waits (at most 5 s) until the edge's `/metrics` shows no live session, then [`IDLE_FOR`], so the RSS read is
/// the idle one.
async fn settle_idle(cluster: &LocalCluster, edge: usize) {
    let Some(ports) = cluster.edges[edge].edge else { return };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let page = get_local(ports.status, "/metrics").await;
        if page.as_deref().and_then(live_sessions) == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(IDLE_FOR).await;
}

/// The body of `GET path` from 127.0.0.1:`port` (HTTP/1.0, 2 s at most), None on any failure.
async fn get_local(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        s.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), ask).await.ok().flatten()
}

/// The edge's live sessions over every port, from its `/metrics` page.
pub fn live_sessions(metrics: &str) -> Option<u64> {
    let values: Vec<u64> = metrics
        .lines()
        .filter(|l| l.starts_with("pgha_edge_sessions{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// `pgha bench proxy`: runs, prints the table, writes the JSON; Ctrl-C or SIGTERM tears the cluster down.
pub async fn run(args: BenchProxyArgs) -> anyhow::Result<()> {
    crate::logging::init(LogFormat::Human, "warn");
    let exe = std::env::current_exe().context("locating the pgha binary")?;
    // SIGTERM as Ctrl-C: the cluster is torn down either way (dropping it stops every process it started).
    let Some(r) = crate::node::signals::unless_stopped(measure(&args, &exe)).await? else {
        anyhow::bail!("interrupted; the cluster was stopped");
    };
    let report = r?;
    println!(
        "pgbench, {} clients, {} s per run, scale {}, median of {} rounds (routes in rotating order)",
        report.clients, report.seconds, report.scale, args.rounds
    );
    let with_haproxy = report.rows.iter().any(|r| r.via_haproxy.is_some());
    println!("{}", table(&report.rows, with_haproxy));
    let mb = |b: Option<u64>| b.map_or("-".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6));
    println!(
        "edge RSS idle after the runs: {} (peak {}), of which anonymous {}",
        mb(report.edge_rss_bytes),
        mb(report.edge_peak_rss_bytes),
        mb(report.edge_anon_rss_bytes)
    );
    if with_haproxy {
        println!(
            "HAProxy ({} threads) RSS idle after the runs: {}, of which anonymous {}",
            report.haproxy_threads.unwrap_or(0),
            mb(report.haproxy_rss_bytes),
            mb(report.haproxy_anon_rss_bytes)
        );
    } else if let Some(why) = &report.haproxy_skipped {
        println!("HAProxy column skipped: {why}");
    }
    super::write_json(args.json.as_deref(), &report)?;
    Ok(())
}

/// The printed table: direct, HAProxy (when it ran) and edge throughput, the ratios, and latencies.
pub fn table(rows: &[ProxyRow], with_haproxy: bool) -> String {
    let mut headers = vec!["workload", "direct tps"];
    if with_haproxy {
        headers.extend(["haproxy tps", "haproxy/direct"]);
    }
    headers.extend(["edge tps", "edge/direct"]);
    if with_haproxy {
        headers.push("edge/haproxy");
    }
    headers.push("direct ms");
    if with_haproxy {
        headers.push("haproxy ms");
    }
    headers.push("edge ms");
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    crate::ctl::output::table_of(&headers, rows, |r| {
        let mut cells = vec![format!("{:?}", r.workload), format!("{:.0}", r.direct.tps)];
        if with_haproxy {
            cells.push(opt(r.via_haproxy.map(|h| format!("{:.0}", h.tps))));
            cells.push(opt(r.haproxy_ratio.map(|x| format!("{x:.2}x"))));
        }
        cells.push(format!("{:.0}", r.via_edge.tps));
        cells.push(format!("{:.2}x", r.ratio));
        if with_haproxy {
            cells.push(opt(r.edge_over_haproxy.map(|x| format!("{x:.2}x"))));
        }
        cells.push(format!("{:.3}", r.direct.latency_ms));
        if with_haproxy {
            cells.push(opt(r.via_haproxy.map(|h| format!("{:.3}", h.latency_ms))));
        }
        cells.push(format!("{:.3}", r.via_edge.latency_ms));
        cells
    })
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

    fn r(tps: f64, latency_ms: f64) -> PgbenchResult {
        PgbenchResult { tps, latency_ms }
    }

    #[test]
    fn workloads_default_to_all_three_and_keep_the_order_asked() {
        assert_eq!(
            workloads(&[]),
            [
                Workload::SelectOnly,
                Workload::ConnectPerTransaction,
                Workload::TpcbLike
            ]
        );
        assert_eq!(
            workloads(&[ProxyWorkload::TpcbLike, ProxyWorkload::SelectOnly]),
            [Workload::TpcbLike, Workload::SelectOnly]
        );
    }

    #[test]
    fn medians_and_ratios_over_rounds() {
        let round = |d, h: Option<PgbenchResult>, e| Round {
            direct: d,
            haproxy: h,
            edge: e,
        };
        let with = row(
            Workload::SelectOnly,
            vec![
                round(r(1000.0, 1.0), Some(r(700.0, 1.4)), r(900.0, 1.1)),
                round(r(1200.0, 0.8), Some(r(800.0, 1.2)), r(1000.0, 1.0)),
                round(r(800.0, 1.2), Some(r(600.0, 1.6)), r(700.0, 1.3)),
            ],
        );
        assert_eq!(with.direct, r(1000.0, 1.0));
        assert_eq!(with.via_edge, r(900.0, 1.1));
        assert_eq!(with.via_haproxy, Some(r(700.0, 1.4)));
        assert!((with.ratio - 0.9).abs() < 1e-9);
        assert!(with.haproxy_ratio.is_some_and(|x| (x - 0.7).abs() < 1e-9));
        assert!(with.edge_over_haproxy.is_some_and(|x| (x - 900.0 / 700.0).abs() < 1e-9));
        // Without HAProxy (or with a round missing it) there is no HAProxy column.
        let without = row(
            Workload::TpcbLike,
            vec![
                round(r(1000.0, 1.0), None, r(500.0, 2.0)),
                round(r(1000.0, 1.0), Some(r(700.0, 1.4)), r(500.0, 2.0)),
            ],
        );
        assert_eq!(
            (without.via_haproxy, without.haproxy_ratio, without.edge_over_haproxy),
            (None, None, None)
        );
        assert!((without.ratio - 0.5).abs() < 1e-9);
        // A zero denominator gives 0, not infinity.
        assert_eq!(ratio(5.0, 0.0), 0.0);
        // Even count: the lower middle.
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.0);
    }

    #[test]
    fn routes_rotate_per_round() {
        use Route::{Direct as D, Edge as E, Haproxy as H};
        let cases: [(&[Route], usize, &[Route]); 6] = [
            (&[D, H, E], 0, &[D, H, E]),
            (&[D, H, E], 1, &[H, E, D]),
            (&[D, H, E], 2, &[E, D, H]),
            (&[D, H, E], 3, &[D, H, E]),
            (&[D, E], 1, &[E, D]),
            (&[], 4, &[]),
        ];
        for (routes, round, want) in cases {
            assert_eq!(round_order(routes, round), want, "round {round} of {routes:?}");
        }
    }

    #[test]
    fn counts_live_sessions_over_ports() {
        let page = "# HELP pgha_edge_sessions Live client sessions.
pgha_edge_sessions{edge=\"e1\",port=\"primary\"} 2
pgha_edge_sessions{edge=\"e1\",port=\"replica\"} 1
pgha_edge_max_sessions{edge=\"e1\",port=\"primary\"} 334
";
        assert_eq!(live_sessions(page), Some(3));
        assert_eq!(live_sessions("pgha_edge_max_sessions{port=\"any\"} 3\n"), None);
    }

    #[test]
    fn the_table_has_a_haproxy_column_only_when_it_ran() {
        let rows = vec![row(
            Workload::SelectOnly,
            vec![Round {
                direct: r(1000.0, 1.0),
                haproxy: Some(r(700.0, 1.4)),
                edge: r(900.0, 1.1),
            }],
        )];
        let with = table(&rows, true);
        assert!(
            with.contains("haproxy tps") && with.contains("edge/haproxy") && with.contains("1.29x"),
            "{with}"
        );
        let without = table(&rows, false);
        assert!(!without.contains("haproxy") && without.contains("0.90x"), "{without}");
    }
}
