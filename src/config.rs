//! Configuration: a TOML file with defaults, `PGHA_<SECTION>__<KEY>` environment overrides, flag overrides and validation.
//!
//! Sources are applied in this order, later ones winning: built-in defaults, the
//! config file, environment variables, command-line flags ([`Overrides`]). The
//! merged result is then checked for the [`Purpose`] it is loaded for, and every
//! problem found is reported at once ([`ConfigError::Invalid`]).
//!
//! Environment variables: `PGHA_<SECTION>__<KEY>` sets `<key>` in `[<section>]`
//! (names are case-insensitive; `__` separates the section from the key), e.g.
//! `PGHA_NODE__NAME=db1`, `PGHA_TLS__PLAINTEXT=true`, `PGHA_DCS__HEARTBEAT_MS=50`.
//! List keys take either a TOML array (`["db1=10.0.0.1:7400","db2=10.0.0.2:7400"]`)
//! or a comma-separated list (`db1=10.0.0.1:7400,db2=10.0.0.2:7400`). Booleans
//! accept `true/false`, `yes/no`, `on/off`, `1/0`. Table keys
//! (`postgresql.parameters`, `ha.tags`) take a TOML inline table
//! (`{max_connections = 200, shared_buffers = "256MB"}`) or a comma-separated
//! `key=value` list (`max_connections=200,shared_buffers=256MB`, values kept as
//! text) and replace the whole table of the file. An empty value unsets an
//! optional key (`dcs.advertise`, `tls.ca`, `postgresql.data_dir`, ...) and empties a
//! list or table. Variables starting with `PGHA_` but without `__` (such as `PGHA_LOG`)
//! are not configuration and are ignored; a `PGHA_X__Y` naming no known key is
//! an error.

use crate::identity::LegacyCertificates;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod backup;
mod callbacks;
mod edge;
mod env;
mod error;
mod examples;
mod overrides;
mod postgresql;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_edge;
#[cfg(test)]
mod tests_examples;
#[cfg(test)]
mod tests_pg;
#[cfg(test)]
mod tests_secret;
mod validate;
mod validate_backup;
mod validate_pg;

pub use backup::{BootstrapSection, CreateReplicaMethod, PgbackrestSection, BASEBACKUP, INITDB, PGBACKREST};
pub use callbacks::{CallbacksSection, HookCommand, PrePromoteOnTimeout};
pub use edge::{parse_vip_address, port_caps, EdgeSection, PortCapError, PortCaps, VipSection};
pub use error::{ConfigError, Peer, Problem, SyntaxError};
pub use examples::example;
pub use overrides::Overrides;
pub(crate) use postgresql::flatten as flatten_settings;
pub use postgresql::{HaSection, PostgresqlSection};
pub use validate::check_addr;

/// The role a `pgha` process runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Raft voter of the embedded DCS that also supervises the local PostgreSQL.
    Db,
    /// Raft voter without PostgreSQL (keeps a quorum with two db nodes).
    Witness,
    /// TCP proxy and VIP holder; a client of the DCS, not a member.
    Edge,
}

impl Role {
    /// Every role, in documentation order.
    pub const ALL: [Role; 3] = [Role::Db, Role::Witness, Role::Edge];

    /// The lowercase name used in configs and on the command line (`db`, `witness`, `edge`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Db => "db",
            Role::Witness => "witness",
            Role::Edge => "edge",
        }
    }

    /// True for the roles that are Raft voters (`db`, `witness`): they need
    /// `node.data_dir`, `dcs.listen` and `dcs.peers`.
    pub fn is_voter(self) -> bool {
        matches!(self, Role::Db | Role::Witness)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a config is loaded for; decides which keys are required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Running a node in the given role (`pgha db`, `pgha witness`, `pgha edge`).
    Run(Role),
    /// The `pgha ctl` command-line client (needs only DCS endpoints and TLS).
    Ctl,
}

