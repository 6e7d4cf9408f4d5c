//! Publishes this edge's [`EdgeInfo`] under `edges/<name>`, bound to its own DCS lease (granted, then kept alive
//! every ttl/4), so a dead edge disappears from the DCS one TTL after its last keepalive. Revoked at shutdown.
//!
//! Failures (grant, put, keepalive) are retried no sooner than ttl/4, doubling up to the TTL (a lease that expires
//! meanwhile is replaced), and logged once when they start or change and once when publishing works again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::info::EdgeInfo;
use crate::cluster::keys::Keys;
use crate::dcs::client::DcsClient;
use crate::retry::{log_transition, Backoff, FailureLog};

const WHAT: &str = "edge publication";

/// The shortest lease the edge asks for (ttl/4 = 100 ms between keepalives).
const MIN_TTL: Duration = Duration::from_millis(400);

/// Keeps `info` published until `token` is cancelled; `ttl` follows the cluster's leader TTL.
pub async fn run(
    dcs: Arc<DcsClient>,
    keys: Keys,
    mut info: watch::Receiver<EdgeInfo>,
    ttl: watch::Receiver<Duration>,
    token: CancellationToken,
) {
    let mut lease: Option<i64> = None;
    let mut stale = true;
    let mut pace = Backoff::new(MIN_TTL / 4, MIN_TTL);
    let mut log = FailureLog::default();
    let mut keepalive_at = Instant::now();
    loop {
        let ttl = (*ttl.borrow()).max(MIN_TTL);
        pace.set_base(ttl / 4, ttl);
        // One round: a lease if we have none, the value if it changed, a keepalive if due.
        let mut failed = None;
        if lease.is_none() {
            match dcs.lease_grant(ttl).await {
                Ok((id, _)) => {
                    lease = Some(id);
                    stale = true;
                    keepalive_at = Instant::now() + ttl / 4;
                }
                Err(e) => failed = Some(("lease grant", format!("granting the edge lease failed: {e}"))),
            }
        }
        if let (Some(id), true) = (lease, stale) {
            let current = info.borrow_and_update().clone();
            let value = serde_json::to_vec(&current).unwrap_or_default();
            match dcs.put(keys.edge(&current.name).as_bytes(), &value, id).await {
                Ok(_) => stale = false,
                Err(e) => failed = Some(("put", format!("publishing the edge status failed: {e}"))),
            }
        }
        if let (Some(id), true) = (lease, Instant::now() >= keepalive_at) {
            keepalive_at = Instant::now() + ttl / 4;
            match dcs.lease_renew(id, ttl / 4).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::info!(
                        event = "edge_lease_expired",
                        "the edge's DCS lease expired: publishing under a new one"
                    );
                    lease = None;
                    keepalive_at = Instant::now();
                }
                Err(e) => failed = Some(("keepalive", format!("edge lease keepalive failed: {e}"))),
            }
        }
        // Some while failing: the next round waits until then, whatever changes meanwhile.
        let retry_at = record(&mut pace, &mut log, failed).map(|d| Instant::now() + d);
        let wake = retry_at.unwrap_or(if lease.is_some() { keepalive_at } else { Instant::now() });
        loop {
            tokio::select! {
                _ = token.cancelled() => return revoke(&dcs, lease).await,
                _ = tokio::time::sleep_until(wake.into()) => break,
                r = info.changed() => {
                    if r.is_err() {
                        return revoke(&dcs, lease).await;
                    }
                    stale = true;
                    // A status change is published at once, unless we are failing: then it waits its turn.
                    if retry_at.is_none() {
                        break;
                    }
                }
            }
        }
    }
}

/// Records a round's outcome; while failing, returns how long to wait before the next round.
fn record(pace: &mut Backoff, log: &mut FailureLog, failed: Option<(&str, String)>) -> Option<Duration> {
    match failed {
        Some((kind, message)) => {
            pace.failed();
            log_transition(WHAT, log.failed(kind, &message));
            Some(pace.delay())
        }
        None => {
            pace.succeeded();
            log_transition(WHAT, log.succeeded());
            None
        }
    }
}

async fn revoke(dcs: &DcsClient, lease: Option<i64>) {
    if let Some(id) = lease {
        if let Err(e) = dcs.lease_revoke(id).await {
            tracing::warn!("revoking the edge lease failed (it will expire): {e}");
        }
    }
}
