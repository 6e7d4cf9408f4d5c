//! DCS leases on real clusters: expiry never early, eventual expiry, revoke, and keepalives across a leader change.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, get_value, leader, start_cluster};

const RPC: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_key_outlives_ttl_from_last_keepalive_then_expires() {
    let cluster = start_cluster(3, "");
    leader(&cluster).await;
    let dcs = client(&cluster, None, RPC);
    let ttl = Duration::from_millis(1500);
    let (id, granted) = dcs.lease_grant(ttl).await.expect("granting a lease");
    assert_eq!(granted, ttl);
    dcs.put(b"/lease/k", b"held", id)
        .await
        .expect("putting a key bound to the lease");

    // Keep the lease alive for a while; T = the instant just before sending the last successful keepalive.
    let mut pace = tokio::time::interval(Duration::from_millis(300));
    let mut last_send = None;
    for _ in 0..6 {
        pace.tick().await;
        let sent = Instant::now();
        if let Ok(Some(renewed)) = dcs.lease_keepalive(id).await {
            assert_eq!(renewed, ttl);
            last_send = Some(sent);
        }
    }
    let t = last_send.expect("at least one keepalive was acknowledged");
    let safe_until = t + ttl;

    // Safety: any read that COMPLETED before T + ttl must still see the key. Liveness: it goes away eventually.
    let deadline = safe_until + Duration::from_secs(5);
    let (mut present_early, mut gone) = (0usize, false);
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..1000 {
        poll.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        let Ok((kvs, _)) = dcs.get(b"/lease/k", false).await else {
            continue;
        };
        let answered = Instant::now();
        if kvs.is_empty() {
            assert!(
                answered >= safe_until,
                "the key vanished {:?} before T + ttl",
                safe_until.saturating_duration_since(answered)
            );
            gone = true;
            break;
        }
        if answered < safe_until {
            present_early += 1;
        }
    }
    assert!(
        gone,
        "the key was still present 5 s after T + ttl ({present_early} reads before T + ttl saw it)"
    );
    assert_eq!(
        dcs.lease_keepalive(id).await.expect("keepalive after expiry"),
        None,
        "the expired lease is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_revoke_deletes_its_keys_at_once() {
    let cluster = start_cluster(3, "");
    leader(&cluster).await;
    let dcs = client(&cluster, None, RPC);
    let (id, _) = dcs
        .lease_grant(Duration::from_secs(60))
        .await
        .expect("granting a lease");
    dcs.put(b"/revoke/a", b"1", id).await.expect("put a");
    dcs.put(b"/revoke/b", b"2", id).await.expect("put b");
    dcs.put(b"/revoke/unbound", b"3", 0).await.expect("put unbound");
    let (kvs, _) = dcs.get(b"/revoke/a", false).await.expect("get a");
    assert_eq!(kvs[0].lease, id, "the key records its lease");

    assert!(
        dcs.lease_revoke(id).await.expect("revoking"),
        "revoke of a live lease reports it found"
    );
    let (kvs, _) = dcs.get(b"/revoke/", true).await.expect("reading after the revoke");
    let keys: Vec<String> = kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    assert_eq!(
        keys,
        vec!["/revoke/unbound".to_string()],
        "only the unbound key remains"
    );

    assert_eq!(dcs.lease_keepalive(id).await.expect("keepalive call"), None);
    assert!(
        !dcs.lease_revoke(id).await.expect("second revoke call"),
        "a second revoke finds nothing"
    );
    assert!(
        dcs.put(b"/revoke/late", b"x", id).await.is_err(),
        "a put bound to a revoked lease must be refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_carry_a_lease_across_a_leader_change() {
    let mut cluster = start_cluster(3, "");
    let old_leader = leader(&cluster).await;
    let dcs = Arc::new(client(&cluster, None, Duration::from_secs(2)));
    let ttl = Duration::from_millis(3000);
    let (id, _) = dcs.lease_grant(ttl).await.expect("granting a lease");
    dcs.put(b"/ka/k", b"held", id)
        .await
        .expect("putting a key bound to the lease");

    // Keepalives every 200 ms through a client of every member, until told to stop (bounded: at most 300 rounds).
    let stop = Arc::new(AtomicBool::new(false));
    let keeper = tokio::spawn({
        let (dcs, stop) = (dcs.clone(), stop.clone());
        async move {
            let mut pace = tokio::time::interval(Duration::from_millis(200));
            let (mut last_ok, mut max_gap, mut lost) = (Instant::now(), Duration::ZERO, false);
            for _ in 0..300 {
                pace.tick().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let sent = Instant::now();
                match dcs.lease_keepalive(id).await {
                    Ok(Some(_)) => {
                        max_gap = max_gap.max(sent - last_ok);
                        last_ok = sent;
                    }
                    Ok(None) => lost = true,
                    Err(_) => {}
                }
            }
            (max_gap, lost)
        }
    });

    cluster.kill(old_leader);
    let new_leader = leader(&cluster).await;
    assert_ne!(new_leader, old_leader);
    let until = Instant::now() + 2 * ttl;
    let (mut reads, mut absent) = (0usize, Vec::new());
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    for _ in 0..200 {
        poll.tick().await;
        if Instant::now() >= until {
            break;
        }
        if let Ok((kvs, _)) = dcs.get(b"/ka/k", false).await {
            reads += 1;
            if kvs.is_empty() {
                absent.push(reads);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (max_gap, lost) = keeper.await.expect("the keepalive task");
    assert!(
        absent.is_empty(),
        "the key was absent at reads {absent:?} of {reads} (largest keepalive gap {max_gap:?})"
    );
    assert!(
        !lost,
        "a keepalive reported the lease gone (largest keepalive gap {max_gap:?})"
    );
    assert!(reads > 0, "no read succeeded after the leader change");
    let last = get_value(&dcs, "/ka/k", Duration::from_secs(10)).await;
    assert_eq!(last.as_deref(), Some("held"), "the key is present at the end");
}

/// A lease refreshed only directly on the voters (`DcsClient::lease_refresh_quorum`, no Raft entry) with a TTL
/// about as short as an election: the leader dies, the lease and its key outlive the election, a client that reaches
/// only one member earns nothing, and once the refreshes stop the lease expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_refreshes_carry_a_short_lease_across_a_leader_change() {
    let mut cluster = start_cluster(3, "");
    let old_leader = leader(&cluster).await;
    let dcs = Arc::new(client(&cluster, None, Duration::from_secs(2)));
    let ttl = Duration::from_millis(600);
    let (id, _) = dcs.lease_grant(ttl).await.expect("granting a lease");
    dcs.put(b"/direct/k", b"held", id)
        .await
        .expect("putting a key bound to the lease");
    let survivor = (old_leader + 1) % 3;
    let lonely = client(&cluster, Some(&[survivor]), Duration::from_secs(2));

    let stop = Arc::new(AtomicBool::new(false));
    let keeper = tokio::spawn({
        let (dcs, stop) = (dcs.clone(), stop.clone());
        async move {
            let mut pace = tokio::time::interval(Duration::from_millis(100));
            let (mut last_ok, mut max_gap, mut oks) = (Instant::now(), Duration::ZERO, 0usize);
            for _ in 0..400 {
                pace.tick().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let sent = Instant::now();
                if dcs.lease_refresh_quorum(id, Duration::from_millis(100)).await.is_some() {
                    max_gap = max_gap.max(sent - last_ok);
                    last_ok = sent;
                    oks += 1;
                }
            }
            (max_gap, oks)
        }
    });
    // Only refreshes answered by a majority count: one member alone is never enough.
    assert_eq!(lonely.lease_refresh_quorum(id, Duration::from_millis(500)).await, None);

    cluster.kill(old_leader);
    let new_leader = leader(&cluster).await;
    assert_ne!(new_leader, old_leader);
    let until = Instant::now() + 5 * ttl;
    let (mut reads, mut absent) = (0usize, Vec::new());
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    for _ in 0..400 {
        poll.tick().await;
        if Instant::now() >= until {
            break;
        }
        if let Ok((kvs, _)) = dcs.get(b"/direct/k", false).await {
            reads += 1;
            if kvs.is_empty() {
                absent.push(reads);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (max_gap, oks) = keeper.await.expect("the refresh task");
    assert!(
        absent.is_empty(),
        "the key was absent at reads {absent:?} of {reads} (largest refresh gap {max_gap:?}, {oks} refreshes)"
    );
    assert!(reads > 0, "no read succeeded after the leader change");
    assert!(oks > 0, "no direct refresh reached a quorum");

    // Liveness: without refreshes the lease expires (a quorum of the two members left agrees).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut gone = false;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    for _ in 0..400 {
        poll.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        if let Ok((kvs, _)) = dcs.get(b"/direct/k", false).await {
            if kvs.is_empty() {
                gone = true;
                break;
            }
        }
    }
    assert!(gone, "the lease did not expire once its refreshes stopped");
}
