//! `pgha bench dcs`: put/get latency and throughput, leader-loss recovery, and footprint under endless keepalives,
//! on a local three-member cluster of real processes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::stats::{dir_bytes, rss_bytes, summarize, Summary};
use crate::cli::BenchDcsArgs;
use crate::config::{LogFormat, Role};
use crate::dcs::client::DcsClient;
use crate::harness::local::LocalCluster;

/// Everything `bench dcs` measures.
#[derive(Debug, Serialize)]
pub struct DcsReport {
    pub tls: bool,
    pub put_1_client: Summary,
    pub put_1_client_ops_per_s: f64,
    pub put_16_clients: Summary,
    pub put_16_clients_ops_per_s: f64,
    pub linearizable_get: Summary,
    /// SIGKILL of the Raft leader -> next acknowledged write, per kill.
    pub leader_kill_recovery: Summary,
    pub keepalives: usize,
    pub keepalive_ops_per_s: f64,
    pub disk_bytes_before: Vec<u64>,
    pub disk_bytes_after: Vec<u64>,
    pub rss_bytes_before: Vec<u64>,
    pub rss_bytes_after: Vec<u64>,
}

async fn timed_puts(client: Arc<DcsClient>, tag: usize, ops: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(ops);
    for i in 0..ops {
        let key = format!("/bench/{tag}/{}", i % 64);
        let started = Instant::now();
        client.put(key.as_bytes(), b"value-of-a-typical-member-key", 0).await?;
        out.push(started.elapsed());
    }
    Ok(out)
}

async fn concurrent_puts(client: &Arc<DcsClient>, clients: usize, ops: usize) -> anyhow::Result<(Summary, f64)> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| tokio::spawn(timed_puts(client.clone(), c, ops / clients)))
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await??);
    }
    let rate = samples.len() as f64 / started.elapsed().as_secs_f64();
    Ok((summarize(&samples).context("no samples")?, rate))
}

fn footprint(cluster: &LocalCluster) -> (Vec<u64>, Vec<u64>) {
    let disk = cluster.nodes.iter().map(|n| dir_bytes(&n.data_dir)).collect();
    let rss = cluster
        .nodes
        .iter()
        .map(|n| n.pid.and_then(rss_bytes).unwrap_or(0))
        .collect();
    (disk, rss)
}

