//! PostgreSQL probes for the db-role tests: SQL connections to local nodes, a continuous autocommit writer that
//! records every acknowledged id, and a watcher of how many nodes accept writes at once.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// Superuser password of a local cluster.
pub fn password(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("secrets/superuser"))
        .expect("reading the superuser password")
        .trim()
        .to_string()
}

/// Connects to one node as the superuser (short timeouts: probes must not hang on a dead node).
pub async fn connect(port: u16, password: &str) -> Option<Client> {
    connect_to(
        "127.0.0.1",
        port,
        password,
        Duration::from_millis(500),
        Duration::from_secs(2),
    )
    .await
}

/// Connects as the superuser to `host:port`: TCP connect within `connect_timeout`, the whole login within `within`.
pub async fn connect_to(
    host: &str,
    port: u16,
    password: &str,
    connect_timeout: Duration,
    within: Duration,
) -> Option<Client> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user("postgres")
        .password(password)
        .dbname("postgres")
        .connect_timeout(connect_timeout);
    let (client, conn) = tokio::time::timeout(within, config.connect(NoTls)).await.ok()?.ok()?;
    tokio::spawn(conn);
    Some(client)
}

/// Runs one statement on a node; None on any failure.
pub async fn exec(port: u16, password: &str, sql: &str) -> Option<u64> {
    let client = connect(port, password).await?;
    tokio::time::timeout(Duration::from_secs(2), client.execute(sql, &[]))
        .await
        .ok()?
        .ok()
}

/// `pg_is_in_recovery()` of a node; None when it does not answer.
pub async fn in_recovery(port: u16, password: &str) -> Option<bool> {
    let client = connect(port, password).await?;
    let row = tokio::time::timeout(
        Duration::from_secs(2),
        client.query_one("SELECT pg_is_in_recovery()", &[]),
    )
    .await
    .ok()?
    .ok()?;
    Some(row.get(0))
}

/// Count of rows in `probe` on a node.
pub async fn probe_ids(port: u16, password: &str) -> Option<Vec<i64>> {
    let client = connect(port, password).await?;
    let rows = tokio::time::timeout(
        Duration::from_secs(5),
        client.query("SELECT id FROM probe ORDER BY id", &[]),
    )
    .await
    .ok()?
    .ok()?;
    Some(rows.iter().map(|r| r.get(0)).collect())
}

#[allow(unused_imports)]
pub use pgha::harness::probe::{lost, max_gap, Writer};

/// A writer inserting into `probe` through every node (libpq multi-host, read-write target).
pub fn writer(ports: &[u16], password: &str) -> Writer {
    let target = pgha::harness::probe::Target {
        nodes: ports.iter().map(|p| ("127.0.0.1".to_string(), *p)).collect(),
        user: "postgres".into(),
        password: password.to_string(),
    };
    Writer::start(target, "probe", 1)
}
