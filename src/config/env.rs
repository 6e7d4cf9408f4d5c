//! `PGHA_<SECTION>__<KEY>` environment variables merged over the config file.

use std::collections::BTreeMap;

use toml::{Table, Value};

use super::{Config, ConfigError};

/// How an environment value is turned into a TOML value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Taken verbatim (so `PGHA_NODE__NAME=007` stays a string).
    Str,
    /// Verbatim; empty unsets the key.
    OptStr,
    /// TOML array or comma-separated list.
    List,
    /// Non-negative integer.
    Int,
    /// Non-negative integer; empty unsets the key.
    OptInt,
    /// Integer that may be negative.
    SignedInt,
    /// true/false, yes/no, on/off, 1/0.
    Bool,
    /// TOML inline table or comma-separated `key=value` list; empty is an empty table.
    Table,
}

/// Every configuration key as (section, key, kind); a nested section is dotted (`edge.vip`, set as
/// `PGHA_EDGE__VIP__ADDRESS`). A unit test checks this
/// against the `Config` struct so the two cannot drift apart.
pub(super) const KEYS: &[(&str, &str, Kind)] = &[
    ("cluster", "name", Kind::Str),
    ("node", "name", Kind::Str),
    ("node", "data_dir", Kind::Str),
    ("dcs", "listen", Kind::Str),
    ("dcs", "advertise", Kind::OptStr),
    ("dcs", "peers", Kind::List),
    ("dcs", "endpoints", Kind::List),
    ("dcs", "heartbeat_ms", Kind::Int),
    ("dcs", "election_timeout_min_ms", Kind::Int),
    ("dcs", "election_timeout_max_ms", Kind::Int),
    ("dcs", "snapshot_logs", Kind::Int),
    ("dcs", "request_timeout_ms", Kind::Int),
    ("dcs.limits", "max_key_bytes", Kind::Int),
    ("dcs.limits", "max_value_bytes", Kind::Int),
    ("dcs.limits", "max_txn_ops", Kind::Int),
    ("dcs.limits", "max_request_bytes", Kind::Int),
    ("dcs.limits", "max_state_bytes", Kind::Int),
    ("dcs.limits", "watch_history_bytes", Kind::Int),
    ("postgresql", "bin_dir", Kind::OptStr),
    ("postgresql", "data_dir", Kind::OptStr),
    ("postgresql", "listen", Kind::Str),
    ("postgresql", "connect_address", Kind::OptStr),
    ("postgresql", "os_user", Kind::Str),
    ("postgresql", "superuser", Kind::Str),
    ("postgresql", "superuser_password_file", Kind::OptStr),
    ("postgresql", "replication_user", Kind::Str),
    ("postgresql", "replication_password_file", Kind::OptStr),
    ("postgresql", "pg_hba", Kind::List),
    ("postgresql", "rewind_fallback_reinit", Kind::Bool),
    ("postgresql", "allow_wipe_foreign_data", Kind::Bool),
    ("postgresql", "start_timeout_ms", Kind::Int),
    ("postgresql", "tls", Kind::Bool),
    ("postgresql", "pre_promote", Kind::OptStr),
    ("postgresql", "pre_promote_timeout_ms", Kind::Int),
    ("postgresql", "pre_promote_on_timeout", Kind::Str),
    ("postgresql", "callback_timeout_ms", Kind::Int),
    ("postgresql", "parameters", Kind::Table),
    ("postgresql", "create_replica_methods", Kind::List),
    ("postgresql", "create_replica", Kind::Table),
    ("postgresql", "clone_stall_timeout_ms", Kind::Int),
    ("postgresql.pgbackrest", "stanza", Kind::OptStr),
    ("postgresql.pgbackrest", "config", Kind::OptStr),
    ("postgresql.pgbackrest", "bin", Kind::Str),
    ("postgresql.pgbackrest", "archive", Kind::Bool),
    ("postgresql.pgbackrest", "restore", Kind::Bool),
    ("postgresql.bootstrap", "method", Kind::Str),
    ("postgresql.bootstrap", "recovery_target_time", Kind::OptStr),
    ("postgresql.bootstrap", "recovery_target_lsn", Kind::OptStr),
    ("postgresql.bootstrap", "recovery_target_name", Kind::OptStr),
    ("postgresql.bootstrap", "recovery_target_inclusive", Kind::Bool),
    ("postgresql.bootstrap", "restore_command", Kind::OptStr),
    ("postgresql.callbacks", "on_start", Kind::OptStr),
    ("postgresql.callbacks", "on_stop", Kind::OptStr),
    ("postgresql.callbacks", "on_restart", Kind::OptStr),
    ("postgresql.callbacks", "on_reload", Kind::OptStr),
    ("postgresql.callbacks", "on_role_change", Kind::OptStr),
    ("ha", "nofailover", Kind::Bool),
    ("ha", "rest_listen", Kind::OptStr),
    ("ha", "rest_tls", Kind::Bool),
    ("ha", "failover_priority", Kind::SignedInt),
    ("ha", "noloadbalance", Kind::Bool),
    ("ha", "ttl_ms", Kind::Int),
    ("ha", "loop_wait_ms", Kind::Int),
    ("ha", "maximum_lag_on_failover", Kind::Int),
    ("ha", "primary_start_timeout_ms", Kind::Int),
    ("ha", "synchronous_mode", Kind::Str),
    ("ha", "synchronous_mode_strict", Kind::Bool),
    ("ha", "synchronous_node_count", Kind::Int),
    ("ha", "tags", Kind::Table),
    ("witness", "http_listen", Kind::OptStr),
    ("edge", "primary_listen", Kind::Str),
    ("edge", "replica_listen", Kind::Str),
    ("edge", "any_listen", Kind::Str),
    ("edge", "status_listen", Kind::Str),
    ("edge", "max_sessions", Kind::Int),
    ("edge", "primary_max_sessions", Kind::OptInt),
    ("edge", "replica_max_sessions", Kind::OptInt),
    ("edge", "any_max_sessions", Kind::OptInt),
    ("edge", "client_hello_timeout_ms", Kind::Int),
    ("edge", "primary_wait_ms", Kind::Int),
    ("edge", "session_threads", Kind::Int),
    ("edge", "replica_max_lag_bytes", Kind::OptInt),
    ("edge.vip", "address", Kind::Str),
    ("edge.vip", "interface", Kind::Str),
    ("edge.vip", "priority", Kind::Int),
    ("edge.vip", "preempt", Kind::Bool),
    ("edge.vip", "ttl_ms", Kind::OptInt),
    ("tls", "plaintext", Kind::Bool),
    ("tls", "ca", Kind::OptStr),
    ("tls", "cert", Kind::OptStr),
    ("tls", "key", Kind::OptStr),
    ("tls", "legacy_certificates", Kind::Str),
    ("log", "format", Kind::Str),
    ("log", "level", Kind::Str),
];

