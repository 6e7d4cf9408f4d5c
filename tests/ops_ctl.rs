//! Operator commands end to end: edit-config (--apply, $EDITOR, concurrent change), topology, pause/resume --wait,
//! REST over TLS, failover with no live leader, and bad input refused with a clear message and a non-zero exit.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/https.rs"]
mod https;
#[path = "common/probe.rs"]
mod probe;

use std::path::Path;
use std::time::{Duration, Instant};

use pgha::cluster::keys::Keys;
use pgha::cluster::store::Store;
use pgha::harness::local::LocalCluster;

use db::{index_of, port, READY};

/// Runs `pgha ctl -c <cluster's ctl.toml> args...` with extra environment variables.
fn ctl_env(cluster: &LocalCluster, args: &[&str], envs: &[(&str, &str)]) -> common::Run {
    let config = cluster.write_ctl_config().expect("ctl.toml");
    let mut argv = vec!["ctl", "-c", config.to_str().expect("utf-8 path")];
    argv.extend_from_slice(args);
    let mut all = vec![("PGHA_DCS__REQUEST_TIMEOUT_MS", "10000")];
    all.extend_from_slice(envs);
    common::pgha(&argv, &all, Duration::from_secs(120))
}

fn ctl(cluster: &LocalCluster, args: &[&str]) -> String {
    let run = ctl_env(cluster, args, &[]);
    assert!(run.ok(), "pgha ctl {args:?} failed: {}", run.stderr);
    run.stdout
}

/// Runs a ctl command that must fail; returns its stderr.
fn ctl_fails(cluster: &LocalCluster, args: &[&str], envs: &[(&str, &str)]) -> String {
    let run = ctl_env(cluster, args, envs);
    assert!(!run.ok(), "pgha ctl {args:?} should fail; stdout: {}", run.stdout);
    assert_eq!(run.code(), Some(1), "{args:?}: exit code");
    run.stderr
}

fn show_config(cluster: &LocalCluster) -> serde_json::Value {
    serde_json::from_str(&ctl(cluster, &["show-config", "-o", "json"])).expect("show-config JSON")
}

/// One HTTPS GET trusting only the cluster CA, without a client certificate: (status, body).
async fn https_get(ca: &Path, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    https::https(ca, None, port, "GET", path, "").await
}

