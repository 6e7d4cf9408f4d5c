//! Tests for loading, overriding and validating configuration.

use std::path::PathBuf;

use super::*;

pub(super) const DB_CONF: &str = r#"
[node]
name = "db1"
data_dir = "/var/lib/pgha"
[dcs]
listen = "0.0.0.0:7400"
peers = ["db1=10.0.0.1:7400", "db2=10.0.0.2:7400", "w1=10.0.0.3:7400"]
[tls]
ca = "/etc/pgha/ca.crt"
cert = "/etc/pgha/db1.crt"
key = "/etc/pgha/db1.key"
[postgresql]
superuser_password_file = "/etc/pgha/secrets/superuser"
replication_password_file = "/etc/pgha/secrets/replication"
"#;

pub(super) const DB: Purpose = Purpose::Run(Role::Db);

/// Environment variables of a test case.
pub(super) type Env = &'static [(&'static str, &'static str)];

pub(super) fn env_of(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub(super) fn load(
    file: Option<&str>,
    env: &[(&str, &str)],
    purpose: Purpose,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    Config::from_sources(file.map(|text| ("test.toml", text)), env_of(env), purpose, overrides)
}

pub(super) fn ok(file: Option<&str>, env: &[(&str, &str)], purpose: Purpose) -> Config {
    match load(file, env, purpose, &Overrides::default()) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got: {e}"),
    }
}

