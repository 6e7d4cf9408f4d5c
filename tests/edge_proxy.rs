//! The edge role on loopback with real PostgreSQL 15: routing closed before the first view, the primary port always
//! reaching the primary across a switchover and a failover (clients connecting mid-failover wait, then succeed),
//! sessions cut when their backend loses its role, the replica port balancing, `ctl list` showing the edge, SIGTERM.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::Client;

use db::{index_of, port};
use pgha::config::Role;
use pgha::harness::local::{Layout, LocalCluster};

/// Generous: a primary-port client must outwait a whole failover on 2 busy cores.
const EDGE_EXTRA: &str = "primary_wait_ms = 20000";

/// Connects through an edge port (long timeout: the edge may hold the client while there is no primary).
async fn connect(port: u16, password: &str) -> Option<Client> {
    probe::connect_to(
        "127.0.0.1",
        port,
        password,
        Duration::from_secs(25),
        Duration::from_secs(30),
    )
    .await
}

/// (in recovery, server port) of the server behind `client`.
async fn whoami(client: &Client) -> Option<(bool, u16)> {
    let sql = "SELECT pg_is_in_recovery(), inet_server_port()";
    let row = tokio::time::timeout(Duration::from_secs(5), client.query_one(sql, &[]))
        .await
        .ok()?
        .ok()?;
    let port: i32 = row.get(1);
    Some((row.get(0), u16::try_from(port).ok()?))
}

async fn through(port: u16, password: &str) -> Option<(bool, u16)> {
    whoami(&connect(port, password).await?).await
}

/// Status code and body of `GET path` on 127.0.0.1:`port`.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.ok()?;
        let code = buf.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, buf))
    };
    tokio::time::timeout(Duration::from_secs(3), ask).await.ok().flatten()
}

