//! A standby cluster on loopback with real PostgreSQL (two `LocalCluster`s, separate DCS, separate edges): cluster B
//! follows cluster A through A's edge; writes on A appear on B's replica port; `ctl promote-cluster` makes B writable
//! through its edge (the DR promotion time is printed); `ctl demote-cluster` makes A a standby cluster of B.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::time::{Duration, Instant};

use pgha::cluster::model::{ClusterView, PgRole, PgState};
use pgha::harness::local::LocalCluster;

use db::READY;

/// Whole-cluster waits (clones of every member on a busy 2-core machine).
const SETTLE: Duration = Duration::from_secs(150);

async fn view(cluster: &LocalCluster) -> Option<ClusterView> {
    let client = cluster.client(Duration::from_secs(2)).ok()?;
    let keys = pgha::cluster::keys::Keys::new("demo");
    pgha::cluster::store::Store {
        dcs: &client,
        keys: &keys,
    }
    .view()
    .await
    .ok()
}

/// The leader is a standby leader (streaming from the remote) and every other member streams from it.
fn standby_cluster_streams(view: &ClusterView, members: usize) -> bool {
    let Some(leader) = view.leader_member() else {
        return false;
    };
    view.config.standby_cluster.is_some()
        && view.members.len() == members
        && leader.role == PgRole::Replica
        && leader.state == PgState::Streaming
        && view.members.values().filter(|m| m.name != leader.name).all(|m| {
            m.role == PgRole::Replica && m.state == PgState::Streaming && m.upstream.as_deref() == Some(&leader.name)
        })
}

/// A normal cluster: the leader runs as primary and every other member streams from it.
fn primary_cluster_streams(view: &ClusterView, members: usize) -> bool {
    view.config.standby_cluster.is_none() && view.members.len() == members && view.primary_with(members - 1).is_some()
}

async fn wait_view(cluster: &LocalCluster, what: &str, check: impl Fn(&ClusterView) -> bool) {
    common::wait_for(SETTLE, what, || async {
        view(cluster).await.filter(|v| check(v)).map(|_| ())
    })
    .await;
}

/// Inserts `ids` through an edge port; true when every insert was acknowledged.
async fn insert(port: u16, password: &str, ids: std::ops::RangeInclusive<i64>) -> bool {
    let Some(client) = probe::connect(port, password).await else {
        return false;
    };
    for id in ids {
        let sql = format!("INSERT INTO probe VALUES ({id}) ON CONFLICT DO NOTHING");
        if client.execute(sql.as_str(), &[]).await.is_err() {
            return false;
        }
    }
    true
}

/// Waits until the replica port at `port` answers with rows 1..=`n`.
async fn wait_rows(port: u16, password: &str, n: i64, what: &str) {
    let want: Vec<i64> = (1..=n).collect();
    common::wait_for(SETTLE, what, || async {
        (probe::probe_ids(port, password).await? == want).then_some(())
    })
    .await;
}

/// The error a client reads when it connects to `port` (it must be refused).
async fn refusal(port: u16, password: &str) -> String {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .password(password)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5));
    match tokio::time::timeout(Duration::from_secs(10), config.connect(tokio_postgres::NoTls)).await {
        Ok(Ok(_)) => panic!("port {port} accepted a session"),
        Ok(Err(e)) => e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string()),
        Err(_) => panic!("port {port} neither accepted nor refused within 10 s"),
    }
}

