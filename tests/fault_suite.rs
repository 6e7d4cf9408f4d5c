//! The seeded fault suite (root + PostgreSQL 15): three db hosts in quorum synchronous mode, three edges with the
//! VIP and a client writing through it, in network namespaces; a seeded schedule of kills, freezes, partitions of
//! db and edge hosts and switchovers; DESIGN.md section 6 checked after every step and at the end.
//! `PGHA_FAULT_SEED` (default fixed), `PGHA_FAULT_STEPS` (default 4) or `PGHA_FAULT_DURATION_S` (a soak run by hand);
//! the logs are kept on failure, or always with `PGHA_FAULT_KEEP_LOGS=1`.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/fault_schedule.rs"]
mod fault_schedule;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/probe.rs"]
mod probe;
#[path = "common/vip_view.rs"]
mod vip_view;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fault_schedule::{Action, DbTarget, EdgeTarget, Fault, Step};
use netns::{NsChild, Topology, IFACE};
use pgha::dcs::client::DcsClient;
use pgha::ha::keys::Keys;
use pgha::ha::model::{PgRole, PgState};
use vip_view::VipView;

const DBS: [&str; 3] = ["db1", "db2", "db3"];
const EDGES: [(&str, u32); 3] = [("edge1", 100), ("edge2", 50), ("edge3", 10)];
const DCS_PORT: u16 = 2379;
/// Budget for the cluster to settle after a step (failover, rejoin with pg_rewind, on 2 shared cores).
const SETTLE: Duration = Duration::from_secs(120);
const DEFAULT_SEED: u64 = 20_240_606;
const DEFAULT_STEPS: usize = 4;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A connection to the PostgreSQL of a db host, from the test process (through the bridge).
async fn connect(ip: Ipv4Addr, password: &str) -> Option<tokio_postgres::Client> {
    probe::connect_to(
        &ip.to_string(),
        5432,
        password,
        Duration::from_millis(500),
        Duration::from_secs(2),
    )
    .await
}

/// One answer of the writability monitor: node, connection number, server clock (epoch seconds), writable.
#[derive(Clone, Copy, Debug)]
struct Sample {
    node: usize,
    conn: u64,
    at: f64,
    writable: bool,
}

/// Two db hosts provably writable at the same moment, from the monitor's samples (pure). A run of writable answers
/// on ONE connection means writable all along (a primary cannot enter recovery without a restart, which ends the
/// connection); two runs of different nodes that overlap in (shared, same-machine) server time are two primaries.
fn two_writable(samples: &[Sample], names: &[&str]) -> Option<String> {
    let mut runs: Vec<(usize, f64, f64)> = Vec::new();
    let mut open: BTreeMap<usize, (u64, f64, f64)> = BTreeMap::new();
    for x in samples {
        match (open.get(&x.node).copied(), x.writable) {
            (Some((c, from, _)), true) if c == x.conn => {
                open.insert(x.node, (c, from, x.at));
            }
            (prev, w) => {
                if let Some((_, from, to)) = prev {
                    runs.push((x.node, from, to));
                    open.remove(&x.node);
                }
                if w {
                    open.insert(x.node, (x.conn, x.at, x.at));
                }
            }
        }
    }
    runs.extend(open.into_iter().map(|(n, (_, from, to))| (n, from, to)));
    for (i, a) in runs.iter().enumerate() {
        for b in &runs[i + 1..] {
            if a.0 != b.0 && a.1 <= b.2 && b.1 <= a.2 {
                return Some(format!(
                    "{} writable from {:.3} to {:.3} and {} from {:.3} to {:.3} (server clock)",
                    names[a.0], a.1, a.2, names[b.0], b.1, b.2
                ));
            }
        }
    }
    None
}

