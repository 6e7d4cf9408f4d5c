//! The edge before authentication, with real processes (three PostgreSQL 15 nodes and an edge on loopback): 1000
//! silent sockets on the replica port and 200 on the primary port fork no backend anywhere and do not slow a
//! primary-port client, and the edge closes them after its hello timeout; a client over a port's cap reads "too many
//! connections through this edge port" at once; a cancel through the replica or any port reaches the backend
//! running the query, whether the edge saw the session's key or not.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

const HELLO_TIMEOUT: Duration = Duration::from_secs(2);
const EDGE_EXTRA: &str = "primary_wait_ms = 20000\nclient_hello_timeout_ms = 2000";
const IDLE_REPLICA: usize = 1000;
const IDLE_PRIMARY: usize = 200;

/// Makes sure this process may hold `need` descriptors (raising the soft limit up to the hard one); false if not.
fn nofile_at_least(need: u64) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return false;
        }
        eprintln!("ulimit -n: soft {} hard {}", lim.rlim_cur, lim.rlim_max);
        if lim.rlim_cur >= need {
            return true;
        }
        if lim.rlim_max < need {
            return false;
        }
        lim.rlim_cur = need;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
    }
}

/// Processes whose parent is `pid` (a postmaster's backends and workers; a backend forked for a client that has not
/// authenticated yet is not in pg_stat_activity, but it is a child).
fn children_of(pid: i32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            after.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok()) == Some(pid)
        })
        .count()
}

fn backends(cluster: &pgha::harness::local::LocalCluster) -> Vec<usize> {
    (0..cluster.nodes.len())
        .map(|i| cluster.postmaster_pid(i).map_or(0, children_of))
        .collect()
}

async fn connect(port: u16, password: &str) -> Option<Client> {
    probe::connect_to(
        "127.0.0.1",
        port,
        password,
        Duration::from_secs(5),
        Duration::from_secs(10),
    )
    .await
}

/// Opens `n` TCP connections to `port` that send nothing.
async fn idle_sockets(port: u16, n: usize) -> Vec<TcpStream> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(TcpStream::connect(("127.0.0.1", port)).await.expect("an idle socket"));
    }
    all
}

/// Reads each socket to its end; returns, per socket, (seconds from `since` until it was closed, whether it was
/// told "too many connections"), or None if it was still open at `deadline`.
async fn wait_closed(sockets: Vec<TcpStream>, since: Instant, deadline: Instant) -> Vec<Option<(f64, bool)>> {
    let reads = sockets.into_iter().map(|mut s| async move {
        let mut got = Vec::new();
        let read = tokio::time::timeout_at(deadline.into(), s.read_to_end(&mut got)).await;
        let told = String::from_utf8_lossy(&got).contains("too many connections through this edge port");
        read.is_ok().then(|| (since.elapsed().as_secs_f64(), told))
    });
    futures::future::join_all(reads).await
}

