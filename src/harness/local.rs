//! A cluster of `pgha` processes on 127.0.0.1 (configs, certificates, ports, logs), used by `pgha demo`,
//! `pgha bench` and the integration tests. Every child is ended by PID when the cluster is dropped.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Role;
use crate::dcs::client::DcsClient;
use crate::identity::CertRole;
use crate::tls::{NodeTls, TlsFiles};

use super::probe::Target;
use super::spec::{ClusterSpec, EdgeListen, EdgeSpec, MemberSpec};
use super::topology::Topology;

use super::error::io;
pub use super::error::HarnessError;

/// The harness's error, by its old name.
pub type LocalError = HarnessError;

/// One node of the local cluster.
#[derive(Debug, Serialize)]
pub struct LocalNode {
    pub name: String,
    pub role: Role,
    /// gRPC address (DCS members).
    pub dcs_addr: String,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// The exact command line that (re)starts this node.
    pub argv: Vec<String>,
    pub pid: Option<u32>,
    /// PostgreSQL port (db nodes).
    pub pg_port: Option<u16>,
    /// PostgreSQL data directory (db nodes).
    pub pg_data: Option<PathBuf>,
    /// Port of the node's HTTP API: the Patroni-compatible REST API (db nodes), `/metrics`, `/health` and
    /// `/readiness` (witnesses).
    pub rest_port: Option<u16>,
    /// Ports of an edge.
    pub edge: Option<LocalEdgePorts>,
    #[serde(skip)]
    child: Option<Child>,
}

/// The loopback ports of a local edge.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LocalEdgePorts {
    pub primary: u16,
    pub replica: u16,
    pub any: u16,
    pub status: u16,
}

/// A local cluster; dropping it kills every node it started.
pub struct LocalCluster {
    pub dir: PathBuf,
    pub nodes: Vec<LocalNode>,
    /// Edges (`pgha run --role edge`) following the cluster; not DCS members, so kept apart from `nodes`.
    pub edges: Vec<LocalNode>,
    pub tls: bool,
    /// What every config is rendered from (kept for nodes and edges added later).
    spec: ClusterSpec,
    _temp: Option<tempfile::TempDir>,
}

pub use super::spec::Layout;

/// Reserves `n` distinct free ports on 127.0.0.1 for the children (see [`crate::ports`]).
pub fn free_ports(n: usize) -> Result<Vec<u16>, LocalError> {
    crate::ports::free_ports(n).map_err(io("reserving ports"))
}

impl LocalCluster {
    /// Lays out `members` voter nodes under `dir` (a temporary directory when None). `extra_dcs` is appended to
    /// every node's `[dcs]` section (tests use it for timing).
    pub fn create(
        exe: &Path,
        dir: Option<&Path>,
        members: usize,
        role: Role,
        tls: bool,
        extra_dcs: &str,
    ) -> Result<LocalCluster, LocalError> {
        let layout = Layout {
            extra_dcs: extra_dcs.to_string(),
            ..Layout::default()
        };
        LocalCluster::create_with(exe, dir, members, role, tls, layout)
    }

