//! Fault injection for tests: a network partition or a full disk of one node, each switched by a file.
//!
//! Only active when the process starts with `PGHA_FAULT_INJECTION=1`; then, while `<node.data_dir>/fault.partition`
//! exists, the node's Raft traffic in both directions, its write forwarding, its HA queries and its DCS client calls
//! to other members all fail as if the network to its peers were cut. Client traffic from the host itself still
//! reaches the local member (a partitioned host can talk to itself). While `<node.data_dir>/fault.disk-full` exists,
//! every write to the member's Raft store fails with ENOSPC (reads still work), as on a full disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::disk::{DiskError, RaftDisk, SnapshotBytes};

/// The fault switches of one node (inactive unless enabled through the environment).
#[derive(Clone, Debug, Default)]
pub struct FaultSwitch {
    file: Option<PathBuf>,
    disk_full: Option<PathBuf>,
}

impl FaultSwitch {
    /// The switch for a node whose state lives in `data_dir`.
    pub fn from_env(data_dir: &Path) -> FaultSwitch {
        let enabled = std::env::var("PGHA_FAULT_INJECTION").is_ok_and(|v| v == "1");
        FaultSwitch {
            file: enabled.then(|| data_dir.join("fault.partition")),
            disk_full: enabled.then(|| data_dir.join("fault.disk-full")),
        }
    }

    /// True while writes to the node's Raft store must fail.
    pub fn disk_full(&self) -> bool {
        self.disk_full.as_ref().is_some_and(|f| f.exists())
    }

    /// `disk` itself, or (when fault injection is enabled) `disk` behind the disk-full switch.
    pub fn wrap_disk(&self, disk: Arc<dyn RaftDisk>) -> Arc<dyn RaftDisk> {
        match self.disk_full {
            Some(_) => Arc::new(FaultyDisk {
                inner: disk,
                switch: self.clone(),
            }),
            None => disk,
        }
    }

    /// True while the node is cut off from its peers.
    pub fn partitioned(&self) -> bool {
        self.file.as_ref().is_some_and(|f| f.exists())
    }

    /// The file that switches the partition on (when fault injection is enabled).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

/// The gate in front of the member-to-member services (Raft, WAL positions): a partitioned node answers none.
pub fn gate(switch: &FaultSwitch, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    match switch.partitioned() {
        true => Err(partitioned_status()),
        false => Ok(req),
    }
}

/// The status returned by a partitioned node.
pub fn partitioned_status() -> tonic::Status {
    tonic::Status::unavailable("fault injection: this node is partitioned from its peers")
}

/// A [`RaftDisk`] whose writes fail while the disk-full switch is on.
struct FaultyDisk {
    inner: Arc<dyn RaftDisk>,
    switch: FaultSwitch,
}

impl FaultyDisk {
    fn check(&self, op: &'static str) -> Result<(), DiskError> {
        if !self.switch.disk_full() {
            return Ok(());
        }
        let enospc = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let source = std::io::Error::new(enospc.kind(), format!("{enospc} (injected: fault.disk-full)"));
        Err(DiskError::Io {
            op,
            source: sled::Error::Io(source),
        })
    }
}

impl RaftDisk for FaultyDisk {
    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, DiskError> {
        self.inner.read_meta(key)
    }

    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), DiskError> {
        self.check("write meta")?;
        self.inner.write_meta(key, value)
    }

    fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), DiskError> {
        self.check("append")?;
        self.inner.append(entries)
    }

    fn read_range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, DiskError> {
        self.inner.read_range(start, end)
    }

    fn read_range_limited(&self, start: u64, end: u64, budget: usize) -> Result<Vec<(u64, Vec<u8>)>, DiskError> {
        self.inner.read_range_limited(start, end, budget)
    }

    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, DiskError> {
        self.inner.last_entry()
    }

    fn remove_from(&self, start: u64) -> Result<(), DiskError> {
        self.check("truncate")?;
        self.inner.remove_from(start)
    }

    fn remove_upto(&self, end: u64) -> Result<(), DiskError> {
        self.check("purge")?;
        self.inner.remove_upto(end)
    }

    fn save_snapshot(&self, meta: &[u8], data: &[u8]) -> Result<(), DiskError> {
        self.check("save snapshot")?;
        self.inner.save_snapshot(meta, data)
    }

    fn read_snapshot(&self) -> Result<Option<SnapshotBytes>, DiskError> {
        self.inner.read_snapshot()
    }

    fn sync(&self) -> Result<(), DiskError> {
        self.check("flush")?;
        self.inner.sync()
    }

    fn size_on_disk(&self) -> u64 {
        self.inner.size_on_disk()
    }
}
