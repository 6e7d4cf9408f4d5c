//! Tests of the `[edge]` and `[edge.vip]` sections: defaults, rules, nested environment overrides.

use super::tests::{load, ok, parse_error, problem_keys, Env};
use super::*;

const EDGE_CONF: &str = r#"
[node]
name = "edge1"
[dcs]
endpoints = ["10.0.0.1:7400"]
[tls]
plaintext = true
"#;

const EDGE: Purpose = Purpose::Run(Role::Edge);

#[test]
fn defaults_follow_the_seeds() {
    let c = ok(Some(EDGE_CONF), &[], EDGE);
    assert_eq!(c.edge, EdgeSection::default());
    assert_eq!(c.edge.primary_listen, "0.0.0.0:5432");
    assert_eq!(c.edge.replica_listen, "0.0.0.0:5433");
    assert_eq!(c.edge.any_listen, "0.0.0.0:5434");
    assert_eq!(c.edge.status_listen, "0.0.0.0:8080");
    assert_eq!((c.edge.max_sessions, c.edge.primary_wait_ms), (1000, 5000));
    assert_eq!(c.edge.client_hello_timeout_ms, 5000);
    let caps = (
        c.edge.primary_max_sessions,
        c.edge.replica_max_sessions,
        c.edge.any_max_sessions,
    );
    assert_eq!(caps, (None, None, None));
    // Today's total, split so that no port can starve another.
    let caps = port_caps(&c.edge).expect("caps");
    assert_eq!((caps.primary, caps.replica, caps.any), (334, 333, 333));
    assert_eq!((c.edge.replica_max_lag_bytes, c.edge.vip.clone()), (None, None));
}

#[test]
fn env_sets_nested_vip_keys() {
    let c = ok(
        Some(EDGE_CONF),
        &[
            ("PGHA_EDGE__VIP__ADDRESS", "10.0.0.10/24"),
            ("PGHA_EDGE__VIP__INTERFACE", "eth0"),
            ("PGHA_EDGE__VIP__PRIORITY", "150"),
            ("PGHA_EDGE__REPLICA_MAX_LAG_BYTES", "1048576"),
            ("PGHA_EDGE__ANY_LISTEN", ""),
        ],
        EDGE,
    );
    let vip = c.edge.vip.expect("a VIP section");
    assert_eq!((vip.address.as_str(), vip.interface.as_str()), ("10.0.0.10/24", "eth0"));
    assert_eq!((vip.priority, vip.preempt), (150, false));
    assert_eq!(c.edge.replica_max_lag_bytes, Some(1 << 20));
    assert_eq!(c.edge.any_listen, "");
    // An empty optional integer unsets it.
    let file = format!("{EDGE_CONF}[edge]\nreplica_max_lag_bytes = 5\n");
    let c = ok(Some(&file), &[("PGHA_EDGE__REPLICA_MAX_LAG_BYTES", "")], EDGE);
    assert_eq!(c.edge.replica_max_lag_bytes, None);
}

#[test]
fn env_errors_name_nested_keys() {
    let (origin, message) = parse_error(load(
        Some(EDGE_CONF),
        &[("PGHA_EDGE__VIP__ADRESS", "x")],
        EDGE,
        &Overrides::default(),
    ));
    assert!(origin.contains("PGHA_EDGE__VIP__ADRESS"), "{origin}");
    assert!(
        message.contains("edge.vip.adress") && message.contains("address, interface"),
        "{message}"
    );
    let (_, message) = parse_error(load(
        Some(EDGE_CONF),
        &[("PGHA_EDGE__VIP__PRIORITY", "high")],
        EDGE,
        &Overrides::default(),
    ));
    assert!(message.contains("whole number"), "{message}");
    let (_, message) = parse_error(load(
        Some(EDGE_CONF),
        &[("PGHA_EDGE__PORTS", "1")],
        EDGE,
        &Overrides::default(),
    ));
    assert!(
        message.contains("edge.ports") && message.contains("primary_listen"),
        "{message}"
    );
}

