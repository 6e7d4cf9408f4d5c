//! Validation of `postgresql.create_replica_methods`, `[postgresql.create_replica.*]`, `[postgresql.pgbackrest]`,
//! `[postgresql.bootstrap]` and `postgresql.clone_stall_timeout_ms`.

use super::backup::{BASEBACKUP, INITDB, PGBACKREST};
use super::validate::Report;
use super::Config;
use crate::postgres::replica_methods::{unknown_placeholders, PLACEHOLDERS};

/// Parameters `[postgresql.pgbackrest]` sets.
const ARCHIVE_PARAMETERS: [&str; 3] = ["archive_mode", "archive_command", "restore_command"];

fn placeholder_list() -> String {
    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
}

/// Checks a method's command: it splits, and uses only known placeholders.
fn check_command(r: &mut Report, key: &str, command: &super::HookCommand) {
    match command.argv() {
        Err(e) => r.add(
            key,
            e,
            "write the command line, e.g. \"/usr/local/bin/restore --to {data_dir}\"",
        ),
        Ok(argv) => {
            let unknown: Vec<String> = argv.iter().flat_map(|w| unknown_placeholders(w)).collect();
            if !unknown.is_empty() {
                r.add(
                    key,
                    format!("unknown placeholder(s) {}", unknown.join(", ")),
                    format!("the placeholders are {}", placeholder_list()),
                );
            }
        }
    }
}

/// Whether method `name` can run: built in, or a command (pgbackrest's default needs `[postgresql.pgbackrest]`).
fn method_defined(config: &Config, name: &str) -> bool {
    let pg = &config.postgresql;
    name == BASEBACKUP
        || pg.create_replica.get(name).is_some_and(|m| m.command.is_some())
        || (name == PGBACKREST && pg.pgbackrest.is_some())
}

pub(super) fn validate(config: &Config, r: &mut Report) {
    let pg = &config.postgresql;
    const METHODS: &str = "postgresql.create_replica_methods";
    if pg.create_replica_methods.is_empty() {
        r.add(
            METHODS,
            "is empty",
            "list at least one method; the default is [\"basebackup\"]",
        );
    }
    for (i, name) in pg.create_replica_methods.iter().enumerate() {
        let key = format!("{METHODS}[{i}]");
        if pg.create_replica_methods[..i].contains(name) {
            r.add(key, format!("{name:?} is listed twice"), "list each method once");
        } else if !method_defined(config, name) {
            let hint = match name.as_str() {
                PGBACKREST => "add a [postgresql.pgbackrest] section (stanza, config)".to_string(),
                _ => format!("add [postgresql.create_replica.{name}] with a command, or use \"basebackup\""),
            };
            r.add(key, format!("method {name:?} has no command"), hint);
        }
    }
    for (name, method) in &pg.create_replica {
        let key = format!("postgresql.create_replica.{name}");
        if name == BASEBACKUP {
            r.add(
                key,
                "\"basebackup\" is built in",
                "give your command another name and list it in create_replica_methods",
            );
            continue;
        }
        match &method.command {
            Some(c) => check_command(r, &format!("{key}.command"), c),
            None if name == PGBACKREST => {}
            None => r.add(
                format!("{key}.command"),
                "is required",
                format!(
                    "the command that fills {{data_dir}}; placeholders: {}",
                    placeholder_list()
                ),
            ),
        }
    }
    if pg.clone_stall_timeout_ms < 1000 {
        r.add(
            "postgresql.clone_stall_timeout_ms",
            format!("{} ms is below the minimum of 1000 ms", pg.clone_stall_timeout_ms),
            "the default is 600000 (10 minutes without progress)",
        );
    }
    if let Some(b) = &pg.pgbackrest {
        if let Some(stanza) = &b.stanza {
            if stanza.is_empty()
                || !stanza
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                r.add(
                    "postgresql.pgbackrest.stanza",
                    format!("{stanza:?} is not a plain name (letters, digits, '_', '-', '.')"),
                    "leave it unset to use cluster.name",
                );
            }
        }
        if b.bin.trim().is_empty() {
            r.add("postgresql.pgbackrest.bin", "is empty", "the default is \"pgbackrest\"");
        }
        if let Some(c) = &b.config {
            if !c.is_absolute() {
                r.add(
                    "postgresql.pgbackrest.config",
                    format!("{} is not an absolute path", c.display()),
                    "pgBackRest runs with / as its working directory: give the full path",
                );
            }
        }
        for name in ARCHIVE_PARAMETERS {
            let rendered = match name {
                "restore_command" => b.restore,
                _ => b.archive,
            };
            if rendered && pg.parameters.contains_key(name) {
                r.add(
                    format!("postgresql.parameters.{name}"),
                    "is set by [postgresql.pgbackrest]",
                    "remove it from [postgresql.parameters], or set archive/restore = false in [postgresql.pgbackrest]",
                );
            }
        }
    }
    bootstrap(config, r);
}

