//! The seeds' six-host topology on one machine: db1..db3 (`pgha run --role db` + PostgreSQL), edge1..edge3
//! (`--role edge` holding the VIP) and a client host, in network namespaces on an isolated bridge, with mutual TLS.
//!
//! Everything is torn down when the value drops (on success, error, panic, or a Ctrl-C that ends the owner's
//! future): the [`Topology`] SIGTERMs then SIGKILLs every process in the namespaces, and removes them and the bridge;
//! the temporary directory goes last. PostgreSQL itself runs without TLS (`[postgresql] tls = false`) so the probe
//! can connect without a client certificate; the bridge has no uplink, and pgha's own traffic (DCS, REST) uses mTLS.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cluster::keys::Keys;
use crate::cluster::model::ClusterView;
use crate::cluster::store::Store;
use crate::dcs::client::DcsClient;
use crate::netns::{NsChild, IFACE};

use crate::tls::{NodeTls, TlsFiles};

use super::pg_disk::PgDisk;
use super::probe::Target;
use super::spec::{ClusterSpec, EdgeSpec, Layout, MemberSpec, VipSpec};
use super::topology::{read_from, Topology};
use crate::config::Role;

/// The db hosts.
pub const DBS: [&str; 3] = ["db1", "db2", "db3"];
/// The edge hosts and their VIP priorities.
pub const EDGES: [(&str, u32); 3] = [("edge1", 100), ("edge2", 50), ("edge3", 10)];
/// The client host.
pub const CLIENT: &str = "client";
/// The cluster name.
pub const CLUSTER: &str = "demo";
const DCS_PORT: u16 = 2379;
/// The PostgreSQL port on db hosts and the edges' primary port on the VIP.
pub const PG_PORT: u16 = 5432;
/// The edges' replica port (their default `edge.replica_listen`).
pub const REPLICA_PORT: u16 = 5433;
/// Host part of the VIP in the topology's /24.
const VIP_LAST: u8 = 100;

use super::error::io;
pub use super::error::HarnessError;

/// The harness's error, by its old name.
pub type SixHostsError = HarnessError;

/// How to build the topology.
#[derive(Clone, Debug, Default)]
pub struct SixHostsOptions {
    /// The `pgha` binary to run on every host.
    pub exe: PathBuf,
    /// Where configs, data and logs go (a temporary directory, removed at the end, when None).
    pub dir: Option<PathBuf>,
    /// Extra lines of the db hosts' `[ha]` section (e.g. `synchronous_mode = "quorum"`).
    pub ha_lines: String,
    /// Extra lines of the edge hosts' `[edge.vip]` section (e.g. `ttl_ms = 500`).
    pub vip_lines: String,
    /// Each db host's PostgreSQL data directory on its own tmpfs of this many MiB ([`PgDisk`], so it can be filled),
    /// instead of under the host's directory.
    pub pg_disk_mib: Option<u64>,
}

/// What [`SixHosts::wait_ready`] found.
#[derive(Clone, Debug)]
pub struct Ready {
    /// The primary's host.
    pub primary: String,
    /// The edge holding the VIP.
    pub vip_holder: String,
}

