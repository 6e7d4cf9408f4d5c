//! A log written by an earlier version (JSON entries) still loads, mixed with new entries; batches are bounded.

use openraft::{CommittedLeaderId, EntryPayload, LogId};

use super::*;
use crate::dcs::disk::SledDisk;
use crate::dcs::types::{Command, Op, Txn};

fn entry(index: u64, value_len: usize) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(2, 1), index),
        payload: EntryPayload::Normal(Command::Txn(Txn {
            success: vec![Op::Put {
                key: format!("k{index}").into_bytes(),
                value: vec![index as u8; value_len],
                lease: 0,
            }],
            ..Txn::default()
        })),
    }
}

fn store() -> (tempfile::TempDir, Arc<SledDisk>, LogStore) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let disk = Arc::new(SledDisk::open(dir.path()).expect("opening the store"));
    let store = LogStore::new(disk.clone());
    (dir, disk, store)
}

#[tokio::test]
async fn old_json_entries_still_load_next_to_new_ones() {
    let (dir, disk, _) = store();
    // Entries 1-3 as an earlier version wrote them (and its JSON vote), entries 4-5 as this one does.
    let json: Vec<(u64, Vec<u8>)> = (1..=3)
        .map(|i| (i, serde_json::to_vec(&entry(i, 10)).expect("JSON")))
        .collect();
    disk.append(&json).expect("writing JSON entries");
    let vote = Vote::new_committed(2, 1);
    disk.write_meta(VOTE, &serde_json::to_vec(&vote).expect("JSON"))
        .expect("writing the vote");
    let compact: Vec<(u64, Vec<u8>)> = (4..=5)
        .map(|i| (i, crate::dcs::codec::encode(&entry(i, 10)).expect("encoding")))
        .collect();
    disk.append(&compact).expect("writing new entries");
    disk.sync().expect("sync");
    drop(disk);

    // Reopened as after an upgrade.
    let disk = Arc::new(SledDisk::open(dir.path()).expect("reopening"));
    let mut store = LogStore::new(disk);
    let state = store.get_log_state().await.expect("log state");
    assert_eq!(state.last_log_id, Some(entry(5, 10).log_id));
    assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
    let read = store.try_get_log_entries(1..6).await.expect("reading");
    assert_eq!(read, (1..=5).map(|i| entry(i, 10)).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_batch_stops_at_the_byte_budget_but_never_returns_nothing() {
    let (_dir, disk, mut store) = store();
    let budget = crate::dcs::limits::RAFT_BATCH_BYTES as usize;
    // Entries of 700 KiB (two fit in 2 MiB), then one larger than the whole budget.
    let mut rows: Vec<(u64, Vec<u8>)> = (1..=10)
        .map(|i| (i, crate::dcs::codec::encode(&entry(i, 700 << 10)).expect("encoding")))
        .collect();
    rows.push((11, crate::dcs::codec::encode(&entry(11, budget + 1)).expect("encoding")));
    disk.append(&rows).expect("writing");
    let batch = store.limited_get_log_entries(1, 12).await.expect("reading");
    assert_eq!(
        batch.len(),
        2,
        "two 700 KiB entries fit in {budget} bytes, a third does not"
    );
    assert_eq!(batch[0], entry(1, 700 << 10));
    let batch = store.limited_get_log_entries(11, 12).await.expect("reading");
    assert_eq!(batch.len(), 1, "an entry over the budget still goes alone");
    let all = store.try_get_log_entries(1..12).await.expect("reading");
    assert_eq!(all.len(), 11, "unlimited reads are not cut");
}
