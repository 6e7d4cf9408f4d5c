//! Pure rendering of the files pgha manages in PGDATA (`pgha.conf`, `pg_hba.conf`, `pg_ident.conf`, the
//! include line of `postgresql.conf`), of libpq conninfo strings and of the passfile.

use std::collections::BTreeMap;
use std::path::Path;

use super::logical::{SlotSync, FAILOVER_SLOTS_SINCE};
use super::{ConfRole, PgSettings};

/// The managed include file, relative to PGDATA.
pub const MANAGED_CONF: &str = "pgha.conf";
/// The line `postgresql.conf` must end with.
pub const INCLUDE_LINE: &str = "include 'pgha.conf'";
/// Server certificate copy in PGDATA.
pub const TLS_CERT_FILE: &str = "pgha_server.crt";
/// Server key copy in PGDATA (0600).
pub const TLS_KEY_FILE: &str = "pgha_server.key";
/// CA copy in PGDATA.
pub const TLS_CA_FILE: &str = "pgha_ca.crt";
/// The `pg_ident.conf` map giving pgha's OS user(s) the database superuser over the socket.
pub const IDENT_MAP: &str = "pgha";

const HEADER: &str = "# Managed by pgha: rewritten on every configuration change; do not edit.\n";

/// Parameters pgha sets itself; a user value for one of them is ignored with a warning.
const OWNED: &[&str] = &[
    "listen_addresses",
    "port",
    "unix_socket_directories",
    "hot_standby",
    "primary_conninfo",
    "primary_slot_name",
    "synchronous_standby_names",
    "data_directory",
    "config_file",
    "hba_file",
    "ident_file",
];
/// Parameters pgha owns when TLS is configured.
const OWNED_TLS: &[&str] = &["ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file"];

/// Defaults the user's parameters may override.
const DEFAULTS: &[(&str, &str)] = &[
    // `logical` for publications and logical slots (a restart); never below `replica` (see `WAL_LEVELS`).
    ("wal_level", "replica"),
    ("wal_log_hints", "on"),
    ("max_wal_senders", "10"),
    ("max_replication_slots", "10"),
    ("wal_keep_size", "256MB"),
    ("hot_standby_feedback", "on"),
    // A replica re-pointed at a new primary retries its WAL source after this (PostgreSQL's default is 5 s).
    ("wal_retrieve_retry_interval", "200ms"),
    // A standby reports its flush position at least this often (PostgreSQL's default is 10 s): the upper bound on
    // how long a commit waits for a synchronous standby chosen after the commit had already reached it.
    ("wal_receiver_status_interval", "1s"),
];

/// The `wal_level` values pgha runs with (`minimal` cannot feed a standby).
pub const WAL_LEVELS: &[&str] = &["replica", "logical"];

/// Whether `value` is one of [`WAL_LEVELS`] (any case).
pub fn is_wal_level(value: &str) -> bool {
    WAL_LEVELS.contains(&value.trim().to_ascii_lowercase().as_str())
}

fn on_off(on: bool) -> String {
    if on { "on" } else { "off" }.into()
}