/// Polls every db host's writability (`pg_is_in_recovery`, `default_transaction_read_only`) through its own IP,
/// every 50 ms on kept connections, for the whole run.
struct Monitor {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    fn start(ips: Vec<Ipv4Addr>, password: String) -> Monitor {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (out, halt) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("monitor runtime");
            rt.block_on(async {
                let mut clients: Vec<Option<tokio_postgres::Client>> = ips.iter().map(|_| None).collect();
                let mut conn_ids = vec![0u64; ips.len()];
                let started = Instant::now();
                // Bounded: far beyond any soak run.
                while !halt.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(24 * 3600) {
                    for (i, ip) in ips.iter().enumerate() {
                        if clients[i].is_none() {
                            clients[i] = connect(*ip, &password).await;
                            conn_ids[i] += 1;
                        }
                        let Some(c) = &clients[i] else { continue };
                        let sql =
                            "SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') \
                                   = 'off', extract(epoch from clock_timestamp())::float8";
                        match tokio::time::timeout(Duration::from_millis(500), c.query_one(sql, &[])).await {
                            Ok(Ok(row)) => {
                                let sample = Sample {
                                    node: i,
                                    conn: conn_ids[i],
                                    writable: row.get(0),
                                    at: row.get(1),
                                };
                                out.lock().map(|mut v| v.push(sample)).unwrap_or(());
                            }
                            _ => clients[i] = None,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        });
        Monitor {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    fn samples(&self) -> Vec<Sample> {
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The client host's writer: a thread inside the client namespace runs [`probe::Writer`] through the VIP's primary
/// port on its own runtime, so its sockets live there and it sees the VIP move like any application.
struct ClientWriter {
    writer: Arc<Mutex<Option<probe::Writer>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClientWriter {
    fn start(ns: String, vip: Ipv4Addr, password: String) -> ClientWriter {
        let writer = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (slot, halt) = (writer.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let path = format!("/run/netns/{ns}");
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            // SAFETY: setns on a namespace fd we hold open; CLONE_NEWNET changes only this thread's namespace.
            let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("writer runtime");
            rt.block_on(async {
                let target = pgha::bench::probe::Target {
                    nodes: vec![(vip.to_string(), 5432)],
                    user: "postgres".into(),
                    password,
                };
                let w = probe::Writer::start(target, "probe", 1);
                slot.lock().map(|mut s| *s = Some(w)).unwrap_or(());
                let started = Instant::now();
                while !halt.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(24 * 3600) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        });
        ClientWriter {
            writer,
            stop,
            thread: Some(thread),
        }
    }

    fn acked(&self) -> Vec<(i64, Instant)> {
        self.writer
            .lock()
            .ok()
            .and_then(|w| w.as_ref().map(|w| w.acked()))
            .unwrap_or_default()
    }
}

impl Drop for ClientWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The six hosts plus the client, the writer and the monitor.
struct Site {
    seed: u64,
    /// What runs now, for failure reports.
    current: String,
    writer: Option<ClientWriter>,
    monitor: Option<Monitor>,
    dbs: BTreeMap<String, NsChild>,
    edges: BTreeMap<String, NsChild>,
    runtime: tokio::runtime::Runtime,
    dcs: DcsClient,
    password: String,
    topo: Topology,
    dir: tempfile::TempDir,
}

impl Site {
    fn start(seed: u64) -> Site {
        let mut hosts: Vec<&str> = DBS.to_vec();
        hosts.extend(EDGES.iter().map(|(e, _)| *e));
        hosts.push("client");
        let topo = Topology::create(&hosts);
        let dir = tempfile::Builder::new()
            .prefix("pgha-faults-")
            .tempdir()
            .expect("tempdir");
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
        for d in DBS {
            let ip = topo.host(d).ip;
            let text = format!(
                "[cluster]\nname = \"demo\"\n\n[node]\nname = \"{d}\"\ndata_dir = \"{data}\"\n\n[dcs]\n\
                 listen = \"{ip}:{DCS_PORT}\"\npeers = {peers:?}\n\n[tls]\nplaintext = true\n\n[postgresql]\n\
                 listen = \"{ip}:5432\"\nsuperuser_password_file = \"{su}\"\nreplication_password_file = \"{rep}\"\n\n\
                 [ha]\nrest_listen = \"{ip}:8008\"\nsynchronous_mode = \"quorum\"\n",
                data = dir.path().join(d).display(),
                su = secrets.join("superuser").display(),
                rep = secrets.join("replication").display(),
            );
            std::fs::write(dir.path().join(format!("{d}.toml")), text).expect("write db config");
        }
        for (e, prio) in EDGES {
            let text = format!(
                "[cluster]\nname = \"demo\"\n\n[node]\nname = \"{e}\"\n\n[dcs]\nendpoints = {endpoints:?}\n\n\
                 [tls]\nplaintext = true\n\n[edge.vip]\naddress = \"{vip}/24\"\ninterface = \"{IFACE}\"\n\
                 priority = {prio}\n",
                vip = topo.addr(100),
            );
            std::fs::write(dir.path().join(format!("{e}.toml")), text).expect("write edge config");
        }
        let ctl =
            format!("[cluster]\nname = \"demo\"\n\n[dcs]\nendpoints = {endpoints:?}\n\n[tls]\nplaintext = true\n");
        std::fs::write(dir.path().join("ctl.toml"), ctl).expect("write ctl config");
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
            seed,
            current: "start".into(),
            writer: None,
            monitor: None,
            dbs: BTreeMap::new(),
            edges: BTreeMap::new(),
            runtime,
            dcs,
            password,
            topo,
            dir,
        };
        for d in DBS {
            site.start_node(d);
        }
        for (e, _) in EDGES {
            site.start_node(e);
        }
        site
    }

    /// Starts (or restarts) `pgha run` on host `name` with its role.
    fn start_node(&mut self, name: &str) {
        let exe = common::exe();
        let cfg = self.dir.path().join(format!("{name}.toml"));
        let role = if name.starts_with("db") { "db" } else { "edge" };
        let argv = [s(&exe), "run", "--role", role, "-c", s(&cfg)];
        let child = self.topo.spawn(name, &argv, &[], &self.log(name));
        let map = if role == "db" { &mut self.dbs } else { &mut self.edges };
        map.insert(name.to_string(), child);
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn child(&self, name: &str) -> &NsChild {
        self.dbs
            .get(name)
            .or_else(|| self.edges.get(name))
            .expect("a started host")
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

    /// Fails the run naming the step and the invariant (the logs are kept and shown by Drop).
    fn fail(&self, invariant: &str, detail: &str) -> ! {
        panic!(
            "seed {} {}: invariant violated: {invariant}: {detail}",
            self.seed, self.current
        );
    }

    /// Waits for a primary with two streaming replicas; its host name.
    fn wait_pg_cluster(&self) -> String {
        let keys = Keys::new("demo");
        let store = pgha::ha::store::Store {
            dcs: &self.dcs,
            keys: &keys,
        };
        let deadline = Instant::now() + SETTLE;
        let mut last = String::from("no view");
        while Instant::now() < deadline {
            if let Ok(view) = self.runtime.block_on(store.view()) {
                let states: Vec<String> = view
                    .members
                    .values()
                    .map(|m| format!("{}={:?}/{:?}", m.name, m.role, m.state))
                    .collect();
                last = states.join(" ");
                let streaming = view.members.values().filter(|m| m.state == PgState::Streaming).count();
                if let Some(l) = view.leader_member() {
                    if l.role == PgRole::Primary && streaming >= 2 {
                        return l.name.clone();
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.fail(
            "every db host rejoined (a leader and 2 streaming replicas)",
            &format!("not within {SETTLE:?}; last view: {last}"),
        );
    }

    /// Runs `pgha ctl ARGS`; (success, stderr).
    fn ctl(&self, args: &[&str]) -> (bool, String) {
        let cfg = self.dir.path().join("ctl.toml");
        let mut argv = vec!["ctl", "-c", s(&cfg)];
        argv.extend_from_slice(args);
        let run = common::pgha(
            &argv,
            &[("PGHA_DCS__REQUEST_TIMEOUT_MS", "10000")],
            Duration::from_secs(90),
        );
        (run.ok(), format!("{}{}", run.stdout, run.stderr))
    }

    /// Every invariant, once settled: all nodes back, one VIP holder, writes through the VIP, nothing acked lost,
    /// never two writable primaries so far. Returns (primary, VIP holder).
    fn settle_and_check(&self) -> (String, String) {
        let t0 = Instant::now();
        let primary = self.wait_pg_cluster();
        let dbs_back = t0.elapsed();
        let healthy = Instant::now() + SETTLE;
        loop {
            let h = self.view().published_healthy();
            if h.len() == EDGES.len() {
                break;
            }
            if Instant::now() > healthy {
                self.fail(
                    "every edge rejoined healthy",
                    &format!("only {h:?} healthy after {SETTLE:?}"),
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let edges_back = t0.elapsed();
        let holder = self
            .view()
            .settled_holder(&format!("seed {} {}", self.seed, self.current));
        eprintln!(
            "  db members back after {dbs_back:?}, edges healthy after {edges_back:?}, VIP settled after {:?}",
            t0.elapsed()
        );
        let writer = self.writer.as_ref().expect("writer");
        let before = writer.acked().len();
        let deadline = Instant::now() + SETTLE;
        while writer.acked().len() < before + 10 {
            if Instant::now() > deadline {
                self.fail(
                    "acknowledged writes through the VIP resume",
                    &format!("{} acks, none new within {SETTLE:?}", writer.acked().len()),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.check_nothing_lost(&primary);
        if let Some(two) = two_writable(&self.monitor.as_ref().expect("monitor").samples(), &DBS) {
            self.fail("never two writable primaries", &two);
        }
        (primary, holder)
    }

    /// Every id acknowledged so far is on `primary`.
    fn check_nothing_lost(&self, primary: &str) {
        let acked = self.writer.as_ref().expect("writer").acked();
        let ip = self.topo.host(primary).ip;
        let present = self.runtime.block_on(async {
            let c = connect(ip, &self.password).await?;
            let rows = tokio::time::timeout(
                Duration::from_secs(10),
                c.query("SELECT id FROM probe ORDER BY id", &[]),
            )
            .await
            .ok()?
            .ok()?;
            Some(rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<i64>>())
        });
        let Some(present) = present else {
            self.fail("no acknowledged write lost", &format!("cannot read probe on {primary}"));
        };
        let lost = probe::lost(&acked, &present);
        if !lost.is_empty() {
            self.fail(
                "no acknowledged write lost",
                &format!(
                    "{} of {} acked ids missing on {primary}: {lost:?}",
                    lost.len(),
                    acked.len()
                ),
            );
        }
    }

    /// Applies `step`'s faults on the hosts resolved from (primary, holder), holds, heals.
    fn run_step(&mut self, step: &Step, primary: &str, holder: &str) {
        let replica = DBS.iter().find(|d| **d != primary).expect("a replica").to_string();
        let standby = EDGES
            .iter()
            .map(|(e, _)| *e)
            .find(|e| *e != holder)
            .expect("a standby edge")
            .to_string();
        let mut healed: Vec<(Action, String)> = Vec::new();
        for f in &step.faults {
            let (action, host) = match f {
                Fault::Switchover => {
                    self.switchover(primary);
                    continue;
                }
                Fault::Db(a, DbTarget::Primary) => (*a, primary.to_string()),
                Fault::Db(a, DbTarget::Replica) => (*a, replica.clone()),
                Fault::Edge(a, EdgeTarget::Holder) => (*a, holder.to_string()),
                Fault::Edge(a, EdgeTarget::Standby) => (*a, standby.clone()),
            };
            eprintln!("  {action:?} {host}");
            match action {
                Action::Kill => self.kill_host(&host),
                Action::Freeze => self.child(&host).signal(libc::SIGSTOP),
                Action::Partition => self.topo.cut(&host),
            }
            healed.push((action, host));
        }
        // The fault's duration is the scenario itself, not a wait for a condition.
        std::thread::sleep(step.hold);
        for (action, host) in healed {
            match action {
                Action::Kill => self.start_node(&host),
                Action::Freeze => self.child(&host).signal(libc::SIGCONT),
                Action::Partition => self.topo.restore(&host),
            }
        }
    }

    /// SIGKILL every process of the host (pgha, PostgreSQL, fencers): a host crash.
    fn kill_host(&mut self, host: &str) {
        if let Some(c) = self.dbs.get_mut(host).or_else(|| self.edges.get_mut(host)) {
            c.kill();
        }
        for _ in 0..50 {
            let pids = self.topo.pids(host);
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: kill(2) on a PID inside this test's own namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `ctl switchover --force` (retried while a synchronous standby is not recorded yet), then waits for the leader to
    /// change.
    fn switchover(&self, primary: &str) {
        eprintln!("  switchover away from {primary}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (ok, out) = self.ctl(&["switchover", "--force"]);
            if ok {
                break;
            }
            if Instant::now() > deadline {
                self.fail("a switchover succeeds on a healthy cluster", &out);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let deadline = Instant::now() + SETTLE;
        while self.wait_pg_cluster() == primary {
            if Instant::now() > deadline {
                self.fail("a switchover moves the leader", &format!("{primary} still leads"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        // Writer and monitor first: their threads sit in (or talk to) the namespaces about to go.
        self.writer = None;
        self.monitor = None;
        let failed = std::thread::panicking();
        if failed || std::env::var_os("PGHA_FAULT_KEEP_LOGS").is_some() {
            let keep = std::env::temp_dir().join(format!("pgha-fault-logs-{}-{}", self.seed, std::process::id()));
            let _ = std::fs::create_dir_all(&keep);
            let what = if failed { "failed during" } else { "finished" };
            eprintln!(
                "=== seed {} {what} {}; logs kept in {}",
                self.seed,
                self.current,
                keep.display()
            );
            let mut names: Vec<&str> = DBS.to_vec();
            names.extend(EDGES.iter().map(|(e, _)| *e));
            for n in names {
                let text = std::fs::read_to_string(self.log(n)).unwrap_or_default();
                let _ = std::fs::write(keep.join(format!("{n}.log")), &text);
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                eprintln!("--- {} (tail)\n{tail}", keep.join(format!("{n}.log")).display());
            }
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a non-negative integer")),
    )
}

#[test]
fn seeded_faults_keep_the_invariants() {
    if !netns::root_or_skip("seeded_faults_keep_the_invariants") || db::skip_without_pg() {
        return;
    }
    let seed = env_number("PGHA_FAULT_SEED").unwrap_or(DEFAULT_SEED);
    let duration = env_number("PGHA_FAULT_DURATION_S").map(Duration::from_secs);
    let steps = env_number("PGHA_FAULT_STEPS")
        .map(|n| n as usize)
        .unwrap_or(if duration.is_some() { 100_000 } else { DEFAULT_STEPS });
    let plan = fault_schedule::schedule(seed, steps);
    assert_eq!(fault_schedule::violation(&plan, EDGES.len()), None);
    eprintln!("fault suite: PGHA_FAULT_SEED={seed}, {steps} steps, duration {duration:?}");
    let t0 = Instant::now();
    let mut site = Site::start(seed);
    let primary = site.wait_pg_cluster();
    let ip = site.topo.host(&primary).ip;
    let pw = site.password.clone();
    let created = site.runtime.block_on(async {
        let deadline = Instant::now() + SETTLE;
        // Retried: in synchronous mode the commit may wait until the leader has recorded a synchronous standby.
        while Instant::now() < deadline {
            if let Some(c) = connect(ip, &pw).await {
                let sql = "CREATE TABLE IF NOT EXISTS probe (id bigint PRIMARY KEY)";
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), c.execute(sql, &[])).await {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });
    if !created {
        site.fail("the probe table is created", "no commit on the primary");
    }
    site.monitor = Some(Monitor::start(
        DBS.iter().map(|d| site.topo.host(d).ip).collect(),
        pw.clone(),
    ));
    site.writer = Some(ClientWriter::start(
        site.topo.host("client").ns.clone(),
        site.topo.addr(100),
        pw,
    ));
    let (mut primary, mut holder) = site.settle_and_check();
    eprintln!("ready after {:?}: primary {primary}, VIP on {holder}", t0.elapsed());
    let mut done = 0;
    for (i, step) in plan.iter().enumerate() {
        if duration.is_some_and(|d| t0.elapsed() >= d) {
            break;
        }
        site.current = format!("step {}/{} ({step})", i + 1, plan.len());
        eprintln!("{}: primary {primary}, VIP on {holder}", site.current);
        let s0 = Instant::now();
        site.run_step(step, &primary, &holder);
        (primary, holder) = site.settle_and_check();
        eprintln!("  settled in {:?}: primary {primary}, VIP on {holder}", s0.elapsed());
        done += 1;
    }
    site.current = "final check".into();
    let acked = site.writer.as_ref().expect("writer").acked();
    site.writer = None;
    site.check_final(&primary, &acked);
    eprintln!(
        "fault suite: seed {seed}, {done} steps, {} acknowledged writes, none lost, never two writable primaries, \
         {} monitor samples, in {:?}",
        acked.len(),
        site.monitor.as_ref().map(|m| m.samples().len()).unwrap_or(0),
        t0.elapsed()
    );
}

impl Site {
    /// The end: the writer stopped, every acked id on the final primary, no two writable primaries in the whole run.
    fn check_final(&self, primary: &str, acked: &[(i64, Instant)]) {
        if acked.len() < 50 {
            self.fail("the writer made progress", &format!("only {} acks", acked.len()));
        }
        let ip = self.topo.host(primary).ip;
        let present = self.runtime.block_on(async {
            let c = connect(ip, &self.password).await?;
            let rows = c.query("SELECT id FROM probe ORDER BY id", &[]).await.ok()?;
            Some(rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<i64>>())
        });
        let present =
            present.unwrap_or_else(|| self.fail("no acknowledged write lost", "cannot read the final primary"));
        let lost = probe::lost(acked, &present);
        if !lost.is_empty() {
            self.fail("no acknowledged write lost", &format!("{lost:?} missing on {primary}"));
        }
        if let Some(two) = two_writable(&self.monitor.as_ref().expect("monitor").samples(), &DBS) {
            self.fail("never two writable primaries", &two);
        }
    }
}

#[test]
fn overlapping_writable_runs_are_two_primaries() {
    let x = |node, conn, at, writable| Sample {
        node,
        conn,
        at,
        writable,
    };
    // db1 writable 0..2 on one connection, db2 from 3: a clean handover.
    let clean = [
        x(0, 1, 0.0, true),
        x(1, 1, 0.5, false),
        x(0, 1, 2.0, true),
        x(1, 1, 3.0, true),
    ];
    assert_eq!(two_writable(&clean, &DBS), None);
    // db2 writable at 1.0 inside db1's run 0..2: two primaries.
    let two = [x(0, 1, 0.0, true), x(1, 1, 1.0, true), x(0, 1, 2.0, true)];
    assert!(two_writable(&two, &DBS).is_some_and(|m| m.contains("db1") && m.contains("db2")));
    // A new connection breaks the run (db1 restarted in between): no proof of overlap.
    let restarted = [x(0, 1, 0.0, true), x(1, 1, 1.0, true), x(0, 2, 2.0, true)];
    assert_eq!(two_writable(&restarted, &DBS), None);
    // A read-only answer breaks the run too.
    let demoted = [
        x(0, 1, 0.0, true),
        x(0, 1, 0.9, false),
        x(1, 1, 1.0, true),
        x(0, 1, 2.0, false),
    ];
    assert_eq!(two_writable(&demoted, &DBS), None);
}
