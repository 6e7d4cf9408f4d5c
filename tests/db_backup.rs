//! Backups with pgBackRest (real PostgreSQL, real pgBackRest, a posix repository in a temp dir): a new member
//! created from a backup while the primary takes writes streams without the primary serving a base backup, and a
//! cluster bootstrapped from that backup to a point in time holds the rows before it and none after.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/probe.rs"]
mod probe;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use pgha::config::Role;
use pgha::harness::local::{Layout, LocalCluster};

use db::{index_of, port, READY};

/// The repository and pgbackrest.conf of one test, owned by the PostgreSQL OS user.
struct Repo {
    _dir: tempfile::TempDir,
    conf: PathBuf,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The OS user PostgreSQL (and so pgBackRest) runs as: `postgres` as root, else ourselves.
fn os_user() -> Option<pgha::postgres::os::OsUser> {
    is_root().then(|| pgha::postgres::os::lookup_user("postgres").expect("the postgres OS user"))
}

fn pgbackrest_installed() -> bool {
    std::process::Command::new("pgbackrest")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Repo {
    fn create() -> Repo {
        let dir = pg::temp_root();
        for sub in ["repo", "lock", "spool"] {
            let path = dir.path().join(sub);
            std::fs::create_dir(&path).expect("repo dirs");
            if let Some(u) = os_user() {
                std::os::unix::fs::chown(&path, Some(u.uid), Some(u.gid)).expect("chown repo dir");
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o750)).expect("chmod repo dir");
        }
        let conf = dir.path().join("pgbackrest.conf");
        let text = format!(
            "[global]\nrepo1-path={repo}\nrepo1-retention-full=2\nlock-path={lock}\nspool-path={spool}\n\
             log-level-console=warn\nlog-level-file=off\nstart-fast=y\ncompress-type=none\narchive-timeout=60\n",
            repo = dir.path().join("repo").display(),
            lock = dir.path().join("lock").display(),
            spool = dir.path().join("spool").display(),
        );
        std::fs::write(&conf, text).expect("pgbackrest.conf");
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).expect("chmod conf");
        Repo { _dir: dir, conf }
    }

    /// Runs `pgbackrest --config=<conf> --stanza=demo ARGS` as the PostgreSQL OS user (2 minutes at most).
    async fn run(&self, args: &[String]) -> String {
        let mut cmd = tokio::process::Command::new("pgbackrest");
        cmd.arg(format!("--config={}", self.conf.display()))
            .arg("--stanza=demo")
            .args(args)
            .current_dir("/")
            .kill_on_drop(true);
        if let Some(u) = os_user() {
            cmd.uid(u.uid).gid(u.gid).env("HOME", &u.home);
        }
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("pgbackrest within 2 minutes")
            .expect("running pgbackrest");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pgbackrest {args:?} failed: {text}");
        text
    }
}

/// A db cluster whose nodes use `pg_lines` in `[postgresql]` and `extra` after it.
fn lay_out(members: usize, pg_lines: &str, extra: &str) -> LocalCluster {
    pgha::tls::install_crypto_provider();
    let layout = Layout {
        extra_toml: extra.to_string(),
        pg_lines: pg_lines.to_string(),
        ha_lines: db::HA.to_string(),
        fault_injection: false,
        ..Layout::default()
    };
    // PGHA_TEST_DIR keeps the cluster's configs, data and logs for a look after a failure (as `db::lay_out`).
    let keep = std::env::var_os("PGHA_TEST_DIR").map(|root| {
        std::fs::create_dir_all(&root).expect("creating PGHA_TEST_DIR");
        let dir = tempfile::Builder::new()
            .prefix("cluster-")
            .tempdir_in(&root)
            .expect("a cluster dir under PGHA_TEST_DIR")
            .keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod cluster dir");
        dir
    });
    LocalCluster::create_with(&common::exe(), keep.as_deref(), members, Role::Db, false, layout).expect("laying out")
}

