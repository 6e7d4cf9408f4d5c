//! The `[edge]` and `[edge.vip]` sections (client ports, session cap, status page, virtual IP) and their checks.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::validate::{parse_addr, Report};

/// `[edge]`: what an edge (`pgha run --role edge`) listens on and how it routes. Only checked for the edge role.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeSection {
    /// `edge.primary_listen` (`PGHA_EDGE__PRIMARY_LISTEN`): `host:port` for clients of the current primary only;
    /// empty disables the port. Default: `"0.0.0.0:5432"`.
    pub primary_listen: String,
    /// `edge.replica_listen` (`PGHA_EDGE__REPLICA_LISTEN`): `host:port` balanced round-robin over the streaming
    /// replicas (members tagged `noloadbalance` are skipped); empty disables it. Default: `"0.0.0.0:5433"`.
    pub replica_listen: String,
    /// `edge.any_listen` (`PGHA_EDGE__ANY_LISTEN`): `host:port` balanced over every running member; empty disables
    /// it. Default: `"0.0.0.0:5434"`.
    pub any_listen: String,
    /// `edge.status_listen` (`PGHA_EDGE__STATUS_LISTEN`): `host:port` of the HTTP status page, `/metrics` and
    /// `/health`; empty disables it. Default: `"0.0.0.0:8080"`.
    pub status_listen: String,
    /// `edge.max_sessions` (`PGHA_EDGE__MAX_SESSIONS`): concurrent client sessions over all ports; further clients
    /// wait in the listen backlog. At least 1. Default: 1000.
    pub max_sessions: u64,
    /// `edge.primary_wait_ms` (`PGHA_EDGE__PRIMARY_WAIT_MS`): how long a new client of the primary port waits for a
    /// primary while there is none (failover, switchover) before it is disconnected; at most 600000. Default: 5000.
    pub primary_wait_ms: u64,
    /// `edge.replica_max_lag_bytes` (`PGHA_EDGE__REPLICA_MAX_LAG_BYTES`): replicas whose replay position is further
    /// behind than this get no new sessions on the replica port. Default: unset (no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_max_lag_bytes: Option<u64>,
    /// `[edge.vip]`: the virtual IP this edge may hold. Default: none (no VIP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip: Option<VipSection>,
}

impl Default for EdgeSection {
    fn default() -> Self {
        EdgeSection {
            primary_listen: "0.0.0.0:5432".to_string(),
            replica_listen: "0.0.0.0:5433".to_string(),
            any_listen: "0.0.0.0:5434".to_string(),
            status_listen: "0.0.0.0:8080".to_string(),
            max_sessions: 1000,
            primary_wait_ms: 5000,
            replica_max_lag_bytes: None,
            vip: None,
        }
    }
}

/// `[edge.vip]`: a virtual IPv4 address held by at most one edge at a time (the holder of the `vip` lease).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VipSection {
    /// `edge.vip.address` (`PGHA_EDGE__VIP__ADDRESS`): IPv4 address with prefix length, e.g. `"10.0.0.10/24"`.
    /// Required when `[edge.vip]` is present.
    pub address: String,
    /// `edge.vip.interface` (`PGHA_EDGE__VIP__INTERFACE`): network interface the address is added to, e.g.
    /// `"eth0"`. Required when `[edge.vip]` is present.
    pub interface: String,
    /// `edge.vip.priority` (`PGHA_EDGE__VIP__PRIORITY`): edges with a higher priority try to take the VIP first.
    /// Default: 100.
    pub priority: u32,
    /// `edge.vip.preempt` (`PGHA_EDGE__VIP__PREEMPT`): take the VIP from a healthy holder of lower priority.
    /// Default: `false`.
    pub preempt: bool,
    /// `edge.vip.ttl_ms` (`PGHA_EDGE__VIP__TTL_MS`): TTL of the VIP lease in ms, which bounds how fast the VIP
    /// leaves a dead edge (about one TTL). Below the DCS's leader-election time (~0.7 s) a DCS leader change can
    /// make the holder release it (safe, but a short outage). At least 300. Default: unset, the cluster's ttl_ms.
    pub ttl_ms: Option<u64>,
}

