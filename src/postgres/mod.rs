//! PostgreSQL control: settings, data-directory lifecycle, configuration, replication and status of one instance.
//!
//! Pure parts (rendering of `pgha.conf`/`pg_hba.conf`/`pg_ident.conf`, conninfo and passfile building,
//! `pg_controldata` and status parsing, names) live in [`render`], [`controldata`], [`names`] and [`status`];
//! processes and files are handled at the edge by [`Postgres`] (see [`control`]).
//!
//! Authentication model (see [`render::pg_hba`]):
//! * pgha itself reaches the superuser over the unix socket with `peer` authentication through the ident map
//!   `pgha`, which maps only the OS user pgha runs as (root, or the current user) and `os_user` to the
//!   database superuser. No password is needed or stored for it; only processes running as those OS users can use it
//!   (unlike `trust`), and it works whether or not a superuser password is configured. This line always comes
//!   first in `pg_hba.conf`, before the user's lines.
//! * Network access (replication, `pg_rewind`, clients) uses `scram-sha-256`; replicas, `pg_basebackup` and
//!   `pg_rewind` authenticate as `replication_user` with its password taken from a 0600 passfile owned by
//!   `os_user` outside the data directory ([`PgSettings::passfile`]). `pg_rewind` does not need the superuser:
//!   [`Postgres::create_roles`] grants the replication user the four functions `pg_rewind` uses.
//! * With TLS, the default network lines are `hostssl` (plaintext TCP is refused) and clients use
//!   `sslmode=verify-ca` against a copy of the CA owned by `os_user` ([`PgSettings::client_ca_file`]).

pub mod bin_dir;
pub mod cascade_slots;
pub mod clone_progress;
pub mod clone_run;
pub mod config;
pub mod control;
pub mod controldata;
pub mod error;
pub mod files;
pub mod logical;
pub mod names;
pub mod os;
pub mod pgbackrest;
pub mod render;
pub mod replica_methods;
pub mod replication;
pub mod restore;
pub mod sql;
pub mod status;
pub mod upgrade;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use bin_dir::discover_bin_dir;
pub use control::{postmaster_pid, postmaster_state, walreceiver_streaming, PmState, Postgres, Readiness};
pub use controldata::ControlData;
pub use error::PgError;
pub use logical::{LogicalSlot, SlotSync};
pub use names::{lsn_to_string, parse_lsn, slot_name};
pub use sql::{SlotChanges, SlotReport};
pub use status::{PgStatus, ReplicationPeer, WalReceiver};

/// Everything pgha needs to run one PostgreSQL instance (its `Debug` output redacts the passwords).
#[derive(Clone)]
pub struct PgSettings {
    /// Member name: used as `application_name` and (sanitized by [`slot_name`]) as replication slot name.
    pub name: String,
    /// Directory holding `initdb`, `pg_ctl`, `postgres`, ... (see [`discover_bin_dir`]).
    pub bin_dir: PathBuf,
    /// The data directory (PGDATA).
    pub data_dir: PathBuf,
    /// `unix_socket_directories` (created and owned by `os_user` when missing).
    pub socket_dir: PathBuf,
    /// `listen_addresses`.
    pub listen_host: String,
    /// `port`.
    pub port: u16,
    /// OS user owning the data directory and running PostgreSQL; used only when pgha runs as root.
    pub os_user: String,
    /// Database superuser (created by initdb).
    pub superuser: String,
    /// Password of the superuser (set at initdb only), already read from its file by the caller.
    pub superuser_password: Option<String>,
    /// Role used by replicas, `pg_basebackup` and `pg_rewind`.
    pub replication_user: String,
    /// Password of the replication role.
    pub replication_password: Option<String>,
    /// The user's `[postgresql.parameters]`; they override pgha's defaults except the parameters pgha owns.
    pub parameters: BTreeMap<String, String>,
    /// The user's `pg_hba.conf` lines; empty means pgha's defaults (see [`render::pg_hba`]).
    pub hba: Vec<String>,
    /// Server TLS (`ssl = on`); replicas then verify the primary against its CA.
    pub tls: Option<PgTls>,
    /// Server log file given to `pg_ctl -l`; None means [`PgSettings::default_log_file`].
    pub log_file: Option<PathBuf>,
    /// `synchronous_standby_names`, chosen by the HA loop in synchronous mode (empty otherwise).
    pub synchronous_standby_names: String,
    /// Failover slot settings chosen by the HA loop (rendered on PostgreSQL 17+ only).
    pub slot_sync: SlotSync,
    /// Major version of the data directory (`PG_VERSION`), read when the configuration is written.
    pub major: Option<u32>,
    /// Major version of `bin_dir` (None: unknown).
    pub bin_major: Option<u32>,
    /// Where to look for the binaries of another version when a clone brings one (None: `bin_dir` was configured,
    /// and it stays); see [`Postgres::follow_data_dir_version`].
    pub bin_search: Option<Vec<PathBuf>>,
    /// How the data directory is created: replica methods, bootstrap from a backup, the pgBackRest archive.
    pub creation: replica_methods::Creation,
}

