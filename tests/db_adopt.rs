//! Adoption: `pgha run --role db` on a host whose data directory already holds a running primary takes it over
//! without initdb and without restarting it; the other members clone it.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/probe.rs"]
mod probe;

use std::time::Duration;

use pgha::postgres::{discover_bin_dir, ConfRole, PgSettings, Postgres};

use db::{index_of, port, READY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_primary_is_adopted_without_initdb_or_restart() {
    if db::skip_without_pg() {
        return;
    }
    let mut cluster = db::lay_out(3, "", "");
    let pw = probe::password(&cluster.dir);
    let node = &cluster.nodes[0];
    let pg_data = node.pg_data.clone().expect("a db node");
    // The instance an operator already runs: same data directory, port and socket directory as node1's config.
    let mut settings = PgSettings::new(
        &node.name,
        &discover_bin_dir(None).expect("binaries"),
        &pg_data,
        &node.data_dir.join("run"),
        node.pg_port.expect("a port"),
    );
    settings.superuser_password = Some(pw.clone());
    let existing = Postgres::new(settings).expect("settings");
    let killer = pg::Killer::default();
    killer.watch(&existing);
    existing.initdb().await.expect("initdb of the existing cluster");
    // Listening where node1's config says (an operator points pgha's [postgresql] at the running instance).
    existing.write_config(&ConfRole::Primary).await.expect("config");
    existing.start(Duration::from_secs(60)).await.expect("start");
    let pid_before = existing.postmaster_pid().expect("running");
    let sysid = existing.status().await.expect("status").system_identifier;
    let p0 = port(&cluster, 0);
    db::create_probe_table(p0, &pw).await;
    probe::exec(p0, &pw, "INSERT INTO probe SELECT generate_series(1, 100)")
        .await
        .expect("rows of the existing cluster");

    // pgha starts on every host at once: node1 adopts its instance, the empty members wait and then clone it.
    cluster.start_all().expect("starting");
    let leader = cluster
        .wait_pg_cluster(2, READY)
        .await
        .expect("node1 leads two replicas");
    assert_eq!(leader, cluster.nodes[0].name, "the existing primary is the leader");
    assert_eq!(existing.postmaster_pid(), Some(pid_before), "adopted without a restart");
    let client = common::client(&cluster, None, Duration::from_secs(5));
    let init = common::get_value(&client, "/pgha/demo/initialize", Duration::from_secs(10)).await;
    assert_eq!(
        init,
        Some(sysid.to_string()),
        "the cluster keeps the existing system identifier"
    );
    for i in 1..3 {
        let p = port(&cluster, i);
        let ids = common::wait_for(Duration::from_secs(30), "the rows on a replica", || async {
            probe::probe_ids(p, &pw).await.filter(|ids| ids.len() == 100)
        })
        .await;
        assert_eq!(ids.first(), Some(&1));
    }
    assert_eq!(index_of(&cluster, &leader), 0);
    drop(cluster);
    drop(killer);
}