/// Runs `SELECT pg_sleep(30)` on `client` and cancels it through `cancel` after 300 ms; the time from the cancel
/// until the query ended cancelled.
async fn cancel_sleep<F, Fut>(client: Client, cancel: F) -> Duration
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    let query = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    cancel().await.expect("the cancel request was sent");
    let ended = tokio::time::timeout(Duration::from_secs(25), query)
        .await
        .expect("the query ended well before its 30 s")
        .expect("the query task");
    let err = ended.expect_err("the query was cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_fork_no_backend_and_cancels_reach_their_session() {
    if db::skip_without_pg() {
        return;
    }
    let need = (IDLE_REPLICA + IDLE_PRIMARY + 400) as u64;
    if !nofile_at_least(need) {
        eprintln!("skipped: this process cannot hold {need} descriptors (ulimit -n)");
        return;
    }
    let mut cluster = db::start(3, "");
    let leader = cluster
        .wait_pg_cluster(2, db::READY)
        .await
        .expect("a primary and two replicas");
    let e = cluster.add_edge(EDGE_EXTRA).expect("laying out the edge");
    let ports = cluster.edges[e].edge.expect("edge ports");
    cluster.start_edge(e).expect("starting the edge");
    assert!(
        cluster.wait_edge_healthy(e, Duration::from_secs(30)).await,
        "the edge became healthy"
    );
    let pw = probe::password(&cluster.dir);
    for port in [ports.primary, ports.replica, ports.any] {
        common::wait_for(Duration::from_secs(30), "a session through each port", || async {
            connect(port, &pw).await?.simple_query("SELECT 1").await.ok()
        })
        .await;
    }

    // 1. Silent sockets: no backend forked, the primary port unaffected, all closed after the hello timeout.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = backends(&cluster);
    let opened = Instant::now();
    let mut idle = idle_sockets(ports.replica, IDLE_REPLICA).await;
    idle.extend(idle_sockets(ports.primary, IDLE_PRIMARY).await);
    let open_time = opened.elapsed();
    let t = Instant::now();
    let client = connect(ports.primary, &pw).await.expect("a primary-port client");
    let row = client.query_one("SELECT 1", &[]).await.expect("a query");
    let connect_and_query = t.elapsed();
    assert_eq!(row.get::<_, i32>(0), 1);
    drop(client);
    let during = backends(&cluster);
    eprintln!(
        "{IDLE_REPLICA} idle sockets on the replica port + {IDLE_PRIMARY} on the primary port (opened in {open_time:?}): \
         primary-port connect + SELECT 1 in {connect_and_query:?}; postmaster children before {before:?}, while \
         held {during:?}"
    );
    assert!(
        connect_and_query < Duration::from_secs(3),
        "a primary-port client took {connect_and_query:?} beside idle sockets"
    );
    for (i, (b, d)) in before.iter().zip(&during).enumerate() {
        // Workers (autovacuum) may come and go; a backend per idle socket would be hundreds.
        assert!(
            d <= &(b + 3),
            "node {i}: {b} -> {d} postmaster children: backends forked for idle sockets"
        );
    }
    let closed = wait_closed(idle, opened, opened + HELLO_TIMEOUT + Duration::from_secs(5)).await;
    let still_open = closed.iter().filter(|c| c.is_none()).count();
    let told = closed.iter().flatten().filter(|(_, told)| *told).count();
    let last = closed.iter().flatten().map(|(s, _)| *s).fold(0.0, f64::max);
    eprintln!(
        "idle sockets: {} closed by the edge (last {last:.2} s after opening; {told} told \"too many \
         connections\"), {still_open} still open",
        closed.len() - still_open
    );
    assert_eq!(still_open, 0, "the edge closes silent sockets after its hello timeout");
    let after = backends(&cluster);
    eprintln!("postmaster children after the idle sockets: {after:?}");

    // 2. A port at its cap turns a client away at once, with a message; the other ports are untouched.
    let cap = 333;
    let held = idle_sockets(ports.any, cap).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(ports.any)
        .user("postgres")
        .password(&pw)
        .dbname("postgres");
    let t = Instant::now();
    let refused = tokio::time::timeout(Duration::from_secs(5), config.connect(NoTls))
        .await
        .expect("an answer in time");
    let refusal = t.elapsed();
    let err = refused.err().expect("the any port is at its cap");
    let db_error = err
        .as_db_error()
        .unwrap_or_else(|| panic!("a PostgreSQL error: {err:?}"));
    assert_eq!(db_error.message(), "too many connections through this edge port");
    assert_eq!(db_error.code(), &SqlState::TOO_MANY_CONNECTIONS);
    let replica_ok = connect(ports.replica, &pw).await.is_some();
    eprintln!("a client over the any port's cap of {cap} was refused in {refusal:?}");
    assert!(refusal < Duration::from_secs(2), "refused promptly: {refusal:?}");
    assert!(replica_ok, "the replica port still takes clients");
    drop(held);

    // 3. Cancels: through the port the session came in on (key seen by the edge), and for a session the edge
    //    never saw (sent to every backend of the port).
    common::wait_for(Duration::from_secs(10), "the any port with room again", || async {
        connect(ports.any, &pw).await
    })
    .await;
    let mut times = Vec::new();
    for port in [
        ports.replica,
        ports.replica,
        ports.replica,
        ports.any,
        ports.any,
        ports.any,
    ] {
        let client = connect(port, &pw).await.expect("a session through the edge");
        let token = client.cancel_token();
        times.push(cancel_sleep(client, || async move { token.cancel_query(NoTls).await }).await);
    }
    eprintln!("cancels through the replica/any ports (key seen): {times:?}");
    let leader_port = db::port(&cluster, db::index_of(&cluster, &leader));
    let replica_ports: Vec<u16> = db::ports(&cluster).into_iter().filter(|p| *p != leader_port).collect();
    let mut hidden = Vec::new();
    for p in replica_ports {
        let client = probe::connect(p, &pw).await.expect("a direct replica session");
        let token = client.cancel_token();
        let edge_port = ports.replica;
        hidden.push(
            cancel_sleep(client, || async move {
                let stream = TcpStream::connect(("127.0.0.1", edge_port)).await.expect("the edge");
                token.cancel_query_raw(stream, NoTls).await
            })
            .await,
        );
    }
    eprintln!("cancels through the replica port for sessions the edge never saw: {hidden:?}");
    for t in times.iter().chain(&hidden) {
        assert!(*t < Duration::from_secs(5), "a cancel took {t:?}");
    }
    let metrics = common::wait_for(Duration::from_secs(5), "the metrics page", || async {
        let mut s = TcpStream::connect(("127.0.0.1", ports.status)).await.ok()?;
        tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /metrics HTTP/1.0\r\n\r\n")
            .await
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).await.ok()?;
        Some(body)
    })
    .await;
    let lines: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            ["full_total", "no_hello_total", "cancels_total", "max_sessions"]
                .iter()
                .any(|k| l.contains(k))
                && !l.starts_with('#')
        })
        .collect();
    eprintln!("{}", lines.join("\n"));
    assert!(
        metrics.contains(&format!(
            "pgha_edge_no_hello_total{{edge=\"edge1\",port=\"primary\"}} {IDLE_PRIMARY}"
        )),
        "{metrics}"
    );
}