/// Server certificate, key and CA (PEM files); copied into the data directory, the key as a 0600 file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgTls {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// CA used by replicas to verify the primary (copied to [`PgSettings::client_ca_file`]) and by the server
    /// for client certificates.
    pub ca: PathBuf,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |p: &Option<String>| p.as_ref().map(|_| "<redacted>");
        f.debug_struct("PgSettings")
            .field("name", &self.name)
            .field("bin_dir", &self.bin_dir)
            .field("data_dir", &self.data_dir)
            .field("socket_dir", &self.socket_dir)
            .field("listen_host", &self.listen_host)
            .field("port", &self.port)
            .field("os_user", &self.os_user)
            .field("superuser", &self.superuser)
            .field("superuser_password", &redact(&self.superuser_password))
            .field("replication_user", &self.replication_user)
            .field("replication_password", &redact(&self.replication_password))
            .field("parameters", &self.parameters)
            .field("hba", &self.hba)
            .field("tls", &self.tls)
            .field("log_file", &self.log_file)
            .finish()
    }
}

impl PgSettings {
    /// Settings with pgha's defaults: listen on 127.0.0.1, users `postgres`/`postgres`/`replicator`,
    /// no passwords, no parameters, default pg_hba, no TLS.
    pub fn new(name: &str, bin_dir: &Path, data_dir: &Path, socket_dir: &Path, port: u16) -> PgSettings {
        PgSettings {
            name: name.to_string(),
            bin_dir: bin_dir.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            socket_dir: socket_dir.to_path_buf(),
            listen_host: "127.0.0.1".to_string(),
            port,
            os_user: "postgres".to_string(),
            superuser: "postgres".to_string(),
            superuser_password: None,
            replication_user: "replicator".to_string(),
            replication_password: None,
            parameters: BTreeMap::new(),
            hba: Vec::new(),
            tls: None,
            log_file: None,
            synchronous_standby_names: String::new(),
            slot_sync: SlotSync::default(),
            major: None,
            bin_major: None,
            bin_search: None,
            creation: replica_methods::Creation::default(),
        }
    }

    /// `<parent of data_dir>/<data_dir name>.log`: outside PGDATA so basebackup and rewind leave it alone.
    pub fn default_log_file(&self) -> PathBuf {
        self.beside_data_dir("log")
    }

    /// The server log file in use.
    pub fn log_file(&self) -> PathBuf {
        self.log_file.clone().unwrap_or_else(|| self.default_log_file())
    }

    /// `<parent of data_dir>/<data_dir name>.pgpass`: the 0600 passfile (replication user) owned by `os_user`,
    /// kept outside PGDATA so `pg_basebackup` can use it before the data directory exists.
    pub fn passfile(&self) -> PathBuf {
        self.beside_data_dir("pgpass")
    }

    /// `<parent of data_dir>/<data_dir name>.ca.crt`: a copy of the TLS CA owned by `os_user`, which replicas,
    /// `pg_basebackup` and `pg_rewind` verify the primary against (`sslrootcert`).
    pub fn client_ca_file(&self) -> PathBuf {
        self.beside_data_dir("ca.crt")
    }

    fn beside_data_dir(&self, ext: &str) -> PathBuf {
        beside(&self.data_dir, ext)
    }
}

/// `<parent of data_dir>/<data_dir name>.<ext>`: files kept outside PGDATA.
pub fn beside(data_dir: &Path, ext: &str) -> PathBuf {
    let base = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = data_dir.parent().unwrap_or_else(|| Path::new("/"));
    parent.join(format!("{}.{ext}", if base.is_empty() { "pgdata" } else { &base }))
}

/// What [`Postgres::write_config`] configures the instance as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfRole {
    /// Read-write primary: no `standby.signal`, no `primary_conninfo`.
    Primary,
    /// Streaming replica of the given primary, optionally through a physical slot.
    Replica {
        /// Host (name or address) of the primary.
        primary_host: String,
        /// Port of the primary.
        primary_port: u16,
        /// `primary_slot_name` (must be a valid slot name, see [`slot_name`]).
        slot: Option<String>,
    },
    /// Standby with no upstream (`standby.signal`, empty `primary_conninfo`): read-only, replays nothing new
    /// until configured as a [`ConfRole::Replica`].
    Standby,
    /// A standby cluster's leader: streams from the remote primary (`host`, optionally through `slot`) and/or
    /// restores WAL with `restore_command` (which replaces pgBackRest's own `restore_command`).
    Remote {
        host: Option<String>,
        port: u16,
        slot: Option<String>,
        restore_command: Option<String>,
    },
}

/// `pg_ctl stop -m` modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Wait for clients to disconnect.
    Smart,
    /// Disconnect clients, clean shutdown with a checkpoint.
    Fast,
    /// Abort all processes; crash recovery at the next start.
    Immediate,
}

impl StopMode {
    /// The postmaster's signal for this mode (what `pg_ctl stop -m` sends).
    pub fn signal(self) -> libc::c_int {
        match self {
            StopMode::Smart => libc::SIGTERM,
            StopMode::Fast => libc::SIGINT,
            StopMode::Immediate => libc::SIGQUIT,
        }
    }

    /// The `-m` argument.
    pub fn as_arg(self) -> &'static str {
        match self {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// What is on disk in the data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataState {
    /// No data directory, or an empty one.
    Missing,
    /// An initialized cluster, as `pg_controldata` reports it.
    Initialized {
        /// `Database system identifier`.
        system_identifier: u64,
        /// `Latest checkpoint's TimeLineID`.
        timeline: u32,
        /// `Database cluster state`: "in production", "shut down", "shut down in recovery", "in archive recovery", ...
        cluster_state: String,
        /// `Latest checkpoint location`.
        checkpoint_lsn: u64,
        /// Whether `standby.signal` exists.
        standby_signal: bool,
    },
}