/// Continuously connects through the primary port, recording (in recovery, server port) of every success.
struct Prober {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(bool, u16)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Prober {
    fn start(port: u16, password: String) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let task = tokio::spawn(async move {
            for _ in 0..10_000 {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(r) = through(port, &password).await {
                    v.lock().expect("lock").push(r);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Prober { stop, seen, task }
    }

    fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    async fn finish(self) -> Vec<(bool, u16)> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(40), self.task).await;
        let seen = self.seen.lock().expect("lock").clone();
        seen
    }
}

fn ctl(cluster: &LocalCluster, args: &[&str]) -> String {
    let config = cluster.write_ctl_config().expect("ctl.toml");
    let mut all = vec!["ctl", "-c", config.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let run = common::pgha(
        &all,
        &[("PGHA_DCS__REQUEST_TIMEOUT_MS", "10000")],
        Duration::from_secs(60),
    );
    assert!(run.ok(), "pgha {all:?} failed: {}", run.stderr);
    run.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_routes_to_the_primary_across_switchover_and_failover() {
    if db::skip_without_pg() {
        return;
    }
    pgha::tls::install_crypto_provider();
    let layout = Layout {
        ha_lines: db::HA.to_string(),
        fault_injection: true,
        ..Layout::default()
    };
    let mut cluster = LocalCluster::create_with(&common::exe(), None, 3, Role::Db, false, layout).expect("laying out");
    let e = cluster.add_edge(EDGE_EXTRA).expect("laying out the edge");
    let ports = cluster.edges[e].edge.expect("edge ports");

    // 1. The edge starts before any DCS member: routing stays closed, clients are turned away, /health says 503.
    cluster.start_edge(e).expect("starting the edge");
    let mut client = common::wait_for(Duration::from_secs(30), "the replica port to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", ports.replica)).await.ok()
    })
    .await;
    // A StartupMessage first: the edge waits for it before it looks for a backend.
    let startup = b"\0\0\0\x17\0\x03\0\0user\0postgres\0\0";
    client.write_all(startup).await.expect("a startup message");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), client.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "routing closed: the client is disconnected, got {read:?}"
    );
    let (code, page) = http_get(ports.status, "/").await.expect("the status page");
    assert_eq!(code, 200);
    assert!(page.contains("closed (no DCS view yet)"), "{page}");
    assert_eq!(http_get(ports.status, "/health").await.map(|r| r.0), Some(503));

    // 2. The cluster comes up; the edge follows it.
    cluster.start_all().expect("starting the db nodes");
    let leader = cluster
        .wait_pg_cluster(2, db::READY)
        .await
        .expect("a primary and two replicas");
    assert!(
        cluster.wait_edge_healthy(e, Duration::from_secs(30)).await,
        "the edge became healthy"
    );
    let pw = probe::password(&cluster.dir);
    let leader_port = port(&cluster, index_of(&cluster, &leader));
    let got = common::wait_for(Duration::from_secs(30), "the primary through the edge", || async {
        through(ports.primary, &pw).await
    })
    .await;
    assert_eq!(got, (false, leader_port), "the primary port reaches the primary");

    // 3. The replica port balances over both replicas.
    let replica_ports: std::collections::BTreeSet<u16> =
        db::ports(&cluster).into_iter().filter(|p| *p != leader_port).collect();
    common::wait_for(
        Duration::from_secs(30),
        "both replicas behind the replica port",
        || async {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..6 {
                let (in_recovery, p) = through(ports.replica, &pw).await?;
                assert!(in_recovery, "the replica port only reaches replicas");
                seen.insert(p);
            }
            (seen == replica_ports).then_some(())
        },
    )
    .await;

    // 4. Switchover to a replica: open sessions lose their backend's role and are cut; the prober never lands on a
    //    server in recovery.
    let old_primary = connect(ports.primary, &pw).await.expect("a primary-port session");
    let (candidate_session, candidate_port) =
        common::wait_for(Duration::from_secs(20), "a replica session", || async {
            let c = connect(ports.replica, &pw).await?;
            let (_, p) = whoami(&c).await?;
            Some((c, p))
        })
        .await;
    let candidate = cluster
        .nodes
        .iter()
        .find(|n| n.pg_port == Some(candidate_port))
        .map(|n| n.name.clone())
        .expect("the candidate node");
    let prober = Prober::start(ports.primary, pw.clone());
    common::wait_until(Duration::from_secs(20), "probes before the switchover", || async {
        prober.count() >= 3
    })
    .await;
    ctl(&cluster, &["switchover", "--candidate", &candidate, "--force"]);
    common::wait_for(
        Duration::from_secs(60),
        "the candidate through the primary port",
        || async {
            through(ports.primary, &pw)
                .await
                .filter(|r| *r == (false, candidate_port))
        },
    )
    .await;
    common::wait_until(
        Duration::from_secs(10),
        "the old primary-port session closed",
        || async { whoami(&old_primary).await.is_none() },
    )
    .await;
    // Promotion does not end PostgreSQL sessions: only the edge can have closed this one.
    common::wait_until(
        Duration::from_secs(10),
        "the replica-port session to the new primary closed",
        || async { whoami(&candidate_session).await.is_none() },
    )
    .await;
    let log = std::fs::read_to_string(&cluster.edges[e].log).expect("edge log");
    assert!(
        log.contains(&format!("closing 1 session(s) to {candidate} on the replica port")),
        "{log}"
    );
    assert!(log.contains(&format!("primary route {leader} -> ")), "{log}");

    // 5. Failover: SIGKILL the primary's pgha and PostgreSQL. A client connecting while there is no primary waits
    //    for the new one.
    cluster
        .wait_pg_cluster(2, db::READY)
        .await
        .expect("the old primary rejoined");
    let ci = index_of(&cluster, &candidate);
    cluster.kill(ci);
    cluster.signal_postgres(ci, libc::SIGKILL);
    // kill(2) returns before the process is gone: wait until its port refuses connections.
    common::wait_until(
        Duration::from_secs(10),
        "the killed primary's port to refuse",
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", candidate_port))
                .await
                .is_err()
        },
    )
    .await;
    // Right after the kill the leader key still names the dead primary (until its lease expires): the edge keeps
    // this client waiting through the expiry, the race and the promotion.
    let before = prober.count();
    let (in_recovery, new_port) = match through(ports.primary, &pw).await {
        Some(r) => r,
        None => panic!(
            "a client connecting mid-failover waits, then succeeds; edge log:\n{}",
            std::fs::read_to_string(&cluster.edges[e].log).unwrap_or_default()
        ),
    };
    assert!(!in_recovery, "it reached a primary");
    assert_ne!(new_port, candidate_port, "it reached the new primary");
    common::wait_until(Duration::from_secs(30), "probes after the failover", || async {
        prober.count() >= before + 3
    })
    .await;
    let seen = prober.finish().await;
    assert!(
        seen.iter().all(|(in_recovery, _)| !in_recovery),
        "the primary port reached a replica: {seen:?}"
    );
    assert!(seen.iter().any(|(_, p)| *p == candidate_port) && seen.iter().any(|(_, p)| *p == new_port));

    // 6. `ctl list` shows the edge; SIGTERM stops it cleanly.
    let list = ctl(&cluster, &["list"]);
    assert!(list.contains("edge1") && list.contains("healthy"), "{list}");
    let status = cluster.stop_edge(e, Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "the edge exits 0 on SIGTERM: {status:?}"
    );
}

