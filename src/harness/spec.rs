//! The typed description of a cluster under test (members, edges, TLS, secrets, extra config sections) and its
//! rendering to each process's TOML config: one renderer for the loopback cluster and the six hosts.

use std::path::{Path, PathBuf};

use crate::config::Role;

/// What every member's config gets besides its identity: the extra config sections (tests use them for timing,
/// PostgreSQL parameters, sync mode...).
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Appended to the `[dcs]` section (tests use it for timing).
    pub extra_dcs: String,
    /// Appended at the end of the config (e.g. `[postgresql.parameters]` for db nodes).
    pub extra_toml: String,
    /// Lines of the `[postgresql]` section of db nodes (e.g. `tls = false`).
    pub pg_lines: String,
    /// Lines of the `[ha]` section of db nodes (e.g. `ttl_ms = 2000`); pgha adds `rest_listen` itself.
    pub ha_lines: String,
    /// Start nodes with `PGHA_FAULT_INJECTION=1` so tests can partition them.
    pub fault_injection: bool,
}

/// The whole cluster: every process's config is rendered from this.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// `[cluster] name`.
    pub name: String,
    /// The directory of `ca.pem` and `<name>.pem` / `<name>-key.pem`; None: plaintext.
    pub certs: Option<PathBuf>,
    /// The directory of the `superuser` and `replication` password files (db members).
    pub secrets: PathBuf,
    /// Extra config sections of every member.
    pub layout: Layout,
    /// The DCS members (db nodes and witnesses), in order.
    pub members: Vec<MemberSpec>,
}

/// One DCS member.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    pub name: String,
    /// `Role::Db` or `Role::Witness`.
    pub role: Role,
    /// `[node] data_dir`.
    pub data_dir: PathBuf,
    /// `[dcs] listen`, also what peers and clients dial.
    pub dcs_listen: String,
    /// `[postgresql] listen` (db members).
    pub pg_listen: Option<String>,
    /// `[postgresql] data_dir`, when not pgha's default under `data_dir`.
    pub pg_data_dir: Option<PathBuf>,
    /// `[ha] rest_listen` (db) or `[witness] http_listen` (witness).
    pub http_listen: Option<String>,
}

/// One edge (`pgha run --role edge`).
#[derive(Clone, Debug, Default)]
pub struct EdgeSpec {
    pub name: String,
    /// Its four listeners; None: pgha's defaults.
    pub listen: Option<EdgeListen>,
    /// Extra lines of its `[edge]` section (e.g. `primary_wait_ms = 10000`).
    pub edge_lines: String,
    /// The VIP it competes for.
    pub vip: Option<VipSpec>,
}

/// An edge's listeners (`host:port`).
#[derive(Clone, Debug)]
pub struct EdgeListen {
    pub primary: String,
    pub replica: String,
    pub any: String,
    pub status: String,
}

