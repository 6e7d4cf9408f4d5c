//! Real PostgreSQL operations: initdb, primary, basebackup replica, promotion, pg_rewind (clean and unclean
//! shutdown) and error reporting.

#[path = "common/pg.rs"]
mod pg;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use pg::{settings, temp_root, wait_for, Killer};
use pgha::postgres::{discover_bin_dir, slot_name, ConfRole, DataState, PgError, PgStatus, PgTls, Postgres, StopMode};

const START: Duration = Duration::from_secs(30);
const COPY: Duration = Duration::from_secs(60);
const CATCH_UP: Duration = Duration::from_secs(20);

fn replica_of(primary: &Postgres, member: &str) -> ConfRole {
    ConfRole::Replica {
        primary_host: "127.0.0.1".into(),
        primary_port: primary.settings().port,
        slot: Some(slot_name(member)),
    }
}

async fn status(pg: &Postgres) -> PgStatus {
    pg.status()
        .await
        .unwrap_or_else(|e| panic!("status of {}: {e}", pg.settings().name))
}

async fn insert(pg: &Postgres, id: i32) {
    let client = pg.connect().await.expect("connect to the primary");
    client
        .execute("INSERT INTO t VALUES ($1)", &[&id])
        .await
        .expect("insert");
}

async fn has_row(pg: &Postgres, id: i32) -> bool {
    let Ok(client) = pg.connect().await else { return false };
    match client.query_one("SELECT count(*) FROM t WHERE id = $1", &[&id]).await {
        Ok(row) => row.get::<_, i64>(0) == 1,
        Err(_) => false,
    }
}

async fn wait_row(pg: &Postgres, id: i32) {
    let what = format!("row {id} on {}", pg.settings().name);
    wait_for(CATCH_UP, &what, || async { has_row(pg, id).await.then_some(()) }).await;
}

/// Waits until `pg` is a standby streaming from `primary` on `timeline`.
async fn wait_streaming(pg: &Postgres, primary: &Postgres, timeline: u32) {
    let what = format!(
        "{} streaming from {} on timeline {timeline}",
        pg.settings().name,
        primary.settings().name
    );
    let port = primary.settings().port;
    wait_for(CATCH_UP, &what, || async {
        let s = pg.status().await.ok()?;
        let w = s.wal_receiver.as_ref()?;
        (s.in_recovery && s.is_streaming() && w.sender_port == Some(port) && s.timeline == timeline).then_some(())
    })
    .await;
}

fn sysid(state: &DataState) -> u64 {
    match state {
        DataState::Initialized { system_identifier, .. } => *system_identifier,
        DataState::Missing => panic!("data directory missing"),
    }
}

