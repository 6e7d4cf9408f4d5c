//! What a stolen edge key (and a db node's key used against another node) cannot do to a running PostgreSQL
//! cluster over real mutual TLS, and that the cluster still fails over after the attempts.

mod common;
#[path = "common/db.rs"]
mod db;
#[path = "common/probe.rs"]
mod probe;
#[path = "common/roles.rs"]
mod roles;

use std::time::Duration;

use pgha::config::Role;
use pgha::dcs::types::{node_id, Command, ExpiredLease};
use pgha::harness::local::{Layout, LocalCluster};
use pgha::identity::{Caller, CertRole};

use roles::{denied, identity, refusals, Peer};

fn root(key: &str) -> String {
    format!("/pgha/demo/{key}")
}

/// What must not change: the config, the leader key and its lease, the voters.
async fn state(admin: &Peer) -> (Option<(Vec<u8>, i64)>, Option<(Vec<u8>, i64)>, Vec<String>) {
    let (config, _) = admin.get(&root("config")).await.expect("reading config");
    let (leader, _) = admin.get(&root("leader")).await.expect("reading leader");
    let voters = admin.status().await.expect("status").members;
    (config, leader, voters.into_iter().map(|m| m.name).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_key_cannot_touch_the_cluster_and_failover_still_works() {
    if db::skip_without_pg() {
        return;
    }
    pgha::tls::install_crypto_provider();
    let layout = Layout {
        pg_lines: "tls = false\n".into(),
        ha_lines: db::HA.into(),
        ..Layout::default()
    };
    let mut cluster = LocalCluster::create_with(&common::exe(), None, 3, Role::Db, true, layout).expect("laying out");
    cluster.start_all().expect("starting");
    let primary = cluster
        .wait_pg_cluster(2, db::READY)
        .await
        .expect("a primary and 2 replicas");
    // A real edge with its edge certificate: it reads the cluster and publishes `edges/edge1` under its own lease.
    let e = cluster.add_edge("").expect("laying out an edge");
    cluster.start_edge(e).expect("starting the edge");
    assert!(
        cluster.wait_edge_healthy(e, Duration::from_secs(30)).await,
        "the edge routes"
    );
    let own = cluster.client(Duration::from_secs(10)).expect("the ctl client");
    common::wait_until(Duration::from_secs(30), "edges/edge1 published", || async {
        own.get(root("edges/edge1").as_bytes(), false)
            .await
            .is_ok_and(|(kvs, _)| kvs.first().is_some_and(|kv| kv.lease != 0))
    })
    .await;
    for node in &cluster.nodes {
        // Bootstrap, publication, leader key, the edge's reads and key: nothing a node's job needs was refused.
        assert_eq!(refusals(&node.log), vec![], "{}", node.name);
    }
    let p = db::index_of(&cluster, &primary);
    let other = (p + 1) % 3;
    let dir = tempfile::tempdir().expect("a temp dir");
    let mk = |role, name: &str, node: usize| {
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).expect("a cert dir");
        let tls = identity(&cluster, &sub, Some(role), name);
        Peer::new(Caller::new(role, name), tls, &cluster.nodes[node].dcs_addr)
    };
    let admin = mk(CertRole::Admin, "ops", other);
    let before = state(&admin).await;
    let (_, leader_lease) = before.1.clone().expect("a leader key");
    let other_key = root(&format!("members/{}", cluster.nodes[other].name));
    let (other_member, _) = admin.get(&other_key).await.expect("a read");
    let (_, other_lease) = other_member.expect("the other member's key");

    // An edge key, at a follower and at the primary's node.
    for node in [other, p] {
        let edge = mk(CertRole::Edge, "edge1", node);
        let attempts = [
            (
                "put config",
                edge.put(
                    &root("config"),
                    r#"{"postgresql_parameters":{"archive_command":"x"}}"#,
                    0,
                )
                .await,
            ),
            (
                "put commands",
                edge.put(&root(&format!("commands/{primary}")), r#"{"restart":{}}"#, 0)
                    .await,
            ),
            ("put switchover", edge.put(&root("switchover"), "{}", 0).await),
            ("delete leader", edge.delete(&root("leader")).await),
            ("renew the leader's lease", edge.keepalive(leader_lease).await.map(drop)),
            ("revoke the leader's lease", edge.revoke(leader_lease).await.map(drop)),
            (
                "bind a key to the leader's lease",
                edge.put(&root("edges/edge1"), "{}", leader_lease).await,
            ),
            (
                "expire the leader's lease",
                edge.forward(&Command::LeaseExpire {
                    leases: vec![ExpiredLease {
                        id: leader_lease,
                        refreshed_index: 1,
                    }],
                })
                .await,
            ),
            ("remove a member", edge.remove_member(&cluster.nodes[other].name).await),
            ("add a member", edge.add_member("edge1", "127.0.0.1:1").await),
            (
                "AppendEntries at a high term",
                edge.append_entries(1_000, node_id("node1")).await,
            ),
            ("Vote at a high term", edge.vote(1_000, node_id("edge1")).await),
            (
                "snapshot chunk at a bogus offset",
                edge.install_snapshot(1_000, node_id("node1"), 1 << 40).await,
            ),
            ("WalPosition", edge.wal_position().await),
        ];
        for (what, got) in attempts {
            assert!(denied(&got), "edge at {}: {what}: {got:?}", cluster.nodes[node].name);
        }
        // What an edge does need still works.
        let lease = edge.grant(5_000).await.expect("an edge lease");
        edge.put(&root("edges/edge1"), "{}", lease).await.expect("its own key");
        edge.revoke(lease).await.expect("its own lease");
    }

    // A db node's key speaks for that node only: node1 cannot write another member's key or renew its lease.
    let (a, b) = (&cluster.nodes[p].name, &cluster.nodes[other].name);
    let db_a = mk(CertRole::Member, a, other);
    for (what, got) in [
        (
            "write another member's key",
            db_a.put(&root(&format!("members/{b}")), "{}", 0).await,
        ),
        (
            "renew another member's lease",
            db_a.keepalive(other_lease).await.map(drop),
        ),
        ("write config", db_a.put(&root("config"), "{}", 0).await),
        ("write a switchover", db_a.put(&root("switchover"), "{}", 0).await),
        ("campaign as another node", db_a.vote(1_000, node_id(b)).await),
    ] {
        assert!(denied(&got), "{a} certificate: {what}: {got:?}");
    }
    assert_eq!(state(&admin).await, before, "refused calls changed the cluster");

    // The cluster still fails over: SIGKILL the primary; its lease expires (nobody could keep it alive).
    cluster.kill(p);
    // The killed primary's key and status stay until its lease expires: wait for another name.
    let what = "a new primary with a streaming replica";
    let new_primary = common::wait_for(Duration::from_secs(60), what, || async {
        let name = cluster.wait_pg_cluster(1, Duration::from_secs(1)).await.ok()?;
        (name != primary).then_some(name)
    })
    .await;
    assert_ne!(new_primary, primary);
}