pub(super) fn problem_keys(result: Result<Config, ConfigError>) -> Vec<String> {
    match result {
        Err(ConfigError::Invalid { problems, .. }) => problems.into_iter().map(|p| p.key).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

pub(super) fn parse_error(result: Result<Config, ConfigError>) -> (String, String) {
    match result {
        Err(ConfigError::Parse { origin, message }) => (origin, message),
        other => panic!("expected Parse, got {other:?}"),
    }
}

#[test]
fn defaults_without_file() {
    let config = ok(
        None,
        &[
            ("PGHA_DCS__ENDPOINTS", "10.0.0.1:7400"),
            ("PGHA_TLS__PLAINTEXT", "true"),
        ],
        Purpose::Ctl,
    );
    assert_eq!(config.cluster.name, "pgha");
    assert_eq!(config.dcs.heartbeat_ms, 50);
    assert_eq!(config.dcs.election_timeout_min_ms, 250);
    assert_eq!(config.dcs.election_timeout_max_ms, 400);
    assert_eq!(config.dcs.snapshot_logs, 5000);
    assert_eq!(config.dcs.request_timeout_ms, 2000);
    assert_eq!(config.log.format, LogFormat::Human);
    assert_eq!(config.log.level, "info");
    assert_eq!(config.client_endpoints(), vec!["10.0.0.1:7400"]);
}

#[test]
fn env_overrides_name_list_bool_int() {
    let config = ok(
        Some(DB_CONF),
        &[
            ("PGHA_NODE__NAME", "db2"),
            ("pgha_dcs__peers", "db1=h1:7400, db2=h2:7400,"),
            ("PGHA_TLS__PLAINTEXT", "TRUE"),
            ("PGHA_TLS__CA", ""),
            ("PGHA_DCS__HEARTBEAT_MS", "50"),
            ("PGHA_LOG__FORMAT", "json"),
            // Not configuration: ignored.
            ("PGHA_LOG", "debug"),
            ("PGHA_CONFIG", "/nonexistent"),
            ("HOME", "/root"),
        ],
        DB,
    );
    assert_eq!(config.node.name, "db2");
    assert_eq!(config.dcs.peers, vec!["db1=h1:7400", "db2=h2:7400"]);
    assert!(config.tls.plaintext);
    assert_eq!(config.tls.ca, None);
    assert_eq!(config.dcs.heartbeat_ms, 50);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.advertise_addr(), "h2:7400");

    let config = ok(
        Some(DB_CONF),
        &[("PGHA_DCS__PEERS", r#"["db1=h1:7400", "db2=h2:7400"]"#)],
        DB,
    );
    assert_eq!(
        config.peers(),
        vec![
            Peer {
                name: "db1".into(),
                addr: "h1:7400".into()
            },
            Peer {
                name: "db2".into(),
                addr: "h2:7400".into()
            },
        ]
    );
}

#[test]
fn precedence_flag_over_env_over_file() {
    let env = [("PGHA_NODE__NAME", "w1")];
    let flags = Overrides {
        name: Some("db2".into()),
        ..Overrides::default()
    };
    let name = |env: &[(&str, &str)], flags: &Overrides| {
        load(Some(DB_CONF), env, DB, flags)
            .map(|c| c.node.name)
            .map_err(|e| e.to_string())
    };
    assert_eq!(name(&[], &Overrides::default()), Ok("db1".into()));
    assert_eq!(name(&env, &Overrides::default()), Ok("w1".into()));
    assert_eq!(name(&env, &flags), Ok("db2".into()));

    let flags = Overrides {
        data_dir: Some(PathBuf::from("/srv/pgha")),
        listen: Some("[::]:7401".into()),
        advertise: Some("db1.example.com:7401".into()),
        peers: Some(vec!["db1=db1.example.com:7401".into()]),
        endpoints: Some(vec!["db1.example.com:7401".into()]),
        ..Overrides::default()
    };
    let config = load(Some(DB_CONF), &[("PGHA_DCS__LISTEN", "0.0.0.0:1")], DB, &flags).expect("valid");
    assert_eq!(config.node.data_dir, PathBuf::from("/srv/pgha"));
    assert_eq!(config.dcs.listen, "[::]:7401");
    assert_eq!(config.advertise_addr(), "db1.example.com:7401");
    assert_eq!(config.client_endpoints(), vec!["db1.example.com:7401"]);
}

#[test]
fn parse_errors_name_the_culprit() {
    let cases: &[(&str, Env, &str, &str)] = &[
        ("[node]\nbogus = 1\n", &[], "test.toml", "bogus"),
        ("[bogus]\nx = 1\n", &[], "test.toml", "bogus"),
        ("[dcs]\nheartbeat_ms = \"fast\"\n", &[], "test.toml", "heartbeat_ms"),
        ("[dcs\n", &[], "test.toml", "line 1"),
        ("", &[("PGHA_DCS__BOGUS", "1")], "PGHA_DCS__BOGUS", "dcs.bogus"),
        ("", &[("PGHA_NOPE__NAME", "1")], "PGHA_NOPE__NAME", "nope"),
        ("", &[("PGHA_NODE__NAME__X", "1")], "PGHA_NODE__NAME__X", "node.name.x"),
        (
            "",
            &[("PGHA_DCS__HEARTBEAT_MS", "fast")],
            "PGHA_DCS__HEARTBEAT_MS",
            "fast",
        ),
        ("", &[("PGHA_TLS__PLAINTEXT", "maybe")], "PGHA_TLS__PLAINTEXT", "maybe"),
        ("", &[("PGHA_LOG__FORMAT", "xml")], "PGHA_LOG__FORMAT", "xml"),
        ("", &[("PGHA_DCS__PEERS", "[db1=h:1]")], "PGHA_DCS__PEERS", "TOML array"),
        ("", &[("PGHA_DCS__PEERS", "[1, 2]")], "PGHA_DCS__PEERS", "dcs.peers"),
        (
            "",
            &[("PGHA_NODE__NAME", "a"), ("pgha_node__name", "b")],
            "pgha_node__name",
            "PGHA_NODE__NAME",
        ),
    ];
    for (file, env, origin, needle) in cases {
        let (got_origin, message) = parse_error(load(Some(file), env, DB, &Overrides::default()));
        assert!(got_origin.contains(origin), "{file:?} {env:?}: origin {got_origin:?}");
        assert!(
            message.contains(needle),
            "{file:?} {env:?}: {message:?} lacks {needle:?}"
        );
    }
}

#[test]
fn each_rule_reports_its_key() {
    let ctl = Purpose::Ctl;
    let edge = Purpose::Run(Role::Edge);
    let cases: &[(Env, Purpose, &[&str])] = &[
        (&[], DB, &[]),
        (&[("PGHA_CLUSTER__NAME", "Prod")], DB, &["cluster.name"]),
        (&[("PGHA_CLUSTER__NAME", "")], DB, &["cluster.name"]),
        (&[("PGHA_NODE__NAME", "")], DB, &["node.name"]),
        (&[("PGHA_NODE__NAME", "")], edge, &["node.name"]),
        (&[("PGHA_NODE__NAME", "")], ctl, &[]),
        (&[("PGHA_NODE__NAME", "db 1")], ctl, &["node.name"]),
        (
            &[("PGHA_NODE__DATA_DIR", "")],
            Purpose::Run(Role::Witness),
            &["node.data_dir"],
        ),
        (&[("PGHA_NODE__DATA_DIR", "")], edge, &[]),
        (&[("PGHA_DCS__LISTEN", "")], DB, &["dcs.listen"]),
        (&[("PGHA_DCS__LISTEN", "")], edge, &[]),
        (&[("PGHA_DCS__LISTEN", "7400")], DB, &["dcs.listen"]),
        (&[("PGHA_DCS__LISTEN", "[::]:7400")], DB, &[]),
        (&[("PGHA_DCS__ADVERTISE", "0.0.0.0:7400")], DB, &["dcs.advertise"]),
        (&[("PGHA_DCS__ADVERTISE", "http://h:1")], DB, &["dcs.advertise"]),
        (&[("PGHA_DCS__PEERS", "")], DB, &["dcs.peers"]),
        (&[("PGHA_DCS__PEERS", "db2=h:1")], DB, &["dcs.peers"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db1=i:1")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db2=H:1")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db2")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db 2=i:1")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,=i:1")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db2=:1")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db2=i")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db2=i:0")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db2=i:65536")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db2=::1:7400")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db2=[::1]:7400")], DB, &[]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db2=[zz]:7400")], DB, &["dcs.peers[1]"]),
        (
            &[("PGHA_DCS__PEERS", "db1=h:1,db2=0.0.0.0:7400")],
            DB,
            &["dcs.peers[1]"],
        ),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db2=i/x:1")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__PEERS", "db1=h:1,db2=[::]:1")], DB, &["dcs.peers[1]"]),
        (&[("PGHA_DCS__ENDPOINTS", "h:1,h")], ctl, &["dcs.endpoints[1]"]),
        (&[("PGHA_DCS__PEERS", "")], ctl, &["dcs.endpoints"]),
        (&[("PGHA_DCS__PEERS", "")], edge, &["dcs.endpoints"]),
        (&[("PGHA_DCS__PEERS", ""), ("PGHA_DCS__ENDPOINTS", "h:1")], edge, &[]),
        (&[("PGHA_DCS__HEARTBEAT_MS", "9")], DB, &["dcs.heartbeat_ms"]),
        (
            &[("PGHA_DCS__ELECTION_TIMEOUT_MIN_MS", "149")],
            DB,
            &["dcs.election_timeout_min_ms"],
        ),
        (&[("PGHA_DCS__ELECTION_TIMEOUT_MIN_MS", "150")], DB, &[]),
        (
            &[("PGHA_DCS__ELECTION_TIMEOUT_MAX_MS", "250")],
            DB,
            &["dcs.election_timeout_max_ms"],
        ),
        (&[("PGHA_DCS__SNAPSHOT_LOGS", "99")], DB, &["dcs.snapshot_logs"]),
        (
            &[("PGHA_DCS__REQUEST_TIMEOUT_MS", "0")],
            DB,
            &["dcs.request_timeout_ms"],
        ),
        (&[("PGHA_TLS__CA", "")], DB, &["tls.ca"]),
        (&[("PGHA_TLS__CERT", "")], ctl, &["tls.cert"]),
        (&[("PGHA_TLS__KEY", "")], edge, &["tls.key"]),
        (
            &[
                ("PGHA_TLS__CA", ""),
                ("PGHA_TLS__CERT", ""),
                ("PGHA_TLS__KEY", ""),
                ("PGHA_TLS__PLAINTEXT", "1"),
            ],
            ctl,
            &[],
        ),
        (&[("PGHA_LOG__LEVEL", " ")], DB, &["log.level"]),
        (
            &[("PGHA_WITNESS__HTTP_LISTEN", "8008")],
            Purpose::Run(Role::Witness),
            &["witness.http_listen"],
        ),
        (&[("PGHA_WITNESS__HTTP_LISTEN", "")], Purpose::Run(Role::Witness), &[]),
        (
            &[("PGHA_WITNESS__HTTP_LISTEN", "127.0.0.1:9108")],
            Purpose::Run(Role::Witness),
            &[],
        ),
        (&[("PGHA_WITNESS__HTTP_LISTEN", "8008")], DB, &[]),
    ];
    for (env, purpose, want) in cases {
        let result = load(Some(DB_CONF), env, *purpose, &Overrides::default());
        let got = match result {
            Ok(_) => Vec::new(),
            Err(_) => problem_keys(result),
        };
        assert_eq!(got, *want, "{env:?} for {purpose:?}");
    }
}

