//! The `[postgresql]` and `[ha]` sections, and the helpers a db node uses to read them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use super::{validate, CallbacksSection, Config, ConfigError, HookCommand, PrePromoteOnTimeout};

/// `[postgresql]`: the local PostgreSQL that a db node supervises. Only
/// checked for `pgha db`; other roles ignore the section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresqlSection {
    /// `postgresql.bin_dir` (`PGHA_POSTGRESQL__BIN_DIR`): directory holding
    /// `postgres`, `initdb`, `pg_ctl`, ... Default: discovered (`pg_config
    /// --bindir`, then `/usr/lib/postgresql/<version>/bin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
    /// `postgresql.data_dir` (`PGHA_POSTGRESQL__DATA_DIR`): the data directory
    /// (PGDATA); must differ from `node.data_dir`. Default: `<node.data_dir>/pgdata`
    /// (see [`Config::pg_data_dir`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `postgresql.listen` (`PGHA_POSTGRESQL__LISTEN`): `host:port` giving
    /// `listen_addresses` and `port`; may be a bind-all address (`0.0.0.0:5432`,
    /// `[::]:5432`). Default: `"0.0.0.0:5432"`.
    pub listen: String,
    /// `postgresql.connect_address` (`PGHA_POSTGRESQL__CONNECT_ADDRESS`):
    /// `host:port` other nodes and clients use to reach this PostgreSQL; not a
    /// bind-all address. Default: the host of the DCS advertise address with the
    /// port of `listen` (see [`Config::pg_connect_address`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_address: Option<String>,
    /// `postgresql.os_user` (`PGHA_POSTGRESQL__OS_USER`): OS user that owns the
    /// data directory and runs PostgreSQL when pgha runs as root; letters,
    /// digits and `_`. Default: `"postgres"`.
    pub os_user: String,
    /// `postgresql.superuser` (`PGHA_POSTGRESQL__SUPERUSER`): database
    /// superuser created by initdb; letters, digits and `_`, not starting with
    /// `pg_`. Default: `"postgres"`.
    pub superuser: String,
    /// `postgresql.superuser_password_file` (`PGHA_POSTGRESQL__SUPERUSER_PASSWORD_FILE`):
    /// file whose first line is the superuser's password (read with
    /// [`Config::read_secret`]). Required for db. No default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superuser_password_file: Option<PathBuf>,
    /// `postgresql.replication_user` (`PGHA_POSTGRESQL__REPLICATION_USER`): role
    /// used by replicas, `pg_basebackup` and `pg_rewind`; same rules as
    /// `superuser`, and different from it. Default: `"replicator"`.
    pub replication_user: String,
    /// `postgresql.replication_password_file` (`PGHA_POSTGRESQL__REPLICATION_PASSWORD_FILE`):
    /// file whose first line is the replication user's password. Required for
    /// db. No default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_password_file: Option<PathBuf>,
    /// `postgresql.pg_hba` (`PGHA_POSTGRESQL__PG_HBA`): `pg_hba.conf` lines, one
    /// per entry. Default: empty, meaning pgha's safe default rules.
    pub pg_hba: Vec<String>,
    /// `postgresql.rewind_fallback_reinit` (`PGHA_POSTGRESQL__REWIND_FALLBACK_REINIT`):
    /// when `pg_rewind` fails, clone the data directory again from the leader.
    /// Default: `true`.
    pub rewind_fallback_reinit: bool,
    /// `postgresql.allow_wipe_foreign_data` (`PGHA_POSTGRESQL__ALLOW_WIPE_FOREIGN_DATA`):
    /// allow pgha to wipe a data directory that belongs to another cluster;
    /// with `false` such a directory is refused, never wiped. Default: `false`.
    pub allow_wipe_foreign_data: bool,
    /// `postgresql.start_timeout_ms` (`PGHA_POSTGRESQL__START_TIMEOUT_MS`): how
    /// long PostgreSQL may take to start, in ms; at least 1000. Default: 60000.
    pub start_timeout_ms: u64,
    /// `postgresql.tls` (`PGHA_POSTGRESQL__TLS`): when `[tls]` has a cert and
    /// key (and `tls.plaintext` is false), PostgreSQL serves TLS with them.
    /// Default: `true`.
    pub tls: bool,
    /// `postgresql.pre_promote` (`PGHA_POSTGRESQL__PRE_PROMOTE`): command run after this node won the leader key and
    /// before it promotes PostgreSQL, with no arguments (as Patroni runs it; `PGHA_HOOK`, `PGHA_ROLE`,
    /// `PGHA_CLUSTER`, `PGHA_NODE` in its environment). Exit 0: promote; anything else vetoes the promotion (the
    /// leader key is released and this node stays out of leader races for 3 x ttl). A command line (split like a
    /// shell word list, no shell) or an argv array. Default: unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_promote: Option<HookCommand>,
    /// `postgresql.pre_promote_timeout_ms` (`PGHA_POSTGRESQL__PRE_PROMOTE_TIMEOUT_MS`): a `pre_promote` still running
    /// after this many ms is killed and `pre_promote_on_timeout` decides; at least 100. The leader key stays with
    /// this node meanwhile. Default: 10000.
    pub pre_promote_timeout_ms: u64,
    /// `postgresql.pre_promote_on_timeout` (`PGHA_POSTGRESQL__PRE_PROMOTE_ON_TIMEOUT`): `"veto"` (do not promote) or
    /// `"promote"` after a `pre_promote` timeout. Default: `"veto"`.
    pub pre_promote_on_timeout: PrePromoteOnTimeout,
    /// `postgresql.callback_timeout_ms` (`PGHA_POSTGRESQL__CALLBACK_TIMEOUT_MS`): a `[postgresql.callbacks]` command
    /// still running after this many ms is killed; at least 100. Default: 30000.
    pub callback_timeout_ms: u64,
    /// `postgresql.parameters` (`[postgresql.parameters]`, `PGHA_POSTGRESQL__PARAMETERS`):
    /// PostgreSQL settings by name (`[a-z0-9_.]+`). Values may be written as
    /// TOML strings, integers, floats or booleans and are kept as text
    /// (booleans as `on`/`off`). Parameters pgha sets itself (`listen_addresses`,
    /// `port`, `primary_conninfo`, `ssl`, ...) are refused. Default: empty.
    #[serde(deserialize_with = "setting_texts")]
    pub parameters: BTreeMap<String, String>,
    /// `postgresql.callbacks` (`[postgresql.callbacks]`): Patroni's `on_start`, `on_stop`, `on_restart`,
    /// `on_reload`, `on_role_change`, run in the background after the fact as `<command> <action> <role>
    /// <cluster>`. Default: none.
    pub callbacks: CallbacksSection,
    /// `postgresql.create_replica_methods` (`PGHA_POSTGRESQL__CREATE_REPLICA_METHODS`): how a new replica gets its
    /// data directory, tried in order until one succeeds: `"basebackup"` (pg_basebackup from the leader),
    /// `"pgbackrest"` (restore from `[postgresql.pgbackrest]`) or the name of a `[postgresql.create_replica.<name>]`
    /// command. Default: `["basebackup"]`.
    pub create_replica_methods: Vec<String>,
    /// `postgresql.create_replica` (`[postgresql.create_replica.<name>]`): the command of each method named in
    /// `create_replica_methods` (other than `basebackup`). Default: empty.
    pub create_replica: super::backup::CreateReplicaTable,
    /// `postgresql.clone_stall_timeout_ms` (`PGHA_POSTGRESQL__CLONE_STALL_TIMEOUT_MS`): a replica creation (or a
    /// bootstrap restore) whose data directory did not grow and whose command wrote no line for this long is
    /// aborted and the next method is tried; a slow one that progresses is never cut. At least 1000.
    /// Default: 600000 (10 minutes).
    pub clone_stall_timeout_ms: u64,
    /// `postgresql.pgbackrest` (`[postgresql.pgbackrest]`): the pgBackRest repository (WAL archiving,
    /// `restore_command`, the `pgbackrest` replica and bootstrap methods). Default: unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgbackrest: Option<super::backup::PgbackrestSection>,
    /// `postgresql.bootstrap` (`[postgresql.bootstrap]`): how the first member creates the cluster (initdb, or a
    /// restore from a backup, optionally to a point in time). Default: initdb.
    pub bootstrap: super::backup::BootstrapSection,
}