fn add_pg_line(cluster: &LocalCluster, i: usize, line: &str) {
    let path = &cluster.nodes[i].config;
    let text = std::fs::read_to_string(path).expect("reading the node config");
    std::fs::write(
        path,
        text.replacen("\n[postgresql]\n", &format!("\n[postgresql]\n{line}\n"), 1),
    )
    .expect("writing the config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standby_cluster_follows_promotes_and_the_old_site_follows_back() {
    if db::skip_without_pg() {
        return;
    }
    let started = Instant::now();
    // Cluster A: a normal 3-member cluster behind its edge.
    let mut a = db::lay_out(3, "", "");
    for i in 0..3 {
        add_pg_line(&a, i, "rewind_fallback_reinit = true");
    }
    a.start_all().expect("starting A");
    let ea = a.add_edge("primary_wait_ms = 10000").expect("A's edge");
    a.start_edge(ea).expect("starting A's edge");
    a.wait_pg_cluster(2, READY).await.expect("cluster A up");
    assert!(
        a.wait_edge_healthy(ea, Duration::from_secs(60)).await,
        "A's edge healthy"
    );
    let a_ports = a.edges[ea].edge.expect("A's edge ports");
    let pw = probe::password(&a.dir);
    db::create_probe_table(a_ports.primary, &pw).await;
    assert!(insert(a_ports.primary, &pw, 1..=10).await, "writes on A");

    // Cluster B: a standby cluster of A (through A's edge primary port), with A's passwords (the replication role
    // comes from A's data).
    let extra = format!(
        "[ha.standby_cluster]\nhost = \"127.0.0.1\"\nport = {}\n",
        a_ports.primary
    );
    let mut b = db::lay_out(3, &extra, "");
    for i in 0..3 {
        add_pg_line(&b, i, "rewind_fallback_reinit = true");
    }
    for name in ["superuser", "replication"] {
        std::fs::copy(a.dir.join("secrets").join(name), b.dir.join("secrets").join(name)).expect("A's secrets");
    }
    b.start_all().expect("starting B");
    let eb = b.add_edge("primary_wait_ms = 10000").expect("B's edge");
    b.start_edge(eb).expect("starting B's edge");
    let b_ports = b.edges[eb].edge.expect("B's edge ports");
    wait_view(&b, "B: a standby leader and two replicas streaming from it", |v| {
        standby_cluster_streams(v, 3)
    })
    .await;
    let b_view = view(&b).await.expect("B's view");
    let a_view = view(&a).await.expect("A's view");
    assert_eq!(
        b_view.system_identifier(),
        a_view.system_identifier(),
        "B's identity is A's system identifier"
    );
    let list = db::ctl(&b, &["list"]);
    assert!(list.contains("Standby Leader"), "{list}");
    assert!(list.contains(&format!("127.0.0.1:{}", a_ports.primary)), "{list}");
    println!(
        "B up as a standby cluster of A after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Writes acknowledged on A appear on B's replica port.
    assert!(insert(a_ports.primary, &pw, 11..=20).await, "writes on A");
    wait_rows(b_ports.replica, &pw, 20, "A's rows on B's replica port").await;
    // B's primary port refuses clients at once, with a PostgreSQL error that says why.
    let refusal = refusal(b_ports.primary, &pw).await;
    assert!(refusal.contains("standby cluster following"), "{refusal}");

    // Failover inside the standby cluster: the standby leader's pgha dies; another member takes the key and follows
    // A in its place (not promoting), the old one rejoins as its replica.
    let old_leader = b_view.leader.as_ref().expect("B's leader").name.clone();
    let i = db::index_of(&b, &old_leader);
    b.kill(i);
    wait_view(&b, "B: a new standby leader", |v| {
        v.leader_member()
            .is_some_and(|m| m.name != old_leader && m.role == PgRole::Replica)
    })
    .await;
    b.start(i).expect("restarting B's old standby leader");
    wait_view(&b, "B: three members streaming again after the failover", |v| {
        standby_cluster_streams(v, 3)
    })
    .await;
    assert!(insert(a_ports.primary, &pw, 21..=25).await, "writes on A");
    wait_rows(
        b_ports.replica,
        &pw,
        25,
        "A's rows on B's replica port after B's failover",
    )
    .await;
    println!(
        "B failed over inside the standby cluster after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // DR drill: promote B. Time from the command to the first write acknowledged through B's edge.
    let ctl_config = b.write_ctl_config().expect("B's ctl.toml");
    let issued = Instant::now();
    let promote = std::process::Command::new(common::exe())
        .args(["ctl", "-c"])
        .arg(&ctl_config)
        .arg("promote-cluster")
        .env("PGHA_DCS__REQUEST_TIMEOUT_MS", "10000")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running ctl promote-cluster");
    common::wait_for(SETTLE, "a write acknowledged through B's edge", || async {
        insert(b_ports.primary, &pw, 26..=26).await.then_some(())
    })
    .await;
    let promotion = issued.elapsed();
    println!(
        "DR promotion time (promote-cluster issued -> first acknowledged write through B's edge): {:.2}s",
        promotion.as_secs_f64()
    );
    let out = promote.wait_with_output().expect("ctl promote-cluster output");
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promote-cluster: {progress}");
    println!("promote-cluster:\n{progress}{}", String::from_utf8_lossy(&out.stdout));
    wait_view(&b, "B: a primary and two streaming replicas", |v| {
        primary_cluster_streams(v, 3)
    })
    .await;
    // The promotion is recorded right after the leader publishes itself primary (what ctl waited for).
    wait_view(&b, "promote-cluster in B's history", |v| {
        v.history.iter().any(|e| e.reason.contains("promote-cluster"))
    })
    .await;
    let history = db::ctl(&b, &["history"]);
    assert!(history.contains("promote-cluster"), "{history}");

    // The old site still takes writes until it is demoted (a drill without stopping A's clients): its history
    // diverges from B's, so every member of A must be rewound, and these rows vanish from A.
    assert!(insert(a_ports.primary, &pw, 1001..=1005).await, "diverging writes on A");
    // Demote A into a standby cluster of B (through B's edge primary port).
    let port = b_ports.primary.to_string();
    let out = db::ctl(&a, &["demote-cluster", "--host", "127.0.0.1", "--port", &port]);
    println!("demote-cluster: {out}");
    assert!(insert(b_ports.primary, &pw, 27..=35).await, "writes on B");
    wait_rows(a_ports.replica, &pw, 35, "B's rows on A's replica port").await;
    wait_view(&a, "A: a standby leader and two replicas streaming from it", |v| {
        standby_cluster_streams(v, 3)
    })
    .await;
    wait_view(&b, "B: still a primary and two streaming replicas", |v| {
        primary_cluster_streams(v, 3)
    })
    .await;
    wait_view(&a, "demote-cluster in A's history", |v| {
        v.history.iter().any(|e| e.reason.contains("demote-cluster"))
    })
    .await;
    let history = db::ctl(&a, &["history"]);
    assert!(history.contains("demote-cluster"), "{history}");
    println!("done after {:.1}s", started.elapsed().as_secs_f64());
}
