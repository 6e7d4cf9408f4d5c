//! Replica creation and bootstrap methods (pure): the ordered methods, their placeholders, and the recovery
//! settings a restored data directory is started with (Patroni's `create_replica_methods` and custom bootstrap).

use std::time::Duration;

use super::pgbackrest::Pgbackrest;
use super::render::conf_quote;

/// `{data_dir}`: the data directory to fill.
pub const DATA_DIR: &str = "{data_dir}";
/// Every placeholder a method's command may use.
pub const PLACEHOLDERS: [&str; 4] = ["data_dir", "conninfo", "member", "scope"];

/// How one method creates a data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MethodKind {
    /// `pg_basebackup` from the leader.
    Basebackup,
    /// A command (argv with placeholders), run as the PostgreSQL OS user.
    Command(Vec<String>),
}

/// A named replica creation method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaMethod {
    /// Its name in `create_replica_methods`.
    pub name: String,
    /// What it runs.
    pub kind: MethodKind,
    /// It needs no leader (`no_leader`): it may create the data directory while the cluster has none.
    pub no_leader: bool,
}

/// A bootstrap that restores a backup instead of running initdb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreBootstrap {
    /// The method's name (for logs).
    pub method: String,
    /// The restore command (argv with placeholders; `{conninfo}` is empty: there is no leader).
    pub argv: Vec<String>,
    /// Recovery settings written to `postgresql.auto.conf` for the recovery, removed after the promotion.
    pub recovery: Vec<(String, String)>,
}

/// How this member's data directory is created: replicas, bootstrap, WAL archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creation {
    /// The cluster name (`{scope}`).
    pub scope: String,
    /// Replica methods in order (empty: `pg_basebackup` only).
    pub replica_methods: Vec<ReplicaMethod>,
    /// No progress for this long aborts a method (`postgresql.clone_stall_timeout_ms`).
    pub stall_timeout: Duration,
    /// The pgBackRest repository (archive_command, restore_command).
    pub pgbackrest: Option<Pgbackrest>,
    /// Restore instead of initdb (None: initdb).
    pub bootstrap: Option<RestoreBootstrap>,
}

impl Default for Creation {
    fn default() -> Self {
        Creation {
            scope: String::new(),
            replica_methods: Vec::new(),
            stall_timeout: Duration::from_secs(600),
            pgbackrest: None,
            bootstrap: None,
        }
    }
}

impl Creation {
    /// The methods to try, in order (`pg_basebackup` alone when none is configured).
    pub fn methods(&self) -> Vec<ReplicaMethod> {
        if self.replica_methods.is_empty() {
            return vec![ReplicaMethod {
                name: "basebackup".into(),
                kind: MethodKind::Basebackup,
                no_leader: false,
            }];
        }
        self.replica_methods.clone()
    }

    /// Some method may create the data directory without a leader.
    pub fn any_without_leader(&self) -> bool {
        self.replica_methods.iter().any(|m| m.no_leader)
    }
}

/// Values of the placeholders.
#[derive(Clone, Debug)]
pub struct Placeholders<'a> {
    /// `{data_dir}`.
    pub data_dir: &'a str,
    /// `{conninfo}`: the leader as the replication user (empty for a bootstrap).
    pub conninfo: &'a str,
    /// `{member}`: this member's name.
    pub member: &'a str,
    /// `{scope}`: the cluster name.
    pub scope: &'a str,
}

/// The `{name}` placeholders of `word` that are not known (for validation).
pub fn unknown_placeholders(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = word;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                if !PLACEHOLDERS.contains(&name) {
                    out.push(format!("{{{name}}}"));
                }
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    out
}

/// `argv` with every placeholder replaced, word by word (no shell: a value never splits or quotes anything).
pub fn expand(argv: &[String], p: &Placeholders<'_>) -> Vec<String> {
    argv.iter()
        .map(|w| {
            w.replace("{data_dir}", p.data_dir)
                .replace("{conninfo}", p.conninfo)
                .replace("{member}", p.member)
                .replace("{scope}", p.scope)
        })
        .collect()
}

