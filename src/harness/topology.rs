//! One trait over the loopback cluster and the six hosts: what the bench driver and the tests do to a cluster
//! (start, kill, signal a member, read the view, wait for a primary, the write/read targets, the logs), and the one
//! wait for "a primary with N streaming replicas".

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cluster::model::ClusterView;
use crate::ctl::progress::Progress;

use super::error::HarnessError;
use super::probe::Target;

/// A running cluster under test; members are named (`node1`, `db1`, ...).
// Drivers are generic over it and run on one task, so the futures need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait Topology {
    /// The DCS members, in order.
    fn members(&self) -> Vec<String>;
    /// (Re)starts `member`'s pgha.
    fn start_member(&mut self, member: &str) -> Result<(), HarnessError>;
    /// Kills every process of `member` (pgha and its PostgreSQL) and reaps what it started.
    async fn kill_member(&mut self, member: &str) -> Result<(), HarnessError>;
    /// Sends `signal` to `member`'s pgha only (SIGTERM: stop; SIGSTOP/SIGCONT: freeze/thaw).
    fn signal_member(&self, member: &str, signal: libc::c_int) -> Result<(), HarnessError>;
    /// Sends `signal` to `member`'s postmaster; false when none runs.
    fn signal_postgres(&self, member: &str, signal: libc::c_int) -> bool;
    /// Where writes go (the superuser through the cluster's write path).
    fn write_target(&self) -> Result<Target, HarnessError>;
    /// Where reads go when the topology has a read path of its own (the edges' replica port).
    fn read_target(&self) -> Option<Target>;
    /// Every member directly (to count rows on whichever is primary).
    fn direct_target(&self) -> Result<Target, HarnessError>;
    /// The processes that write logs, and where.
    fn logs(&self) -> Vec<(String, PathBuf)>;
    /// The whole cluster view from the DCS.
    async fn view(&self) -> Result<ClusterView, HarnessError>;
    /// Polls until the leader runs as primary with `replicas` streaming replicas; returns its name.
    async fn wait_primary_with(&self, replicas: usize, timeout: Duration) -> Result<String, HarnessError> {
        wait_primary_with(|| self.view(), replicas, timeout, None).await
    }
}

/// The one wait for "a primary with `replicas` streaming replicas": polls `view` until its leader runs as primary
/// with that many streaming replicas (printing each member's changes to `progress` on the way, for `pgha demo`).
pub async fn wait_primary_with<F, Fut>(
    mut view: F,
    replicas: usize,
    timeout: Duration,
    mut progress: Option<&mut Progress>,
) -> Result<String, HarnessError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<ClusterView, HarnessError>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no view read yet");
    while Instant::now() < deadline {
        match view().await {
            Ok(view) => {
                if let Some(progress) = progress.as_deref_mut() {
                    progress.observe(&view);
                }
                if let Some(primary) = view.primary_with(replicas) {
                    return Ok(primary.to_string());
                }
                last = format!("leader {:?}", view.leader.as_ref().map(|l| l.name.as_str()));
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(HarnessError::NotReady(
        timeout,
        format!("a primary with {replicas} streaming replicas (last: {last})"),
    ))
}
