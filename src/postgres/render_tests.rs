//! Table-driven tests of the pure renderers.

use std::path::{Path, PathBuf};

use super::*;
use crate::postgres::PgTls;

fn settings() -> PgSettings {
    let mut s = PgSettings::new(
        "db1",
        Path::new("/bin"),
        Path::new("/data/pg"),
        Path::new("/run/pg"),
        5433,
    );
    s.listen_host = "10.0.0.1".into();
    s
}

#[test]
fn quoting() {
    for (raw, conf, ci) in [
        ("plain", "'plain'", "plain"),
        ("", "''", "''"),
        ("it's", "'it''s'", "'it\\'s'"),
        ("a b", "'a b'", "'a b'"),
        ("c:\\x", "'c:\\\\x'", "'c:\\\\x'"),
    ] {
        assert_eq!(conf_quote(raw), conf, "{raw:?}");
        assert_eq!(conninfo_quote(raw), ci, "{raw:?}");
    }
}

#[test]
fn conninfos() {
    let mut s = settings();
    s.data_dir = PathBuf::from("/my data/pg");
    let cases: Vec<(Option<&str>, Option<&Path>, bool, &str)> =
        vec![
        (None, None, false, "host=h1 port=5432 user=replicator application_name=db1 sslmode=prefer"),
        (
            Some("postgres"),
            Some(Path::new("/data/pg.pgpass")),
            false,
            "host=h1 port=5432 user=replicator dbname=postgres application_name=db1 passfile=/data/pg.pgpass \
             sslmode=prefer",
        ),
        (
            None,
            None,
            true,
            "host=h1 port=5432 user=replicator application_name=db1 sslmode=verify-ca sslrootcert='/my data/pg.ca.crt'",
        ),
    ];
    for (db, pass, tls, want) in cases {
        s.tls = tls.then(|| PgTls {
            cert: "c".into(),
            key: "k".into(),
            ca: PathBuf::from("/etc/my ca.pem"),
        });
        assert_eq!(client_conninfo(&s, "h1", 5432, db, pass), want);
    }
}

#[test]
fn pgha_conf_primary_and_replica() {
    let mut s = settings();
    s.parameters.insert("shared_buffers".into(), "1GB".into());
    s.parameters.insert("max_wal_senders".into(), "20".into());
    let (primary, warnings) = pgha_conf(&s, &ConfRole::Primary, None);
    assert!(warnings.is_empty());
    for line in [
        "listen_addresses = '10.0.0.1'\n",
        "port = '5433'\n",
        "unix_socket_directories = '/run/pg'\n",
        "wal_level = 'replica'\n",
        "hot_standby = 'on'\n",
        "primary_conninfo = ''\n",
        "primary_slot_name = ''\n",
        "wal_log_hints = 'on'\n",
        "wal_keep_size = '256MB'\n",
        "hot_standby_feedback = 'on'\n",
        "max_replication_slots = '10'\n",
        "shared_buffers = '1GB'\n",
        "max_wal_senders = '20'\n",
    ] {
        assert!(primary.contains(line), "{line:?} missing in\n{primary}");
    }
    assert!(!primary.contains("max_wal_senders = '10'"));
    assert!(!primary.contains("ssl"));
    assert_eq!(
        pgha_conf(&s, &ConfRole::Standby, None).0,
        primary,
        "a standby has no upstream either"
    );

    let role = ConfRole::Replica {
        primary_host: "10.0.0.2".into(),
        primary_port: 5432,
        slot: Some("db1".into()),
    };
    let (replica, _) = pgha_conf(&s, &role, Some(Path::new("/data/pg.pgpass")));
    assert!(replica.contains(
        "primary_conninfo = 'host=10.0.0.2 port=5432 user=replicator application_name=db1 \
         passfile=/data/pg.pgpass sslmode=prefer'\n"
    ));
    assert!(replica.contains("primary_slot_name = 'db1'\n"));
}