/// The running topology; see the module doc.
pub struct SixHosts {
    // Field order is drop order: the topology stops every process (SIGTERM first) before the children are reaped
    // and before the directory holding their data goes.
    pub topo: crate::netns::Topology,
    procs: BTreeMap<String, NsChild>,
    // Removed once every process is gone.
    _deadlines: super::local::DeadlineFiles,
    // Unmounted once every process is gone, before the directory holding them is removed.
    disks: BTreeMap<String, PgDisk>,
    dcs: DcsClient,
    /// The `pgha` binary every host runs.
    exe: PathBuf,
    pub dir: PathBuf,
    pub password: String,
    _temp: Option<tempfile::TempDir>,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

impl SixHosts {
    /// Lays out certificates and configs and starts every pgha process. Must run inside a tokio runtime (the DCS
    /// client's channels are built on it).
    pub fn start(opts: &SixHostsOptions) -> Result<SixHosts, SixHostsError> {
        let mut hosts: Vec<&str> = DBS.to_vec();
        hosts.extend(EDGES.iter().map(|(e, _)| *e));
        hosts.push(CLIENT);
        let topo = crate::netns::Topology::create(&hosts)?;
        let (dir, temp) = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("pgha-bench-")
                    .tempdir()
                    .map_err(io("creating a temporary directory"))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        // PostgreSQL runs as user postgres under a root pgha: it must traverse to its data directory.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(io(format!("chmod {}", dir.display())))?;
        let secrets = dir.join("secrets");
        std::fs::create_dir_all(&secrets).map_err(io("creating the secrets directory"))?;
        let password: String = (0..20).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect();
        for name in ["superuser", "replication"] {
            let path = secrets.join(name);
            std::fs::write(&path, format!("{password}\n")).map_err(io(format!("writing {}", path.display())))?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(io(format!("chmod {}", path.display())))?;
        }
        // Certificates as an operator makes them (`pgha cert init` / `pgha cert issue`): one per host, one for ctl.
        let certs = dir.join("certs");
        crate::cert::init_ca(&certs, CLUSTER, 30, true)?;
        for h in hosts.iter().filter(|h| **h != CLIENT) {
            let ip = topo.host(h)?.ip;
            let role = match DBS.contains(h) {
                true => crate::identity::CertRole::Member,
                false => crate::identity::CertRole::Edge,
            };
            crate::cert::issue(&certs, role, h, &[ip.into()], &[h.to_string()], 30)?;
        }
        let ctl_ip = [topo.bridge_ip().into()];
        crate::cert::issue(
            &certs,
            crate::identity::CertRole::Admin,
            "ctl",
            &ctl_ip,
            &["ctl".into()],
            30,
        )?;
        let ip = |h: &str| topo.host(h).map(|h| h.ip);
        let mut spec = ClusterSpec {
            name: CLUSTER.into(),
            certs: Some(certs.clone()),
            secrets: secrets.clone(),
            // PostgreSQL without TLS, so the probe connects without a client certificate (module doc).
            layout: Layout {
                pg_lines: "tls = false\n".into(),
                ha_lines: opts.ha_lines.clone(),
                ..Layout::default()
            },
            members: Vec::new(),
        };
        let mut disks = BTreeMap::new();
        for d in DBS {
            let ip = ip(d)?;
            let pg_data_dir = match opts.pg_disk_mib {
                Some(mib) => {
                    let disk =
                        PgDisk::mount(&dir.join(d).join("disk"), mib).map_err(io("PostgreSQL's own filesystem"))?;
                    let pgdata = disk.path().join("pgdata");
                    disks.insert(d.to_string(), disk);
                    Some(pgdata)
                }
                None => None,
            };
            spec.members.push(MemberSpec {
                name: d.to_string(),
                role: Role::Db,
                data_dir: dir.join(d),
                dcs_listen: format!("{ip}:{DCS_PORT}"),
                pg_listen: Some(format!("{ip}:{PG_PORT}")),
                pg_data_dir,
                http_listen: Some(format!("{ip}:8008")),
            });
        }
        let mut configs: Vec<(String, String)> = spec
            .members
            .iter()
            .map(|m| (m.name.clone(), spec.render_member(m)))
            .collect();
        for (e, prio) in EDGES {
            let edge = EdgeSpec {
                name: e.to_string(),
                vip: Some(VipSpec {
                    address: format!("{}/24", topo.addr(VIP_LAST)),
                    interface: IFACE.to_string(),
                    priority: prio,
                    lines: opts.vip_lines.clone(),
                }),
                ..EdgeSpec::default()
            };
            configs.push((e.to_string(), spec.render_edge(&edge)));
        }
        // `pgha ctl -c ctl.toml` as an operator runs it, with the ctl certificate.
        let ctl_path = dir.join("ctl.toml");
        std::fs::write(&ctl_path, spec.render_ctl()).map_err(io(format!("writing {}", ctl_path.display())))?;
        for (name, text) in &configs {
            let path = dir.join(format!("{name}.toml"));
            std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
        }
        let endpoints = spec.endpoints();
        let files = TlsFiles {
            ca: certs.join("ca.pem"),
            cert: certs.join("ctl.pem"),
            key: certs.join("ctl-key.pem"),
        };
        let client_tls = NodeTls::load(&files)?.client_config();
        let dcs = DcsClient::new(endpoints, Some(client_tls), Duration::from_secs(2))?;
        let mut six = SixHosts {
            topo,
            procs: BTreeMap::new(),
            _deadlines: super::local::DeadlineFiles::of(spec.members.iter().map(|m| m.data_dir.as_path())),
            disks,
            dcs,
            exe: opts.exe.clone(),
            dir,
            password,
            _temp: temp,
        };
        for (name, _) in &configs {
            six.start_pgha(name, &opts.exe)?;
        }
        Ok(six)
    }