const PREFIX: &str = "PGHA_";

/// The lowercased path segments of a configuration variable, or `None` when
/// `name` is not one (no `PGHA_` prefix, or no `__` after it).
fn segments(name: &str) -> Option<Vec<String>> {
    let prefix = name.get(..PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let rest = &name[PREFIX.len()..];
    if !rest.contains("__") {
        return None;
    }
    Some(rest.split("__").map(|s| s.to_ascii_lowercase()).collect())
}

/// The configuration variables of this process. Other variables are skipped
/// without looking at their values, so unrelated non-UTF-8 ones do no harm.
pub(super) fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if segments(name).is_none() {
            continue;
        }
        match value.into_string() {
            Ok(value) => vars.push((name.to_string(), value)),
            Err(_) => {
                return Err(ConfigError::Parse {
                    origin: format!("environment variable {name}"),
                    message: "value is not valid UTF-8".to_string(),
                })
            }
        }
    }
    Ok(vars)
}

fn unknown_key_message(segs: &[String]) -> String {
    let sections: Vec<&str> = KEYS.iter().map(|k| k.0).fold(Vec::new(), |mut v, s| {
        if !v.contains(&s) {
            v.push(s);
        }
        v
    });
    if let [parent @ .., key] = segs {
        let nested = parent.join(".");
        if parent.len() > 1 && sections.contains(&nested.as_str()) {
            let keys: Vec<&str> = KEYS.iter().filter(|k| k.0 == nested).map(|k| k.1).collect();
            return format!(
                "unknown configuration key `{nested}.{key}` (keys in [{nested}]: {})",
                keys.join(", ")
            );
        }
    }
    match segs {
        [section, key] if sections.contains(&section.as_str()) => {
            let keys: Vec<&str> = KEYS.iter().filter(|k| k.0 == section).map(|k| k.1).collect();
            format!(
                "unknown configuration key `{section}.{key}` (keys in [{section}]: {})",
                keys.join(", ")
            )
        }
        [section, _] => format!(
            "unknown configuration section `{section}` (sections: {})",
            sections.join(", ")
        ),
        [section, key, entry, ..] if KEYS.iter().any(|k| k.0 == section && k.1 == key && k.2 == Kind::Table) => {
            let var = format!("PGHA_{}__{}", section.to_ascii_uppercase(), key.to_ascii_uppercase());
            format!(
                "`{section}.{key}.{entry}` cannot be set on its own (hint: set the whole table, \
                 e.g. {var}={entry}=value or {var}='{{{entry} = \"value\"}}')"
            )
        }
        _ => format!(
            "`{}` is not a configuration key (expected PGHA_<SECTION>__<KEY>, e.g. PGHA_NODE__NAME)",
            segs.join(".")
        ),
    }
}