/// A plain-HTTP request to a TLS port gets no HTTP answer.
async fn plain_http_answers(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let _ = tcp
        .write_all(b"GET /primary HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).starts_with("HTTP/")
}

/// Every member published in the DCS reports `paused`.
async fn all_report_paused(cluster: &LocalCluster, paused: bool) -> bool {
    let client = cluster.client(Duration::from_secs(5)).expect("client");
    let keys = Keys::new("demo");
    let view = Store {
        dcs: &client,
        keys: &keys,
    }
    .view()
    .await
    .expect("view");
    view.members.len() == 3 && view.members.values().all(|m| m.paused == paused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_on_one_cluster() {
    if db::skip_without_pg() {
        return;
    }
    let started = Instant::now();
    let mut cluster = https::start_tls_cluster();
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    let pw = probe::password(&cluster.dir);
    let ca = cluster.dir.join("certs/ca.pem");
    eprintln!("cluster ready after {:?}", started.elapsed());

    // REST over TLS: the primary answers /primary 200 to a client that has only the CA; a replica 503.
    let rest = |i: usize| cluster.nodes[i].rest_port.expect("rest port");
    let (lp, rp) = (rest(li), rest((li + 1) % 3));
    let (code, _) = https_get(&ca, lp, "/primary")
        .await
        .expect("HTTPS /primary on the primary");
    assert_eq!(code, 200, "/primary on the primary over TLS");
    common::wait_for(
        Duration::from_secs(30),
        "the replica to answer /replica over TLS",
        || async { https_get(&ca, rp, "/replica").await.ok().filter(|(c, _)| *c == 200) },
    )
    .await;
    assert_eq!(https_get(&ca, rp, "/primary").await.expect("HTTPS").0, 503);
    let (_, metrics) = https_get(&ca, lp, "/metrics").await.expect("HTTPS /metrics");
    for name in [
        "pgha_primary{",
        "pgha_is_paused{",
        "pgha_pending_restart{",
        "pgha_dcs_last_seen_age_seconds{",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics:\n{metrics}");
    }
    assert!(
        !plain_http_answers(lp).await,
        "plain HTTP on the TLS port gets no HTTP answer"
    );

    // Topology: the leader first, both replicas indented under it.
    let table = ctl(&cluster, &["topology"]);
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("node")).collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows[0].starts_with(&format!("| {leader} ")), "leader first: {table}");
    assert!(
        rows[1..].iter().all(|r| r.starts_with("| + node")),
        "replicas indented: {table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ctl(&cluster, &["topology", "-o", "json"])).expect("topology JSON");
    assert_eq!(json["topology"][0]["member"], leader.as_str(), "{json}");
    assert_eq!(
        json["topology"][0]["replicas"].as_array().map(Vec::len),
        Some(2),
        "{json}"
    );

    // edit-config --apply: a whole TOML document (the one show-config prints) with a reload parameter added.
    let shown = ctl(&cluster, &["show-config"]);
    let file = cluster.dir.join("dynamic.toml");
    let text = format!(
        "{}\n[postgresql_parameters]\nwork_mem = \"9MB\"\n",
        shown.replace("[postgresql_parameters]", "")
    );
    std::fs::write(&file, text).expect("writing the document");
    let out = ctl(
        &cluster,
        &["edit-config", "--apply", file.to_str().expect("path"), "--force"],
    );
    assert!(out.contains("+work_mem = \"9MB\"") && out.contains("updated"), "{out}");
    for p in db::ports(&cluster) {
        db::wait_setting(p, &pw, "work_mem", "9MB").await;
    }

    // An invalid --apply changes nothing, and says which key is wrong.
    let before = show_config(&cluster);
    for (content, needle) in [
        ("ttl_ms = 2000\nbogus_key = 1\n", "bogus_key"),
        ("ttl_ms = 100\n", "ttl_ms"),
        ("loop_wait_ms = \"fast\"\n", "loop_wait_ms"),
        ("[postgresql_parameters]\nport = 1\n", "port"),
        ("{\"ttl_ms\": 2000, \"nope\": true}", "nope"),
    ] {
        std::fs::write(&file, content).expect("writing the document");
        let err = ctl_fails(
            &cluster,
            &["edit-config", "--apply", file.to_str().expect("path"), "--force"],
            &[],
        );
        assert!(err.contains(needle), "{content:?}: {err}");
    }
    assert_eq!(show_config(&cluster), before, "a refused --apply changed nothing");

    // edit-config through $EDITOR (a script that edits the file in place), with --force.
    let editor = cluster.dir.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/^maximum_lag_on_failover = .*/maximum_lag_on_failover = 4194304/' \"$1\"\n",
    )
    .expect("editor script");
    let editor_cmd = format!("sh {}", editor.display());
    let run = ctl_env(&cluster, &["edit-config", "--force"], &[("EDITOR", &editor_cmd)]);
    assert!(run.ok(), "edit-config via EDITOR: {}", run.stderr);
    assert!(
        run.stdout.contains("+maximum_lag_on_failover = 4194304"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("@@ "), "a unified diff: {}", run.stdout);
    assert_eq!(show_config(&cluster)["maximum_lag_on_failover"], 4_194_304);
    // Without --force, no answer on stdin means no.
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/^ttl_ms = .*/ttl_ms = 3000/' \"$1\"\n").expect("editor");
    let err = ctl_fails(&cluster, &["edit-config"], &[("EDITOR", &editor_cmd)]);
    assert!(err.contains("aborted"), "{err}");
    assert_eq!(show_config(&cluster)["ttl_ms"], 2000, "not confirmed: not stored");
    // A change made by someone else while the editor is open is detected and kept.
    let ctl_toml = cluster.write_ctl_config().expect("ctl.toml");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\n{exe} ctl -c {cfg} edit-config --set maximum_lag_on_failover=5242880 --force >/dev/null || exit 3\n\
             sed -i 's/^ttl_ms = .*/ttl_ms = 3000/' \"$1\"\n",
            exe = common::exe().display(),
            cfg = ctl_toml.display()
        ),
    )
    .expect("editor");
    let err = ctl_fails(&cluster, &["edit-config", "--force"], &[("EDITOR", &editor_cmd)]);
    assert!(err.contains("changed by someone else"), "{err}");
    let now = show_config(&cluster);
    assert_eq!(
        now["maximum_lag_on_failover"], 5_242_880,
        "the concurrent change is kept"
    );
    assert_eq!(now["ttl_ms"], 2000, "the stale edit was not written");

    // pause --wait returns once every member reports maintenance mode; resume --wait likewise.
    assert!(ctl(&cluster, &["pause", "--wait"]).contains("Maintenance mode: on"));
    assert!(all_report_paused(&cluster, true).await, "every member reports paused");
    assert!(ctl(&cluster, &["resume", "--wait"]).contains("Maintenance mode: off"));
    assert!(all_report_paused(&cluster, false).await, "every member reports resumed");
    let version = ctl(&cluster, &["version"]);
    assert_eq!(
        version.matches(": pgha ").count(),
        3,
        "each member's version: {version}"
    );

    // A new TTL takes effect without restarting pgha: every member moves its session (and the leader its key) to
    // a lease with the new TTL, and nobody loses the leader key on the way.
    let history_before = ctl(&cluster, &["history", "-o", "json"]);
    assert!(ctl(&cluster, &["edit-config", "--set", "ttl_ms=3000", "--force"]).contains("updated"));
    for node in &cluster.nodes {
        common::wait_file_contains(
            &node.log,
            "session moved to a lease with the new TTL",
            Duration::from_secs(30),
        )
        .await;
    }
    assert_eq!(
        cluster.wait_pg_cluster(2, READY).await.expect("cluster"),
        leader,
        "the leader stays"
    );
    assert_eq!(
        ctl(&cluster, &["history", "-o", "json"]),
        history_before,
        "no promotion happened"
    );

    // Refusals that need a live cluster.
    let err = ctl_fails(&cluster, &["reinit", &leader], &[]);
    assert!(err.contains("leader"), "{err}");
    let err = ctl_fails(&cluster, &["switchover", "--candidate", "node9", "--force"], &[]);
    assert!(err.contains("no member named node9"), "{err}");

    // Failover with no live leader: SIGKILL the leader's node, ask for a failover at once.
    let target = cluster.nodes[(li + 1) % 3].name.clone();
    cluster.kill(li);
    cluster.signal_postgres(li, libc::SIGKILL);
    let killed = Instant::now();
    let out = ctl(&cluster, &["failover", "--candidate", &target, "--force"]);
    assert!(out.contains("done"), "{out}");
    eprintln!(
        "failover with no live leader: {target} leads {:?} after the kill",
        killed.elapsed()
    );
    let now = cluster.wait_pg_cluster(0, READY).await.expect("a leader");
    assert_eq!(now, target, "the candidate leads");
    let ti = index_of(&cluster, &target);
    assert_eq!(
        probe::in_recovery(port(&cluster, ti), &pw).await,
        Some(false),
        "and accepts writes"
    );
    eprintln!("whole test: {:?}", started.elapsed());
}