    /// (Re)starts `host`'s pgha with its config; its output (JSON log records) goes to `<dir>/<host>.log`.
    pub fn start_pgha(&mut self, host: &str, exe: &Path) -> Result<(), SixHostsError> {
        let role = if DBS.contains(&host) { "db" } else { "edge" };
        let cfg = s(&self.dir.join(format!("{host}.toml")));
        let exe = s(exe);
        let argv = [exe.as_str(), "run", "--role", role, "-c", cfg.as_str()];
        // JSON logs: the bench reads its per-phase timings from them.
        let child = self
            .topo
            .spawn(host, &argv, &[("PGHA_LOG__FORMAT", "json")], &self.log_path(host))?;
        if let Some(mut old) = self.procs.insert(host.to_string(), child) {
            old.kill();
        }
        Ok(())
    }

    /// The DCS client (mutual TLS as `ctl`).
    pub fn dcs(&self) -> &DcsClient {
        &self.dcs
    }

    /// The whole cluster view from the DCS.
    pub async fn view(&self) -> Result<ClusterView, SixHostsError> {
        let keys = Keys::new(CLUSTER);
        let store = Store {
            dcs: &self.dcs,
            keys: &keys,
        };
        Ok(store.view().await?)
    }

    /// `host`'s address.
    pub fn ip(&self, host: &str) -> Result<Ipv4Addr, SixHostsError> {
        Ok(self.topo.host(host)?.ip)
    }

    /// The VIP.
    pub fn vip(&self) -> Ipv4Addr {
        self.topo.addr(VIP_LAST)
    }

    /// Edges whose interface carries the VIP right now.
    pub fn vip_holders(&self) -> Vec<String> {
        super::vip_look::holders(|| {
            EDGES
                .iter()
                .filter(|(e, _)| self.topo.has_address(e, self.vip()).unwrap_or(false))
                .map(|(e, _)| e.to_string())
                .collect()
        })
    }

    /// The `vip` key's value.
    pub async fn vip_key(&self) -> Option<String> {
        let key = Keys::new(CLUSTER).vip();
        let (kvs, _) = self.dcs.get(key.as_bytes(), false).await.ok()?;
        kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    }

    /// The primary's host when the leader is a running primary with `replicas` streaming replicas.
    pub async fn primary_with(&self, replicas: usize) -> Option<String> {
        self.view().await.ok()?.primary_with(replicas).map(str::to_string)
    }

