//! The whole edge tier in network namespaces (root + PostgreSQL 15): three db hosts (`pgha run --role db`), three
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

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use netns::{NsChild, Topology, IFACE};
use pgha::cluster::keys::Keys;
use pgha::dcs::client::DcsClient;
use vip_view::{median, VipView, MOVE};

const DBS: [&str; 3] = ["db1", "db2", "db3"];
const EDGES: [(&str, u32); 3] = [("edge1", 100), ("edge2", 50), ("edge3", 10)];
const DCS_PORT: u16 = 2379;
const READY: Duration = Duration::from_secs(120);

struct Site {
    topo: Topology,
    dir: tempfile::TempDir,
    _dbs: Vec<NsChild>,
    edges: BTreeMap<String, NsChild>,
    runtime: tokio::runtime::Runtime,
    dcs: DcsClient,
    password: String,
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Site {
    fn start() -> Site {
        let mut hosts: Vec<&str> = DBS.to_vec();
        hosts.extend(EDGES.iter().map(|(e, _)| *e));
        hosts.push("client");
        let topo = Topology::create(&hosts);
        let dir = tempfile::Builder::new().prefix("pgha-vip-").tempdir().expect("tempdir");
        // PostgreSQL runs as user postgres under a root pgha: it must traverse to its data directory.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let secrets = dir.path().join("secrets");
        std::fs::create_dir_all(&secrets).expect("secrets dir");
        let password: String = (0..20).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect();
        for name in ["superuser", "replication"] {
            std::fs::write(secrets.join(name), format!("{password}\n")).expect("secret");
            std::fs::set_permissions(secrets.join(name), std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod secret");
        }
        let endpoints: Vec<String> = DBS.iter().map(|d| format!("{}:{DCS_PORT}", topo.host(d).ip)).collect();
        let peers: Vec<String> = DBS
            .iter()
            .map(|d| format!("{d}={}:{DCS_PORT}", topo.host(d).ip))
            .collect();
        let exe = common::exe();
        let mut dbs = Vec::new();
        for d in DBS {
            let ip = topo.host(d).ip;
            let cfg = dir.path().join(format!("{d}.toml"));
            let text = format!(
                "[cluster]\nname = \"demo\"\n\n[node]\nname = \"{d}\"\ndata_dir = \"{data}\"\n\n[dcs]\n\
                 listen = \"{ip}:{DCS_PORT}\"\npeers = {peers:?}\n\n[tls]\nplaintext = true\n\n[postgresql]\n\
                 listen = \"{ip}:5432\"\nsuperuser_password_file = \"{su}\"\nreplication_password_file = \"{rep}\"\n\n\
                 [ha]\nrest_listen = \"{ip}:8008\"\n",
                data = dir.path().join(d).display(),
                su = secrets.join("superuser").display(),
                rep = secrets.join("replication").display(),
            );
            std::fs::write(&cfg, text).expect("write db config");
            let argv = [s(&exe), "run", "--role", "db", "-c", s(&cfg)];
            dbs.push(topo.spawn(d, &argv, &[], &dir.path().join(format!("{d}.log"))));
        }
        for (e, prio) in EDGES {
            let cfg = dir.path().join(format!("{e}.toml"));
            let text = format!(
                "[cluster]\nname = \"demo\"\n\n[node]\nname = \"{e}\"\n\n[dcs]\nendpoints = {endpoints:?}\n\n\
                 [tls]\nplaintext = true\n\n[edge.vip]\naddress = \"{vip}/24\"\ninterface = \"{IFACE}\"\n\
                 priority = {prio}\n",
                vip = topo.addr(100),
            );
            std::fs::write(&cfg, text).expect("write edge config");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dcs = {
            let _in_runtime = runtime.enter();
            DcsClient::new(endpoints, None, Duration::from_secs(2)).expect("DCS client")
        };
        let mut site = Site {
            topo,
            dir,
            _dbs: dbs,
            edges: BTreeMap::new(),
            runtime,
            dcs,
            password,
        };
        for (e, _) in EDGES {
            site.start_edge(e);
        }
        site
    }

    fn start_edge(&mut self, edge: &str) {
        let exe = common::exe();
        let cfg = self.dir.path().join(format!("{edge}.toml"));
        let argv = [s(&exe), "run", "--role", "edge", "-c", s(&cfg)];
        let log = self.dir.path().join(format!("{edge}.log"));
        let child = self.topo.spawn(edge, &argv, &[], &log);
        self.edges.insert(edge.to_string(), child);
    }

    fn view(&self) -> VipView<'_> {
        VipView {
            topo: &self.topo,
            edges: EDGES.iter().map(|(e, _)| e.to_string()).collect(),
            vip: self.topo.addr(100),
            runtime: &self.runtime,
            dcs: &self.dcs,
            keys: Keys::new("demo"),
            log_dir: self.dir.path(),
        }
    }

    /// Waits for a primary and two streaming replicas; returns the primary's host name.
    fn wait_pg_cluster(&self) -> String {
        let keys = Keys::new("demo");
        let store = pgha::cluster::store::Store {
            dcs: &self.dcs,
            keys: &keys,
        };
        let deadline = Instant::now() + READY;
        while Instant::now() < deadline {
            if let Some(primary) = self
                .runtime
                .block_on(store.view())
                .ok()
                .as_ref()
                .and_then(|v| v.primary_with(2))
            {
                return primary.to_string();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("no PostgreSQL primary with two streaming replicas within {READY:?}");
    }

    /// `inet_server_addr()` of a session opened from the client host through the VIP's primary port.
    fn server_via_vip(&self) -> Option<String> {
        let conn = format!(
            "host={} port=5432 user=postgres dbname=postgres connect_timeout=3",
            self.topo.addr(100)
        );
        let out = self
            .topo
            .command("client", "/usr/lib/postgresql/15/bin/psql")
            .args([conn.as_str(), "-Atc", "select host(inet_server_addr())"])
            .env("PGPASSWORD", &self.password)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// A client through the VIP reaches the primary.
    fn client_reaches_primary(&self, primary: &str) {
        let want = self.topo.host(primary).ip.to_string();
        common::wait_until_sync(MOVE, "a client through the VIP reaches the primary", || {
            self.server_via_vip().as_deref() == Some(want.as_str())
        });
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
    site.view().client_sees("client", &holder);

    // SIGKILL of the holder's pgha: its fencer removes the address, another edge takes the VIP.
    let mut moves = Vec::new();
    for round in 0..3 {
        let t0 = Instant::now();
        site.edges.get_mut(&holder).expect("edge").kill();
        let (new, took) = site.view().watch_move(&holder, t0);
        eprintln!("round {round}: SIGKILL {holder} -> VIP on {new} after {took:?}");
        moves.push(took);
        site.view().client_sees("client", &new);
        site.client_reaches_primary(&primary);
        site.start_edge(&holder);
        holder = site.view().settled_holder("after SIGKILL");
    }

    // SIGSTOP: the frozen edge's fencer removes the address before another edge adds it.
    let t0 = Instant::now();
    site.edges[&holder].signal(libc::SIGSTOP);
    let (new, took) = site.view().watch_move(&holder, t0);
    eprintln!("SIGSTOP {holder} -> VIP on {new} after {took:?}");
    site.view().client_sees("client", &new);
    site.edges[&holder].signal(libc::SIGCONT);
    let settled = site.view().settled_holder("after SIGCONT");
    assert_ne!(settled, holder, "the thawed edge must not take the VIP back");
    holder = settled;

    // Cut off from the db hosts (still on the bridge): the edge drops the VIP, another takes it.
    let released = site.view().log_count(&holder, "released from");
    let t0 = Instant::now();
    site.topo.block(&holder, &DBS);
    let (new, took) = site.view().watch_move(&holder, t0);
    eprintln!("cut off from the db hosts: {holder} -> VIP on {new} after {took:?}");
    assert!(
        site.view().log_count(&holder, "released from") > released,
        "the cut-off edge released the VIP itself\n{}",
        site.view().logs()
    );
    site.view().client_sees("client", &new);
    site.client_reaches_primary(&primary);
    site.topo.unblock(&holder, &DBS);
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
    site.edges[&holder].signal(libc::SIGTERM);
    let (new, took) = site.view().watch_move(&holder, t0);
    eprintln!("SIGTERM {holder} -> VIP on {new} after {took:?}");
    assert_eq!(
        new, best,
        "the free VIP goes to the healthy edge with the best priority"
    );
    site.view().client_sees("client", &new);
    site.client_reaches_primary(&primary);
    eprintln!("{}", site.view().logs());
    eprintln!(
        "VIP move after SIGKILL of the holding edge (ttl 2000 ms): median {:?} of {moves:?}",
        median(moves.clone())
    );
}