/// Extra environment variables of one ctl run.
type Envs<'a> = &'a [(&'a str, &'a str)];

/// Bad input that needs no PostgreSQL: refused before or right after reading the DCS, with the problem named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ctl_input_is_refused_with_a_reason() {
    // Checked before anything is read: no cluster at all behind the endpoint.
    let offline = |args: &[&str], envs: &[(&str, &str)]| {
        let mut argv = vec!["ctl", "--endpoints", "127.0.0.1:9"];
        argv.extend_from_slice(args);
        let mut all = vec![("PGHA_TLS__PLAINTEXT", "true"), ("PGHA_DCS__REQUEST_TIMEOUT_MS", "500")];
        all.extend_from_slice(envs);
        common::pgha(&argv, &all, Duration::from_secs(30))
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let bad_file = dir.path().join("bad.toml");
    std::fs::write(&bad_file, "ttl_ms = 2000\nsynchronous_modee = true\n").expect("file");
    let bad = bad_file.to_str().expect("path");
    let cases: &[(&[&str], Envs, &str)] = &[
        (
            &["edit-config", "--set", "bogus=1", "--force"],
            &[],
            "unknown setting \"bogus\"",
        ),
        (&["edit-config", "--set", "ttl_ms=soon", "--force"], &[], "ttl_ms"),
        (&["edit-config", "--set", "paused=maybe", "--force"], &[], "paused"),
        (
            &["edit-config", "--set", "ttl_ms", "--force"],
            &[],
            "expected key=value",
        ),
        (&["edit-config", "--pg", "port=1", "--force"], &[], "set by pgha"),
        (
            &["edit-config", "--pg", "bad name=1", "--force"],
            &[],
            "not a PostgreSQL parameter name",
        ),
        (&["edit-config", "--apply", bad, "--force"], &[], "synchronous_modee"),
        (
            &["edit-config", "--apply", "/nonexistent/x.toml", "--force"],
            &[],
            "cannot read",
        ),
        (&["edit-config", "--apply", "-"], &[], "--force"),
        (
            &["edit-config"],
            &[("VISUAL", ""), ("EDITOR", "")],
            "no $VISUAL or $EDITOR",
        ),
        (&["switchover", "--scheduled", "tomorrow", "--force"], &[], "RFC 3339"),
        (
            &["switchover", "--scheduled", "2001-01-01T00:00:00Z", "--force"],
            &[],
            "in the past",
        ),
    ];
    for (args, envs, needle) in cases {
        let run = offline(args, envs);
        assert_eq!(run.code(), Some(1), "{args:?} must fail: {}", run.stdout);
        assert!(
            run.stderr.contains(needle),
            "{args:?}: {needle:?} not in {}",
            run.stderr
        );
    }

    // Unknown member names, against a live DCS (witness members: no PostgreSQL needed).
    let cluster = common::start_cluster(3, "");
    common::leader(&cluster).await;
    for args in [
        &["switchover", "--candidate", "ghost", "--force"][..],
        &["switchover", "--leader", "ghost", "--force"],
        &["failover", "--candidate", "ghost", "--force"],
        &["restart", "ghost"],
        &["reload", "ghost"],
        &["reinit", "ghost"],
    ] {
        let err = ctl_fails(&cluster, args, &[]);
        assert!(err.contains("no member named ghost"), "{args:?}: {err}");
    }
}
