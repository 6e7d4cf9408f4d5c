//! Synchronous replication on real PostgreSQL 15: no acknowledged commit is lost across repeated primary crashes
//! (also right after a switchover), strict mode blocks writes without a standby, and the roles show everywhere.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::time::Duration;

use pgha::harness::local::LocalCluster;

use db::{ctl, http, index_of, port, READY};

/// The members `ctl list` shows as synchronous.
fn sync_standbys(cluster: &LocalCluster) -> Vec<String> {
    let list: serde_json::Value = serde_json::from_str(&ctl(cluster, &["list", "-o", "json"])).expect("list JSON");
    list["members"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["role"].as_str().is_some_and(|role| role.ends_with("Standby")))
                .filter_map(|r| r["member"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_sync_standby(cluster: &LocalCluster) -> String {
    common::wait_for(Duration::from_secs(60), "a synchronous standby in ctl list", || async {
        sync_standbys(cluster).into_iter().next()
    })
    .await
}

/// Every acknowledged id is on the current primary.
async fn assert_nothing_lost(cluster: &LocalCluster, pw: &str, acked: &[(i64, std::time::Instant)]) {
    let leader = cluster.wait_pg_cluster(0, READY).await.expect("a primary");
    let present = probe::probe_ids(port(cluster, index_of(cluster, &leader)), pw)
        .await
        .expect("reading the probe table on the primary");
    let lost = probe::lost(acked, &present);
    assert!(
        lost.is_empty(),
        "acknowledged commits lost: {lost:?} (of {} acked)",
        acked.len()
    );
}

async fn crash_primary_and_rejoin(cluster: &mut LocalCluster, writer: &probe::Writer) -> String {
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(cluster, &leader);
    db::wait_own_sync_key(cluster, &leader).await;
    let before = writer.count();
    common::wait_for(Duration::from_secs(30), "writes before the crash", || async {
        (writer.count() >= before + 10).then_some(())
    })
    .await;
    cluster.kill(li);
    cluster.signal_postgres(li, libc::SIGKILL);
    let after = writer.count();
    common::wait_for(Duration::from_secs(60), "writes after the failover", || async {
        (writer.count() >= after + 10).then_some(())
    })
    .await;
    let new_leader = cluster.wait_pg_cluster(0, READY).await.expect("a new primary");
    assert_ne!(new_leader, leader, "a synchronous standby was promoted");
    cluster.stop_postgres(li);
    cluster.start(li).expect("restarting the crashed node");
    cluster
        .wait_pg_cluster(2, READY)
        .await
        .expect("the crashed node rejoined as a streaming replica");
    new_leader
}

async fn crash_loop(mode: &str) {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = db::start_with_ha(3, "", &format!("synchronous_mode = \"{mode}\"\n"));
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let pw = probe::password(&cluster.dir);
    db::create_probe_table(port(&cluster, index_of(&cluster, &leader)), &pw).await;
    wait_sync_standby(&cluster).await;
    let writer = probe::writer(&db::ports(&cluster), &pw);
    for round in 0..5 {
        if round == 2 {
            // A crash right after a switchover: the new primary must not acknowledge what only it has.
            let sync = wait_sync_standby(&cluster).await;
            ctl(&cluster, &["switchover", "--candidate", &sync, "--force"]);
            cluster.wait_pg_cluster(1, READY).await.expect("switchover done");
        }
        let new_leader = crash_primary_and_rejoin(&mut cluster, &writer).await;
        eprintln!("round {round}: {new_leader} promoted");
    }
    let acked = writer.stop().await;
    assert!(acked.len() > 50, "the writer made progress: {} acks", acked.len());
    assert_nothing_lost(&cluster, &pw, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_on_loses_no_acknowledged_commit_across_crashes() {
    crash_loop("on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_mode_loses_no_acknowledged_commit_across_crashes() {
    crash_loop("quorum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_blocks_writes_without_a_standby_and_roles_show() {
    if db::skip_without_pg() {
        return;
    }
    // node3 is nofailover, so never a synchronous standby: stopping the other replica leaves none, while the DCS
    // keeps its majority.
    let mut cluster = db::lay_out(3, "", "synchronous_mode = \"on\"\nsynchronous_mode_strict = true\n");
    db::add_ha_line(&cluster, 2, "nofailover = true");
    cluster.start_all().expect("starting");
    let leader = common::wait_for(Duration::from_secs(120), "node1 or node2 leading", || async {
        let leader = cluster.wait_pg_cluster(2, READY).await.ok()?;
        (leader != cluster.nodes[2].name).then_some(leader)
    })
    .await;
    let li = index_of(&cluster, &leader);
    let pw = probe::password(&cluster.dir);
    db::create_probe_table(port(&cluster, li), &pw).await;
    let sync = wait_sync_standby(&cluster).await;
    let si = index_of(&cluster, &sync);
    let ai = 2;
    assert_ne!(si, ai, "a nofailover member is never a synchronous standby");

    // REST: /sync answers on the synchronous standby only, /async on the other replica.
    let rest = |i: usize| cluster.nodes[i].rest_port.expect("rest port");
    common::wait_for(Duration::from_secs(30), "/sync on the sync standby", || async {
        (http(rest(si), "GET", "/sync").await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(http(rest(li), "GET", "/sync").await.0, 503, "/sync on the primary");
    assert_eq!(
        http(rest(ai), "GET", "/sync").await.0,
        503,
        "/sync on the async replica"
    );
    assert_eq!(
        http(rest(si), "GET", "/async").await.0,
        503,
        "/async on the sync standby"
    );
    assert_eq!(
        http(rest(ai), "GET", "/async").await.0,
        200,
        "/async on the async replica"
    );
    let (_, metrics) = http(rest(si), "GET", "/metrics").await;
    assert!(
        metrics.contains("pgha_sync_standby{") && metrics.contains("} 1"),
        "{metrics}"
    );

    // A switchover to the asynchronous replica is refused.
    let refused = db::ctl_fails(
        &cluster,
        &["switchover", "--candidate", &cluster.nodes[ai].name, "--force"],
    );
    assert!(
        refused.contains("nofailover") || refused.contains("not a synchronous standby"),
        "{refused}"
    );

    // The synchronous standby stops: strict mode makes commits wait instead of acknowledging them unreplicated.
    cluster.stop(si, Duration::from_secs(30));
    let lp = port(&cluster, li);
    let blocked = tokio::time::timeout(
        Duration::from_secs(4),
        probe::exec(lp, &pw, "INSERT INTO probe VALUES (1)"),
    )
    .await;
    assert!(
        !matches!(blocked, Ok(Some(_))),
        "a commit was acknowledged with no synchronous standby in strict mode"
    );
    // The standby comes back: commits are acknowledged again.
    cluster.start(si).expect("restarting the standby");
    common::wait_for(Duration::from_secs(90), "a commit acknowledged again", || async {
        tokio::time::timeout(
            Duration::from_secs(3),
            probe::exec(lp, &pw, "INSERT INTO probe VALUES (2) ON CONFLICT DO NOTHING"),
        )
        .await
        .ok()
        .flatten()
    })
    .await;
    let present = probe::probe_ids(lp, &pw).await.expect("probe rows");
    assert!(present.contains(&2));
}
