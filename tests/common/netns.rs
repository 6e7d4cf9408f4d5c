//! The library's network-namespace topology ([`pgha::netns`]) for tests: the same calls, panicking on errors (a
//! failed `ip` command fails the test with its message), plus the root check that makes a test skip.
#![allow(dead_code, unused_imports)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

pub use pgha::netns::{Host, NsChild, IFACE};

/// True when running as root; otherwise prints why the calling test skips.
pub fn root_or_skip(test: &str) -> bool {
    let root = pgha::netns::is_root();
    if !root {
        eprintln!("skipped: {test} needs root (network namespaces)");
    }
    root
}

fn must<T>(r: Result<T, pgha::netns::NetnsError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The topology; its Drop (in the library) removes every process, namespace and the bridge.
pub struct Topology(pub pgha::netns::Topology);

impl std::ops::Deref for Topology {
    type Target = pgha::netns::Topology;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Topology {
    pub fn create(hosts: &[&str]) -> Topology {
        Topology(must(pgha::netns::Topology::create(hosts)))
    }
    pub fn host(&self, name: &str) -> &Host {
        must(self.0.host(name))
    }
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        must(self.0.command(host, program))
    }
    pub fn spawn(&self, host: &str, argv: &[&str], envs: &[(&str, &str)], log: &Path) -> NsChild {
        must(self.0.spawn(host, argv, envs, log))
    }
    pub fn run(&self, host: &str, argv: &[&str]) -> Output {
        must(self.0.run(host, argv))
    }
    pub fn cut(&self, host: &str) {
        must(self.0.cut(host))
    }
    pub fn restore(&self, host: &str) {
        must(self.0.restore(host))
    }
    pub fn block(&self, host: &str, targets: &[&str]) {
        must(self.0.block(host, targets))
    }
    pub fn unblock(&self, host: &str, targets: &[&str]) {
        must(self.0.unblock(host, targets))
    }
    pub fn neighbours(&self, host: &str) -> Vec<(String, String)> {
        must(self.0.neighbours(host))
    }
    pub fn neighbour_mac(&self, host: &str, ip: Ipv4Addr) -> Option<String> {
        must(self.0.neighbour_mac(host, ip))
    }
    pub fn addresses(&self, host: &str) -> Vec<String> {
        must(self.0.addresses(host))
    }
    pub fn has_address(&self, host: &str, ip: Ipv4Addr) -> bool {
        must(self.0.has_address(host, ip))
    }
    pub fn mac(&self, host: &str) -> String {
        must(self.0.mac(host))
    }
}

/// Runs `f` on a thread that entered namespace `ns` (sockets it opens live there); returns its result.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    must(pgha::netns::in_ns(ns, f))
}

/// Touches `addr:port` over TCP from inside `host` (a refused connection still resolves the neighbour).
pub fn tcp_touch(topo: &Topology, host: &str, addr: Ipv4Addr, port: u16) {
    let ns = topo.host(host).ns.clone();
    in_ns(&ns, move || {
        let _ = std::net::TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(1));
    });
}