/// The server log of node `i` (outside PGDATA, see `PgSettings::default_log_file`).
fn server_log(cluster: &LocalCluster, i: usize) -> String {
    std::fs::read_to_string(cluster.nodes[i].data_dir.join("pgdata.log")).unwrap_or_default()
}

async fn query_text(port: u16, pw: &str, sql: &str) -> Option<String> {
    let client = probe::connect(port, pw).await?;
    let row = tokio::time::timeout(Duration::from_secs(5), client.query_one(sql, &[]))
        .await
        .ok()?
        .ok()?;
    row.get::<_, Option<String>>(0)
}

/// Waits until the segment `wal` (or a later one) is archived on the primary at `port`.
async fn wait_archived(port: u16, pw: &str, wal: &str) {
    common::wait_for(Duration::from_secs(60), &format!("{wal} archived"), || async {
        let last = query_text(port, pw, "SELECT last_archived_wal FROM pg_stat_archiver").await?;
        (last.as_str() >= wal).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_from_a_backup_and_bootstrap_to_a_point_in_time() {
    if db::skip_without_pg() {
        return;
    }
    if !pgbackrest_installed() {
        eprintln!("skipped: pgbackrest not installed (apt-get install pgbackrest)");
        return;
    }
    let repo = Repo::create();
    let pgbackrest = format!(
        "[postgresql.pgbackrest]\nconfig = {:?}\n",
        repo.conf.display().to_string()
    );
    let params = "[postgresql.parameters]\nlog_replication_commands = \"on\"\n";

    // (a) Cluster A archives to the repository; a backup is taken; a new member is created from it under load.
    let mut a = lay_out(
        1,
        "create_replica_methods = [\"pgbackrest\", \"basebackup\"]\nclone_stall_timeout_ms = 60000\n",
        &format!("{params}{pgbackrest}"),
    );
    a.start_all().expect("starting cluster A");
    a.wait_pg_cluster(0, READY).await.expect("A's leader");
    let pw = probe::password(&a.dir);
    let p1 = port(&a, 0);
    let node1 = &a.nodes[0];
    let pg1 = [
        format!("--pg1-path={}", node1.pg_data.as_ref().expect("pg data").display()),
        format!("--pg1-port={p1}"),
        format!("--pg1-socket-path={}", node1.data_dir.join("run").display()),
    ];
    repo.run(&[pg1.to_vec(), vec!["stanza-create".into()]].concat()).await;
    let out = repo
        .run(&[pg1.to_vec(), vec!["--type=full".into(), "backup".into()]].concat())
        .await;
    eprintln!("backup: {}", out.trim());
    let sysid = query_text(p1, &pw, "SELECT system_identifier::text FROM pg_control_system()")
        .await
        .expect("A's system identifier");

    db::create_probe_table(p1, &pw).await;
    let writer = probe::writer(&[p1], &pw);
    common::wait_until(Duration::from_secs(30), "the writer's first rows", || async {
        writer.count() >= 20
    })
    .await;
    let started = std::time::Instant::now();
    let i2 = a.add_node().expect("laying out node2");
    a.start(i2).expect("starting node2");
    a.wait_pg_cluster(1, READY).await.expect("node2 streams");
    eprintln!(
        "node2 created from the backup and streaming after {:?}",
        started.elapsed()
    );
    let acked = writer.stop().await;
    let ids: Vec<i64> = acked.iter().map(|(id, _)| *id).collect();
    let p2 = port(&a, i2);
    common::wait_for(Duration::from_secs(60), "node2 has every acknowledged row", || async {
        let present = probe::probe_ids(p2, &pw).await?;
        probe::lost(&acked, &present).is_empty().then_some(())
    })
    .await;
    let streaming = query_text(
        p1,
        &pw,
        "SELECT string_agg(application_name || ':' || state, ',') FROM pg_stat_replication",
    )
    .await;
    assert_eq!(
        streaming.as_deref(),
        Some("node2:streaming"),
        "walsenders on the primary"
    );
    let log2 = std::fs::read_to_string(&a.nodes[i2].log).expect("node2's log");
    assert!(
        log2.lines()
            .any(|l| l.contains("replica data directory created") && l.contains("pgbackrest")),
        "node2 was created by pgbackrest:\n{log2}"
    );
    let log1 = server_log(&a, 0);
    assert!(
        log1.contains("received replication command: IDENTIFY_SYSTEM"),
        "replication commands are logged on the primary"
    );
    assert!(
        !log1.contains("BASE_BACKUP"),
        "the primary served no base backup:\n{}",
        log1.lines()
            .filter(|l| l.contains("BASE_BACKUP"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("{} rows written during the clone, all on node2", ids.len());

    // (b) Rows before and after a point in time, archived; cluster B is bootstrapped from the backup to it.
    probe::exec(p1, &pw, "CREATE TABLE pitr (id int, phase text)")
        .await
        .expect("pitr table");
    probe::exec(
        p1,
        &pw,
        "INSERT INTO pitr SELECT g, 'before' FROM generate_series(1, 100) g",
    )
    .await
    .expect("rows before");
    let target = query_text(p1, &pw, "SELECT clock_timestamp()::text")
        .await
        .expect("target time");
    probe::exec(
        p1,
        &pw,
        "INSERT INTO pitr SELECT g, 'after' FROM generate_series(101, 200) g",
    )
    .await
    .expect("rows after");
    let wal = query_text(p1, &pw, "SELECT pg_walfile_name(pg_switch_wal())")
        .await
        .expect("switch");
    wait_archived(p1, &pw, &wal).await;
    a.stop_all(Duration::from_secs(10));

    let mut b = lay_out(
        2,
        "clone_stall_timeout_ms = 60000\n",
        &format!(
            "{params}{pgbackrest}archive = false\n\n[postgresql.bootstrap]\nmethod = \"pgbackrest\"\n\
             recovery_target_time = {target:?}\n"
        ),
    );
    b.start_all().expect("starting cluster B");
    let leader = b.wait_pg_cluster(1, READY).await.expect("B's leader and its replica");
    let lb = index_of(&b, &leader);
    let pb = port(&b, lb);
    let count = |phase: &'static str| {
        let pw = pw.clone();
        async move {
            query_text(
                pb,
                &pw,
                &format!("SELECT count(*)::text FROM pitr WHERE phase = '{phase}'"),
            )
            .await
        }
    };
    assert_eq!(count("before").await.as_deref(), Some("100"), "rows before the target");
    assert_eq!(count("after").await.as_deref(), Some("0"), "rows after the target");
    assert_eq!(
        query_text(pb, &pw, "SELECT system_identifier::text FROM pg_control_system()").await,
        Some(sysid.clone()),
        "B is A's system, restored"
    );
    assert_eq!(
        query_text(pb, &pw, "SELECT pg_is_in_recovery()::text").await.as_deref(),
        Some("false")
    );
    let settings = query_text(
        pb,
        &pw,
        "SELECT coalesce(string_agg(name, ','), '') FROM pg_settings WHERE name LIKE 'recovery_target%' AND source <> 'default'",
    )
    .await;
    assert_eq!(
        settings.as_deref(),
        Some(""),
        "no recovery target outlives the recovery"
    );
    // The other member joined as usual: a base backup of B's leader (the signal (a) relies on, seen here).
    assert!(
        server_log(&b, lb).contains("BASE_BACKUP"),
        "B's replica was cloned with pg_basebackup"
    );
    let initialize = common::get_value(
        &b.client(Duration::from_secs(2)).expect("client"),
        "/pgha/demo/initialize",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        initialize.as_deref(),
        Some(sysid.as_str()),
        "the initialize key holds the system identifier"
    );
    b.stop_all(Duration::from_secs(10));
}