    /// Like [`LocalCluster::create`] with a full [`Layout`]. Db nodes also get a PostgreSQL port, data directory
    /// and password files (generated once per cluster under `dir/secrets`).
    pub fn create_with(
        exe: &Path,
        dir: Option<&Path>,
        members: usize,
        role: Role,
        tls: bool,
        layout: Layout,
    ) -> Result<LocalCluster, LocalError> {
        let temp = match dir {
            Some(_) => None,
            None => Some(
                tempfile::Builder::new()
                    .prefix("pgha-")
                    .tempdir()
                    .map_err(io("creating a temp dir"))?,
            ),
        };
        let dir = match (&temp, dir) {
            (Some(t), _) => t.path().to_path_buf(),
            (None, Some(d)) => d.to_path_buf(),
            (None, None) => unreachable!("one of the two is set above"),
        };
        fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let dir = dir.canonicalize().map_err(io(format!("resolving {}", dir.display())))?;
        // PostgreSQL runs as its own OS user when we are root: it must be able to traverse to its data directory.
        if is_root() {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io("opening the cluster dir"))?;
        }
        if role == Role::Db {
            write_secrets(&dir)?;
        }
        let ports = free_ports(members)?;
        let names: Vec<String> = (1..=members).map(|i| format!("node{i}")).collect();
        let certs = dir.join("certs");
        if tls {
            crate::cert::init_ca(&certs, "demo", 30, true)?;
            let localhost = [std::net::IpAddr::from([127, 0, 0, 1])];
            // One role certificate per node, named as the node (peers check it), and an admin one for ctl.
            let node_role = crate::node::own_cert::needed(role);
            for name in &names {
                crate::cert::issue(&certs, node_role, name, &localhost, &["localhost".into()], 30)?;
            }
            crate::cert::issue(&certs, CertRole::Admin, "ctl", &localhost, &["localhost".into()], 30)?;
        }
        let mut spec = ClusterSpec {
            name: "demo".into(),
            certs: tls.then(|| certs.clone()),
            secrets: dir.join("secrets"),
            layout,
            members: Vec::new(),
        };
        // Every member first, so that every config names all of them as peers.
        for (name, port) in names.iter().zip(&ports) {
            spec.members.push(member_spec(&dir, name, *port, role)?);
        }
        let mut nodes = Vec::new();
        for m in &spec.members {
            nodes.push(write_node(exe, &dir, &spec, m)?);
        }
        Ok(LocalCluster {
            dir,
            nodes,
            edges: Vec::new(),
            tls,
            spec,
            _temp: temp,
        })
    }

    /// Starts node `i` (appending its output to its log file).
    pub fn start(&mut self, i: usize) -> Result<(), LocalError> {
        spawn(&mut self.nodes[i], self.spec.layout.fault_injection)
    }

    /// Lays out edge `edge<N>` following this cluster on loopback ports (`extra_edge` is appended to its `[edge]`
    /// section, e.g. `primary_wait_ms = 10000`); not started. Returns its index in `edges`.
    pub fn add_edge(&mut self, extra_edge: &str) -> Result<usize, LocalError> {
        let exe = self.nodes.first().map(|n| PathBuf::from(&n.argv[0])).ok_or_else(|| {
            io("adding an edge")(std::io::Error::other("the cluster has no node to copy settings from"))
        })?;
        let name = format!("edge{}", self.edges.len() + 1);
        let p = free_ports(4)?;
        let ports = LocalEdgePorts {
            primary: p[0],
            replica: p[1],
            any: p[2],
            status: p[3],
        };
        if self.tls {
            let localhost = [std::net::IpAddr::from([127, 0, 0, 1])];
            let certs = self.dir.join("certs");
            crate::cert::issue(&certs, CertRole::Edge, &name, &localhost, &["localhost".into()], 30)?;
        }
        let node_dir = self.dir.join(&name);
        fs::create_dir_all(&node_dir).map_err(io(format!("creating {}", node_dir.display())))?;
        let loopback = |port: u16| format!("127.0.0.1:{port}");
        let text = self.spec.render_edge(&EdgeSpec {
            name: name.clone(),
            listen: Some(EdgeListen {
                primary: loopback(ports.primary),
                replica: loopback(ports.replica),
                any: loopback(ports.any),
                status: loopback(ports.status),
            }),
            edge_lines: extra_edge.to_string(),
            vip: None,
        });
        let config = node_dir.join("pgha.toml");
        fs::write(&config, text).map_err(io(format!("writing {}", config.display())))?;
        let argv = vec![
            exe.display().to_string(),
            "run".into(),
            "--role".into(),
            "edge".into(),
            "-c".into(),
            config.display().to_string(),
        ];
        self.edges.push(LocalNode {
            name,
            role: Role::Edge,
            dcs_addr: String::new(),
            data_dir: node_dir.clone(),
            config,
            log: node_dir.join("pgha.log"),
            argv,
            pid: None,
            pg_port: None,
            pg_data: None,
            rest_port: None,
            edge: Some(ports),
            child: None,
        });
        Ok(self.edges.len() - 1)
    }

    /// Starts edge `i`.
    pub fn start_edge(&mut self, i: usize) -> Result<(), LocalError> {
        spawn(&mut self.edges[i], false)
    }

    /// Sends `signal` to edge `i` by PID.
    pub fn signal_edge(&self, i: usize, signal: libc::c_int) {
        send_signal(&self.edges[i], signal);
    }

    /// SIGTERMs edge `i`, waits up to `grace` for it to exit; returns its exit status (None if it had to be killed).
    pub fn stop_edge(&mut self, i: usize, grace: Duration) -> Option<std::process::ExitStatus> {
        self.signal_edge(i, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        let edge = &mut self.edges[i];
        while Instant::now() < deadline {
            match edge.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => {
                    edge.child = None;
                    edge.pid = None;
                    return Some(status);
                }
                Some(Ok(None)) => std::thread::sleep(Duration::from_millis(20)),
                _ => break,
            }
        }
        reap(edge);
        None
    }
}

