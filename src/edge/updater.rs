//! Turns the followed DCS view into routing tables over time: at once on every change, and at the instant the view
//! is not confirmed for `Followed::fresh_for` (then the primary route goes, invariants 1 and 3). Also decides `healthy`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::follow::Followed;
use super::proxy::Proxy;
use super::routing::{RoutingOpts, RoutingTable};

/// Installs a new table on `proxy` whenever the view or its freshness changes, until `token` is cancelled.
pub async fn run(
    proxy: Arc<Proxy>,
    mut followed: watch::Receiver<Option<Followed>>,
    opts: RoutingOpts,
    healthy: watch::Sender<bool>,
    ttl: watch::Sender<Duration>,
    token: CancellationToken,
) {
    let mut was_fresh = None;
    loop {
        let current = followed.borrow_and_update().clone();
        let now = Instant::now();
        let (table, fresh, stale_at) = match &current {
            None => (RoutingTable::closed(), false, None),
            Some(f) => {
                let fresh = f.fresh(now);
                ttl.send_if_modified(|t| std::mem::replace(t, f.ttl()) != f.ttl());
                let stale_at = fresh.then(|| f.confirmed_at + f.fresh_for());
                (RoutingTable::from_view(&f.view, fresh, &opts), fresh, stale_at)
            }
        };
        if current.is_some() && was_fresh != Some(fresh) {
            if fresh {
                tracing::info!(event = "edge_view_fresh", "DCS view is fresh: routing on");
            } else {
                tracing::warn!(
                    event = "edge_view_stale",
                    "DCS view not confirmed for the leader TTL (at least 2 s): no primary route, edge unhealthy"
                );
            }
            was_fresh = Some(fresh);
        }
        proxy.set_table(table);
        healthy.send_if_modified(|h| std::mem::replace(h, fresh) != fresh);
        let wake = async {
            match stale_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = token.cancelled() => return,
            r = followed.changed() => if r.is_err() { return },
            _ = wake => {}
        }
    }
}