impl Default for PostgresqlSection {
    fn default() -> Self {
        PostgresqlSection {
            bin_dir: None,
            data_dir: None,
            listen: "0.0.0.0:5432".to_string(),
            connect_address: None,
            os_user: "postgres".to_string(),
            superuser: "postgres".to_string(),
            superuser_password_file: None,
            replication_user: "replicator".to_string(),
            replication_password_file: None,
            pg_hba: Vec::new(),
            rewind_fallback_reinit: true,
            allow_wipe_foreign_data: false,
            start_timeout_ms: 60_000,
            tls: true,
            pre_promote: None,
            pre_promote_timeout_ms: 10_000,
            pre_promote_on_timeout: PrePromoteOnTimeout::Veto,
            callback_timeout_ms: 30_000,
            parameters: BTreeMap::new(),
            callbacks: CallbacksSection::default(),
            create_replica_methods: super::backup::default_methods(),
            create_replica: Default::default(),
            clone_stall_timeout_ms: super::backup::DEFAULT_CLONE_STALL_TIMEOUT_MS,
            pgbackrest: None,
            bootstrap: Default::default(),
        }
    }
}

/// `[ha]`: this node's failover behaviour, and the initial dynamic settings
/// (`ttl_ms`, `loop_wait_ms`, `maximum_lag_on_failover`,
/// `primary_start_timeout_ms`, `synchronous_*`) the first node writes to the DCS; later changes
/// go through `pgha ctl`. Only checked for `pgha db`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HaSection {
    /// `ha.nofailover` (`PGHA_HA__NOFAILOVER`): never promote this node.
    /// Default: `false`.
    pub nofailover: bool,
    /// `ha.failover_priority` (`PGHA_HA__FAILOVER_PRIORITY`): among equally
    /// suitable replicas the higher priority wins; may be negative. Default: 0.
    pub failover_priority: i32,
    /// `ha.noloadbalance` (`PGHA_HA__NOLOADBALANCE`): keep this node out of
    /// read-only load balancing. Default: `false`.
    pub noloadbalance: bool,
    /// `ha.ttl_ms` (`PGHA_HA__TTL_MS`): leader lease TTL in ms; at least 500.
    /// Default: 1200.
    pub ttl_ms: u64,
    /// `ha.loop_wait_ms` (`PGHA_HA__LOOP_WAIT_MS`): period of the HA loop and of
    /// lease renewals in ms; at least 50, and at most `ttl_ms / 2`. Default: 250.
    pub loop_wait_ms: u64,
    /// `ha.maximum_lag_on_failover` (`PGHA_HA__MAXIMUM_LAG_ON_FAILOVER`): a
    /// replica further behind than this many bytes of WAL is not promoted.
    /// Default: 1048576 (1 MiB).
    pub maximum_lag_on_failover: u64,
    /// `ha.primary_start_timeout_ms` (`PGHA_HA__PRIMARY_START_TIMEOUT_MS`): how
    /// long a crashed primary may take to restart in place before it gives up
    /// the leader lease, in ms. Default: 10000.
    pub primary_start_timeout_ms: u64,
    /// `ha.synchronous_mode` (`PGHA_HA__SYNCHRONOUS_MODE`): `off`, `on` (the
    /// `synchronous_node_count` most suitable standbys confirm every commit) or
    /// `quorum` (any `synchronous_node_count` of all healthy standbys confirm it,
    /// so one slow standby does not stall writes). Only a standby that holds every
    /// acknowledged commit is promoted. Default: `off`.
    pub synchronous_mode: crate::cluster::model::SyncMode,
    /// `ha.synchronous_mode_strict` (`PGHA_HA__SYNCHRONOUS_MODE_STRICT`): with no
    /// synchronous standby, block commits instead of replicating asynchronously.
    /// Default: `false`.
    pub synchronous_mode_strict: bool,
    /// `ha.synchronous_node_count` (`PGHA_HA__SYNCHRONOUS_NODE_COUNT`): how many
    /// standbys confirm each commit in synchronous mode; at least 1. Default: 1.
    pub synchronous_node_count: u32,
    /// `ha.rest_listen` (`PGHA_HA__REST_LISTEN`): `host:port` of the Patroni-compatible
    /// REST API (`GET /primary`, `/replica`, `/health`, `/metrics`, ...) that load
    /// balancers and monitoring poll, e.g. `"0.0.0.0:8008"`. Read-only: state changes
    /// go through `pgha ctl` over mutual TLS. Default: unset (no REST API).
    pub rest_listen: Option<String>,
    /// `ha.rest_tls` (`PGHA_HA__REST_TLS`): serve the REST API over HTTPS with
    /// this node's certificate (`[tls]`); clients need the cluster CA, a client
    /// certificate is optional (checked against the CA when presented). Needs
    /// `rest_listen` and `tls.plaintext = false`. Default: `false` (plain HTTP).
    pub rest_tls: bool,
    /// `ha.tags` (`[ha.tags]`, `PGHA_HA__TAGS`): string labels of this node, shown
    /// by `pgha ctl list`; keys must not be empty. Patroni's boolean tags are
    /// understood: `nosync = "true"` (never a synchronous standby), `clonefrom =
    /// "true"` (new members clone this streaming replica, not the primary).
    /// Default: empty.
    pub tags: BTreeMap<String, String>,
    /// `[ha.standby_cluster]`: bootstrap this cluster as a standby cluster of a remote primary (`host`, `port`,
    /// `primary_slot_name`, `restore_command`; host and/or restore_command required): its first member clones the
    /// remote instead of running initdb, its leader follows the remote. Written to the dynamic config by the first
    /// member; later `pgha ctl promote-cluster` / `demote-cluster`. Default: unset (a normal cluster).
    pub standby_cluster: Option<crate::cluster::standby::StandbyCluster>,
}

