//! DCS watches on real clusters: gap-free ordered delivery across a leader kill, replay from a revision, and explicit
//! compaction after a member restored from its snapshot.

mod common;

use std::time::{Duration, Instant};

use common::{client, leader, put_acked, start_cluster, wait_until};
use pgha::dcs::client::WatchMessage;
use pgha::dcs::types::{Event, EventKind};
use tokio::sync::mpsc::Receiver;

const WRITE: Duration = Duration::from_secs(20);

fn value(e: &Event) -> String {
    String::from_utf8_lossy(&e.kv.value).into_owned()
}

/// Receives events until one at `last_revision` or later arrived (deadline `timeout`); panics on `Compacted`.
async fn collect_until(rx: &mut Receiver<WatchMessage>, last_revision: i64, timeout: Duration) -> Vec<Event> {
    let deadline = Instant::now() + timeout;
    let mut events: Vec<Event> = Vec::new();
    for _ in 0..100_000 {
        if events.last().is_some_and(|e| e.revision() >= last_revision) {
            return events;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, rx.recv()).await {
            Ok(Some(WatchMessage::Events(batch))) => events.extend(batch),
            Ok(Some(WatchMessage::Compacted { revision })) => panic!("unexpected Compacted at {revision}"),
            Ok(None) => panic!("the watch closed after {} events", events.len()),
            Err(_) => break,
        }
    }
    panic!(
        "the watch did not reach revision {last_revision} within {timeout:?} (last seen {:?})",
        events.last().map(Event::revision)
    );
}

/// Each revision exactly once, consecutive (the test's writer is the only writer, so no revision is elsewhere).
fn assert_consecutive(events: &[Event]) {
    for pair in events.windows(2) {
        assert_eq!(
            pair[1].revision(),
            pair[0].revision() + 1,
            "gap or reorder between revisions {} and {}",
            pair[0].revision(),
            pair[1].revision()
        );
    }
}

/// The values written as /w/NNN, with the adjacent duplicates of retried puts collapsed.
fn written_values(events: &[Event]) -> Vec<String> {
    let mut values: Vec<String> = events
        .iter()
        .filter(|e| e.kv.key.starts_with(b"/w/0") || e.kv.key.starts_with(b"/w/1"))
        .map(value)
        .collect();
    values.dedup();
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_is_ordered_and_gap_free_across_a_leader_kill_and_replays_from_a_revision() {
    let mut cluster = start_cluster(3, "");
    let first_leader = leader(&cluster).await;
    // Leader first: the watch stream starts on the member that will be killed, so it must resume elsewhere.
    let order: Vec<usize> = std::iter::once(first_leader)
        .chain((0..3).filter(|i| *i != first_leader))
        .collect();
    let dcs = std::sync::Arc::new(client(&cluster, Some(&order), Duration::from_secs(5)));
    let mut rx = dcs.watch(b"/w/", true, 0);

    // The watch starts "from now": re-put a sentinel until it shows up, so it is live before the writer starts.
    let mut first: Option<Event> = None;
    for attempt in 0..20 {
        put_acked(&dcs, "/w/start", &attempt.to_string(), WRITE).await;
        if let Ok(Some(WatchMessage::Events(batch))) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            first = batch.into_iter().next();
            break;
        }
    }
    let first = first.expect("the watch delivered the sentinel");
    assert_eq!(first.kind, EventKind::Put);

    let (killed_tx, killed_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn({
        let dcs = dcs.clone();
        async move {
            let mut acked = Vec::new();
            let mut halfway = Some(killed_tx);
            for i in 0..150 {
                let revision = put_acked(&dcs, &format!("/w/{i:03}"), &i.to_string(), WRITE).await;
                acked.push((i, revision));
                if i == 49 {
                    if let Some(tx) = halfway.take() {
                        let _ = tx.send(());
                    }
                }
            }
            acked
        }
    });
    killed_rx.await.expect("the writer reached 50 puts");
    cluster.kill(first_leader);
    let acked = writer.await.expect("the writer task");
    let last_revision = acked.last().map(|(_, r)| *r).expect("150 acknowledged puts");

    let mut events = vec![first];
    events.extend(collect_until(&mut rx, last_revision, Duration::from_secs(30)).await);
    assert!(events.iter().all(|e| e.kind == EventKind::Put));
    assert_consecutive(&events);
    let expected: Vec<String> = (0..150).map(|i: i32| i.to_string()).collect();
    assert_eq!(written_values(&events), expected, "every value, in write order");
    for (i, revision) in &acked {
        let at = events
            .iter()
            .find(|e| e.revision() == *revision)
            .expect("an event at each acknowledged revision");
        assert_eq!(value(at), i.to_string(), "event at acknowledged revision {revision}");
    }

    // A new watch from revision R replays the history from exactly R.
    let (_, from) = acked[100];
    let replay_client = client(&cluster, None, Duration::from_secs(5));
    let mut replay = replay_client.watch(b"/w/", true, from);
    let replayed = collect_until(&mut replay, last_revision, Duration::from_secs(30)).await;
    assert_eq!(
        replayed.first().map(Event::revision),
        Some(from),
        "replay starts at the requested revision"
    );
    assert_consecutive(&replayed);
    let expected: Vec<String> = (100..150).map(|i: i32| i.to_string()).collect();
    assert_eq!(written_values(&replayed), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_on_a_member_restored_from_its_snapshot_reports_compaction() {
    let mut cluster = start_cluster(3, "snapshot_logs = 100");
    let first_leader = leader(&cluster).await;
    let dcs = client(&cluster, None, Duration::from_secs(5));
    let mut last_revision = 0;
    for k in 0..300 {
        last_revision = put_acked(&dcs, &format!("/snap/{k:03}"), "x", WRITE).await;
    }

    let restarted = (0..3).find(|i| *i != first_leader).expect("a follower");
    cluster.kill(restarted);
    cluster.start(restarted).expect("restarting the follower");
    let only = client(&cluster, Some(&[restarted]), Duration::from_secs(2));
    wait_until(Duration::from_secs(30), "the restarted member to catch up", || async {
        only.get_local(b"/snap/", true)
            .await
            .is_ok_and(|(kvs, revision)| revision >= last_revision && kvs.len() == 300)
    })
    .await;

    // Its history starts at its snapshot: an old start revision is refused explicitly, and the watch then ends.
    let mut rx = only.watch(b"/snap/", true, 1);
    let msg = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a watch answer in time");
    match msg {
        Some(WatchMessage::Compacted { revision }) => {
            assert!(
                revision >= 1 && revision <= last_revision,
                "compacted at {revision}, last write {last_revision}"
            )
        }
        other => panic!("expected Compacted from the restored member, got {other:?}"),
    }
    let end = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the watch to close in time");
    assert!(end.is_none(), "the watch must close after Compacted, got {end:?}");

    // A member that never restarted still holds the whole history.
    let kept = client(&cluster, Some(&[first_leader]), Duration::from_secs(2));
    let mut full = kept.watch(b"/snap/", true, 1);
    let events = collect_until(&mut full, 1, Duration::from_secs(10)).await;
    assert_eq!(events.first().map(Event::revision), Some(1));
}
