//! The edge's routing table (pure): which backends serve each client port, decided from one DCS view, and which
//! backends lost a role between two tables (their sessions must be closed at once).
//!
//! Invariant 1: the primary port routes only to the leader-key holder once it reports running as primary, and only
//! while the view is fresher than the leader TTL; the any port includes the primary under the same conditions.

use std::fmt;

use crate::cluster::model::{ClusterView, MemberInfo, PgRole, PgState};

/// A client port of the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    Primary,
    Replica,
    Any,
}

impl Port {
    /// Every port, in display order.
    pub const ALL: [Port; 3] = [Port::Primary, Port::Replica, Port::Any];

    /// Lowercase name (logs, metrics labels, status page).
    pub fn as_str(self) -> &'static str {
        match self {
            Port::Primary => "primary",
            Port::Replica => "replica",
            Port::Any => "any",
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A PostgreSQL server the edge forwards to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Member name.
    pub name: String,
    /// `host:port` to connect to.
    pub addr: String,
}

/// Routing options from `[edge]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoutingOpts {
    /// Replicas lagging more than this many bytes get no new replica-port sessions.
    pub max_lag_bytes: Option<u64>,
}

/// Where each port routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingTable {
    /// False until the first DCS view was read: nothing is routed (roles are unknown).
    pub open: bool,
    /// Name in the leader key, if any (routed or not).
    pub leader: Option<String>,
    /// The primary port's backend.
    pub primary: Option<Backend>,
    /// Why the primary route is what it is (logged on changes, shown on the status page).
    pub primary_reason: String,
    /// Streaming replicas that take new replica-port sessions (not `noloadbalance`, within the lag limit).
    pub replicas: Vec<Backend>,
    /// Every streaming replica: the replica role. Sessions to a backend outside it are closed.
    pub replica_role: Vec<String>,
    /// Every running member the any port balances over (the primary only under the primary port's conditions).
    pub any: Vec<Backend>,
    /// The cluster is a standby cluster following this remote: the primary port refuses clients at once.
    pub standby_of: Option<String>,
}

/// A backend that lost its role on a port: every session to it on that port must be closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub port: Port,
    pub backend: String,
    pub reason: String,
}

fn backend(m: &MemberInfo) -> Backend {
    let host = if m.pg_host.contains(':') {
        format!("[{}]", m.pg_host)
    } else {
        m.pg_host.clone()
    };
    Backend {
        name: m.name.clone(),
        addr: format!("{host}:{}", m.pg_port),
    }
}

fn is_streaming_replica(m: &MemberInfo, leader: Option<&str>) -> bool {
    m.role == PgRole::Replica && m.state == PgState::Streaming && Some(m.name.as_str()) != leader
}

impl RoutingTable {
    /// The table before any view was read: every port closed.
    pub fn closed() -> RoutingTable {
        RoutingTable {
            open: false,
            leader: None,
            primary: None,
            primary_reason: "no DCS view read yet".to_string(),
            standby_of: None,
            replicas: Vec::new(),
            replica_role: Vec::new(),
            any: Vec::new(),
        }
    }

    /// The table for `view`; `now_fresh` = the view is younger than the leader TTL (else no primary route).
    pub fn from_view(view: &ClusterView, now_fresh: bool, opts: &RoutingOpts) -> RoutingTable {
        let leader = view.leader.as_ref().map(|l| l.name.as_str());
        let standby_of = view.config.standby_cluster.as_ref().map(|s| s.describe());
        let (primary, primary_reason) = match (now_fresh, leader, view.leader_member()) {
            (false, _, _) => (
                None,
                "DCS view not confirmed for the leader TTL (at least 2 s)".to_string(),
            ),
            (true, _, _) if standby_of.is_some() => (
                None,
                format!(
                    "standby cluster following {}: no primary to write to",
                    standby_of.as_deref().unwrap_or_default()
                ),
            ),
            (true, None, _) => (None, "no leader key".to_string()),
            (true, Some(name), None) => (None, format!("leader {name} has published no status")),
            (true, Some(name), Some(m)) if m.role != PgRole::Primary || m.state != PgState::Running => (
                None,
                format!("leader {name} is not running as primary ({})", m.state.label()),
            ),
            (true, Some(name), Some(m)) => (Some(backend(m)), format!("{name} holds the leader key, running")),
        };
        // Lag is measured against the primary's position, or the furthest one known while there is none.
        let reference = view
            .leader_member()
            .filter(|m| m.role == PgRole::Primary)
            .map(|m| m.receive_lsn)
            .or_else(|| view.members.values().map(|m| m.receive_lsn).max())
            .unwrap_or(0);
        let streaming: Vec<&MemberInfo> = view
            .members
            .values()
            .filter(|m| is_streaming_replica(m, leader))
            .collect();
        let replicas = streaming
            .iter()
            .filter(|m| !m.noloadbalance)
            .filter(|m| {
                opts.max_lag_bytes
                    .is_none_or(|max| reference.saturating_sub(m.replay_lsn) <= max)
            })
            .map(|m| backend(m))
            .collect();
        let mut any: Vec<Backend> = primary.iter().cloned().collect();
        any.extend(streaming.iter().map(|m| backend(m)));
        any.sort_by(|a, b| a.name.cmp(&b.name));
        RoutingTable {
            open: true,
            leader: leader.map(str::to_string),
            primary,
            primary_reason,
            replicas,
            replica_role: streaming.iter().map(|m| m.name.clone()).collect(),
            any,
            standby_of,
        }
    }

