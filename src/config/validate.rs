//! Validation rules for a merged [`Config`], collecting every problem.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use super::{validate_pg, Config, Peer, Problem, Purpose, Role, SyntaxError};

const ADDR_EXAMPLE: &str = "write host:port, e.g. 10.0.0.1:7400, db1.example.com:7400 or [fd00::1]:7400";

fn syntax(message: String, hint: &str) -> SyntaxError {
    SyntaxError {
        message,
        hint: hint.to_string(),
    }
}

/// Splits `host:port`, checking its syntax; `host` is returned without brackets.
pub(super) fn parse_addr(addr: &str) -> Result<(&str, u16), SyntaxError> {
    if addr.is_empty() {
        return Err(syntax("address is empty".to_string(), ADDR_EXAMPLE));
    }
    if addr.chars().any(char::is_whitespace) {
        return Err(syntax(format!("{addr:?} contains whitespace"), ADDR_EXAMPLE));
    }
    if addr.contains("://") {
        return Err(syntax(
            format!("{addr:?} has a URL scheme"),
            "write just host:port, e.g. 10.0.0.1:7400",
        ));
    }
    let (host, port) = if let Some(bracketed) = addr.strip_prefix('[') {
        let Some((host, rest)) = bracketed.split_once(']') else {
            return Err(syntax(format!("{addr:?} has no closing ']'"), ADDR_EXAMPLE));
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(syntax(format!("{host:?} is not a valid IPv6 address"), ADDR_EXAMPLE));
        }
        let Some(port) = rest.strip_prefix(':') else {
            return Err(syntax(format!("{addr:?} has no port"), ADDR_EXAMPLE));
        };
        (host, port)
    } else {
        let Some((host, port)) = addr.rsplit_once(':') else {
            return Err(syntax(format!("{addr:?} has no port"), ADDR_EXAMPLE));
        };
        if host.contains(':') {
            return Err(syntax(
                format!("{addr:?} looks like an IPv6 address without brackets"),
                "put IPv6 addresses in brackets, e.g. [fd00::1]:7400",
            ));
        }
        if host.is_empty() {
            return Err(syntax(format!("{addr:?} has no host"), ADDR_EXAMPLE));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(syntax(
                format!("{host:?} is not a valid host name or IP address"),
                ADDR_EXAMPLE,
            ));
        }
        (host, port)
    };
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok((host, port)),
        _ => Err(syntax(
            format!("port {port:?} in {addr:?} is not a number from 1 to 65535"),
            ADDR_EXAMPLE,
        )),
    }
}

/// Checks that `addr` is a `host:port` another machine can connect to: a host
/// name, IPv4 address or bracketed IPv6 address, a port from 1 to 65535, and
/// not a bind-all address such as `0.0.0.0` or `[::]`.
pub fn check_addr(addr: &str) -> Result<(), SyntaxError> {
    let (host, _) = parse_addr(addr)?;
    if host == "0.0.0.0" || host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_unspecified()) {
        return Err(syntax(
            format!("{addr:?} is a bind-all address that others cannot connect to"),
            "use an IP address or host name this node is reachable at",
        ));
    }
    Ok(())
}

fn valid_member_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Parses `name=host:port`.
pub(super) fn parse_peer(s: &str) -> Result<Peer, SyntaxError> {
    let Some((name, addr)) = s.split_once('=') else {
        return Err(syntax(
            format!("{s:?} is not name=host:port"),
            "write members as name=host:port, e.g. db1=10.0.0.1:7400",
        ));
    };
    if !valid_member_name(name) {
        return Err(syntax(
            format!("member name {name:?} is empty or has characters other than letters, digits, '.', '_' and '-'"),
            "use the member's node.name, e.g. db1=10.0.0.1:7400",
        ));
    }
    check_addr(addr)?;
    Ok(Peer {
        name: name.to_string(),
        addr: addr.to_string(),
    })
}

/// Collects problems in file order, so the report reads top to bottom.
pub(super) struct Report(pub(super) Vec<Problem>);

impl Report {
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
            hint: hint.into(),
        });
    }

    pub(super) fn syntax(&mut self, key: impl Into<String>, err: SyntaxError) {
        self.add(key, err.message, err.hint);
    }
}

