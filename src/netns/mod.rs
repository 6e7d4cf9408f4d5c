//! Simulated hosts on one machine (root only): an isolated Linux bridge with a private /24 and one network namespace
//! per host, with processes started inside them, links cut and restored, and everything removed on Drop.
//!
//! The subnet is in 10.231.0.0/16, the bridge has no uplink and no default route; the bridge itself gets `.254` so the
//! calling process can reach the hosts. Drop kills every process left in the namespaces (all started by the owner:
//! the names are ours alone), deletes the namespaces (their veths go with them) and the bridge, also on panic or
//! error. Needs iproute2 (`ip netns add|del|exec|pids`, `ip -n`, veth and bridge links, blackhole routes, `ip neigh`).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The interface name inside every namespace.
pub const IFACE: &str = "eth0";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Why a topology operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespaces need root (run as root, or use the loopback mode)")]
    NeedsRoot,
    #[error("running `ip {args}`: {source}")]
    Spawn { args: String, source: std::io::Error },
    #[error("`ip {args}` failed: {stderr}")]
    Ip { args: String, stderr: String },
    #[error("no host {0} in the topology")]
    NoHost(String),
    #[error("at most 249 hosts (asked for {0})")]
    TooManyHosts(usize),
    #[error("starting {argv} in {host}: {source}")]
    Start {
        argv: String,
        host: String,
        source: std::io::Error,
    },
    #[error("opening {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("entering namespace {ns}: {source}")]
    Setns { ns: String, source: std::io::Error },
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// One simulated host.
#[derive(Debug, Clone)]
pub struct Host {
    /// Logical name (db1, edge2, client...).
    pub name: String,
    /// Namespace name.
    pub ns: String,
    /// The bridge-side end of its veth.
    pub veth: String,
    pub ip: Ipv4Addr,
}

/// The topology; see the module doc.
#[derive(Debug)]
pub struct Topology {
    pub bridge: String,
    /// First three octets of the subnet, e.g. 10.231.17.
    pub net: [u8; 3],
    pub hosts: Vec<Host>,
}

/// Runs `ip args`, an error naming the command and its stderr when it fails.
pub fn ip(args: &[&str]) -> Result<Output, NetnsError> {
    let joined = args.join(" ");
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetnsError::Spawn {
            args: joined.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetnsError::Ip {
            args: joined,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// Whether `net` is already used by any address on this machine (another topology's subnet).
fn subnet_in_use(net: [u8; 3]) -> bool {
    let prefix = format!(" {}.{}.{}.", net[0], net[1], net[2]);
    ip(&["-o", "-4", "addr"])
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&prefix))
        .unwrap_or(true)
}

/// Words after `key` on each line of `text` (the value of `lladdr`, `inet`, ...), with the line's first word.
fn field_after<'a>(text: &'a str, key: &str) -> Vec<(&'a str, &'a str)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f.iter().position(|w| *w == key)?;
            Some((*f.first()?, *f.get(i + 1)?))
        })
        .collect()
}