fn bootstrap(config: &Config, r: &mut Report) {
    let pg = &config.postgresql;
    let b = &pg.bootstrap;
    let targets: Vec<&str> = [
        ("recovery_target_time", &b.recovery_target_time),
        ("recovery_target_lsn", &b.recovery_target_lsn),
        ("recovery_target_name", &b.recovery_target_name),
    ]
    .iter()
    .filter(|(_, v)| v.is_some())
    .map(|(k, _)| *k)
    .collect();
    if targets.len() > 1 {
        r.add(
            "postgresql.bootstrap",
            format!("sets {}", targets.join(" and ")),
            "PostgreSQL recovers to one target: keep one of recovery_target_time, _lsn, _name",
        );
    }
    for (key, value) in [
        ("recovery_target_time", &b.recovery_target_time),
        ("recovery_target_lsn", &b.recovery_target_lsn),
        ("recovery_target_name", &b.recovery_target_name),
        ("restore_command", &b.restore_command),
    ] {
        let Some(value) = value else { continue };
        let key = format!("postgresql.bootstrap.{key}");
        if value.trim().is_empty() || value.contains(['\n', '\r', '\0']) {
            r.add(key, "is empty or spans several lines", "write one value on one line");
        } else if key.ends_with("_lsn") && crate::postgres::parse_lsn(value).is_none() {
            r.add(
                key,
                format!("{value:?} is not a WAL position"),
                "write it as PostgreSQL prints it, e.g. \"0/3000060\"",
            );
        }
    }
    match b.method.as_str() {
        INITDB => {
            if !targets.is_empty() || b.restore_command.is_some() {
                r.add(
                    "postgresql.bootstrap.method",
                    "is \"initdb\", but a recovery target or restore_command is set",
                    "set method = \"pgbackrest\" (or a restore command's name) to bootstrap from a backup",
                );
            }
        }
        name if !method_defined(config, name) || name == BASEBACKUP => r.add(
            "postgresql.bootstrap.method",
            format!("{name:?} is not a restore method"),
            "use \"initdb\", \"pgbackrest\" (with [postgresql.pgbackrest]) or the name of a \
             [postgresql.create_replica.<name>] command",
        ),
        _ => {
            if !targets.is_empty() && b.restore_command.is_none() && pg.pgbackrest.is_none() {
                r.add(
                    "postgresql.bootstrap.restore_command",
                    "is needed to recover to a target",
                    "set restore_command (how recovery fetches archived WAL), or configure [postgresql.pgbackrest]",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, ok, problem_keys, DB, DB_CONF};
    use super::super::Overrides;
    use crate::postgres::replica_methods::MethodKind;

    fn problems(extra: &str) -> Vec<String> {
        let text = format!("{DB_CONF}{extra}");
        match load(Some(&text), &[], DB, &Overrides::default()) {
            Ok(_) => Vec::new(),
            e => problem_keys(e),
        }
    }

    #[test]
    fn problems_name_their_key() {
        let repo = "[postgresql.pgbackrest]\nconfig = \"/etc/pgbackrest/pgbackrest.conf\"\n";
        let cases: Vec<(&str, String, Vec<&str>)> = vec![
            ("defaults", String::new(), vec![]),
            (
                "pgbackrest with its section",
                format!("create_replica_methods = [\"pgbackrest\", \"basebackup\"]\n{repo}"),
                vec![],
            ),
            (
                "pgbackrest without a section",
                "create_replica_methods = [\"pgbackrest\"]\n".into(),
                vec!["postgresql.create_replica_methods[0]"],
            ),
            ("empty list", "create_replica_methods = []\n".into(), vec!["postgresql.create_replica_methods"]),
            (
                "listed twice, unknown method",
                "create_replica_methods = [\"basebackup\", \"basebackup\", \"snap\"]\n".into(),
                vec!["postgresql.create_replica_methods[1]", "postgresql.create_replica_methods[2]"],
            ),
            (
                "a command with an unknown placeholder, one without a command, basebackup redefined",
                "create_replica_methods = [\"snap\"]\n[postgresql.create_replica.snap]\ncommand = \"restore {datadir}\"\n\
                 [postgresql.create_replica.other]\n[postgresql.create_replica.basebackup]\ncommand = \"x\"\n"
                    .into(),
                vec![
                    "postgresql.create_replica.basebackup",
                    "postgresql.create_replica.other.command",
                    "postgresql.create_replica.snap.command",
                ],
            ),
            ("stall too short", "clone_stall_timeout_ms = 10\n".into(), vec!["postgresql.clone_stall_timeout_ms"]),
            (
                "bad stanza, relative config, archive parameter set twice",
                "[postgresql.parameters]\narchive_command = \"cp\"\n[postgresql.pgbackrest]\nstanza = \"a b\"\nconfig = \"rel.conf\"\n"
                    .into(),
                vec![
                    "postgresql.parameters.archive_command",
                    "postgresql.pgbackrest.config",
                    "postgresql.pgbackrest.stanza",
                ],
            ),
            (
                "two targets, a bad LSN",
                format!(
                    "{repo}[postgresql.bootstrap]\nmethod = \"pgbackrest\"\nrecovery_target_time = \"2026-01-01\"\n\
                     recovery_target_lsn = \"nope\"\n"
                ),
                vec!["postgresql.bootstrap", "postgresql.bootstrap.recovery_target_lsn"],
            ),
            (
                "a target with initdb",
                "[postgresql.bootstrap]\nrecovery_target_name = \"p\"\n".into(),
                vec!["postgresql.bootstrap.method"],
            ),
            (
                "an unknown bootstrap method",
                "[postgresql.bootstrap]\nmethod = \"snap\"\n".into(),
                vec!["postgresql.bootstrap.method"],
            ),
            (
                "a custom restore to a target needs a restore_command",
                "[postgresql.create_replica.snap]\ncommand = \"restore {data_dir}\"\n[postgresql.bootstrap]\n\
                 method = \"snap\"\nrecovery_target_name = \"p\"\n"
                    .into(),
                vec!["postgresql.bootstrap.restore_command"],
            ),
        ];
        for (name, extra, mut want) in cases {
            let mut got = problems(&extra);
            got.sort();
            want.sort();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn creation_from_the_config() {
        let text = format!(
            "{DB_CONF}create_replica_methods = [\"pgbackrest\", \"snap\", \"basebackup\"]\nclone_stall_timeout_ms = 5000\n\
             [postgresql.create_replica.snap]\ncommand = [\"/bin/snap\", \"{{data_dir}}\"]\n\
             [postgresql.pgbackrest]\nstanza = \"main\"\n\
             [postgresql.bootstrap]\nmethod = \"pgbackrest\"\nrecovery_target_lsn = \"0/3000060\"\n"
        );
        let c = ok(Some(&text), &[], DB).pg_creation();
        let names: Vec<&str> = c.replica_methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["pgbackrest", "snap", "basebackup"]);
        let no_leader: Vec<bool> = c.replica_methods.iter().map(|m| m.no_leader).collect();
        assert_eq!(
            no_leader,
            [true, false, false],
            "pgbackrest needs no leader by default, the rest do"
        );
        assert!(c.any_without_leader());
        let flipped = format!(
            "{DB_CONF}create_replica_methods = [\"pgbackrest\", \"snap\"]\n\
             [postgresql.create_replica.snap]\ncommand = \"snap {{data_dir}}\"\nno_leader = true\n\
             [postgresql.create_replica.pgbackrest]\nno_leader = false\n[postgresql.pgbackrest]\n"
        );
        let c = ok(Some(&flipped), &[], DB).pg_creation();
        let no_leader: Vec<bool> = c.replica_methods.iter().map(|m| m.no_leader).collect();
        assert_eq!(no_leader, [false, true], "no_leader set explicitly");
        let c = ok(Some(&text), &[], DB).pg_creation();
        assert!(
            matches!(&c.replica_methods[0].kind, MethodKind::Command(a) if a.contains(&"--type=standby".to_string()))
        );
        assert_eq!(
            c.replica_methods[1].kind,
            MethodKind::Command(vec!["/bin/snap".into(), "{data_dir}".into()])
        );
        assert_eq!(c.stall_timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.pgbackrest.as_ref().map(|b| b.stanza.as_str()), Some("main"));
        let b = c.bootstrap.expect("a restore bootstrap");
        let keys: Vec<&str> = b.recovery.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["restore_command", "recovery_target_lsn", "recovery_target_action"]
        );
        assert!(b.recovery[0].1.contains("--stanza=main") && b.recovery[0].1.contains("archive-get"));
        assert!(ok(Some(DB_CONF), &[], DB).pg_creation().bootstrap.is_none());
    }
}