    /// Waits for a primary with two streaming replicas and exactly one VIP holder that the `vip` key names.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Ready, SixHostsError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let primary = match Topology::wait_primary_with(self, 2, left).await {
                Ok(p) => p,
                Err(HarnessError::NotReady(_, what)) => return Err(HarnessError::NotReady(timeout, what)),
                Err(e) => return Err(e),
            };
            let holders = self.vip_holders();
            let last = match holders.as_slice() {
                [one] if self.vip_key().await.as_deref() == Some(one.as_str()) => {
                    return Ok(Ready {
                        primary,
                        vip_holder: one.clone(),
                    })
                }
                h => format!("primary {primary} with 2 streaming replicas, VIP holders: {h:?}"),
            };
            if Instant::now() >= deadline {
                return Err(HarnessError::NotReady(timeout, last));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends `sig` to `host`'s pgha process only.
    pub fn signal_pgha(&self, host: &str, sig: libc::c_int) -> Result<(), SixHostsError> {
        let p = self.procs.get(host).ok_or_else(|| SixHostsError::NoHost(host.into()))?;
        p.signal(sig);
        Ok(())
    }

    /// Sends `sig` to every process of `host` (pgha, its fencer, PostgreSQL); returns how many.
    pub fn signal_host(&self, host: &str, sig: libc::c_int) -> usize {
        self.topo.signal_host(host, sig)
    }

    /// `host`'s PostgreSQL data directory.
    pub fn pgdata(&self, host: &str) -> PathBuf {
        match self.disks.get(host) {
            Some(disk) => disk.path().join("pgdata"),
            None => self.dir.join(host).join("pgdata"),
        }
    }

    /// `host`'s PostgreSQL server log (`pg_ctl -l`, beside the data directory).
    pub fn pg_log_path(&self, host: &str) -> PathBuf {
        let mut p = self.pgdata(host).into_os_string();
        p.push(".log");
        PathBuf::from(p)
    }

    /// `host`'s PostgreSQL filesystem, when the topology was built with [`SixHostsOptions::pg_disk_mib`].
    pub fn disk(&self, host: &str) -> Option<&PgDisk> {
        self.disks.get(host)
    }

    /// `host`'s postmaster PID, if it runs.
    pub fn postmaster_pid(&self, host: &str) -> Option<i32> {
        let pid = crate::postgres::postmaster_pid(&self.pgdata(host))?;
        i32::try_from(pid).ok()
    }

    /// SIGKILL every process of `host` (pgha, its fencers, PostgreSQL) until none is left (a child forked meanwhile
    /// is caught by the next round); bounded to 2 s. Polled every 2 ms: a power-off cuts the link right after, and
    /// until then the host's kernel still answers (a refused SYN), which a real power-off would not.
    pub async fn kill_host(&mut self, host: &str) {
        if let Some(p) = self.procs.get_mut(host) {
            p.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.signal_host(host, libc::SIGKILL) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A power-off: every process of `host` killed and its link cut (it answers nothing, for its VIP neither).
    pub async fn power_off(&mut self, host: &str) -> Result<(), SixHostsError> {
        self.kill_host(host).await;
        self.cut(host)
    }

    /// Undoes [`SixHosts::power_off`] like a boot: the interface comes back without the VIP, pgha starts again.
    pub fn power_on(&mut self, host: &str, exe: &Path) -> Result<(), SixHostsError> {
        let vip = format!("{}/24", self.vip());
        // Absent on a host that did not hold the VIP: then `ip` fails, which is fine.
        let _ = self.topo.run(host, &["ip", "addr", "del", &vip, "dev", IFACE]);
        self.restore(host)?;
        self.start_pgha(host, exe)
    }

    /// The `pgha ctl` config (mutual TLS with the ctl certificate).
    pub fn ctl_config(&self) -> PathBuf {
        self.dir.join("ctl.toml")
    }

    /// Edges whose published status (`edges/<name>`) says healthy.
    pub async fn healthy_edges(&self) -> Vec<String> {
        let prefix = Keys::new(CLUSTER).edges();
        let Ok((kvs, _)) = self.dcs.get(prefix.as_bytes(), true).await else {
            return Vec::new();
        };
        kvs.iter()
            .filter_map(|kv| serde_json::from_slice::<crate::edge::vip::decide::Candidate>(&kv.value).ok())
            .filter(|c| c.healthy)
            .map(|c| c.name)
            .collect()
    }

    /// Sends `sig` to `host`'s postmaster; false when none runs.
    pub fn signal_postgres(&self, host: &str, sig: libc::c_int) -> bool {
        match self.postmaster_pid(host) {
            // SAFETY: kill(2) on the postmaster of a data directory this topology owns.
            Some(pid) => unsafe { libc::kill(pid, sig) == 0 },
            None => false,
        }
    }

    /// Cuts `host` off the bridge.
    pub fn cut(&self, host: &str) -> Result<(), SixHostsError> {
        Ok(self.topo.cut(host)?)
    }

    /// Reconnects `host`.
    pub fn restore(&self, host: &str) -> Result<(), SixHostsError> {
        Ok(self.topo.restore(host)?)
    }

    /// A superuser target through the VIP's `port` ([`PG_PORT`]: the edges' primary port).
    pub fn via_vip(&self, port: u16) -> Target {
        Target {
            nodes: vec![(self.vip().to_string(), port)],
            user: "postgres".into(),
            password: self.password.clone(),
        }
    }

    /// A superuser target of every db host directly (from the machine, over the bridge).
    pub fn direct(&self) -> Result<Target, SixHostsError> {
        let nodes = DBS
            .iter()
            .map(|d| Ok((self.ip(d)?.to_string(), PG_PORT)))
            .collect::<Result<_, SixHostsError>>()?;
        Ok(Target {
            nodes,
            user: "postgres".into(),
            password: self.password.clone(),
        })
    }

    /// The hosts that run pgha (and write logs).
    pub fn log_hosts(&self) -> impl Iterator<Item = &str> {
        self.topo.hosts.iter().map(|h| h.name.as_str()).filter(|h| *h != CLIENT)
    }

    /// Where `host`'s pgha logs go.
    pub fn log_path(&self, host: &str) -> PathBuf {
        self.dir.join(format!("{host}.log"))
    }

    /// `host`'s log so far.
    pub fn log(&self, host: &str) -> String {
        self.log_since(host, 0)
    }

    /// Bytes in `host`'s log so far: a mark for [`SixHosts::log_since`].
    pub fn log_len(&self, host: &str) -> u64 {
        std::fs::metadata(self.log_path(host)).map_or(0, |m| m.len())
    }

    /// `host`'s log from byte `from` on (logs are only appended to, across restarts too).
    pub fn log_since(&self, host: &str, from: u64) -> String {
        read_from(&self.log_path(host), from)
    }

    /// The namespace of `host` (for [`crate::netns::in_ns`] / [`crate::netns::enter`]).
    pub fn ns(&self, host: &str) -> Result<String, SixHostsError> {
        Ok(self.topo.host(host)?.ns.clone())
    }
}

impl Topology for SixHosts {
    fn members(&self) -> Vec<String> {
        DBS.iter().map(|d| d.to_string()).collect()
    }

    fn start_member(&mut self, member: &str) -> Result<(), HarnessError> {
        let exe = self.exe.clone();
        self.start_pgha(member, &exe)
    }

    async fn kill_member(&mut self, member: &str) -> Result<(), HarnessError> {
        self.kill_host(member).await;
        Ok(())
    }

    fn signal_member(&self, member: &str, signal: libc::c_int) -> Result<(), HarnessError> {
        self.signal_pgha(member, signal)
    }

    fn signal_postgres(&self, member: &str, signal: libc::c_int) -> bool {
        SixHosts::signal_postgres(self, member, signal)
    }

    fn write_target(&self) -> Result<Target, HarnessError> {
        Ok(self.via_vip(PG_PORT))
    }

    fn read_target(&self) -> Option<Target> {
        Some(self.via_vip(REPLICA_PORT))
    }

    fn direct_target(&self) -> Result<Target, HarnessError> {
        self.direct()
    }

    fn logs(&self) -> Vec<(String, PathBuf)> {
        self.log_hosts().map(|h| (h.to_string(), self.log_path(h))).collect()
    }

    async fn view(&self) -> Result<ClusterView, HarnessError> {
        SixHosts::view(self).await
    }

    fn dcs_client(&self) -> Result<Box<dyn std::ops::Deref<Target = DcsClient> + '_>, HarnessError> {
        Ok(Box::new(&self.dcs))
    }

    fn client_ns(&self) -> Result<Option<String>, HarnessError> {
        Ok(Some(self.ns(CLIENT)?))
    }

    fn edges(&self) -> Vec<String> {
        EDGES.iter().map(|(e, _)| e.to_string()).collect()
    }

    fn vip_holders(&self) -> Vec<String> {
        SixHosts::vip_holders(self)
    }

    fn has_network(&self) -> bool {
        true
    }

    fn cut(&self, host: &str) -> Result<(), HarnessError> {
        SixHosts::cut(self, host)
    }

    fn restore(&self, host: &str) -> Result<(), HarnessError> {
        SixHosts::restore(self, host)
    }

    async fn power_off(&mut self, host: &str) -> Result<(), HarnessError> {
        SixHosts::power_off(self, host).await
    }

    fn power_on(&mut self, host: &str) -> Result<(), HarnessError> {
        let exe = self.exe.clone();
        SixHosts::power_on(self, host, &exe)
    }

    async fn wait_serving(&self, timeout: Duration) -> Result<(String, Option<String>), HarnessError> {
        let ready = self.wait_ready(timeout).await?;
        Ok((ready.primary, Some(ready.vip_holder)))
    }
}