impl Purpose {
    fn is_voter(self) -> bool {
        matches!(self, Purpose::Run(role) if role.is_voter())
    }
}

/// The whole configuration file. Every section and every key is optional in
/// the file itself; which keys must end up set depends on the [`Purpose`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[cluster]`: identity of the cluster.
    pub cluster: ClusterSection,
    /// `[node]`: identity and state directory of this node.
    pub node: NodeSection,
    /// `[dcs]`: the embedded Raft DCS and how to reach it.
    pub dcs: DcsSection,
    /// `[postgresql]`: the local PostgreSQL a db node supervises (ignored by other roles).
    pub postgresql: PostgresqlSection,
    /// `[ha]`: failover behaviour of this node and the initial dynamic settings (ignored by other roles).
    pub ha: HaSection,
    /// `[edge]`: client ports, status page and virtual IP of an edge (ignored by other roles).
    pub edge: EdgeSection,
    /// `[witness]`: the witness's HTTP endpoint (ignored by other roles).
    pub witness: WitnessSection,
    /// `[tls]`: certificates for all gRPC traffic (mutual TLS).
    pub tls: TlsSection,
    /// `[log]`: log output.
    pub log: LogSection,
}

/// `[cluster]`: identity of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// `cluster.name` (`PGHA_CLUSTER__NAME`): name of the cluster; lowercase
    /// letters, digits, `_` and `-`. Every node, edge and ctl of one cluster
    /// must use the same name. Default: `"pgha"`.
    pub name: String,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            name: "pgha".to_string(),
        }
    }
}

/// `[node]`: identity and state directory of this node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// `node.name` (`PGHA_NODE__NAME`): this node's name (letters, digits, `.`,
    /// `_`, `-`). For db and witness it must match this node's entry in
    /// `dcs.peers`. Required for db, witness and edge; optional for ctl. No default.
    pub name: String,
    /// `node.data_dir` (`PGHA_NODE__DATA_DIR`): directory for pgha's own state
    /// on this node (the Raft log and snapshots of the embedded DCS). Required
    /// for db and witness; unused by edge and ctl. No default.
    pub data_dir: PathBuf,
}

/// `[dcs]`: the embedded Raft DCS (members, timing) and how clients reach it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DcsSection {
    /// `dcs.listen` (`PGHA_DCS__LISTEN`): `host:port` the gRPC server binds for
    /// Raft traffic and the client API, e.g. `"0.0.0.0:7400"` or `"[::]:7400"`.
    /// Required for db and witness. No default, so that a node never listens on
    /// all interfaces unless told to.
    pub listen: String,
    /// `dcs.advertise` (`PGHA_DCS__ADVERTISE`): `host:port` other members and
    /// clients use to reach this node. Default: this node's address in
    /// `dcs.peers` (or `dcs.listen` when it has no entry there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// `dcs.peers` (`PGHA_DCS__PEERS`): the initial voters as `"name=host:port"`
    /// (IPv6 as `"db1=[fd00::1]:7400"`). Used to bootstrap the cluster exactly
    /// once; later membership changes go through `pgha ctl`. Required for db
    /// and witness, and must contain this node. Names and addresses must be
    /// unique. Default: empty.
    pub peers: Vec<String>,
    /// `dcs.endpoints` (`PGHA_DCS__ENDPOINTS`): `host:port` of DCS members that
    /// edge and ctl connect to. Default: empty, meaning the addresses in
    /// `dcs.peers`; one of the two must be set for edge and ctl.
    pub endpoints: Vec<String>,
    /// `dcs.heartbeat_ms` (`PGHA_DCS__HEARTBEAT_MS`): Raft leader heartbeat
    /// interval in milliseconds; at least 10. Default: 50.
    pub heartbeat_ms: u64,
    /// `dcs.election_timeout_min_ms` (`PGHA_DCS__ELECTION_TIMEOUT_MIN_MS`):
    /// lower bound of the randomized Raft election timeout in milliseconds; at
    /// least 3 × `heartbeat_ms`. Default: 250.
    pub election_timeout_min_ms: u64,
    /// `dcs.election_timeout_max_ms` (`PGHA_DCS__ELECTION_TIMEOUT_MAX_MS`):
    /// upper bound of the election timeout in milliseconds; greater than
    /// `election_timeout_min_ms`. Default: 400. openraft waits this long (its leader lease)
    /// plus a random election timeout before campaigning, so a dead leader is replaced after
    /// about max + [min, max] ms: 650-800 ms with the defaults.
    pub election_timeout_max_ms: u64,
    /// `dcs.snapshot_logs` (`PGHA_DCS__SNAPSHOT_LOGS`): number of Raft log
    /// entries between snapshots; at least 100. Default: 5000.
    pub snapshot_logs: u64,
    /// `dcs.request_timeout_ms` (`PGHA_DCS__REQUEST_TIMEOUT_MS`): timeout in
    /// milliseconds of client RPCs and of requests forwarded to the leader;
    /// greater than 0. Default: 2000.
    pub request_timeout_ms: u64,
    /// `[dcs.limits]`: request and state size limits, with their keys, bounds and defaults in
    /// [`crate::dcs::limits::Limits`]. Used by db and witness members; edges and ctl accept any member's replies.
    pub limits: crate::dcs::limits::Limits,
}

