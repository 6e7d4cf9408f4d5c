//! The db role on real PostgreSQL 15 processes: bootstrap, failover, rejoin, fencing, crash restart, handover.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::time::{Duration, Instant};

use pgha::config::Role;
use pgha::harness::local::{Layout, LocalCluster};

use db::{ctl, ctl_fails, http, index_of, port, start, HA, READY};

async fn wait_row_everywhere(cluster: &LocalCluster, password: &str, id: i64) {
    for i in 0..cluster.nodes.len() {
        let p = port(cluster, i);
        common::wait_for(Duration::from_secs(30), "the row to replicate", || async {
            probe::probe_ids(p, password).await.filter(|ids| ids.contains(&id))
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_failover_and_rejoin() {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = start(3, "");
    let leader = cluster
        .wait_pg_cluster(2, READY)
        .await
        .expect("a primary and two streaming replicas");
    let pw = probe::password(&cluster.dir);
    let li = index_of(&cluster, &leader);
    db::create_probe_table(port(&cluster, li), &pw).await;
    probe::exec(port(&cluster, li), &pw, "INSERT INTO probe VALUES (0)")
        .await
        .expect("insert");
    wait_row_everywhere(&cluster, &pw, 0).await;

    // SIGKILL the primary's pgha and its postgres under a continuous writer.
    let ports = db::ports(&cluster);
    let writer = probe::writer(&ports, &pw);
    common::wait_for(Duration::from_secs(20), "writes before the fault", || async {
        (writer.count() >= 20).then_some(())
    })
    .await;
    let old_timeline = probe_timeline(port(&cluster, li), &pw).await;
    cluster.kill(li);
    cluster.signal_postgres(li, libc::SIGKILL);
    let before = writer.count();
    common::wait_for(Duration::from_secs(60), "writes after the failover", || async {
        (writer.count() >= before + 20).then_some(())
    })
    .await;
    let new_leader = cluster.wait_pg_cluster(1, READY).await.expect("a new primary");
    assert_ne!(new_leader, leader, "a replica was promoted");
    let ni = index_of(&cluster, &new_leader);
    assert!(
        probe_timeline(port(&cluster, ni), &pw).await > old_timeline,
        "the new primary is on a new timeline"
    );

    // The old node comes back as a streaming replica on the new timeline.
    cluster.stop_postgres(li);
    cluster.start(li).expect("restarting the old primary's pgha");
    cluster
        .wait_pg_cluster(2, READY)
        .await
        .expect("the old primary rejoined as a streaming replica");
    let acked = writer.stop().await;
    let gap = probe::max_gap(&acked);
    eprintln!("write gap across the failover: {gap:?}");
    assert!(gap < Duration::from_secs(30), "bounded write gap, was {gap:?}");
    assert_eq!(
        probe::in_recovery(port(&cluster, li), &pw).await,
        Some(true),
        "old primary is a replica now"
    );
    let last = acked.last().expect("acks").0;
    wait_row_everywhere(&cluster, &pw, last).await;
}

async fn probe_timeline(port: u16, password: &str) -> u32 {
    let client = probe::connect(port, password).await.expect("connect");
    let row = client
        .query_one(
            "SELECT ('x'||substr(pg_walfile_name(pg_current_wal_lsn()),1,8))::bit(32)::int",
            &[],
        )
        .await
        .expect("timeline");
    row.get::<_, i32>(0) as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_restarts_in_place() {
    if db::skip_without_pg() {
        return;
    }
    let cluster = start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    let pw = probe::password(&cluster.dir);
    let old_pid = cluster.postmaster_pid(li).expect("postmaster pid");
    cluster.signal_postgres(li, libc::SIGKILL);
    common::wait_for(Duration::from_secs(60), "postgres restarted in place", || async {
        cluster.postmaster_pid(li).filter(|p| *p != old_pid)
    })
    .await;
    let p = port(&cluster, li);
    common::wait_for(
        Duration::from_secs(60),
        "the restarted primary to accept connections",
        || async { probe::in_recovery(p, &pw).await },
    )
    .await;
    assert_eq!(probe::in_recovery(p, &pw).await, Some(false), "still the primary");
    let still = cluster.wait_pg_cluster(0, READY).await.expect("a leader");
    assert_eq!(still, leader, "no failover for a postgres crash that restarts in place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_primary_is_fenced_and_never_overlaps() {
    if db::skip_without_pg() {
        return;
    }
    let cluster = start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    let pw = probe::password(&cluster.dir);
    db::create_probe_table(port(&cluster, li), &pw).await;
    let ports = db::ports(&cluster);

    cluster.signal(li, libc::SIGSTOP);
    let frozen_at = Instant::now();
    let mut max_writable = 0usize;
    let mut seen_other_primary = false;
    let mut id = 1_000_000i64;
    // Poll every node for writability throughout: ttl (2 s) + promotion, then a while more.
    while frozen_at.elapsed() < Duration::from_secs(12) {
        let mut writable = 0;
        for (i, p) in ports.iter().enumerate() {
            id += 1;
            if probe::exec(*p, &pw, &format!("INSERT INTO probe VALUES ({id})"))
                .await
                .is_some()
            {
                writable += 1;
                if i != li {
                    seen_other_primary = true;
                }
            }
        }
        max_writable = max_writable.max(writable);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.signal(li, libc::SIGCONT);
    assert!(max_writable <= 1, "two writable primaries at once ({max_writable})");
    assert!(
        seen_other_primary,
        "a replica was promoted while the primary's pgha was frozen"
    );
    common::wait_for(
        Duration::from_secs(90),
        "the frozen node to rejoin as a replica",
        || async { (probe::in_recovery(ports[li], &pw).await == Some(true)).then_some(()) },
    )
    .await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_over_without_waiting_for_the_ttl() {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    let pw = probe::password(&cluster.dir);
    db::create_probe_table(port(&cluster, li), &pw).await;
    let ports = db::ports(&cluster);
    let writer = probe::writer(&ports, &pw);
    common::wait_for(Duration::from_secs(20), "writes before the stop", || async {
        (writer.count() >= 20).then_some(())
    })
    .await;
    cluster.signal(li, libc::SIGTERM);
    // Writes may still reach the old primary while it checkpoints: count only those after the new leader is in.
    let next = common::wait_for(Duration::from_secs(60), "a new leader after SIGTERM", || async {
        cluster
            .wait_pg_cluster(1, Duration::from_secs(2))
            .await
            .ok()
            .filter(|n| *n != leader)
    })
    .await;
    let before = writer.count();
    common::wait_for(Duration::from_secs(60), "writes after the handover", || async {
        (writer.count() >= before + 20).then_some(())
    })
    .await;
    let acked = writer.stop().await;
    let gap = probe::max_gap(&acked);
    eprintln!("write gap across the SIGTERM handover: {gap:?}");
    // Nothing acknowledged is lost in a clean handover.
    let ni = index_of(&cluster, &next);
    let ids = probe::probe_ids(port(&cluster, ni), &pw)
        .await
        .expect("ids on the new primary");
    let missing: Vec<i64> = acked
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| ids.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes lost in a clean handover: {missing:?}"
    );
    cluster.stop(li, Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nofailover_members_are_never_promoted() {
    if db::skip_without_pg() {
        return;
    }
    pgha::tls::install_crypto_provider();
    let layout = Layout {
        ha_lines: HA.to_string(),
        ..Layout::default()
    };
    let mut cluster = LocalCluster::create_with(&common::exe(), None, 3, Role::Db, false, layout).expect("layout");
    // node2 and node3 may never be promoted (nor bootstrap): node1 is the only candidate.
    for i in [1, 2] {
        let path = cluster.nodes[i].config.clone();
        let text = std::fs::read_to_string(&path)
            .expect("config")
            .replace("[ha]\n", "[ha]\nnofailover = true\n");
        std::fs::write(&path, text).expect("config");
    }
    cluster.start_all().expect("starting");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    assert_eq!(leader, "node1", "only the failover-eligible member bootstraps");
    cluster.kill(0);
    cluster.signal_postgres(0, libc::SIGKILL);
    let pw = probe::password(&cluster.dir);
    // Well past the TTL, no survivor may become writable.
    let watch_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < watch_until {
        for i in [1, 2] {
            assert_ne!(
                probe::in_recovery(port(&cluster, i), &pw).await,
                Some(false),
                "a nofailover member was promoted"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The eligible member returns and leads again.
    cluster.stop_postgres(0);
    cluster.start(0).expect("restart node1");
    let back = cluster.wait_pg_cluster(2, READY).await.expect("node1 leads again");
    assert_eq!(back, "node1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_both_ways_loses_nothing() {
    if db::skip_without_pg() {
        return;
    }
    let cluster = start(3, "");
    let first = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let pw = probe::password(&cluster.dir);
    let p = port(&cluster, index_of(&cluster, &first));
    db::create_probe_table(p, &pw).await;
    // Bad requests are refused with a reason, and change nothing.
    assert!(ctl_fails(&cluster, &["switchover", "--candidate", "nosuch", "--force"]).contains("no member named nosuch"));
    assert!(ctl_fails(&cluster, &["switchover", "--candidate", &first, "--force"]).contains("already the leader"));
    assert!(ctl_fails(&cluster, &["switchover", "--leader", "node9", "--force"]).contains("not the leader"));
    assert!(
        ctl_fails(&cluster, &["switchover"]).contains("aborted"),
        "no confirmation on stdin: aborted"
    );
    // The dynamic configuration: invalid values are refused before anything is stored.
    assert!(ctl_fails(&cluster, &["edit-config", "--set", "ttl_ms=100", "--force"]).contains("ttl_ms"));
    assert!(ctl_fails(&cluster, &["edit-config", "--set", "bogus=1", "--force"]).contains("unknown setting"));
    assert!(ctl(
        &cluster,
        &["edit-config", "--set", "maximum_lag_on_failover=2097152", "--force"]
    )
    .contains("updated"));
    let shown: serde_json::Value =
        serde_json::from_str(&ctl(&cluster, &["show-config", "-o", "json"])).expect("show-config JSON");
    assert_eq!(shown["maximum_lag_on_failover"], 2_097_152);
    assert_eq!(shown["ttl_ms"], 2000, "the refused edit changed nothing");
    // Scheduled, then cancelled.
    assert!(ctl(
        &cluster,
        &["switchover", "--force", "--scheduled", "2099-01-01T00:00:00Z"]
    )
    .contains("scheduled"));
    assert!(ctl_fails(&cluster, &["switchover", "--force"]).contains("pending"));
    assert!(ctl(&cluster, &["switchover", "--cancel"]).contains("cancelled"));

    let ports = db::ports(&cluster);
    let writer = probe::writer(&ports, &pw);
    common::wait_for(Duration::from_secs(20), "writes before the switchover", || async {
        (writer.count() >= 20).then_some(())
    })
    .await;
    let out = ctl(&cluster, &["switchover", "--force"]);
    assert!(out.contains("done"), "{out}");
    let second = cluster.wait_pg_cluster(1, READY).await.expect("new leader");
    assert_ne!(second, first);
    cluster
        .wait_pg_cluster(2, READY)
        .await
        .expect("the old leader streams again");
    let before = writer.count();
    common::wait_for(Duration::from_secs(30), "writes on the new leader", || async {
        (writer.count() >= before + 20).then_some(())
    })
    .await;
    // The former primary may still be rewound once after it first streamed (a moment of not streaming): the
    // switchover is refused meanwhile, and asked again, as an operator would.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let out = loop {
        let out = db::ctl_output(&cluster, &["switchover", "--force", "--candidate", &first]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() || !stderr.contains("not a streaming replica") || std::time::Instant::now() > deadline {
            assert!(out.status.success(), "switchover back to {first}: {stderr}");
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(out.contains("done"), "{out}");
    let before = writer.count();
    common::wait_for(Duration::from_secs(30), "writes after switching back", || async {
        (writer.count() >= before + 20).then_some(())
    })
    .await;
    let acked = writer.stop().await;
    eprintln!("longest write gap over two switchovers: {:?}", probe::max_gap(&acked));
    let leader = cluster.wait_pg_cluster(0, READY).await.expect("leader");
    assert_eq!(leader, first, "switched back");
    let ids = probe::probe_ids(port(&cluster, index_of(&cluster, &leader)), &pw)
        .await
        .expect("ids");
    assert!(
        probe::lost(&acked, &ids).is_empty(),
        "a switchover lost acknowledged writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_blocks_automatic_failover_until_resume() {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    let pw = probe::password(&cluster.dir);
    assert!(ctl(&cluster, &["pause"]).contains("Maintenance mode: on"));
    assert!(
        ctl(&cluster, &["list"]).contains("Maintenance mode: on"),
        "list shows the maintenance mode"
    );

    cluster.kill(li);
    cluster.signal_postgres(li, libc::SIGKILL);
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        for i in (0..3).filter(|i| *i != li) {
            assert_ne!(
                probe::in_recovery(port(&cluster, i), &pw).await,
                Some(false),
                "promoted while paused"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A manual failover works without a leader, even in maintenance mode.
    assert!(
        ctl_fails(&cluster, &["failover", "--force"]).contains("--candidate"),
        "failover needs a candidate"
    );
    let target = cluster.nodes[(li + 1) % 3].name.clone();
    ctl(&cluster, &["failover", "--candidate", &target, "--force"]);
    let now = cluster
        .wait_pg_cluster(0, READY)
        .await
        .expect("the failover candidate leads");
    assert_eq!(now, target);
    assert!(ctl(&cluster, &["resume"]).contains("Maintenance mode: off"));
    let survivors: Vec<u16> = (0..3).filter(|i| *i != li).map(|i| port(&cluster, i)).collect();
    common::wait_for(Duration::from_secs(60), "a promotion after resume", || async {
        for p in &survivors {
            if probe::in_recovery(*p, &pw).await == Some(false) {
                return Some(());
            }
        }
        None
    })
    .await;
    // The new primary records its promotion right after it starts accepting writes.
    common::wait_for(Duration::from_secs(30), "the promotion in the history", || async {
        let history = ctl(&cluster, &["history", "-o", "json"]);
        let entries: serde_json::Value = serde_json::from_str(&history).expect("history is JSON");
        entries.as_array().filter(|a| !a.is_empty()).map(|_| ())
    })
    .await;
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_endpoints_answer_like_patroni() {
    if db::skip_without_pg() {
        return;
    }
    let cluster = start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    let ri = (li + 1) % 3;
    let (lp, rp) = (
        cluster.nodes[li].rest_port.expect("rest"),
        cluster.nodes[ri].rest_port.expect("rest"),
    );
    // The replica's loop may need a moment to see itself streaming.
    common::wait_for(Duration::from_secs(30), "the replica to answer /replica", || async {
        (http(rp, "GET", "/replica").await.0 == 200).then_some(())
    })
    .await;
    let cases = [
        ("GET", "/primary", 200, 503),
        ("GET", "/master", 200, 503),
        ("GET", "/read-write", 200, 503),
        ("GET", "/leader", 200, 503),
        ("GET", "/replica", 503, 200),
        ("GET", "/replica?lag=100MB", 503, 200),
        ("GET", "/async", 503, 200),
        ("GET", "/sync", 503, 503),
        ("GET", "/read-only", 200, 200),
        ("GET", "/health", 200, 200),
        ("GET", "/liveness", 200, 200),
        ("GET", "/readiness", 200, 200),
        ("GET", "/patroni", 200, 200),
        ("GET", "/cluster", 200, 200),
        ("GET", "/history", 200, 200),
        ("GET", "/config", 200, 200),
        ("GET", "/metrics", 200, 200),
        ("HEAD", "/primary", 200, 503),
        ("OPTIONS", "/replica", 503, 200),
        ("GET", "/replica?tag_zone=a", 503, 503),
        // Writes need HTTPS and an admin certificate: refused over plain HTTP (tests/rest_write.rs has the rest).
        ("POST", "/switchover", 403, 403),
        ("PATCH", "/config", 403, 403),
        ("DELETE", "/config", 405, 405),
        ("DELETE", "/switchover", 403, 403),
    ];
    for (method, path, on_leader, on_replica) in cases {
        assert_eq!(
            http(lp, method, path).await.0,
            on_leader,
            "{method} {path} on the leader"
        );
        assert_eq!(
            http(rp, method, path).await.0,
            on_replica,
            "{method} {path} on a replica"
        );
    }
    let (_, metrics) = http(lp, "GET", "/metrics").await;
    assert!(metrics.contains("pgha_primary{"), "{metrics}");
    let (_, cluster_json) = http(rp, "GET", "/cluster").await;
    let v: serde_json::Value = serde_json::from_str(&cluster_json).expect("cluster JSON");
    assert_eq!(v["members"].as_array().map(|a| a.len()), Some(3), "{cluster_json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reload_and_reinit_through_ctl() {
    if db::skip_without_pg() {
        return;
    }
    let cluster = start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    let ri = (li + 1) % 3;
    let replica = cluster.nodes[ri].name.clone();
    let pw = probe::password(&cluster.dir);

    let before = cluster.postmaster_pid(ri).expect("replica postmaster");
    assert!(ctl(&cluster, &["restart", &replica]).contains("done"));
    let after = common::wait_for(Duration::from_secs(60), "the replica's new postmaster", || async {
        cluster.postmaster_pid(ri).filter(|p| *p != before)
    })
    .await;
    assert_ne!(after, before);
    assert!(ctl(&cluster, &["reload"]).contains("done"));
    let leader_pid = cluster.postmaster_pid(li).expect("leader postmaster");
    assert!(ctl(&cluster, &["restart", "--all", "--pending"]).contains("done"));
    assert_eq!(
        cluster.postmaster_pid(li),
        Some(leader_pid),
        "nothing pending: the leader was not restarted"
    );
    assert!(
        ctl_fails(&cluster, &["restart"]).contains("--all"),
        "restart needs a name or --all"
    );

    // A reload parameter takes effect everywhere; a restart-only one waits for `restart --pending`.
    assert!(ctl_fails(&cluster, &["edit-config", "--pg", "port=1", "--force"]).contains("set by pgha"));
    ctl(
        &cluster,
        &[
            "edit-config",
            "--pg",
            "work_mem=8MB",
            "--pg",
            "max_connections=120",
            "--force",
        ],
    );
    let p = port(&cluster, li);
    db::wait_setting(p, &pw, "work_mem", "8MB").await;
    wait_pending_restart(&cluster, true).await;
    ctl(&cluster, &["restart", "--all", "--pending"]);
    db::wait_setting(p, &pw, "max_connections", "120").await;
    wait_pending_restart(&cluster, false).await;

    assert!(
        ctl_fails(&cluster, &["reinit", &leader]).contains("refusing"),
        "reinit of the leader is refused"
    );
    db::create_probe_table(p, &pw).await;
    probe::exec(p, &pw, "INSERT INTO probe VALUES (42)").await.expect("row");
    assert!(ctl(&cluster, &["reinit", &replica, "--wait"]).contains("streaming again"));
    let rp = port(&cluster, ri);
    common::wait_for(
        Duration::from_secs(30),
        "the re-cloned replica to have the row",
        || async { probe::probe_ids(rp, &pw).await.filter(|ids| ids.contains(&42)) },
    )
    .await;
}

/// Waits until `ctl list` shows every member with `pending_restart` = `expected`.
async fn wait_pending_restart(cluster: &LocalCluster, expected: bool) {
    let what = format!("pending_restart = {expected} on every member");
    common::wait_for(Duration::from_secs(30), &what, || async {
        let list = ctl(cluster, &["list", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&list).ok()?;
        v["members"]
            .as_array()?
            .iter()
            .all(|m| m["pending_restart"] == expected)
            .then_some(())
    })
    .await;
}