impl Default for VipSection {
    fn default() -> Self {
        VipSection {
            address: String::new(),
            interface: String::new(),
            priority: 100,
            preempt: false,
            ttl_ms: None,
        }
    }
}

/// Parses `a.b.c.d/len` (len 1 to 32).
pub fn parse_vip_address(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let Some((ip, len)) = s.split_once('/') else {
        return Err(format!("{s:?} has no prefix length"));
    };
    let ip: Ipv4Addr = ip.parse().map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
    match len.parse::<u8>() {
        Ok(len) if (1..=32).contains(&len) => Ok((ip, len)),
        _ => Err(format!("prefix length {len:?} is not a number from 1 to 32")),
    }
}

fn check_listen(r: &mut Report, key: &str, value: &str) {
    if !value.is_empty() {
        if let Err(e) = parse_addr(value) {
            r.syntax(key, e);
        }
    }
}

/// The checks of `[edge]` for the edge role.
pub(super) fn edge(edge: &EdgeSection, r: &mut Report) {
    let ports = [
        ("edge.primary_listen", &edge.primary_listen),
        ("edge.replica_listen", &edge.replica_listen),
        ("edge.any_listen", &edge.any_listen),
    ];
    for (key, value) in ports {
        check_listen(r, key, value);
    }
    check_listen(r, "edge.status_listen", &edge.status_listen);
    if ports.iter().all(|(_, v)| v.is_empty()) {
        r.add(
            "edge.primary_listen",
            "every client port is disabled (primary_listen, replica_listen and any_listen are empty)",
            "set at least one of them, e.g. primary_listen = \"0.0.0.0:5432\"",
        );
    }
    let status = ("edge.status_listen", &edge.status_listen);
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (key, value) in ports.iter().chain(std::iter::once(&status)) {
        if value.is_empty() {
            continue;
        }
        if let Some((other, _)) = seen.iter().find(|(_, v)| v == value) {
            r.add(
                *key,
                format!("{value:?} is also {other}"),
                "give every port its own host:port",
            );
        }
        seen.push((key, value.as_str()));
    }
    if edge.max_sessions == 0 {
        r.add("edge.max_sessions", "must be at least 1", "the default is 1000");
    }
    if edge.primary_wait_ms > 600_000 {
        r.add(
            "edge.primary_wait_ms",
            format!("{} ms is above the maximum of 600000 ms", edge.primary_wait_ms),
            "clients should not hang for more than a few seconds; the default is 5000",
        );
    }
    if let Some(vip) = &edge.vip {
        if vip.address.is_empty() {
            r.add(
                "edge.vip.address",
                "is required when [edge.vip] is present",
                "set it to the virtual IPv4 address with its prefix length, e.g. \"10.0.0.10/24\"",
            );
        } else if let Err(message) = parse_vip_address(&vip.address) {
            r.add(
                "edge.vip.address",
                message,
                "write address/prefix, e.g. \"10.0.0.10/24\"",
            );
        }
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.len() <= 15
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        };
        if vip.ttl_ms.is_some_and(|t| t < 300) {
            r.add(
                "edge.vip.ttl_ms",
                "is below the minimum of 300 ms",
                "leave it unset to use the cluster's ttl_ms, or use at least 300",
            );
        }
        if vip.interface.is_empty() {
            r.add(
                "edge.vip.interface",
                "is required when [edge.vip] is present",
                "set it to the interface the VIP lives on, e.g. \"eth0\"",
            );
        } else if !valid_name(&vip.interface) {
            r.add(
                "edge.vip.interface",
                format!("{:?} is not a valid interface name", vip.interface),
                "interface names have at most 15 letters, digits, '.', '_', '-', e.g. \"eth0\"",
            );
        }
    }
}
