//! The edge's virtual IP (replaces keepalived): the edge holding the `vip` key, bound to its own DCS lease, owns the
//! address on its interface (netlink) and announces it by gratuitous ARP (pnet). At most one holder, decided by a
//! compare-and-swap in the DCS, not by multicast adverts; the address goes before the lease could expire, and a
//! separate fencing process removes it if the holder dies or freezes.
//!
//! `decide.rs` is the pure decision; `keeper.rs` carries it out; `netlink.rs`, `garp.rs`, `fence.rs` are the
//! effects; `caps.rs` checks the capabilities at start.

pub mod caps;
pub mod decide;
pub mod fence;
pub mod garp;
pub mod holding;
pub mod keeper;
pub mod netlink;
pub mod steps;
pub mod thread;

use std::net::Ipv4Addr;
use std::time::Duration;

pub use caps::check_capabilities;
pub use keeper::{run_keeper, run_keeper_with};

/// What the keeper needs from the `[edge.vip]` config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipSettings {
    /// The virtual address.
    pub address: Ipv4Addr,
    /// Its prefix length on the interface (e.g. 24).
    pub prefix_len: u8,
    /// The interface that carries it (e.g. eth0).
    pub interface: String,
    /// Higher goes first when the VIP is free.
    pub priority: u32,
    /// Release the VIP when a healthy edge with a higher priority exists.
    pub preempt: bool,
    /// TTL of the VIP lease: a dead holder's VIP moves after about this long.
    pub ttl: Duration,
}

/// Failures of the VIP keeper.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VipError {
    #[error("VIP capabilities: {0}")]
    Capabilities(String),
    #[error("VIP interface {0:?} does not exist (check edge.vip.interface)")]
    NoInterface(String),
    #[error("VIP interface {interface:?}: {message}")]
    Interface { interface: String, message: String },
    #[error("netlink: {action}: {message}")]
    Netlink { action: &'static str, message: String },
    #[error("bad VIP address {0}")]
    BadAddress(String),
    #[error("VIP fence: {0}")]
    Fence(String),
}
