//! The whole edge tier in network namespaces (root + PostgreSQL 15), on the bench's six-host harness (`SixHosts`): three db hosts, three
//! edge hosts (`pgha run --role edge` with `[edge.vip]`), one client host. Exactly one edge holds the VIP; SIGKILL,
//! SIGSTOP and cutting the holder off from the db hosts move it (never two holders, the old one loses it first);
//! the client's neighbour table learns the new MAC and a client through the VIP reaches the primary again.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/probe.rs"]
mod probe;
#[path = "common/vip_view.rs"]
mod vip_view;

use std::time::{Duration, Instant};

use pgha::cluster::keys::Keys;
use pgha::harness::six_hosts::{SixHosts, SixHostsOptions, CLIENT, CLUSTER, DBS, EDGES, PG_PORT};
use pgha::harness::topology::Topology;
use vip_view::{median, VipView, MOVE};

const READY: Duration = Duration::from_secs(120);

/// The six hosts (the bench's topology: mutual TLS, JSON logs) and a runtime for the DCS reads.
struct Site {
    // Field order is drop order: the hosts go before the runtime their DCS client was built on.
    six: SixHosts,
    runtime: tokio::runtime::Runtime,
}

/// The VIP lease of these tests: debug binaries beside other tests on a CI machine would move a lease of the
/// production default on scheduling stalls (`pgha bench soak` checks the default on a loaded release build).
const TEST_VIP_TTL_MS: u64 = 1000;

impl Site {
    /// Six hosts with a VIP lease of [`TEST_VIP_TTL_MS`].
    fn start() -> Site {
        Site::start_with(format!("ttl_ms = {TEST_VIP_TTL_MS}\n"))
    }

    /// Six hosts whose edges get `vip_lines` in their `[edge.vip]` section.
    fn start_with(vip_lines: String) -> Site {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let opts = SixHostsOptions {
            exe: common::exe(),
            vip_lines,
            ..Default::default()
        };
        let six = {
            let _in_runtime = runtime.enter();
            SixHosts::start(&opts).unwrap_or_else(|e| panic!("six hosts: {e}"))
        };
        Site { six, runtime }
    }

    fn restart_edge(&mut self, edge: &str) {
        self.six
            .start_pgha(edge, &common::exe())
            .unwrap_or_else(|e| panic!("restarting {edge}: {e}"));
    }

    fn signal_edge(&self, edge: &str, sig: libc::c_int) {
        self.six.signal_pgha(edge, sig).unwrap_or_else(|e| panic!("{e}"));
    }

