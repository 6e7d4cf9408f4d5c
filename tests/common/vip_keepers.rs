//! VIP keepers in network namespaces without the proxy: three witnesses form the DCS (db1..db3), and each edge
//! namespace runs the keeper (`run_keeper_with`) in a child process (this test binary re-executed), which also
//! publishes its `edges/<name>` status. Faults by PID: SIGKILL, SIGSTOP/SIGCONT, link cut, SIGTERM.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgha::cluster::keys::Keys;
use pgha::dcs::client::DcsClient;
use pgha::edge::vip::VipSettings;

use crate::netns::{tcp_touch, NsChild, Topology, IFACE};
use crate::vip_view::{median, VipView, MOVE};

const EDGES: [(&str, u32); 3] = [("edge1", 100), ("edge2", 50), ("edge3", 10)];
/// The VIP lease TTL (`PGHA_VIP_TEST_TTL_MS` overrides it to measure how the move time scales).
fn ttl_ms() -> u64 {
    std::env::var("PGHA_VIP_TEST_TTL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}
const DCS_PORT: u16 = 2379;
const CLUSTER: &str = "demo";

struct Bench {
    topo: Topology,
    dir: tempfile::TempDir,
    keepers: BTreeMap<String, NsChild>,
    /// Keepers run with `preempt = true`.
    preempt: bool,
    _witnesses: Vec<NsChild>,
    vip: Ipv4Addr,
    runtime: tokio::runtime::Runtime,
    dcs: DcsClient,
}

fn endpoints(topo: &Topology) -> Vec<String> {
    ["db1", "db2", "db3"]
        .iter()
        .map(|d| format!("{}:{DCS_PORT}", topo.host(d).ip))
        .collect()
}

impl Bench {
    /// The topology, the witnesses, and keepers on the `initial` edges.
    fn start(initial: &[&str], preempt: bool) -> Bench {
        let topo = Topology::create(&["db1", "db2", "db3", "edge1", "edge2", "edge3", "client"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let peers: Vec<String> = ["db1", "db2", "db3"]
            .iter()
            .map(|d| format!("{d}={}:{DCS_PORT}", topo.host(d).ip))
            .collect();
        let mut witnesses = Vec::new();
        for db in ["db1", "db2", "db3"] {
            let cfg = dir.path().join(format!("{db}.toml"));
            let text = format!(
                "[cluster]\nname = \"{CLUSTER}\"\n\n[node]\nname = \"{db}\"\ndata_dir = \"{data}\"\n\n[dcs]\n\
                 listen = \"{ip}:{DCS_PORT}\"\npeers = {peers:?}\n\n[tls]\nplaintext = true\n",
                data = dir.path().join(db).display(),
                ip = topo.host(db).ip,
            );
            std::fs::write(&cfg, text).expect("write config");
            let pgha = crate::common::exe();
            let argv = [exe_str(&pgha), "run", "--role", "witness", "-c", exe_str(&cfg)];
            witnesses.push(topo.spawn(db, &argv, &[], &dir.path().join(format!("{db}.log"))));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dcs = {
            let _in_runtime = runtime.enter();
            DcsClient::new(endpoints(&topo), None, Duration::from_secs(2)).expect("DCS client")
        };
        let vip = topo.addr(100);
        let mut bench = Bench {
            topo,
            dir,
            keepers: BTreeMap::new(),
            preempt,
            _witnesses: witnesses,
            vip,
            runtime,
            dcs,
        };
        for edge in initial {
            bench.start_keeper(edge);
        }
        bench
    }

    fn start_keeper(&mut self, edge: &str) {
        let prio = EDGES.iter().find(|(e, _)| *e == edge).map(|(_, p)| *p).unwrap_or(0);
        let exe = std::env::current_exe().expect("test binary");
        let argv = [
            exe_str(&exe),
            "vip_keeper_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ];
        let pgha = crate::common::exe();
        let health = self.health_file(edge);
        let cidr = format!("{}/24", self.vip);
        let eps = endpoints(&self.topo).join(",");
        let prio = prio.to_string();
        let ttl = ttl_ms().to_string();
        let envs = [
            ("PGHA_VIP_CHILD", edge),
            ("PGHA_VIP_PRIORITY", prio.as_str()),
            ("PGHA_VIP_ENDPOINTS", eps.as_str()),
            ("PGHA_VIP_ADDRESS", cidr.as_str()),
            ("PGHA_VIP_TTL_MS", ttl.as_str()),
            ("PGHA_VIP_PREEMPT", if self.preempt { "true" } else { "false" }),
            ("PGHA_VIP_HEALTH_FILE", exe_str(&health)),
            ("PGHA_VIP_EXE", exe_str(&pgha)),
        ];
        let log = self.dir.path().join(format!("{edge}.log"));
        let child = self.topo.spawn(edge, &argv, &envs, &log);
        self.keepers.insert(edge.to_string(), child);
    }

    /// While this file exists, `edge`'s simulated proxy reports unhealthy.
    fn health_file(&self, edge: &str) -> PathBuf {
        self.dir.path().join(format!("{edge}.unhealthy"))
    }

    fn set_healthy(&self, edge: &str, healthy: bool) {
        let f = self.health_file(edge);
        if healthy {
            std::fs::remove_file(&f).expect("remove health file");
        } else {
            std::fs::write(&f, "").expect("write health file");
        }
    }

    fn view(&self) -> VipView<'_> {
        VipView {
            topo: &self.topo,
            edges: EDGES.iter().map(|(e, _)| e.to_string()).collect(),
            vip: self.vip,
            runtime: &self.runtime,
            dcs: &self.dcs,
            keys: Keys::new(CLUSTER),
            log_dir: self.dir.path(),
        }
    }
}

fn exe_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The whole scenario (see the module doc).
pub fn scenario() {
    let mut b = Bench::start(&["edge1", "edge2", "edge3"], false);
    let first = b.view().settled_holder("start");
    tcp_touch(&b.topo, "client", b.vip, 9);
    b.view().client_sees("client", &first);

    // SIGKILL of the holder, three times: the fencer removes the dead holder's address, another edge takes over.
    let mut moves = Vec::new();
    let mut holder = first;
    for round in 0..3 {
        let t0 = Instant::now();
        b.keepers.get_mut(&holder).expect("keeper").kill();
        let (new, took) = b.view().watch_move(&holder, t0);
        eprintln!("round {round}: SIGKILL {holder} -> VIP on {new} after {took:?}");
        moves.push(took);
        b.view().client_sees("client", &new);
        b.start_keeper(&holder);
        holder = b.view().settled_holder("after SIGKILL");
    }

    // SIGSTOP: the frozen holder's fencer removes its address before another edge adds it; SIGCONT: it stays off.
    let t0 = Instant::now();
    b.keepers[&holder].signal(libc::SIGSTOP);
    let (new, took) = b.view().watch_move(&holder, t0);
    eprintln!("SIGSTOP {holder} -> VIP on {new} after {took:?}");
    b.keepers[&holder].signal(libc::SIGCONT);
    let settled = b.view().settled_holder("after SIGCONT");
    assert!(
        !b.topo.has_address(&holder, b.vip),
        "the thawed edge must not hold the VIP again"
    );
    holder = settled;

    // Link cut: the holder loses the DCS and drops the VIP itself; another edge takes it; healing changes nothing.
    let t0 = Instant::now();
    b.topo.cut(&holder);
    let (new, took) = b.view().watch_move(&holder, t0);
    eprintln!("link cut {holder} -> VIP on {new} after {took:?}");
    b.view().client_sees("client", &new);
    b.topo.restore(&holder);
    holder = b.view().settled_holder("after healing the link");
    assert_eq!(holder, new, "healing the link does not move the VIP back");

    // An unhealthy holder releases at once and a healthy edge takes it (no TTL wait); an unhealthy edge never takes
    // it; recovering health moves nothing back.
    let released = b.view().log_count(&holder, "proxy unhealthy");
    let t0 = Instant::now();
    b.set_healthy(&holder, false);
    let (new, took) = b.view().watch_move(&holder, t0);
    eprintln!("unhealthy {holder} -> VIP on {new} after {took:?}");
    assert!(
        b.view().log_count(&holder, "proxy unhealthy") > released,
        "{}",
        b.view().logs()
    );
    b.set_healthy(&holder, true);
    holder = b.view().settled_holder("after health came back");
    assert_eq!(
        holder, new,
        "regaining health does not move the VIP back (no preemption)"
    );

    // SIGTERM hands over at once (lease revoked, no TTL wait), to the best remaining edge once all are published.
    crate::common::wait_until_sync(MOVE, "every edge's status published", || {
        b.view().published_healthy().len() == EDGES.len()
    });
    let best = EDGES
        .iter()
        .find(|(e, _)| *e != holder)
        .map(|(e, _)| e.to_string())
        .expect("another edge");
    assert_eq!(
        b.view().holders(),
        vec![holder.clone()],
        "{holder} holds the VIP before SIGTERM"
    );
    let t0 = Instant::now();
    b.keepers[&holder].signal(libc::SIGTERM);
    let (new, took) = b.view().watch_move(&holder, t0);
    eprintln!("SIGTERM {holder} -> VIP on {new} after {took:?}");
    assert_eq!(
        new, best,
        "the free VIP goes to the healthy edge with the best priority"
    );
    b.view().settled_holder("after SIGTERM");
    eprintln!("{}", b.view().logs());
    eprintln!(
        "VIP move after SIGKILL of the holder (ttl {} ms): median {:?} of {moves:?}",
        ttl_ms(),
        median(moves.clone())
    );
}

/// Preemption: with edge2 and edge3 up, one holds the VIP; edge1 (better priority) joins and gets it, the holder
/// releasing first (never two holders); without preemption nobody would move.
pub fn preemption() {
    let mut b = Bench::start(&["edge2", "edge3"], true);
    let first = b.view().settled_holder("edge2 and edge3 up");
    assert_eq!(
        first, "edge2",
        "with preemption the better of the two ends up holding it"
    );
    let t0 = Instant::now();
    b.start_keeper("edge1");
    let (new, took) = b.view().watch_move(&first, t0);
    assert_eq!(new, "edge1", "the better edge takes the VIP over");
    eprintln!("preemption: edge1 started -> VIP moved from {first} after {took:?}");
    assert_eq!(b.view().settled_holder("after preemption"), "edge1");
    assert!(b.view().log_count(&first, "released from") > 0 && b.view().log_count(&first, "preempted by edge1") > 0);
}

/// The keeper process (see `vip_keeper_child` in tests/vip_netns.rs): runs until SIGTERM.
pub fn child() {
    let Ok(name) = std::env::var("PGHA_VIP_CHILD") else {
        return; // started by hand: nothing to do
    };
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let (address, prefix_len) = pgha::config::parse_vip_address(&var("PGHA_VIP_ADDRESS")).expect("address");
    let ttl = Duration::from_millis(var("PGHA_VIP_TTL_MS").parse().expect("ttl"));
    let priority: u32 = var("PGHA_VIP_PRIORITY").parse().expect("priority");
    let settings = VipSettings {
        address,
        prefix_len,
        interface: IFACE.into(),
        priority,
        preempt: var("PGHA_VIP_PREEMPT") == "true",
        ttl,
    };
    let endpoints: Vec<String> = var("PGHA_VIP_ENDPOINTS").split(',').map(String::from).collect();
    let exe = PathBuf::from(var("PGHA_VIP_EXE"));
    let health_file = PathBuf::from(var("PGHA_VIP_HEALTH_FILE"));
    pgha::logging::init(pgha::config::LogFormat::Human, "info");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        pgha::edge::vip::check_capabilities(&settings).expect("capabilities");
        let dcs = Arc::new(DcsClient::new(endpoints, None, Duration::from_secs(2)).expect("DCS client"));
        let keys = Keys::new(CLUSTER);
        let token = tokio_util::sync::CancellationToken::new();
        let on_term = token.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
            term.recv().await;
            on_term.cancel();
        });
        let (healthy_tx, healthy) = tokio::sync::watch::channel(true);
        tokio::spawn(health_from_file(health_file, healthy_tx));
        tokio::spawn(publish_status(
            dcs.clone(),
            keys.clone(),
            name.clone(),
            priority,
            ttl,
            healthy.clone(),
        ));
        let (holder, _) = tokio::sync::watch::channel(None);
        pgha::edge::vip::run_keeper_with(exe, settings, name, dcs, keys, healthy, holder, token)
            .await
            .expect("keeper");
    });
}

/// What the proxy publishes in the real edge: `edges/<name>` with health and VIP priority, bound to a lease;
/// re-published when the health changes.
async fn publish_status(
    dcs: Arc<DcsClient>,
    keys: Keys,
    name: String,
    priority: u32,
    ttl: Duration,
    healthy: tokio::sync::watch::Receiver<bool>,
) {
    let mut lease: Option<i64> = None;
    let mut published: Option<bool> = None;
    loop {
        let h = *healthy.borrow();
        let value = format!(r#"{{"name":"{name}","healthy":{h},"vip_priority":{priority}}}"#);
        if let Some(id) = lease {
            if !matches!(dcs.lease_keepalive(id).await, Ok(Some(_)) | Err(_)) {
                lease = None;
            }
        }
        if lease.is_none() {
            lease = dcs.lease_grant(ttl).await.ok().map(|(id, _)| id);
            published = None;
        }
        if let (Some(id), true) = (lease, published != Some(h)) {
            if dcs.put(keys.edge(&name).as_bytes(), value.as_bytes(), id).await.is_ok() {
                published = Some(h);
            }
        }
        tokio::time::sleep(ttl / 8).await;
    }
}

/// The proxy's health, simulated: unhealthy while `file` exists.
async fn health_from_file(file: PathBuf, tx: tokio::sync::watch::Sender<bool>) {
    loop {
        let healthy = !file.exists();
        tx.send_if_modified(|h| std::mem::replace(h, healthy) != healthy);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
