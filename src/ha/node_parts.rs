//! The named parts of a db node's state (`DbNode`): what the loop remembers about its PostgreSQL process, a
//! standby's stall, the synchronous standbys, the replication slots, the fence and the hooks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::cluster::model::{PgState, PublishedSlot};
use crate::postgres::{PgError, PgStatus};
use crate::retry::FailureLog;

/// Process supervision: what this pgha knows of its PostgreSQL between loops.
#[derive(Default)]
pub struct Supervision {
    /// Where our replica currently streams from, as configured by us.
    pub following: Option<(String, u16)>,
    /// PostgreSQL was running under this pgha (so "not running" now means crashed).
    pub expect_running: bool,
    pub crashed_since: Option<Instant>,
    /// Since when the postmaster runs without accepting connections.
    pub starting_since: Option<Instant>,
    /// Set while a long action runs, for the published state.
    pub activity: Option<PgState>,
    pub last_status: Option<PgStatus>,
    /// The standby cluster setting our PostgreSQL follows as the standby leader (None: not configured for a remote).
    pub standby_of: Option<crate::cluster::standby::StandbyCluster>,
    /// Our part in a major upgrade (`ctl upgrade`), published in the member key.
    pub upgrade: Option<crate::cluster::upgrade::UpgradeReport>,
}

/// A standby that does not stream while a leader serves (see `decide::STALL_TTLS` and `stall.rs`).
#[derive(Default)]
pub struct StallWatch {
    /// Since when this standby has not streamed while a serving leader exists.
    pub since: Option<Instant>,
    /// A rewind was tried during the current stall.
    pub rewound: bool,
    /// The highest WAL position this standby's receiver flushed during the current stall clock.
    pub high_lsn: Option<u64>,
}

/// Synchronous replication as the leader manages it (`sync_leader.rs`).
#[derive(Default)]
pub struct SyncManagement {
    /// The `synchronous_standby_names` spec PostgreSQL runs with (None: not known yet).
    pub applied: Option<super::sync::SyncSpec>,
    /// WAL position once the current spec took effect (the new set must pass it before the key shrinks); None once
    /// the key matches the applied set.
    pub switch_lsn: Option<u64>,
    /// Since when each standby streams, as the leader sees it (`settled_streaming`).
    pub streaming_since: BTreeMap<String, Instant>,
    /// Since when the leader has seen no streaming standby it could name.
    pub no_candidate_since: Option<Instant>,
    /// The standbys named with the leader key just taken, for the promotion ahead (`sync::at_promotion`).
    pub promotion: Option<super::sync::SyncSpec>,
}

/// The logical slot being created beside the loop, and the slot it is for.
pub type SlotCreation = tokio::task::JoinHandle<(String, Result<(), PgError>)>;

/// Replication slots: the ones this node owns, for whom, and what is published.
pub struct SlotKeeping {
    /// The replication slots this node created (the only ones it ever drops).
    pub owned: super::slots::OwnedSlots,
    /// When each other member was last in the view (its slot is kept `member_slots_ttl_ms` after).
    pub member_seen: BTreeMap<String, Instant>,
    /// When each member whose `replicatefrom` names this standby was last seen (its slot here is kept as long as
    /// the primary keeps a member's).
    pub downstream_seen: BTreeMap<String, Instant>,
    /// Failures managing the slots of cascading replicas (logged once per state change).
    pub cascade_log: FailureLog,
    /// Slots already warned about for their retained WAL.
    pub warned: BTreeSet<String>,
    /// Failures to create the permanent logical slots (logged once per state change).
    pub logical_log: FailureLog,
    /// The logical slot being created beside the loop (see `ensure_logical_slots`).
    pub logical_create: Option<SlotCreation>,
    /// The leader's slots as last read, published in its member key.
    pub published: Vec<PublishedSlot>,
}

impl SlotKeeping {
    /// Nothing seen yet; `owned` as recorded on disk.
    pub fn new(owned: super::slots::OwnedSlots) -> SlotKeeping {
        SlotKeeping {
            owned,
            member_seen: BTreeMap::new(),
            downstream_seen: BTreeMap::new(),
            cascade_log: FailureLog::default(),
            warned: BTreeSet::new(),
            logical_log: FailureLog::default(),
            logical_create: None,
            published: Vec::new(),
        }
    }
}

/// The fence: the separate process that stops PostgreSQL at the lease's deadline if this pgha cannot.
#[derive(Default)]
pub struct Fence {
    pub process: Option<tokio::process::Child>,
}

/// The hooks: `on_*` callbacks and what they were last told.
pub struct HookState {
    /// Runs the `on_*` callbacks in the background.
    pub callbacks: super::hook_exec::Callbacks,
    /// The role the callbacks were last told about at a start or promotion (a start in another role is
    /// `on_role_change`).
    pub announced_role: Option<super::hooks::HookRole>,
}
