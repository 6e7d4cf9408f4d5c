//! Durable storage behind a small trait of ours, implemented on sled (swappable for redb if sled proves unfit).
//!
//! Contract: writes become durable only at `sync()`; callers sync before acknowledging a Raft append or a vote.

use std::path::Path;

/// Storage failures, with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot open the DCS store at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("DCS store {op} failed: {source}")]
    Io { op: &'static str, source: sled::Error },
}

/// What the Raft log store and the state machine need from a disk.
pub trait RaftDisk: Send + Sync + 'static {
    /// Reads a small metadata value (vote, committed, snapshot, ...).
    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError>;
    /// Writes a metadata value (durable after `sync`).
    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), DiskError>;
    /// Stores log entries by index (durable after `sync`).
    fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), DiskError>;
    /// Entries with `start <= index < end`, in order.
    fn read_range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, DiskError>;
    /// The entry with the highest index.
    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, DiskError>;
    /// Removes every entry with index >= `start` (conflict truncation).
    fn remove_from(&self, start: u64) -> Result<(), DiskError>;
    /// Removes every entry with index <= `end` (purge after a snapshot).
    fn remove_upto(&self, end: u64) -> Result<(), DiskError>;
    /// Makes every previous write durable (fsync).
    fn sync(&self) -> Result<(), DiskError>;
    /// Bytes used on disk.
    fn size_on_disk(&self) -> u64;
}

/// sled-backed [`RaftDisk`]: one db per member, trees `logs` (big-endian index keys) and `meta`.
pub struct SledDisk {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
}

fn io(op: &'static str) -> impl FnOnce(sled::Error) -> DiskError {
    move |source| DiskError::Io { op, source }
}

impl SledDisk {
    /// Opens (or creates) the store under `dir`.
    pub fn open(dir: &Path) -> Result<SledDisk, DiskError> {
        let open_err = |source| DiskError::Open {
            path: dir.display().to_string(),
            source,
        };
        // A small cache: the DCS holds kilobytes of state; sled's 1 GiB default would dominate RSS.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(4 << 20)
            .open()
            .map_err(open_err)?;
        let logs = db.open_tree("logs").map_err(open_err)?;
        let meta = db.open_tree("meta").map_err(open_err)?;
        Ok(SledDisk { db, logs, meta })
    }
}

impl RaftDisk for SledDisk {
    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError> {
        Ok(self.meta.get(key).map_err(io("read meta"))?.map(|v| v.to_vec()))
    }

    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), DiskError> {
        self.meta.insert(key, value).map_err(io("write meta"))?;
        Ok(())
    }

    fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), DiskError> {
        let mut batch = sled::Batch::default();
        for (index, bytes) in entries {
            batch.insert(&index.to_be_bytes(), bytes.as_slice());
        }
        self.logs.apply_batch(batch).map_err(io("append"))
    }

    fn read_range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, DiskError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in self.logs.range(start.to_be_bytes()..end.to_be_bytes()) {
            let (k, v) = item.map_err(io("read log"))?;
            out.push((index_of(&k), v.to_vec()));
        }
        Ok(out)
    }

    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, DiskError> {
        Ok(self
            .logs
            .last()
            .map_err(io("read last log"))?
            .map(|(k, v)| (index_of(&k), v.to_vec())))
    }

    fn remove_from(&self, start: u64) -> Result<(), DiskError> {
        let mut batch = sled::Batch::default();
        for item in self.logs.range(start.to_be_bytes()..) {
            let (k, _) = item.map_err(io("truncate"))?;
            batch.remove(k);
        }
        self.logs.apply_batch(batch).map_err(io("truncate"))
    }

    fn remove_upto(&self, end: u64) -> Result<(), DiskError> {
        let mut batch = sled::Batch::default();
        for item in self.logs.range(..=end.to_be_bytes()) {
            let (k, _) = item.map_err(io("purge"))?;
            batch.remove(k);
        }
        self.logs.apply_batch(batch).map_err(io("purge"))
    }

    fn sync(&self) -> Result<(), DiskError> {
        self.db.flush().map_err(io("flush"))?;
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn index_of(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[8 - n..].copy_from_slice(&key[key.len() - n..]);
    u64::from_be_bytes(bytes)
}
