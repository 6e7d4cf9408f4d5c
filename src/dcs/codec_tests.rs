//! Round trips of every type that travels or is stored in the codec format, old JSON still read, and sizes.

use std::collections::{BTreeMap, BTreeSet};

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership, Vote};

use super::*;
use crate::dcs::kv::KvState;
use crate::dcs::types::{Command, CommandResult, Compare, CompareTarget, ExpiredLease, Op, PghaNode, Txn, TypeConfig};

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(3, 7), index)
}

fn put_txn(value_len: usize) -> Command {
    // Not a run of one byte: a JSON number list of varied bytes is what a real value costs.
    let value: Vec<u8> = (0..value_len).map(|i| (i * 31 % 251) as u8).collect();
    Command::Txn(Txn {
        compares: vec![Compare {
            key: b"/pgha/c/leader".to_vec(),
            target: CompareTarget::ModRevision(-1),
        }],
        success: vec![
            Op::Put {
                key: b"/pgha/c/members/db1".to_vec(),
                value,
                lease: 42,
            },
            Op::Delete {
                key: b"/pgha/c/commands/".to_vec(),
                prefix: true,
            },
        ],
        failure: vec![],
    })
}

fn membership() -> Membership<u64, PghaNode> {
    let nodes: BTreeMap<u64, PghaNode> = [1u64, 2, 3]
        .into_iter()
        .map(|id| {
            let node = PghaNode {
                name: format!("db{id}"),
                addr: format!("10.0.0.{id}:7400"),
            };
            (id, node)
        })
        .collect();
    Membership::new(vec![[1u64, 2, 3].into_iter().collect::<BTreeSet<u64>>()], nodes)
}

fn entries() -> Vec<Entry<TypeConfig>> {
    vec![
        Entry {
            log_id: log_id(1),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(2),
            payload: EntryPayload::Membership(membership()),
        },
        Entry {
            log_id: log_id(3),
            payload: EntryPayload::Normal(put_txn(1000)),
        },
        Entry {
            log_id: log_id(4),
            payload: EntryPayload::Normal(Command::LeaseExpire {
                leases: vec![ExpiredLease {
                    id: 5,
                    refreshed_index: 9,
                }],
            }),
        },
    ]
}

#[test]
fn entries_round_trip_and_old_json_entries_still_decode() {
    for entry in entries() {
        let bytes = encode(&entry).expect("encoding");
        assert_eq!(bytes[0], POSTCARD_TAG);
        assert_eq!(encoded_len(&entry).expect("sizing"), bytes.len());
        let (back, format): (Entry<TypeConfig>, _) = decode_with_format(&bytes).expect("decoding");
        assert_eq!((back, format), (entry.clone(), Format::Postcard));
        // What earlier versions stored: plain JSON.
        let json = serde_json::to_vec(&entry).expect("JSON");
        let (back, format): (Entry<TypeConfig>, _) = decode_with_format(&json).expect("decoding JSON");
        assert_eq!((back, format), (entry, Format::Json));
    }
}