#[test]
fn each_edge_rule_reports_its_key() {
    let vip: Env = &[
        ("PGHA_EDGE__VIP__ADDRESS", "10.0.0.10/24"),
        ("PGHA_EDGE__VIP__INTERFACE", "eth0"),
    ];
    let cases: &[(Env, Purpose, &[&str])] = &[
        (&[], EDGE, &[]),
        (vip, EDGE, &[]),
        (&[("PGHA_EDGE__PRIMARY_LISTEN", "5432")], EDGE, &["edge.primary_listen"]),
        (
            &[("PGHA_EDGE__PRIMARY_LISTEN", "5432")],
            Purpose::Run(Role::Witness),
            &["node.data_dir", "dcs.listen", "dcs.peers"],
        ),
        (&[("PGHA_EDGE__PRIMARY_LISTEN", "5432")], Purpose::Ctl, &[]),
        (&[("PGHA_EDGE__REPLICA_LISTEN", "h")], EDGE, &["edge.replica_listen"]),
        (&[("PGHA_EDGE__ANY_LISTEN", "[::]:5434")], EDGE, &[]),
        (
            &[("PGHA_EDGE__STATUS_LISTEN", "0.0.0.0:5432")],
            EDGE,
            &["edge.status_listen"],
        ),
        (&[("PGHA_EDGE__STATUS_LISTEN", "")], EDGE, &[]),
        (&[("PGHA_EDGE__ANY_LISTEN", "0.0.0.0:5433")], EDGE, &["edge.any_listen"]),
        (
            &[
                ("PGHA_EDGE__PRIMARY_LISTEN", ""),
                ("PGHA_EDGE__REPLICA_LISTEN", ""),
                ("PGHA_EDGE__ANY_LISTEN", ""),
            ],
            EDGE,
            &["edge.primary_listen"],
        ),
        (&[("PGHA_EDGE__MAX_SESSIONS", "0")], EDGE, &["edge.max_sessions"]),
        (
            &[("PGHA_EDGE__REPLICA_MAX_SESSIONS", "0")],
            EDGE,
            &["edge.replica_max_sessions"],
        ),
        (
            &[("PGHA_EDGE__PRIMARY_MAX_SESSIONS", "1001")],
            EDGE,
            &["edge.max_sessions"],
        ),
        (
            &[("PGHA_EDGE__PRIMARY_MAX_SESSIONS", "999")],
            EDGE,
            &["edge.max_sessions"],
        ),
        (&[("PGHA_EDGE__PRIMARY_MAX_SESSIONS", "998")], EDGE, &[]),
        (
            &[("PGHA_EDGE__CLIENT_HELLO_TIMEOUT_MS", "99")],
            EDGE,
            &["edge.client_hello_timeout_ms"],
        ),
        (
            &[("PGHA_EDGE__CLIENT_HELLO_TIMEOUT_MS", "600001")],
            EDGE,
            &["edge.client_hello_timeout_ms"],
        ),
        (&[("PGHA_EDGE__CLIENT_HELLO_TIMEOUT_MS", "100")], EDGE, &[]),
        (
            &[("PGHA_EDGE__PRIMARY_WAIT_MS", "600001")],
            EDGE,
            &["edge.primary_wait_ms"],
        ),
        (&[("PGHA_EDGE__PRIMARY_WAIT_MS", "0")], EDGE, &[]),
        (&[("PGHA_EDGE__SESSION_THREADS", "256")], EDGE, &[]),
        (
            &[("PGHA_EDGE__SESSION_THREADS", "257")],
            EDGE,
            &["edge.session_threads"],
        ),
        (
            &[("PGHA_EDGE__VIP__PRIORITY", "1")],
            EDGE,
            &["edge.vip.address", "edge.vip.interface"],
        ),
        (
            &[
                ("PGHA_EDGE__VIP__ADDRESS", "10.0.0.10"),
                ("PGHA_EDGE__VIP__INTERFACE", "eth0"),
            ],
            EDGE,
            &["edge.vip.address"],
        ),
        (
            &[
                ("PGHA_EDGE__VIP__ADDRESS", "10.0.0.10/33"),
                ("PGHA_EDGE__VIP__INTERFACE", "eth0"),
            ],
            EDGE,
            &["edge.vip.address"],
        ),
        (
            &[
                ("PGHA_EDGE__VIP__ADDRESS", "fd00::1/64"),
                ("PGHA_EDGE__VIP__INTERFACE", "eth0"),
            ],
            EDGE,
            &["edge.vip.address"],
        ),
        (
            &[
                ("PGHA_EDGE__VIP__ADDRESS", "10.0.0.10/24"),
                ("PGHA_EDGE__VIP__INTERFACE", "a-very-long-interface"),
            ],
            EDGE,
            &["edge.vip.interface"],
        ),
        (
            &[
                ("PGHA_EDGE__VIP__ADDRESS", "10.0.0.10/24"),
                ("PGHA_EDGE__VIP__INTERFACE", "eth 0"),
            ],
            EDGE,
            &["edge.vip.interface"],
        ),
    ];
    for (env, purpose, want) in cases {
        let result = load(Some(EDGE_CONF), env, *purpose, &Overrides::default());
        let got = match result {
            Ok(_) => Vec::new(),
            Err(_) => problem_keys(result),
        };
        assert_eq!(got, *want, "{env:?} for {purpose:?}");
    }
}

