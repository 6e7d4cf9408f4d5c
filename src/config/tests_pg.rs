//! Tests of the `[postgresql]` and `[ha]` sections and of `read_secret`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::tests::{load, ok, parse_error, problem_keys, Env, DB, DB_CONF};
use super::*;

const WITNESS: Purpose = Purpose::Run(Role::Witness);

fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn defaults() {
    let config = ok(Some(DB_CONF), &[], DB);
    let pg = &config.postgresql;
    assert_eq!(pg.bin_dir, None);
    assert_eq!(pg.data_dir, None);
    assert_eq!(pg.listen, "0.0.0.0:5432");
    assert_eq!(pg.connect_address, None);
    assert_eq!((pg.os_user.as_str(), pg.superuser.as_str()), ("postgres", "postgres"));
    assert_eq!(pg.replication_user, "replicator");
    assert!(pg.parameters.is_empty() && pg.pg_hba.is_empty());
    assert!(pg.rewind_fallback_reinit && !pg.allow_wipe_foreign_data && pg.tls);
    assert_eq!(pg.start_timeout_ms, 60_000);
    let ha = &config.ha;
    assert!(!ha.nofailover && !ha.noloadbalance && ha.tags.is_empty());
    assert_eq!(ha.failover_priority, 0);
    assert_eq!((ha.ttl_ms, ha.loop_wait_ms), (1200, 250));
    assert_eq!(ha.maximum_lag_on_failover, 1_048_576);
    assert_eq!(ha.primary_start_timeout_ms, 10_000);

    assert_eq!(config.pg_data_dir(), PathBuf::from("/var/lib/pgha/pgdata"));
    assert_eq!(config.pg_listen(), ("0.0.0.0".to_string(), 5432));
    // The host of this node's entry in dcs.peers, the port of postgresql.listen.
    assert_eq!(config.pg_connect_address(), ("10.0.0.1".to_string(), 5432));
}

#[test]
fn parameters_from_file_keep_their_text() {
    let file = format!(
        "{DB_CONF}{}",
        r#"[postgresql.parameters]
max_connections = 200
shared_buffers = "256MB"
random_page_cost = 1.1
log_checkpoints = true
jit = false
pg_stat_statements.max = 10000
"auto_explain.log_min_duration" = "1s"
"#
    );
    let config = ok(Some(&file), &[], DB);
    assert_eq!(
        config.postgresql.parameters,
        map(&[
            ("auto_explain.log_min_duration", "1s"),
            ("jit", "off"),
            ("log_checkpoints", "on"),
            ("max_connections", "200"),
            ("pg_stat_statements.max", "10000"),
            ("random_page_cost", "1.1"),
            ("shared_buffers", "256MB"),
        ])
    );
    let bad = format!("{DB_CONF}[postgresql.parameters]\nsearch_path = [\"a\"]\n");
    let (origin, message) = parse_error(load(Some(&bad), &[], DB, &Overrides::default()));
    assert_eq!(origin, "test.toml");
    assert!(
        message.contains("search_path") && message.contains("array"),
        "{message}"
    );
}

#[test]
fn env_overrides_tables_and_signed_int() {
    let config = ok(
        Some(DB_CONF),
        &[
            (
                "PGHA_POSTGRESQL__PARAMETERS",
                r#"{max_connections = 200, shared_buffers = "1GB", fsync = true}"#,
            ),
            ("PGHA_HA__TAGS", "datacenter=dc1, rack = r7,"),
            ("PGHA_HA__FAILOVER_PRIORITY", "-5"),
            ("PGHA_HA__NOFAILOVER", "yes"),
            ("PGHA_POSTGRESQL__CONNECT_ADDRESS", "[fd00::1]:6432"),
            ("PGHA_POSTGRESQL__DATA_DIR", "/srv/pg"),
            (
                "PGHA_POSTGRESQL__PG_HBA",
                r#"["host all all 10.0.0.0/8 scram-sha-256"]"#,
            ),
        ],
        DB,
    );
    assert_eq!(
        config.postgresql.parameters,
        map(&[("fsync", "on"), ("max_connections", "200"), ("shared_buffers", "1GB")])
    );
    assert_eq!(config.ha.tags, map(&[("datacenter", "dc1"), ("rack", "r7")]));
    assert_eq!(config.ha.failover_priority, -5);
    assert!(config.ha.nofailover);
    assert_eq!(config.pg_connect_address(), ("fd00::1".to_string(), 6432));
    assert_eq!(config.pg_data_dir(), PathBuf::from("/srv/pg"));
    assert_eq!(config.postgresql.pg_hba, vec!["host all all 10.0.0.0/8 scram-sha-256"]);

    // The environment replaces the file's table; an empty value empties it.
    let file = format!("{DB_CONF}[postgresql.parameters]\nwork_mem = \"4MB\"\n[ha.tags]\nzone = \"a\"\n");
    let env = [
        ("PGHA_POSTGRESQL__PARAMETERS", "max_connections=300"),
        ("PGHA_HA__TAGS", ""),
    ];
    let config = ok(Some(&file), &env, DB);
    assert_eq!(config.postgresql.parameters, map(&[("max_connections", "300")]));
    assert!(config.ha.tags.is_empty());
}