#[test]
fn wal_level_logical_and_failover_slot_settings() {
    let mut s = settings();
    s.parameters.insert("wal_level".into(), "logical".into());
    s.parameters.insert("sync_replication_slots".into(), "off".into());
    let replica = ConfRole::Replica {
        primary_host: "h".into(),
        primary_port: 5432,
        slot: Some("db1".into()),
    };
    let (conf, warnings) = pgha_conf(&s, &replica, None);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(conf.contains("wal_level = 'logical'\n"), "{conf}");
    assert!(
        conf.contains("sync_replication_slots = 'off'\n"),
        "a user value without slot sync"
    );
    s.slot_sync = crate::postgres::SlotSync {
        enabled: true,
        standby_slots: vec!["db2".into(), "db3".into()],
    };
    for (major, rendered) in [(Some(16), false), (None, false), (Some(17), true), (Some(18), true)] {
        s.major = major;
        let (conf, warnings) = pgha_conf(&s, &replica, None);
        assert_eq!(
            conf.contains("sync_replication_slots = 'on'\n"),
            rendered,
            "{major:?}:\n{conf}"
        );
        assert_eq!(
            conf.contains("synchronized_standby_slots = 'db2,db3'\n"),
            rendered,
            "{major:?}"
        );
        assert_eq!(
            warnings.len(),
            usize::from(rendered),
            "the user's value is ignored: {warnings:?}"
        );
        assert!(
            conf.contains("dbname=postgres"),
            "the sync worker's database in primary_conninfo"
        );
    }
}

#[test]
fn pgha_conf_rejects_owned_and_bad_parameters() {
    let mut s = settings();
    s.tls = Some(PgTls {
        cert: "c".into(),
        key: "k".into(),
        ca: "a".into(),
    });
    for (key, value) in [
        ("Port", "1"),
        ("listen_addresses", "*"),
        ("primary_conninfo", "host=x"),
        ("wal_level", "minimal"),
        ("hba_file", "/etc/x"),
        ("ssl_key_file", "/k"),
        ("bad key", "1"),
        ("work_mem", "1\nport = 1"),
    ] {
        s.parameters.clear();
        s.parameters.insert(key.into(), value.into());
        let (conf, warnings) = pgha_conf(&s, &ConfRole::Primary, None);
        assert_eq!(warnings.len(), 1, "{key}: {warnings:?}");
        assert!(
            !conf.contains(&format!("'{value}'")) || value == "1",
            "{key} leaked:\n{conf}"
        );
        assert!(conf.contains("port = '5433'\n") && conf.contains("ssl_key_file = 'pgha_server.key'\n"));
    }
    s.parameters.clear();
    s.parameters.insert("app.setting".into(), "it's".into());
    let (conf, warnings) = pgha_conf(&s, &ConfRole::Primary, None);
    assert!(warnings.is_empty() && conf.contains("app.setting = 'it''s'\n"));
}

#[test]
fn include_exactly_once_at_the_end() {
    for (input, want) in [
        ("", "include 'pgha.conf'\n"),
        ("a = 1\n", "a = 1\ninclude 'pgha.conf'\n"),
        ("a = 1", "a = 1\ninclude 'pgha.conf'\n"),
        ("include 'pgha.conf'\na = 1\n", "a = 1\ninclude 'pgha.conf'\n"),
        (
            "a = 1\n  include = 'pgha.conf'\ninclude 'pgha.conf'\n",
            "a = 1\ninclude 'pgha.conf'\n",
        ),
        (
            "include 'other.conf'\n#include 'pgha.conf'\n",
            "include 'other.conf'\n#include 'pgha.conf'\ninclude 'pgha.conf'\n",
        ),
    ] {
        let got = ensure_include(input);
        assert_eq!(got, want, "{input:?}");
        assert_eq!(ensure_include(&got), got, "idempotent");
    }
}

