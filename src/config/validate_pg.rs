//! Validation rules of `[postgresql]` and `[ha]` (checked for `pgha db` only).

use std::path::PathBuf;

use super::validate::{check_addr, parse_addr, Report};
use super::{Config, HaSection};

/// Parameters pgha sets itself, with where their value comes from.
const OWNED_PARAMETERS: &[(&str, &str)] = &[
    ("listen_addresses", "use postgresql.listen"),
    ("port", "use postgresql.listen"),
    ("unix_socket_directories", "pgha chooses the socket directory"),
    ("hot_standby", "replication needs it"),
    ("primary_conninfo", "pgha points replicas at the current leader"),
    ("primary_slot_name", "pgha points replicas at the current leader"),
    ("ssl", "use tls.cert, tls.key and postgresql.tls"),
    ("ssl_cert_file", "use tls.cert"),
    ("ssl_key_file", "use tls.key"),
    ("ssl_ca_file", "use tls.ca"),
    ("data_directory", "use postgresql.data_dir"),
    ("config_file", "pgha writes the configuration files"),
    ("hba_file", "use postgresql.pg_hba"),
    ("ident_file", "pgha writes pg_ident.conf"),
];

/// `base.name`, quoting `name` unless it is a bare TOML key.
fn entry_key(base: &str, name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        format!("{base}.{name}")
    } else {
        format!("{base}.{name:?}")
    }
}

/// Checks an OS user or database role name; `role` adds PostgreSQL's `pg_` rule.
fn check_user(r: &mut Report, key: &str, name: &str, role: bool) -> bool {
    let example = if key.ends_with("replication_user") {
        "\"replicator\""
    } else {
        "\"postgres\""
    };
    if name.is_empty() {
        r.add(key, "must not be empty", format!("the default is {example}"));
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        r.add(
            key,
            format!("{name:?} has characters other than letters, digits and '_'"),
            format!("use a plain name such as {example}"),
        );
    } else if role && name.to_ascii_lowercase().starts_with("pg_") {
        r.add(
            key,
            format!("{name:?} starts with \"pg_\", which PostgreSQL reserves for its own roles"),
            format!("use another name, e.g. {example}"),
        );
    } else {
        return true;
    }
    false
}

/// Requires a password file to be named (whether it exists is checked at start-up).
fn require_file(r: &mut Report, key: &str, file: &Option<PathBuf>, user: &str) {
    if file.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
        r.add(
            key,
            "is required for db nodes",
            format!("set it to a file (mode 0600) whose first line is the password of {user}"),
        );
    }
}