#[test]
fn env_errors_name_the_variable() {
    let cases: &[(Env, &str, &str)] = &[
        (
            &[("PGHA_HA__FAILOVER_PRIORITY", "high")],
            "PGHA_HA__FAILOVER_PRIORITY",
            "whole number",
        ),
        (
            &[("PGHA_HA__FAILOVER_PRIORITY", "3000000000")],
            "PGHA_HA__FAILOVER_PRIORITY",
            "ha.failover_priority",
        ),
        (&[("PGHA_HA__TTL_MS", "-1")], "PGHA_HA__TTL_MS", "non-negative"),
        (&[("PGHA_HA__TAGS", "dc1")], "PGHA_HA__TAGS", "key=value"),
        (&[("PGHA_HA__TAGS", "{zone = 1}")], "PGHA_HA__TAGS", "ha.tags"),
        (
            &[("PGHA_POSTGRESQL__PARAMETERS", "{a = }")],
            "PGHA_POSTGRESQL__PARAMETERS",
            "inline table",
        ),
        (
            &[("PGHA_POSTGRESQL__PARAMETERS", "{a = [1]}")],
            "PGHA_POSTGRESQL__PARAMETERS",
            "parameter `a`",
        ),
        (
            &[("PGHA_POSTGRESQL__PARAMETERS__WORK_MEM", "4MB")],
            "PGHA_POSTGRESQL__PARAMETERS__WORK_MEM",
            "PGHA_POSTGRESQL__PARAMETERS=work_mem=value",
        ),
        (
            &[("PGHA_POSTGRESQL__BOGUS", "1")],
            "PGHA_POSTGRESQL__BOGUS",
            "postgresql.bogus",
        ),
        (&[("PGHA_HA__NOFAILOVER", "maybe")], "PGHA_HA__NOFAILOVER", "maybe"),
    ];
    for (env, origin, needle) in cases {
        let (got_origin, message) = parse_error(load(Some(DB_CONF), env, DB, &Overrides::default()));
        assert!(got_origin.contains(origin), "{env:?}: origin {got_origin:?}");
        assert!(message.contains(needle), "{env:?}: {message:?} lacks {needle:?}");
    }
}

#[test]
fn wal_level_is_the_users_but_never_below_replica() {
    for (value, ok) in [("logical", true), ("replica", true), ("minimal", false), ("x", false)] {
        let env = [("PGHA_POSTGRESQL__PARAMETERS", format!("wal_level={value}"))];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match load(Some(DB_CONF), &env, DB, &Overrides::default()) {
            Ok(_) if ok => {}
            Err(ConfigError::Invalid { problems, .. }) if !ok => {
                assert_eq!(problems[0].key, "postgresql.parameters.wal_level", "{problems:?}");
                assert!(problems[0].hint.contains("logical"), "{problems:?}");
            }
            other => panic!("wal_level={value}: {other:?}"),
        }
    }
}

