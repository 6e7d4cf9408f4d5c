//! Publishes this edge's [`EdgeInfo`] under `edges/<name>`, bound to its own DCS lease (granted, then kept alive
//! every ttl/4), so a dead edge disappears from the DCS one TTL after its last keepalive. Revoked at shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::info::EdgeInfo;
use crate::dcs::client::DcsClient;
use crate::ha::keys::Keys;

async fn put(dcs: &DcsClient, keys: &Keys, info: &EdgeInfo, lease: i64) -> bool {
    let value = serde_json::to_vec(info).unwrap_or_default();
    match dcs.put(keys.edge(&info.name).as_bytes(), &value, lease).await {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!("publishing the edge status failed: {e}");
            false
        }
    }
}

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
    loop {
        let ttl = (*ttl.borrow()).max(Duration::from_millis(400));
        if lease.is_none() {
            match dcs.lease_grant(ttl).await {
                Ok((id, _)) => {
                    lease = Some(id);
                    stale = true;
                }
                Err(e) => tracing::debug!("granting the edge lease failed: {e}"),
            }
        }
        if let (Some(id), true) = (lease, stale) {
            let current = info.borrow_and_update().clone();
            stale = !put(&dcs, &keys, &current, id).await;
        }
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(ttl / 4) => {
                if let Some(id) = lease {
                    match dcs.lease_keepalive(id).await {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            tracing::info!("the edge's DCS lease expired: publishing under a new one");
                            lease = None;
                        }
                        Err(e) => tracing::debug!("edge lease keepalive failed: {e}"),
                    }
                }
            }
            r = info.changed() => {
                if r.is_err() {
                    break;
                }
                stale = true;
            }
        }
    }
    if let Some(id) = lease {
        if let Err(e) = dcs.lease_revoke(id).await {
            tracing::warn!("revoking the edge lease failed (it will expire): {e}");
        }
    }
}