/// Settings a restore tool may leave in `postgresql.auto.conf` that pgha decides instead.
const RECOVERY_KEYS: &[&str] = &[
    "restore_command",
    "recovery_target",
    "recovery_target_time",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_xid",
    "recovery_target_inclusive",
    "recovery_target_action",
    "recovery_target_timeline",
    "recovery_end_command",
    "archive_cleanup_command",
    "primary_conninfo",
    "primary_slot_name",
];

/// The key of a `postgresql.conf` line (lowercase), if it sets one.
fn line_key(line: &str) -> Option<String> {
    let t = line.trim_start();
    if t.starts_with('#') || t.is_empty() {
        return None;
    }
    let end = t.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(t.len());
    Some(t[..end].to_ascii_lowercase())
}

/// `postgresql.auto.conf` without recovery settings (pgBackRest writes `restore_command` there; pgha renders its
/// own in `pgha.conf`, and a recovery target must not outlive the recovery), then `recovery` appended.
pub fn auto_conf_with(auto_conf: &str, recovery: &[(String, String)]) -> String {
    let mut out: String = auto_conf
        .lines()
        .filter(|l| line_key(l).is_none_or(|k| !RECOVERY_KEYS.contains(&k.as_str())))
        .flat_map(|l| [l, "\n"])
        .collect();
    for (k, v) in recovery {
        out.push_str(&format!("{k} = {}\n", conf_quote(v)));
    }
    out
}

/// The recovery settings of a bootstrap restore: the archive to read, the target (at most one), stop there and
/// promote.
pub fn recovery_settings(
    restore_command: Option<&str>,
    target: Option<(&str, &str)>,
    inclusive: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(rc) = restore_command {
        out.push(("restore_command".to_string(), rc.to_string()));
    }
    // Without a target PostgreSQL replays all the archive holds, then promotes at its end.
    if let Some((key, value)) = target {
        out.push((key.to_string(), value.to_string()));
        if !inclusive {
            out.push(("recovery_target_inclusive".into(), "off".into()));
        }
    }
    out.push(("recovery_target_action".into(), "promote".into()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let p = Placeholders {
            data_dir: "/pg data",
            conninfo: "host=a port=5",
            member: "n1",
            scope: "demo",
        };
        let argv: Vec<String> = [
            "restore",
            "--to={data_dir}",
            "{conninfo}",
            "{member}@{scope}",
            "{other}",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            expand(&argv, &p),
            ["restore", "--to=/pg data", "host=a port=5", "n1@demo", "{other}"]
        );
        for (word, unknown) in [
            ("--to={data_dir}", vec![]),
            ("{scope}-{member}", vec![]),
            ("{datadir} {x}", vec!["{datadir}", "{x}"]),
            ("no braces", vec![]),
            ("{unclosed", vec![]),
        ] {
            assert_eq!(unknown_placeholders(word), unknown, "{word}");
        }
    }

    #[test]
    fn auto_conf() {
        let pgbackrest = "# Do not edit\nwork_mem = '8MB'\nrestore_command = 'pgbackrest archive-get %f \"%p\"'\n  recovery_target_time='x'\n#restore_command = 'kept comment'\n";
        assert_eq!(
            auto_conf_with(pgbackrest, &[]),
            "# Do not edit\nwork_mem = '8MB'\n#restore_command = 'kept comment'\n"
        );
        let rec = recovery_settings(Some("get %f \"%p\""), Some(("recovery_target_lsn", "0/3000060")), false);
        assert_eq!(
            auto_conf_with("", &rec),
            "restore_command = 'get %f \"%p\"'\nrecovery_target_lsn = '0/3000060'\nrecovery_target_inclusive = 'off'\nrecovery_target_action = 'promote'\n"
        );
        assert_eq!(
            recovery_settings(None, None, true),
            [("recovery_target_action".to_string(), "promote".to_string())]
        );
    }

    #[test]
    fn default_method_is_basebackup() {
        let c = Creation::default();
        assert_eq!(c.methods()[0].kind, MethodKind::Basebackup);
    }
}