#[test]
fn vip_address_parser() {
    assert_eq!(
        parse_vip_address("10.0.0.10/24"),
        Ok(("10.0.0.10".parse().expect("ip"), 24))
    );
    assert_eq!(parse_vip_address("192.168.1.1/32").map(|v| v.1), Ok(32));
    for bad in ["10.0.0.10", "10.0.0.10/0", "10.0.0/24", "x/24", "10.0.0.10/"] {
        assert!(parse_vip_address(bad).is_err(), "{bad}");
    }
}

#[test]
fn port_caps_split_the_total() {
    // (max_sessions, enabled ports p/r/a, own caps p/r/a) -> caps or the error's key-free text
    type Case = (u64, [bool; 3], [Option<u64>; 3], Result<[u64; 3], PortCapError>);
    let cases: &[Case] = &[
        (1000, [true; 3], [None; 3], Ok([334, 333, 333])),
        (1000, [true, false, false], [None; 3], Ok([1000, 0, 0])),
        (1000, [true, true, false], [None; 3], Ok([500, 500, 0])),
        (1000, [false, true, true], [None; 3], Ok([0, 500, 500])),
        (1000, [true; 3], [Some(800), None, None], Ok([800, 100, 100])),
        (1000, [true; 3], [None, Some(1), None], Ok([500, 1, 499])),
        (1000, [true; 3], [Some(10), Some(20), Some(30)], Ok([10, 20, 30])),
        // A disabled port's cap is ignored.
        (1000, [true, false, true], [None, Some(5000), None], Ok([500, 0, 500])),
        (
            2,
            [true; 3],
            [None; 3],
            Err(PortCapError::NoShare {
                total: 2,
                left: 2,
                ports: 3,
            }),
        ),
        (
            1000,
            [true; 3],
            [Some(999), None, None],
            Err(PortCapError::NoShare {
                total: 1000,
                left: 1,
                ports: 2,
            }),
        ),
        (
            1000,
            [true; 3],
            [Some(600), Some(600), None],
            Err(PortCapError::AboveTotal { sum: 1200, total: 1000 }),
        ),
        (
            1000,
            [true; 3],
            [None, None, Some(0)],
            Err(PortCapError::Zero {
                key: "edge.any_max_sessions",
            }),
        ),
    ];
    for (total, enabled, own, want) in cases {
        let listen = |on: bool, a: &str| if on { a.to_string() } else { String::new() };
        let edge = EdgeSection {
            max_sessions: *total,
            primary_listen: listen(enabled[0], "0.0.0.0:5432"),
            replica_listen: listen(enabled[1], "0.0.0.0:5433"),
            any_listen: listen(enabled[2], "0.0.0.0:5434"),
            primary_max_sessions: own[0],
            replica_max_sessions: own[1],
            any_max_sessions: own[2],
            ..EdgeSection::default()
        };
        let got = port_caps(&edge).map(|c| [c.primary, c.replica, c.any]);
        assert_eq!(&got, want, "{total} {enabled:?} {own:?}");
    }
}
