//! Network-namespace topology for tests (root only): an isolated Linux bridge with a private /24 (in 10.231.0.0/16,
//! no uplink, no default route), one namespace per host with a veth into the bridge. The bridge itself gets `.254`
//! so the test process can reach the hosts; nothing is routed anywhere else. Drop kills every process left in the
//! namespaces (all started by the test), deletes the namespaces (their veths go with them) and the bridge, also on
//! panic. Needs iproute2 (Debian 12 ships 6.1: `ip netns add|del|exec|pids`, `ip -n`, veth and bridge links,
//! blackhole routes, `ip neigh`).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The interface name inside every namespace.
pub const IFACE: &str = "eth0";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// True when running as root; otherwise prints why the calling test skips.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: {test} needs root (network namespaces)");
    }
    root
}

/// One simulated host.
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
pub struct Topology {
    pub bridge: String,
    /// First three octets of the subnet, e.g. 10.231.17.
    pub net: [u8; 3],
    pub hosts: Vec<Host>,
}

fn ip(args: &[&str]) -> Result<Output, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out)
}

fn must(args: &[&str]) -> Output {
    ip(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether `net` is already used by any address on this machine (another test's subnet).
fn subnet_in_use(net: [u8; 3]) -> bool {
    let prefix = format!(" {}.{}.{}.", net[0], net[1], net[2]);
    ip(&["-o", "-4", "addr"])
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&prefix))
        .unwrap_or(true)
}

impl Topology {
    /// Builds the bridge and one namespace per name in `hosts` (addresses .1, .2, ... in host order).
    pub fn create(hosts: &[&str]) -> Topology {
        assert!(hosts.len() < 250, "at most 249 hosts");
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let tag = (pid % 10_000) * 10 + seq % 10;
        let mut third = ((pid + seq * 37) % 250) as u8;
        while subnet_in_use([10, 231, third]) {
            third = (third + 1) % 250;
        }
        // A bridge name left by a crashed run or shared by a PID 10000 apart: take the next free one.
        let mut tag = tag;
        while ip(&["link", "show", &format!("pghab{tag}")]).is_ok() {
            tag = (tag + 1) % 100_000;
        }
        let mut topo = Topology {
            bridge: format!("pghab{tag}"),
            net: [10, 231, third],
            hosts: Vec::new(),
        };
        let bridge = topo.bridge.clone();
        must(&["link", "add", &bridge, "type", "bridge"]);
        let bridge_ip = format!("{}/24", topo.addr(254));
        must(&["addr", "add", &bridge_ip, "dev", &bridge]);
        must(&["link", "set", &bridge, "up"]);
        for (i, name) in hosts.iter().enumerate() {
            let ns = format!("pgha{pid}-{seq}-{name}");
            let veth = format!("pv{tag}h{i}");
            let peer = format!("pv{tag}n{i}");
            let host_ip = topo.addr(i as u8 + 1);
            // Registered before it is complete, so Drop cleans up a half-built host too.
            topo.hosts.push(Host {
                name: name.to_string(),
                ns: ns.clone(),
                veth: veth.clone(),
                ip: host_ip,
            });
            must(&["netns", "add", &ns]);
            must(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
            must(&["link", "set", &peer, "netns", &ns]);
            must(&["link", "set", &veth, "master", &bridge, "up"]);
            let inside = |args: &[&str]| {
                let mut full = vec!["-n", ns.as_str()];
                full.extend_from_slice(args);
                must(&full);
            };
            inside(&["link", "set", &peer, "name", IFACE]);
            inside(&["addr", "add", &format!("{host_ip}/24"), "dev", IFACE]);
            inside(&["link", "set", IFACE, "up"]);
            inside(&["link", "set", "lo", "up"]);
        }
        topo
    }

    /// Address `.last` of the subnet.
    pub fn addr(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], last)
    }

    /// The bridge's own address (how the test process reaches the hosts).
    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.addr(254)
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// A command run inside `host`'s namespace (`ip netns exec` execs it: the child's PID is the command's).
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host(host).ns]).arg(program);
        c
    }

    /// Starts `argv` inside `host` with extra environment `envs`, stdout and stderr appended to `log`.
    pub fn spawn(&self, host: &str, argv: &[&str], envs: &[(&str, &str)], log: &Path) -> NsChild {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
        let err = file.try_clone().expect("log file handle");
        let child = self
            .command(host, argv[0])
            .args(&argv[1..])
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {argv:?} in {host}: {e}"));
        NsChild { child: Some(child) }
    }

    /// Runs a command inside `host` to completion.
    pub fn run(&self, host: &str, argv: &[&str]) -> Output {
        self.command(host, argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {argv:?} in {host}: {e}"))
    }

    /// Cuts `host` off the bridge (its link stays up inside the namespace, like a pulled cable upstream).
    pub fn cut(&self, host: &str) {
        must(&["link", "set", &self.host(host).veth, "down"]);
    }

    /// Reconnects `host`.
    pub fn restore(&self, host: &str) {
        must(&["link", "set", &self.host(host).veth, "up"]);
    }

    /// Drops every packet `host` sends to `targets` (blackhole routes): cut off from them, still on the bridge.
    pub fn block(&self, host: &str, targets: &[&str]) {
        for t in targets {
            let ip = format!("{}/32", self.host(t).ip);
            must(&["-n", &self.host(host).ns, "route", "add", "blackhole", &ip]);
        }
    }

    /// Undoes [`Topology::block`].
    pub fn unblock(&self, host: &str, targets: &[&str]) {
        for t in targets {
            let ip = format!("{}/32", self.host(t).ip);
            must(&["-n", &self.host(host).ns, "route", "del", "blackhole", &ip]);
        }
    }

    /// `host`'s neighbour table: (ip, mac) for entries with a link-layer address.
    pub fn neighbours(&self, host: &str) -> Vec<(String, String)> {
        let out = ip(&["-n", &self.host(host).ns, "neigh", "show", "dev", IFACE]).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let i = f.iter().position(|w| *w == "lladdr")?;
                Some((f.first()?.to_string(), f.get(i + 1)?.to_string()))
            })
            .collect()
    }

    /// The MAC `host`'s neighbour table has for `ip`, if any.
    pub fn neighbour_mac(&self, host: &str, ip: Ipv4Addr) -> Option<String> {
        let ip = ip.to_string();
        self.neighbours(host)
            .into_iter()
            .find(|(a, _)| *a == ip)
            .map(|(_, m)| m)
    }

    /// The IPv4 addresses (with prefix) on `host`'s interface.
    pub fn addresses(&self, host: &str) -> Vec<String> {
        let out = ip(&["-n", &self.host(host).ns, "-o", "-4", "addr", "show", "dev", IFACE])
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let i = f.iter().position(|w| *w == "inet")?;
                f.get(i + 1).map(|s| s.to_string())
            })
            .collect()
    }

    /// Whether `host`'s interface carries `ip`.
    pub fn has_address(&self, host: &str, ip: Ipv4Addr) -> bool {
        let ip = ip.to_string();
        self.addresses(host)
            .iter()
            .any(|a| a.split('/').next() == Some(ip.as_str()))
    }

    /// `host`'s MAC address.
    pub fn mac(&self, host: &str) -> String {
        let out = self.run(host, &["cat", &format!("/sys/class/net/{IFACE}/address")]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// PIDs of every process inside `host`'s namespace.
    pub fn pids(&self, host: &str) -> Vec<i32> {
        ip(&["netns", "pids", &self.host(host).ns])
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Every process in these namespaces was started by this test (the names are ours alone). SIGTERM first, so
        // PostgreSQL stops cleanly and a VIP holder releases (its fencer exits); SIGKILL what is left after 5 s.
        let names: Vec<String> = self.hosts.iter().map(|h| h.name.clone()).collect();
        let signal_all = |sig: libc::c_int| {
            let mut any = false;
            for name in &names {
                for pid in self.pids(name) {
                    any = true;
                    // SAFETY: kill(2) on a PID found in our own namespace.
                    unsafe {
                        libc::kill(pid, sig);
                    }
                }
            }
            any
        };
        signal_all(libc::SIGCONT); // a frozen process cannot act on SIGTERM
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
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// A child process inside a namespace, killed by PID (SIGKILL) on drop unless already reaped.
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

/// Runs `f` on a thread that entered namespace `ns` (sockets it opens live there); returns its result.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
        // SAFETY: setns on a namespace fd we hold open; CLONE_NEWNET changes only this thread's namespace.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Touches `addr:port` over TCP from inside `host` (a refused connection still resolves the neighbour).
pub fn tcp_touch(topo: &Topology, host: &str, addr: Ipv4Addr, port: u16) {
    let ns = topo.host(host).ns.clone();
    in_ns(&ns, move || {
        let _ = std::net::TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(1));
    });
}