pub(super) fn postgresql(config: &Config, r: &mut Report) {
    let pg = &config.postgresql;
    if let Some(dir) = pg.data_dir.as_ref().filter(|d| !d.as_os_str().is_empty()) {
        if *dir == config.node.data_dir {
            r.add(
                "postgresql.data_dir",
                format!("{} is also node.data_dir", dir.display()),
                "give PostgreSQL its own directory, or leave postgresql.data_dir unset for <node.data_dir>/pgdata",
            );
        }
    }
    if let Err(e) = parse_addr(&pg.listen) {
        r.syntax("postgresql.listen", e);
    }
    if let Some(rest) = config.ha.rest_listen.as_deref().filter(|a| !a.is_empty()) {
        if let Err(e) = parse_addr(rest) {
            r.syntax("ha.rest_listen", e);
        }
    }
    if config.ha.rest_tls {
        if config.ha.rest_listen.as_deref().is_none_or(str::is_empty) {
            r.add(
                "ha.rest_tls",
                "is on but there is no REST API",
                "set ha.rest_listen, or rest_tls = false",
            );
        } else if config.tls.plaintext {
            r.add(
                "ha.rest_tls",
                "needs the node certificate, but tls.plaintext = true",
                "set tls.ca, tls.cert and tls.key with tls.plaintext = false, or rest_tls = false",
            );
        }
    }
    if let Some(addr) = pg.connect_address.as_deref().filter(|a| !a.is_empty()) {
        if let Err(e) = check_addr(addr) {
            r.syntax("postgresql.connect_address", e);
        }
    }
    check_user(r, "postgresql.os_user", &pg.os_user, false);
    let superuser_ok = check_user(r, "postgresql.superuser", &pg.superuser, true);
    require_file(
        r,
        "postgresql.superuser_password_file",
        &pg.superuser_password_file,
        "postgresql.superuser",
    );
    if check_user(r, "postgresql.replication_user", &pg.replication_user, true)
        && superuser_ok
        && pg.replication_user == pg.superuser
    {
        r.add(
            "postgresql.replication_user",
            format!("{:?} is also postgresql.superuser", pg.replication_user),
            "use a separate role for replication, e.g. \"replicator\"",
        );
    }
    require_file(
        r,
        "postgresql.replication_password_file",
        &pg.replication_password_file,
        "postgresql.replication_user",
    );
    for (i, line) in pg.pg_hba.iter().enumerate() {
        if line.contains(['\n', '\r']) {
            r.add(
                format!("postgresql.pg_hba[{i}]"),
                "contains a line break",
                "write one pg_hba.conf line per list entry",
            );
        }
    }
    if pg.start_timeout_ms < 1000 {
        r.add(
            "postgresql.start_timeout_ms",
            format!("{} ms is below the minimum of 1000 ms", pg.start_timeout_ms),
            "the default is 60000",
        );
    }
    super::callbacks::validate(pg, r);
    super::validate_backup::validate(config, r);
    for (name, value) in &pg.parameters {
        let key = entry_key("postgresql.parameters", name);
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.'))
        {
            r.add(
                key,
                format!("{name:?} is not a PostgreSQL parameter name (a-z, 0-9, '_' and '.')"),
                "write parameter names in lowercase, e.g. max_connections = 200",
            );
        } else if let Some((_, how)) = OWNED_PARAMETERS.iter().find(|(owned, _)| owned == name) {
            r.add(
                key,
                "is managed by pgha",
                format!("set by pgha from [postgresql]/[tls] ({how}); remove it from [postgresql.parameters]"),
            );
        } else if name == "wal_level" && !crate::postgres::render::is_wal_level(value) {
            r.add(
                key,
                format!("{value:?} cannot feed a standby"),
                "use \"replica\" (the default) or \"logical\" (publications and logical slots)",
            );
        }
    }
}

pub(super) fn ha(ha: &HaSection, r: &mut Report) {
    if ha.ttl_ms < 500 {
        r.add(
            "ha.ttl_ms",
            format!("{} ms is below the minimum of 500 ms", ha.ttl_ms),
            "the default is 1200",
        );
    }
    if ha.loop_wait_ms < 50 {
        r.add(
            "ha.loop_wait_ms",
            format!("{} ms is below the minimum of 50 ms", ha.loop_wait_ms),
            "the default is 250",
        );
    } else if ha.loop_wait_ms.saturating_mul(2) > ha.ttl_ms {
        r.add(
            "ha.loop_wait_ms",
            format!(
                "{} ms is more than half of ha.ttl_ms ({} ms)",
                ha.loop_wait_ms, ha.ttl_ms
            ),
            "the lease must survive a missed renewal: keep loop_wait_ms at most ttl_ms / 2",
        );
    }
    if ha.synchronous_node_count == 0 {
        r.add(
            "ha.synchronous_node_count",
            "must be at least 1",
            "the number of standbys that confirm each commit in synchronous mode; the default is 1",
        );
    }
    for name in ha.tags.keys().filter(|name| name.trim().is_empty()) {
        r.add(
            entry_key("ha.tags", name),
            "tag name is empty",
            "give every tag a name, e.g. datacenter = \"dc1\"",
        );
    }
    if let Some(standby) = &ha.standby_cluster {
        for (field, problem, hint) in standby.problems() {
            r.add(format!("ha.standby_cluster.{field}"), problem, hint);
        }
    }
}