#[test]
fn all_problems_reported_at_once() {
    let file = r#"
[cluster]
name = "Bad Name"
[dcs]
listen = "nowhere"
peers = ["db1=10.0.0.1:7400", "db1=10.0.0.2:7400", "db3=10.0.0.1:7400", "junk"]
heartbeat_ms = 5
election_timeout_min_ms = 10
election_timeout_max_ms = 10
snapshot_logs = 1
[log]
level = ""
"#;
    let err = load(Some(file), &[], DB, &Overrides::default()).expect_err("invalid");
    let text = err.to_string();
    assert!(
        text.starts_with("invalid configuration (from test.toml):\n  "),
        "{text}"
    );
    assert!(
        text.contains("\n  dcs.peers[1]: duplicate member name \"db1\" (also dcs.peers[0]) (hint: each member needs a unique name)"),
        "{text}"
    );
    assert_eq!(
        problem_keys(Err(err)),
        vec![
            "cluster.name",
            "node.name",
            "node.data_dir",
            "dcs.listen",
            "dcs.peers[1]",
            "dcs.peers[2]",
            "dcs.peers[3]",
            "dcs.heartbeat_ms",
            "dcs.election_timeout_min_ms",
            "dcs.election_timeout_max_ms",
            "dcs.snapshot_logs",
            "postgresql.superuser_password_file",
            "postgresql.replication_password_file",
            "tls.ca",
            "tls.cert",
            "tls.key",
            "log.level",
        ]
    );
    assert_eq!(text.lines().count(), 18, "one line per problem:\n{text}");
}

