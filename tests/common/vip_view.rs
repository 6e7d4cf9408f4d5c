//! Watching a VIP in a netns topology: which edges carry it, what the `vip` key says, and checks after a fault
//! (never two holders; the old holder loses it before another adds it; the client learns the new MAC).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use pgha::bench::vip_settle::{VipSettle, VipVerdict};
use pgha::cluster::keys::Keys;
use pgha::dcs::client::DcsClient;

use pgha::netns::Topology;

/// Budget for one VIP move (ttl + race + netlink, generous for 2 shared cores).
pub const MOVE: Duration = Duration::from_secs(15);

/// Observes the VIP among `edges`.
pub struct VipView<'a> {
    pub topo: &'a Topology,
    pub edges: Vec<String>,
    pub vip: Ipv4Addr,
    pub runtime: &'a tokio::runtime::Runtime,
    pub dcs: &'a DcsClient,
    pub keys: Keys,
    /// Where `<edge>.log` files are (their VIP lines go into failure messages).
    pub log_dir: &'a Path,
}

impl VipView<'_> {
    /// Edges whose interface carries the VIP right now (two only when an overlap is proven:
    /// `pgha::harness::vip_look`).
    pub fn holders(&self) -> Vec<String> {
        pgha::harness::vip_look::holders(|| self.look())
    }

    /// The edges holding the address, looked at in order.
    fn look(&self) -> Vec<String> {
        self.edges
            .iter()
            .filter(|e| self.topo.has_address(e, self.vip).unwrap_or(false))
            .cloned()
            .collect()
    }

    /// The `vip` key's value.
    pub fn key_holder(&self) -> Option<String> {
        let key = self.keys.vip();
        self.runtime.block_on(async {
            let (kvs, _) = self.dcs.get(key.as_bytes(), false).await.ok()?;
            kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        })
    }

    /// Names of the edges whose status (`edges/<name>`) is published and says healthy.
    pub fn published_healthy(&self) -> Vec<String> {
        let prefix = self.keys.edges();
        self.runtime.block_on(async {
            let kvs = self
                .dcs
                .get(prefix.as_bytes(), true)
                .await
                .map(|(k, _)| k)
                .unwrap_or_default();
            kvs.iter()
                .filter_map(|kv| serde_json::from_slice::<pgha::edge::vip::decide::Candidate>(&kv.value).ok())
                .filter(|c| c.healthy)
                .map(|c| c.name)
                .collect()
        })
    }

    /// Waits until exactly one edge holds the VIP, the `vip` key names it, and that stays so for a second; never
    /// two holders meanwhile ([`VipSettle`], shared with `bench chaos`).
    pub fn settled_holder(&self, what: &str) -> String {
        let deadline = Instant::now() + MOVE;
        let mut settle = VipSettle::new(Duration::from_secs(1));
        while Instant::now() < deadline {
            match settle.observe(&self.holders(), self.key_holder().as_deref(), Instant::now()) {
                VipVerdict::Settled(h) => return h,
                VipVerdict::TwoHolders(h) => panic!("{what}: several edges hold the VIP: {h:?}\n{}", self.logs()),
                VipVerdict::Pending => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        panic!(
            "{what}: no single settled VIP holder within {MOVE:?}: {:?}\n{}",
            self.holders(),
            self.logs()
        );
    }

    /// After a fault on `old` at `t0`: polls until another edge holds the VIP, checking that no two edges ever held
    /// it at once and that `old` lost it first; returns (new holder, time from `t0`).
    pub fn watch_move(&self, old: &str, t0: Instant) -> (String, Duration) {
        let deadline = t0 + MOVE;
        let mut old_gone = false;
        while Instant::now() < deadline {
            let h = self.holders();
            let now = Instant::now();
            assert!(
                h.len() <= 1,
                "two VIP holders at once after a fault on {old}: {h:?}\n{}",
                self.logs()
            );
            old_gone |= !h.iter().any(|e| e == old);
            if let Some(new) = h.iter().find(|e| *e != old) {
                assert!(old_gone, "{new} added the VIP before {old} lost it");
                return (new.clone(), now - t0);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the VIP did not move away from {old} within {MOVE:?}\n{}", self.logs());
    }

    /// The client's neighbour entry for the VIP must become `edge`'s MAC (announced by gratuitous ARP).
    pub fn client_sees(&self, client: &str, edge: &str) {
        let mac = self.topo.mac(edge).unwrap_or_else(|e| panic!("{e}"));
        crate::common::wait_until_sync(
            MOVE,
            &format!("{client}'s neighbour entry for the VIP = {edge}'s MAC"),
            || self.topo.neighbour_mac(client, self.vip).ok().flatten().as_deref() == Some(mac.as_str()),
        );
    }

    /// How many lines of `edge`'s log contain `needle`.
    pub fn log_count(&self, edge: &str, needle: &str) -> usize {
        let text = std::fs::read_to_string(self.log_dir.join(format!("{edge}.log"))).unwrap_or_default();
        text.lines().filter(|l| l.contains(needle)).count()
    }

    /// The last VIP lines of every edge's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for e in &self.edges {
            let text = std::fs::read_to_string(self.log_dir.join(format!("{e}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains("VIP")).collect();
            let tail = &lines[lines.len().saturating_sub(12)..];
            out.push_str(&format!("--- {e}\n{}\n", tail.join("\n")));
        }
        out
    }
}

/// The median of some durations.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}
