//! The running edge's shared state (proxy, DCS view, health, VIP holder) and the snapshot the status page renders.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::follow::Followed;
use super::proxy::Proxy;
use super::routing::Port;
use super::status::{backend_rows, PortStats, StatusSnapshot};

/// Handles to everything the status page and the publisher look at.
#[derive(Clone)]
pub struct EdgeState {
    pub name: String,
    pub cluster: String,
    /// Enabled client ports and their listen addresses.
    pub listens: Vec<(Port, String)>,
    /// The configured VIP address, if any.
    pub vip: Option<String>,
    pub proxy: Arc<Proxy>,
    pub followed: watch::Receiver<Option<Followed>>,
    pub healthy: watch::Receiver<bool>,
    pub vip_holder: watch::Receiver<Option<String>>,
}

impl EdgeState {
    /// A consistent-enough snapshot for one page render.
    pub fn snapshot(&self) -> StatusSnapshot {
        let table = (*self.proxy.table()).clone();
        let sessions = self.proxy.sessions();
        let followed = self.followed.borrow().clone();
        let ports = self
            .listens
            .iter()
            .map(|(port, listen)| {
                let c = self.proxy.counters(*port);
                let live = sessions.iter().filter(|s| s.port == *port);
                let (live_in, live_out) = live.clone().fold((0, 0), |(i, o), s| (i + s.bytes_in, o + s.bytes_out));
                PortStats {
                    port: *port,
                    listen: listen.clone(),
                    active: live.count() as u64,
                    connects: c.connects.load(Ordering::Relaxed),
                    refused: c.refused.load(Ordering::Relaxed),
                    cap: self.proxy.cap(*port) as u64,
                    full: c.full.load(Ordering::Relaxed),
                    no_hello: c.no_hello.load(Ordering::Relaxed),
                    cancels: c.cancels.load(Ordering::Relaxed),
                    cut: c.cut.load(Ordering::Relaxed),
                    bytes_in: c.bytes_in.load(Ordering::Relaxed) + live_in,
                    bytes_out: c.bytes_out.load(Ordering::Relaxed) + live_out,
                }
            })
            .collect();
        StatusSnapshot {
            name: self.name.clone(),
            cluster: self.cluster.clone(),
            healthy: *self.healthy.borrow(),
            backends: backend_rows(followed.as_ref().map(|f| &*f.view), &table, &sessions),
            table,
            ports,
            sessions,
            vip: self.vip.clone(),
            vip_holder: self.vip_holder.borrow().clone(),
            view_age: followed.map(|f| Instant::now().saturating_duration_since(f.confirmed_at)),
            changes: super::changes::recent(),
        }
    }
}