impl Default for DcsSection {
    fn default() -> Self {
        DcsSection {
            listen: String::new(),
            advertise: None,
            peers: Vec::new(),
            endpoints: Vec::new(),
            heartbeat_ms: 50,
            election_timeout_min_ms: 250,
            election_timeout_max_ms: 400,
            snapshot_logs: 5000,
            request_timeout_ms: 2000,
            limits: crate::dcs::limits::Limits::DEFAULT,
        }
    }
}

/// `[tls]`: certificates for all gRPC traffic (mutual TLS between members,
/// edges and ctl). Whether the files exist is checked at start-up, not here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// `tls.plaintext` (`PGHA_TLS__PLAINTEXT`): disable TLS entirely (only for
    /// trusted networks and tests); `ca`, `cert` and `key` are then ignored.
    /// Default: `false`.
    pub plaintext: bool,
    /// `tls.ca` (`PGHA_TLS__CA`): PEM file of the CA that signed every node's
    /// and client's certificate. Required unless `plaintext = true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// `tls.cert` (`PGHA_TLS__CERT`): PEM certificate of this node (or of the
    /// ctl user), presented to peers. Required unless `plaintext = true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// `tls.key` (`PGHA_TLS__KEY`): PEM private key for `tls.cert`. Required
    /// unless `plaintext = true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// `tls.legacy_certificates` (`PGHA_TLS__LEGACY_CERTIFICATES`): what a member
    /// does with a peer certificate that carries no pgha role (issued before
    /// roles): `"allow"` (full rights, as before; warned once per peer) or
    /// `"deny"` (refused). Default: `"allow"`. See docs/security.md.
    pub legacy_certificates: LegacyCertificates,
}

/// `[witness]`: the HTTP endpoint of a witness (`/metrics`, `/health`, `/readiness`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WitnessSection {
    /// `witness.http_listen` (`PGHA_WITNESS__HTTP_LISTEN`): `host:port` of the
    /// witness's HTTP endpoint (`/metrics`, `/health`, `/readiness`); `""`
    /// turns it off. Default (unset): `"0.0.0.0:8008"`, and an address in use
    /// is then logged, not fatal; a configured address must bind.
    pub http_listen: Option<String>,
}

impl WitnessSection {
    /// The default `witness.http_listen`.
    pub const DEFAULT_HTTP_LISTEN: &'static str = "0.0.0.0:8008";
}

