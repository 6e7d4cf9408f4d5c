//! `[dcs.limits]` on real `pgha run` members: transactions over each limit are refused with an error naming it
//! (through the leader and through followers) while the cluster keeps committing; a bogus snapshot chunk is
//! refused; and a workload of values just under the limit replicates to every member, one restarted meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::{client, leader, put_acked, start_cluster, wait_until};
use pgha::dcs::client::{ClientError, DcsClient};
use pgha::dcs::types::{Command, Compare, CompareTarget, Op, Txn, TypeConfig};
use tonic::Code;

const WRITE: Duration = Duration::from_secs(20);
/// Quota of the first test's cluster: a few large values fill it.
const QUOTA: u64 = 8 << 20;

fn put(key: &str, value_len: usize) -> Op {
    Op::Put {
        key: key.as_bytes().to_vec(),
        value: vec![b'v'; value_len],
        lease: 0,
    }
}

fn txn(compares: usize, success: Vec<Op>) -> Txn {
    Txn {
        compares: (0..compares)
            .map(|i| Compare {
                key: format!("/l/c{i}").into_bytes(),
                target: CompareTarget::Absent,
            })
            .collect(),
        success,
        failure: Vec::new(),
    }
}

/// Each member's revision by a serializable (local) read.
async fn revisions(clients: &[DcsClient]) -> Vec<i64> {
    let mut out = Vec::new();
    for c in clients {
        out.push(c.get_local(b"/l/", true).await.map(|(_, rev)| rev).unwrap_or(-1));
    }
    out
}

/// Waits until every member applied `revision`.
async fn all_at_least(clients: &[DcsClient], revision: i64, timeout: Duration, what: &str) {
    wait_until(timeout, what, || async {
        revisions(clients).await.iter().all(|r| *r >= revision)
    })
    .await;
}

