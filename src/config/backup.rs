//! `[postgresql.create_replica.<name>]`, `[postgresql.pgbackrest]` and `[postgresql.bootstrap]`: how replicas and
//! the first member get their data directory when it is not `pg_basebackup` / `initdb`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::HookCommand;

/// The built-in replica creation method (`pg_basebackup` from the leader).
pub const BASEBACKUP: &str = "basebackup";
/// The replica creation and bootstrap method built from `[postgresql.pgbackrest]`.
pub const PGBACKREST: &str = "pgbackrest";
/// The default bootstrap method.
pub const INITDB: &str = "initdb";

/// `[postgresql.create_replica.<name>]`: a replica creation method run as a command (Patroni's
/// `create_replica_methods` entries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateReplicaMethod {
    /// `command`: run as the PostgreSQL OS user (no shell) with `{data_dir}`, `{conninfo}` (the leader, as the
    /// replication user), `{member}` and `{scope}` replaced in every word. Exit 0 with an initialized data
    /// directory = done. Required, except for `pgbackrest` (default built from `[postgresql.pgbackrest]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<HookCommand>,
    /// `no_leader`: the method needs no leader (it restores a backup): a member without data may use it while the
    /// cluster has no leader (every member lost its data), then races like any replica. Methods without it are
    /// skipped while there is no leader. Default: `true` for `pgbackrest`, `false` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_leader: Option<bool>,
}

/// `[postgresql.pgbackrest]`: the pgBackRest repository this cluster archives to and restores from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgbackrestSection {
    /// `stanza`: the pgBackRest stanza. Default: `cluster.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stanza: Option<String>,
    /// `config`: pgBackRest's configuration file (`--config`). Default: pgBackRest's own
    /// (`/etc/pgbackrest/pgbackrest.conf`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// `bin`: the `pgbackrest` program. Default: `"pgbackrest"` (found on PATH).
    pub bin: String,
    /// `archive`: render `archive_mode = on` and `archive_command = '<bin> ... archive-push %p'`. Default: `true`.
    pub archive: bool,
    /// `restore`: render `restore_command = '<bin> ... archive-get %f "%p"'`, so a replica restored from a backup,
    /// or one that fell behind the primary's `wal_keep_size`, catches up from the archive. Default: `true`.
    pub restore: bool,
}

impl Default for PgbackrestSection {
    fn default() -> Self {
        PgbackrestSection {
            stanza: None,
            config: None,
            bin: "pgbackrest".into(),
            archive: true,
            restore: true,
        }
    }
}

/// `[postgresql.bootstrap]`: how the first member creates the cluster's data directory.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapSection {
    /// `method`: `"initdb"` (a new, empty cluster), `"pgbackrest"` (restore the latest backup of
    /// `[postgresql.pgbackrest]`'s stanza) or the name of a `[postgresql.create_replica.<name>]` method whose
    /// command restores a backup. Default: `"initdb"`.
    pub method: String,
    /// `recovery_target_time`: recover up to this time (PostgreSQL's syntax, e.g. `"2026-12-02 19:30:00+00"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_target_time: Option<String>,
    /// `recovery_target_lsn`: recover up to this WAL position (`"0/3000060"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_target_lsn: Option<String>,
    /// `recovery_target_name`: recover up to this restore point (`pg_create_restore_point`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_target_name: Option<String>,
    /// `recovery_target_inclusive`: stop just after (true) or just before (false) the target. Default: true.
    pub recovery_target_inclusive: bool,
    /// `restore_command`: how recovery fetches archived WAL. Default: pgBackRest's `archive-get` when
    /// `[postgresql.pgbackrest]` is set; required otherwise for a method other than `initdb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_command: Option<String>,
}

impl Default for BootstrapSection {
    fn default() -> Self {
        BootstrapSection {
            method: INITDB.into(),
            recovery_target_time: None,
            recovery_target_lsn: None,
            recovery_target_name: None,
            recovery_target_inclusive: true,
            restore_command: None,
        }
    }
}

