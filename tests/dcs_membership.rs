//! DCS membership on a real cluster: a new empty member joins on its own; `pgha ctl member remove|members` work.

mod common;

use std::time::Duration;

use common::{client, get_value, leader, pgha_async, put_acked, start_cluster, voters, wait_file_contains, wait_until};

const WRITE: Duration = Duration::from_secs(20);
const CTL: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_joins_by_itself_and_ctl_removes_it() {
    let mut cluster = start_cluster(3, "");
    leader(&cluster).await;
    let original = client(&cluster, Some(&[0, 1, 2]), Duration::from_secs(5));
    put_acked(&original, "/m/before", "1", WRITE).await;

    // A fourth node with empty storage, its peers the three plus itself: it asks to be added (learner, then voter).
    let fourth = cluster.add_node().expect("laying out a fourth node");
    assert_eq!(cluster.nodes[fourth].name, "node4");
    cluster.start(fourth).expect("starting node4");
    let four: Vec<String> = (1..=4).map(|i| format!("node{i}")).collect();
    wait_until(Duration::from_secs(30), "4 voters", || async {
        voters(&original).await.as_ref() == Some(&four)
    })
    .await;
    let via_new = client(&cluster, Some(&[fourth]), Duration::from_secs(5));
    assert_eq!(
        get_value(&via_new, "/m/before", WRITE).await.as_deref(),
        Some("1"),
        "the new member serves reads"
    );
    put_acked(&via_new, "/m/via-node4", "4", WRITE).await;

    // The join's membership change must be committed before the next one is accepted (the leader refuses overlapping
    // changes); node4 logs this line once its add_member call, which waits for that commit, returned.
    wait_file_contains(
        &cluster.nodes[fourth].log,
        "joined the existing DCS cluster",
        Duration::from_secs(30),
    )
    .await;

    // Removal through the binary.
    let endpoints: Vec<String> = (0..3).map(|i| cluster.nodes[i].dcs_addr.clone()).collect();
    let ctl = |args: &[&str]| {
        let mut argv: Vec<String> = vec!["ctl".into(), "--endpoints".into(), endpoints.join(",")];
        argv.extend(args.iter().map(|a| a.to_string()));
        let env = vec![
            ("PGHA_TLS__PLAINTEXT".to_string(), "true".to_string()),
            ("PGHA_DCS__REQUEST_TIMEOUT_MS".to_string(), "10000".to_string()),
        ];
        pgha_async(argv, env, CTL)
    };
    let removed = ctl(&["member", "remove", "node4"]).await;
    assert!(removed.ok(), "ctl member remove node4 failed: {removed:?}");
    assert!(
        !removed.stdout.contains("node4"),
        "the printed membership still lists node4:\n{}",
        removed.stdout
    );
    let three: Vec<String> = (1..=3).map(|i| format!("node{i}")).collect();
    wait_until(Duration::from_secs(30), "3 voters", || async {
        voters(&original).await.as_ref() == Some(&three)
    })
    .await;
    put_acked(&original, "/m/after", "3", WRITE).await;
    assert_eq!(get_value(&original, "/m/after", WRITE).await.as_deref(), Some("3"));

    let listed = ctl(&["members", "-o", "json"]).await;
    assert!(listed.ok(), "ctl members failed: {listed:?}");
    let rows: serde_json::Value = serde_json::from_str(&listed.stdout).expect("ctl members -o json prints JSON");
    let rows = rows.as_array().expect("a JSON array of members");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, vec!["node1", "node2", "node3"], "members: {}", listed.stdout);
    // Reachability and the leader flag depend on per-member status calls with a 1 s budget: not asserted here.
    assert!(rows.iter().all(|r| r["voter"] == true), "members: {}", listed.stdout);

    let nosuch = ctl(&["member", "remove", "nosuch"]).await;
    assert!(!nosuch.ok(), "removing an unknown member succeeded: {nosuch:?}");
    assert!(
        nosuch.stderr.contains("no member named nosuch"),
        "the error should name the unknown member:\n{}",
        nosuch.stderr
    );
}