    fn view(&self) -> VipView<'_> {
        VipView {
            topo: &self.six.topo,
            edges: EDGES.iter().map(|(e, _)| e.to_string()).collect(),
            vip: self.six.vip(),
            runtime: &self.runtime,
            dcs: self.six.dcs(),
            keys: Keys::new(CLUSTER),
            log_dir: &self.six.dir,
        }
    }

    /// Waits for a primary with two streaming replicas and one VIP holder; returns the primary's host name.
    fn wait_pg_cluster(&self) -> String {
        match self.runtime.block_on(self.six.wait_ready(READY)) {
            Ok(ready) => ready.primary,
            Err(e) => panic!(
                "{e}
{}",
                self.six.log_tails(20)
            ),
        }
    }

    /// `inet_server_addr()` of a session opened from the client host through the VIP's primary port.
    fn server_via_vip(&self) -> Option<String> {
        let conn = format!(
            "host={} port={PG_PORT} user=postgres dbname=postgres connect_timeout=3",
            self.six.vip()
        );
        let out = self
            .six
            .topo
            .command(CLIENT, "/usr/lib/postgresql/15/bin/psql")
            .ok()?
            .args([conn.as_str(), "-Atc", "select host(inet_server_addr())"])
            .env("PGPASSWORD", &self.six.password)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// A client through the VIP reaches the primary.
    fn client_reaches_primary(&self, primary: &str) {
        let want = self.six.ip(primary).map(|ip| ip.to_string()).unwrap_or_default();
        common::wait_until_sync(MOVE, "a client through the VIP reaches the primary", || {
            self.server_via_vip().as_deref() == Some(want.as_str())
        });
    }

    fn block_from_dbs(&self, edge: &str, block: bool) {
        let r = match block {
            true => self.six.topo.block(edge, &DBS),
            false => self.six.topo.unblock(edge, &DBS),
        };
        r.unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn edges_hold_the_vip_once_and_move_it_on_faults() {
    if !netns::root_or_skip("edges_hold_the_vip_once_and_move_it_on_faults") || db::skip_without_pg() {
        return;
    }
    let mut site = Site::start();
    let primary = site.wait_pg_cluster();
    let mut holder = site.view().settled_holder("start");
    site.client_reaches_primary(&primary);
    site.view().client_sees(CLIENT, &holder);

    // SIGKILL of the holder's pgha: its fencer removes the address, another edge takes the VIP.
    let mut moves = Vec::new();
    for round in 0..3 {
        let t0 = Instant::now();
        site.signal_edge(&holder, libc::SIGKILL);
        let (new, took) = site.view().watch_move(&holder, t0);
        eprintln!("round {round}: SIGKILL {holder} -> VIP on {new} after {took:?}");
        moves.push(took);
        site.view().client_sees(CLIENT, &new);
        site.client_reaches_primary(&primary);
        site.restart_edge(&holder);
        holder = site.view().settled_holder("after SIGKILL");
    }

    // SIGSTOP: the frozen edge's fencer removes the address before another edge adds it.
    let t0 = Instant::now();
    site.signal_edge(&holder, libc::SIGSTOP);
    let (new, took) = site.view().watch_move(&holder, t0);
    eprintln!("SIGSTOP {holder} -> VIP on {new} after {took:?}");
    site.view().client_sees(CLIENT, &new);
    site.signal_edge(&holder, libc::SIGCONT);
    let settled = site.view().settled_holder("after SIGCONT");
    assert_ne!(settled, holder, "the thawed edge must not take the VIP back");
    holder = settled;

    // Cut off from the db hosts (still on the bridge): the edge drops the VIP, another takes it.
    let released = site.view().log_count(&holder, "released from");
    let t0 = Instant::now();
    site.block_from_dbs(&holder, true);
    let (new, took) = site.view().watch_move(&holder, t0);
    eprintln!("cut off from the db hosts: {holder} -> VIP on {new} after {took:?}");
    assert!(
        site.view().log_count(&holder, "released from") > released,
        "the cut-off edge released the VIP itself\n{}",
        site.view().logs()
    );
    site.view().client_sees(CLIENT, &new);
    site.client_reaches_primary(&primary);
    site.block_from_dbs(&holder, false);
    holder = site.view().settled_holder("after reconnecting the cut-off edge");
    assert_eq!(
        holder, new,
        "reconnecting an edge does not move the VIP back (no preemption)"
    );
    // SIGTERM hands over at once (lease revoked), to the best remaining edge once every edge is published healthy.
    common::wait_until_sync(MOVE, "every edge published healthy", || {
        site.view().published_healthy().len() == EDGES.len()
    });
    let best = EDGES
        .iter()
        .find(|(e, _)| *e != holder)
        .map(|(e, _)| e.to_string())
        .expect("another edge");
    assert_eq!(
        site.view().holders(),
        vec![holder.clone()],
        "{holder} holds the VIP before SIGTERM"
    );
    let t0 = Instant::now();
    site.signal_edge(&holder, libc::SIGTERM);
    let (new, took) = site.view().watch_move(&holder, t0);
    eprintln!("SIGTERM {holder} -> VIP on {new} after {took:?}");
    assert_eq!(
        new, best,
        "the free VIP goes to the healthy edge with the best priority"
    );
    site.view().client_sees(CLIENT, &new);
    site.client_reaches_primary(&primary);
    eprintln!("{}", site.view().logs());
    eprintln!(
        "VIP move after SIGKILL of the holding edge (ttl {TEST_VIP_TTL_MS} ms): median {:?} of {moves:?}",
        median(moves.clone())
    );
}

/// The name of the DCS member that is the Raft leader, asked of every member.
fn raft_leader(site: &Site) -> Option<String> {
    site.runtime.block_on(async {
        for addr in site.six.dcs().endpoints() {
            if let Ok(s) = site.six.dcs().status_of(addr, Duration::from_secs(1)).await {
                if s.state == "Leader" {
                    return Some(s.name);
                }
            }
        }
        None
    })
}

/// A power-off of the Raft leader's db host with a VIP TTL of 600 ms (the holder lets go 450 ms after its last
/// renewal, shorter than an election: before renewals went directly to the voters, the VIP moved every time): the
/// VIP never moves while the DCS elects a new leader; afterwards the host comes back and every member streams again.
#[test]
fn a_raft_leader_power_off_does_not_move_the_vip() {
    let test = "a_raft_leader_power_off_does_not_move_the_vip";
    if !netns::root_or_skip(test) || db::skip_without_pg() {
        return;
    }
    let mut site = Site::start_with("ttl_ms = 600\n".to_string());
    site.wait_pg_cluster();
    let holder = site.view().settled_holder("start");
    let released = site.view().log_count(&holder, "released from");
    let mut leader = None;
    common::wait_until_sync(MOVE, "a Raft leader", || {
        leader = raft_leader(&site);
        leader.is_some()
    });
    let leader = leader.unwrap_or_default();
    site.runtime
        .block_on(site.six.power_off(&leader))
        .unwrap_or_else(|e| panic!("powering {leader} off: {e}"));
    let t0 = Instant::now();
    let mut new_leader = None;
    // Watch the VIP through the election and for 3 s after it (a flap takes about one VIP TTL).
    let mut quiet_until = t0 + MOVE;
    for _ in 0..10_000 {
        if Instant::now() >= quiet_until {
            break;
        }
        let holders = site.view().holders();
        assert_eq!(
            holders,
            vec![holder.clone()],
            "the VIP moved after {:?} while the DCS replaced its leader {leader}\n{}",
            t0.elapsed(),
            site.view().logs()
        );
        if new_leader.is_none() {
            new_leader = raft_leader(&site).filter(|l| *l != leader);
            if new_leader.is_some() {
                eprintln!("new Raft leader {new_leader:?} after {:?}", t0.elapsed());
                quiet_until = Instant::now() + Duration::from_secs(3);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(new_leader.is_some(), "no new Raft leader after powering {leader} off");
    assert_eq!(
        site.view().log_count(&holder, "released from"),
        released,
        "{holder} let the VIP go\n{}",
        site.view().logs()
    );
    site.six
        .power_on(&leader, &common::exe())
        .unwrap_or_else(|e| panic!("powering {leader} on: {e}"));
    // Every member streams again (a primary with two streaming replicas) and the VIP still has one holder.
    site.wait_pg_cluster();
    assert_eq!(site.view().settled_holder("after power-on"), holder);
}