/// A `postgresql.conf` string literal: `'...'` with `'` doubled and `\` escaped.
pub fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// A libpq conninfo value, quoted only when needed (`'` and `\` backslash-escaped).
pub fn conninfo_quote(value: &str) -> String {
    if !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c == '\'' || c == '\\') {
        return value.to_string();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Joins `key=value` pairs into a conninfo string.
pub fn conninfo(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", conninfo_quote(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The conninfo pgha's tools and replicas use to reach `host:port` as the replication user: application_name,
/// the passfile when there is one, `sslmode=verify-ca` against the CA copy [`PgSettings::client_ca_file`] with
/// TLS (else `prefer`), and `dbname`
/// when given (pg_rewind needs a database connection).
pub fn client_conninfo(s: &PgSettings, host: &str, port: u16, dbname: Option<&str>, passfile: Option<&Path>) -> String {
    let port = port.to_string();
    let mut pairs = vec![
        ("host", host),
        ("port", port.as_str()),
        ("user", s.replication_user.as_str()),
    ];
    if let Some(db) = dbname {
        pairs.push(("dbname", db));
    }
    pairs.push(("application_name", s.name.as_str()));
    let passfile = passfile.map(|p| p.to_string_lossy().into_owned());
    if let Some(p) = &passfile {
        pairs.push(("passfile", p));
    }
    let ca = s
        .tls
        .as_ref()
        .map(|_| s.client_ca_file().to_string_lossy().into_owned());
    match &ca {
        Some(ca) => {
            pairs.push(("sslmode", "verify-ca"));
            pairs.push(("sslrootcert", ca));
        }
        None => pairs.push(("sslmode", "prefer")),
    }
    conninfo(&pairs)
}

/// Whether `key` is a plausible GUC name (`[A-Za-z_][A-Za-z0-9_.]*`).
/// Whether `name` is a parameter pgha sets itself (never taken from the user or the dynamic config).
pub fn is_owned_parameter(name: &str) -> bool {
    OWNED.contains(&name) || OWNED_TLS.contains(&name)
}

/// Whether `key` is a well-formed parameter name.
pub fn is_parameter_name(key: &str) -> bool {
    is_guc_name(key)
}

fn is_guc_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Renders `pgha.conf` for `role`; returns the text and warnings about ignored user parameters.
/// `passfile` is put into `primary_conninfo` when given.
pub fn pgha_conf(s: &PgSettings, role: &ConfRole, passfile: Option<&Path>) -> (String, Vec<String>) {
    let mut owned: Vec<(&str, String)> = vec![
        ("listen_addresses", s.listen_host.clone()),
        ("port", s.port.to_string()),
        ("unix_socket_directories", s.socket_dir.to_string_lossy().into_owned()),
        ("hot_standby", "on".into()),
        ("synchronous_standby_names", s.synchronous_standby_names.clone()),
    ];
    match role {
        ConfRole::Primary | ConfRole::Standby => {
            owned.push(("primary_conninfo", String::new()));
            owned.push(("primary_slot_name", String::new()));
        }
        ConfRole::Replica {
            primary_host,
            primary_port,
            slot,
        } => {
            // The slot sync worker reads the primary's slots over `primary_conninfo`, which must then name a database.
            let dbname = s.slot_sync.enabled.then_some("postgres");
            owned.push((
                "primary_conninfo",
                client_conninfo(s, primary_host, *primary_port, dbname, passfile),
            ));
            owned.push(("primary_slot_name", slot.clone().unwrap_or_default()));
        }
        ConfRole::Remote { host, port, slot, .. } => {
            let conninfo = host
                .as_ref()
                .map(|h| client_conninfo(s, h, *port, None, passfile))
                .unwrap_or_default();
            owned.push(("primary_conninfo", conninfo));
            owned.push(("primary_slot_name", slot.clone().unwrap_or_default()));
        }
    }
    // A standby cluster's own restore_command wins over the one rendered from `[postgresql.pgbackrest]`.
    let remote_restore = match role {
        ConfRole::Remote {
            restore_command: Some(command),
            ..
        } => Some(command.clone()),
        _ => None,
    };
    if let Some(command) = &remote_restore {
        owned.push(("restore_command", command.clone()));
    }
    if s.tls.is_some() {
        owned.push(("ssl", "on".into()));
        owned.push(("ssl_cert_file", TLS_CERT_FILE.into()));
        owned.push(("ssl_key_file", TLS_KEY_FILE.into()));
        owned.push(("ssl_ca_file", TLS_CA_FILE.into()));
    }
    if let Some(repo) = &s.creation.pgbackrest {
        if repo.archive {
            owned.push(("archive_mode", "on".into()));
            owned.push(("archive_command", repo.archive_command(&s.data_dir)));
        }
        if repo.restore && remote_restore.is_none() {
            owned.push(("restore_command", repo.restore_command(&s.data_dir)));
        }
    }
    if s.major.is_some_and(|m| m >= FAILOVER_SLOTS_SINCE) && s.slot_sync != SlotSync::default() {
        owned.push(("sync_replication_slots", on_off(s.slot_sync.enabled)));
        owned.push(("synchronized_standby_slots", s.slot_sync.standby_slots.join(",")));
    }
    let mut warnings = Vec::new();
    let mut tunables: BTreeMap<String, String> = DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for (key, value) in &s.parameters {
        let lower = key.to_ascii_lowercase();
        if !is_guc_name(key) {
            warnings.push(format!("ignoring parameter {key:?}: not a valid parameter name"));
        } else if OWNED.contains(&lower.as_str()) || owned.iter().any(|(k, _)| *k == lower) {
            warnings.push(format!("ignoring parameter {lower}: pgha sets it"));
        } else if lower == "wal_level" && !is_wal_level(value) {
            warnings.push(format!(
                "ignoring parameter wal_level = {value:?}: replication needs {}",
                WAL_LEVELS.join(" or ")
            ));
        } else if value.contains(['\n', '\r', '\0']) {
            warnings.push(format!("ignoring parameter {lower}: its value spans several lines"));
        } else {
            tunables.insert(lower, value.clone());
        }
    }
    let mut out = String::from(HEADER);
    out.push_str("# Set by pgha (user values ignored):\n");
    for (key, value) in &owned {
        out.push_str(&format!("{key} = {}\n", conf_quote(value)));
    }
    out.push_str("# pgha defaults and [postgresql.parameters]:\n");
    for (key, value) in &tunables {
        out.push_str(&format!("{key} = {}\n", conf_quote(value)));
    }
    (out, warnings)
}

/// Whether a `postgresql.conf` line is an include of `pgha.conf` (any spacing or `=`).
fn is_pgha_include(line: &str) -> bool {
    let t = line.trim();
    let Some(rest) = t.strip_prefix("include") else {
        return false;
    };
    let rest = rest.trim_start().trim_start_matches('=').trim();
    matches!(rest, "'pgha.conf'" | "\"pgha.conf\"" | "pgha.conf")
}

/// `postgresql.conf` with every include of `pgha.conf` removed and exactly one appended as the last line.
pub fn ensure_include(conf: &str) -> String {
    let mut out: String = conf
        .lines()
        .filter(|l| !is_pgha_include(l))
        .flat_map(|l| [l, "\n"])
        .collect();
    out.push_str(INCLUDE_LINE);
    out.push('\n');
    out
}

/// A `pg_hba.conf`/`pg_ident.conf` name token: always double-quoted (names are validated not to contain `"`).
fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// The `pg_hba.conf` lines: first, always, `local all <superuser> peer map=pgha` (pgha's own access); then the
/// user's lines, or by default scram-sha-256 for every other local user, for `replication_user` replication
/// connections and for all databases over TCP (IPv4 and IPv6; `hostssl` instead of `host` with TLS).
/// Returns the file and warnings about rejected user lines.
pub fn pg_hba(s: &PgSettings) -> (String, Vec<String>) {
    let mut out = String::from(HEADER);
    let mut warnings = Vec::new();
    out.push_str(&format!("local all {} peer map={IDENT_MAP}\n", quoted(&s.superuser)));
    if s.hba.is_empty() {
        let host = if s.tls.is_some() { "hostssl" } else { "host" };
        let repl = quoted(&s.replication_user);
        out.push_str("local all all scram-sha-256\n");
        for net in ["0.0.0.0/0", "::/0"] {
            out.push_str(&format!("{host} replication {repl} {net} scram-sha-256\n"));
        }
        for net in ["0.0.0.0/0", "::/0"] {
            out.push_str(&format!("{host} all all {net} scram-sha-256\n"));
        }
    }
    for line in &s.hba {
        if line.contains(['\n', '\r', '\0']) {
            warnings.push(format!("ignoring pg_hba line {line:?}: it spans several lines"));
        } else {
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    (out, warnings)
}

/// `pg_ident.conf`: map [`IDENT_MAP`] from each of `os_users` (deduplicated) to the database superuser.
pub fn pg_ident(os_users: &[&str], superuser: &str) -> String {
    let mut out = String::from(HEADER);
    let mut seen = Vec::new();
    for user in os_users {
        if !seen.contains(user) {
            seen.push(*user);
            out.push_str(&format!("{IDENT_MAP} {} {}\n", quoted(user), quoted(superuser)));
        }
    }
    out
}

/// A `.pgpass` field: `:` and `\` backslash-escaped.
fn pgpass_field(value: &str) -> String {
    value.replace('\\', "\\\\").replace(':', "\\:")
}

/// The passfile: `user`'s password for any host, port and database.
pub fn passfile(user: &str, password: &str) -> String {
    format!("*:*:*:{}:{}\n", pgpass_field(user), pgpass_field(password))
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