fn refused(result: Result<pgha::dcs::client::TxnOutcome, ClientError>) -> (Code, String) {
    match result {
        Err(ClientError::Rejected { code, message, .. }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_over_each_limit_are_refused_and_the_cluster_keeps_committing() {
    let cluster = start_cluster(3, &format!("\n[dcs.limits]\nmax_state_bytes = {QUOTA}\n"));
    let leader = leader(&cluster).await;
    let via: Vec<DcsClient> = (0..3)
        .map(|i| client(&cluster, Some(&[i]), Duration::from_secs(10)))
        .collect();
    let mut last = put_acked(&via[0], "/l/start", "x", WRITE).await;

    let ops = |n: usize| (0..n).map(|i| put(&format!("/l/op{i}"), 1)).collect::<Vec<_>>();
    // (what, transaction, code, words the message must hold); defaults: key 4096, value 1 MiB, 128 ops, 1.5 MiB.
    let cases: Vec<(&str, Txn, Code, &str)> = vec![
        (
            "a key of 4097 bytes",
            txn(0, vec![put(&format!("/l/{}", "k".repeat(4094)), 1)]),
            Code::InvalidArgument,
            "exceeds dcs.limits.max_key_bytes (4096)",
        ),
        (
            "a value of 1 MiB + 1",
            txn(0, vec![put("/l/big", (1 << 20) + 1)]),
            Code::InvalidArgument,
            "value of 1048577 bytes for key \"/l/big\" exceeds dcs.limits.max_value_bytes (1048576)",
        ),
        (
            "129 operations",
            txn(29, ops(100)),
            Code::InvalidArgument,
            "transaction of 129 operations (compares + success + failure) exceeds dcs.limits.max_txn_ops (128)",
        ),
        (
            "two values of 800 kB",
            txn(0, vec![put("/l/a", 800_000), put("/l/b", 800_000)]),
            Code::ResourceExhausted,
            "exceeds dcs.limits.max_request_bytes (1572864)",
        ),
        (
            "a 4 MiB message",
            txn(0, vec![put("/l/huge", 4 << 20)]),
            Code::OutOfRange,
            "decoded message length too large",
        ),
    ];
    for (i, member) in via.iter().enumerate() {
        let role = if i == leader { "leader" } else { "follower" };
        for (what, t, code, words) in &cases {
            let (got_code, message) = refused(member.txn(t.clone()).await);
            assert_eq!(got_code, *code, "{what} via node{} ({role}): {message}", i + 1);
            assert!(message.contains(words), "{what} via node{} ({role}): {message}", i + 1);
            // Refused means nothing was written, and the cluster still commits right away.
            assert!(
                revisions(&via).await.iter().all(|r| *r <= last),
                "{what} changed the revision"
            );
            last = put_acked(member, "/l/after", what, WRITE).await;
            all_at_least(
                &via,
                last,
                WRITE,
                &format!("every member to apply the write after {what}"),
            )
            .await;
        }
    }

    // The quota: 1 MiB values until the state would pass 8 MiB; deletes still pass, then there is room again.
    let value = vec![b'q'; 1 << 20];
    let mut stored = 0;
    let quota_error = loop {
        assert!(stored < 16, "16 MiB written under an 8 MiB quota");
        match via[stored % 3].put(format!("/l/q{stored}").as_bytes(), &value, 0).await {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert!(
        (6..=8).contains(&stored),
        "{stored} values of 1 MiB under an 8 MiB quota: {quota_error:?}"
    );
    let (code, message) = refused(Err(quota_error));
    assert_eq!(code, Code::ResourceExhausted, "{message}");
    assert!(
        message.contains("over dcs.limits.max_state_bytes (8388608)"),
        "{message}"
    );
    assert!(via[1].delete(b"/l/q", true).await.expect("a delete passes a full DCS") >= 6);
    last = via[2]
        .put(b"/l/q-again", &value, 0)
        .await
        .expect("room again after the delete");
    all_at_least(&via, last, WRITE, "every member to apply the last write").await;

    // A snapshot chunk far past anything received is refused before openraft allocates for it; one that does not
    // continue the snapshot being received is answered with a mismatch (a real leader restarts from offset 0).
    let channel = via[0].channel(&via[0].endpoints()[0]).expect("a channel");
    let mut raft = pgha::dcs::channel::raft_client(channel);
    let chunk = |offset: u64| {
        let rpc = openraft::raft::InstallSnapshotRequest::<TypeConfig> {
            vote: openraft::Vote::new_committed(1, 1),
            meta: openraft::SnapshotMeta {
                last_log_id: None,
                last_membership: Default::default(),
                snapshot_id: "bogus".into(),
            },
            offset,
            data: vec![0; 16],
            done: false,
        };
        pgha::proto::RaftBytes {
            data: pgha::dcs::codec::encode(&rpc).expect("encoding"),
        }
    };
    let status = raft
        .install_snapshot(chunk(1 << 40))
        .await
        .expect_err("a chunk at 1 TiB");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("past the largest snapshot"), "{status:?}");
    let reply = raft
        .install_snapshot(chunk(4096))
        .await
        .expect("an answer")
        .into_inner();
    let answer: Result<
        openraft::raft::InstallSnapshotResponse<u64>,
        openraft::error::RaftError<u64, openraft::error::InstallSnapshotError>,
    > = pgha::dcs::codec::decode(&reply.data).expect("a Raft reply");
    assert!(
        matches!(
            answer,
            Err(openraft::error::RaftError::APIError(
                openraft::error::InstallSnapshotError::SnapshotMismatch(_)
            ))
        ),
        "{answer:?}"
    );
    last = put_acked(&via[0], "/l/end", "x", WRITE).await;
    all_at_least(
        &via,
        last,
        WRITE,
        "every member to apply a write after the bogus chunks",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_just_under_the_limit_replicate_to_every_member_and_one_restarted_catches_up() {
    // Frequent snapshots: the restarted member may well be sent one (multi-chunk: the state is ~8 MiB).
    let mut cluster = start_cluster(3, "snapshot_logs = 100\n");
    let first = leader(&cluster).await;
    let via: Vec<DcsClient> = (0..3)
        .map(|i| client(&cluster, Some(&[i]), Duration::from_secs(10)))
        .collect();
    let writer = std::sync::Arc::new(client(&cluster, None, Duration::from_secs(10)));
    let follower = (first + 1) % 3;
    // Just under max_value_bytes; eight keys keep the state (~8 MiB) far below the quota.
    let value_len = (1 << 20) - 64;
    // Enough that the leader snapshots and purges its log past where the killed member stopped.
    const PUTS: usize = 240;
    const WRITERS: usize = 4;
    let started = Instant::now();
    let mut highest = 0;
    let mut acked = 0;
    for round in 0..PUTS / WRITERS {
        if round == PUTS / WRITERS / 10 {
            let status = writer
                .status_of(&writer.endpoints()[follower], Duration::from_secs(2))
                .await;
            let index = status.map(|s| s.last_log_index).unwrap_or_default();
            eprintln!("node{} killed at log index {index}", follower + 1);
            cluster.kill(follower);
        }
        if round == PUTS / WRITERS * 9 / 10 {
            // Once the leader purged its log past that index (it keeps 100 entries behind a snapshot), the
            // restarted member is sent the snapshot: 32 chunks of 256 KiB.
            if let Ok(s) = writer
                .status_of(&writer.endpoints()[first], Duration::from_secs(2))
                .await
            {
                eprintln!(
                    "restarted with the leader's snapshot at {} of {}",
                    s.snapshot_index, s.last_log_index
                );
            }
            cluster.start(follower).expect("restarting the follower");
        }
        // Several writes in flight at once, so the leader has many large entries to send in one go.
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let writer = writer.clone();
                let key = format!("/l/v{}", (round * WRITERS + w) % 8);
                let value = vec![(round % 251) as u8; value_len];
                tokio::spawn(async move { writer.put(key.as_bytes(), &value, 0).await })
            })
            .collect();
        for task in tasks {
            let rev = task
                .await
                .expect("the writer task")
                .expect("a put of a value under the limit");
            highest = highest.max(rev);
            acked += 1;
        }
    }
    assert_eq!(acked, PUTS);
    eprintln!(
        "{PUTS} puts of {value_len} bytes acknowledged in {:?} (node{} down for 80% of them)",
        started.elapsed(),
        follower + 1
    );
    all_at_least(
        &via,
        highest,
        Duration::from_secs(60),
        &format!(
            "every member, node{} restarted, to apply revision {highest}",
            follower + 1
        ),
    )
    .await;
    // The same values everywhere (local views, no forwarding).
    let (reference, _) = via[first].get_local(b"/l/v", true).await.expect("the leader's view");
    assert_eq!(reference.len(), 8);
    for (i, member) in via.iter().enumerate() {
        let (kvs, _) = member.get_local(b"/l/v", true).await.expect("a member's view");
        assert!(kvs == reference, "node{}'s values differ from the leader's", i + 1);
    }
}

/// Commands on the wire are what the codec encodes (a guard against a silent format change).
#[test]
fn a_command_encodes_in_its_size() {
    let cmd = Command::Txn(txn(0, vec![put("/l/k", 1 << 20)]));
    let len = pgha::dcs::codec::encode(&cmd).expect("encoding").len();
    assert!(len < (1 << 20) + 64, "{len}");
}