pub(super) fn problems(config: &Config, purpose: Purpose) -> Vec<Problem> {
    let mut r = Report(Vec::new());
    cluster_and_node(config, purpose, &mut r);
    dcs_addresses(config, purpose, &mut r);
    dcs_timing(&config.dcs, &mut r);
    if purpose == Purpose::Run(Role::Db) {
        validate_pg::postgresql(config, &mut r);
        validate_pg::ha(&config.ha, &mut r);
    }
    if purpose == Purpose::Run(Role::Edge) {
        super::edge::edge(&config.edge, &mut r);
    }
    if purpose == Purpose::Run(Role::Witness) {
        if let Some(addr) = config.witness.http_listen.as_deref().filter(|a| !a.is_empty()) {
            if let Err(e) = parse_addr(addr) {
                r.syntax("witness.http_listen", e);
            }
        }
    }
    tls_and_log(config, &mut r);
    r.0
}

/// `[cluster]` and `[node]`.
fn cluster_and_node(config: &Config, purpose: Purpose, r: &mut Report) {
    let voter = purpose.is_voter();
    let (cluster, node) = (&config.cluster, &config.node);
    if cluster.name.is_empty() {
        r.add("cluster.name", "must not be empty", "the default is \"pgha\"");
    } else if !cluster
        .name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
    {
        r.add(
            "cluster.name",
            format!("{:?} has characters other than a-z, 0-9, '_' and '-'", cluster.name),
            "use lowercase letters, digits, '_' and '-', e.g. \"pgha\" or \"orders-prod\"",
        );
    }

    if node.name.is_empty() {
        if matches!(purpose, Purpose::Run(_)) {
            r.add(
                "node.name",
                "is required",
                "set node.name (or PGHA_NODE__NAME) to this node's name, e.g. \"db1\"",
            );
        }
    } else if !valid_member_name(&node.name) {
        r.add(
            "node.name",
            format!(
                "{:?} has characters other than letters, digits, '.', '_' and '-'",
                node.name
            ),
            "use a short name such as \"db1\"",
        );
    }
    if voter && node.data_dir.as_os_str().is_empty() {
        r.add(
            "node.data_dir",
            "is required for db and witness nodes",
            "set node.data_dir to the directory for pgha's Raft state, e.g. \"/var/lib/pgha\"",
        );
    }
}

/// `dcs.listen`, `advertise`, `peers` (unique names and addresses, this node among them) and `endpoints`.
fn dcs_addresses(config: &Config, purpose: Purpose, r: &mut Report) {
    let voter = purpose.is_voter();
    let (node, dcs) = (&config.node, &config.dcs);
    if dcs.listen.is_empty() {
        if voter {
            r.add(
                "dcs.listen",
                "is required for db and witness nodes",
                "set dcs.listen to the host:port to bind, e.g. \"0.0.0.0:7400\"",
            );
        }
    } else if let Err(e) = parse_addr(&dcs.listen) {
        r.syntax("dcs.listen", e);
    }
    if let Some(advertise) = dcs.advertise.as_deref().filter(|a| !a.is_empty()) {
        if let Err(e) = check_addr(advertise) {
            r.syntax("dcs.advertise", e);
        }
    }

    if dcs.peers.is_empty() {
        if voter {
            r.add(
                "dcs.peers",
                "is required for db and witness nodes",
                "list the initial voters, this node included, e.g. [\"db1=10.0.0.1:7400\", \"db2=10.0.0.2:7400\", \"w1=10.0.0.3:7400\"]",
            );
        }
    } else {
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut addrs: HashMap<String, usize> = HashMap::new();
        for (i, entry) in dcs.peers.iter().enumerate() {
            let key = format!("dcs.peers[{i}]");
            let peer = match parse_peer(entry) {
                Ok(peer) => peer,
                Err(e) => {
                    r.syntax(key, e);
                    continue;
                }
            };
            let first = *names.entry(peer.name.clone()).or_insert(i);
            if first != i {
                r.add(
                    key,
                    format!("duplicate member name {:?} (also dcs.peers[{first}])", peer.name),
                    "each member needs a unique name",
                );
                continue;
            }
            // Host names compare case-insensitively; no DNS lookups here.
            let first = *addrs.entry(peer.addr.to_ascii_lowercase()).or_insert(i);
            if first != i {
                r.add(
                    key,
                    format!("duplicate address {:?} (also dcs.peers[{first}])", peer.addr),
                    "each member needs its own host:port",
                );
            }
        }
        // Compare the raw name part so a malformed entry for this node is not
        // reported a second time as "missing".
        let listed = dcs
            .peers
            .iter()
            .any(|p| p.split_once('=').is_some_and(|(name, _)| name == node.name));
        if voter && !node.name.is_empty() && !listed {
            r.add(
                "dcs.peers",
                format!("does not contain this node ({:?})", node.name),
                format!("add \"{}=host:port\" to dcs.peers, or fix node.name", node.name),
            );
        }
    }

    for (i, endpoint) in dcs.endpoints.iter().enumerate() {
        if let Err(e) = check_addr(endpoint) {
            r.syntax(format!("dcs.endpoints[{i}]"), e);
        }
    }
    if !voter && dcs.endpoints.is_empty() && dcs.peers.is_empty() {
        r.add(
            "dcs.endpoints",
            "no DCS endpoints configured",
            "set dcs.endpoints (or dcs.peers) to the host:port of one or more db/witness nodes, e.g. [\"10.0.0.1:7400\"]",
        );
    }
}