impl Default for HaSection {
    fn default() -> Self {
        HaSection {
            nofailover: false,
            failover_priority: 0,
            noloadbalance: false,
            ttl_ms: crate::cluster::timing::DEFAULT_TTL_MS,
            loop_wait_ms: crate::cluster::timing::DEFAULT_LOOP_WAIT_MS,
            maximum_lag_on_failover: 1 << 20,
            primary_start_timeout_ms: 10_000,
            synchronous_mode: crate::cluster::model::SyncMode::Off,
            synchronous_mode_strict: false,
            synchronous_node_count: 1,
            rest_listen: None,
            rest_tls: false,
            tags: BTreeMap::new(),
            standby_cluster: None,
        }
    }
}

/// Deserializes a table whose values may be strings, integers, floats or
/// booleans into their text (booleans as `on`/`off`). Dotted keys
/// (`pg_stat_statements.max = 10000`) become dotted names.
fn setting_texts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = toml::Table::deserialize(deserializer)?;
    let mut out = BTreeMap::new();
    flatten("", raw, &mut out).map_err(serde::de::Error::custom)?;
    Ok(out)
}

/// Flattens a TOML table of PostgreSQL settings into `name -> text` (dotted keys become dotted names).
pub(crate) fn flatten(prefix: &str, table: toml::Table, out: &mut BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => if b { "on" } else { "off" }.to_string(),
            toml::Value::Table(nested) => {
                flatten(&name, nested, out)?;
                continue;
            }
            other => {
                return Err(format!(
                    "parameter `{name}`: expected a string, integer, float or boolean, got {}",
                    other.type_str()
                ))
            }
        };
        out.insert(name, text);
    }
    Ok(())
}