impl Topology {
    /// Builds the bridge and one namespace per name in `hosts` (addresses .1, .2, ... in host order).
    pub fn create(hosts: &[&str]) -> Result<Topology, NetnsError> {
        if !is_root() {
            return Err(NetnsError::NeedsRoot);
        }
        if hosts.len() >= 250 {
            return Err(NetnsError::TooManyHosts(hosts.len()));
        }
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let mut third = ((pid + seq * 37) % 250) as u8;
        for _ in 0..250 {
            if !subnet_in_use([10, 231, third]) {
                break;
            }
            third = (third + 1) % 250;
        }
        // A bridge name left by a crashed run or shared by a PID 10000 apart: take the next free one.
        let mut tag = (pid % 10_000) * 10 + seq % 10;
        for _ in 0..1000 {
            if ip(&["link", "show", &format!("pghab{tag}")]).is_err() {
                break;
            }
            tag = (tag + 1) % 100_000;
        }
        let mut topo = Topology {
            bridge: String::new(),
            net: [10, 231, third],
            hosts: Vec::new(),
        };
        let bridge = format!("pghab{tag}");
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        // Registered once it exists, so Drop removes it (and a half-built host) on any later error.
        topo.bridge = bridge.clone();
        let bridge_ip = format!("{}/24", topo.addr(254));
        ip(&["addr", "add", &bridge_ip, "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for (i, name) in hosts.iter().enumerate() {
            let ns = format!("pgha{pid}-{seq}-{name}");
            let veth = format!("pv{tag}h{i}");
            let peer = format!("pv{tag}n{i}");
            let host_ip = topo.addr(i as u8 + 1);
            topo.hosts.push(Host {
                name: name.to_string(),
                ns: ns.clone(),
                veth: veth.clone(),
                ip: host_ip,
            });
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
            ip(&["link", "set", &peer, "netns", &ns])?;
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            let inside = |args: &[&str]| {
                let mut full = vec!["-n", ns.as_str()];
                full.extend_from_slice(args);
                ip(&full).map(|_| ())
            };
            inside(&["link", "set", &peer, "name", IFACE])?;
            inside(&["addr", "add", &format!("{host_ip}/24"), "dev", IFACE])?;
            inside(&["link", "set", IFACE, "up"])?;
            inside(&["link", "set", "lo", "up"])?;
        }
        Ok(topo)
    }

    /// Address `.last` of the subnet.
    pub fn addr(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], last)
    }

    /// The bridge's own address (how the calling process reaches the hosts).
    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.addr(254)
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Result<&Host, NetnsError> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| NetnsError::NoHost(name.to_string()))
    }

    /// A command run inside `host`'s namespace (`ip netns exec` execs it: the child's PID is the command's).
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, NetnsError> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host(host)?.ns]).arg(program);
        Ok(c)
    }

    /// Starts `argv` inside `host` with extra environment `envs`, stdout and stderr appended to `log`.
    pub fn spawn(&self, host: &str, argv: &[&str], envs: &[(&str, &str)], log: &Path) -> Result<NsChild, NetnsError> {
        let io = |source| NetnsError::Io {
            path: log.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io)?;
        let err = file.try_clone().map_err(io)?;
        let program = argv.first().copied().unwrap_or("true");
        let child = self
            .command(host, program)?
            .args(argv.iter().skip(1))
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|source| NetnsError::Start {
                argv: argv.join(" "),
                host: host.to_string(),
                source,
            })?;
        Ok(NsChild { child: Some(child) })
    }

    /// Runs a command inside `host` to completion.
    pub fn run(&self, host: &str, argv: &[&str]) -> Result<Output, NetnsError> {
        let program = argv.first().copied().unwrap_or("true");
        self.command(host, program)?
            .args(argv.iter().skip(1))
            .stdin(Stdio::null())
            .output()
            .map_err(|source| NetnsError::Start {
                argv: argv.join(" "),
                host: host.to_string(),
                source,
            })
    }

    /// Cuts `host` off the bridge (its link stays up inside the namespace, like a pulled cable upstream).
    pub fn cut(&self, host: &str) -> Result<(), NetnsError> {
        ip(&["link", "set", &self.host(host)?.veth, "down"]).map(|_| ())
    }

    /// Reconnects `host`.
    pub fn restore(&self, host: &str) -> Result<(), NetnsError> {
        ip(&["link", "set", &self.host(host)?.veth, "up"]).map(|_| ())
    }

    /// Drops every packet `host` sends to `targets` (blackhole routes): cut off from them, still on the bridge.
    pub fn block(&self, host: &str, targets: &[&str]) -> Result<(), NetnsError> {
        self.blackholes(host, targets, "add")
    }

    /// Undoes [`Topology::block`].
    pub fn unblock(&self, host: &str, targets: &[&str]) -> Result<(), NetnsError> {
        self.blackholes(host, targets, "del")
    }

    fn blackholes(&self, host: &str, targets: &[&str], verb: &str) -> Result<(), NetnsError> {
        let ns = &self.host(host)?.ns;
        for t in targets {
            let dest = format!("{}/32", self.host(t)?.ip);
            ip(&["-n", ns, "route", verb, "blackhole", &dest])?;
        }
        Ok(())
    }

    /// `host`'s neighbour table: (ip, mac) for entries with a link-layer address.
    pub fn neighbours(&self, host: &str) -> Result<Vec<(String, String)>, NetnsError> {
        let out = ip(&["-n", &self.host(host)?.ns, "neigh", "show", "dev", IFACE])?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(field_after(&text, "lladdr")
            .into_iter()
            .map(|(a, m)| (a.to_string(), m.to_string()))
            .collect())
    }

    /// The MAC `host`'s neighbour table has for `ip`, if any.
    pub fn neighbour_mac(&self, host: &str, ip: Ipv4Addr) -> Result<Option<String>, NetnsError> {
        let ip = ip.to_string();
        Ok(self
            .neighbours(host)?
            .into_iter()
            .find(|(a, _)| *a == ip)
            .map(|(_, m)| m))
    }

    /// The IPv4 addresses (with prefix) on `host`'s interface.
    pub fn addresses(&self, host: &str) -> Result<Vec<String>, NetnsError> {
        let out = ip(&["-n", &self.host(host)?.ns, "-o", "-4", "addr", "show", "dev", IFACE])?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(field_after(&text, "inet")
            .into_iter()
            .map(|(_, a)| a.to_string())
            .collect())
    }

    /// Whether `host`'s interface carries `ip`.
    pub fn has_address(&self, host: &str, ip: Ipv4Addr) -> Result<bool, NetnsError> {
        let ip = ip.to_string();
        Ok(self
            .addresses(host)?
            .iter()
            .any(|a| a.split('/').next() == Some(ip.as_str())))
    }

    /// `host`'s MAC address.
    pub fn mac(&self, host: &str) -> Result<String, NetnsError> {
        let out = self.run(host, &["cat", &format!("/sys/class/net/{IFACE}/address")])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// PIDs of every process inside `host`'s namespace (empty when it cannot be read).
    pub fn pids(&self, host: &str) -> Vec<i32> {
        let Ok(h) = self.host(host) else { return Vec::new() };
        ip(&["netns", "pids", &h.ns])
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sends `sig` to every process inside `host`'s namespace; returns how many were signalled.
    pub fn signal_host(&self, host: &str, sig: libc::c_int) -> usize {
        let pids = self.pids(host);
        for pid in &pids {
            // SAFETY: kill(2) on a PID found in our own namespace (every process there is ours).
            unsafe {
                libc::kill(*pid, sig);
            }
        }
        pids.len()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // SIGTERM first, so PostgreSQL stops cleanly and a VIP holder releases (its fencer exits); SIGKILL what is
        // left after 5 s. A frozen process cannot act on SIGTERM, hence SIGCONT first.
        let names: Vec<String> = self.hosts.iter().map(|h| h.name.clone()).collect();
        let signal_all = |sig| names.iter().map(|n| self.signal_host(n, sig)).sum::<usize>() > 0;
        signal_all(libc::SIGCONT);
        signal_all(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && names.iter().any(|n| !self.pids(n).is_empty()) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && signal_all(libc::SIGKILL) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for h in &self.hosts {
            let _ = ip(&["netns", "del", &h.ns]);
            let _ = ip(&["link", "del", &h.veth]);
        }
        if !self.bridge.is_empty() {
            let _ = ip(&["link", "del", &self.bridge]);
        }
    }
}

/// A child process inside a namespace, killed by PID (SIGKILL) on drop unless already reaped.
#[derive(Debug)]
pub struct NsChild {
    child: Option<Child>,
}

impl NsChild {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on the PID of our own child, not yet reaped.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait up to `grace` for it to exit (SIGKILL after).
    pub fn stop(&mut self, grace: Duration) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        if let Some(c) = self.child.as_mut() {
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Enters namespace `ns` on the calling thread (sockets it opens afterwards live there).
pub fn enter(ns: &str) -> Result<(), NetnsError> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).map_err(|source| NetnsError::Io { path, source })?;
    // SAFETY: setns on a namespace fd we hold open; CLONE_NEWNET changes only this thread's namespace.
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(NetnsError::Setns {
            ns: ns.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Runs `f` on a thread that entered namespace `ns`; returns its result (a panic in `f` propagates, like a scoped
/// thread's).
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T, NetnsError> {
    let name = ns.to_string();
    std::thread::spawn(move || enter(&name).map(|()| f()))
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_output_fields() {
        let neigh = "10.231.4.100 lladdr 02:aa:bb:cc:dd:ee REACHABLE\n10.231.4.3 FAILED\n";
        assert_eq!(
            field_after(neigh, "lladdr"),
            vec![("10.231.4.100", "02:aa:bb:cc:dd:ee")]
        );
        let addr = "2: eth0    inet 10.231.4.5/24 scope global eth0\\       valid_lft forever\n";
        assert_eq!(field_after(addr, "inet"), vec![("2:", "10.231.4.5/24")]);
    }
}
