//! Durable storage behind a small trait of ours, implemented on sled (swappable for redb if sled proves unfit).
//!
//! Contract: writes become durable only at `sync()`; callers sync before acknowledging a Raft append or a vote.
//! A snapshot is the exception: `save_snapshot` writes its metadata and data in one atomic batch and syncs it
//! itself, so a crash can never pair new data with an old applied index (or the reverse).

use std::convert::Infallible;
use std::path::Path;

use sled::transaction::TransactionError;

/// Storage failures, with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot open the DCS store at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("DCS store {op} failed: {source}")]
    Io { op: &'static str, source: sled::Error },
}

/// A stored snapshot as (meta, data) bytes.
pub type SnapshotBytes = (Vec<u8>, Vec<u8>);

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
    /// Like `read_range`, stopping before the entry that would take the total past `budget` bytes (but returning
    /// at least one entry): the leader's AppendEntries batches must not read hundreds of large entries.
    fn read_range_limited(&self, start: u64, end: u64, budget: usize) -> Result<Vec<(u64, Vec<u8>)>, DiskError> {
        let mut rows = self.read_range(start, end)?;
        rows.truncate(fitting(rows.iter().map(|(_, b)| b.len()), budget));
        Ok(rows)
    }
    /// The entry with the highest index.
    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, DiskError>;
    /// Removes every entry with index >= `start` (conflict truncation).
    fn remove_from(&self, start: u64) -> Result<(), DiskError>;
    /// Removes every entry with index <= `end` (purge after a snapshot).
    fn remove_upto(&self, end: u64) -> Result<(), DiskError>;
    /// Replaces the stored snapshot with `meta` + `data` in one atomic write, durable when it returns: after a
    /// crash the store holds either this pair or the previous one, never half of each.
    fn save_snapshot(&self, meta: &[u8], data: &[u8]) -> Result<(), DiskError>;
    /// The last saved snapshot as (meta, data), read consistently (never half of a concurrent save).
    fn read_snapshot(&self) -> Result<Option<SnapshotBytes>, DiskError>;
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