/// True when the edge status server on 127.0.0.1:`port` answers `/health` with 200.
pub async fn edge_healthy(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200"))
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), ask).await, Ok(Some(true)))
}

impl LocalCluster {
    /// Polls until edge `i` reports itself healthy (its view is fresh and its ports listen).
    pub async fn wait_edge_healthy(&self, i: usize, timeout: Duration) -> bool {
        let Some(ports) = self.edges[i].edge else { return false };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if edge_healthy(ports.status).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// Starts `node` (appending its output to its log file).
fn spawn(node: &mut LocalNode, fault_injection: bool) -> Result<(), LocalError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .map_err(io("opening the node log"))?;
    let err_log = log.try_clone().map_err(io("opening the node log"))?;
    let mut command = Command::new(&node.argv[0]);
    if fault_injection {
        command.env("PGHA_FAULT_INJECTION", "1");
    }
    let child = command
        .args(&node.argv[1..])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .spawn()
        .map_err(io(format!("starting {}", node.argv[0])))?;
    node.pid = Some(child.id());
    node.child = Some(child);
    Ok(())
}

/// Sends `signal` to `node` by PID, if we started it and have not reaped it.
fn send_signal(node: &LocalNode, signal: libc::c_int) {
    if let Some(pid) = node.child.as_ref().map(Child::id) {
        // SAFETY: kill(2) on the PID of a child we spawned and have not yet reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

/// SIGKILLs `node` and reaps it.
fn reap(node: &mut LocalNode) {
    send_signal(node, libc::SIGKILL);
    if let Some(mut child) = node.child.take() {
        let _ = child.wait();
    }
    node.pid = None;
}

impl LocalCluster {
    /// Starts every node.
    pub fn start_all(&mut self) -> Result<(), LocalError> {
        (0..self.nodes.len()).try_for_each(|i| self.start(i))
    }

    /// Lays out one more node (`node<N+1>`, same role, binary and `[dcs]` extras as node 0, plus a certificate when
    /// TLS is on) whose `dcs.peers` are the existing nodes plus itself; it is not started. Started with empty storage,
    /// it joins the running cluster on its own (see `dcs::bootstrap`). Returns its index.
    pub fn add_node(&mut self) -> Result<usize, LocalError> {
        let role = self.nodes.first().map_or(Role::Witness, |n| n.role);
        self.add_node_as(role)
    }

    /// Like [`LocalCluster::add_node`] in `role` (e.g. a witness beside db nodes).
    pub fn add_node_as(&mut self, role: Role) -> Result<usize, LocalError> {
        let Some(first) = self.nodes.first() else {
            return Err(io("adding a node")(std::io::Error::other(
                "the cluster has no node to copy settings from",
            )));
        };
        let exe = PathBuf::from(&first.argv[0]);
        let name = format!("node{}", self.nodes.len() + 1);
        let port = free_ports(1)?[0];
        if self.tls {
            let localhost = [std::net::IpAddr::from([127, 0, 0, 1])];
            let certs = self.dir.join("certs");
            crate::cert::issue(
                &certs,
                crate::node::own_cert::needed(role),
                &name,
                &localhost,
                &["localhost".into()],
                30,
            )?;
        }
        // Its peers: the existing nodes and itself (their own configs are not rewritten: it joins them).
        let member = member_spec(&self.dir, &name, port, role)?;
        self.spec.members.push(member.clone());
        let node = write_node(&exe, &self.dir, &self.spec, &member)?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// True while node `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.nodes[i].child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends `signal` to node `i` by PID.
    pub fn signal(&self, i: usize, signal: libc::c_int) {
        send_signal(&self.nodes[i], signal);
    }

    /// SIGKILLs node `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        reap(&mut self.nodes[i]);
    }

    /// SIGTERMs node `i`, waits up to `grace`, then SIGKILLs it.
    pub fn stop(&mut self, i: usize, grace: Duration) {
        self.signal(i, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.is_running(i) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill(i);
    }

    /// Stops every node (SIGTERM, then SIGKILL after `grace`).
    pub fn stop_all(&mut self, grace: Duration) {
        for i in 0..self.nodes.len() {
            self.signal(i, libc::SIGTERM);
        }
        for i in 0..self.nodes.len() {
            self.stop(i, grace);
        }
    }

    /// TLS client settings for ctl-like clients of this cluster.
    pub fn client_tls(&self) -> Result<Option<tonic::transport::ClientTlsConfig>, LocalError> {
        if !self.tls {
            return Ok(None);
        }
        let certs = self.dir.join("certs");
        let files = TlsFiles {
            ca: certs.join("ca.pem"),
            cert: certs.join("ctl.pem"),
            key: certs.join("ctl-key.pem"),
        };
        Ok(Some(NodeTls::load(&files)?.client_config()))
    }

    /// A client of the given nodes (all when `only` is None).
    pub fn client_of(&self, only: Option<&[usize]>, timeout: Duration) -> Result<DcsClient, LocalError> {
        let endpoints = match only {
            Some(list) => list.iter().map(|i| self.nodes[*i].dcs_addr.clone()).collect(),
            None => self.nodes.iter().map(|n| n.dcs_addr.clone()).collect(),
        };
        Ok(DcsClient::new(endpoints, self.client_tls()?, timeout)?)
    }

    /// A client of every node.
    pub fn client(&self, timeout: Duration) -> Result<DcsClient, LocalError> {
        self.client_of(None, timeout)
    }

    /// Polls until a node reports itself Raft leader; returns its index.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<usize, LocalError> {
        let client = self.client(Duration::from_millis(500))?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            for (i, node) in self.nodes.iter().enumerate() {
                if node.child.is_none() {
                    continue;
                }
                if let Ok(s) = client.status_of(&node.dcs_addr, Duration::from_millis(300)).await {
                    if s.state == "Leader" && s.has_leader && s.leader_id == s.id {
                        return Ok(i);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(HarnessError::NotReady(timeout, "a Raft leader".into()))
    }

    /// Polls until the PostgreSQL cluster has a leader running as primary and `replicas` streaming replicas;
    /// returns the leader's name.
    pub async fn wait_pg_cluster(&self, replicas: usize, timeout: Duration) -> Result<String, LocalError> {
        self.wait_pg_cluster_showing(replicas, timeout, None).await
    }

    /// [`LocalCluster::wait_pg_cluster`], printing each member's changes to `progress` on the way (`pgha demo`).
    pub async fn wait_pg_cluster_showing(
        &self,
        replicas: usize,
        timeout: Duration,
        progress: Option<&mut crate::ctl::progress::Progress>,
    ) -> Result<String, LocalError> {
        let client = self.client(Duration::from_secs(2))?;
        let keys = crate::cluster::keys::Keys::new("demo");
        let store = crate::cluster::store::Store {
            dcs: &client,
            keys: &keys,
        };
        let view = || async { Ok(store.view().await?) };
        super::topology::wait_primary_with(view, replicas, timeout, progress).await
    }

    /// Writes `ctl.toml` (endpoints + TLS) into the cluster directory.
    pub fn write_ctl_config(&self) -> Result<PathBuf, LocalError> {
        let text = self.spec.render_ctl();
        let path = self.dir.join("ctl.toml");
        fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
        Ok(path)
    }

    /// Writes `demo.json`: every node's name, role, pid, addresses, data dir and restart argv.
    pub fn write_manifest(&self) -> Result<PathBuf, LocalError> {
        let path = self.dir.join("demo.json");
        let manifest =
            serde_json::json!({ "dir": self.dir, "tls": self.tls, "nodes": self.nodes, "edges": self.edges });
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| io("encoding demo.json")(e.into()))?;
        let mut file = File::create(&path).map_err(io(format!("writing {}", path.display())))?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io(format!("writing {}", path.display())))?;
        Ok(path)
    }
}

/// The spec of member `name` under `dir/<name>` on loopback: its DCS port, and PostgreSQL and REST ports (db) or an
/// HTTP port (witness).
fn member_spec(dir: &Path, name: &str, port: u16, role: Role) -> Result<MemberSpec, LocalError> {
    let node_dir = dir.join(name);
    let pg_listen = match role {
        Role::Db => Some(format!("127.0.0.1:{}", free_ports(1)?[0])),
        _ => None,
    };
    let http_listen = match role {
        Role::Db | Role::Witness => Some(format!("127.0.0.1:{}", free_ports(1)?[0])),
        Role::Edge => None,
    };
    Ok(MemberSpec {
        name: name.to_string(),
        role,
        data_dir: node_dir.join("data"),
        dcs_listen: format!("127.0.0.1:{port}"),
        pg_listen,
        pg_data_dir: None,
        http_listen,
    })
}

fn port_of(addr: Option<&str>) -> Option<u16> {
    addr?.rsplit_once(':')?.1.parse().ok()
}

/// Writes member `m`'s config under `dir/<name>` and returns its node (not started).
fn write_node(exe: &Path, dir: &Path, spec: &ClusterSpec, m: &MemberSpec) -> Result<LocalNode, LocalError> {
    let node_dir = dir.join(&m.name);
    fs::create_dir_all(&node_dir).map_err(io(format!("creating {}", node_dir.display())))?;
    let config = node_dir.join("pgha.toml");
    fs::write(&config, spec.render_member(m)).map_err(io(format!("writing {}", config.display())))?;
    let argv = vec![
        exe.display().to_string(),
        "run".into(),
        "--role".into(),
        m.role.as_str().into(),
        "-c".into(),
        config.display().to_string(),
    ];
    let pg_port = port_of(m.pg_listen.as_deref());
    Ok(LocalNode {
        name: m.name.clone(),
        role: m.role,
        dcs_addr: m.dcs_listen.clone(),
        data_dir: m.data_dir.clone(),
        config,
        log: node_dir.join("pgha.log"),
        argv,
        pid: None,
        pg_port,
        pg_data: pg_port.map(|_| m.data_dir.join("pgdata")),
        rest_port: port_of(m.http_listen.as_deref()),
        edge: None,
        child: None,
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Random superuser and replication passwords for a local cluster, in 0600 files.
fn write_secrets(dir: &Path) -> Result<(), LocalError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let secrets = dir.join("secrets");
    fs::create_dir_all(&secrets).map_err(io("creating the secrets dir"))?;
    for name in ["superuser", "replication"] {
        let path = secrets.join(name);
        if path.exists() {
            continue;
        }
        let password: String = (0..24).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect();
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(format!("writing {}", path.display())))?;
        writeln!(file, "{password}").map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

impl LocalCluster {
    /// Cuts node `i` off from its peers (needs [`Layout::fault_injection`]).
    pub fn partition(&self, i: usize) -> Result<(), LocalError> {
        let file = self.nodes[i].data_dir.join("fault.partition");
        fs::write(&file, b"partitioned by a test\n").map_err(io(format!("writing {}", file.display())))
    }

    /// Ends the partition of node `i`.
    pub fn heal(&self, i: usize) -> Result<(), LocalError> {
        let file = self.nodes[i].data_dir.join("fault.partition");
        fs::remove_file(&file).map_err(io(format!("removing {}", file.display())))
    }

    /// PID of node `i`'s postmaster, if it runs.
    pub fn postmaster_pid(&self, i: usize) -> Option<i32> {
        let pid = self.nodes[i]
            .pg_data
            .as_deref()
            .and_then(crate::postgres::postmaster_pid)?;
        i32::try_from(pid).ok()
    }

    /// Sends `signal` to node `i`'s postmaster (started by its pgha, so ours to end).
    pub fn signal_postgres(&self, i: usize, signal: libc::c_int) -> bool {
        match self.postmaster_pid(i) {
            // SAFETY: kill(2) on the postmaster of a data directory this cluster owns.
            Some(pid) => unsafe { libc::kill(pid, signal) == 0 },
            None => false,
        }
    }

    /// Immediate shutdown of node `i`'s PostgreSQL (SIGQUIT), then SIGKILL if it lingers.
    pub fn stop_postgres(&self, i: usize) {
        let Some(pid) = self.postmaster_pid(i) else { return };
        self.signal_postgres(i, libc::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(5);
        // SAFETY: signal 0 only checks that the process exists.
        while Instant::now() < deadline && unsafe { libc::kill(pid, 0) } == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_postgres(i, libc::SIGKILL);
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for edge in &mut self.edges {
            reap(edge);
        }
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        for i in 0..self.nodes.len() {
            self.stop_postgres(i);
        }
        drop(DeadlineFiles::of(self.nodes.iter().map(|n| n.data_dir.as_path())));
    }
}

/// The db members' fence deadline files, removed when dropped: they live on the host's tmpfs
/// (`fence::deadline_dir`), outside the cluster's directory, and a member that was killed leaves its own behind.
pub struct DeadlineFiles(Vec<PathBuf>);

impl DeadlineFiles {
    /// The files of the members whose data directories are `data_dirs`.
    pub fn of<'a>(data_dirs: impl IntoIterator<Item = &'a Path>) -> DeadlineFiles {
        DeadlineFiles(data_dirs.into_iter().map(crate::fence::db_deadline_path).collect())
    }
}

impl Drop for DeadlineFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = fs::remove_file(f);
        }
    }
}

impl LocalCluster {
    /// The index of node `name`.
    pub fn index_of(&self, name: &str) -> Result<usize, HarnessError> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| HarnessError::NoHost(name.to_string()))
    }

    /// The superuser on every db node, tried in order (libpq multi-host).
    pub fn superuser_target(&self) -> Result<Target, HarnessError> {
        let file = self.dir.join("secrets/superuser");
        let password = fs::read_to_string(&file).map_err(io(format!("reading {}", file.display())))?;
        let nodes = self
            .nodes
            .iter()
            .filter_map(|n| n.pg_port.map(|p| ("127.0.0.1".to_string(), p)))
            .collect();
        Ok(Target {
            nodes,
            user: "postgres".into(),
            password: password.trim().to_string(),
        })
    }
}

impl Topology for LocalCluster {
    fn members(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn start_member(&mut self, member: &str) -> Result<(), HarnessError> {
        let i = self.index_of(member)?;
        // A pgha still shutting down is waited for (then killed), and a PostgreSQL left by a killed pgha is ended:
        // the restarted pgha starts its own.
        self.stop(i, Duration::from_secs(30));
        self.stop_postgres(i);
        self.start(i)
    }

    async fn kill_member(&mut self, member: &str) -> Result<(), HarnessError> {
        let i = self.index_of(member)?;
        self.kill(i);
        self.signal_postgres(i, libc::SIGKILL);
        Ok(())
    }

    fn signal_member(&self, member: &str, signal: libc::c_int) -> Result<(), HarnessError> {
        self.signal(self.index_of(member)?, signal);
        Ok(())
    }

    fn signal_postgres(&self, member: &str, signal: libc::c_int) -> bool {
        self.index_of(member)
            .is_ok_and(|i| LocalCluster::signal_postgres(self, i, signal))
    }

    fn write_target(&self) -> Result<Target, HarnessError> {
        self.superuser_target()
    }

    fn read_target(&self) -> Option<Target> {
        None
    }

    fn direct_target(&self) -> Result<Target, HarnessError> {
        self.superuser_target()
    }

    fn logs(&self) -> Vec<(String, PathBuf)> {
        self.nodes
            .iter()
            .chain(&self.edges)
            .map(|n| (n.name.clone(), n.log.clone()))
            .collect()
    }

    async fn view(&self) -> Result<crate::cluster::model::ClusterView, HarnessError> {
        let client = self.client(Duration::from_secs(2))?;
        let keys = crate::cluster::keys::Keys::new(&self.spec.name);
        let store = crate::cluster::store::Store {
            dcs: &client,
            keys: &keys,
        };
        Ok(store.view().await?)
    }

    fn dcs_client(&self) -> Result<Box<dyn std::ops::Deref<Target = DcsClient> + '_>, HarnessError> {
        Ok(Box::new(Box::new(self.client(Duration::from_secs(5))?)))
    }

    fn client_ns(&self) -> Result<Option<String>, HarnessError> {
        Ok(None)
    }

    fn edges(&self) -> Vec<String> {
        self.edges.iter().map(|e| e.name.clone()).collect()
    }

    // One client for the whole wait instead of one per poll.
    async fn wait_primary_with(&self, replicas: usize, timeout: Duration) -> Result<String, HarnessError> {
        self.wait_pg_cluster(replicas, timeout).await
    }
}