    /// The backends that take new sessions on `port`, in round-robin order.
    pub fn targets(&self, port: Port) -> &[Backend] {
        match port {
            Port::Primary => self.primary.as_slice(),
            Port::Replica => &self.replicas,
            Port::Any => &self.any,
        }
    }

    /// True when `backend` holds the role `port` routes to (its sessions may stay).
    pub fn holds(&self, port: Port, backend: &str) -> bool {
        match port {
            Port::Primary => self.primary.as_ref().is_some_and(|b| b.name == backend),
            Port::Replica => self.replica_role.iter().any(|n| n == backend),
            Port::Any => self.any.iter().any(|b| b.name == backend),
        }
    }

    fn role_holders(&self, port: Port) -> Vec<String> {
        match port {
            Port::Replica => self.replica_role.clone(),
            _ => self.targets(port).iter().map(|b| b.name.clone()).collect(),
        }
    }

    /// The backend for the `n`-th new session on `port` (round robin), if any.
    pub fn pick(&self, port: Port, n: usize) -> Option<&Backend> {
        let targets = self.targets(port);
        (!targets.is_empty()).then(|| &targets[n % targets.len()])
    }
}

fn cut_reason(port: Port, backend: &str, new: &RoutingTable) -> String {
    let promoted = new.leader.as_deref() == Some(backend);
    match port {
        Port::Primary => match &new.primary {
            Some(b) => format!("leader key moved to {}", b.name),
            None => new.primary_reason.clone(),
        },
        Port::Replica if promoted => format!("{backend} took the leader key"),
        Port::Replica => format!("{backend} is no longer a streaming replica"),
        Port::Any if !new.open => "routing closed".to_string(),
        Port::Any => format!("{backend} is no longer a running member we may route to"),
    }
}

/// The backends that held a role in `old` but not in `new`: their live sessions on that port must be closed.
pub fn sessions_to_close(old: &RoutingTable, new: &RoutingTable) -> Vec<Cut> {
    let mut cuts = Vec::new();
    for port in Port::ALL {
        for name in old.role_holders(port) {
            if !new.holds(port, &name) {
                cuts.push(Cut {
                    port,
                    reason: cut_reason(port, &name, new),
                    backend: name,
                });
            }
        }
    }
    cuts
}

fn names(backends: &[Backend]) -> String {
    let list: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
    format!("[{}]", list.join(", "))
}

/// A port whose routes changed: the log line's structured fields and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteChange {
    pub port: Port,
    /// Where the port routes now: a member name or `none` (primary), `[names]` (replica, any).
    pub to: String,
    pub line: String,
}

/// One log line per port whose routes changed, with the reason.
pub fn describe_changes(old: &RoutingTable, new: &RoutingTable) -> Vec<RouteChange> {
    let mut lines = Vec::new();
    if old.primary != new.primary {
        let name = |b: &Option<Backend>| b.as_ref().map_or("none".to_string(), |b| b.name.clone());
        let reason = match (&old.primary, &new.primary) {
            (Some(_), Some(_)) => "leader key moved".to_string(),
            _ => new.primary_reason.clone(),
        };
        lines.push(RouteChange {
            port: Port::Primary,
            to: name(&new.primary),
            line: format!(
                "primary route {} -> {}: {reason}",
                name(&old.primary),
                name(&new.primary)
            ),
        });
    }
    for (port, old_t, new_t) in [
        (Port::Replica, &old.replicas, &new.replicas),
        (Port::Any, &old.any, &new.any),
    ] {
        if old_t != new_t {
            let why = if !new.open {
                "routing closed"
            } else if port == Port::Replica {
                "streaming replicas changed"
            } else {
                "running members changed"
            };
            lines.push(RouteChange {
                port,
                to: names(new_t),
                line: format!("{port} route {} -> {}: {why}", names(old_t), names(new_t)),
            });
        }
    }
    lines
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
