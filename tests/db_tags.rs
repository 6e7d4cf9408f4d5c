//! Tags with real PostgreSQL: `replicatefrom` (a replica cascades from the member it names, falls back to the leader
//! while that member is away and returns to it) and `nosync` (never in the primary's `synchronous_standby_names`).

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::time::Duration;

use db::{ctl, index_of, port, READY};

/// The port the WAL receiver of the standby on `port` streams from (None: not streaming, or no answer).
async fn sender_port(port: u16, password: &str) -> Option<u16> {
    let client = probe::connect(port, password).await?;
    let row = client
        .query_opt(
            "SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'",
            &[],
        )
        .await
        .ok()??;
    row.get::<_, Option<i32>>(0).and_then(|p| u16::try_from(p).ok())
}

/// The application names streaming from the PostgreSQL on `port`.
async fn walsenders(port: u16, password: &str) -> Vec<String> {
    let Some(client) = probe::connect(port, password).await else {
        return Vec::new();
    };
    client
        .query(
            "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
            &[],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default()
}

/// Physical slots of the PostgreSQL on `port` as (name, active).
async fn slots(port: u16, password: &str) -> Vec<(String, bool)> {
    let Some(client) = probe::connect(port, password).await else {
        return Vec::new();
    };
    client
        .query(
            "SELECT slot_name::text, active FROM pg_replication_slots WHERE slot_type = 'physical'",
            &[],
        )
        .await
        .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        .unwrap_or_default()
}

/// `SHOW name` on the PostgreSQL on `port`.
async fn show(port: u16, password: &str, name: &str) -> Option<String> {
    let client = probe::connect(port, password).await?;
    let row = client.query_one(&format!("SHOW {name}"), &[]).await.ok()?;
    Some(row.get(0))
}

/// A query of one boolean on the PostgreSQL on `port` (false when it does not answer).
async fn holds(port: u16, password: &str, sql: &str) -> bool {
    let Some(client) = probe::connect(port, password).await else {
        return false;
    };
    client
        .query_opt(sql, &[])
        .await
        .ok()
        .flatten()
        .is_some_and(|r| r.get::<_, Option<bool>>(0) == Some(true))
}

/// Inserts `id` on the primary and waits until the standby on `replica` has it.
async fn write_reaches(primary: u16, replica: u16, password: &str, id: i64) {
    common::wait_for(Duration::from_secs(30), &format!("insert of {id}"), || async {
        probe::exec(
            primary,
            password,
            &format!("INSERT INTO probe VALUES ({id}) ON CONFLICT DO NOTHING"),
        )
        .await
    })
    .await;
    common::wait_until(
        Duration::from_secs(30),
        &format!("row {id} on the cascading replica"),
        || async {
            probe::probe_ids(replica, password)
                .await
                .is_some_and(|ids| ids.contains(&id))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicatefrom_cascades_falls_back_to_the_leader_and_returns() {
    if db::skip_without_pg() {
        return;
    }
    // node1 is the only member that may lead (nofailover elsewhere), node2 a replica, node3 cascades from node2.
    let mut cluster = db::lay_out(3, "", "");
    let (a, b, c) = (0, 1, 2);
    let b_name = cluster.nodes[b].name.clone();
    let c_name = cluster.nodes[c].name.clone();
    db::add_ha_line(&cluster, b, "nofailover = true");
    db::add_ha_line(&cluster, c, "nofailover = true");
    db::add_ha_line(&cluster, c, &format!("tags = {{ replicatefrom = \"{b_name}\" }}"));
    cluster.start_all().expect("starting");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    assert_eq!(index_of(&cluster, &leader), a, "the only member that may lead");
    let pw = probe::password(&cluster.dir);
    let (pa, pb, pc) = (port(&cluster, a), port(&cluster, b), port(&cluster, c));
    db::create_probe_table(pa, &pw).await;

    // node3 streams from node2, which holds its slot; the primary keeps node3's slot too (for a fall back).
    common::wait_until(Duration::from_secs(60), "node3 streaming from node2", || async {
        sender_port(pc, &pw).await == Some(pb) && walsenders(pb, &pw).await.contains(&c_name)
    })
    .await;
    let c_slot = pgha::postgres::slot_name(&c_name);
    assert!(
        slots(pb, &pw).await.contains(&(c_slot.clone(), true)),
        "node3 streams through its slot on node2"
    );
    assert!(
        !walsenders(pa, &pw).await.contains(&c_name),
        "node3 does not stream from the primary"
    );
    assert!(
        slots(pa, &pw).await.iter().any(|(s, _)| *s == c_slot),
        "the primary keeps node3's slot"
    );
    write_reaches(pa, pc, &pw, 1).await;
    // ctl topology nests node3 under node2.
    let topology = common::wait_for(Duration::from_secs(10), "node3 under node2 in ctl topology", || async {
        let out = ctl(&cluster, &["topology"]);
        out.contains(&format!("+ + {c_name}")).then_some(out)
    })
    .await;
    assert!(topology.contains(&format!("+ {b_name}")), "{topology}");

    // node2 goes away: node3 streams from the leader, and gets the writes.
    cluster.stop(b, Duration::from_secs(30));
    common::wait_until(Duration::from_secs(60), "node3 streaming from the leader", || async {
        sender_port(pc, &pw).await == Some(pa)
    })
    .await;
    write_reaches(pa, pc, &pw, 2).await;

    // node2 is back and streams: node3 returns to it.
    cluster.start(b).expect("node2 back");
    common::wait_until(Duration::from_secs(90), "node3 streaming from node2 again", || async {
        sender_port(pc, &pw).await == Some(pb) && walsenders(pb, &pw).await.contains(&c_name)
    })
    .await;
    write_reaches(pa, pc, &pw, 3).await;

    // The primary's slot for node3 follows it while it cascades (it does not hold the primary's WAL forever).
    let client = probe::connect(pa, &pw).await.expect("primary");
    let lsn: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("position")
        .get(0);
    let moved = format!(
        "SELECT restart_lsn >= '{lsn}'::pg_lsn AND NOT active FROM pg_replication_slots WHERE slot_name = '{c_slot}'"
    );
    common::wait_until(
        Duration::from_secs(30),
        "node3's slot on the primary moved forward",
        || async { holds(pa, &pw, &moved).await },
    )
    .await;

    let log = std::fs::read_to_string(&cluster.nodes[c].log).unwrap_or_default();
    let follows: Vec<&str> = log.lines().filter(|l| l.contains("\"follow\"")).collect();
    assert!(
        follows.iter().any(|l| l.contains("replicatefrom")
            && (l.contains("not in the cluster") || l.contains("not a streaming replica"))),
        "the fall back is logged with its reason: {follows:#?}"
    );
    assert!(
        follows.iter().any(|l| l.contains("cascading from")),
        "the cascade is logged: {follows:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nosync_members_are_never_synchronous_standbys() {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = db::lay_out(3, "", "synchronous_mode = \"quorum\"\n");
    let nosync = 2;
    let nosync_name = cluster.nodes[nosync].name.clone();
    db::add_ha_line(&cluster, nosync, "tags = { nosync = \"true\" }");
    cluster.start_all().expect("starting");
    let mut leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let pw = probe::password(&cluster.dir);
    let quoted = format!("\"{nosync_name}\"");
    let other = |leader: &str| {
        (0..3)
            .find(|i| *i != nosync && cluster.nodes[*i].name != leader)
            .expect("the other member")
    };
    let switch_to = |to: usize| {
        let name = cluster.nodes[to].name.clone();
        ctl(&cluster, &["switchover", "--candidate", &name, "--force"]);
        name
    };
    if leader == nosync_name {
        // A nosync member may lead; the test wants it as a replica. The candidate is pgha's pick: in quorum mode
        // only the member the sync key names may take over, and that is either of the other two.
        ctl(&cluster, &["switchover", "--force"]);
        leader = db::wait_new_leader(&cluster, &leader, Duration::from_secs(60)).await;
        assert_ne!(leader, nosync_name);
    }
    // Twice: as it is, and after a switchover between the two other members.
    for round in 0..2 {
        let li = index_of(&cluster, &leader);
        let primary = port(&cluster, li);
        let standby = cluster.nodes[other(&leader)].name.clone();
        db::create_probe_table(primary, &pw).await;
        // The other member is named once it streams; the nosync one never is, over a few seconds of loops.
        common::wait_until(
            Duration::from_secs(60),
            "the other member named synchronous",
            || async {
                show(primary, &pw, "synchronous_standby_names")
                    .await
                    .is_some_and(|v| v.contains(&format!("\"{standby}\"")))
            },
        )
        .await;
        common::wait_until(Duration::from_secs(60), "the nosync member streaming", || async {
            walsenders(primary, &pw).await.contains(&nosync_name)
        })
        .await;
        for _ in 0..20 {
            let names = show(primary, &pw, "synchronous_standby_names")
                .await
                .unwrap_or_default();
            assert!(!names.contains(&quoted), "round {round}: nosync member named: {names}");
            if let Some((_, members)) = db::sync_key(&cluster) {
                assert!(
                    !members.contains(&nosync_name),
                    "round {round}: in the sync key: {members:?}"
                );
            }
            probe::exec(
                primary,
                &pw,
                &format!("INSERT INTO probe VALUES ({round}) ON CONFLICT DO NOTHING"),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if round == 0 {
            let to = switch_to(other(&leader));
            leader = db::wait_new_leader(&cluster, &leader, Duration::from_secs(60)).await;
            assert_eq!(leader, to);
        }
    }
}
