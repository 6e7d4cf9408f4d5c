//! Fault injection for tests: a network partition of one node, switched by a file.
//!
//! Only active when the process starts with `PGHA_FAULT_INJECTION=1`; then, while `<node.data_dir>/fault.partition`
//! exists, the node's Raft traffic in both directions, its write forwarding, its HA queries and its DCS client calls
//! to other members all fail as if the network to its peers were cut. Client traffic from the host itself still
//! reaches the local member (a partitioned host can talk to itself).

use std::path::{Path, PathBuf};

/// The partition switch of one node (inactive unless enabled through the environment).
#[derive(Clone, Debug, Default)]
pub struct FaultSwitch {
    file: Option<PathBuf>,
}

impl FaultSwitch {
    /// The switch for a node whose state lives in `data_dir`.
    pub fn from_env(data_dir: &Path) -> FaultSwitch {
        let enabled = std::env::var("PGHA_FAULT_INJECTION").is_ok_and(|v| v == "1");
        FaultSwitch {
            file: enabled.then(|| data_dir.join("fault.partition")),
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

/// The status returned by a partitioned node.
pub fn partitioned_status() -> tonic::Status {
    tonic::Status::unavailable("fault injection: this node is partitioned from its peers")
}