#[test]
fn each_rule_reports_its_key() {
    let owned = [
        "listen_addresses",
        "port",
        "primary_conninfo",
        "primary_slot_name",
        "hot_standby",
        "unix_socket_directories",
        "ssl",
        "ssl_cert_file",
        "ssl_key_file",
        "ssl_ca_file",
        "data_directory",
        "hba_file",
    ];
    for name in owned {
        let env = [("PGHA_POSTGRESQL__PARAMETERS", format!("{name}=x"))];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match load(Some(DB_CONF), &env, DB, &Overrides::default()) {
            Err(ConfigError::Invalid { problems, .. }) => {
                assert_eq!(problems.len(), 1, "{name}: {problems:?}");
                assert_eq!(problems[0].key, format!("postgresql.parameters.{name}"));
                assert!(
                    problems[0].hint.contains("set by pgha from [postgresql]/[tls]"),
                    "{name}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
    }

    let cases: &[(Env, &[&str])] = &[
        (&[], &[]),
        (&[("PGHA_POSTGRESQL__LISTEN", "5432")], &["postgresql.listen"]),
        (&[("PGHA_POSTGRESQL__LISTEN", "")], &["postgresql.listen"]),
        (&[("PGHA_POSTGRESQL__LISTEN", "[::]:5432")], &[]),
        (&[("PGHA_POSTGRESQL__LISTEN", "127.0.0.1:0")], &["postgresql.listen"]),
        (
            &[("PGHA_POSTGRESQL__CONNECT_ADDRESS", "0.0.0.0:5432")],
            &["postgresql.connect_address"],
        ),
        (
            &[("PGHA_POSTGRESQL__CONNECT_ADDRESS", "[::]:5432")],
            &["postgresql.connect_address"],
        ),
        (
            &[("PGHA_POSTGRESQL__CONNECT_ADDRESS", "db1.example.com")],
            &["postgresql.connect_address"],
        ),
        (&[("PGHA_POSTGRESQL__CONNECT_ADDRESS", "db1.example.com:5432")], &[]),
        (&[("PGHA_POSTGRESQL__CONNECT_ADDRESS", "")], &[]),
        (
            &[("PGHA_POSTGRESQL__DATA_DIR", "/var/lib/pgha/")],
            &["postgresql.data_dir"],
        ),
        (&[("PGHA_POSTGRESQL__OS_USER", "")], &["postgresql.os_user"]),
        (&[("PGHA_POSTGRESQL__OS_USER", "post-gres")], &["postgresql.os_user"]),
        (&[("PGHA_POSTGRESQL__OS_USER", "pg_os")], &[]),
        (&[("PGHA_POSTGRESQL__SUPERUSER", "")], &["postgresql.superuser"]),
        (
            &[("PGHA_POSTGRESQL__SUPERUSER", "super user")],
            &["postgresql.superuser"],
        ),
        (&[("PGHA_POSTGRESQL__SUPERUSER", "pg_admin")], &["postgresql.superuser"]),
        (&[("PGHA_POSTGRESQL__SUPERUSER", "Admin_1")], &[]),
        (
            &[("PGHA_POSTGRESQL__SUPERUSER_PASSWORD_FILE", "")],
            &["postgresql.superuser_password_file"],
        ),
        (
            &[("PGHA_POSTGRESQL__REPLICATION_USER", "PG_REPL")],
            &["postgresql.replication_user"],
        ),
        (
            &[("PGHA_POSTGRESQL__REPLICATION_USER", "repl;")],
            &["postgresql.replication_user"],
        ),
        (
            &[("PGHA_POSTGRESQL__REPLICATION_USER", "postgres")],
            &["postgresql.replication_user"],
        ),
        (
            &[("PGHA_POSTGRESQL__REPLICATION_PASSWORD_FILE", "")],
            &["postgresql.replication_password_file"],
        ),
        (
            &[("PGHA_POSTGRESQL__PG_HBA", "[\"local all all peer\\nhost\"]")],
            &["postgresql.pg_hba[0]"],
        ),
        (
            &[("PGHA_POSTGRESQL__START_TIMEOUT_MS", "999")],
            &["postgresql.start_timeout_ms"],
        ),
        (&[("PGHA_POSTGRESQL__START_TIMEOUT_MS", "1000")], &[]),
        (
            &[("PGHA_POSTGRESQL__PARAMETERS", "Work_Mem=4MB")],
            &["postgresql.parameters.Work_Mem"],
        ),
        (
            &[("PGHA_POSTGRESQL__PARAMETERS", "{\"work mem\" = 1}")],
            &["postgresql.parameters.\"work mem\""],
        ),
        (
            &[("PGHA_POSTGRESQL__PARAMETERS", "=4MB")],
            &["postgresql.parameters.\"\""],
        ),
        (
            &[("PGHA_POSTGRESQL__PARAMETERS", "pg_stat_statements.max=100,work_mem=4MB")],
            &[],
        ),
        (
            &[("PGHA_HA__TTL_MS", "499"), ("PGHA_HA__LOOP_WAIT_MS", "50")],
            &["ha.ttl_ms"],
        ),
        (&[("PGHA_HA__TTL_MS", "500"), ("PGHA_HA__LOOP_WAIT_MS", "250")], &[]),
        (
            &[("PGHA_HA__TTL_MS", "500"), ("PGHA_HA__LOOP_WAIT_MS", "251")],
            &["ha.loop_wait_ms"],
        ),
        (&[("PGHA_HA__LOOP_WAIT_MS", "49")], &["ha.loop_wait_ms"]),
        (&[("PGHA_HA__LOOP_WAIT_MS", "1001")], &["ha.loop_wait_ms"]),
        (
            &[
                ("PGHA_HA__PRIMARY_START_TIMEOUT_MS", "0"),
                ("PGHA_HA__MAXIMUM_LAG_ON_FAILOVER", "0"),
            ],
            &[],
        ),
        (&[("PGHA_HA__FAILOVER_PRIORITY", "-2147483648")], &[]),
        (&[("PGHA_HA__REST_TLS", "true")], &["ha.rest_tls"]),
        (
            &[("PGHA_HA__REST_TLS", "true"), ("PGHA_HA__REST_LISTEN", "0.0.0.0:8008")],
            &[],
        ),
        (
            &[
                ("PGHA_HA__REST_TLS", "true"),
                ("PGHA_HA__REST_LISTEN", "0.0.0.0:8008"),
                ("PGHA_TLS__PLAINTEXT", "true"),
            ],
            &["ha.rest_tls"],
        ),
        (&[("PGHA_HA__TAGS", "{\"\" = \"x\", zone = \"\"}")], &["ha.tags.\"\""]),
        (
            &[
                ("PGHA_POSTGRESQL__LISTEN", "x"),
                ("PGHA_POSTGRESQL__SUPERUSER", ""),
                ("PGHA_POSTGRESQL__PARAMETERS", "port=1,ssl=on"),
                ("PGHA_HA__TTL_MS", "100"),
            ],
            &[
                "postgresql.listen",
                "postgresql.superuser",
                "postgresql.parameters.port",
                "postgresql.parameters.ssl",
                "ha.ttl_ms",
                "ha.loop_wait_ms",
            ],
        ),
    ];
    for (env, want) in cases {
        let result = load(Some(DB_CONF), env, DB, &Overrides::default());
        let got = match result {
            Ok(_) => Vec::new(),
            Err(_) => problem_keys(result),
        };
        assert_eq!(got, *want, "{env:?}");
    }
}

#[test]
fn other_roles_ignore_the_sections() {
    let witness = r#"
[node]
name = "w1"
data_dir = "/var/lib/pgha"
[dcs]
listen = "0.0.0.0:7400"
peers = ["db1=10.0.0.1:7400", "w1=10.0.0.3:7400"]
[tls]
plaintext = true
"#;
    let broken: Env = &[
        ("PGHA_POSTGRESQL__LISTEN", "nowhere"),
        ("PGHA_POSTGRESQL__PARAMETERS", "port=1"),
        ("PGHA_HA__TTL_MS", "1"),
    ];
    ok(Some(witness), &[], WITNESS);
    ok(Some(witness), broken, WITNESS);
    ok(Some(example(Role::Edge)), broken, Purpose::Run(Role::Edge));
    ok(Some(example(Role::Edge)), broken, Purpose::Ctl);
    // The same witness file as a db node lacks the password files.
    let env = [("PGHA_NODE__NAME", "db1")];
    assert_eq!(
        problem_keys(load(Some(witness), &env, DB, &Overrides::default())),
        vec![
            "postgresql.superuser_password_file",
            "postgresql.replication_password_file"
        ]
    );
}

#[test]
fn helpers_fall_back_sensibly() {
    let mut config = ok(Some(DB_CONF), &[], DB);
    config.postgresql.listen = "[::]:6000".into();
    assert_eq!(config.pg_listen(), ("::".to_string(), 6000));
    config.dcs.advertise = Some("[fd00::9]:7400".into());
    assert_eq!(config.pg_connect_address(), ("fd00::9".to_string(), 6000));
    config.dcs.advertise = Some("db1.example.com:7400".into());
    assert_eq!(config.pg_connect_address(), ("db1.example.com".to_string(), 6000));
    config.postgresql.connect_address = Some("pg.example.com:6432".into());
    assert_eq!(config.pg_connect_address(), ("pg.example.com".to_string(), 6432));
    config.postgresql.listen = "bogus".into();
    assert_eq!(config.pg_listen(), ("0.0.0.0".to_string(), 5432));
    config.postgresql.data_dir = Some(PathBuf::new());
    assert_eq!(config.pg_data_dir(), Path::new("/var/lib/pgha/pgdata"));
}

#[test]
fn hooks_parse_from_file_and_environment() {
    let file = format!(
        "{DB_CONF}{}",
        r#"pre_promote = "/usr/local/bin/fence --site 'dc 1'"
pre_promote_timeout_ms = 5000
pre_promote_on_timeout = "promote"
callback_timeout_ms = 1000
[postgresql.callbacks]
on_role_change = ["/usr/local/bin/hook", "a b"]
"#
    );
    let config = ok(
        Some(&file),
        &[("PGHA_POSTGRESQL__CALLBACKS__ON_START", "/bin/hook -v")],
        DB,
    );
    let pg = &config.postgresql;
    let argv = |c: &Option<HookCommand>| c.as_ref().map(|c| c.argv().expect("valid"));
    let words = |w: &[&str]| Some(w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        argv(&pg.pre_promote),
        words(&["/usr/local/bin/fence", "--site", "dc 1"])
    );
    assert_eq!(
        argv(&pg.callbacks.on_role_change),
        words(&["/usr/local/bin/hook", "a b"])
    );
    assert_eq!(argv(&pg.callbacks.on_start), words(&["/bin/hook", "-v"]));
    assert_eq!(pg.callbacks.on_stop, None);
    assert_eq!((pg.pre_promote_timeout_ms, pg.callback_timeout_ms), (5000, 1000));
    assert_eq!(pg.pre_promote_on_timeout, PrePromoteOnTimeout::Promote);
    let defaults = ok(Some(DB_CONF), &[], DB);
    assert_eq!(defaults.postgresql.pre_promote_on_timeout, PrePromoteOnTimeout::Veto);
    assert_eq!(
        (
            defaults.postgresql.pre_promote_timeout_ms,
            defaults.postgresql.callback_timeout_ms
        ),
        (10_000, 30_000)
    );
}

#[test]
fn hook_problems_name_the_key() {
    let file = format!(
        "{DB_CONF}{}",
        r#"pre_promote = "/bin/x 'unbalanced"
pre_promote_timeout_ms = 10
callback_timeout_ms = 0
[postgresql.callbacks]
on_start = "   "
on_stop = []
on_reload = ["", "x"]
"#
    );
    let keys = problem_keys(load(Some(&file), &[], DB, &Overrides::default()));
    assert_eq!(
        keys,
        [
            "postgresql.callbacks.on_start",
            "postgresql.callbacks.on_stop",
            "postgresql.callbacks.on_reload",
            "postgresql.pre_promote",
            "postgresql.pre_promote_timeout_ms",
            "postgresql.callback_timeout_ms",
        ]
    );
    let bad = format!("{DB_CONF}pre_promote_on_timeout = \"maybe\"\n");
    let (_, message) = parse_error(load(Some(&bad), &[], DB, &Overrides::default()));
    assert!(message.contains("pre_promote_on_timeout"), "{message}");
    let bad = format!("{DB_CONF}pre_promote = 3\n");
    let (_, message) = parse_error(load(Some(&bad), &[], DB, &Overrides::default()));
    assert!(
        message.contains("pre_promote") && message.contains("argv array"),
        "{message}"
    );
}

#[test]
fn standby_cluster_section_is_read_and_checked() {
    let ok = format!("{DB_CONF}\n[ha.standby_cluster]\nhost = \"10.1.0.10\"\nport = 5433\n");
    let config = load(Some(&ok), &[], DB, &Overrides::default()).expect("a valid standby cluster section");
    let standby = config.ha.standby_cluster.expect("read");
    assert_eq!(standby.remote(), Some(("10.1.0.10".to_string(), 5433)));
    let cases: &[(&str, &[&str])] = &[
        ("port = 5432\n", &["ha.standby_cluster.host", "ha.standby_cluster.port"]),
        (
            "host = \"a b\"\nport = 0\n",
            &["ha.standby_cluster.host", "ha.standby_cluster.port"],
        ),
        ("restore_command = \"cp /a/%f %p\"\n", &[]),
    ];
    for (body, want) in cases {
        let text = format!("{DB_CONF}\n[ha.standby_cluster]\n{body}");
        let result = load(Some(&text), &[], DB, &Overrides::default());
        let got = match result {
            Ok(_) => Vec::new(),
            Err(_) => problem_keys(result),
        };
        assert_eq!(got, *want, "{body}");
    }
}