/// An edge whose whole DCS is gone (the only member SIGKILLed) keeps retrying for 20 s without flooding its log:
/// every repeated failure is logged once when it starts and once when it clears, even at debug level. Once the
/// member is back, the edge routes the primary port again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_without_its_dcs_logs_little_and_routes_again_when_it_returns() {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = db::start(1, "");
    cluster.wait_pg_cluster(0, db::READY).await.expect("a primary");
    // Debug level for pgha itself: a line per retry would show here even where warn-level output is quiet.
    let e = cluster
        .add_edge(&format!("{EDGE_EXTRA}\n\n[log]\nlevel = \"info,pgha=debug\""))
        .expect("laying out the edge");
    let ports = cluster.edges[e].edge.expect("edge ports");
    cluster.start_edge(e).expect("starting the edge");
    assert!(
        cluster.wait_edge_healthy(e, Duration::from_secs(30)).await,
        "the edge became healthy"
    );
    let pw = probe::password(&cluster.dir);
    let pg_port = port(&cluster, 0);
    let got = common::wait_for(Duration::from_secs(30), "the primary through the edge", || async {
        through(ports.primary, &pw).await
    })
    .await;
    assert_eq!(got, (false, pg_port));

    let log_path = cluster.edges[e].log.clone();
    let mark = std::fs::metadata(&log_path).expect("edge log").len() as usize;
    cluster.kill(0);
    let outage = Duration::from_secs(20);
    tokio::time::sleep(outage).await;
    assert_ne!(
        http_get(ports.status, "/health").await.map(|r| r.0),
        Some(200),
        "an edge without its DCS is not healthy"
    );
    let log = std::fs::read_to_string(&log_path).expect("edge log");
    let during: Vec<&str> = log[mark..].lines().collect();
    eprintln!(
        "{} edge log lines during {outage:?} without the DCS:\n{}",
        during.len(),
        during.join("\n")
    );
    assert!(
        during.len() <= 30,
        "{} log lines in {outage:?}: failures are logged per attempt somewhere",
        during.len()
    );

    // The member comes back (its PostgreSQL restarted by pgha): the edge follows it again and routes.
    cluster.stop_postgres(0);
    cluster.start(0).expect("restarting the member");
    let got = common::wait_for(
        Duration::from_secs(60),
        "the primary through the edge again",
        || async { through(ports.primary, &pw).await.filter(|r| !r.0) },
    )
    .await;
    assert_eq!(got, (false, pg_port));
    let log = std::fs::read_to_string(&log_path).expect("edge log");
    assert!(
        log[mark..].contains("DCS view is fresh: routing on"),
        "{}",
        &log[mark..]
    );
}