/// Keys of the snapshot pair in the `meta` tree (unchanged since before the pair was written atomically, so older
/// stores open as they are).
const SNAPSHOT_META: &str = "snapshot_meta";
const SNAPSHOT_DATA: &str = "snapshot_data";

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

    fn read_range_limited(&self, start: u64, end: u64, budget: usize) -> Result<Vec<(u64, Vec<u8>)>, DiskError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut total = 0usize;
        for item in self.logs.range(start.to_be_bytes()..end.to_be_bytes()) {
            let (k, v) = item.map_err(io("read log"))?;
            total = total.saturating_add(v.len());
            if !out.is_empty() && total > budget {
                break;
            }
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

    fn save_snapshot(&self, meta: &[u8], data: &[u8]) -> Result<(), DiskError> {
        // One batch on one tree: sled recovers a batch all or nothing.
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_DATA, data);
        batch.insert(SNAPSHOT_META, meta);
        self.meta.apply_batch(batch).map_err(io("save snapshot"))?;
        self.sync()
    }

    fn read_snapshot(&self) -> Result<Option<SnapshotBytes>, DiskError> {
        // A (read-only) transaction: a snapshot built in the background may be saved between two plain reads.
        let pair = self
            .meta
            .transaction(|tx| Ok((tx.get(SNAPSHOT_META)?, tx.get(SNAPSHOT_DATA)?)))
            .map_err(|e: TransactionError<Infallible>| match e {
                TransactionError::Storage(source) => DiskError::Io {
                    op: "read snapshot",
                    source,
                },
                TransactionError::Abort(never) => match never {},
            })?;
        Ok(match pair {
            (Some(meta), Some(data)) => Some((meta.to_vec(), data.to_vec())),
            _ => None,
        })
    }

    fn sync(&self) -> Result<(), DiskError> {
        self.db.flush().map_err(io("flush"))?;
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// How many of `sizes` (entry sizes, in order) fit in `budget` bytes: at least one, so a single large entry still
/// goes alone.
pub fn fitting(sizes: impl IntoIterator<Item = usize>, budget: usize) -> usize {
    let mut total = 0usize;
    let mut count = 0;
    for size in sizes {
        total = total.saturating_add(size);
        if count > 0 && total > budget {
            break;
        }
        count += 1;
    }
    count
}

fn index_of(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[8 - n..].copy_from_slice(&key[key.len() - n..]);
    u64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    /// Set in the child process of [`snapshot_pair_survives_sigkill`]: the store it keeps saving snapshots to.
    const WRITER_DIR: &str = "PGHA_TEST_SNAPSHOT_WRITER_DIR";
    /// Large enough to span several of sled's IO buffers, so a non-atomic pair would tear under SIGKILL.
    const DATA_LEN: usize = 1 << 20;

    fn pair(generation: u64) -> (Vec<u8>, Vec<u8>) {
        let meta = format!("generation {generation}").into_bytes();
        let data = generation.to_be_bytes().repeat(DATA_LEN / 8);
        (meta, data)
    }

    /// The generation of a stored pair, after checking that its meta and data belong together.
    fn generation_of(meta: &[u8], data: &[u8]) -> u64 {
        let text = String::from_utf8_lossy(meta);
        let generation: u64 = text
            .strip_prefix("generation ")
            .and_then(|g| g.parse().ok())
            .unwrap_or_else(|| panic!("unexpected snapshot meta {text:?}"));
        assert!(
            data == pair(generation).1,
            "snapshot meta says generation {generation} but its data is another generation's"
        );
        generation
    }

    #[test]
    fn fitting_counts_entries_within_the_budget_and_at_least_one() {
        // (entry sizes, budget, entries returned)
        let table: &[(&[usize], usize, usize)] = &[
            (&[], 10, 0),
            (&[5, 5, 5], 10, 2),
            (&[5, 5, 5], 15, 3),
            (&[11, 1], 10, 1), // one entry over the budget still goes, alone
            (&[3, 11], 10, 1),
            (&[usize::MAX, 1], 10, 1),
        ];
        for (sizes, budget, n) in table {
            assert_eq!(fitting(sizes.iter().copied(), *budget), *n, "{sizes:?} in {budget}");
        }
        let dir = tempfile::tempdir().expect("a temp dir");
        let disk = SledDisk::open(dir.path()).expect("opening the store");
        let rows: Vec<(u64, Vec<u8>)> = (1..=4).map(|i| (i, vec![0; 5])).collect();
        disk.append(&rows).expect("appending");
        let read = disk.read_range_limited(1, 5, 10).expect("reading");
        assert_eq!(read.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(disk.read_range_limited(3, 5, 1).expect("reading").len(), 1);
        assert!(disk.read_range_limited(5, 5, 10).expect("reading").is_empty());
    }

    #[test]
    fn snapshot_pair_is_saved_and_reopened_together() {
        let dir = tempfile::tempdir().expect("a temp dir");
        {
            let disk = SledDisk::open(dir.path()).expect("opening the store");
            assert_eq!(
                disk.read_snapshot().expect("reading"),
                None,
                "a new store has no snapshot"
            );
            let (meta, data) = pair(1);
            disk.save_snapshot(&meta, &data).expect("saving generation 1");
            let (meta, data) = pair(2);
            disk.save_snapshot(&meta, &data).expect("saving generation 2");
        }
        // A dropped sled instance's threads wind down after the drop, holding its file lock (under load a reopen
        // failed on the lock, or saw the store before they finished): reopen until the saved pair shows, a bounded
        // number of times; a pair that never shows still fails.
        let mut saved = None;
        let mut last_error = None;
        for _ in 0..100 {
            match SledDisk::open(dir.path()) {
                Ok(disk) => {
                    saved = disk.read_snapshot().expect("reading");
                    if saved.is_some() {
                        break;
                    }
                }
                Err(e) => last_error = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let (meta, data) =
            saved.unwrap_or_else(|| panic!("no saved snapshot after reopening (last error: {last_error:?})"));
        assert_eq!(generation_of(&meta, &data), 2);
    }

    /// Not a test of its own: the child of [`snapshot_pair_survives_sigkill`], saving ever newer pairs until killed
    /// and printing each generation once `save_snapshot` returned (so it must survive the kill).
    #[test]
    fn snapshot_writer_child() {
        let Ok(dir) = std::env::var(WRITER_DIR) else {
            return;
        };
        let disk = SledDisk::open(Path::new(&dir)).expect("opening the store");
        let start = match disk.read_snapshot().expect("reading") {
            Some((meta, data)) => generation_of(&meta, &data) + 1,
            None => 1,
        };
        for generation in start.. {
            let (meta, data) = pair(generation);
            disk.save_snapshot(&meta, &data).expect("saving a snapshot");
            println!("saved {generation}");
        }
    }

    /// SIGKILL a process in the middle of saving snapshots, several times: the reopened store always holds a whole
    /// pair, at least as new as the last save that returned.
    #[test]
    fn snapshot_pair_survives_sigkill() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let exe = std::env::current_exe().expect("the test binary");
        for (round, saves) in [3u64, 11, 29].into_iter().enumerate() {
            let mut child = Command::new(&exe)
                .args([
                    "--exact",
                    "dcs::disk::tests::snapshot_writer_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WRITER_DIR, dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting the writer");
            let stdout = child.stdout.take().expect("piped stdout");
            let mut last_saved = None;
            let mut lines = BufReader::new(stdout).lines();
            let mut seen = 0;
            while seen < saves {
                let Some(Ok(line)) = lines.next() else { break };
                if let Some(g) = line.strip_prefix("saved ").and_then(|g| g.parse::<u64>().ok()) {
                    last_saved = Some(g);
                    seen += 1;
                }
            }
            // The writer is inside its next save now (or about to be): kill it there.
            child.kill().expect("killing the writer");
            let status = child.wait().expect("reaping the writer");
            let last_saved = last_saved.unwrap_or_else(|| panic!("round {round}: the writer saved nothing ({status})"));
            let disk = SledDisk::open(dir.path()).expect("reopening after SIGKILL");
            let (meta, data) = disk.read_snapshot().expect("reading").expect("a saved snapshot");
            let generation = generation_of(&meta, &data);
            assert!(
                generation >= last_saved,
                "round {round}: generation {last_saved} was saved (durable) but the store holds {generation}"
            );
        }
    }
}
