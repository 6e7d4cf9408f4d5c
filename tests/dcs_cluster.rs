//! Raft DCS clusters of real processes: election, replication, fail-over, quorum loss and whole-cluster restart.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{client, get_value, leader, put_acked, start_cluster, wait_for, wait_until};

const WRITE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_fail_over_and_catch_up() {
    let mut cluster = start_cluster(3, "");
    let first_leader = leader(&cluster).await;
    let via: Vec<_> = (0..3)
        .map(|i| client(&cluster, Some(&[i]), Duration::from_secs(5)))
        .collect();

    // A write through each member (followers forward to the leader) is visible to a linearizable read on the others.
    for (i, writer) in via.iter().enumerate() {
        put_acked(writer, &format!("/c3/via{i}"), &format!("v{i}"), WRITE).await;
        for (j, reader) in via.iter().enumerate().filter(|(j, _)| *j != i) {
            let got = get_value(reader, &format!("/c3/via{i}"), WRITE).await;
            assert_eq!(
                got.as_deref(),
                Some(format!("v{i}").as_str()),
                "write via node{} read via node{}",
                i + 1,
                j + 1
            );
        }
    }

    // The leader dies: the two survivors elect a new one and keep accepting writes through either of them.
    cluster.kill(first_leader);
    let new_leader = leader(&cluster).await;
    assert_ne!(new_leader, first_leader, "the killed node cannot be the new leader");
    let survivors: Vec<usize> = (0..3).filter(|i| *i != first_leader).collect();
    let mut written = BTreeMap::new();
    for k in 0..20 {
        let (key, value) = (format!("/c3/down/{k:02}"), format!("d{k}"));
        let writer = &via[survivors[k % 2]];
        put_acked(writer, &key, &value, WRITE).await;
        let reader = &via[survivors[(k + 1) % 2]];
        assert_eq!(
            get_value(reader, &key, WRITE).await.as_deref(),
            Some(value.as_str()),
            "{key} after fail-over"
        );
        written.insert(key, value);
    }

    // The old leader comes back and catches up on everything it missed (its own local view, no forwarding).
    cluster.start(first_leader).expect("restarting the old leader");
    let returning = &via[first_leader];
    wait_until(
        Duration::from_secs(30),
        "the restarted node to hold every key written while it was down",
        || async {
            let Ok((kvs, _)) = returning.get_local(b"/c3/down/", true).await else {
                return false;
            };
            let local: BTreeMap<String, String> = kvs
                .iter()
                .map(|kv| {
                    (
                        String::from_utf8_lossy(&kv.key).into_owned(),
                        String::from_utf8_lossy(&kv.value).into_owned(),
                    )
                })
                .collect();
            local == written
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_tolerate_two_failures_but_not_three() {
    let mut cluster = start_cluster(5, "");
    let first_leader = leader(&cluster).await;
    let all = client(&cluster, None, Duration::from_secs(5));
    put_acked(&all, "/c5/before", "1", WRITE).await;

    // Two down (the leader among them): 3 of 5 is still a majority.
    let other = (0..5).find(|i| *i != first_leader).expect("a second node");
    cluster.kill(first_leader);
    cluster.kill(other);
    for k in 0..5 {
        put_acked(&all, &format!("/c5/two-down/{k}"), "x", WRITE).await;
    }
    assert_eq!(get_value(&all, "/c5/two-down/4", WRITE).await.as_deref(), Some("x"));

    // A third one down: the remaining two can neither commit a write nor serve a linearizable read.
    let alive: Vec<usize> = (0..5).filter(|i| cluster.is_running(*i)).collect();
    assert_eq!(alive.len(), 3);
    cluster.kill(alive[0]);
    let minority: Vec<usize> = alive[1..].to_vec();
    let short = client(&cluster, Some(&minority), Duration::from_millis(1500));
    let put = short.put(b"/c5/minority", b"no", 0).await;
    assert!(put.is_err(), "a put on a 2-of-5 minority was acknowledged: {put:?}");
    let get = short.get(b"/c5/before", false).await;
    assert!(
        get.is_err(),
        "a linearizable read on a 2-of-5 minority answered: {get:?}"
    );
    // The minority members are up and still serve their (possibly stale) local view.
    let (kvs, _) = short
        .get_local(b"/c5/before", false)
        .await
        .expect("a local read on a live minority member");
    assert_eq!(kvs.len(), 1);

    // One member back: quorum again.
    cluster.start(first_leader).expect("restarting a member");
    put_acked(&all, "/c5/after", "ok", Duration::from_secs(30)).await;
    assert_eq!(get_value(&all, "/c5/after", WRITE).await.as_deref(), Some("ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_whole_cluster_sigkill() {
    let mut cluster = start_cluster(3, "");
    leader(&cluster).await;
    let all = client(&cluster, None, Duration::from_secs(5));
    let mut written = BTreeMap::new();
    for k in 0..200 {
        let (key, value) = (format!("/crash/{k:03}"), format!("value-{k}"));
        put_acked(&all, &key, &value, WRITE).await;
        written.insert(key, value);
    }

    for i in 0..3 {
        cluster.kill(i);
    }
    cluster.start_all().expect("restarting every node");
    leader(&cluster).await;

    let stored: BTreeMap<String, String> =
        wait_for(WRITE, "a linearizable read of /crash/ after the restart", || async {
            let (kvs, _) = all.get(b"/crash/", true).await.ok()?;
            Some(
                kvs.iter()
                    .map(|kv| {
                        (
                            String::from_utf8_lossy(&kv.key).into_owned(),
                            String::from_utf8_lossy(&kv.value).into_owned(),
                        )
                    })
                    .collect(),
            )
        })
        .await;
    let missing: Vec<&String> = written.keys().filter(|k| stored.get(*k) != written.get(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged keys lost or changed, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(stored.len(), written.len());
}
