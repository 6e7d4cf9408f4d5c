//! The DCS vocabulary: Raft type configuration, node identity, commands and their results.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// A member as Raft knows it: its name and the gRPC address peers and clients dial.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PghaNode {
    /// Member name from the config (`node.name`), unique in the cluster.
    pub name: String,
    /// `host:port` of the member's gRPC server.
    pub addr: String,
}

impl fmt::Display for PghaNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

openraft::declare_raft_types!(
    /// Raft type configuration of the pgha DCS.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = PghaNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of a member.
pub type Raft = openraft::Raft<TypeConfig>;
/// Log id with our node id type.
pub type LogId = openraft::LogId<u64>;

/// Raft node id derived from the member name (FNV-1a 64), so that every member and every client computes the
/// same id for a name without any coordination. Never 0: openraft uses 0 in the initial log id.
pub fn node_id(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.max(1)
}

/// One stored key. Byte fields are `serde_bytes` here and below: one byte string for the codec (a sequence of
/// u8 costs a call per byte: 170 ms per MiB in a debug build, past Raft's 50 ms AppendEntries budget), the same
/// bytes as before in postcard and in JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Revision of the transaction that created the key (since its last deletion).
    pub create_revision: i64,
    /// Revision of the transaction that last changed the key.
    pub mod_revision: i64,
    /// Number of changes since creation (1 on create).
    pub version: i64,
    /// Lease the key is bound to; 0 = none.
    pub lease: i64,
}

/// A condition of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    pub target: CompareTarget,
}

/// What a [`Compare`] checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The key does not exist.
    Absent,
    /// The key exists with this mod_revision.
    ModRevision(i64),
    /// The key exists with this value.
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// A write inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        lease: i64,
    },
    Delete {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        prefix: bool,
    },
}

/// If every compare holds, apply `success`, else `failure`; atomically, at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

/// A state machine command: the payload of a Raft log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Txn(Txn),
    LeaseGrant {
        ttl_ms: i64,
    },
    LeaseKeepAlive {
        id: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    /// Proposed by the Raft leader when its lease clock ran out. Each lease is expired only if it has not been
    /// refreshed since the log index the leader saw (`refreshed_index`): a keepalive committed in between wins.
    LeaseExpire {
        leases: Vec<ExpiredLease>,
    },
    /// A client command made with a role certificate: the state machine records `caller` as the owner of a lease
    /// it grants and refuses a keepalive, revoke or put-bound-to a lease owned by someone else (src/authz). Commands
    /// of callers without a role (plaintext, legacy certificates) are not wrapped and keep their full rights.
    As {
        caller: crate::identity::Caller,
        command: Box<Command>,
    },
}

impl Command {
    /// `cmd` made by `caller` (None: an unrestricted caller, the command stays as it is).
    pub fn by(caller: Option<&crate::identity::Caller>, cmd: Command) -> Command {
        match caller {
            Some(caller) => Command::As {
                caller: caller.clone(),
                command: Box::new(cmd),
            },
            None => cmd,
        }
    }

    /// The command itself, without its caller.
    pub fn inner(&self) -> &Command {
        match self {
            Command::As { command, .. } => command,
            other => other,
        }
    }
}

/// One lease the leader believes expired, with the refresh it based that on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredLease {
    pub id: i64,
    pub refreshed_index: u64,
}

/// Result of applying a [`Command`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Membership and blank entries.
    #[default]
    None,
    Txn {
        succeeded: bool,
        revision: i64,
        deleted: u64,
    },
    Lease {
        id: i64,
        ttl_ms: i64,
        found: bool,
    },
    Expired {
        expired: Vec<i64>,
    },
    /// The command was well-formed but not applicable (e.g. a put bound to an unknown lease).
    Rejected(String),
    /// The caller may not use a lease it touches (src/authz): nothing was changed.
    Denied(String),
}

/// Kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change, as delivered to watchers. For a delete, `kv` holds the key and `mod_revision` = the deletion's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
}

impl Event {
    /// Revision at which the change happened.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(node_id("db1"), node_id("db1"));
        assert_ne!(node_id("db1"), node_id("db2"));
        assert_ne!(node_id(""), 0);
        // Pinned: ids are persisted in Raft membership, they must never change between versions.
        assert_eq!(node_id("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
