//! The `[edge]` and `[edge.vip]` sections (client ports, session caps, status page, virtual IP) and their checks.

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
    /// `edge.max_sessions` (`PGHA_EDGE__MAX_SESSIONS`): client connections over all ports (sessions, and clients
    /// that have not sent their startup message yet), split into the ports' own caps (see `primary_max_sessions`).
    /// At least 1. Default: 1000.
    pub max_sessions: u64,
    /// `edge.primary_max_sessions` (`PGHA_EDGE__PRIMARY_MAX_SESSIONS`): the primary port's own cap, so that clients
    /// of another port cannot take its slots; a client over it is refused at once ("too many connections through
    /// this edge port"). Default: unset, an even share of what the ports' set caps leave of `max_sessions` (with
    /// the three ports and the defaults: 334). The set caps may add up to `max_sessions` at most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_max_sessions: Option<u64>,
    /// `edge.replica_max_sessions` (`PGHA_EDGE__REPLICA_MAX_SESSIONS`): the replica port's cap, as
    /// `primary_max_sessions`. Default: unset (333 with the defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_max_sessions: Option<u64>,
    /// `edge.any_max_sessions` (`PGHA_EDGE__ANY_MAX_SESSIONS`): the any port's cap, as `primary_max_sessions`.
    /// Default: unset (333 with the defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub any_max_sessions: Option<u64>,
    /// `edge.client_hello_timeout_ms` (`PGHA_EDGE__CLIENT_HELLO_TIMEOUT_MS`): how long a new client has to send
    /// its first protocol message (StartupMessage, SSLRequest, GSSENCRequest or CancelRequest; after an SSL or GSS
    /// refusal, the next one) before it is closed. No backend is dialled before it. From 100 to 600000.
    /// Default: 5000.
    pub client_hello_timeout_ms: u64,
    /// `edge.primary_wait_ms` (`PGHA_EDGE__PRIMARY_WAIT_MS`): how long a new client of the primary port waits for a
    /// primary while there is none (failover, switchover) before it is disconnected; at most 600000. Default: 5000.
    pub primary_wait_ms: u64,
    /// `edge.session_threads` (`PGHA_EDGE__SESSION_THREADS`): threads that run the client sessions, each an event
    /// loop of its own with the sessions handed to it at accept (a session never moves between threads); 0 means
    /// one per core. From 0 to 256. Default: 0.
    pub session_threads: u64,
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
            primary_max_sessions: None,
            replica_max_sessions: None,
            any_max_sessions: None,
            client_hello_timeout_ms: 5000,
            primary_wait_ms: 5000,
            session_threads: 0,
            replica_max_lag_bytes: None,
            vip: None,
        }
    }
}

/// Most session threads `edge.session_threads` may ask for.
pub const MAX_SESSION_THREADS: u64 = 256;

/// The session cap of each client port; 0 for a disabled port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCaps {
    pub primary: u64,
    pub replica: u64,
    pub any: u64,
}

/// Why the ports' caps cannot be worked out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortCapError {
    #[error("must be at least 1")]
    Zero { key: &'static str },
    #[error("the ports' own caps add up to {sum}, above edge.max_sessions ({total})")]
    AboveTotal { sum: u64, total: u64 },
    #[error("{left} session(s) left of edge.max_sessions ({total}) for {ports} port(s) without their own cap")]
    NoShare { total: u64, left: u64, ports: u64 },
}

/// The cap of each enabled client port: its own `edge.<port>_max_sessions`, or an even share of what the set ones
/// leave of `edge.max_sessions` (the primary port, then the replica port, get the remainder). Caps stay apart so a
/// flood on one port cannot take another port's slots; together they never exceed `max_sessions`.
pub fn port_caps(edge: &EdgeSection) -> Result<PortCaps, PortCapError> {
    let ports = [
        (
            "edge.primary_max_sessions",
            &edge.primary_listen,
            edge.primary_max_sessions,
        ),
        (
            "edge.replica_max_sessions",
            &edge.replica_listen,
            edge.replica_max_sessions,
        ),
        ("edge.any_max_sessions", &edge.any_listen, edge.any_max_sessions),
    ];
    // A cap of a disabled port is ignored: the port takes nobody.
    let enabled: Vec<(&'static str, Option<u64>)> = ports
        .iter()
        .filter(|(_, listen, _)| !listen.is_empty())
        .map(|(key, _, cap)| (*key, *cap))
        .collect();
    if let Some((key, _)) = enabled.iter().find(|(_, cap)| *cap == Some(0)) {
        return Err(PortCapError::Zero { key });
    }
    let total = edge.max_sessions;
    let sum = enabled
        .iter()
        .filter_map(|(_, cap)| *cap)
        .fold(0u64, u64::saturating_add);
    if sum > total {
        return Err(PortCapError::AboveTotal { sum, total });
    }
    let (left, unset) = (total - sum, enabled.iter().filter(|(_, c)| c.is_none()).count() as u64);
    if unset > 0 && left < unset {
        return Err(PortCapError::NoShare {
            total,
            left,
            ports: unset,
        });
    }
    let mut remainder = if unset > 0 { left % unset } else { 0 };
    let mut caps = [0u64; 3];
    for (slot, (_, listen, cap)) in caps.iter_mut().zip(ports) {
        if listen.is_empty() {
            continue;
        }
        *slot = cap.unwrap_or_else(|| {
            let extra = u64::from(remainder > 0);
            remainder -= extra;
            left / unset + extra
        });
    }
    Ok(PortCaps {
        primary: caps[0],
        replica: caps[1],
        any: caps[2],
    })
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
    /// leaves a dead edge (about one TTL). The holder renews it directly on a quorum of DCS voters every ttl/4 and
    /// gives the address up at 3/4 of it without a renewal, so a DCS leader change does not move it; an edge host
    /// that can stall for longer than ttl/2 should use more. At least 200. Default: 300.
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
    } else {
        match port_caps(edge) {
            Ok(_) => {}
            Err(e @ PortCapError::Zero { key }) => {
                r.add(key, e.to_string(), "leave it unset for a share of edge.max_sessions")
            }
            Err(e) => r.add(
                "edge.max_sessions",
                e.to_string(),
                "raise edge.max_sessions (the total over all ports) or lower the ports' own caps",
            ),
        }
    }
    if !(100..=600_000).contains(&edge.client_hello_timeout_ms) {
        r.add(
            "edge.client_hello_timeout_ms",
            format!("{} ms is not from 100 to 600000 ms", edge.client_hello_timeout_ms),
            "clients send their startup message at once; the default is 5000",
        );
    }
    if edge.primary_wait_ms > 600_000 {
        r.add(
            "edge.primary_wait_ms",
            format!("{} ms is above the maximum of 600000 ms", edge.primary_wait_ms),
            "clients should not hang for more than a few seconds; the default is 5000",
        );
    }
    if edge.session_threads > MAX_SESSION_THREADS {
        r.add(
            "edge.session_threads",
            format!("{} is above the maximum of {MAX_SESSION_THREADS}", edge.session_threads),
            "0 (the default) runs one thread per core",
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
        if vip.ttl_ms.is_some_and(|t| t < 200) {
            r.add(
                "edge.vip.ttl_ms",
                "is below the minimum of 200 ms",
                "leave it unset for the default (300 ms), or use at least 200",
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
