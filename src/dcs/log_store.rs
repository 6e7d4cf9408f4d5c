//! The Raft log and vote on a [`RaftDisk`]: every append and vote is durable (synced) before it is acknowledged.
//! Entries are stored in the compact `codec` format (older JSON entries are still read); the leader reads at most
//! `limits::RAFT_BATCH_BYTES` of them for one AppendEntries.
// openraft's trait methods return its large StorageError; our helpers share that type on purpose.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, Entry, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::disk::{DiskError, RaftDisk};
use super::types::{LogId, TypeConfig};

type StoreError = StorageError<u64>;

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// Raft log storage of one member. Cheap to clone (shares the disk).
#[derive(Clone)]
pub struct LogStore {
    disk: Arc<dyn RaftDisk>,
}

impl LogStore {
    /// A log store on `disk`.
    pub fn new(disk: Arc<dyn RaftDisk>) -> LogStore {
        LogStore { disk }
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.disk.read_meta(key).map_err(|e| StorageIOError::read(&e))? else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read(&e))?;
        Ok(Some(value))
    }

    async fn set_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StorageIOError::write(&e))?;
        self.disk
            .write_meta(key, &bytes)
            .map_err(|e| StorageIOError::write(&e))?;
        self.sync().await.map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    /// `fsync` on a blocking thread: under heavy disk traffic (PostgreSQL's WAL beside it, a base backup) one can
    /// take hundreds of ms, and a runtime worker stuck in it cannot answer lease refreshes, expiry votes or
    /// heartbeats meanwhile (seen as VIP and Raft heartbeat timeouts during `pgbench -i`).
    async fn sync(&self) -> Result<(), DiskError> {
        let disk = self.disk.clone();
        match tokio::task::spawn_blocking(move || super::metrics::DCS.timed_flush(|| disk.sync())).await {
            Ok(result) => result,
            Err(e) => Err(DiskError::Io {
                op: "sync",
                source: sled::Error::Io(std::io::Error::other(e.to_string())),
            }),
        }
    }
}

fn decode(bytes: &[u8]) -> Result<Entry<TypeConfig>, StoreError> {
    super::codec::decode(bytes).map_err(|e| StorageIOError::read_logs(&e).into())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => x.saturating_add(1),
            Bound::Excluded(x) => *x,
            Bound::Unbounded => u64::MAX,
        };
        let rows = self
            .disk
            .read_range(start, end)
            .map_err(|e| StorageIOError::read_logs(&e))?;
        rows.iter().map(|(_, bytes)| decode(bytes)).collect()
    }

    /// What the leader replicates in one AppendEntries: openraft asks for up to `max_payload_entries` entries
    /// whatever their size; this stops at `RAFT_BATCH_BYTES` so that a run of large values never builds a message
    /// over the Raft message limit (which a follower would refuse forever). Stored sizes bound the sizes on the
    /// wire: both use the same encoding, and an older JSON entry is larger stored than sent.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let budget = usize::try_from(super::limits::RAFT_BATCH_BYTES).unwrap_or(usize::MAX);
        let rows = self
            .disk
            .read_range_limited(start, end, budget)
            .map_err(|e| StorageIOError::read_logs(&e))?;
        rows.iter().map(|(_, bytes)| decode(bytes)).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StoreError> {
        let last_purged_log_id: Option<LogId> = self.meta(LAST_PURGED)?;
        let last = self.disk.last_entry().map_err(|e| StorageIOError::read_logs(&e))?;
        let last_log_id = match last {
            Some((_, bytes)) => Some(decode(&bytes)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StoreError> {
        self.set_meta(VOTE, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StoreError> {
        self.meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StoreError> {
        // Saving `committed` lets a restarted member re-apply its log up to it before any leader exists.
        self.set_meta(COMMITTED, &committed).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StoreError> {
        Ok(self.meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StoreError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        for entry in entries {
            let bytes = super::codec::encode(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            rows.push((entry.log_id.index, bytes));
        }
        self.disk.append(&rows).map_err(|e| StorageIOError::write_logs(&e))?;
        // Durable before acknowledging: an acknowledged entry counts toward a commit quorum.
        let synced = self.sync().await;
        let synced = synced.map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(synced);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StoreError> {
        self.disk
            .remove_from(log_id.index)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.sync().await.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StoreError> {
        // Record the purge point first: a crash in between leaves extra entries, never a hole.
        self.set_meta(LAST_PURGED, &log_id).await?;
        self.disk
            .remove_upto(log_id.index)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "log_store_tests.rs"]
mod tests;