#[test]
fn raft_messages_round_trip() {
    let vote = Vote::new_committed(3, 7);
    let append = AppendEntriesRequest::<TypeConfig> {
        vote,
        prev_log_id: Some(log_id(0)),
        entries: entries(),
        leader_commit: Some(log_id(2)),
    };
    let back: AppendEntriesRequest<TypeConfig> = decode(&encode(&append).expect("encoding")).expect("decoding");
    assert_eq!(back.entries, append.entries);
    assert_eq!(
        (back.vote, back.prev_log_id, back.leader_commit),
        (vote, append.prev_log_id, append.leader_commit)
    );

    let chunk = InstallSnapshotRequest::<TypeConfig> {
        vote,
        meta: SnapshotMeta {
            last_log_id: Some(log_id(9)),
            last_membership: StoredMembership::new(Some(log_id(2)), membership()),
            snapshot_id: "3-7-9-0".into(),
        },
        offset: 262_144,
        data: vec![7; 1000],
        done: false,
    };
    let back: InstallSnapshotRequest<TypeConfig> = decode(&encode(&chunk).expect("encoding")).expect("decoding");
    assert_eq!(
        (back.meta, back.offset, back.data, back.done),
        (chunk.meta, 262_144, chunk.data, false)
    );

    let vote_req = VoteRequest::new(vote, Some(log_id(4)));
    let back: VoteRequest<u64> = decode(&encode(&vote_req).expect("encoding")).expect("decoding");
    assert_eq!(back, vote_req);

    // Replies are JSON (service.rs); both sides read them through `decode`.
    let reply: Result<AppendEntriesResponse<u64>, openraft::error::RaftError<u64>> = Ok(AppendEntriesResponse::Success);
    let back: Result<AppendEntriesResponse<u64>, openraft::error::RaftError<u64>> =
        decode(&serde_json::to_vec(&reply).expect("JSON")).expect("decoding");
    assert_eq!(back, reply);
    let result = CommandResult::Txn {
        succeeded: true,
        revision: 12,
        deleted: 0,
    };
    assert_eq!(
        decode::<CommandResult>(&encode(&result).expect("encoding")).expect("decoding"),
        result
    );
}

#[test]
fn a_state_round_trips_with_its_leases() {
    let mut kv = KvState::default();
    kv.apply(1, &Command::LeaseGrant { ttl_ms: 2000 });
    let Command::Txn(mut txn) = put_txn(10) else {
        unreachable!()
    };
    txn.compares.clear();
    if let Op::Put { lease, .. } = &mut txn.success[0] {
        *lease = 1;
    }
    kv.apply(2, &Command::Txn(txn));
    let bytes = encode(&kv).expect("encoding");
    let mut back: KvState = decode(&bytes).expect("decoding");
    back.recount();
    assert_eq!(back.revision, kv.revision);
    assert_eq!(back.range(b"/pgha/c/", true), kv.range(b"/pgha/c/", true));
    assert_eq!(back.leases().count(), 1);
    assert_eq!(back.state_bytes(), kv.state_bytes());
    // A JSON snapshot of an earlier version reads the same.
    let from_json: KvState = decode(&serde_json::to_vec(&kv).expect("JSON")).expect("decoding JSON");
    assert_eq!(from_json.range(b"/pgha/c/", true), kv.range(b"/pgha/c/", true));
}

#[test]
fn malformed_bytes_are_refused() {
    let mut bytes = encode(&put_txn(10)).expect("encoding");
    bytes.push(0);
    let err = decode::<Command>(&bytes).expect_err("a trailing byte");
    assert!(err.to_string().contains("1 trailing bytes"), "{err}");
    bytes.truncate(bytes.len() - 5);
    assert!(decode::<Command>(&bytes).is_err(), "a truncated entry");
    assert!(decode::<Command>(b"").is_err(), "nothing");
    assert!(decode::<Command>(b"{\"Nope\":1}").is_err(), "unknown JSON");
}

/// The measurement behind the encoding change (`cargo test --lib codec -- --nocapture` prints it).
#[test]
fn a_large_value_costs_its_size_not_three_times_it() {
    for value_len in [100usize, 1 << 20] {
        let entry = Entry::<TypeConfig> {
            log_id: log_id(3),
            payload: EntryPayload::Normal(put_txn(value_len)),
        };
        let json = serde_json::to_vec(&entry).expect("JSON").len();
        let compact = encode(&entry).expect("encoding").len();
        println!("entry with a {value_len}-byte value: JSON {json} bytes, postcard {compact} bytes");
        assert!(
            compact <= value_len + 100,
            "{compact} bytes for a {value_len}-byte value"
        );
        if value_len >= 1 << 20 {
            assert!(json > 3 * value_len, "JSON of a {value_len}-byte value: {json} bytes");
        }
    }
}
