//! A continuous autocommit writer through a libpq-style multi-host target (`target_session_attrs=read-write`):
//! what an application sees across a failover. Records every acknowledged id with its time; and a reader for a
//! replica port.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

/// Where and as whom the writer connects.
#[derive(Clone, Debug)]
pub struct Target {
    /// (host, port) of every node, tried in order.
    pub nodes: Vec<(String, u16)>,
    pub user: String,
    pub password: String,
}

impl Target {
    fn config(&self, read_write: bool) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        for (host, port) in &self.nodes {
            config.host(host).port(*port);
        }
        config
            .user(&self.user)
            .password(self.password.as_str())
            .dbname("postgres");
        config.connect_timeout(Duration::from_millis(300));
        if read_write {
            config.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        }
        config
    }

    /// A connection to the current primary (None if none answers within 2 s).
    pub async fn primary(&self) -> Option<tokio_postgres::Client> {
        let (client, conn) = tokio::time::timeout(Duration::from_secs(2), self.config(true).connect(NoTls))
            .await
            .ok()?
            .ok()?;
        tokio::spawn(conn);
        Some(client)
    }
}

/// A running writer.
pub struct Writer {
    acked: Arc<Mutex<Vec<(i64, Instant)>>>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Pause between two inserts.
pub const INTERVAL: Duration = Duration::from_millis(20);

impl Writer {
    /// Starts inserting ids `first`, `first + 1`, ... into `table` (which must exist), reconnecting at once.
    pub fn start(target: Target, table: &str, first: i64) -> Writer {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let token = CancellationToken::new();
        let (a, t) = (acked.clone(), token.clone());
        let sql = format!("INSERT INTO {table} (id) VALUES ($1)");
        let task = tokio::spawn(async move {
            let mut next = first;
            while !t.is_cancelled() {
                let Some(client) = target.primary().await else {
                    tokio::time::sleep(INTERVAL).await;
                    continue;
                };
                while !t.is_cancelled() {
                    let id = next;
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                    // An id whose outcome is unknown is never reused, so ids stay unique.
                    next += 1;
                    match tokio::time::timeout(Duration::from_secs(2), client.execute(sql.as_str(), &params)).await {
                        Ok(Ok(_)) => a.lock().map(|mut v| v.push((id, Instant::now()))).unwrap_or(()),
                        _ => break,
                    }
                    tokio::time::sleep(INTERVAL).await;
                }
            }
        });
        Writer { acked, token, task }
    }

    /// The shared list of acknowledged (id, time), growing while the writer runs.
    pub fn acked_handle(&self) -> Arc<Mutex<Vec<(i64, Instant)>>> {
        self.acked.clone()
    }

    /// Acknowledged writes so far.
    pub fn count(&self) -> usize {
        self.acked.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Every acknowledged (id, time) so far, while it keeps writing.
    pub fn acked(&self) -> Vec<(i64, Instant)> {
        self.acked.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Stops and returns every acknowledged (id, time).
    pub async fn stop(self) -> Vec<(i64, Instant)> {
        self.token.cancel();
        let _ = self.task.await;
        let acked = self.acked.lock().map(|v| v.clone()).unwrap_or_default();
        acked
    }
}

/// A continuous reader: `SELECT 1` every [`INTERVAL`] through `target` without session attributes (for a replica
/// port: the proxy picks the node), reconnecting at once. Records the time of every answered read.
pub struct Reader {
    answered: Arc<Mutex<Vec<(i64, Instant)>>>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Reader {
    /// Starts reading.
    pub fn start(target: Target) -> Reader {
        let answered = Arc::new(Mutex::new(Vec::new()));
        let token = CancellationToken::new();
        let (a, t) = (answered.clone(), token.clone());
        let task = tokio::spawn(async move {
            let mut n = 0i64;
            while !t.is_cancelled() {
                let connected = tokio::time::timeout(Duration::from_secs(2), target.config(false).connect(NoTls)).await;
                let Ok(Ok((client, conn))) = connected else {
                    tokio::time::sleep(INTERVAL).await;
                    continue;
                };
                tokio::spawn(conn);
                while !t.is_cancelled() {
                    match tokio::time::timeout(Duration::from_secs(2), client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {
                            n += 1;
                            a.lock().map(|mut v| v.push((n, Instant::now()))).unwrap_or(());
                        }
                        _ => break,
                    }
                    tokio::time::sleep(INTERVAL).await;
                }
            }
        });
        Reader { answered, token, task }
    }

    /// The shared list of answered reads (sequence number, time).
    pub fn answered_handle(&self) -> Arc<Mutex<Vec<(i64, Instant)>>> {
        self.answered.clone()
    }

    /// Stops reading.
    pub async fn stop(self) {
        self.token.cancel();
        let _ = self.task.await;
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

/// Acknowledged ids missing from `present` (sorted).
pub fn lost(acked: &[(i64, Instant)], present: &[i64]) -> Vec<i64> {
    acked
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| present.binary_search(id).is_err())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_and_loss() {
        let t0 = Instant::now();
        let acked = vec![
            (1, t0),
            (2, t0 + Duration::from_millis(20)),
            (4, t0 + Duration::from_millis(1500)),
        ];
        assert_eq!(max_gap(&acked), Duration::from_millis(1480));
        assert_eq!(lost(&acked, &[1, 2, 3]), vec![4]);
        assert!(lost(&acked, &[1, 2, 4]).is_empty());
    }
}