/// Turns a raw value into the TOML value for a key of `kind`; `None` unsets it.
fn convert(kind: Kind, raw: &str) -> Result<Option<Value>, String> {
    let trimmed = raw.trim();
    match kind {
        Kind::Str => Ok(Some(Value::String(raw.to_string()))),
        Kind::OptStr if trimmed.is_empty() => Ok(None),
        Kind::OptStr => Ok(Some(Value::String(raw.to_string()))),
        Kind::OptInt if trimmed.is_empty() => Ok(None),
        Kind::Int | Kind::OptInt => trimmed
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| Some(Value::Integer(n)))
            .ok_or_else(|| format!("expected a non-negative whole number, got {raw:?}")),
        Kind::SignedInt => trimmed
            .parse::<i64>()
            .map(|n| Some(Value::Integer(n)))
            .map_err(|_| format!("expected a whole number, got {raw:?}")),
        Kind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Some(Value::Boolean(true))),
            "false" | "no" | "off" | "0" => Ok(Some(Value::Boolean(false))),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        Kind::List if trimmed.starts_with('[') => {
            let parsed = format!("v = {trimmed}").parse::<Table>().map_err(|e| {
                format!(
                    "not a valid TOML array: {} (hint: use a comma-separated list like \
                     db1=10.0.0.1:7400,db2=10.0.0.2:7400 or an array of quoted strings)",
                    e.message().trim_end().replace('\n', ": ")
                )
            })?;
            Ok(parsed.get("v").cloned())
        }
        Kind::Table if trimmed.starts_with('{') => {
            let parsed = format!("v = {trimmed}").parse::<Table>().map_err(|e| {
                format!(
                    "not a valid TOML inline table: {} (hint: write {{max_connections = 200, \
                     shared_buffers = \"256MB\"}} or a comma-separated list like \
                     max_connections=200,shared_buffers=256MB)",
                    e.message().trim_end().replace('\n', ": ")
                )
            })?;
            Ok(parsed.get("v").cloned())
        }
        Kind::Table => {
            let mut table = Table::new();
            // Tolerate a trailing comma; an empty value yields an empty table.
            for item in trimmed.split(',').map(str::trim).filter(|item| !item.is_empty()) {
                let Some((key, value)) = item.split_once('=') else {
                    return Err(format!(
                        "{item:?} is not key=value (hint: write a comma-separated list like a=1,b=x \
                         or a TOML inline table like {{a = 1, b = \"x\"}})"
                    ));
                };
                table.insert(key.trim().to_string(), Value::String(value.trim().to_string()));
            }
            Ok(Some(Value::Table(table)))
        }
        Kind::List => Ok(Some(Value::Array(
            trimmed
                .split(',')
                .map(str::trim)
                // Tolerate a trailing comma; an empty value yields an empty list.
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_string()))
                .collect(),
        ))),
    }
}

/// The table of a (possibly dotted) section, created when missing.
fn section_table<'a>(table: &'a mut Table, section: &str) -> &'a mut Table {
    let mut current = table;
    for part in section.split('.') {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            // Not reachable after the file deserialized, but never panic on input.
            *entry = Value::Table(Table::new());
        }
        current = match entry {
            Value::Table(t) => t,
            _ => unreachable!("made a table just above"),
        };
    }
    current
}