/// Kills the leader `kills` times and measures the time to the next acknowledged write.
async fn leader_kills(cluster: &mut LocalCluster, client: &DcsClient, kills: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::new();
    for k in 0..kills {
        let leader = cluster.wait_leader(Duration::from_secs(20)).await?;
        client.put(b"/bench/kill", b"before", 0).await?;
        let started = Instant::now();
        cluster.kill(leader);
        let deadline = started + Duration::from_secs(30);
        loop {
            if client
                .put(b"/bench/kill", format!("after-{k}").as_bytes(), 0)
                .await
                .is_ok()
            {
                samples.push(started.elapsed());
                break;
            }
            if Instant::now() >= deadline {
                let mut states = Vec::new();
                for node in &cluster.nodes {
                    states.push(
                        match client.status_of(&node.dcs_addr, Duration::from_millis(500)).await {
                            Ok(s) => format!("{} {} term {} applied {}", s.name, s.state, s.term, s.applied_index),
                            Err(e) => format!("{}: {e}", node.name),
                        },
                    );
                }
                anyhow::bail!(
                    "no write accepted within 30 s of the leader kill; members: {}",
                    states.join("; ")
                );
            }
        }
        cluster.start(leader)?;
        // Let the restarted member catch up before the next round.
        let restarted = cluster.nodes[leader].dcs_addr.clone();
        let target = client.status().await?.applied_index;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client.status_of(&restarted, Duration::from_millis(300)).await {
                Ok(s) if s.applied_index >= target => break,
                _ if Instant::now() >= deadline => {
                    anyhow::bail!("the restarted member {restarted} did not catch up to index {target} within 30 s")
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    Ok(samples)
}

async fn keepalive_storm(client: &Arc<DcsClient>, total: usize) -> anyhow::Result<f64> {
    let (lease, _) = client.lease_grant(Duration::from_secs(60)).await?;
    client.put(b"/bench/leased", b"x", lease).await?;
    let started = Instant::now();
    let workers = 16;
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..total / workers {
                    anyhow::ensure!(client.lease_keepalive(lease).await?.is_some(), "lease vanished");
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Runs the benchmark and prints a table (and JSON when asked).
pub async fn run(args: BenchDcsArgs) -> anyhow::Result<()> {
    crate::logging::init(LogFormat::Human, "warn");
    let exe = std::env::current_exe().context("locating the pgha binary")?;
    let mut cluster = LocalCluster::create(&exe, args.dir.as_deref(), 3, Role::Witness, args.tls, "")?;
    cluster.start_all()?;
    cluster.wait_leader(Duration::from_secs(30)).await?;
    let client = Arc::new(cluster.client(Duration::from_secs(5))?);
    client.put(b"/bench/warmup", b"1", 0).await?;
    let (disk_bytes_before, rss_bytes_before) = footprint(&cluster);

    eprintln!("put latency, 1 client ({} ops)...", args.ops);
    let (put_1_client, put_1_client_ops_per_s) = concurrent_puts(&client, 1, args.ops).await?;
    eprintln!("put latency, 16 clients ({} ops)...", args.ops);
    let (put_16_clients, put_16_clients_ops_per_s) = concurrent_puts(&client, 16, args.ops).await?;
    eprintln!("linearizable get latency ({} ops)...", args.ops);
    let mut gets = Vec::new();
    for i in 0..args.ops {
        let started = Instant::now();
        client.get(format!("/bench/0/{}", i % 64).as_bytes(), false).await?;
        gets.push(started.elapsed());
    }
    eprintln!("{} lease keepalives...", args.keepalives);
    let keepalive_ops_per_s = keepalive_storm(&client, args.keepalives).await?;
    let (disk_bytes_after, rss_bytes_after) = footprint(&cluster);
    eprintln!("{} leader kills...", args.kills);
    let kills = leader_kills(&mut cluster, &client, args.kills).await?;

    let report = DcsReport {
        tls: args.tls,
        put_1_client,
        put_1_client_ops_per_s,
        put_16_clients,
        put_16_clients_ops_per_s,
        linearizable_get: summarize(&gets).context("no get samples")?,
        leader_kill_recovery: summarize(&kills).context("no kill samples")?,
        keepalives: args.keepalives,
        keepalive_ops_per_s,
        disk_bytes_before,
        disk_bytes_after,
        rss_bytes_before,
        rss_bytes_after,
    };
    print_report(&report);
    super::write_json(args.json.as_deref(), &report)?;
    cluster.stop_all(Duration::from_secs(5));
    Ok(())
}

fn print_report(r: &DcsReport) {
    let row = |name: &str, s: &Summary, extra: String| {
        vec![
            name.to_string(),
            s.count.to_string(),
            format!("{:.2}", s.p50_ms),
            format!("{:.2}", s.p99_ms),
            format!("{:.2}", s.max_ms),
            extra,
        ]
    };
    let rows = vec![
        row(
            "put, 1 client",
            &r.put_1_client,
            format!("{:.0} ops/s", r.put_1_client_ops_per_s),
        ),
        row(
            "put, 16 clients",
            &r.put_16_clients,
            format!("{:.0} ops/s", r.put_16_clients_ops_per_s),
        ),
        row("linearizable get", &r.linearizable_get, String::new()),
        row("leader SIGKILL -> next write", &r.leader_kill_recovery, String::new()),
    ];
    println!(
        "{}",
        crate::ctl::output::table(&["measure", "n", "p50 ms", "p99 ms", "max ms", "throughput"], &rows)
    );
    let mb = |v: &[u64]| {
        v.iter()
            .map(|b| format!("{:.1}", *b as f64 / 1_048_576.0))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!("{} keepalives at {:.0}/s", r.keepalives, r.keepalive_ops_per_s);
    println!(
        "disk MB per member: before {}  after {}",
        mb(&r.disk_bytes_before),
        mb(&r.disk_bytes_after)
    );
    println!(
        "RSS MB per member:  before {}  after {}",
        mb(&r.rss_bytes_before),
        mb(&r.rss_bytes_after)
    );
}