/// `[log]`: log output.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `log.format` (`PGHA_LOG__FORMAT`): `"human"` or `"json"`. Default: `"human"`.
    pub format: LogFormat,
    /// `log.level` (`PGHA_LOG__LEVEL`): a tracing `EnvFilter` directive such as
    /// `"info"` or `"info,pgha::dcs=debug"`; must not be empty. Default: `"info"`.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Human,
            level: "info".to_string(),
        }
    }
}

/// Log line format (`log.format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Loads the configuration for `purpose`: reads `path` (with `None`, starts
    /// from the defaults), overlays `PGHA_<SECTION>__<KEY>` environment
    /// variables, then `overrides` (flags), and validates the result.
    pub fn load(path: Option<&Path>, purpose: Purpose, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_path_buf(),
                source,
            })?),
            None => None,
        };
        let origin = path.map(|p| p.display().to_string());
        let env = env::process_env()?;
        Self::from_sources(origin.as_deref().zip(text.as_deref()), env, purpose, overrides)
    }

    /// Same as [`Config::load`], but from in-memory sources: `file` is
    /// `(origin name, TOML text)`, `env` the environment variables to consider
    /// (ones not of the form `PGHA_<SECTION>__<KEY>` are ignored).
    pub fn from_sources(
        file: Option<(&str, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
        purpose: Purpose,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut sources = Vec::new();
        let mut table = match file {
            Some((origin, text)) => {
                let parse_err = |e: toml::de::Error| ConfigError::Parse {
                    origin: origin.to_string(),
                    message: e.to_string().trim_end().to_string(),
                };
                // Deserialize straight from the text first: only then do toml's
                // errors carry the line, the offending key and a snippet. The
                // table parsed next is what the environment gets merged into.
                toml::from_str::<Config>(text).map_err(parse_err)?;
                sources.push(origin.to_string());
                text.parse::<toml::Table>().map_err(parse_err)?
            }
            None => toml::Table::new(),
        };
        let env_vars = env::overlay(&mut table, env)?;
        if !env_vars.is_empty() {
            sources.push(format!("environment {}", env_vars.join(", ")));
        }
        let mut config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    origin: "environment".to_string(),
                    message: e.to_string().trim_end().to_string(),
                })?;
        if overrides.apply(&mut config) {
            sources.push("command-line flags".to_string());
        }
        let problems = config.problems(purpose);
        if problems.is_empty() {
            return Ok(config);
        }
        let origin = if sources.is_empty() {
            "built-in defaults".to_string()
        } else {
            sources.join(", ")
        };
        Err(ConfigError::Invalid { origin, problems })
    }

    /// Every rule this configuration breaks for `purpose` (empty when valid).
    /// [`Config::load`] already runs this; it is public for callers that build
    /// or modify a `Config` themselves.
    pub fn problems(&self, purpose: Purpose) -> Vec<Problem> {
        validate::problems(self, purpose)
    }

    /// The members of `dcs.peers`, parsed. Malformed entries are skipped, which
    /// cannot happen for a config returned by [`Config::load`].
    pub fn peers(&self) -> Vec<Peer> {
        self.dcs.peers.iter().filter_map(|p| p.parse().ok()).collect()
    }

    /// The address others use to reach this node: `dcs.advertise` if set, else
    /// this node's address in `dcs.peers`, else `dcs.listen`.
    pub fn advertise_addr(&self) -> String {
        if let Some(addr) = self.dcs.advertise.as_deref().filter(|a| !a.is_empty()) {
            return addr.to_string();
        }
        self.peers()
            .into_iter()
            .find(|p| p.name == self.node.name)
            .map(|p| p.addr)
            .unwrap_or_else(|| self.dcs.listen.clone())
    }

    /// The DCS addresses edge and ctl connect to: `dcs.endpoints` if set, else
    /// the addresses in `dcs.peers`.
    pub fn client_endpoints(&self) -> Vec<String> {
        if !self.dcs.endpoints.is_empty() {
            return self.dcs.endpoints.clone();
        }
        self.peers().into_iter().map(|p| p.addr).collect()
    }
}
