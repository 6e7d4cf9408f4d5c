//! ctl habits end to end: the config found through `$PGHA_CTL_CONFIG` (and a clear error when none is found),
//! `list --watch` snapshots, `ctl health` and `ctl members` exit codes (healthy, then a member down), the progress
//! lines of a switchover, and REST writes refused over plain HTTP.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use db::{index_of, READY};

/// `pgha ctl ARGS` with the cluster's ctl.toml through `$PGHA_CTL_CONFIG` (no `-c`) and `$HOME` at `home`.
fn ctl(cluster: &pgha::harness::local::LocalCluster, home: &std::path::Path, args: &[&str]) -> common::Run {
    let config = cluster.write_ctl_config().expect("ctl.toml");
    let config = config.to_str().expect("utf-8 path");
    let home = home.to_str().expect("utf-8 path");
    common::pgha(
        &[&["ctl"], args].concat(),
        &[
            ("PGHA_CTL_CONFIG", config),
            ("HOME", home),
            ("PGHA_DCS__REQUEST_TIMEOUT_MS", "5000"),
        ],
        Duration::from_secs(60),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_config_watch_health_and_progress() {
    if db::skip_without_pg() {
        return;
    }
    let home = tempfile::tempdir().expect("a home");
    // No -c, no $PGHA_CTL_CONFIG, an empty home: the error lists every place tried.
    let lost = common::pgha(
        &["ctl", "list"],
        &[("PGHA_CTL_CONFIG", ""), ("HOME", home.path().to_str().expect("path"))],
        Duration::from_secs(30),
    );
    assert_eq!(lost.code(), Some(1), "{lost:?}");
    for needle in [
        "no ctl config found",
        "PGHA_CTL_CONFIG",
        "/etc/pgha/ctl.toml",
        ".config/pgha/ctl.toml",
    ] {
        assert!(lost.stderr.contains(needle), "{needle}: {}", lost.stderr);
    }
    // Health with nothing to reach: unknown (3).
    let unreachable = common::pgha(
        &["ctl", "health", "--endpoints", "127.0.0.1:9"],
        &[("PGHA_TLS__PLAINTEXT", "true"), ("PGHA_DCS__REQUEST_TIMEOUT_MS", "500")],
        Duration::from_secs(30),
    );
    assert_eq!(unreachable.code(), Some(3), "{unreachable:?}");

    let mut cluster = db::start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);

    // Healthy: every check ok, exit 0; members exit 0.
    common::wait_until(Duration::from_secs(30), "ctl health to say healthy", || async {
        ctl(&cluster, home.path(), &["health"]).code() == Some(0)
    })
    .await;
    let health = ctl(&cluster, home.path(), &["health"]);
    for check in [
        "dcs_quorum",
        "dcs_members",
        "leader",
        "postgresql",
        "replication",
        "lag",
    ] {
        assert!(health.stdout.contains(check), "{check}: {}", health.stdout);
    }
    assert_eq!(ctl(&cluster, home.path(), &["members"]).code(), Some(0));

    // REST writes over plain HTTP are refused with the reason; reads answer as before.
    let rest = cluster.nodes[li].rest_port.expect("rest port");
    let (code, body) = db::http(rest, "POST", "/switchover").await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("HTTPS"), "{body}");
    assert_eq!(db::http(rest, "GET", "/primary").await.0, 200);

    // list --watch on a pipe: separated snapshots until SIGINT.
    let config = cluster.write_ctl_config().expect("ctl.toml");
    let mut watch = Command::new(common::exe())
        .args(["ctl", "list", "--watch", "0.2"])
        .env("PGHA_CTL_CONFIG", &config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning ctl list --watch");
    let mut out = watch.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: kill(2) on the PID of our own child.
    unsafe {
        libc::kill(watch.id() as libc::pid_t, libc::SIGINT);
    }
    let status = loop {
        if let Some(status) = watch.try_wait().expect("waiting") {
            break status;
        }
        assert!(Instant::now() < deadline, "ctl list --watch did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "list --watch ends cleanly on Ctrl-C: {status}");
    let text = reader.join().expect("reader");
    let snapshots = text.lines().filter(|l| l.starts_with("--- ")).count();
    assert!(snapshots >= 2, "several snapshots: {text}");
    assert!(text.contains(&leader), "{text}");

    // Switchover: progress lines with the elapsed time on stderr, the result on stdout.
    let switched = ctl(&cluster, home.path(), &["switchover", "--force"]);
    assert!(switched.ok(), "{switched:?}");
    assert!(switched.stdout.contains("done in"), "{}", switched.stdout);
    let progress: Vec<&str> = switched.stderr.lines().filter(|l| l.starts_with("  +")).collect();
    assert!(
        progress
            .iter()
            .any(|l| l.contains("holds the leader key") || l.contains("leader key:")),
        "progress shows the leader key moving: {}",
        switched.stderr
    );
    let new_leader = db::wait_new_leader(&cluster, &leader, Duration::from_secs(30)).await;

    // A replica's pgha and PostgreSQL killed: degraded (1) for both health and members.
    let victim = (0..3)
        .find(|i| cluster.nodes[*i].name != new_leader)
        .expect("a replica");
    let pg_pid = cluster.postmaster_pid(victim);
    cluster.kill(victim);
    if let Some(pid) = pg_pid {
        // SAFETY: the postmaster of a data directory this test's cluster owns.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    common::wait_until(Duration::from_secs(30), "ctl health to say degraded", || async {
        ctl(&cluster, home.path(), &["health"]).code() == Some(1)
    })
    .await;
    let members = ctl(&cluster, home.path(), &["members"]);
    assert_eq!(members.code(), Some(1), "{members:?}");
    assert!(members.stdout.contains("unreachable"), "{}", members.stdout);
    cluster.stop_all(Duration::from_secs(10));
}