impl BootstrapSection {
    /// The recovery target as (parameter, value); at most one is allowed (validated).
    pub fn target(&self) -> Option<(&'static str, &str)> {
        [
            ("recovery_target_time", &self.recovery_target_time),
            ("recovery_target_lsn", &self.recovery_target_lsn),
            ("recovery_target_name", &self.recovery_target_name),
        ]
        .into_iter()
        .find_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }
}

/// The default of `postgresql.create_replica_methods`.
pub fn default_methods() -> Vec<String> {
    vec![BASEBACKUP.to_string()]
}

/// Default of `postgresql.clone_stall_timeout_ms`: 10 minutes without the data directory growing or the method
/// writing a line.
pub const DEFAULT_CLONE_STALL_TIMEOUT_MS: u64 = 600_000;

/// The `create_replica` table type.
pub type CreateReplicaTable = BTreeMap<String, CreateReplicaMethod>;

impl super::Config {
    /// The pgBackRest repository of `[postgresql.pgbackrest]` (stanza defaulting to the cluster name).
    pub fn pgbackrest(&self) -> Option<crate::postgres::pgbackrest::Pgbackrest> {
        self.postgresql
            .pgbackrest
            .as_ref()
            .map(|b| crate::postgres::pgbackrest::Pgbackrest {
                bin: b.bin.clone(),
                config: b.config.clone(),
                stanza: b.stanza.clone().unwrap_or_else(|| self.cluster.name.clone()),
                archive: b.archive,
                restore: b.restore,
            })
    }

    /// The command of method `name`: its `[postgresql.create_replica.<name>]` command, else pgBackRest's restore
    /// for `pgbackrest`. None when there is neither (refused by validation).
    fn method_argv(&self, name: &str, kind: crate::postgres::pgbackrest::RestoreKind) -> Option<Vec<String>> {
        match self
            .postgresql
            .create_replica
            .get(name)
            .and_then(|m| m.command.as_ref())
        {
            Some(command) => command.argv().ok(),
            None if name == PGBACKREST => self.pgbackrest().map(|b| b.restore_argv(kind)),
            None => None,
        }
    }

    /// Whether method `name` may run without a leader: its `no_leader` key, else true for `pgbackrest` (it restores
    /// the repository's latest backup) and false for the rest (`basebackup` copies the leader).
    fn method_no_leader(&self, name: &str) -> bool {
        match self.postgresql.create_replica.get(name).and_then(|m| m.no_leader) {
            Some(set) => set && name != BASEBACKUP,
            None => name == PGBACKREST,
        }
    }

    /// How this db node creates its data directory (from a validated config).
    pub fn pg_creation(&self) -> crate::postgres::replica_methods::Creation {
        use crate::postgres::pgbackrest::RestoreKind;
        use crate::postgres::replica_methods::{
            recovery_settings, Creation, MethodKind, ReplicaMethod, RestoreBootstrap,
        };
        let pg = &self.postgresql;
        let replica_methods = pg
            .create_replica_methods
            .iter()
            .filter_map(|name| {
                let kind = match name.as_str() {
                    BASEBACKUP => MethodKind::Basebackup,
                    _ => MethodKind::Command(self.method_argv(name, RestoreKind::Standby)?),
                };
                Some(ReplicaMethod {
                    name: name.clone(),
                    kind,
                    no_leader: self.method_no_leader(name),
                })
            })
            .collect();
        let pgbackrest = self.pgbackrest();
        let b = &pg.bootstrap;
        let bootstrap = match b.method.as_str() {
            INITDB | "" => None,
            name => self.method_argv(name, RestoreKind::Bootstrap).map(|argv| {
                let data_dir = self.pg_data_dir();
                let restore_command = b
                    .restore_command
                    .clone()
                    .or_else(|| pgbackrest.as_ref().map(|r| r.restore_command(&data_dir)));
                RestoreBootstrap {
                    method: name.to_string(),
                    argv,
                    recovery: recovery_settings(restore_command.as_deref(), b.target(), b.recovery_target_inclusive),
                }
            }),
        };
        Creation {
            scope: self.cluster.name.clone(),
            replica_methods,
            stall_timeout: std::time::Duration::from_millis(pg.clone_stall_timeout_ms),
            pgbackrest,
            bootstrap,
        }
    }
}