/// An edge's `[edge.vip]` section.
#[derive(Clone, Debug)]
pub struct VipSpec {
    /// `address/prefix`.
    pub address: String,
    pub interface: String,
    pub priority: u32,
    /// Extra lines (e.g. `ttl_ms = 500`).
    pub lines: String,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

impl ClusterSpec {
    /// The members' `name=host:port` list (`dcs.peers`).
    pub fn peers(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.dcs_listen))
            .collect()
    }

    /// The members' addresses (clients' `dcs.endpoints`).
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.dcs_listen.clone()).collect()
    }

    /// The `[tls]` section of the process with certificate `name`.
    pub fn tls_section(&self, name: &str) -> String {
        match &self.certs {
            Some(certs) => format!(
                "[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                s(&certs.join("ca.pem")),
                s(&certs.join(format!("{name}.pem"))),
                s(&certs.join(format!("{name}-key.pem")))
            ),
            None => "[tls]\nplaintext = true\n".to_string(),
        }
    }

    /// The config of member `m` (its peers: every member of the spec so far).
    pub fn render_member(&self, m: &MemberSpec) -> String {
        let l = &self.layout;
        let role_section = match (m.role, &m.http_listen) {
            (Role::Db, rest) => {
                let data_dir = m
                    .pg_data_dir
                    .as_deref()
                    .map_or(String::new(), |d| format!("data_dir = \"{}\"\n", s(d)));
                let rest = rest
                    .as_deref()
                    .map_or(String::new(), |r| format!("rest_listen = \"{r}\"\n"));
                format!(
                    "[postgresql]\nlisten = \"{pg}\"\n{data_dir}superuser_password_file = \"{su}\"\n\
                     replication_password_file = \"{rep}\"\n{pg_lines}\n[ha]\n{rest}{ha}\n",
                    pg = m.pg_listen.as_deref().unwrap_or("127.0.0.1:5432"),
                    su = s(&self.secrets.join("superuser")),
                    rep = s(&self.secrets.join("replication")),
                    pg_lines = l.pg_lines,
                    ha = l.ha_lines,
                )
            }
            (Role::Witness, Some(http)) => format!("[witness]\nhttp_listen = \"{http}\"\n"),
            _ => String::new(),
        };
        format!(
            "[cluster]\nname = \"{cluster}\"\n\n[node]\nname = \"{name}\"\ndata_dir = \"{data}\"\n\n[dcs]\n\
             listen = \"{listen}\"\npeers = {peers:?}\n{extra_dcs}\n\n{tls}\n{role_section}{extra}\n",
            cluster = self.name,
            name = m.name,
            data = s(&m.data_dir),
            listen = m.dcs_listen,
            peers = self.peers(),
            extra_dcs = l.extra_dcs,
            tls = self.tls_section(&m.name),
            extra = l.extra_toml,
        )
    }

    /// The config of edge `e`, following every member.
    pub fn render_edge(&self, e: &EdgeSpec) -> String {
        let mut edge = String::new();
        if e.listen.is_some() || !e.edge_lines.is_empty() {
            edge.push_str("[edge]\n");
            if let Some(l) = &e.listen {
                edge.push_str(&format!(
                    "primary_listen = \"{}\"\nreplica_listen = \"{}\"\nany_listen = \"{}\"\nstatus_listen = \"{}\"\n",
                    l.primary, l.replica, l.any, l.status
                ));
            }
            edge.push_str(&e.edge_lines);
            edge.push_str("\n\n");
        }
        if let Some(v) = &e.vip {
            edge.push_str(&format!(
                "[edge.vip]\naddress = \"{}\"\ninterface = \"{}\"\npriority = {}\n{}",
                v.address, v.interface, v.priority, v.lines
            ));
        }
        format!(
            "[cluster]\nname = \"{cluster}\"\n\n[node]\nname = \"{name}\"\n\n[dcs]\nendpoints = {endpoints:?}\n\n\
             {tls}\n{edge}",
            cluster = self.name,
            name = e.name,
            endpoints = self.endpoints(),
            tls = self.tls_section(&e.name),
        )
    }

    /// `ctl.toml`: every member as an endpoint, the `ctl` certificate.
    pub fn render_ctl(&self) -> String {
        format!(
            "[cluster]\nname = \"{}\"\n\n[dcs]\nendpoints = {:?}\n\n{}",
            self.name,
            self.endpoints(),
            self.tls_section("ctl")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(certs: Option<&str>) -> ClusterSpec {
        ClusterSpec {
            name: "demo".into(),
            certs: certs.map(PathBuf::from),
            secrets: PathBuf::from("/c/secrets"),
            layout: Layout {
                extra_dcs: "heartbeat_ms = 20\n".into(),
                ha_lines: "ttl_ms = 1000\n".into(),
                pg_lines: "tls = false\n".into(),
                extra_toml: "[log]\nformat = \"json\"\n".into(),
                fault_injection: false,
            },
            members: vec![
                MemberSpec {
                    name: "db1".into(),
                    role: Role::Db,
                    data_dir: "/c/db1".into(),
                    dcs_listen: "10.0.0.1:2379".into(),
                    pg_listen: Some("10.0.0.1:5432".into()),
                    pg_data_dir: Some("/disk/pgdata".into()),
                    http_listen: Some("10.0.0.1:8008".into()),
                },
                MemberSpec {
                    name: "w1".into(),
                    role: Role::Witness,
                    data_dir: "/c/w1".into(),
                    dcs_listen: "10.0.0.2:2379".into(),
                    pg_listen: None,
                    pg_data_dir: None,
                    http_listen: Some("10.0.0.2:8008".into()),
                },
            ],
        }
    }

    fn toml(text: &str) -> toml::Table {
        text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn at<'a>(t: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
        let mut parts = path.split('.');
        let mut v = t.get(parts.next()?)?;
        for p in parts {
            v = v.get(p)?;
        }
        Some(v)
    }

    #[test]
    fn every_process_gets_its_sections() {
        let plain = spec(None);
        let tls = spec(Some("/c/certs"));
        let db = toml(&tls.render_member(&tls.members[0]));
        let witness = toml(&plain.render_member(&plain.members[1]));
        let edge = EdgeSpec {
            name: "edge1".into(),
            listen: None,
            edge_lines: String::new(),
            vip: Some(VipSpec {
                address: "10.0.0.100/24".into(),
                interface: "eth0".into(),
                priority: 100,
                lines: "ttl_ms = 500\n".into(),
            }),
        };
        let edge = toml(&tls.render_edge(&edge));
        let local_edge = EdgeSpec {
            name: "edge2".into(),
            listen: Some(EdgeListen {
                primary: "127.0.0.1:1".into(),
                replica: "127.0.0.1:2".into(),
                any: "127.0.0.1:3".into(),
                status: "127.0.0.1:4".into(),
            }),
            edge_lines: "primary_wait_ms = 10000".into(),
            vip: None,
        };
        let local_edge = toml(&plain.render_edge(&local_edge));
        let ctl = toml(&tls.render_ctl());
        let peers = toml::Value::from(vec!["db1=10.0.0.1:2379", "w1=10.0.0.2:2379"]);
        let endpoints = toml::Value::from(vec!["10.0.0.1:2379", "10.0.0.2:2379"]);
        let cases: Vec<(&toml::Table, &str, toml::Value)> = vec![
            (&db, "cluster.name", "demo".into()),
            (&db, "node.name", "db1".into()),
            (&db, "node.data_dir", "/c/db1".into()),
            (&db, "dcs.listen", "10.0.0.1:2379".into()),
            (&db, "dcs.peers", peers.clone()),
            (&db, "dcs.heartbeat_ms", 20.into()),
            (&db, "tls.cert", "/c/certs/db1.pem".into()),
            (&db, "postgresql.listen", "10.0.0.1:5432".into()),
            (&db, "postgresql.data_dir", "/disk/pgdata".into()),
            (&db, "postgresql.tls", false.into()),
            (&db, "postgresql.superuser_password_file", "/c/secrets/superuser".into()),
            (&db, "ha.rest_listen", "10.0.0.1:8008".into()),
            (&db, "ha.ttl_ms", 1000.into()),
            (&db, "log.format", "json".into()),
            (&witness, "witness.http_listen", "10.0.0.2:8008".into()),
            (&witness, "dcs.peers", peers),
            (&witness, "tls.plaintext", true.into()),
            (&edge, "dcs.endpoints", endpoints.clone()),
            (&edge, "edge.vip.address", "10.0.0.100/24".into()),
            (&edge, "edge.vip.priority", 100.into()),
            (&edge, "edge.vip.ttl_ms", 500.into()),
            (&edge, "tls.key", "/c/certs/edge1-key.pem".into()),
            (&local_edge, "edge.status_listen", "127.0.0.1:4".into()),
            (&local_edge, "edge.primary_wait_ms", 10000.into()),
            (&ctl, "dcs.endpoints", endpoints),
            (&ctl, "tls.cert", "/c/certs/ctl.pem".into()),
        ];
        for (table, path, want) in cases {
            assert_eq!(at(table, path), Some(&want), "{path}");
        }
        assert!(at(&witness, "postgresql").is_none() && at(&witness, "ha").is_none());
        assert!(at(&edge, "edge.primary_listen").is_none(), "pgha's default listeners");
    }
}
