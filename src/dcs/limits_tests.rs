//! Limit checks, config bounds, and the derived transport limits that must hold every accepted write.

use prost::Message;

use super::*;
use crate::dcs::codec;
use crate::dcs::kv::KvState;
use crate::dcs::types::{Compare, KeyValue};
use crate::proto;

fn put(key: &str, value_len: usize) -> Op {
    Op::Put {
        key: key.as_bytes().to_vec(),
        value: vec![b'v'; value_len],
        lease: 0,
    }
}

fn txn(compares: usize, success: Vec<Op>, failure: Vec<Op>) -> Command {
    Command::Txn(Txn {
        compares: (0..compares)
            .map(|i| Compare {
                key: format!("c{i}").into_bytes(),
                target: CompareTarget::ModRevision(i as i64),
            })
            .collect(),
        success,
        failure,
    })
}

#[test]
fn each_limit_refuses_with_its_name_and_value() {
    let l = Limits::DEFAULT;
    let long_key = "k".repeat(4097);
    let ops = |n: usize| (0..n).map(|i| put(&format!("k{i}"), 1)).collect::<Vec<_>>();
    // (what, command, Ok or the message's distinctive part)
    let table: Vec<(&str, Command, Result<(), &str>)> = vec![
        ("a small put", txn(1, vec![put("k", 10)], vec![]), Ok(())),
        (
            "the largest key",
            txn(0, vec![put(&"k".repeat(4096), 1)], vec![]),
            Ok(()),
        ),
        (
            "a key one byte over",
            txn(0, vec![put(&long_key, 1)], vec![]),
            Err("of 4097 bytes exceeds dcs.limits.max_key_bytes (4096)"),
        ),
        (
            "a long compare key",
            Command::Txn(Txn {
                compares: vec![Compare {
                    key: long_key.clone().into_bytes(),
                    target: CompareTarget::Absent,
                }],
                ..Txn::default()
            }),
            Err("exceeds dcs.limits.max_key_bytes (4096)"),
        ),
        (
            "a long delete prefix",
            txn(
                0,
                vec![],
                vec![Op::Delete {
                    key: long_key.clone().into_bytes(),
                    prefix: true,
                }],
            ),
            Err("exceeds dcs.limits.max_key_bytes (4096)"),
        ),
        ("the largest value", txn(0, vec![put("k", 1 << 20)], vec![]), Ok(())),
        (
            "a value one byte over",
            txn(0, vec![put("k", (1 << 20) + 1)], vec![]),
            Err("value of 1048577 bytes for key \"k\" exceeds dcs.limits.max_value_bytes (1048576)"),
        ),
        (
            "a compared value over",
            Command::Txn(Txn {
                compares: vec![Compare {
                    key: b"k".to_vec(),
                    target: CompareTarget::Value(vec![0; (1 << 20) + 1]),
                }],
                ..Txn::default()
            }),
            Err("exceeds dcs.limits.max_value_bytes"),
        ),
        ("128 operations", txn(28, ops(50), ops(50)), Ok(())),
        (
            "129 operations",
            txn(29, ops(50), ops(50)),
            Err("transaction of 129 operations (compares + success + failure) exceeds dcs.limits.max_txn_ops (128)"),
        ),
        (
            "two large values",
            txn(0, vec![put("a", 800_000), put("b", 800_000)], vec![]),
            Err("exceeds dcs.limits.max_request_bytes (1572864)"),
        ),
        ("a lease grant", Command::LeaseGrant { ttl_ms: 1000 }, Ok(())),
    ];
    for (what, cmd, expected) in table {
        match (l.check_command(&cmd), expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{what}: {e}"),
            (got, expected) => panic!("{what}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn request_and_quota_errors_are_resource_exhausted_the_rest_invalid_argument() {
    let codes = [
        (
            LimitError::Key {
                key: "k".into(),
                len: 1,
                max: 0,
            },
            tonic::Code::InvalidArgument,
        ),
        (LimitError::Ops { ops: 2, max: 1 }, tonic::Code::InvalidArgument),
        (LimitError::Request { bytes: 2, max: 1 }, tonic::Code::ResourceExhausted),
        (
            LimitError::State {
                state: 1,
                growth: 1,
                max: 1,
            },
            tonic::Code::ResourceExhausted,
        ),
    ];
    for (e, code) in codes {
        assert_eq!(tonic::Status::from(e.clone()).code(), code, "{e}");
    }
}

#[test]
fn config_bounds_name_the_key() {
    assert!(
        Limits::DEFAULT.problems().is_empty(),
        "{:?}",
        Limits::DEFAULT.problems()
    );
    assert!(
        Limits::CEILING.problems().is_empty(),
        "{:?}",
        Limits::CEILING.problems()
    );
    // (limits, keys reported)
    let table: Vec<(Limits, Vec<&str>)> = vec![
        (
            Limits {
                max_txn_ops: 0,
                ..Limits::DEFAULT
            },
            vec!["max_txn_ops"],
        ),
        (
            Limits {
                max_request_bytes: 16 << 20,
                ..Limits::DEFAULT
            },
            vec!["max_request_bytes"],
        ),
        (
            Limits {
                max_value_bytes: 2 << 20,
                ..Limits::DEFAULT
            },
            vec!["max_value_bytes"],
        ),
        (
            Limits {
                max_state_bytes: 4 << 20,
                ..Limits::DEFAULT
            },
            vec!["max_state_bytes"],
        ),
        (
            Limits {
                watch_history_bytes: 1 << 20,
                ..Limits::DEFAULT
            },
            vec!["watch_history_bytes"],
        ),
        (
            Limits {
                max_key_bytes: 10,
                max_state_bytes: 2 << 30,
                ..Limits::DEFAULT
            },
            vec!["max_key_bytes", "max_state_bytes"],
        ),
    ];
    for (limits, keys) in table {
        let problems = limits.problems();
        let got: Vec<&str> = problems.iter().map(|p| p.0).collect();
        assert_eq!(got, keys, "{problems:?}");
        assert!(problems.iter().all(|p| !p.1.is_empty() && !p.2.is_empty()));
    }
}

/// The largest transaction a leader accepts, as a command: `max_txn_ops` puts filling `max_request_bytes`.
fn largest_txn(l: &Limits) -> Command {
    let ops = l.max_txn_ops as usize;
    let per_op = (l.max_request_bytes as usize) / ops - 64;
    let mut cmd = txn(0, (0..ops).map(|i| put(&format!("key{i}"), per_op)).collect(), vec![]);
    // Resize the first value until the command is exactly at the limit (a length prefix may change by a byte).
    for _ in 0..8 {
        let len = codec::encoded_len(&cmd).expect("size");
        let Command::Txn(t) = &mut cmd else { unreachable!() };
        let Op::Put { value, .. } = &mut t.success[0] else {
            unreachable!()
        };
        let target = l.max_request_bytes as usize;
        match len.cmp(&target) {
            std::cmp::Ordering::Less => value.resize(value.len() + (target - len), b'v'),
            std::cmp::Ordering::Greater => value.truncate(value.len() - (len - target)),
            std::cmp::Ordering::Equal => return cmd,
        }
    }
    panic!("could not size a transaction to {} bytes", l.max_request_bytes)
}

#[test]
fn transport_limits_hold_everything_the_limits_accept() {
    for l in [Limits::DEFAULT, Limits::CEILING] {
        let cmd = largest_txn(&l);
        l.check_command(&cmd).expect("the largest transaction passes");
        // Its protobuf request fits the client API's gRPC limit (so the clear error above is what a client sees).
        let Command::Txn(t) = &cmd else { unreachable!() };
        let request: proto::TxnRequest = t.clone().into();
        assert!(request.encoded_len() <= l.grpc_request_limit(), "{l:?}");
        // As a log entry it fits the Raft message limit of every member.
        let entry = openraft::Entry::<crate::dcs::types::TypeConfig> {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(u64::MAX, u64::MAX), u64::MAX),
            payload: openraft::EntryPayload::Normal(cmd.clone()),
        };
        let entry_len = codec::encoded_len(&entry).expect("size") as u64;
        assert!(entry_len <= l.max_request_bytes + ENTRY_OVERHEAD, "{entry_len}");
        assert!((entry_len + RAFT_ENVELOPE) as usize <= raft_message_limit());
    }
    assert!((RAFT_BATCH_BYTES + RAFT_ENVELOPE) as usize <= raft_message_limit());
    assert!((SNAPSHOT_CHUNK_BYTES + RAFT_ENVELOPE) as usize <= raft_message_limit());
    assert!(client_reply_limit() >= Limits::DEFAULT.max_reply_bytes());
    assert!(max_snapshot_bytes() >= QUOTA_OVERSHOOT * Limits::CEILING.max_state_bytes);
}

#[test]
fn the_quota_count_bounds_snapshots_and_range_replies() {
    let mut kv = KvState::default();
    kv.apply(1, &Command::LeaseGrant { ttl_ms: 1000 });
    kv.apply(2, &Command::LeaseGrant { ttl_ms: 1000 });
    let mut index = 3;
    for (key_len, value_len, lease) in [(1, 0, 0), (200, 5, 1), (4096, 1 << 16, 2), (30, 1000, 0), (1, 1, 1)] {
        let key = format!("/{}", "k".repeat(key_len));
        let op = Op::Put {
            key: key.into_bytes(),
            value: vec![0xff; value_len],
            lease,
        };
        kv.apply(index, &txn(0, vec![op], vec![]));
        index += 1;
    }
    let counted = kv.state_bytes();
    let mut recounted = kv.clone();
    recounted.recount();
    assert_eq!(recounted.state_bytes(), counted, "incremental and full counts agree");
    let snapshot = codec::encoded_len(&kv).expect("size") as u64;
    assert!(snapshot <= counted + 64, "snapshot {snapshot} > counted {counted}");
    let reply = proto::RangeResponse {
        kvs: kv.range(b"/", true).into_iter().map(Into::into).collect(),
        revision: i64::MAX,
    };
    assert!(
        reply.encoded_len() as u64 <= counted + 64,
        "reply {} > counted {counted}",
        reply.encoded_len()
    );
    // Worst-case revisions (10-byte varints) are covered by the fixed overhead too.
    let kv_max = KeyValue {
        key: vec![1; 10],
        value: vec![2; 10],
        create_revision: i64::MAX,
        mod_revision: i64::MAX,
        version: i64::MAX,
        lease: i64::MAX,
    };
    assert!(proto::KeyValue::from(kv_max.clone()).encoded_len() as u64 + 4 <= kv_cost(10, 10));
    assert!(codec::encoded_len(&kv_max).expect("size") as u64 <= kv_cost(10, 10));
    // Deleting gives the bytes back.
    kv.apply(
        index,
        &txn(
            0,
            vec![Op::Delete {
                key: b"/".to_vec(),
                prefix: true,
            }],
            vec![],
        ),
    );
    kv.apply(index + 1, &Command::LeaseRevoke { id: 1 });
    kv.apply(index + 2, &Command::LeaseRevoke { id: 2 });
    assert_eq!(kv.state_bytes(), 0);
}