#[test]
fn invalid_origin_lists_sources() {
    let flags = Overrides {
        listen: Some("bad".into()),
        ..Overrides::default()
    };
    let err = load(Some(DB_CONF), &[("PGHA_DCS__HEARTBEAT_MS", "1")], DB, &flags).expect_err("invalid");
    match err {
        ConfigError::Invalid { origin, .. } => assert_eq!(
            origin,
            "test.toml, environment PGHA_DCS__HEARTBEAT_MS, command-line flags"
        ),
        other => panic!("{other:?}"),
    }
    match load(None, &[], DB, &Overrides::default()) {
        Err(ConfigError::Invalid { origin, .. }) => assert_eq!(origin, "built-in defaults"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn load_reads_file_and_reports_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pgha.toml");
    std::fs::write(&path, DB_CONF).expect("write");
    let config = Config::load(Some(&path), DB, &Overrides::default()).expect("valid");
    assert_eq!(config.node.name, "db1");

    let missing = dir.path().join("missing.toml");
    match Config::load(Some(&missing), DB, &Overrides::default()) {
        Err(e @ ConfigError::Read { .. }) => assert!(e.to_string().contains("missing.toml"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn peer_parse_and_display() {
    let peer: Peer = "db1=[fd00::1]:7400".parse().expect("valid");
    assert_eq!(peer.addr, "[fd00::1]:7400");
    assert_eq!(peer.to_string(), "db1=[fd00::1]:7400");
    let err = "db1".parse::<Peer>().expect_err("invalid");
    assert!(err.to_string().contains("hint:"), "{err}");
    assert!(check_addr("db1.example.com:7400").is_ok());
    assert!(check_addr("[::]:7400").is_err());
}

#[test]
fn advertise_falls_back_to_peer_then_listen() {
    let mut config = ok(Some(DB_CONF), &[], DB);
    assert_eq!(config.advertise_addr(), "10.0.0.1:7400");
    config.dcs.advertise = Some("pub.example.com:7400".into());
    assert_eq!(config.advertise_addr(), "pub.example.com:7400");
    config.dcs.advertise = None;
    config.dcs.peers.clear();
    assert_eq!(config.advertise_addr(), "0.0.0.0:7400");
    assert_eq!(
        ok(Some(DB_CONF), &[], DB).client_endpoints(),
        vec!["10.0.0.1:7400", "10.0.0.2:7400", "10.0.0.3:7400"]
    );
}