/// Raft timing, snapshots, request timeout and `[dcs.limits]`.
fn dcs_timing(dcs: &super::DcsSection, r: &mut Report) {
    if dcs.heartbeat_ms < 10 {
        r.add(
            "dcs.heartbeat_ms",
            format!("{} ms is below the minimum of 10 ms", dcs.heartbeat_ms),
            "the default is 100",
        );
    }
    let min_election = dcs.heartbeat_ms.saturating_mul(3);
    if dcs.election_timeout_min_ms < min_election {
        r.add(
            "dcs.election_timeout_min_ms",
            format!(
                "{} ms is less than 3 x dcs.heartbeat_ms ({min_election} ms)",
                dcs.election_timeout_min_ms
            ),
            "followers would start elections between heartbeats; raise it or lower dcs.heartbeat_ms",
        );
    }
    if dcs.election_timeout_max_ms <= dcs.election_timeout_min_ms {
        r.add(
            "dcs.election_timeout_max_ms",
            format!(
                "{} ms is not greater than dcs.election_timeout_min_ms ({} ms)",
                dcs.election_timeout_max_ms, dcs.election_timeout_min_ms
            ),
            "the timeout is drawn at random between min and max; the defaults are 400 and 800",
        );
    }
    if dcs.snapshot_logs < 100 {
        r.add(
            "dcs.snapshot_logs",
            format!("{} is below the minimum of 100", dcs.snapshot_logs),
            "the default is 5000",
        );
    }
    if dcs.request_timeout_ms == 0 {
        r.add(
            "dcs.request_timeout_ms",
            "must be greater than 0",
            "the default is 2000",
        );
    }
    for (key, message, hint) in dcs.limits.problems() {
        r.add(format!("dcs.limits.{key}"), message, hint);
    }
}

/// `[tls]` files (unless plaintext) and `[log]`.
fn tls_and_log(config: &Config, r: &mut Report) {
    let (tls, log) = (&config.tls, &config.log);
    if !tls.plaintext {
        let files = [
            ("tls.ca", &tls.ca, "the PEM file of the CA that signed all certificates"),
            ("tls.cert", &tls.cert, "this node's (or client's) PEM certificate"),
            ("tls.key", &tls.key, "the PEM private key for tls.cert"),
        ];
        for (key, value, what) in files {
            if value.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                r.add(
                    key,
                    "is required unless tls.plaintext = true",
                    format!("set it to {what}, or set tls.plaintext = true on a trusted network"),
                );
            }
        }
    }

    if log.level.trim().is_empty() {
        r.add(
            "log.level",
            "must not be empty",
            "use an EnvFilter directive such as \"info\" or \"info,pgha=debug\"",
        );
    }
}