/// Merges the configuration variables among `env` into `table` and returns
/// their names (sorted) for error messages.
pub(super) fn overlay(
    table: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let mut vars: Vec<(String, Vec<String>, String)> = env
        .into_iter()
        .filter_map(|(name, value)| segments(&name).map(|segs| (name, segs, value)))
        .collect();
    // Sorted so that errors do not depend on the order the OS lists variables in.
    vars.sort();
    let mut set_by: BTreeMap<String, String> = BTreeMap::new();
    let mut names = Vec::new();
    for (name, segs, raw) in vars {
        let parse_err = |message: String| ConfigError::Parse {
            origin: format!("environment variable {name}"),
            message,
        };
        let Some(&(section, key, kind)) = KEYS.iter().find(|k| match segs.split_last() {
            Some((last, parent)) => !parent.is_empty() && k.0 == parent.join(".") && k.1 == last,
            None => false,
        }) else {
            return Err(parse_err(unknown_key_message(&segs)));
        };
        let path = format!("{section}.{key}");
        // Names are case-insensitive, so PGHA_NODE__NAME and pgha_node__name
        // would silently race; refuse instead.
        if let Some(other) = set_by.insert(path.clone(), name.clone()) {
            return Err(parse_err(format!("sets {path}, which {other} sets too")));
        }
        let value = convert(kind, &raw).map_err(parse_err)?;
        if let Some(value) = &value {
            // Deserialize this value on its own so that a type error (say, an
            // unknown log format) names the variable that caused it.
            let mut probe = Table::new();
            section_table(&mut probe, section).insert(key.to_string(), value.clone());
            Value::Table(probe)
                .try_into::<Config>()
                .map_err(|e| parse_err(format!("{path}: {}", e.message().trim_end())))?;
        }
        let section_table = section_table(table, section);
        match value {
            Some(value) => section_table.insert(key.to_string(), value),
            None => section_table.remove(key),
        };
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_rule() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            ("PGHA_NODE__NAME", Some(&["node", "name"])),
            ("pgha_dcs__heartbeat_ms", Some(&["dcs", "heartbeat_ms"])),
            ("PGHA_A__B__C", Some(&["a", "b", "c"])),
            ("PGHA_LOG", None),
            ("PGHA_CONFIG", None),
            ("PGHANODE__NAME", None),
            ("HOME", None),
            ("PG", None),
        ];
        for (name, want) in cases {
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(segments(name), want, "{name}");
        }
    }

    #[test]
    fn convert_values() {
        assert_eq!(convert(Kind::Str, "007"), Ok(Some(Value::String("007".into()))));
        assert_eq!(convert(Kind::OptStr, " "), Ok(None));
        assert_eq!(convert(Kind::Int, " 50 "), Ok(Some(Value::Integer(50))));
        assert!(convert(Kind::Int, "-1").is_err());
        assert!(convert(Kind::Int, "fast").is_err());
        assert_eq!(convert(Kind::Bool, "Yes"), Ok(Some(Value::Boolean(true))));
        assert_eq!(convert(Kind::Bool, "0"), Ok(Some(Value::Boolean(false))));
        assert!(convert(Kind::Bool, "maybe").is_err());
        let list = |items: &[&str]| {
            Ok(Some(Value::Array(
                items.iter().map(|s| Value::String(s.to_string())).collect(),
            )))
        };
        assert_eq!(convert(Kind::List, "a=h:1, b=h:2,"), list(&["a=h:1", "b=h:2"]));
        assert_eq!(convert(Kind::List, r#"["a=h:1","b=h:2"]"#), list(&["a=h:1", "b=h:2"]));
        assert_eq!(convert(Kind::List, ""), list(&[]));
        assert!(convert(Kind::List, "[a=h:1]").is_err());

        assert_eq!(convert(Kind::SignedInt, " -3 "), Ok(Some(Value::Integer(-3))));
        assert!(convert(Kind::SignedInt, "high").is_err());
        let table = |items: &[(&str, Value)]| {
            Ok(Some(Value::Table(
                items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            )))
        };
        let s = |v: &str| Value::String(v.to_string());
        assert_eq!(
            convert(Kind::Table, "a=1, b = x=y ,"),
            table(&[("a", s("1")), ("b", s("x=y"))])
        );
        assert_eq!(
            convert(Kind::Table, r#"{a = 1, "b.c" = "x,y"}"#),
            table(&[("a", Value::Integer(1)), ("b.c", s("x,y"))])
        );
        assert_eq!(convert(Kind::Table, " "), table(&[]));
        assert!(convert(Kind::Table, "a=1,b").is_err());
        assert!(convert(Kind::Table, "{a = }").is_err());
    }
}
