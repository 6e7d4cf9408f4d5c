//! One trait over the loopback cluster and the six hosts: what the bench driver and the tests do to a cluster
//! (start, kill, signal a member, read the view, wait for a primary, the write/read targets, the logs), and the one
//! wait for "a primary with N streaming replicas".

use std::future::Future;
use std::ops::Deref;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cluster::model::ClusterView;
use crate::ctl::progress::Progress;
use crate::dcs::client::DcsClient;

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
    /// A DCS client (mutual TLS as `ctl` when the cluster uses TLS).
    fn dcs_client(&self) -> Result<Box<dyn Deref<Target = DcsClient> + '_>, HarnessError>;
    /// The namespace writers run in (None: this process's own).
    fn client_ns(&self) -> Result<Option<String>, HarnessError>;
    /// The edges (their names mark the route and VIP phases).
    fn edges(&self) -> Vec<String>;
    /// Edges holding the VIP right now (none without a VIP).
    fn vip_holders(&self) -> Vec<String> {
        Vec::new()
    }
    /// True when links can be cut and hosts powered off (network namespaces).
    fn has_network(&self) -> bool {
        false
    }
    /// Cuts `host` off the network.
    fn cut(&self, host: &str) -> Result<(), HarnessError> {
        Err(HarnessError::Unsupported(format!("cutting {host} off")))
    }
    /// Reconnects `host`.
    fn restore(&self, host: &str) -> Result<(), HarnessError> {
        Err(HarnessError::Unsupported(format!("reconnecting {host}")))
    }
    /// Every process of `host` killed and its link cut.
    async fn power_off(&mut self, host: &str) -> Result<(), HarnessError> {
        Err(HarnessError::Unsupported(format!("powering {host} off")))
    }
    /// Undoes [`Topology::power_off`] like a boot.
    fn power_on(&mut self, host: &str) -> Result<(), HarnessError> {
        Err(HarnessError::Unsupported(format!("powering {host} on")))
    }
    /// The whole cluster view from the DCS.
    async fn view(&self) -> Result<ClusterView, HarnessError>;
    /// Polls until the leader runs as primary with `replicas` streaming replicas; returns its name.
    async fn wait_primary_with(&self, replicas: usize, timeout: Duration) -> Result<String, HarnessError> {
        wait_primary_with(|| self.view(), replicas, timeout, None).await
    }
    /// Polls until the cluster serves: a primary with two streaming replicas (and one VIP holder where there is a
    /// VIP); returns the primary and the VIP holder.
    async fn wait_serving(&self, timeout: Duration) -> Result<(String, Option<String>), HarnessError> {
        Ok((self.wait_primary_with(2, timeout).await?, None))
    }
    /// The last `n` lines of every log, for errors.
    fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for (name, path) in self.logs() {
            let text = read_from(&path, 0);
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "--- {name}\n{}\n",
                lines[lines.len().saturating_sub(n)..].join("\n")
            ));
        }
        out
    }
}

/// The text of the file at `path` from byte `from` on (empty when it cannot be read): a log read past a mark.
pub fn read_from(path: &std::path::Path, from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.read_to_end(&mut bytes);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
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