fn assert_secret_free(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for secret in ["su-secret-Xy1", "repl-secret-Zq9"] {
        assert!(!text.contains(secret), "{} contains a password", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_replica_failover_and_rewind() {
    let t0 = Instant::now();
    let root = temp_root();
    let killer = Killer::default();
    let a = Postgres::new(settings(root.path(), "node-a")).expect("settings a");
    let b = Postgres::new(settings(root.path(), "node-b")).expect("settings b");
    killer.watch(&a);
    killer.watch(&b);

    // 1. A fresh primary.
    assert_eq!(a.data_state().await.expect("state"), DataState::Missing);
    a.initdb().await.expect("initdb");
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("node-a"))
        .expect("ls")
        .flatten()
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|e| !e.file_name().to_string_lossy().contains("pwfile")),
        "pwfile left behind"
    );
    let state = a.data_state().await.expect("state");
    assert!(
        matches!(
            &state,
            DataState::Initialized {
                timeline: 1,
                standby_signal: false,
                ..
            }
        ),
        "{state:?}"
    );
    assert!(a.write_config(&ConfRole::Primary).await.expect("config"));
    assert!(
        !a.write_config(&ConfRole::Primary).await.expect("config again"),
        "unchanged config rewritten"
    );
    a.start(START).await.expect("start a");
    killer.record(&a);
    a.start(START).await.expect("start again is a no-op");
    a.create_roles().await.expect("roles");
    a.create_roles().await.expect("roles again");
    let s = status(&a).await;
    assert!(!s.in_recovery && s.timeline == 1 && s.current_lsn.is_some(), "{s:?}");
    assert_eq!(s.system_identifier, sysid(&state));
    let client = a.connect().await.expect("connect a");
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .expect("write");

    // Secrets only in the 0600 passfile owned by the OS user.
    let passfile = a.settings().passfile();
    let meta = std::fs::metadata(&passfile).expect("passfile");
    assert_eq!(
        (meta.permissions().mode() & 0o777, meta.uid()),
        (0o600, a.run_as().user.uid)
    );
    for f in ["pgha.conf", "postgresql.conf", "pg_hba.conf", "postgresql.auto.conf"] {
        assert_secret_free(&a.settings().data_dir.join(f));
    }

    // 2. A streaming replica through a slot.
    a.ensure_slots(&[slot_name("node-b")], &[]).await.expect("slots on a");
    b.basebackup("127.0.0.1", a.settings().port, COPY)
        .await
        .expect("basebackup");
    assert!(b.write_config(&replica_of(&a, "node-b")).await.expect("replica config"));
    b.start(START).await.expect("start b");
    killer.record(&b);
    wait_streaming(&b, &a, 1).await;
    assert_eq!(
        status(&b).await.wal_receiver.and_then(|w| w.slot_name).as_deref(),
        Some("node_b")
    );
    insert(&a, 2).await;
    wait_row(&b, 2).await;
    assert!(status(&a)
        .await
        .replication
        .iter()
        .any(|p| p.application_name == "node-b"));

    // 3. Promote b; a diverges, stops cleanly, is rewound and follows b on timeline 2.
    b.promote(START).await.expect("promote b");
    let s = status(&b).await;
    assert!(!s.in_recovery && s.timeline == 2, "{s:?}");
    // pg_rewind reads the source's timeline from its last checkpoint: the HA loop checkpoints after a promotion
    // and former primaries wait for `checkpoint_timeline` to catch up.
    b.checkpoint_in_background()
        .await
        .expect("checkpoint task")
        .expect("checkpoint on b");
    assert_eq!(status(&b).await.checkpoint_timeline, 2);
    insert(&b, 3).await;
    insert(&a, 100).await;
    a.stop(StopMode::Fast, START).await.expect("stop a");
    assert!(a.postmaster_pid().is_none());
    a.stop(StopMode::Fast, START).await.expect("stop again is a no-op");
    b.ensure_slots(&[slot_name("node-a")], &[]).await.expect("slots on b");
    a.write_config(&replica_of(&b, "node-a")).await.expect("a as replica");
    a.rewind("127.0.0.1", b.settings().port, COPY).await.expect("rewind a");
    assert!(matches!(
        a.data_state().await.expect("state"),
        DataState::Initialized {
            standby_signal: true,
            ..
        }
    ));
    a.start(START).await.expect("start a as replica");
    killer.record(&a);
    wait_streaming(&a, &b, 2).await;
    insert(&b, 4).await;
    wait_row(&a, 4).await;
    assert!(
        has_row(&a, 3).await && !has_row(&a, 100).await,
        "a must have b's history only"
    );

    // 4. Promote a; b (the primary) diverges, crashes (immediate stop) and is rewound (crash recovery first).
    a.promote(START).await.expect("promote a");
    assert_eq!(status(&a).await.timeline, 3);
    a.checkpoint().await.expect("checkpoint on a");
    assert_eq!(status(&a).await.checkpoint_timeline, 3);
    insert(&b, 200).await;
    b.stop(StopMode::Immediate, START).await.expect("stop b");
    let crashed = b.data_state().await.expect("state");
    assert!(matches!(&crashed, DataState::Initialized { cluster_state, .. } if cluster_state == "in production"));
    a.ensure_slots(&[slot_name("node-b")], &[]).await.expect("slots on a");
    b.write_config(&replica_of(&a, "node-b")).await.expect("b as replica");
    b.rewind("127.0.0.1", a.settings().port, COPY).await.expect("rewind b");
    b.start(START).await.expect("start b as replica");
    killer.record(&b);
    wait_streaming(&b, &a, 3).await;
    insert(&a, 5).await;
    wait_row(&b, 5).await;
    assert!(!has_row(&b, 200).await);
    assert_eq!(status(&b).await.system_identifier, sysid(&state));

    for pg in [&a, &b] {
        assert_secret_free(&pg.settings().log_file());
        pg.stop(StopMode::Fast, START).await.expect("stop");
    }
    eprintln!("lifecycle took {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_their_cause() {
    let root = temp_root();
    let killer = Killer::default();

    let bogus = Path::new("/nonexistent/pgha/bin");
    let err = discover_bin_dir(Some(bogus)).expect_err("bogus bin dir");
    assert!(err.to_string().contains("/nonexistent/pgha/bin"), "{err}");

    let mut s = settings(root.path(), "bad");
    s.parameters.insert("shared_buffers".into(), "lots".into());
    let pg = Postgres::new(s).expect("settings");
    killer.watch(&pg);
    let err = pg.write_config(&ConfRole::Primary).await.expect_err("not initialized");
    assert!(matches!(err, PgError::DataDir { .. }), "{err}");
    pg.initdb().await.expect("initdb");
    pg.write_config(&ConfRole::Primary).await.expect("config");
    let err = pg.start(Duration::from_secs(20)).await.expect_err("bad parameter");
    let text = err.to_string();
    assert!(
        text.contains("shared_buffers") && text.contains("lots"),
        "no log tail in: {text}"
    );
    assert!(pg.postmaster_pid().is_none());

    let err = pg.basebackup("127.0.0.1", 1, COPY).await.expect_err("non-empty");
    assert!(
        matches!(&err, PgError::DataDir { .. }) && err.to_string().contains("not empty"),
        "{err}"
    );
    assert!(
        pg.settings().data_dir.join("PG_VERSION").exists(),
        "refusal must not touch the data directory"
    );

    let err = pg.initdb().await.expect_err("initdb into a non-empty directory");
    assert!(err.to_string().contains("not empty"), "{err}");

    let err = pg.connect().await.expect_err("not running");
    assert!(matches!(err, PgError::Sql { .. } | PgError::Timeout { .. }), "{err}");

    let mut s = settings(root.path(), "nouser");
    s.os_user = "pgha-no-such-user".into();
    match Postgres::new(s) {
        Err(e) if pg.run_as().switch => assert!(e.to_string().contains("pgha-no-such-user"), "{e}"),
        Err(e) => panic!("not root: os_user must be ignored, got {e}"),
        Ok(_) => assert!(!pg.run_as().switch, "a missing os_user must be refused when root"),
    }

    pg.wipe_data_dir().await.expect("wipe");
    assert_eq!(pg.data_state().await.expect("state"), DataState::Missing);
    assert!(pg.settings().data_dir.is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_replication_is_verified_and_required() {
    let root = temp_root();
    let killer = Killer::default();
    let certs = root.path().join("certs");
    let ca = pgha::cert::init_ca(&certs, "pgtest", 2, false).expect("CA");
    let localhost = [std::net::IpAddr::from([127, 0, 0, 1])];
    let mut nodes = Vec::new();
    for name in ["tls-a", "tls-b"] {
        let paths = pgha::cert::issue(&certs, pgha::identity::CertRole::Member, name, &localhost, &[], 2)
            .expect("node certificate");
        let mut s = settings(root.path(), name);
        s.tls = Some(PgTls {
            cert: paths.cert,
            key: paths.key,
            ca: ca.cert.clone(),
        });
        let pg = Postgres::new(s).expect("settings");
        killer.watch(&pg);
        nodes.push(pg);
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    a.initdb().await.expect("initdb");
    a.write_config(&ConfRole::Primary).await.expect("config");
    a.start(START).await.expect("start a");
    a.create_roles().await.expect("roles");
    a.ensure_slots(&[slot_name("tls-b")], &[]).await.expect("slots");
    let key = a.settings().data_dir.join("pgha_server.key");
    let meta = std::fs::metadata(&key).expect("key copy");
    assert_eq!(
        (meta.permissions().mode() & 0o777, meta.uid()),
        (0o600, a.run_as().user.uid)
    );

    b.basebackup("127.0.0.1", a.settings().port, COPY)
        .await
        .expect("basebackup over TLS");
    b.write_config(&replica_of(a, "tls-b")).await.expect("replica config");
    b.start(START).await.expect("start b");
    wait_streaming(b, a, 1).await;
    let client = a.connect().await.expect("connect a");
    let row = client
        .query_one(
            "SELECT bool_and(ssl) FROM pg_stat_replication JOIN pg_stat_ssl USING (pid)",
            &[],
        )
        .await
        .expect("ssl of walsenders");
    assert_eq!(row.get::<_, Option<bool>>(0), Some(true), "replication must use TLS");

    let mut plain = tokio_postgres::Config::new();
    plain
        .host("127.0.0.1")
        .port(a.settings().port)
        .user("replicator")
        .dbname("postgres");
    plain
        .password("repl-secret-Zq9")
        .connect_timeout(Duration::from_secs(5));
    let err = plain
        .connect(tokio_postgres::NoTls)
        .await
        .err()
        .expect("plaintext TCP must be refused");
    let detail = pgha::postgres::error::sql_detail(&err);
    assert!(detail.contains("no encryption"), "{detail}");
    for pg in [a, b] {
        pg.stop(StopMode::Fast, START).await.expect("stop");
    }
}
