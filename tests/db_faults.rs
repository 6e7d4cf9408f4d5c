//! The db role under network partition, whole-cluster crash, and bad input (foreign data, missing binaries).

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::time::{Duration, Instant};

use db::{index_of, port, start, READY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_primary_demotes_and_a_replica_takes_over() {
    if db::skip_without_pg() {
        return;
    }
    let cluster = start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    let pw = probe::password(&cluster.dir);
    db::create_probe_table(port(&cluster, li), &pw).await;
    let ports = db::ports(&cluster);

    cluster.partition(li).expect("partition the primary");
    let cut_at = Instant::now();
    let mut max_writable = 0;
    let mut old_demoted = false;
    let mut other_promoted = false;
    let mut id = 0i64;
    while cut_at.elapsed() < Duration::from_secs(15) && !(old_demoted && other_promoted) {
        let mut writable = 0;
        for (i, p) in ports.iter().enumerate() {
            id += 1;
            let ok = probe::exec(*p, &pw, &format!("INSERT INTO probe VALUES ({id})"))
                .await
                .is_some();
            writable += usize::from(ok);
            if i == li && !ok {
                old_demoted = true;
            }
            if i != li && ok {
                other_promoted = true;
            }
        }
        max_writable = max_writable.max(writable);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(max_writable <= 1, "two writable primaries during the partition");
    assert!(old_demoted, "the partitioned primary stopped accepting writes");
    assert!(other_promoted, "a replica took over");

    cluster.heal(li).expect("heal");
    common::wait_for(
        Duration::from_secs(90),
        "the old primary to rejoin as a replica",
        || async { (probe::in_recovery(ports[li], &pw).await == Some(true)).then_some(()) },
    )
    .await;
    cluster
        .wait_pg_cluster(2, READY)
        .await
        .expect("everyone streaming again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_crash_keeps_identity_and_acknowledged_rows() {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    let pw = probe::password(&cluster.dir);
    let p = port(&cluster, li);
    db::create_probe_table(p, &pw).await;
    probe::exec(p, &pw, "INSERT INTO probe SELECT generate_series(1, 100)")
        .await
        .expect("rows");
    let sysid = system_identifier(p, &pw).await;

    for i in 0..3 {
        cluster.kill(i);
        cluster.signal_postgres(i, libc::SIGKILL);
    }
    for i in 0..3 {
        cluster.stop_postgres(i);
        cluster.start(i).expect("restart");
    }
    // The DCS still shows the members' keys from before the crash until their leases run out: ask PostgreSQL.
    let ports = db::ports(&cluster);
    let p = common::wait_for(
        Duration::from_secs(120),
        "a writable primary after the restart",
        || async {
            for p in &ports {
                if probe::in_recovery(*p, &pw).await == Some(false) {
                    return Some(*p);
                }
            }
            None
        },
    )
    .await;
    assert_eq!(system_identifier(p, &pw).await, sysid, "same cluster after the restart");
    let ids = probe::probe_ids(p, &pw).await.expect("rows");
    assert_eq!(ids, (1..=100).collect::<Vec<i64>>(), "every acknowledged row survived");
}

async fn system_identifier(port: u16, password: &str) -> i64 {
    let client = probe::connect(port, password).await.expect("connect");
    let row = client
        .query_one("SELECT system_identifier FROM pg_control_system()", &[])
        .await
        .expect("sysid");
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_data_directory_is_refused_and_left_alone() {
    if db::skip_without_pg() {
        return;
    }
    // node3 gets the data directory of ANOTHER cluster (node1 of a second local cluster) before it starts.
    pgha::tls::install_crypto_provider();
    let layout = pgha::harness::local::Layout {
        ha_lines: db::HA.to_string(),
        ..Default::default()
    };
    let mut other = pgha::harness::local::LocalCluster::create_with(
        &common::exe(),
        None,
        1,
        pgha::config::Role::Db,
        false,
        layout.clone(),
    )
    .expect("layout");
    other.start_all().expect("start");
    other.wait_pg_cluster(0, READY).await.expect("the other cluster runs");
    other.stop_all(Duration::from_secs(30));
    let foreign = other.nodes[0].pg_data.clone().expect("pgdata");

    let mut cluster =
        pgha::harness::local::LocalCluster::create_with(&common::exe(), None, 3, pgha::config::Role::Db, false, layout)
            .expect("layout");
    for i in 0..2 {
        cluster.start(i).expect("start");
    }
    cluster
        .wait_pg_cluster(1, READY)
        .await
        .expect("cluster ready with two nodes");
    let target = cluster.nodes[2].pg_data.clone().expect("pgdata");
    std::fs::create_dir_all(target.parent().expect("parent")).expect("node3 data dir");
    copy_dir(&foreign, &target);
    let before = std::fs::read(target.join("global/pg_control")).expect("pg_control");
    cluster.start(2).expect("start node3");
    let log = cluster.nodes[2].log.clone();
    common::wait_for(Duration::from_secs(60), "the refusal in node3's log", || async {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("refusing to use"))
            .map(|_| ())
    })
    .await;
    let after = std::fs::read(target.join("global/pg_control")).expect("pg_control");
    assert_eq!(before, after, "the foreign data directory was not modified");
    assert!(
        cluster.postmaster_pid(2).is_none(),
        "PostgreSQL was not started on foreign data"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success(), "copying the foreign data directory");
}

#[test]
fn missing_postgres_binaries_are_a_clear_start_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "secret\n").expect("secret");
    let config = dir.path().join("db.toml");
    let port = pgha::harness::local::free_ports(1).expect("port")[0];
    let text = format!(
        "[node]\nname = \"db1\"\ndata_dir = \"{data}\"\n[dcs]\nlisten = \"127.0.0.1:{port}\"\npeers = [\"db1=127.0.0.1:{port}\"]\n\
         [tls]\nplaintext = true\n[postgresql]\nbin_dir = \"/nonexistent/pg/bin\"\nsuperuser_password_file = \"{s}\"\n\
         replication_password_file = \"{s}\"\n",
        data = dir.path().join("data").display(),
        s = secret.display()
    );
    std::fs::write(&config, text).expect("config");
    let out = std::process::Command::new(common::exe())
        .args(["run", "--role", "db", "-c"])
        .arg(&config)
        .output()
        .expect("run pgha");
    assert!(!out.status.success(), "pgha must not start without PostgreSQL binaries");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/pg/bin"),
        "the error names the bad bin_dir: {stderr}"
    );
}