impl Config {
    /// The PostgreSQL data directory: `postgresql.data_dir`, else `<node.data_dir>/pgdata`.
    pub fn pg_data_dir(&self) -> PathBuf {
        match &self.postgresql.data_dir {
            Some(dir) if !dir.as_os_str().is_empty() => dir.clone(),
            _ => self.node.data_dir.join("pgdata"),
        }
    }

    /// `postgresql.listen` as (host, port), the host without IPv6 brackets,
    /// ready for `listen_addresses` and `port`. Always valid for a config
    /// returned by [`Config::load`]; a malformed value yields the default
    /// `("0.0.0.0", 5432)`.
    pub fn pg_listen(&self) -> (String, u16) {
        validate::parse_addr(&self.postgresql.listen)
            .map(|(host, port)| (host.to_string(), port))
            .unwrap_or_else(|_| ("0.0.0.0".to_string(), 5432))
    }

    /// The address other nodes and clients use to reach this PostgreSQL as
    /// (host, port), the host without IPv6 brackets (as libpq's `host`
    /// wants it): `postgresql.connect_address` if set, else the host of
    /// [`Config::advertise_addr`] with the port of `postgresql.listen`.
    pub fn pg_connect_address(&self) -> (String, u16) {
        let (_, listen_port) = self.pg_listen();
        if let Some(addr) = self.postgresql.connect_address.as_deref().filter(|a| !a.is_empty()) {
            if let Ok((host, port)) = validate::parse_addr(addr) {
                return (host.to_string(), port);
            }
        }
        let advertise = self.advertise_addr();
        let host = match validate::parse_addr(&advertise) {
            Ok((host, _)) => host.to_string(),
            Err(_) => advertise,
        };
        (host, listen_port)
    }

    /// Reads a secret file (such as `postgresql.superuser_password_file`, named
    /// by `key`): its first line, without the line ending. A missing,
    /// unreadable or empty file, or an empty first line, is an error naming
    /// `key` and `path`, never the content. Logs a warning when the file is
    /// readable by its group or by others.
    pub fn read_secret(key: &str, path: &Path) -> Result<String, ConfigError> {
        let err = |message: String| ConfigError::Secret {
            key: key.to_string(),
            path: path.to_path_buf(),
            message,
        };
        // The io::Error text never includes file content (nor does the UTF-8 error).
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        warn_if_exposed(key, path);
        let first = text.split('\n').next().unwrap_or_default();
        let first = first.strip_suffix('\r').unwrap_or(first);
        if first.is_empty() {
            let what = if text.is_empty() {
                "the file is empty"
            } else {
                "the first line is empty"
            };
            return Err(err(format!("{what}; the secret must be on the first line")));
        }
        Ok(first.to_string())
    }
}

/// Warns when `path` is readable by its group or by others.
fn warn_if_exposed(key: &str, path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o044 != 0 {
                tracing::warn!(
                    key,
                    path = %path.display(),
                    mode = format_args!("{mode:03o}"),
                    "secret file is readable by group or others; restrict it with chmod 600"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (key, path);
}
