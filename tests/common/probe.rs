//! PostgreSQL probes for the db-role tests: SQL connections to local nodes, a continuous autocommit writer that
//! records every acknowledged id, and a watcher of how many nodes accept writes at once.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

/// Superuser password of a local cluster.
pub fn password(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("secrets/superuser"))
        .expect("reading the superuser password")
        .trim()
        .to_string()
}

/// Connects to one node as the superuser (short timeouts: probes must not hang on a dead node).
pub async fn connect(port: u16, password: &str) -> Option<Client> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .password(password)
        .dbname("postgres")
        .connect_timeout(Duration::from_millis(500));
    let (client, conn) = tokio::time::timeout(Duration::from_secs(2), config.connect(NoTls))
        .await
        .ok()?
        .ok()?;
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

/// A continuous writer through a libpq-style multi-host target (`target_session_attrs=read-write`).
pub struct Writer {
    pub acked: Arc<Mutex<Vec<(i64, Instant)>>>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Starts inserting ids 1, 2, ... into `probe` (created beforehand) every ~20 ms, reconnecting at once.
    pub fn start(ports: Vec<u16>, password: String) -> Writer {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let token = CancellationToken::new();
        let (a, t) = (acked.clone(), token.clone());
        let task = tokio::spawn(async move {
            let mut next = 1i64;
            while !t.is_cancelled() {
                let mut config = tokio_postgres::Config::new();
                for p in &ports {
                    config.host("127.0.0.1").port(*p);
                }
                config
                    .user("postgres")
                    .password(password.as_str())
                    .dbname("postgres")
                    .connect_timeout(Duration::from_millis(300))
                    .target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
                let Ok(Ok((client, conn))) = tokio::time::timeout(Duration::from_secs(2), config.connect(NoTls)).await
                else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                tokio::spawn(conn);
                while !t.is_cancelled() {
                    let id = next;
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                    let insert = client.execute("INSERT INTO probe (id) VALUES ($1)", &params);
                    match tokio::time::timeout(Duration::from_secs(2), insert).await {
                        Ok(Ok(_)) => {
                            a.lock().expect("acked").push((next, Instant::now()));
                            next += 1;
                        }
                        // The id may or may not have committed: skip it so ids stay unique.
                        _ => {
                            next += 1;
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Writer { acked, token, task }
    }

    /// Number of acknowledged writes so far.
    pub fn count(&self) -> usize {
        self.acked.lock().expect("acked").len()
    }

    /// Stops and returns the acknowledged ids with their times.
    pub async fn stop(self) -> Vec<(i64, Instant)> {
        self.token.cancel();
        let _ = self.task.await;
        let acked = self.acked.lock().expect("acked").clone();
        acked
    }
}

/// Longest pause between two consecutive acknowledged writes.
pub fn max_gap(acked: &[(i64, Instant)]) -> Duration {
    acked
        .windows(2)
        .map(|w| w[1].1.duration_since(w[0].1))
        .max()
        .unwrap_or_default()
}