#[test]
fn hba_defaults_and_user_lines() {
    let mut s = settings();
    let (hba, _) = pg_hba(&s);
    let lines: Vec<&str> = hba.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "local all \"postgres\" peer map=pgha",
            "local all all scram-sha-256",
            "host replication \"replicator\" 0.0.0.0/0 scram-sha-256",
            "host replication \"replicator\" ::/0 scram-sha-256",
            "host all all 0.0.0.0/0 scram-sha-256",
            "host all all ::/0 scram-sha-256",
        ]
    );
    s.tls = Some(PgTls {
        cert: "c".into(),
        key: "k".into(),
        ca: "a".into(),
    });
    assert!(pg_hba(&s).0.contains("hostssl all all ::/0 scram-sha-256\n"));
    s.hba = vec![
        "hostssl all all 10.0.0.0/8 scram-sha-256".into(),
        "local all all trust\nx".into(),
    ];
    let (hba, warnings) = pg_hba(&s);
    let lines: Vec<&str> = hba.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "local all \"postgres\" peer map=pgha",
            "hostssl all all 10.0.0.0/8 scram-sha-256"
        ]
    );
    assert_eq!(warnings.len(), 1);
}

#[test]
fn ident_and_passfile() {
    let ident = pg_ident(&["root", "postgres", "root"], "postgres");
    let lines: Vec<&str> = ident.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines, ["pgha \"root\" \"postgres\"", "pgha \"postgres\" \"postgres\""]);
    for (user, pw, want) in [
        ("replicator", "s3cret", "*:*:*:replicator:s3cret\n"),
        ("r", "a:b\\c", "*:*:*:r:a\\:b\\\\c\n"),
    ] {
        assert_eq!(passfile(user, pw), want);
    }
}

#[test]
fn pgbackrest_archive_settings_are_pghas() {
    let mut s = settings();
    let repo = crate::postgres::pgbackrest::Pgbackrest {
        bin: "pgbackrest".into(),
        config: None,
        stanza: "main".into(),
        archive: true,
        restore: true,
    };
    s.creation.pgbackrest = Some(repo.clone());
    s.parameters.insert("archive_command".into(), "cp %p /x".into());
    let (conf, warnings) = pgha_conf(&s, &ConfRole::Primary, None);
    assert!(conf.contains("archive_mode = 'on'\n"), "{conf}");
    assert!(
        conf.contains("archive_command = 'pgbackrest --stanza=main --pg1-path=/data/pg archive-push %p'\n"),
        "{conf}"
    );
    assert!(
        conf.contains("restore_command = 'pgbackrest --stanza=main --pg1-path=/data/pg archive-get %f \"%p\"'\n"),
        "{conf}"
    );
    assert_eq!(warnings, ["ignoring parameter archive_command: pgha sets it"]);
    s.creation.pgbackrest = Some(crate::postgres::pgbackrest::Pgbackrest { archive: false, ..repo });
    s.parameters.clear();
    let (conf, _) = pgha_conf(&s, &ConfRole::Primary, None);
    assert!(
        !conf.contains("archive_mode") && conf.contains("restore_command"),
        "{conf}"
    );
}

#[test]
fn a_standby_leader_follows_the_remote_with_its_restore_command() {
    let mut s = settings();
    s.creation.pgbackrest = Some(crate::postgres::pgbackrest::Pgbackrest {
        bin: "pgbackrest".into(),
        config: None,
        stanza: "main".into(),
        archive: true,
        restore: true,
    });
    let role = ConfRole::Remote {
        host: Some("10.1.0.10".into()),
        port: 5433,
        slot: Some("dr_site".into()),
        restore_command: Some("cp /archive/%f %p".into()),
    };
    let (conf, _) = pgha_conf(&s, &role, None);
    assert!(conf.contains("host=10.1.0.10 port=5433"), "{conf}");
    assert!(conf.contains("primary_slot_name = 'dr_site'\n"), "{conf}");
    assert!(conf.contains("restore_command = 'cp /archive/%f %p'\n"), "{conf}");
    assert_eq!(conf.matches("restore_command").count(), 1, "{conf}");
    let archive_only = ConfRole::Remote {
        host: None,
        port: 5432,
        slot: None,
        restore_command: Some("cp /archive/%f %p".into()),
    };
    let (conf, _) = pgha_conf(&s, &archive_only, None);
    assert!(conf.contains("primary_conninfo = ''\n"), "{conf}");
}
