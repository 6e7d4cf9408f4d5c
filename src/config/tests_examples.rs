//! Tests that the example files and the environment key table match the config structs.

use std::collections::BTreeSet;

use super::env::Kind;
use super::tests::ok;
use super::*;

#[test]
fn examples_validate_for_their_role() {
    for role in Role::ALL {
        let config = ok(Some(example(role)), &[], Purpose::Run(role));
        assert!(!config.tls.plaintext, "{role}");
        assert!(config.tls.ca.is_some(), "{role}");
        // The files do not exist here: existence is checked at start-up.
        assert!(!config.tls.ca.as_ref().is_some_and(|p| p.exists()));
        assert_eq!(
            config.dcs,
            {
                DcsSection {
                    listen: config.dcs.listen.clone(),
                    peers: config.dcs.peers.clone(),
                    endpoints: config.dcs.endpoints.clone(),
                    ..DcsSection::default()
                }
            },
            "{role}: example values must be the defaults"
        );
        assert_eq!(
            config.ha,
            HaSection::default(),
            "{role}: example values must be the defaults"
        );
        let pg = &config.postgresql;
        assert_eq!(
            *pg,
            PostgresqlSection {
                superuser_password_file: pg.superuser_password_file.clone(),
                replication_password_file: pg.replication_password_file.clone(),
                parameters: pg.parameters.clone(),
                ..PostgresqlSection::default()
            },
            "{role}: example values must be the defaults"
        );
        if role == Role::Db {
            assert!(pg.superuser_password_file.as_ref().is_some_and(|p| !p.exists()));
            assert!(pg.replication_password_file.is_some());
            assert_eq!(pg.parameters.get("max_connections").map(String::as_str), Some("200"));
            assert_eq!(pg.parameters.get("shared_buffers").map(String::as_str), Some("256MB"));
        }
    }
    ok(Some(example(Role::Edge)), &[], Purpose::Ctl);
}

#[test]
fn examples_document_every_key() {
    let edge_keys = [
        "cluster.name",
        "node.name",
        "dcs.endpoints",
        "dcs.peers",
        "dcs.request_timeout_ms",
        "tls.plaintext",
        "tls.ca",
        "tls.cert",
        "tls.key",
        "log.format",
        "log.level",
    ];
    let db_only = [
        "postgresql",
        "postgresql.callbacks",
        "postgresql.pgbackrest",
        "postgresql.bootstrap",
        "ha",
    ];
    let edge_only = ["edge", "edge.vip"];
    let witness_only = ["witness"];
    for role in Role::ALL {
        let text = example(role);
        for (section, key, kind) in env::KEYS {
            let path = format!("{section}.{key}");
            if role == Role::Edge && !edge_keys.contains(&path.as_str()) && !edge_only.contains(section)
                || role != Role::Db && db_only.contains(section)
                || role != Role::Edge && edge_only.contains(section)
                || role != Role::Witness && witness_only.contains(section)
            {
                continue;
            }
            if *kind == Kind::Table {
                // Tables are documented as their own `[section.key]`.
                assert!(
                    text.lines().any(|l| l.trim_start_matches("# ") == format!("[{path}]")),
                    "{role}: [{path}] missing from the example"
                );
                continue;
            }
            // An optional section (unset by default) is documented commented out.
            let start = text
                .find(&format!("\n[{section}]\n"))
                .or_else(|| text.find(&format!("\n# [{section}]\n")))
                .unwrap_or_else(|| panic!("{role}: no [{section}]"));
            let body = &text[start + 1..];
            let body = &body[..body[1..].find("\n[").map_or(body.len(), |i| i + 1)];
            assert!(
                body.lines()
                    .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} ="))),
                "{role}: {path} missing from the example"
            );
        }
    }
    for role in [Role::Witness, Role::Edge] {
        for section in db_only {
            assert!(
                !example(role).contains(&format!("[{section}")),
                "{role}: has [{section}]"
            );
        }
    }
    for role in [Role::Db, Role::Witness] {
        assert!(!example(role).contains("[edge"), "{role}: has [edge]");
    }
    for role in [Role::Db, Role::Edge] {
        assert!(!example(role).contains("[witness]"), "{role}: has [witness]");
    }
}

#[test]
fn key_table_matches_struct() {
    let mut full = Config::default();
    full.dcs.advertise = Some("h:1".into());
    full.tls.ca = Some("a".into());
    full.tls.cert = Some("b".into());
    full.tls.key = Some("c".into());
    let pg = &mut full.postgresql;
    pg.bin_dir = Some("d".into());
    pg.data_dir = Some("e".into());
    pg.connect_address = Some("h:2".into());
    pg.superuser_password_file = Some("f".into());
    pg.replication_password_file = Some("g".into());
    pg.pre_promote = Some(HookCommand::Line("/bin/true".into()));
    let hook = Some(HookCommand::Argv(vec!["/bin/hook".into(), "x".into()]));
    pg.callbacks = CallbacksSection {
        on_start: hook.clone(),
        on_stop: hook.clone(),
        on_restart: hook.clone(),
        on_reload: hook.clone(),
        on_role_change: hook,
    };
    pg.pgbackrest = Some(crate::config::PgbackrestSection {
        stanza: Some("s".into()),
        config: Some("/c".into()),
        ..Default::default()
    });
    pg.bootstrap.recovery_target_time = Some("t".into());
    pg.bootstrap.recovery_target_lsn = Some("0/1".into());
    pg.bootstrap.recovery_target_name = Some("n".into());
    pg.bootstrap.restore_command = Some("r".into());
    full.ha.rest_listen = Some("0.0.0.0:8008".into());
    full.witness.http_listen = Some("0.0.0.0:8008".into());
    full.edge.replica_max_lag_bytes = Some(1);
    full.edge.primary_max_sessions = Some(1);
    full.edge.replica_max_sessions = Some(1);
    full.edge.any_max_sessions = Some(1);
    full.edge.vip = Some(VipSection {
        ttl_ms: Some(1000),
        ..VipSection::default()
    });
    let value = toml::Value::try_from(&full).expect("serializable");
    let mut from_struct = BTreeSet::new();
    for (section, table) in value.as_table().expect("table") {
        for (key, v) in table.as_table().expect("section table") {
            let nested = format!("{section}.{key}");
            match v.as_table() {
                // A nested section (not a map-valued key such as postgresql.parameters).
                Some(sub) if env::KEYS.iter().any(|k| k.0 == nested) => {
                    from_struct.extend(sub.keys().map(|k| format!("{nested}.{k}")));
                }
                _ => {
                    from_struct.insert(nested);
                }
            }
        }
    }
    let from_table: BTreeSet<String> = env::KEYS.iter().map(|(s, k, _)| format!("{s}.{k}")).collect();
    assert_eq!(from_struct, from_table);
    // Every table key is a map in the struct, and only those.
    for (section, key, kind) in env::KEYS {
        let is_table = section.split('.').fold(&value, |v, part| &v[part])[key].is_table();
        assert_eq!(is_table, *kind == Kind::Table, "{section}.{key}");
    }
}

#[test]
fn config_round_trips_through_toml_text() {
    let mut config = ok(Some(example(Role::Db)), &[], Purpose::Run(Role::Db));
    config.ha.tags.insert("datacenter".into(), "dc1".into());
    config
        .postgresql
        .parameters
        .insert("pg_stat_statements.max".into(), "10000".into());
    let text = toml::to_string(&config).expect("serializable");
    let back: Config = toml::from_str(&text).expect("parses");
    assert_eq!(back, config, "{text}");
}
