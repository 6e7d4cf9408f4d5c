//! Replication slots with real PostgreSQL: pgha drops only the slots it created (a backup tool's slot survives
//! switchovers), and a member away longer than its key's TTL finds its slot and streams without rewind or re-clone.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;

use std::time::Duration;

use db::{ctl, index_of, port, READY};

/// The physical slots of the PostgreSQL on `port`.
async fn slots(port: u16, password: &str) -> Vec<String> {
    let client = probe::connect(port, password).await.expect("connect");
    let rows = client
        .query(
            "SELECT slot_name::text FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY 1",
            &[],
        )
        .await
        .expect("slots");
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_slots_survive_and_an_away_member_keeps_its_slot() {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = db::start(3, "");
    let leader = cluster.wait_pg_cluster(2, READY).await.expect("cluster ready");
    let li = index_of(&cluster, &leader);
    let pw = probe::password(&cluster.dir);
    let primary = port(&cluster, li);
    db::create_probe_table(primary, &pw).await;
    probe::exec(primary, &pw, "SELECT pg_create_physical_replication_slot('barman')")
        .await
        .expect("a backup tool's slot");

    // A replica goes away (clean stop) for longer than its member key lives.
    let ri = (0..3).find(|i| *i != li).expect("a replica");
    let away = cluster.nodes[ri].name.clone();
    cluster.stop(ri, Duration::from_secs(30));
    let client = cluster.client(Duration::from_secs(2)).expect("client");
    let keys = pgha::cluster::keys::Keys::new("demo");
    let store = pgha::cluster::store::Store {
        dcs: &client,
        keys: &keys,
    };
    common::wait_until(Duration::from_secs(30), "the away member's key to expire", || async {
        store.view().await.is_ok_and(|v| !v.members.contains_key(&away))
    })
    .await;
    probe::exec(primary, &pw, "INSERT INTO probe SELECT generate_series(1, 1000)")
        .await
        .expect("writes while it is away");
    // Several HA loops of the leader run without the member: its slot stays (member_slots_ttl_ms, 30 min).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let on_primary = slots(primary, &pw).await;
    assert!(
        on_primary.contains(&pgha::postgres::slot_name(&away)),
        "the away member's slot is kept: {on_primary:?}"
    );
    assert!(
        on_primary.contains(&"barman".to_string()),
        "foreign slot kept: {on_primary:?}"
    );

    let log_before = std::fs::read_to_string(&cluster.nodes[ri].log)
        .map(|t| t.len())
        .unwrap_or(0);
    cluster.start(ri).expect("the member comes back");
    cluster.wait_pg_cluster(2, READY).await.expect("it streams again");
    let log = std::fs::read_to_string(&cluster.nodes[ri].log).unwrap_or_default();
    let since = &log[log_before.min(log.len())..];
    assert!(
        !since.contains("\"rewind\"") && !since.contains("pg_basebackup") && !since.contains("reclone"),
        "it came back without a rewind or a re-clone:\n{since}"
    );

    // Switchover away and back: the foreign slot is never dropped by pgha.
    let other = (0..3).find(|i| *i != li && *i != ri).expect("another replica");
    let other_name = cluster.nodes[other].name.clone();
    ctl(&cluster, &["switchover", "--candidate", &other_name, "--force"]);
    common::wait_until(Duration::from_secs(60), "the switchover", || async {
        cluster.wait_pg_cluster(2, Duration::from_secs(1)).await.ok().as_deref() == Some(other_name.as_str())
    })
    .await;
    ctl(&cluster, &["switchover", "--candidate", &leader, "--force"]);
    common::wait_until(Duration::from_secs(60), "the switchover back", || async {
        cluster.wait_pg_cluster(2, Duration::from_secs(1)).await.ok().as_deref() == Some(leader.as_str())
    })
    .await;
    // A few loops of the leader again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = slots(primary, &pw).await;
    assert!(
        after.contains(&"barman".to_string()),
        "foreign slot survived the switchovers: {after:?}"
    );
    // `ctl list --slots` tells pgha's slots from everybody else's.
    let listed = common::wait_for(Duration::from_secs(10), "the leader's published slots", || async {
        Some(ctl(&cluster, &["list", "--slots"])).filter(|out| out.contains("barman"))
    })
    .await;
    let barman = listed.lines().find(|l| l.contains("barman")).expect("barman listed");
    assert!(barman.contains("other"), "barman is not pgha's: {listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&pgha::postgres::slot_name(&away)) && l.contains("pgha")),
        "member slots are pgha's: {listed}"
    );
}
